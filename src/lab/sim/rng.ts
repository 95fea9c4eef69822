/**
 * Deterministic randomness for the simulator. Every stream (a client's ISN,
 * an RS's ISNs, a client's port) gets its own generator seeded by mixing the
 * run seed with stable identifiers, so adding a connection never perturbs the
 * numbers drawn by another one.
 */

/** Mixes 32-bit values into one well-spread 32-bit seed (murmur3 finaliser per step). */
export function mix32(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** mulberry32: tiny, fast, good enough for ISNs and payload patterns. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform-enough integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + (this.u32() % (hi - lo + 1));
  }
}
