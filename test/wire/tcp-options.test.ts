import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { get16, get32 } from '../../src/wire/bytes.js';
import {
  TCPOPT_EOL,
  TCPOPT_MSS,
  TCPOPT_NOP,
  TCPOPT_SACK,
  TCPOPT_SACK_PERM,
  TCPOPT_TIMESTAMP,
  TCPOPT_TOA,
  TCPOPT_TOA_ALI_V6,
  TCPOPT_WINDOW,
  TcpOptionCursor,
  TcpOptionSummary,
  decodeOptions,
  encodeOptions,
  isToaOption,
  opt,
  type TcpOption,
} from '../../src/wire/tcp-options.js';
import { ALL_TOA_KINDS, ToaResult, findToa, type ToaKinds } from '../../src/wire/toa.js';

interface Visited {
  kind: number;
  at: number;
  size: number;
}

function walk(
  bytes: Uint8Array,
  start = 0,
  end = bytes.length,
): { opts: Visited[]; c: TcpOptionCursor } {
  const c = new TcpOptionCursor().reset(bytes, start, end);
  const opts: Visited[] = [];
  while (c.next()) opts.push({ kind: c.kind, at: c.at, size: c.size });
  return { opts, c };
}

test('cursor: NOP advances one byte, EOL stops without marking malformed', () => {
  const b = Uint8Array.of(1, 1, 2, 4, 0x05, 0xb4, 0, 3, 3, 7);
  const { opts, c } = walk(b);
  assert.deepEqual(opts, [
    { kind: TCPOPT_NOP, at: 0, size: 1 },
    { kind: TCPOPT_NOP, at: 1, size: 1 },
    { kind: TCPOPT_MSS, at: 2, size: 4 },
  ]);
  assert.equal(c.malformed, false);
  // The window scale after EOL is never seen.
  assert.equal(c.next(), false);
});

test('cursor: a length below 2 stops and marks malformed (no infinite loop on 0)', () => {
  for (const len of [0, 1]) {
    const { opts, c } = walk(Uint8Array.of(1, 8, len, 2, 4, 0x05, 0xb4));
    assert.deepEqual(
      opts.map((o) => o.kind),
      [TCPOPT_NOP],
      `len ${len}`,
    );
    assert.equal(c.malformed, true);
  }
});

test('cursor: an option running past the end stops and marks malformed', () => {
  const { opts, c } = walk(Uint8Array.of(4, 2, 8, 10, 1, 2, 3, 4));
  assert.deepEqual(opts, [{ kind: TCPOPT_SACK_PERM, at: 0, size: 2 }]);
  assert.equal(c.malformed, true);
  // A lone kind byte at the very end has no length byte: also malformed.
  const lone = walk(Uint8Array.of(1, 1, 1, 2));
  assert.equal(lone.opts.length, 3);
  assert.equal(lone.c.malformed, true);
  // A lone NOP at the end is fine.
  assert.equal(walk(Uint8Array.of(4, 2, 1)).c.malformed, false);
});

test('cursor: honours start/end inside a larger buffer', () => {
  const b = Uint8Array.of(0xff, 0xff, 1, 2, 4, 0x05, 0xb4, 8, 10);
  const { opts, c } = walk(b, 2, 7);
  assert.deepEqual(opts, [
    { kind: TCPOPT_NOP, at: 2, size: 1 },
    { kind: TCPOPT_MSS, at: 3, size: 4 },
  ]);
  assert.equal(c.malformed, false);
  // Reset clears the malformed flag from a previous walk.
  c.reset(Uint8Array.of(2, 1), 0, 2);
  assert.equal(c.next(), false);
  assert.equal(c.malformed, true);
  c.reset(Uint8Array.of(1), 0, 1);
  assert.equal(c.malformed, false);
});

test('summary: fields of a typical SYN', () => {
  const b = encodeOptions([
    opt.mss(1460),
    opt.sackPermitted(),
    opt.timestamp(0x11223344, 0),
    opt.nop(),
    opt.wscale(7),
  ]);
  const s = new TcpOptionSummary().parse(b, 0, b.length);
  assert.equal(s.mss, 1460);
  assert.equal(s.mssAt, 0);
  assert.equal(s.sackPermitted, true);
  assert.equal(s.hasTimestamp, true);
  assert.equal(s.timestampAt, 6);
  // Values are read from the option in place rather than copied into the summary.
  assert.equal(get32(b, s.timestampAt + 2), 0x11223344);
  assert.equal(get32(b, s.timestampAt + 6), 0);
  assert.equal(s.nopCount, 1);
  assert.equal(s.wscale, 7);
  assert.equal(s.sackAt, -1);
  assert.equal(s.toaAt, -1);
  assert.equal(s.toaCount, 0);
  assert.equal(s.unknownCount, 0);
  assert.equal(s.malformed, false);
});

test('summary: SACK blocks, TOA, unknown kinds, wrong-size known kinds', () => {
  const toa = { kind: TCPOPT_TOA, data: Uint8Array.of(0x9c, 0x40, 192, 0, 2, 10) };
  const b = encodeOptions([
    opt.nop(),
    opt.nop(),
    opt.sack([
      [100, 200],
      [300, 400],
    ]),
    toa,
    { kind: 30, data: Uint8Array.of(1, 2) },
    // MSS with a 3-byte length is skipped like the kernel does, not read.
    { kind: TCPOPT_MSS, data: Uint8Array.of(9) },
  ]);
  const s = new TcpOptionSummary().parse(b, 0, b.length);
  assert.equal(s.nopCount, 2);
  assert.equal(s.sackAt, 2);
  assert.equal(s.sackBlocks, 2);
  assert.equal(s.toaAt, 20);
  assert.equal(s.toaCount, 1);
  assert.equal(s.unknownCount, 1);
  assert.equal(s.mss, -1);
  assert.equal(s.malformed, false);

  // The same object, reused, forgets the previous segment.
  const m = Uint8Array.of(2, 4, 0x05, 0xb4, 8, 1);
  s.parse(m, 0, m.length);
  assert.equal(s.mss, 1460);
  assert.equal(s.sackAt, -1);
  assert.equal(s.sackBlocks, 0);
  assert.equal(s.toaAt, -1);
  assert.equal(s.toaCount, 0);
  assert.equal(s.nopCount, 0);
  assert.equal(s.unknownCount, 0);
  assert.equal(s.malformed, true);
});

test('decode/encode round trip keeps unknown kinds verbatim', () => {
  const list: TcpOption[] = [
    opt.mss(536),
    { kind: 99, data: Uint8Array.of(0xde, 0xad, 0xbe, 0xef) },
    opt.nop(),
    { kind: 200, data: new Uint8Array(0) },
    { kind: TCPOPT_TOA, data: Uint8Array.of(1, 2) }, // 254/4: not TOA-shaped, still kept
  ];
  const bytes = encodeOptions(list);
  assert.equal(bytes.length % 4, 0);
  assert.deepEqual(
    Array.from(bytes),
    [2, 4, 2, 0x18, 99, 6, 0xde, 0xad, 0xbe, 0xef, 1, 200, 2, 254, 4, 1, 2, 0, 0, 0],
  );
  assert.deepEqual(decodeOptions(bytes), list);
});

test('encodeOptions pads with EOL and refuses more than 40 bytes', () => {
  assert.deepEqual(Array.from(encodeOptions([opt.wscale(2)])), [3, 3, 2, 0]);
  assert.equal(encodeOptions([]).length, 0);
  assert.throws(
    () =>
      encodeOptions([
        opt.timestamp(1, 2),
        opt.timestamp(3, 4),
        opt.timestamp(5, 6),
        opt.timestamp(7, 8),
        opt.mss(1),
      ]),
    RangeError,
  );
  assert.equal(
    encodeOptions([
      opt.timestamp(1, 2),
      opt.timestamp(3, 4),
      opt.timestamp(5, 6),
      opt.timestamp(7, 8),
    ]).length,
    40,
  );
});

// ---- property tests -------------------------------------------------------

const KNOWN_KINDS = new Set([
  TCPOPT_EOL,
  TCPOPT_NOP,
  TCPOPT_MSS,
  TCPOPT_WINDOW,
  TCPOPT_SACK_PERM,
  TCPOPT_SACK,
  TCPOPT_TIMESTAMP,
  TCPOPT_TOA,
  TCPOPT_TOA_ALI_V6,
]);

const u32 = fc.nat({ max: 0xffffffff });
const bytesOf = (n: number): fc.Arbitrary<Uint8Array> =>
  fc.uint8Array({ minLength: n, maxLength: n });

const optionArb: fc.Arbitrary<TcpOption> = fc.oneof(
  fc.constant(null).map(() => opt.nop()),
  fc.integer({ min: 0, max: 0xffff }).map((m) => opt.mss(m)),
  fc.integer({ min: 0, max: 14 }).map((s) => opt.wscale(s)),
  fc.constant(null).map(() => opt.sackPermitted()),
  fc.array(fc.tuple(u32, u32), { minLength: 1, maxLength: 4 }).map((blocks) => opt.sack(blocks)),
  fc.tuple(u32, u32).map(([v, e]) => opt.timestamp(v, e)),
  bytesOf(6).map((data) => ({ kind: TCPOPT_TOA, data })),
  bytesOf(18).map((data) => ({ kind: TCPOPT_TOA, data })),
  bytesOf(18).map((data) => ({ kind: TCPOPT_TOA_ALI_V6, data })),
  // Unknown kinds, including 253/254 at lengths that are not TOA-shaped.
  fc
    .tuple(
      fc.integer({ min: 2, max: 255 }).filter((k) => !KNOWN_KINDS.has(k)),
      fc.uint8Array({ maxLength: 10 }),
    )
    .map(([kind, data]) => ({ kind, data })),
  fc
    .tuple(
      fc.constantFrom(TCPOPT_TOA, TCPOPT_TOA_ALI_V6),
      fc.uint8Array({ maxLength: 12 }).filter((d) => d.length !== 6 && d.length !== 18),
    )
    .map(([kind, data]) => ({ kind, data })),
);

const encodedSize = (o: TcpOption): number => (o.kind === TCPOPT_NOP ? 1 : 2 + o.data.length);

/** Random option lists that fit the 40-byte option space (longest prefix that fits). */
const optionListArb = fc.array(optionArb, { maxLength: 12 }).map((list) => {
  const out: TcpOption[] = [];
  let used = 0;
  for (const o of list) {
    if (used + encodedSize(o) > 40) break;
    out.push(o);
    used += encodedSize(o);
  }
  return out;
});

function offsetsOf(list: readonly TcpOption[]): number[] {
  const at: number[] = [];
  let p = 0;
  for (const o of list) {
    at.push(p);
    p += encodedSize(o);
  }
  return at;
}

test('property: encode then decode returns the same option list', () => {
  fc.assert(
    fc.property(optionListArb, (list) => {
      const bytes = encodeOptions(list);
      assert.ok(bytes.length <= 40 && bytes.length % 4 === 0);
      assert.deepEqual(decodeOptions(bytes), list);
      // Re-encoding the decoded list is byte-identical.
      assert.deepEqual(encodeOptions(decodeOptions(bytes)), bytes);
    }),
    { numRuns: 1000 },
  );
});

test('property: summary agrees with the option list it was built from', () => {
  fc.assert(
    fc.property(optionListArb, (list) => {
      const bytes = encodeOptions(list);
      const s = new TcpOptionSummary().parse(bytes, 0, bytes.length);
      const at = offsetsOf(list);
      const isToa = (o: TcpOption): boolean => isToaOption(o.kind, 2 + o.data.length);
      const firstToa = list.findIndex(isToa);
      assert.equal(s.malformed, false);
      assert.equal(s.nopCount, list.filter((o) => o.kind === TCPOPT_NOP).length);
      assert.equal(s.toaCount, list.filter(isToa).length);
      assert.equal(s.toaAt, firstToa < 0 ? -1 : at[firstToa]);
      assert.equal(
        s.unknownCount,
        list.filter(
          (o) => !KNOWN_KINDS.has(o.kind) || ((o.kind === 253 || o.kind === 254) && !isToa(o)),
        ).length,
      );
      const lastMss = list.findLastIndex((o) => o.kind === TCPOPT_MSS);
      assert.equal(s.mss, lastMss < 0 ? -1 : get16(list[lastMss]!.data, 0));
      const lastSack = list.findLastIndex((o) => o.kind === TCPOPT_SACK);
      assert.equal(s.sackBlocks, lastSack < 0 ? 0 : list[lastSack]!.data.length / 8);
      const lastTs = list.findLastIndex((o) => o.kind === TCPOPT_TIMESTAMP);
      assert.equal(s.hasTimestamp, lastTs >= 0);
      assert.equal(s.timestampAt, lastTs < 0 ? -1 : offsetsOf(list)[lastTs]);
      assert.equal(
        s.sackPermitted,
        list.some((o) => o.kind === TCPOPT_SACK_PERM),
      );
    }),
    { numRuns: 1000 },
  );
});

const kindsArb: fc.Arbitrary<ToaKinds> = fc.record({
  v4: fc.boolean(),
  v6Kind254: fc.boolean(),
  v6Kind253: fc.boolean(),
});

function accepted(o: TcpOption, kinds: ToaKinds): boolean {
  const size = 2 + o.data.length;
  if (o.kind === TCPOPT_TOA && size === 8) return kinds.v4;
  if (o.kind === TCPOPT_TOA && size === 20) return kinds.v6Kind254;
  if (o.kind === TCPOPT_TOA_ALI_V6 && size === 20) return kinds.v6Kind253;
  return false;
}

test('property: findToa returns the first TOA-shaped option of an accepted kind', () => {
  const out = new ToaResult();
  fc.assert(
    fc.property(optionListArb, kindsArb, fc.nat(8), (list, kinds, lead) => {
      // Place the options at an offset, as they sit inside a real TCP header.
      const enc = encodeOptions(list);
      const b = new Uint8Array(lead + enc.length + 4).fill(0xfe);
      b.set(enc, lead);
      const found = findToa(b, lead, lead + enc.length, out, kinds);
      const i = list.findIndex((o) => accepted(o, kinds));
      assert.equal(found, i >= 0);
      if (i < 0) {
        assert.equal(out.family, 0);
        assert.equal(out.at, -1);
        return;
      }
      const o = list[i]!;
      assert.equal(out.at, lead + offsetsOf(list)[i]!);
      assert.equal(out.kind, o.kind);
      assert.equal(out.port, get16(o.data, 0));
      if (o.data.length === 6) {
        assert.equal(out.family, 4);
        assert.equal(out.v4, get32(o.data, 2));
      } else {
        assert.equal(out.family, 6);
        assert.deepEqual(out.v6, o.data.subarray(2, 18));
      }
    }),
    { numRuns: 1000 },
  );
  // With every kind accepted, the first TOA-shaped option wins.
  fc.assert(
    fc.property(optionListArb, (list) => {
      const enc = encodeOptions(list);
      const i = list.findIndex((o) => isToaOption(o.kind, 2 + o.data.length));
      assert.equal(findToa(enc, 0, enc.length, out, ALL_TOA_KINDS), i >= 0);
      if (i >= 0) assert.equal(out.at, offsetsOf(list)[i]);
    }),
    { numRuns: 300 },
  );
});

/** Wraps a buffer so every indexed read is recorded; methods still work on the real array. */
function recordingReads(buf: Uint8Array, reads: number[]): Uint8Array {
  return new Proxy(buf, {
    get(target, prop) {
      if (typeof prop === 'string' && /^\d+$/.test(prop)) reads.push(Number(prop));
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function'
        ? (value as (...a: unknown[]) => unknown).bind(target)
        : value;
    },
  });
}

test('property: on garbage the cursor never throws, always ends, never reads outside [start, end)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 48 }), fc.nat(6), fc.nat(6), (garbage, lead, tail) => {
      const raw = new Uint8Array(lead + garbage.length + tail).fill(0x02);
      raw.set(garbage, lead);
      const start = lead;
      const end = lead + garbage.length;
      const reads: number[] = [];
      const b = recordingReads(raw, reads);

      const c = new TcpOptionCursor().reset(b, start, end);
      let prevEnd = start;
      let steps = 0;
      while (c.next()) {
        steps++;
        assert.ok(steps <= garbage.length, 'cursor must make progress');
        assert.equal(c.at, prevEnd, 'options are contiguous');
        assert.ok(c.size >= 1 && c.at + c.size <= end);
        prevEnd = c.at + c.size;
      }
      assert.ok(c.pos <= end);

      new TcpOptionSummary().parse(b, start, end);
      findToa(b, start, end, new ToaResult());
      const decoded = decodeOptions(b, start, end);
      assert.equal(decoded.length, steps);
      for (const r of reads)
        assert.ok(r >= start && r < end, `read at ${r} outside [${start}, ${end})`);
    }),
    { numRuns: 3000 },
  );
});
