/**
 * 32-bit hashes for the schedulers. Results are unsigned (0 .. 2^32-1) so that
 * `% m` on them never yields a negative slot.
 */

/**
 * MurmurHash3's final avalanche. Client hashes arrive from elsewhere and may
 * have weak low bits (e.g. a raw IPv4 address); masking or `% m` needs every
 * input bit to reach the low bits first.
 */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash of a 32-bit integer; distinct seeds give unrelated results for the same input. */
export function hashInt(x: number, seed = 0): number {
  return fmix32(((x ^ Math.imul(seed | 0, 0x9e3779b1)) + (seed | 0)) | 0);
}

/**
 * Feeds the UTF-8 encoding of `s` to `sink` byte by byte, so the string hashes
 * agree with hashes of the same text computed over bytes in other languages.
 */
function utf8Bytes(s: string, sink: (byte: number) => void): void {
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const lo = s.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
        i++;
      }
    }
    if (c < 0x80) {
      sink(c);
    } else if (c < 0x800) {
      sink(0xc0 | (c >>> 6));
      sink(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
      // Lone surrogates are encoded as-is (WTF-8) rather than replaced, so
      // that distinct strings keep distinct byte sequences.
      sink(0xe0 | (c >>> 12));
      sink(0x80 | ((c >>> 6) & 0x3f));
      sink(0x80 | (c & 0x3f));
    } else {
      sink(0xf0 | (c >>> 18));
      sink(0x80 | ((c >>> 12) & 0x3f));
      sink(0x80 | ((c >>> 6) & 0x3f));
      sink(0x80 | (c & 0x3f));
    }
  }
}

/** FNV-1a (32-bit) over the UTF-8 bytes of `s`. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  utf8Bytes(s, (b) => {
    h = Math.imul(h ^ b, 0x01000193);
  });
  return h >>> 0;
}

/**
 * MurmurHash3 x86_32 over the UTF-8 bytes of `s`. Used where two independent
 * hashes of the same key are needed (different seeds), e.g. Maglev's offset and skip.
 */
export function murmur3String(s: string, seed = 0): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  let k = 0;
  let n = 0;
  utf8Bytes(s, (b) => {
    k |= b << ((n & 3) << 3);
    n++;
    if ((n & 3) === 0) {
      k = Math.imul(k, c1);
      k = (k << 15) | (k >>> 17);
      k = Math.imul(k, c2);
      h ^= k;
      h = (h << 13) | (h >>> 19);
      h = (Math.imul(h, 5) + 0xe6546b64) | 0;
      k = 0;
    }
  });
  if ((n & 3) !== 0) {
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= n;
  return fmix32(h);
}
