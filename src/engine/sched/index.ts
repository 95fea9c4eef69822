import { LeastConnectionsScheduler } from './lc.js';
import { MaglevScheduler } from './mh.js';
import { RoundRobinScheduler } from './rr.js';
import { SCHEDULER_NAMES, type Scheduler, type SchedulerName } from './scheduler.js';
import { SourceHashScheduler } from './sh.js';
import { WeightedLeastConnectionsScheduler } from './wlc.js';
import { WeightedRoundRobinScheduler } from './wrr.js';

export type { SchedTarget, Scheduler, SchedulerName } from './scheduler.js';
export { SCHEDULER_NAMES } from './scheduler.js';

export interface SchedulerOptions {
  /** sh: bucket count, a power of two (default 256). */
  shBuckets?: number;
  /** mh: lookup table size, a prime (default 65537). */
  mhTableSize?: number;
}

/**
 * Builds a scheduler by name. The name usually comes from configuration typed
 * as a plain string, hence the runtime check despite the SchedulerName type.
 */
export function createScheduler(name: SchedulerName, opts: SchedulerOptions = {}): Scheduler {
  switch (name) {
    case 'rr':
      return new RoundRobinScheduler();
    case 'wrr':
      return new WeightedRoundRobinScheduler();
    case 'lc':
      return new LeastConnectionsScheduler();
    case 'wlc':
      return new WeightedLeastConnectionsScheduler();
    case 'sh':
      return new SourceHashScheduler(opts.shBuckets);
    case 'mh':
      return new MaglevScheduler(opts.mhTableSize);
    default:
      throw new Error(
        `unknown scheduler ${JSON.stringify(name)}; valid names: ${SCHEDULER_NAMES.join(', ')}`,
      );
  }
}
