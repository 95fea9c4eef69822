/**
 * Packet building and parsing for the simulated hosts, on top of the wire
 * codecs. Hosts work with copied-out `Segment` values: the simulator is not
 * the hot path, and copies keep one host from seeing another's mutations.
 */
import { get16, get32, ipv4ToString, set16 } from '../../wire/bytes.js';
import { internetChecksum } from '../../wire/checksum.js';
import {
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPV4_MIN_HEADER,
  Ipv4Error,
  Ipv4View,
  writeIpv4Header,
} from '../../wire/ipv4.js';
import { encodeOptions, opt, TcpOptionSummary, type TcpOption } from '../../wire/tcp-options.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, TcpView, writeTcpHeader } from '../../wire/tcp.js';

export interface Endpoint {
  addr: number;
  port: number;
}

export function epString(e: Endpoint): string {
  return `${ipv4ToString(e.addr)}:${e.port}`;
}

export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.addr === b.addr && a.port === b.port;
}

/** A received TCP segment, copied out of its packet. */
export interface Segment {
  src: number;
  dst: number;
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

/** What an ICMP "fragmentation needed" (type 3 code 4) says, with the quoted tuple. */
export interface FragNeeded {
  from: number;
  mtu: number;
  inner: { src: number; dst: number; sport: number; dport: number; seq: number };
}

export type Parsed =
  | { kind: 'tcp'; seg: Segment }
  | { kind: 'fragNeeded'; icmp: FragNeeded }
  | { kind: 'other' }
  | { kind: 'bad'; reason: string };

const ipView = new Ipv4View();
const tcpView = new TcpView();
const summary = new TcpOptionSummary();

/** Validates like a receiving Linux host: IPv4 header checksum, TCP checksum, no fragments. */
export function parsePacket(pkt: Uint8Array): Parsed {
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
  const optStart = tcp.optionsOffset;
  const optEnd = l4 + tcp.headerLength;
  summary.parse(pkt, optStart, optEnd);
  return {
    kind: 'tcp',
    seg: {
      src: ip.src,
      dst: ip.dst,
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
    },
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
  return {
    kind: 'fragNeeded',
    icmp: {
      from,
      mtu: get16(pkt, off + 6),
      inner: {
        src: get32(pkt, q + 12),
        dst: get32(pkt, q + 16),
        sport: get16(pkt, q + qhl),
        dport: get16(pkt, q + qhl + 2),
        seq: get32(pkt, q + qhl + 4),
      },
    },
  };
}

export interface TcpBuild {
  src: number;
  dst: number;
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

/** A complete IPv4+TCP packet with valid checksums (DF set, as Linux does for TCP). */
export function buildTcp(f: TcpBuild): Uint8Array {
  const options =
    f.rawOptions ?? (f.options && f.options.length > 0 ? encodeOptions(f.options) : undefined);
  const payload = f.payload ?? new Uint8Array(0);
  const hl = 20 + (options ? options.length : 0);
  const tcpLen = hl + payload.length;
  const b = new Uint8Array(IPV4_MIN_HEADER + tcpLen);
  writeIpv4Header(b, 0, { src: f.src, dst: f.dst, protocol: IPPROTO_TCP, payloadLength: tcpLen });
  writeTcpHeader(b, IPV4_MIN_HEADER, {
    srcPort: f.sport,
    dstPort: f.dport,
    seq: f.seq,
    ack: f.ack,
    flags: f.flags,
    window: f.window,
    options,
  });
  b.set(payload, IPV4_MIN_HEADER + hl);
  const tcp = tcpView.wrap(b, IPV4_MIN_HEADER);
  tcp.checksum = tcp.computeChecksumV4(0, tcpLen);
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
