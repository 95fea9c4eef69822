/**
 * `SMTP_CHECK { helo_name NAME … }` in a real_server, with the connection
 * keywords of every socket checker, and keepalived's older `host { … }`
 * blocks: each one another SMTP checker on the same real server (all must
 * pass), its connection keywords defaulting to the block around it.
 */
import { walkBlock, withOnce, type Cursor, type Handler } from '../cursor.js';
import { fail } from '../error.js';
import { addCheck } from './add-check.js';
import { checkBindFamily, connectDraft, connectFields, connectHandlers } from './check-connect.js';
import type { RsDraft } from './draft.js';
import { CHECK_TIMING_ALIASES, checkTimingHandlers } from './timing.js';
import type { Token } from '../lexer.js';
import type { ConnectDraft } from './check-connect.js';

/** keepalived's HELO argument when `helo_name` is not given. */
export const DEFAULT_HELO_NAME = 'smtpchecker.keepalived.org';

export function parseSmtpCheck(cur: Cursor, kw: Token, rs: RsDraft): void {
  cur.header(kw, 0, 0, 'SMTP_CHECK {');
  const conn = connectDraft();
  let heloName = DEFAULT_HELO_NAME;
  const h: Record<string, Handler> = {
    ...checkTimingHandlers(cur, rs.checkTiming),
    ...connectHandlers(cur, conn),
    helo_name: (k) => {
      const t = cur.value(k);
      // One word of printable ASCII: it goes into the SMTP command line as is.
      if (!/^[\x21-\x7e]{1,255}$/.test(t.text))
        fail(t, `bad helo_name '${t.text}' (one word of printable ASCII)`);
      heloName = t.text;
    },
  };
  const hosts: Array<{ own: ConnectDraft; given: Set<string> }> = [];
  const guarded = withOnce(h, new Map(), CHECK_TIMING_ALIASES);
  guarded.host = (k) => hosts.push(parseHost(cur, k));
  walkBlock(cur, kw, 'SMTP_CHECK', guarded);
  checkBindFamily(conn, rs);
  addCheck(rs, { kind: 'SMTP_CHECK', ...connectFields(conn), heloName });
  for (const { own, given } of hosts) {
    const pick = <K extends keyof ConnectDraft>(key: K, word: string): ConnectDraft[K] =>
      given.has(word) ? own[key] : conn[key];
    const merged: ConnectDraft = {
      connectTimeout: pick('connectTimeout', 'connect_timeout'),
      connectPort: pick('connectPort', 'connect_port'),
      connectIp: pick('connectIp', 'connect_ip'),
      bindto: pick('bindto', 'bindto'),
      bindTok: pick('bindTok', 'bindto'),
    };
    checkBindFamily(merged, rs);
    addCheck(rs, { kind: 'SMTP_CHECK', ...connectFields(merged), heloName });
  }
}

/** One `host { connect_ip … }`: what it sets, and which keywords it gave. */
function parseHost(cur: Cursor, kw: Token): { own: ConnectDraft; given: Set<string> } {
  cur.header(kw, 0, 0, 'host {');
  const own = connectDraft();
  const given = new Set<string>();
  const h: Record<string, Handler> = {};
  for (const [word, fn] of Object.entries(connectHandlers(cur, own))) {
    h[word] = (k) => {
      given.add(word);
      fn(k);
    };
  }
  walkBlock(cur, kw, 'host', withOnce(h, new Map()));
  return { own, given };
}
