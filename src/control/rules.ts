/**
 * The domain rules of the control plane, in one place and with one wording
 * each: which addresses may be a VIP, RS or LIP, ports, weights, schedulers,
 * the connection table, MTUs, TCP timeouts, a fleet node's BGP values. Every
 * front end applies them —
 * the configuration file (config/), `ctl`'s argv (ctl/argv.ts) and the
 * control socket's requests (socket/validate.ts) — so the same bad value is
 * refused everywhere with the same reason, and each front end only adds
 * where the value came from (`FILE:LINE: `, `illegal <option> '<text>': `,
 * `service.vip: `).
 *
 * A rule takes the value as text, the way the operator wrote it (the socket
 * renders its JSON numbers as text first; its addresses, parsed already, go
 * through checkAddress), and returns the parsed value or throws a RuleError
 * carrying the reason.
 */
import type { L4Protocol } from '../engine/options.js';
import { SCHEDULER_NAMES, type SchedulerName } from '../engine/sched/scheduler.js';
import {
  addressEquals,
  addressFamily,
  addressKey,
  addressToString,
  Ipv6Address,
  type IpAddress,
} from '../wire/address.js';
import { ipv4ToString, parseIpv4 } from '../wire/bytes.js';
import type { AnnouncedPrefix } from './model.js';
import { maxPrefixLength, networkOf, prefixToString } from './prefix.js';

/** A value a rule refuses; `reason` is the one-line text every front end shows. */
export class RuleError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'RuleError';
  }
}

/** `bad WHAT 'TEXT' (expected an integer MIN..MAX)`: the wording of every integer range. */
export function integerIn(text: string, what: string, min: number, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) {
    throw new RuleError(`bad ${what} '${text}' (expected an integer ${min}..${max})`);
  }
  return n;
}

// ---------------------------------------------------------------- addresses

/**
 * VIPs, real servers and local addresses share one class: a unicast address
 * that can be routed through the TUN device. The kernel drops loopback
 * (127/8), "this network" (0/8), multicast (224/4) and the reserved block
 * with the limited broadcast (240/4) arriving on it, so none of them can
 * carry a FULLNAT connection in either role.
 */
function routable(a: number, text: string): number {
  const first = a >>> 24;
  if (first === 0 || first === 127 || first >= 224) {
    throw new RuleError(`IPv4 address ${text} is out of range (not a routable unicast address)`);
  }
  return a;
}

/**
 * The IPv6 classes no role can take, each for its own reason: the
 * unspecified address and loopback (::1) never cross a device; multicast
 * (ff00::/8) is not unicast; a link-local address (fe80::/10) means nothing
 * without the zone of one link, and the LB's addresses live on routes into
 * the TUN, not on a link; an IPv4-mapped address (::ffff:0:0/96) is how a
 * dual-stack socket shows an IPv4 peer, never an address on the wire: an
 * IPv4 real server or LIP is written as IPv4.
 */
function ipv6Class(a: Ipv6Address): string | null {
  const b = a.bytes;
  if (b[0] === 0xff) return 'multicast';
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return 'link-local';
  if (a.mappedIpv4() >= 0) return 'IPv4-mapped; write the IPv4 address';
  let zeroPrefix = true;
  for (let i = 0; i < 15; i++) if (b[i] !== 0) zeroPrefix = false;
  if (zeroPrefix && b[15] === 0) return 'unspecified';
  if (zeroPrefix && b[15] === 1) return 'loopback';
  return null;
}

function routable6(a: Ipv6Address, text: string): Ipv6Address {
  const why = ipv6Class(a);
  if (why !== null) {
    throw new RuleError(
      `IPv6 address ${text} is out of range (not a routable unicast address: ${why})`,
    );
  }
  return a;
}

/** A VIP, RS or LIP: a dotted quad or IPv6 text (RFC 4291, no brackets, no zone). */
export function parseAddress(text: string): IpAddress {
  if (!text.includes(':')) {
    const a = parseIpv4(text);
    if (a < 0) throw new RuleError(`bad IPv4 address '${text}'`);
    return routable(a, text);
  }
  const a = Ipv6Address.parse(text);
  if (a === null) throw new RuleError(`bad IPv6 address '${text}'`);
  return routable6(a, text);
}

/** A VIP, RS or LIP already parsed: a host-order IPv4 number or an Ipv6Address (the control socket's form). */
export function checkAddress(a: IpAddress): IpAddress {
  if (typeof a !== 'number') return routable6(a, a.text);
  if (!Number.isInteger(a) || a < 0 || a > 0xffffffff) {
    throw new RuleError(`bad IPv4 address '${a}'`);
  }
  return routable(a, ipv4ToString(a));
}

/** "IPv4" or "IPv6", for messages. */
export function familyName(a: IpAddress): string {
  return `IPv${addressFamily(a)}`;
}

/**
 * Why a real server at `rs` cannot serve the VIP `vip` (null when it can):
 * an IPv6 VIP takes IPv6 real servers and IPv4 ones (FNAT64), an IPv4 VIP
 * only IPv4 ones — FNAT46 would need an IPv6 TOA for an IPv4 client, which
 * no real-server module reads.
 */
export function realServerFamilyConflict(vip: IpAddress, rs: IpAddress): string | null {
  if (addressFamily(vip) === 4 && addressFamily(rs) === 6) {
    return `real server ${addressToString(rs)} is IPv6 but the virtual_server ${addressToString(vip)} is IPv4 (FNAT46, IPv4 clients to IPv6 real servers, is not supported)`;
  }
  return null;
}

/** The parts an address can play; each address plays at most one. */
export type AddressRole = 'virtual_server' | 'real server' | 'local';

/** The addresses that already play each part, as `addressKey`s (one key per address, either family). */
export interface AddressRoles {
  vips: ReadonlySet<string>;
  rips: ReadonlySet<string>;
  lips: ReadonlySet<string>;
}

const ROLE_TEXT: Record<AddressRole, string> = {
  virtual_server: 'virtual_server address',
  'real server': 'real server address',
  local: 'local address',
};

/**
 * Why `addr` cannot play `role` beside `roles` (null when it can): VIPs, RS
 * and LIPs must differ, since a shared address would loop through the TUN
 * device. The config file adds where the other use is; ctl and the socket
 * ask the running LB.
 */
export function addressRoleConflict(
  addr: IpAddress,
  role: AddressRole,
  roles: AddressRoles,
): string | null {
  const others: [AddressRole, ReadonlySet<string>][] = [
    ['virtual_server', roles.vips],
    ['real server', roles.rips],
    ['local', roles.lips],
  ];
  const key = addressKey(addr);
  for (const [other, set] of others) {
    if (other !== role && set.has(key)) {
      return `${ROLE_TEXT[role]} ${addressToString(addr)} is also a ${ROLE_TEXT[other]}`;
    }
  }
  return null;
}

// ---------------------------------------------------------------- ports, weights, schedulers

export const MIN_PORT = 1;
export const MAX_PORT = 65535;

/** A TCP port: a service's, a real server's, a check's or a local port range's end. */
export function parsePort(text: string, what = 'port'): number {
  return integerIn(text, what, MIN_PORT, MAX_PORT);
}

/** ipvsadm's weight range; 0 keeps established connections and takes no new ones. */
export const MAX_WEIGHT = 65535;
/** ipvsadm's and keepalived's weight when none is given. */
export const DEFAULT_WEIGHT = 1;

export function parseWeight(text: string): number {
  return integerIn(text, 'weight', 0, MAX_WEIGHT);
}

/** keepalived and ipvsadm (DEF_SCHED) default to wlc when no scheduler is given. */
export const DEFAULT_SCHEDULER: SchedulerName = 'wlc';

export function parseScheduler(text: string): SchedulerName {
  const s = SCHEDULER_NAMES.find((x) => x === text);
  if (!s) {
    throw new RuleError(`unknown scheduler '${text}' (valid: ${SCHEDULER_NAMES.join(', ')})`);
  }
  return s;
}

// ---------------------------------------------------------------- sizes and times

/** The connection table's size (`max_connections`): its indexes are signed 32-bit. */
export const MAX_CONNECTION_TABLE = 0x7fffffff;

export function parseConnectionTableSize(text: string, what = 'max_connections'): number {
  return integerIn(text, what, 1, MAX_CONNECTION_TABLE);
}

/** 576: the datagram size every IPv4 host must accept (RFC 791). */
export const MIN_MTU = 576;
export const MAX_MTU = 65535;

/** 1280: the link MTU every IPv6 path must carry (RFC 8200); an IPv6 real server's path is never below it. */
export const MIN_MTU_V6 = 1280;

/** An LB->RS path MTU (`rs_mtu`, a real server's `mtu`). */
export function parseMtu(text: string, what = 'mtu'): number {
  return integerIn(text, what, MIN_MTU, MAX_MTU);
}

/**
 * The TUN's queue (`tun_txqueuelen`): the ring of packets the kernel has
 * routed into the device and the LB has not read yet. The kernel sizes the
 * ring from it; the ceiling bounds what a stalled reader can hold (each
 * entry may be a 64 KiB super-packet).
 */
export const MIN_TUN_TXQUEUELEN = 1;
export const MAX_TUN_TXQUEUELEN = 65536;

export function parseTunTxQueueLen(text: string, what = 'tun_txqueuelen'): number {
  return integerIn(text, what, MIN_TUN_TXQUEUELEN, MAX_TUN_TXQUEUELEN);
}

/** TCP state timeouts become milliseconds in a Uint32Array (engine/tcp-state.ts). */
export const MAX_TIMEOUT_S = Math.floor(0xffffffff / 1000);

/** A TCP state timeout in whole seconds (`timeout_established`, …). */
export function parseTimeout(text: string, what: string): number {
  return integerIn(text, what, 1, MAX_TIMEOUT_S);
}

/** A service's transport protocol as ipvsadm names it: TCP or UDP. */
export function parseProtocol(text: string): L4Protocol {
  if (text === 'TCP' || text === 'UDP') return text;
  throw new RuleError(`bad protocol '${text}' (expected TCP or UDP)`);
}

/**
 * keepalived's `quorum`: the least total weight in force at which a service
 * counts as up (an unsigned 32-bit value there too).
 */
export const MAX_QUORUM = 0xffffffff;

export function parseQuorum(text: string): number {
  return integerIn(text, 'quorum', 1, MAX_QUORUM);
}

/** `drain_timeout`: whole seconds a draining node keeps forwarding; 0 = none, at most a day. */
export const MAX_DRAIN_TIMEOUT_S = 86400;

export function parseDrainTimeout(text: string, what = 'drain_timeout'): number {
  return integerIn(text, what, 0, MAX_DRAIN_TIMEOUT_S);
}

// ---------------------------------------------------------------- BGP (a fleet node)

/** AS_TRANS (RFC 6793): the 2-byte stand-in for a 4-byte AS in old speakers, never an AS of its own. */
export const AS_TRANS = 23456;
/** 4-byte AS numbers (RFC 6793); 0 is reserved (RFC 7607). */
export const MAX_AS = 4294967295;

/** `local_as`, `remote_as`. */
export function parseAsNumber(text: string, what = 'AS number'): number {
  const n = integerIn(text, what, 1, MAX_AS);
  if (n === AS_TRANS) {
    throw new RuleError(
      `bad ${what} '${text}' (${AS_TRANS} is AS_TRANS, RFC 6793: a stand-in, never a real AS)`,
    );
  }
  return n;
}

/** The BGP identifier: an IPv4 address, not 0.0.0.0 (RFC 6286); any other value, as routers allow. */
export function parseRouterId(text: string, what = 'router_id'): number {
  const a = parseIpv4(text);
  if (a < 0) throw new RuleError(`bad ${what} '${text}' (expected an IPv4 address)`);
  if (a === 0) throw new RuleError(`bad ${what} '${text}' (a BGP identifier is never 0.0.0.0)`);
  return a;
}

/** The hold time a session gets when none is given: keepalives every 3 s, down after 9. */
export const DEFAULT_HOLD_TIME = 9;

/** Seconds: 0 (no keepalives, the session never times out) or 3..65535 (RFC 4271 4.2). */
export function parseHoldTime(text: string, what = 'hold_time'): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n === 0 || (n >= 3 && n <= 65535))) {
    throw new RuleError(
      `bad ${what} '${text}' (expected 0, or seconds 3..65535: RFC 4271 allows no 1 or 2)`,
    );
  }
  return n;
}

/** BFD: milliseconds between packets (default 100) and packets missed before down (default 3). */
export const DEFAULT_BFD_INTERVAL_MS = 100;
export const MIN_BFD_INTERVAL_MS = 10;
export const MAX_BFD_INTERVAL_MS = 10000;
export const DEFAULT_BFD_MULTIPLIER = 3;
export const MAX_BFD_MULTIPLIER = 255;

export function parseBfdInterval(text: string, what = 'bfd_interval'): number {
  return integerIn(text, what, MIN_BFD_INTERVAL_MS, MAX_BFD_INTERVAL_MS);
}

export function parseBfdMultiplier(text: string, what = 'bfd_multiplier'): number {
  return integerIn(text, what, 1, MAX_BFD_MULTIPLIER);
}

/** A standard community (RFC 1997): `ASN:VALUE`, two 16-bit halves. */
export function parseCommunity(text: string, what = 'community'): [number, number] {
  const m = /^(\d+):(\d+)$/.exec(text);
  const asn = m ? Number(m[1]) : NaN;
  const value = m ? Number(m[2]) : NaN;
  if (!(asn <= 0xffff && value <= 0xffff)) {
    throw new RuleError(`bad ${what} '${text}' (expected ASN:VALUE, each 0..65535)`);
  }
  return [asn, value];
}

/** MULTI_EXIT_DISC: an unsigned 32-bit value. */
export function parseMed(text: string, what = 'med'): number {
  return integerIn(text, what, 0, 0xffffffff);
}

/**
 * A prefix a node announces (`lip_prefix 10.79.9.0/28`): a routable network
 * (the address rules of a LIP), a length 1..32 or 1..128, and no host bits
 * set — a router would take `10.79.9.3/28` as 10.79.9.0/28, which is not
 * what the operator meant to be sure of.
 */
export function parsePrefix(text: string, what = 'prefix'): AnnouncedPrefix {
  const slash = text.indexOf('/');
  if (slash < 0) throw new RuleError(`bad ${what} '${text}' (expected ADDRESS/LENGTH)`);
  const addr = parseAddress(text.slice(0, slash));
  const max = maxPrefixLength(addr);
  const length = integerIn(text.slice(slash + 1), `${what} length`, 1, max);
  const net = networkOf({ addr, length });
  if (!addressEquals(net.addr, addr)) {
    throw new RuleError(
      `bad ${what} '${text}' (host bits set: the network is ${prefixToString(net)})`,
    );
  }
  return { addr, length };
}

// ---------------------------------------------------------------- connection sync (a fleet node)

/** The UDP port of the sync channel when none is given. */
export const DEFAULT_SYNC_PORT = 8848;
/** Milliseconds between heartbeats when none is given. */
export const DEFAULT_SYNC_HEARTBEAT_MS = 200;
export const MIN_SYNC_HEARTBEAT_MS = 10;
export const MAX_SYNC_HEARTBEAT_MS = 60_000;
/** Heartbeats a peer may miss before it counts as down. */
export const SYNC_DOWN_AFTER_HEARTBEATS = 5;
/** Milliseconds a starting node waits for its peers' tables when none is given. */
export const DEFAULT_SYNC_RESYNC_TIMEOUT_MS = 2000;
export const MAX_SYNC_RESYNC_TIMEOUT_MS = 600_000;
/** A node id is one byte of every sync message; 0 means "this node" in the engine's entries. */
export const MAX_SYNC_NODE_ID = 255;
/** The shortest shared key: 128 bits, the strength HMAC-SHA256 truncated to 16 bytes gives. */
export const MIN_SYNC_KEY_BYTES = 16;

/** `node_id` of this node or a peer: 1..255. */
export function parseSyncNodeId(text: string, what = 'node_id'): number {
  return integerIn(text, what, 1, MAX_SYNC_NODE_ID);
}

/** `nodes`: how many shares the LIP ports are cut into. */
export function parseSyncNodes(text: string, what = 'nodes'): number {
  return integerIn(text, what, 1, MAX_SYNC_NODE_ID);
}

export function parseSyncHeartbeat(text: string, what = 'heartbeat'): number {
  return integerIn(text, what, MIN_SYNC_HEARTBEAT_MS, MAX_SYNC_HEARTBEAT_MS);
}

/** 0 = announce at once, without waiting for any peer's table. */
export function parseSyncResyncTimeout(text: string, what = 'resync_timeout'): number {
  return integerIn(text, what, 0, MAX_SYNC_RESYNC_TIMEOUT_MS);
}

export function parseMaxSynced(text: string, what = 'max_synced'): number {
  return integerIn(text, what, 1, MAX_CONNECTION_TABLE);
}

/**
 * The address a node's sync channel listens on or a peer's: unicast, and
 * loopback too (a fleet of processes on one host). Unlike a VIP, RS or LIP
 * it is an address of the host itself, never routed into the TUN.
 */
export function parseSyncAddress(text: string, what = 'address'): IpAddress {
  if (!text.includes(':')) {
    const a = parseIpv4(text);
    if (a < 0) throw new RuleError(`bad ${what} '${text}' (expected an IPv4 or IPv6 address)`);
    const first = a >>> 24;
    if (first === 0 || first >= 224)
      throw new RuleError(`bad ${what} '${text}' (not a unicast address)`);
    return a;
  }
  const a = Ipv6Address.parse(text);
  if (a === null) throw new RuleError(`bad ${what} '${text}' (expected an IPv4 or IPv6 address)`);
  const why = ipv6Class(a);
  if (why !== null && why !== 'loopback')
    throw new RuleError(`bad ${what} '${text}' (not a unicast address: ${why})`);
  return a;
}
