/**
 * `real_server IP PORT { … }` inside a virtual_server, with its one health
 * check: TCP_CHECK or HTTP_GET here, UDP_CHECK and MISC_CHECK in their own files.
 */
import { addressEquals, endpointToString } from '../../../wire/address.js';
import { walkBlock, withOnce, type Cursor, type Handler } from '../cursor.js';
import { CONFIG_DEFAULTS } from '../defaults.js';
import { at, fail } from '../error.js';
import type { Token } from '../lexer.js';
import { parseMtu, parseWeight, realServerFamilyConflict } from '../../rules.js';
import { addrPort, intIn, port, ruled, seconds } from '../values.js';
import { svcName, type RsDraft, type VsDraft } from './draft.js';
import { parseMiscCheck } from './misc-check.js';
import { CHECK_TIMING_ALIASES, checkTimingHandlers, timingHandlers } from './timing.js';
import { parseUdpCheck } from './udp-check.js';

export function parseRealServer(cur: Cursor, kw: Token, vs: VsDraft): void {
  const args = cur.header(kw, 1, 2, 'real_server IP PORT {');
  const { addr, port: rport } = addrPort(kw, args, 'real_server');
  const family = realServerFamilyConflict(vs.vip, addr);
  if (family) fail(kw, family);
  const dup = vs.reals.find((r) => addressEquals(r.addr, addr) && r.port === rport);
  if (dup) {
    fail(
      kw,
      `duplicate real_server ${endpointToString(addr, rport)} in virtual_server ${svcName(vs)} (first at ${at(dup.tok)})`,
    );
  }
  const rs: RsDraft = {
    tok: kw,
    addr,
    port: rport,
    weight: CONFIG_DEFAULTS.weight,
    timing: {},
    checkTiming: {},
  };
  const seen = new Map<string, Token>();
  const h: Record<string, Handler> = {
    ...timingHandlers(cur, rs.timing),
    weight: (k) => (rs.weight = weight(cur.value(k))),
    mtu: (k) => {
      rs.mtu = mtu(cur.value(k), k.text);
      rs.mtuTok = k;
    },
    // Health-check failures already leave the RS in place at weight 0 (established connections keep flowing).
    inhibit_on_failure: (k) => void cur.args(k, 0),
    TCP_CHECK: (k) => parseCheck(cur, k, rs),
    HTTP_GET: (k) => parseCheck(cur, k, rs),
    UDP_CHECK: (k) => parseUdpCheck(cur, k, rs),
    MISC_CHECK: (k) => parseMiscCheck(cur, k, rs),
  };
  const oneCheck = {
    HTTP_GET: 'check',
    TCP_CHECK: 'check',
    UDP_CHECK: 'check',
    MISC_CHECK: 'check',
  };
  walkBlock(cur, kw, 'real_server', withOnce(h, seen, oneCheck));
  vs.reals.push(rs);
}

const weight = (t: Token): number => ruled(t, () => parseWeight(t.text));
const mtu = (t: Token, what: string): number => ruled(t, () => parseMtu(t.text, what));

function parseCheck(cur: Cursor, kw: Token, rs: RsDraft): void {
  cur.header(kw, 0, 0, `${kw.text} {`);
  const common = {
    connectTimeout: CONFIG_DEFAULTS.connectTimeout,
    connectPort: undefined as number | undefined,
  };
  const url = { path: undefined as string | undefined, statusCode: CONFIG_DEFAULTS.statusCode };
  const seen = new Map<string, Token>();
  const h: Record<string, Handler> = {
    ...checkTimingHandlers(cur, rs.checkTiming),
    connect_timeout: (k) => (common.connectTimeout = seconds(cur.value(k), k.text, false)),
    connect_port: (k) => (common.connectPort = port(cur.value(k), 'connect_port')),
  };
  if (kw.text === 'HTTP_GET') h.url = (k) => parseUrl(cur, k, url);
  walkBlock(cur, kw, kw.text, withOnce(h, seen, CHECK_TIMING_ALIASES));
  if (kw.text === 'TCP_CHECK') {
    rs.check = { kind: 'TCP_CHECK', ...common };
    return;
  }
  if (url.path === undefined) fail(kw, "HTTP_GET needs 'url { path /PATH }'");
  rs.check = { kind: 'HTTP_GET', path: url.path, statusCode: url.statusCode, ...common };
}

function parseUrl(cur: Cursor, kw: Token, url: { path?: string; statusCode: number }): void {
  cur.header(kw, 0, 0, 'url {');
  const h: Record<string, Handler> = {
    path: (k) => {
      const t = cur.value(k);
      if (!/^\/[\x21-\x7e]*$/.test(t.text))
        fail(t, `bad url path '${t.text}' (must start with '/', no spaces)`);
      url.path = t.text;
    },
    status_code: (k) => (url.statusCode = intIn(cur.value(k), k.text, 100, 599)),
  };
  walkBlock(cur, kw, 'url', withOnce(h, new Map()));
  if (url.path === undefined) fail(kw, "url block needs 'path'");
}
