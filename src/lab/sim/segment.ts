/**
 * Packet building and parsing for the simulated hosts, on top of the wire
 * codecs. Hosts work with copied-out `Segment` values: the simulator is not
 * the hot path, and copies keep one host from seeing another's mutations.
 */
import {
  addressEquals,
  addressKey,
  endpointToString,
  Ipv6Address,
  type IpAddress,
} from '../../wire/address.js';
import { get16, get32, set16, set32 } from '../../wire/bytes.js';
import { finishChecksum, internetChecksum, pseudoSumV6, sumWords } from '../../wire/checksum.js';
import {
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPV4_MIN_HEADER,
  Ipv4Error,
  Ipv4View,
  writeIpv4Header,
} from '../../wire/ipv4.js';
import { IPV6_HEADER, Ipv6Error, Ipv6View, writeIpv6Header } from '../../wire/ipv6.js';
import { encodeOptions, opt, TcpOptionSummary, type TcpOption } from '../../wire/tcp-options.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, TcpView, writeTcpHeader } from '../../wire/tcp.js';
import { mix32 } from './rng.js';

/** An address and port; the address is an IPv4 number or an `Ipv6Address`. */
export interface Endpoint {
  addr: IpAddress;
  port: number;
}

/** `10.0.0.1:80`, `[2001:db8::1]:80`. */
export function epString(e: Endpoint): string {
  return endpointToString(e.addr, e.port);
}

export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && addressEquals(a.addr, b.addr);
}

/** A Map/Set key for an endpoint. */
export function endpointKey(addr: IpAddress, port: number): string {
  return `${addressKey(addr)}:${port}`;
}

/** Bytes of IP header a host puts before TCP toward `a`: 20 (IPv4) or 40 (IPv6, no extension headers). */
export function ipHeaderLength(a: IpAddress): number {
  return typeof a === 'number' ? IPV4_MIN_HEADER : IPV6_HEADER;
}

/** The smallest MTU an IPv6 link may have (RFC 8200). */
export const IPV6_MIN_MTU = 1280;

/** Linux's floor for a path MTU learnt from an ICMP: ip_rt_min_pmtu (552) or IPV6_MIN_MTU (1280). */
export function minPmtu(a: IpAddress): number {
  return typeof a === 'number' ? 552 : IPV6_MIN_MTU;
}

/**
 * A 32-bit number standing for an address in seeds: the IPv4 address itself
 * (so IPv4 runs draw what they always drew), a mix of the four words of an
 * IPv6 one.
 */
export function addressSeed(a: IpAddress): number {
  if (typeof a === 'number') return a >>> 0;
  const b = a.bytes;
  return mix32(get32(b, 0), get32(b, 4), get32(b, 8), get32(b, 12));
}

/** A received TCP segment, copied out of its packet. */
export interface Segment {
  src: IpAddress;
  dst: IpAddress;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** Raw option bytes (header length − 20). */
  options: Uint8Array;
  payload: Uint8Array;
  /** MSS option value, or -1. */
  mss: number;
  /** Window-scale shift, or -1. */
  wscale: number;
  sackPermitted: boolean;
  tsVal: number | null;
  tsEcr: number;
}

/**
 * What an ICMP "fragmentation needed" (type 3 code 4) or an ICMPv6 Packet
 * Too Big (type 2) says, with the quoted tuple.
 */
export interface FragNeeded {
  from: IpAddress;
  mtu: number;
  inner: { src: IpAddress; dst: IpAddress; sport: number; dport: number; seq: number };
}

export type Parsed =
  | { kind: 'tcp'; seg: Segment }
  | { kind: 'fragNeeded'; icmp: FragNeeded }
  | { kind: 'other' }
  | { kind: 'bad'; reason: string };

const ipView = new Ipv4View();
const ip6View = new Ipv6View();
const tcpView = new TcpView();
const summary = new TcpOptionSummary();

/**
 * Validates like a receiving Linux host: IPv4 header checksum (IPv6 has
 * none), TCP or ICMP(v6) checksum, no fragments.
 */
export function parsePacket(pkt: Uint8Array): Parsed {
  if (pkt.length > 0 && pkt[0]! >>> 4 === 6) return parsePacket6(pkt);
  const ip = ipView.wrap(pkt, 0);
  if (ip.validate(pkt.length) !== Ipv4Error.None) return { kind: 'bad', reason: 'ipv4' };
  if (ip.isFragment) return { kind: 'bad', reason: 'fragment' };
  const l4 = ip.payloadOffset;
  const l4len = ip.payloadLength;
  if (ip.protocol === IPPROTO_ICMP) return parseIcmp(pkt, ip.src, l4, l4len);
  if (ip.protocol !== IPPROTO_TCP) return { kind: 'other' };
  const tcp = tcpView.wrap(pkt, l4);
  if (!tcp.fits(l4len)) return { kind: 'bad', reason: 'tcp-header' };
  if (tcp.computeChecksumV4(0, l4len) !== tcp.checksum)
    return { kind: 'bad', reason: 'tcp-checksum' };
  return { kind: 'tcp', seg: segmentAt(pkt, ip.src, ip.dst, l4, l4len) };
}

function parsePacket6(pkt: Uint8Array): Parsed {
  const ip = ip6View.wrap(pkt, 0);
  if (ip.walk(pkt.length) !== Ipv6Error.None) return { kind: 'bad', reason: 'ipv6' };
  if (ip.fragmented) return { kind: 'bad', reason: 'fragment' };
  const l4 = ip.upperOffset;
  const l4len = ip.totalLength - l4;
  const src = Ipv6Address.fromBytes(pkt, 8);
  if (ip.upperProtocol === IPPROTO_ICMPV6) return parseIcmp6(pkt, src, l4, l4len);
  if (ip.upperProtocol !== IPPROTO_TCP) return { kind: 'other' };
  const tcp = tcpView.wrap(pkt, l4);
  if (!tcp.fits(l4len)) return { kind: 'bad', reason: 'tcp-header' };
  // The pseudo-header takes the upper-layer length, whatever extension headers come before.
  const sum = sumWords(pkt, l4, l4len, pseudoSumV6(pkt, 0, IPPROTO_TCP, l4len));
  if (finishChecksum(sum) !== 0) return { kind: 'bad', reason: 'tcp-checksum' };
  return { kind: 'tcp', seg: segmentAt(pkt, src, Ipv6Address.fromBytes(pkt, 24), l4, l4len) };
}

function segmentAt(
  pkt: Uint8Array,
  src: IpAddress,
  dst: IpAddress,
  l4: number,
  l4len: number,
): Segment {
  const tcp = tcpView.wrap(pkt, l4);
  const optStart = tcp.optionsOffset;
  const optEnd = l4 + tcp.headerLength;
  summary.parse(pkt, optStart, optEnd);
  return {
    src,
    dst,
    sport: tcp.srcPort,
    dport: tcp.dstPort,
    seq: tcp.seq,
    ack: tcp.ack,
    flags: tcp.flags,
    window: tcp.window,
    options: pkt.slice(optStart, optEnd),
    payload: pkt.slice(optEnd, l4 + l4len),
    mss: summary.mss,
    wscale: summary.wscale,
    sackPermitted: summary.sackPermitted,
    tsVal: summary.hasTimestamp ? get32(pkt, summary.timestampAt + 2) : null,
    tsEcr: summary.hasTimestamp ? get32(pkt, summary.timestampAt + 6) : 0,
  };
}

function parseIcmp(pkt: Uint8Array, from: number, off: number, len: number): Parsed {
  if (len < 8 || internetChecksum(pkt, off, len) !== 0) return { kind: 'bad', reason: 'icmp' };
  if (pkt[off] !== 3 || pkt[off + 1] !== 4) return { kind: 'other' };
  const q = off + 8;
  const qhl = ((pkt[q] ?? 0) & 0x0f) * 4;
  if (len < 8 + IPV4_MIN_HEADER || qhl < IPV4_MIN_HEADER || len < 8 + qhl + 8) {
    return { kind: 'bad', reason: 'icmp-quote' };
  }
  return fragNeeded(
    from,
    get16(pkt, off + 6),
    get32(pkt, q + 12),
    get32(pkt, q + 16),
    pkt,
    q + qhl,
  );
}

/** ICMPv6 Packet Too Big (RFC 4443 3.2): the MTU, then the quoted IPv6 header and TCP ports and seq. */
function parseIcmp6(pkt: Uint8Array, from: Ipv6Address, off: number, len: number): Parsed {
  if (len < 8) return { kind: 'bad', reason: 'icmp6' };
  const sum = sumWords(pkt, off, len, pseudoSumV6(pkt, 0, IPPROTO_ICMPV6, len));
  if (finishChecksum(sum) !== 0) return { kind: 'bad', reason: 'icmp6' };
  if (pkt[off] !== 2) return { kind: 'other' };
  const q = off + 8;
  if (len < 8 + IPV6_HEADER + 8 || pkt[q + 6] !== IPPROTO_TCP)
    return { kind: 'bad', reason: 'icmp6-quote' };
  const src = Ipv6Address.fromBytes(pkt, q + 8);
  const dst = Ipv6Address.fromBytes(pkt, q + 24);
  return fragNeeded(from, get32(pkt, off + 4), src, dst, pkt, q + IPV6_HEADER);
}

/** A frag-needed or Packet Too Big from `from` telling `mtu`, quoting src → dst with the TCP header at pkt[t]. */
function fragNeeded(
  from: IpAddress,
  mtu: number,
  src: IpAddress,
  dst: IpAddress,
  pkt: Uint8Array,
  t: number,
): Parsed {
  return {
    kind: 'fragNeeded',
    icmp: {
      from,
      mtu,
      inner: { src, dst, sport: get16(pkt, t), dport: get16(pkt, t + 2), seq: get32(pkt, t + 4) },
    },
  };
}

export interface TcpBuild {
  src: IpAddress;
  dst: IpAddress;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  options?: readonly TcpOption[];
  /** Option bytes as-is (already padded), e.g. deliberately malformed ones; wins over `options`. */
  rawOptions?: Uint8Array;
  payload?: Uint8Array;
}

/**
 * A complete IPv4+TCP packet (DF set, as Linux does for TCP) or IPv6+TCP
 * packet (40-byte header, no extension headers, hop limit 64), by the
 * family of the addresses, with valid checksums.
 */
export function buildTcp(f: TcpBuild): Uint8Array {
  const v6 = typeof f.src !== 'number';
  if (v6 !== (typeof f.dst !== 'number'))
    throw new Error(`a TCP packet from ${String(f.src)} to ${String(f.dst)} mixes families`);
  const options =
    f.rawOptions ?? (f.options && f.options.length > 0 ? encodeOptions(f.options) : undefined);
  const payload = f.payload ?? new Uint8Array(0);
  const hl = 20 + (options ? options.length : 0);
  const tcpLen = hl + payload.length;
  const ipHl = v6 ? IPV6_HEADER : IPV4_MIN_HEADER;
  const b = new Uint8Array(ipHl + tcpLen);
  if (typeof f.src === 'number' && typeof f.dst === 'number')
    writeIpv4Header(b, 0, { src: f.src, dst: f.dst, protocol: IPPROTO_TCP, payloadLength: tcpLen });
  else if (typeof f.src !== 'number' && typeof f.dst !== 'number')
    writeIpv6Header(b, 0, {
      src: f.src.bytes,
      dst: f.dst.bytes,
      nextHeader: IPPROTO_TCP,
      payloadLength: tcpLen,
    });
  writeTcpHeader(b, ipHl, {
    srcPort: f.sport,
    dstPort: f.dport,
    seq: f.seq,
    ack: f.ack,
    flags: f.flags,
    window: f.window,
    options,
  });
  b.set(payload, ipHl + hl);
  const tcp = tcpView.wrap(b, ipHl);
  tcp.checksum = v6 ? tcp.computeChecksumV6(0, tcpLen) : tcp.computeChecksumV4(0, tcpLen);
  return b;
}

/**
 * ICMP type 3 code 4 from `from` about `orig`, quoting its IP header and the
 * first 8 bytes after it (RFC 792), with the next-hop MTU (RFC 1191).
 */
export function buildFragNeeded(from: number, orig: Uint8Array, mtu: number): Uint8Array {
  const origIp = ipView.wrap(orig, 0);
  const quoteLen = Math.min(orig.length, origIp.headerLength + 8);
  const icmpLen = 8 + quoteLen;
  const b = new Uint8Array(IPV4_MIN_HEADER + icmpLen);
  writeIpv4Header(b, 0, {
    src: from,
    dst: origIp.src,
    protocol: IPPROTO_ICMP,
    payloadLength: icmpLen,
    dontFragment: false,
  });
  const o = IPV4_MIN_HEADER;
  b[o] = 3;
  b[o + 1] = 4;
  set16(b, o + 6, mtu);
  b.set(orig.subarray(0, quoteLen), o + 8);
  set16(b, o + 2, internetChecksum(b, o, icmpLen));
  return b;
}

/**
 * ICMPv6 Packet Too Big (type 2 code 0) from `from` about the IPv6 packet
 * `orig`, with the MTU of the next link and as much of `orig` as keeps the
 * error within the IPv6 minimum MTU (RFC 4443 3.2).
 */
export function buildPacketTooBig(from: Ipv6Address, orig: Uint8Array, mtu: number): Uint8Array {
  const quoteLen = Math.min(orig.length, IPV6_MIN_MTU - IPV6_HEADER - 8);
  const icmpLen = 8 + quoteLen;
  const b = new Uint8Array(IPV6_HEADER + icmpLen);
  writeIpv6Header(b, 0, {
    src: from.bytes,
    dst: orig.subarray(8, 24),
    nextHeader: IPPROTO_ICMPV6,
    payloadLength: icmpLen,
    hopLimit: 255,
  });
  const o = IPV6_HEADER;
  b[o] = 2;
  b[o + 1] = 0;
  set32(b, o + 4, mtu);
  b.set(orig.subarray(0, quoteLen), o + 8);
  set16(
    b,
    o + 2,
    finishChecksum(sumWords(b, o, icmpLen, pseudoSumV6(b, 0, IPPROTO_ICMPV6, icmpLen))),
  );
  return b;
}

/** Linux SYN options: MSS, SACK_PERM, TS, NOP, WS (20 bytes); the no-TS form is MSS NOP NOP SACK_PERM NOP WS. */
export function linuxSynOptions(mss: number, tsVal: number | null, wscale: number): TcpOption[] {
  if (tsVal === null)
    return [opt.mss(mss), opt.nop(), opt.nop(), opt.sackPermitted(), opt.nop(), opt.wscale(wscale)];
  return [
    opt.mss(mss),
    opt.sackPermitted(),
    opt.timestamp(tsVal, 0),
    opt.nop(),
    opt.wscale(wscale),
  ];
}

/** Linux SYN+ACK option order (tcp_options_write): MSS, SACK_PERM+TS or NOP NOP TS / NOP NOP SACK_PERM, NOP WS. */
export function linuxSynAckOptions(
  mss: number,
  ts: { val: number; ecr: number } | null,
  sack: boolean,
  wscale: number | null,
): TcpOption[] {
  const out: TcpOption[] = [opt.mss(mss)];
  if (ts) {
    if (sack) out.push(opt.sackPermitted());
    else out.push(opt.nop(), opt.nop());
    out.push(opt.timestamp(ts.val, ts.ecr));
  } else if (sack) {
    out.push(opt.nop(), opt.nop(), opt.sackPermitted());
  }
  if (wscale !== null) out.push(opt.nop(), opt.wscale(wscale));
  return out;
}

/** Sequence space a segment occupies (SYN and FIN count one each). */
export function segmentLength(seg: Segment): number {
  return seg.payload.length + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & TCP_FIN ? 1 : 0);
}

/** RST in reply to `seg`, built like tcp_v4_send_reset: seq from its ACK, else ACK its end. */
export function buildResetFor(seg: Segment): Uint8Array {
  const hasAck = (seg.flags & TCP_ACK) !== 0;
  return buildTcp({
    src: seg.dst,
    dst: seg.src,
    sport: seg.dport,
    dport: seg.sport,
    seq: hasAck ? seg.ack : 0,
    ack: hasAck ? 0 : (seg.seq + segmentLength(seg)) >>> 0,
    flags: hasAck ? TCP_RST : TCP_RST | TCP_ACK,
    window: 0,
  });
}
