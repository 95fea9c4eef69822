/**
 * User and group names to ids for MISC_CHECK's `user`, read from the local
 * /etc/passwd and /etc/group (no NSS: a directory-service account is given
 * by its numeric id). Resolved while the file is read, so a name that does
 * not exist is a `FILE:LINE` error and not a check failing at run time.
 */
import { readFileSync } from 'node:fs';

export interface AccountFiles {
  passwd: string;
  group: string;
}

export const SYSTEM_ACCOUNT_FILES: AccountFiles = { passwd: '/etc/passwd', group: '/etc/group' };

/** `name:x:id:…` lines of a passwd or group file; a missing file lists nobody. */
function entries(path: string): string[][] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split(':'));
}

const ID = /^\d{1,10}$/;
const MAX_ID = 0xfffffffe; // (uid_t)-1 means "unchanged" to setuid(2)

function numericId(text: string): number | undefined {
  if (!ID.test(text)) return undefined;
  const n = Number(text);
  return n <= MAX_ID ? n : undefined;
}

/** uid and primary gid of a user name or numeric uid; undefined when unknown. */
export function lookupUser(
  text: string,
  files = SYSTEM_ACCOUNT_FILES,
): { uid: number; gid: number } | undefined {
  const numeric = numericId(text);
  const row = entries(files.passwd).find((f) =>
    numeric === undefined ? f[0] === text : numericId(f[2] ?? '') === numeric,
  );
  const uid = numeric ?? numericId(row?.[2] ?? '');
  if (uid === undefined) return undefined;
  // A numeric uid with no passwd line keeps a group of the same number.
  const gid = numericId(row?.[3] ?? '') ?? (numeric === undefined ? undefined : numeric);
  return gid === undefined ? undefined : { uid, gid };
}

/** gid of a group name or numeric gid; undefined when unknown. */
export function lookupGroup(text: string, files = SYSTEM_ACCOUNT_FILES): number | undefined {
  const numeric = numericId(text);
  if (numeric !== undefined) return numeric;
  const row = entries(files.group).find((f) => f[0] === text);
  return numericId(row?.[2] ?? '');
}
