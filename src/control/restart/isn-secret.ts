/**
 * The LB→RS ISN secret, kept in the state directory (`isn-secret`, mode
 * 0600) so that a successor keeps picking ISNs from the same function of
 * tuple and clock (RFC 6528): above the ones its predecessor used, never
 * under a sequence number an RS still holds in TIME_WAIT. Created once, on
 * the first start; 16 random bytes in hex, of which the engine uses 4 today.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const ISN_SECRET_FILE = 'isn-secret';
const FORMAT = /^[0-9a-f]{32}\n?$/;

export interface IsnSecret {
  secret: number;
  /** What happened, for the log: `created`, `loaded`, or `replaced: <why>`. */
  how: string;
  path: string;
}

/** Creates the state directory (0700) if missing. */
export function ensureStateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/**
 * Loads the secret, creating it if missing and replacing it (saying why)
 * if unreadable as a secret. Loosened permissions are tightened back to
 * 0600. Throws only when the directory cannot be written: the caller then
 * runs with a secret of its own and says so.
 */
export function loadIsnSecret(dir: string): IsnSecret {
  ensureStateDir(dir);
  const path = join(dir, ISN_SECRET_FILE);
  let text: string | undefined;
  let why = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') why = (e as Error).message;
  }
  if (text !== undefined && FORMAT.test(text)) {
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
    return { secret: Number.parseInt(text.slice(0, 8), 16) >>> 0, how: 'loaded', path };
  }
  if (text !== undefined) why = 'not 32 hex digits';
  const fresh = randomBytes(16).toString('hex');
  if (why === '') {
    try {
      // O_EXCL: of two processes starting at once, one writes and the other reads it.
      writeFileSync(path, `${fresh}\n`, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return loadIsnSecret(dir);
      throw e;
    }
  } else {
    const tmp = `${path}.tmp.${process.pid}`;
    writeFileSync(tmp, `${fresh}\n`, { mode: 0o600 });
    renameSync(tmp, path);
  }
  return {
    secret: Number.parseInt(fresh.slice(0, 8), 16) >>> 0,
    how: why === '' ? 'created' : `replaced: ${why}`,
    path,
  };
}
