/**
 * A graceful drain: the node's VIPs are withdrawn (the announcer's part)
 * while it goes on forwarding; the drain ends when no TCP connection is
 * left that still carries data, or when its timeout passes, and the
 * process then stops. Entries already closing (TIME_WAIT, CLOSE) do not
 * hold it: their peers are done. UDP flows have no end to wait for and
 * do not hold it either.
 */
import { CF_IN_USE, type ConnTable } from '../../engine/conn-table.js';
import { TcpState } from '../../engine/tcp-state.js';
import type { Logger } from '../log.js';
import type { DrainStatus } from '../model.js';

/** How often the table is counted while draining. */
export const DRAIN_POLL_MS = 200;
/** `ctl --drain` on a node whose drain_timeout is 0 (SIGTERM does not drain then). */
export const DEFAULT_CTL_DRAIN_TIMEOUT_S = 60;

/**
 * TCP entries in the table that are not closing: one pass over its state,
 * no allocation. With connection sync, `origin` (the journal's) leaves out
 * the entries held for peers: this node's drain waits for its own only.
 */
export function openTcpConnections(
  t: Pick<ConnTable, 'capacity' | 'flags' | 'state'>,
  origin?: Uint8Array,
): number {
  let n = 0;
  for (let i = 0; i < t.capacity; i++) {
    if ((t.flags[i]! & CF_IN_USE) === 0) continue;
    if (origin !== undefined && origin[i] !== 0) continue;
    const s = t.state[i]!;
    if (s !== TcpState.TimeWait && s !== TcpState.Close && s !== TcpState.None) n++;
  }
  return n;
}

export type DrainEnd = NonNullable<DrainStatus['ended']>;

export class Drain {
  private current: DrainStatus | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    /** Connections the drain waits for (openTcpConnections of the LB's table). */
    private readonly count: () => number,
    private readonly log: Logger,
    /** Called once when the drain ends, by itself or by timeout. */
    private readonly onEnd: (how: DrainEnd) => void,
  ) {}

  get active(): boolean {
    return this.current?.active === true;
  }

  /** A drain has started: the VIPs stay withdrawn from then on, through the stop it ends in. */
  get started(): boolean {
    return this.current !== undefined;
  }

  status(): DrainStatus | undefined {
    const s = this.current;
    if (!s) return undefined;
    return s.active ? { ...s, connectionsLeft: this.count() } : { ...s };
  }

  /** Starts a drain of at most `timeoutS` seconds; a second call returns the running one unchanged. */
  start(timeoutS: number, why: string): DrainStatus {
    if (this.current?.active) return { ...this.current };
    const left = this.count();
    this.current = {
      active: true,
      startedAt: Date.now(),
      connectionsAtStart: left,
      connectionsLeft: left,
      timeout: timeoutS,
    };
    this.log.info({ why, connections: left, timeout: timeoutS }, 'draining: VIPs withdrawn');
    this.timer = setInterval(() => this.check(), DRAIN_POLL_MS);
    // A drain with nothing left to wait for still ends on the next tick, after the caller has its answer.
    return { ...this.current };
  }

  /** Stops waiting (the process exits for another reason). */
  cancel(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private check(): void {
    const s = this.current;
    if (!s?.active) return;
    s.connectionsLeft = this.count();
    const elapsed = Date.now() - s.startedAt;
    let how: DrainEnd | undefined;
    if (s.connectionsLeft === 0) how = 'connections';
    else if (elapsed >= s.timeout * 1000) how = 'timeout';
    if (!how) return;
    this.cancel();
    s.active = false;
    s.ended = how;
    this.log.info(
      { ended: how, connectionsLeft: s.connectionsLeft, ms: elapsed },
      how === 'connections' ? 'drained: no connection left' : 'drain timed out',
    );
    this.onEnd(how);
  }
}
