/**
 * keepalived's virtual_server keywords that change nothing in a FULLNAT
 * service here, read so that a keepalived file works unchanged: `ip_family`
 * is checked against the VIP; `ha_suspend`, `warmup` and `smtp_alert` are
 * accepted with a warning saying what fullnat does instead.
 */
import { addressFamily } from '../../../wire/address.js';
import type { Cursor, Handler } from '../cursor.js';
import { fail } from '../error.js';
import type { Token } from '../lexer.js';
import { seconds } from '../values.js';
import type { VsTarget } from './virtual-server-group.js';

export function keepalivedVsKeywords(cur: Cursor, target: VsTarget): Record<string, Handler> {
  const what = target.group
    ? `virtual_server group ${target.group.name}`
    : `this virtual_server's VIP`;
  return {
    ip_family: (k) => {
      const v = cur.value(k);
      const family = familyOf(v);
      const vip = addressFamily(target.vip);
      if (family !== vip) fail(v, `ip_family ${v.text} does not match ${what} (IPv${vip})`);
    },
    ha_suspend: (k) => {
      cur.args(k, 0);
      cur.diag.warn(
        k,
        "ha_suspend has no effect: fullnat sees no VRRP state, so its checks always run (keepalived's VRRP beside it moves the VIP)",
      );
    },
    warmup: (k) => {
      seconds(cur.value(k), k.text, true);
      cur.diag.warn(k, 'warmup has no effect: the first check of each real server starts at once');
    },
    smtp_alert: (k) => {
      cur.lineArgs(k, 1);
      cur.diag.warn(k, 'smtp_alert has no effect: fullnat sends no mail; state changes are logged');
    },
  };
}

function familyOf(t: Token): 4 | 6 {
  if (t.text === 'inet') return 4;
  if (t.text === 'inet6') return 6;
  return fail(t, `bad ip_family '${t.text}' (expected inet or inet6)`);
}
