/**
 * The simulator's IPv6 hosts: IPv6+TCP packets built and parsed as Linux
 * would (pseudo-header checksum, Packet Too Big), the toa module reading the
 * 20-byte TOAs (254 and 253) into getpeername's IPv6 client — on IPv6 and on
 * FNAT64's IPv4 connections —, request keys naming an IPv6 client, the
 * per-family client behaviours, and the DNAT control group in family 6.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addressEquals, Ipv6Address, type IpAddress } from '../../src/wire/address.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { IPPROTO_TCP } from '../../src/wire/ipv4.js';
import { opt, type TcpOption } from '../../src/wire/tcp-options.js';
import { TCP_ACK, TCP_PSH, TCP_SYN } from '../../src/wire/tcp.js';
import { ALL_TOA_KINDS, toaV6Option } from '../../src/wire/toa.js';
import { formatTable, pcapName, simulate } from '../../src/cli/simulate.js';
import { engineMiddlebox } from '../../src/lab/engine-middlebox.js';
import { parseFamilies } from '../../src/lab/family.js';
import { simAddressPlan } from '../../src/lab/sim/addresses.js';
import { TcpClient } from '../../src/lab/sim/client.js';
import { DirectMiddlebox } from '../../src/lab/sim/direct.js';
import { LinuxRs } from '../../src/lab/sim/linux-rs.js';
import { ManualIo } from '../../src/lab/sim/manual-io.js';
import type { Middlebox, Topology } from '../../src/lab/sim/net.js';
import { buildRequest, MessageReader, REQUEST_SALT } from '../../src/lab/sim/pattern.js';
import { buildTopology, connectionTrace, runScenario } from '../../src/lab/sim/run.js';
import {
  clientFor,
  FORGED_TOA6,
  getScenario,
  SCENARIO_NAMES,
} from '../../src/lab/sim/scenarios.js';
import {
  buildPacketTooBig,
  buildTcp,
  linuxSynAckOptions,
  linuxSynOptions,
  parsePacket,
  type Endpoint,
} from '../../src/lab/sim/segment.js';
import { describePacket } from '../../src/lab/sim/trace.js';

const v6 = (text: string): Ipv6Address => {
  const a = Ipv6Address.parse(text);
  assert.ok(a, text);
  return a;
};

const CLIENT: Endpoint = { addr: v6('2001:db8:c1::7'), port: 40000 };
const VIP: Endpoint = { addr: v6('2001:db8::100'), port: 80 };

test('IPv6+TCP: a 40-byte header, the pseudo-header checksum, every field parsed back', () => {
  const payload = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff);
  const pkt = buildTcp({
    src: CLIENT.addr,
    dst: VIP.addr,
    sport: CLIENT.port,
    dport: VIP.port,
    seq: 0xfffffff0,
    ack: 12345,
    flags: TCP_ACK | TCP_PSH,
    window: 501,
    options: [opt.nop(), opt.nop(), opt.timestamp(7, 9)],
    payload,
  });
  assert.equal(pkt.length, 40 + 20 + 12 + 300);
  assert.equal(pkt[0]! >>> 4, 6);
  assert.equal((pkt[4]! << 8) | pkt[5]!, 20 + 12 + 300, 'payload length excludes the header');
  assert.equal(pkt[6], IPPROTO_TCP);
  assert.equal(pkt[7], 64);
  const p = parsePacket(pkt);
  assert.ok(p.kind === 'tcp');
  const s = p.seg;
  assert.ok(s.src instanceof Ipv6Address && s.src.equals(CLIENT.addr as Ipv6Address));
  assert.ok(addressEquals(s.dst, VIP.addr));
  assert.deepEqual(
    [s.sport, s.dport, s.seq, s.ack, s.flags, s.window, s.tsVal, s.tsEcr],
    [40000, 80, 0xfffffff0, 12345, TCP_ACK | TCP_PSH, 501, 7, 9],
  );
  assert.deepEqual([...s.payload], [...payload]);

  // One flipped bit anywhere the checksum covers (address, payload) and the host drops it.
  for (const at of [8, 39, pkt.length - 1]) {
    const bad = pkt.slice();
    bad[at]! ^= 0x01;
    assert.deepEqual(parsePacket(bad), { kind: 'bad', reason: 'tcp-checksum' }, `byte ${at}`);
  }
  const short = pkt.slice(0, pkt.length - 1);
  assert.equal(parsePacket(short).kind, 'bad', 'payload length beyond the packet');
});

test('IPv6: an extension header before TCP is walked; a fragment is refused', () => {
  const plain = buildTcp({
    src: CLIENT.addr,
    dst: VIP.addr,
    sport: 1,
    dport: 2,
    seq: 3,
    ack: 4,
    flags: TCP_ACK,
    window: 5,
  });
  const withExt = (next: number, ext: number[]): Uint8Array => {
    const b = new Uint8Array(plain.length + ext.length);
    b.set(plain.subarray(0, 40));
    b.set(ext, 40);
    b.set(plain.subarray(40), 40 + ext.length);
    b[6] = next;
    const len = plain.length - 40 + ext.length;
    b[4] = len >>> 8;
    b[5] = len & 0xff;
    return b;
  };
  const hop = parsePacket(withExt(0, [IPPROTO_TCP, 0, 1, 4, 0, 0, 0, 0]));
  assert.ok(hop.kind === 'tcp' && hop.seg.seq === 3);
  const frag = parsePacket(withExt(44, [IPPROTO_TCP, 0, 0, 0, 0, 0, 0, 1]));
  assert.deepEqual(frag, { kind: 'bad', reason: 'fragment' });
});

test('a TCP packet mixing families is refused at build time', () => {
  assert.throws(
    () =>
      buildTcp({
        src: CLIENT.addr,
        dst: parseIpv4('10.0.0.1'),
        sport: 1,
        dport: 2,
        seq: 0,
        ack: 0,
        flags: TCP_SYN,
        window: 0,
      }),
    /mixes families/,
  );
});

test('ICMPv6 Packet Too Big: type 2, the MTU, the quote cut to keep within 1280 bytes', () => {
  const big = buildTcp({
    src: CLIENT.addr,
    dst: VIP.addr,
    sport: CLIENT.port,
    dport: VIP.port,
    seq: 777,
    ack: 1,
    flags: TCP_ACK,
    window: 1,
    payload: new Uint8Array(1440),
  });
  const hop = v6('2001:db8::fe');
  const ptb = buildPacketTooBig(hop, big, 1400);
  assert.equal(ptb.length, 1280, 'the error is as large as the minimum MTU allows');
  assert.equal(ptb[6], 58);
  assert.equal(ptb[40], 2);
  const p = parsePacket(ptb);
  assert.ok(p.kind === 'fragNeeded');
  assert.equal(p.icmp.mtu, 1400);
  assert.ok(addressEquals(p.icmp.from, hop));
  assert.ok(addressEquals(p.icmp.inner.src, CLIENT.addr));
  assert.ok(addressEquals(p.icmp.inner.dst, VIP.addr));
  assert.deepEqual([p.icmp.inner.sport, p.icmp.inner.dport, p.icmp.inner.seq], [40000, 80, 777]);
  const bad = ptb.slice();
  bad[100]! ^= 0x80;
  assert.deepEqual(parsePacket(bad), { kind: 'bad', reason: 'icmp6' });
  assert.match(describePacket(ptb), /ICMPv6 packet-too-big mtu 1400 for \[2001:db8:c1::7\]:40000/);
});

test('an IPv6 client: MSS = MTU − 60, Packet Too Big re-segments, never below 1280', () => {
  const io = new ManualIo();
  const c = new TcpClient(
    io,
    CLIENT,
    VIP,
    { advmss: 1440, requestSize: 4000, firstFlight: 'data-only', timestamps: false },
    5,
  );
  c.start();
  const [syn] = io.takeSegments();
  assert.ok(syn && syn.mss === 1440);
  const synAck = parsePacket(
    buildTcp({
      src: VIP.addr,
      dst: CLIENT.addr,
      sport: VIP.port,
      dport: CLIENT.port,
      seq: 5000,
      ack: syn.seq + 1,
      flags: TCP_SYN | TCP_ACK,
      window: 65535,
      options: linuxSynAckOptions(1440, null, true, 7),
    }),
  );
  assert.ok(synAck.kind === 'tcp');
  c.receive(synAck.seg);
  const first = io.takePackets();
  assert.ok(first.every((b) => b.length <= 1500));
  assert.equal(first[0]!.length, 1500, 'a full segment fills the 1500-byte link: 1440 + 60');
  c.fragNeeded(1400);
  assert.deepEqual(
    io
      .takeSegments()
      .map((s) => s.payload.length)
      .slice(0, 2),
    [1340, 1340],
  );
  c.fragNeeded(1000);
  assert.equal(c.result().pmtu, 1280, 'IPV6_MIN_MTU is the floor');
});

/** A concluding ACK with `options` from a LIP to an RS at `rsAddr`; what the RS's getpeername says. */
function acceptWith(
  rsAddr: IpAddress,
  lip: IpAddress,
  options: TcpOption[],
  toaKinds = ALL_TOA_KINDS,
): { seen: IpAddress; seenPort: number; toaFamily: number; synAckMss: number } {
  const io = new ManualIo();
  const rs = new LinuxRs(io, { addr: rsAddr, port: 80, seed: 3, toaKinds });
  const send = (seq: number, ack: number, flags: number, opts: TcpOption[]): void =>
    rs.receive(
      buildTcp({
        src: lip,
        dst: rsAddr,
        sport: 5001,
        dport: 80,
        seq,
        ack,
        flags,
        window: 502,
        options: opts,
      }),
    );
  send(100, 0, TCP_SYN, linuxSynOptions(1440, null, 7));
  const synAck = io.takeSegments().find((s) => s.flags === (TCP_SYN | TCP_ACK));
  assert.ok(synAck);
  send(101, synAck.seq + 1, TCP_ACK, options);
  const rec = rs.records[0];
  assert.ok(rec, 'the ACK concluded the handshake');
  return {
    seen: rec.seenAddr,
    seenPort: rec.seenPort,
    toaFamily: rec.toaFamily,
    synAckMss: synAck.mss,
  };
}

test('toa module, IPv6 RS: kind 254 and kind 253 of length 20 give getpeername the IPv6 client', () => {
  const rs = v6('2001:db8:2::2');
  const lip = v6('2001:db8:3::1');
  for (const kind of [254, 253]) {
    const r = acceptWith(rs, lip, [
      toaV6Option(CLIENT.port, (CLIENT.addr as Ipv6Address).bytes, kind),
    ]);
    assert.ok(addressEquals(r.seen, CLIENT.addr), `kind ${kind}: ${String(r.seen)}`);
    assert.equal(r.seenPort, CLIENT.port);
    assert.equal(r.toaFamily, 6);
    assert.equal(r.synAckMss, 1440, 'an IPv6 RS on a 1500-byte link announces 1440');
  }
  // A module that knows only DPVS's 254 does not read Alibaba's 253: the LIP it is.
  const only254 = { v4: true, v6Kind254: true, v6Kind253: false };
  const r = acceptWith(
    rs,
    lip,
    [toaV6Option(CLIENT.port, (CLIENT.addr as Ipv6Address).bytes, 253)],
    only254,
  );
  assert.ok(addressEquals(r.seen, lip));
  assert.equal(r.toaFamily, 0);
  // No TOA: the LIP.
  assert.ok(addressEquals(acceptWith(rs, lip, []).seen, lip));
});

test('toa module, FNAT64: an IPv4 connection carrying TOA 254/20 reports the IPv6 client', () => {
  const r = acceptWith(parseIpv4('10.10.2.2'), parseIpv4('10.10.3.1'), [
    opt.nop(),
    opt.nop(),
    toaV6Option(CLIENT.port, (CLIENT.addr as Ipv6Address).bytes),
  ]);
  assert.ok(addressEquals(r.seen, CLIENT.addr));
  assert.equal(r.toaFamily, 6);
  assert.equal(r.synAckMss, 1460, 'the RS is IPv4: MTU − 40');
});

test('request keys: an IPv6 client is named in 18 bytes after REQ6, and read back', () => {
  const req = buildRequest(CLIENT, 300);
  assert.equal(new TextDecoder().decode(req.subarray(0, 9)), 'REQ6 300\n');
  const r = new MessageReader('REQ', REQUEST_SALT);
  r.push(req.subarray(0, 50));
  r.push(req.subarray(50));
  assert.ok(r.intact());
  assert.ok(r.key && addressEquals(r.key.addr, CLIENT.addr) && r.key.port === CLIENT.port);
  // IPv4 keys keep their 6 bytes after "REQ ".
  const v4 = buildRequest({ addr: parseIpv4('203.0.113.9'), port: 7 }, 6);
  assert.deepEqual([...v4], [...new TextEncoder().encode('REQ 6\n'), 203, 0, 113, 9, 0, 7]);
  assert.throws(() => buildRequest(CLIENT, 17), /at least 18 bytes/);
});

test('clients per family: the same link MTU (at least 1280), 20 bytes less per segment, an IPv6 forged TOA', () => {
  const mix = getScenario('mss-mix');
  const mss = (i: number, f: 4 | 6 | 64): number => clientFor(mix, i, f).advmss;
  assert.deepEqual([mss(0, 4), mss(0, 6), mss(0, 64)], [1460, 1440, 1440]);
  const i536 = 7;
  assert.equal(mss(i536, 4), 536);
  assert.deepEqual(
    [clientFor(mix, i536, 6).mtu, mss(i536, 6)],
    [1280, 1220],
    'the 536 client is on a 1280-byte link in IPv6',
  );
  const over = clientFor(getScenario('over-mss'), 0, 6);
  assert.deepEqual([over.advmss, over.mtu, over.overMssPayload], [1424, 1500, 1440]);
  assert.equal(clientFor(getScenario('spoof-toa'), 0, 64).spoofToa, FORGED_TOA6);
  assert.deepEqual(parseFamilies(undefined), [4]);
  assert.deepEqual(parseFamilies('all'), [4, 6, 64]);
  assert.deepEqual(parseFamilies('64,6,64'), [64, 6]);
  assert.throws(() => parseFamilies('46'), /unknown family "46"; valid: 4, 6, 64, all/);
});

test('address plans: family 6 all IPv6; 64 an IPv6 client and VIP before IPv4 LIPs and RSs', () => {
  const six = simAddressPlan(6);
  const f64 = simAddressPlan(64);
  const isV6 = (a: IpAddress): boolean => typeof a !== 'number';
  assert.ok(isV6(six.vip) && six.lips.every(isV6) && six.realServers.every((r) => isV6(r.addr)));
  assert.ok(isV6(f64.vip) && isV6(f64.clientAddress(0)));
  assert.ok(!f64.lips.some(isV6) && !f64.realServers.some((r) => isV6(r.addr)));
  assert.notEqual(String(six.clientAddress(0)), String(six.clientAddress(1)));
  assert.equal(String(six.clientAddress(0)), String(six.clientAddress(500)), 'cycles over 500');
});

const direct = (t: Topology): Middlebox => new DirectMiddlebox(t);

test('family 6 without an LB (DNAT router): every scenario completes, the RS sees the IPv6 client', () => {
  for (const scenario of SCENARIO_NAMES) {
    const r = runScenario({ scenario, family: 6, middleboxFactory: direct, connections: 40 });
    assert.equal(
      r.failed,
      0,
      `${scenario}: ${r.details.find((d) => d.outcome === 'failed')?.reason ?? ''}`,
    );
    assert.equal(
      r.net.linkTooBig,
      0,
      `${scenario}: a router never sends what the link cannot carry`,
    );
    assert.ok(r.details.every((d) => d.clientResult.finished));
    if (scenario === 'spoof-toa') {
      assert.equal(r.wrongIp, 40);
      assert.ok(r.details.every((d) => d.seen === '[2001:db8:666::6]:6666'));
    } else {
      assert.equal(r.realIp, 40, scenario);
      assert.ok(r.details.every((d) => d.client.startsWith('[2001:db8:c')));
    }
    if (scenario === 'small-rs-mtu') {
      assert.ok(r.details.every((d) => d.clientResult.pmtu === 1400));
      assert.ok(r.net.icmpFromHop > 0, 'the RS learnt 1400 from the hop’s Packet Too Big');
    }
  }
});

test('family 64 has no DNAT control group: the router refuses to translate families', () => {
  assert.throws(() => new DirectMiddlebox(buildTopology(getScenario('baseline'), 1, 64)), /FNAT64/);
});

test('a FNAT64 trace spells the IPv6 client leg and the 20-byte TOA on the IPv4 leg', () => {
  const r = runScenario({
    scenario: 'baseline',
    family: 64,
    middleboxFactory: engineMiddlebox({ toaPolicy: 'fullnat' }),
    connections: 1,
    capture: true,
  });
  assert.equal(r.realIp, 1);
  const t = connectionTrace(r, 0);
  assert.match(t, /C→LB {2}\[2001:db8:c1::1\]:\d+ > \[2001:db8::100\]:80 \[S\]/);
  assert.match(
    t,
    /LB→RS 10\.10\.3\.\d:\d+ > 10\.10\.2\.\d:80 \[\.\] .*<toa \[2001:db8:c1::1\]:\d+/,
  );
});

test('simulate: one table per family, each headed by its family; rows and pcaps named by family', () => {
  const report = simulate(
    {
      json: false,
      policies: ['fullnat'],
      scenarios: ['baseline'],
      families: [64, 4],
      connections: 3,
      seed: 1,
      mssAdjust: true,
      timestampRemove: true,
      trace: false,
    },
    () => undefined,
  );
  assert.deepEqual(
    report.results.map((r) => [r.family, r.scenario, r.policy, r.realIp]),
    [
      [64, 'baseline', 'fullnat', 3],
      [4, 'baseline', 'fullnat', 3],
    ],
  );
  const text = formatTable(report);
  const head64 = text.indexOf('family 64: FNAT64 (IPv6 client and VIP');
  const head4 = text.indexOf('family 4: IPv4');
  assert.ok(head64 === 0 && head4 > head64, text);
  assert.equal(text.match(/real client IP on 3\/3 connections/g)?.length, 2);
  assert.equal(pcapName('baseline', 'lvs', 4), 'baseline-lvs.pcap');
  assert.equal(pcapName('baseline', 'lvs', 64), 'baseline-lvs-64.pcap');
});

test('SYNPROXY in every family: 4, 6 and 64 all run (nothing skipped), the real client on every connection', () => {
  const o = {
    json: true,
    policies: ['fullnat' as const],
    scenarios: ['baseline' as const],
    connections: 3,
    seed: 1,
    mssAdjust: true,
    timestampRemove: true,
    trace: false,
    synProxy: true,
  };
  const lines: string[] = [];
  const report = simulate({ ...o, families: [4, 6, 64] }, (l) => lines.push(l));
  assert.deepEqual(
    report.results.map((r) => [r.family, r.realIp]),
    [
      [4, 3],
      [6, 3],
      [64, 3],
    ],
  );
  assert.equal(report.skipped, undefined);
  assert.equal(lines.filter((l) => /not run/.test(l)).length, 0);
  assert.deepEqual(
    simulate({ ...o, families: [6] }, () => undefined).results.map((r) => [r.family, r.realIp]),
    [[6, 3]],
  );
});

test('toa_v6_kind 253 (the Alibaba format): fullnat still keeps every address in 6 and 64', () => {
  for (const family of [6, 64] as const) {
    for (const scenario of SCENARIO_NAMES) {
      const r = runScenario({
        scenario,
        family,
        middleboxFactory: engineMiddlebox({ toaPolicy: 'fullnat', toaV6Kind: 253 }),
        connections: 20,
        capture: scenario === 'baseline',
      });
      assert.equal(r.realIp, 20, `family ${family} ${scenario}`);
      if (scenario === 'baseline')
        assert.match(connectionTrace(r, 0), /LB→RS .*<toa253 \[2001:db8:c1::1\]:\d+/);
    }
  }
});
