/**
 * ipvsadm's output formats, printed from a Snapshot: `-Ln` (formatServices),
 * `-Ln --stats` (formatStats), `-Ln --rate` (formatRates), `-Lnc`
 * (formatConnections) and DPVS's `-G` local-address listing (formatLaddrs).
 *
 * Listings copy ipvsadm 1.31's printf layouts byte for byte (ipvsadm.c
 * list_all / print_title / print_service_entry / print_largenum / list_conn),
 * trailing blanks included (`%-10u` leaves them after InActConn), so the
 * scripts and monitoring checks written against ipvsadm read them unchanged.
 * The first line is IPVS's own, as DPVS prints it for the same reason.
 * fullnat's own columns and sections (the local address of a connection, the
 * TUN's kernel counters) are shown only when asked for (--lip, --tun-kernel).
 * Addresses are always numeric (-n is accepted and implied).
 */
import { persistenceFlags } from '../persistence.js';
import {
  addressEquals,
  addressFamily,
  addressToString,
  endpointToString,
  type IpAddress,
} from '../../wire/address.js';
import type {
  ConnectionStatus,
  ServiceKey,
  ServiceStatus,
  Snapshot,
  TrafficStats,
  TunKernelStatus,
} from '../model.js';
import type { ServiceRates } from './rates.js';

export interface FormatOptions {
  /** Connection table size, when known; the first line's `size=` (0 when unknown, as DPVS). */
  maxConnections?: number;
  /** `-L -t VIP:port`: only this service, and no version line (ipvsadm's list_service). */
  service?: ServiceKey;
  /** --exact: full numbers instead of K/M/G/T. */
  exact?: boolean;
  /** --nosort: services and real servers in the LB's order, as ipvsadm --nosort lists the kernel's. */
  noSort?: boolean;
  /** --tun-kernel: the TUN's kernel counters below the whole-table `--stats` listing. */
  tunKernel?: boolean;
}

/**
 * The IPVS version every kernel since 2.6.28 reports; parsers match
 * `^IP Virtual Server version` and some compare the number.
 */
export const IPVS_VERSION = '1.2.1';

/** The Forward column: ipvsadm's name for NAT, DPVS's for FULLNAT. */
const forwardName = (s: ServiceStatus): string => (s.forwarding === 'nat' ? 'Masq' : 'FullNat');

function pad(s: string, w: number): string {
  return s.padEnd(w);
}

function lpad(s: string, w: number): string {
  return s.padStart(w);
}

/** `10.0.0.1:80`, `[2001:db8::1]:80`: ipvsadm's addrport_to_anyname with -n. */
function addrPort(addr: IpAddress, port: number): string {
  return endpointToString(addr, port);
}

/** IPv4 before IPv6 (as ipvsadm lists them: by family, then address), each in address order. */
export function compareAddresses(a: IpAddress, b: IpAddress): number {
  if (typeof a === 'number') return typeof b === 'number' ? a - b : -1;
  if (typeof b === 'number') return 1;
  for (let i = 0; i < 16; i++) {
    const d = a.bytes[i]! - b.bytes[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

/** Non-negative integer for display; JSON may carry fractions or garbage from a confused server. */
function whole(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

/** ipvsadm's print_largenum: 9 columns, K/M/G/T past 10^8, or exact with --exact. */
export function formatLargeNumber(n: number, exact = false): string {
  const i = whole(n);
  if (exact) {
    const s = String(i);
    return lpad(s, s.length <= 8 ? 9 : s.length + 1);
  }
  if (i < 1e8) return lpad(String(i), 9);
  if (i < 1e9) return `${lpad(String(Math.floor(i / 1e3)), 8)}K`;
  if (i < 1e11) return `${lpad(String(Math.floor(i / 1e6)), 8)}M`;
  if (i < 1e14) return `${lpad(String(Math.floor(i / 1e9)), 8)}G`;
  return `${lpad(String(Math.floor(i / 1e12)), 8)}T`;
}

/**
 * "TCP  10.10.1.100:80", "TCP  [2001:db8::100]:80": ipvsadm's svc_name
 * (64 bytes since its IPv6 support; the longest IPv6 name fits) and its
 * `%-33s` column, which a longer name overflows.
 */
function serviceName(s: { protocol: string; vip: IpAddress; vport: number }): string {
  return `${s.protocol}  ${addrPort(s.vip, s.vport)}`.slice(0, 63);
}

/** ipvsadm prints the whole name in its `%-28s` column, overflowing it for long IPv6 ones. */
function realName(r: { addr: IpAddress; port: number }): string {
  return addrPort(r.addr, r.port);
}

function byAddrPort<T>(key: (t: T) => [IpAddress, number]): (a: T, b: T) => number {
  return (a, b) => {
    const [a1, a2] = key(a);
    const [b1, b2] = key(b);
    return compareAddresses(a1, b1) || a2 - b2;
  };
}

const addrPortOrder = byAddrPort<{ vip: IpAddress; vport: number }>((s) => [s.vip, s.vport]);
/**
 * ipvsadm's ipvs_cmp_services: the family first (IPv4 before IPv6), then the
 * protocol number (TCP 6 before UDP 17), then address and port.
 */
const protocolRank = (s: { protocol?: string }): number => (s.protocol === 'UDP' ? 17 : 6);
const familyRank = (s: { vip: IpAddress }): number => (typeof s.vip === 'number' ? 4 : 6);
const serviceOrder = (
  a: { vip: IpAddress; vport: number; protocol?: string },
  b: { vip: IpAddress; vport: number; protocol?: string },
): number =>
  familyRank(a) - familyRank(b) || protocolRank(a) - protocolRank(b) || addrPortOrder(a, b);
const realOrder = byAddrPort<{ addr: IpAddress; port: number }>((r) => [r.addr, r.port]);

/** The services to list, in order; `only` (from `-t` or `-u`) picks one. */
export function selectServices<T extends { vip: IpAddress; vport: number; protocol?: string }>(
  list: readonly T[],
  only?: ServiceKey,
  noSort = false,
): T[] {
  const picked = only
    ? list.filter(
        (s) =>
          addressEquals(s.vip, only.vip) &&
          s.vport === only.vport &&
          (s.protocol ?? 'TCP') === (only.protocol ?? 'TCP'),
      )
    : [...list];
  return noSort ? picked : picked.sort(serviceOrder);
}

function realsOf<T extends { addr: IpAddress; port: number }>(
  list: readonly T[],
  opts: FormatOptions,
): T[] {
  return opts.noSort ? [...list] : [...list].sort(realOrder);
}

/** ipvsadm's list_all header: not for `-L -t` (list_service prints none). */
function versionLine(snap: Snapshot, opts: FormatOptions): string[] {
  if (opts.service) return [];
  const size = whole(opts.maxConnections ?? snap.maxConnections ?? 0);
  return [`IP Virtual Server version ${IPVS_VERSION} (size=${size})`];
}

export const TITLE_SERVICES = [
  'Prot LocalAddress:Port Scheduler Flags',
  '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
];

function numbersTitle(cols: readonly string[]): string[] {
  return [
    `${pad('Prot LocalAddress:Port', 33)}${cols.map((c) => ` ${lpad(c, 8)}`).join('')}`,
    '  -> RemoteAddress:Port',
  ];
}

export const TITLE_STATS = numbersTitle(['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes']);
export const TITLE_RATE = numbersTitle(['CPS', 'InPPS', 'OutPPS', 'InBPS', 'OutBPS']);

/** `ipvsadm -Ln`. The weight shown is the one in force: 0 while a health check holds the RS out. */
export function formatServices(snap: Snapshot, opts: FormatOptions): string[] {
  const lines = [...versionLine(snap, opts), ...TITLE_SERVICES];
  for (const s of selectServices(snap.services, opts.service, opts.noSort)) {
    // printf("%s %s", svc_name, sched_name); ipvsadm's flags (" persistent 300", " mask …") follow,
    // each with its own leading blank: no trailing blank when there are none.
    lines.push(
      `${serviceName(s)} ${s.scheduler}${persistenceFlags(s.persistence, addressFamily(s.vip))}`,
    );
    for (const r of realsOf(s.realServers, opts)) {
      // "  -> %-28s %-7s %-6d %-10u %-10u": InActConn's padding stays, as ipvsadm prints it.
      lines.push(
        `  -> ${pad(realName(r), 28)} ${pad(forwardName(s), 7)} ${pad(String(whole(r.effectiveWeight)), 6)} ${pad(String(whole(r.activeConns)), 10)} ${pad(String(whole(r.inactiveConns)), 10)}`,
      );
    }
  }
  return lines;
}

function statsColumns(t: TrafficStats, exact: boolean): string {
  return [t.conns, t.inPackets, t.outPackets, t.inBytes, t.outBytes]
    .map((n) => formatLargeNumber(n, exact))
    .join('');
}

/** `ipvsadm -Ln --stats`: cumulative counters since start or the last -Z. */
export function formatStats(snap: Snapshot, opts: FormatOptions): string[] {
  const exact = opts.exact === true;
  const lines = [...versionLine(snap, opts), ...TITLE_STATS];
  for (const s of selectServices(snap.services, opts.service, opts.noSort)) {
    lines.push(`${pad(serviceName(s), 33)}${statsColumns(s.stats, exact)}`);
    for (const r of realsOf(s.realServers, opts)) {
      lines.push(`  -> ${pad(realName(r), 28)}${statsColumns(r.stats, exact)}`);
    }
  }
  if (opts.tunKernel && !opts.service && snap.tunKernel)
    lines.push('', ...formatTunKernel(snap.tunKernel, exact));
  return lines;
}

/**
 * fullnat's own addition below the whole-table `--stats` listing, with
 * `--tun-kernel` only (its rows would read as services and real servers to
 * an ipvsadm parser; not with `-t`, like the version line): the TUN's kernel counters, since the kernel
 * started counting (`-Z` does not zero them). The kernel's tx is what
 * fullnat reads, its rx what fullnat writes; the rows say it that way.
 * Errors: packets written that the kernel refused as malformed
 * (rx_frame_errors); the read side has no such counter ('-').
 */
export function formatTunKernel(tun: TunKernelStatus, exact = false): string[] {
  const s = tun.stats;
  const cell = (n: number | undefined): string =>
    n === undefined ? lpad('-', 9) : formatLargeNumber(n, exact);
  const row = (label: string, values: (number | undefined)[]): string =>
    `  -> ${pad(label, 28)}${values.map(cell).join('')}`;
  return [
    `${pad(`TUN ${tun.device} (kernel)`, 33)}${['Pkts', 'Bytes', 'Dropped', 'Errors'].map((c) => ` ${lpad(c, 8)}`).join('')}`,
    row('read by fullnat (tx)', [s.tx_packets, s.tx_bytes, s.tx_dropped, undefined]),
    row('written by fullnat (rx)', [s.rx_packets, s.rx_bytes, s.rx_dropped, s.rx_frame_errors]),
  ];
}
/** `ipvsadm -Ln --rate`. `snap` is the later snapshot (for the first line). */
export function formatRates(
  snap: Snapshot,
  rates: readonly ServiceRates[],
  opts: FormatOptions,
): string[] {
  const exact = opts.exact === true;
  const lines = [...versionLine(snap, opts), ...TITLE_RATE];
  for (const s of selectServices(rates, opts.service, opts.noSort)) {
    const t = s.rates;
    lines.push(
      `${pad(serviceName(s), 33)}${[t.cps, t.inPps, t.outPps, t.inBps, t.outBps].map((n) => formatLargeNumber(n, exact)).join('')}`,
    );
    for (const r of realsOf(s.realServers, opts)) {
      const q = r.rates;
      // ipvsadm prints the RS's CPS/PPS with a plain %8u and only humanises the byte rates.
      lines.push(
        `  -> ${pad(realName(r), 28)} ${lpad(String(whole(q.cps)), 8)} ${lpad(String(whole(q.inPps)), 8)} ${lpad(String(whole(q.outPps)), 8)}${formatLargeNumber(q.inBps, exact)}${formatLargeNumber(q.outBps, exact)}`,
      );
    }
  }
  return lines;
}

/** ipvsadm's list_conn title: `pro expire %-11s %-18s %-18s %s`. */
export const TITLE_CONNECTIONS = [
  'IPVS connection entries',
  `pro expire ${pad('state', 11)} ${pad('source', 18)} ${pad('virtual', 18)} destination`,
];

/** With --lip: fullnat's local address (LIP:lport) after ipvsadm's six columns. */
export const TITLE_CONNECTIONS_LIP = [
  'IPVS connection entries',
  `pro expire ${pad('state', 11)} ${pad('source', 18)} ${pad('virtual', 18)} ${pad('destination', 18)} local`,
];

/** "mm:ss", as ipvsadm prints /proc/net/ip_vs_conn's expiry (minutes are not capped). */
export function formatExpire(seconds: number): string {
  const s = whole(seconds);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

export interface ConnectionFormatOptions {
  /** --lip: the local address (LIP:lport) as a seventh, trailing column. */
  lip?: boolean;
}

/**
 * `ipvsadm -Lnc`: print_conn's `%-3s %-6s %-11s %-18s %-18s %s`, so awk's
 * $1…$6 are ipvsadm's; the local address only with `--lip`, after them.
 */
export function formatConnections(
  conns: readonly ConnectionStatus[],
  opts: ConnectionFormatOptions = {},
): string[] {
  const lines = [...(opts.lip ? TITLE_CONNECTIONS_LIP : TITLE_CONNECTIONS)];
  for (const c of conns) {
    const head = `${pad(c.protocol, 3)} ${pad(formatExpire(c.expiresIn), 6)} ${pad(c.state, 11)} ${pad(addrPort(c.client.addr, c.client.port), 18)} ${pad(addrPort(c.virtual.addr, c.virtual.port), 18)}`;
    const dest = addrPort(c.real.addr, c.real.port);
    lines.push(
      opts.lip
        ? `${head} ${pad(dest, 18)} ${addrPort(c.local.addr, c.local.port)}`
        : `${head} ${dest}`,
    );
  }
  return lines;
}

export const TITLE_LADDRS = `${pad('VIP:VPORT', 20)} ${pad('TOTAL', 8)} SNAT_IP`;

/**
 * DPVS's `ipvsadm -G` (get-laddr) layout, without its CONFLICTS and CONNS
 * columns: the snapshot carries no per-LIP counters.
 */
export function formatLaddrs(snap: Snapshot, service?: ServiceKey): string[] {
  const lines = [TITLE_LADDRS];
  for (const s of selectServices(snap.services, service)) {
    lines.push(`${pad(addrPort(s.vip, s.vport), 20)} ${s.laddrs.length}`);
    for (const l of [...s.laddrs].sort(compareAddresses)) {
      lines.push(`${pad('', 20)} ${pad('', 8)} ${addressToString(l)}`);
    }
  }
  return lines.map((l) => l.trimEnd());
}
