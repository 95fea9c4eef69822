/**
 * The real-kernel lab: the simulator's scenarios (sim/scenarios.ts) through
 * `fullnat run` in network namespaces, with Linux real servers, judged by
 * the verdicts of docs/CLI.md (realIp / wrongIp / failed per connection).
 *
 * Clients: scenarios whose clients are well behaved (a bare ACK, then the
 * request) use Linux's own TCP in the client namespace (rs-app.ts `client`;
 * the announced MSS comes from the route of the address it binds). The
 * others use the simulator's scripted client over a TUN (tun-client.ts), so
 * every misbehaviour reaches the LB exactly as scripted.
 *
 * Verdict source, per run (reported as `source`):
 * - `rs-app`: the eBPF TOA receiver is loaded (`fullnat rs exec`) and the
 *   RS application's own socket.remoteAddress/remotePort is compared with
 *   the client named by the request bytes;
 * - `rs-capture`: no receiver; tcpdump at each RS, and the doctor
 *   (analyzeCapture) finds the segment that concluded each handshake and the
 *   TOA a `toa` module would read from it.
 * When both are at hand (receiver and tcpdump), the capture also checks the
 * receiver, and disagreements are reported.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ToaPolicy } from '../../engine/options.js';
import { tunAvailable } from '../../io/tun.js';
import { parseIpv4 } from '../../wire/bytes.js';
import { Ipv6Address, parseAddress, type IpAddress } from '../../wire/address.js';
import { clientIpVersion, DEFAULT_FAMILY, type LabFamily } from '../family.js';
import { analyzeCapture } from '../../doctor/analyze.js';
import { netnsAvailable } from '../netns.js';
import type { ReceiverHandle } from '../receiver.js';
import type { ClientBehaviour } from '../sim/client.js';
import { clientFor, getScenario, type Scenario, type ScenarioName } from '../sim/scenarios.js';
import {
  acquireLock,
  cleanupLeftovers,
  CLI,
  findPython,
  hasTcpdump,
  labAddresses,
  LabTopology,
  REAL_SERVERS,
  LIVE_RECEIVER,
  RS_APP,
  SERVICES,
  TUN_ADDRS,
  TUN_BASE,
  TUN_BASE6,
  type Capture,
  type StoppedCapture,
  type Log,
  type RsRecordLine,
} from './topology.js';
import { endpointString, runTunClients, TunHostIo, type TunClientSpec } from './tun-client.js';
import {
  captureView,
  judge,
  type CaptureView,
  type ClientOutcome,
  type LabConnection,
  type LabSource,
  type Outcome,
} from './verdict.js';
import { LabInterrupt } from '../interrupt.js';

export type { LabConnection, LabSource, Outcome } from './verdict.js';

export interface LabOptions {
  /** Address families (lab/family.ts), each run whole before the next; default [4]. */
  families?: LabFamily[];
  policies: ToaPolicy[];
  scenarios: ScenarioName[];
  /** Connections per scenario and policy. */
  connections: number;
  seed: number;
  /** Where the verdict comes from; `auto` = the RS application when the eBPF receiver loads. */
  source: 'auto' | LabSource;
  /** Keep the RS captures here (one pcap per scenario, policy and RS). */
  pcapDir?: string;
  /** Per scenario and policy: clients still unfinished after this are judged as they stand. */
  deadlineMs?: number;
  /** `mss_adjust` in the LB configuration (default on). */
  mssAdjust?: boolean;
  /** `timestamp_remove` in the LB configuration (default on). */
  timestampRemove?: boolean;
}

/** The `--json` row of docs/CLI.md, plus where the verdict came from. */
export interface LabRow {
  family: LabFamily;
  scenario: ScenarioName;
  policy: ToaPolicy;
  connections: number;
  realIp: number;
  wrongIp: number;
  failed: number;
  source: LabSource;
}

export interface LabScenarioRun {
  row: LabRow;
  connections: LabConnection[];
  /** Connections where the receiver (rs-app) and the capture disagreed, capture loss aside. */
  disagreements: number;
  /** Connections the RS captures lost (verdict.ts): not disagreements, not TOA failures. */
  captureLoss: number;
  /** Packets tcpdump reported dropped by the kernel over the run's captures; null when unknown or no capture. */
  captureDropped: number | null;
  clientKind: 'linux' | 'tun';
  elapsedMs: number;
}

export interface LabResult {
  rows: LabRow[];
  runs: LabScenarioRun[];
  source: LabSource;
  /** Why the eBPF receiver was not used, when it was not. */
  receiverNote: string | null;
  elapsedMs: number;
}

export const DEFAULT_LAB_CONNECTIONS = 200;
export const DEFAULT_DEADLINE_MS = 6000;
const CLIENT_GAP_MS = 2;
const TUN_PORT_BASE = 20000;

/** Whether this machine can run the lab; `reason` says why not. */
export function labAvailable(): { ok: boolean; reason: string } {
  const n = netnsAvailable();
  if (!n.ok) return n;
  const t = tunAvailable();
  if (!t.ok) return { ok: false, reason: t.reason };
  if (!findPython())
    return { ok: false, reason: 'python3 is needed for the TCP_DEFER_ACCEPT listener' };
  return { ok: true, reason: '' };
}

/** Linux's own TCP can play this client: it sends a bare ACK, then an ordinary request. */
export function linuxCanPlay(b: ClientBehaviour): boolean {
  return (
    b.firstFlight === 'bare-ack-then-data' &&
    !b.finWithData &&
    !b.spoofToa &&
    !b.extraOptions &&
    b.overMssPayload === undefined &&
    !b.dropBareAck &&
    b.requestFullSegments === undefined &&
    b.timestamps !== false &&
    b.mtu === undefined
  );
}

function serviceFor(s: Scenario): { vport: number; rport: number } {
  if (s.deferAccept) return SERVICES.defer;
  if (s.rsLinkMtu < 1500) return SERVICES.smallMtu;
  return SERVICES.plain;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Linux clients in the client namespace (rs-app.ts `client`). */
async function runLinuxClients(
  topo: LabTopology,
  family: LabFamily,
  scenario: Scenario,
  n: number,
  vport: number,
  deadlineMs: number,
): Promise<ClientOutcome[]> {
  const addrs = labAddresses(family);
  const specs = Array.from({ length: n }, (_, i) => {
    const b = scenario.client(i);
    return { local: addrs.kernelClient(b.advmss), request: b.requestSize };
  });
  const child = topo.lab.spawn('c', process.execPath, [
    RS_APP,
    'client',
    '--vip',
    addrs.vip,
    '--port',
    String(vport),
    '--spec',
    JSON.stringify(specs),
    '--timeout',
    String(Math.max(1000, deadlineMs - 500)),
    '--gap',
    String(CLIENT_GAP_MS),
  ]);
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), deadlineMs + 5000);
    child.once('exit', (c) => {
      clearTimeout(t);
      resolve(c);
    });
  });
  const results: ClientOutcome[] = Array.from({ length: n }, (_, i) => ({
    key: `(linux client #${i})`,
    established: false,
    responseIntact: false,
    failure:
      code === 0 ? 'no result' : `client process failed (${code}): ${err.trim().slice(-300)}`,
  }));
  for (const line of out.split('\n')) {
    if (!line.startsWith('{')) continue;
    const o = JSON.parse(line) as {
      event: string;
      i: number;
      local: string | null;
      established: boolean;
      responseIntact: boolean;
      failure: string | null;
    };
    if (o.event !== 'result') continue;
    results[o.i] = {
      key: o.local ?? `(linux client #${o.i})`,
      established: o.established,
      responseIntact: o.responseIntact,
      failure: o.failure,
    };
  }
  return results;
}

/** The TUN client address of run `runIndex`: 10.78.8.x or fd00:78:8::x. */
function tunClientAddress(family: LabFamily, runIndex: number): IpAddress {
  const host = 1 + (runIndex % (TUN_ADDRS - 2));
  if (clientIpVersion(family) === 4) return (parseIpv4(TUN_BASE) + host) >>> 0;
  const b = (parseAddress(TUN_BASE6) as Ipv6Address).bytes.slice();
  b[14] = host >>> 8;
  b[15] = host & 0xff;
  return Ipv6Address.fromBytes(b);
}

/** Scripted clients over the TUN; each run gets its own client address. */
async function runScriptedClients(
  io: TunHostIo,
  family: LabFamily,
  scenario: Scenario,
  n: number,
  vport: number,
  runIndex: number,
  seed: number,
  deadlineMs: number,
): Promise<ClientOutcome[]> {
  const addr = tunClientAddress(family, runIndex);
  const vip = parseAddress(labAddresses(family).vip)!;
  const specs: TunClientSpec[] = Array.from({ length: n }, (_, i) => ({
    local: { addr, port: TUN_PORT_BASE + i },
    behaviour: clientFor(scenario, i, family),
  }));
  const run = await runTunClients(io, { addr: vip, port: vport }, specs, {
    seed: (seed + runIndex * 7919) >>> 0,
    gapMs: CLIENT_GAP_MS,
    deadlineMs,
  });
  return run.results.map((r) => ({
    key: endpointString(r.local),
    established: r.established,
    responseIntact: r.responseIntact,
    failure: r.failure,
  }));
}

/** Waits until every established client's request has been reported by an RS (bounded). */
async function awaitRsRecords(
  topo: LabTopology,
  clients: ClientOutcome[],
  got: RsRecordLine[],
  maxMs: number,
): Promise<void> {
  const want = new Set(clients.filter((c) => c.established).map((c) => c.key));
  const end = Date.now() + maxMs;
  for (;;) {
    got.push(...topo.takeRsRecords());
    for (const r of got) if (r.key) want.delete(r.key);
    if (want.size === 0 || Date.now() > end) return;
    await sleep(25);
  }
}

/** `SCENARIO-POLICY-HOST.pcap` in family 4 (as before families), `SCENARIO-POLICY-6-HOST.pcap`, `…-64-…`. */
export function pcapFile(
  scenario: ScenarioName,
  policy: ToaPolicy,
  family: LabFamily,
  host: string,
): string {
  return `${scenario}-${policy}${family === 4 ? '' : `-${family}`}-${host}.pcap`;
}

interface RunContext {
  topo: LabTopology;
  io: TunHostIo;
  source: LabSource;
  capture: boolean;
  o: Required<Pick<LabOptions, 'connections' | 'seed' | 'deadlineMs'>> & LabOptions;
  log: Log;
}

async function runOne(
  ctx: RunContext,
  family: LabFamily,
  name: ScenarioName,
  policy: ToaPolicy,
  runIndex: number,
): Promise<LabScenarioRun> {
  const t0 = Date.now();
  const { topo, o } = ctx;
  const scenario = getScenario(name);
  const svc = serviceFor(scenario);
  const n = o.connections;
  const linux = Array.from({ length: n }, (_, i) => scenario.client(i)).every(linuxCanPlay);
  topo.setRsLinkMtu(scenario.rsLinkMtu);
  topo.takeRsRecords();
  const captures: Capture[] = ctx.capture
    ? await Promise.all(
        REAL_SERVERS.map((r) =>
          topo.startCapture(r.host, join(topo.workDir, pcapFile(name, policy, family, r.host))),
        ),
      )
    : [];
  let clients: ClientOutcome[];
  const records: RsRecordLine[] = [];
  let stopped: StoppedCapture[];
  try {
    clients = linux
      ? await runLinuxClients(topo, family, scenario, n, svc.vport, o.deadlineMs)
      : await runScriptedClients(
          ctx.io,
          family,
          scenario,
          n,
          svc.vport,
          runIndex,
          o.seed,
          o.deadlineMs,
        );
    await awaitRsRecords(topo, clients, records, 1500);
  } finally {
    stopped = await Promise.all(captures.map((c) => c.stop()));
  }
  const pcaps = stopped.map((s) => s.pcap);
  // Unknown when any capture's counters are: a drop there could hide anywhere.
  const captureDropped =
    stopped.length && stopped.every((s) => s.stats)
      ? stopped.reduce((n, s) => n + s.stats!.droppedByKernel, 0)
      : null;
  if (o.pcapDir) {
    mkdirSync(o.pcapDir, { recursive: true });
    pcaps.forEach((b, i) =>
      writeFileSync(join(o.pcapDir!, pcapFile(name, policy, family, REAL_SERVERS[i]!.host)), b),
    );
  }
  let cap: CaptureView | null = null;
  if (pcaps.length) {
    try {
      cap = captureView(
        pcaps.map((b) =>
          b.length ? analyzeCapture(b, { deferAccept: scenario.deferAccept }).connections : [],
        ),
        captureDropped,
      );
    } catch (e) {
      ctx.log(`lab: ${name}/${policy}: capture unreadable: ${(e as Error).message}`);
    }
  }
  const { connections, disagreements, captureLoss } = judge(
    clients,
    records,
    cap,
    ctx.source,
    family,
  );
  const count = (x: Outcome): number => connections.filter((c) => c.outcome === x).length;
  const row: LabRow = {
    family,
    scenario: name,
    policy,
    connections: n,
    realIp: count('realIp'),
    wrongIp: count('wrongIp'),
    failed: count('failed'),
    source: ctx.source,
  };
  const elapsedMs = Date.now() - t0;
  const miss = connections.find((c) => c.outcome !== 'realIp');
  ctx.log(
    `lab: ${family === 4 ? '' : `family ${family} `}${policy.padEnd(7)} ${name.padEnd(12)} real ${row.realIp}/${n}` +
      (row.wrongIp ? `, wrong ${row.wrongIp}` : '') +
      (row.failed ? `, failed ${row.failed}` : '') +
      ` (${linux ? 'linux' : 'tun'} clients, ${(elapsedMs / 1000).toFixed(1)} s)` +
      (miss ? ` — e.g. ${miss.client}: ${miss.reason}` : '') +
      (disagreements ? ` [receiver and capture disagree on ${disagreements}]` : '') +
      (captureDropped ? ` [tcpdump dropped ${captureDropped} packets` : '') +
      (captureDropped ? `; ${captureLoss} connections missing from the capture]` : ''),
  );
  return {
    row,
    connections,
    disagreements,
    captureLoss,
    captureDropped,
    clientKind: linux ? 'linux' : 'tun',
    elapsedMs,
  };
}

/**
 * Runs every family × policy × scenario on real kernels (one LB
 * configuration per family and policy). Takes the lab lock, removes
 * any leftovers of an earlier run, and tears everything down on return, on
 * failure, and on SIGINT/SIGTERM (then exits 130/143).
 */
export async function runLabScenarios(opts: LabOptions, log: Log): Promise<LabResult> {
  const t0 = Date.now();
  const avail = labAvailable();
  if (!avail.ok) throw new Error(`fullnat lab: ${avail.reason}`);
  const o = {
    ...opts,
    deadlineMs: opts.deadlineMs ?? DEFAULT_DEADLINE_MS,
  };
  const families = o.families?.length ? o.families : [DEFAULT_FAMILY];
  const python = findPython()!;
  const tcpdump = hasTcpdump();
  if (o.source === 'rs-capture' && !tcpdump)
    throw new Error('fullnat lab: --source rs-capture needs tcpdump');

  const release = acquireLock();
  let topo: LabTopology | undefined;
  let receiver: ReceiverHandle | undefined;
  let io: TunHostIo | undefined;
  const stop = new LabInterrupt(
    'lab',
    log,
    () => {
      topo?.destroySync();
      release();
    },
    async () => {
      io?.stop();
      await topo?.destroy();
      if (receiver) await LIVE_RECEIVER.tearDown(receiver);
      release();
    },
  );
  try {
    await cleanupLeftovers(log);
    let source: LabSource = 'rs-capture';
    let receiverNote: string | null = null;
    if (o.source !== 'rs-capture') {
      const r = await LIVE_RECEIVER.setUp(CLI);
      if (typeof r === 'string') {
        if (o.source === 'rs-app') throw new Error(`fullnat lab: --source rs-app: ${r}`);
        if (!tcpdump) throw new Error(`fullnat lab: neither the eBPF receiver (${r}) nor tcpdump`);
        receiverNote = r;
        log(`lab: judging from captures at the RS (TOA receiver unavailable: ${r})`);
      } else {
        receiver = r;
        source = 'rs-app';
      }
    } else receiverNote = 'not requested (--source rs-capture)';

    topo = new LabTopology({ receiver: receiver !== undefined, log });
    topo.build();
    io = new TunHostIo(topo.tun!);
    io.start();
    await topo.startRsApps(python, receiver ? receiver.exec : null);

    const ctx: RunContext = { topo, io, source, capture: tcpdump, o, log };
    const runs: LabScenarioRun[] = [];
    let runIndex = 0;
    const switches = { mssAdjust: o.mssAdjust, timestampRemove: o.timestampRemove };
    for (const family of families) {
      for (const policy of o.policies) {
        if (stop.signal) break;
        await topo.startLb(policy, switches, family);
        for (const name of o.scenarios) {
          if (stop.signal) break;
          runs.push(await runOne(ctx, family, name, policy, runIndex++));
          if (!topo.lbAlive() && !stop.signal)
            throw new Error(
              `fullnat lab: \`fullnat run\` (${policy}, family ${family}) exited during ${name}`,
            );
        }
      }
    }
    // Interrupted: the signal handler tears down and exits; no partial report.
    if (stop.signal) await new Promise(() => {});
    topo.setRsLinkMtu(1500);
    // Rows in the simulator's order: family-major, then scenario, then policy.
    const rows: LabRow[] = [];
    for (const f of families)
      for (const s of o.scenarios)
        for (const p of o.policies) {
          const r = runs.find(
            (x) => x.row.family === f && x.row.scenario === s && x.row.policy === p,
          );
          if (r) rows.push(r.row);
        }
    return { rows, runs, source, receiverNote, elapsedMs: Date.now() - t0 };
  } catch (e) {
    // Torn down under our feet by a signal: the handler exits the process.
    if (stop.signal) await new Promise(() => {});
    if (topo) {
      const tail = topo.lbLogTail(1500);
      if (tail) log(`lab: LB log tail:\n${tail}`);
    }
    throw e;
  } finally {
    io?.stop();
    await stop.finish();
  }
}
