/**
 * What the receiver's eBPF object holds (native/bpf/toa.bpf.c with its UDP
 * half, uoa.bpf.c): its programs and how each attaches, the pins and maps,
 * the counters' names, and those counters read from a bpftool map dump.
 */
import { endianness } from 'node:os';

import { TC_PROGRAMS } from './tc.js';

export type AttachKind =
  | 'sock_ops'
  | 'getpeername4'
  | 'getpeername6'
  | 'recvmsg4'
  | 'recvmsg6'
  | 'sendmsg4'
  | 'sendmsg6'
  | 'connect4'
  | 'connect6';

/** The cgroup programs in the object, by the names bpftool pins them under. */
export const PROGRAMS: readonly { name: string; attach: AttachKind }[] = [
  { name: 'toa_sockops', attach: 'sock_ops' },
  { name: 'toa_peername4', attach: 'getpeername4' },
  { name: 'toa_peername6', attach: 'getpeername6' },
  { name: 'uoa_recvmsg4', attach: 'recvmsg4' },
  { name: 'uoa_recvmsg6', attach: 'recvmsg6' },
  { name: 'uoa_sendmsg4', attach: 'sendmsg4' },
  { name: 'uoa_sendmsg6', attach: 'sendmsg6' },
  { name: 'uoa_connect4', attach: 'connect4' },
  { name: 'uoa_connect6', attach: 'connect6' },
];

/** Every program pinned: the cgroup ones, then the tc ingress ones (tc.ts attaches those). */
export const PIN_NAMES: readonly string[] = [
  ...PROGRAMS.map((p) => p.name),
  TC_PROGRAMS.ether,
  TC_PROGRAMS.l3,
];

/** The trusted-LB tries (LPM, key = prefix length + address), IPv4 and IPv6. */
export const TRUST_MAPS = { 4: 'toa_trust4', 6: 'toa_trust6' } as const;

/** The maps bpftool pins under <pin>/maps, by their names in toa.bpf.c. */
export const MAP_PINS: readonly string[] = [
  'toa_sk',
  'toa_stats',
  TRUST_MAPS[4],
  TRUST_MAPS[6],
  'uoa_map',
  'uoa_rev',
  'uoa_stats',
];

/** Entries per UOA map (LRU); keep in sync with UOA_MAP_MAX in uoa.bpf.c. */
export const UOA_MAP_MAX = 65536;

/** Counter names, in the order of the TOA_STAT_* indexes in toa.bpf.c. */
export const STAT_NAMES = [
  'withToa',
  'withoutToa',
  'malformed',
  'errors',
  'peerRewrites',
  'v6OnV4Socket',
  'untrusted',
] as const;
export type StatName = (typeof STAT_NAMES)[number];
export type Counters = Record<StatName, number>;

/** The UDP half's counter names, in the order of the UOA_STAT_* indexes in uoa.bpf.c. */
export const UOA_STAT_NAMES = [
  'ipo',
  'opp',
  'oppStripped',
  'emptyDropped',
  'untrusted',
  'malformed',
  'recorded',
  'recvRewrites',
  'sendRedirects',
  'unexpressible',
  'errors',
] as const;
export type UoaStatName = (typeof UOA_STAT_NAMES)[number];
export type UoaCounters = Record<UoaStatName, number>;

/** bpftool ≥ 7 prints the libbpf names, older ones the short names; both are accepted on input. */
export const ATTACH_ALIASES: Record<string, AttachKind> = {
  sock_ops: 'sock_ops',
  cgroup_sock_ops: 'sock_ops',
  getpeername4: 'getpeername4',
  cgroup_inet4_getpeername: 'getpeername4',
  getpeername6: 'getpeername6',
  cgroup_inet6_getpeername: 'getpeername6',
  recvmsg4: 'recvmsg4',
  cgroup_udp4_recvmsg: 'recvmsg4',
  recvmsg6: 'recvmsg6',
  cgroup_udp6_recvmsg: 'recvmsg6',
  sendmsg4: 'sendmsg4',
  cgroup_udp4_sendmsg: 'sendmsg4',
  sendmsg6: 'sendmsg6',
  cgroup_udp6_sendmsg: 'sendmsg6',
  connect4: 'connect4',
  cgroup_inet4_connect: 'connect4',
  connect6: 'connect6',
  cgroup_inet6_connect: 'connect6',
};

export interface MapEntry {
  key: number[] | string[];
  values?: { cpu: number; value: string[] | number }[];
  value?: string[];
  formatted?: { key: number; values: { cpu: number; value: number }[] };
}

/** bpftool prints a value's bytes in memory order, i.e. host byte order. */
export const bytesToNumber = (bytes: (string | number)[]): number => {
  const ordered = endianness() === 'LE' ? [...bytes].reverse() : bytes;
  let v = 0n;
  for (const b of ordered) v = (v << 8n) | BigInt(Number(b));
  return Number(v);
};

export function parseStatsDump(entries: MapEntry[]): Counters {
  return sumStats(entries, STAT_NAMES);
}

/** The UDP half's counters (uoa_stats), as parseStatsDump reads toa_stats. */
export function parseUoaStatsDump(entries: MapEntry[]): UoaCounters {
  return sumStats(entries, UOA_STAT_NAMES);
}

function sumStats<N extends string>(entries: MapEntry[], names: readonly N[]): Record<N, number> {
  const c = Object.fromEntries(names.map((n) => [n, 0])) as Record<N, number>;
  for (const e of entries) {
    let key: number;
    let total = 0;
    if (e.formatted) {
      key = e.formatted.key;
      for (const v of e.formatted.values) total += Number(v.value);
    } else {
      key = bytesToNumber(e.key);
      for (const v of e.values ?? [])
        total += typeof v.value === 'number' ? v.value : bytesToNumber(v.value);
    }
    const name = names[key];
    if (name) c[name] += total;
  }
  return c;
}
