/**
 * The engine under a mixed load, beside the fast-path figure of engine.ts:
 * there every connection's packets run back to back (always warm in the
 * caches), no timer expires in the timed loop and only the in-place TOA runs.
 * Here ≥ 100k connections are open at once and their packets arrive
 * interleaved in random order; some clients go silent and their entries
 * expire (with RSTs both ways) inside the timed loop, closed ones leave
 * TIME_WAIT the same way; a share of the concluding segments needs its
 * options pruned or the segment split to carry the TOA; a share of the
 * connections goes through a SYNPROXY service (cookie handshake, held
 * packets, replay, translated sequence numbers).
 *
 * As in engine.ts the workload is recorded once against a scratch engine
 * (the LB's ports, ISNs and cookies feed the replies) and replayed into fresh
 * engines with the same secrets and clock, so the timed loop runs the engine
 * alone; the replay is checked to take the same decisions as the recording.
 */
import v8 from 'node:v8';
import { performance } from 'node:perf_hooks';
import { Engine } from '../src/engine/engine.js';
import type { EngineOptions } from '../src/engine/options.js';
import type { Packet } from '../src/engine/packet.js';
import { Ipv4View } from '../src/wire/ipv4.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN, TcpView } from '../src/wire/tcp.js';
import { opt, type TcpOption } from '../src/wire/tcp-options.js';
import { buildSegment } from '../test/support/packets.js';
import { collectGarbage } from './gc.js';
import { spread } from './stats.js';
import { rng } from '../test/support/rng.js';

const VIP = 0xc0000264; // 192.0.2.100
const LIPS = [0x0a0a0301, 0x0a0a0302, 0x0a0a0303, 0x0a0a0304];
const RIPS = [0x0a0a0202, 0x0a0a0203, 0x0a0a0204, 0x0a0a0205];
const SP_RIP = 0x0a0a0210;
const SP_VPORT = 443;

/** The kinds of connection in the mix and their shares. */
export const MIX = {
  /** request, two full-size answer segments, close by the client */
  plain: 0.55,
  /** the concluding ACK carries timestamps and three SACK blocks: no room for the TOA until options are pruned */
  prune: 0.1,
  /** the concluding segment carries 1460 bytes: too big for a 1500 path with the TOA, split in two */
  split: 0.05,
  /** request and answer, then silence: the entry expires inside the loop with a RST each way */
  silent: 0.2,
  /** through the SYNPROXY service: cookie handshake, held ACK and data, replay, translated seqs */
  synproxy: 0.1,
} as const;
type Kind = keyof typeof MIX;
const KINDS = Object.keys(MIX) as Kind[];

export interface MixedBenchResult {
  connections: number;
  packets: number;
  rounds: number;
  /** Engine.process alone, each round's ns/packet; median and spread below. */
  nsPerPacket: number[];
  medianNsPerPacket: number;
  minNsPerPacket: number;
  maxNsPerPacket: number;
  /** Largest number of connections in the table at once during the replay. */
  peakConnections: number;
  /** Packet buffers the pool grew to (given to each timed engine up front). */
  poolPackets: number;
  /** Bytes allocated per packet over every timed round together. */
  allocatedBytesPerPacket: number;
  /** Per kind: connections in the workload. */
  kinds: Record<Kind, number>;
  /** Engine counters of one replay that show the mix ran as meant. */
  counters: Record<string, number>;
}

function engineOptions(conns: number): Partial<EngineOptions> {
  return {
    toaPolicy: 'fullnat',
    maxConnections: conns * 2,
    isnSecret: 42,
    synproxySecret: 4242,
    portRange: { min: 1024, max: 65535 },
  };
}

export function newMixedEngine(conns: number): Engine {
  const e = new Engine(engineOptions(conns));
  e.addService({
    vip: VIP,
    vport: 80,
    scheduler: 'wrr',
    laddrs: LIPS,
    realServers: RIPS.map((addr, i) => ({ addr, port: 80, weight: 1 + (i % 2), mtu: 1500 })),
  });
  e.addService({
    vip: VIP,
    vport: SP_VPORT,
    scheduler: 'rr',
    laddrs: LIPS,
    realServers: [{ addr: SP_RIP, port: SP_VPORT, weight: 1, mtu: 1500 }],
    synProxy: true,
  });
  return e;
}

interface Flow {
  kind: Kind;
  cip: number;
  cport: number;
  vport: number;
  step: number;
  cisn: number;
  risn: number;
  /** Learnt from the engine's outputs. */
  rip: number;
  lip: number;
  lport: number;
  lbIsn: number;
  /** SYNPROXY: the cookie ISN of the LB's SYN+ACK. */
  cookie: number;
}

/** What the LB sent for one input, as far as the scripts need it. */
interface Seen {
  src: number;
  dst: number;
  sport: number;
  seq: number;
}

const REQUEST = new Uint8Array(300).fill(0x41);
const ANSWER = new Uint8Array(1400).fill(0x42);
const FULL = new Uint8Array(1460).fill(0x43);
const SYN_OPTIONS: TcpOption[] = [
  opt.mss(1460),
  opt.sackPermitted(),
  opt.timestamp(1, 0),
  opt.nop(),
  opt.wscale(7),
];

/**
 * Each kind's script, one entry per packet: 's' a step of the handshake or the close (the
 * next packet follows within 4 s: inside SYN_RECV's and FIN_WAIT's timeouts), 'd' a data
 * step (within 30 s: a connection that idles between request and answer, inside ESTABLISHED's).
 */
const SCRIPTS: Record<Kind, string> = {
  plain: 'sssdddddss',
  prune: 'sssdddddss',
  split: 'sssddddss',
  silent: 'sssdd',
  synproxy: 'ssssdddss',
};
/** Clients start within this much engine time, so most of them are open at once. */
const START_SPREAD_MS = 10_000;

export interface MixedWorkload {
  packets: Uint8Array[];
  times: Float64Array;
  kinds: Record<Kind, number>;
  /** Outputs per input in the recording: the replay must match them. */
  outputs: Uint8Array;
}

export function recordMixed(conns: number, seed = 20261207): MixedWorkload {
  const r = rng(seed);
  const e = newMixedEngine(conns);
  const ip = new Ipv4View();
  const tcp = new TcpView();
  const kinds = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>;
  const flows: Flow[] = [];
  for (let i = 0; i < conns; i++) {
    let x = r();
    let kind: Kind = 'plain';
    for (const k of KINDS) {
      if (x < MIX[k]) {
        kind = k;
        break;
      }
      x -= MIX[k];
    }
    kinds[kind]++;
    flows.push({
      kind,
      cip: (0xcb000000 + 0x100 + i) >>> 0, // 203.0.x.y: one address per client, many ports would do as well
      cport: 10000 + (i % 50000),
      vport: kind === 'synproxy' ? SP_VPORT : 80,
      step: 0,
      cisn: (r() * 0x100000000) >>> 0,
      risn: (r() * 0x100000000) >>> 0,
      rip: 0,
      lip: 0,
      lport: 0,
      lbIsn: 0,
      cookie: 0,
    });
  }
  // Every flow's packets on a timeline: a start, then a gap before each next packet. Sorted by
  // time they interleave at random, a flow's own packets in order.
  const total = flows.reduce((n, f) => n + SCRIPTS[f.kind].length, 0);
  const eventTime = new Float64Array(total);
  const eventFlow = new Int32Array(total);
  let ev = 0;
  for (let i = 0; i < conns; i++) {
    const script = SCRIPTS[flows[i]!.kind];
    let t = r() * START_SPREAD_MS;
    for (let st = 0; st < script.length; st++) {
      if (st > 0) t += r() * (script[st] === 'd' ? 30_000 : 4_000);
      eventTime[ev] = t;
      eventFlow[ev] = i;
      ev++;
    }
  }
  const byTime = Array.from({ length: total }, (_, i) => i).sort(
    (a, b) => eventTime[a]! - eventTime[b]! || a - b,
  );
  const order = byTime.map((i) => eventFlow[i]!);
  const when = byTime.map((i) => eventTime[i]!);
  const packets: Uint8Array[] = [];
  const times = new Float64Array(order.length);
  const outputs = new Uint8Array(order.length);
  const seen: Seen[] = [];
  for (let n = 0; n < order.length; n++) {
    const f = flows[order[n]!]!;
    const now = when[n]!;
    const b = nextPacket(f);
    packets.push(b);
    times[n] = now;
    const p = e.pool.take();
    p.load(b);
    e.tick(now);
    // Timer RSTs come out of tick: not this input's outputs.
    for (let k = 0; k < e.outCount; k++) e.pool.give(e.out[k]!);
    e.clearOutput();
    e.process(p);
    seen.length = 0;
    for (let k = 0; k < e.outCount; k++) {
      const q = e.out[k]!;
      ip.wrap(q.buf, q.start);
      tcp.wrap(q.buf, q.start + ip.headerLength);
      seen.push({ src: ip.src, dst: ip.dst, sport: tcp.srcPort, seq: tcp.seq });
      e.pool.give(q);
    }
    outputs[n] = Math.min(255, e.outCount);
    e.clearOutput();
    learn(f, seen);
    f.step++;
  }
  return { packets, times, kinds, outputs };
}

/** Takes what a flow needs from the LB's answer to its last packet. */
function learn(f: Flow, seen: Seen[]): void {
  // The SYN toward the RS answers the client's SYN, under SYNPROXY its cookie ACK.
  if (f.step !== 0 && !(f.kind === 'synproxy' && f.step === 1)) return;
  for (const s of seen) {
    if (f.kind === 'synproxy' && f.step === 0) {
      if (s.dst === f.cip) f.cookie = s.seq; // the SYN+ACK with the cookie
    } else if (s.dst !== f.cip) {
      // The SYN toward the RS.
      f.rip = s.dst;
      f.lip = s.src;
      f.lport = s.sport;
      f.lbIsn = s.seq;
    }
  }
}

function nextPacket(f: Flow): Uint8Array {
  const c = (
    seq: number,
    ack: number,
    flags: number,
    payload?: Uint8Array,
    options?: TcpOption[],
  ) =>
    buildSegment({
      src: f.cip,
      dst: VIP,
      sport: f.cport,
      dport: f.vport,
      seq: seq >>> 0,
      ack: ack >>> 0,
      flags,
      payload,
      options,
    });
  const rs = (
    seq: number,
    ack: number,
    flags: number,
    payload?: Uint8Array,
    options?: TcpOption[],
  ) =>
    buildSegment({
      src: f.rip,
      dst: f.lip,
      sport: f.vport,
      dport: f.lport,
      seq: seq >>> 0,
      ack: ack >>> 0,
      flags,
      payload,
      options,
    });
  const ci = f.cisn;
  const ri = f.risn;
  const li = f.lbIsn;
  const synAck = (): Uint8Array =>
    rs(ri, li + 1, TCP_SYN | TCP_ACK, undefined, [
      opt.mss(1460),
      opt.nop(),
      opt.nop(),
      opt.sackPermitted(),
      opt.nop(),
      opt.wscale(7),
    ]);
  if (f.kind === 'synproxy') {
    // The client sees the cookie as the server's ISN; the RS's seqs reach it translated.
    const k = f.cookie;
    switch (f.step) {
      case 0:
        return c(ci, 0, TCP_SYN, undefined, SYN_OPTIONS);
      case 1:
        return c(ci + 1, k + 1, TCP_ACK);
      case 2:
        return c(ci + 1, k + 1, TCP_ACK | TCP_PSH, REQUEST);
      case 3:
        return synAck();
      case 4:
        return rs(ri + 1, li + 301, TCP_ACK | TCP_PSH, ANSWER);
      case 5:
        return c(ci + 301, k + 1401, TCP_ACK);
      case 6:
        return c(ci + 301, k + 1401, TCP_ACK | TCP_FIN);
      case 7:
        return rs(ri + 1401, li + 302, TCP_ACK | TCP_FIN);
      default:
        return c(ci + 302, k + 1402, TCP_ACK);
    }
  }
  switch (f.step) {
    case 0:
      return c(ci, 0, TCP_SYN, undefined, SYN_OPTIONS);
    case 1:
      return synAck();
    case 2:
      if (f.kind === 'split') return c(ci + 1, ri + 1, TCP_ACK | TCP_PSH, FULL);
      if (f.kind === 'prune')
        return c(ci + 1, ri + 1, TCP_ACK, undefined, [
          opt.nop(),
          opt.nop(),
          opt.timestamp(2, 1),
          opt.nop(),
          opt.nop(),
          opt.sack([
            [ri + 1, ri + 2],
            [ri + 3, ri + 4],
            [ri + 5, ri + 6],
          ]),
        ]);
      return c(ci + 1, ri + 1, TCP_ACK);
    default:
      break;
  }
  // After the concluding segment: the request (a split flow sent its data already), two answer
  // segments, the client's ACK and FIN, the RS's FIN, the last ACK.
  const sent = f.kind === 'split' ? 1460 : 300;
  switch (f.kind === 'split' ? f.step + 1 : f.step) {
    case 3:
      return c(ci + 1, ri + 1, TCP_ACK | TCP_PSH, REQUEST);
    case 4:
      return rs(ri + 1, li + 1 + sent, TCP_ACK, ANSWER);
    case 5:
      return rs(ri + 1401, li + 1 + sent, TCP_ACK | TCP_PSH, ANSWER);
    case 6:
      return c(ci + 1 + sent, ri + 2801, TCP_ACK);
    case 7:
      return c(ci + 1 + sent, ri + 2801, TCP_ACK | TCP_FIN);
    case 8:
      return rs(ri + 2801, li + 2 + sent, TCP_ACK | TCP_FIN);
    default:
      return c(ci + 2 + sent, ri + 2802, TCP_ACK);
  }
}

/**
 * Replays the workload into `e`, timing Engine.process (and the timers' tick) alone:
 * packets are copied into pool buffers a chunk at a time outside the timed part.
 * Returns seconds, and throws if the replay took other decisions than the recording.
 */
function replayTimed(
  w: MixedWorkload,
  e: Engine,
  peak: { n: number },
  counts: Uint8Array,
  staged: Packet[],
  chunk = 256,
): number {
  const pool = e.pool;
  const pk = w.packets;
  const tm = w.times;
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
      let m = e.outCount;
      for (let k = 0; k < m; k++) pool.give(e.out[k]!);
      e.clearOutput();
      e.process(staged[j]!);
      m = e.outCount;
      counts[base + j] = m;
      for (let k = 0; k < m; k++) pool.give(e.out[k]!);
      e.clearOutput();
    }
    spent += performance.now() - t0;
    if (e.table.count > peak.n) peak.n = e.table.count;
  }
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] !== w.outputs[i]) {
      throw new Error(
        `mixed replay diverged from its recording at packet ${i}: ${counts[i]} outputs, recorded ${w.outputs[i]}`,
      );
    }
  }
  return spent / 1000;
}

const SHOWN = [
  'conns_created',
  'conns_expired',
  'conns_expired_established_rst',
  'toa_inserted',
  'toa_pruned',
  'toa_split',
  'synproxy_cookie_valid',
  'synproxy_rs_synack',
  'no_conn_dropped',
] as const;

export function runMixedEngineBench(conns = 100_000, rounds = 5): MixedBenchResult {
  const w = recordMixed(conns);
  const peak = { n: 0 };
  // The replay's own bookkeeping, made once so that no round is charged for it.
  const counts = new Uint8Array(w.packets.length);
  const staged: Packet[] = new Array<Packet>(256);
  // Warm the JIT on a separate engine; it also shows how large the packet pool grows (held
  // SYNPROXY packets, split pieces), and each timed engine starts with a pool that large, as a
  // long-running LB's is: a round is not charged for the pool's one-time growth.
  const warm = newMixedEngine(conns);
  replayTimed(w, warm, peak, counts, staged);
  const poolSize = warm.pool.created;
  const ns: number[] = [];
  let allocated = 0;
  let counters: Record<string, number> = {};
  const profiler = new v8.GCProfiler();
  for (let round = 0; round < rounds; round++) {
    const e = newMixedEngine(conns);
    const grow = [];
    for (let i = 0; i < poolSize; i++) grow.push(e.pool.take());
    for (const p of grow) e.pool.give(p);
    collectGarbage();
    profiler.start();
    const before = v8.getHeapStatistics().used_heap_size;
    const seconds = replayTimed(w, e, peak, counts, staged);
    const after = v8.getHeapStatistics().used_heap_size;
    const gc = profiler.stop();
    let collected = 0;
    for (const s of gc.statistics) {
      collected += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize;
    }
    allocated += Math.max(0, after - before + collected);
    ns.push((seconds * 1e9) / w.packets.length);
    counters = Object.fromEntries(SHOWN.map((name) => [name, e.counter(name)]));
  }
  const figures = spread(ns)!;
  return {
    connections: conns,
    packets: w.packets.length,
    rounds,
    nsPerPacket: ns,
    medianNsPerPacket: figures.median,
    minNsPerPacket: figures.min,
    maxNsPerPacket: figures.max,
    peakConnections: peak.n,
    poolPackets: poolSize,
    allocatedBytesPerPacket: allocated / (w.packets.length * rounds),
    kinds: w.kinds,
    counters,
  };
}
