import { get16, set16 } from './bytes.js';
import { checksumExcludingField, pseudoSumV4, pseudoSumV6 } from './checksum.js';
import { IPPROTO_UDP } from './ipv4.js';

export const UDP_HEADER = 8;

export class UdpView {
  buf: Uint8Array = new Uint8Array(0);
  off = 0;

  wrap(buf: Uint8Array, off: number): this {
    this.buf = buf;
    this.off = off;
    return this;
  }

  /** True when the header fits in `avail` and its length field is consistent with it. */
  fits(avail: number): boolean {
    if (avail < UDP_HEADER) return false;
    const l = this.length;
    return l >= UDP_HEADER && l <= avail;
  }

  get srcPort(): number {
    return get16(this.buf, this.off);
  }
  set srcPort(v: number) {
    set16(this.buf, this.off, v);
  }
  get dstPort(): number {
    return get16(this.buf, this.off + 2);
  }
  set dstPort(v: number) {
    set16(this.buf, this.off + 2, v);
  }
  get length(): number {
    return get16(this.buf, this.off + 4);
  }
  set length(v: number) {
    set16(this.buf, this.off + 4, v);
  }
  get checksum(): number {
    return get16(this.buf, this.off + 6);
  }
  set checksum(v: number) {
    set16(this.buf, this.off + 6, v);
  }

  /** UDP over IPv4; a computed 0 is sent as 0xffff (RFC 768). */
  computeChecksumV4(ipOff: number): number {
    return this.compute(pseudoSumV4(this.buf, ipOff, IPPROTO_UDP, this.length));
  }

  computeChecksumV6(ipOff: number): number {
    return this.compute(pseudoSumV6(this.buf, ipOff, IPPROTO_UDP, this.length));
  }

  private compute(pseudo: number): number {
    const c = checksumExcludingField(this.buf, this.off, this.length, this.off + 6, pseudo);
    return c === 0 ? 0xffff : c;
  }
}

export function writeUdpHeader(
  b: Uint8Array,
  o: number,
  srcPort: number,
  dstPort: number,
  payloadLength: number,
): number {
  set16(b, o, srcPort);
  set16(b, o + 2, dstPort);
  set16(b, o + 4, UDP_HEADER + payloadLength);
  set16(b, o + 6, 0);
  return UDP_HEADER;
}
