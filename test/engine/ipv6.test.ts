/**
 * IPv6 services through the engine: IPv6 → IPv6 and FNAT64 (IPv6 client,
 * IPv4 RS), the 20-byte TOA under each policy, MSS clamp, split, ICMPv6
 * Packet Too Big, extension headers, expiry, and the registry's refusals.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import type { EngineOptions, ToaSetting } from '../../src/engine/options.js';
import { get16, get32, parseIpv4 } from '../../src/wire/bytes.js';
import { checksumExcludingField, sumWords } from '../../src/wire/checksum.js';
import { Ipv4View } from '../../src/wire/ipv4.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../src/wire/tcp.js';
import { opt, type TcpOption } from '../../src/wire/tcp-options.js';
import { decodeProxyHeader } from '../../src/wire/proxy-protocol.js';
import { assertCountedOnce, feedRaw } from '../support/engine-fixture.js';
import {
  CIP6,
  CPORT6,
  LIP6,
  LIP64,
  RIP6,
  RIP64,
  V6_PORT,
  VIP6,
  client6Segment,
  decodeChecked46,
  ip6,
  newDualEngine,
  rsSegment46,
} from '../support/engine6-fixture.js';
import type { DecodedAnyFamily } from '../support/decode.js';
import { probeTshark, tsharkDecode } from '../support/tshark.js';
import { buildSegment6, pattern, type Segment6Spec } from '../support/packets.js';

const CISN = 1000;
const RISN = 50000;

type Out = DecodedAnyFamily;
const decode = decodeChecked46;

/** Service on port 80 with an IPv6 RS, on port 81 with an IPv4 RS (FNAT64). */
function makeEngine(policy: ToaSetting, extra: Partial<EngineOptions> = {}, rsMtu = 1500): Engine {
  return newDualEngine(
    { toaPolicy: policy, maxConnections: 64, isnSecret: 7, ...extra },
    { rsMtu },
  );
}

function feed(e: Engine, bytes: Uint8Array, now?: number): Uint8Array[] {
  return feedRaw(e, bytes, now).map((o) => o.bytes);
}

function client(
  vport: number,
  seq: number,
  ack: number,
  flags: number,
  payload?: Uint8Array,
  options?: TcpOption[],
  src = CIP6,
): Uint8Array {
  return client6Segment({ vport, seq, ack, flags, payload, options, src });
}

/** From the RS behind `vport`: IPv6 behind 80, IPv4 behind 81. */
function rs(
  vport: number,
  lport: number,
  seq: number,
  ack: number,
  flags: number,
  options?: TcpOption[],
  payload?: Uint8Array,
): Uint8Array {
  return rsSegment46({ vport, lport, seq, ack, flags, options, payload });
}

/**
 * SYN, RS SYN+ACK, ACK, then one byte from the RS: the RS speaks first, so
 * the client's packets no longer conclude (no TOA wanted). Client at CISN + 1,
 * RS at RISN + 2.
 */
function openRsFirst(e: Engine, vport: number): void {
  feed(e, client(vport, CISN, 0, TCP_SYN));
  const lport = e.listConnections()[0]!.lport;
  feed(e, rs(vport, lport, RISN, 0, TCP_SYN | TCP_ACK));
  feed(e, client(vport, CISN + 1, RISN + 1, TCP_ACK));
  feed(e, rs(vport, lport, RISN + 1, 0, TCP_ACK, undefined, pattern(1)));
}

/** SYN, RS SYN+ACK (answered with `rsMss`), concluding ACK; returns the three outputs. */
function handshake(
  e: Engine,
  vport: number,
  rsMss = 1460,
  src = CIP6,
): { syn: Out; synAck: Out; ack: Out } {
  const syns = feed(
    e,
    client(
      vport,
      CISN,
      0,
      TCP_SYN,
      undefined,
      [opt.mss(1440), opt.sackPermitted(), opt.timestamp(5, 0), opt.nop(), opt.wscale(7)],
      src,
    ),
  );
  assert.equal(syns.length, 1);
  const syn = decode(syns[0]!);
  const rsOpts = [
    opt.mss(rsMss),
    opt.nop(),
    opt.nop(),
    opt.sackPermitted(),
    opt.nop(),
    opt.wscale(7),
  ];
  const synAckIn = rs(vport, syn.sport, RISN, syn.seq + 1, TCP_SYN | TCP_ACK, rsOpts);
  const sa = feed(e, synAckIn);
  assert.equal(sa.length, 1);
  const synAck = decode(sa[0]!);
  const acks = feed(e, client(vport, CISN + 1, RISN + 1, TCP_ACK, undefined, undefined, src));
  assert.equal(acks.length, 1);
  return { syn, synAck, ack: decode(acks[0]!) };
}

test('IPv6 → IPv6: LIP6 → RIP6 toward the RS, VIP → client back, TOA 254/20 on the concluding ACK, MSS clamped for 20', () => {
  const e = makeEngine('fullnat');
  const { syn, synAck, ack } = handshake(e, 80);
  assert.equal(syn.family, 6);
  assert.equal(syn.src, '2001:db8:1::1');
  assert.equal(syn.dst, '2001:db8:2::10');
  assert.equal(syn.dport, 8080);
  assert.equal(syn.toa, null, 'no TOA on the SYN under fullnat');
  assert.equal(e.counter('timestamp_removed'), 1);
  assert.equal(synAck.family, 6);
  assert.equal(synAck.src, '2001:db8::100');
  assert.equal(synAck.dst, '2001:db8:c::1');
  assert.equal(synAck.sport, 80);
  assert.equal(synAck.dport, CPORT6);
  assert.equal(synAck.ack, CISN + 1, 'ack moved back into the client space');
  // min(1460 − 20, 1500 − 40 − 20 − 20)
  assert.equal(synAck.options.mss, 1420);
  assert.ok(ack.toa, 'the concluding ACK carries the TOA');
  assert.equal(ack.toa.kind, 254);
  assert.equal(ack.toa.family, 6);
  assert.equal(ack.toa.port, CPORT6);
  assert.deepEqual([...ack.toa.v6], [...CIP6]);
  assert.equal(ack.seq, syn.seq + 1);
  assert.equal(ack.toa.at, 40 + 20, 'the TOA goes first');
  // Until the RS sends its first byte every client packet acks RS ISN + 1 and concludes: TOA again.
  const d = decode(feed(e, client(80, CISN + 1, RISN + 1, TCP_ACK | TCP_PSH, pattern(300)))[0]!);
  assert.equal(d.payload, 300);
  assert.ok(d.toa);
  const back = decode(
    feed(
      e,
      rs(V6_PORT, syn.sport, RISN + 1, syn.seq + 301, TCP_ACK | TCP_PSH, undefined, pattern(1000)),
    )[0]!,
  );
  assert.equal(back.ack, CISN + 301);
  assert.equal(back.payload, 1000);
  const after = decode(feed(e, client(80, CISN + 301, RISN + 1001, TCP_ACK, pattern(5)))[0]!);
  assert.equal(after.toa, null, 'past the RS first byte: no TOA');
  assert.equal(after.seq, syn.seq + 301);
  const conns = e.listConnections();
  assert.equal(conns.length, 1);
  assert.equal(String(conns[0]!.cip), '2001:db8:c::1');
  assert.equal(String(conns[0]!.lip), '2001:db8:1::1');
  assert.equal(String(conns[0]!.rip), '2001:db8:2::10');
  assertCountedOnce(e);
});

test('FNAT64: the IPv6 client reaches an IPv4 RS (DF, ID 0, TTL from hop limit), replies go back as IPv6, TOA 20 in IPv4 TCP', () => {
  for (const kind of [254, 253] as const) {
    const e = makeEngine('fullnat', { toaV6Kind: kind });
    const { syn, synAck, ack } = handshake(e, 81);
    assert.equal(syn.family, 4);
    assert.equal(syn.src, '10.60.3.1');
    assert.equal(syn.dst, '10.60.2.10');
    const ip = new Ipv4View().wrap(syn.bytes, 0);
    assert.ok(ip.dontFragment);
    assert.equal(ip.id, 0);
    assert.equal(ip.ttl, 64);
    assert.equal(ip.headerLength, 20);
    assert.equal(synAck.family, 6);
    assert.equal(synAck.src, '2001:db8::100');
    assert.equal(synAck.dst, '2001:db8:c::1');
    assert.equal(synAck.ttl, 64, 'hop limit from the TTL');
    assert.equal(synAck.sport, 81);
    // min(1460 − 20, 1500 − 20 − 20 − 20)
    assert.equal(synAck.options.mss, 1440);
    assert.equal(ack.family, 4);
    assert.ok(ack.toa);
    assert.equal(ack.toa.kind, kind);
    assert.equal(ack.toa.family, 6);
    assert.equal(ack.toa.port, CPORT6);
    assert.deepEqual([...ack.toa.v6], [...CIP6]);
    // A full-sized client segment: 1440 payload fits the IPv4 leg.
    const big = decode(feed(e, client(81, CISN + 1, RISN + 1, TCP_ACK, pattern(1440)))[0]!);
    assert.equal(big.family, 4);
    assert.equal(big.payload, 1440);
    assertCountedOnce(e);
  }
});

test('the 20-byte TOA: fullnat splits a concluding segment it would not fit, lvs and dpvs give up (toa_failed_mtu)', () => {
  const ts = [opt.nop(), opt.nop(), opt.timestamp(9, 9)];
  for (const [vport, hdr] of [
    [80, 40],
    [81, 20],
  ] as const) {
    for (const policy of ['fullnat', 'dpvs', 'lvs'] as const) {
      const e = makeEngine(policy);
      feed(e, client(vport, CISN, 0, TCP_SYN, undefined, [opt.mss(1440)]));
      const syn = e.listConnections()[0]!;
      const sa = rs(vport, syn.lport, RISN, 0, TCP_SYN | TCP_ACK, [opt.mss(1460)]);
      // The ack of the SYN+ACK does not matter to the engine beyond its translation.
      feed(e, sa);
      // Fits the RS path without a TOA (exactly 1500 out), not with one.
      const payload = 1500 - hdr - 20 - 12;
      const outs = feed(
        e,
        client(vport, CISN + 1, RISN + 1, TCP_ACK | TCP_PSH, pattern(payload), ts),
      ).map(decode);
      if (policy === 'fullnat') {
        assert.equal(outs.length, 2, `${policy} ${vport}: split in two`);
        let total = 0;
        for (const o of outs) {
          assert.ok(o.toa, 'every piece carries the TOA');
          assert.ok(o.bytes.length <= 1500);
          total += o.payload;
        }
        assert.equal(total, payload);
        assert.equal(outs[1]!.seq, outs[0]!.seq + outs[0]!.payload);
        assert.equal(outs[0]!.flags & TCP_PSH, 0, 'PSH on the last piece only');
        assert.equal(e.counter('toa_split'), 1);
      } else {
        assert.equal(outs.length, 1, `${policy} ${vport}`);
        assert.equal(outs[0]!.toa, null);
        assert.equal(outs[0]!.bytes.length, 1500);
        assert.equal(e.counter('toa_failed_mtu'), 1);
      }
      assertCountedOnce(e);
    }
  }
});

test('the 20-byte TOA needs room among the options: dpvs prunes, lvs gives up, fullnat prunes', () => {
  // 24 bytes of options (SACK with 2 blocks + timestamp) leave 16: too few for 20.
  const opts = [
    opt.nop(),
    opt.nop(),
    opt.timestamp(9, 9),
    opt.nop(),
    opt.nop(),
    opt.sack([[1, 2]]),
  ];
  for (const policy of ['fullnat', 'dpvs', 'lvs'] as const) {
    const e = makeEngine(policy);
    feed(e, client(80, CISN, 0, TCP_SYN));
    const lport = e.listConnections()[0]!.lport;
    feed(e, rs(V6_PORT, lport, RISN, 0, TCP_SYN | TCP_ACK, [opt.mss(1460)]));
    const sack: TcpOption[] = [
      opt.nop(),
      opt.nop(),
      opt.timestamp(9, 9),
      opt.sack([
        [RISN + 1, RISN + 2],
        [RISN + 3, RISN + 4],
      ]),
    ];
    void opts;
    const outs = feed(e, client(80, CISN + 1, RISN + 1, TCP_ACK, undefined, sack)).map(decode);
    assert.equal(outs.length, 1);
    if (policy === 'lvs') {
      assert.equal(outs[0]!.toa, null);
      assert.equal(e.counter('toa_failed_no_room'), 1);
    } else {
      assert.ok(outs[0]!.toa, policy);
      assert.equal(e.counter('toa_pruned'), 1);
    }
    assertCountedOnce(e);
  }
});

test('ICMPv6 Packet Too Big when a client packet would not fit the RS path: rate-limited, counted, checksum right', () => {
  for (const [vport, hdr] of [
    [80, 40],
    [81, 20],
  ] as const) {
    const e = makeEngine('fullnat', { icmpRateLimit: 1, icmpRateBurst: 2 }, 1400);
    openRsFirst(e, vport);
    // Exactly the RS MTU once translated: forwarded.
    const fits = 1400 - hdr - 20;
    assert.equal(feed(e, client(vport, CISN + 1, RISN + 2, TCP_ACK, pattern(fits))).length, 1);
    const tooBig = client(vport, CISN + 1 + fits, RISN + 2, TCP_ACK, pattern(fits + 1));
    for (let i = 0; i < 3; i++) {
      const outs = feed(e, tooBig, 0);
      if (i === 2) {
        assert.equal(outs.length, 0, 'the third within the burst is held back');
        continue;
      }
      assert.equal(outs.length, 1);
      const m = outs[0]!;
      assert.equal(m[0]! >>> 4, 6);
      assert.equal(m[6], 58, 'ICMPv6');
      assert.deepEqual([...m.subarray(8, 24)], [...VIP6]);
      assert.deepEqual([...m.subarray(24, 40)], [...CIP6]);
      assert.equal(m[40], 2, 'Packet Too Big');
      // The client's MTU leaves room for the 20-byte TOA and the header change.
      assert.equal(get32(m, 44), 1400 - hdr + 40 - 20);
      const len = get16(m, 4);
      assert.equal(len + 40, m.length);
      assert.ok(m.length <= 1280);
      const pseudo = sumWords(m, 8, 32, 0) + 58 + len;
      assert.equal(checksumExcludingField(m, 40, len, 42, pseudo), get16(m, 42));
      assert.deepEqual([...m.subarray(48, 88)], [...tooBig.subarray(0, 40)], 'quotes the packet');
    }
    assert.equal(e.counter('icmp6_too_big_sent'), 2);
    assert.equal(e.counter('icmp6_too_big_limited'), 1);
    assert.equal(e.counter('too_big_dropped'), 3);
    assertCountedOnce(e);
  }
});

test('Packet Too Big per policy: fullnat tells the RS path MTU less the header growth and the 20-byte TOA; lvs and dpvs the bare RS path MTU, as DPVS does', () => {
  for (const policy of ['fullnat', 'lvs', 'dpvs'] as const) {
    for (const [vport, hdr] of [
      [80, 40],
      [81, 20],
    ] as const) {
      const e = makeEngine(policy, {}, 1400);
      openRsFirst(e, vport);
      const fits = 1400 - hdr - 20;
      const outs = feed(e, client(vport, CISN + 1, RISN + 2, TCP_ACK, pattern(fits + 1)));
      assert.equal(outs.length, 1, `${policy} ${vport}`);
      assert.equal(outs[0]![40], 2, 'Packet Too Big');
      const told = get32(outs[0]!, 44);
      const want = policy === 'fullnat' ? 1400 - hdr + 40 - 20 : 1400;
      assert.equal(told, want, `${policy}, RS leg IPv${hdr === 40 ? 6 : 4}`);
      assertCountedOnce(e);
    }
  }
  // Never below the IPv6 minimum, whatever the policy.
  const low = makeEngine('lvs', {}, 1200);
  openRsFirst(low, V6_PORT);
  const m = feed(low, client(80, CISN + 1, RISN + 2, TCP_ACK, pattern(1200)));
  assert.equal(get32(m[0]!, 44), 1280);
});

/** A client SYN to port 80 with the extension headers `ext`. */
function synThrough(ext: Segment6Spec['ext']): Uint8Array {
  return buildSegment6({
    src: CIP6,
    dst: VIP6,
    sport: CPORT6,
    dport: 80,
    seq: CISN,
    flags: TCP_SYN,
    ext,
  });
}

test('extension headers: walked and left out of the forwarded packet; fragments to the VIP reassembled; routing with segments left dropped and counted', () => {
  const e = makeEngine('fullnat');
  const hbh = new Uint8Array(8);
  hbh[2] = 1;
  hbh[3] = 4;
  const dst = new Uint8Array(16);
  dst[1] = 1;
  dst[2] = 1;
  dst[3] = 12;
  const syn = synThrough([
    { type: 0, body: hbh },
    { type: 60, body: dst },
  ]);
  const outs = feed(e, syn).map(decode);
  assert.equal(outs.length, 1);
  assert.equal(outs[0]!.bytes.length, 60);
  // An atomic fragment (offset 0, M clear) to the VIP is a whole datagram (RFC 6946): it goes on.
  const frag = new Uint8Array(8);
  const fragged = synThrough([{ type: 44, body: frag }]);
  assert.equal(feed(e, fragged).length, 1);
  assert.equal(e.counter('datagrams_reassembled'), 1);
  // A last fragment (offset 8) waits for the first; nothing goes out.
  frag[3] = 8;
  assert.equal(feed(e, synThrough([{ type: 44, body: frag }])).length, 0);
  assert.equal(e.heldFragments, 1);
  assert.equal(e.counter('ipv6_fragment_dropped'), 0, 'fragments to a VIP are not dropped');
  const rt = new Uint8Array(24);
  rt[1] = 2;
  rt[2] = 4;
  rt[3] = 1;
  const routed = synThrough([{ type: 43, body: rt }]);
  assert.equal(feed(e, routed).length, 0);
  assert.equal(e.counter('ipv6_routing_dropped'), 1);
  // A spent routing header (segments left 0): the destination is final, the packet goes on.
  rt[3] = 0;
  const spent = synThrough([{ type: 43, body: rt }]);
  assert.equal(feed(e, spent).length, 1);
  assertCountedOnce(e);
});

test('client tuples differ in any one of the 16 bytes: separate connections, found again, released on expiry with RSTs both ways', () => {
  const e = makeEngine('fullnat');
  const clients: Uint8Array[] = [];
  // Every other client to the FNAT64 service.
  const k81 = (c: Uint8Array): boolean => (clients.indexOf(c) & 1) === 1;
  for (let k = 0; k < 16; k++) {
    const c = CIP6.slice();
    c[k] = c[k]! ^ 0x80;
    clients.push(c);
  }
  for (const c of clients) handshake(e, k81(c) ? 81 : 80, 1460, c);
  assert.equal(e.table.count, 16);
  // Every client's data finds its own connection.
  for (const c of clients) {
    const o = feed(
      e,
      client(k81(c) ? 81 : 80, CISN + 1, RISN + 1, TCP_ACK, pattern(10), undefined, c),
    ).map(decode);
    assert.equal(o.length, 1);
  }
  assert.equal(e.counter('conns_created'), 16);
  // ESTABLISHED times out after 90 s: a RST to each side, in each side's family.
  const sent = feedRaw(e, client(80, 1, 0, TCP_RST), 91_000).map((o) => o.bytes);
  assert.equal(e.table.count, 0);
  assert.equal(e.counter('conns_expired_established_rst'), 16);
  const rsts = sent.map((b) => decode(b));
  assert.ok(rsts.every((r) => (r.flags & TCP_RST) !== 0));
  const fnat64 = clients.filter(k81).length;
  assert.equal(fnat64, 8);
  assert.equal(
    rsts.filter((r) => r.family === 6).length,
    16 + 16 - fnat64,
    'every client, IPv6 RSs',
  );
  assert.equal(rsts.filter((r) => r.family === 4).length, fnat64, 'FNAT64 RSs get IPv4 RSTs');
});

test('registry: IPv6 services, LIPs and RSs held; what cannot work refused clearly and nothing half-added', () => {
  const e = new Engine({ maxConnections: 8 });
  assert.throws(
    () =>
      e.addService({
        vip: LIP64 + 100,
        vport: 80,
        scheduler: 'rr',
        laddrs: [LIP64],
        realServers: [{ addr: ip6(RIP6), port: 80, weight: 1 }],
      }),
    /FNAT46 is not supported/,
  );
  assert.equal(e.services.length, 0);
  const s = e.addService({
    vip: ip6(VIP6),
    vport: 80,
    scheduler: 'rr',
    laddrs: [ip6(LIP6)],
    realServers: [],
  });
  assert.throws(
    () => e.addRealServer(s.index, { addr: RIP64, port: 80, weight: 1 }),
    /no IPv4 local address/,
  );
  e.addLocalAddress(s.index, LIP64);
  const rs = e.addRealServer(s.index, { addr: RIP64, port: 80, weight: 1 });
  assert.equal(e.findRealServer(s.index, RIP64, 80), rs);
  const rs6i = e.addRealServer(s.index, { addr: ip6(RIP6), port: 80, weight: 1 });
  assert.equal(e.findRealServer(s.index, ip6(RIP6), 80), rs6i);
  assert.equal(e.findService(ip6(VIP6), 80), s.index);
  assert.equal(e.findService(ip6(VIP6), 81), -1);
  assert.throws(
    () => e.addService({ vip: ip6(VIP6), vport: 80, scheduler: 'rr', laddrs: [], realServers: [] }),
    /already exists/,
  );
  // SYNPROXY works on IPv6 services (ipv6-synproxy.test.ts): accepted both ways.
  const sp = e.addService({
    vip: ip6(VIP6),
    vport: 82,
    scheduler: 'rr',
    laddrs: [],
    realServers: [],
    synProxy: true,
  });
  assert.equal(sp.synProxy, true);
  e.setSynProxy(s.index, true);
  assert.equal(e.services[s.index]!.synProxy, true);
  e.setSynProxy(s.index, false);
  e.setProxyProtocol(s.index, 2);
  assert.equal(e.services[s.index]!.proxyProtocol, 2, 'PROXY protocol on an IPv6 service');
  const v4 = e.addService({
    vip: parseIpv4('192.0.2.1'),
    vport: 80,
    scheduler: 'rr',
    laddrs: [LIP64],
    realServers: [],
  });
  assert.throws(() => e.addLocalAddress(v4.index, ip6(LIP6)), /IPv4 local addresses only/);
  e.deleteService(s.index);
  assert.equal(e.findService(ip6(VIP6), 80), -1);
  assert.equal(e.findService(parseIpv4('192.0.2.1'), 80), v4.index);
});

test('IPv6 with no IPv6 service: dropped; a segment of no connection: dropped and answered with the RST its host would send', () => {
  const e = new Engine({ maxConnections: 8 });
  assert.equal(feed(e, client(80, CISN, 0, TCP_SYN)).length, 0);
  assert.equal(e.counter('no_service_dropped'), 1);
  assert.equal(e.table.ipv6Enabled, false, 'no IPv6 side table without an IPv6 service');
  const f = makeEngine('fullnat');
  // An RS still talking on a connection the LB forgot: RST from the LIP, seq = its ack.
  const toRs = feed(f, rs(V6_PORT, 5000, 1, 77, TCP_ACK)).map(decode);
  assert.equal(toRs.length, 1);
  assert.equal(toRs[0]!.src, '2001:db8:1::1');
  assert.equal(toRs[0]!.dst, '2001:db8:2::10');
  assert.equal(toRs[0]!.flags, TCP_RST);
  assert.equal(toRs[0]!.seq, 77);
  // A client segment without ACK: RST+ACK from the VIP, ack = its seq + length (+1 for FIN).
  const toClient = feed(f, client(80, CISN, 0, TCP_FIN, pattern(10))).map(decode);
  assert.equal(toClient.length, 1);
  assert.equal(toClient[0]!.src, '2001:db8::100');
  assert.equal(toClient[0]!.dst, '2001:db8:c::1');
  assert.equal(toClient[0]!.flags, TCP_RST | TCP_ACK);
  assert.equal(toClient[0]!.ack, CISN + 11);
  assert.equal(toClient[0]!.sport, 80);
  assert.equal(toClient[0]!.dport, CPORT6);
  // Never for a RST, nor when switched off.
  assert.equal(feed(f, client(80, CISN, 0, TCP_RST)).length, 0);
  f.reconfigure({ unknownFlowReset: false });
  assert.equal(feed(f, client(80, CISN, 0, TCP_ACK)).length, 0);
  assert.equal(f.counter('no_conn_dropped'), 4);
  assert.equal(f.counter('unknown_flow_rst_sent'), 2);
  assertCountedOnce(e);
  assertCountedOnce(f);
});

test('tshark decodes every packet the LB sends for IPv6 and FNAT64: good checksums, the TOA bytes as specified', (t) => {
  const probe = probeTshark();
  if (!probe.ok) {
    t.skip(probe.reason);
    return;
  }
  const sent: Uint8Array[] = [];
  const toaFrames: { at: number; kind: number }[] = [];
  for (const [vport, kind] of [
    [80, 254],
    [81, 253],
  ] as const) {
    const e = makeEngine('fullnat', { toaV6Kind: kind }, 1400);
    const { syn, synAck, ack } = handshake(e, vport);
    sent.push(syn.bytes, synAck.bytes, ack.bytes);
    toaFrames.push({ at: sent.length - 1, kind });
    // A concluding segment too big with the TOA: split, each piece with it.
    const pieces = feed(e, client(vport, CISN + 1, RISN + 1, TCP_ACK | TCP_PSH, pattern(1350)));
    assert.equal(pieces.length, 2);
    for (const q of pieces) {
      sent.push(q);
      toaFrames.push({ at: sent.length - 1, kind });
    }
    const lport = syn.sport;
    const rsData = rs(vport, lport, RISN + 1, syn.seq + 1351, TCP_ACK, undefined, pattern(700));
    sent.push(...feed(e, rsData));
    // Past the RS's first byte: a packet too big for the RS path gets Packet Too Big.
    const ptb = feed(e, client(vport, CISN + 1351, RISN + 701, TCP_ACK, pattern(1400)));
    assert.equal(ptb.length, 1);
    sent.push(...ptb);
  }
  const rows = tsharkDecode(sent, [
    'ip.version',
    'ip.checksum.status',
    'tcp.checksum.status',
    'icmpv6.checksum.status',
    'icmpv6.type',
    'tcp.options',
    'ipv6.src',
    'ip.src',
  ]);
  assert.equal(rows.length, sent.length);
  rows.forEach((row, i) => {
    const b = sent[i]!;
    const v = b[0]! >>> 4;
    assert.ok(row['ip.version']!.startsWith(String(v)), `frame ${i}: IPv${v}`);
    if (v === 4) assert.equal(row['ip.checksum.status'], '1', `frame ${i}: IP checksum`);
    if (v === 6 && b[6] === 58) {
      assert.equal(row['icmpv6.type'], '2', `frame ${i}: Packet Too Big`);
      assert.equal(row['icmpv6.checksum.status'], '1', `frame ${i}: ICMPv6 checksum`);
      return;
    }
    // tshark also reads the quoted packet's TCP header in an ICMP error; ours are TCP frames here.
    assert.equal(row['tcp.checksum.status'], '1', `frame ${i}: TCP checksum`);
  });
  for (const { at, kind } of toaFrames) {
    const want = Buffer.concat([
      Buffer.from([kind, 20, CPORT6 >>> 8, CPORT6 & 0xff]),
      Buffer.from(CIP6),
    ]);
    assert.ok(
      rows[at]!['tcp.options']!.startsWith(want.toString('hex')),
      `frame ${at}: TOA ${kind}/20 first`,
    );
  }
});

test('PROXY protocol on IPv6 services: v1 TCP6 and v2 AF_INET6 naming the IPv6 client and VIP, toward IPv6 and IPv4 RSs; the stream shifted both ways', () => {
  for (const version of [1, 2] as const) {
    for (const vport of [80, 81]) {
      const e = makeEngine('fullnat');
      e.setProxyProtocol(e.findService(ip6(VIP6), vport), version);
      const { syn, synAck, ack } = handshake(e, vport);
      assert.equal(ack.toa, null, 'no TOA: the address travels in the stream');
      assert.equal(synAck.ack, CISN + 1);
      const outs = feed(e, client(vport, CISN + 1, RISN + 1, TCP_ACK | TCP_PSH, pattern(100))).map(
        decode,
      );
      assert.equal(outs.length, 2, 'the PROXY header, then the data behind it');
      const [header, data] = outs as [Out, Out];
      assert.equal(header.family, vport === 80 ? 6 : 4);
      assert.equal(header.seq, syn.seq + 1, 'the header at the LB ISN + 1');
      const hl = header.family === 6 ? 40 : 20;
      const pp = decodeProxyHeader(header.bytes.subarray(hl + 20));
      assert.equal(pp.kind, 'ok');
      if (pp.kind !== 'ok') return;
      assert.equal(pp.family, 'TCP6');
      assert.deepEqual(pp.src, { address: '2001:db8:c::1', port: CPORT6 });
      assert.deepEqual(pp.dst, { address: '2001:db8::100', port: vport });
      const len = header.payload;
      assert.equal(len, version === 2 ? 52 : pp.length);
      assert.equal(data.seq, syn.seq + 1 + len, 'client bytes move up by the header');
      // The RS acks header and data: the client sees its own 100 bytes acked.
      const rsAck = rs(vport, syn.sport, RISN + 1, syn.seq + 1 + len + 100, TCP_ACK);
      const back = decode(feed(e, rsAck)[0]!);
      assert.equal(back.ack, CISN + 101);
      assert.equal(e.counter('proxy_headers_sent'), 1);
      assertCountedOnce(e);
    }
  }
});
