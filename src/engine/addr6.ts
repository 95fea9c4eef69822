/** IPv6 addresses in the data path: 16 bytes in typed arrays, hashed and compared without allocating. */

/**
 * 16 address bytes at b[o] folded into 32 bits: the hash input and the
 * value an IPv6 entry keeps in its u32 address column (a cheap first
 * compare before the 16 bytes). 30 bits, so it stays a small integer
 * wherever it goes (no boxing through calls).
 */
export function fold16(b: Uint8Array, o: number): number {
  let h = Math.imul((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!, 0x9e3779b1);
  h ^= (b[o + 4]! << 24) | (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h ^= (b[o + 8]! << 24) | (b[o + 9]! << 16) | (b[o + 10]! << 8) | b[o + 11]!;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h ^= (b[o + 12]! << 24) | (b[o + 13]! << 16) | (b[o + 14]! << 8) | b[o + 15]!;
  return (h ^ (h >>> 16)) & 0x3fffffff;
}

/** True when a[ao..ao+16) equals b[bo..bo+16). */
export function equal16(a: Uint8Array, ao: number, b: Uint8Array, bo: number): boolean {
  for (let k = 0; k < 16; k++) if (a[ao + k] !== b[bo + k]) return false;
  return true;
}
