/**
 * MISC_CHECK: runs the configured program and reads its exit status, with
 * keepalived's meaning: 0 passes; with misc_dynamic, 2..255 pass too and ask
 * for weight status - 2, and 0 for the configured weight; anything else fails.
 *
 * The program is executed directly (argv[0] with the rest as its arguments),
 * never through a shell, and leads a process group of its own. A run that
 * outlasts its timeout gets SIGTERM, then SIGKILL after a grace period, both
 * sent to the whole group; once the program exits, whatever it left behind
 * in its group is killed too, so a check never leaves processes running.
 */
import { spawn, type ChildProcess } from 'node:child_process';

import type { Probe, ProbeResult } from './health-probe.js';
import type { MiscCheckSpec } from './model.js';

/** keepalived's pause between SIGTERM and SIGKILL for a script that outlived misc_timeout. */
export const MISC_TERM_GRACE_S = 2;

/** The verdict on an exit: `timedOut` when we sent the signal that ended it. */
export function miscVerdict(
  check: MiscCheckSpec,
  code: number | null,
  signal: NodeJS.Signals | null,
  timedOut: boolean,
  timeoutS: number,
): ProbeResult {
  if (timedOut) return { ok: false, reason: `timeout after ${timeoutS}s` };
  if (code === null) return { ok: false, reason: `killed by ${signal ?? 'a signal'}` };
  // keepalived: under misc_dynamic, 0 gives the configured weight back.
  if (code === 0) {
    return check.dynamic
      ? { ok: true, reason: 'exit status 0', configuredWeight: true }
      : { ok: true, reason: 'exit status 0' };
  }
  if (check.dynamic && code >= 2 && code <= 255) {
    return { ok: true, reason: `exit status ${code}`, weight: code - 2 };
  }
  return { ok: false, reason: `exit status ${code}` };
}

/** Signals every process in the group led by `child`; a group already gone is not an error. */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: the group has no process left.
  }
}

export function runMiscProbe(
  check: MiscCheckSpec,
  timeoutS: number,
  done: (r: ProbeResult) => void,
): Probe {
  let finished = false;
  let timedOut = false;
  let grace: NodeJS.Timeout | undefined;
  const [file, ...args] = check.argv;
  let child: ChildProcess;
  try {
    child = spawn(file ?? '', args, {
      // A new session: the program leads its own process group, which is what gets killed.
      detached: true,
      stdio: 'ignore',
      ...(check.uid === undefined ? {} : { uid: check.uid }),
      ...(check.gid === undefined ? {} : { gid: check.gid }),
    });
  } catch (e) {
    // spawn throws only on options it cannot use (an EPERM setuid surfaces as 'error' below).
    const reason = (e as NodeJS.ErrnoException).code ?? String(e);
    const immediate = setImmediate(() => done({ ok: false, reason }));
    return { cancel: () => clearImmediate(immediate) };
  }
  const timer = setTimeout(() => {
    timedOut = true;
    signalGroup(child, 'SIGTERM');
    grace = setTimeout(() => signalGroup(child, 'SIGKILL'), MISC_TERM_GRACE_S * 1000);
  }, timeoutS * 1000);
  const release = (): void => {
    finished = true;
    clearTimeout(timer);
    if (grace) clearTimeout(grace);
  };
  child.on('error', (e: NodeJS.ErrnoException) => {
    if (finished) return;
    release();
    signalGroup(child, 'SIGKILL');
    done({ ok: false, reason: e.code ?? e.message });
  });
  child.on('exit', (code, signal) => {
    if (finished) return;
    release();
    signalGroup(child, 'SIGKILL');
    done(miscVerdict(check, code, signal, timedOut, timeoutS));
  });
  return {
    cancel: () => {
      if (finished) return;
      release();
      // SIGKILL: the run is over now, so a restarted check never overlaps a dying one.
      signalGroup(child, 'SIGKILL');
    },
  };
}
