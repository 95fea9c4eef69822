/**
 * When the TUN's NAPI work should run in its own kernel thread
 * (`napi_thread auto`). A thread wins when the LB's one JavaScript thread
 * is busy with many small packets — the kernel's per-packet work then runs
 * beside it instead of inside its write(2) calls — and loses when traffic
 * is light (a thread wake-up per burst shows in latency) or made of GSO
 * super-packets (few packets, where the extra hand-over costs throughput).
 * Decided from what the run loop read over each window, with hysteresis.
 */
export interface NapiModeOptions {
  /** Packets read per second at or above which a thread is wanted (with small packets). */
  minPacketsPerSecond: number;
  /** Average bytes per packet read above which no thread is wanted (super-packets). */
  maxAverageBytes: number;
  /** Consecutive windows that must agree before the mode changes. */
  windows: number;
}

export const DEFAULT_NAPI_MODE: NapiModeOptions = {
  minPacketsPerSecond: 40_000,
  maxAverageBytes: 4096,
  windows: 3,
};

export class NapiModeController {
  threaded = false;
  private streak = 0;

  constructor(private readonly o: NapiModeOptions = DEFAULT_NAPI_MODE) {}

  /**
   * `packets` and `bytes` read during a window of `ms` milliseconds. Returns
   * whether the mode changed (read `threaded` for the new one).
   */
  update(packets: number, bytes: number, ms: number): boolean {
    const perSecond = ms > 0 ? (packets * 1000) / ms : 0;
    const average = packets > 0 ? bytes / packets : 0;
    const want = perSecond >= this.o.minPacketsPerSecond && average <= this.o.maxAverageBytes;
    if (want === this.threaded) {
      this.streak = 0;
      return false;
    }
    if (++this.streak < this.o.windows) return false;
    this.threaded = want;
    this.streak = 0;
    return true;
  }
}
