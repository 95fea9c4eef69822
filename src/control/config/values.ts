/**
 * One token to one value: integers, seconds, on/off, ports, addresses,
 * ranges, schedulers. Each failure names the value and what was expected.
 */
import type { SchedulerName } from '../../engine/sched/scheduler.js';
import { Ipv6Address, type IpAddress } from '../../wire/address.js';
import { integerIn, parseAddress, parsePort, parseScheduler, RuleError } from '../rules.js';
import { fail } from './error.js';
import type { Token } from './lexer.js';

/** setTimeout's ceiling is 2^31-1 ms; a day is far beyond any sane check interval. */
const MAX_INTERVAL_S = 86400;

/** Applies a domain rule (rules.ts) to a token; its refusal becomes `FILE:LINE: reason`. */
export function ruled<T>(t: Token, rule: () => T): T {
  try {
    return rule();
  } catch (e) {
    if (e instanceof RuleError) fail(t, e.reason);
    throw e;
  }
}

export function intIn(t: Token, what: string, min: number, max: number, text = t.text): number {
  return ruled(t, () => integerIn(text, what, min, max));
}

/** Seconds, fractions allowed (tests run checks every 0.2 s). */
export function seconds(t: Token, what: string, allowZero: boolean): number {
  const n = /^\d+(\.\d+)?$/.test(t.text) ? Number(t.text) : NaN;
  const ok = n <= MAX_INTERVAL_S && (allowZero ? n >= 0 : n > 0);
  if (!ok) {
    const lo = allowZero ? '0' : 'more than 0';
    fail(t, `bad ${what} '${t.text}' (expected seconds, ${lo} up to ${MAX_INTERVAL_S})`);
  }
  return n;
}

export function onOff(t: Token, what: string): boolean {
  if (t.text === 'on') return true;
  if (t.text === 'off') return false;
  return fail(t, `bad ${what} '${t.text}' (expected on or off)`);
}

export const port = (t: Token, what = 'port', text = t.text): number =>
  ruled(t, () => parsePort(text, what));

/** A VIP, RS or LIP: a routable unicast IPv4 or IPv6 address (rules.ts says which). */
export function unicast(t: Token, text = t.text): IpAddress {
  const inner = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  return ruled(t, () => parseAddress(inner));
}

/**
 * `IP PORT` (keepalived), `IP:PORT`, or `[IPv6]:PORT`: one colon means a
 * port, more mean IPv6, whose port goes after brackets or in its own word.
 */
export function addrPort(
  kw: Token,
  args: Token[],
  what: string,
): { addr: IpAddress; port: number } {
  const a = args[0]!;
  const p = args[1];
  if (p) return { addr: unicast(a), port: port(p) };
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(a.text);
  if (bracketed) return { addr: unicast(a, bracketed[1]), port: port(a, 'port', bracketed[2]) };
  const colon = a.text.indexOf(':');
  if (colon < 0 || a.text.indexOf(':', colon + 1) >= 0) {
    const example = colon < 0 ? 'IP PORT' : 'IP PORT, or [IP]:PORT';
    fail(kw, `${what} ${a.text} has no port (write '${what} ${example}')`);
  }
  const addr = unicast(a, a.text.slice(0, colon));
  return { addr, port: port(a, 'port', a.text.slice(colon + 1)) };
}

/** The most addresses one range word may name. */
const MAX_RANGE = 256;

/**
 * One address or a range of them. DPVS style `10.10.3.10-20` ranges over the
 * last octet; a full end address is accepted too. An IPv6 range names both
 * ends in full (`2001:db8::10-2001:db8::2f`) and spans the last 16 bits only:
 * a short IPv6 end would read as hex to some and decimal to others.
 */
export function parseRange(t: Token): IpAddress[] {
  const dash = t.text.indexOf('-');
  if (dash < 0) return [unicast(t)];
  const first = unicast(t, t.text.slice(0, dash));
  const tail = t.text.slice(dash + 1);
  if (typeof first !== 'number') return ipv6Range(t, first, tail);
  const short = /^\d{1,3}$/.test(tail);
  if (short && Number(tail) > 255) fail(t, `bad address range '${t.text}' (last octet above 255)`);
  const last = short ? ((first & 0xffffff00) | Number(tail)) >>> 0 : unicast(t, tail);
  if (typeof last !== 'number') {
    fail(t, `bad address range '${t.text}' (both ends must be IPv4 or both IPv6)`);
  }
  if (last < first || last - first >= MAX_RANGE) {
    fail(t, `bad address range '${t.text}' (the end must follow the start, at most 256 addresses)`);
  }
  const out: number[] = [];
  for (let a = first; a <= last; a++) out.push(a >>> 0);
  return out;
}

function ipv6Range(t: Token, first: Ipv6Address, tail: string): IpAddress[] {
  if (tail.includes('.')) {
    fail(t, `bad address range '${t.text}' (both ends must be IPv4 or both IPv6)`);
  }
  if (!tail.includes(':')) {
    fail(
      t,
      `bad address range '${t.text}' (an IPv6 range names its end in full, e.g. 2001:db8::10-2001:db8::2f)`,
    );
  }
  const last = unicast(t, tail);
  if (typeof last === 'number') {
    fail(t, `bad address range '${t.text}' (both ends must be IPv4 or both IPv6)`);
  }
  const a = first.bytes;
  const b = last.bytes;
  const lo = (a[14]! << 8) | a[15]!;
  const hi = (b[14]! << 8) | b[15]!;
  let samePrefix = true;
  for (let i = 0; i < 14; i++) if (a[i] !== b[i]) samePrefix = false;
  if (!samePrefix || hi < lo || hi - lo >= MAX_RANGE) {
    fail(
      t,
      `bad address range '${t.text}' (the end must follow the start within the last 16 bits, at most 256 addresses)`,
    );
  }
  const out: IpAddress[] = [];
  const bytes = a.slice();
  for (let n = lo; n <= hi; n++) {
    bytes[14] = n >> 8;
    bytes[15] = n & 0xff;
    // Every address of the range passes the class rules, not only its ends.
    out.push(unicast(t, Ipv6Address.fromBytes(bytes).text));
  }
  return out;
}

export function scheduler(t: Token): SchedulerName {
  return ruled(t, () => parseScheduler(t.text));
}
