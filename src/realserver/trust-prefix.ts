/**
 * The trusted-LB list of the eBPF TOA receiver (`fullnat rs attach --trust`):
 * prefixes parsed, normalised and printed. A TOA counts only on a connection
 * whose real peer (the LIP the SYN came from) is inside one of them.
 */
import { isIPv4 } from 'node:net';
import { ipv6ToString, parseIpv4, parseIpv6 } from '../wire/bytes.js';
import { RealServerError } from './errors.js';

/** Entries per trie (TRUST_MAX in toa.bpf.c). */
export const TRUST_MAX = 1024;

/**
 * One trusted prefix: the first `bits` bits of `addr` (4 or 16 bytes in
 * network order, the bits after the prefix cleared).
 */
export interface TrustPrefix {
  family: 4 | 6;
  addr: readonly number[];
  bits: number;
}

/** What the receiver trusts: `anyPeer` when 0.0.0.0/0 and ::/0 are both in the list. */
export interface TrustState {
  anyPeer: boolean;
  /** The list in force, IPv4 first, as ADDRESS/LEN. */
  prefixes: string[];
}

/** 0.0.0.0/0 and ::/0: every peer, what a load without --trust puts in the tries. */
export const TRUST_ANY: readonly TrustPrefix[] = [
  { family: 4, addr: [0, 0, 0, 0], bits: 0 },
  { family: 6, addr: new Array<number>(16).fill(0), bits: 0 },
];

function maskBits(addr: readonly number[], bits: number): number[] {
  return addr.map((b, i) => {
    const keep = Math.max(0, Math.min(8, bits - 8 * i));
    return b & (0xff00 >> keep) & 0xff;
  });
}

/**
 * Parses one --trust item, ADDRESS or ADDRESS/LEN (IPv4 or IPv6; a bare
 * address is /32 or /128). Bits after the prefix are cleared (10.0.3.7/24 is
 * 10.0.3.0/24), and ::ffff:a.b.c.d/LEN with LEN >= 96 is the IPv4 prefix
 * a.b.c.d/(LEN-96), since an IPv4 peer of a dual-stack socket is checked as
 * IPv4. Throws a RealServerError naming the item.
 */
export function parseTrustPrefix(item: string): TrustPrefix {
  const text = item.trim();
  if (text === '')
    throw new RealServerError('--trust: empty prefix (expected ADDRESS[/LEN], comma-separated)');
  const bad = (why: string): RealServerError =>
    new RealServerError(`--trust: "${text}" ${why} (expected ADDRESS[/LEN], comma-separated)`);
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  let family: 4 | 6;
  let addr: number[];
  const v6 = addrText.includes('%') ? null : parseIpv6(addrText);
  if (isIPv4(addrText)) {
    const n = parseIpv4(addrText);
    family = 4;
    addr = [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  } else if (v6 !== null) {
    family = 6;
    addr = Array.from(v6);
  } else throw bad('is not an IPv4 or IPv6 address');
  const max = family === 4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max)
      throw bad(`has a bad prefix length "/${lenText}" (IPv${family}: /0 to /${max})`);
    bits = Number(lenText);
  }
  const mapped = family === 6 && addr.slice(0, 10).every((b) => b === 0) && addr[10] === 0xff;
  if (mapped && addr[11] === 0xff) {
    if (bits < 96)
      throw bad('is an IPv4-mapped prefix shorter than /96; write the IPv4 prefix instead');
    family = 4;
    addr = addr.slice(12);
    bits -= 96;
  }
  return { family, addr: maskBits(addr, bits), bits };
}

/** ADDRESS/LEN text of a prefix. */
export function formatTrustPrefix(p: TrustPrefix): string {
  const a = p.family === 4 ? p.addr.join('.') : ipv6ToString(Uint8Array.from(p.addr));
  return `${a}/${p.bits}`;
}

export const sortPrefixes = (list: readonly TrustPrefix[]): TrustPrefix[] =>
  [...list].sort(
    (a, b) =>
      a.family - b.family || a.addr.reduce((d, x, i) => d || x - b.addr[i]!, 0) || a.bits - b.bits,
  );

/**
 * Parses --trust values: comma-separated prefixes (see parseTrustPrefix),
 * from one string or several (repeated --trust); duplicates are merged.
 */
export function parseTrustList(values: string | readonly string[]): TrustPrefix[] {
  const seen = new Map<string, TrustPrefix>();
  for (const value of typeof values === 'string' ? [values] : values) {
    const items = value.split(',');
    items.forEach((item, i) => {
      if (item.trim() === '')
        throw new RealServerError(
          value.trim() === ''
            ? '--trust: empty list (expected ADDRESS[/LEN], comma-separated)'
            : `--trust "${value}": item ${i + 1} of ${items.length} is empty (expected ADDRESS[/LEN], comma-separated)`,
        );
      const p = parseTrustPrefix(item);
      seen.set(formatTrustPrefix(p), p);
    });
  }
  if (seen.size === 0) throw new RealServerError('--trust: empty list');
  const list = sortPrefixes([...seen.values()]);
  for (const family of [4, 6] as const)
    if (list.filter((p) => p.family === family).length > TRUST_MAX)
      throw new RealServerError(`--trust: more than ${TRUST_MAX} IPv${family} prefixes`);
  return list;
}

/** The state a list amounts to. */
export function trustState(list: readonly TrustPrefix[]): TrustState {
  const prefixes = sortPrefixes(list).map(formatTrustPrefix);
  return { anyPeer: prefixes.includes('0.0.0.0/0') && prefixes.includes('::/0'), prefixes };
}
