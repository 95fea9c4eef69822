import { fmix32, murmur3String } from './hash.js';
import { byKey, type SchedTarget, type Scheduler } from './scheduler.js';

/** The Maglev paper's table size for small deployments; must be prime. */
export const DEFAULT_MH_TABLE_SIZE = 65537;

// Two seeds make murmur3 two independent hash functions of the key, as the
// paper's offset and skip must not be correlated.
const OFFSET_SEED = 0x6d61676c;
const SKIP_SEED = 0x65763032;

/**
 * Per round, the heaviest target takes at most this many turns. Unbounded
 * turns (say weights 65535 and 65534, gcd 1) would let the first target fill
 * the whole table before the second moves; this bound keeps proportions
 * within ~0.2% for the heaviest and still exact for small integer weights.
 */
const MAX_TURNS = 256;

/** Slots probed after a quiesced one before falling back to a target scan. */
const FALLBACK_PROBES = 16;

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016). Each target walks
 * its own permutation of the M table slots (offset + j*skip mod M, M prime so
 * every skip is a full cycle); in turn, targets claim the next unclaimed slot
 * of their permutation until the table is full. Removing a target only frees
 * its slots and shifts a few contested ones, so most clients keep their target.
 *
 * Weights: a target takes weight/gcd turns per round (scaled down when large,
 * see MAX_TURNS), like IPVS mh, so its slot share follows its weight.
 */
export class MaglevScheduler implements Scheduler {
  readonly name = 'mh' as const;
  private readonly m: number;
  private readonly table: Int32Array;
  private live = 0;

  constructor(tableSize = DEFAULT_MH_TABLE_SIZE) {
    if (!isPrime(tableSize) || tableSize > 1 << 26) {
      throw new Error(`mh: table size must be a prime below 2^26, got ${tableSize}`);
    }
    this.m = tableSize;
    this.table = new Int32Array(tableSize).fill(-1);
  }

  rebuild(targets: readonly SchedTarget[]): void {
    const m = this.m;
    const table = this.table;
    table.fill(-1);

    const idx: number[] = [];
    let g = 0;
    let maxW = 0;
    for (let i = 0; i < targets.length; i++) {
      const tw = targets[i]!.weight;
      if (!(tw > 0)) continue;
      const w = Math.max(1, Math.floor(tw));
      idx.push(i);
      g = gcd(w, g);
      if (w > maxW) maxW = w;
    }
    // Turn order decides who wins a contested slot. Taking turns by key, not
    // by list position, makes the table a function of the set of (key,
    // weight) alone: every fleet node with the same real servers builds the
    // same table, whatever order its config or its ctl commands added them in.
    idx.sort((a, b) => byKey(targets[a]!, targets[b]!));
    const n = idx.length;
    this.live = n;
    if (n === 0) return;

    const pos = new Int32Array(n);
    const skip = new Int32Array(n);
    const turns = new Int32Array(n);
    const scale = maxW / g > MAX_TURNS ? MAX_TURNS / maxW : 0;
    for (let k = 0; k < n; k++) {
      const t = targets[idx[k]!]!;
      pos[k] = murmur3String(t.key, OFFSET_SEED) % m;
      skip[k] = m === 2 ? 1 : (murmur3String(t.key, SKIP_SEED) % (m - 1)) + 1;
      const w = Math.max(1, Math.floor(t.weight));
      turns[k] = scale > 0 ? Math.max(1, Math.round(w * scale)) : w / g;
    }

    // Walking pos by skip replaces the paper's next[] counter times skip;
    // pos always holds the next candidate slot of that target's permutation.
    let filled = 0;
    for (;;) {
      for (let k = 0; k < n; k++) {
        for (let r = turns[k]!; r > 0; r--) {
          let c = pos[k]!;
          while (table[c]! >= 0) {
            c += skip[k]!;
            if (c >= m) c -= m;
          }
          table[c] = idx[k]!;
          c += skip[k]!;
          pos[k] = c >= m ? c - m : c;
          if (++filled === m) return;
        }
      }
    }
  }

  pick(targets: readonly SchedTarget[], clientHash: number): number {
    const n = targets.length;
    const h = fmix32(clientHash);
    if (this.live > 0) {
      const m = this.m;
      let s = h % m;
      const t = this.table[s]!;
      if (t >= 0 && t < n && targets[t]!.weight > 0) return t;
      // The owner was quiesced after the rebuild. Neighbouring slots belong to
      // pseudo-random targets in proportion to their shares, so probing on
      // spreads its clients fairly and stays stable per client.
      for (let k = 0; k < FALLBACK_PROBES; k++) {
        s = s + 1 === m ? 0 : s + 1;
        const u = this.table[s]!;
        if (u >= 0 && u < n && targets[u]!.weight > 0) return u;
      }
    }
    // Most targets are quiesced (or the table is stale): any live target will
    // do, starting at a client-dependent place to avoid piling on the first.
    if (n === 0) return -1;
    const start = h % n;
    for (let k = 0; k < n; k++) {
      const i = start + k < n ? start + k : start + k - n;
      if (targets[i]!.weight > 0) return i;
    }
    return -1;
  }
}

function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}
