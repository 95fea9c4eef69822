/** `DNS_CHECK { type T name N … }` in a real_server, with the connection keywords of every socket checker. */
import { walkBlock, withOnce, type Cursor, type Handler } from '../cursor.js';
import { fail } from '../error.js';
import type { Token } from '../lexer.js';
import { DNS_QUERY_TYPES, type DnsQueryType } from '../../model.js';
import { addCheck } from './add-check.js';
import { checkBindFamily, connectDraft, connectFields, connectHandlers } from './check-connect.js';
import type { RsDraft } from './draft.js';
import { CHECK_TIMING_ALIASES, checkTimingHandlers } from './timing.js';

/** keepalived's query when none is given: the root's SOA. */
export const DEFAULT_DNS_TYPE: DnsQueryType = 'SOA';
export const DEFAULT_DNS_NAME = '.';

function queryType(t: Token): DnsQueryType {
  const u = t.text.toUpperCase();
  if (Object.hasOwn(DNS_QUERY_TYPES, u)) return u as DnsQueryType;
  return fail(
    t,
    `unknown DNS_CHECK type '${t.text}' (valid: ${Object.keys(DNS_QUERY_TYPES).join(', ')})`,
  );
}

/** A name the query can carry: labels of 1 to 63 letters, digits, '-' or '_', 253 bytes in all. */
function queryName(t: Token): string {
  if (t.text === '.') return '.';
  const name = t.text.endsWith('.') ? t.text.slice(0, -1) : t.text;
  const labels = name.split('.');
  const ok =
    name.length <= 253 &&
    labels.every((l) => l.length >= 1 && l.length <= 63 && /^[\w-]+$/.test(l));
  if (!ok) fail(t, `bad DNS_CHECK name '${t.text}' (expected a domain name such as example.com)`);
  return name;
}

export function parseDnsCheck(cur: Cursor, kw: Token, rs: RsDraft): void {
  cur.header(kw, 0, 0, 'DNS_CHECK {');
  const conn = connectDraft();
  let type = DEFAULT_DNS_TYPE;
  let name = DEFAULT_DNS_NAME;
  const h: Record<string, Handler> = {
    ...checkTimingHandlers(cur, rs.checkTiming),
    ...connectHandlers(cur, conn),
    type: (k) => (type = queryType(cur.value(k))),
    name: (k) => (name = queryName(cur.value(k))),
  };
  walkBlock(cur, kw, 'DNS_CHECK', withOnce(h, new Map(), CHECK_TIMING_ALIASES));
  checkBindFamily(conn, rs);
  addCheck(rs, { kind: 'DNS_CHECK', ...connectFields(conn), type, name });
}
