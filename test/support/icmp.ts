/** ICMP messages for the engine's tests, built independently of the engine's code. */
import { IPPROTO_ICMP, writeIpv4Header } from '../../src/wire/ipv4.js';
import { internetChecksum } from '../../src/wire/checksum.js';

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
