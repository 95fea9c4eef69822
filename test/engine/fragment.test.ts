import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FragmentError, Fragmenter } from '../../src/engine/fragment.js';
import { PacketPool, type Packet } from '../../src/engine/packet.js';
import { ReasmCounter } from '../../src/engine/reassembly-counters.js';
import { Reassembler } from '../../src/engine/reassembly.js';
import { get16, get32, set16 } from '../../src/wire/bytes.js';
import { finishChecksum, sumWords } from '../../src/wire/checksum.js';
import {
  IPV6_NEXT_DSTOPTS,
  IPV6_NEXT_FRAGMENT,
  IPV6_NEXT_HOPOPTS,
  IPV6_NEXT_ROUTING,
} from '../../src/wire/ipv6.js';
import {
  datagram4,
  datagram6,
  dropped,
  hex,
  optionsHeader,
  pushAll,
  shuffle,
  split4,
} from '../support/fragments.js';
import { rng } from '../support/rng.js';
import { probeScapy, scapySkip } from '../support/scapy.js';
import { scapyFragmentJobs, type ScapyFragmentJob } from '../support/scapy-fragments.js';

const BUFFER = 16384;

function fragmenter(): { f: Fragmenter; pool: PacketPool } {
  const pool = new PacketPool(16, BUFFER);
  return { f: new Fragmenter(pool), pool };
}

/** The pieces of the last call, copied out; the packets go back to the pool. */
function take(f: Fragmenter, pool: PacketPool): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < f.piecesCount; i++) {
    const p: Packet = f.pieces[i]!;
    out.push(p.view().slice());
    pool.give(p);
  }
  return out;
}

function headerSumOk(b: Uint8Array): boolean {
  return finishChecksum(sumWords(b, 0, (b[0]! & 0x0f) * 4, 0)) === 0;
}

/** Checks IPv4 pieces against the datagram they came from; returns their data joined. */
function checkPieces4(
  pieces: Uint8Array[],
  mtu: number,
  baseOffset = 0,
  lastMore = false,
): Uint8Array {
  const chunks: Uint8Array[] = [];
  let expect = baseOffset;
  pieces.forEach((p, i) => {
    const ihl = (p[0]! & 0x0f) * 4;
    const last = i === pieces.length - 1;
    assert.ok(p.length <= mtu, `piece ${i} is ${p.length} > ${mtu}`);
    assert.equal(get16(p, 2), p.length);
    assert.ok(headerSumOk(p), `piece ${i} checksum`);
    const word = get16(p, 6);
    assert.equal((word & 0x1fff) * 8, expect, `piece ${i} offset`);
    assert.equal((word & 0x2000) !== 0, last ? lastMore : true, `piece ${i} MF`);
    if (!last) assert.equal((p.length - ihl) % 8, 0);
    chunks.push(p.subarray(ihl));
    expect += p.length - ihl;
  });
  return Buffer.concat(chunks);
}

describe('IPv4 fragmentation', () => {
  test('pieces fit the MTU, offsets in 8-byte units, MF on all but the last, checksums right', () => {
    const { f, pool } = fragmenter();
    for (const mtu of [68, 576, 1280, 1500]) {
      const d = datagram4({ payload: 5000 });
      const n = f.fragmentV4(d, 0, d.length, mtu);
      assert.ok(n > 1);
      const pieces = take(f, pool);
      assert.equal(pieces.length, n);
      assert.equal(hex(checkPieces4(pieces, mtu)), hex(d.subarray(20)));
      // The data per piece is as large as the MTU allows.
      assert.equal(pieces[0]!.length, 20 + ((mtu - 20) & ~7));
      for (const p of pieces) assert.equal(get16(p, 4), 0x1234);
    }
  });

  test('a new identification on every piece when asked', () => {
    const { f, pool } = fragmenter();
    const d = datagram4({ payload: 3000 });
    f.fragmentV4(d, 0, d.length, 1500, 0xbeef);
    for (const p of take(f, pool)) {
      assert.equal(get16(p, 4), 0xbeef);
      assert.ok(headerSumOk(p));
    }
  });

  test('options: the first piece keeps them all, the others only those with the copy flag (RFC 791)', () => {
    // Security-like (0x82, copied), record route (0x07, not), NOP, LSRR (0x83, copied), timestamp (0x44, not).
    const opts = Uint8Array.from([
      0x82, 4, 0xaa, 0xbb, 0x07, 7, 4, 0, 0, 0, 0, 0x01, 0x83, 7, 4, 10, 0, 0, 1, 0x44, 8, 5, 0, 0,
      0, 0, 0, 0,
    ]);
    const d = datagram4({ payload: 3000, options: opts });
    const { f, pool } = fragmenter();
    f.fragmentV4(d, 0, d.length, 1000);
    const pieces = take(f, pool);
    assert.equal(
      hex(pieces[0]!.subarray(0, 48).slice().fill(0, 2, 12)),
      hex(d.subarray(0, 48).slice().fill(0, 2, 12)),
    );
    for (const p of pieces.slice(1)) {
      assert.equal(p[0], 0x40 | (32 >>> 2));
      assert.equal(hex(p.subarray(20, 32)), '8204aabb8307040a00000100');
      assert.equal(hex(p.subarray(0, 2)), hex(d.subarray(0, 2)).replace(/^4c/, '48'));
    }
    assert.equal(hex(checkPieces4(pieces, 1000)), hex(d.subarray(48)));
    // Reassembled from the first piece's header: the datagram as it was.
    assert.deepEqual(pushAll(new Reassembler({ family: 4 }), pieces).map(hex), [hex(d)]);
  });

  test('an option list that lies ends what later pieces copy', () => {
    const opts = Uint8Array.from([0x83, 3, 0, 0x83, 40, 0, 0, 0]);
    const d = datagram4({ payload: 2000, options: opts });
    const { f, pool } = fragmenter();
    f.fragmentV4(d, 0, d.length, 1000);
    const pieces = take(f, pool);
    assert.equal(hex(pieces[1]!.subarray(20, 24)), '83030000');
    assert.equal(hex(checkPieces4(pieces, 1000)), hex(d.subarray(28)));
  });

  test('DF refuses, a small MTU refuses, a datagram that fits is one copy, a malformed one is refused', () => {
    const { f, pool } = fragmenter();
    const df = datagram4({ payload: 3000, df: true });
    assert.equal(f.fragmentV4(df, 0, df.length, 1500), FragmentError.DontFragment);
    assert.equal(f.piecesCount, 0);
    const d = datagram4({ payload: 3000 });
    assert.equal(f.fragmentV4(d, 0, d.length, 67), FragmentError.MtuTooSmall);
    const withOpts = datagram4({ payload: 3000, options: new Uint8Array(40).fill(1) });
    assert.equal(f.fragmentV4(withOpts, 0, withOpts.length, 67), FragmentError.MtuTooSmall);
    // 8 bytes behind the 60-byte header, then 48 behind 20: the NOPs are not copied.
    assert.equal(f.fragmentV4(withOpts, 0, withOpts.length, 68), 1 + Math.ceil((3008 - 8) / 48));
    take(f, pool);
    assert.equal(f.fragmentV4(df, 0, df.length, 9000), 1);
    assert.deepEqual(take(f, pool).map(hex), [hex(df)]);
    const buf = new Uint8Array(d.length + 10);
    buf.set(d, 10);
    assert.equal(f.fragmentV4(buf, 10, d.length, d.length), 1);
    assert.deepEqual(take(f, pool).map(hex), [hex(d)]);
    assert.equal(f.fragmentV4(d, 0, d.length - 1, 1500), FragmentError.Malformed);
    assert.equal(f.fragmentV4(d, 0, 19, 1500), FragmentError.Malformed);
    const six = d.slice();
    six[0] = 0x60;
    assert.equal(f.fragmentV4(six, 0, six.length, 1500), FragmentError.Malformed);
  });

  test('a fragment split again keeps its offset, and MF on its last piece only if it had it', () => {
    const d = datagram4({ payload: 4400 });
    const [a, b, c] = split4(d, 1480) as [Uint8Array, Uint8Array, Uint8Array];
    const { f, pool } = fragmenter();
    f.fragmentV4(b, 0, b.length, 576);
    const bs = take(f, pool);
    checkPieces4(bs, 576, 1480, true);
    f.fragmentV4(c, 0, c.length, 576);
    const cs = take(f, pool);
    checkPieces4(cs, 576, 2960, false);
    assert.deepEqual(
      pushAll(new Reassembler({ family: 4 }), shuffle([a, ...bs, ...cs], rng(4))).map(hex),
      [hex(d)],
    );
  });

  test('the pieces come from the pool, at its headroom, and are not bigger than its buffers', () => {
    const pool = new PacketPool(4);
    const f = new Fragmenter(pool);
    const d = datagram4({ payload: 8000 });
    const n = f.fragmentV4(d, 0, d.length, 9000);
    assert.ok(n >= 5);
    for (let i = 0; i < n; i++) {
      const p = f.pieces[i]!;
      assert.equal(p.start, 128);
      assert.ok(p.end <= p.buf.length);
    }
    const pieces = take(f, pool);
    assert.equal(hex(checkPieces4(pieces, 2048 - 128)), hex(d.subarray(20)));
  });
});

describe('IPv6 fragmentation', () => {
  const routing = (): { type: number; body: Uint8Array } => {
    const body = new Uint8Array(24);
    body[1] = 2;
    return { type: IPV6_NEXT_ROUTING, body };
  };

  test('the Fragment header goes after hop-by-hop, routing and the destination options before it', () => {
    const d = datagram6({
      payload: 4000,
      ext: [
        optionsHeader(IPV6_NEXT_HOPOPTS),
        optionsHeader(IPV6_NEXT_DSTOPTS, 1),
        routing(),
        optionsHeader(IPV6_NEXT_DSTOPTS),
      ],
    });
    const unfrag = 40 + 8 + 16 + 24;
    const { f, pool } = fragmenter();
    const n = f.fragmentV6(d, 0, d.length, 1280, 0x01020304);
    const pieces = take(f, pool);
    assert.equal(pieces.length, n);
    let expect = 0;
    pieces.forEach((p, i) => {
      const last = i === pieces.length - 1;
      assert.ok(p.length <= 1280);
      assert.equal(get16(p, 4), p.length - 40);
      // The unfragmentable part as it was but for the byte naming the Fragment header.
      const mended = p.slice(0, unfrag);
      mended[4] = d[4]!;
      mended[5] = d[5]!;
      mended[40 + 8 + 16] = d[40 + 8 + 16]!;
      assert.equal(hex(mended), hex(d.subarray(0, unfrag)));
      assert.equal(p[40 + 8 + 16], IPV6_NEXT_FRAGMENT);
      assert.equal(p[unfrag], IPV6_NEXT_DSTOPTS);
      const word = get16(p, unfrag + 2);
      assert.equal(word & 0xfff8, expect);
      assert.equal(word & 1, last ? 0 : 1);
      assert.equal(get32(p, unfrag + 4), 0x01020304);
      if (!last) assert.equal((p.length - unfrag - 8) % 8, 0);
      expect += p.length - unfrag - 8;
    });
    assert.equal(expect, d.length - unfrag);
    assert.deepEqual(pushAll(new Reassembler({ family: 6 }), shuffle(pieces, rng(8))).map(hex), [
      hex(d),
    ]);
  });

  test('destination options with no routing header after them stay unfragmentable, as Linux draws it', () => {
    const d = datagram6({ payload: 3000, ext: [optionsHeader(IPV6_NEXT_DSTOPTS)] });
    const { f, pool } = fragmenter();
    f.fragmentV6(d, 0, d.length, 1500, 1);
    const pieces = take(f, pool);
    for (const p of pieces) assert.equal(p[40], IPV6_NEXT_FRAGMENT);
    assert.deepEqual(pushAll(new Reassembler({ family: 6 }), pieces).map(hex), [hex(d)]);
  });

  test('refused: below 1280, a header chain the first piece cannot hold, already fragmented, malformed; a copy when it fits', () => {
    const { f, pool } = fragmenter();
    const d = datagram6({ payload: 3000 });
    assert.equal(f.fragmentV6(d, 0, d.length, 1279, 1), FragmentError.MtuTooSmall);
    const longChain = datagram6({
      payload: 3000,
      ext: [routing(), optionsHeader(IPV6_NEXT_DSTOPTS, 200)],
    });
    assert.equal(f.fragmentV6(longChain, 0, longChain.length, 1280, 1), FragmentError.MtuTooSmall);
    assert.ok(f.fragmentV6(longChain, 0, longChain.length, 2000, 1) > 1);
    take(f, pool);
    const frag = datagram6({
      payload: 3000,
      ext: [{ type: IPV6_NEXT_FRAGMENT, body: new Uint8Array(8) }],
    });
    assert.equal(f.fragmentV6(frag, 0, frag.length, 1280, 1), FragmentError.Malformed);
    assert.equal(f.fragmentV6(d, 0, d.length - 1, 1280, 1), FragmentError.Malformed);
    assert.equal(f.fragmentV6(d, 0, d.length, d.length, 1), 1);
    assert.deepEqual(take(f, pool).map(hex), [hex(d)]);
  });
});

describe('round trip', () => {
  test('fragment then reassemble, many sizes and MTUs, pieces in any order', () => {
    const { f, pool } = fragmenter();
    const r4 = new Reassembler({ family: 4 });
    const r6 = new Reassembler({ family: 6 });
    const next = rng(2024);
    let trips = 0;
    let split = 0;
    for (const payload of [0, 1, 7, 8, 9, 100, 1000, 1472, 1473, 1500, 3000, 8000, 30000, 65507]) {
      for (const mtu of [68, 576, 1280, 1500, 9000]) {
        const d = datagram4({ payload, id: trips });
        const n = f.fragmentV4(d, 0, d.length, mtu);
        assert.ok(n >= 1, `${payload}/${mtu}`);
        const pieces = take(f, pool);
        if (n === 1) {
          assert.deepEqual(pieces.map(hex), [hex(d)]);
        } else {
          checkPieces4(pieces, mtu);
          split++;
          assert.deepEqual(
            pushAll(r4, shuffle(pieces, next)).map(hex),
            [hex(d)],
            `${payload}/${mtu}`,
          );
        }
        trips++;
      }
      for (const mtu of [1280, 1500, 9000]) {
        const d = datagram6({
          payload: Math.min(payload, 65527),
          ext: payload % 2 ? [optionsHeader(IPV6_NEXT_HOPOPTS)] : [],
        });
        const n = f.fragmentV6(d, 0, d.length, mtu, trips);
        const pieces = take(f, pool);
        for (const p of pieces) assert.ok(p.length <= mtu);
        assert.deepEqual(
          (n === 1 ? pieces : pushAll(r6, shuffle(pieces, next))).map(hex),
          [hex(d)],
          `v6 ${payload}/${mtu}`,
        );
        trips++;
      }
    }
    assert.equal(dropped(r4) + dropped(r6), 0);
    assert.equal(r4.queueCount + r6.queueCount, 0);
    assert.equal(r4.counters[ReasmCounter.Datagrams], split);
    assert.ok(split > 30, `${split} datagrams split`);
  });
});

describe('scapy, an independent implementation', () => {
  const probe = probeScapy();

  test(
    'our fragments are reassembled by scapy; scapy fragment()/fragment6() output by ours, byte for byte',
    // Under FULLNAT_REQUIRE_ALL=1 it runs without scapy, and fails.
    { skip: scapySkip(probe), timeout: 180_000 },
    () => {
      if (!probe.ok) assert.fail(probe.reason);
      const { f, pool } = fragmenter();
      const jobs: ScapyFragmentJob[] = [];
      const expected: string[] = [];
      const cases4: [number, number][] = [
        [3000, 1500],
        [1473, 1500],
        [8000, 576],
        [65507, 1500],
        [2000, 68],
      ];
      const cases6: [number, number][] = [
        [3000, 1280],
        [1500, 1280],
        [9000, 1500],
        [65000, 9000],
      ];
      const next = rng(77);
      cases4.forEach(([payload, mtu], i) => {
        const opts = i % 2 === 1 ? Uint8Array.from([0x83, 7, 4, 10, 0, 0, 1, 0]) : undefined;
        const d = datagram4({
          payload: Math.min(payload, 65507 - (opts?.length ?? 0)),
          id: 100 + i,
          options: opts,
          seed: i,
        });
        assert.ok(f.fragmentV4(d, 0, d.length, mtu) > 1);
        jobs.push({ op: 'defrag4', packets: shuffle(take(f, pool), next).map(hex) });
        expected.push(hex(d));
        // scapy's fragsize is the data per piece, a multiple of 8.
        jobs.push({ op: 'frag4', packet: hex(d), size: (mtu - 20 - (opts?.length ?? 0)) & ~7 });
        expected.push(hex(d));
      });
      cases6.forEach(([payload, mtu], i) => {
        const ext = i % 2 === 1 ? [optionsHeader(IPV6_NEXT_HOPOPTS)] : [];
        const d = datagram6({ payload, ext, seed: i });
        assert.ok(f.fragmentV6(d, 0, d.length, mtu, 0xf00d0000 + i) > 1);
        // scapy's defragment6 takes the pieces in order only.
        jobs.push({ op: 'defrag6', packets: take(f, pool).map(hex) });
        expected.push(hex(d));
        jobs.push({
          op: 'frag6',
          packet: hex(
            withFragmentHeader(
              d,
              ext.length === 0 ? 40 : 48,
              ext.length === 0 ? 6 : 40,
              0xf00d0000 + i,
            ),
          ),
          size: mtu,
        });
        expected.push(hex(d));
      });
      const answers = scapyFragmentJobs(jobs);
      assert.equal(answers.length, jobs.length);
      const r4 = new Reassembler({ family: 4 });
      const r6 = new Reassembler({ family: 6 });
      jobs.forEach((job, i) => {
        const answer = answers[i]!;
        if (job.op === 'defrag4' || job.op === 'defrag6') {
          assert.deepEqual(answer, [expected[i]], `scapy reassembled job ${i} (${job.op})`);
          return;
        }
        const pieces = answer.map((h) => Uint8Array.from(Buffer.from(h, 'hex')));
        assert.ok(pieces.length > 1, `scapy made ${pieces.length} pieces`);
        const r = job.op === 'frag4' ? r4 : r6;
        assert.deepEqual(
          pushAll(r, shuffle(pieces, next)).map(hex),
          [expected[i]],
          `ours from scapy job ${i} (${job.op})`,
        );
      });
      assert.equal(dropped(r4) + dropped(r6), 0);
    },
  );
});

/** `d` with an empty Fragment header (the given id) after `unfrag` bytes, named by the byte at `nhAt`: what fragment6 wants. */
function withFragmentHeader(d: Uint8Array, unfrag: number, nhAt: number, id: number): Uint8Array {
  const b = new Uint8Array(d.length + 8);
  b.set(d.subarray(0, unfrag), 0);
  b.set(d.subarray(unfrag), unfrag + 8);
  b[unfrag] = d[nhAt]!;
  b[nhAt] = IPV6_NEXT_FRAGMENT;
  b[unfrag + 4] = id >>> 24;
  b[unfrag + 5] = (id >>> 16) & 0xff;
  b[unfrag + 6] = (id >>> 8) & 0xff;
  b[unfrag + 7] = id & 0xff;
  set16(b, 4, b.length - 40);
  return b;
}
