import { copyBytes, get16, set16, set32 } from '../wire/bytes.js';
import { finishChecksum, sumWords } from '../wire/checksum.js';
import {
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPV4_MIN_HEADER,
  finishIpv4Header,
  Ipv4Field,
} from '../wire/ipv4.js';
import { IPV6_HEADER } from '../wire/ipv6.js';
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
  const t = tcp.wrap(b, ip + IPV4_MIN_HEADER);
  t.srcPort = sport;
  t.dstPort = dport;
  t.seq = seq >>> 0;
  t.ack = withAck ? ack >>> 0 : 0;
  b[t.off + TcpField.DataOffset] = (TCP_MIN_HEADER >>> 2) << 4;
  t.flags = withAck ? TCP_RST | TCP_ACK : TCP_RST;
  t.window = 0;
  t.checksum = 0;
  set16(b, t.off + TcpField.Urgent, 0);
  t.checksum = t.computeChecksumV4(ip, TCP_MIN_HEADER);
  p.length = IPV4_MIN_HEADER + TCP_MIN_HEADER;
}

/**
 * Turns the TCP segment in p around, in place, into the reset its
 * destination's host would send for it (RFC 793, "Reset Generation"): with
 * an ACK, RST with seq = its ack; without, RST+ACK with seq 0 and ack = its
 * seq + payload length (+1 for a SYN, +1 for a FIN). Addresses and ports
 * swapped, IP options and payload dropped, TTL 64, DF, window 0. The segment
 * must have been checked (`TcpView.fits`); 32-bit fields move byte by byte.
 */
export function reflectRst(p: Packet, ipHl: number): void {
  const b = p.buf;
  const ip = p.start;
  const old = ip + ipHl;
  const flags = b[old + TcpField.Flags]!;
  const hl = (b[old + TcpField.DataOffset]! >>> 4) << 2;
  const payload = get16(b, ip + Ipv4Field.TotalLength) - ipHl - hl;
  const sport = get16(b, old);
  const dport = get16(b, old + TcpField.DstPort);
  const so = old + TcpField.Seq;
  const ao = old + TcpField.Ack;
  const seq = (b[so]! << 24) | (b[so + 1]! << 16) | (b[so + 2]! << 8) | b[so + 3]!;
  const ack = (b[ao]! << 24) | (b[ao + 1]! << 16) | (b[ao + 2]! << 8) | b[ao + 3]!;
  const withAck = (flags & TCP_ACK) === 0;
  const rseq = withAck ? 0 : ack;
  const rack = withAck
    ? (seq + payload + ((flags & TCP_SYN) !== 0 ? 1 : 0) + ((flags & TCP_FIN) !== 0 ? 1 : 0)) | 0
    : 0;
  // Source and destination addresses swap, byte by byte.
  const src = ip + Ipv4Field.Src;
  const dst = ip + Ipv4Field.Dst;
  for (let k = 0; k < 4; k++) {
    const x = b[src + k]!;
    b[src + k] = b[dst + k]!;
    b[dst + k] = x;
  }
  finishIpv4Header(b, ip, IPV4_MIN_HEADER + TCP_MIN_HEADER, IPPROTO_TCP, 64);
  const t = ip + IPV4_MIN_HEADER;
  set16(b, t, dport);
  set16(b, t + TcpField.DstPort, sport);
  b[t + TcpField.Seq] = rseq >>> 24;
  b[t + TcpField.Seq + 1] = (rseq >>> 16) & 0xff;
  b[t + TcpField.Seq + 2] = (rseq >>> 8) & 0xff;
  b[t + TcpField.Seq + 3] = rseq & 0xff;
  b[t + TcpField.Ack] = rack >>> 24;
  b[t + TcpField.Ack + 1] = (rack >>> 16) & 0xff;
  b[t + TcpField.Ack + 2] = (rack >>> 8) & 0xff;
  b[t + TcpField.Ack + 3] = rack & 0xff;
  b[t + TcpField.DataOffset] = (TCP_MIN_HEADER >>> 2) << 4;
  b[t + TcpField.Flags] = withAck ? TCP_RST | TCP_ACK : TCP_RST;
  set16(b, t + TcpField.Window, 0);
  set16(b, t + TcpField.Checksum, 0);
  set16(b, t + TcpField.Urgent, 0);
  p.length = IPV4_MIN_HEADER + TCP_MIN_HEADER;
  p.gsoSize = 0;
  p.gsoType = 0;
  p.csumPartial = false;
  const v = tcp.wrap(b, t);
  v.checksum = v.computeChecksumV4(ip, TCP_MIN_HEADER);
}

/** ICMP destination unreachable codes (RFC 792) the engine sends. */
export const ICMP_HOST_UNREACHABLE = 1;
export const ICMP_PORT_UNREACHABLE = 3;
export const ICMP_FRAG_NEEDED = 4;

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
  b[o] = 3;
  b[o + 1] = code;
  set16(b, o + 2, 0);
  set16(b, o + 4, 0);
  set16(b, o + 6, mtu);
  b.set(orig.subarray(origOff, origOff + quote), o + 8);
  set16(b, o + 2, finishChecksum(sumWords(b, o, icmpLen, 0)));
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
  b[o] = 0x60;
  b[o + 1] = 0;
  b[o + 2] = 0;
  b[o + 3] = 0;
  set16(b, o + 4, payloadLength);
  b[o + 6] = nextHeader;
  b[o + 7] = 64;
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
  const t = tcp.wrap(b, ip + IPV6_HEADER);
  t.srcPort = sport;
  t.dstPort = dport;
  t.seq = seq >>> 0;
  t.ack = withAck ? ack >>> 0 : 0;
  b[t.off + TcpField.DataOffset] = (TCP_MIN_HEADER >>> 2) << 4;
  t.flags = withAck ? TCP_RST | TCP_ACK : TCP_RST;
  t.window = 0;
  t.checksum = 0;
  set16(b, t.off + TcpField.Urgent, 0);
  t.checksum = t.computeChecksumV6(ip, TCP_MIN_HEADER);
  p.length = IPV6_HEADER + TCP_MIN_HEADER;
}

/** ICMPv6 Packet Too Big (RFC 4443 §3.2). */
export const ICMPV6_PACKET_TOO_BIG = 2;
/** The IPv6 minimum MTU: an ICMPv6 error never exceeds it (RFC 4443 §2.4 (c)). */
export const IPV6_MIN_MTU = 1280;

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
  const b = p.buf;
  const ip = p.start;
  const quote = Math.min(origLen, IPV6_MIN_MTU - IPV6_HEADER - 8);
  const icmpLen = 8 + quote;
  writeHeader6(b, ip, src, srcOff, dst, dstOff, IPPROTO_ICMPV6, icmpLen);
  const o = ip + IPV6_HEADER;
  b[o] = ICMPV6_PACKET_TOO_BIG;
  b[o + 1] = 0;
  set16(b, o + 2, 0);
  set32(b, o + 4, mtu);
  copyBytes(b, o + 8, orig, origOff, quote);
  const pseudo = sumWords(b, ip + 8, 32, 0) + IPPROTO_ICMPV6 + icmpLen;
  set16(b, o + 2, finishChecksum(sumWords(b, o, icmpLen, pseudo)));
  p.length = IPV6_HEADER + icmpLen;
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
  const b = p.buf;
  const ip = p.start;
  const quote = Math.min(origLen, IPV6_MIN_MTU - IPV6_HEADER - 8);
  const icmpLen = 8 + quote;
  writeHeader6(b, ip, src, srcOff, dst, dstOff, IPPROTO_ICMPV6, icmpLen);
  const o = ip + IPV6_HEADER;
  b[o] = ICMPV6_DEST_UNREACHABLE;
  b[o + 1] = code;
  set16(b, o + 2, 0);
  set32(b, o + 4, 0);
  copyBytes(b, o + 8, orig, origOff, quote);
  const pseudo = sumWords(b, ip + 8, 32, 0) + IPPROTO_ICMPV6 + icmpLen;
  set16(b, o + 2, finishChecksum(sumWords(b, o, icmpLen, pseudo)));
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
  const old = ip + IPV6_HEADER;
  const flags = b[old + TcpField.Flags]!;
  const hl = (b[old + TcpField.DataOffset]! >>> 4) << 2;
  const payload = get16(b, ip + 4) - hl;
  const sport = get16(b, old);
  const dport = get16(b, old + TcpField.DstPort);
  const so = old + TcpField.Seq;
  const ao = old + TcpField.Ack;
  const seq = (b[so]! << 24) | (b[so + 1]! << 16) | (b[so + 2]! << 8) | b[so + 3]!;
  const ack = (b[ao]! << 24) | (b[ao + 1]! << 16) | (b[ao + 2]! << 8) | b[ao + 3]!;
  const withAck = (flags & TCP_ACK) === 0;
  const rseq = withAck ? 0 : ack;
  const rack = withAck
    ? (seq + payload + ((flags & TCP_SYN) !== 0 ? 1 : 0) + ((flags & TCP_FIN) !== 0 ? 1 : 0)) | 0
    : 0;
  for (let k = 0; k < 16; k++) {
    const x = b[ip + 8 + k]!;
    b[ip + 8 + k] = b[ip + 24 + k]!;
    b[ip + 24 + k] = x;
  }
  b[ip] = 0x60;
  b[ip + 1] = 0;
  b[ip + 2] = 0;
  b[ip + 3] = 0;
  set16(b, ip + 4, TCP_MIN_HEADER);
  b[ip + 6] = IPPROTO_TCP;
  b[ip + 7] = 64;
  const t = old;
  set16(b, t, dport);
  set16(b, t + TcpField.DstPort, sport);
  b[t + TcpField.Seq] = rseq >>> 24;
  b[t + TcpField.Seq + 1] = (rseq >>> 16) & 0xff;
  b[t + TcpField.Seq + 2] = (rseq >>> 8) & 0xff;
  b[t + TcpField.Seq + 3] = rseq & 0xff;
  b[t + TcpField.Ack] = rack >>> 24;
  b[t + TcpField.Ack + 1] = (rack >>> 16) & 0xff;
  b[t + TcpField.Ack + 2] = (rack >>> 8) & 0xff;
  b[t + TcpField.Ack + 3] = rack & 0xff;
  b[t + TcpField.DataOffset] = (TCP_MIN_HEADER >>> 2) << 4;
  b[t + TcpField.Flags] = withAck ? TCP_RST | TCP_ACK : TCP_RST;
  set16(b, t + TcpField.Window, 0);
  set16(b, t + TcpField.Checksum, 0);
  set16(b, t + TcpField.Urgent, 0);
  p.length = IPV6_HEADER + TCP_MIN_HEADER;
  p.gsoSize = 0;
  p.gsoType = 0;
  p.csumPartial = false;
  const v = tcp.wrap(b, t);
  v.checksum = v.computeChecksumV6(ip, TCP_MIN_HEADER);
}
