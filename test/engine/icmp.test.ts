/**
 * ICMP through the engine: errors about a connection translated to its other
 * leg (the expected bytes built here independently), the path MTU learned
 * from frag-needed and its expiry, echo to a VIP, and what is dropped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import type { EngineOptions } from '../../src/engine/options.js';
import { COUNTER_NAMES } from '../../src/engine/counters.js';
import { ipv4ToString, parseIpv4 } from '../../src/wire/bytes.js';
import { internetChecksum } from '../../src/wire/checksum.js';
import { Ipv4View } from '../../src/wire/ipv4.js';
import { TCP_ACK, TCP_PSH, TCP_SYN, TcpView } from '../../src/wire/tcp.js';
import { opt } from '../../src/wire/tcp-options.js';
import {
  CIP,
  CISN,
  CPORT,
  LINUX_SYN_OPTS,
  LIP,
  RIP,
  RISN,
  RPORT,
  VIP,
  VPORT,
  assertCountedOnce,
  clientSegment,
  feed,
  feedRaw,
  newTestEngine,
  rsSegment,
} from '../support/engine-fixture.js';
import { icmpPacket, quoteOf } from '../support/icmp.js';
import { buildSegment, buildSegment6, pattern, v6 } from '../support/packets.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { probeTshark, tsharkDecode } from '../support/tshark.js';

const ROUTER_RS = parseIpv4('10.10.2.254');
const ROUTER_CLIENT = parseIpv4('198.51.100.1');

function engine(extra: Partial<EngineOptions> = {}, rsMtu?: number): Engine {
  return newTestEngine(
    { toaPolicy: 'fullnat', maxConnections: 64, ...extra },
    rsMtu === undefined ? {} : { rsMtu },
  );
}

/**
 * SYN, SYN+ACK, ACK, then 10 bytes from the RS, so the client's next
 * segments (ack RISN + 11) conclude nothing and carry no TOA: returns the
 * LB→RS ISN and LIP port.
 */
function open(e: Engine): { lbIsn: number; lport: number } {
  const [syn] = feed(e, clientSegment({ seq: CISN, flags: TCP_SYN, options: LINUX_SYN_OPTS }));
  assert.ok(syn);
  feed(
    e,
    rsSegment({
      lport: syn.sport,
      seq: RISN,
      ack: syn.seq + 1,
      flags: TCP_SYN | TCP_ACK,
      options: [opt.mss(1460), opt.nop(), opt.nop(), opt.sackPermitted()],
    }),
  );
  feed(e, clientSegment({ seq: CISN + 1, ack: RISN + 1, flags: TCP_ACK }));
  feed(
    e,
    rsSegment({
      lport: syn.sport,
      seq: RISN + 1,
      ack: syn.seq + 1,
      flags: TCP_ACK | TCP_PSH,
      payload: pattern(10),
    }),
  );
  return { lbIsn: syn.seq, lport: syn.sport };
}

/** `n` bytes from the client once open() is done: acks the RS's 10, so it concludes nothing. */
function clientData(n: number): Uint8Array {
  return clientSegment({ seq: CISN + 1, ack: RISN + 11, flags: TCP_ACK, payload: pattern(n) });
}

/** A segment the LB sent LIP:lport → RIP:RPORT, as a router on the RS path quotes it. */
function lbToRs(lport: number): Uint8Array {
  return buildSegment({ src: LIP, dst: RIP, sport: lport, dport: RPORT, seq: 1, flags: TCP_ACK });
}

/**
 * The quote of `orig` as the other leg sent it: `orig`'s first `n` bytes with
 * addresses, ports and sequence number replaced, the IP checksum recomputed
 * and, when quoted, the TCP checksum recomputed over the whole original segment.
 */
function expectedQuote(
  orig: Uint8Array,
  n: number,
  f: { src: number; dst: number; sport: number; dport: number; seq: number },
): Uint8Array {
  const full = orig.slice();
  const ip = new Ipv4View().wrap(full, 0);
  ip.src = f.src;
  ip.dst = f.dst;
  ip.updateChecksum();
  const t = new TcpView().wrap(full, ip.headerLength);
  t.srcPort = f.sport;
  t.dstPort = f.dport;
  t.seq = f.seq >>> 0;
  t.checksum = t.computeChecksumV4(0, ip.totalLength - ip.headerLength);
  return quoteOf(full, n);
}

test('frag-needed from the RS path: learned for the RS, sent to the client as VIP → CIP with MTU − 8 and its own seq', () => {
  const e = engine();
  open(e);
  const data = clientSegment({
    seq: CISN + 1,
    ack: RISN + 11,
    flags: TCP_ACK | TCP_PSH,
    payload: pattern(1400),
  });
  const [toRs] = feedRaw(e, data);
  assert.ok(toRs);
  assert.equal(toRs.bytes.length, 1440);
  // The router quotes what it got from the LB: the IP header and 28 bytes of TCP.
  const err = icmpPacket(ROUTER_RS, LIP, 3, 4, 1400, quoteOf(toRs.bytes, 48));
  const out = feedRaw(e, err);
  assert.equal(out.length, 1);
  const expected = icmpPacket(
    VIP,
    CIP,
    3,
    4,
    1392,
    expectedQuote(toRs.bytes, 48, {
      src: CIP,
      dst: VIP,
      sport: CPORT,
      dport: VPORT,
      seq: CISN + 1,
    }),
  );
  assert.deepEqual(out[0]!.bytes, expected);
  assert.equal(e.pathMtu(0), 1400);
  assert.equal(e.counter('icmp_pmtu_learned'), 1);
  assert.equal(e.counter('icmp_error_forwarded'), 1);
  assertCountedOnce(e);
});

test('frag-needed from the client path: sent to the RS as LIP → RIP about RIP:rport → LIP:lport, MTU kept', () => {
  const e = engine();
  const { lport, lbIsn } = open(e);
  const fromRs = rsSegment({
    lport,
    seq: RISN + 11,
    ack: lbIsn + 1,
    flags: TCP_ACK | TCP_PSH,
    payload: pattern(1460),
  });
  const [toClient] = feedRaw(e, fromRs);
  assert.ok(toClient);
  const err = icmpPacket(ROUTER_CLIENT, VIP, 3, 4, 1400, quoteOf(toClient.bytes, 28));
  const out = feedRaw(e, err);
  assert.equal(out.length, 1);
  // The quote is the RS's own segment again, byte for byte (its IP checksum was right).
  assert.deepEqual(out[0]!.bytes.subarray(28), quoteOf(fromRs, 28));
  assert.deepEqual(out[0]!.bytes, icmpPacket(LIP, RIP, 3, 4, 1400, quoteOf(fromRs, 28)));
  assert.equal(e.pathMtu(0), 1500, 'the client leg teaches the RS, not the LB');
  assertCountedOnce(e);
});

test('admin-prohibited for the LB SYN reaches the client quoting its own SYN', () => {
  const e = engine();
  const syn = clientSegment({ seq: CISN, flags: TCP_SYN, options: LINUX_SYN_OPTS });
  const [toRs] = feedRaw(e, syn);
  assert.ok(toRs);
  const err = icmpPacket(ROUTER_RS, LIP, 3, 13, 0, quoteOf(toRs.bytes, 28));
  const [out] = feedRaw(e, err);
  assert.ok(out);
  const ip = new Ipv4View().wrap(out.bytes, 0);
  assert.equal(ip.src, VIP);
  assert.equal(ip.dst, CIP);
  assert.equal(ip.computeChecksum(), ip.checksum);
  assert.equal(internetChecksum(out.bytes, 20, out.bytes.length - 20), 0);
  assert.equal(out.bytes[20], 3);
  assert.equal(out.bytes[21], 13);
  const q = new Ipv4View().wrap(out.bytes, 28);
  assert.equal(q.src, CIP);
  assert.equal(q.dst, VIP);
  assert.equal(q.computeChecksum(), q.checksum);
  const qt = new TcpView().wrap(out.bytes, 48);
  assert.equal(qt.srcPort, CPORT);
  assert.equal(qt.dstPort, VPORT);
  assert.equal(qt.seq, CISN, 'the client checks the seq lies in its window');
});

test('time exceeded on the RS path, whole segment quoted: the quoted TCP checksum follows the translation', () => {
  const e = engine();
  open(e);
  const data = clientData(100);
  const [toRs] = feedRaw(e, data);
  assert.ok(toRs);
  const err = icmpPacket(ROUTER_RS, LIP, 11, 0, 0, toRs.bytes);
  const [out] = feedRaw(e, err);
  assert.ok(out);
  // The whole segment was quoted, so its checksum can be checked: it is the client's own.
  assert.deepEqual(out.bytes.subarray(28), data);
});

test('PROXY protocol: the quoted seq of data behind the header moves back by the header too', () => {
  const e = newTestEngine({ toaPolicy: 'fullnat', maxConnections: 64 }, { proxyProtocol: 1 });
  open(e);
  const data = clientSegment({
    seq: CISN + 1,
    ack: RISN + 1,
    flags: TCP_ACK,
    payload: pattern(10),
  });
  const outs = feedRaw(e, data);
  assert.equal(outs.length, 2, 'the PROXY header, then the data behind it');
  for (const [k, o] of outs.entries()) {
    const err = icmpPacket(ROUTER_RS, LIP, 3, 1, 0, quoteOf(o.bytes, 28));
    const [out] = feedRaw(e, err);
    assert.ok(out);
    // Both are about the client's first byte: the header stands in front of it.
    assert.equal(new TcpView().wrap(out.bytes, 48).seq, CISN + 1, `piece ${k}`);
  }
});

test('an error quoting no connection, a lying or truncated quote, a bad checksum: dropped and counted, nothing sent', () => {
  const e = engine();
  const { lport } = open(e);
  const stray = lbToRs(lport + 1);
  const known = lbToRs(lport);
  const lying = buildSegment({
    src: VIP,
    dst: RIP,
    sport: lport,
    dport: RPORT,
    seq: 1,
    flags: TCP_ACK,
  });
  const cases: [Uint8Array, string][] = [
    [icmpPacket(ROUTER_RS, LIP, 3, 4, 1400, quoteOf(stray, 28)), 'icmp_error_no_conn_dropped'],
    [icmpPacket(ROUTER_RS, LIP, 3, 4, 1400, quoteOf(lying, 28)), 'icmp_error_no_conn_dropped'],
    [icmpPacket(ROUTER_RS, LIP, 3, 4, 1400, quoteOf(known, 27)), 'icmp_malformed_dropped'],
    [icmpPacket(ROUTER_RS, LIP, 3, 4, 1400, quoteOf(known, 28), true), 'icmp_malformed_dropped'],
    [icmpPacket(ROUTER_RS, LIP, 5, 0, 0, quoteOf(known, 28)), 'icmp_unhandled_dropped'],
    [icmpPacket(ROUTER_RS, RIP, 3, 4, 1400, quoteOf(known, 28)), 'icmp_unhandled_dropped'],
    [icmpPacket(ROUTER_RS, LIP, 8, 0, 0x00010001, pattern(8)), 'icmp_unhandled_dropped'],
  ];
  for (const [pkt, counter] of cases) {
    const before = e.counter(counter as (typeof COUNTER_NAMES)[number]);
    assert.equal(feedRaw(e, pkt).length, 0, counter);
    assert.equal(e.counter(counter as (typeof COUNTER_NAMES)[number]), before + 1, counter);
  }
  assert.equal(e.pathMtu(0), 1500, 'nothing learned from a quote of no connection');
  assertCountedOnce(e);
});

test('path MTU: never raised by an ICMP, values below 552 ignored, forgotten after pmtuExpiresMs', () => {
  const e = engine({ pmtuExpiresMs: 60_000 });
  const { lport } = open(e);
  const known = lbToRs(lport);
  const frag = (mtu: number, now: number): void => {
    feedRaw(e, icmpPacket(ROUTER_RS, LIP, 3, 4, mtu, quoteOf(known, 28)), now);
  };
  frag(500, 1000);
  assert.equal(e.pathMtu(0), 1500, 'below 552: ignored');
  frag(1400, 1000);
  assert.equal(e.pathMtu(0), 1400);
  frag(1450, 2000);
  assert.equal(e.pathMtu(0), 1400, 'never raised');
  frag(1300, 30_000);
  assert.equal(e.pathMtu(0), 1300);
  e.tick(89_999);
  assert.equal(e.pathMtu(0), 1300);
  e.tick(90_000);
  assert.equal(e.pathMtu(0), 1500, 'forgotten 60 s after the last lowering');
  assert.equal(e.counter('icmp_pmtu_learned'), 2);
  assert.equal(e.counter('icmp_pmtu_ignored'), 2);
});

test('a learned path MTU clamps the next SYN+ACK MSS and makes the existing connection split its TOA packets', () => {
  const e = engine();
  const { lport } = open(e);
  const known = lbToRs(lport);
  feedRaw(e, icmpPacket(ROUTER_RS, LIP, 3, 4, 1400, quoteOf(known, 28)));
  // Existing connection: a full-size client segment no longer fits; the client is told 1392.
  const big = clientData(1460);
  const [icmp] = feedRaw(e, big);
  assert.ok(icmp);
  assert.equal(icmp.bytes[20], 3);
  assert.equal(icmp.bytes[21], 4);
  assert.equal((icmp.bytes[26]! << 8) | icmp.bytes[27]!, 1392);
  // A new connection: the RS's MSS 1460 is clamped to what 1400 leaves with the TOA in.
  const [syn] = feed(
    e,
    clientSegment({ seq: CISN, flags: TCP_SYN, options: LINUX_SYN_OPTS, sport: CPORT + 1 }),
  );
  assert.ok(syn);
  const [synAck] = feed(
    e,
    rsSegment({
      lport: syn.sport,
      seq: RISN,
      ack: syn.seq + 1,
      flags: TCP_SYN | TCP_ACK,
      options: [opt.mss(1460)],
    }),
  );
  assert.ok(synAck);
  assert.deepEqual(
    synAck.options.find((o) => o.kind === 2),
    opt.mss(1400 - 40 - 8),
  );
  // Its handshake-concluding packet with data too big for 1400 is split, each piece with the TOA.
  const first = clientSegment({
    seq: CISN + 1,
    ack: RISN + 1,
    flags: TCP_ACK,
    payload: pattern(1400),
    sport: CPORT + 1,
  });
  const pieces = feed(e, first);
  assert.equal(pieces.length, 2);
  for (const q of pieces) {
    assert.ok(q.bytes.length <= 1400);
    assert.equal(q.toa.family, 4, 'every piece carries the TOA');
  }
});

test('echo to a VIP: answered in place, rate-limited, off with icmpEcho false', () => {
  const e = engine();
  const ping = icmpPacket(CIP, VIP, 8, 0, 0x12340001, pattern(56));
  const [reply] = feedRaw(e, ping);
  assert.ok(reply);
  const expected = icmpPacket(VIP, CIP, 0, 0, 0x12340001, pattern(56));
  assert.deepEqual(reply.bytes, expected);
  assert.equal(e.counter('icmp_echo_replied'), 1);
  // A flood: the bucket's 50 at once, then one a millisecond.
  let replies = 0;
  for (let i = 0; i < 100; i++) replies += feedRaw(e, ping).length;
  assert.equal(replies, 49);
  assert.equal(e.counter('icmp_rate_limited'), 51);
  e.reconfigure({ icmpEcho: false });
  assert.equal(feedRaw(e, ping, 10_000).length, 0);
  assert.equal(e.counter('icmp_echo_dropped'), 1);
  assertCountedOnce(e);
});

test('forwarded errors are rate-limited: a flood of valid quotes costs one token each', () => {
  const e = engine();
  const { lport } = open(e);
  const known = lbToRs(lport);
  let out = 0;
  for (let i = 0; i < 200; i++)
    out += feedRaw(e, icmpPacket(ROUTER_RS, LIP, 3, 1, 0, quoteOf(known, 28))).length;
  assert.equal(out, 50);
  assert.equal(e.counter('icmp_rate_limited'), 150);
  assertCountedOnce(e);
});

const tshark = probeTshark();

test(
  'tshark decodes the translated errors and the echo reply: good ICMP and IP checksums, outer and quoted',
  { skip: tshark.ok ? undefined : tshark.reason },
  () => {
    const e = engine();
    const { lport, lbIsn } = open(e);
    const data = clientData(1400);
    const [toRs] = feedRaw(e, data);
    const fromRs = rsSegment({
      lport,
      seq: RISN + 11,
      ack: lbIsn + 1401,
      flags: TCP_ACK,
      payload: pattern(1460),
    });
    const [toClient] = feedRaw(e, fromRs);
    assert.ok(toRs && toClient);
    const packets = [
      ...feedRaw(e, icmpPacket(ROUTER_RS, LIP, 3, 4, 1400, quoteOf(toRs.bytes, 68))),
      ...feedRaw(e, icmpPacket(ROUTER_CLIENT, VIP, 3, 4, 1400, quoteOf(toClient.bytes, 28))),
      ...feedRaw(e, icmpPacket(ROUTER_RS, LIP, 3, 13, 0, quoteOf(toRs.bytes, 48))),
      ...feedRaw(e, icmpPacket(ROUTER_RS, LIP, 11, 0, 0, quoteOf(toRs.bytes, 48))),
      ...feedRaw(e, icmpPacket(CIP, VIP, 8, 0, 0x00070001, pattern(56))),
    ].map((o) => o.bytes);
    assert.equal(packets.length, 5);
    const rows = tsharkDecode(packets, [
      'ip.src',
      'ip.dst',
      'ip.checksum.status',
      'icmp.type',
      'icmp.code',
      'icmp.checksum.status',
      'icmp.mtu',
      'tcp.srcport',
      'tcp.dstport',
      'tcp.seq',
    ]);
    const ip = ipv4ToString;
    const errs = rows.slice(0, 4);
    for (const r of rows) {
      assert.equal(r['icmp.checksum.status'], '1', JSON.stringify(r));
      for (const s of r['ip.checksum.status']!.split(',')) assert.equal(s, '1', JSON.stringify(r));
    }
    const toClientLeg = [`${ip(VIP)},${ip(CIP)}`, `${ip(CIP)},${ip(VIP)}`];
    assert.deepEqual(
      errs.map((r) => [r['ip.src'], r['ip.dst'], r['icmp.type'], r['icmp.code'], r['icmp.mtu']]),
      [
        [...toClientLeg, '3', '4', '1392'],
        [`${ip(LIP)},${ip(RIP)}`, `${ip(RIP)},${ip(LIP)}`, '3', '4', '1400'],
        [...toClientLeg, '3', '13', ''],
        [...toClientLeg, '11', '0', ''],
      ],
    );
    // The quoted segments as the other leg's host sent them: its ports and sequence number.
    assert.deepEqual(
      errs.map((r) => [r['tcp.srcport'], r['tcp.dstport'], r['tcp.seq']]),
      [
        [String(CPORT), String(VPORT), String(CISN + 1)],
        [String(RPORT), String(lport), String(RISN + 11)],
        [String(CPORT), String(VPORT), String(CISN + 1)],
        [String(CPORT), String(VPORT), String(CISN + 1)],
      ],
    );
    const echo = rows[4]!;
    assert.deepEqual([echo['ip.src'], echo['ip.dst'], echo['icmp.type']], [ip(VIP), ip(CIP), '0']);
  },
);

test('FNAT64: a frag-needed from the IPv4 RS path lowers its MTU and reaches the IPv6 client as ICMPv6 Packet Too Big', () => {
  const e = new Engine({ toaPolicy: 'fullnat', maxConnections: 64 });
  const vip6 = Ipv6Address.fromBytes(v6('2001:db8::100'));
  e.addService({
    vip: vip6,
    vport: 81,
    scheduler: 'rr',
    laddrs: [LIP],
    realServers: [{ addr: RIP, port: RPORT, weight: 1 }],
  });
  const syn6 = buildSegment6({
    src: v6('2001:db8:c::1'),
    dst: vip6.bytes,
    sport: CPORT,
    dport: 81,
    seq: CISN,
    ack: 0,
    flags: TCP_SYN,
    options: LINUX_SYN_OPTS,
  });
  const [toRs] = feedRaw(e, syn6);
  assert.ok(toRs);
  assert.equal(toRs.bytes[0]! >>> 4, 4, 'the RS leg is IPv4');
  const out = feedRaw(e, icmpPacket(ROUTER_RS, LIP, 3, 4, 1400, quoteOf(toRs.bytes, 48)));
  assert.equal(out.length, 1);
  const b = out[0]!.bytes;
  assert.equal(b[0]! >>> 4, 6, 'the client hears in ICMPv6');
  assert.deepEqual([b[6], b[40], b[41]], [58, 2, 0], 'Packet Too Big');
  // 1400 on the IPv4 leg is 1420 on the IPv6 one, less the 20-byte TOA under fullnat.
  assert.equal(((b[44]! << 24) | (b[45]! << 16) | (b[46]! << 8) | b[47]!) >>> 0, 1400);
  assert.equal(e.counter('icmp_error_family_dropped'), 0);
  assert.equal(e.counter('icmp_error_forwarded'), 1);
  assert.equal(e.pathMtu(0), 1400);
  assertCountedOnce(e);
});
