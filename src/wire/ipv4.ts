import { get16, get32, set16, set32 } from './bytes.js';
import { checksumExcludingField, finishChecksum, sumWords, sumWords20 } from './checksum.js';

export const IPV4_MIN_HEADER = 20;

/**
 * Field offsets from the start of an IPv4 header (RFC 791). A const enum, so
 * the compiled code reads plain numbers: a module constant would cost a
 * lookup (and a TDZ check) on every access in the data path.
 */
export const enum Ipv4Field {
  Tos = 1,
  TotalLength = 2,
  Id = 4,
  /** Flags (DF 0x40, MF 0x20 of this byte) and the fragment offset. */
  Flags = 6,
  Ttl = 8,
  Protocol = 9,
  Checksum = 10,
  Src = 12,
  Dst = 16,
}
/** Don't Fragment, in the 16-bit flags/fragment-offset word. */
export const IPV4_DF = 0x4000;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;

/** Why an IPv4 header was rejected; 0 means it is well-formed. */
export const enum Ipv4Error {
  None = 0,
  Truncated = 1,
  BadVersion = 2,
  BadIhl = 3,
  BadTotalLength = 4,
  BadChecksum = 5,
}

/**
 * A view over an IPv4 header in place. `wrap` re-points the same object at
 * another packet, so the data path keeps one instance and allocates nothing.
 */
export class Ipv4View {
  buf: Uint8Array = new Uint8Array(0);
  off = 0;

  wrap(buf: Uint8Array, off: number): this {
    this.buf = buf;
    this.off = off;
    return this;
  }

  /** Checks the header against `avail` bytes present at off. */
  validate(avail: number, verifyChecksum = true): Ipv4Error {
    if (avail < IPV4_MIN_HEADER) return Ipv4Error.Truncated;
    if (this.version !== 4) return Ipv4Error.BadVersion;
    const hl = this.headerLength;
    if (hl < IPV4_MIN_HEADER || hl > avail) return Ipv4Error.BadIhl;
    const tl = this.totalLength;
    if (tl < hl || tl > avail) return Ipv4Error.BadTotalLength;
    if (verifyChecksum) {
      const sum =
        hl === IPV4_MIN_HEADER
          ? sumWords20(this.buf, this.off)
          : sumWords(this.buf, this.off, hl, 0);
      if (finishChecksum(sum) !== 0) return Ipv4Error.BadChecksum;
    }
    return Ipv4Error.None;
  }

  get version(): number {
    return this.buf[this.off]! >>> 4;
  }
  get headerLength(): number {
    return (this.buf[this.off]! & 0x0f) * 4;
  }
  set headerLength(bytes: number) {
    this.buf[this.off] = 0x40 | (bytes >>> 2);
  }
  get tos(): number {
    return this.buf[this.off + Ipv4Field.Tos]!;
  }
  get totalLength(): number {
    return get16(this.buf, this.off + Ipv4Field.TotalLength);
  }
  set totalLength(v: number) {
    set16(this.buf, this.off + Ipv4Field.TotalLength, v);
  }
  get id(): number {
    return get16(this.buf, this.off + Ipv4Field.Id);
  }
  set id(v: number) {
    set16(this.buf, this.off + Ipv4Field.Id, v);
  }
  get dontFragment(): boolean {
    return (this.buf[this.off + Ipv4Field.Flags]! & 0x40) !== 0;
  }
  get moreFragments(): boolean {
    return (this.buf[this.off + Ipv4Field.Flags]! & 0x20) !== 0;
  }
  /** Fragment offset in bytes. */
  get fragmentOffset(): number {
    return (get16(this.buf, this.off + Ipv4Field.Flags) & 0x1fff) * 8;
  }
  /** True for any piece of a fragmented datagram (first, middle or last). */
  get isFragment(): boolean {
    return this.moreFragments || this.fragmentOffset !== 0;
  }
  get ttl(): number {
    return this.buf[this.off + Ipv4Field.Ttl]!;
  }
  set ttl(v: number) {
    this.buf[this.off + Ipv4Field.Ttl] = v;
  }
  get protocol(): number {
    return this.buf[this.off + Ipv4Field.Protocol]!;
  }
  get checksum(): number {
    return get16(this.buf, this.off + Ipv4Field.Checksum);
  }
  set checksum(v: number) {
    set16(this.buf, this.off + Ipv4Field.Checksum, v);
  }
  get src(): number {
    return get32(this.buf, this.off + Ipv4Field.Src);
  }
  set src(v: number) {
    set32(this.buf, this.off + Ipv4Field.Src, v);
  }
  get dst(): number {
    return get32(this.buf, this.off + Ipv4Field.Dst);
  }
  set dst(v: number) {
    set32(this.buf, this.off + Ipv4Field.Dst, v);
  }
  get payloadOffset(): number {
    return this.off + this.headerLength;
  }
  get payloadLength(): number {
    return this.totalLength - this.headerLength;
  }

  computeChecksum(): number {
    return checksumExcludingField(
      this.buf,
      this.off,
      this.headerLength,
      this.off + Ipv4Field.Checksum,
      0,
    );
  }

  updateChecksum(): void {
    this.checksum = this.computeChecksum();
  }
}

export interface Ipv4HeaderFields {
  src: number;
  dst: number;
  protocol: number;
  ttl?: number;
  id?: number;
  tos?: number;
  dontFragment?: boolean;
  /** Bytes after the header. */
  payloadLength: number;
}

/** Writes a 20-byte IPv4 header with a valid checksum; returns its length. */
export function writeIpv4Header(b: Uint8Array, o: number, f: Ipv4HeaderFields): number {
  set32(b, o + Ipv4Field.Src, f.src);
  set32(b, o + Ipv4Field.Dst, f.dst);
  finishIpv4Header(
    b,
    o,
    IPV4_MIN_HEADER + f.payloadLength,
    f.protocol,
    f.ttl ?? 64,
    f.tos ?? 0,
    f.id ?? 0,
    f.dontFragment !== false,
  );
  return IPV4_MIN_HEADER;
}

/**
 * The one IPv4 header builder: writes every field of a 20-byte header but the
 * addresses (already at o+12..o+19, or written after by the caller, which then
 * owes the checksum) and its checksum. Takes numbers only, so the data path
 * can build headers without an object per packet.
 */
export function finishIpv4Header(
  b: Uint8Array,
  o: number,
  totalLength: number,
  protocol: number,
  ttl: number,
  tos = 0,
  id = 0,
  dontFragment = true,
): void {
  const flags = dontFragment ? IPV4_DF : 0;
  b[o] = 0x45;
  b[o + Ipv4Field.Tos] = tos;
  set16(b, o + Ipv4Field.TotalLength, totalLength);
  set16(b, o + Ipv4Field.Id, id);
  set16(b, o + Ipv4Field.Flags, flags);
  b[o + Ipv4Field.Ttl] = ttl;
  b[o + Ipv4Field.Protocol] = protocol;
  // The checksum from the values just written (FNAT64 builds a header per client packet):
  // the same sum as over the header's ten words with the checksum field zero.
  const sum =
    (0x4500 | (tos & 0xff)) +
    (totalLength & 0xffff) +
    (id & 0xffff) +
    flags +
    (((ttl & 0xff) << 8) | (protocol & 0xff)) +
    get16(b, o + Ipv4Field.Src) +
    get16(b, o + Ipv4Field.Src + 2) +
    get16(b, o + Ipv4Field.Dst) +
    get16(b, o + Ipv4Field.Dst + 2);
  set16(b, o + Ipv4Field.Checksum, finishChecksum(sum));
}

/**
 * Bytes a first fragment must hold of its transport header (RFC 1858, RFC
 * 7112; the sizes of Linux's `ipv6frag_thdr_truncated`).
 */
export function transportMinimum(protocol: number): number {
  if (protocol === IPPROTO_TCP) return 20;
  if (protocol === IPPROTO_UDP || protocol === IPPROTO_ICMP || protocol === IPPROTO_ICMPV6)
    return 8;
  return 1;
}
