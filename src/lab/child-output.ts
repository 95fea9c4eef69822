/**
 * Waiting for a program the lab started in a namespace to say it is ready
 * (a line on its stdout or stderr), so that nothing is driven at it before.
 */
import type { ChildProcess } from 'node:child_process';

/** Resolves once `what` appears on the child's stream; rejects on exit or timeout. */
export function waitForOutput(
  child: ChildProcess,
  stream: 'stdout' | 'stderr',
  what: RegExp,
  timeoutMs: number,
  name: string,
  tail: () => string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (c: Buffer): void => {
      seen = (seen + c.toString()).slice(-8000);
      if (what.test(seen)) {
        cleanup();
        resolve();
      }
    };
    const onExit = (code: number | null, sig: string | null): void => {
      cleanup();
      reject(new Error(`${name} exited (${sig ?? code}) before it was ready\n${tail()}`));
    };
    const t = setTimeout(() => {
      cleanup();
      reject(new Error(`${name} not ready within ${timeoutMs} ms\n${tail()}`));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(t);
      child[stream]?.off('data', onData);
      child.off('exit', onExit);
    };
    child[stream]?.on('data', onData);
    child.once('exit', onExit);
  });
}
