import { copyBytes, get16, get32, set16, set32 } from '../wire/bytes.js';
import {
  ICMP_DEST_UNREACH,
  ICMP_FRAG_NEEDED,
  ICMPV6_PACKET_TOO_BIG,
  IPV6_MIN_MTU,
  IcmpField,
  finishIcmpChecksum,
  finishIcmpv6Checksum,
  writeIcmpErrorHeader,
} from '../wire/icmp.js';
import {
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPV4_MIN_HEADER,
  finishIpv4Header,
  Ipv4Field,
} from '../wire/ipv4.js';
import { finishIpv6Header, IPV6_HEADER } from '../wire/ipv6.js';
import { swapBytes } from '../wire/swap.js';
import {
  TcpView,
  TCP_ACK,
  TCP_FIN,
  TCP_MIN_HEADER,
  TCP_RST,
  TCP_SYN,
  TcpField,
} from '../wire/tcp.js';
import type { Packet } from './packet.js';

const tcp = new TcpView();

/** Writes the IPv4 header of a packet the engine makes itself: DF, TTL 64, no options. */
function writeHeader(
  b: Uint8Array,
  o: number,
  src: number,
  dst: number,
  protocol: number,
  payloadLength: number,
): void {
  set32(b, o + Ipv4Field.Src, src);
  set32(b, o + Ipv4Field.Dst, dst);
  finishIpv4Header(b, o, IPV4_MIN_HEADER + payloadLength, protocol, 64);
}

/**
 * Writes the rest of a TCP header at b[t], ports, seq and ack written:
 * data offset for `hl` bytes, flags, window, urgent pointer 0 and the
 * checksum 0 (the caller sums it under its IP header).
 */
export function finishTcpHeader(
  b: Uint8Array,
  t: number,
  hl: number,
  flags: number,
  window: number,
): void {
  b[t + TcpField.DataOffset] = (hl >>> 2) << 4;
  b[t + TcpField.Flags] = flags;
  set16(b, t + TcpField.Window, window);
  set16(b, t + TcpField.Checksum, 0);
  set16(b, t + TcpField.Urgent, 0);
}

/** The RST(+ACK) segment of `craftRst`/`craftRst6` at b[off], checksum left 0; returns the view on it. */
function writeRst(
  b: Uint8Array,
  off: number,
  sport: number,
  dport: number,
  seq: number,
  ack: number,
  withAck: boolean,
): TcpView {
  const t = tcp.wrap(b, off);
  t.srcPort = sport;
  t.dstPort = dport;
  t.seq = seq >>> 0;
  t.ack = withAck ? ack >>> 0 : 0;
  finishTcpHeader(b, off, TCP_MIN_HEADER, withAck ? TCP_RST | TCP_ACK : TCP_RST, 0);
  return t;
}

/** Writes an IPv4 RST(+ACK) into p. */
export function craftRst(
  p: Packet,
  src: number,
  sport: number,
  dst: number,
  dport: number,
  seq: number,
  ack: number,
  withAck: boolean,
): void {
  const b = p.buf;
  const ip = p.start;
  writeHeader(b, ip, src, dst, IPPROTO_TCP, TCP_MIN_HEADER);
  const t = writeRst(b, ip + IPV4_MIN_HEADER, sport, dport, seq, ack, withAck);
  t.checksum = t.computeChecksumV4(ip, TCP_MIN_HEADER);
  p.length = IPV4_MIN_HEADER + TCP_MIN_HEADER;
}

/**
 * Turns the TCP segment in p around, in place, into the reset its
 * destination's host would send for it (RFC 793, "Reset Generation"): with
 * an ACK, RST with seq = its ack; without, RST+ACK with seq 0 and ack = its
 * seq + payload length (+1 for a SYN, +1 for a FIN). Addresses and ports
 * swapped, IP options and payload dropped, TTL 64, DF, window 0. The segment
 * must have been checked (`TcpView.fits`).
 */
export function reflectRst(p: Packet, ipHl: number): void {
  const b = p.buf;
  const ip = p.start;
  const ipPayload = get16(b, ip + Ipv4Field.TotalLength) - ipHl;
  reflectRstSegment(p, ip + ipHl, ip + IPV4_MIN_HEADER, ipPayload);
  swapBytes(b, ip + Ipv4Field.Src, ip + Ipv4Field.Dst, 4);
  finishIpv4Header(b, ip, IPV4_MIN_HEADER + TCP_MIN_HEADER, IPPROTO_TCP, 64);
  const v = tcp.wrap(b, ip + IPV4_MIN_HEADER);
  v.checksum = v.computeChecksumV4(ip, TCP_MIN_HEADER);
}

/**
 * The TCP part of `reflectRst`/`reflectRst6`: reads the segment at b[old]
 * (`ipPayload` bytes with its header), writes the reset at b[t] (t ≤ old:
 * IP options dropped, so every field is read before any is written),
 * checksum left 0, and sets p's length to end there.
 */
function reflectRstSegment(p: Packet, old: number, t: number, ipPayload: number): void {
  const b = p.buf;
  const flags = b[old + TcpField.Flags]!;
  const hl = (b[old + TcpField.DataOffset]! >>> 4) << 2;
  const payload = ipPayload - hl;
  const sport = get16(b, old);
  const dport = get16(b, old + TcpField.DstPort);
  const seq = get32(b, old + TcpField.Seq);
  const ack = get32(b, old + TcpField.Ack);
  const withAck = (flags & TCP_ACK) === 0;
  const rseq = withAck ? 0 : ack;
  const rack = withAck
    ? seq + payload + ((flags & TCP_SYN) !== 0 ? 1 : 0) + ((flags & TCP_FIN) !== 0 ? 1 : 0)
    : 0;
  set16(b, t, dport);
  set16(b, t + TcpField.DstPort, sport);
  set32(b, t + TcpField.Seq, rseq);
  set32(b, t + TcpField.Ack, rack);
  finishTcpHeader(b, t, TCP_MIN_HEADER, withAck ? TCP_RST | TCP_ACK : TCP_RST, 0);
  p.length = t - p.start + TCP_MIN_HEADER;
  p.gsoSize = 0;
  p.gsoType = 0;
  p.csumPartial = false;
}

/** ICMP destination unreachable codes (RFC 792) the engine sends. */
export const ICMP_HOST_UNREACHABLE = 1;
export const ICMP_PORT_UNREACHABLE = 3;
export { ICMP_FRAG_NEEDED };

/**
 * ICMP destination unreachable (type 3) with `code`, quoting the original IP
 * header and the first 8 bytes of its payload (RFC 792), so the sender's
 * stack can match its socket. `mtu` is the next-hop MTU of code 4
 * (fragmentation needed, RFC 1191); 0 for the other codes.
 */
export function craftDestUnreachable(
  p: Packet,
  src: number,
  dst: number,
  code: number,
  mtu: number,
  orig: Uint8Array,
  origOff: number,
  origHeaderLen: number,
): void {
  const b = p.buf;
  const ip = p.start;
  const quote = origHeaderLen + 8;
  const icmpLen = 8 + quote;
  writeHeader(b, ip, src, dst, IPPROTO_ICMP, icmpLen);
  const o = ip + IPV4_MIN_HEADER;
  writeIcmpErrorHeader(b, o, ICMP_DEST_UNREACH, code, mtu & 0xffff);
  copyBytes(b, o + IcmpField.Quote, orig, origOff, quote);
  finishIcmpChecksum(b, o, icmpLen);
  p.length = IPV4_MIN_HEADER + icmpLen;
}

/** ICMP destination unreachable / fragmentation needed (RFC 1191). */
export function craftFragNeeded(
  p: Packet,
  src: number,
  dst: number,
  mtu: number,
  orig: Uint8Array,
  origOff: number,
  origHeaderLen: number,
): void {
  craftDestUnreachable(p, src, dst, ICMP_FRAG_NEEDED, mtu, orig, origOff, origHeaderLen);
}

/**
 * Writes the fixed IPv6 header of a packet the engine makes itself: traffic
 * class and flow label 0, hop limit 64; addresses copied from src[srcOff]
 * and dst[dstOff] (16 bytes each).
 */
function writeHeader6(
  b: Uint8Array,
  o: number,
  src: Uint8Array,
  srcOff: number,
  dst: Uint8Array,
  dstOff: number,
  nextHeader: number,
  payloadLength: number,
): void {
  finishIpv6Header(b, o, payloadLength, nextHeader, 64);
  copyBytes(b, o + 8, src, srcOff, 16);
  copyBytes(b, o + 24, dst, dstOff, 16);
}

/** Writes an IPv6 RST(+ACK) into p; the addresses are 16 bytes at src[srcOff] and dst[dstOff]. */
export function craftRst6(
  p: Packet,
  src: Uint8Array,
  srcOff: number,
  sport: number,
  dst: Uint8Array,
  dstOff: number,
  dport: number,
  seq: number,
  ack: number,
  withAck: boolean,
): void {
  const b = p.buf;
  const ip = p.start;
  writeHeader6(b, ip, src, srcOff, dst, dstOff, IPPROTO_TCP, TCP_MIN_HEADER);
  const t = writeRst(b, ip + IPV6_HEADER, sport, dport, seq, ack, withAck);
  t.checksum = t.computeChecksumV6(ip, TCP_MIN_HEADER);
  p.length = IPV6_HEADER + TCP_MIN_HEADER;
}

// ICMPv6 Packet Too Big (RFC 4443 §3.2), and the minimum MTU no ICMPv6 error exceeds (§2.4 (c)).
export { ICMPV6_PACKET_TOO_BIG, IPV6_MIN_MTU };

/**
 * ICMPv6 Packet Too Big from src to dst (16 bytes each at their offsets),
 * telling `mtu` and quoting as much of the offending packet
 * orig[origOff, origOff + origLen) as fits in the minimum MTU.
 */
export function craftPacketTooBig6(
  p: Packet,
  src: Uint8Array,
  srcOff: number,
  dst: Uint8Array,
  dstOff: number,
  mtu: number,
  orig: Uint8Array,
  origOff: number,
  origLen: number,
): void {
  craftIcmpv6Error(
    p,
    src,
    srcOff,
    dst,
    dstOff,
    ICMPV6_PACKET_TOO_BIG,
    0,
    mtu,
    orig,
    origOff,
    origLen,
  );
}

/** ICMPv6 destination unreachable (RFC 4443 §3.1) and the codes the engine sends. */
export const ICMPV6_DEST_UNREACHABLE = 1;
export const ICMPV6_ADDRESS_UNREACHABLE = 3;
export const ICMPV6_PORT_UNREACHABLE = 4;

/**
 * ICMPv6 destination unreachable with `code` from src to dst (16 bytes each
 * at their offsets), the unused word 0, quoting as much of the offending
 * packet orig[origOff, origOff + origLen) as fits in the minimum MTU.
 */
export function craftDestUnreachable6(
  p: Packet,
  src: Uint8Array,
  srcOff: number,
  dst: Uint8Array,
  dstOff: number,
  code: number,
  orig: Uint8Array,
  origOff: number,
  origLen: number,
): void {
  craftIcmpv6Error(
    p,
    src,
    srcOff,
    dst,
    dstOff,
    ICMPV6_DEST_UNREACHABLE,
    code,
    0,
    orig,
    origOff,
    origLen,
  );
}

/**
 * An ICMPv6 error message `type`/`code` whose second word is `rest`, from
 * src to dst, quoting what of orig[origOff, origOff + origLen) fits in the
 * minimum MTU, checksum over the pseudo-header.
 */
function craftIcmpv6Error(
  p: Packet,
  src: Uint8Array,
  srcOff: number,
  dst: Uint8Array,
  dstOff: number,
  type: number,
  code: number,
  rest: number,
  orig: Uint8Array,
  origOff: number,
  origLen: number,
): void {
  const b = p.buf;
  const ip = p.start;
  const quote = Math.min(origLen, IPV6_MIN_MTU - IPV6_HEADER - 8);
  const icmpLen = 8 + quote;
  writeHeader6(b, ip, src, srcOff, dst, dstOff, IPPROTO_ICMPV6, icmpLen);
  const o = ip + IPV6_HEADER;
  writeIcmpErrorHeader(b, o, type, code, rest);
  copyBytes(b, o + IcmpField.Quote, orig, origOff, quote);
  finishIcmpv6Checksum(b, ip, o, icmpLen);
  p.length = IPV6_HEADER + icmpLen;
}

/**
 * `reflectRst` for an IPv6 segment (fixed header, no extension headers,
 * TCP at 40): the RST its destination's host would send (RFC 793),
 * addresses swapped, payload dropped, hop limit 64, traffic class and flow
 * label 0.
 */
export function reflectRst6(p: Packet): void {
  const b = p.buf;
  const ip = p.start;
  reflectRstSegment(p, ip + IPV6_HEADER, ip + IPV6_HEADER, get16(b, ip + 4));
  swapBytes(b, ip + 8, ip + 24, 16);
  finishIpv6Header(b, ip, TCP_MIN_HEADER, IPPROTO_TCP, 64);
  const v = tcp.wrap(b, ip + IPV6_HEADER);
  v.checksum = v.computeChecksumV6(ip, TCP_MIN_HEADER);
}
