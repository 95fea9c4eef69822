import type { SchedTarget, Scheduler } from './scheduler.js';

function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/**
 * Weighted round robin, IPVS-style interleaving (not nginx's smooth WRR): a
 * current weight `cw` steps down from the maximum weight by gcd(weights) each
 * time the cursor wraps, and a target is picked when its weight >= cw. With
 * weights {a:4, b:3, c:2} one cycle is a a b a b c a b c. This variant was
 * chosen because a pick is amortised O(1) with no per-target state, where
 * smooth WRR touches every target on every pick.
 *
 * Weights are snapshotted at rebuild, so weight changes take effect then. A
 * target whose live weight has dropped to 0 since is still skipped, so
 * quiescing is honoured immediately.
 */
export class WeightedRoundRobinScheduler implements Scheduler {
  readonly name = 'wrr' as const;
  private w = new Int32Array(0);
  private n = 0;
  /** gcd of the positive snapshot weights: the step between cw levels. */
  private g = 1;
  /** Largest snapshot weight; 0 means nothing is schedulable. */
  private mw = 0;
  /**
   * Highest cw level worth visiting. Equals mw until the heaviest targets are
   * quiesced without a rebuild; lowering it then keeps picks O(n) instead of
   * stepping through levels no live target can reach.
   */
  private cap = 0;
  private i = -1;
  private cw = 0;

  rebuild(targets: readonly SchedTarget[]): void {
    const n = targets.length;
    this.w = new Int32Array(n);
    let g = 0;
    let mw = 0;
    for (let j = 0; j < n; j++) {
      const tw = targets[j]!.weight;
      // Fractional positive weights still count as schedulable.
      const w = tw > 0 ? Math.max(1, Math.floor(tw)) : 0;
      this.w[j] = w;
      if (w > 0) {
        g = gcd(w, g);
        if (w > mw) mw = w;
      }
    }
    this.n = n;
    this.g = g > 0 ? g : 1;
    this.mw = mw;
    this.cap = mw;
    // Start just before the head with cw exhausted, so the first step wraps
    // to index 0 at the top level and a cycle begins right after a rebuild.
    this.i = n - 1;
    this.cw = 0;
  }

  pick(targets: readonly SchedTarget[], _clientHash: number): number {
    const n = this.n < targets.length ? this.n : targets.length;
    if (this.mw === 0 || n === 0) return -1;
    const w = this.w;
    for (let pass = 0; pass < 2; pass++) {
      // Once the heaviest live target has weight cap and cw <= cap, it is met
      // within n steps, so n steps without a hit mean the cap is stale.
      for (let k = 0; k < n; k++) {
        let i = this.i + 1;
        if (i >= n) {
          i = 0;
          let cw = this.cw - this.g;
          if (cw <= 0 || cw > this.cap) cw = this.cap;
          this.cw = cw;
        }
        this.i = i;
        if (w[i]! >= this.cw && targets[i]!.weight > 0) return i;
      }
      let cap = 0;
      for (let j = 0; j < n; j++) {
        if (targets[j]!.weight > 0 && w[j]! > cap) cap = w[j]!;
      }
      if (cap === 0) return -1;
      this.cap = cap;
      if (this.cw > cap) this.cw = cap;
    }
    return -1;
  }
}
