import { Ipv6Address } from '../../src/wire/address.js';
import { Ipv4View, IPPROTO_TCP, writeIpv4Header } from '../../src/wire/ipv4.js';
import { TcpView, writeTcpHeader } from '../../src/wire/tcp.js';
import { encodeOptions, type TcpOption } from '../../src/wire/tcp-options.js';

export interface SegmentSpec {
  src: number;
  dst: number;
  sport: number;
  dport: number;
  seq: number;
  ack?: number;
  flags: number;
  window?: number;
  options?: TcpOption[];
  /** Raw option bytes (padded) instead of `options`. */
  rawOptions?: Uint8Array;
  payload?: Uint8Array;
  id?: number;
  dontFragment?: boolean;
}

/** The TCP header of `s` at `at` (checksum left 0), its encoded options, then `payload`. */
function writeTcpAndPayload(
  b: Uint8Array,
  at: number,
  s: Pick<SegmentSpec, 'sport' | 'dport' | 'seq' | 'ack' | 'flags' | 'window'>,
  opts: Uint8Array,
  payload: Uint8Array,
): void {
  writeTcpHeader(b, at, {
    srcPort: s.sport,
    dstPort: s.dport,
    seq: s.seq,
    ack: s.ack ?? 0,
    flags: s.flags,
    window: s.window ?? 64240,
    options: opts,
  });
  b.set(payload, at + 20 + opts.length);
}

/** Builds a valid IPv4/TCP packet (both checksums right). */
export function buildSegment(s: SegmentSpec): Uint8Array {
  const opts = s.rawOptions ?? (s.options ? encodeOptions(s.options) : new Uint8Array(0));
  const payload = s.payload ?? new Uint8Array(0);
  const tcpLen = 20 + opts.length + payload.length;
  const b = new Uint8Array(20 + tcpLen);
  writeIpv4Header(b, 0, {
    src: s.src,
    dst: s.dst,
    protocol: IPPROTO_TCP,
    payloadLength: tcpLen,
    id: s.id ?? 1,
    dontFragment: s.dontFragment ?? true,
  });
  writeTcpAndPayload(b, 20, s, opts, payload);
  const t = new TcpView().wrap(b, 20);
  t.checksum = t.computeChecksumV4(0, tcpLen);
  return b;
}

/** True when the IPv4 header and TCP checksums of `b` are both right. */
export function checksumsValid(b: Uint8Array): boolean {
  const ip = new Ipv4View().wrap(b, 0);
  if (ip.computeChecksum() !== ip.checksum) return false;
  const t = new TcpView().wrap(b, ip.headerLength);
  return t.computeChecksumV4(0, ip.totalLength - ip.headerLength) === t.checksum;
}

export function pattern(n: number, seed = 7): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** `seg` with 4 bytes of IP options (NOPs) after the fixed header: IHL 6. */
export function withIpOptions(seg: Uint8Array): Uint8Array {
  const b = new Uint8Array(seg.length + 4);
  b.set(seg.subarray(0, 20), 0);
  b.set([1, 1, 1, 1], 20);
  b.set(seg.subarray(20), 24);
  const ip = new Ipv4View().wrap(b, 0);
  b[0] = 0x46;
  ip.totalLength = b.length;
  ip.checksum = 0;
  ip.checksum = ip.computeChecksum();
  return b;
}

export interface Segment6Spec extends Omit<SegmentSpec, 'src' | 'dst' | 'id' | 'dontFragment'> {
  src: Uint8Array;
  dst: Uint8Array;
  hopLimit?: number;
  /** Extension headers between the fixed header and TCP: each `type` and its whole `body` (next-header byte filled in). */
  ext?: { type: number; body: Uint8Array }[];
}

/** Builds a valid IPv6/TCP packet (TCP checksum right), with extension headers if asked. */
export function buildSegment6(s: Segment6Spec): Uint8Array {
  const opts = s.rawOptions ?? (s.options ? encodeOptions(s.options) : new Uint8Array(0));
  const payload = s.payload ?? new Uint8Array(0);
  const chain = s.ext ?? [];
  let extLen = 0;
  for (const h of chain) extLen += h.body.length;
  const tcpLen = 20 + opts.length + payload.length;
  const b = new Uint8Array(40 + extLen + tcpLen);
  b[0] = 0x60;
  b[4] = (extLen + tcpLen) >>> 8;
  b[5] = (extLen + tcpLen) & 0xff;
  b[6] = chain.length > 0 ? chain[0]!.type : IPPROTO_TCP;
  b[7] = s.hopLimit ?? 64;
  b.set(s.src, 8);
  b.set(s.dst, 24);
  let o = 40;
  chain.forEach((h, i) => {
    b.set(h.body, o);
    b[o] = i + 1 < chain.length ? chain[i + 1]!.type : IPPROTO_TCP;
    o += h.body.length;
  });
  writeTcpAndPayload(b, o, s, opts, payload);
  const t = new TcpView().wrap(b, o);
  t.checksum = t.computeChecksumV6(0, tcpLen);
  return b;
}

/** True when `b` is IPv6 + TCP (no extension headers) with a right TCP checksum and a consistent length. */
export function checksumsValid6(b: Uint8Array): boolean {
  if (b[0]! >>> 4 !== 6 || b[6] !== IPPROTO_TCP) return false;
  const payload = (b[4]! << 8) | b[5]!;
  if (payload + 40 !== b.length) return false;
  const t = new TcpView().wrap(b, 40);
  return t.computeChecksumV6(0, payload) === t.checksum;
}

/** 16 bytes of an IPv6 address from its text (throws when it is not one). */
export function v6(text: string): Uint8Array {
  const a = Ipv6Address.parse(text);
  if (!a) throw new Error(`not an IPv6 address: ${text}`);
  return a.bytes;
}
