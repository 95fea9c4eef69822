/**
 * The kernel's count of datagrams dropped for an unknown IP protocol, in
 * this network namespace: how to tell that opp UOA datagrams (protocol 248)
 * reach a real server that has no receiver. `nstat -az IpInUnknownProtos
 * Ip6InUnknownProtos` reads the same counters.
 */
import { readFileSync } from 'node:fs';

export interface UnknownProtos {
  /** Ip: InUnknownProtos from /proc/net/snmp; undefined when unreadable. */
  ipv4?: number;
  /** Ip6InUnknownProtos from /proc/net/snmp6; undefined when unreadable (no IPv6). */
  ipv6?: number;
}

/** InUnknownProtos from /proc/net/snmp's text: a header line, then the values line, both "Ip:". */
export function parseSnmp(text: string): number | undefined {
  const lines = text.split('\n').filter((l) => l.startsWith('Ip: '));
  const [names, values] = [lines[0]?.split(/\s+/), lines[1]?.split(/\s+/)];
  const at = names?.indexOf('InUnknownProtos') ?? -1;
  const v = at > 0 ? Number(values?.[at]) : NaN;
  return Number.isFinite(v) ? v : undefined;
}

/** Ip6InUnknownProtos from /proc/net/snmp6's text: one "Name value" line each. */
export function parseSnmp6(text: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith('Ip6InUnknownProtos'));
  const v = Number(line?.trim().split(/\s+/)[1]);
  return Number.isFinite(v) ? v : undefined;
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export function readUnknownProtos(): UnknownProtos {
  const ipv4 = parseSnmp(readOr('/proc/net/snmp'));
  const ipv6 = parseSnmp6(readOr('/proc/net/snmp6'));
  return { ...(ipv4 === undefined ? {} : { ipv4 }), ...(ipv6 === undefined ? {} : { ipv6 }) };
}
