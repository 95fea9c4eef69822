/**
 * Runs one scenario end to end: N clients → middlebox → 2 Linux RSs, and
 * judges every connection as docs/CLI.md defines the verdicts:
 *
 *   failed  — not established at an RS, or request/response not intact;
 *   realIp  — otherwise, when the RS's getpeername() was the client's true ip:port;
 *   wrongIp — otherwise (a LIP, or a forged TOA address).
 *
 * In any address family (family.ts): the addresses come from the family's
 * plan (addresses.ts), the clients' and the RSs' sizes from `clientFor` and
 * `rsMssFor` (scenarios.ts).
 *
 * The RS-side record is tied to its client by the request bytes themselves
 * (they embed the true client address, see pattern.ts), never by what the RS
 * believes its peer to be.
 */
import { addressEquals, addressKey, type IpAddress } from '../../wire/address.js';
import { DEFAULT_FAMILY, type LabFamily } from '../family.js';
import { CLIENT_HOP4, CLIENT_HOP6, RS_HOP4, RS_HOP6, simAddressPlan } from './addresses.js';
import { ClientHost, type ClientResult, type TcpClient } from './client.js';
import { LinuxRs, type RsCounters, type RsRecord } from './linux-rs.js';
import {
  Net,
  type CaptureRecord,
  type Middlebox,
  type MiddleboxFactory,
  type NetStats,
  type Topology,
} from './net.js';
import { mix32, Rng } from './rng.js';
import { clientFor, getScenario, rsMssFor, type Scenario, type ScenarioName } from './scenarios.js';
import { flagString } from '../../wire/tcp.js';
import { endpointKey, epString, type Endpoint } from './segment.js';
import { formatTrace, packetBetween } from './trace.js';

const PLAN4 = simAddressPlan(4);
/** Family 4's VIP, RSs and LIPs (`simAddressPlan` has every family's). */
export const VIP: Endpoint = { addr: PLAN4.vip, port: PLAN4.vport };
export const RS_ENDPOINTS: readonly Endpoint[] = PLAN4.realServers;
export const LIPS: readonly IpAddress[] = PLAN4.lips;
const CLIENT_LINK_LATENCY_MS = 1;
const RS_LINK_LATENCY_MS = 0.1;
/** Connections start one per 0.5 ms, all within 5 s of virtual time. */
const START_GAP_MS = 0.5;
const START_SPAN_MS = 5000;

export interface RunOptions {
  scenario: ScenarioName;
  /** Address family (family.ts): 4 (default), 6, or 64 (FNAT64). */
  family?: LabFamily;
  middleboxFactory: MiddleboxFactory;
  connections?: number;
  seed?: number;
  /** Keep every packet of every link (for traces and pcap dumps). */
  capture?: boolean;
  /** Virtual-time limit, ms (default 60 s). */
  maxTime?: number;
  maxEvents?: number;
}

export type Outcome = 'realIp' | 'wrongIp' | 'failed';

export interface ConnectionDetail {
  index: number;
  /** The client's true ip:port. */
  client: string;
  clientEndpoint: Endpoint;
  /** RS that accepted the connection. */
  rs: string | null;
  rsEndpoint: Endpoint | null;
  /** IP-header peer the RS saw (LIP:lport behind FULLNAT). */
  rsPeer: string | null;
  rsPeerEndpoint: Endpoint | null;
  /** getpeername() on the RS. */
  seen: string | null;
  toaFound: boolean;
  /** Flags and payload length of the segment that concluded the RS handshake, e.g. "FP. 300". */
  concluding: string | null;
  concludingFlags: number;
  concludingLen: number;
  requestIntact: boolean;
  responseIntact: boolean;
  outcome: Outcome;
  reason: string | null;
  clientResult: ClientResult;
}

export interface ScenarioRun {
  scenario: ScenarioName;
  family: LabFamily;
  connections: number;
  realIp: number;
  wrongIp: number;
  failed: number;
  details: ConnectionDetail[];
  net: NetStats;
  rs: { rs: string; counters: RsCounters }[];
  topology: Topology;
  middlebox: Middlebox;
  /** Empty unless `capture` was set. */
  records: CaptureRecord[];
}

/** The address of client `index` in a family (several connections share one). */
export function clientAddress(index: number, family: LabFamily = DEFAULT_FAMILY): IpAddress {
  return simAddressPlan(family).clientAddress(index);
}

export function buildTopology(
  scenario: Scenario,
  connections: number,
  family: LabFamily = DEFAULT_FAMILY,
): Topology {
  const plan = simAddressPlan(family);
  const clients = new Map<string, IpAddress>();
  for (let i = 0; i < connections; i++) {
    const a = plan.clientAddress(i);
    clients.set(addressKey(a), a);
  }
  return {
    family,
    vip: plan.vip,
    vport: plan.vport,
    rs: plan.realServers.map((e) => ({ addr: e.addr, port: e.port, linkMtu: scenario.rsLinkMtu })),
    lips: [...plan.lips],
    clients: [...clients.values()],
    clientLinkMtu: scenario.clientLinkMtu,
  };
}

export function runScenario(opts: RunOptions): ScenarioRun {
  const scenario = getScenario(opts.scenario);
  const family = opts.family ?? DEFAULT_FAMILY;
  const plan = simAddressPlan(family);
  const n = opts.connections ?? 100;
  const seed = opts.seed ?? 1;
  const topo = buildTopology(scenario, n, family);
  const net = new Net({
    clientLink: {
      latency: CLIENT_LINK_LATENCY_MS,
      mtu: scenario.clientLinkMtu,
      hopAddr: CLIENT_HOP4,
      hopAddr6: CLIENT_HOP6,
    },
    rsLink: {
      latency: RS_LINK_LATENCY_MS,
      mtu: scenario.rsLinkMtu,
      hopAddr: RS_HOP4,
      hopAddr6: RS_HOP6,
    },
    capture: opts.capture === true,
    maxTime: opts.maxTime ?? 60_000,
    maxEvents: opts.maxEvents ?? 1_000_000 + 1000 * n,
  });
  // The factory sees the topology before any host exists, as a configured LB would.
  const middlebox = opts.middleboxFactory(topo);
  net.setMiddlebox(middlebox);

  const servers = plan.realServers.map((e, i) =>
    net.addHost(
      'rs',
      e.addr,
      (io) =>
        new LinuxRs(io, {
          addr: e.addr,
          port: e.port,
          mss: rsMssFor(scenario, family),
          deferAccept: scenario.deferAccept,
          responseSize: scenario.responseSize,
          seed: mix32(seed, 0x5253, i),
        }),
    ),
  );

  const hosts = new Map<string, ClientHost>();
  const usedPorts = new Set<string>();
  const clients: TcpClient[] = [];
  const vip: Endpoint = { addr: plan.vip, port: plan.vport };
  const gap = Math.min(START_GAP_MS, START_SPAN_MS / Math.max(1, n));
  for (let i = 0; i < n; i++) {
    const addr = plan.clientAddress(i);
    let host = hosts.get(addressKey(addr));
    if (!host) {
      host = net.addHost('client', addr, (io) => new ClientHost(io, addr));
      hosts.set(addressKey(addr), host);
    }
    const port = pickPort(new Rng(mix32(seed, 0x706f7274, i)), addr, usedPorts);
    const behaviour = clientFor(scenario, i, family);
    const client = host.connect(port, vip, behaviour, mix32(seed, 0x636c69, i));
    clients.push(client);
    net.at(i * gap, () => client.start());
  }

  const stats = net.run();
  const details = judge(clients, servers);
  return {
    scenario: scenario.name,
    family,
    connections: n,
    realIp: details.filter((d) => d.outcome === 'realIp').length,
    wrongIp: details.filter((d) => d.outcome === 'wrongIp').length,
    failed: details.filter((d) => d.outcome === 'failed').length,
    details,
    net: stats,
    rs: servers.map((s) => ({ rs: epString(s.local), counters: { ...s.counters } })),
    topology: topo,
    middlebox,
    records: net.records,
  };
}

function pickPort(rng: Rng, addr: IpAddress, used: Set<string>): number {
  for (let tries = 0; tries < 10_000; tries++) {
    const port = rng.int(32768, 60999);
    const k = endpointKey(addr, port);
    if (!used.has(k)) {
      used.add(k);
      return port;
    }
  }
  throw new Error('no free client port');
}

interface Accepted {
  rs: Endpoint;
  rec: RsRecord;
}

function judge(clients: TcpClient[], servers: LinuxRs[]): ConnectionDetail[] {
  const byKey = new Map<string, Accepted[]>();
  const byPeer = new Map<string, Accepted[]>();
  const add = (m: Map<string, Accepted[]>, k: string, a: Accepted): void => {
    const l = m.get(k);
    if (l) l.push(a);
    else m.set(k, [a]);
  };
  for (const s of servers) {
    for (const rec of s.records) {
      const a = { rs: s.local, rec };
      if (rec.requestKey) add(byKey, epString(rec.requestKey), a);
      else {
        // No complete request to identify it: fall back to the addresses the RS saw.
        const seen = epString({ addr: rec.seenAddr, port: rec.seenPort });
        add(byPeer, seen, a);
        if (epString(rec.ipPeer) !== seen) add(byPeer, epString(rec.ipPeer), a);
      }
    }
  }
  return clients.map((client, index) => {
    const c = client.result();
    const me = epString(client.local);
    const candidates = byKey.get(me) ?? byPeer.get(me) ?? [];
    const chosen = candidates.find((a) => a.rec.requestIntact) ?? candidates[0] ?? null;
    const rec = chosen?.rec ?? null;
    let outcome: Outcome = 'failed';
    let reason: string | null = null;
    if (!c.established) reason = c.failure ?? 'not established';
    else if (!rec) reason = 'no connection accepted at an RS';
    else if (!rec.requestIntact) reason = 'request not intact at the RS';
    else if (!c.responseIntact) reason = c.failure ?? 'response not intact';
    else if (addressEquals(rec.seenAddr, client.local.addr) && rec.seenPort === client.local.port)
      outcome = 'realIp';
    else {
      outcome = 'wrongIp';
      reason = rec.toaFound ? 'TOA with another address' : 'no TOA on the concluding segment';
    }
    if (candidates.length > 1)
      reason = `${reason ?? ''}${reason ? '; ' : ''}${candidates.length} RS connections`;
    const seen = rec ? { addr: rec.seenAddr, port: rec.seenPort } : null;
    return {
      index,
      client: me,
      clientEndpoint: client.local,
      rs: chosen ? epString(chosen.rs) : null,
      rsEndpoint: chosen ? chosen.rs : null,
      rsPeer: rec ? epString(rec.ipPeer) : null,
      rsPeerEndpoint: rec ? rec.ipPeer : null,
      seen: seen ? epString(seen) : null,
      toaFound: rec?.toaFound ?? false,
      concluding: rec ? `${flagString(rec.concludingFlags)} ${rec.concludingLen}` : null,
      concludingFlags: rec?.concludingFlags ?? 0,
      concludingLen: rec?.concludingLen ?? 0,
      requestIntact: rec?.requestIntact ?? false,
      responseIntact: c.responseIntact,
      outcome,
      reason,
      clientResult: c,
    };
  });
}

/**
 * The packets of one connection on both links (needs a run with `capture`).
 * The RS side is matched by the LIP:lport tuple the RS saw, within the
 * client's lifetime (plus 1 s), since an LB may reuse that tuple later.
 */
export function connectionRecords(run: ScenarioRun, index: number): CaptureRecord[] {
  const d = run.details[index];
  if (!d) return [];
  const vip = { addr: run.topology.vip, port: run.topology.vport };
  const clientSide = run.records.filter((r) => packetBetween(r.bytes, d.clientEndpoint, vip));
  const from = clientSide[0]?.t ?? 0;
  const until = (clientSide[clientSide.length - 1]?.t ?? Infinity) + 1000;
  const peer = d.rsPeerEndpoint;
  const rs = d.rsEndpoint;
  return run.records.filter(
    (r) =>
      packetBetween(r.bytes, d.clientEndpoint, vip) ||
      (peer !== null &&
        rs !== null &&
        r.t >= from &&
        r.t <= until &&
        packetBetween(r.bytes, peer, rs)),
  );
}

/** A readable trace of one connection, headed by its verdict. */
export function connectionTrace(run: ScenarioRun, index: number): string {
  const d = run.details[index];
  if (!d) return `no connection #${index}`;
  const head =
    `# ${run.scenario} #${index} ${d.client}: ${d.outcome}` +
    (d.seen
      ? `, RS ${d.rs} saw ${d.seen} (toa ${d.toaFound ? 'found' : 'absent'}, concluded by ${d.concluding})`
      : '') +
    (d.reason ? ` — ${d.reason}` : '');
  return `${head}\n${formatTrace(connectionRecords(run, index))}`;
}

/** The `--json` row of docs/CLI.md (without `policy`, which the caller knows). */
export function summaryRow(run: ScenarioRun): {
  scenario: ScenarioName;
  family: LabFamily;
  connections: number;
  realIp: number;
  wrongIp: number;
  failed: number;
} {
  return {
    scenario: run.scenario,
    family: run.family,
    connections: run.connections,
    realIp: run.realIp,
    wrongIp: run.wrongIp,
    failed: run.failed,
  };
}

export { formatTrace };
