/**
 * `HTTP_GET { … }` and `SSL_GET { … }` in a real_server, as keepalived
 * reads them: any number of `url { path …; digest MD5HEX; status_code …;
 * virtualhost … }` blocks (every one must pass), `virtualhost` for all of
 * them, and the connection keywords every socket checker shares.
 */
import { walkBlock, withOnce, type Cursor, type Handler } from '../cursor.js';
import { fail } from '../error.js';
import type { Token } from '../lexer.js';
import type { HealthCheckSpec, HttpUrlSpec, SingleCheckSpec } from '../../model.js';
import { intIn } from '../values.js';
import { addCheck } from './add-check.js';
import { checkBindFamily, connectDraft, connectFields, connectHandlers } from './check-connect.js';
import type { RsDraft } from './draft.js';
import { CHECK_TIMING_ALIASES, checkTimingHandlers } from './timing.js';

/** keepalived 2.x accepts any 2xx when a url gives no status_code. */
export const DEFAULT_STATUS_CODES: ReadonlyArray<readonly [number, number]> = [[200, 299]];

/** A Host header value: a name or address, with a port if wanted; nothing a header could break on. */
export function virtualhost(t: Token): string {
  if (!/^[A-Za-z0-9._:[\]-]+$/.test(t.text)) {
    fail(t, `bad virtualhost '${t.text}' (expected a host name or address, optionally :PORT)`);
  }
  return t.text;
}

/** `status_code 200`, `status_code 200 301-302 400-499`: codes and ranges, 100 to 599. */
function statusCodes(cur: Cursor, k: Token): Array<[number, number]> {
  const words = cur.lineArgs(k);
  if (words.length === 0) fail(k, "'status_code' needs codes or ranges (status_code 200 300-399)");
  return words.map((w): [number, number] => {
    const m = /^(\d+)-(\d+)$/.exec(w.text);
    if (!m) {
      const code = intIn(w, 'status_code', 100, 599);
      return [code, code];
    }
    const lo = intIn(w, 'status_code range start', 100, 599, m[1]);
    const hi = intIn(w, 'status_code range end', 100, 599, m[2]);
    if (lo > hi) fail(w, `bad status_code range '${w.text}' (start above end)`);
    return [lo, hi];
  });
}

function parseUrl(cur: Cursor, kw: Token): HttpUrlSpec {
  cur.header(kw, 0, 0, 'url {');
  let path: string | undefined;
  const codes: Array<[number, number]> = [];
  const url: Omit<HttpUrlSpec, 'path' | 'statusCodes'> = {};
  const h: Record<string, Handler> = {
    path: (k) => {
      const t = cur.value(k);
      if (!/^\/[\x21-\x7e]*$/.test(t.text))
        fail(t, `bad url path '${t.text}' (must start with '/', no spaces)`);
      path = t.text;
    },
    digest: (k) => {
      const t = cur.value(k);
      if (!/^[0-9a-fA-F]{32}$/.test(t.text))
        fail(t, `bad digest '${t.text}' (expected the body's MD5: 32 hex digits)`);
      url.digest = t.text.toLowerCase();
    },
    virtualhost: (k) => (url.virtualhost = virtualhost(cur.value(k))),
  };
  const guarded = withOnce(h, new Map());
  // Several status_code lines add up, as several codes on one line do.
  guarded.status_code = (k) => codes.push(...statusCodes(cur, k));
  walkBlock(cur, kw, 'url', guarded);
  if (path === undefined) fail(kw, "url block needs 'path'");
  return {
    path,
    statusCodes: codes.length > 0 ? codes : DEFAULT_STATUS_CODES.map(([a, b]) => [a, b]),
    ...url,
  };
}

/** `check` with the virtual_server's `virtualhost` on every HTTP_GET / SSL_GET that gives none. */
export function withServiceVirtualhost(
  check: HealthCheckSpec,
  vhost: string | undefined,
): HealthCheckSpec {
  if (vhost === undefined) return check;
  if (check.kind === 'ALL_OF') {
    return { kind: 'ALL_OF', checks: check.checks.map((c) => inherit(c, vhost)) };
  }
  return inherit(check, vhost);
}

function inherit(check: SingleCheckSpec, vhost: string): SingleCheckSpec {
  if (check.kind !== 'HTTP_GET' && check.kind !== 'SSL_GET') return check;
  return check.virtualhost === undefined ? { ...check, virtualhost: vhost } : check;
}

export function parseHttpGet(cur: Cursor, kw: Token, rs: RsDraft): void {
  cur.header(kw, 0, 0, `${kw.text} {`);
  const kind = kw.text === 'SSL_GET' ? 'SSL_GET' : 'HTTP_GET';
  const conn = connectDraft();
  const urls: HttpUrlSpec[] = [];
  let host: string | undefined;
  const h: Record<string, Handler> = {
    ...checkTimingHandlers(cur, rs.checkTiming),
    ...connectHandlers(cur, conn),
    virtualhost: (k) => (host = virtualhost(cur.value(k))),
  };
  const guarded = withOnce(h, new Map(), CHECK_TIMING_ALIASES);
  guarded.url = (k) => urls.push(parseUrl(cur, k));
  walkBlock(cur, kw, kind, guarded);
  if (urls.length === 0) fail(kw, `${kind} needs 'url { path /PATH }'`);
  checkBindFamily(conn, rs);
  addCheck(rs, {
    kind,
    urls,
    ...connectFields(conn),
    ...(host === undefined ? {} : { virtualhost: host }),
  });
}
