/**
 * Initial sequence numbers for the LB→RS leg: a keyed hash of the 4-tuple
 * plus a 4 µs clock, in the spirit of RFC 6528 / the kernel's
 * secure_tcp_sequence_number. A fresh ISN per leg keeps a quickly reused
 * LIP:lport from landing inside the RS's TIME_WAIT sequence space.
 */

function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class IsnGenerator {
  private readonly k0: number;
  private readonly k1: number;

  constructor(secret: number) {
    this.k0 = mix32(secret ^ 0x9e3779b9);
    this.k1 = mix32(secret + 0x7f4a7c15);
  }

  /** `nowMs` is the engine clock; the clock term advances one per 4 µs like RFC 793's. */
  isn(saddr: number, daddr: number, sport: number, dport: number, nowMs: number): number {
    let h = this.k0;
    h = mix32(h ^ saddr);
    h = mix32(h ^ daddr ^ this.k1);
    h = mix32(h ^ ((sport << 16) | dport));
    const clock = Math.floor(nowMs * 250) >>> 0;
    return (h + clock) >>> 0;
  }
}

/** Cheap 32-bit hash of a client address for the hashing schedulers. */
export function hashAddr(addr: number): number {
  return mix32(addr);
}
