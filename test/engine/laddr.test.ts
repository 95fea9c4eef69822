/**
 * LocalAddressPool on its own: ports per (LIP, RS) pair within the range,
 * never handed out twice while held, released and reused, exhaustion, the
 * per-pair random start drawn from the seed, claims of given ports, and one
 * set of ports for an RS address:port that serves two services.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';

import { Engine } from '../../src/engine/engine.js';
import { DEFAULT_PORT_RANGE, LocalAddressPool } from '../../src/engine/laddr.js';
import { TCP_RST, TCP_SYN } from '../../src/wire/tcp.js';
import { decodeSegment } from '../support/decode.js';
import { feedRaw } from '../support/engine-fixture.js';
import { buildSegment } from '../support/packets.js';
import { tableInconsistency } from '../support/table-consistency.js';

const LIP = 0x0a0a0301;
const LIP2 = 0x0a0a0302;
const SMALL = { min: 5000, max: 5015 };

function drain(pool: LocalAddressPool, lip: number, rs: number): number[] {
  const ports: number[] = [];
  for (;;) {
    const p = pool.allocate(lip, rs);
    if (p < 0) return ports;
    ports.push(p);
  }
}

describe('LocalAddressPool', () => {
  it('hands out every port of the range once per (LIP, RS), then -1', () => {
    const pool = new LocalAddressPool(2, 4, SMALL, 42);
    const l = pool.add(LIP);
    const ports = drain(pool, l, 0);
    assert.equal(ports.length, 16);
    assert.deepEqual(
      [...ports].sort((a, b) => a - b),
      Array.from({ length: 16 }, (_, k) => 5000 + k),
    );
    assert.equal(pool.portsInUse(l, 0), 16);
    assert.equal(pool.allocate(l, 0), -1);
    assert.equal(pool.portsInUse(l, 0), 16);
  });

  it('walks up from a starting point and wraps from max to min', () => {
    const pool = new LocalAddressPool(1, 1, SMALL, 7);
    const ports = drain(pool, pool.add(LIP), 0);
    for (let k = 1; k < ports.length; k++) {
      assert.equal(ports[k], ports[k - 1] === 5015 ? 5000 : ports[k - 1]! + 1, `port ${k}`);
    }
  });

  it('a released port is free again; releasing a free port changes nothing', () => {
    const pool = new LocalAddressPool(1, 1, SMALL, 3);
    const l = pool.add(LIP);
    const ports = drain(pool, l, 0);
    const victim = ports[5]!;
    pool.release(l, 0, victim);
    assert.equal(pool.portsInUse(l, 0), 15);
    pool.release(l, 0, victim);
    assert.equal(pool.portsInUse(l, 0), 15, 'a second release is a no-op');
    assert.equal(pool.allocate(l, 0), victim, 'the only free port');
    assert.equal(pool.allocate(l, 0), -1);
    // Releasing toward a pair never used is harmless too.
    pool.release(l, 0, 4999);
    assert.equal(pool.portsInUse(l, 0), 16);
  });

  it('never hands out a held port under any mix of allocations and releases', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.array(fc.tuple(fc.boolean(), fc.nat(), fc.integer({ min: 0, max: 2 })), {
          maxLength: 300,
        }),
        (seed, ops) => {
          const pool = new LocalAddressPool(1, 3, SMALL, seed);
          const l = pool.add(LIP);
          const held = [new Set<number>(), new Set<number>(), new Set<number>()];
          for (const [take, pick, rs] of ops) {
            const h = held[rs]!;
            if (take) {
              const p = pool.allocate(l, rs);
              if (h.size === 16) {
                assert.equal(p, -1);
                continue;
              }
              assert.ok(p >= SMALL.min && p <= SMALL.max, `port ${p} in range`);
              assert.ok(!h.has(p), `port ${p} handed out twice toward RS ${rs}`);
              h.add(p);
            } else if (h.size > 0) {
              const p = [...h][pick % h.size]!;
              pool.release(l, rs, p);
              h.delete(p);
            }
            assert.equal(pool.portsInUse(l, rs), h.size);
          }
        },
      ),
    );
  });

  it('pairs are independent: an exhausted (LIP, RS) leaves other RSs and LIPs untouched', () => {
    const pool = new LocalAddressPool(2, 2, SMALL, 1);
    const a = pool.add(LIP);
    const b = pool.add(LIP2);
    assert.equal(drain(pool, a, 0).length, 16);
    assert.equal(pool.allocate(a, 0), -1);
    // The same port numbers again toward another RS and from another LIP: the reply tuples differ.
    assert.equal(drain(pool, a, 1).length, 16);
    assert.equal(drain(pool, b, 0).length, 16);
    assert.equal(pool.portsInUse(b, 1), 0);
  });

  it('the starting point is per pair, differs with the seed and repeats with it', () => {
    const first = (seed: number): number[] => {
      const pool = new LocalAddressPool(4, 16, DEFAULT_PORT_RANGE, seed);
      for (const lip of [LIP, LIP2, LIP + 2, LIP + 3]) pool.add(lip);
      const out: number[] = [];
      for (let l = 0; l < 4; l++) for (let r = 0; r < 16; r++) out.push(pool.allocate(l, r));
      return out;
    };
    const s1 = first(0x1234);
    const s2 = first(0x5678);
    assert.deepEqual(first(0x1234), s1, 'same seed, same starts');
    assert.ok(s1.every((p) => p >= DEFAULT_PORT_RANGE.min && p <= DEFAULT_PORT_RANGE.max));
    // 64 pairs over 60536 ports: a handful of equal starts at most, by chance.
    assert.ok(new Set(s1).size >= 60, `starts per pair are spread: ${new Set(s1).size} distinct`);
    const same = s1.filter((p, k) => p === s2[k]).length;
    assert.ok(same <= 2, `${same} pairs start at the same port under two seeds`);
    assert.ok(!s1.every((p) => p === DEFAULT_PORT_RANGE.min), 'not from the bottom');
  });

  it('claim takes a given port once: allocation walks past it, a second claim or one out of range fails', () => {
    const pool = new LocalAddressPool(2, 2, SMALL, 11);
    const l = pool.add(LIP);
    const start = pool.startingPort(l, 1);
    assert.equal(pool.claim(l, 1, start), true);
    assert.equal(pool.claim(l, 1, start), false, 'already taken');
    assert.equal(pool.portsInUse(l, 1), 1);
    assert.equal(pool.claim(l, 1, SMALL.min - 1), false, 'below the range');
    assert.equal(pool.claim(l, 1, SMALL.max + 1), false, 'above the range');
    assert.equal(pool.claim(l, 1, 5000.5), false, 'not a port');
    assert.equal(pool.claim(l, 2, 5001), false, 'no such RS slot');
    assert.equal(pool.claim(5, 1, 5001), false, 'no such LIP slot');
    assert.equal(pool.claim(l, 0, start), true, 'the same port toward another RS');
    const rest = drain(pool, l, 1);
    assert.equal(rest.length, 15);
    assert.ok(!rest.includes(start), 'never handed out while claimed');
    assert.equal(
      rest[0],
      start === SMALL.max ? SMALL.min : start + 1,
      'the walk starts where it would have',
    );
    pool.release(l, 1, start);
    assert.equal(pool.allocate(l, 1), start, 'free again once released');
  });

  it('claims and allocations mixed never give a port twice, and the counts follow', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.array(fc.tuple(fc.nat(2), fc.integer({ min: 4998, max: 5017 })), { maxLength: 200 }),
        (seed, ops) => {
          const pool = new LocalAddressPool(1, 1, SMALL, seed);
          const l = pool.add(LIP);
          const held = new Set<number>();
          for (const [op, port] of ops) {
            if (op === 0) {
              const ok = pool.claim(l, 0, port);
              assert.equal(ok, port >= SMALL.min && port <= SMALL.max && !held.has(port));
              if (ok) held.add(port);
            } else if (op === 1) {
              const p = pool.allocate(l, 0);
              if (held.size === 16) assert.equal(p, -1);
              else {
                assert.ok(!held.has(p));
                held.add(p);
              }
            } else if (held.has(port)) {
              pool.release(l, 0, port);
              held.delete(port);
            }
            assert.equal(pool.portsInUse(l, 0), held.size);
          }
        },
      ),
    );
  });

  it('startingPort is the first port a pair hands out: per pair, per seed', () => {
    for (const seed of [1, 2, 0xdeadbeef]) {
      const pool = new LocalAddressPool(2, 3, DEFAULT_PORT_RANGE, seed);
      pool.add(LIP);
      pool.add(LIP2);
      for (let l = 0; l < 2; l++)
        for (let r = 0; r < 3; r++) assert.equal(pool.allocate(l, r), pool.startingPort(l, r));
    }
    const one = new LocalAddressPool(1, 1, DEFAULT_PORT_RANGE, 1).startingPort(0, 0);
    const two = new LocalAddressPool(1, 1, DEFAULT_PORT_RANGE, 2).startingPort(0, 0);
    assert.notEqual(one, two, 'two seeds, two starts');
  });

  it('works at the top of the port space (65535 inclusive)', () => {
    const pool = new LocalAddressPool(1, 1, { min: 65530, max: 65535 }, 9);
    const ports = drain(pool, pool.add(LIP), 0);
    assert.deepEqual(
      [...ports].sort((a, b) => a - b),
      [65530, 65531, 65532, 65533, 65534, 65535],
    );
    assert.equal(pool.portsPerPair, 6);
  });

  it('registers LIPs idempotently, up to its maximum; refuses bad ranges', () => {
    const pool = new LocalAddressPool(2, 1, SMALL);
    assert.equal(pool.add(LIP), 0);
    assert.equal(pool.add(LIP2), 1);
    assert.equal(pool.add(LIP), 0);
    assert.deepEqual([...pool.addrs], [LIP, LIP2]);
    assert.equal(pool.indexOf(LIP2), 1);
    assert.equal(pool.indexOf(LIP + 9), -1);
    assert.ok(pool.has(LIP) && !pool.has(LIP + 9));
    assert.throws(() => pool.add(LIP + 9), /more than 2 local addresses/);
    assert.throws(() => new LocalAddressPool(1, 1, { min: 0, max: 10 }), RangeError);
    assert.throws(() => new LocalAddressPool(1, 1, { min: 10, max: 65536 }), RangeError);
    assert.throws(() => new LocalAddressPool(1, 1, { min: 11, max: 10 }), RangeError);
  });
});

describe('one RS address:port in two services', () => {
  it('sharePorts: two RS slots take and free ports from one set', () => {
    const pool = new LocalAddressPool(1, 3, SMALL, 5);
    const l = pool.add(LIP);
    pool.sharePorts(2, 0);
    assert.equal(pool.portGroup(2), 0);
    assert.equal(pool.portGroup(1), 1);
    assert.equal(pool.startingPort(l, 2), pool.startingPort(l, 0));
    const ports = new Set<number>();
    for (let k = 0; k < 16; k++) {
      const p = pool.allocate(l, k % 2 === 0 ? 0 : 2);
      assert.ok(p > 0 && !ports.has(p), `port ${p} handed out twice`);
      ports.add(p);
    }
    assert.equal(pool.allocate(l, 0), -1);
    assert.equal(pool.allocate(l, 2), -1);
    assert.equal(pool.portsInUse(l, 2), 16);
    assert.equal(pool.claim(l, 2, [...ports][0]!), false);
    pool.release(l, 2, [...ports][0]!);
    assert.equal(pool.portsInUse(l, 0), 15);
    assert.equal(drain(pool, l, 1).length, 16, 'the third RS has its own set');
    assert.throws(() => pool.sharePorts(3, 0), RangeError);
  });

  it('the engine gives connections of the two services distinct reply tuples', () => {
    const e = new Engine({ maxConnections: 4096, portRange: { min: 5000, max: 5999 } });
    const VIP = 0xc0000264;
    const RIP = 0x0a0a0202;
    for (const vport of [80, 81]) {
      e.addService({
        vip: VIP,
        vport,
        scheduler: 'rr',
        laddrs: [LIP],
        realServers: [{ addr: RIP, port: 8080, weight: 1 }],
      });
    }
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const out = feedRaw(
        e,
        buildSegment({
          src: 0x64400000 + i,
          dst: VIP,
          sport: 30000,
          dport: 80 + (i & 1),
          seq: 1,
          flags: TCP_SYN,
        }),
      );
      assert.equal(out.length, 1);
      const d = decodeSegment(out[0]!.bytes);
      assert.equal(d.dst, RIP, `connection ${i} scheduled (not refused)`);
      assert.ok(!seen.has(d.sport), `LIP:${d.sport} → RS given twice`);
      seen.add(d.sport);
    }
    // 1000 ports in the range: all taken now, by both services together.
    const refused = feedRaw(
      e,
      buildSegment({ src: 0x64500000, dst: VIP, sport: 30000, dport: 81, seq: 1, flags: TCP_SYN }),
    );
    assert.equal(decodeSegment(refused[0]!.bytes).flags & TCP_RST, TCP_RST);
    assert.equal(tableInconsistency(e), null);
  });
});
