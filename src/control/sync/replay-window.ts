/**
 * Replay protection for one peer: its incarnation (a restart raises it)
 * and a sliding window over the sequence numbers of that incarnation
 * (RFC 4303's anti-replay window, 64 messages). A message from an older
 * incarnation, a sequence seen already, or one fallen behind the window is
 * refused. Only messages whose MAC was verified are shown to it, so a
 * forged header never moves the window.
 *
 * A sender whose 32-bit sequence runs out raises its incarnation by a
 * fraction of a millisecond (ROLLOVER_STEP); a restart raises it by at
 * least a millisecond (a start takes longer than that). So a receiver
 * tells a rollover, after which nothing changes, from a restart.
 */

/** What a sender adds to its incarnation when its sequence runs out (1024 rollovers per millisecond). */
export const ROLLOVER_STEP = 1 / 1024;

/** Messages a peer's datagrams may be reordered by and still be accepted. */
export const REPLAY_WINDOW = 64;

export type ReplayVerdict =
  /** The first message heard from this peer. */
  | 'first'
  /** The incarnation known, the sequence new. */
  | 'fresh'
  /** A newer incarnation: the peer restarted; the window starts again. */
  | 'restarted'
  /** The same run's sequence started over (a newer incarnation by less than a millisecond). */
  | 'rolled_over'
  | 'old_incarnation'
  | 'replay';

export class ReplayWindow {
  /** The peer's incarnation, undefined before its first message. */
  incarnation: number | undefined;
  /** Highest sequence accepted in this incarnation. */
  private top = 0;
  /** Bit i set: sequence top - i was accepted (two 32-bit halves, no BigInt per message). */
  private low = 0;
  private high = 0;

  /** Checks a message and, when it is accepted, records it. */
  accept(incarnation: number, sequence: number): ReplayVerdict {
    const known = this.incarnation;
    if (known !== undefined && incarnation < known) return 'old_incarnation';
    if (known === undefined || incarnation > known) {
      this.incarnation = incarnation;
      this.top = sequence;
      this.low = 1;
      this.high = 0;
      if (known === undefined) return 'first';
      return incarnation - known < 1 ? 'rolled_over' : 'restarted';
    }
    if (sequence > this.top) {
      this.shift(sequence - this.top);
      this.top = sequence;
      this.low |= 1;
      return 'fresh';
    }
    const back = this.top - sequence;
    if (back >= REPLAY_WINDOW) return 'replay';
    if (this.seen(back)) return 'replay';
    this.mark(back);
    return 'fresh';
  }

  /** What a new channel carries over of an old one's knowledge. */
  copyFrom(other: ReplayWindow): void {
    this.incarnation = other.incarnation;
    this.top = other.top;
    this.low = other.low;
    this.high = other.high;
  }

  private shift(n: number): void {
    if (n >= REPLAY_WINDOW) {
      this.low = 0;
      this.high = 0;
    } else if (n >= 32) {
      this.high = (this.low << (n - 32)) >>> 0;
      this.low = 0;
    } else {
      this.high = ((this.high << n) | (n === 0 ? 0 : this.low >>> (32 - n))) >>> 0;
      this.low = (this.low << n) >>> 0;
    }
  }

  private seen(back: number): boolean {
    return back < 32 ? ((this.low >>> back) & 1) === 1 : ((this.high >>> (back - 32)) & 1) === 1;
  }

  private mark(back: number): void {
    if (back < 32) this.low = (this.low | (1 << back)) >>> 0;
    else this.high = (this.high | (1 << (back - 32))) >>> 0;
  }
}
