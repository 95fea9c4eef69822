/**
 * UOA, DPVS's "UDP option of address": the client's address and port carried
 * to the real server in UDP datagrams, byte for byte as DPVS sends them and
 * its RS module (kmod/uoa) reads them. Two placements ("modes"):
 *
 * - ipo: the UOA as an IPv4 option, first after the fixed header (IPv4 only);
 * - opp: a private protocol, IP protocol 248, between the IP header (with
 *   its options, if any) and the UDP header: a 4-byte OPP header, then the
 *   UOA, then the untouched UDP header and payload. IPv4, IPv6, and NAT64
 *   (an IPv4 packet carrying an IPv6 client's 20-byte UOA).
 *
 * The layout, as DPVS defines it in include/uoa.h (kmod/uoa/uoa.c reads it
 * through the same header: kmod/uoa/Makefile puts include/ on its path) and
 * src/ipvs/ip_vs_proto_udp.c writes it:
 *
 *   UOA  `struct ipopt_uoa`: code IPOPT_UOA, length (8 for an IPv4 address,
 *        20 for IPv6: the 4 fixed bytes plus the address), port, address;
 *        port and address in network order.
 *   OPP  `struct opphdr`: one byte whose high nibble is the version (1: the
 *        UOA carries an IPv4 address, 2: IPv6; uoa.h declares `rsvd0:4;
 *        version:4` for little-endian bitfields, where the first field takes
 *        the low bits, so the version lands in the high nibble as in its
 *        big-endian branch and its diagram) and whose low nibble is
 *        reserved, zero; the
 *        next protocol (17); a 16-bit length that counts the OPP header and
 *        its options, not what follows (uoa.h: "Length of fixed header and
 *        options, not include payloads"; ip_vs_proto_udp.c sets it to
 *        sizeof(opphdr) + the UOA's length, so 12 or 24).
 *
 * The UDP checksum is left as it is by every function here: its
 * pseudo-header is the addresses, protocol 17 and the UDP length, none of
 * which change when a UOA goes in or comes out, and the RS module hands the
 * datagram to the kernel's UDP as protocol 17. A zero (none) stays zero.
 * (DPVS zeroes an IPv4 opp datagram's checksum rather than compute it past
 * the OPP header; a valid one is accepted by the same receiver.)
 *
 * Where DPVS's own check is looser, the wire wins: its ipo room test adds
 * sizeof(struct ipopt_uoa), 4, to the header length, so a 56-byte header
 * would pass it and grow to 64; here the header must stay within 60.
 */
import { Ipv6Address, type IpAddress } from './address.js';
import { copyBytes, get16, get32, set16 } from './bytes.js';
import { checksumAdjust, checksumReplace16, finishChecksum, sumWords } from './checksum.js';
import { IPPROTO_UDP, IPV4_MIN_HEADER, Ipv4Field } from './ipv4.js';
import { IPV6_HEADER } from './ipv6.js';
import { UdpView } from './udp.js';

/**
 * The UOA's option code. include/uoa.h defines IPOPT_UOA as
 * `(31 | IPOPT_CONTROL)`, and Linux's IPOPT_CONTROL (include/uapi/linux/ip.h)
 * is 0x00: the byte on the wire is 31 (0x1f), class "control", copy flag
 * clear (so fragments after the first do not repeat it).
 */
export const IPOPT_UOA = 31;
/** DPVS's IPPROTO_OPT (include/uoa.h: 0xf8). */
export const IPPROTO_OPP = 248;
/** `struct ipopt_uoa` with an IPv4 address (IPOLEN_UOA_IPV4). */
export const UOA_V4_LEN = 8;
/** `struct ipopt_uoa` with an IPv6 address (IPOLEN_UOA_IPV6). */
export const UOA_V6_LEN = 20;
/** `struct opphdr` without options. */
export const OPP_HEADER = 4;
/** OPPHDR_IPV4: the UOA after the OPP header carries an IPv4 address. */
export const OPP_VERSION_V4 = 1;
/** OPPHDR_IPV6: the UOA carries an IPv6 address (also on an IPv4 packet: NAT64). */
export const OPP_VERSION_V6 = 2;
/** IHL is 4 bits of 32-bit words: 40 bytes of options at most. */
export const IPV4_MAX_HEADER = 60;
/** What an ipo insertion adds to the datagram. */
export const IPO_GROWTH = UOA_V4_LEN;
/** What an opp insertion adds for an IPv4 client. */
export const OPP_GROWTH_V4 = OPP_HEADER + UOA_V4_LEN;
/** What an opp insertion adds for an IPv6 client. */
export const OPP_GROWTH_V6 = OPP_HEADER + UOA_V6_LEN;

const IPOPT_END = 0;
const IPOPT_NOOP = 1;

/**
 * Writes a UOA at b[o] carrying `port` and the address of `addrLength` (4 or
 * 16) bytes at addr[addrOff]; returns its length (8 or 20).
 */
export function writeUoaOption(
  b: Uint8Array,
  o: number,
  port: number,
  addr: Uint8Array,
  addrOff: number,
  addrLength: 4 | 16,
): number {
  const len = addrLength === 4 ? UOA_V4_LEN : UOA_V6_LEN;
  b[o] = IPOPT_UOA;
  b[o + 1] = len;
  set16(b, o + 2, port);
  copyBytes(b, o + 4, addr, addrOff, addrLength);
  return len;
}

/**
 * The IPv4 UOA with the address as two 16-bit halves, as `writeToaV4Words`
 * takes it: a caller holding the address as a number passes small integers.
 */
export function writeUoaV4Words(
  b: Uint8Array,
  o: number,
  port: number,
  addrHi: number,
  addrLo: number,
): void {
  b[o] = IPOPT_UOA;
  b[o + 1] = UOA_V4_LEN;
  set16(b, o + 2, port);
  set16(b, o + 4, addrHi);
  set16(b, o + 6, addrLo);
}

/**
 * Writes an OPP header at b[o]: `version` (OPP_VERSION_V4 or _V6, the
 * family of the UOA that follows), the reserved nibble zero, the protocol
 * after the options, and the length of header and options (not the payload).
 */
export function writeOppHeader(
  b: Uint8Array,
  o: number,
  version: number,
  protocol: number,
  optionsLength: number,
): void {
  b[o] = (version & 0x0f) << 4;
  b[o + 1] = protocol;
  set16(b, o + 2, OPP_HEADER + optionsLength);
}

/**
 * Why an insertion was refused (negative, so they never pass for a start
 * offset); the buffer is untouched whenever one is returned.
 */
export const enum UoaInsertError {
  /** Neither the headroom before `start` nor the tailroom after the datagram holds the growth. */
  NoRoom = -1,
  /**
   * ipo: the IPv4 header would pass 60 bytes. The caller falls back (DPVS
   * then sends the UOA alone, in an empty datagram).
   */
  NoOptionSpace = -2,
  /**
   * The IPv4 protocol or the IPv6 next header is not UDP; IPv6 extension
   * headers included (DPVS, too, inserts only behind a bare fixed header).
   */
  NotUdp = -3,
  /** A fragment: the UDP header is in one piece only, and opp would shift the offsets of the rest. */
  Fragment = -4,
  /** The headers disagree with `length` or with each other, or the result would pass 65535 bytes. */
  Malformed = -5,
  /** ipo on an IPv6 datagram; opp on IPv6 with an IPv4 client. DPVS sends neither. */
  FamilyPair = -6,
}

/** The client address saved before the headers move (it may be read from the packet itself). */
const clientScratch = new Uint8Array(16);

/**
 * Checks the IPv4 UDP datagram at b[start, start+length): returns its header
 * length, or the error. `length` must be the IP total length exactly.
 */
function udpV4HeaderLength(b: Uint8Array, start: number, length: number): number {
  if (start < 0 || length < IPV4_MIN_HEADER || start + length > b.length) {
    return UoaInsertError.Malformed;
  }
  if (b[start]! >>> 4 !== 4) return UoaInsertError.Malformed;
  const hl = (b[start]! & 0x0f) * 4;
  if (hl < IPV4_MIN_HEADER || hl > length) return UoaInsertError.Malformed;
  if (get16(b, start + Ipv4Field.TotalLength) !== length) return UoaInsertError.Malformed;
  if (b[start + Ipv4Field.Protocol] !== IPPROTO_UDP) return UoaInsertError.NotUdp;
  // MF or a fragment offset: any piece of a fragmented datagram.
  if ((get16(b, start + Ipv4Field.Flags) & 0x3fff) !== 0) return UoaInsertError.Fragment;
  if (!udpFits(b, start + hl, length - hl)) return UoaInsertError.Malformed;
  return hl;
}

const udpView = new UdpView();

function udpFits(b: Uint8Array, udpOff: number, avail: number): boolean {
  return udpView.wrap(b, udpOff).fits(avail);
}

/**
 * Opens `grow` bytes at b[start + at]: the `at` bytes before it move back
 * into the headroom when there is room there, else the rest moves up into
 * the tailroom. Returns the new start, or NoRoom with nothing moved.
 */
function openGap(b: Uint8Array, start: number, length: number, at: number, grow: number): number {
  if (start >= grow) {
    b.copyWithin(start - grow, start, start + at);
    return start - grow;
  }
  if (start + length + grow > b.length) return UoaInsertError.NoRoom;
  b.copyWithin(start + at + grow, start + at, start + length);
  return start;
}

/**
 * ipo: puts an IPv4 client's UOA in the IPv4 header of the UDP datagram at
 * b[start, start+length), first among the options, as DPVS does (an END
 * option already there stays last). Bytes move into the headroom before
 * `start` when it holds 8, otherwise into the tailroom after the datagram.
 *
 * `port` and the 4 address bytes at addr[addrOff] are the client's (they
 * may be read from the datagram itself: they are copied before anything
 * moves). Returns the new start; the datagram is then `length + IPO_GROWTH`
 * bytes long, its header 8 longer, total length and header checksum updated
 * (incrementally: a header that arrived corrupted stays detectably so). Or a
 * `UoaInsertError`, the buffer untouched: NoOptionSpace when the header
 * would pass 60 bytes. Path MTU is the caller's concern.
 */
export function insertIpoV4(
  b: Uint8Array,
  start: number,
  length: number,
  port: number,
  addr: Uint8Array,
  addrOff: number,
): number {
  if (start >= 0 && start < b.length && b[start]! >>> 4 === 6) return UoaInsertError.FamilyPair;
  const hl = udpV4HeaderLength(b, start, length);
  if (hl < 0) return hl;
  if (hl + UOA_V4_LEN > IPV4_MAX_HEADER) return UoaInsertError.NoOptionSpace;
  if (length + UOA_V4_LEN > 0xffff) return UoaInsertError.Malformed;
  copyBytes(clientScratch, 0, addr, addrOff, 4);
  const s = openGap(b, start, length, IPV4_MIN_HEADER, UOA_V4_LEN);
  if (s < 0) return s;
  const optAt = s + IPV4_MIN_HEADER;
  writeUoaOption(b, optAt, port, clientScratch, 0, 4);
  const oldWord0 = get16(b, s);
  b[s] = 0x40 | ((hl + UOA_V4_LEN) >>> 2);
  const newWord0 = get16(b, s);
  let check = get16(b, s + Ipv4Field.Checksum);
  check = checksumReplace16(check, oldWord0, newWord0);
  check = checksumReplace16(check, length, length + UOA_V4_LEN);
  // The option starts on an even offset, so its words add to the header's sum as they are.
  check = checksumAdjust(check, 0, sumWords(b, optAt, UOA_V4_LEN, 0));
  set16(b, s + Ipv4Field.TotalLength, length + UOA_V4_LEN);
  set16(b, s + Ipv4Field.Checksum, check);
  return s;
}

/**
 * opp: puts an OPP header and the client's UOA between the IP header (its
 * options included) and the UDP header of the datagram at b[start,
 * start+length), IPv4 or IPv6 (a bare fixed header, next header UDP).
 * `addrLength` is the client's family: 4, or 16 for an IPv6 client, on an
 * IPv6 datagram or, NAT64, an IPv4 one. The header moves into the headroom
 * when it holds the growth (OPP_GROWTH_V4 or _V6), else the UDP datagram
 * moves into the tailroom.
 *
 * Returns the new start; the datagram is then longer by the growth, the IP
 * protocol (next header) is 248 and its length covers the new bytes; an
 * IPv4 header checksum is updated incrementally. Or a `UoaInsertError`, the
 * buffer untouched. Path MTU is the caller's concern.
 */
export function insertOpp(
  b: Uint8Array,
  start: number,
  length: number,
  port: number,
  addr: Uint8Array,
  addrOff: number,
  addrLength: 4 | 16,
): number {
  if (start < 0 || length < 1 || start + length > b.length) return UoaInsertError.Malformed;
  const uoaLen = addrLength === 4 ? UOA_V4_LEN : UOA_V6_LEN;
  const grow = OPP_HEADER + uoaLen;
  const v6 = b[start]! >>> 4 === 6;
  let hl: number;
  if (v6) {
    if (addrLength === 4) return UoaInsertError.FamilyPair;
    if (length < IPV6_HEADER) return UoaInsertError.Malformed;
    if (get16(b, start + 4) !== length - IPV6_HEADER) return UoaInsertError.Malformed;
    if (b[start + 6] !== IPPROTO_UDP) return UoaInsertError.NotUdp;
    if (!udpFits(b, start + IPV6_HEADER, length - IPV6_HEADER)) return UoaInsertError.Malformed;
    if (length - IPV6_HEADER + grow > 0xffff) return UoaInsertError.Malformed;
    hl = IPV6_HEADER;
  } else {
    hl = udpV4HeaderLength(b, start, length);
    if (hl < 0) return hl;
    if (length + grow > 0xffff) return UoaInsertError.Malformed;
  }
  copyBytes(clientScratch, 0, addr, addrOff, addrLength);
  const s = openGap(b, start, length, hl, grow);
  if (s < 0) return s;
  const oppAt = s + hl;
  writeOppHeader(b, oppAt, addrLength === 4 ? OPP_VERSION_V4 : OPP_VERSION_V6, IPPROTO_UDP, uoaLen);
  writeUoaOption(b, oppAt + OPP_HEADER, port, clientScratch, 0, addrLength);
  if (v6) {
    set16(b, s + 4, length - IPV6_HEADER + grow);
    b[s + 6] = IPPROTO_OPP;
  } else {
    const protoWord = s + Ipv4Field.Ttl;
    const oldWord = get16(b, protoWord);
    b[s + Ipv4Field.Protocol] = IPPROTO_OPP;
    let check = get16(b, s + Ipv4Field.Checksum);
    check = checksumReplace16(check, oldWord, get16(b, protoWord));
    check = checksumReplace16(check, length, length + grow);
    set16(b, s + Ipv4Field.TotalLength, length + grow);
    set16(b, s + Ipv4Field.Checksum, check);
  }
  return s;
}

export type UoaMode = 'ipo' | 'opp';

/** Why `decodeUoa` found no client address. */
export type UoaProblem =
  /** Shorter than the headers it announces, or lengths that point past the bytes. */
  | 'truncated'
  /** Not IPv4 or IPv6, or an IPv4/IPv6 header that contradicts itself. */
  | 'bad-ip-header'
  | 'bad-ip-checksum'
  | 'fragment'
  /** Neither UDP nor OPP (or an OPP header whose next protocol is not UDP). */
  | 'not-udp'
  /** A well-formed UDP datagram with no UOA: an IP option area without one, or none at all. */
  | 'no-uoa'
  /** An IPv4 option (or OPP option) whose length is impossible, as kmod/uoa's walk rejects it. */
  | 'bad-option'
  /** A UOA option that is neither 8 nor 20 bytes long, or whose length disagrees with the OPP version. */
  | 'bad-uoa-length'
  /** OPP version neither 1 nor 2, or reserved bits set. */
  | 'bad-opp-header'
  /** The OPP length is below its own header or runs past the datagram. */
  | 'bad-opp-length'
  /** The UDP header does not fit, or its length field disagrees with what is left. */
  | 'bad-udp-length';

/** A datagram that carries a UOA. Offsets are in the buffer passed to `decodeUoa`. */
export interface UoaDatagram {
  ok: true;
  mode: UoaMode;
  /** The outer IP header's family (4 for NAT64's IPv6 client too). */
  ipFamily: 4 | 6;
  clientAddress: IpAddress;
  clientPort: number;
  /** Where the IP header starts and the datagram ends (the IP length, trailing bytes excluded). */
  start: number;
  end: number;
  /** The IP header's length: with ipo, the UOA is inside it. */
  ipHeaderLength: number;
  /** The UOA option's first byte and its length (8 or 20). */
  uoaOffset: number;
  uoaLength: number;
  /** The OPP header's first byte, -1 with ipo. */
  oppOffset: number;
  udpOffset: number;
}

export interface UoaRejection {
  ok: false;
  reason: UoaProblem;
  detail: string;
}

export type UoaDecodeResult = UoaDatagram | UoaRejection;

function reject(reason: UoaProblem, detail: string): UoaRejection {
  return { ok: false, reason, detail };
}

/** Where an option walk found the UOA, or why it did not. */
type OptionWalk = { at: number; len: number } | UoaRejection;

/**
 * Walks IPv4-style options in b[from, to) the way kmod/uoa does (END stops,
 * NOP is one byte, any other option needs a length of 2..what is left) and
 * returns the first UOA.
 */
function findUoaOption(b: Uint8Array, from: number, to: number): OptionWalk {
  let p = from;
  while (p < to) {
    const code = b[p]!;
    if (code === IPOPT_END) break;
    if (code === IPOPT_NOOP) {
      p++;
      continue;
    }
    if (to - p < 2) return reject('bad-option', `option ${code} at ${p} has no length byte`);
    const len = b[p + 1]!;
    if (len < 2 || len > to - p) {
      return reject('bad-option', `option ${code} at ${p} has length ${len}, ${to - p} left`);
    }
    if (code === IPOPT_UOA) {
      if (len !== UOA_V4_LEN && len !== UOA_V6_LEN) {
        return reject('bad-uoa-length', `UOA of ${len} bytes (8 or 20 expected)`);
      }
      return { at: p, len };
    }
    p += len;
  }
  return reject('no-uoa', 'no UOA among the options');
}

/**
 * The offset of the first UOA among the IPv4-style options in b[from, to),
 * walked as `findUoaOption` walks them, or -1 (none, or an option whose
 * length is impossible). Allocates nothing: the engine reads quotes with it.
 */
export function uoaOptionAt(b: Uint8Array, from: number, to: number): number {
  let p = from;
  while (p < to) {
    const code = b[p]!;
    if (code === IPOPT_END) return -1;
    if (code === IPOPT_NOOP) {
      p++;
      continue;
    }
    if (to - p < 2) return -1;
    const len = b[p + 1]!;
    if (len < 2 || len > to - p) return -1;
    if (code === IPOPT_UOA) return len === UOA_V4_LEN || len === UOA_V6_LEN ? p : -1;
    p += len;
  }
  return -1;
}

function clientOf(b: Uint8Array, uoaAt: number, uoaLen: number): IpAddress {
  return uoaLen === UOA_V4_LEN ? get32(b, uoaAt + 4) : Ipv6Address.fromBytes(b, uoaAt + 4);
}

/**
 * The RS side: finds the client's address in a datagram at b[start,
 * start+length) sent with either mode, checking everything it reads against
 * the bytes present (it never throws, whatever the bytes). Accepts what DPVS
 * sends and kmod/uoa reads: ipo (IPv4, protocol 17, a UOA among the
 * options), opp (IPv4 with its options, or IPv6 with a bare fixed header;
 * protocol 248, an OPP header whose options hold a UOA, then UDP).
 */
export function decodeUoa(
  b: Uint8Array,
  start = 0,
  length: number = b.length - start,
): UoaDecodeResult {
  if (start < 0 || length < 1 || start + length > b.length) {
    return reject('truncated', `no datagram at ${start} (+${length}) in ${b.length} bytes`);
  }
  const version = b[start]! >>> 4;
  let hl: number;
  let end: number;
  let proto: number;
  if (version === 4) {
    if (length < IPV4_MIN_HEADER) return reject('truncated', `${length} bytes: no IPv4 header`);
    hl = (b[start]! & 0x0f) * 4;
    if (hl < IPV4_MIN_HEADER) return reject('bad-ip-header', `IHL of ${hl} bytes`);
    if (hl > length) return reject('truncated', `IPv4 header of ${hl} bytes in ${length}`);
    const total = get16(b, start + Ipv4Field.TotalLength);
    if (total < hl) return reject('bad-ip-header', `total length ${total} < header ${hl}`);
    if (total > length) return reject('truncated', `total length ${total} in ${length} bytes`);
    if (finishChecksum(sumWords(b, start, hl, 0)) !== 0) {
      return reject('bad-ip-checksum', 'IPv4 header checksum does not verify');
    }
    if ((get16(b, start + Ipv4Field.Flags) & 0x3fff) !== 0) {
      return reject('fragment', 'a fragment: reassemble first');
    }
    end = start + total;
    proto = b[start + Ipv4Field.Protocol]!;
  } else if (version === 6) {
    if (length < IPV6_HEADER) return reject('truncated', `${length} bytes: no IPv6 header`);
    hl = IPV6_HEADER;
    const payload = get16(b, start + 4);
    if (IPV6_HEADER + payload > length) {
      return reject('truncated', `payload length ${payload} in ${length - IPV6_HEADER} bytes`);
    }
    end = start + IPV6_HEADER + payload;
    proto = b[start + 6]!;
  } else {
    return reject('bad-ip-header', `IP version ${version}`);
  }
  const ipFamily: 4 | 6 = version === 4 ? 4 : 6;
  const l4 = start + hl;

  if (proto === IPPROTO_OPP) {
    if (end - l4 < OPP_HEADER) return reject('truncated', 'no room for the OPP header');
    const oppVersion = b[l4]! >>> 4;
    if (oppVersion !== OPP_VERSION_V4 && oppVersion !== OPP_VERSION_V6) {
      return reject('bad-opp-header', `OPP version ${oppVersion}`);
    }
    if ((b[l4]! & 0x0f) !== 0) return reject('bad-opp-header', 'OPP reserved bits set');
    if (b[l4 + 1] !== IPPROTO_UDP) return reject('not-udp', `OPP protocol ${b[l4 + 1]}`);
    const oppLen = get16(b, l4 + 2);
    if (oppLen < OPP_HEADER || oppLen > end - l4) {
      return reject(
        'bad-opp-length',
        `OPP length ${oppLen}, ${end - l4} bytes after the IP header`,
      );
    }
    const found = findUoaOption(b, l4 + OPP_HEADER, l4 + oppLen);
    if (!('at' in found)) return found;
    const want = oppVersion === OPP_VERSION_V4 ? UOA_V4_LEN : UOA_V6_LEN;
    if (found.len !== want) {
      return reject('bad-uoa-length', `OPP version ${oppVersion} with a UOA of ${found.len} bytes`);
    }
    if (ipFamily === 6 && found.len === UOA_V4_LEN) {
      return reject('bad-uoa-length', 'an IPv4 client in an IPv6 datagram');
    }
    const udp = l4 + oppLen;
    if (!udpFits(b, udp, end - udp)) return reject('bad-udp-length', 'UDP header after OPP');
    return {
      ok: true,
      mode: 'opp',
      ipFamily,
      clientAddress: clientOf(b, found.at, found.len),
      clientPort: get16(b, found.at + 2),
      start,
      end,
      ipHeaderLength: hl,
      uoaOffset: found.at,
      uoaLength: found.len,
      oppOffset: l4,
      udpOffset: udp,
    };
  }
  if (proto !== IPPROTO_UDP) return reject('not-udp', `IP protocol ${proto}`);
  if (!udpFits(b, l4, end - l4)) return reject('bad-udp-length', 'UDP header after IP');
  if (ipFamily === 6 || hl === IPV4_MIN_HEADER) return reject('no-uoa', 'a plain UDP datagram');
  const found = findUoaOption(b, start + IPV4_MIN_HEADER, l4);
  if (!('at' in found)) return found;
  return {
    ok: true,
    mode: 'ipo',
    ipFamily,
    clientAddress: clientOf(b, found.at, found.len),
    clientPort: get16(b, found.at + 2),
    start,
    end,
    ipHeaderLength: hl,
    uoaOffset: found.at,
    uoaLength: found.len,
    oppOffset: -1,
    udpOffset: l4,
  };
}

/** A plain UDP datagram, now at b[start, start+length). */
export interface UoaRemoved {
  ok: true;
  start: number;
  length: number;
  /** What was read before it was removed. */
  uoa: UoaDatagram;
}

/**
 * What the RS receiver does: turns the UOA datagram at b[start,
 * start+length) back into a plain UDP one in place, the UOA option (ipo) or
 * the OPP header (opp) cut out by moving the bytes before it forward. The IP
 * lengths, protocol (17) and IPv4 header checksum are rewritten; the UDP
 * header and payload are not touched. Trailing bytes past the IP length are
 * dropped. Refuses (buffer untouched) whatever `decodeUoa` refuses.
 */
export function removeUoa(
  b: Uint8Array,
  start = 0,
  length: number = b.length - start,
): UoaRemoved | UoaRejection {
  const d = decodeUoa(b, start, length);
  if (!d.ok) return d;
  let cutAt: number;
  let cut: number;
  if (d.mode === 'ipo') {
    // 8 or 20 bytes: the option area stays a whole number of 32-bit words.
    cutAt = d.uoaOffset;
    cut = d.uoaLength;
  } else {
    cutAt = d.oppOffset;
    cut = d.udpOffset - d.oppOffset;
  }
  b.copyWithin(start + cut, start, cutAt);
  const s = start + cut;
  const newLength = d.end - start - cut;
  if (d.ipFamily === 4) {
    if (d.mode === 'ipo') b[s] = 0x40 | ((d.ipHeaderLength - cut) >>> 2);
    else b[s + Ipv4Field.Protocol] = IPPROTO_UDP;
    set16(b, s + Ipv4Field.TotalLength, newLength);
    // The original checksum verified in decodeUoa, so recomputing hides nothing.
    set16(b, s + Ipv4Field.Checksum, 0);
    const hl = (b[s]! & 0x0f) * 4;
    set16(b, s + Ipv4Field.Checksum, finishChecksum(sumWords(b, s, hl, 0)));
  } else {
    b[s + 6] = IPPROTO_UDP;
    set16(b, s + 4, newLength - IPV6_HEADER);
  }
  return { ok: true, start: s, length: newLength, uoa: d };
}
