/**
 * The address-family dimension of the scenarios, shared by the simulator
 * (`fullnat simulate --family`) and the real-kernel lab:
 *
 *   4   IPv4 client, IPv4 VIP, IPv4 LIPs and real servers;
 *   6   IPv6 client, IPv6 VIP, IPv6 LIPs and real servers;
 *   64  FNAT64: IPv6 client and VIP, IPv4 LIPs and real servers (the RS
 *       sees an IPv4 connection whose TOA, 254/20, carries the IPv6 client).
 *
 * An `AddressPlan` says which addresses a run of one family uses; each
 * environment (sim/addresses.ts, the lab's topology) has its own.
 */
import type { IpAddress } from '../wire/address.js';

export type LabFamily = 4 | 6 | 64;

/** In the order the CLI prints them. */
export const LAB_FAMILIES: readonly LabFamily[] = [4, 6, 64];

export const DEFAULT_FAMILY: LabFamily = 4;

export function isLabFamily(v: unknown): v is LabFamily {
  return v === 4 || v === 6 || v === 64;
}

/** The client leg's IP version: IPv6 in 6 and 64. */
export function clientIpVersion(f: LabFamily): 4 | 6 {
  return f === 4 ? 4 : 6;
}

/** The real-server leg's IP version: IPv6 in 6 only. */
export function serverIpVersion(f: LabFamily): 4 | 6 {
  return f === 6 ? 6 : 4;
}

/** One line for people: `IPv6 (IPv6 client, IPv6 VIP, LIPs and real servers)`. */
export function describeFamily(f: LabFamily): string {
  switch (f) {
    case 4:
      return 'IPv4 (IPv4 client, VIP, LIPs and real servers)';
    case 6:
      return 'IPv6 (IPv6 client, VIP, LIPs and real servers)';
    case 64:
      return 'FNAT64 (IPv6 client and VIP, IPv4 LIPs and real servers, TOA 254/20)';
  }
}

/**
 * `--family` as the CLI takes it: a comma-separated list of 4, 6, 64, or
 * `all`; empty means the default (4). An unknown value is an error naming
 * the valid ones.
 */
export function parseFamilies(text: string | undefined): LabFamily[] {
  if (text === undefined || text.trim() === '') return [DEFAULT_FAMILY];
  if (text.trim() === 'all') return [...LAB_FAMILIES];
  const out: LabFamily[] = [];
  for (const item of text.split(',').map((s) => s.trim())) {
    const n = /^\d+$/.test(item) ? Number(item) : NaN;
    if (!isLabFamily(n))
      throw new Error(`unknown family "${item}"; valid: ${LAB_FAMILIES.join(', ')}, all`);
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

/** The addresses of one family's runs. */
export interface AddressPlan {
  family: LabFamily;
  vip: IpAddress;
  vport: number;
  realServers: readonly { addr: IpAddress; port: number }[];
  lips: readonly IpAddress[];
  /** The address of client `index` (several connections may share one). */
  clientAddress(index: number): IpAddress;
}
