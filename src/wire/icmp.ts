/**
 * ICMP (RFC 792, RFC 1191) and ICMPv6 (RFC 4443): message types and codes,
 * field offsets, and the access to the packet an error quotes. The engine
 * reads errors in place: the quoted IP header starts `ICMP_HEADER` bytes
 * into the message, its transport header after that.
 */
import { get16, set16, set32 } from './bytes.js';
import { finishChecksum, sumWords } from './checksum.js';
import { IPV4_MIN_HEADER } from './ipv4.js';

/** Bytes before an error's quote (type, code, checksum, 4 bytes of type-specific data). */
export const ICMP_HEADER = 8;

/** Field offsets from the start of an ICMP or ICMPv6 error (the same first eight bytes). */
export const enum IcmpField {
  Type = 0,
  Code = 1,
  Checksum = 2,
  /** Destination unreachable / fragmentation needed: the next-hop MTU (RFC 1191), 16 bits. */
  NextHopMtu = 6,
  /** Errors: the invoking packet, as much as the sender quoted. */
  Quote = 8,
}

/**
 * Writes the 8 bytes before an ICMP or ICMPv6 error's quote at b[o]: type,
 * code, checksum 0 (summed once the message is whole), and `rest`, the
 * type's 32-bit word (an MTU, a pointer, or unused).
 */
export function writeIcmpErrorHeader(
  b: Uint8Array,
  o: number,
  type: number,
  code: number,
  rest: number,
): void {
  b[o + IcmpField.Type] = type;
  b[o + IcmpField.Code] = code;
  set16(b, o + IcmpField.Checksum, 0);
  set32(b, o + 4, rest);
}

/** Echo request and reply (ICMP and ICMPv6): what follows the checksum. */
export const enum IcmpEchoField {
  Id = 4,
  Sequence = 6,
}

/** ICMPv6 Packet Too Big: the MTU, 32 bits after the checksum. */
export const enum Icmpv6Field {
  Mtu = 4,
}

// ---- ICMP (IPv4) -----------------------------------------------------------------------------

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_SOURCE_QUENCH = 4;
export const ICMP_REDIRECT = 5;
export const ICMP_ECHO = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_PARAMETER_PROBLEM = 12;

/** Destination unreachable codes (RFC 792, RFC 1122, RFC 1812). */
export const ICMP_NET_UNREACH = 0;
export const ICMP_HOST_UNREACH = 1;
export const ICMP_PROT_UNREACH = 2;
export const ICMP_PORT_UNREACH = 3;
export const ICMP_FRAG_NEEDED = 4;
export const ICMP_SR_FAILED = 5;
export const ICMP_NET_UNKNOWN = 6;
export const ICMP_HOST_UNKNOWN = 7;
export const ICMP_NET_ANO = 9;
export const ICMP_HOST_ANO = 10;
/** Communication administratively prohibited (RFC 1812): what `ip route add prohibit` and nft `reject with icmp admin-prohibited` send. */
export const ICMP_PKT_FILTERED = 13;

/** Time exceeded codes. */
export const ICMP_EXC_TTL = 0;
export const ICMP_EXC_FRAGTIME = 1;

/**
 * Linux's `min_pmtu` (net.ipv4.route.min_pmtu, 512 + 20 + 20): the lowest
 * path MTU a frag-needed may teach. RFC 791's 68 is the absolute floor, but
 * no real path is that small and a forged error would cripple the
 * connections it reaches.
 */
export const IPV4_MIN_PMTU = 552;

/** True for the ICMP types that report an error about a quoted packet. */
export function isIcmpError(type: number): boolean {
  return (
    type === ICMP_DEST_UNREACH ||
    type === ICMP_TIME_EXCEEDED ||
    type === ICMP_PARAMETER_PROBLEM ||
    type === ICMP_SOURCE_QUENCH ||
    type === ICMP_REDIRECT
  );
}

const TYPE_NAMES: Record<number, string> = {
  [ICMP_ECHO_REPLY]: 'echo-reply',
  [ICMP_DEST_UNREACH]: 'destination-unreachable',
  [ICMP_SOURCE_QUENCH]: 'source-quench',
  [ICMP_REDIRECT]: 'redirect',
  [ICMP_ECHO]: 'echo-request',
  [ICMP_TIME_EXCEEDED]: 'time-exceeded',
  [ICMP_PARAMETER_PROBLEM]: 'parameter-problem',
};

const UNREACH_NAMES: Record<number, string> = {
  [ICMP_NET_UNREACH]: 'net-unreachable',
  [ICMP_HOST_UNREACH]: 'host-unreachable',
  [ICMP_PROT_UNREACH]: 'protocol-unreachable',
  [ICMP_PORT_UNREACH]: 'port-unreachable',
  [ICMP_FRAG_NEEDED]: 'frag-needed',
  [ICMP_SR_FAILED]: 'source-route-failed',
  [ICMP_NET_UNKNOWN]: 'net-unknown',
  [ICMP_HOST_UNKNOWN]: 'host-unknown',
  [ICMP_NET_ANO]: 'net-prohibited',
  [ICMP_HOST_ANO]: 'host-prohibited',
  [ICMP_PKT_FILTERED]: 'admin-prohibited',
};

/** The name of an ICMP type and code, for logs and tools (not the data path). */
export function icmpName(type: number, code: number): string {
  const t = TYPE_NAMES[type] ?? `type-${type}`;
  if (type === ICMP_DEST_UNREACH) return `${t}/${UNREACH_NAMES[code] ?? `code-${code}`}`;
  if (type === ICMP_TIME_EXCEEDED) return `${t}/${code === ICMP_EXC_TTL ? 'ttl' : 'reassembly'}`;
  return code === 0 ? t : `${t}/code-${code}`;
}

/**
 * Where the IPv4 header an error quotes starts, and whether enough of it is
 * there: a version-4 header whole, followed by at least the 8 transport bytes
 * RFC 792 guarantees (ports, and for TCP the sequence number). `icmpOff` is
 * the start of the ICMP message, `icmpLen` its length. Returns the quoted
 * header's length, or 0 when the quote cannot be read.
 */
export function quotedIpv4HeaderLength(b: Uint8Array, icmpOff: number, icmpLen: number): number {
  const q = icmpOff + IcmpField.Quote;
  const avail = icmpLen - IcmpField.Quote;
  if (avail < IPV4_MIN_HEADER + 8) return 0;
  const vihl = b[q]!;
  if (vihl >>> 4 !== 4) return 0;
  const hl = (vihl & 0x0f) << 2;
  if (hl < IPV4_MIN_HEADER || avail < hl + 8) return 0;
  return hl;
}

/** Recomputes the checksum of the ICMP message b[off, off+len) (no pseudo-header in ICMPv4). */
export function finishIcmpChecksum(b: Uint8Array, off: number, len: number): void {
  set16(b, off + IcmpField.Checksum, 0);
  set16(b, off + IcmpField.Checksum, finishChecksum(sumWords(b, off, len, 0)));
}

/** True when the ICMP message b[off, off+len) sums to zero (its checksum holds). */
export function icmpChecksumOk(b: Uint8Array, off: number, len: number): boolean {
  return finishChecksum(sumWords(b, off, len, 0)) === 0;
}

/** The 16-bit next-hop MTU of a frag-needed. */
export function nextHopMtu(b: Uint8Array, icmpOff: number): number {
  return get16(b, icmpOff + IcmpField.NextHopMtu);
}

// ---- ICMPv6 ----------------------------------------------------------------------------------

export const ICMPV6_DEST_UNREACH = 1;
export const ICMPV6_PACKET_TOO_BIG = 2;
export const ICMPV6_TIME_EXCEEDED = 3;
export const ICMPV6_PARAMETER_PROBLEM = 4;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;

/** ICMPv6 destination unreachable codes (RFC 4443 3.1). */
export const ICMPV6_NOROUTE = 0;
export const ICMPV6_ADM_PROHIBITED = 1;
export const ICMPV6_NOT_NEIGHBOUR = 2;
export const ICMPV6_ADDR_UNREACH = 3;
export const ICMPV6_PORT_UNREACH = 4;
export const ICMPV6_POLICY_FAIL = 5;
export const ICMPV6_REJECT_ROUTE = 6;

/** IPv6's minimum link MTU (RFC 8200 5): a Packet Too Big below it teaches nothing. */
export const IPV6_MIN_MTU = 1280;
/** The fixed IPv6 header an ICMPv6 error quotes first. */
export const IPV6_HEADER = 40;

/** True for the ICMPv6 types that report an error about a quoted packet (types below 128). */
export function isIcmpv6Error(type: number): boolean {
  return type < 128;
}

/** The 32-bit MTU of a Packet Too Big, read as an unsigned number. */
export function packetTooBigMtu(b: Uint8Array, icmpOff: number): number {
  const o = icmpOff + Icmpv6Field.Mtu;
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/**
 * Where the IPv6 header an ICMPv6 error quotes starts, and whether enough of
 * it is there: version 6, the fixed header whole plus 8 bytes after it.
 * Returns the offset of the quoted header, or -1.
 */
export function quotedIpv6Offset(b: Uint8Array, icmpOff: number, icmpLen: number): number {
  const q = icmpOff + IcmpField.Quote;
  if (icmpLen - IcmpField.Quote < IPV6_HEADER + 8) return -1;
  if (b[q]! >>> 4 !== 6) return -1;
  return q;
}

/** Sum of the ICMPv6 pseudo-header (RFC 4443 2.3, RFC 8200 8.1): the IPv6 addresses at ipOff + 8, length, next header 58. */
function icmpv6PseudoSum(b: Uint8Array, ipOff: number, len: number): number {
  return sumWords(b, ipOff + 8, 32, 0) + (len >>> 16) + (len & 0xffff) + 58;
}

/** Recomputes the checksum of the ICMPv6 message b[off, off+len) under the IPv6 header at ipOff. */
export function finishIcmpv6Checksum(b: Uint8Array, ipOff: number, off: number, len: number): void {
  set16(b, off + IcmpField.Checksum, 0);
  set16(
    b,
    off + IcmpField.Checksum,
    finishChecksum(sumWords(b, off, len, icmpv6PseudoSum(b, ipOff, len))),
  );
}

/** True when the ICMPv6 message b[off, off+len) under the IPv6 header at ipOff sums to zero. */
export function icmpv6ChecksumOk(b: Uint8Array, ipOff: number, off: number, len: number): boolean {
  return finishChecksum(sumWords(b, off, len, icmpv6PseudoSum(b, ipOff, len))) === 0;
}
