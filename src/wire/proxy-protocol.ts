/**
 * HAProxy's PROXY protocol (doc/proxy-protocol.txt), versions 1 and 2.
 *
 * The encoders run on the LB's data path, once per connection that has the
 * header enabled, so they write into the caller's buffer and never allocate:
 * digits and hex groups are formatted by hand rather than through strings.
 * The decoder serves real servers and tests; it is strict (anything that does
 * not match the spec exactly is `invalid` with a reason) and returns views into
 * its input rather than copies.
 */

import { get16, ipv6ToString, parseIpv6, set16 } from './bytes.js';

/** Longest v1 line a receiver must accept, CRLF included (the spec's worst case). */
export const PROXY_V1_MAX_LENGTH = 107;
/** Fixed part of a v2 header: signature, version/command, family, length. */
export const PROXY_V2_HEADER_LENGTH = 16;
/** v2 PROXY header for TCP over IPv4 without TLVs. */
export const PROXY_V2_IPV4_LENGTH = 28;
/** v2 PROXY header for TCP over IPv6 without TLVs. */
export const PROXY_V2_IPV6_LENGTH = 52;
/** Largest v2 header the 16-bit length field can describe. */
export const PROXY_V2_MAX_LENGTH = PROXY_V2_HEADER_LENGTH + 0xffff;

/** The 12 bytes that open every v2 header; chosen by the spec to be rejected by common protocols. */
export const PROXY_V2_SIGNATURE: Readonly<Uint8Array> = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);

export const PP2_VERSION = 0x20;
export const PP2_CMD_LOCAL = 0x00;
export const PP2_CMD_PROXY = 0x01;
export const PP2_FAM_TCP4 = 0x11;
export const PP2_FAM_UDP4 = 0x12;
export const PP2_FAM_TCP6 = 0x21;
export const PP2_FAM_UDP6 = 0x22;
export const PP2_FAM_UNIX_STREAM = 0x31;
export const PP2_FAM_UNIX_DGRAM = 0x32;

export const PP2_TYPE_ALPN = 0x01;
export const PP2_TYPE_AUTHORITY = 0x02;
export const PP2_TYPE_CRC32C = 0x03;
export const PP2_TYPE_NOOP = 0x04;
export const PP2_TYPE_UNIQUE_ID = 0x05;
export const PP2_TYPE_SSL = 0x20;
export const PP2_TYPE_NETNS = 0x30;
/** The spec caps PP2_TYPE_UNIQUE_ID values at this many bytes. */
export const PP2_UNIQUE_ID_MAX = 128;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const DOT = 0x2e;
const COLON = 0x3a;
const ZERO = 0x30;
const PROXY_ASCII = [0x50, 0x52, 0x4f, 0x58, 0x59] as const;
/** "PROXY TCP4 " and "PROXY TCP6 " differ only in byte 9. */
const V1_HEAD_LENGTH = 11;
/** Lower-case hex digits, as RFC 5952 prescribes for text output. */
const HEX = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0));
const UNIX_ADDRESS_LENGTH = 108;

// ---------------------------------------------------------------------------
// Encoders (data path: no allocation, no strings)
// ---------------------------------------------------------------------------

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
  checkPort(srcPort, 'source');
  checkPort(dstPort, 'destination');
  checkIpv6(src, srcOff, 'source');
  checkIpv6(dst, dstOff, 'destination');
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
  checkPort(srcPort, 'source');
  checkPort(dstPort, 'destination');
  checkIpv6(src, srcOff, 'source');
  checkIpv6(dst, dstOff, 'destination');
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

// ---------------------------------------------------------------------------
// CRC32c (PP2_TYPE_CRC32C): RFC 4960 appendix B, reflected polynomial
// ---------------------------------------------------------------------------

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** Feeds b[start, end) into a running (pre-inverted) CRC32c register. */
function crc32cUpdate(crc: number, b: Uint8Array, start: number, end: number): number {
  for (let i = start; i < end; i++) crc = CRC32C_TABLE[(crc ^ b[i]!) & 0xff]! ^ (crc >>> 8);
  return crc;
}

/** CRC32c of b[start, end), skipping none; exported for tests and senders that add the TLV. */
export function crc32c(b: Uint8Array, start = 0, end = b.length): number {
  return (crc32cUpdate(0xffffffff, b, start, end) ^ 0xffffffff) >>> 0;
}

/** CRC32c of a header whose 4 checksum bytes at `zeroAt` are taken as zero, without copying it. */
function crc32cWithHole(b: Uint8Array, start: number, end: number, zeroAt: number): number {
  let crc = crc32cUpdate(0xffffffff, b, start, zeroAt);
  for (let i = 0; i < 4; i++) crc = CRC32C_TABLE[crc & 0xff]! ^ (crc >>> 8);
  crc = crc32cUpdate(crc, b, zeroAt + 4, end);
  return (crc ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------

export type ProxyFamily =
  'TCP4' | 'TCP6' | 'UDP4' | 'UDP6' | 'UNIX_STREAM' | 'UNIX_DGRAM' | 'UNKNOWN';

/** One end of the proxied connection. UNIX addresses carry the socket path and port 0. */
export interface ProxyEndpoint {
  address: string;
  port: number;
}

export interface ProxyTlv {
  type: number;
  /** A view into the decoded buffer, not a copy. */
  value: Uint8Array;
}

export interface ProxyHeader {
  kind: 'ok';
  version: 1 | 2;
  /** LOCAL: the sender's own connection (health check); the receiver keeps the real endpoints. */
  command: 'PROXY' | 'LOCAL';
  family: ProxyFamily;
  /** Present only for PROXY with a known family (never for LOCAL or UNKNOWN). */
  src?: ProxyEndpoint;
  dst?: ProxyEndpoint;
  /** Bytes the header occupies at the start of the stream, TLVs included. */
  length: number;
  tlvs: ProxyTlv[];
}

export type ProxyDecodeResult =
  /** Every byte so far fits a header, but it has not ended yet. */
  | { kind: 'incomplete' }
  /** A PROXY header was announced (its signature matched) but is malformed. */
  | { kind: 'invalid'; reason: string }
  /** The bytes do not begin with either signature: there is no PROXY header. */
  | { kind: 'none' }
  | ProxyHeader;

const INCOMPLETE: { kind: 'incomplete' } = Object.freeze({ kind: 'incomplete' });
const NONE: { kind: 'none' } = Object.freeze({ kind: 'none' });

function invalid(reason: string): { kind: 'invalid'; reason: string } {
  return { kind: 'invalid', reason };
}

/**
 * Decodes the PROXY header at the start of b.
 *
 * Either version is recognised by its signature, as the spec recommends for
 * receivers that accept both. An `incomplete` result means "read more and call
 * again with all the bytes"; a v1 line is `invalid` once 107 bytes pass
 * without CRLF, and a v2 header can need up to 16 + 65535 bytes.
 */
export function decodeProxyHeader(b: Uint8Array): ProxyDecodeResult {
  const n = b.length;
  if (n === 0) return INCOMPLETE;
  if (b[0] === PROXY_ASCII[0]) {
    const m = Math.min(n, 5);
    for (let i = 1; i < m; i++) if (b[i] !== PROXY_ASCII[i]) return NONE;
    return n < 5 ? INCOMPLETE : decodeV1(b);
  }
  if (b[0] === PROXY_V2_SIGNATURE[0]) {
    const m = Math.min(n, 12);
    for (let i = 1; i < m; i++) if (b[i] !== PROXY_V2_SIGNATURE[i]) return NONE;
    return n < PROXY_V2_HEADER_LENGTH ? INCOMPLETE : decodeV2(b);
  }
  return NONE;
}

// --- v1 ---

const V1_PROTOCOLS = ['TCP4', 'TCP6', 'UNKNOWN'] as const;
type V1Protocol = (typeof V1_PROTOCOLS)[number];

function ascii(b: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/** Text for a reason message: printable ASCII kept, the rest escaped. */
function shown(b: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < Math.min(end, start + 48); i++) {
    const c = b[i]!;
    s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return end - start > 48 ? `${s}…` : s;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isHex(c: number): boolean {
  return isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/**
 * Checks a possibly partial field against the characters and length its
 * final form may have, so garbage is refused before 107 bytes have arrived.
 */
function fieldPrefixError(
  b: Uint8Array,
  start: number,
  end: number,
  kind: 'v4' | 'v6' | 'port',
): string | null {
  // "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" is the longest IPv6 text.
  const max = kind === 'v4' ? 15 : kind === 'v6' ? 45 : 5;
  if (end - start > max) return `field "${shown(b, start, end)}" is too long`;
  for (let i = start; i < end; i++) {
    const c = b[i]!;
    const ok =
      kind === 'port'
        ? isDigit(c)
        : kind === 'v4'
          ? isDigit(c) || c === DOT
          : isHex(c) || c === COLON || c === DOT;
    if (!ok)
      return `unexpected character "${shown(b, i, i + 1)}" in field "${shown(b, start, end)}"`;
  }
  return null;
}

/** Strict dotted quad: four decimal numbers 0..255, no leading zeros. */
function parseV1Ipv4(b: Uint8Array, start: number, end: number): string | null {
  let octets = 0;
  let i = start;
  while (i <= end) {
    const s = i;
    let v = 0;
    while (i < end && isDigit(b[i]!)) v = v * 10 + (b[i++]! - ZERO);
    const len = i - s;
    if (len === 0 || len > 3 || v > 255 || (len > 1 && b[s] === ZERO)) return null;
    octets++;
    if (i === end) break;
    if (b[i] !== DOT || octets === 4) return null;
    i++;
  }
  return octets === 4 ? ascii(b, start, end) : null;
}

function parseV1Ipv6(b: Uint8Array, start: number, end: number): string | null {
  if (fieldPrefixError(b, start, end, 'v6') !== null) return null;
  const bytes = parseIpv6(ascii(b, start, end));
  return bytes ? ipv6ToString(bytes) : null;
}

/** Decimal 0..65535 without leading zeros, or -1. */
function parseV1Port(b: Uint8Array, start: number, end: number): number {
  const len = end - start;
  if (len === 0 || len > 5 || (len > 1 && b[start] === ZERO)) return -1;
  let v = 0;
  for (let i = start; i < end; i++) {
    if (!isDigit(b[i]!)) return -1;
    v = v * 10 + (b[i]! - ZERO);
  }
  return v <= 0xffff ? v : -1;
}

function decodeV1(b: Uint8Array): ProxyDecodeResult {
  // Find the line end first: the spec wants CRLF seen before any field is trusted.
  const limit = Math.min(b.length, PROXY_V1_MAX_LENGTH);
  let eol = -1;
  for (let i = 5; i < limit; i++) {
    const c = b[i];
    if (c === LF) return invalid(`v1: LF without CR at byte ${i}`);
    if (c !== CR) continue;
    if (i + 1 >= PROXY_V1_MAX_LENGTH) {
      return invalid(`v1: line longer than ${PROXY_V1_MAX_LENGTH} bytes`);
    }
    if (i + 1 >= b.length) break; // CR is the last byte so far: the LF may follow.
    if (b[i + 1] !== LF) return invalid(`v1: CR not followed by LF at byte ${i}`);
    eol = i;
    break;
  }
  if (eol < 0 && b.length >= PROXY_V1_MAX_LENGTH) {
    return invalid(`v1: no CRLF within the first ${PROXY_V1_MAX_LENGTH} bytes`);
  }
  const complete = eol >= 0;
  // Without CRLF, parse what there is; a lone trailing CR is not part of any field.
  const end = complete ? eol : b[b.length - 1] === CR ? b.length - 1 : b.length;
  return parseV1Line(b, end, complete);
}

function parseV1Line(b: Uint8Array, end: number, complete: boolean): ProxyDecodeResult {
  if (end === 5) return complete ? invalid('v1: nothing after "PROXY"') : INCOMPLETE;
  if (b[5] !== SP) return invalid('v1: "PROXY" not followed by a single space');

  let p = 6;
  while (p < end && b[p] !== SP) p++;
  const proto = ascii(b, 6, p);
  if (p === end && !complete) {
    return V1_PROTOCOLS.some((x) => x.startsWith(proto))
      ? INCOMPLETE
      : invalid(`v1: unknown protocol "${shown(b, 6, p)}"`);
  }
  if (!(V1_PROTOCOLS as readonly string[]).includes(proto)) {
    return invalid(`v1: unknown protocol "${shown(b, 6, p)}"`);
  }
  const protocol = proto as V1Protocol;
  if (protocol === 'UNKNOWN') {
    // The sender may add anything up to CRLF and the receiver must ignore it.
    if (!complete) return INCOMPLETE;
    return {
      kind: 'ok',
      version: 1,
      command: 'PROXY',
      family: 'UNKNOWN',
      length: end + 2,
      tlvs: [],
    };
  }

  // Four fields follow, each after exactly one space: src, dst, sport, dport.
  const kinds =
    protocol === 'TCP4'
      ? (['v4', 'v4', 'port', 'port'] as const)
      : (['v6', 'v6', 'port', 'port'] as const);
  const starts = [0, 0, 0, 0];
  const ends = [0, 0, 0, 0];
  for (let f = 0; f < 4; f++) {
    if (p === end) {
      return complete ? invalid(`v1: ${protocol} line has ${f} of 4 fields`) : INCOMPLETE;
    }
    p++; // the space that ended the previous token
    const s = p;
    while (p < end && b[p] !== SP) p++;
    if (p === s && (p < end || complete))
      return invalid(`v1: empty field ${f + 1} (double space?)`);
    const err = fieldPrefixError(b, s, p, kinds[f]!);
    if (err) return invalid(`v1: ${err}`);
    if (p === end && !complete) return INCOMPLETE;
    starts[f] = s;
    ends[f] = p;
  }
  if (p !== end)
    return invalid(`v1: unexpected data after the destination port: "${shown(b, p, end)}"`);

  const addr = protocol === 'TCP4' ? parseV1Ipv4 : parseV1Ipv6;
  const family = protocol === 'TCP4' ? 'IPv4' : 'IPv6';
  const src = addr(b, starts[0]!, ends[0]!);
  if (src === null)
    return invalid(`v1: bad ${family} source address "${shown(b, starts[0]!, ends[0]!)}"`);
  const dst = addr(b, starts[1]!, ends[1]!);
  if (dst === null)
    return invalid(`v1: bad ${family} destination address "${shown(b, starts[1]!, ends[1]!)}"`);
  const sport = parseV1Port(b, starts[2]!, ends[2]!);
  if (sport < 0) return invalid(`v1: bad source port "${shown(b, starts[2]!, ends[2]!)}"`);
  const dport = parseV1Port(b, starts[3]!, ends[3]!);
  if (dport < 0) return invalid(`v1: bad destination port "${shown(b, starts[3]!, ends[3]!)}"`);
  return {
    kind: 'ok',
    version: 1,
    command: 'PROXY',
    family: protocol,
    src: { address: src, port: sport },
    dst: { address: dst, port: dport },
    length: end + 2,
    tlvs: [],
  };
}

// --- v2 ---

function addressBlockLength(famNibble: number): number {
  return famNibble === 1
    ? 12
    : famNibble === 2
      ? 36
      : famNibble === 3
        ? 2 * UNIX_ADDRESS_LENGTH
        : 0;
}

function familyName(fam: number): ProxyFamily | null {
  switch (fam) {
    case 0x00:
      return 'UNKNOWN';
    case PP2_FAM_TCP4:
      return 'TCP4';
    case PP2_FAM_UDP4:
      return 'UDP4';
    case PP2_FAM_TCP6:
      return 'TCP6';
    case PP2_FAM_UDP6:
      return 'UDP6';
    case PP2_FAM_UNIX_STREAM:
      return 'UNIX_STREAM';
    case PP2_FAM_UNIX_DGRAM:
      return 'UNIX_DGRAM';
    default:
      return null;
  }
}

const utf8 = new TextDecoder('utf-8');

function unixPath(b: Uint8Array, o: number): string {
  let e = o;
  while (e < o + UNIX_ADDRESS_LENGTH && b[e] !== 0) e++;
  return utf8.decode(b.subarray(o, e));
}

function endpoints(b: Uint8Array, fam: number): { src: ProxyEndpoint; dst: ProxyEndpoint } {
  const a = PROXY_V2_HEADER_LENGTH;
  switch (fam >>> 4) {
    case 1:
      return {
        src: { address: `${b[a]}.${b[a + 1]}.${b[a + 2]}.${b[a + 3]}`, port: get16(b, a + 8) },
        dst: { address: `${b[a + 4]}.${b[a + 5]}.${b[a + 6]}.${b[a + 7]}`, port: get16(b, a + 10) },
      };
    case 2:
      return {
        src: { address: ipv6ToString(b, a), port: get16(b, a + 32) },
        dst: { address: ipv6ToString(b, a + 16), port: get16(b, a + 34) },
      };
    default:
      return {
        src: { address: unixPath(b, a), port: 0 },
        dst: { address: unixPath(b, a + UNIX_ADDRESS_LENGTH), port: 0 },
      };
  }
}

/** Parses b[start, end) as TLVs; returns a reason string when they are malformed. */
function parseTlvs(b: Uint8Array, start: number, end: number, out: ProxyTlv[]): string | null {
  let p = start;
  while (p < end) {
    if (end - p < 3) return `v2: truncated TLV header at byte ${p} (${end - p} bytes left)`;
    const type = b[p]!;
    const len = get16(b, p + 1);
    if (p + 3 + len > end) {
      return `v2: TLV 0x${type.toString(16)} at byte ${p} claims ${len} bytes, ${end - p - 3} left`;
    }
    out.push({ type, value: b.subarray(p + 3, p + 3 + len) });
    p += 3 + len;
  }
  return null;
}

/** Applies the per-type rules the spec states for registered TLVs. */
function checkTlvs(b: Uint8Array, total: number, tlvs: ProxyTlv[]): string | null {
  let sawCrc = false;
  for (const t of tlvs) {
    if (t.type === PP2_TYPE_CRC32C) {
      if (sawCrc) return 'v2: more than one CRC32C TLV';
      sawCrc = true;
      if (t.value.length !== 4) return `v2: CRC32C TLV has ${t.value.length} bytes, not 4`;
      const at = t.value.byteOffset - b.byteOffset;
      const want = crc32cWithHole(b, 0, total, at);
      const got =
        ((t.value[0]! << 24) | (t.value[1]! << 16) | (t.value[2]! << 8) | t.value[3]!) >>> 0;
      if (got !== want) {
        return `v2: CRC32C mismatch (header says 0x${got.toString(16)}, computed 0x${want.toString(16)})`;
      }
    } else if (t.type === PP2_TYPE_UNIQUE_ID && t.value.length > PP2_UNIQUE_ID_MAX) {
      return `v2: UNIQUE_ID TLV has ${t.value.length} bytes, at most ${PP2_UNIQUE_ID_MAX} allowed`;
    }
  }
  return null;
}

function decodeV2(b: Uint8Array): ProxyDecodeResult {
  const verCmd = b[12]!;
  const fam = b[13]!;
  const version = verCmd >>> 4;
  const cmd = verCmd & 0x0f;
  if (version !== 2) {
    return invalid(`v2: version ${version}, only 2 is defined`);
  }
  if (cmd !== PP2_CMD_LOCAL && cmd !== PP2_CMD_PROXY) {
    return invalid(`v2: unassigned command 0x${cmd.toString(16)}`);
  }
  if (fam >>> 4 > 3) {
    return invalid(`v2: unassigned address family 0x${(fam >>> 4).toString(16)}`);
  }
  if ((fam & 0x0f) > 2) {
    return invalid(`v2: unassigned transport protocol 0x${(fam & 0x0f).toString(16)}`);
  }
  const len = get16(b, 14);
  const total = PROXY_V2_HEADER_LENGTH + len;
  const name = familyName(fam);
  const addrLen = addressBlockLength(fam >>> 4);
  // Everything the 16 fixed bytes alone can show wrong is refused before
  // waiting for the rest, so a bad header cannot hold a connection open.
  if (cmd === PP2_CMD_PROXY) {
    if (name === null) {
      const hex = fam.toString(16).padStart(2, '0');
      return invalid(`v2: family/protocol byte 0x${hex} is not a defined combination`);
    }
    if (len < addrLen) {
      return invalid(`v2: length ${len} is shorter than the ${addrLen}-byte ${name} address block`);
    }
  }
  if (b.length < total) return INCOMPLETE;

  const tlvs: ProxyTlv[] = [];
  if (cmd === PP2_CMD_LOCAL) {
    // The spec has the receiver ignore the family of a LOCAL header, so an
    // address block that does not fit is skipped as opaque rather than refused.
    if (name !== null && len >= addrLen) {
      const err =
        parseTlvs(b, PROXY_V2_HEADER_LENGTH + addrLen, total, tlvs) ?? checkTlvs(b, total, tlvs);
      if (err) return invalid(err);
    }
    return {
      kind: 'ok',
      version: 2,
      command: 'LOCAL',
      family: name ?? 'UNKNOWN',
      length: total,
      tlvs,
    };
  }

  const err =
    parseTlvs(b, PROXY_V2_HEADER_LENGTH + addrLen, total, tlvs) ?? checkTlvs(b, total, tlvs);
  if (err) return invalid(err);
  const header: ProxyHeader = {
    kind: 'ok',
    version: 2,
    command: 'PROXY',
    family: name!,
    length: total,
    tlvs,
  };
  if (name !== 'UNKNOWN') {
    const e = endpoints(b, fam);
    header.src = e.src;
    header.dst = e.dst;
  }
  return header;
}
