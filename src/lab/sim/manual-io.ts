/**
 * A HostIo driven by hand: packets a host sends pile up in `sent`, timers
 * fire only when `advance` moves the clock past them. For unit tests that
 * poke one simulated host segment by segment.
 */
import type { HostIo, Timer } from './net.js';
import { parsePacket, type Segment } from './segment.js';

interface ManualTimer {
  at: number;
  order: number;
  fn: () => void;
  cancelled: boolean;
}

export class ManualIo implements HostIo {
  t = 0;
  sent: Uint8Array[] = [];
  readonly counts: Record<string, number> = {};
  private timers: ManualTimer[] = [];
  private order = 0;

  now(): number {
    return this.t;
  }

  send(pkt: Uint8Array, opts?: { lose?: boolean }): void {
    if (opts?.lose) this.count('lost');
    else this.sent.push(pkt.slice());
  }

  setTimer(delay: number, fn: () => void): Timer {
    const e: ManualTimer = { at: this.t + delay, order: this.order++, fn, cancelled: false };
    this.timers.push(e);
    return {
      cancel: () => {
        e.cancelled = true;
      },
    };
  }

  count(name: string): void {
    this.counts[name] = (this.counts[name] ?? 0) + 1;
  }

  /** Moves the clock, firing due timers in (time, order) order; bounded. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let guard = 0; guard < 100_000; guard++) {
      const due = this.timers
        .filter((e) => !e.cancelled && e.at <= end)
        .sort((a, b) => a.at - b.at || a.order - b.order)[0];
      if (!due) break;
      due.cancelled = true;
      this.t = due.at;
      due.fn();
    }
    this.t = end;
    this.timers = this.timers.filter((e) => !e.cancelled);
  }

  /** Returns and forgets what was sent, parsed (non-TCP packets are skipped). */
  takeSegments(): Segment[] {
    const out: Segment[] = [];
    for (const p of this.sent) {
      const r = parsePacket(p);
      if (r.kind === 'tcp') out.push(r.seg);
    }
    this.sent = [];
    return out;
  }

  takePackets(): Uint8Array[] {
    const out = this.sent;
    this.sent = [];
    return out;
  }
}
