/**
 * Binary min-heap of timed callbacks ordered by (time, insertion order), so
 * two events at the same virtual instant always run in the order they were
 * scheduled: the simulation is deterministic by construction.
 */

export interface SimEvent {
  readonly t: number;
  readonly order: number;
  readonly fn: () => void;
  /** Live events keep the simulation running; housekeeping (middlebox ticks) does not. */
  readonly live: boolean;
  cancelled: boolean;
}

export class EventQueue {
  private readonly heap: SimEvent[] = [];
  private nextOrder = 0;

  get size(): number {
    return this.heap.length;
  }

  push(t: number, fn: () => void, live: boolean): SimEvent {
    const e: SimEvent = { t, order: this.nextOrder++, fn, live, cancelled: false };
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
    return e;
  }

  peek(): SimEvent | undefined {
    return this.heap[0];
  }

  pop(): SimEvent | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined || h.length === 0) return top;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l]!, h[m]!)) m = l;
      if (r < h.length && before(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.t < b.t || (a.t === b.t && a.order < b.order);
}
