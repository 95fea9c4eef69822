/**
 * bird2's configuration for a fleet node, as text. Pure: the same BgpSpec
 * and prefixes give the same file, so a rewrite that changes nothing is
 * seen as such and bird is not reconfigured for it.
 *
 * The prefixes are `protocol static` routes to `blackhole` and there is no
 * `protocol kernel`: bird learns them only to announce them, and never
 * touches this node's routing table (the LB's own routes into its TUN
 * device carry the traffic). Only those static routes are exported.
 *
 * Backups (the sync peers' LIP prefixes) sit in static protocols of their
 * own, which exist only while there is one: the export filter prepends the
 * local AS to them BACKUP_PREPEND times, so a router picks the owner's
 * shorter path while the owner is up and the survivors' once it is gone.
 */
import { addressFamily, addressToString, type IpAddress } from '../../wire/address.js';
import type { BgpNeighborSpec, BgpSpec } from '../model.js';

/** The static protocols holding the announced prefixes; the export filter matches them by name. */
export const STATIC_V4 = 'fullnat_announce';
export const STATIC_V6 = 'fullnat_announce6';
/** The static protocols holding the backups, exported with the longer AS path. */
export const BACKUP_V4 = 'fullnat_backup';
export const BACKUP_V6 = 'fullnat_backup6';
/**
 * Times the local AS is prepended to a backup: the router sees a path of
 * 1 + BACKUP_PREPEND ASes over eBGP, longer than any owner's.
 */
export const BACKUP_PREPEND = 3;
/** The export filter every fullnat BGP session uses (and an attached bird's sessions should). */
export const EXPORT_FILTER = 'fullnat_export';
const BFD_PROTOCOL = 'fullnat_bfd';

export interface BirdConfigOptions {
  /**
   * `include`: only the static protocols and the export filter, for a bird
   * the operator runs (`bird_include`); `full` (default): the whole file of
   * a bird fullnat starts.
   */
  mode?: 'full' | 'include';
  /** Which of the prefixes are backups (the sync peers' LIP prefixes); default none. */
  backup?: readonly string[];
}

/** Dotted text of a host-order IPv4 number (the router id). */
export function ipv4Text(n: number): string {
  return addressToString(n >>> 0);
}

/** The bird protocol name of a neighbour's session: stable across reloads, from its address. */
export function sessionName(addr: IpAddress): string {
  return `fullnat_bgp_${addressToString(addr).replace(/[.:]/g, '_')}`;
}

/** A prefix's family by its text: IPv6 prefixes hold a colon. */
export function prefixFamily(prefix: string): 4 | 6 {
  return prefix.includes(':') ? 6 : 4;
}

function staticProtocol(name: string, channel: 'ipv4' | 'ipv6', prefixes: string[]): string[] {
  return [
    `protocol static ${name} {`,
    `    ${channel};`,
    ...prefixes.map((p) => `    route ${p} blackhole;`),
    '}',
  ];
}

function exportFilter(bgp: BgpSpec, backups: boolean): string[] {
  const set = [
    ...bgp.communities.map(([asn, value]) => `        bgp_community.add((${asn}, ${value}));`),
    ...(bgp.med === undefined ? [] : [`        bgp_med = ${bgp.med};`]),
  ];
  const prepend = Array.from(
    { length: BACKUP_PREPEND },
    () => `        bgp_path.prepend(${bgp.localAs});`,
  );
  return [
    `filter ${EXPORT_FILTER} {`,
    `    if proto = "${STATIC_V4}" || proto = "${STATIC_V6}" then {`,
    ...set,
    '        accept;',
    '    }',
    ...(backups
      ? [
          `    if proto = "${BACKUP_V4}" || proto = "${BACKUP_V6}" then {`,
          ...prepend,
          ...set,
          '        accept;',
          '    }',
        ]
      : []),
    '    reject;',
    '}',
  ];
}

function bgpProtocol(bgp: BgpSpec, n: BgpNeighborSpec): string[] {
  // A session carries the prefixes of its own address family: IPv6 over an IPv4 session needs an IPv6 next hop bird cannot pick for us.
  const channel = addressFamily(n.addr) === 4 ? 'ipv4' : 'ipv6';
  return [
    `protocol bgp ${sessionName(n.addr)} {`,
    `    local as ${bgp.localAs};`,
    `    neighbor ${addressToString(n.addr)} as ${n.remoteAs};`,
    `    hold time ${n.holdTime};`,
    ...(n.sourceAddress === undefined
      ? []
      : [`    source address ${addressToString(n.sourceAddress)};`]),
    ...(n.bfd ? ['    bfd on;'] : []),
    `    ${channel} {`,
    '        import none;',
    `        export filter ${EXPORT_FILTER};`,
    '        next hop self;',
    '    };',
    '}',
  ];
}

/**
 * The configuration announcing `prefixes` (text, `10.0.0.1/32`,
 * `2001:db8::1/128`) to the neighbours of `bgp`, those in `opts.backup`
 * with the longer AS path.
 */
export function birdConfig(bgp: BgpSpec, prefixes: string[], opts: BirdConfigOptions = {}): string {
  const isBackup = new Set(opts.backup ?? []);
  const own = prefixes.filter((p) => !isBackup.has(p));
  const backup = prefixes.filter((p) => isBackup.has(p));
  const v4 = own.filter((p) => prefixFamily(p) === 4);
  const v6 = own.filter((p) => prefixFamily(p) === 6);
  const lines = ['# Written by fullnat; rewritten whenever what it announces changes.'];
  if (opts.mode !== 'include') {
    // Not stderr: bird outlives this process across a handover, and a write to a closed pipe would kill it.
    lines.push(`router id ${ipv4Text(bgp.routerId)};`, 'log syslog all;', '', 'protocol device {}');
  }
  // Both static protocols always exist, so the filter's names resolve and a first IPv6 VIP is an edit, not a new protocol.
  lines.push(
    '',
    ...staticProtocol(STATIC_V4, 'ipv4', v4),
    ...staticProtocol(STATIC_V6, 'ipv6', v6),
  );
  if (backup.length > 0)
    lines.push(
      '',
      ...staticProtocol(
        BACKUP_V4,
        'ipv4',
        backup.filter((p) => prefixFamily(p) === 4),
      ),
      ...staticProtocol(
        BACKUP_V6,
        'ipv6',
        backup.filter((p) => prefixFamily(p) === 6),
      ),
    );
  lines.push('', ...exportFilter(bgp, backup.length > 0));
  if (opts.mode === 'include') return `${lines.join('\n')}\n`;
  if (bgp.neighbors.some((n) => n.bfd)) {
    lines.push(
      '',
      `protocol bfd ${BFD_PROTOCOL} {`,
      '    interface "*" {',
      `        interval ${bgp.bfdInterval} ms;`,
      `        multiplier ${bgp.bfdMultiplier};`,
      '    };',
      '}',
    );
  }
  for (const n of bgp.neighbors) lines.push('', ...bgpProtocol(bgp, n));
  return `${lines.join('\n')}\n`;
}
