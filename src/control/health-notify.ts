/**
 * A real server's notify_up / notify_down: the program runs as written,
 * without a shell and without arguments added (as keepalived runs them),
 * never blocking the checks: its outcome is only logged. One that outlasts
 * NOTIFY_TIMEOUT_S is killed with its process group, as a MISC_CHECK is.
 */
import { runMiscProbe } from './health-misc.js';
import type { NotifyScriptSpec } from './model.js';

/** keepalived sets no limit; a stuck script must still not pile up at every transition. */
export const NOTIFY_TIMEOUT_S = 30;

export interface NotifyLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export function runNotifyScript(
  script: NotifyScriptSpec,
  logger: NotifyLogger,
  fields: Record<string, unknown>,
): void {
  const spec = {
    kind: 'MISC_CHECK',
    path: script.path,
    argv: script.argv,
    dynamic: false,
  } as const;
  runMiscProbe(spec, NOTIFY_TIMEOUT_S, (r) => {
    const obj = { ...fields, script: script.path, result: r.reason };
    if (r.ok) logger.info(obj, 'notify script ran');
    else logger.warn(obj, 'notify script failed');
  });
}
