/**
 * The LB→RS initial sequence numbers and the scheduler's address hash:
 * deterministic for the same key and inputs, spread across tuples and keys,
 * and stored as the engine uses them (lbIsn, seqDelta).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';

import { ConnTable } from '../../src/engine/conn-table.js';
import { IsnGenerator, hashAddrAt } from '../../src/engine/isn.js';
import { fmix32 } from '../../src/engine/sched/hash.js';

const LIP = 0x0a0a0301;
const RIP = 0x0a0a0202;

describe('IsnGenerator.isn', () => {
  it('is the same for the same secret, tuple and time', () => {
    const a = new IsnGenerator(7);
    const b = new IsnGenerator(7);
    assert.equal(a.isn(LIP, RIP, 5000, 80, 1234.5), b.isn(LIP, RIP, 5000, 80, 1234.5));
  });

  it('differs when any tuple field or the secret differs', () => {
    const g = new IsnGenerator(7);
    const base = g.isn(LIP, RIP, 5000, 80, 0);
    assert.notEqual(g.isn(LIP + 1, RIP, 5000, 80, 0), base);
    assert.notEqual(g.isn(LIP, RIP + 1, 5000, 80, 0), base);
    assert.notEqual(g.isn(LIP, RIP, 5001, 80, 0), base);
    assert.notEqual(g.isn(LIP, RIP, 5000, 81, 0), base);
    assert.notEqual(new IsnGenerator(8).isn(LIP, RIP, 5000, 80, 0), base);
  });

  it('spreads over the 32-bit space: no collisions among 10 000 ports, top bits used', () => {
    const g = new IsnGenerator(0xdeadbeef);
    const seen = new Set<number>();
    let high = 0;
    for (let port = 1024; port < 11024; port++) {
      const v = g.isn(LIP, RIP, port, 80, 0);
      assert.ok(Number.isInteger(v) && v >= 0 && v <= 0xffffffff);
      seen.add(v);
      if (v >= 0x80000000) high++;
    }
    assert.equal(seen.size, 10000);
    assert.ok(high > 4500 && high < 5500, `${high} of 10000 have the top bit set`);
  });

  it('moves forward one per 4 µs of the clock, wrapping at 2^32', () => {
    const g = new IsnGenerator(1);
    const at0 = g.isn(LIP, RIP, 5000, 80, 0);
    assert.equal(g.isn(LIP, RIP, 5000, 80, 1), (at0 + 250) >>> 0);
    assert.equal(g.isn(LIP, RIP, 5000, 80, 0.004), (at0 + 1) >>> 0);
    assert.equal(g.isn(LIP, RIP, 5000, 80, 0.003), at0, 'less than one tick');
    const hour = 3_600_000;
    assert.equal(g.isn(LIP, RIP, 5000, 80, hour), (at0 + hour * 250) >>> 0);
  });
});

describe('IsnGenerator.storeSeqDelta', () => {
  function entry(t: ConnTable, lport: number): number {
    const h = new Uint8Array(24);
    h[23] = 80;
    const c = t.insertAt(h, 0, 20, 0);
    t.lip[c] = LIP;
    t.rip[c] = RIP;
    t.lport[c] = lport;
    t.rport[c] = 8080;
    return c;
  }

  const seqBytes = (seq: number): Uint8Array => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setUint32(4, seq >>> 0);
    return b;
  };

  it('stores the same ISN that isn() gives for the reply tuple, and the delta to the client ISN', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 1, max: 65535 }),
        fc.double({ min: 0, max: 1e9, noNaN: true }),
        (secret, clientIsn, lport, now) => {
          const g = new IsnGenerator(secret);
          const t = new ConnTable(2);
          const c = entry(t, lport);
          const clock = Float64Array.of(now);
          g.storeSeqDelta(t, c, clock, seqBytes(clientIsn), 4);
          assert.equal(t.lbIsn[c], g.isn(LIP, RIP, lport, 8080, now));
          // The engine adds seqDelta to client sequence numbers toward the RS.
          assert.equal((clientIsn + t.seqDelta[c]!) >>> 0, t.lbIsn[c]);
        },
      ),
    );
  });

  it('with isnAdjust -1 (the client ACK under SYNPROXY) the delta is taken from seq − 1', () => {
    const g = new IsnGenerator(99);
    const t = new ConnTable(2);
    const c = entry(t, 6000);
    const clock = Float64Array.of(5000);
    // The ACK's seq is the client ISN + 1; with seq 0 the ISN wraps to 0xffffffff.
    g.storeSeqDelta(t, c, clock, seqBytes(0), 4, -1);
    assert.equal((0xffffffff + t.seqDelta[c]!) >>> 0, t.lbIsn[c]);
    assert.equal(t.lbIsn[c], g.isn(LIP, RIP, 6000, 8080, 5000));
  });

  it('gives two legs of one client from different LIP ports different ISNs', () => {
    const g = new IsnGenerator(5);
    const t = new ConnTable(2);
    const a = entry(t, 6000);
    const b = entry(t, 6001);
    const clock = Float64Array.of(0);
    g.storeSeqDelta(t, a, clock, seqBytes(1000), 4);
    g.storeSeqDelta(t, b, clock, seqBytes(1000), 4);
    assert.notEqual(t.lbIsn[a], t.lbIsn[b]);
    assert.notEqual(t.seqDelta[a], t.seqDelta[b]);
  });
});

describe('IsnGenerator with a wall-clock origin', () => {
  it('runs the clock term from origin + engine clock, in isn() and storeSeqDelta alike', () => {
    const t = new ConnTable(2);
    const h = new Uint8Array(24);
    h[23] = 80;
    const c = t.insertAt(h, 0, 20, 0);
    t.lip[c] = LIP;
    t.rip[c] = RIP;
    t.lport[c] = 6000;
    t.rport[c] = 8080;
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: 0, max: 4_000_000_000_000 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (secret, origin, now) => {
          const g = new IsnGenerator(secret, origin);
          const plain = new IsnGenerator(secret);
          // The same hash; the clock term is (origin + now) · 250 mod 2^32.
          const expected =
            (plain.isn(LIP, RIP, 6000, 8080, 0) + (((origin + now) * 250) % 2 ** 32)) >>> 0;
          assert.equal(g.isn(LIP, RIP, 6000, 8080, now), expected);
          g.storeSeqDelta(t, c, Float64Array.of(now), new Uint8Array(4), 0);
          assert.equal(t.lbIsn[c], expected);
          assert.equal(t.seqDelta[c], expected, 'client ISN 0');
        },
      ),
    );
  });

  it('refuses an origin that is not a time', () => {
    for (const bad of [-1, NaN, Infinity, 2 ** 53])
      assert.throws(() => new IsnGenerator(1, bad), RangeError);
  });
});

describe('hashAddrAt', () => {
  it('is the 30-bit avalanche of the address at the offset', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.nat(16), (addr, off) => {
        const b = new Uint8Array(24).fill(0xee);
        new DataView(b.buffer).setUint32(off, addr);
        const h = hashAddrAt(b, off);
        assert.equal(h, fmix32(addr) & 0x3fffffff);
        assert.ok(h >= 0 && h < 2 ** 30);
        assert.equal(hashAddrAt(b.slice(), off), h, 'deterministic');
      }),
    );
  });

  it('differs for neighbouring addresses and reads only its 4 bytes', () => {
    const b = Uint8Array.of(9, 203, 0, 113, 7, 9);
    const c = Uint8Array.of(1, 203, 0, 113, 8, 1);
    assert.notEqual(hashAddrAt(b, 1), hashAddrAt(c, 1));
    const d = Uint8Array.of(0, 203, 0, 113, 7, 0);
    assert.equal(hashAddrAt(b, 1), hashAddrAt(d, 1));
  });
});
