import type { SchedTarget, Scheduler } from './scheduler.js';

/**
 * IPVS's load estimate: an established connection costs far more than one in
 * TIME_WAIT/SYN_RECV etc., which mostly just hold a table entry.
 */
export function overhead(t: SchedTarget): number {
  // Multiplication rather than `<< 8` so large counters cannot wrap at 2^31.
  return t.activeConns * 256 + t.inactiveConns;
}

/** Least connections: the weight > 0 target with the smallest overhead; ties go to the first. */
export class LeastConnectionsScheduler implements Scheduler {
  readonly name = 'lc' as const;

  rebuild(_targets: readonly SchedTarget[]): void {
    // Stateless: counters and weights are read live on every pick.
  }

  pick(targets: readonly SchedTarget[], _clientHash: number): number {
    let best = -1;
    let bestOh = 0;
    for (let i = 0; i < targets.length; i++) {
      const t = targets[i]!;
      if (!(t.weight > 0)) continue;
      const oh = overhead(t);
      if (best < 0 || oh < bestOh) {
        best = i;
        bestOh = oh;
      }
    }
    return best;
  }
}
