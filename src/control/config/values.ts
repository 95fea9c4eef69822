/**
 * One token to one value: integers, seconds, on/off, ports, addresses,
 * ranges, schedulers. Each failure names the value and what was expected.
 */
import type { SchedulerName } from '../../engine/sched/scheduler.js';
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

/** A VIP, RS or LIP: a routable unicast address (rules.ts says which). */
export function unicast(t: Token, text = t.text): number {
  return ruled(t, () => parseAddress(text));
}

/** `IP PORT` (keepalived) or `IP:PORT`. */
export function addrPort(kw: Token, args: Token[], what: string): { addr: number; port: number } {
  const a = args[0]!;
  const p = args[1];
  if (p) return { addr: unicast(a), port: port(p) };
  const colon = a.text.lastIndexOf(':');
  if (colon < 0) fail(kw, `${what} ${a.text} has no port (write '${what} IP PORT')`);
  const addr = unicast(a, a.text.slice(0, colon));
  return { addr, port: port(a, 'port', a.text.slice(colon + 1)) };
}

export function parseRange(t: Token): number[] {
  const dash = t.text.indexOf('-');
  if (dash < 0) return [unicast(t)];
  const first = unicast(t, t.text.slice(0, dash));
  const tail = t.text.slice(dash + 1);
  // DPVS style `10.10.3.10-20` ranges over the last octet; a full address is accepted too.
  const short = /^\d{1,3}$/.test(tail);
  if (short && Number(tail) > 255) fail(t, `bad address range '${t.text}' (last octet above 255)`);
  const last = short ? ((first & 0xffffff00) | Number(tail)) >>> 0 : unicast(t, tail);
  if (last < first || last - first >= 256) {
    fail(t, `bad address range '${t.text}' (the end must follow the start, at most 256 addresses)`);
  }
  const out: number[] = [];
  for (let a = first; a <= last; a++) out.push(a >>> 0);
  return out;
}

export function scheduler(t: Token): SchedulerName {
  return ruled(t, () => parseScheduler(t.text));
}
