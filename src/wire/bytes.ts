/** Big-endian field access on a Uint8Array without DataView allocation. */

export function get16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

export function set16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

export function get32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

export function set32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** Dotted-quad text of a host-order IPv4 address held as an unsigned 32-bit number. */
/**
 * Copies `len` bytes from src[from] to dst[to] without making a view: for the
 * few bytes of a header or an option list, a loop costs less than the
 * `subarray` object that `set` needs (garbage on the data path).
 */
export function copyBytes(
  dst: Uint8Array,
  to: number,
  src: Uint8Array,
  from: number,
  len: number,
): void {
  for (let i = 0; i < len; i++) dst[to + i] = src[from + i]!;
}

/** From this length on, a native copy beats the byte loop despite its view object. */
const MOVE_BY_SET = 64;

/**
 * Copies src[from, from+len) to dst[to]. V8 runs a byte loop at a few ns a
 * byte and `set` at a few hundredths, but `set` needs a view object: the
 * loop for header-sized copies, `set` (one short-lived view, as ToaWriter's
 * split pays) for data.
 */
export function moveBytes(
  dst: Uint8Array,
  to: number,
  src: Uint8Array,
  from: number,
  len: number,
): void {
  if (len < MOVE_BY_SET) {
    for (let i = 0; i < len; i++) dst[to + i] = src[from + i]!;
  } else {
    dst.set(src.subarray(from, from + len), to);
  }
}

export function ipv4ToString(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;
}

/** Parses a dotted quad; returns -1 when the text is not a valid IPv4 address. */
export function parseIpv4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4) return -1;
  let v = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return -1;
    const n = Number(p);
    if (n > 255) return -1;
    v = v * 256 + n;
  }
  return v >>> 0;
}

/** Parses IPv6 text (RFC 4291 forms incl. "::" and embedded IPv4) into 16 bytes, or null. */
export function parseIpv6(text: string): Uint8Array | null {
  let s = text;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  const out = new Uint8Array(16);
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const words = (part: string): number[] | null => {
    if (part === '') return [];
    const res: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      if (i === items.length - 1 && it.includes('.')) {
        const v4 = parseIpv4(it);
        if (v4 < 0) return null;
        res.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(it)) return null;
        res.push(parseInt(it, 16));
      }
    }
    return res;
  };
  const head = words(halves[0]!);
  const tail = halves.length === 2 ? words(halves[1]!) : [];
  if (!head || !tail) return null;
  if (halves.length === 1 && head.length !== 8) return null;
  if (halves.length === 2 && head.length + tail.length > 7) return null;
  const all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  for (let i = 0; i < 8; i++) set16(out, i * 2, all[i]!);
  return out;
}

/** RFC 5952 text of 16 IPv6 address bytes at off. */
export function ipv6ToString(b: Uint8Array, off = 0): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push(get16(b, off + i * 2));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(w);
  return `${hex(w.slice(0, bestStart))}::${hex(w.slice(bestStart + bestLen))}`;
}

// The helpers below move 32-bit values between packets and typed arrays
// without passing them as arguments or results: V8 boxes numbers beyond the
// small-integer range at call boundaries, which would allocate per packet.

/** b[o..o+4) = arr[idx], big-endian. */
export function storeU32From(b: Uint8Array, o: number, arr: Uint32Array, idx: number): void {
  const v = arr[idx]!;
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** arr[idx] = (big-endian u32 at b[o]) + add, modulo 2^32. */
export function loadU32Plus(
  arr: Uint32Array,
  idx: number,
  b: Uint8Array,
  o: number,
  add: number,
): void {
  arr[idx] = ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) + add;
}

/** (big-endian u32 at b[o]) === arr[idx]. */
export function equalsU32At(b: Uint8Array, o: number, arr: Uint32Array, idx: number): boolean {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0 === arr[idx];
}

/** (big-endian u32 at b[o]) + addArr[ai] === cmpArr[ci] + k, modulo 2^32. */
export function equalsU32AtPlus(
  b: Uint8Array,
  o: number,
  addArr: Uint32Array,
  ai: number,
  cmpArr: Uint32Array,
  ci: number,
  k: number,
): boolean {
  const v = ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) + addArr[ai]!;
  return ((v - cmpArr[ci]! - k) | 0) === 0;
}
