/**
 * Checkpoints for `kill -9`: every `checkpoint_interval` seconds the table
 * is exported (synchronously, on the event loop) and written to the state
 * file (asynchronously, temporary file and rename). A failure is logged
 * once per streak, not every interval.
 */
import type { Logger } from '../log.js';
import { writeStateFileAsync, type SavedTable } from './state-file.js';

export interface CheckpointCost {
  connections: number;
  bytes: number;
  /** Export, on the event loop. */
  exportMs: number;
  /** Write and rename, off the event loop. */
  writeMs: number;
}

export class Checkpointer {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private failing = false;
  private intervalS = 0;
  /** The most recent checkpoint's cost (for the log and tests). */
  last: CheckpointCost | undefined;

  constructor(
    private readonly save: () => SavedTable,
    private readonly count: () => number,
    private readonly path: string,
    private readonly log: Logger,
  ) {}

  /** (Re)arms the timer; 0 stops checkpoints. */
  setInterval(seconds: number): void {
    if (seconds === this.intervalS && (this.timer !== undefined || seconds === 0)) return;
    this.stop();
    this.intervalS = seconds;
    if (seconds <= 0) return;
    this.timer = setInterval(() => void this.once(), seconds * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One checkpoint now; skipped (undefined) while the previous one is still being written. */
  async once(): Promise<CheckpointCost | undefined> {
    if (this.busy) return undefined;
    this.busy = true;
    try {
      const t0 = performance.now();
      const table = this.save();
      const t1 = performance.now();
      const bytes = await writeStateFileAsync(this.path, table);
      const cost = {
        connections: this.count(),
        bytes,
        exportMs: t1 - t0,
        writeMs: performance.now() - t1,
      };
      this.last = cost;
      if (this.failing) this.log.info({ path: this.path }, 'checkpoints written again');
      this.failing = false;
      return cost;
    } catch (e) {
      if (!this.failing)
        this.log.error(
          { path: this.path, err: (e as Error).message },
          'checkpoint not written: a kill -9 now would lose the connections',
        );
      this.failing = true;
      return undefined;
    } finally {
      this.busy = false;
    }
  }
}
