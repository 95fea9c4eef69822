import { fmix32 } from './hash.js';
import { byKey, type SchedTarget, type Scheduler } from './scheduler.js';

export const DEFAULT_SH_BUCKETS = 256;

/**
 * Source hashing: a fixed bucket table, each target owning a share of buckets
 * proportional to its weight; a client lands on table[mix(clientHash) & mask].
 *
 * Shares are apportioned exactly (largest remainder) rather than IPVS's
 * "weight consecutive buckets per turn", which lets one target with a large
 * weight swallow the whole table. Buckets of a target are interleaved with
 * the others' so that the fallback probe after a quiesced bucket spreads its
 * clients over the remaining targets by weight instead of dumping them on one
 * neighbour.
 */
export class SourceHashScheduler implements Scheduler {
  readonly name = 'sh' as const;
  private readonly mask: number;
  private readonly table: Int32Array;
  private live = 0;

  constructor(buckets = DEFAULT_SH_BUCKETS) {
    if (
      !Number.isInteger(buckets) ||
      buckets < 1 ||
      buckets > 1 << 24 ||
      (buckets & (buckets - 1)) !== 0
    ) {
      throw new Error(`sh: bucket count must be a power of two in 1..2^24, got ${buckets}`);
    }
    this.mask = buckets - 1;
    this.table = new Int32Array(buckets).fill(-1);
  }

  rebuild(targets: readonly SchedTarget[]): void {
    const b = this.table.length;
    const idx: number[] = [];
    let total = 0;
    for (let i = 0; i < targets.length; i++) {
      const w = targets[i]!.weight;
      if (w > 0) {
        idx.push(i);
        total += w;
      }
    }
    this.live = idx.length;
    this.table.fill(-1);
    if (idx.length === 0) return;
    // Shares, remainders and the interleaving follow key order, so the table
    // depends on the set of (key, weight) only, not on the order of the list.
    idx.sort((a, b) => byKey(targets[a]!, targets[b]!));

    const counts = apportion(
      idx.map((i) => targets[i]!.weight),
      total,
      b,
    );

    // Smooth weighted round robin over the counts: over exactly b steps it
    // emits each target exactly counts[k] times, well interleaved.
    const cur = new Float64Array(idx.length);
    for (let s = 0; s < b; s++) {
      let best = -1;
      for (let k = 0; k < idx.length; k++) {
        if (counts[k] === 0) continue;
        cur[k]! += counts[k]!;
        if (best < 0 || cur[k]! > cur[best]!) best = k;
      }
      cur[best]! -= b;
      this.table[s] = idx[best]!;
    }
  }

  pick(targets: readonly SchedTarget[], clientHash: number): number {
    const n = targets.length;
    if (this.live > 0) {
      const mask = this.mask;
      const h = fmix32(clientHash);
      // Probing forward keeps a client's fallback stable while its own target
      // is quiesced, and leaves clients of other buckets where they are.
      for (let k = 0; k <= mask; k++) {
        const t = this.table[(h + k) & mask]!;
        if (t >= 0 && t < n && targets[t]!.weight > 0) return t;
      }
    }
    // Table is stale (weights raised or list changed without a rebuild).
    for (let i = 0; i < n; i++) {
      if (targets[i]!.weight > 0) return i;
    }
    return -1;
  }
}

/**
 * Splits `slots` among weights by largest remainder, then makes sure every
 * positive weight owns at least one slot when there are enough slots, so a
 * light target is never silently unreachable.
 */
function apportion(weights: readonly number[], total: number, slots: number): number[] {
  const n = weights.length;
  const counts = new Array<number>(n);
  const rem = new Array<number>(n);
  let given = 0;
  for (let k = 0; k < n; k++) {
    const q = (weights[k]! * slots) / total;
    counts[k] = Math.floor(q);
    rem[k] = q - counts[k]!;
    given += counts[k]!;
  }
  const order = Array.from({ length: n }, (_, k) => k).sort((a, c) => rem[c]! - rem[a]! || a - c);
  for (let r = 0; given < slots; r++, given++) counts[order[r % n]!]!++;

  if (n <= slots) {
    for (let k = 0; k < n; k++) {
      if (counts[k]! > 0) continue;
      let donor = 0;
      for (let j = 1; j < n; j++) if (counts[j]! > counts[donor]!) donor = j;
      counts[donor]!--;
      counts[k]!++;
    }
  }
  return counts;
}
