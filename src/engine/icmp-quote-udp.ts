import { get16, set16 } from '../wire/bytes.js';
import { type ChecksumDelta, checksumReplace16 } from '../wire/checksum.js';
import { IPPROTO_UDP, IPV4_MIN_HEADER, Ipv4Field } from '../wire/ipv4.js';
import { IPV6_HEADER } from '../wire/ipv6.js';
import { UDP_HEADER, UDP_NO_CHECKSUM } from '../wire/udp.js';
import {
  IPPROTO_OPP,
  OPP_HEADER,
  OPP_VERSION_V4,
  OPP_VERSION_V6,
  uoaOptionAt,
} from '../wire/uoa.js';
import type { ConnTable } from './conn-table.js';
import type { Packet } from './packet.js';
import type { Registry } from './registry.js';

/**
 * The UDP part of an ICMP or ICMPv6 error's quote, the sibling of
 * icmp-quote-tcp.ts: the quoted datagram's ports and checksum translated to
 * the other leg of flow c (of the UDP table), and the UOA the LB put on a
 * flow's first datagrams taken back out of a quote of one, so the quote
 * reads as the datagram the client sent. A client's stack matches an error
 * to its socket by the quoted protocol, addresses and ports (Linux's
 * __udp4_lib_err and __udp6_lib_err read the quoted IP header's protocol
 * and the UDP header right behind it): a quote left as protocol 248, or
 * with the 8-byte ipo option in its header, would reach no socket.
 */

/** Offset of the checksum in a UDP header. */
const UDP_CHECKSUM = 6;

/** A quoted LIP:lport → RIP:rport datagram as the client sent it: CIP:cport → VIP:vport (d holds the addresses). */
export function quotedUdpAsClientSent(
  t: ConnTable,
  reg: Registry,
  d: ChecksumDelta,
  b: Uint8Array,
  qu: number,
  avail: number,
  c: number,
): void {
  rewritePorts(d, b, qu, avail, t.cport[c]!, reg.svcPorts[t.svc[c]!]!);
}

/** A quoted VIP:vport → CIP:cport datagram as the RS sent it: RIP:rport → LIP:lport. */
export function quotedUdpAsRsSent(
  t: ConnTable,
  d: ChecksumDelta,
  b: Uint8Array,
  qu: number,
  avail: number,
  c: number,
): void {
  rewritePorts(d, b, qu, avail, t.rport[c]!, t.lport[c]!);
}

/**
 * The ports become sport → dport; the checksum, when the quote reaches it,
 * follows them and the addresses d noted, as udp-nat.ts updates a whole
 * datagram's: an IPv4 "none" (0) stays 0, an update that comes out 0 is
 * written 0xffff. The UOA never entered the checksum, so taking it out
 * changes nothing there.
 */
function rewritePorts(
  d: ChecksumDelta,
  b: Uint8Array,
  qu: number,
  avail: number,
  sport: number,
  dport: number,
): void {
  d.replaceWord(get16(b, qu), sport);
  d.replaceWord(get16(b, qu + 2), dport);
  set16(b, qu, sport);
  set16(b, qu + 2, dport);
  if (avail < UDP_HEADER) return;
  const at = qu + UDP_CHECKSUM;
  const check = get16(b, at);
  if (check === UDP_NO_CHECKSUM) return;
  const next = d.apply(check);
  set16(b, at, next === 0 ? 0xffff : next);
}

/**
 * The length of the OPP shim (its header and the UOA) at b[at] in a quote
 * with `avail` bytes from there, or -1: version 1 or 2, reserved bits clear,
 * UDP next, a length that covers its header and leaves the whole UDP header
 * in the quote (what the lookup reads and what the client's stack needs).
 */
export function quotedOppLength(b: Uint8Array, at: number, avail: number): number {
  if (avail < OPP_HEADER + UDP_HEADER) return -1;
  const v = b[at]!;
  if ((v >>> 4 !== OPP_VERSION_V4 && v >>> 4 !== OPP_VERSION_V6) || (v & 0x0f) !== 0) return -1;
  if (b[at + 1] !== IPPROTO_UDP) return -1;
  const len = get16(b, at + 2);
  return len < OPP_HEADER || len + UDP_HEADER > avail ? -1 : len;
}

/**
 * Takes the UOA out of the quoted IPv4 datagram at b[q] (its UDP header at
 * qu), in the error p: the opp shim between the quoted header and qu
 * (protocol back to 17), or an ipo option among the quoted header's options
 * (its length nibble down by the option). The quoted total length shrinks
 * with it and the quoted header checksum follows incrementally (a header a
 * router mangled stays detectably so). The bytes before the cut — p's IPv4
 * header, the ICMP header, the quoted header's start — move forward, and
 * p's total length is rewritten (its checksum is the caller's). Returns the
 * bytes removed, 0 when the quote carries no UOA: every offset before the
 * cut moves by it, qu does not.
 */
export function takeUoaOutOfQuote4(p: Packet, q: number, qu: number): number {
  const b = p.buf;
  const qHl = (b[q]! & 0x0f) << 2;
  let check = get16(b, q + Ipv4Field.Checksum);
  let at: number;
  let n: number;
  if (b[q + Ipv4Field.Protocol] === IPPROTO_OPP) {
    at = q + qHl;
    n = qu - at;
    const before = get16(b, q + Ipv4Field.Ttl);
    b[q + Ipv4Field.Protocol] = IPPROTO_UDP;
    check = checksumReplace16(check, before, get16(b, q + Ipv4Field.Ttl));
  } else {
    if (qHl === IPV4_MIN_HEADER) return 0;
    at = uoaOptionAt(b, q + IPV4_MIN_HEADER, q + qHl);
    if (at < 0) return 0;
    n = b[at + 1]!;
    for (let k = 0; k < n; k += 2) check = checksumReplace16(check, get16(b, at + k), 0);
    const before = get16(b, q);
    b[q] = 0x40 | ((qHl - n) >>> 2);
    check = checksumReplace16(check, before, get16(b, q));
  }
  const total = get16(b, q + Ipv4Field.TotalLength);
  const shorter = total > n ? total - n : 0;
  check = checksumReplace16(check, total, shorter);
  set16(b, q + Ipv4Field.TotalLength, shorter);
  set16(b, q + Ipv4Field.Checksum, check);
  cut(p, at, n);
  set16(b, p.start + Ipv4Field.TotalLength, p.length);
  return n;
}

/**
 * Takes the opp shim out of the quoted IPv6 datagram at b[q] (its UDP
 * header at qu) in the ICMPv6 error p (a bare fixed header and the
 * message): next header back to 17, both payload lengths shorter. Returns
 * the bytes removed (0 without a shim), as takeUoaOutOfQuote4.
 */
export function takeUoaOutOfQuote6(p: Packet, q: number, qu: number): number {
  const b = p.buf;
  const at = q + IPV6_HEADER;
  const n = qu - at;
  if (n === 0) return 0;
  b[q + 6] = IPPROTO_UDP;
  const payload = get16(b, q + 4);
  set16(b, q + 4, payload > n ? payload - n : 0);
  cut(p, at, n);
  set16(b, p.start + 4, p.length - IPV6_HEADER);
  return n;
}

/** Removes b[at, at+n) from p by moving p's bytes before `at` forward by n. */
function cut(p: Packet, at: number, n: number): void {
  p.buf.copyWithin(p.start + n, p.start, at);
  p.start += n;
  p.length -= n;
}
