/**
 * A benchmark's helper process that answers on stdout one JSON line at a
 * time (the sync benches' peer and sink): `next` waits for its next line,
 * `ask` writes a line to its stdin and waits for the answer.
 */
import type { ChildProcess } from 'node:child_process';

export class LineChild {
  private buffered = '';
  private waiting: ((line: string) => void) | undefined;

  constructor(
    readonly child: ChildProcess,
    private readonly name: string,
  ) {
    child.stdout!.on('data', (c: Buffer) => {
      this.buffered += c.toString();
      let nl: number;
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        const w = this.waiting;
        this.waiting = undefined;
        w?.(line);
      }
    });
  }

  /** Its next line; rejects after `timeoutMs` naming it. */
  next(timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting = undefined;
        reject(new Error(`the ${this.name} did not answer`));
      }, timeoutMs);
      this.waiting = (line) => {
        clearTimeout(t);
        resolve(line);
      };
    });
  }

  /** Resolves on its first line when that line says `listening`. */
  async listening(timeoutMs = 10_000): Promise<void> {
    const line = await this.next(timeoutMs);
    if (!line.includes('listening')) throw new Error(`${this.name}: ${line}`);
  }

  /** An empty line to its stdin, and its answer parsed. */
  async ask<T>(timeoutMs = 5_000): Promise<T> {
    const answer = this.next(timeoutMs);
    this.child.stdin!.write('\n');
    return JSON.parse(await answer) as T;
  }
}
