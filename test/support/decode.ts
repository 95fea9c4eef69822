import { Ipv6Address } from '../../src/wire/address.js';
import { ipv4ToString } from '../../src/wire/bytes.js';
import { Ipv4View } from '../../src/wire/ipv4.js';
import { TcpView } from '../../src/wire/tcp.js';
import { TcpOptionSummary, decodeOptions, type TcpOption } from '../../src/wire/tcp-options.js';
import { ToaResult, findToa } from '../../src/wire/toa.js';

/** The TCP header's fields every decoded packet carries. */
export interface TcpFields {
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
}

/** An IPv4/TCP packet the engine emitted, read back for assertions. */
export interface Decoded extends TcpFields {
  src: number;
  dst: number;
  ttl: number;
  options: TcpOption[];
  payload: Uint8Array;
  /** The TOA the RS module would read (first match, kernel parsing rules). */
  toa: ToaResult;
  bytes: Uint8Array;
}

function tcpFields(t: TcpView): TcpFields {
  return {
    sport: t.srcPort,
    dport: t.dstPort,
    seq: t.seq,
    ack: t.ack,
    flags: t.flags,
    window: t.window,
  };
}

export function decodeSegment(b: Uint8Array): Decoded {
  const ip = new Ipv4View().wrap(b, 0);
  const t = new TcpView().wrap(b, ip.headerLength);
  const optStart = ip.headerLength + 20;
  const optEnd = ip.headerLength + t.headerLength;
  const toa = new ToaResult();
  findToa(b, optStart, optEnd, toa);
  return {
    src: ip.src,
    dst: ip.dst,
    ...tcpFields(t),
    ttl: ip.ttl,
    options: decodeOptions(b, optStart, optEnd),
    payload: b.slice(optEnd, ip.totalLength),
    toa,
    bytes: b,
  };
}

/** A TCP packet of either family the engine emitted, read back for assertions. */
export interface DecodedAnyFamily extends TcpFields {
  family: 4 | 6;
  /** Addresses as text: dotted quad, or RFC 5952 IPv6. */
  src: string;
  dst: string;
  /** Payload length in bytes. */
  payload: number;
  options: TcpOptionSummary;
  /** The TOA the RS module would read, or null when there is none. */
  toa: ToaResult | null;
  /** TTL, or the IPv6 hop limit. */
  ttl: number;
  /** IPv4 DF; always false on IPv6, which has no such bit. */
  df: boolean;
  ipHl: number;
  bytes: Uint8Array;
}

/** Reads `b` as IPv6/TCP (no extension headers) or IPv4/TCP, by its version nibble. */
export function decodeAnyFamily(b: Uint8Array): DecodedAnyFamily {
  const family = b[0]! >>> 4 === 6 ? 6 : 4;
  let ipHl = 40;
  let src: string;
  let dst: string;
  let ttl: number;
  let df = false;
  if (family === 6) {
    src = Ipv6Address.fromBytes(b.subarray(8, 24)).text;
    dst = Ipv6Address.fromBytes(b.subarray(24, 40)).text;
    ttl = b[7]!;
  } else {
    const ip = new Ipv4View().wrap(b, 0);
    ipHl = ip.headerLength;
    src = ipv4ToString(ip.src);
    dst = ipv4ToString(ip.dst);
    ttl = ip.ttl;
    df = ip.dontFragment;
  }
  const t = new TcpView().wrap(b, ipHl);
  const hl = t.headerLength;
  const toa = new ToaResult();
  return {
    family,
    src,
    dst,
    ...tcpFields(t),
    payload: b.length - ipHl - hl,
    options: new TcpOptionSummary().parse(b, ipHl + 20, ipHl + hl),
    toa: findToa(b, ipHl + 20, ipHl + hl, toa) ? toa : null,
    ttl,
    df,
    ipHl,
    bytes: b,
  };
}
