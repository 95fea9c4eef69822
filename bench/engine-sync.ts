/**
 * Connection sync at a set connection rate (default 10,000 a second), the
 * TUN and the kernel's forwarding left out: the live benchmark
 * (net-sync.ts) cannot offer this machine's LB more than its 5–7k
 * connections a second, so this one feeds an Engine directly. A pacer
 * opens `rate` connections a second for `seconds` (handshake, a request,
 * two response segments) and closes each `lifetimeMs` later (FIN both
 * ways, the last ACK), so every connection outlives a flush and peers hear
 * of it twice, established and ended. With sync on, the engine's journal
 * drains into a real FleetSync on 127.0.0.1 whose peer is a second node in
 * a child process (sync-fleet-node.ts) entering every record into its own
 * engine. Sync off and on run in interleaved rounds (ABBA). Per connection:
 * the sending process's CPU (µs, packet making included, the same in both
 * modes: the difference is what sync adds), the records and bytes it sent,
 * what the peer entered and the peer's CPU.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Engine } from '../src/engine/engine.js';
import { Ipv4View } from '../src/wire/ipv4.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN, TcpView } from '../src/wire/tcp.js';
import { opt } from '../src/wire/tcp-options.js';
import { buildSegment } from '../test/support/packets.js';
import { LineChild } from './line-child.js';
import { ratioOf } from './net-stats.js';
import { spread, type Spread } from './stats.js';
import { SYNC_VIP, benchSyncEngine, startSync } from './sync-fleet-node.js';

const here = dirname(fileURLToPath(import.meta.url));
const peerScript = join(here, 'sync-fleet-node.js');
/** UDP and IPv4 headers of each datagram, counted with its payload as bytes on the wire. */
const DATAGRAM_OVERHEAD = 28;

export interface EngineSyncOptions {
  rate: number;
  seconds: number;
  rounds: number;
  lifetimeMs: number;
  log: (line: string) => void;
}

export type SyncMode = 'off' | 'on';

export interface EngineSyncRun {
  mode: SyncMode;
  round: number;
  connections: number;
  /** Connections opened a second, as reached (the pacer's target unless the process fell behind). */
  connectionsPerSecond: number;
  cpuUsPerConnection: number;
  recordsPerConnection: number;
  bytesPerConnection: number;
  /** Records the peer entered per connection. */
  peerAppliedPerConnection: number;
  peerCpuUsPerConnection: number;
  /** Entries the peer held for this node at the end (every connection, if each reached it). */
  peerHeld: number;
  notes: string[];
}

export interface EngineSyncResult {
  rate: number;
  seconds: number;
  rounds: number;
  lifetimeMs: number;
  off: { cpuUsPerConnection: Spread | null; connectionsPerSecond: Spread | null };
  on: {
    cpuUsPerConnection: Spread | null;
    connectionsPerSecond: Spread | null;
    recordsPerConnection: Spread | null;
    bytesPerConnection: Spread | null;
    peerAppliedPerConnection: Spread | null;
    peerCpuUsPerConnection: Spread | null;
  };
  /** Median CPU on − median off, µs per connection. */
  addedCpuUs: number | null;
  /** CPU per connection on ÷ off (medians). */
  cpuRatio: number | null;
  runs: EngineSyncRun[];
}

/** A client and a real server around the engine, one connection at a time. */
export class Conversations {
  private readonly ip = new Ipv4View();
  private readonly tcp = new TcpView();
  private readonly request = new Uint8Array(300).fill(0x41);
  private readonly response = new Uint8Array(1400).fill(0x42);
  // What closing a connection needs, by its number modulo the slots.
  private readonly cip: Uint32Array;
  private readonly cport: Uint16Array;
  private readonly cisn: Uint32Array;
  private readonly risn: Uint32Array;
  private readonly rip: Uint32Array;
  private readonly lip: Uint32Array;
  private readonly lport: Uint16Array;
  private readonly lbIsn: Uint32Array;

  constructor(
    private readonly e: Engine,
    private readonly slots: number,
  ) {
    this.cip = new Uint32Array(slots);
    this.cport = new Uint16Array(slots);
    this.cisn = new Uint32Array(slots);
    this.risn = new Uint32Array(slots);
    this.rip = new Uint32Array(slots);
    this.lip = new Uint32Array(slots);
    this.lport = new Uint16Array(slots);
    this.lbIsn = new Uint32Array(slots);
  }

  /** Feeds b; the first output's addresses, source port and sequence are read back. */
  private send(b: Uint8Array): void {
    const e = this.e;
    const p = e.pool.take();
    p.load(b);
    e.process(p);
    if (e.outCount > 0) {
      const q = e.out[0]!;
      this.ip.wrap(q.buf, q.start);
      this.tcp.wrap(q.buf, q.start + this.ip.headerLength);
    }
    for (let i = 0; i < e.outCount; i++) e.pool.give(e.out[i]!);
    e.clearOutput();
  }

  private client(k: number, seq: number, ack: number, flags: number, payload?: Uint8Array): void {
    const s = k % this.slots;
    this.send(
      buildSegment({
        src: this.cip[s]!,
        dst: SYNC_VIP,
        sport: this.cport[s]!,
        dport: 80,
        seq,
        ack,
        flags,
        payload,
      }),
    );
  }

  private server(k: number, seq: number, ack: number, flags: number, payload?: Uint8Array): void {
    const s = k % this.slots;
    this.send(
      buildSegment({
        src: this.rip[s]!,
        dst: this.lip[s]!,
        sport: 80,
        dport: this.lport[s]!,
        seq,
        ack,
        flags,
        payload,
      }),
    );
  }

  open(k: number): void {
    const s = k % this.slots;
    // 65,000 clients (203.0.x.y) × ports from 10000: no tuple repeats within a run.
    this.cip[s] = (0xcb000000 + (k % 65_000) + 1) >>> 0;
    this.cport[s] = 10_000 + Math.floor(k / 65_000);
    this.cisn[s] = (k * 2654435761) >>> 0;
    this.risn[s] = (k * 40503 + 7) >>> 0;
    const cisn = this.cisn[s];
    const risn = this.risn[s];
    const p = this.e.pool.take();
    p.load(
      buildSegment({
        src: this.cip[s],
        dst: SYNC_VIP,
        sport: this.cport[s],
        dport: 80,
        seq: cisn,
        ack: 0,
        flags: TCP_SYN,
        options: [
          opt.mss(1460),
          opt.sackPermitted(),
          opt.timestamp(k, 0),
          opt.nop(),
          opt.wscale(7),
        ],
      }),
    );
    this.e.process(p);
    const e = this.e;
    if (e.outCount === 0) throw new Error(`connection ${k}: the SYN was not forwarded`);
    const q = e.out[0]!;
    this.ip.wrap(q.buf, q.start);
    this.tcp.wrap(q.buf, q.start + this.ip.headerLength);
    this.rip[s] = this.ip.dst;
    this.lip[s] = this.ip.src;
    this.lport[s] = this.tcp.srcPort;
    this.lbIsn[s] = this.tcp.seq;
    for (let i = 0; i < e.outCount; i++) e.pool.give(e.out[i]!);
    e.clearOutput();
    const lb = this.lbIsn[s];
    this.server(k, risn, lb + 1, TCP_SYN | TCP_ACK);
    this.client(k, cisn + 1, risn + 1, TCP_ACK);
    this.client(k, cisn + 1, risn + 1, TCP_ACK | TCP_PSH, this.request);
    this.server(k, risn + 1, lb + 301, TCP_ACK, this.response);
    this.server(k, risn + 1401, lb + 301, TCP_ACK | TCP_PSH, this.response);
    this.client(k, cisn + 301, risn + 2801, TCP_ACK);
  }

  close(k: number): void {
    const s = k % this.slots;
    const cisn = this.cisn[s]!;
    const risn = this.risn[s]!;
    const lb = this.lbIsn[s]!;
    this.client(k, cisn + 301, risn + 2801, TCP_ACK | TCP_FIN);
    this.server(k, risn + 2801, lb + 302, TCP_ACK | TCP_FIN);
    this.client(k, cisn + 302, risn + 2802, TCP_ACK);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    ports.push(s.address().port);
    await new Promise<void>((r) => s.close(() => r()));
  }
  return ports;
}

interface PeerReport {
  held: number;
  applied: number;
  /** Tables the peer received from this node (its request at its start, answered once this node is up). */
  tablesReceived: number;
  cpuUs: number;
}

/** The peer node in its child process; `report()` asks it for its figures. */
class Peer {
  private constructor(private readonly lines: LineChild) {}

  static async start(ports: number[], key: Uint8Array): Promise<Peer> {
    const child = spawn(
      process.execPath,
      [peerScript, 'peer', String(ports[0]), String(ports[1]), Buffer.from(key).toString('hex')],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const lines = new LineChild(child, 'sync peer');
    await lines.listening();
    return new Peer(lines);
  }

  report(): Promise<PeerReport> {
    return this.lines.ask();
  }

  stop(): void {
    const child = this.lines.child;
    child.stdin!.end();
    setTimeout(() => child.kill('SIGKILL'), 2_000).unref();
  }
}

async function runOnce(
  o: EngineSyncOptions,
  mode: SyncMode,
  round: number,
): Promise<EngineSyncRun> {
  const total = Math.round(o.rate * o.seconds);
  const maxSynced = 400_000;
  const e = benchSyncEngine(1, 2 * maxSynced);
  const run: EngineSyncRun = {
    mode,
    round,
    connections: total,
    connectionsPerSecond: 0,
    cpuUsPerConnection: 0,
    recordsPerConnection: 0,
    bytesPerConnection: 0,
    peerAppliedPerConnection: 0,
    peerCpuUsPerConnection: 0,
    peerHeld: 0,
    notes: [],
  };
  let peer: Peer | undefined;
  let sync: Awaited<ReturnType<typeof startSync>> | undefined;
  try {
    if (mode === 'on') {
      const ports = await freePorts(2);
      const key = randomBytes(32);
      peer = await Peer.start(ports, key);
      sync = await startSync(e, 1, ports, key, maxSynced);
      await sync.ready;
      // The peer asked for this node's table before it was up, and asks again once it hears it:
      // measured from after that answer, so the window holds updates only.
      const deadline = Date.now() + 5_000;
      while ((await peer.report()).tablesReceived < 1) {
        if (Date.now() > deadline)
          throw new Error('the sync peer never received this node’s table');
        await sleep(50);
      }
    }
    const conv = new Conversations(e, Math.ceil((o.rate * o.lifetimeMs) / 1000) + 1024);
    const peer0 = peer ? await peer.report() : undefined;
    const s0 = sync?.counters.toRecord();
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    let opened = 0;
    let closed = 0;
    while (closed < total) {
      const t = performance.now() - start;
      e.tick(t);
      const due = Math.min(total, Math.floor((t * o.rate) / 1000));
      while (opened < due) conv.open(opened++);
      const dueClose = Math.min(opened, Math.floor(((t - o.lifetimeMs) * o.rate) / 1000));
      while (closed < dueClose) conv.close(closed++);
      // The channel's flush, heartbeats and socket run between the pacer's steps, as beside the TUN loop.
      await sleep(1);
    }
    const openSeconds = (performance.now() - start - o.lifetimeMs) / 1000;
    // The last flush (every 10 ms) and the peer's reading.
    await sleep(300);
    const cpu = process.cpuUsage(cpu0);
    run.connectionsPerSecond = total / openSeconds;
    run.cpuUsPerConnection = (cpu.user + cpu.system) / total;
    if (sync && s0 && peer && peer0) {
      const s1 = sync.counters.toRecord();
      const d = (k: string): number => (s1[k] ?? 0) - (s0[k] ?? 0);
      run.recordsPerConnection = d('records_out') / total;
      run.bytesPerConnection = (d('bytes_out') + DATAGRAM_OVERHEAD * d('messages_out')) / total;
      const p1 = await peer.report();
      run.peerAppliedPerConnection = (p1.applied - peer0.applied) / total;
      run.peerCpuUsPerConnection = (p1.cpuUs - peer0.cpuUs) / total;
      if (d('table_requests_in') > 0)
        run.notes.push(
          `the peer asked for this node's table ${d('table_requests_in')} times during the run`,
        );
      if (d('send_errors') > 0) run.notes.push(`${d('send_errors')} send errors`);
      // Every connection is still in TIME_WAIT (7 s) at the end: the peer holds each one it heard of.
      run.peerHeld = p1.held;
      if (p1.held < total) run.notes.push(`the peer holds ${p1.held} of the ${total} connections`);
    }
  } finally {
    await sync?.close();
    peer?.stop();
  }
  return run;
}

export async function runEngineSyncBench(o: EngineSyncOptions): Promise<EngineSyncResult> {
  if (!(o.rounds >= 1 && o.rounds <= 30)) throw new Error('--rounds must be 1..30 for sync-rate');
  const runs: EngineSyncRun[] = [];
  for (let round = 0; round < o.rounds; round++) {
    const order = round % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const);
    for (const mode of order) {
      const r = await runOnce(o, mode, round);
      runs.push(r);
      for (const n of r.notes) o.log(`  sync-rate round ${round + 1} sync ${mode}: ${n}`);
      o.log(
        `  sync-rate round ${round + 1}/${o.rounds} sync ${mode}: ${r.connectionsPerSecond.toFixed(0)} conn/s, ${r.cpuUsPerConnection.toFixed(1)} µs CPU/conn` +
          (mode === 'on'
            ? `, ${r.recordsPerConnection.toFixed(2)} records and ${r.bytesPerConnection.toFixed(1)} B/conn, peer entered ${r.peerAppliedPerConnection.toFixed(2)}/conn at ${r.peerCpuUsPerConnection.toFixed(1)} µs/conn and holds ${r.peerHeld} of ${r.connections}`
            : ''),
      );
    }
  }
  const of = (mode: SyncMode, f: (r: EngineSyncRun) => number): Spread | null =>
    spread(runs.filter((r) => r.mode === mode).map(f));
  const cpuOff = of('off', (r) => r.cpuUsPerConnection);
  const cpuOn = of('on', (r) => r.cpuUsPerConnection);
  return {
    rate: o.rate,
    seconds: o.seconds,
    rounds: o.rounds,
    lifetimeMs: o.lifetimeMs,
    off: {
      cpuUsPerConnection: cpuOff,
      connectionsPerSecond: of('off', (r) => r.connectionsPerSecond),
    },
    on: {
      cpuUsPerConnection: cpuOn,
      connectionsPerSecond: of('on', (r) => r.connectionsPerSecond),
      recordsPerConnection: of('on', (r) => r.recordsPerConnection),
      bytesPerConnection: of('on', (r) => r.bytesPerConnection),
      peerAppliedPerConnection: of('on', (r) => r.peerAppliedPerConnection),
      peerCpuUsPerConnection: of('on', (r) => r.peerCpuUsPerConnection),
    },
    addedCpuUs: cpuOn && cpuOff ? cpuOn.median - cpuOff.median : null,
    cpuRatio: ratioOf(cpuOn?.median, cpuOff?.median),
    runs,
  };
}

/** Markdown: each figure as `median (min–max)` over the rounds. */
export function formatEngineSyncTable(r: EngineSyncResult): string {
  const f = (s: Spread | null, digits: number): string =>
    s == null
      ? '–'
      : `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
  return [
    `${r.rounds} interleaved rounds (off then on, on then off, …) of ${r.seconds} s at ${r.rate} new connections a second, each connection ${r.lifetimeMs} ms long; the Engine alone (no TUN); every cell: median (min–max).`,
    '',
    '| sync | conn/s reached | CPU µs/conn (sender) | records/conn | bytes/conn on the wire | peer: records entered/conn | peer: CPU µs/conn |',
    '|---|---|---|---|---|---|---|',
    `| off | ${f(r.off.connectionsPerSecond, 0)} | ${f(r.off.cpuUsPerConnection, 1)} | – | – | – | – |`,
    `| on | ${f(r.on.connectionsPerSecond, 0)} | ${f(r.on.cpuUsPerConnection, 1)} | ${f(r.on.recordsPerConnection, 2)} | ${f(r.on.bytesPerConnection, 1)} | ${f(r.on.peerAppliedPerConnection, 2)} | ${f(r.on.peerCpuUsPerConnection, 1)} |`,
    '',
    `Sync adds ${r.addedCpuUs == null ? '–' : r.addedCpuUs.toFixed(1)} µs of the sending node's CPU per connection (on ÷ off ${r.cpuRatio == null ? '–' : `${r.cpuRatio.toFixed(2)}×`}).`,
  ].join('\n');
}
