import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  IPV4_FRAG_TIMEOUT_MS,
  IPV6_FRAG_TIMEOUT_MS,
  REASM_BLOCK,
  REASM_FRAGMENT_COST,
  REASM_HIGH_THRESH,
  REASM_LOW_THRESH,
  REASM_QUEUE_COST,
  Reassembler,
} from '../../src/engine/reassembly.js';
import { ReasmCounter, ReasmStatus } from '../../src/engine/reassembly-counters.js';
import { get16, set16, set32 } from '../../src/wire/bytes.js';
import { finishChecksum, sumWords } from '../../src/wire/checksum.js';
import { IPPROTO_TCP } from '../../src/wire/ipv4.js';
import {
  IPV6_NEXT_DSTOPTS,
  IPV6_NEXT_FRAGMENT,
  IPV6_NEXT_HOPOPTS,
  IPV6_NEXT_ROUTING,
} from '../../src/wire/ipv6.js';
import {
  OUT_OFF,
  assertCountedOnce,
  cut4,
  cut6,
  datagram4,
  datagram6,
  dropped,
  hex,
  optionsHeader,
  outBuffer,
  pushAll,
  shuffle,
  split4,
  split6,
  udpBody,
} from '../support/fragments.js';
import { rng } from '../support/rng.js';

const v4 = (opts: Partial<ConstructorParameters<typeof Reassembler>[0]> = {}): Reassembler =>
  new Reassembler({ family: 4, seed: 1, ...opts });
const v6 = (opts: Partial<ConstructorParameters<typeof Reassembler>[0]> = {}): Reassembler =>
  new Reassembler({ family: 6, seed: 1, ...opts });
const count = (r: Reassembler, c: ReasmCounter): number => r.counters[c]!;

describe('IPv4 reassembly', () => {
  test('in order: held until the last, then the datagram as it was sent', () => {
    const d = datagram4({ payload: 4000 });
    const frags = split4(d, 1480);
    assert.equal(frags.length, 3);
    const r = v4();
    const out = outBuffer();
    assert.equal(r.push(frags[0]!, 0, frags[0]!.length, 0, out, OUT_OFF), ReasmStatus.Held);
    assert.equal(r.push(frags[1]!, 0, frags[1]!.length, 0, out, OUT_OFF), ReasmStatus.Held);
    assert.equal(r.queueCount, 1);
    assert.equal(r.heldFragments, 2);
    assert.ok(r.bytesCharged > 2960);
    assert.equal(r.push(frags[2]!, 0, frags[2]!.length, 0, out, OUT_OFF), ReasmStatus.Complete);
    assert.equal(r.length, d.length);
    assert.equal(hex(out.subarray(OUT_OFF, OUT_OFF + r.length)), hex(d));
    assert.equal(r.maxFragmentSize, 1500);
    assert.equal(r.queueCount, 0);
    assert.equal(r.heldFragments, 0);
    assert.equal(r.bytesCharged, 0);
    assert.equal(count(r, ReasmCounter.Fragments), 3);
    assert.equal(count(r, ReasmCounter.Datagrams), 1);
    assert.equal(count(r, ReasmCounter.FragmentsReassembled), 3);
    assert.equal(dropped(r), 0);
  });

  test('reverse order and random orders give the same bytes', () => {
    const next = rng(0x5eed);
    for (const [payload, size] of [
      [3000, 1480],
      [9000, 1480],
      [65507, 1480],
      [1000, 8],
      [1472, 1472],
      [20000, 552],
    ] as const) {
      const d = datagram4({ payload, id: payload & 0xffff });
      const frags = split4(d, size);
      const r = v4();
      assert.deepEqual(
        pushAll(r, frags.slice().reverse()).map(hex),
        [hex(d)],
        `reverse ${payload}/${size}`,
      );
      for (let k = 0; k < 5; k++) {
        assert.deepEqual(
          pushAll(r, shuffle(frags, next)).map(hex),
          [hex(d)],
          `random ${payload}/${size}`,
        );
      }
      assert.equal(r.queueCount, 0);
      assert.equal(dropped(r), 0);
    }
  });

  test('interleaved datagrams, keyed by source, destination, id and protocol', () => {
    const a = datagram4({ payload: 3000, id: 7 });
    const b = datagram4({ payload: 3000, id: 7, src: 0x0a000001, seed: 9 });
    const c = datagram4({ payload: 3000, id: 8, seed: 10 });
    const e = datagram4({ body: udpBody(3000, 11), id: 7, protocol: 200 });
    const all = [a, b, c, e].map((d) => split4(d, 1480));
    const mixed: Uint8Array[] = [];
    for (let i = 0; i < 3; i++) for (const f of all) mixed.push(f[i]!);
    const r = v4();
    const done = pushAll(r, mixed);
    assert.deepEqual(done.map(hex).sort(), [a, b, c, e].map(hex).sort());
    assert.equal(dropped(r), 0);
  });

  test('an identical fragment again is dropped alone, the datagram still completes', () => {
    const d = datagram4({ payload: 4000 });
    const [f0, f1, f2] = split4(d, 1480) as [Uint8Array, Uint8Array, Uint8Array];
    const r = v4();
    const done = pushAll(r, [f1, f0, f1, f0, f2]);
    assert.deepEqual(done.map(hex), [hex(d)]);
    assert.equal(count(r, ReasmCounter.Duplicate), 2);
    assert.equal(count(r, ReasmCounter.Overlap), 0);
    assert.equal(count(r, ReasmCounter.QueuesFailed), 0);
  });

  test("Linux's runs: inside one run is a duplicate, across two is an overlap", () => {
    const d = datagram4({ payload: 4000 });
    // [0,800) then [800,1600) in order: one run; [400,1200) lies inside it.
    const r = v4();
    pushAll(r, [cut4(d, 0, 800, true), cut4(d, 800, 800, true), cut4(d, 400, 800, true)]);
    assert.equal(count(r, ReasmCounter.Duplicate), 1);
    assert.equal(r.heldFragments, 2);
    // [800,1600) then [0,800): two runs (the second was not appended at the tail).
    const s = v4();
    pushAll(s, [cut4(d, 800, 800, true), cut4(d, 0, 800, true), cut4(d, 400, 800, true)]);
    assert.equal(count(s, ReasmCounter.Overlap), 3);
    assert.equal(s.queueCount, 0);
  });

  test('overlaps drop the whole datagram: a partial one past the tail, one in the middle, one covering a gap', () => {
    const d = datagram4({ payload: 4000 });
    const cases: Uint8Array[][] = [
      [cut4(d, 0, 1480, true), cut4(d, 1472, 1480, true)],
      [cut4(d, 0, 800, true), cut4(d, 2400, 800, true), cut4(d, 1600, 808, true)],
      [cut4(d, 0, 800, true), cut4(d, 1600, 800, true), cut4(d, 792, 816, true)],
      [cut4(d, 1600, 800, true), cut4(d, 0, 1608, true)],
    ];
    for (const frags of cases) {
      const r = v4();
      pushAll(r, frags);
      assert.equal(count(r, ReasmCounter.Overlap), frags.length, `${frags.length} fragments`);
      assert.equal(count(r, ReasmCounter.QueuesFailed), 1);
      assert.equal(r.queueCount, 0);
      assert.equal(r.bytesCharged, 0);
      // The rest of the datagram no longer completes it: a new queue starts.
      const rest = split4(d, 1480);
      assert.equal(pushAll(r, rest.slice(1)).length, 0);
    }
  });

  test('a queue lives ipfrag_time from its first fragment, never extended', () => {
    const d = datagram4({ payload: 4000 });
    const [f0, f1, f2] = split4(d, 1480) as [Uint8Array, Uint8Array, Uint8Array];
    const r = v4();
    assert.equal(r.timeoutMs, 30_000);
    pushAll(r, [f0], 1000);
    pushAll(r, [f1], 1000 + IPV4_FRAG_TIMEOUT_MS - 1);
    assert.deepEqual(pushAll(r, [f2], 1000 + IPV4_FRAG_TIMEOUT_MS).map(hex), []);
    assert.equal(count(r, ReasmCounter.Timeout), 2);
    assert.equal(r.heldFragments, 1);
    const s = v4();
    pushAll(s, [f0, f1], 0);
    assert.deepEqual(pushAll(s, [f2], IPV4_FRAG_TIMEOUT_MS - 1).map(hex), [hex(d)]);
    // `expire` alone, from a timer.
    pushAll(s, [f0], 5);
    s.expire(5 + IPV4_FRAG_TIMEOUT_MS);
    assert.equal(s.queueCount, 0);
    assert.equal(count(s, ReasmCounter.Timeout), 1);
    assertCountedOnce(s);
  });

  test('tiny first fragments (RFC 1858): no whole transport header, or TCP at offset 8', () => {
    const tcp = datagram4({ body: new Uint8Array(200).fill(3), protocol: IPPROTO_TCP });
    const r = v4();
    pushAll(r, [cut4(tcp, 0, 16, true)]);
    assert.equal(count(r, ReasmCounter.TinyFirst), 1);
    pushAll(r, [cut4(tcp, 8, 16, true)]);
    assert.equal(count(r, ReasmCounter.TinyFirst), 2);
    assert.equal(r.queueCount, 0);
    // 24 bytes hold the TCP header; UDP needs 8.
    pushAll(r, [cut4(tcp, 0, 24, true)]);
    const udp = datagram4({ payload: 100 });
    pushAll(r, [cut4(udp, 0, 8, true)]);
    assert.equal(count(r, ReasmCounter.TinyFirst), 2);
    assert.equal(r.queueCount, 2);
  });

  test('lying lengths and bad headers are malformed', () => {
    const d = datagram4({ payload: 4000 });
    const f = cut4(d, 0, 1480, true);
    const r = v4();
    const out = outBuffer();
    const bad: Uint8Array[] = [];
    bad.push(f.subarray(0, 19));
    const longer = f.slice();
    set16(longer, 2, f.length + 1);
    bad.push(longer);
    const ihl4 = f.slice();
    ihl4[0] = 0x44;
    bad.push(ihl4);
    const shortTotal = f.slice();
    set16(shortTotal, 2, 16);
    bad.push(shortTotal);
    const sum = f.slice();
    sum[10]! ^= 1;
    bad.push(sum);
    const v6ish = f.slice();
    v6ish[0] = 0x65;
    bad.push(v6ish);
    // Not a fragment at all.
    bad.push(d);
    for (const b of bad) {
      assert.equal(r.push(b, 0, b.length, 0, out, OUT_OFF), ReasmStatus.Dropped);
      assert.equal(r.dropReason, ReasmCounter.Malformed);
    }
    assert.equal(count(r, ReasmCounter.Malformed), bad.length);
    assert.equal(r.queueCount, 0);
    assertCountedOnce(r);
  });

  test('bytes past the total length are ignored; the packet may sit at any offset', () => {
    const d = datagram4({ payload: 3000 });
    const r = v4();
    const out = outBuffer();
    let st = ReasmStatus.Held;
    for (const f of split4(d, 1480)) {
      const padded = new Uint8Array(f.length + 77).fill(0xee);
      padded.set(f, 33);
      st = r.push(padded, 33, f.length + 10, 0, out, 5);
    }
    assert.equal(st, ReasmStatus.Complete);
    assert.equal(hex(out.subarray(5, 5 + r.length)), hex(d));
  });

  test('inconsistent ends kill the queue: two last fragments, data past the end, a zero-length fragment', () => {
    const d = datagram4({ payload: 4000 });
    const cases: Uint8Array[][] = [
      [cut4(d, 0, 1480, true), cut4(d, 2960, 100, false), cut4(d, 2960, 108, false)],
      [cut4(d, 2960, 100, false), cut4(d, 3000, 800, true)],
      [cut4(d, 1480, 1480, true), cut4(d, 8, 1000, false)],
      [cut4(d, 0, 1480, true), cut4(d, 1480, 0, true)],
    ];
    for (const frags of cases) {
      const r = v4();
      pushAll(r, frags);
      assert.equal(count(r, ReasmCounter.Malformed), frags.length);
      assert.equal(r.queueCount, 0);
    }
  });

  test('a non-last fragment is cut to a multiple of 8, as Linux does', () => {
    const d = datagram4({ payload: 2000 });
    const r = v4();
    // 1485 bytes at 0 keep 1480; the rest from 1480 completes the datagram.
    const done = pushAll(r, [cut4(d, 0, 1485, true), cut4(d, 1480, d.length - 20 - 1480, false)]);
    assert.deepEqual(done.map(hex), [hex(d)]);
    // Less than 8 bytes of a non-last fragment is nothing: the queue goes.
    const s = v4();
    pushAll(s, [cut4(d, 8, 400, true), cut4(d, 408, 7, true)]);
    assert.equal(count(s, ReasmCounter.Malformed), 2);
    assert.equal(s.queueCount, 0);
  });

  test('past 65535 bytes the datagram is dropped', () => {
    const d = datagram4({ payload: 65507 });
    const r = v4();
    // Data ending past 65515: no header makes that fit.
    pushAll(r, [cut4(d, 0, 1480, true), cut4(d, 1480, 1480, true)]);
    const over = new Uint8Array(20 + 100);
    over.set(d.subarray(0, 20));
    set16(over, 2, over.length);
    set16(over, 6, 65480 >>> 3);
    set16(over, 10, 0);
    set16(over, 10, finishChecksum(sumWords(over, 0, 20, 0)));
    pushAll(r, [over]);
    assert.equal(count(r, ReasmCounter.TooBig), 3);
    // With 40 bytes of options the header of the first fragment takes it past 65535.
    const opts = new Uint8Array(40).fill(1);
    const big = datagram4({ payload: 65507 - 40, options: opts });
    const frags = split4(big, 1480);
    const last = frags.at(-1)!;
    const lastOff = (get16(last, 6) & 0x1fff) * 8;
    const tail = new Uint8Array(60 + (65535 - 20 - lastOff));
    tail.set(last.subarray(0, 60));
    set16(tail, 2, tail.length);
    set16(tail, 10, 0);
    set16(tail, 10, finishChecksum(sumWords(tail, 0, 60, 0)));
    const s = v4();
    pushAll(s, [...frags.slice(0, -1), tail]);
    assert.equal(count(s, ReasmCounter.TooBig), frags.length);
    assert.equal(count(s, ReasmCounter.Datagrams), 0);
  });

  test('the header rebuilt: options kept, MF and offset cleared, DF as the largest fragment had it', () => {
    const opts = Uint8Array.from([0x82, 4, 0xaa, 0xbb, 0x07, 7, 4, 0, 0, 0, 0, 0]);
    const d = datagram4({ payload: 3000, options: opts });
    const r = v4();
    assert.deepEqual(pushAll(r, split4(d, 1480)).map(hex), [hex(d)]);
    // All fragments with DF: the datagram keeps DF.
    const withDf = datagram4({ payload: 3000, df: true });
    const dfFrags = [0, 1480, 2960].map((o) =>
      cut4(withDf, o, Math.min(1480, 3008 - o), o + 1480 < 3008, 0x4000),
    );
    const [whole] = pushAll(r, dfFrags);
    assert.equal(get16(whole!, 6), 0x4000);
    assert.equal(hex(whole!), hex(withDf));
    // DF only on a smaller one: cleared.
    const plain = datagram4({ payload: 3000 });
    const mixed = [
      cut4(plain, 0, 1480, true),
      cut4(plain, 1480, 1480, true),
      cut4(plain, 2960, 48, false, 0x4000),
    ];
    const [again] = pushAll(r, mixed);
    assert.equal(get16(again!, 6), 0);
    assert.equal(finishChecksum(sumWords(again!, 0, 20, 0)), 0);
  });

  test('ECN: CE with ECT marks the datagram CE, Not-ECT with CE drops it', () => {
    const ect = datagram4({ payload: 3000, tos: 0x12 });
    const frags = split4(ect, 1480);
    const ce = frags[1]!.slice();
    ce[1] = 0x13;
    set16(ce, 10, 0);
    set16(ce, 10, finishChecksum(sumWords(ce, 0, 20, 0)));
    const r = v4();
    const [whole] = pushAll(r, [frags[0]!, ce, frags[2]!]);
    assert.equal(whole![1], 0x13);
    assert.equal(finishChecksum(sumWords(whole!, 0, 20, 0)), 0);
    const notEct = datagram4({ payload: 3000, tos: 0x10 });
    const nf = split4(notEct, 1480);
    const s = v4();
    // The CE fragment of the other datagram has the same key: it lands in this queue.
    const none = pushAll(s, [nf[0]!, ce, nf[2]!]);
    assert.equal(none.length, 0);
    assert.equal(count(s, ReasmCounter.Malformed), 3);
    assert.equal(count(s, ReasmCounter.QueuesFailed), 1);
  });

  test('a caller buffer too small for the datagram drops it, counted', () => {
    const d = datagram4({ payload: 3000 });
    const r = v4();
    const small = new Uint8Array(2048);
    let st = ReasmStatus.Held;
    for (const f of split4(d, 1480)) st = r.push(f, 0, f.length, 0, small, 128);
    assert.equal(st, ReasmStatus.Dropped);
    assert.equal(r.dropReason, ReasmCounter.NoRoom);
    assert.equal(count(r, ReasmCounter.NoRoom), 3);
    assert.equal(r.queueCount, 0);
    assertCountedOnce(r);
  });
});

describe('IPv6 reassembly', () => {
  test('in order, reverse, random: the Fragment header gone, the payload length mended', () => {
    const next = rng(66);
    for (const [payload, size] of [
      [3000, 1232],
      [65527, 1448],
      [500, 8],
      [1400, 1232],
    ] as const) {
      const d = datagram6({ payload });
      const frags = split6(d, size, 0xabcdef01);
      const r = v6();
      assert.deepEqual(pushAll(r, frags).map(hex), [hex(d)]);
      assert.deepEqual(pushAll(r, frags.slice().reverse()).map(hex), [hex(d)]);
      for (let k = 0; k < 4; k++)
        assert.deepEqual(pushAll(r, shuffle(frags, next)).map(hex), [hex(d)]);
      assert.equal(dropped(r), 0);
      assert.equal(r.maxFragmentSize, frags[0]!.length);
    }
  });

  test('the unfragmentable part is kept and the byte naming the Fragment header mended', () => {
    const routing = new Uint8Array(24);
    routing[1] = 2;
    const d = datagram6({
      payload: 3000,
      ext: [
        optionsHeader(IPV6_NEXT_HOPOPTS),
        optionsHeader(IPV6_NEXT_DSTOPTS, 1),
        { type: IPV6_NEXT_ROUTING, body: routing },
        optionsHeader(IPV6_NEXT_DSTOPTS),
      ],
    });
    // The Fragment header after the routing header: named by its first byte at 40 + 8 + 16.
    const unfrag = 40 + 8 + 16 + 24;
    const frags = split6(d, 1200, 5, unfrag, 40 + 8 + 16);
    assert.equal(frags[0]![40 + 8 + 16], IPV6_NEXT_FRAGMENT);
    const r = v6();
    assert.deepEqual(pushAll(r, shuffle(frags, rng(3))).map(hex), [hex(d)]);
  });

  test('keyed by source, destination and identification', () => {
    const a = datagram6({ payload: 3000 });
    const b = datagram6({
      payload: 3000,
      seed: 4,
      src: Uint8Array.from({ length: 16 }, (_, i) => i),
    });
    const fa = split6(a, 1232, 9);
    const fb = split6(b, 1232, 9);
    const fc = split6(datagram6({ payload: 3000, seed: 5 }), 1232, 10);
    const r = v6();
    const done = pushAll(r, [
      fa[0]!,
      fb[0]!,
      fc[0]!,
      fa[1]!,
      fb[1]!,
      fc[1]!,
      fa[2]!,
      fb[2]!,
      fc[2]!,
    ]);
    assert.equal(done.length, 3);
    assert.ok(done.map(hex).includes(hex(a)));
    assert.ok(done.map(hex).includes(hex(b)));
  });

  test('overlaps drop the whole datagram (RFC 5722); duplicates are dropped alone', () => {
    const d = datagram6({ payload: 3000 });
    const frags = split6(d, 1232, 1);
    const r = v6();
    assert.deepEqual(pushAll(r, [frags[0]!, frags[0]!, frags[2]!, frags[1]!]).map(hex), [hex(d)]);
    assert.equal(count(r, ReasmCounter.Duplicate), 1);
    pushAll(r, [frags[0]!, cut6(d, 1224, 1232, true, 1)]);
    assert.equal(count(r, ReasmCounter.Overlap), 2);
    assert.equal(r.queueCount, 0);
  });

  test('ip6frag_time is 60 s from the first fragment', () => {
    const d = datagram6({ payload: 3000 });
    const frags = split6(d, 1232, 2);
    const r = v6();
    assert.equal(r.timeoutMs, IPV6_FRAG_TIMEOUT_MS);
    pushAll(r, frags.slice(0, 2), 0);
    assert.deepEqual(pushAll(r, frags.slice(2), IPV6_FRAG_TIMEOUT_MS - 1).map(hex), [hex(d)]);
    pushAll(r, frags.slice(0, 2), 10);
    assert.equal(pushAll(r, frags.slice(2), 10 + IPV6_FRAG_TIMEOUT_MS).length, 0);
    assert.equal(count(r, ReasmCounter.Timeout), 2);
  });

  test('RFC 7112: a first fragment without the whole header chain and transport header is dropped', () => {
    const r = v6();
    // TCP with 8 bytes of its header in the first fragment.
    const tcp = datagram6({ body: new Uint8Array(100).fill(9), upper: IPPROTO_TCP });
    pushAll(r, [cut6(tcp, 0, 8, true, 1)]);
    // A destination options header of 24 bytes cut after 16.
    const chain = datagram6({ payload: 100, ext: [optionsHeader(IPV6_NEXT_DSTOPTS, 2)] });
    pushAll(r, [cut6(chain, 0, 16, true, 2)]);
    // The same with the options and 8 bytes of UDP: whole.
    pushAll(r, [cut6(chain, 0, 32, true, 3)]);
    assert.equal(count(r, ReasmCounter.TinyFirst), 2);
    assert.equal(r.queueCount, 1);
  });

  test('lying lengths, odd non-last lengths, too big, not a fragment', () => {
    const d = datagram6({ payload: 3000 });
    const f = cut6(d, 0, 1232, true, 4);
    const r = v6();
    const out = outBuffer();
    const expect = (b: Uint8Array, len: number, reason: ReasmCounter): void => {
      assert.equal(r.push(b, 0, len, 0, out, OUT_OFF), ReasmStatus.Dropped);
      assert.equal(r.dropReason, reason);
    };
    expect(f, f.length - 1, ReasmCounter.Malformed);
    expect(f, 39, ReasmCounter.Malformed);
    expect(d, d.length, ReasmCounter.Malformed);
    const jumbo = f.slice();
    set16(jumbo, 4, 0);
    expect(jumbo, jumbo.length, ReasmCounter.Malformed);
    expect(cut6(d, 8, 1230, true, 4), 40 + 8 + 1230, ReasmCounter.Malformed);
    const far = cut6(d, 0, 16, false, 4);
    set16(far, 42, 65528);
    expect(far, far.length, ReasmCounter.TooBig);
    assert.equal(r.queueCount, 0);
    // A valid one at a non-zero offset inside a bigger buffer.
    const buf = new Uint8Array(f.length + 20);
    buf.set(f, 20);
    assert.equal(r.push(buf, 20, f.length, 0, out, OUT_OFF), ReasmStatus.Held);
    assertCountedOnce(r);
  });

  test('an atomic fragment is a datagram of its own (RFC 6946), whatever queue its id has', () => {
    const d = datagram6({ payload: 300, ext: [optionsHeader(IPV6_NEXT_HOPOPTS)] });
    const r = v6();
    pushAll(r, [cut6(datagram6({ payload: 3000 }), 0, 1232, true, 8)]);
    const atomic = cut6(d, 0, d.length - 48, false, 8, 48, 40);
    assert.deepEqual(pushAll(r, [atomic]).map(hex), [hex(d)]);
    assert.equal(r.queueCount, 1);
    assert.equal(count(r, ReasmCounter.Datagrams), 1);
  });

  test('ECN from the traffic class, as for IPv4', () => {
    const d = datagram6({ payload: 3000, trafficClass: 0x02 });
    const frags = split6(d, 1232, 6);
    const ce = frags[2]!.slice();
    ce[1] = (ce[1]! & 0x0f) | 0x30;
    const r = v6();
    const [whole] = pushAll(r, [frags[0]!, frags[1]!, ce]);
    assert.equal((whole![1]! >>> 4) & 3, 3);
    const notEct = split6(datagram6({ payload: 3000 }), 1232, 7);
    pushAll(r, [notEct[0]!, notEct[1]!, withTrafficClass(notEct[2]!, 0x03)]);
    assert.equal(count(r, ReasmCounter.Malformed), 3);
  });
});

function withTrafficClass(f: Uint8Array, tc: number): Uint8Array {
  const b = f.slice();
  b[0] = 0x60 | (tc >>> 4);
  b[1] = ((tc & 0x0f) << 4) | (b[1]! & 0x0f);
  return b;
}

/** `first` from source `src` (checksum mended), pushed at time 0. */
function floodFragment(r: Reassembler, first: Uint8Array, src: number, out: Uint8Array): void {
  set32(first, 12, src);
  set16(first, 10, 0);
  set16(first, 10, finishChecksum(sumWords(first, 0, 20, 0)));
  r.push(first, 0, first.length, 0, out, OUT_OFF);
}

describe('memory bound', () => {
  test('a flood of incomplete queues stays under ipfrag_high_thresh, the oldest evicted, and real datagrams still pass', () => {
    const r = v4();
    assert.equal(r.highThresh, REASM_HIGH_THRESH);
    assert.equal(r.lowThresh, REASM_LOW_THRESH);
    const out = outBuffer();
    const start = performance.now();
    let maxCharged = 0;
    const FLOOD = 100_000;
    const d = datagram4({ payload: 3000 });
    const first = cut4(d, 0, 1480, true);
    for (let i = 0; i < FLOOD; i++) {
      // A first fragment from another source each time, never completed, all at one instant.
      floodFragment(r, first, 0x0b000000 + i, out);
      if (r.bytesCharged > maxCharged) maxCharged = r.bytesCharged;
    }
    const ms = performance.now() - start;
    assertCountedOnce(r);
    assert.ok(maxCharged <= r.highThresh, `charged ${maxCharged}`);
    assert.ok(count(r, ReasmCounter.Memory) > 0);
    assert.equal(count(r, ReasmCounter.Memory) + r.heldFragments, FLOOD);
    assert.equal(count(r, ReasmCounter.Timeout), 0);
    console.log(
      `flood of ${FLOOD} first fragments (1500 bytes each, distinct queues) in ${ms.toFixed(0)} ms: ` +
        `at most ${maxCharged} bytes charged (bound ${r.highThresh}), ${r.queueCount} queues held at the end, ` +
        `${count(r, ReasmCounter.Memory)} fragments dropped or evicted; ` +
        `preallocated footprint (arena and records, fixed) ${r.footprintBytes} bytes`,
    );
    // Once an eviction has made room, a real datagram completes in the middle of the flood.
    for (let i = 0; r.bytesCharged > r.lowThresh; i++) floodFragment(r, first, 0x0c000000 + i, out);
    const real = datagram4({ payload: 3000, id: 99 });
    assert.deepEqual(pushAll(r, split4(real, 1480)).map(hex), [hex(real)]);
    // A flood of tiny fragments: every one charged at least a block and a record.
    const tiny = v6({ highThresh: 256 * 1024 });
    const d6 = datagram6({ payload: 60000 });
    let maxTiny = 0;
    for (let i = 0; i < 20_000; i++) {
      const f = cut6(d6, 8 + (i % 7000) * 8, 8, true, i >>> 3);
      tiny.push(f, 0, f.length, i, out, OUT_OFF);
      if (tiny.bytesCharged > maxTiny) maxTiny = tiny.bytesCharged;
    }
    assertCountedOnce(tiny);
    assert.ok(maxTiny <= 256 * 1024);
    console.log(
      `tiny-fragment flood: at most ${maxTiny} bytes charged of ${tiny.highThresh}, footprint ${tiny.footprintBytes}`,
    );
  });

  test('a fragment that does not fit is dropped; eviction goes oldest first down to ipfrag_low_thresh', () => {
    // Room for three 1480-byte first fragments and their queues; eviction down to one.
    const cost =
      Math.ceil(1500 / REASM_BLOCK) * REASM_BLOCK + REASM_FRAGMENT_COST + REASM_QUEUE_COST;
    const r = v4({ highThresh: 3 * cost, lowThresh: cost });
    const ds = [1, 2, 3, 4].map((id) => datagram4({ payload: 3000, id }));
    const firsts = ds.map((d) => split4(d, 1480)[0]!);
    pushAll(r, firsts.slice(0, 3), 0);
    assert.equal(r.queueCount, 3);
    pushAll(r, [firsts[3]!], 1);
    assert.equal(r.queueCount, 1);
    assert.equal(count(r, ReasmCounter.Memory), 3);
    // The newest of the three stayed.
    assert.deepEqual(pushAll(r, split4(ds[2]!, 1480).slice(1), 2).map(hex), [hex(ds[2]!)]);
  });
});
