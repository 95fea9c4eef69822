import { overhead } from './lc.js';
import type { SchedTarget, Scheduler } from './scheduler.js';

/**
 * Weighted least connections: minimises overhead/weight over targets with
 * weight > 0; ties go to the first. Ratios are compared by cross-multiplying
 * (oh_i * w_best < oh_best * w_i) so no division and no rounding is involved.
 */
export class WeightedLeastConnectionsScheduler implements Scheduler {
  readonly name = 'wlc' as const;

  rebuild(_targets: readonly SchedTarget[]): void {
    // Stateless: counters and weights are read live on every pick.
  }

  pick(targets: readonly SchedTarget[], _clientHash: number): number {
    let best = -1;
    let bestOh = 0;
    let bestW = 0;
    for (let i = 0; i < targets.length; i++) {
      const t = targets[i]!;
      const w = t.weight;
      if (!(w > 0)) continue;
      const oh = overhead(t);
      if (best < 0 || oh * bestW < bestOh * w) {
        best = i;
        bestOh = oh;
        bestW = w;
      }
    }
    return best;
  }
}
