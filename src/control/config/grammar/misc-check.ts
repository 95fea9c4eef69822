/**
 * `MISC_CHECK { misc_path "PROGRAM ARGS…" misc_timeout S misc_dynamic user NAME [GROUP] }`
 * in a real_server. The program is run without a shell (as keepalived 2.x
 * does), so `misc_path` is split into words here; see splitWords.
 */
import { lookupGroup, lookupUser } from '../accounts.js';
import { walkBlock, withOnce, type Cursor, type Handler } from '../cursor.js';
import { fail } from '../error.js';
import type { Token } from '../lexer.js';
import type { MiscCheckSpec } from '../../model.js';
import { seconds } from '../values.js';
import { addCheck } from './add-check.js';
import type { RsDraft } from './draft.js';
import { CHECK_TIMING_ALIASES, checkTimingHandlers } from './timing.js';

/**
 * The words of a `misc_path`: spaces and tabs separate them, and single
 * quotes keep spaces in one word (`/bin/sh -c 'exit 3'`). Nothing else is
 * special: no `$`, globs, `;` or redirections, since no shell reads them;
 * a check that needs a shell says so with `/bin/sh -c '…'`.
 */
export function splitWords(t: Token): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quoted = false;
  for (const c of t.text) {
    if (quoted) {
      if (c === "'") quoted = false;
      else word += c;
    } else if (c === "'") {
      quoted = true;
      word ??= '';
    } else if (c === ' ' || c === '\t') {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (quoted) fail(t, `misc_path '${t.text}' has an unterminated single quote`);
  if (word !== undefined) words.push(word);
  return words;
}

/**
 * A program line: `KEYWORD "/abs/program ARGS…"` in one quoted word (misc_path,
 * notify_up, notify_down), split into its words.
 */
export function programLine(cur: Cursor, k: Token): { path: string; argv: string[] } {
  const needs = `'${k.text}' needs a program (${k.text} "/path/to/program ARGS")`;
  const got = cur.lineArgs(k);
  const first = got[0];
  if (!first) fail(k, needs);
  if (got.length > 1) {
    fail(
      k,
      `${k.text} with arguments goes in double quotes: ${k.text} "${got.map((t) => t.text).join(' ')}"`,
    );
  }
  const argv = splitWords(first);
  const program = argv[0];
  if (program === undefined) fail(k, needs);
  // No PATH search: what runs must not depend on the environment the LB was started from.
  if (!program.startsWith('/'))
    fail(first, `${k.text} program '${program}' must be an absolute path`);
  return { path: first.text, argv };
}

function user(cur: Cursor, k: Token): { uid: number; gid: number } {
  const args = cur.lineArgs(k);
  const [name, group] = args;
  if (!name || args.length > 2) fail(k, "expected 'user USER [GROUP]'");
  const u = lookupUser(name.text);
  if (!u)
    fail(name, `unknown user '${name.text}' (not in /etc/passwd; a numeric uid is taken as is)`);
  if (!group) return u;
  const gid = lookupGroup(group.text);
  if (gid === undefined) {
    fail(group, `unknown group '${group.text}' (not in /etc/group; a numeric gid is taken as is)`);
  }
  return { uid: u.uid, gid };
}

export function parseMiscCheck(cur: Cursor, kw: Token, rs: RsDraft): void {
  cur.header(kw, 0, 0, 'MISC_CHECK {');
  let program: Pick<MiscCheckSpec, 'path' | 'argv'> | undefined;
  const check: Omit<MiscCheckSpec, 'path' | 'argv'> = { kind: 'MISC_CHECK', dynamic: false };
  const h: Record<string, Handler> = {
    ...checkTimingHandlers(cur, rs.checkTiming),
    misc_path: (k) => (program = programLine(cur, k)),
    misc_timeout: (k) => (check.timeout = seconds(cur.value(k), k.text, false)),
    misc_dynamic: (k) => {
      cur.args(k, 0);
      check.dynamic = true;
    },
    user: (k) => Object.assign(check, user(cur, k)),
  };
  walkBlock(cur, kw, 'MISC_CHECK', withOnce(h, new Map(), CHECK_TIMING_ALIASES));
  if (!program) fail(kw, 'MISC_CHECK needs \'misc_path "/path/to/check ARGS"\'');
  addCheck(rs, { ...check, ...program });
}
