/**
 * `real_server IP PORT { … }` inside a virtual_server, with its health
 * checks (any number; TCP_CHECK here, the others in their own files).
 */
import { addressEquals, endpointToString } from '../../../wire/address.js';
import { walkBlock, withOnce, type Cursor, type Handler } from '../cursor.js';
import { CONFIG_DEFAULTS } from '../defaults.js';
import { at, fail } from '../error.js';
import type { Token } from '../lexer.js';
import { parseMtu, parseWeight, realServerFamilyConflict } from '../../rules.js';
import type { TcpCheckSpec } from '../../model.js';
import { addrPort, port, ruled, seconds } from '../values.js';
import { addCheck } from './add-check.js';
import { parseDnsCheck } from './dns-check.js';
import { parseHttpGet } from './http-get.js';
import { parsePingCheck } from './ping-check.js';
import { parseSmtpCheck } from './smtp-check.js';
import { realServerLifeHandlers } from './virtual-server-health.js';
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
    life: {},
  };
  const seen = new Map<string, Token>();
  const h: Record<string, Handler> = {
    ...timingHandlers(cur, rs.timing),
    weight: (k) => (rs.weight = weight(cur.value(k))),
    mtu: (k) => {
      rs.mtu = mtu(cur.value(k), k.text);
      rs.mtuTok = k;
    },
    ...realServerLifeHandlers(cur, rs.life),
  };
  // Checkers may repeat: keepalived runs them all and the RS is up while every one passes.
  const checkers: Record<string, Handler> = {
    TCP_CHECK: (k) => parseTcpCheck(cur, k, rs),
    HTTP_GET: (k) => parseHttpGet(cur, k, rs),
    SSL_GET: (k) => parseHttpGet(cur, k, rs),
    UDP_CHECK: (k) => parseUdpCheck(cur, k, rs),
    MISC_CHECK: (k) => parseMiscCheck(cur, k, rs),
    SMTP_CHECK: (k) => parseSmtpCheck(cur, k, rs),
    DNS_CHECK: (k) => parseDnsCheck(cur, k, rs),
    PING_CHECK: (k) => parsePingCheck(cur, k, rs),
  };
  const guarded = { ...withOnce(h, seen), ...checkers };
  walkBlock(cur, kw, 'real_server', guarded);
  vs.reals.push(rs);
}

const weight = (t: Token): number => ruled(t, () => parseWeight(t.text));
const mtu = (t: Token, what: string): number => ruled(t, () => parseMtu(t.text, what));

function parseTcpCheck(cur: Cursor, kw: Token, rs: RsDraft): void {
  cur.header(kw, 0, 0, 'TCP_CHECK {');
  const check: TcpCheckSpec = {
    kind: 'TCP_CHECK',
    connectTimeout: CONFIG_DEFAULTS.connectTimeout,
  };
  const h: Record<string, Handler> = {
    ...checkTimingHandlers(cur, rs.checkTiming),
    connect_timeout: (k) => (check.connectTimeout = seconds(cur.value(k), k.text, false)),
    connect_port: (k) => (check.connectPort = port(cur.value(k), 'connect_port')),
  };
  walkBlock(cur, kw, 'TCP_CHECK', withOnce(h, new Map(), CHECK_TIMING_ALIASES));
  addCheck(rs, check);
}
