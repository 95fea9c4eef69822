/**
 * SYNPROXY on real kernels: `fullnat run` with `syn_proxy` under a spoofed
 * SYN flood, against the same service without it.
 *
 *   client 10.80.1.2 ── 10.80.1.1 [LB fnat0: VIP 10.80.0.100:80 syn_proxy, :81 plain; LIPs 10.80.3.1-2] 10.80.2.1 ── RS 10.80.2.11:8080
 *                                   10.80.4.1
 *                                       │
 *   attacker 10.80.4.2 ── TUN fl0 ← 10.81.0.0/16 (spoofed SYN sources; the answers come back here and are dropped)
 *
 * The RS runs the rs-server fixture under the eBPF TOA receiver, so its
 * body names the address the application sees. The flood is written by
 * fixtures/flood.js (a child process in the attacker namespace) with
 * writeBatch at a bounded rate.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsLab } from '../../src/lab/netns.js';
import { cli, fixtures, repo, runClient, runCtl, until as untilOr } from './support/harness.js';
import {
  attachReceiver,
  receiverFor,
  receiverUnavailable,
  spawnUnderReceiver,
  tearDown,
} from './support/receiver.js';
import { sleep } from '../support/time.js';

const VIP = '10.80.0.100';
const CLIENT = '10.80.1.2';
/** Spoofed SYNs per second asked of the flood; a slower machine sends fewer, and the test waits for them. */
const FLOOD_RATE = 50_000;
/** The main flood runs until the legitimate clients are done and at least this many SYNs are out… */
const FLOOD_MIN_SYNS = 100_000;
/** …within a generous cap, whatever the machine's speed. */
const FLOOD_CAP_SECONDS = 60;
/** The contrast flood (no syn_proxy) is bounded by count. */
const CONTRAST_SYNS = 40_000;
/** LB resident memory may grow by at most this under the SYNPROXY flood: flat, the flood holds no state. */
const RSS_FLAT_MB = 16;
const MB = 1024 * 1024;
const BULK = 50 * MB;

function why(): string | undefined {
  const missing = receiverUnavailable(['bpftool']);
  if (missing) return missing;
  if (!existsSync(join(repo, 'build', 'Release', 'fullnat_tun.node')))
    return 'native TUN addon not built (npm install)';
  return undefined;
}

const skip = why();
if (skip) console.log(`# synproxy e2e skipped: ${skip}`);
const pid = process.pid % 100000;
const lab = new NetnsLab(`fs${pid}`);
const dir = mkdtempSync(join(tmpdir(), 'fullnat-syn-'));
const confPath = join(dir, 'lb.conf');
const sock = join(dir, 'fullnat.sock');
/** Inside the LB's namespace: its own 127.0.0.1. */
const METRICS_PORT = 9400;
const receiver = receiverFor(`e2e-syn-${pid}`);
const { rsFlags } = receiver;
let lbProc: ChildProcess | undefined;
let lbLog = '';

const config = `fullnat_defs {
    interface fnat0
    toa_policy fullnat
    control_socket ${sock}
    metrics 127.0.0.1:${METRICS_PORT}
}
local_address_group lips {
    10.80.3.1
    10.80.3.2
}
virtual_server ${VIP} 80 {
    lb_algo rr
    laddr_group_name lips
    syn_proxy
    real_server 10.80.2.11 8080 { weight 1 }
}
virtual_server ${VIP} 81 {
    lb_algo rr
    laddr_group_name lips
    real_server 10.80.2.11 8080 { weight 1 }
}
`;

const until = (what: string, fn: () => boolean, timeoutMs: number): Promise<void> =>
  untilOr(what, fn, timeoutMs, () => lbLog.slice(-2000));

const ctl = (args: string[]): { code: number; out: string } => runCtl(lab, sock, args);

/**
 * The LB's connection count, `fullnat_connections` on its metrics: one quick
 * sample (listing thousands of entries with `ctl -Lnc` would miss the
 * flood's short peak).
 */
function lbConnections(): number {
  const text = lab.exec('lb', 'curl', [
    '-s',
    '-m',
    '5',
    `http://127.0.0.1:${METRICS_PORT}/metrics`,
  ]);
  const m = /^fullnat_connections (\d+)$/m.exec(text);
  assert.ok(m, `no fullnat_connections in the LB's metrics: ${text.slice(0, 500)}`);
  return Number(m[1]);
}

/** The `fullnat run` process: `ip netns exec` execs it, so the child's pid is node's; checked against the namespace's pids. */
function lbPid(): number {
  const pids = execFileSync('ip', ['netns', 'pids', lab.ns('lb')], { encoding: 'utf8' })
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
  const candidates = [lbProc!.pid!, ...pids];
  const found = candidates.find((p) => {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      return cmd.some((a) => a.endsWith('fullnat.js')) && cmd.includes('run');
    } catch {
      return false;
    }
  });
  assert.ok(found, 'fullnat run process not found');
  return found;
}

/** VmRSS of the LB process, in MB. */
function lbRssMb(): number {
  const status = readFileSync(`/proc/${lbPid()}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  assert.ok(m, 'VmRSS missing');
  return Number(m[1]) / 1024;
}

/** The RS's half-open connections: one `ss` line each, as [peer, local]. */
function rsSynRecv(): { peer: string; local: string }[] {
  return lab
    .exec('r1', 'ss', ['-Htn', 'state', 'syn-recv'])
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 4)
    .map((f) => ({ local: f[f.length - 2]!, peer: f[f.length - 1]! }));
}

/** Runs a node script in host `name` without blocking this event loop; resolves with its last JSON line. */
function runAsync(
  name: string,
  args: string[],
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = lab.spawn(name, process.execPath, args);
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as Record<string, unknown>);
      } catch {
        reject(new Error(`${args.join(' ')} exited ${String(code)}: ${out.slice(-500)} ${err}`));
      }
    });
  });
}

type FloodResult = {
  sent: number;
  queueFull: number;
  rejected: number;
  answers: number;
  seconds: number;
  rate: number;
  stoppedBy: 'signal' | 'count' | 'time';
};

/**
 * Starts the flood toward VIP:port, bounded by `maxSeconds` and `maxCount`;
 * `ready` once the TUN is up, `stop()` ends it early, `done` has its counters.
 */
function startFlood(
  port: number,
  maxSeconds: number,
  maxCount: number,
): {
  ready: Promise<void>;
  done: Promise<FloodResult>;
  running: () => boolean;
  stop: () => void;
} {
  const child = lab.spawn('a', process.execPath, [
    join(fixtures, 'flood.js'),
    'fl0',
    VIP,
    String(port),
    String(FLOOD_RATE),
    String(maxSeconds),
    String(maxCount),
  ]);
  let out = '';
  let err = '';
  let exited = false;
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.startsWith('ready\n')) resolve();
    });
    child.on('exit', () => reject(new Error(`flood exited early: ${out} ${err}`)));
  });
  const done = new Promise<FloodResult>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), (maxSeconds + 10) * 1000);
    child.on('exit', (code) => {
      exited = true;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()!) as FloodResult);
      } catch {
        reject(new Error(`flood exited ${String(code)}: ${out} ${err}`));
      }
    });
  });
  ready.catch(() => undefined);
  return { ready, done, running: () => !exited, stop: () => void child.kill('SIGTERM') };
}

/** The RS's most half-open connections during the SYNPROXY flood, for the contrast test. */
let synproxyMaxSynRecv = -1;

type Seen = { seen: { localPort: number; body: string }[]; failed: number };

before(async () => {
  if (skip) return;
  for (const h of ['c', 'lb', 'r1', 'a']) lab.addHost(h);
  lab.link('c', 'eth0', `${CLIENT}/24`, 'lb', 'eth0', '10.80.1.1/24');
  lab.link('lb', 'eth1', '10.80.2.1/24', 'r1', 'eth0', '10.80.2.11/24');
  lab.link('a', 'eth0', '10.80.4.2/24', 'lb', 'eth2', '10.80.4.1/24');
  lab.ip('c', 'route', 'add', 'default', 'via', '10.80.1.1');
  lab.ip('r1', 'route', 'add', 'default', 'via', '10.80.2.1');
  lab.ip('a', 'route', 'add', 'default', 'via', '10.80.4.1');
  // Answers to the spoofed sources go back to the attacker, whose TUN swallows them.
  lab.ip('lb', 'route', 'add', '10.81.0.0/16', 'via', '10.80.4.2');
  attachReceiver(rsFlags);
  spawnUnderReceiver(lab, rsFlags, 'r1', process.execPath, [
    join(fixtures, 'rs-server.js'),
    'r1',
    '8080',
  ]);
  writeFileSync(confPath, config);
  lbProc = lab.spawn('lb', process.execPath, [cli, 'run', '-f', confPath]);
  lbProc.stderr!.on('data', (c: Buffer) => (lbLog += c.toString()));
  await until('LB control socket', () => ctl(['-Ln']).code === 0, 15_000);
  await until('RS listening', () => /:8080\b/.test(lab.exec('r1', 'ss', ['-ltn'])), 10_000);
});

after(() => tearDown(lab, dir, skip ? undefined : receiver));

/** Numbers for the lead to quote: TAP diagnostics under each test. */
function report(t: TestContext, line: string): void {
  t.diagnostic(line);
}

test(
  'syn_proxy: under a spoofed SYN flood 1000 real requests succeed with the true client address; RS and LB stay clean',
  { skip },
  async (t) => {
    const rss0 = lbRssMb();
    const conns0 = lbConnections();
    const t0 = Date.now();
    // Unbounded in count here: it stops when the clients are done (below), or at the cap.
    const flood = startFlood(80, FLOOD_CAP_SECONDS, Number.MAX_SAFE_INTEGER);
    await flood.ready;
    await sleep(1000);
    const clientStart = Date.now() - t0;
    let clientEnd = 0;
    const peers = runAsync(
      'c',
      [join(fixtures, 'client.js'), 'peers', `http://${VIP}:80`, '1000'],
      60_000,
    ).then((r) => {
      clientEnd = Date.now() - t0;
      return r as unknown as Seen;
    });
    let clientDone = false;
    void peers.finally(() => (clientDone = true)).catch(() => undefined);

    let samples = 0;
    let maxSynRecv = 0;
    let maxConns = conns0;
    let floodOutlived: boolean;
    // The flood runs while the clients do, and on until it has sent its minimum.
    for (;;) {
      const sr = rsSynRecv().filter((s) => s.local.endsWith(':8080'));
      samples++;
      maxSynRecv = Math.max(maxSynRecv, sr.length);
      maxConns = Math.max(maxConns, lbConnections());
      if (clientDone) {
        floodOutlived = flood.running();
        const elapsed = (Date.now() - t0) / 1000;
        // Quick clients: let the flood go on for what its minimum takes at the asked rate, plus a
        // second, within the cap (the count is asserted below, so a slow flood still fails).
        const wait = floodOutlived
          ? Math.min(FLOOD_CAP_SECONDS - elapsed, FLOOD_MIN_SYNS / FLOOD_RATE + 1)
          : 0;
        await sleep(Math.max(0, wait * 1000));
        flood.stop();
        break;
      }
      await sleep(300);
    }
    const r = await peers;
    const f = await flood.done;
    synproxyMaxSynRecv = maxSynRecv;
    const floodEnd = Math.round(f.seconds * 1000);
    const rss1 = lbRssMb();
    const ok = r.seen.length;
    const wrong = r.seen.filter((s) => s.body !== `r1 ${CLIENT}:${s.localPort}`);
    report(
      t,
      `flood: ${f.sent} spoofed SYNs in ${f.seconds.toFixed(2)} s (${f.rate}/s, ${f.queueFull} not taken by the TUN), ${f.answers} answers (SYN+ACK cookies) came back to the attacker`,
    );
    report(
      t,
      `legit: ${ok}/1000 succeeded, ${r.failed} failed, ${wrong.length} saw another address; client ran ${clientStart}–${clientEnd} ms, flood 0–${floodEnd} ms`,
    );
    report(
      t,
      `RS syn-recv on :8080 over ${samples} samples: max ${maxSynRecv}; LB connections ${conns0} before, max ${maxConns} during; flood stopped by ${f.stoppedBy}`,
    );
    report(
      t,
      `LB VmRSS ${rss0.toFixed(1)} MB before, ${rss1.toFixed(1)} MB after (${(rss1 / rss0).toFixed(2)}×)`,
    );

    assert.ok(samples >= 3, `only ${samples} ss samples`);
    // The flood covered the whole client run: it was still going when the last request ended.
    assert.ok(floodOutlived, `the flood ended (${f.stoppedBy}) before the requests did`);
    assert.equal(f.stoppedBy, 'signal', `the flood hit its cap: ${JSON.stringify(f)}`);
    assert.ok(clientEnd <= floodEnd, 'the requests outlasted the flood');
    assert.ok(f.sent >= FLOOD_MIN_SYNS, `flood too weak: ${JSON.stringify(f)}`);
    assert.ok(ok >= 990, `${ok}/1000 succeeded\n${lbLog.slice(-2000)}`);
    assert.deepEqual(wrong.slice(0, 3), [], `${wrong.length} connections saw another address`);
    // Behind FULLNAT the RS sees every handshake from a LIP, so what can be counted is its
    // half-open entries: only the legitimate handshakes the LB opened (the client runs 20 at a
    // time) may be there; the same flood without syn_proxy leaves hundreds (last test).
    assert.ok(maxSynRecv <= 50, `RS had ${maxSynRecv} half-open connections`);
    // The table holds the 1000 legitimate connections (and their TIME_WAIT), none of the flood's.
    assert.ok(maxConns - conns0 <= 1100, `LB connections reached ${maxConns}`);
    assert.ok(rss1 - rss0 <= RSS_FLAT_MB, `LB RSS ${rss0} → ${rss1} MB: not flat`);
  },
);

test(
  'bulk: 50 MB download and upload byte-identical with and without syn_proxy (throughput reported)',
  { skip },
  (t) => {
    const best: Record<string, { down: number; up: number }> = {
      '80': { down: 0, up: 0 },
      '81': { down: 0, up: 0 },
    };
    // Unmeasured warm-up on both services, then two runs in alternating order (the first slot runs colder).
    for (const port of ['80', '81'])
      runClient(lab, ['download', `http://${VIP}:${port}`, String(5 * MB)]);
    for (let run = 0; run < 2; run++) {
      for (const port of run === 0 ? ['80', '81'] : ['81', '80']) {
        const url = `http://${VIP}:${port}`;
        let s = performance.now();
        const d = runClient(lab, ['download', url, String(BULK)]);
        const down = BULK / MB / ((performance.now() - s) / 1000);
        assert.equal(d.bytes, BULK, `:${port} download`);
        assert.equal(d.sha256, d.expected, `:${port} download hash`);
        s = performance.now();
        const u = runClient(lab, ['upload', url, String(BULK)]);
        const up = BULK / MB / ((performance.now() - s) / 1000);
        assert.equal(u.received, u.sent, `:${port} upload hash`);
        report(
          t,
          `run ${run + 1} :${port} (${port === '80' ? 'syn_proxy' : 'plain'}): download ${down.toFixed(0)} MB/s, upload ${up.toFixed(0)} MB/s`,
        );
        best[port]!.down = Math.max(best[port]!.down, down);
        best[port]!.up = Math.max(best[port]!.up, up);
      }
    }
    const sp = best['80']!;
    const plain = best['81']!;
    report(
      t,
      `best of 2 (wall time of the client process, 50 MB each): syn_proxy down ${sp.down.toFixed(0)} / up ${sp.up.toFixed(0)} MB/s; plain down ${plain.down.toFixed(0)} / up ${plain.up.toFixed(0)} MB/s`,
    );
    // Throughput is reported, not asserted: two 50 MB transfers on a shared machine race its
    // clock (one fresh-clone run measured plain 80/132 MB/s against syn_proxy 109/106), and
    // speed is a benchmark's to judge. What this test holds is that SYNPROXY's sequence and
    // window translation carry bulk data intact both ways.
  },
);

test(
  'without syn_proxy the same flood leaves half-open connections on the RS',
  { skip },
  async (t) => {
    const conns0 = lbConnections();
    const flood = startFlood(81, FLOOD_CAP_SECONDS, CONTRAST_SYNS);
    await flood.ready;
    let maxSynRecv = 0;
    let maxConns = conns0;
    const peers = new Set<string>();
    while (flood.running()) {
      await sleep(250);
      const sr = rsSynRecv().filter((s) => s.local.endsWith(':8080'));
      maxSynRecv = Math.max(maxSynRecv, sr.length);
      for (const s of sr) peers.add(s.peer.replace(/:\d+$/, ''));
      maxConns = Math.max(maxConns, lbConnections());
    }
    const f = await flood.done;
    const sr = rsSynRecv();
    maxSynRecv = Math.max(maxSynRecv, sr.length);
    // Once more at the end: on a loaded machine the last SYNs may land after the last 250 ms sample.
    maxConns = Math.max(maxConns, lbConnections());
    report(
      t,
      `plain :81 flood: ${f.sent} SYNs in ${f.seconds.toFixed(2)} s; RS syn-recv max ${maxSynRecv} (peers ${[...peers].join(', ')} — the LIPs the spoofed SYNs were NATed to), ${sr.length} after; LB connections ${conns0} → max ${maxConns}`,
    );
    // FULLNAT: the RS sees the spoofed SYNs from the LIPs, so count half-open entries on the RS port,
    // far more than any legitimate traffic (none runs now) could leave.
    assert.equal(f.stoppedBy, 'count', `the contrast flood hit its cap: ${JSON.stringify(f)}`);
    assert.ok(maxSynRecv >= 100, `only ${maxSynRecv} half-open connections on the RS`);
    // The same kind of flood, with syn_proxy, left at most a few legitimate ones (first test).
    assert.ok(synproxyMaxSynRecv >= 0, 'the syn_proxy flood test did not run first');
    assert.ok(
      maxSynRecv >= 10 * Math.max(1, synproxyMaxSynRecv),
      `half-open on the RS: ${maxSynRecv} without syn_proxy vs ${synproxyMaxSynRecv} with`,
    );
    assert.ok(maxConns - conns0 > 10_000, `LB connections only reached ${maxConns}`);
  },
);
