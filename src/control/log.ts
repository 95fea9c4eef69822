/**
 * The one logger factory for the whole LB: pino, JSON lines, to stderr.
 * stdout stays free for command output (`ctl -Ln`, `--json` documents).
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  /** Overrides FULLNAT_LOG_LEVEL; default info. */
  level?: LogLevel;
  /** `name` field on every line, default "fullnat". */
  name?: string;
  /** Where lines go; default stderr (fd 2), written synchronously. */
  destination?: DestinationStream;
  /** Environment to read FULLNAT_LOG_LEVEL from (tests pass their own). */
  env?: NodeJS.ProcessEnv;
}

export function isLogLevel(v: string): v is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(v);
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const env = opts.env ?? process.env;
  const fromEnv = env.FULLNAT_LOG_LEVEL?.trim().toLowerCase();
  // A typo in the environment must not stop the LB from starting: fall back and say so.
  const badEnv = fromEnv !== undefined && fromEnv !== '' && !isLogLevel(fromEnv);
  const level: LogLevel =
    opts.level ?? (fromEnv !== undefined && isLogLevel(fromEnv) ? fromEnv : 'info');
  // Synchronous writes: the lines that matter most are the ones just before a crash.
  const dest = opts.destination ?? pino.destination({ dest: 2, sync: true });
  const log = pino(
    {
      name: opts.name ?? 'fullnat',
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    dest,
  );
  if (badEnv && opts.level === undefined) {
    log.warn(
      { FULLNAT_LOG_LEVEL: fromEnv, allowed: LOG_LEVELS },
      'unknown FULLNAT_LOG_LEVEL; using info',
    );
  }
  return log;
}
