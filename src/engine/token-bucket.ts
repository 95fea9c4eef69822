/**
 * A token bucket on the engine's millisecond clock: `rate` tokens a second,
 * at most `burst` saved up, full at start. Two numbers of state, nothing
 * allocated per call; used to rate-limit the ICMP errors the engine originates.
 */
export class TokenBucket {
  private tokens: number;
  private last = 0;

  constructor(
    readonly rate: number,
    readonly burst: number,
  ) {
    if (!Number.isFinite(rate) || rate <= 0) {
      throw new RangeError(`token bucket rate must be a positive number per second, got ${rate}`);
    }
    if (!Number.isInteger(burst) || burst < 1) {
      throw new RangeError(`token bucket burst must be an integer of at least 1, got ${burst}`);
    }
    this.tokens = burst;
  }

  /** Takes one token at `now` (ms); false when the bucket is empty. */
  take(now: number): boolean {
    const elapsed = now - this.last;
    // A clock that went back (an engine restarted on a new clock) only restarts the refill.
    if (elapsed > 0) this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.rate) / 1000);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
