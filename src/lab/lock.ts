/**
 * One lab of a kind at a time: a lock file holding the owner's pid, taken
 * over when that process is gone (a lab killed with SIGKILL leaves it).
 */
import { closeSync, existsSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where the lock of the lab named `prefix` lives. */
export function labLockPath(prefix: string): string {
  return existsSync('/run/lock')
    ? `/run/lock/fullnat-${prefix}.lock`
    : join(tmpdir(), `fullnat-${prefix}.lock`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('node');
  } catch {
    return false;
  }
}

/** Takes the lock at `path`; throws naming the holder when another lab is running. Returns the release. */
export function acquireLabLock(path: string): () => void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        try {
          if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
        } catch {
          // already gone
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let holder = NaN;
      try {
        holder = Number(readFileSync(path, 'utf8').trim());
      } catch {
        // vanished meanwhile: retry
      }
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processAlive(holder))
        throw new Error(`another fullnat lab is running (pid ${holder}, lock ${path})`, {
          cause: e,
        });
      // A killed lab's lock (or our own, from a run that did not release it).
      try {
        unlinkSync(path);
      } catch {
        // raced with its removal
      }
    }
  }
  throw new Error(`cannot take the lab lock ${path}`);
}
