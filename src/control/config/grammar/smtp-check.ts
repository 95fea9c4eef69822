/** `SMTP_CHECK { helo_name NAME … }` in a real_server, with the connection keywords of every socket checker. */
import { walkBlock, withOnce, type Cursor, type Handler } from '../cursor.js';
import { fail } from '../error.js';
import { addCheck } from './add-check.js';
import { checkBindFamily, connectDraft, connectFields, connectHandlers } from './check-connect.js';
import type { RsDraft } from './draft.js';
import { CHECK_TIMING_ALIASES, checkTimingHandlers } from './timing.js';
import type { Token } from '../lexer.js';

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
  walkBlock(cur, kw, 'SMTP_CHECK', withOnce(h, new Map(), CHECK_TIMING_ALIASES));
  checkBindFamily(conn, rs);
  addCheck(rs, { kind: 'SMTP_CHECK', ...connectFields(conn), heloName });
}
