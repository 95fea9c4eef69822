/**
 * PROXY protocol encoders, v1 and v2. They run on the LB's data path, once per
 * connection that has the header enabled, so they write into the caller's
 * buffer and never allocate: digits and hex groups are formatted by hand
 * rather than through strings.
 */

import { set16 } from '../bytes.js';
import { CR, LF, SP, DOT, COLON, ZERO, PROXY_ASCII, V1_HEAD_LENGTH, HEX } from './ascii.js';
import {
  PROXY_V2_HEADER_LENGTH,
  PROXY_V2_IPV4_LENGTH,
  PROXY_V2_IPV6_LENGTH,
  PROXY_V2_SIGNATURE,
  PP2_VERSION,
  PP2_CMD_LOCAL,
  PP2_CMD_PROXY,
  PP2_FAM_TCP4,
  PP2_FAM_TCP6,
} from './constants.js';

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new RangeError(`PROXY header: ${what} port ${port} is not in [0, 65535]`);
  }
}

function checkRoom(b: Uint8Array, off: number, need: number): void {
  if (off < 0 || off + need > b.length) {
    throw new RangeError(
      `PROXY header: needs ${need} bytes at offset ${off}, buffer has ${b.length}`,
    );
  }
}

function decimalLength(v: number): number {
  return v >= 10000 ? 5 : v >= 1000 ? 4 : v >= 100 ? 3 : v >= 10 ? 2 : 1;
}

/** Writes v (0..65535) in decimal without leading zeros; returns the offset after it. */
function writeDecimal(b: Uint8Array, o: number, v: number): number {
  const end = o + decimalLength(v);
  let p = end;
  do {
    const q = (v / 10) | 0;
    b[--p] = ZERO + (v - q * 10);
    v = q;
  } while (v > 0);
  return end;
}

// IPv4 addresses travel as their four octets: an address above 2^30 does not
// fit V8's small-integer range and would be boxed if passed to a helper whole.

function ipv4TextLength(a: number, b: number, c: number, d: number): number {
  return decimalLength(a) + decimalLength(b) + decimalLength(c) + decimalLength(d) + 3;
}

function writeIpv4Text(
  buf: Uint8Array,
  o: number,
  a: number,
  b: number,
  c: number,
  d: number,
): number {
  o = writeDecimal(buf, o, a);
  buf[o++] = DOT;
  o = writeDecimal(buf, o, b);
  buf[o++] = DOT;
  o = writeDecimal(buf, o, c);
  buf[o++] = DOT;
  return writeDecimal(buf, o, d);
}

function writeV1Head(b: Uint8Array, o: number, family: 0x34 | 0x36): number {
  for (let i = 0; i < 5; i++) b[o + i] = PROXY_ASCII[i]!;
  b[o + 5] = SP;
  b[o + 6] = 0x54; // T
  b[o + 7] = 0x43; // C
  b[o + 8] = 0x50; // P
  b[o + 9] = family; // '4' or '6'
  b[o + 10] = SP;
  return o + V1_HEAD_LENGTH;
}

/** Writes " sport dport\r\n"; returns the offset after it. */
function writeV1Tail(b: Uint8Array, o: number, srcPort: number, dstPort: number): number {
  b[o++] = SP;
  o = writeDecimal(b, o, srcPort);
  b[o++] = SP;
  o = writeDecimal(b, o, dstPort);
  b[o++] = CR;
  b[o++] = LF;
  return o;
}

function v1Tcp4Length(
  s0: number,
  s1: number,
  s2: number,
  s3: number,
  d0: number,
  d1: number,
  d2: number,
  d3: number,
  srcPort: number,
  dstPort: number,
): number {
  return (
    V1_HEAD_LENGTH +
    ipv4TextLength(s0, s1, s2, s3) +
    1 +
    ipv4TextLength(d0, d1, d2, d3) +
    1 +
    decimalLength(srcPort) +
    1 +
    decimalLength(dstPort) +
    2
  );
}

/**
 * Length of the v1 line encodeProxyV1 would write for these values.
 * Addresses are host-order unsigned 32-bit numbers, as elsewhere in src/wire.
 */
export function proxyV1Length(
  srcAddr: number,
  srcPort: number,
  dstAddr: number,
  dstPort: number,
): number {
  return v1Tcp4Length(
    srcAddr >>> 24,
    (srcAddr >>> 16) & 0xff,
    (srcAddr >>> 8) & 0xff,
    srcAddr & 0xff,
    dstAddr >>> 24,
    (dstAddr >>> 16) & 0xff,
    (dstAddr >>> 8) & 0xff,
    dstAddr & 0xff,
    srcPort,
    dstPort,
  );
}

/**
 * Writes `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` at b[off] and returns
 * its length (at most 56). Throws RangeError, before writing anything, when a
 * port is out of range or the line does not fit.
 */
export function encodeProxyV1(
  b: Uint8Array,
  off: number,
  srcAddr: number,
  srcPort: number,
  dstAddr: number,
  dstPort: number,
): number {
  checkPort(srcPort, 'source');
  checkPort(dstPort, 'destination');
  // Octets from here on: the whole addresses never cross a call boundary.
  const s0 = srcAddr >>> 24;
  const s1 = (srcAddr >>> 16) & 0xff;
  const s2 = (srcAddr >>> 8) & 0xff;
  const s3 = srcAddr & 0xff;
  const d0 = dstAddr >>> 24;
  const d1 = (dstAddr >>> 16) & 0xff;
  const d2 = (dstAddr >>> 8) & 0xff;
  const d3 = dstAddr & 0xff;
  checkRoom(b, off, v1Tcp4Length(s0, s1, s2, s3, d0, d1, d2, d3, srcPort, dstPort));
  let o = writeV1Head(b, off, 0x34);
  o = writeIpv4Text(b, o, s0, s1, s2, s3);
  b[o++] = SP;
  o = writeIpv4Text(b, o, d0, d1, d2, d3);
  return writeV1Tail(b, o, srcPort, dstPort) - off;
}

/**
 * Where the longest run of two or more zero 16-bit words starts (RFC 5952:
 * first such run on ties), or -1; the run's length is left in ZERO_RUN[0] so
 * no result object is allocated.
 */
const ZERO_RUN = new Int32Array(1);
function longestZeroRun(a: Uint8Array, ao: number): number {
  let bestStart = -1;
  let bestLen = 1;
  let i = 0;
  while (i < 8) {
    if (a[ao + 2 * i] !== 0 || a[ao + 2 * i + 1] !== 0) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < 8 && a[ao + 2 * j] === 0 && a[ao + 2 * j + 1] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  ZERO_RUN[0] = bestLen;
  return bestStart;
}

function hexWordLength(w: number): number {
  return w >= 0x1000 ? 4 : w >= 0x100 ? 3 : w >= 0x10 ? 2 : 1;
}

/** RFC 5952 text of the 16 bytes at a[ao], pure hex (no dotted tail), or only its length when b is null. */
function ipv6Text(b: Uint8Array | null, o: number, a: Uint8Array, ao: number): number {
  const zs = longestZeroRun(a, ao);
  const ze = zs < 0 ? -1 : zs + ZERO_RUN[0]!;
  let p = o;
  for (let i = 0; i < 8; i++) {
    if (i === zs) {
      // "::" replaces the run; its first colon doubles as the separator before it.
      if (b) b[p] = COLON;
      p++;
      if (ze === 8) {
        if (b) b[p] = COLON;
        p++;
      }
      i = ze - 1;
      continue;
    }
    if (i > 0) {
      if (b) b[p] = COLON;
      p++;
    }
    const w = (a[ao + 2 * i]! << 8) | a[ao + 2 * i + 1]!;
    const n = hexWordLength(w);
    if (b) for (let k = n - 1; k >= 0; k--) b[p + n - 1 - k] = HEX[(w >>> (4 * k)) & 0xf]!;
    p += n;
  }
  return p - o;
}

/** What every IPv6 encoder checks: both ports, and 16 bytes at each address's offset. */
function checkEndpoints6(
  src: Uint8Array,
  srcOff: number,
  srcPort: number,
  dst: Uint8Array,
  dstOff: number,
  dstPort: number,
): void {
  checkPort(srcPort, 'source');
  checkPort(dstPort, 'destination');
  checkIpv6(src, srcOff, 'source');
  checkIpv6(dst, dstOff, 'destination');
}

function checkIpv6(a: Uint8Array, ao: number, what: string): void {
  if (ao < 0 || ao + 16 > a.length) {
    throw new RangeError(`PROXY header: ${what} IPv6 address needs 16 bytes at offset ${ao}`);
  }
}

/** Length of the v1 TCP6 line encodeProxyV1v6 would write. */
export function proxyV1v6Length(
  src: Uint8Array,
  srcPort: number,
  dst: Uint8Array,
  dstPort: number,
  srcOff = 0,
  dstOff = 0,
): number {
  return (
    V1_HEAD_LENGTH +
    ipv6Text(null, 0, src, srcOff) +
    1 +
    ipv6Text(null, 0, dst, dstOff) +
    1 +
    decimalLength(srcPort) +
    1 +
    decimalLength(dstPort) +
    2
  );
}

/**
 * Writes `PROXY TCP6 <src> <dst> <sport> <dport>\r\n` (RFC 5952 addresses) and
 * returns its length (at most 104). Addresses are the 16 bytes at src[srcOff]
 * and dst[dstOff], so they can be read straight out of a packet.
 */
export function encodeProxyV1v6(
  b: Uint8Array,
  off: number,
  src: Uint8Array,
  srcPort: number,
  dst: Uint8Array,
  dstPort: number,
  srcOff = 0,
  dstOff = 0,
): number {
  checkEndpoints6(src, srcOff, srcPort, dst, dstOff, dstPort);
  checkRoom(b, off, proxyV1v6Length(src, srcPort, dst, dstPort, srcOff, dstOff));
  let o = writeV1Head(b, off, 0x36);
  o += ipv6Text(b, o, src, srcOff);
  b[o++] = SP;
  o += ipv6Text(b, o, dst, dstOff);
  return writeV1Tail(b, o, srcPort, dstPort) - off;
}

function writeV2Fixed(b: Uint8Array, o: number, verCmd: number, fam: number, len: number): void {
  for (let i = 0; i < 12; i++) b[o + i] = PROXY_V2_SIGNATURE[i]!;
  b[o + 12] = verCmd;
  b[o + 13] = fam;
  set16(b, o + 14, len);
}

/**
 * Writes a 28-byte v2 PROXY header for TCP over IPv4 at b[off]; returns 28.
 * Addresses are host-order unsigned 32-bit numbers.
 */
export function encodeProxyV2(
  b: Uint8Array,
  off: number,
  srcAddr: number,
  srcPort: number,
  dstAddr: number,
  dstPort: number,
): number {
  checkPort(srcPort, 'source');
  checkPort(dstPort, 'destination');
  checkRoom(b, off, PROXY_V2_IPV4_LENGTH);
  writeV2Fixed(b, off, PP2_VERSION | PP2_CMD_PROXY, PP2_FAM_TCP4, 12);
  b[off + 16] = srcAddr >>> 24;
  b[off + 17] = (srcAddr >>> 16) & 0xff;
  b[off + 18] = (srcAddr >>> 8) & 0xff;
  b[off + 19] = srcAddr & 0xff;
  b[off + 20] = dstAddr >>> 24;
  b[off + 21] = (dstAddr >>> 16) & 0xff;
  b[off + 22] = (dstAddr >>> 8) & 0xff;
  b[off + 23] = dstAddr & 0xff;
  set16(b, off + 24, srcPort);
  set16(b, off + 26, dstPort);
  return PROXY_V2_IPV4_LENGTH;
}

/** Writes a 52-byte v2 PROXY header for TCP over IPv6 (addresses: 16 bytes at src[srcOff], dst[dstOff]); returns 52. */
export function encodeProxyV2v6(
  b: Uint8Array,
  off: number,
  src: Uint8Array,
  srcPort: number,
  dst: Uint8Array,
  dstPort: number,
  srcOff = 0,
  dstOff = 0,
): number {
  checkEndpoints6(src, srcOff, srcPort, dst, dstOff, dstPort);
  checkRoom(b, off, PROXY_V2_IPV6_LENGTH);
  writeV2Fixed(b, off, PP2_VERSION | PP2_CMD_PROXY, PP2_FAM_TCP6, 36);
  for (let i = 0; i < 16; i++) {
    b[off + 16 + i] = src[srcOff + i]!;
    b[off + 32 + i] = dst[dstOff + i]!;
  }
  set16(b, off + 48, srcPort);
  set16(b, off + 50, dstPort);
  return PROXY_V2_IPV6_LENGTH;
}

/**
 * Writes a 16-byte v2 LOCAL header (family UNSPEC, no addresses): what a
 * sender uses for its own connections such as health checks, so the receiver
 * keeps the real endpoints. Returns 16.
 */
export function encodeProxyV2Local(b: Uint8Array, off: number): number {
  checkRoom(b, off, PROXY_V2_HEADER_LENGTH);
  writeV2Fixed(b, off, PP2_VERSION | PP2_CMD_LOCAL, 0x00, 0);
  return PROXY_V2_HEADER_LENGTH;
}
