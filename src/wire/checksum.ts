/**
 * Internet checksum (RFC 1071) and incremental update (RFC 1624).
 * Sums are kept as unfolded 32-bit accumulators so callers can chain
 * pseudo-header, header and payload without allocating.
 */

/** Adds the 16-bit big-endian words of buf[off, off+len) to sum (unfolded). */
export function sumWords(buf: Uint8Array, off: number, len: number, sum: number): number {
  let i = off;
  const end = off + len - 1;
  for (; i < end; i += 2) {
    sum += (buf[i]! << 8) | buf[i + 1]!;
    // Fold before the sum could reach 2^32, so `foldSum`'s shifts stay exact for any length.
    if (sum >= 0x80000000) sum = (sum & 0xffff) + (sum >>> 16);
  }
  if ((len & 1) === 1) sum += buf[off + len - 1]! << 8;
  return sum;
}

/**
 * `sumWords` of the 20 bytes at buf[off]: an IPv4 header without options,
 * which every IPv4 packet has verified. Unrolled, because V8 checks the
 * array, the bounds and the overflow on each turn of `sumWords`' loop: about
 * three times the instructions for these ten words. Ten words stay below
 * 2^20, so nothing needs folding on the way.
 */
export function sumWords20(buf: Uint8Array, off: number): number {
  return (
    ((buf[off]! << 8) | buf[off + 1]!) +
    ((buf[off + 2]! << 8) | buf[off + 3]!) +
    ((buf[off + 4]! << 8) | buf[off + 5]!) +
    ((buf[off + 6]! << 8) | buf[off + 7]!) +
    ((buf[off + 8]! << 8) | buf[off + 9]!) +
    ((buf[off + 10]! << 8) | buf[off + 11]!) +
    ((buf[off + 12]! << 8) | buf[off + 13]!) +
    ((buf[off + 14]! << 8) | buf[off + 15]!) +
    ((buf[off + 16]! << 8) | buf[off + 17]!) +
    ((buf[off + 18]! << 8) | buf[off + 19]!)
  );
}

/** Folds an unfolded sum into 16 bits with end-around carry; sums here stay below 2^32. */
export function foldSum(sum: number): number {
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** Final one's-complement checksum of an unfolded sum. */
export function finishChecksum(sum: number): number {
  return ~foldSum(sum) & 0xffff;
}

/**
 * Checksum of buf[start, start+len) plus `initial` (a pseudo-header sum), as
 * if the 16-bit checksum field at `fieldOff` were zero; the field is left as it was.
 */
export function checksumExcludingField(
  buf: Uint8Array,
  start: number,
  len: number,
  fieldOff: number,
  initial: number,
): number {
  const hi = buf[fieldOff]!;
  const lo = buf[fieldOff + 1]!;
  buf[fieldOff] = 0;
  buf[fieldOff + 1] = 0;
  const c = finishChecksum(sumWords(buf, start, len, initial));
  buf[fieldOff] = hi;
  buf[fieldOff + 1] = lo;
  return c;
}

export function internetChecksum(buf: Uint8Array, off: number, len: number): number {
  return finishChecksum(sumWords(buf, off, len, 0));
}

/** Pseudo-header sum for TCP/UDP over IPv4: addresses read from the IPv4 header at ipOff. */
export function pseudoSumV4(buf: Uint8Array, ipOff: number, proto: number, l4len: number): number {
  return sumWords(buf, ipOff + 12, 8, 0) + proto + l4len;
}

/** Pseudo-header sum for TCP/UDP over IPv6: addresses read from the IPv6 header at ipOff. */
export function pseudoSumV6(buf: Uint8Array, ipOff: number, proto: number, l4len: number): number {
  return sumWords(buf, ipOff + 8, 32, 0) + proto + (l4len >>> 16) + (l4len & 0xffff);
}

/**
 * RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for one 16-bit field changing from m to m'.
 */
export function checksumReplace16(check: number, oldWord: number, newWord: number): number {
  const sum = (~check & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  return ~foldSum(sum) & 0xffff;
}

/** RFC 1624 for a 32-bit field (an IPv4 address or a sequence number). */
export function checksumReplace32(check: number, oldValue: number, newValue: number): number {
  const sum =
    (~check & 0xffff) +
    (~(oldValue >>> 16) & 0xffff) +
    (~oldValue & 0xffff) +
    ((newValue >>> 16) & 0xffff) +
    (newValue & 0xffff);
  return ~foldSum(sum) & 0xffff;
}

/**
 * Adjusts a checksum after a run of bytes changed: `oldSum`/`newSum` are the
 * unfolded word sums of the same aligned range before and after the change.
 */
export function checksumAdjust(check: number, oldSum: number, newSum: number): number {
  const sum = (~check & 0xffff) + (~foldSum(oldSum) & 0xffff) + foldSum(newSum);
  return ~foldSum(sum) & 0xffff;
}

/**
 * Sum of the 16-bit words covering buf[from, to), aligned to the word grid of
 * a checksummed region that starts at `regionStart`. Summing the same range
 * before and after an in-place edit gives the inputs of `checksumAdjust`.
 * The range may take in one byte on either side of [from, to); it must be
 * the same byte before and after the edit (true for in-place rewrites).
 */
export function alignedRangeSum(
  buf: Uint8Array,
  regionStart: number,
  from: number,
  to: number,
): number {
  const a = from - ((from - regionStart) & 1);
  const e = to + ((to - regionStart) & 1);
  return sumWords(buf, a, e - a, 0);
}

/**
 * RFC 1624 eqn. 3's ~m + m' for one 16-bit word changing from `oldWord` to
 * `newWord` (a 16-bit value): the NAT paths add the terms of a rewrite in a
 * local and patch the checksum once with `applySum`. Plain numbers in and
 * out and a few bytecodes, so V8 inlines it wherever it is called (the
 * `ChecksumDelta` methods, on the object's field, it stops inlining once a
 * translation has spent its budget).
 */
export function wordChange(oldWord: number, newWord: number): number {
  return (~oldWord & 0xffff) + newWord;
}

/**
 * `check` with a sum of `wordChange` terms applied: ~(~HC + Σ(~m + m')).
 * The folding is spelled out rather than left to `foldSum`: a helper inside
 * a helper is the first call V8 gives up inlining.
 */
export function applySum(check: number, sum: number): number {
  let s = (~check & 0xffff) + sum;
  s = (s & 0xffff) + (s >>> 16);
  return ~((s & 0xffff) + (s >>> 16)) & 0xffff;
}

/**
 * Accumulates RFC 1624 word replacements (pseudo-header addresses carry into
 * both the IP and the TCP checksum), so a NAT rewrite folds once per header.
 * Words are passed as 16-bit halves: small integers never get boxed.
 */
export class ChecksumDelta {
  private sum = 0;

  reset(): this {
    this.sum = 0;
    return this;
  }

  replaceWord(oldWord: number, newWord: number): void {
    this.sum += (~oldWord & 0xffff) + (newWord & 0xffff);
  }

  /** The replacements so far, as a sum of `wordChange` terms. */
  get pending(): number {
    return this.sum;
  }

  /** Applies the replacements so far to `check`; the pending sum is kept for a second header. */
  apply(check: number): number {
    return ~foldSum((~check & 0xffff) + this.sum) & 0xffff;
  }
}
