/**
 * The bookkeeping a socket probe's attempt needs whatever it speaks: one
 * timer, one resource to release, the first result reported and no other.
 */
import type { Probe, ProbeResult } from './health-probe.js';

export interface Attempt {
  /** Reports `r`, after the timer is cleared and the resource released, unless the attempt has ended. */
  finish(r: ProbeResult): void;
  /** A result was reported, or the attempt cancelled. */
  ended(): boolean;
  /** What the probe hands back: cancel releases without reporting. */
  probe: Probe;
}

/** An attempt that ends with `onTimeout()` after `timeoutS` unless it ended first; `close` releases its resource. */
export function startAttempt(
  timeoutS: number,
  onTimeout: () => ProbeResult,
  close: () => void,
  done: (r: ProbeResult) => void,
): Attempt {
  let over = false;
  const timer = setTimeout(() => finish(onTimeout()), timeoutS * 1000);
  const release = (): void => {
    over = true;
    clearTimeout(timer);
    close();
  };
  function finish(r: ProbeResult): void {
    if (over) return;
    release();
    done(r);
  }
  return {
    finish,
    ended: () => over,
    probe: {
      cancel: () => {
        if (!over) release();
      },
    },
  };
}
