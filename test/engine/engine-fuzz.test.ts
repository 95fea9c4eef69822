/**
 * Hostile input through the whole engine: valid packets of live connections,
 * the same packets mutated (bit flips, truncation, junk options, lying
 * lengths), and random bytes. The engine must never throw, must account for
 * every packet (forwarded or counted as a drop), and must never turn a packet
 * whose checksum was right into one whose checksum is wrong.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Engine } from '../../src/engine/engine.js';
import { C, DROP_COUNTERS } from '../../src/engine/counters.js';
import type { ToaPolicy } from '../../src/engine/config.js';
import { Ipv4View } from '../../src/wire/ipv4.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TcpView } from '../../src/wire/tcp.js';
import { opt } from '../../src/wire/tcp-options.js';
import { toaV4Option } from '../../src/wire/toa.js';
import { buildSegment, checksumsValid, pattern } from '../support/packets.js';

const VIP = 0xc0000264;
const LIP = 0x0a0a0301;
const RIP = 0x0a0a0202;

function newEngine(policy: ToaPolicy): Engine {
  const e = new Engine({
    toaPolicy: policy,
    maxConnections: 32,
    portRange: { min: 5000, max: 5015 },
  });
  e.addService({
    vip: VIP,
    vport: 80,
    scheduler: 'rr',
    laddrs: [LIP],
    realServers: [{ addr: RIP, port: 80, weight: 1, mtu: 1400 }],
  });
  return e;
}

/** Valid packets of a few connections in both directions, built against a scratch engine. */
function corpus(policy: ToaPolicy): Uint8Array[] {
  const e = newEngine(policy);
  const out: Uint8Array[] = [];
  const tcp = new TcpView();
  const ip = new Ipv4View();
  for (let k = 0; k < 4; k++) {
    const cip = 0xcb007101 + k;
    const cport = 40000 + k;
    const syn = buildSegment({
      src: cip,
      dst: VIP,
      sport: cport,
      dport: 80,
      seq: 1000,
      flags: TCP_SYN,
      options: [opt.mss(1460), opt.sackPermitted(), opt.timestamp(1, 0), opt.nop(), opt.wscale(7)],
    });
    out.push(syn);
    const p = e.pool.take();
    p.load(syn);
    e.process(p);
    const q = e.out[0]!;
    ip.wrap(q.buf, q.start);
    tcp.wrap(q.buf, q.start + 20);
    const lport = tcp.srcPort;
    const lbIsn = tcp.seq;
    e.pool.give(q);
    e.clearOutput();
    const c = (
      seq: number,
      ack: number,
      flags: number,
      payload?: Uint8Array,
      options = [toaV4Option(1, 0x06060606)],
    ) =>
      buildSegment({
        src: cip,
        dst: VIP,
        sport: cport,
        dport: 80,
        seq,
        ack,
        flags,
        payload,
        options,
      });
    const r = (seq: number, ack: number, flags: number, payload?: Uint8Array) =>
      buildSegment({
        src: RIP,
        dst: LIP,
        sport: 80,
        dport: lport,
        seq,
        ack,
        flags,
        payload,
        options: [opt.mss(1460), opt.nop(), opt.nop(), opt.sack([[lbIsn + 5, lbIsn + 9]])],
      });
    out.push(
      r(9000, lbIsn + 1, TCP_SYN | TCP_ACK),
      c(1001, 9001, TCP_ACK),
      c(1001, 9001, TCP_ACK | TCP_PSH, pattern(300)),
      c(1001, 9001, TCP_ACK | TCP_PSH | TCP_FIN, pattern(1460)),
      c(1001, 9001, TCP_ACK, pattern(200), [
        opt.nop(),
        opt.nop(),
        opt.sack([
          [1, 2],
          [3, 4],
          [5, 6],
        ]),
        { kind: 79, data: pattern(10) },
      ]),
      r(9001, lbIsn + 301, TCP_ACK, pattern(500)),
      c(1301, 9501, TCP_ACK | TCP_FIN),
      r(9501, lbIsn + 302, TCP_ACK | TCP_FIN),
      c(1302, 9502, TCP_RST),
    );
  }
  return out;
}

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; len: number }
  | { kind: 'extend'; extra: Uint8Array }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'random'; bytes: Uint8Array };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(1600), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant('truncate' as const), len: fc.nat(1600) }),
  fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ maxLength: 64 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(80), value: fc.nat(255) }),
  fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ maxLength: 120 }) }),
);

function apply(b: Uint8Array, m: Mutation): Uint8Array {
  switch (m.kind) {
    case 'flip': {
      const c = b.slice();
      if (c.length) c[m.at % c.length]! ^= 1 << m.bit;
      return c;
    }
    case 'truncate':
      return b.slice(0, m.len % (b.length + 1));
    case 'extend': {
      const c = new Uint8Array(b.length + m.extra.length);
      c.set(b);
      c.set(m.extra, b.length);
      return c;
    }
    case 'set': {
      const c = b.slice();
      if (c.length) c[m.at % c.length] = m.value;
      return c;
    }
    case 'random':
      return m.bytes;
  }
}

function tcpChecksumValid(b: Uint8Array): boolean {
  const ip = new Ipv4View().wrap(b, 0);
  if (b.length < 20 || ip.version !== 4 || ip.protocol !== 6) return false;
  const hl = ip.headerLength;
  const tl = ip.totalLength;
  if (hl < 20 || tl < hl + 20 || tl > b.length || ip.computeChecksum() !== ip.checksum)
    return false;
  const t = new TcpView().wrap(b, hl);
  return t.computeChecksumV4(0, tl - hl) === t.checksum;
}

for (const policy of ['lvs', 'dpvs', 'fullnat'] as const) {
  test(`fuzz (${policy}): no throw, every packet accounted for, valid stays valid`, () => {
    const base = corpus(policy);
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.nat(base.length - 1), fc.array(mutation, { maxLength: 3 }), fc.nat(200)),
          {
            minLength: 1,
            maxLength: 60,
          },
        ),
        (steps) => {
          const e = newEngine(policy);
          let now = 0;
          for (const [which, muts, dt] of steps) {
            let pkt = base[which]!;
            for (const m of muts) pkt = apply(pkt, m);
            const inputValid = tcpChecksumValid(pkt);
            now += dt * 50;
            e.tick(now);
            e.clearOutput();
            const p = e.pool.take();
            if (!p.load(pkt)) {
              e.pool.give(p);
              continue;
            }
            e.process(p);
            for (let i = 0; i < e.outCount; i++) {
              const q = e.out[i]!.view();
              const ip = new Ipv4View().wrap(q, 0);
              assert.equal(ip.totalLength, q.length, 'IP length matches the buffer');
              assert.equal(ip.computeChecksum(), ip.checksum, 'IP header checksum');
              if (inputValid && ip.protocol === 6)
                assert.ok(checksumsValid(q.slice()), 'TCP checksum stays valid');
              e.pool.give(e.out[i]!);
            }
            e.clearOutput();
            let dropped = 0;
            for (const name of DROP_COUNTERS) dropped += e.counters[C[name]]!;
            assert.equal(e.counters[C.rx_packets], e.counters[C.forwarded_packets]! + dropped);
            assert.ok(e.table.count <= 32);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
}

/** xorshift32: a fast deterministic stream, so a million cases cost seconds, not minutes. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

test('one million hostile packets through fullnat: no throw, every packet accounted for, memory bounded', () => {
  const base = corpus('fullnat');
  const e = newEngine('fullnat');
  const next = rng(0x5eed);
  const scratch = new Uint8Array(2000);
  const heapBefore = process.memoryUsage().heapUsed;
  const poolBefore = e.pool.available;
  const N = 1_000_000;
  let now = 0;
  for (let i = 0; i < N; i++) {
    const src = base[next() % base.length]!;
    let len = src.length;
    scratch.set(src);
    const r = next();
    switch (r & 7) {
      case 0: // random bytes
        len = next() % 120;
        for (let k = 0; k < len; k++) scratch[k] = next() & 0xff;
        break;
      case 1: // truncate
        len = next() % (len + 1);
        break;
      case 2: // flip bits in the headers
      case 3:
        for (let k = 0; k < 1 + ((r >>> 3) % 4); k++)
          scratch[next() % Math.min(len, 80)]! ^= 1 << (next() & 7);
        break;
      case 4: // lying lengths: IHL, total length, data offset
        scratch[0] = 0x40 | (next() & 0x0f);
        scratch[2] = next() & 0xff;
        scratch[32] = next() & 0xff;
        break;
      case 5: // option bytes of any kind and length
        for (let k = 40; k < Math.min(len, 60); k++) scratch[k] = next() & 0xff;
        break;
      default: // the valid packet as it is
        break;
    }
    if (i % 1000 === 0) {
      now += 500;
      e.tick(now);
    }
    const p = e.pool.take();
    p.load(scratch.subarray(0, len));
    e.process(p);
    for (let k = 0; k < e.outCount; k++) e.pool.give(e.out[k]!);
    e.clearOutput();
  }
  let dropped = 0;
  for (const name of DROP_COUNTERS) dropped += e.counters[C[name]]!;
  assert.equal(e.counters[C.rx_packets], N);
  assert.equal(e.counters[C.forwarded_packets]! + dropped, N);
  assert.ok(e.counters[C.forwarded_packets]! > N / 10, 'a good share still forwarded');
  assert.ok(e.table.count <= 32);
  assert.equal(e.pool.available, poolBefore, 'no packet buffer leaked');
  const grown = process.memoryUsage().heapUsed - heapBefore;
  assert.ok(grown < 64 * 1024 * 1024, `heap grew ${grown} bytes`);
});
