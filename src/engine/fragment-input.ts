import { get16 } from '../wire/bytes.js';
import { Ipv4Field } from '../wire/ipv4.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import { Fragmenter } from './fragment.js';
import type { Packet } from './packet.js';
import { Reassembler } from './reassembly.js';
import { REASM_DROP_COUNTERS, ReasmCounter, ReasmStatus } from './reassembly-counters.js';

/** Where a reassembled datagram goes: `Engine`, as if it had arrived whole. */
export interface DatagramSink {
  processReassembled(p: Packet): void;
}

/** The engine counters that mirror the reassemblers' drop reasons, in REASM_DROP_COUNTERS order. */
const MIRRORED: readonly number[] = [
  C.reasm_overlap,
  C.reasm_duplicate,
  C.reasm_too_big,
  C.reasm_timeout,
  C.reasm_memory,
  C.reasm_tiny_first,
  C.reasm_malformed,
  C.reasm_no_room,
];

/** IPv4 header: the DF bit of the flags word at offset 6. */
const IPV4_DF = 0x4000;

/**
 * IP fragments addressed to the LB — a VIP (any port: the ports are in the
 * first fragment only) or a LIP — put back together with Linux's rules
 * (reassembly.ts) and handed to the engine as one datagram; whatever the
 * datagram became that is larger than the device MTU (`rs_mtu`) goes out in
 * fragments again (fragment.ts), unless DF forbids it. Fragments for anyone
 * else are dropped and counted, as an LB that is not their destination should.
 *
 * Counting: a fragment is held, dropped (`fragment_dropped`, or
 * `fragment_reasm_dropped` with its `reasm_*` reason), or went into a
 * datagram; the datagram stands for one of its fragments and ends forwarded
 * or dropped like any packet, the others count as `fragments_merged`. So
 * rx_packets == forwarded_packets + the drops + `heldFragments`.
 *
 * The reassemblers (up to 4 MiB each, as ipfrag_high_thresh) are made on
 * the first fragment of their family: an engine that never sees one does
 * not pay for them.
 */
export class FragmentInput {
  private v4: Reassembler | undefined;
  private v6: Reassembler | undefined;
  /** What each reassembler's counters were when last mirrored into the engine's. */
  private readonly seen4 = new Float64Array(ReasmCounter.Count);
  private readonly seen6 = new Float64Array(ReasmCounter.Count);
  private readonly fragmenter: Fragmenter;
  /** The output list while a datagram's packets are re-fragmented. */
  private readonly staged: Packet[] = [];
  /** Identification of the IPv6 fragments the LB makes (IPv4 pieces keep the datagram's). */
  private nextId6 = (Math.random() * 0x100000000) >>> 0;

  constructor(
    private readonly ctx: EngineContext,
    private readonly sink: DatagramSink,
  ) {
    this.fragmenter = new Fragmenter(ctx.pool);
  }

  /** Whether a reassembler exists (a fragment to a VIP or a LIP has come): the timers then run. */
  active = false;

  /** Fragments held in queues, not yet counted anywhere else. */
  get heldFragments(): number {
    return (this.v4?.heldFragments ?? 0) + (this.v6?.heldFragments ?? 0);
  }

  /** Bytes the reassemblers have preallocated (0 before the first fragment). */
  get footprintBytes(): number {
    return (this.v4?.footprintBytes ?? 0) + (this.v6?.footprintBytes ?? 0);
  }

  /** An IPv4 fragment, its header checked by `Engine.process`. */
  receive4(p: Packet): void {
    const ctx = this.ctx;
    const reg = ctx.reg;
    const dst = p.start + Ipv4Field.Dst;
    if (reg.vipSet.getAt(p.buf, dst, -1) < 0 && reg.lipSet.getAt(p.buf, dst, -1) < 0) {
      ctx.drop(p, C.fragment_dropped);
      return;
    }
    if (this.v4 === undefined) {
      this.v4 = new Reassembler({ family: 4 });
      this.active = true;
    }
    this.push(this.v4, this.seen4, p);
  }

  /** An IPv6 packet with a Fragment header, addressed to a VIP or a LIP (`Ipv6Path` checked). */
  receive6(p: Packet): void {
    if (this.v6 === undefined) {
      this.v6 = new Reassembler({ family: 6 });
      this.active = true;
    }
    this.push(this.v6, this.seen6, p);
  }

  /** Runs the reassemblers' timers (a queue dies 30 s / 60 s after its first fragment). */
  expire(now: number): void {
    if (this.v4 !== undefined && this.v4.queueCount > 0) {
      this.v4.expire(now);
      this.mirror(this.v4, this.seen4);
    }
    if (this.v6 !== undefined && this.v6.queueCount > 0) {
      this.v6.expire(now);
      this.mirror(this.v6, this.seen6);
    }
  }

  private push(r: Reassembler, seen: Float64Array, p: Packet): void {
    const ctx = this.ctx;
    ctx.count(C.fragments_received);
    const out = ctx.pool.takeLarge();
    const status = r.push(p.buf, p.start, p.length, ctx.now, out.buf, out.start);
    ctx.pool.give(p);
    this.mirror(r, seen);
    if (status !== ReasmStatus.Complete) {
      ctx.pool.give(out);
      return;
    }
    out.length = r.length;
    const first = ctx.outCount;
    this.sink.processReassembled(out);
    this.refragment(first);
  }

  /**
   * Adds what the reassembler counted since last time to the engine's
   * counters: one push may drop more than its own fragment (an overlap kills
   * its queue, memory pressure evicts old ones).
   */
  private mirror(r: Reassembler, seen: Float64Array): void {
    const ctx = this.ctx;
    const c = r.counters;
    for (let i = 0; i < REASM_DROP_COUNTERS.length; i++) {
      const k = REASM_DROP_COUNTERS[i]!;
      const d = c[k]! - seen[k]!;
      if (d === 0) continue;
      ctx.add(MIRRORED[i]!, d);
      ctx.add(C.fragment_reasm_dropped, d);
      seen[k] = c[k]!;
    }
    const datagrams = c[ReasmCounter.Datagrams]! - seen[ReasmCounter.Datagrams]!;
    const used = c[ReasmCounter.FragmentsReassembled]! - seen[ReasmCounter.FragmentsReassembled]!;
    if (datagrams > 0) {
      ctx.add(C.datagrams_reassembled, datagrams);
      // Each datagram stands for one of its fragments; the rest merged into it.
      ctx.add(C.fragments_merged, used - datagrams);
      seen[ReasmCounter.Datagrams] = c[ReasmCounter.Datagrams]!;
      seen[ReasmCounter.FragmentsReassembled] = c[ReasmCounter.FragmentsReassembled]!;
    }
  }

  /**
   * The packets the datagram became, from `first` on in the output list:
   * those larger than the device MTU (a GSO super-packet excepted, the
   * kernel cuts it) replaced by their fragments. One that may not be
   * fragmented (IPv4 DF) is not sent (`refragment_df_dropped`): its fate was
   * already counted (forwarded, or an echo answered), this is the way out
   * refusing it, so tx_packets drops it rather than a drop counter.
   */
  private refragment(first: number): void {
    const ctx = this.ctx;
    const mtu = ctx.opts.rsMtu;
    let big = false;
    for (let i = first; i < ctx.outCount; i++) {
      const q = ctx.out[i]!;
      if (q.gsoSize === 0 && q.length > mtu) big = true;
    }
    if (!big) return;
    const staged = this.staged;
    let n = 0;
    for (let i = first; i < ctx.outCount; i++) {
      const q = ctx.out[i]!;
      if (q.gsoSize !== 0 || q.length <= mtu) {
        staged[n++] = q;
        continue;
      }
      const b = q.buf;
      const v4 = b[q.start]! >>> 4 === 4;
      if (v4 && (get16(b, q.start + 6) & IPV4_DF) !== 0) {
        ctx.count(C.refragment_df_dropped);
        ctx.add(C.tx_packets, -1);
        ctx.add(C.tx_bytes, -q.length);
        ctx.pool.give(q);
        continue;
      }
      const f = this.fragmenter;
      const pieces = v4
        ? f.fragmentV4(b, q.start, q.length, mtu)
        : f.fragmentV6(b, q.start, q.length, mtu, this.nextId6++ >>> 0);
      ctx.add(C.tx_packets, -1);
      ctx.add(C.tx_bytes, -q.length);
      ctx.pool.give(q);
      if (pieces <= 0) {
        ctx.count(C.refragment_failed);
        continue;
      }
      for (let k = 0; k < pieces; k++) {
        const piece = f.pieces[k]!;
        ctx.add(C.tx_bytes, piece.length);
        staged[n++] = piece;
      }
      ctx.add(C.tx_packets, pieces);
      ctx.add(C.fragments_sent, pieces);
    }
    for (let k = 0; k < n; k++) ctx.out[first + k] = staged[k]!;
    ctx.outCount = first + n;
  }
}
