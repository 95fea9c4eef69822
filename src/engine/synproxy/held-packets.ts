import { TCP_MAX_OPTIONS } from '../../wire/tcp.js';
import { DEFAULT_BUFFER_SIZE, DEFAULT_HEADROOM, type Packet, type PacketPool } from '../packet.js';

/**
 * Client packets held while the RS leg of a SYNPROXY connection opens: a
 * slot per opening connection with room for `perConn` packets, at most
 * `limit` packets in all. Slots are reused; the arrays only grow to the
 * high-water mark of connections opening at once.
 */
export class HeldPackets {
  private readonly pkts: (Packet | null)[] = [];
  private readonly counts: number[] = [];
  private readonly retries: number[] = [];
  private readonly windows: number[] = [];
  private readonly free: number[] = [];
  private slots = 0;
  /** Packets held in all slots. */
  total = 0;

  constructor(
    readonly perConn: number,
    readonly limit: number,
  ) {}

  /** True when no packet more may be held. */
  get full(): boolean {
    return this.total >= this.limit;
  }

  alloc(): number {
    let s = this.free.length > 0 ? this.free.pop()! : -1;
    if (s < 0) {
      s = this.slots++;
      for (let k = 0; k < this.perConn; k++) this.pkts.push(null);
    }
    this.counts[s] = 0;
    this.retries[s] = 0;
    this.windows[s] = 0;
    return s;
  }

  /** Holds p in slot s; false (p not taken) when the slot or the store is full. */
  push(s: number, p: Packet): boolean {
    const n = this.counts[s]!;
    if (n >= this.perConn || this.total >= this.limit) return false;
    this.pkts[s * this.perConn + n] = p;
    this.counts[s] = n + 1;
    this.total++;
    return true;
  }

  count(s: number): number {
    return this.counts[s]!;
  }

  at(s: number, k: number): Packet {
    return this.pkts[s * this.perConn + k]!;
  }

  /** Frees slot s; the caller has taken (or returned to the pool) every packet in it. */
  release(s: number): void {
    const n = this.counts[s]!;
    for (let k = 0; k < n; k++) this.pkts[s * this.perConn + k] = null;
    this.total -= n;
    this.counts[s] = 0;
    this.free.push(s);
  }

  retriesOf(s: number): number {
    return this.retries[s]!;
  }

  setRetries(s: number, n: number): void {
    this.retries[s] = n;
  }

  /** Window the LB announces in its SYN to the RS (the client's, unscaled, clamped). */
  windowOf(s: number): number {
    return this.windows[s]!;
  }

  setWindow(s: number, w: number): void {
    this.windows[s] = w;
  }
}

/** A small packet moves out of a 64 KiB buffer before it is held: holds must not cost 64 KiB each. */
export function compactForHold(pool: PacketPool, p: Packet): Packet {
  if (p.buf.length <= DEFAULT_BUFFER_SIZE) return p;
  if (DEFAULT_HEADROOM + p.length + TCP_MAX_OPTIONS > DEFAULT_BUFFER_SIZE) return p;
  const q = pool.takeSmall();
  q.buf.set(p.buf.subarray(p.start, p.start + p.length), DEFAULT_HEADROOM);
  q.length = p.length;
  q.gsoSize = p.gsoSize;
  q.gsoType = p.gsoType;
  q.csumPartial = p.csumPartial;
  pool.give(p);
  return q;
}
