/**
 * Random fragment streams through a `Reassembler` of each family, from
 * fixed seeds, a bounded number of fragments and a time cap: datagrams cut
 * in random pieces and pushed in random order, interleaved with duplicates
 * and overlapping re-cuts of them (their bytes true, so whatever completes
 * must be the datagram), and hostile fragments of other keys (random
 * offsets, lengths and flags, lying lengths, flipped bits, truncation,
 * random bytes), the clock jumping past the timeouts now and then. After
 * every fragment: no throw, the memory bound holds, and every fragment is
 * counted exactly once (held, reassembled, or under one drop counter).
 * Every datagram that completes is well-formed, and one of the true
 * datagrams is byte for byte the datagram.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReasmCounter, ReasmStatus } from '../../src/engine/reassembly-counters.js';
import { Reassembler } from '../../src/engine/reassembly.js';
import { get16, set16, set32 } from '../../src/wire/bytes.js';
import { finishChecksum, sumWords } from '../../src/wire/checksum.js';
import { IPPROTO_TCP } from '../../src/wire/ipv4.js';
import { IPV6_NEXT_DSTOPTS } from '../../src/wire/ipv6.js';
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
  shuffle,
} from '../support/fragments.js';
import { rng } from '../support/rng.js';

const FRAGMENTS_PER_RUN = 25_000;
const TIME_CAP_MS = 8_000;
/** True datagrams use identifications below this; hostile ones never do. */
const TRUE_IDS = 500;

/** The true datagram of an identification: always the same bytes, so a reused id cannot mix two. */
function trueDatagram(family: 4 | 6, id: number): Uint8Array {
  const payload = [40, 1000, 1473, 3000, 9000, 20000, 65000][id % 7]!;
  if (family === 4) return datagram4({ payload, id, seed: id });
  const ext = id % 3 === 0 ? [optionsHeader(IPV6_NEXT_DSTOPTS, id % 5)] : [];
  return datagram6({ payload, ext, seed: id });
}

interface Stream {
  next: () => number;
  int: (n: number) => number;
}

/** A piece [offset, offset+len) of a true datagram: MF set unless it reaches the end, so its bytes never lie. */
function trueCut(family: 4 | 6, d: Uint8Array, id: number, s: Stream): Uint8Array {
  const data = family === 4 ? d.length - 20 : d.length - 40;
  const offset = s.int(Math.ceil(data / 8)) * 8;
  const len = 1 + s.int(Math.min(1500, data - offset));
  const end = offset + len;
  return family === 4 ? cut4(d, offset, len, end < data) : cut6(d, offset, len, end < data, id);
}

function trueFragments(family: 4 | 6, d: Uint8Array, id: number, s: Stream): Uint8Array[] {
  const data = family === 4 ? d.length - 20 : d.length - 40;
  const out: Uint8Array[] = [];
  for (let o = 0; o < data;) {
    const len = Math.min(data - o, 8 * (1 + s.int(200)));
    out.push(family === 4 ? cut4(d, o, len, o + len < data) : cut6(d, o, len, o + len < data, id));
    o += len;
  }
  return out;
}

function fixIpv4Checksum(b: Uint8Array): void {
  const ihl = (b[0]! & 0x0f) * 4;
  if (b.length < 20 || ihl < 20 || ihl > b.length) return;
  set16(b, 10, 0);
  set16(b, 10, finishChecksum(sumWords(b, 0, ihl, 0)));
}

/** A hostile fragment: a piece of a datagram under a hostile key, then mutated. */
function hostile(family: 4 | 6, s: Stream): Uint8Array {
  const id = family === 4 ? 0x8000 + s.int(64) : 0x80000000 + s.int(64);
  const tcp = s.int(4) === 0;
  const d =
    family === 4
      ? datagram4({ payload: 3000, id, protocol: tcp ? IPPROTO_TCP : undefined, seed: 3 })
      : datagram6({
          payload: 3000,
          seed: 3,
          ext: s.int(3) === 0 ? [optionsHeader(IPV6_NEXT_DSTOPTS, s.int(4))] : [],
        });
  const data = family === 4 ? d.length - 20 : d.length - 40;
  const offset = s.int(4) === 0 ? s.int(8192) * 8 : s.int(Math.ceil(data / 8)) * 8;
  const len = s.int(6) === 0 ? s.int(9) : 1 + s.int(1600);
  const more = s.int(3) !== 0;
  let b: Uint8Array;
  if (family === 4) {
    const src = new Uint8Array(Math.max(d.length, 20 + offset + len));
    src.set(d);
    b = cut4(src, offset, len, more);
    set16(b, 2, b.length);
    set16(b, 4, id);
    fixIpv4Checksum(b);
  } else {
    const src = new Uint8Array(Math.max(d.length, 40 + offset + len));
    src.set(d);
    b = cut6(src, offset & 0xfff8, len, more, id);
  }
  switch (s.int(10)) {
    case 0: // flipped bits in the headers
      for (let k = 1 + s.int(3); k > 0 && b.length > 0; k--) {
        b[s.int(Math.min(b.length, 60))]! ^= 1 << s.int(8);
      }
      // The key stays hostile: a flipped identification must not reach a true queue.
      if (family === 4 && b.length >= 6) set16(b, 4, id);
      if (family === 6 && b.length >= 48) set32(b, 44, id);
      if (family === 4 && s.int(4) !== 0) fixIpv4Checksum(b);
      break;
    case 1: // a lying length field
      if (b.length >= 6) set16(b, family === 4 ? 2 : 4, s.int(65536));
      if (family === 4) fixIpv4Checksum(b);
      break;
    case 2: // truncated
      b = b.subarray(0, s.int(b.length + 1));
      break;
    case 3: // random bytes with the version nibble right
      b = Uint8Array.from({ length: s.int(200) }, () => s.int(256));
      if (b.length > 0) b[0] = (family << 4) | (b[0]! & 0x0f);
      if (family === 4) fixIpv4Checksum(b);
      break;
    case 4: // IHL anything
      if (family === 4 && b.length > 0) {
        b[0] = 0x40 | s.int(16);
        fixIpv4Checksum(b);
      }
      break;
    default:
      break;
  }
  return b;
}

/** What a completed datagram must look like whatever went in. */
function checkDatagram(
  family: 4 | 6,
  out: Uint8Array,
  len: number,
  truth: Map<string, Uint8Array>,
): void {
  const d = out.subarray(OUT_OFF, OUT_OFF + len);
  if (family === 4) {
    assert.equal(d[0]! >>> 4, 4);
    const ihl = (d[0]! & 0x0f) * 4;
    assert.equal(get16(d, 2), len);
    assert.equal(get16(d, 6) & 0x3fff, 0, 'MF and offset cleared');
    assert.equal(finishChecksum(sumWords(d, 0, ihl, 0)), 0, 'header checksum');
    const id = get16(d, 4);
    if (id < TRUE_IDS) assert.equal(hex(d), hex(truth.get(`4:${id}`)!), `true datagram ${id}`);
  } else {
    assert.equal(d[0]! >>> 4, 6);
    assert.equal(get16(d, 4) + 40, len);
  }
}

function run(family: 4 | 6, seed: number, highThresh: number): void {
  const next = rng(seed);
  const s: Stream = { next, int: (n) => (n <= 0 ? 0 : Math.floor(next() * n)) };
  const r = new Reassembler({ family, highThresh, seed });
  const out = outBuffer();
  const truth = new Map<string, Uint8Array>();
  let pending: { id: number; frags: Uint8Array[] }[] = [];
  let now = 0;
  let pushed = 0;
  let completedTrue = 0;
  const started = performance.now();
  const push = (b: Uint8Array, trueId: number): void => {
    const st = r.push(b, 0, b.length, now, out, OUT_OFF);
    pushed++;
    assertCountedOnce(r);
    if (st === ReasmStatus.Complete) {
      checkDatagram(family, out, r.length, truth);
      if (family === 6 && trueId >= 0) {
        // An IPv6 datagram carries no id once whole: the true one pushed last is what completed, if any.
        const t = truth.get(`6:${trueId}`)!;
        const got = out.subarray(OUT_OFF, OUT_OFF + r.length);
        assert.equal(hex(got), hex(t), `true IPv6 datagram ${trueId}`);
      }
      if (trueId >= 0) completedTrue++;
    }
  };
  while (pushed < FRAGMENTS_PER_RUN && performance.now() - started < TIME_CAP_MS) {
    if (pending.length < 6) {
      const id = s.int(TRUE_IDS);
      const d = trueDatagram(family, id);
      truth.set(`${family}:${id}`, d);
      pending.push({ id, frags: shuffle(trueFragments(family, d, id, s), next) });
    }
    const roll = s.int(100);
    if (roll < 55) {
      const p = pending[s.int(pending.length)]!;
      const f = p.frags.pop();
      if (f !== undefined) push(f, p.id);
      if (s.int(20) === 0 && f !== undefined) push(f, p.id);
    } else if (roll < 65) {
      const p = pending[s.int(pending.length)]!;
      push(trueCut(family, truth.get(`${family}:${p.id}`)!, p.id, s), p.id);
    } else if (roll < 97) {
      push(hostile(family, s), -1);
    } else if (roll < 99) {
      now += s.int(20_000);
    } else {
      now += s.int(2_000);
      r.expire(now);
      assertCountedOnce(r);
    }
    pending = pending.filter((p) => p.frags.length > 0);
  }
  assert.ok(pushed >= 1000, `only ${pushed} fragments in the time cap`);
  assert.equal(r.counters[ReasmCounter.Fragments], pushed);
  console.log(
    `IPv${family} seed ${seed}, bound ${highThresh}: ${pushed} fragments in ${(performance.now() - started).toFixed(0)} ms, ` +
      `${r.counters[ReasmCounter.Datagrams]} datagrams (${completedTrue} true ones), ${dropped(r)} dropped ` +
      `(overlap ${r.counters[ReasmCounter.Overlap]}, duplicate ${r.counters[ReasmCounter.Duplicate]}, ` +
      `memory ${r.counters[ReasmCounter.Memory]}, timeout ${r.counters[ReasmCounter.Timeout]}, ` +
      `malformed ${r.counters[ReasmCounter.Malformed]}, tiny ${r.counters[ReasmCounter.TinyFirst]}, ` +
      `too big ${r.counters[ReasmCounter.TooBig]}), ${r.heldFragments} held`,
  );
  assert.ok(completedTrue > 0, 'some true datagrams complete');
  // Everything still held goes when its time is up.
  r.expire(now + r.timeoutMs);
  assert.equal(r.queueCount, 0);
  assert.equal(r.bytesCharged, 0);
  assertCountedOnce(r);
}

for (const family of [4, 6] as const) {
  for (const [seed, bound] of [
    [0xf4a6, 4 * 1024 * 1024],
    [0x1dea, 96 * 1024],
  ] as const) {
    test(
      `IPv${family} fragment streams, seed ${seed}, memory bound ${bound}: no throw, bounded, counted once, true bytes out`,
      { timeout: 60_000 },
      () => {
        run(family, seed, bound);
      },
    );
  }
}
