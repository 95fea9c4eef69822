import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';

import { fmix32, fnv1a32, hashInt, murmur3String } from '../../src/engine/sched/hash.js';
import { createScheduler } from '../../src/engine/sched/index.js';
import { overhead } from '../../src/engine/sched/lc.js';
import { isPrime, MaglevScheduler } from '../../src/engine/sched/mh.js';
import {
  SCHEDULER_NAMES,
  type SchedTarget,
  type SchedulerName,
} from '../../src/engine/sched/scheduler.js';

function targets(weights: readonly number[], prefix = '10.10.2.'): SchedTarget[] {
  return weights.map((weight, i) => ({
    key: `${prefix}${i + 1}:80`,
    weight,
    activeConns: 0,
    inactiveConns: 0,
  }));
}

/** Deterministic stream of client hashes (xorshift32), so failures reproduce. */
function clientHashes(count: number, seed = 1): Uint32Array {
  const out = new Uint32Array(count);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x >>> 0;
  }
  return out;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

// Small mh tables keep property runs fast; 65537 is exercised separately.
const SMALL_PRIME = 1009;
function make(name: SchedulerName) {
  return createScheduler(name, { mhTableSize: SMALL_PRIME });
}

describe('hash helpers', () => {
  it('match published test vectors', () => {
    assert.equal(fnv1a32(''), 0x811c9dc5);
    assert.equal(fnv1a32('a'), 0xe40c292c);
    assert.equal(fnv1a32('foobar'), 0xbf9cf968);
    assert.equal(murmur3String('', 0), 0);
    assert.equal(murmur3String('', 1), 0x514e28b7);
    assert.equal(murmur3String('hello', 0), 0x248bfa47);
    assert.equal(murmur3String('The quick brown fox jumps over the lazy dog', 0), 0x2e4ff723);
    assert.equal(fmix32(0), 0);
  });

  it('are unsigned 32-bit and seed-sensitive', () => {
    fc.assert(
      fc.property(fc.integer(), fc.string(), (x, s) => {
        for (const h of [fmix32(x), hashInt(x), hashInt(x, 7), murmur3String(s), fnv1a32(s)]) {
          assert.ok(Number.isInteger(h) && h >= 0 && h <= 0xffffffff);
        }
        assert.equal(hashInt(x), fmix32(x));
      }),
    );
    assert.notEqual(murmur3String('10.0.0.1:80', 1), murmur3String('10.0.0.1:80', 2));
    // Non-ASCII goes through UTF-8: "é" is c3 a9.
    assert.equal(
      fnv1a32('é'),
      Math.imul(Math.imul(0x811c9dc5 ^ 0xc3, 0x01000193) ^ 0xa9, 0x01000193) >>> 0,
    );
  });
});

describe('factory', () => {
  it('builds every named scheduler', () => {
    for (const name of SCHEDULER_NAMES) assert.equal(createScheduler(name).name, name);
  });

  it('rejects unknown names, listing the valid ones', () => {
    assert.throws(
      () => createScheduler('fifo' as SchedulerName),
      (e: unknown) =>
        e instanceof Error &&
        e.message.includes('"fifo"') &&
        SCHEDULER_NAMES.every((n) => e.message.includes(n)),
    );
  });

  it('rejects bad table sizes', () => {
    assert.throws(() => createScheduler('sh', { shBuckets: 100 }), /power of two/);
    assert.throws(() => createScheduler('mh', { mhTableSize: 65536 }), /prime/);
    assert.ok(isPrime(65537) && isPrime(2) && !isPrime(1) && !isPrime(91));
  });
});

describe('all schedulers', () => {
  const weightArb = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 50 }));
  const loadArb = fc.record({ a: fc.nat(1000), i: fc.nat(1000) });

  it('never pick weight-0 targets; -1 iff all weights are 0', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...SCHEDULER_NAMES),
        fc.array(fc.tuple(weightArb, loadArb), { minLength: 0, maxLength: 12 }),
        fc.array(fc.integer(), { minLength: 1, maxLength: 20 }),
        (name, spec, hashes) => {
          const ts = targets(spec.map(([w]) => w));
          spec.forEach(([, l], i) => {
            ts[i]!.activeConns = l.a;
            ts[i]!.inactiveConns = l.i;
          });
          const s = make(name);
          s.rebuild(ts);
          const anyLive = ts.some((t) => t.weight > 0);
          for (const h of hashes) {
            const p = s.pick(ts, h);
            if (!anyLive) assert.equal(p, -1);
            else assert.ok(p >= 0 && p < ts.length && ts[p]!.weight > 0, `${name} picked ${p}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('honour weights set to 0 after the rebuild (quiescing)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...SCHEDULER_NAMES),
        fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 10 }),
        fc.array(fc.boolean(), { minLength: 10, maxLength: 10 }),
        fc.array(fc.integer(), { minLength: 1, maxLength: 50 }),
        (name, weights, quiesce, hashes) => {
          const ts = targets(weights);
          const s = make(name);
          s.rebuild(ts);
          // Warm up so stateful schedulers are mid-cycle when weights drop.
          for (const h of hashes) s.pick(ts, h);
          ts.forEach((t, i) => {
            if (quiesce[i]) t.weight = 0;
          });
          const anyLive = ts.some((t) => t.weight > 0);
          for (const h of hashes) {
            const p = s.pick(ts, h);
            if (!anyLive) assert.equal(p, -1);
            else assert.ok(p >= 0 && ts[p]!.weight > 0, `${name} picked ${p}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('return -1 for an empty target list', () => {
    for (const name of SCHEDULER_NAMES) {
      const s = make(name);
      s.rebuild([]);
      assert.equal(s.pick([], 123), -1);
    }
  });
});

describe('rr', () => {
  it('cycles over live targets in order', () => {
    const ts = targets([1, 0, 5, 1]);
    const s = createScheduler('rr');
    s.rebuild(ts);
    const seq = Array.from({ length: 6 }, () => s.pick(ts, 0));
    assert.deepEqual(seq, [0, 2, 3, 0, 2, 3]);
    ts[2]!.weight = 0;
    assert.deepEqual([s.pick(ts, 0), s.pick(ts, 0), s.pick(ts, 0)], [0, 3, 0]);
  });
});

describe('wrr', () => {
  it('produces the IPVS interleaving', () => {
    const ts = targets([4, 3, 2]);
    const s = createScheduler('wrr');
    s.rebuild(ts);
    const seq = Array.from({ length: 18 }, () => s.pick(ts, 0));
    const one = [0, 0, 1, 0, 1, 2, 0, 1, 2];
    assert.deepEqual(seq, [...one, ...one]);
  });

  it('is exactly proportional over every full cycle', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 30 })), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        (ws, mult, cycles) => {
          // A common factor must not change the cycle, only be divided out.
          const weights = ws.map((w) => w * mult);
          const g = weights.reduce((a, w) => gcd(a, w), 0);
          fc.pre(g > 0);
          const cycle = weights.reduce((a, w) => a + w / g, 0);
          const ts = targets(weights);
          const s = createScheduler('wrr');
          s.rebuild(ts);
          for (let c = 0; c < cycles; c++) {
            const counts = new Array<number>(ts.length).fill(0);
            for (let k = 0; k < cycle; k++) counts[s.pick(ts, 0)]!++;
            assert.deepEqual(
              counts,
              weights.map((w) => w / g),
            );
          }
        },
      ),
    );
  });

  it('keeps going when the heaviest target is quiesced without a rebuild', () => {
    const ts = targets([100, 1, 1]);
    const s = createScheduler('wrr');
    s.rebuild(ts);
    s.pick(ts, 0);
    ts[0]!.weight = 0;
    const seq = Array.from({ length: 4 }, () => s.pick(ts, 0));
    assert.deepEqual(seq, [1, 2, 1, 2]);
  });

  it('takes weight changes at rebuild', () => {
    const ts = targets([1, 1]);
    const s = createScheduler('wrr');
    s.rebuild(ts);
    ts[0]!.weight = 3;
    s.rebuild(ts);
    const counts = [0, 0];
    for (let k = 0; k < 40; k++) counts[s.pick(ts, 0)]!++;
    assert.deepEqual(counts, [30, 10]);
  });
});

describe('lc / wlc', () => {
  const loadsArb = fc.array(
    fc.record({
      w: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 100 })),
      a: fc.nat(5000),
      i: fc.nat(5000),
    }),
    { minLength: 1, maxLength: 12 },
  );

  function load(spec: readonly { w: number; a: number; i: number }[]): SchedTarget[] {
    const ts = targets(spec.map((x) => x.w));
    spec.forEach((x, k) => {
      ts[k]!.activeConns = x.a;
      ts[k]!.inactiveConns = x.i;
    });
    return ts;
  }

  it('lc picks the first target with the least overhead', () => {
    fc.assert(
      fc.property(loadsArb, (spec) => {
        const ts = load(spec);
        const p = createScheduler('lc').pick(ts, 0);
        const live = ts.flatMap((t, k) => (t.weight > 0 ? [k] : []));
        if (live.length === 0) return assert.equal(p, -1);
        const min = Math.min(...live.map((k) => overhead(ts[k]!)));
        assert.equal(
          p,
          live.find((k) => overhead(ts[k]!) === min),
        );
      }),
    );
  });

  it('wlc picks the first target with the least overhead per weight', () => {
    fc.assert(
      fc.property(loadsArb, (spec) => {
        const ts = load(spec);
        const p = createScheduler('wlc').pick(ts, 0);
        const live = ts.flatMap((t, k) => (t.weight > 0 ? [k] : []));
        if (live.length === 0) return assert.equal(p, -1);
        // Exact rational comparison as the reference, independent of the implementation.
        const ratio = (k: number) => ({ n: BigInt(overhead(ts[k]!)), d: BigInt(ts[k]!.weight) });
        const less = (x: { n: bigint; d: bigint }, y: { n: bigint; d: bigint }) =>
          x.n * y.d < y.n * x.d;
        let best = live[0]!;
        for (const k of live) if (less(ratio(k), ratio(best))) best = k;
        assert.equal(p, best);
      }),
    );
  });

  it('lc weighs active connections 256x inactive ones', () => {
    const ts = targets([1, 1]);
    ts[0]!.activeConns = 1;
    ts[1]!.inactiveConns = 255;
    assert.equal(createScheduler('lc').pick(ts, 0), 1);
    ts[1]!.inactiveConns = 256;
    assert.equal(createScheduler('lc').pick(ts, 0), 0); // tie goes to the first
    ts[1]!.inactiveConns = 257;
    assert.equal(createScheduler('lc').pick(ts, 0), 0);
  });

  it('lc balances and wlc splits by weight as connections accumulate', () => {
    for (const [name, weights, expect] of [
      ['lc', [1, 5, 2], [40, 40, 40]],
      ['wlc', [1, 2, 3], [20, 40, 60]],
    ] as const) {
      const ts = targets(weights);
      const s = createScheduler(name);
      s.rebuild(ts);
      for (let k = 0; k < 120; k++) ts[s.pick(ts, 0)]!.activeConns++;
      assert.deepEqual(
        ts.map((t) => t.activeConns),
        expect,
        name,
      );
      // Finishing connections on one target makes it the least loaded.
      ts[2]!.activeConns = 0;
      assert.equal(s.pick(ts, 0), 2, name);
    }
  });
});

describe('sh', () => {
  it('is stable per client and splits by weight', () => {
    const ts = targets([1, 2, 1, 4]);
    const s = createScheduler('sh');
    s.rebuild(ts);
    const hs = clientHashes(80_000);
    const counts = [0, 0, 0, 0];
    for (const h of hs) {
      const p = s.pick(ts, h);
      assert.equal(s.pick(ts, h), p);
      counts[p]!++;
    }
    const total = 8;
    counts.forEach((c, k) => {
      const want = (hs.length * ts[k]!.weight) / total;
      assert.ok(Math.abs(c - want) < want * 0.05, `target ${k}: ${c} vs ${want}`);
    });
  });

  it('gives every live target a bucket even with skewed weights', () => {
    const ts = targets([65535, 1, 65534]);
    const s = createScheduler('sh');
    s.rebuild(ts);
    const seen = new Set<number>();
    for (const h of clientHashes(20_000)) seen.add(s.pick(ts, h));
    assert.deepEqual([...seen].sort(), [0, 1, 2]);
  });

  it('moves only the clients of a quiesced target', () => {
    const ts = targets([1, 1, 1, 1]);
    const s = createScheduler('sh');
    s.rebuild(ts);
    const hs = clientHashes(20_000, 7);
    const before = Array.from(hs, (h) => s.pick(ts, h));
    ts[1]!.weight = 0;
    hs.forEach((h, k) => {
      const p = s.pick(ts, h);
      assert.notEqual(p, 1);
      if (before[k] !== 1) assert.equal(p, before[k]);
    });
  });

  it('is deterministic across instances (fast-check)', () => {
    const ts = targets([3, 1, 2]);
    const a = createScheduler('sh');
    const b = createScheduler('sh');
    a.rebuild(ts);
    b.rebuild(ts);
    fc.assert(fc.property(fc.integer(), (h) => a.pick(ts, h) === b.pick(ts, h)));
  });
});

describe('mh', () => {
  function keysOf(ts: readonly SchedTarget[], s: MaglevScheduler, hs: Uint32Array): string[] {
    return Array.from(hs, (h) => ts[s.pick(ts, h)]!.key);
  }

  it('is stable per client and splits by weight (M = 65537)', () => {
    const ts = targets([1, 2, 3, 4]);
    const s = new MaglevScheduler();
    s.rebuild(ts);
    const hs = clientHashes(100_000, 3);
    const counts = [0, 0, 0, 0];
    for (const h of hs) {
      const p = s.pick(ts, h);
      assert.equal(s.pick(ts, h), p);
      counts[p]!++;
    }
    counts.forEach((c, k) => {
      const want = (hs.length * ts[k]!.weight) / 10;
      assert.ok(Math.abs(c - want) < want * 0.05, `target ${k}: ${c} vs ${want}`);
    });
  });

  it('depends on target keys, not their order in the list', () => {
    const ts = targets([1, 1, 1, 1, 1]);
    const rev = [...ts].reverse();
    const a = new MaglevScheduler(SMALL_PRIME);
    const b = new MaglevScheduler(SMALL_PRIME);
    a.rebuild(ts);
    b.rebuild(rev);
    const hs = clientHashes(5_000, 11);
    const ka = keysOf(ts, a, hs);
    const kb = keysOf(rev, b, hs);
    const same = ka.filter((k, i) => k === kb[i]).length;
    // Turns are taken in key order, so every fleet node builds the same table.
    assert.equal(same, hs.length, `only ${same} of ${hs.length} agree`);
  });

  it('disrupts minimally when one of N targets is removed', () => {
    const n = 10;
    const ts = targets(new Array<number>(n).fill(1));
    const s = new MaglevScheduler();
    s.rebuild(ts);
    const hs = clientHashes(100_000, 5);
    const before = keysOf(ts, s, hs);
    const removed = ts[3]!.key;
    const after = ts.filter((t) => t.key !== removed);
    s.rebuild(after);
    const now = keysOf(after, s, hs);

    let moved = 0;
    let movedFromOthers = 0;
    let onOthers = 0;
    before.forEach((k, i) => {
      if (now[i] === removed) assert.fail('removed target still picked');
      if (k !== now[i]) moved++;
      if (k !== removed) {
        onOthers++;
        if (k !== now[i]) movedFromOthers++;
      }
    });
    const frac = moved / hs.length;
    assert.ok(frac > 0.5 / n && frac < 1.5 / n, `moved ${frac}`);
    assert.ok(movedFromOthers / onOthers < 0.03, `others moved ${movedFromOthers / onOthers}`);
  });

  it('adding a target takes roughly 1/(N+1) of the keys (fast-check over N)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 12 }), fc.string({ minLength: 1 }), (n, prefix) => {
        const ts = targets(new Array<number>(n).fill(1), prefix);
        // The production table size: with a table as small as 4099 an unlucky
        // key set moved 45 % of keys when a 4th target joined (Maglev's
        // disruption grows as M/N shrinks), which is not what a user runs.
        const s = new MaglevScheduler(65537);
        s.rebuild(ts);
        const hs = clientHashes(4_000, n);
        const before = keysOf(ts, s, hs);
        const grown = [...ts, { key: 'new', weight: 1, activeConns: 0, inactiveConns: 0 }];
        s.rebuild(grown);
        const now = keysOf(grown, s, hs);
        const moved = now.filter((k, i) => k !== before[i]).length / hs.length;
        const toNew = now.filter((k) => k === 'new').length / hs.length;
        assert.ok(Math.abs(toNew - 1 / (n + 1)) < 0.5 / (n + 1), `new got ${toNew}`);
        assert.ok(moved < toNew * 1.5 + 0.02, `moved ${moved}, new got ${toNew}`);
      }),
      { numRuns: 30 },
    );
  });

  it('keeps huge close weights balanced', () => {
    const ts = targets([65535, 65534]);
    const s = new MaglevScheduler(SMALL_PRIME);
    s.rebuild(ts);
    const counts = [0, 0];
    for (const h of clientHashes(20_000, 9)) counts[s.pick(ts, h)]!++;
    assert.ok(Math.abs(counts[0]! - counts[1]!) < 2_000, `${counts}`);
  });
});
