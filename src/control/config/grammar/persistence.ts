/**
 * keepalived's client persistence keywords in `virtual_server`:
 * `persistence_timeout [SECS]` (no value: 300, as keepalived) and
 * `persistence_granularity MASK` (an IPv4 netmask, or an IPv6 prefix length
 * for an IPv6 service), which alone makes the service persistent for 300 s,
 * as keepalived does.
 */
import { addressFamily } from '../../../wire/address.js';
import {
  DEFAULT_PERSISTENCE_TIMEOUT,
  parseGranularity,
  parsePersistenceTimeout,
} from '../../persistence.js';
import type { Cursor, Handler } from '../cursor.js';
import { ruled } from '../values.js';
import type { VsDraft } from './draft.js';

export function persistenceHandlers(cur: Cursor, vs: VsDraft): Record<string, Handler> {
  return {
    persistence_timeout: (k) => {
      const v = cur.lineArgs(k, 1)[0];
      vs.persistenceTimeout =
        v === undefined
          ? DEFAULT_PERSISTENCE_TIMEOUT
          : ruled(v, () => parsePersistenceTimeout(v.text));
    },
    persistence_granularity: (k) => {
      const v = cur.value(k);
      vs.persistenceGranularity = ruled(v, () => parseGranularity(v.text, addressFamily(vs.vip)));
      vs.persistenceTimeout ??= DEFAULT_PERSISTENCE_TIMEOUT;
    },
  };
}
