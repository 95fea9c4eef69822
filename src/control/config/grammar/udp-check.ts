/**
 * `UDP_CHECK { … }` in a real_server: keepalived's keywords and hex forms.
 * `payload` and `require_reply` take the rest of their line as hex, spaces
 * allowed between bytes (`payload 12 34 0100`); `require_reply` may use `x`
 * for a nibble that can be anything.
 */
import {
  addressFamily,
  addressToString,
  parseAddress,
  type IpAddress,
} from '../../../wire/address.js';
import { walkBlock, withOnce, type Cursor, type Handler } from '../cursor.js';
import { CONFIG_DEFAULTS } from '../defaults.js';
import { fail } from '../error.js';
import type { Token } from '../lexer.js';
import type { UdpCheckSpec } from '../../model.js';
import { intIn, port, seconds } from '../values.js';
import { addCheck } from './add-check.js';
import type { RsDraft } from './draft.js';
import { CHECK_TIMING_ALIASES, checkTimingHandlers } from './timing.js';

/** The largest UDP payload over IPv4 (65535 - 20 - 8). */
const MAX_PAYLOAD = 65507;
const MAX_REPLY_LENGTH = 65535;
/** keepalived's reply length bounds when none are given. */
const DEFAULT_MIN_REPLY = 0;
const DEFAULT_MAX_REPLY = 255;

/**
 * keepalived's hex reading: within a word, digits pair up into bytes, and a
 * digit left alone (before a space or at the end) is a byte by itself
 * (`1 23` and `0123` are both 01 23). Returns lowercase nibble pairs.
 */
function hexWords(words: Token[], what: string, wildcard: boolean): string {
  const digit = wildcard ? /^[0-9a-fA-FxX]$/ : /^[0-9a-fA-F]$/;
  let out = '';
  for (const w of words) {
    for (const c of w.text) {
      if (!digit.test(c)) {
        const allowed = wildcard ? "hex digits, or 'x' for any nibble" : 'hex digits';
        fail(w, `bad ${what} '${w.text}' (expected ${allowed}; spaces may separate bytes)`);
      }
    }
    const text = w.text.toLowerCase();
    for (let i = 0; i < text.length; i += 2)
      out += i + 1 < text.length ? text.slice(i, i + 2) : `0${text[i]}`;
  }
  return out;
}

export function address(t: Token, what: string): IpAddress {
  const a = parseAddress(t.text);
  if (a === null) fail(t, `bad ${what} '${t.text}' (expected an IPv4 or IPv6 address)`);
  const text = addressToString(a);
  if (text === '0.0.0.0' || text === '::') fail(t, `bad ${what} '${t.text}' (unspecified address)`);
  return a;
}

export function parseUdpCheck(cur: Cursor, kw: Token, rs: RsDraft): void {
  cur.header(kw, 0, 0, 'UDP_CHECK {');
  const check: UdpCheckSpec = {
    kind: 'UDP_CHECK',
    connectTimeout: CONFIG_DEFAULTS.connectTimeout,
    payload: '',
    requireReply: false,
    minReplyLength: DEFAULT_MIN_REPLY,
    maxReplyLength: DEFAULT_MAX_REPLY,
  };
  let bindTok: Token | undefined;
  let maxTok: Token | undefined;
  const h: Record<string, Handler> = {
    ...checkTimingHandlers(cur, rs.checkTiming),
    connect_timeout: (k) => (check.connectTimeout = seconds(cur.value(k), k.text, false)),
    connect_port: (k) => (check.connectPort = port(cur.value(k), 'connect_port')),
    connect_ip: (k) => (check.connectIp = address(cur.value(k), k.text)),
    bindto: (k) => {
      bindTok = cur.value(k);
      check.bindto = address(bindTok, k.text);
    },
    payload: (k) => {
      const words = cur.lineArgs(k);
      if (words.length === 0) fail(k, "'payload' needs hex bytes (e.g. payload 0a0b0c)");
      check.payload = hexWords(words, 'payload', false);
      if (check.payload.length / 2 > MAX_PAYLOAD) {
        fail(k, `payload of ${check.payload.length / 2} bytes (at most ${MAX_PAYLOAD})`);
      }
    },
    require_reply: (k) => {
      check.requireReply = true;
      const words = cur.lineArgs(k);
      if (words.length > 0) check.reply = hexWords(words, 'require_reply', true);
    },
    min_reply_length: (k) =>
      (check.minReplyLength = intIn(cur.value(k), k.text, 0, MAX_REPLY_LENGTH)),
    max_reply_length: (k) => {
      maxTok = cur.value(k);
      check.maxReplyLength = intIn(maxTok, k.text, 0, MAX_REPLY_LENGTH);
    },
  };
  walkBlock(cur, kw, 'UDP_CHECK', withOnce(h, new Map(), CHECK_TIMING_ALIASES));
  const target = check.connectIp ?? rs.addr;
  if (
    bindTok &&
    check.bindto !== undefined &&
    addressFamily(check.bindto) !== addressFamily(target)
  ) {
    fail(
      bindTok,
      `bindto ${bindTok.text} is IPv${addressFamily(check.bindto)} but the check goes to IPv${addressFamily(target)} ${addressToString(target)}`,
    );
  }
  if (check.minReplyLength > check.maxReplyLength) {
    fail(
      maxTok ?? kw,
      `min_reply_length ${check.minReplyLength} > max_reply_length ${check.maxReplyLength}: the check could never pass`,
    );
  }
  if (check.reply !== undefined && check.reply.length / 2 > check.maxReplyLength) {
    fail(
      maxTok ?? kw,
      `require_reply of ${check.reply.length / 2} bytes > max_reply_length ${check.maxReplyLength}: the check could never pass`,
    );
  }
  addCheck(rs, check);
}
