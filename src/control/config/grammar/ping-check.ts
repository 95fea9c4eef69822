/** `PING_CHECK { connect_ip, bindto, connect_timeout … }` in a real_server: one ICMP echo, no port. */
import { walkBlock, withOnce, type Cursor, type Handler } from '../cursor.js';
import type { Token } from '../lexer.js';
import { addCheck } from './add-check.js';
import { checkBindFamily, connectDraft, connectFields, connectHandlers } from './check-connect.js';
import type { RsDraft } from './draft.js';
import { CHECK_TIMING_ALIASES, checkTimingHandlers } from './timing.js';

export function parsePingCheck(cur: Cursor, kw: Token, rs: RsDraft): void {
  cur.header(kw, 0, 0, 'PING_CHECK {');
  const conn = connectDraft();
  const h: Record<string, Handler> = {
    ...checkTimingHandlers(cur, rs.checkTiming),
    ...connectHandlers(cur, conn, false),
  };
  walkBlock(cur, kw, 'PING_CHECK', withOnce(h, new Map(), CHECK_TIMING_ALIASES));
  checkBindFamily(conn, rs);
  const { connectTimeout, connectIp, bindto } = connectFields(conn);
  addCheck(rs, {
    kind: 'PING_CHECK',
    connectTimeout,
    ...(connectIp === undefined ? {} : { connectIp }),
    ...(bindto === undefined ? {} : { bindto }),
  });
}
