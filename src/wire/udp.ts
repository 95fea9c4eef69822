import { get16, set16 } from './bytes.js';
import { checksumExcludingField, pseudoSumV4, pseudoSumV6 } from './checksum.js';
import { IPPROTO_UDP } from './ipv4.js';

export const UDP_HEADER = 8;
/** The checksum field of an IPv4 datagram whose sender computed none. */
export const UDP_NO_CHECKSUM = 0;

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

  /**
   * UDP over IPv4; a computed 0 is sent as 0xffff (RFC 768). The pseudo-header
   * takes the addresses of the IP header at ipOff and the UDP length field, so
   * the UDP header need not follow the IP header directly (UOA's OPP header
   * may sit between them).
   */
  computeChecksumV4(ipOff: number): number {
    return this.compute(pseudoSumV4(this.buf, ipOff, IPPROTO_UDP, this.length));
  }

  computeChecksumV6(ipOff: number): number {
    return this.compute(pseudoSumV6(this.buf, ipOff, IPPROTO_UDP, this.length));
  }

  /**
   * Whether the checksum checks out over IPv4 (the view must `fit` first). A
   * zero field means the sender computed none (RFC 768), and that is valid.
   */
  checksumValidV4(ipOff: number): boolean {
    const c = this.checksum;
    return c === UDP_NO_CHECKSUM || c === this.computeChecksumV4(ipOff);
  }

  /** Over IPv6 the checksum is mandatory (RFC 8200 §8.1): a zero field is never valid. */
  checksumValidV6(ipOff: number): boolean {
    const c = this.checksum;
    return c !== UDP_NO_CHECKSUM && c === this.computeChecksumV6(ipOff);
  }

  /**
   * Recomputes the checksum after a rewrite, except a zero one: the sender
   * chose to send none, and it stays none.
   */
  refreshChecksumV4(ipOff: number): void {
    if (this.checksum !== UDP_NO_CHECKSUM) this.checksum = this.computeChecksumV4(ipOff);
  }

  /** Recomputes the checksum, a zero one included: IPv6 has no "none". */
  refreshChecksumV6(ipOff: number): void {
    this.checksum = this.computeChecksumV6(ipOff);
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
