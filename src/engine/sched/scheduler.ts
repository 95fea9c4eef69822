/**
 * What a scheduler sees of a real server. The engine keeps these objects per
 * service and updates the counters in place; schedulers never allocate per pick.
 */
export interface SchedTarget {
  /** Stable identity ("10.10.2.2:80") used by hashing schedulers to build tables. */
  readonly key: string;
  /** 0 means quiescent: no new connections. */
  weight: number;
  /** Connections in ESTABLISHED. */
  activeConns: number;
  /** Connections in any other state. */
  inactiveConns: number;
}

/**
 * Target order by key for the hashing schedulers' tables, so a table depends
 * on the set of targets and not on the list's order. Code-unit order: unlike
 * localeCompare, the same on every node whatever its locale.
 */
export function byKey(a: SchedTarget, b: SchedTarget): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

export type SchedulerName = 'rr' | 'wrr' | 'lc' | 'wlc' | 'sh' | 'mh';

export const SCHEDULER_NAMES: readonly SchedulerName[] = ['rr', 'wrr', 'lc', 'wlc', 'sh', 'mh'];

export interface Scheduler {
  readonly name: SchedulerName;
  /** Called after the target list, a weight or a key changes (not per packet). */
  rebuild(targets: readonly SchedTarget[]): void;
  /**
   * Index into `targets` for a new connection, or -1 when no target has weight > 0.
   * `clientHash` is a 32-bit hash of the client address, used by sh and mh.
   */
  pick(targets: readonly SchedTarget[], clientHash: number): number;
}
