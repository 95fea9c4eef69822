/**
 * Client persistence's values as the config file, `fullnat ctl` and the
 * control socket take them (keepalived's `persistence_timeout` and
 * `persistence_granularity`, ipvsadm's `-p [timeout]` and `-M netmask`),
 * and as `ctl -L` prints them.
 */
import { MAX_PERSISTENCE_TIMEOUT } from '../engine/persistence.js';
import { ipv4ToString, parseIpv4 } from '../wire/bytes.js';
import { integerIn, RuleError } from './rules.js';

export { MAX_PERSISTENCE_TIMEOUT };

/** keepalived's and ipvsadm's timeout when none is given (IPVS_SVC_PERSISTENT_TIMEOUT). */
export const DEFAULT_PERSISTENCE_TIMEOUT = 300;

/** One client address per template: the IPv4 and IPv6 granularity when none is given. */
export const FULL_MASK4 = 0xffffffff;
export const FULL_PREFIX6 = 128;

/** A persistent service's settings; `granularity` an IPv4 netmask (32-bit number) or an IPv6 prefix length. */
export interface Persistence {
  timeout: number;
  granularity: number;
}

export function parsePersistenceTimeout(text: string, what = 'persistence_timeout'): number {
  return integerIn(text, `${what} (seconds)`, 1, MAX_PERSISTENCE_TIMEOUT);
}

/**
 * The granularity for a service of `family`: an IPv4 netmask in dotted
 * form (any mask, as keepalived and the kernel take it), or an IPv6 prefix
 * length 1..128 (keepalived's and ipvsadm's IPv6 form).
 */
export function parseGranularity(
  text: string,
  family: 4 | 6,
  what = 'persistence_granularity',
): number {
  if (family === 6) {
    if (text.includes('.') || text.includes(':'))
      throw new RuleError(
        `${what} '${text}': an IPv6 service takes a prefix length 1..128 (e.g. 64), not a mask`,
      );
    return integerIn(text, `${what} (IPv6 prefix length)`, 1, 128);
  }
  const m = parseIpv4(text);
  if (m < 0 || !text.includes('.'))
    throw new RuleError(`${what} '${text}': an IPv4 service takes a netmask such as 255.255.255.0`);
  return m >>> 0;
}

/** ipvsadm's listing: ` persistent 300`, and ` mask 255.255.255.0` (or ` mask 64`) when not one address. */
export function persistenceFlags(p: Persistence | undefined, family: 4 | 6): string {
  if (!p) return '';
  const full = family === 4 ? FULL_MASK4 : FULL_PREFIX6;
  const mask =
    p.granularity === full
      ? ''
      : ` mask ${family === 4 ? ipv4ToString(p.granularity) : String(p.granularity)}`;
  return ` persistent ${p.timeout}${mask}`;
}
