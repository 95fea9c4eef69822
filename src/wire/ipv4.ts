import { get16, get32, set16, set32 } from './bytes.js';
import { checksumExcludingField, finishChecksum, sumWords } from './checksum.js';

export const IPV4_MIN_HEADER = 20;
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
    if (verifyChecksum && finishChecksum(sumWords(this.buf, this.off, hl, 0)) !== 0) {
      return Ipv4Error.BadChecksum;
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
    return this.buf[this.off + 1]!;
  }
  get totalLength(): number {
    return get16(this.buf, this.off + 2);
  }
  set totalLength(v: number) {
    set16(this.buf, this.off + 2, v);
  }
  get id(): number {
    return get16(this.buf, this.off + 4);
  }
  set id(v: number) {
    set16(this.buf, this.off + 4, v);
  }
  get dontFragment(): boolean {
    return (this.buf[this.off + 6]! & 0x40) !== 0;
  }
  get moreFragments(): boolean {
    return (this.buf[this.off + 6]! & 0x20) !== 0;
  }
  /** Fragment offset in bytes. */
  get fragmentOffset(): number {
    return (get16(this.buf, this.off + 6) & 0x1fff) * 8;
  }
  /** True for any piece of a fragmented datagram (first, middle or last). */
  get isFragment(): boolean {
    return this.moreFragments || this.fragmentOffset !== 0;
  }
  get ttl(): number {
    return this.buf[this.off + 8]!;
  }
  set ttl(v: number) {
    this.buf[this.off + 8] = v;
  }
  get protocol(): number {
    return this.buf[this.off + 9]!;
  }
  get checksum(): number {
    return get16(this.buf, this.off + 10);
  }
  set checksum(v: number) {
    set16(this.buf, this.off + 10, v);
  }
  get src(): number {
    return get32(this.buf, this.off + 12);
  }
  set src(v: number) {
    set32(this.buf, this.off + 12, v);
  }
  get dst(): number {
    return get32(this.buf, this.off + 16);
  }
  set dst(v: number) {
    set32(this.buf, this.off + 16, v);
  }
  get payloadOffset(): number {
    return this.off + this.headerLength;
  }
  get payloadLength(): number {
    return this.totalLength - this.headerLength;
  }

  computeChecksum(): number {
    return checksumExcludingField(this.buf, this.off, this.headerLength, this.off + 10, 0);
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
  b[o] = 0x45;
  b[o + 1] = f.tos ?? 0;
  set16(b, o + 2, IPV4_MIN_HEADER + f.payloadLength);
  set16(b, o + 4, f.id ?? 0);
  set16(b, o + 6, f.dontFragment === false ? 0 : 0x4000);
  b[o + 8] = f.ttl ?? 64;
  b[o + 9] = f.protocol;
  set16(b, o + 10, 0);
  set32(b, o + 12, f.src);
  set32(b, o + 16, f.dst);
  set16(b, o + 10, finishChecksum(sumWords(b, o, IPV4_MIN_HEADER, 0)));
  return IPV4_MIN_HEADER;
}
