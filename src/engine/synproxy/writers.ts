import { copyBytes, get16, set16, storeU32From } from '../../wire/bytes.js';
import { IPPROTO_TCP, IPV4_MIN_HEADER, finishIpv4Header, Ipv4Field } from '../../wire/ipv4.js';
import { finishIpv6Header, IPV6_HEADER } from '../../wire/ipv6.js';
import { swapBytes } from '../../wire/swap.js';
import { TCP_ACK, TCP_MIN_HEADER, TCP_RST, TCP_SYN, TcpView, TcpField } from '../../wire/tcp.js';
import { writeSynOptions } from '../../wire/tcp-options.js';
import { TOA_V4_LEN, TOA_V6_LEN, writeToaV4Words } from '../../wire/toa.js';
import { CF_IPV6, type ConnTable } from '../conn-table.js';
import { finishTcpHeader } from '../craft.js';
import type { Packet } from '../packet.js';

// The packets SYNPROXY writes itself: the cookie SYN+ACK and the RST for a bad
// cookie (both the client's packet turned around in place), and the LB→RS SYN.
// IPv6 ones (the `*6` writers and an IPv6 RS leg) have the fixed header only
// (the IPv6 path has taken extension headers out), traffic class and flow label 0.

const tcpView = new TcpView();

/** Writes the rest of a TCP header at t (ports, seq, ack written) and both checksums; p is ip+tcp only. */
function finishSegment(
  p: Packet,
  t: number,
  hl: number,
  flags: number,
  window: number,
  ttl: number,
): void {
  const b = p.buf;
  const ip = p.start;
  finishTcpHeader(b, t, hl, flags, window);
  finishIpv4Header(b, ip, IPV4_MIN_HEADER + hl, IPPROTO_TCP, ttl);
  p.length = IPV4_MIN_HEADER + hl;
  const tcp = tcpView.wrap(b, t);
  tcp.checksum = tcp.computeChecksumV4(ip, hl);
}

/** `finishSegment` under an IPv6 fixed header at p.start (addresses written), TCP at t = p.start + 40. */
function finishSegment6(
  p: Packet,
  t: number,
  hl: number,
  flags: number,
  window: number,
  hopLimit: number,
): void {
  const b = p.buf;
  const ip = p.start;
  finishTcpHeader(b, t, hl, flags, window);
  finishIpv6Header(b, ip, hl, IPPROTO_TCP, hopLimit);
  p.length = IPV6_HEADER + hl;
  const tcp = tcpView.wrap(b, t);
  tcp.checksum = tcp.computeChecksumV6(ip, hl);
}

/**
 * Turns a received packet around in place for an answer: swaps the IPv4
 * addresses and the TCP ports, and drops IP options by starting the TCP
 * header at ip+20. Returns that offset; the rest of the TCP header is the caller's.
 */
function reverseEndpoints(b: Uint8Array, ip: number, ipHl: number): number {
  swapBytes(b, ip + Ipv4Field.Src, ip + Ipv4Field.Dst, 4);
  return swapPorts(b, ip + ipHl, ip + IPV4_MIN_HEADER);
}

/** `reverseEndpoints` for an IPv6 packet (fixed header at p.start, TCP right after it). */
function reverseEndpoints6(b: Uint8Array, ip: number): number {
  swapBytes(b, ip + 8, ip + 24, 16);
  return swapPorts(b, ip + IPV6_HEADER, ip + IPV6_HEADER);
}

/** The ports of the TCP header at b[old] written swapped at b[t] (t ≤ old); returns t. */
function swapPorts(b: Uint8Array, old: number, t: number): number {
  const sport = get16(b, old);
  const dport = get16(b, old + TcpField.DstPort);
  set16(b, t, dport);
  set16(b, t + TcpField.DstPort, sport);
  return t;
}

/**
 * Turns the client SYN in p into the LB's cookie SYN+ACK, in place: VIP:vport →
 * CIP:cport, seq = vals[0] (the cookie), ack = vals[1] (client ISN + 1),
 * options MSS, SACK-permitted (if `sack`), window scale (if `wscale` ≥ 0),
 * no timestamps. IP options and any SYN payload are dropped.
 */
export function reflectCookieSynAck(
  p: Packet,
  ipHl: number,
  vals: Uint32Array,
  mss: number,
  wscale: number,
  sack: boolean,
  window: number,
  ttl: number,
): void {
  const b = p.buf;
  const t = reverseEndpoints(b, p.start, ipHl);
  storeU32From(b, t + TcpField.Seq, vals, 0);
  storeU32From(b, t + TcpField.Ack, vals, 1);
  const hl = TCP_MIN_HEADER + writeSynOptions(b, t + TCP_MIN_HEADER, mss, wscale, sack);
  finishSegment(p, t, hl, TCP_SYN | TCP_ACK, window, ttl);
}

/** `reflectCookieSynAck` for an IPv6 client's SYN (fixed header at p.start, TCP at 40); `ttl` is the hop limit. */
export function reflectCookieSynAck6(
  p: Packet,
  vals: Uint32Array,
  mss: number,
  wscale: number,
  sack: boolean,
  window: number,
  ttl: number,
): void {
  const b = p.buf;
  const t = reverseEndpoints6(b, p.start);
  storeU32From(b, t + TcpField.Seq, vals, 0);
  storeU32From(b, t + TcpField.Ack, vals, 1);
  const hl = TCP_MIN_HEADER + writeSynOptions(b, t + TCP_MIN_HEADER, mss, wscale, sack);
  finishSegment6(p, t, hl, TCP_SYN | TCP_ACK, window, ttl);
}

/**
 * Turns the client ACK in p into the RST that refuses it, in place (RFC 793:
 * an unacceptable ACK gets <SEQ=SEG.ACK><CTL=RST>).
 */
export function reflectReset(p: Packet, ipHl: number): void {
  const b = p.buf;
  const ack = p.start + ipHl + TcpField.Ack;
  const ackHi = get16(b, ack);
  const ackLo = get16(b, ack + 2);
  const t = reverseEndpoints(b, p.start, ipHl);
  set16(b, t + TcpField.Seq, ackHi);
  set16(b, t + TcpField.Seq + 2, ackLo);
  b.fill(0, t + TcpField.Ack, t + TCP_MIN_HEADER);
  finishSegment(p, t, TCP_MIN_HEADER, TCP_RST, 0, 64);
}

/**
 * Writes the LB→RS SYN of connection c into q: LIP:lport → RIP:rport (IPv4,
 * or IPv6 for an IPv6 client's connection toward an IPv6 RS), seq = the
 * connection's LB ISN, options [TOA of the client] MSS [SACK-permitted]
 * [window scale], no timestamps. The TOA of an IPv6 client is the 20-byte
 * one (kind `toaV6Kind`), on FNAT64's IPv4 SYN too.
 */
export function writeRsSyn(
  q: Packet,
  t: ConnTable,
  c: number,
  mss: number,
  wscale: number,
  sack: boolean,
  window: number,
  toa: boolean,
  toaV6Kind: number,
): void {
  const b = q.buf;
  const ip = q.start;
  const clientV6 = (t.flags[c]! & CF_IPV6) !== 0;
  const rsV6 = clientV6 && t.replyIsV6(c);
  let tp: number;
  if (rsV6) {
    copyBytes(b, ip + 8, t.lip6, c * 16, 16);
    copyBytes(b, ip + 24, t.rip6, c * 16, 16);
    tp = ip + IPV6_HEADER;
  } else {
    storeU32From(b, ip + Ipv4Field.Src, t.lip, c);
    storeU32From(b, ip + Ipv4Field.Dst, t.rip, c);
    tp = ip + IPV4_MIN_HEADER;
  }
  set16(b, tp, t.lport[c]!);
  set16(b, tp + TcpField.DstPort, t.rport[c]!);
  storeU32From(b, tp + TcpField.Seq, t.lbIsn, c);
  b.fill(0, tp + TcpField.Ack, tp + TcpField.Ack + 4);
  let o = tp + TCP_MIN_HEADER;
  if (toa && clientV6) {
    b[o] = toaV6Kind;
    b[o + 1] = TOA_V6_LEN;
    set16(b, o + 2, t.cport[c]!);
    copyBytes(b, o + 4, t.cip6, c * 16, 16);
    o += TOA_V6_LEN;
  } else if (toa) {
    const cip = t.cip[c]!;
    writeToaV4Words(b, o, t.cport[c]!, cip >>> 16, cip & 0xffff);
    o += TOA_V4_LEN;
  }
  o += writeSynOptions(b, o, mss, wscale, sack);
  if (rsV6) finishSegment6(q, tp, o - tp, TCP_SYN, window, 64);
  else finishSegment(q, tp, o - tp, TCP_SYN, window, 64);
}
