/**
 * UDP through the engine under fire: UDP services of both families (IPv4,
 * IPv6, FNAT64) under each UOA mode, fed valid flows (queries, answers,
 * datagrams at the RS path's MTU that need the UOA carried ahead), then the
 * same datagrams mutated (bits flipped, bytes set, truncated, extended, the
 * UDP length lying, checksums zeroed), UOA-bearing datagrams from either
 * side (opp and ipo, as a client or an RS might send them), and random
 * bytes. For every packet: no throw, counted exactly once, and every
 * buffer back in the pool once the outputs are taken.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import type { UoaSetting } from '../../src/engine/options.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { insertIpoV4, insertOpp } from '../../src/wire/uoa.js';
import {
  CIP,
  LIP,
  RIP,
  VIP,
  assertCountedOnce,
  feedCountedOnce,
} from '../support/engine-fixture.js';
import { CIP6, LIP6, LIP64, RIP6, RIP64, VIP6 } from '../support/engine6-fixture.js';
import { rng } from '../support/rng.js';
import { buildUdp4, buildUdp6, readUdp } from '../support/udp-packets.js';

const v6 = (b: Uint8Array): Ipv6Address => Ipv6Address.fromBytes(b);
const num = (a: Uint8Array): number => ((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0;

function engineFor(mode: UoaSetting): Engine {
  const e = new Engine({ maxConnections: 4096, uoaMode: mode });
  e.addService({
    vip: VIP,
    vport: 53,
    protocol: 'UDP',
    scheduler: 'rr',
    laddrs: [LIP],
    realServers: [{ addr: RIP, port: 5353, weight: 1, mtu: 700 }],
  });
  e.addService({
    vip: v6(VIP6),
    vport: 53,
    protocol: 'UDP',
    scheduler: 'rr',
    laddrs: [v6(LIP6)],
    realServers: [{ addr: v6(RIP6), port: 5353, weight: 1, mtu: 1300 }],
  });
  e.addService({
    vip: v6(VIP6),
    vport: 54,
    protocol: 'UDP',
    scheduler: 'rr',
    laddrs: [LIP64],
    realServers: [{ addr: RIP64, port: 5353, weight: 1, mtu: 1280 }],
  });
  return e;
}

/** An IPv4 fragment (MF or an offset) or an IPv6 packet with a Fragment header. */
function isFragment(b: Uint8Array): boolean {
  return b[0]! >>> 4 === 4 ? (((b[6]! << 8) | b[7]!) & 0x3fff ? true : false) : b[6] === 44;
}

/** Client datagrams of a few flows and sizes, and the answers their RSs send. */
function seeds(e: Engine, rnd: () => number): Uint8Array[] {
  const out: Uint8Array[] = [];
  const sizes = [0, 1, 20, 512, 700 - 28 - 6, 700 - 28, 1300 - 48, 1280 - 28];
  for (let f = 0; f < 6; f++) {
    const sport = 30000 + f;
    const n = sizes[Math.floor(rnd() * sizes.length)]!;
    const noChecksum = f % 2 === 0;
    const q4 = buildUdp4({
      src: CIP,
      dst: VIP,
      sport,
      dport: 53,
      payload: new Uint8Array(n),
      noChecksum,
    });
    const q6 = buildUdp6({ src: CIP6, dst: VIP6, sport, dport: 53, payload: new Uint8Array(n) });
    const q64 = buildUdp6({ src: CIP6, dst: VIP6, sport, dport: 54, payload: new Uint8Array(n) });
    out.push(q4, q6, q64);
    // The answers, to the LIP ports the engine picked for these flows.
    for (const q of [q4, q6, q64]) {
      const sent = feedCountedOnce(e, q, 'seed');
      // The last output whole (not a fragment: a large datagram goes to the RS in pieces); the
      // first piece before it is the UOA carrier, with the flow's ports too.
      const last = sent.filter((o) => !isFragment(o)).pop();
      if (!last) continue;
      const s = readUdp(last);
      if (s.family === 4) {
        const answer = { sport: 5353, dport: s.sport, payload: new Uint8Array(17) };
        out.push(
          buildUdp4({ ...answer, src: num(s.dst), dst: num(s.src), noChecksum: f % 3 === 0 }),
        );
      } else
        out.push(
          buildUdp6({
            src: RIP6,
            dst: LIP6,
            sport: 5353,
            dport: s.sport,
            payload: new Uint8Array(17),
          }),
        );
    }
  }
  // UOA-bearing datagrams as a client (or a confused RS) might send them.
  const withRoom = (b: Uint8Array): { buf: Uint8Array; start: number } => {
    const buf = new Uint8Array(b.length + 64);
    buf.set(b, 32);
    return { buf, start: 32 };
  };
  for (const base of [out[0]!, out[1]!, out[2]!]) {
    const r = withRoom(base);
    const v4 = base[0]! >>> 4 === 4;
    const s = insertOpp(r.buf, r.start, base.length, 1, v4 ? base : CIP6, v4 ? 12 : 0, v4 ? 4 : 16);
    if (s >= 0) out.push(r.buf.slice(s, s + base.length + (v4 ? 12 : 24)));
    if (v4) {
      const r2 = withRoom(base);
      const s2 = insertIpoV4(r2.buf, r2.start, base.length, 1, base, 12);
      if (s2 >= 0) out.push(r2.buf.slice(s2, s2 + base.length + 8));
    }
  }
  return out;
}

function mutate(b: Uint8Array, rnd: () => number): Uint8Array {
  const m = b.slice();
  const v6 = m[0]! >>> 4 === 6;
  const udp = v6 ? 40 : (m[0]! & 0x0f) * 4;
  switch (Math.floor(rnd() * 8)) {
    case 0:
      m[Math.floor(rnd() * m.length)]! ^= 1 << Math.floor(rnd() * 8);
      return m;
    case 1:
      m[Math.floor(rnd() * m.length)] = Math.floor(rnd() * 256);
      return m;
    case 2:
      return m.subarray(0, Math.floor(rnd() * m.length));
    case 3: {
      const x = new Uint8Array(m.length + 1 + Math.floor(rnd() * 40));
      x.set(m);
      return x;
    }
    case 4: // the UDP length lies
      if (udp + 6 <= m.length) {
        m[udp + 4] = Math.floor(rnd() * 256);
        m[udp + 5] = Math.floor(rnd() * 256);
      }
      return m;
    case 5: // checksum zeroed
      if (udp + 8 <= m.length) {
        m[udp + 6] = 0;
        m[udp + 7] = 0;
      }
      return m;
    case 6: // the IP length lies
      if (v6) m[5] = Math.floor(rnd() * 256);
      else m[3] = Math.floor(rnd() * 256);
      return m;
    default: {
      const r = new Uint8Array(Math.floor(rnd() * 120));
      for (let i = 0; i < r.length; i++) r[i] = Math.floor(rnd() * 256);
      if (r.length > 0) r[0] = rnd() < 0.5 ? 0x45 : 0x60;
      if (r.length > 9) r[9] = 17;
      if (r.length > 6 && r[0] === 0x60) r[6] = 17;
      return r;
    }
  }
}

test('UDP fuzz: valid, mutated, UOA-bearing and random datagrams under each UOA mode — no throw, counted once, buffers back', () => {
  for (const mode of ['opp', 'ipo', 'off'] as const) {
    const rnd = rng(mode.length * 7919);
    const e = engineFor(mode);
    const corpus = seeds(e, rnd);
    assert.ok(corpus.length >= 30, `${mode}: corpus of ${corpus.length}`);
    for (const pkt of corpus) feedCountedOnce(e, pkt, `${mode} seed`);
    for (let i = 0; i < 4000; i++) {
      const pkt = mutate(corpus[Math.floor(rnd() * corpus.length)]!, rnd);
      feedCountedOnce(e, pkt, `${mode} mutant ${i}`);
      if (i % 500 === 0) e.tick(i * 1000);
    }
    e.tick(10_000_000);
    assertCountedOnce(e);
    assert.equal(e.connectionCount, 0, `${mode}: every flow expired`);
    assert.equal(e.pool.available, e.pool.created, `${mode}: every buffer back in the pool`);
    assert.ok(e.counter('udp_flows_created') > 0);
    assert.ok(e.counter('malformed_dropped') > 0);
    assert.ok(e.counter('udp_zero_checksum_dropped') > 0);
    if (mode !== 'off') assert.ok(e.counter('uoa_empty_sent') > 0, `${mode}: UOAs carried ahead`);
  }
});
