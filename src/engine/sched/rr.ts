import type { SchedTarget, Scheduler } from './scheduler.js';

/**
 * Round robin over targets with weight > 0. Weights are read at pick time, so
 * quiescing a target (weight 0) takes effect without a rebuild.
 */
export class RoundRobinScheduler implements Scheduler {
  readonly name = 'rr' as const;
  /** Index of the previous pick; -1 so the first pick after a rebuild is target 0. */
  private last = -1;

  rebuild(_targets: readonly SchedTarget[]): void {
    // Positions are meaningless once the list changes; restart from the head like IPVS.
    this.last = -1;
  }

  pick(targets: readonly SchedTarget[], _clientHash: number): number {
    const n = targets.length;
    // The list may have shrunk without a rebuild; never start past its end.
    let i = this.last < n ? this.last : -1;
    for (let k = 0; k < n; k++) {
      i = i + 1 === n ? 0 : i + 1;
      if (targets[i]!.weight > 0) {
        this.last = i;
        return i;
      }
    }
    return -1;
  }
}
