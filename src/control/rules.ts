/**
 * The domain rules of the control plane, in one place and with one wording
 * each: which addresses may be a VIP, RS or LIP, ports, weights, schedulers,
 * the connection table, MTUs, TCP timeouts. Every front end applies them —
 * the configuration file (config/), `ctl`'s argv (ctl/argv.ts) and the
 * control socket's requests (socket/validate.ts) — so the same bad value is
 * refused everywhere with the same reason, and each front end only adds
 * where the value came from (`FILE:LINE: `, `illegal <option> '<text>': `,
 * `service.vip: `).
 *
 * A rule takes the value as text, the way the operator wrote it (the socket
 * renders its JSON numbers as text first; its addresses, already numbers, go
 * through checkAddress), and returns the parsed value or throws a RuleError
 * carrying the reason.
 */
import { SCHEDULER_NAMES, type SchedulerName } from '../engine/sched/scheduler.js';
import { ipv4ToString, parseIpv4 } from '../wire/bytes.js';

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

/** A dotted-quad VIP, RS or LIP. */
export function parseAddress(text: string): number {
  const a = parseIpv4(text);
  if (a < 0) throw new RuleError(`bad IPv4 address '${text}'`);
  return routable(a, text);
}

/** A VIP, RS or LIP given as a host-order number (the control socket's form). */
export function checkAddress(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new RuleError(`bad IPv4 address '${n}'`);
  }
  return routable(n, ipv4ToString(n));
}

/** The parts an address can play; each address plays at most one. */
export type AddressRole = 'virtual_server' | 'real server' | 'local';

/** The addresses that already play each part. */
export interface AddressRoles {
  vips: ReadonlySet<number>;
  rips: ReadonlySet<number>;
  lips: ReadonlySet<number>;
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
  addr: number,
  role: AddressRole,
  roles: AddressRoles,
): string | null {
  const others: [AddressRole, ReadonlySet<number>][] = [
    ['virtual_server', roles.vips],
    ['real server', roles.rips],
    ['local', roles.lips],
  ];
  for (const [other, set] of others) {
    if (other !== role && set.has(addr)) {
      return `${ROLE_TEXT[role]} ${ipv4ToString(addr)} is also a ${ROLE_TEXT[other]}`;
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
