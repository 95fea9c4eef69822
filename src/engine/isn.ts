import type { ConnTable } from './conn-table.js';
import { fmix32 as mix32 } from './sched/hash.js';

/**
 * Initial sequence numbers for the LB→RS leg: a keyed hash of the 4-tuple
 * plus a 4 µs clock, in the spirit of RFC 6528 / the kernel's
 * secure_tcp_sequence_number. A fresh ISN per leg keeps a quickly reused
 * LIP:lport from landing inside the RS's TIME_WAIT sequence space.
 *
 * The clock is wall-clock time: `originMs` (Unix ms at engine time 0) plus
 * the engine clock. With the same secret, a restarted LB's ISNs for a tuple
 * carry on above its previous run's instead of starting again from the
 * hash alone, where half of them would land below what the RS still holds.
 */

export class IsnGenerator {
  private readonly k0: number;
  private readonly k1: number;
  /** The clock origin in a typed-array cell: a double field read on every SYN could be boxed. */
  private readonly origin = new Float64Array(1);

  constructor(secret: number, originMs = 0) {
    if (!(originMs >= 0 && originMs <= Number.MAX_SAFE_INTEGER / 1000))
      throw new RangeError(`ISN clock origin ${originMs} ms out of range`);
    this.k0 = mix32(secret ^ 0x9e3779b9);
    this.k1 = mix32(secret + 0x7f4a7c15);
    this.origin[0] = originMs;
  }

  /**
   * Sets connection c's LB→RS ISN and seqDelta (LB→RS ISN − client ISN), the client ISN
   * read from b[seqOff] plus `isnAdjust` (-1 when the packet is the client's
   * ACK rather than its SYN, as under SYNPROXY). Works through the table so no
   * 32-bit value is boxed.
   */
  storeSeqDelta(
    t: ConnTable,
    c: number,
    clock: Float64Array,
    b: Uint8Array,
    seqOff: number,
    isnAdjust = 0,
  ): void {
    // mix32 is spelled out here: its u32 result would be boxed on return.
    let h = this.k0 ^ t.lip[c]!;
    for (let round = 0; round < 3; round++) {
      h ^= h >>> 16;
      h = Math.imul(h, 0x85ebca6b);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      h ^= h >>> 16;
      if (round === 0) h ^= t.rip[c]! ^ this.k1;
      else if (round === 1) h ^= (t.lport[c]! << 16) | t.rport[c]!;
    }
    // The clock arrives as a typed-array cell: a fractional ms value passed as an argument would be boxed.
    // ticks stays an exact integer (below 2^53); the u32 stores below take it mod 2^32.
    const ticks = Math.floor((clock[0]! + this.origin[0]!) * 250);
    const clientIsn =
      ((b[seqOff]! << 24) | (b[seqOff + 1]! << 16) | (b[seqOff + 2]! << 8) | b[seqOff + 3]!) +
      isnAdjust;
    t.lbIsn[c] = h + ticks;
    t.seqDelta[c] = (h + ticks - clientIsn) | 0;
  }

  /** `nowMs` is the engine clock; the clock term advances one per 4 µs like RFC 793's. */
  isn(saddr: number, daddr: number, sport: number, dport: number, nowMs: number): number {
    let h = this.k0;
    h = mix32(h ^ saddr);
    h = mix32(h ^ daddr ^ this.k1);
    h = mix32(h ^ ((sport << 16) | dport));
    const clock = Math.floor((nowMs + this.origin[0]!) * 250) >>> 0;
    return (h + clock) >>> 0;
  }
}

/**
 * 30-bit hash of the IPv4 address at b[off] for the hashing schedulers; 30
 * bits keep it a small integer, so passing it on never boxes a number.
 */
export function hashAddrAt(b: Uint8Array, off: number): number {
  let h = (b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h & 0x3fffffff;
}
