/** CRC32c for the PP2_TYPE_CRC32C TLV: RFC 4960 appendix B, reflected polynomial. */

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
export function crc32cWithHole(b: Uint8Array, start: number, end: number, zeroAt: number): number {
  let crc = crc32cUpdate(0xffffffff, b, start, zeroAt);
  for (let i = 0; i < 4; i++) crc = CRC32C_TABLE[crc & 0xff]! ^ (crc >>> 8);
  crc = crc32cUpdate(crc, b, zeroAt + 4, end);
  return (crc ^ 0xffffffff) >>> 0;
}
