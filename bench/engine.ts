/**
 * Engine-level benchmark: packets per second through `Engine.process` on one
 * core, for a realistic mix (new connections, data both ways, TOA insertions),
 * and bytes allocated per packet (measured with V8's GC profiler).
 *
 * The workload is recorded once against a scratch engine (the LB's port and
 * ISN choices feed the RS replies), then replayed into a fresh engine with the
 * same secret and clock, so the timed loop runs the engine alone.
 */
import v8 from 'node:v8';
import { performance } from 'node:perf_hooks';
import { Engine } from '../src/engine/engine.js';
import type { Packet } from '../src/engine/packet.js';
import type { EngineOptions } from '../src/engine/options.js';
import { Ipv6Address } from '../src/wire/address.js';
import { Ipv4View } from '../src/wire/ipv4.js';
import { TcpView, TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from '../src/wire/tcp.js';
import { opt } from '../src/wire/tcp-options.js';
import { buildSegment, buildSegment6 } from '../test/support/packets.js';
import { collectGarbage } from './gc.js';
import { median, spread, type Spread } from './stats.js';

const VIP = 0xc0000264; // 192.0.2.100
const LIPS = [0x0a0a0301, 0x0a0a0302];
const RIPS = [0x0a0a0202, 0x0a0a0203, 0x0a0a0204, 0x0a0a0205];
const VIP6 = Ipv6Address.parse('2001:db8::100')!;
const LIPS6 = ['2001:db8:a::1', '2001:db8:a::2'].map((t) => Ipv6Address.parse(t)!);
const RIPS6 = ['2001:db8:b::2', '2001:db8:b::3', '2001:db8:b::4', '2001:db8:b::5'].map((t) =>
  Ipv6Address.parse(t)!,
);

/**
 * The workload's address families: 4 (IPv4 clients and RSs), 6 (IPv6 both
 * legs), 64 (FNAT64: IPv6 clients, IPv4 RSs). The IPv6 ones carry the
 * 20-byte TOA where IPv4 carries the 8-byte one.
 */
export type BenchFamily = 4 | 6 | 64;

export interface EngineBenchResult {
  family: BenchFamily;
  connections: number;
  packets: number;
  rounds: number;
  /** Median seconds of a round with the copy. */
  seconds: number;
  /** Engine.process alone (packets already in pool buffers, as a TUN read leaves them): median of the rounds. */
  packetsPerSecond: number;
  nsPerPacket: number;
  nsPerPacketSpread: Spread;
  /** Including a JavaScript copy of each packet into its pool buffer inside the timed loop: median of the rounds. */
  packetsPerSecondWithCopy: number;
  nsPerPacketWithCopy: number;
  nsPerPacketWithCopySpread: Spread;
  /** Over every timed round together. */
  allocatedBytesPerPacket: number;
  toaInserted: number;
  tableBytesPerConnection: number;
}

function engineOptions(conns: number): Partial<EngineOptions> {
  return { toaPolicy: 'fullnat', maxConnections: conns * 2, isnSecret: 42 };
}

export function newEngine(conns: number, family: BenchFamily = 4): Engine {
  const e = new Engine(engineOptions(conns));
  const rsV6 = family === 6;
  e.addService({
    vip: family === 4 ? VIP : VIP6,
    vport: 80,
    scheduler: 'wrr',
    laddrs: rsV6 ? LIPS6 : LIPS,
    realServers: (rsV6 ? RIPS6 : RIPS).map((addr, i) => ({ addr, port: 80, weight: 1 + (i % 2) })),
  });
  return e;
}

export interface Workload {
  packets: Uint8Array[];
  times: Float64Array;
}

/** The first 16 bytes at o, or the IPv4 address at o as a number. */
type Addr = number | Uint8Array;
type TcpOption = ReturnType<typeof opt.mss>;

/** A TCP segment from src to dst, IPv4 or IPv6 as the addresses are. */
function segment(
  src: Addr,
  dst: Addr,
  sport: number,
  dport: number,
  seq: number,
  ack: number,
  flags: number,
  payload?: Uint8Array,
  options?: TcpOption[],
): Uint8Array {
  const tcp = { sport, dport, seq, ack, flags, payload, options };
  return typeof src === 'number'
    ? buildSegment({ src, dst: dst as number, ...tcp })
    : buildSegment6({ src, dst: dst as Uint8Array, ...tcp });
}

export function record(conns: number, family: BenchFamily = 4): Workload {
  const e = newEngine(conns, family);
  const packets: Uint8Array[] = [];
  const times: number[] = [];
  const ip = new Ipv4View();
  const tcp = new TcpView();
  const request = new Uint8Array(300).fill(0x41);
  const response = new Uint8Array(1400).fill(0x42);
  let now = 0;
  const send = (b: Uint8Array): { src: Addr; sport: number; dst: Addr; seq: number } => {
    packets.push(b);
    times.push(now);
    const p = e.pool.take();
    p.load(b);
    e.tick(now);
    e.process(p);
    const q = e.out[0]!;
    const v6 = q.buf[q.start]! >>> 4 === 6;
    let src: Addr;
    let dst: Addr;
    let hl = 40;
    if (v6) {
      src = q.buf.slice(q.start + 8, q.start + 24);
      dst = q.buf.slice(q.start + 24, q.start + 40);
    } else {
      ip.wrap(q.buf, q.start);
      src = ip.src;
      dst = ip.dst;
      hl = ip.headerLength;
    }
    tcp.wrap(q.buf, q.start + hl);
    const r = { src, sport: tcp.srcPort, dst, seq: tcp.seq };
    for (let i = 0; i < e.outCount; i++) e.pool.give(e.out[i]!);
    e.clearOutput();
    return r;
  };
  const cip6 = VIP6.bytes.slice();
  cip6[2] = 0x0c;
  for (let i = 0; i < conns; i++) {
    now = i * 0.01;
    const cip = (0xcb007100 + (i % 250) + 1) >>> 0; // 203.0.113.x, or 2001:c::x in IPv6
    cip6[15] = (i % 250) + 1;
    const cport = 10000 + Math.floor(i / 250);
    const cisn = (i * 2654435761) >>> 0;
    const csrc: Addr = family === 4 ? cip : cip6;
    const cdst: Addr = family === 4 ? VIP : VIP6.bytes;
    const c = (
      seq: number,
      ack: number,
      flags: number,
      payload?: Uint8Array,
      options?: TcpOption[],
    ): Uint8Array => segment(csrc, cdst, cport, 80, seq, ack, flags, payload, options);
    const syn = send(
      c(cisn, 0, TCP_SYN, undefined, [
        opt.mss(1460),
        opt.sackPermitted(),
        opt.timestamp(i, 0),
        opt.nop(),
        opt.wscale(7),
      ]),
    );
    const rip = syn.dst;
    const lip = syn.src;
    const lport = syn.sport;
    const lbIsn = syn.seq;
    const risn = (i * 40503 + 7) >>> 0;
    const r = (
      seq: number,
      ack: number,
      flags: number,
      payload?: Uint8Array,
      options?: TcpOption[],
    ): Uint8Array => segment(rip, lip, 80, lport, seq, ack, flags, payload, options);
    send(
      r(risn, lbIsn + 1, TCP_SYN | TCP_ACK, undefined, [
        opt.mss(1460),
        opt.nop(),
        opt.nop(),
        opt.sackPermitted(),
        opt.nop(),
        opt.wscale(7),
      ]),
    );
    send(c(cisn + 1, risn + 1, TCP_ACK));
    send(c(cisn + 1, risn + 1, TCP_ACK | TCP_PSH, request));
    send(r(risn + 1, lbIsn + 301, TCP_ACK, response));
    send(r(risn + 1401, lbIsn + 301, TCP_ACK | TCP_PSH, response));
    send(c(cisn + 301, risn + 2801, TCP_ACK));
    send(c(cisn + 301, risn + 2801, TCP_ACK | TCP_FIN));
    send(r(risn + 2801, lbIsn + 302, TCP_ACK | TCP_FIN));
    send(c(cisn + 302, risn + 2802, TCP_ACK));
  }
  return { packets, times: Float64Array.from(times) };
}

export function replay(w: Workload, e: Engine): void {
  const pool = e.pool;
  const pk = w.packets;
  const tm = w.times;
  for (let i = 0; i < pk.length; i++) {
    const p = pool.take();
    p.load(pk[i]!);
    e.tick(tm[i]!);
    e.process(p);
    const n = e.outCount;
    for (let k = 0; k < n; k++) pool.give(e.out[k]!);
    e.clearOutput();
  }
}

/**
 * Times `Engine.process` alone: packets are copied into pool buffers a
 * chunk at a time outside the timed part (in live mode the TUN read puts
 * them there, in the kernel), then processed inside it. Returns seconds.
 */
export function replayProcessOnly(w: Workload, e: Engine, chunk = 256): number {
  const pool = e.pool;
  const pk = w.packets;
  const tm = w.times;
  const staged: Packet[] = [];
  let spent = 0;
  for (let base = 0; base < pk.length; base += chunk) {
    const n = Math.min(chunk, pk.length - base);
    for (let j = 0; j < n; j++) {
      const p = pool.take();
      p.load(pk[base + j]!);
      staged[j] = p;
    }
    const t0 = performance.now();
    for (let j = 0; j < n; j++) {
      e.tick(tm[base + j]!);
      e.process(staged[j]!);
      const m = e.outCount;
      for (let k = 0; k < m; k++) pool.give(e.out[k]!);
      e.clearOutput();
    }
    spent += performance.now() - t0;
  }
  return spent / 1000;
}

export function runEngineBench(
  conns = 100_000,
  rounds = 5,
  family: BenchFamily = 4,
): EngineBenchResult {
  const w = record(conns, family);
  // Warm up the JIT on a separate engine.
  replay(w, newEngine(conns, family));
  const withCopy: number[] = [];
  const alone: number[] = [];
  let allocated = 0;
  let toa = 0;
  let tableBytes = 0;
  for (let r = 0; r < rounds; r++) {
    const e = newEngine(conns, family);
    // Pre-grow the pool so the timed loop never creates packets.
    const held = [];
    for (let i = 0; i < 64; i++) held.push(e.pool.take());
    for (const p of held) e.pool.give(p);
    collectGarbage();
    const profiler = new v8.GCProfiler();
    profiler.start();
    const before = v8.getHeapStatistics().used_heap_size;
    const t0 = performance.now();
    replay(w, e);
    const t1 = performance.now();
    const after = v8.getHeapStatistics().used_heap_size;
    const gc = profiler.stop();
    let collected = 0;
    for (const s of gc.statistics) {
      collected += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize;
    }
    withCopy.push((t1 - t0) / 1000);
    allocated += Math.max(0, after - before + collected);
    toa = e.counter('toa_inserted');
    tableBytes = e.table.memoryBytes / e.table.capacity;
  }
  // The same workload on fresh engines, timing Engine.process alone; pools pre-grown for the staged chunks.
  for (let r = 0; r < rounds; r++) {
    const e = newEngine(conns, family);
    const staged = [];
    for (let i = 0; i < 512; i++) staged.push(e.pool.take());
    for (const p of staged) e.pool.give(p);
    collectGarbage();
    alone.push(replayProcessOnly(w, e));
  }
  const packets = w.packets.length;
  const ns = (seconds: number): number => (seconds * 1e9) / packets;
  const aloneNs = spread(alone.map(ns))!;
  const copyNs = spread(withCopy.map(ns))!;
  return {
    family,
    connections: conns,
    packets,
    rounds,
    seconds: median(withCopy),
    packetsPerSecond: 1e9 / aloneNs.median,
    nsPerPacket: aloneNs.median,
    nsPerPacketSpread: aloneNs,
    packetsPerSecondWithCopy: 1e9 / copyNs.median,
    nsPerPacketWithCopy: copyNs.median,
    nsPerPacketWithCopySpread: copyNs,
    allocatedBytesPerPacket: allocated / (packets * rounds),
    toaInserted: toa,
    tableBytesPerConnection: tableBytes,
  };
}

export interface FamilyComparison {
  connections: number;
  rounds: number;
  /** Engine.process alone, ns/packet per family: median, min, max of the rounds. */
  ns: Record<BenchFamily, Spread>;
  /** Per round, the family's packet rate ÷ IPv4's in the same round: median, min, max. */
  rateVsIpv4: { 6: Spread; 64: Spread };
}

/**
 * IPv4, IPv6 and FNAT64 side by side: the three workloads recorded once,
 * then replayed in interleaved rounds (a fresh engine per workload per
 * round, the order rotated each round, `Engine.process` alone timed), and
 * each round's IPv6 and FNAT64 rates divided by that round's IPv4 rate, so
 * a machine that slows down for a while slows all three alike.
 */
export function compareFamilies(conns = 30_000, rounds = 15): FamilyComparison {
  const families: BenchFamily[] = [4, 6, 64];
  const work = new Map<BenchFamily, Workload>();
  for (const f of families) {
    const w = record(conns, f);
    // Warm up the JIT on each family's path.
    replay(w, newEngine(conns, f));
    replay(w, newEngine(conns, f));
    work.set(f, w);
  }
  const ns: Record<BenchFamily, number[]> = { 4: [], 6: [], 64: [] };
  const r6: number[] = [];
  const r64: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const round = new Map<BenchFamily, number>();
    for (let k = 0; k < families.length; k++) {
      const f = families[(r + k) % families.length]!;
      const w = work.get(f)!;
      const e = newEngine(conns, f);
      const staged = [];
      for (let i = 0; i < 512; i++) staged.push(e.pool.take());
      for (const p of staged) e.pool.give(p);
      collectGarbage();
      const perPacket = (replayProcessOnly(w, e) * 1e9) / w.packets.length;
      round.set(f, perPacket);
      ns[f].push(perPacket);
    }
    r6.push(round.get(4)! / round.get(6)!);
    r64.push(round.get(4)! / round.get(64)!);
  }
  return {
    connections: conns,
    rounds,
    ns: { 4: spread(ns[4])!, 6: spread(ns[6])!, 64: spread(ns[64])! },
    rateVsIpv4: { 6: spread(r6)!, 64: spread(r64)! },
  };
}
