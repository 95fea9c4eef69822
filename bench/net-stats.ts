/**
 * Pure helpers of the network bench (bench/net.ts): figures over interleaved
 * rounds as median and spread, their table cells, and what fullnat's log and
 * the RS's sockets say about a phase. No I/O here, so each can be unit-tested.
 */

import { type Spread } from './stats.js';

// The figures over rounds are the benches' common arithmetic (stats.ts); net.ts and its test take them from here too.
export { median, spread, type Spread } from './stats.js';

/**
 * A table cell: `median (min–max)`, plus ` r×` when a ratio is given, and the
 * count of rounds when fewer than `rounds` gave a figure. One round: the value alone.
 */
export function formatSpread(
  s: Spread | null | undefined,
  digits: number,
  rounds: number,
  ratio?: number | null,
): string {
  if (!s) return 'n/a';
  const v = (x: number): string => x.toFixed(digits);
  let cell = s.n > 1 ? `${v(s.median)} (${v(s.min)}–${v(s.max)})` : v(s.median);
  if (ratio !== undefined) cell += ` ${ratio == null ? 'n/a' : ratio.toFixed(2)}×`;
  if (s.n < rounds) cell += ` [${s.n}/${rounds} rounds]`;
  return cell;
}

/** a ÷ b when both are finite and b is not 0. */
export function ratioOf(a: number | null | undefined, b: number | null | undefined): number | null {
  return a == null || b == null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0
    ? null
    : a / b;
}

/** One `NAPI thread switched` line of fullnat's log: when, and to which mode. */
export interface NapiSwitch {
  atMs: number;
  threaded: boolean;
}

/** The NAPI switches in fullnat's log (pino JSON lines; other lines are skipped). */
export function parseNapiSwitches(log: string): NapiSwitch[] {
  const out: NapiSwitch[] = [];
  for (const line of log.split('\n')) {
    if (!line.includes('NAPI thread switched')) continue;
    try {
      const j = JSON.parse(line) as { time?: string | number; threaded?: unknown; msg?: string };
      if (j.msg !== 'NAPI thread switched' || typeof j.threaded !== 'boolean') continue;
      const atMs = typeof j.time === 'number' ? j.time : Date.parse(String(j.time));
      if (Number.isFinite(atMs)) out.push({ atMs, threaded: j.threaded });
    } catch {
      // not a JSON line (a warning printed by Node itself)
    }
  }
  return out.sort((a, b) => a.atMs - b.atMs);
}

/** Where fullnat's NAPI work ran during one phase of a round. */
export interface NapiPhase {
  /** The thread was on when the phase began. */
  onAtStart: boolean;
  /** Switches (either way) during the phase. */
  switches: number;
  /** Share of the phase's wall time with the thread on, 0..1. */
  onShare: number;
}

/**
 * The thread's state over [fromMs, toMs], given the switches logged and the
 * state it had before the first of them (`initial`).
 */
export function napiDuring(
  switches: readonly NapiSwitch[],
  initial: boolean,
  fromMs: number,
  toMs: number,
): NapiPhase {
  let state = initial;
  for (const s of switches) if (s.atMs <= fromMs) state = s.threaded;
  const onAtStart = state;
  let on = 0;
  let at = fromMs;
  let count = 0;
  for (const s of switches) {
    if (s.atMs <= fromMs || s.atMs >= toMs) continue;
    if (state) on += s.atMs - at;
    at = s.atMs;
    state = s.threaded;
    count++;
  }
  if (state) on += toMs - at;
  const span = toMs - fromMs;
  return { onAtStart, switches: count, onShare: span > 0 ? on / span : 0 };
}

/**
 * Sockets in TIME_WAIT whose peer is one of `peers`, from `ss -Htan state
 * time-wait` (columns: Recv-Q Send-Q Local:Port Peer:Port).
 */
export function timeWaitToward(ssOutput: string, peers: readonly string[]): number {
  const set = new Set(peers);
  let n = 0;
  for (const line of ssOutput.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const peer = f[f.length - 1]!;
    const host = peer.slice(0, peer.lastIndexOf(':'));
    if (set.has(host)) n++;
  }
  return n;
}

/** Rounds the LIP plan below has room for (4 LIPs a round in one /24). */
export const MAX_ROUNDS = 60;

/**
 * The source addresses a variant's LB uses toward the RS in round `round`
 * (0-based): each variant in its own subnet, each round its own addresses
 * in it. The RS keeps every short connection's (LIP:port, RS:port) in
 * TIME_WAIT for 60 s; a round reusing a tuple still there would have its
 * SYN answered with the old connection's ACK.
 */
export function lipsFor(variant: 'kernel' | 'haproxy' | 'fullnat', round: number): string[] {
  if (!Number.isInteger(round) || round < 0 || round >= MAX_ROUNDS) {
    throw new Error(`round ${round} outside 0..${MAX_ROUNDS - 1}`);
  }
  if (variant === 'haproxy') return [`10.88.5.${round + 1}`];
  const net = variant === 'kernel' ? '10.88.3' : '10.88.4';
  return [1, 2, 3, 4].map((i) => `${net}.${4 * round + i}`);
}

/**
 * CPU seconds used between two samples of per-process CPU totals (by pid).
 * A process in both counts its growth; one that started in between counts
 * all it used; one that ended in between is lost (its last part unknown)
 * rather than subtracted whole, which made a busy machine's background load
 * come out negative. A pid whose total went down was reused: counted as new.
 */
export function cpuGrowth(
  before: ReadonlyMap<number, number>,
  after: ReadonlyMap<number, number>,
): number {
  let sum = 0;
  for (const [pid, now] of after) {
    const then = before.get(pid) ?? 0;
    sum += now >= then ? now - then : now;
  }
  return sum;
}
