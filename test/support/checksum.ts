/**
 * Checksums recomputed from scratch, written apart from src/wire/checksum.ts
 * so a test does not check the code with itself: the RFC 1071 sum over every
 * byte, carries folded at the end.
 */

/** One's-complement sum of `len` bytes at `off` (an odd last byte padded with zero), unfolded. */
function plainSum(b: Uint8Array, off: number, len: number): number {
  let sum = 0;
  for (let i = 0; i < len; i += 2) {
    const hi = b[off + i]!;
    const lo = i + 1 < len ? b[off + i + 1]! : 0;
    sum += hi * 256 + lo;
  }
  return sum;
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The checksum field value that makes `len` bytes at `off` sum to 0xffff (field counted as zero). */
export function recomputeChecksum(
  b: Uint8Array,
  off: number,
  len: number,
  fieldAt: number,
  pseudo = 0,
): number {
  const copy = b.slice(off, off + len);
  copy[fieldAt - off] = 0;
  copy[fieldAt - off + 1] = 0;
  return ~fold(plainSum(copy, 0, len) + pseudo) & 0xffff;
}

const read16 = (b: Uint8Array, o: number): number => b[o]! * 256 + b[o + 1]!;

/** The IPv4 header checksum of the packet at b[0], recomputed. */
export function ipv4HeaderChecksum(b: Uint8Array): number {
  const ihl = (b[0]! & 0x0f) * 4;
  return recomputeChecksum(b, 0, ihl, 10);
}

/** The TCP checksum of the IPv4 packet at b[0] (pseudo-header included), recomputed. */
export function tcpChecksumV4(b: Uint8Array): number {
  const ihl = (b[0]! & 0x0f) * 4;
  const total = read16(b, 2);
  const tcpLen = total - ihl;
  const pseudo = plainSum(b, 12, 8) + 6 + tcpLen;
  return recomputeChecksum(b, ihl, tcpLen, ihl + 16, pseudo);
}

/** The ICMP checksum of the IPv4 packet at b[0], recomputed. */
export function icmpChecksumV4(b: Uint8Array): number {
  const ihl = (b[0]! & 0x0f) * 4;
  return recomputeChecksum(b, ihl, read16(b, 2) - ihl, ihl + 2);
}

/** Asserts-friendly summary: the stored and recomputed checksums of an IPv4 TCP or ICMP packet. */
export function checksumReport(b: Uint8Array): {
  ip: [number, number];
  l4: [number, number];
} {
  const ihl = (b[0]! & 0x0f) * 4;
  const proto = b[9]!;
  const l4 =
    proto === 6
      ? ([read16(b, ihl + 16), tcpChecksumV4(b)] as [number, number])
      : ([read16(b, ihl + 2), icmpChecksumV4(b)] as [number, number]);
  return { ip: [read16(b, 10), ipv4HeaderChecksum(b)], l4 };
}
