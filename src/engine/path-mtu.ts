import { IPV4_MIN_PMTU } from '../wire/icmp.js';

/** What `PathMtu.learn` made of a reported MTU. */
export const enum PmtuVerdict {
  Learned = 0,
  /** At or above what the path already has: an ICMP never raises an MTU. */
  NotLower = 1,
  /** Below the minimum (IPV4_MIN_PMTU): ignored, as a forged error would want it. */
  BelowMinimum = 2,
}

/**
 * The MTU of the LB→RS path per real server: the configured one (`mtu` of the
 * real_server, else `rs_mtu`), lowered by the fragmentation-needed errors the
 * path's routers send to a LIP, and back to the configured one `expiresMs`
 * after the last lowering, as Linux forgets a learned route MTU after
 * `mtu_expires` (600 s) so a path that grew again is used again.
 *
 * The data path reads `of(rs)` once per client packet: two typed-array reads
 * and a compare; the expiry is applied lazily there, so there is no timer.
 */
export class PathMtu {
  /** The MTU in use per RS: the configured one, or a lower learned one. */
  readonly mtu: Uint16Array;
  /** The configured MTU per RS. */
  readonly configured: Uint16Array;
  /** When the learned MTU expires (engine ms); 0 while none is learned. */
  readonly expires: Float64Array;

  constructor(
    capacity: number,
    /** The engine clock cell (EngineContext.clock). */
    private readonly clock: Float64Array,
    public expiresMs: number,
  ) {
    this.mtu = new Uint16Array(capacity);
    this.configured = new Uint16Array(capacity);
    this.expires = new Float64Array(capacity);
  }

  /** The MTU of the path to RS `rs` now. */
  of(rs: number): number {
    const e = this.expires[rs]!;
    if (e !== 0 && this.clock[0]! >= e) {
      this.expires[rs] = 0;
      this.mtu[rs] = this.configured[rs]!;
    }
    return this.mtu[rs]!;
  }

  /** Sets RS `rs`'s configured MTU (add, re-add, reload); a learned lower one stays until it expires. */
  configure(rs: number, mtu: number): void {
    this.configured[rs] = mtu;
    if (this.expires[rs] === 0 || mtu <= this.mtu[rs]!) {
      this.mtu[rs] = mtu;
      this.expires[rs] = 0;
    }
  }

  /** A router on the path to RS `rs` reported `mtu` (a frag-needed's next-hop MTU). */
  learn(rs: number, mtu: number): PmtuVerdict {
    if (mtu < IPV4_MIN_PMTU) return PmtuVerdict.BelowMinimum;
    if (mtu >= this.of(rs)) return PmtuVerdict.NotLower;
    this.mtu[rs] = mtu;
    // At least 1 ms away, so a learned MTU is never mistaken for "none learned" (0).
    this.expires[rs] = Math.max(1, this.clock[0]! + this.expiresMs);
    return PmtuVerdict.Learned;
  }

  /** Whether RS `rs` has a learned MTU in force (for ctl and tests). */
  learned(rs: number): boolean {
    this.of(rs);
    return this.expires[rs] !== 0;
  }
}
