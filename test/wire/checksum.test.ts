import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { get16, get32, set16, set32 } from '../../src/wire/bytes.js';
import {
  ChecksumDelta,
  alignedRangeSum,
  checksumAdjust,
  checksumReplace16,
  checksumReplace32,
  finishChecksum,
  foldSum,
  internetChecksum,
  pseudoSumV4,
  pseudoSumV6,
  sumWords,
} from '../../src/wire/checksum.js';

const RFC1071_EXAMPLE = Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7);

test('RFC 1071 §3 example: sum 0xddf2, checksum 0x220d', () => {
  const sum = sumWords(RFC1071_EXAMPLE, 0, RFC1071_EXAMPLE.length, 0);
  assert.equal(sum, 0x2ddf0);
  assert.equal(foldSum(sum), 0xddf2);
  assert.equal(internetChecksum(RFC1071_EXAMPLE, 0, RFC1071_EXAMPLE.length), 0x220d);
});

test('data followed by its checksum sums to 0xffff (receiver check)', () => {
  const b = new Uint8Array(10);
  b.set(RFC1071_EXAMPLE);
  set16(b, 8, internetChecksum(RFC1071_EXAMPLE, 0, 8));
  assert.equal(foldSum(sumWords(b, 0, 10, 0)), 0xffff);
  assert.equal(internetChecksum(b, 0, 10), 0);
});

test('odd length pads the last byte with a zero low byte', () => {
  const odd = Uint8Array.of(0x12, 0x34, 0x56);
  const even = Uint8Array.of(0x12, 0x34, 0x56, 0x00);
  assert.equal(sumWords(odd, 0, 3, 0), 0x1234 + 0x5600);
  assert.equal(internetChecksum(odd, 0, 3), internetChecksum(even, 0, 4));
});

test('sumWords honours the offset and chains across even-sized chunks', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.nat(100), (data, cutSeed) => {
      const cut = Math.min(data.length, cutSeed) & ~1;
      const whole = foldSum(sumWords(data, 0, data.length, 0));
      const chained = foldSum(sumWords(data, cut, data.length - cut, sumWords(data, 0, cut, 0)));
      assert.equal(chained, whole);
      const shifted = new Uint8Array(data.length + 3);
      shifted.set(data, 3);
      assert.equal(foldSum(sumWords(shifted, 3, data.length, 0)), whole);
    }),
  );
});

test('empty and all-zero data check to 0xffff', () => {
  assert.equal(internetChecksum(new Uint8Array(0), 0, 0), 0xffff);
  assert.equal(internetChecksum(new Uint8Array(20), 0, 20), 0xffff);
});

/** Reference one's-complement sum that folds after every word, so it never grows past 17 bits. */
function referenceFold(buf: Uint8Array, off: number, len: number, start: number): number {
  let sum = start;
  for (let i = 0; i < len; i += 2) {
    sum += (buf[off + i]! << 8) | (i + 1 < len ? buf[off + i + 1]! : 0);
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  return sum;
}

test('foldSum is exact for the largest sums a packet can produce', () => {
  // foldSum is specified for unfolded sums below 2^32. The worst real case is
  // a 65535-byte IPv6 upper-layer segment of 0xff bytes plus its pseudo-header.
  const ip6 = new Uint8Array(40 + 65535).fill(0xff);
  const pseudo = pseudoSumV6(ip6, 0, 6, 65535);
  const sum = sumWords(ip6, 40, 65535, pseudo);
  assert.ok(sum < 2 ** 32, `worst case ${sum}`);
  assert.equal(foldSum(sum), referenceFold(ip6, 40, 65535, foldSum(pseudo)));
  assert.equal(finishChecksum(sum), ~referenceFold(ip6, 40, 65535, foldSum(pseudo)) & 0xffff);
  assert.equal(foldSum(0xffffffff), 0xffff);
  assert.equal(foldSum(0x1fffe), 0xffff);
  assert.equal(foldSum(0x10000), 1);
});

test('sumWords stays exact past 128 KiB, where an unfolded sum would reach 2^32', () => {
  const big = new Uint8Array(300_000).fill(0xff);
  big[7] = 0x12;
  const sum = sumWords(big, 0, big.length, 0);
  assert.ok(sum < 2 ** 32);
  assert.equal(foldSum(sum), referenceFold(big, 0, big.length, 0));
});

test('property: sumWords + foldSum equal a fold-every-word reference', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat(5), (data, off) => {
      const b = new Uint8Array(off + data.length);
      b.set(data, off);
      assert.equal(
        foldSum(sumWords(b, off, data.length, 0)),
        referenceFold(b, off, data.length, 0) || 0,
      );
    }),
    { numRuns: 300 },
  );
});

test('pseudo-header sums equal the sum of an explicit pseudo-header', () => {
  const v4 = new Uint8Array(20);
  set32(v4, 12, 0xc000020a);
  set32(v4, 16, 0xc6336401);
  const explicit4 = new Uint8Array(12);
  explicit4.set(v4.subarray(12, 20), 0);
  explicit4[9] = 6;
  set16(explicit4, 10, 1234);
  assert.equal(foldSum(pseudoSumV4(v4, 0, 6, 1234)), foldSum(sumWords(explicit4, 0, 12, 0)));

  const v6 = new Uint8Array(40);
  for (let i = 8; i < 40; i++) v6[i] = (i * 37) & 0xff;
  const explicit6 = new Uint8Array(40);
  explicit6.set(v6.subarray(8, 40), 0);
  // RFC 8200 §8.1: 32-bit upper-layer length, then 3 zero bytes and the next header.
  set32(explicit6, 32, 70_000);
  explicit6[39] = 17;
  assert.equal(foldSum(pseudoSumV6(v6, 0, 17, 70_000)), foldSum(sumWords(explicit6, 0, 40, 0)));
});

test('RFC 1624 §3 edge case: incremental update gives 0x0000, not -0 (0xffff)', () => {
  // The other header words sum to 0xcd7a; field m = 0x5555 becomes 0x3285.
  const b = Uint8Array.of(0xcd, 0x7a, 0x55, 0x55);
  const hc = internetChecksum(b, 0, 4);
  assert.equal(hc, 0xdd2f);
  set16(b, 2, 0x3285);
  assert.equal(internetChecksum(b, 0, 4), 0x0000);
  assert.equal(checksumReplace16(hc, 0x5555, 0x3285), 0x0000);
  // Eqn. 2 (HC - ~m - m') would give 0xffff here; make sure we are not doing that.
  assert.notEqual(checksumReplace16(hc, 0x5555, 0x3285), 0xffff);
});

/**
 * A header-like buffer: its first word is never zero, as in every real
 * header (IPv4 version/IHL, TCP pseudo-header protocol). Only an all-zero
 * header has a true sum of +0, where RFC 1624 eqn. 3 answers 0x0000 but the
 * full computation 0xffff; such a header cannot occur on the wire.
 */
const headerLike = fc
  .tuple(fc.integer({ min: 1, max: 0xffff }), fc.uint8Array({ minLength: 2, maxLength: 62 }))
  .map(([first, rest]) => {
    const b = new Uint8Array(2 + (rest.length & ~1));
    set16(b, 0, first);
    b.set(rest.subarray(0, b.length - 2), 2);
    return b;
  });

/** The checksum field lives in the last word; everything else is fair game to rewrite. */
function checkedHeader(body: Uint8Array): Uint8Array {
  const b = new Uint8Array(body.length + 2);
  b.set(body);
  set16(b, body.length, internetChecksum(body, 0, body.length));
  return b;
}

function recompute(b: Uint8Array): number {
  return internetChecksum(b, 0, b.length - 2);
}

test('property: RFC 1624 16-bit update equals full recompute', () => {
  fc.assert(
    fc.property(headerLike, fc.nat(), fc.integer({ min: 0, max: 0xffff }), (body, posSeed, nw) => {
      const b = checkedHeader(body);
      const words = body.length / 2;
      // Word 0 stays nonzero so the header never degenerates to all zeros.
      const at = words > 1 ? 2 * (1 + (posSeed % (words - 1))) : 0;
      const newWord = at === 0 && nw === 0 ? 1 : nw;
      const old = get16(b, at);
      const check = get16(b, b.length - 2);
      set16(b, at, newWord);
      assert.equal(checksumReplace16(check, old, newWord), recompute(b));
    }),
    { numRuns: 2000 },
  );
});

test('property: 16-bit updates that land on the 0x0000/0xffff boundary', () => {
  // Choose m' so the new sum is exactly 0xffff: the full checksum is then 0x0000.
  fc.assert(
    fc.property(headerLike, fc.nat(), (body, posSeed) => {
      const words = body.length / 2;
      if (words < 2) return;
      const at = 2 * (1 + (posSeed % (words - 1)));
      const b = checkedHeader(body);
      const old = get16(b, at);
      const check = get16(b, b.length - 2);
      set16(b, at, 0);
      const others = foldSum(sumWords(b, 0, b.length - 2, 0));
      const newWord = 0xffff - others;
      set16(b, at, newWord);
      assert.equal(recompute(b), 0x0000);
      assert.equal(checksumReplace16(check, old, newWord), 0x0000);
    }),
    { numRuns: 1000 },
  );
});

test('property: RFC 1624 32-bit update equals full recompute', () => {
  fc.assert(
    fc.property(headerLike, fc.nat(), fc.nat({ max: 0xffffffff }), (body, posSeed, nv) => {
      const b = checkedHeader(body);
      const words = body.length / 2;
      if (words < 3) return;
      // Any even offset from word 1 on: 32-bit fields need not be 4-aligned (e.g. TCP options).
      const at = 2 * (1 + (posSeed % (words - 2)));
      const old = get32(b, at);
      const check = get16(b, b.length - 2);
      set32(b, at, nv);
      assert.equal(checksumReplace32(check, old, nv), recompute(b));
    }),
    { numRuns: 2000 },
  );
});

test('property: chained 16- and 32-bit updates stay equal to a full recompute', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 40, maxLength: 40 }),
      fc.array(
        fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 16 }), fc.nat({ max: 0xffffffff })),
        {
          minLength: 1,
          maxLength: 20,
        },
      ),
      (raw, edits) => {
        // An IPv4-like header: 0x45 keeps it nonzero; checksum in bytes 10-11.
        const b = raw.slice(0, 20);
        b[0] = 0x45;
        set16(b, 10, 0);
        set16(b, 10, internetChecksum(b, 0, 20));
        for (const [wide, slot, value] of edits) {
          const at = slot === 5 ? 12 : slot * 2; // never the checksum word itself
          if (at >= 10 && at <= 11) continue;
          const check = get16(b, 10);
          if (wide && at + 4 <= 20 && !(at < 12 && at + 4 > 10)) {
            const old = get32(b, at);
            set32(b, at, value);
            set16(b, 10, checksumReplace32(check, old, value));
          } else if (at + 2 <= 20 && at !== 0) {
            const old = get16(b, at);
            set16(b, at, value & 0xffff);
            set16(b, 10, checksumReplace16(check, old, value & 0xffff));
          }
        }
        // A correct header checks to zero including its own checksum field.
        assert.equal(internetChecksum(b, 0, 20), 0);
      },
    ),
    { numRuns: 500 },
  );
});

test('property: ChecksumDelta applies several word replacements like a full recompute', () => {
  fc.assert(
    fc.property(
      headerLike,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 0xffff })), {
        minLength: 1,
        maxLength: 8,
      }),
      (body, edits) => {
        const b = checkedHeader(body);
        const words = body.length / 2;
        if (words < 2) return;
        const check = get16(b, b.length - 2);
        const delta = new ChecksumDelta().reset();
        for (const [posSeed, nw] of edits) {
          const at = 2 * (1 + (posSeed % (words - 1)));
          delta.replaceWord(get16(b, at), nw);
          set16(b, at, nw);
        }
        assert.equal(delta.apply(check), recompute(b));
        // The pending sum is kept: applying it again to the same start gives the same answer.
        assert.equal(delta.apply(check), recompute(b));
      },
    ),
    { numRuns: 1000 },
  );
});

test('property: checksumAdjust over alignedRangeSum follows an edit of any byte range', () => {
  fc.assert(
    fc.property(
      fc.nat(7),
      fc.uint8Array({ minLength: 4, maxLength: 80 }),
      fc.nat(7),
      fc.nat(),
      fc.nat(),
      fc.uint8Array({ minLength: 1, maxLength: 80 }),
      (lead, region, trail, fromSeed, lenSeed, fresh) => {
        // A checksummed region at an odd or even offset, with unrelated bytes after it.
        const buf = new Uint8Array(lead + region.length + trail).fill(0xa5);
        buf.set(region, lead);
        buf[lead] = buf[lead]! | 0x40; // nonzero, like every real header
        const regionEnd = lead + region.length;
        const check = internetChecksum(buf, lead, region.length);
        const from = lead + 1 + (fromSeed % (region.length - 1));
        const to = Math.min(regionEnd, from + 1 + (lenSeed % fresh.length));
        const oldSum = alignedRangeSum(buf, lead, from, to);
        buf.set(fresh.subarray(0, to - from), from);
        const newSum = alignedRangeSum(buf, lead, from, to);
        assert.equal(
          checksumAdjust(check, oldSum, newSum),
          internetChecksum(buf, lead, region.length),
        );
      },
    ),
    { numRuns: 2000 },
  );
});
