/**
 * What connection sync costs a node: `fullnat run` at its defaults without
 * and with a `sync` block, in interleaved rounds (off on, on off, …) on the
 * net benchmark's topology, each run in a fresh LB namespace.
 *
 *   client 10.88.1.2 (+ the sync peer: a UDP sink on :8848) ── 10.88.1.1 [LB] ── RS 10.88.2.2 (nginx)
 *
 * The peer is a sink that counts what the node sends it and never answers:
 * the node sees it down and keeps sending, as to a peer that restarts, so
 * every byte the node would send a live peer is counted. Two phases per
 * run, both short HTTP requests with `Connection: close` (one new
 * connection each): wrk at full speed (-t2 -c32), the connection rate; and
 * wrk paced at about `rate` connections a second (-c64, a Lua delay), the
 * LB's CPU and the sync bytes per connection at that rate.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { Bench, lbCpu, sleep, startVariant, type HttpRun, type Lb } from './net.js';
import { LineChild } from './line-child.js';
import { formatSpread, ratioOf, spread, type Spread } from './net-stats.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = existsSync(join(here, '..', 'package.json'))
  ? join(here, '..')
  : join(here, '..', '..');
const sinkScript = join(repo, 'bench', 'fixtures', 'udp-sink.mjs');

const LB_ADDRESS = '10.88.1.1';
const PEER_ADDRESS = '10.88.1.2';
const SYNC_PORT = 8848;
/** The peer's LIP prefix: outside every round's LIPs (10.88.4.x). */
const PEER_LIP_PREFIX = '10.88.6.0/28';
/** UDP and IPv4 headers of each datagram, counted with its payload as bytes on the wire. */
const DATAGRAM_OVERHEAD = 28;
/** Connections kept in flight by the paced phase. */
const PACED_CONNECTIONS = 64;

export interface SyncBenchOptions {
  seconds: number;
  rounds: number;
  /** Connections a second the paced phase asks for. */
  rate: number;
  log: (line: string) => void;
}

export type SyncMode = 'off' | 'on';

/** One wrk phase of one run. */
export interface SyncPhase {
  connections: number;
  connectionsPerSecond: number;
  errors: number;
  p99Ms: number;
  /** The LB's CPU (process and TUN NAPI threads) per connection, µs. */
  lbUsPerConnection: number;
  /** Sync datagrams' bytes on the wire (payload + UDP/IPv4 headers) per connection; 0 with sync off. */
  syncBytesPerConnection: number;
  syncDatagramsPerConnection: number;
}

export interface SyncRun {
  mode: SyncMode;
  round: number;
  max: SyncPhase | null;
  paced: SyncPhase | null;
  notes: string[];
}

export interface SyncModeSummary {
  mode: SyncMode;
  maxConnectionsPerSecond: Spread | null;
  maxLbUsPerConnection: Spread | null;
  pacedConnectionsPerSecond: Spread | null;
  pacedLbUsPerConnection: Spread | null;
  syncBytesPerConnection: Spread | null;
  syncDatagramsPerConnection: Spread | null;
}

export interface SyncBenchResult {
  seconds: number;
  rounds: number;
  rate: number;
  modes: SyncModeSummary[];
  /** Connection rate with sync on ÷ off (medians), and the target. */
  connectionRate: { ratio: number | null; target: string; met: boolean | null };
  /** Each round's on ÷ off connection rate (wrk at full speed), in round order. */
  roundRatios: (number | null)[];
  /** What sync adds per connection at the paced rate: CPU µs (median on − median off) and bytes. */
  perConnection: { cpuUs: number | null; bytes: number | null };
  runs: SyncRun[];
  runSeconds: number;
}

function syncBlock(keyFile: string): string {
  return [
    'sync {',
    '    node_id 1',
    `    listen ${LB_ADDRESS} ${SYNC_PORT}`,
    `    key_file ${keyFile}`,
    `    peer ${PEER_ADDRESS} node_id 2 lip_prefix ${PEER_LIP_PREFIX}`,
    '}',
  ].join('\n');
}

/** The sink's totals, asked for on its stdin and read from its next line. */
class Sink {
  private readonly lines: LineChild;

  constructor(private readonly child: ChildProcess) {
    this.lines = new LineChild(child, 'sync sink');
  }

  ready(): Promise<void> {
    return this.lines.listening();
  }

  totals(): Promise<{ datagrams: number; bytes: number }> {
    return this.lines.ask();
  }

  stop(): void {
    this.child.stdin!.end();
    this.child.kill('SIGTERM');
  }
}

async function phase(
  lb: Lb,
  sink: Sink | undefined,
  run: () => Promise<HttpRun>,
): Promise<SyncPhase> {
  const s0 = sink ? await sink.totals() : { datagrams: 0, bytes: 0 };
  const p0 = lbCpu(lb.pid);
  const http = await run();
  const p1 = lbCpu(lb.pid);
  // Let the last flush (every 10 ms) and any removal reach the sink.
  if (sink) await sleep(300);
  const s1 = sink ? await sink.totals() : { datagrams: 0, bytes: 0 };
  const n = Math.max(1, http.connections);
  const datagrams = s1.datagrams - s0.datagrams;
  return {
    connections: http.connections,
    connectionsPerSecond: http.connectionsPerSecond,
    errors: http.errors,
    p99Ms: http.p99Ms,
    lbUsPerConnection: ((p1 - p0) / n) * 1e6,
    syncBytesPerConnection: (s1.bytes - s0.bytes + datagrams * DATAGRAM_OVERHEAD) / n,
    syncDatagramsPerConnection: datagrams / n,
  };
}

async function measureSync(
  b: Bench,
  mode: SyncMode,
  round: number,
  rate: number,
): Promise<SyncRun> {
  const r: SyncRun = { mode, round, max: null, paced: null, notes: [] };
  let sink: Sink | undefined;
  let lb: Lb | undefined;
  try {
    let extra = '';
    if (mode === 'on') {
      const keyFile = join(b.dir, 'sync.key');
      writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
      extra = syncBlock(keyFile);
      const child = b.lab.spawn(
        'c',
        process.execPath,
        [sinkScript, PEER_ADDRESS, String(SYNC_PORT)],
        {
          stdio: ['pipe', 'pipe', 'pipe'],
        },
      );
      sink = new Sink(child);
      await sink.ready();
    }
    // Off and on take different LIPs (the net bench's rounds 2k and 2k+1), so neither meets the other's TIME_WAIT on the RS.
    lb = await startVariant(b, 'fullnat', 2 * round + (mode === 'on' ? 1 : 0), extra);
    await b.run('c', 'curl', ['-s', '-m', '3', '-o', '/dev/null', lb.httpUrl], 5000);
    const l = lb;
    r.max = await phase(l, sink, () => b.wrk(l.httpUrl, 2, 32, b.o.seconds));
    b.o.log(
      `  sync ${mode} max: ${r.max.connectionsPerSecond.toFixed(0)} conn/s, ${r.max.lbUsPerConnection.toFixed(1)} µs/conn, ${r.max.syncBytesPerConnection.toFixed(1)} sync B/conn`,
    );
    const delayMs = (PACED_CONNECTIONS * 1000) / rate;
    const script = join(b.dir, 'pace.lua');
    writeFileSync(script, `function delay()\n  return ${delayMs.toFixed(3)}\nend\n`);
    r.paced = await phase(l, sink, () =>
      b.wrk(l.httpUrl, 2, PACED_CONNECTIONS, b.o.seconds, ['-s', script]),
    );
    b.o.log(
      `  sync ${mode} paced: ${r.paced.connectionsPerSecond.toFixed(0)} conn/s, ${r.paced.lbUsPerConnection.toFixed(1)} µs/conn, ${r.paced.syncBytesPerConnection.toFixed(1)} sync B/conn`,
    );
    if (r.max.errors + r.paced.errors > 0)
      r.notes.push(`wrk counted ${r.max.errors + r.paced.errors} errors`);
  } catch (e) {
    r.notes.push((e as Error).message.split('\n')[0]!);
    b.o.log(`  sync ${mode} failed: ${(e as Error).message}`);
  } finally {
    await lb?.stop();
    sink?.stop();
  }
  return r;
}

const spreadOf = (xs: (number | undefined)[]): Spread | null => spread(xs);

function summariseMode(mode: SyncMode, runs: SyncRun[]): SyncModeSummary {
  const mine = runs.filter((r) => r.mode === mode);
  return {
    mode,
    maxConnectionsPerSecond: spreadOf(mine.map((r) => r.max?.connectionsPerSecond)),
    maxLbUsPerConnection: spreadOf(mine.map((r) => r.max?.lbUsPerConnection)),
    pacedConnectionsPerSecond: spreadOf(mine.map((r) => r.paced?.connectionsPerSecond)),
    pacedLbUsPerConnection: spreadOf(mine.map((r) => r.paced?.lbUsPerConnection)),
    syncBytesPerConnection: spreadOf(mine.map((r) => r.paced?.syncBytesPerConnection)),
    syncDatagramsPerConnection: spreadOf(mine.map((r) => r.paced?.syncDatagramsPerConnection)),
  };
}

export async function runSyncBench(o: SyncBenchOptions): Promise<SyncBenchResult> {
  if (!(o.rounds >= 1 && o.rounds <= 30)) throw new Error('--rounds must be 1..30 for sync');
  const started = Date.now();
  const b = new Bench({ seconds: o.seconds, rounds: o.rounds, variants: ['fullnat'], log: o.log });
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupted = true;
    o.log(`sync: ${sig}, tearing down the namespaces`);
    void b.destroy().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const runs: SyncRun[] = [];
  try {
    b.build();
    await b.startServers();
    for (let round = 0; round < o.rounds && !b.closed; round++) {
      // Odd rounds run on before off, so neither mode always runs second (warmer caches, a busier RS).
      const order = round % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const);
      for (const mode of order) {
        if (b.closed) break;
        if (runs.length > 0) b.buildLb();
        o.log(`sync: round ${round + 1}/${o.rounds}: sync ${mode}`);
        runs.push(await measureSync(b, mode, round, o.rate));
      }
    }
  } finally {
    await b.destroy();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (interrupted) await new Promise<never>(() => {});
  const off = summariseMode('off', runs);
  const on = summariseMode('on', runs);
  const ratio = ratioOf(
    on.maxConnectionsPerSecond?.median ?? null,
    off.maxConnectionsPerSecond?.median ?? null,
  );
  const cpuOn = on.pacedLbUsPerConnection?.median;
  const cpuOff = off.pacedLbUsPerConnection?.median;
  return {
    seconds: o.seconds,
    rounds: o.rounds,
    rate: o.rate,
    modes: [off, on],
    connectionRate: { ratio, target: '≥ 0.9× sync off', met: ratio == null ? null : ratio >= 0.9 },
    roundRatios: Array.from({ length: o.rounds }, (_, round) => {
      const rate = (mode: SyncMode): number | null =>
        runs.find((x) => x.round === round && x.mode === mode)?.max?.connectionsPerSecond ?? null;
      return ratioOf(rate('on'), rate('off'));
    }),
    perConnection: {
      cpuUs: cpuOn !== undefined && cpuOff !== undefined ? cpuOn - cpuOff : null,
      bytes: on.syncBytesPerConnection?.median ?? null,
    },
    runs,
    runSeconds: (Date.now() - started) / 1000,
  };
}

/** Markdown: each figure as `median (min–max)` over the rounds. */
export function formatSyncTable(r: SyncBenchResult): string {
  const f = (s: Spread | null, digits: number): string => formatSpread(s, digits, r.rounds);
  const lines = [
    `${r.rounds} interleaved rounds (off then on, on then off, …), each run in a fresh LB namespace; every cell: median (min–max).`,
    '',
    '| sync | new conn/s (wrk -c32) | LB CPU µs/conn (-c32) | conn/s paced (-c64) | LB CPU µs/conn (paced) | sync bytes/conn on the wire | sync datagrams/conn |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const m of r.modes) {
    lines.push(
      `| ${m.mode} | ${f(m.maxConnectionsPerSecond, 0)} | ${f(m.maxLbUsPerConnection, 1)} | ${f(m.pacedConnectionsPerSecond, 0)} | ${f(m.pacedLbUsPerConnection, 1)} | ${m.mode === 'on' ? f(m.syncBytesPerConnection, 1) : '–'} | ${m.mode === 'on' ? f(m.syncDatagramsPerConnection, 3) : '–'} |`,
    );
  }
  const ratio = r.connectionRate.ratio;
  lines.push(
    '',
    `Round by round, on ÷ off: ${r.roundRatios.map((x) => (x == null ? '–' : x.toFixed(2))).join(', ')}.`,
    '',
    `Connection rate with sync on: ${ratio == null ? '–' : `${ratio.toFixed(2)}×`} of sync off (target ${r.connectionRate.target}: ${r.connectionRate.met == null ? 'not measured' : r.connectionRate.met ? 'met' : 'missed'}); sync adds ${r.perConnection.cpuUs == null ? '–' : r.perConnection.cpuUs.toFixed(1)} µs of LB CPU and ${r.perConnection.bytes == null ? '–' : r.perConnection.bytes.toFixed(0)} bytes on the wire per connection at the paced rate.`,
  );
  return lines.join('\n');
}
