/**
 * One token to one value: integers, seconds, on/off, ports, addresses,
 * ranges, schedulers. Each failure names the value and what was expected.
 */
import { SCHEDULER_NAMES, type SchedulerName } from '../../engine/sched/scheduler.js';
import { parseIpv4 } from '../../wire/bytes.js';
import { fail } from './error.js';
import type { Token } from './lexer.js';

export const MIN_MTU = 576;
/** setTimeout's ceiling is 2^31-1 ms; a day is far beyond any sane check interval. */
const MAX_INTERVAL_S = 86400;

export function intIn(t: Token, what: string, min: number, max: number, text = t.text): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max))
    fail(t, `bad ${what} '${text}' (expected an integer ${min}..${max})`);
  return n;
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

export const port = (t: Token, what = 'port'): number => intIn(t, what, 1, 65535);

/**
 * A unicast address that can be routed through the TUN device: the kernel
 * drops loopback, multicast and broadcast destinations arriving on it.
 */
export function unicast(t: Token, text = t.text, what = 'IPv4 address'): number {
  const a = parseIpv4(text);
  if (a < 0) fail(t, `bad ${what} '${text}'`);
  const first = a >>> 24;
  if (first === 0 || first === 127 || first >= 224) {
    fail(t, `${what} ${text} is out of range (not a routable unicast address)`);
  }
  return a;
}

/** `IP PORT` (keepalived) or `IP:PORT`. */
export function addrPort(kw: Token, args: Token[], what: string): { addr: number; port: number } {
  const a = args[0]!;
  const p = args[1];
  if (p) return { addr: unicast(a), port: port(p) };
  const colon = a.text.lastIndexOf(':');
  if (colon < 0) fail(kw, `${what} ${a.text} has no port (write '${what} IP PORT')`);
  const addr = unicast(a, a.text.slice(0, colon));
  return { addr, port: intIn(a, 'port', 1, 65535, a.text.slice(colon + 1)) };
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
  const s = SCHEDULER_NAMES.find((x) => x === t.text);
  if (!s) fail(t, `unknown scheduler '${t.text}' (valid: ${SCHEDULER_NAMES.join(', ')})`);
  return s;
}
