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

export function retries(t: Token, what: string): number {
  // Here `retry` counts the consecutive failures that take an RS out, so 0 means nothing.
  return intIn(t, `${what} (consecutive failures before DOWN)`, 1, 65535);
}
