import type { Cursor, Handler } from '../cursor.js';
import type { Token } from '../lexer.js';
import { intIn, seconds } from '../values.js';
import type { Timing } from './draft.js';

/** delay_loop / retry / delay_before_retry: valid at every level, inner wins. */
export function timingHandlers(cur: Cursor, t: Timing): Record<string, Handler> {
  return {
    delay_loop: (k) => (t.delayLoop = seconds(cur.value(k), k.text, false)),
    retry: (k) => (t.retry = retries(cur.value(k), k.text)),
    delay_before_retry: (k) => (t.delayBeforeRetry = seconds(cur.value(k), k.text, true)),
  };
}

/**
 * The timing keywords of a check block: the three above, keepalived's old
 * `nb_get_retry` and DPVS's `nb_sock_retry` (its TCP_CHECK's spelling).
 */
export function checkTimingHandlers(cur: Cursor, t: Timing): Record<string, Handler> {
  return {
    ...timingHandlers(cur, t),
    nb_get_retry: (k) => (t.retry = retries(cur.value(k), k.text)),
    nb_sock_retry: (k) => (t.retry = retries(cur.value(k), k.text)),
  };
}

/** `nb_get_retry`, `nb_sock_retry` and `retry` set one value, so a block may hold only one of them. */
export const CHECK_TIMING_ALIASES: Readonly<Record<string, string>> = {
  nb_get_retry: 'retry',
  nb_sock_retry: 'retry',
};

export function retries(t: Token, what: string): number {
  // Here `retry` counts the consecutive failures that take an RS out, so 0 means nothing.
  return intIn(t, `${what} (consecutive failures before DOWN)`, 1, 65535);
}
