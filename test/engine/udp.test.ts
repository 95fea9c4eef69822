import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import type { EngineOptions, UoaSetting } from '../../src/engine/options.js';
import {
  STAT_CONNS,
  STAT_IN_BYTES,
  STAT_IN_PACKETS,
  STAT_OUT_PACKETS,
} from '../../src/engine/services.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { ipv4ToString, parseIpv4 } from '../../src/wire/bytes.js';
import { IPPROTO_ICMP } from '../../src/wire/ipv4.js';
import { IPPROTO_OPP, OPP_VERSION_V4, OPP_VERSION_V6 } from '../../src/wire/uoa.js';
import { CIP, LIP, RIP, VIP, assertCountedOnce, feedRaw } from '../support/engine-fixture.js';
import { CIP6, LIP6, LIP64, RIP6, RIP64, VIP6 } from '../support/engine6-fixture.js';
import { TCP_SYN } from '../../src/wire/tcp.js';
import { buildSegment } from '../support/packets.js';
import { buildUdp4, buildUdp6, readUdp, v4Bytes, type SeenUdp } from '../support/udp-packets.js';
import { probeScapy, scapyDecode, scapySkip } from '../support/scapy.js';
import { scapyFragmentJobs } from '../support/scapy-fragments.js';

const DNS = 53;
const RDNS = 5353;
const CPORT = 41000;

function udpEngine(
  opts: Partial<EngineOptions> = {},
  svc: { uoaMode?: UoaSetting; mtu?: number } = {},
): Engine {
  const e = new Engine({ maxConnections: 1024, ...opts });
  e.addService({
    vip: VIP,
    vport: DNS,
    protocol: 'UDP',
    scheduler: 'rr',
    laddrs: [LIP],
    realServers: [{ addr: RIP, port: RDNS, weight: 1, ...(svc.mtu ? { mtu: svc.mtu } : {}) }],
    ...(svc.uoaMode ? { uoaMode: svc.uoaMode } : {}),
  });
  return e;
}

const query = (n = 20, sport = CPORT, noChecksum = false): Uint8Array =>
  buildUdp4({
    src: CIP,
    dst: VIP,
    sport,
    dport: DNS,
    payload: new Uint8Array(n).fill(0x61),
    noChecksum,
  });

function send(e: Engine, b: Uint8Array, now?: number): SeenUdp[] {
  return feedRaw(e, b, now).map((o) => readUdp(o.bytes));
}

function answer(lport: number, n = 30, noChecksum = false): Uint8Array {
  return buildUdp4({
    src: RIP,
    dst: LIP,
    sport: RDNS,
    dport: lport,
    payload: new Uint8Array(n).fill(0x62),
    noChecksum,
  });
}

const eqAddr = (a: Uint8Array, n: number): void => assert.deepEqual(a, v4Bytes(n));

describe('engine UDP: IPv4 flows', () => {
  it('translates both ways, carries the opp UOA on the first 3 datagrams, counts like TCP', () => {
    const e = udpEngine();
    const seen: SeenUdp[] = [];
    for (let i = 0; i < 4; i++) seen.push(...send(e, query(20 + i)));
    assert.equal(seen.length, 4);
    for (const [i, s] of seen.entries()) {
      eqAddr(s.src, LIP);
      eqAddr(s.dst, RIP);
      assert.equal(s.dport, RDNS);
      assert.equal(s.sport, seen[0]!.sport, 'one flow, one LIP port');
      assert.equal(s.payload.length, 20 + i);
      if (i < 3) {
        assert.equal(s.uoa?.mode, 'opp');
        assert.equal(s.uoa?.clientAddress, CIP);
        assert.equal(s.uoa?.clientPort, CPORT);
      } else assert.equal(s.uoa, undefined, 'the trail is 3 datagrams');
    }
    const raw = feedRaw(udpEngine(), query())[0]!.bytes;
    assert.equal(raw[9], IPPROTO_OPP);
    assert.equal(raw[20]! >>> 4, OPP_VERSION_V4);
    const lport = seen[0]!.sport;
    const back = send(e, answer(lport));
    assert.equal(back.length, 1);
    eqAddr(back[0]!.src, VIP);
    eqAddr(back[0]!.dst, CIP);
    assert.equal(back[0]!.sport, DNS);
    assert.equal(back[0]!.dport, CPORT);
    assert.equal(e.counter('udp_flows_created'), 1);
    assert.equal(e.counter('uoa_sent_opp'), 3);
    assert.equal(e.counter('uoa_sent_opp', 0), 3);
    const svc = e.services[0]!;
    assert.equal(svc.stats[STAT_CONNS], 1);
    assert.equal(svc.stats[STAT_IN_PACKETS], 4);
    assert.equal(svc.stats[STAT_OUT_PACKETS], 1);
    assert.equal(svc.stats[STAT_IN_BYTES], 4 * 48 + 6);
    const rs = e.realServers[0]!;
    assert.equal(rs.stats[STAT_IN_PACKETS], 4);
    assert.equal(rs.inactiveConns, 1);
    assert.equal(rs.activeConns, 0);
    const conns = e.listConnections();
    assert.equal(conns.length, 1);
    assert.equal(conns[0]!.protocol, 'UDP');
    assert.equal(conns[0]!.lport, lport);
    assert.equal(e.connectionCount, 1);
    assert.equal(e.table.count, 0, 'the TCP table holds no UDP flow');
    assertCountedOnce(e);
  });

  it('keeps an IPv4 checksum of 0 at 0 both ways, and a nonzero one valid', () => {
    const e = udpEngine({}, { uoaMode: 'off' });
    const out = send(e, query(33, CPORT, true));
    assert.equal(out[0]!.checksum, 0);
    const back = send(e, answer(out[0]!.sport, 31, true));
    assert.equal(back[0]!.checksum, 0);
    const withSum = send(e, query(33));
    assert.notEqual(withSum[0]!.checksum, 0);
  });

  it('ipo puts the UOA in the IPv4 header; off sends none', () => {
    const ipo = udpEngine({}, { uoaMode: 'ipo' });
    const a = send(ipo, query());
    assert.equal(a[0]!.uoa?.mode, 'ipo');
    assert.equal(a[0]!.uoa?.clientAddress, CIP);
    assert.equal(ipo.counter('uoa_sent_ipo'), 1);
    const off = udpEngine({}, { uoaMode: 'off' });
    assert.equal(send(off, query())[0]!.uoa, undefined);
    const inherit = udpEngine({ uoaMode: 'ipo', uoaMaxTrail: 1 });
    assert.equal(send(inherit, query())[0]!.uoa?.mode, 'ipo', 'the engine default applies');
    assert.equal(send(inherit, query())[0]!.uoa, undefined, 'uoaMaxTrail 1');
  });

  it('sends the UOA in an empty datagram ahead of one with no room under the RS path MTU', () => {
    for (const mode of ['opp', 'ipo'] as const) {
      const e = udpEngine({}, { uoaMode: mode, mtu: 1000 });
      // 1000 bytes exactly: fits the path, not with the UOA.
      const out = feedRaw(e, query(1000 - 28));
      assert.equal(out.length, 2, mode);
      const carrier = readUdp(out[0]!.bytes);
      assert.equal(carrier.payload.length, 0, `${mode}: an empty datagram`);
      assert.equal(carrier.uoa?.mode, mode);
      assert.equal(carrier.uoa?.clientAddress, CIP);
      assert.equal(carrier.uoa?.clientPort, CPORT);
      const data = readUdp(out[1]!.bytes);
      assert.equal(data.uoa, undefined, `${mode}: the datagram goes unchanged`);
      assert.equal(out[1]!.bytes.length, 1000);
      assert.equal(carrier.sport, data.sport);
      eqAddr(carrier.dst, RIP);
      assert.equal(e.counter('uoa_empty_sent'), 1);
      assertCountedOnce(e);
    }
  });

  it('answers a datagram too big for the RS path with frag-needed when DF is set', () => {
    const e = udpEngine({}, { mtu: 600 });
    const big = buildUdp4({
      src: CIP,
      dst: VIP,
      sport: CPORT,
      dport: DNS,
      payload: new Uint8Array(700),
      dontFragment: true,
    });
    const out = feedRaw(e, big);
    assert.equal(out.length, 1);
    assert.equal(out[0]!.bytes[9], IPPROTO_ICMP);
    assert.equal(e.counter('too_big_dropped'), 1);
    assertCountedOnce(e);
  });

  it(
    'sends a datagram too big for the RS path without DF in fragments, the UOA ahead in an empty datagram; scapy reassembles it',
    { skip: scapySkip(probeScapy()) },
    () => {
      const e = udpEngine({}, { mtu: 600 });
      const payload = new Uint8Array(1400).map((_, i) => (i * 7) & 0xff);
      const noDf = buildUdp4({ src: CIP, dst: VIP, sport: CPORT, dport: DNS, payload });
      const out = feedRaw(e, noDf).map((o) => o.bytes);
      assert.equal(out.length, 4, 'the UOA carrier, then three pieces');
      for (const o of out) assert.ok(o.length <= 600, `a packet of ${o.length} bytes`);
      const [carrier] = scapyDecode([out[0]!]);
      assert.equal(carrier!.proto, IPPROTO_OPP);
      assert.equal(carrier!.udp?.len, 8, 'an empty datagram');
      const [whole] = scapyFragmentJobs([
        { op: 'defrag4', packets: out.slice(1).map((o) => Buffer.from(o).toString('hex')) },
      ]);
      assert.equal(whole?.length, 1);
      const [d] = scapyDecode([new Uint8Array(Buffer.from(whole[0]!, 'hex'))]);
      assert.equal(d!.src, ipv4ToString(LIP), 'from the LIP');
      assert.equal(d!.dst, ipv4ToString(RIP), 'to the RS');
      assert.equal(d!.proto, 17, 'the datagram itself goes as plain UDP');
      assert.equal(d!.udp?.dport, RDNS);
      assert.equal(d!.udp?.chksum, d!.udp?.chksumRebuilt, 'UDP checksum over the whole datagram');
      assert.equal(d!.udp?.payloadHex, Buffer.from(payload).toString('hex'));
      assert.equal(e.counter('fragments_sent'), 3);
      assert.equal(e.counter('too_big_dropped'), 0);
      assertCountedOnce(e);
    },
  );

  it('expires an idle flow after timeout_udp, kept alive by either direction', () => {
    const e = udpEngine({ timeoutUdpMs: 10_000 });
    const lport = send(e, query(), 0)[0]!.sport;
    send(e, answer(lport), 8_000);
    e.tick(15_000);
    assert.equal(e.connectionCount, 1, 'the answer at 8 s restarted the deadline');
    e.tick(18_200);
    assert.equal(e.connectionCount, 0);
    assert.equal(e.counter('udp_flows_expired'), 1);
    assert.equal(e.counter('udp_flows_released'), 1);
    assert.equal(e.realServers[0]!.inactiveConns, 0);
    assert.equal(send(e, answer(lport)).length, 0, 'a late answer finds no flow');
    assert.equal(e.counter('no_conn_dropped'), 1);
    assertCountedOnce(e);
  });

  it('moves a flow whose RS was removed at its next datagram; a quiesced RS keeps it', () => {
    const e = udpEngine();
    const rs2 = e.addRealServer(0, { addr: parseIpv4('10.10.2.3'), port: RDNS, weight: 1 });
    const first = send(e, query())[0]!;
    const firstRs = e.findRealServer(0, parseIpv4(`${first.dst.join('.')}`), RDNS);
    e.setWeight(firstRs, 0);
    assert.deepEqual(send(e, query())[0]!.dst, first.dst, 'weight 0 drains: the flow stays');
    e.removeRealServer(firstRs);
    const moved = send(e, query())[0]!;
    assert.notDeepEqual(moved.dst, first.dst);
    assert.equal(e.counter('conns_expired_nodest'), 1);
    assert.equal(e.counter('udp_flows_created'), 2);
    assert.ok(rs2 >= 0);
    assertCountedOnce(e);
  });

  it('lets a TCP and a UDP service share a VIP:port without touching each other', () => {
    const e = udpEngine();
    e.addService({
      vip: VIP,
      vport: DNS,
      scheduler: 'rr',
      laddrs: [LIP],
      realServers: [{ addr: RIP, port: RDNS, weight: 1 }],
    });
    assert.equal(e.findService(VIP, DNS, 'UDP'), 0);
    assert.equal(e.findService(VIP, DNS), 1);
    assert.throws(
      () =>
        e.addService({
          vip: VIP,
          vport: DNS,
          protocol: 'UDP',
          scheduler: 'rr',
          laddrs: [],
          realServers: [],
        }),
      /already exists/,
    );
    send(e, query());
    feedRaw(
      e,
      buildSegment({ src: CIP, dst: VIP, sport: CPORT, dport: DNS, seq: 1, flags: TCP_SYN }),
    );
    assert.equal(e.table.count, 1, 'the SYN opened a TCP connection');
    assert.equal(e.connectionCount, 2, 'beside the UDP flow of the same client port');
    assert.equal(e.counter('udp_flows_created'), 1);
    assert.equal(e.counter('udp_flows_created', 1), 0);
    assertCountedOnce(e);
  });

  it('refuses what a UDP service cannot do and drops what no flow claims', () => {
    const e = udpEngine();
    assert.throws(() =>
      e.addService({
        vip: VIP,
        vport: 54,
        protocol: 'UDP',
        scheduler: 'rr',
        laddrs: [],
        realServers: [],
        synProxy: true,
      }),
    );
    // No LIP on a bare service: the datagram is refused, counted.
    e.addService({
      vip: VIP,
      vport: 55,
      protocol: 'UDP',
      scheduler: 'rr',
      laddrs: [],
      realServers: [],
    });
    feedRaw(e, buildUdp4({ src: CIP, dst: VIP, sport: 1, dport: 55 }));
    assert.equal(e.counter('udp_flow_rejected'), 1);
    assert.equal(e.counter('no_real_server'), 1);
    feedRaw(e, buildUdp4({ src: CIP, dst: VIP, sport: 1, dport: 56 }));
    assert.equal(e.counter('no_service_dropped'), 1);
    const lying = query();
    lying[25] = 200; // UDP length beyond the datagram
    feedRaw(e, lying);
    assert.equal(e.counter('malformed_dropped'), 1);
    assertCountedOnce(e);
  });
});

describe('engine UDP: IPv6 and FNAT64', () => {
  const v6 = (b: Uint8Array): Ipv6Address => Ipv6Address.fromBytes(b);

  function engine6(rs: 4 | 6, opts: Partial<EngineOptions> = {}): Engine {
    const e = new Engine({ maxConnections: 1024, ...opts });
    e.addService({
      vip: v6(VIP6),
      vport: DNS,
      protocol: 'UDP',
      scheduler: 'rr',
      laddrs: [rs === 6 ? v6(LIP6) : LIP64],
      realServers: [{ addr: rs === 6 ? v6(RIP6) : RIP64, port: RDNS, weight: 1 }],
    });
    return e;
  }
  const query6 = (n = 20, zero = false): Uint8Array =>
    buildUdp6({
      src: CIP6,
      dst: VIP6,
      sport: CPORT,
      dport: DNS,
      payload: new Uint8Array(n).fill(1),
      zeroChecksum: zero,
    });

  it('IPv6 → IPv6: opp version 2 with the 20-byte UOA, translated back', () => {
    const e = engine6(6);
    const out = send(e, query6());
    assert.equal(out[0]!.family, 6);
    assert.deepEqual(out[0]!.src, LIP6);
    assert.deepEqual(out[0]!.dst, RIP6);
    assert.equal(out[0]!.uoa?.mode, 'opp');
    const raw = feedRaw(e, query6())[0]!.bytes;
    assert.equal(raw[6], IPPROTO_OPP);
    assert.equal(raw[40]! >>> 4, OPP_VERSION_V6);
    const back = send(
      e,
      buildUdp6({
        src: RIP6,
        dst: LIP6,
        sport: RDNS,
        dport: out[0]!.sport,
        payload: new Uint8Array(9),
      }),
    );
    assert.deepEqual(back[0]!.src, VIP6);
    assert.deepEqual(back[0]!.dst, CIP6);
    assert.equal(back[0]!.dport, CPORT);
    assertCountedOnce(e);
  });

  it('drops an IPv6 datagram with checksum 0', () => {
    const e = engine6(6);
    assert.equal(feedRaw(e, query6(10, true)).length, 0);
    assert.equal(e.counter('udp_zero_checksum_dropped'), 1);
    assertCountedOnce(e);
  });

  it('FNAT64: IPv4 opp with the IPv6 client; an IPv4 answer without checksum gets one', () => {
    const e = engine6(4);
    const out = send(e, query6());
    assert.equal(out[0]!.family, 4);
    eqAddr(out[0]!.src, LIP64);
    eqAddr(out[0]!.dst, RIP64);
    assert.equal(out[0]!.uoa?.mode, 'opp');
    assert.equal(out[0]!.uoa?.ipFamily, 4);
    assert.deepEqual((out[0]!.uoa?.clientAddress as Ipv6Address).bytes, CIP6);
    const raw = feedRaw(e, query6())[0]!.bytes;
    assert.equal(raw[20]! >>> 4, OPP_VERSION_V6);
    const ans = buildUdp4({
      src: RIP64,
      dst: LIP64,
      sport: RDNS,
      dport: out[0]!.sport,
      payload: new Uint8Array(11),
      noChecksum: true,
    });
    const back = send(e, ans);
    assert.equal(back[0]!.family, 6);
    assert.deepEqual(back[0]!.src, VIP6);
    assert.deepEqual(back[0]!.dst, CIP6);
    assert.notEqual(back[0]!.checksum, 0);
    assertCountedOnce(e);
  });

  it(
    "scapy reads the opp UOA of an IPv6 client: version 2, option 31 of 20 bytes (port, address), on IPv6 and on FNAT64's IPv4",
    { skip: scapySkip(probeScapy()) },
    () => {
      const sent = [6, 4].map((rs) => feedRaw(engine6(rs as 4 | 6), query6(33))[0]!.bytes);
      const decoded = scapyDecode(sent);
      for (const [i, d] of decoded.entries()) {
        const what = i === 0 ? 'IPv6' : 'FNAT64';
        assert.equal(d.family, i === 0 ? 6 : 4, what);
        assert.equal(d.proto, IPPROTO_OPP, `${what}: protocol 248`);
        assert.deepEqual(d.opp, { version: 2, reserved: 0, protocol: 17, length: 24 }, what);
        const uoa = Buffer.from(d.l4Hex, 'hex').subarray(4, 24);
        assert.equal(uoa[0], 31, `${what}: option 31`);
        assert.equal(uoa[1], 20, `${what}: length 20`);
        assert.equal(uoa.readUInt16BE(2), CPORT, `${what}: the client's port`);
        assert.deepEqual(new Uint8Array(uoa.subarray(4)), CIP6, `${what}: the client's address`);
        assert.equal(d.udp?.dport, RDNS, `${what}: the UDP header after it`);
        assert.equal(d.udp?.chksum, d.udp?.chksumRebuilt, `${what}: UDP checksum`);
        if (d.family === 4)
          assert.equal(d.chksum, d.chksumRebuilt, `${what}: IPv4 header checksum`);
      }
    },
  );

  it('ipo cannot carry an IPv6 client: skipped and counted, never more than the trail', () => {
    const e = engine6(6, { uoaMode: 'ipo' });
    for (let i = 0; i < 5; i++) assert.equal(send(e, query6())[0]!.uoa, undefined);
    assert.equal(e.counter('uoa_skipped'), 3);
  });
});
