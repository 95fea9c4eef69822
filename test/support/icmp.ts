/** ICMP messages for the engine's tests, built independently of the engine's code. */
import { IPPROTO_ICMP, writeIpv4Header } from '../../src/wire/ipv4.js';
import { foldSum, internetChecksum, sumWords } from '../../src/wire/checksum.js';

/**
 * An IPv4 ICMP message src → dst: `type`, `code`, the 4 bytes after the
 * checksum (`rest`: the next-hop MTU of a frag-needed in its low 16 bits,
 * or an echo's identifier and sequence number), then `body` (the quote, or
 * echo data). Checksums right unless `badChecksum`.
 */
export function icmpPacket(
  src: number,
  dst: number,
  type: number,
  code: number,
  rest: number,
  body: Uint8Array,
  badChecksum = false,
): Uint8Array {
  const len = 8 + body.length;
  const b = new Uint8Array(20 + len);
  writeIpv4Header(b, 0, { src, dst, protocol: IPPROTO_ICMP, payloadLength: len, ttl: 64 });
  b[20] = type;
  b[21] = code;
  b[24] = (rest >>> 24) & 0xff;
  b[25] = (rest >>> 16) & 0xff;
  b[26] = (rest >>> 8) & 0xff;
  b[27] = rest & 0xff;
  b.set(body, 28);
  const ck = internetChecksum(b, 20, len) ^ (badChecksum ? 0x5555 : 0);
  b[22] = ck >>> 8;
  b[23] = ck & 0xff;
  return b;
}

/** The first `n` bytes of a packet, as a router quotes it (RFC 792: IP header + 8; Linux: up to 576 in all). */
export function quoteOf(packet: Uint8Array, n: number): Uint8Array {
  return packet.slice(0, Math.min(n, packet.length));
}

/**
 * An ICMPv6 message src → dst (16-byte addresses): `type`, `code`, the 4
 * bytes after the checksum (`rest`: a Packet Too Big's MTU, an echo's
 * identifier and sequence number), then `body`; hop limit `hopLimit`,
 * traffic class and flow label 0; the checksum over the pseudo-header
 * (RFC 4443 2.3) right unless `badChecksum`. `ext` puts a hop-by-hop
 * options header (8 bytes of padding) before the message.
 */
export function icmp6Packet(
  src: Uint8Array,
  dst: Uint8Array,
  type: number,
  code: number,
  rest: number,
  body: Uint8Array,
  opts: { badChecksum?: boolean; hopLimit?: number; ext?: boolean } = {},
): Uint8Array {
  const len = 8 + body.length;
  const ext = opts.ext === true ? 8 : 0;
  const b = new Uint8Array(40 + ext + len);
  b[0] = 0x60;
  b[4] = (ext + len) >>> 8;
  b[5] = (ext + len) & 0xff;
  b[6] = ext > 0 ? 0 : 58;
  b[7] = opts.hopLimit ?? 64;
  b.set(src, 8);
  b.set(dst, 24);
  if (ext > 0) {
    b[40] = 58;
    b[42] = 1; // PadN over the rest
    b[43] = 4;
  }
  const m = 40 + ext;
  b[m] = type;
  b[m + 1] = code;
  b[m + 4] = (rest >>> 24) & 0xff;
  b[m + 5] = (rest >>> 16) & 0xff;
  b[m + 6] = (rest >>> 8) & 0xff;
  b[m + 7] = rest & 0xff;
  b.set(body, m + 8);
  let sum = (len >>> 16) + (len & 0xffff) + 58;
  for (let i = 8; i < 40; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  for (let i = m; i < b.length; i += 2) sum += (b[i]! << 8) | (i + 1 < b.length ? b[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const ck = (~sum & 0xffff) ^ (opts.badChecksum === true ? 0x5555 : 0);
  b[m + 2] = ck >>> 8;
  b[m + 3] = ck & 0xff;
  return b;
}

/** True when the one's-complement sum of `len` bytes at `off` checks out (a checksum field inside them). */
export function checksumOk(b: Uint8Array, off: number, len: number): boolean {
  return foldSum(sumWords(b, off, len, 0)) === 0xffff;
}

/** Fewer than `max` bytes from `r`, each 0..255. */
export function randomBytes(r: () => number, max: number): Uint8Array {
  return Uint8Array.from({ length: Math.floor(r() * max) }, () => Math.floor(r() * 256));
}

/**
 * A quote of `orig` as hostile routers send it: sometimes up to `junkMax`
 * random bytes; else `orig` cut anywhere (at least `keep` bytes half the
 * time), and then some bits flipped in most of them.
 */
export function hostileQuote(
  r: () => number,
  orig: Uint8Array,
  keep: number,
  junkMax: number,
): Uint8Array {
  const k = r();
  if (k < 0.1) return randomBytes(r, junkMax);
  const n = Math.floor(r() * (orig.length + 1));
  const q = orig.slice(0, k < 0.5 ? Math.max(n, keep) : n);
  if (k >= 0.35 && q.length > 0) {
    for (let f = 1 + Math.floor(r() * 3); f > 0; f--) {
      const at = Math.floor(r() * q.length);
      q[at] = q[at]! ^ (1 << Math.floor(r() * 8));
    }
  }
  return q;
}
