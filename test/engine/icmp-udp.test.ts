/**
 * ICMP and ICMPv6 errors about UDP flows: an RS's port unreachable (and a
 * router's frag-needed, Packet Too Big, time exceeded) quoting a datagram
 * the LB sent — plain, with the ipo option, or with the opp shim — goes to
 * the client quoting the datagram it sent itself, byte for byte (so its
 * stack finds the socket); an error from the client's side goes to the RS
 * likewise; FNAT64 translates between ICMPv4 and ICMPv6. The expected
 * packets are built here independently, and tshark decodes the results.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import type { EngineOptions, UoaSetting } from '../../src/engine/options.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { get16, ipv4ToString, parseIpv4 } from '../../src/wire/bytes.js';
import { Ipv4View } from '../../src/wire/ipv4.js';
import { IPPROTO_OPP } from '../../src/wire/uoa.js';
import { CIP, LIP, RIP, VIP, assertCountedOnce, feedRaw } from '../support/engine-fixture.js';
import { CIP6, LIP6, LIP64, RIP6, RIP64, VIP6, ip6 } from '../support/engine6-fixture.js';
import { icmp6Packet, icmpPacket, quoteOf } from '../support/icmp.js';
import { v6 } from '../support/packets.js';
import { probeTshark, tsharkDecode } from '../support/tshark.js';
import { buildUdp4, buildUdp6 } from '../support/udp-packets.js';

const DNS = 53;
const RDNS = 5353;
const CPORT = 41000;
const ROUTER_RS = parseIpv4('10.10.2.254');
const ROUTER_CLIENT = parseIpv4('198.51.100.1');
const ROUTER6_CLIENT = v6('2001:db8:c::fe');

function udpEngine(uoaMode: UoaSetting = 'opp', opts: Partial<EngineOptions> = {}): Engine {
  const e = new Engine({ maxConnections: 64, ...opts });
  e.addService({
    vip: VIP,
    vport: DNS,
    protocol: 'UDP',
    scheduler: 'rr',
    laddrs: [LIP],
    realServers: [{ addr: RIP, port: RDNS, weight: 1 }],
    uoaMode,
  });
  return e;
}

/** Port 53: an IPv6 RS (service 0); port 54: an IPv4 RS, FNAT64 (service 1). */
function udpEngine6(opts: Partial<EngineOptions> = {}): Engine {
  const e = new Engine({ maxConnections: 64, ...opts });
  for (const [vport, lip, rip] of [
    [DNS, Ipv6Address.fromBytes(LIP6), Ipv6Address.fromBytes(RIP6)],
    [DNS + 1, LIP64, RIP64],
  ] as const) {
    e.addService({
      vip: Ipv6Address.fromBytes(VIP6),
      vport,
      protocol: 'UDP',
      scheduler: 'rr',
      laddrs: [lip],
      realServers: [{ addr: rip, port: RDNS, weight: 1 }],
    });
  }
  return e;
}

const query = (n = 40): Uint8Array =>
  buildUdp4({
    src: CIP,
    dst: VIP,
    sport: CPORT,
    dport: DNS,
    payload: new Uint8Array(n).fill(0x61),
  });

const query6 = (vport: number, n = 40): Uint8Array =>
  buildUdp6({
    src: CIP6,
    dst: VIP6,
    sport: CPORT,
    dport: vport,
    payload: new Uint8Array(n).fill(0x61),
  });

function only(out: { bytes: Uint8Array }[]): Uint8Array {
  assert.equal(out.length, 1);
  return out[0]!.bytes;
}

/** The client's datagram, and the one the LB sent the RS of it (its UDP header's offset there too). */
interface Sent {
  fromClient: Uint8Array;
  toRs: Uint8Array;
  lport: number;
  udpAt: number;
}

function sendQuery(e: Engine, fromClient: Uint8Array): Sent {
  const toRs = only(feedRaw(e, fromClient));
  const v4 = toRs[0]! >>> 4 === 4;
  const hl = v4 ? (toRs[0]! & 0x0f) * 4 : 40;
  const proto = v4 ? toRs[9] : toRs[6];
  const udpAt = proto === IPPROTO_OPP ? hl + get16(toRs, hl + 2) : hl;
  return { fromClient, toRs, lport: get16(toRs, udpAt), udpAt };
}

/** An ICMPv4 message as icmpPacket builds it, DF clear and ID 0 (FNAT64's own ICMPv4). */
function icmpNoDf(...args: Parameters<typeof icmpPacket>): Uint8Array {
  const b = icmpPacket(...args);
  b[6] = 0;
  new Ipv4View().wrap(b, 0).updateChecksum();
  return b;
}

/** `packet` with IPv4 ID 0 and its header checksum redone: the quoted header FNAT64 rebuilds. */
function withIdZero(packet: Uint8Array): Uint8Array {
  const b = packet.slice();
  b[4] = 0;
  b[5] = 0;
  new Ipv4View().wrap(b, 0).updateChecksum();
  return b;
}

describe('ICMP errors about IPv4 UDP flows', () => {
  for (const mode of ['off', 'ipo', 'opp'] as const) {
    it(`port unreachable from the RS (${mode} quote) reaches the client quoting its own datagram`, () => {
      const e = udpEngine(mode);
      const s = sendQuery(e, query());
      const growth = s.toRs.length - s.fromClient.length;
      assert.equal(growth, { off: 0, ipo: 8, opp: 12 }[mode]);
      // The RS's kernel quotes what it got (Linux: up to 576 bytes in all), the whole datagram.
      const whole = only(feedRaw(e, icmpPacket(RIP, LIP, 3, 3, 0, s.toRs)));
      assert.deepEqual(whole, icmpPacket(VIP, CIP, 3, 3, 0, s.fromClient));
      // A router that quotes the least that still reaches the whole UDP header.
      const short = s.udpAt + 8;
      const cut = only(feedRaw(e, icmpPacket(ROUTER_RS, LIP, 11, 0, 0, quoteOf(s.toRs, short))));
      assert.deepEqual(
        cut,
        icmpPacket(VIP, CIP, 11, 0, 0, quoteOf(s.fromClient, short - growth)),
        'time exceeded, the quote cut after the UDP header',
      );
      assert.equal(e.counter('icmp_error_forwarded'), 2);
      assertCountedOnce(e);
    });
  }

  it('frag-needed for a UDP flow lowers the RS path MTU; the client hears the MTU without TOA room', () => {
    const e = udpEngine('opp', { toaPolicy: 'fullnat' });
    const s = sendQuery(e, query(1400));
    const out = only(feedRaw(e, icmpPacket(ROUTER_RS, LIP, 3, 4, 1300, quoteOf(s.toRs, 76))));
    assert.deepEqual(out, icmpPacket(VIP, CIP, 3, 4, 1300, quoteOf(s.fromClient, 64)));
    assert.equal(e.pathMtu(0), 1300);
    assert.equal(e.counter('icmp_pmtu_learned'), 1);
    // The flow's next datagram over the learned MTU, DF set, is refused with the LB's own frag-needed.
    const big = buildUdp4({
      src: CIP,
      dst: VIP,
      sport: CPORT,
      dport: DNS,
      payload: new Uint8Array(1400),
      dontFragment: true,
    });
    const refused = only(feedRaw(e, big));
    assert.equal(refused[20], 3);
    assert.equal(refused[21], 4);
    assert.equal(get16(refused, 26), 1300);
    assert.equal(e.counter('too_big_dropped'), 1);
    assertCountedOnce(e);
  });

  it("an error from the client's side quoting the LB's answer reaches the RS quoting its own", () => {
    const e = udpEngine();
    const s = sendQuery(e, query());
    const answer = buildUdp4({
      src: RIP,
      dst: LIP,
      sport: RDNS,
      dport: s.lport,
      payload: new Uint8Array(30).fill(0x62),
    });
    const toClient = only(feedRaw(e, answer));
    const out = only(feedRaw(e, icmpPacket(CIP, VIP, 3, 3, 0, toClient)));
    assert.deepEqual(out, icmpPacket(LIP, RIP, 3, 3, 0, answer));
    const viaRouter = only(
      feedRaw(e, icmpPacket(ROUTER_CLIENT, VIP, 3, 1, 0, quoteOf(toClient, 28))),
    );
    assert.deepEqual(viaRouter, icmpPacket(LIP, RIP, 3, 1, 0, quoteOf(answer, 28)));
    assertCountedOnce(e);
  });

  it('keeps a quoted checksum of 0 at 0 and finds the UDP flow, not a TCP connection of the same ports', () => {
    const e = udpEngine('off');
    const noSum = buildUdp4({ src: CIP, dst: VIP, sport: CPORT, dport: DNS, noChecksum: true });
    const s = sendQuery(e, noSum);
    assert.deepEqual(
      only(feedRaw(e, icmpPacket(RIP, LIP, 3, 3, 0, s.toRs))),
      icmpPacket(VIP, CIP, 3, 3, 0, noSum),
    );
    const tcpQuote = s.toRs.slice();
    tcpQuote[9] = 6;
    new Ipv4View().wrap(tcpQuote, 0).updateChecksum();
    assert.equal(feedRaw(e, icmpPacket(RIP, LIP, 3, 3, 0, quoteOf(tcpQuote, 28))).length, 0);
    assert.equal(e.counter('icmp_error_no_conn_dropped'), 1, 'TCP has no such connection');
    assertCountedOnce(e);
  });

  it('drops what quotes no flow and what cannot be read, forwards nothing of it', () => {
    const e = udpEngine('opp');
    const s = sendQuery(e, query());
    // Another LIP port: no flow.
    const stranger = s.toRs.slice();
    stranger[s.udpAt] = stranger[s.udpAt]! ^ 0x40;
    // An opp quote to the VIP: the LB never sends the client one.
    const oppToVip = s.toRs.slice();
    oppToVip[12] = (VIP >>> 24) & 0xff;
    oppToVip[13] = (VIP >>> 16) & 0xff;
    oppToVip[14] = (VIP >>> 8) & 0xff;
    oppToVip[15] = VIP & 0xff;
    new Ipv4View().wrap(oppToVip, 0).updateChecksum();
    const sent = [
      icmpPacket(RIP, LIP, 3, 3, 0, stranger),
      icmpPacket(CIP, VIP, 3, 3, 0, oppToVip),
      // A quote from an address other than the one the error came to lies.
      icmpPacket(RIP, VIP, 3, 3, 0, s.toRs),
    ];
    for (const m of sent) assert.equal(feedRaw(e, m).length, 0);
    assert.equal(e.counter('icmp_error_no_conn_dropped'), 3);
    // The opp shim whole but the UDP header cut (RFC 792's 8 bytes): unreadable.
    const cut = icmpPacket(RIP, LIP, 3, 3, 0, quoteOf(s.toRs, 28));
    assert.equal(feedRaw(e, cut).length, 0);
    const badShim = s.toRs.slice();
    badShim[21] = 6; // the OPP header's next protocol
    assert.equal(feedRaw(e, icmpPacket(RIP, LIP, 3, 3, 0, badShim)).length, 0);
    assert.equal(e.counter('icmp_malformed_dropped'), 2);
    assert.equal(e.counter('icmp_error_forwarded'), 0);
    assertCountedOnce(e);
  });

  it('shares the ICMP rate limit', () => {
    const e = udpEngine('opp', { icmpRateLimit: 10, icmpRateBurst: 20 });
    const s = sendQuery(e, query());
    let out = 0;
    for (let k = 0; k < 100; k++)
      out += feedRaw(e, icmpPacket(RIP, LIP, 3, 3, 0, s.toRs), 1000).length;
    assert.equal(out, 20);
    assert.equal(e.counter('icmp_rate_limited'), 80);
    assertCountedOnce(e);
  });
});

describe('ICMPv6 errors about IPv6 and FNAT64 UDP flows', () => {
  it('IPv6: port unreachable from the RS (opp quote) reaches the client quoting its own datagram', () => {
    const e = udpEngine6();
    const s = sendQuery(e, query6(DNS));
    assert.equal(s.toRs[6], IPPROTO_OPP);
    const out = only(feedRaw(e, icmp6Packet(RIP6, LIP6, 1, 4, 0, s.toRs)));
    assert.deepEqual(out, icmp6Packet(VIP6, CIP6, 1, 4, 0, s.fromClient));
    // A Packet Too Big from the RS's path, quoting as much as fits 1280.
    const big = sendQuery(e, query6(DNS, 1400));
    const ptb = icmp6Packet(ROUTER6_CLIENT, LIP6, 2, 0, 1400, quoteOf(big.toRs, 1232));
    // (the router's address does not matter: the error is to the LIP, quoting LIP → RIP)
    assert.deepEqual(
      only(feedRaw(e, ptb)),
      icmp6Packet(VIP6, CIP6, 2, 0, 1400, quoteOf(big.fromClient, 1232 - 24)),
    );
    assert.equal(e.pathMtu(0), 1400);
    assertCountedOnce(e);
  });

  it("IPv6: an error from the client's side reaches the RS quoting its own answer", () => {
    const e = udpEngine6();
    const s = sendQuery(e, query6(DNS));
    const answer = buildUdp6({ src: RIP6, dst: LIP6, sport: RDNS, dport: s.lport });
    const toClient = only(feedRaw(e, answer));
    const out = only(feedRaw(e, icmp6Packet(CIP6, VIP6, 1, 4, 0, toClient)));
    assert.deepEqual(out, icmp6Packet(LIP6, RIP6, 1, 4, 0, answer));
    assertCountedOnce(e);
  });

  it('FNAT64: ICMPv4 port unreachable from the IPv4 RS reaches the IPv6 client as ICMPv6 1/4', () => {
    const e = udpEngine6();
    const s = sendQuery(e, query6(DNS + 1));
    assert.equal(s.toRs[9], IPPROTO_OPP);
    const out = only(feedRaw(e, icmpPacket(RIP64, LIP64, 3, 3, 0, s.toRs)));
    assert.deepEqual(out, icmp6Packet(VIP6, CIP6, 1, 4, 0, s.fromClient));
    // frag-needed: learned for the RS; the client hears the IPv4 MTU + 20 (never below 1280).
    const fn = icmpPacket(ROUTER_RS, LIP64, 3, 4, 1300, quoteOf(s.toRs, 60));
    assert.deepEqual(
      only(feedRaw(e, fn)),
      icmp6Packet(VIP6, CIP6, 2, 0, 1320, quoteOf(s.fromClient, 40 + 60 - 20 - 24)),
    );
    assert.equal(e.pathMtu(1), 1300);
    assertCountedOnce(e);
  });

  it("FNAT64: ICMPv6 from the client's side reaches the IPv4 RS as ICMPv4 quoting its answer", () => {
    const e = udpEngine6();
    const s = sendQuery(e, query6(DNS + 1));
    const answer = buildUdp4({
      src: RIP64,
      dst: LIP64,
      sport: RDNS,
      dport: s.lport,
      payload: new Uint8Array(12).fill(0x63),
    });
    const toClient = only(feedRaw(e, answer));
    const out = only(feedRaw(e, icmp6Packet(CIP6, VIP6, 1, 4, 0, toClient)));
    const dfAnswer = answer.slice();
    dfAnswer[6] = 0x40;
    assert.deepEqual(out, icmpNoDf(LIP64, RIP64, 3, 3, 0, withIdZero(dfAnswer)));
    assertCountedOnce(e);
  });

  it('drops an IPv6 quote of no flow', () => {
    const e = udpEngine6();
    const s = sendQuery(e, query6(DNS));
    const stranger = s.toRs.slice();
    stranger[s.udpAt + 1] = stranger[s.udpAt + 1]! ^ 1;
    assert.equal(feedRaw(e, icmp6Packet(RIP6, LIP6, 1, 4, 0, stranger)).length, 0);
    assert.equal(e.counter('icmp_error_no_conn_dropped'), 1);
    assertCountedOnce(e);
  });
});

const tshark = probeTshark();

describe('tshark reads the translated UDP errors', () => {
  it(
    'good checksums outer and quoted, protocol 17, the client leg and the RS leg',
    { skip: tshark.ok ? undefined : tshark.reason },
    () => {
      const packets: Uint8Array[] = [];
      for (const mode of ['off', 'ipo', 'opp'] as const) {
        const e = udpEngine(mode);
        const s = sendQuery(e, query());
        packets.push(only(feedRaw(e, icmpPacket(RIP, LIP, 3, 3, 0, s.toRs))));
      }
      const e6 = udpEngine6();
      const s6 = sendQuery(e6, query6(DNS));
      const s64 = sendQuery(e6, query6(DNS + 1));
      packets.push(only(feedRaw(e6, icmp6Packet(RIP6, LIP6, 1, 4, 0, s6.toRs))));
      packets.push(only(feedRaw(e6, icmpPacket(RIP64, LIP64, 3, 3, 0, s64.toRs))));
      const answer = buildUdp4({ src: RIP64, dst: LIP64, sport: RDNS, dport: s64.lport });
      const toClient = only(feedRaw(e6, answer));
      packets.push(only(feedRaw(e6, icmp6Packet(CIP6, VIP6, 1, 4, 0, toClient))));
      const rows = tsharkDecode(packets, [
        'ip.src',
        'ip.dst',
        'ip.proto',
        'ip.checksum.status',
        'ipv6.src',
        'ipv6.dst',
        'ipv6.nxt',
        'icmp.type',
        'icmp.code',
        'icmp.checksum.status',
        'icmpv6.type',
        'icmpv6.code',
        'icmpv6.checksum.status',
        'udp.srcport',
        'udp.dstport',
        'udp.checksum.status',
      ]);
      assert.equal(rows.length, 6);
      for (const r of rows) {
        const ck = r['icmpv6.checksum.status'] || r['icmp.checksum.status'];
        assert.equal(ck, '1', JSON.stringify(r));
        for (const st of (r['ip.checksum.status'] ?? '').split(',').filter((x) => x !== ''))
          assert.equal(st, '1', JSON.stringify(r));
        assert.equal(r['udp.checksum.status'], '1', JSON.stringify(r));
      }
      const cip = ipv4ToString(CIP);
      const vip = ipv4ToString(VIP);
      const c6 = ip6(CIP6).text;
      const vip6 = ip6(VIP6).text;
      const pick = (r: Record<string, string>): string[] => [
        r['ipv6.src'] || r['ip.src']!,
        r['ipv6.dst'] || r['ip.dst']!,
        r['ip.proto'] || r['ipv6.nxt']!,
        r['icmpv6.type'] || r['icmp.type']!,
        r['icmpv6.code'] || r['icmp.code']!,
        r['udp.srcport']!,
        r['udp.dstport']!,
      ];
      const toV4Client = [`${vip},${cip}`, `${cip},${vip}`, '1,17', '3', '3', `${CPORT}`, `${DNS}`];
      assert.deepEqual(rows.map(pick), [
        toV4Client,
        toV4Client,
        toV4Client,
        [`${vip6},${c6}`, `${c6},${vip6}`, '58,17', '1', '4', `${CPORT}`, `${DNS}`],
        [`${vip6},${c6}`, `${c6},${vip6}`, '58,17', '1', '4', `${CPORT}`, `${DNS + 1}`],
        [
          `${ipv4ToString(LIP64)},${ipv4ToString(RIP64)}`,
          `${ipv4ToString(RIP64)},${ipv4ToString(LIP64)}`,
          '1,17',
          '3',
          '3',
          `${RDNS}`,
          `${s64.lport}`,
        ],
      ]);
    },
  );
});
