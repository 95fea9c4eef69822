/**
 * What a fleet node announces, from the LB's state: its LIPs (always, until
 * it exits: a draining node still needs the real servers' replies), and
 * each VIP whose services meet their quorum, unless the node drains.
 * A VIP is announced while at least one of its services is up: withdrawing
 * it for one sick port would black-hole the healthy ones.
 *
 * With connection sync, the peers' LIP prefixes are announced too, as
 * backups (bird-config.ts gives them a longer AS path): the router sends a
 * peer's real servers' replies here only while the peer is gone, and this
 * node holds those connections' state. A drain keeps them, like its own
 * LIPs: a backup attracts replies of connections the fleet already holds,
 * never new ones, and withdrawing it could leave a dead peer's connections
 * with no node at all. Until the sync has the peers' tables (`resync`)
 * nothing is announced: a node that attracted traffic before would break
 * the connections its peers carry for it.
 */
import type { L4Protocol } from '../../engine/options.js';
import {
  addressFamily,
  addressKey,
  addressToString,
  Ipv6Address,
  type IpAddress,
} from '../../wire/address.js';
import type { Logger } from '../log.js';
import type { AnnouncedPrefix, ClusterStatus } from '../model.js';

/** One service as the announcement sees it. */
export interface ServiceHealth {
  vip: IpAddress;
  vport: number;
  protocol: L4Protocol;
  /** The sum of its real servers' weights in force (0 for one a health check holds out). */
  weightInForce: number;
  /** keepalived's quorum: the least weightInForce at which the service counts as up. */
  quorum: number;
}

export interface AnnounceInput {
  services: ServiceHealth[];
  /** Every LIP the services source connections from. */
  lips: IpAddress[];
  /** `lip_prefix`es; a LIP outside all of them is announced as a host route. */
  lipPrefixes: AnnouncedPrefix[];
  /** The sync peers' `lip_prefix`es, announced as backups; absent without a `sync` block. */
  backupPrefixes?: AnnouncedPrefix[];
  draining: boolean;
  /** The sync has not got the peers' tables yet: everything is withheld. */
  resync?: boolean;
}

export type Withheld = ClusterStatus['withheld'][number];

export interface Announcements {
  /** Sorted prefix texts, backups included. */
  announce: string[];
  /** Sorted: the peers' prefixes among `announce` and `withheld`, announced with the longer AS path. */
  backup: string[];
  withheld: Withheld[];
}

const hostLength = (a: IpAddress): number => (addressFamily(a) === 4 ? 32 : 128);

/** The address with the bits past `length` cleared: bird refuses a prefix with host bits set. */
function networkOf(a: IpAddress, length: number): IpAddress {
  if (typeof a === 'number') return length === 0 ? 0 : (a & (0xffffffff << (32 - length))) >>> 0;
  const b = Uint8Array.from(a.bytes);
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, length - i * 8));
    b[i] = b[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return Ipv6Address.fromBytes(b);
}

export function prefixText(a: IpAddress, length: number): string {
  return `${addressToString(networkOf(a, length))}/${length}`;
}

function covers(p: AnnouncedPrefix, a: IpAddress): boolean {
  if (addressFamily(p.addr) !== addressFamily(a)) return false;
  return addressKey(networkOf(p.addr, p.length)) === addressKey(networkOf(a, p.length));
}

/** Pure: the prefixes a node with this state announces, and the ones it holds back. */
export function announcements(input: AnnounceInput): Announcements {
  const out = new Set<string>();
  for (const p of input.lipPrefixes) out.add(prefixText(p.addr, p.length));
  for (const lip of input.lips)
    if (!input.lipPrefixes.some((p) => covers(p, lip))) out.add(prefixText(lip, hostLength(lip)));
  // The config refuses a peer prefix overlapping this node's LIPs; should one still equal an own prefix, the own one wins.
  const backup = new Set<string>();
  for (const p of input.backupPrefixes ?? []) {
    const text = prefixText(p.addr, p.length);
    if (out.has(text)) continue;
    backup.add(text);
    out.add(text);
  }
  const vips = new Map<string, { vip: IpAddress; up: boolean }>();
  for (const s of input.services) {
    const key = addressKey(s.vip);
    const v = vips.get(key) ?? { vip: s.vip, up: false };
    v.up ||= s.weightInForce >= s.quorum;
    vips.set(key, v);
  }
  const withheld: Withheld[] = [];
  for (const { vip, up } of vips.values()) {
    const prefix = prefixText(vip, hostLength(vip));
    if (input.draining) withheld.push({ prefix, reason: 'draining' });
    else if (!up) withheld.push({ prefix, reason: 'quorum' });
    else out.add(prefix);
  }
  if (input.resync) {
    for (const prefix of out) withheld.push({ prefix, reason: 'resync' });
    out.clear();
  }
  withheld.sort((a, b) => a.prefix.localeCompare(b.prefix));
  return { announce: [...out].sort(), backup: [...backup].sort(), withheld };
}

const sameList = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/** Where the announcements go: the BGP speaker. */
export interface AnnounceTarget {
  /** `backup`: which of `prefixes` go out with the longer AS path (other entries are ignored). */
  setPrefixes(prefixes: string[], backup: readonly string[]): void;
}

/**
 * Keeps the speaker's prefixes equal to `announcements(input)`: each update
 * recomputes them; only a change reaches the speaker, and each prefix
 * announced or withdrawn is logged once.
 */
export class Announcer {
  private current: Announcements = { announce: [], backup: [], withheld: [] };
  private target: AnnounceTarget | undefined;

  constructor(private readonly log: Logger) {}

  /** The speaker (or none: without `bgp` the node announces nothing, but the view stays). */
  attach(target: AnnounceTarget | undefined): void {
    this.target = target;
    target?.setPrefixes(this.current.announce, this.current.backup);
  }

  get state(): Announcements {
    return this.current;
  }

  update(input: AnnounceInput): void {
    const next = announcements(input);
    const before = new Set(this.current.announce);
    const after = new Set(next.announce);
    const reasons = new Map(next.withheld.map((w) => [w.prefix, w.reason]));
    const backup = new Set(next.backup);
    for (const p of next.announce)
      if (!before.has(p))
        this.log.info(
          backup.has(p) ? { prefix: p, backup: true } : { prefix: p },
          'announcing prefix',
        );
    for (const p of this.current.announce)
      if (!after.has(p))
        this.log.warn({ prefix: p, reason: reasons.get(p) ?? 'removed' }, 'withdrawing prefix');
    const backupMoved = !sameList(next.backup, this.current.backup);
    this.current = next;
    if (backupMoved || before.size !== after.size || [...after].some((p) => !before.has(p)))
      this.target?.setPrefixes(next.announce, next.backup);
  }
}
