import { get16, get32, set16, set32 } from './bytes.js';
import { checksumExcludingField, pseudoSumV4, pseudoSumV6 } from './checksum.js';
import { IPPROTO_TCP } from './ipv4.js';

export const TCP_MIN_HEADER = 20;
export const TCP_MAX_HEADER = 60;
export const TCP_MAX_OPTIONS = 40;

/**
 * Field offsets from the start of a TCP header (RFC 793). A const enum, so
 * the compiled code reads plain numbers (see Ipv4Field).
 */
export const enum TcpField {
  SrcPort = 0,
  DstPort = 2,
  Seq = 4,
  Ack = 8,
  /** The data offset: header length in 32-bit words, in the high nibble. */
  DataOffset = 12,
  Flags = 13,
  Window = 14,
  Checksum = 16,
  Urgent = 18,
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

/** Sequence-space comparisons (RFC 1982 style, modulo 2^32). */
export function seqBefore(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}
export function seqAfter(a: number, b: number): boolean {
  return ((b - a) | 0) < 0;
}
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** tcpdump-style flag letters: F S R P U E W then '.' for ACK. */
export function flagString(flags: number): string {
  let s = '';
  if (flags & TCP_FIN) s += 'F';
  if (flags & TCP_SYN) s += 'S';
  if (flags & TCP_RST) s += 'R';
  if (flags & TCP_PSH) s += 'P';
  if (flags & TCP_URG) s += 'U';
  if (flags & TCP_ECE) s += 'E';
  if (flags & TCP_CWR) s += 'W';
  if (flags & TCP_ACK) s += '.';
  return s === '' ? 'none' : s;
}

/** A view over a TCP header in place; `wrap` re-points it without allocating. */
export class TcpView {
  buf: Uint8Array = new Uint8Array(0);
  off = 0;

  wrap(buf: Uint8Array, off: number): this {
    this.buf = buf;
    this.off = off;
    return this;
  }

  /** True when `avail` bytes hold the whole header including options. */
  fits(avail: number): boolean {
    if (avail < TCP_MIN_HEADER) return false;
    const hl = this.headerLength;
    return hl >= TCP_MIN_HEADER && hl <= avail;
  }

  get srcPort(): number {
    return get16(this.buf, this.off);
  }
  set srcPort(v: number) {
    set16(this.buf, this.off, v);
  }
  get dstPort(): number {
    return get16(this.buf, this.off + TcpField.DstPort);
  }
  set dstPort(v: number) {
    set16(this.buf, this.off + TcpField.DstPort, v);
  }
  get seq(): number {
    return get32(this.buf, this.off + TcpField.Seq);
  }
  set seq(v: number) {
    set32(this.buf, this.off + TcpField.Seq, v);
  }
  get ack(): number {
    return get32(this.buf, this.off + TcpField.Ack);
  }
  set ack(v: number) {
    set32(this.buf, this.off + TcpField.Ack, v);
  }
  get headerLength(): number {
    return (this.buf[this.off + TcpField.DataOffset]! >>> 4) * 4;
  }
  set headerLength(bytes: number) {
    this.buf[this.off + TcpField.DataOffset] =
      ((bytes >>> 2) << 4) | (this.buf[this.off + TcpField.DataOffset]! & 0x0f);
  }
  get flags(): number {
    return this.buf[this.off + TcpField.Flags]!;
  }
  set flags(v: number) {
    this.buf[this.off + TcpField.Flags] = v;
  }
  get syn(): boolean {
    return (this.buf[this.off + TcpField.Flags]! & TCP_SYN) !== 0;
  }
  get ackFlag(): boolean {
    return (this.buf[this.off + TcpField.Flags]! & TCP_ACK) !== 0;
  }
  get fin(): boolean {
    return (this.buf[this.off + TcpField.Flags]! & TCP_FIN) !== 0;
  }
  get rst(): boolean {
    return (this.buf[this.off + TcpField.Flags]! & TCP_RST) !== 0;
  }
  get window(): number {
    return get16(this.buf, this.off + TcpField.Window);
  }
  set window(v: number) {
    set16(this.buf, this.off + TcpField.Window, v);
  }
  get checksum(): number {
    return get16(this.buf, this.off + TcpField.Checksum);
  }
  set checksum(v: number) {
    set16(this.buf, this.off + TcpField.Checksum, v);
  }
  get urgent(): number {
    return get16(this.buf, this.off + TcpField.Urgent);
  }
  get optionsOffset(): number {
    return this.off + TCP_MIN_HEADER;
  }
  get optionsLength(): number {
    return this.headerLength - TCP_MIN_HEADER;
  }

  /** Checksum over pseudo-header + segment of `segLen` bytes, IPv4 addresses at ipOff. */
  computeChecksumV4(ipOff: number, segLen: number): number {
    const b = this.buf;
    return checksumExcludingField(
      b,
      this.off,
      segLen,
      this.off + TcpField.Checksum,
      pseudoSumV4(b, ipOff, IPPROTO_TCP, segLen),
    );
  }

  computeChecksumV6(ipOff: number, segLen: number): number {
    const b = this.buf;
    return checksumExcludingField(
      b,
      this.off,
      segLen,
      this.off + TcpField.Checksum,
      pseudoSumV6(b, ipOff, IPPROTO_TCP, segLen),
    );
  }
}

export interface TcpHeaderFields {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** Option bytes, already padded to a multiple of 4. */
  options?: Uint8Array;
}

/** Writes a TCP header (checksum left 0); returns the header length. */
export function writeTcpHeader(b: Uint8Array, o: number, f: TcpHeaderFields): number {
  const optLen = f.options ? f.options.length : 0;
  if (optLen % 4 !== 0 || optLen > TCP_MAX_OPTIONS) {
    throw new RangeError(`TCP options must be padded to 4 bytes and at most 40, got ${optLen}`);
  }
  const hl = TCP_MIN_HEADER + optLen;
  set16(b, o, f.srcPort);
  set16(b, o + TcpField.DstPort, f.dstPort);
  set32(b, o + TcpField.Seq, f.seq >>> 0);
  set32(b, o + TcpField.Ack, f.ack >>> 0);
  b[o + TcpField.DataOffset] = (hl >>> 2) << 4;
  b[o + TcpField.Flags] = f.flags;
  set16(b, o + TcpField.Window, f.window);
  set16(b, o + TcpField.Checksum, 0);
  set16(b, o + TcpField.Urgent, 0);
  if (f.options) b.set(f.options, o + TCP_MIN_HEADER);
  return hl;
}
