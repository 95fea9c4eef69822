/**
 * The PROXY protocol decoder, for real servers and tests: strict (anything
 * that does not match the spec exactly is `invalid` with a reason), returning
 * views into its input rather than copies.
 */

import { get16, ipv6ToString, parseIpv6 } from '../bytes.js';
import { CR, LF, SP, DOT, COLON, ZERO, PROXY_ASCII, UNIX_ADDRESS_LENGTH } from './ascii.js';
import {
  PROXY_V1_MAX_LENGTH,
  PROXY_V2_HEADER_LENGTH,
  PROXY_V2_SIGNATURE,
  PP2_CMD_LOCAL,
  PP2_CMD_PROXY,
  PP2_FAM_TCP4,
  PP2_FAM_UDP4,
  PP2_FAM_TCP6,
  PP2_FAM_UDP6,
  PP2_FAM_UNIX_STREAM,
  PP2_FAM_UNIX_DGRAM,
  PP2_TYPE_CRC32C,
  PP2_TYPE_UNIQUE_ID,
  PP2_UNIQUE_ID_MAX,
} from './constants.js';
import { crc32cWithHole } from './crc32c.js';

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
