/**
 * ConnTable on its own: the two hash indexes (client tuple, reply tuple),
 * their chains when keys share a bucket, the lazy timing wheel, capacity and
 * the SYNPROXY columns. The engine and the fuzzer reach all of this only
 * through whole packets.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';

import { CF_IN_USE, ConnTable } from '../../src/engine/conn-table.js';
import { DEFAULT_ENGINE_OPTIONS } from '../../src/engine/options.js';
import { TCP_STATE_NAMES } from '../../src/engine/tcp-state.js';

const CIP = 0xcb007107; // 203.0.113.7
const LIP = 0x0a0a0301; // 10.10.3.1
const RIP = 0x0a0a0202; // 10.10.2.2

/** The 24 bytes of an IPv4 header plus TCP ports that the lookups read (IP at 0, TCP at 20). */
function headers(src: number, sport: number, dst: number, dport: number): Uint8Array {
  const b = new Uint8Array(24);
  const v = new DataView(b.buffer);
  v.setUint32(12, src >>> 0);
  v.setUint32(16, dst >>> 0);
  v.setUint16(20, sport);
  v.setUint16(22, dport);
  return b;
}

interface Conn {
  cip: number;
  cport: number;
  svc: number;
  lip: number;
  lport: number;
  rip: number;
  rport: number;
}

/** Inserts by client tuple and links by reply tuple, as the engine does for a new connection. */
function open(t: ConnTable, c: Conn): number {
  const i = t.insertAt(headers(c.cip, c.cport, 0xc0000264, 80), 0, 20, c.svc);
  if (i < 0) return i;
  t.lip[i] = c.lip;
  t.lport[i] = c.lport;
  t.rip[i] = c.rip;
  t.rport[i] = c.rport;
  t.linkReply(i);
  return i;
}

const byClient = (t: ConnTable, c: Conn): number =>
  t.lookupClientAt(headers(c.cip, c.cport, 0xc0000264, 80), 0, 20, c.svc);
const byReply = (t: ConnTable, c: Conn): number =>
  t.lookupReplyAt(headers(c.rip, c.rport, c.lip, c.lport), 0, 20);

function conn(n: number): Conn {
  return {
    cip: (CIP + n * 7919) >>> 0,
    cport: 1024 + (n % 60000),
    svc: n % 3,
    lip: LIP,
    lport: 5000 + (n % 60000),
    rip: RIP + (n % 5),
    rport: 8080,
  };
}

/** Every listed connection is found under both tuples at its own index. */
function assertAllFound(t: ConnTable, live: Map<number, Conn>, why: string): void {
  for (const [i, c] of live) {
    assert.equal(byClient(t, c), i, `${why}: client tuple of entry ${i}`);
    assert.equal(byReply(t, c), i, `${why}: reply tuple of entry ${i}`);
  }
}

describe('ConnTable lookups', () => {
  it('finds a connection by its client tuple and by its reply tuple, and nothing else', () => {
    // One entry, one bucket: every probe below walks the same chain and must compare every field.
    const t = new ConnTable(1);
    const c = conn(1);
    const i = open(t, c);
    assert.ok(i >= 0);
    assert.equal(t.count, 1);
    assert.equal(t.flags[i], CF_IN_USE);
    assert.equal(TCP_STATE_NAMES[t.state[i]!], 'NONE');
    assert.equal(t.cip[i], c.cip);
    assert.equal(t.cport[i], c.cport);
    assert.equal(t.svc[i], c.svc);
    assert.equal(byClient(t, c), i);
    assert.equal(byReply(t, c), i);
    // Each field of each key matters.
    assert.equal(byClient(t, { ...c, cip: c.cip + 1 }), -1);
    assert.equal(byClient(t, { ...c, cport: c.cport + 1 }), -1);
    assert.equal(byClient(t, { ...c, svc: c.svc + 1 }), -1);
    assert.equal(byReply(t, { ...c, rip: c.rip + 1 }), -1);
    assert.equal(byReply(t, { ...c, rport: c.rport + 1 }), -1);
    assert.equal(byReply(t, { ...c, lip: c.lip + 1 }), -1);
    assert.equal(byReply(t, { ...c, lport: c.lport + 1 }), -1);
  });

  it('reads the tuples at the offsets it is given (IP options, headroom)', () => {
    const t = new ConnTable(4);
    const c = conn(2);
    const i = open(t, c);
    const h = headers(c.cip, c.cport, 0xc0000264, 80);
    // 100 bytes of headroom and a 24-byte IP header: the TCP ports sit at 124, not 120.
    const b = new Uint8Array(200);
    b.set(h.subarray(0, 20), 100);
    b.set(h.subarray(20, 24), 124);
    assert.equal(t.lookupClientAt(b, 100, 124, c.svc), i);
    assert.equal(t.lookupClientAt(b, 100, 120, c.svc), -1);
  });

  it('is not found under its reply tuple until linkReply', () => {
    const t = new ConnTable(4);
    const c = conn(3);
    const i = t.insertAt(headers(c.cip, c.cport, 0, 80), 0, 20, c.svc);
    t.lip[i] = c.lip;
    t.lport[i] = c.lport;
    t.rip[i] = c.rip;
    t.rport[i] = c.rport;
    assert.equal(byClient(t, c), i);
    assert.equal(byReply(t, c), -1);
    t.linkReply(i);
    assert.equal(byReply(t, c), i);
  });

  it('removing an entry before its reply link leaves the reply index of a reused slot intact', () => {
    const t = new ConnTable(4);
    const a = conn(4);
    // Same RIP xor LIP and ports as a: one reply bucket, chained b → a → x.
    const same = (n: number, k: number): Conn => ({
      ...conn(n),
      rip: a.rip ^ k,
      lip: a.lip ^ k,
      rport: a.rport,
      lport: a.lport,
    });
    const x = same(3, 0x200);
    const b = same(5, 0x100);
    const ix = open(t, x);
    const ia = open(t, a);
    const ib = open(t, b);
    t.remove(ia);
    // The slot comes back with a's reply tuple still in its columns; it was never linked again.
    const c = conn(6);
    const ic = t.insertAt(headers(c.cip, c.cport, 0, 80), 0, 20, c.svc);
    assert.equal(ic, ia, 'the freed slot is handed out next');
    t.remove(ic);
    assert.equal(byReply(t, b), ib);
    assert.equal(byReply(t, x), ix);
    assert.equal(byReply(t, a), -1);
    assert.equal(t.count, 2);
  });
});

describe('ConnTable hash chains', () => {
  it('keeps a long chain in one reply bucket: removal at head, middle and tail leaves the rest', () => {
    // The reply bucket hashes RIP xor LIP with the ports: pairs with the same xor and the same
    // ports share a bucket whatever the table size, so these 16 entries form one chain.
    const t = new ConnTable(64);
    const live = new Map<number, Conn>();
    const inserted: number[] = [];
    for (let k = 0; k < 16; k++) {
      const c: Conn = {
        cip: CIP + k,
        cport: 40000 + k,
        svc: 0,
        lip: LIP ^ (k << 8),
        lport: 6000,
        rip: RIP ^ (k << 8),
        rport: 8080,
      };
      const i = open(t, c);
      live.set(i, c);
      inserted.push(i);
    }
    assertAllFound(t, live, 'full chain');
    // Chains push at the head: the last inserted is the head, the first is the tail.
    for (const pick of [inserted[8]!, inserted[15]!, inserted[0]!, inserted[4]!, inserted[11]!]) {
      t.remove(pick);
      live.delete(pick);
      assertAllFound(t, live, `after removing ${pick}`);
    }
    assert.equal(t.count, 11);
    // The removed tuples are gone and their slots are reused cleanly.
    const again = open(t, conn(99));
    live.set(again, conn(99));
    assertAllFound(t, live, 'after reuse');
  });

  it('keeps every entry findable while a full table is emptied in any order', () => {
    // 256 entries in 256 buckets: dozens of buckets hold two or more, so removals hit
    // heads, middles and tails of chains in both indexes.
    fc.assert(
      fc.property(
        fc.array(fc.nat(), { minLength: 256, maxLength: 256 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        (order, base) => {
          const t = new ConnTable(256);
          const live = new Map<number, Conn>();
          for (let n = 0; n < 256; n++) {
            const c = conn(base + n);
            // Distinct keys even when `n % 60000` wraps.
            c.cport = n + 1;
            c.lport = 5000 + n;
            live.set(open(t, c), c);
          }
          assert.ok(t.full);
          assertAllFound(t, live, 'full');
          const idx = [...live.keys()];
          for (let k = 0; k < idx.length; k++) {
            const j = k + (order[k]! % (idx.length - k));
            [idx[k], idx[j]] = [idx[j]!, idx[k]!];
            const victim = idx[k]!;
            const gone = live.get(victim)!;
            t.remove(victim);
            live.delete(victim);
            assert.equal(byClient(t, gone), -1);
            assert.equal(byReply(t, gone), -1);
            if (k % 16 === 0) assertAllFound(t, live, `after ${k + 1} removals`);
          }
          assert.equal(t.count, 0);
        },
      ),
      { numRuns: 20 },
    );
  });

  it('tells apart keys that differ in one field only, in the same table', () => {
    const t = new ConnTable(8);
    const c = conn(7);
    const live = new Map<number, Conn>();
    for (const v of [
      c,
      { ...c, svc: c.svc + 1, lport: c.lport + 1 },
      { ...c, cport: c.cport + 1, rport: c.rport + 1 },
    ]) {
      live.set(open(t, v), v);
    }
    assertAllFound(t, live, 'near twins');
  });
});

describe('ConnTable timer wheel', () => {
  /** Arms entries with the given deadlines and records when `advance` reports each expired. */
  function runWheel(
    deadlines: readonly number[],
    steps: readonly number[],
    wheelSlots = 1024,
    tickMs = 100,
  ): { fired: Map<number, number>; t: ConnTable; ids: number[] } {
    const t = new ConnTable(deadlines.length, wheelSlots, tickMs);
    const ids = deadlines.map((d, n) => {
      const i = open(t, conn(n));
      t.expires[i] = d;
      t.armTimer(i);
      return i;
    });
    const fired = new Map<number, number>();
    for (const now of steps) {
      t.advance(now, (i) => {
        assert.ok(!fired.has(i), `entry ${i} expired twice`);
        fired.set(i, now);
        t.remove(i);
      });
    }
    return { fired, t, ids };
  }

  it('expires an entry at its deadline, not before, and at most one tick late', () => {
    const deadlines = [1, 99, 100, 101, 1050, 1099, 1100, 5000, 12_345];
    const steps = Array.from({ length: 13_000 }, (_, k) => k + 1);
    const { fired, ids } = runWheel(deadlines, steps);
    ids.forEach((i, n) => {
      const at = fired.get(i);
      assert.ok(at !== undefined, `deadline ${deadlines[n]} never expired`);
      assert.ok(at >= deadlines[n]!, `deadline ${deadlines[n]} expired early at ${at}`);
      assert.ok(at <= deadlines[n]! + 100, `deadline ${deadlines[n]} expired late at ${at}`);
    });
  });

  it('an entry whose deadline moved later without re-arming is re-filed when found early', () => {
    const t = new ConnTable(4);
    const i = open(t, conn(1));
    t.expires[i] = 1000;
    t.armTimer(i);
    // A packet only pushes the deadline; the entry stays in the old slot.
    t.expires[i] = 5000;
    let expiredAt = -1;
    for (let now = 0; now <= 6000; now += 10) {
      t.advance(now, () => {
        if (expiredAt < 0) expiredAt = now;
      });
    }
    assert.ok(expiredAt >= 5000 && expiredAt <= 5100, `expired at ${expiredAt}`);
  });

  it('re-arming to a shorter timeout takes effect at the new deadline', () => {
    const t = new ConnTable(4);
    const i = open(t, conn(1));
    t.expires[i] = 60_000;
    t.armTimer(i);
    t.advance(1000, () => assert.fail('nothing is due at 1 s'));
    t.expires[i] = 2000;
    t.armTimer(i);
    let expiredAt = -1;
    for (let now = 1000; now <= 3000; now += 10) {
      t.advance(now, () => {
        expiredAt = now;
        t.remove(i);
      });
    }
    assert.ok(expiredAt >= 2000 && expiredAt <= 2100, `expired at ${expiredAt}`);
  });

  it('deadlines beyond one turn of the wheel wait in the last reachable slot', () => {
    // 16 slots of 100 ms: one turn is 1.6 s; a 10 s deadline must not fire at 0.x s or 1.x s.
    const steps = Array.from({ length: 1200 }, (_, k) => k * 10);
    const { fired, ids } = runWheel([10_000, 3_205], steps, 16, 100);
    const at0 = fired.get(ids[0]!)!;
    const at1 = fired.get(ids[1]!)!;
    assert.ok(at0 >= 10_000 && at0 <= 10_100, `10 s deadline at ${at0}`);
    assert.ok(at1 >= 3_205 && at1 <= 3_305, `3.205 s deadline at ${at1}`);
  });

  it('a long gap expires everything due exactly once and keeps what is not due', () => {
    const t = new ConnTable(8, 16, 100);
    const due = [open(t, conn(1)), open(t, conn(2)), open(t, conn(3))];
    const later = open(t, conn(4));
    [500, 900, 2700].forEach((d, k) => {
      t.expires[due[k]!] = d;
      t.armTimer(due[k]!);
    });
    t.expires[later] = 1_000_000;
    t.armTimer(later);
    t.advance(0, () => assert.fail('nothing due at 0'));
    const seen: number[] = [];
    // 400 s in one step: many turns of a 1.6 s wheel.
    t.advance(400_000, (i) => {
      seen.push(i);
      t.remove(i);
    });
    assert.deepEqual(
      seen.sort((a, b) => a - b),
      [...due].sort((a, b) => a - b),
    );
    let laterAt = -1;
    for (let now = 400_000; now <= 1_000_200; now += 50) {
      t.advance(now, (i) => {
        assert.equal(i, later);
        if (laterAt < 0) laterAt = now;
        t.remove(i);
      });
    }
    assert.ok(laterAt >= 1_000_000 && laterAt <= 1_000_100, `expired at ${laterAt}`);
  });

  it('many entries with random deadlines and random steps: each once, never early, at most a tick late', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 300_000 }), { minLength: 1, maxLength: 2000 }),
        fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 400 }),
        (deadlines, jumps) => {
          const steps: number[] = [];
          let now = 0;
          for (const j of jumps) steps.push((now += j));
          // Then fine steps until past every deadline.
          while (now < 301_000) steps.push((now += 37));
          const { fired, ids, t } = runWheel(deadlines, steps, 256, 100);
          assert.equal(t.count, 0, 'every entry expired');
          let prev = 0;
          const stepBefore = new Map<number, number>();
          for (const s of steps) {
            stepBefore.set(s, prev);
            prev = s;
          }
          ids.forEach((i, n) => {
            const at = fired.get(i)!;
            const d = deadlines[n]!;
            assert.ok(at >= d, `deadline ${d} expired early at ${at}`);
            // The first advance at or past d, or the next tick boundary after it.
            const before = stepBefore.get(at)!;
            assert.ok(
              before < d + 100,
              `deadline ${d} expired late at ${at} (previous step ${before})`,
            );
          });
        },
      ),
      { numRuns: 30 },
    );
  });

  it('a removed entry never expires', () => {
    const t = new ConnTable(4);
    const a = open(t, conn(1));
    const b = open(t, conn(2));
    t.expires[a] = 500;
    t.expires[b] = 500;
    t.armTimer(a);
    t.armTimer(b);
    t.remove(a);
    const seen: number[] = [];
    t.advance(1000, (i) => seen.push(i));
    assert.deepEqual(seen, [b]);
  });
});

describe('ConnTable capacity', () => {
  it('refuses bad capacities', () => {
    assert.throws(() => new ConnTable(0), RangeError);
    assert.throws(() => new ConnTable(0x80000000), RangeError);
  });

  it('full at capacity: insert returns -1 and changes nothing; remove frees one slot', () => {
    const t = new ConnTable(3);
    const ids = [open(t, conn(1)), open(t, conn(2)), open(t, conn(3))];
    assert.deepEqual(
      [...ids].sort((a, b) => a - b),
      [0, 1, 2],
    );
    assert.ok(t.full);
    assert.equal(t.count, 3);
    assert.equal(open(t, conn(4)), -1);
    assert.equal(t.count, 3);
    assert.equal(byClient(t, conn(4)), -1);
    t.remove(ids[1]!);
    assert.ok(!t.full);
    assert.equal(t.count, 2);
    assert.equal(open(t, conn(5)), ids[1], 'the freed slot is the one handed out');
    assert.ok(t.full);
    assert.equal(byClient(t, conn(5)), ids[1]);
    assert.equal(byClient(t, conn(2)), -1);
  });

  it('holds exactly the default maximum of connections', () => {
    const max = DEFAULT_ENGINE_OPTIONS.maxConnections;
    const t = new ConnTable(max);
    const h = headers(0, 0, 0, 80);
    const v = new DataView(h.buffer);
    for (let n = 0; n < max; n++) {
      v.setUint32(12, CIP + (n >>> 16));
      v.setUint16(20, n & 0xffff);
      assert.ok(t.insertAt(h, 0, 20, 0) >= 0);
    }
    assert.ok(t.full);
    assert.equal(t.count, max);
    assert.equal(t.insertAt(headers(RIP, 1, 0, 80), 0, 20, 0), -1);
    // A sample of the entries, each by its own key.
    for (let n = 0; n < max; n += 4099) {
      v.setUint32(12, CIP + (n >>> 16));
      v.setUint16(20, n & 0xffff);
      const i = t.lookupClientAt(h, 0, 20, 0);
      assert.ok(i >= 0, `connection ${n}`);
      assert.equal(t.cport[i], n & 0xffff);
    }
  });

  it('a reused slot starts clean', () => {
    const t = new ConnTable(1);
    const i = open(t, conn(1));
    t.state[i] = 3;
    t.seqDelta[i] = 77;
    t.lbIsn[i] = 78;
    t.shift[i] = 9;
    t.fdataSeq[i] = 79;
    t.clientNxt[i] = 80;
    t.rsNxt[i] = 81;
    t.flags[i] = 0xff;
    t.remove(i);
    assert.equal(t.flags[i], 0);
    const j = open(t, conn(2));
    assert.equal(j, i);
    assert.equal(t.flags[j], CF_IN_USE);
    assert.equal(TCP_STATE_NAMES[t.state[j]!], 'NONE');
    for (const col of [t.seqDelta, t.lbIsn, t.shift, t.fdataSeq, t.clientNxt, t.rsNxt]) {
      assert.equal(col[j], 0);
    }
  });
});

describe('ConnTable SYNPROXY columns', () => {
  it('are empty until enabled, then one cell per connection (17 bytes each), idempotent', () => {
    const t = new ConnTable(100);
    assert.ok(!t.synproxyEnabled);
    assert.equal(t.ackDelta.length, 0);
    const before = t.memoryBytes;
    t.enableSynproxy();
    assert.ok(t.synproxyEnabled);
    for (const col of [t.ackDelta, t.spData, t.spSlot, t.rsAck, t.rsWin, t.stormCount]) {
      assert.equal(col.length, 100);
    }
    assert.ok(
      t.spSlot.every((s) => s === -1),
      'no held packets',
    );
    assert.equal(t.memoryBytes - before, 17 * 100);
    const ackDelta = t.ackDelta;
    t.enableSynproxy();
    assert.equal(t.ackDelta, ackDelta, 'a second call keeps the arrays');
  });

  it('are reset when a slot is handed out again', () => {
    const t = new ConnTable(1);
    t.enableSynproxy();
    const i = open(t, conn(1));
    t.ackDelta[i] = 123;
    t.spData[i] = 0x3ff;
    t.spSlot[i] = 5;
    t.rsAck[i] = 9;
    t.rsWin[i] = 10;
    t.stormCount[i] = 2;
    t.remove(i);
    const j = open(t, conn(2));
    assert.equal(j, i);
    assert.deepEqual(
      [t.ackDelta[j], t.spData[j], t.spSlot[j], t.rsAck[j], t.rsWin[j], t.stormCount[j]],
      [0, 0, -1, 0, 0, 0],
    );
  });
});
