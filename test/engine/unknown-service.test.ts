/**
 * Traffic for an address routed to the LB that no service claims
 * (`unknown_service_action`): dropped and counted by default; with `icmp`,
 * answered with a rate-limited ICMP destination unreachable that tshark, as
 * an independent decoder, reads as intended; IPv6 packets get the ICMPv6
 * destination unreachable, from the same bucket.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import type { EngineOptions, UnknownServiceAction } from '../../src/engine/options.js';
import { C, DROP_COUNTERS } from '../../src/engine/counters.js';
import { Engine } from '../../src/engine/engine.js';
import { TokenBucket } from '../../src/engine/token-bucket.js';
import { finishChecksum, sumWords } from '../../src/wire/checksum.js';
import { get16, ipv4ToString, parseIpv4 } from '../../src/wire/bytes.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { IPPROTO_ICMP, Ipv4View, writeIpv4Header } from '../../src/wire/ipv4.js';
import { LINKTYPE_RAW, PcapWriter } from '../../src/wire/pcap.js';
import { TCP_ACK, TCP_PSH, TCP_RST, TCP_SYN } from '../../src/wire/tcp.js';
import { buildSegment, buildSegment6, pattern, v6, withIpOptions } from '../support/packets.js';
import { probeTshark, tsharkDecode, tsharkFields } from '../support/tshark.js';
import { CIP, LIP, RIP, VIP, feedRaw, newTestEngine } from '../support/engine-fixture.js';

const OTHER = parseIpv4('192.0.2.200');

function makeEngine(action?: UnknownServiceAction, extra: Partial<EngineOptions> = {}): Engine {
  return newTestEngine({
    maxConnections: 64,
    ...(action ? { unknownServiceAction: action } : {}),
    ...extra,
  });
}

/** Feeds one packet at `now` and returns copies of what the engine emitted. */
function feed(e: Engine, bytes: Uint8Array, now = 0): Uint8Array[] {
  return feedRaw(e, bytes, now).map((o) => o.bytes);
}

function segment(
  src: number,
  dst: number,
  dport: number,
  flags = TCP_SYN,
  extra: { payload?: Uint8Array; sport?: number; seq?: number } = {},
): Uint8Array {
  return buildSegment({
    src,
    dst,
    sport: extra.sport ?? 40000,
    dport,
    seq: extra.seq ?? 0x11223344,
    flags,
    payload: extra.payload,
  });
}

/** Every received packet is forwarded or counted in exactly one drop counter. */
function assertAccounted(e: Engine): void {
  let dropped = 0;
  for (const name of DROP_COUNTERS) dropped += e.counters[C[name]]!;
  assert.equal(e.counter('rx_packets'), e.counter('forwarded_packets') + dropped);
}

/** Checks an ICMP destination unreachable against the packet it answers. */
function assertUnreachable(icmp: Uint8Array, orig: Uint8Array, code: number): void {
  const ip = new Ipv4View().wrap(icmp, 0);
  const o = new Ipv4View().wrap(orig, 0);
  const quote = o.headerLength + 8;
  assert.equal(ip.protocol, IPPROTO_ICMP);
  assert.equal(ip.computeChecksum(), ip.checksum, 'IP header checksum');
  assert.equal(ip.src, o.dst, 'from the address the packet was sent to');
  assert.equal(ip.dst, o.src, 'to its sender');
  assert.equal(ip.headerLength, 20);
  assert.equal(ip.totalLength, 20 + 8 + quote);
  assert.equal(icmp.length, ip.totalLength);
  assert.equal(icmp[20], 3, 'type 3 destination unreachable');
  assert.equal(icmp[21], code);
  assert.deepEqual([...icmp.subarray(24, 28)], [0, 0, 0, 0], 'unused word');
  assert.equal(finishChecksum(sumWords(icmp, 20, 8 + quote, 0)), 0, 'ICMP checksum');
  assert.deepEqual(icmp.subarray(28), orig.subarray(0, quote), 'IP header + 8 bytes quoted');
}

describe('unknown services: default drop', () => {
  it('drops and counts, sends nothing', () => {
    const e = makeEngine();
    assert.equal(e.opts.unknownServiceAction, 'drop');
    assert.deepEqual(feed(e, segment(CIP, VIP, 81)), []);
    assert.deepEqual(feed(e, segment(CIP, OTHER, 80)), []);
    assert.equal(e.counter('no_service_dropped'), 2);
    assert.equal(e.counter('icmp_unreachable_sent'), 0);
    assert.equal(e.counter('icmp_unreachable_ratelimited'), 0);
    assert.equal(e.counter('tx_packets'), 0);
    assertAccounted(e);
  });
});

describe('unknown services: icmp', () => {
  it('port unreachable for a VIP without that port, host unreachable for any other address', () => {
    const e = makeEngine('icmp');
    const toPort = segment(CIP, VIP, 81);
    const [a, ...restA] = feed(e, toPort);
    assert.deepEqual(restA, []);
    assertUnreachable(a!, toPort, 3);

    const toHost = segment(CIP, OTHER, 80, TCP_ACK | TCP_PSH, { payload: pattern(100) });
    const [b, ...restB] = feed(e, toHost);
    assert.deepEqual(restB, []);
    assertUnreachable(b!, toHost, 1);

    const opts = withIpOptions(segment(CIP, VIP, 443));
    const [c] = feed(e, opts);
    assertUnreachable(c!, opts, 3);
    assert.equal(c!.length, 20 + 8 + 24 + 8, 'quotes the whole IP header, options included');

    assert.equal(e.counter('no_service_dropped'), 3, 'the packet itself is still a drop');
    assert.equal(e.counter('icmp_unreachable_sent'), 3);
    assert.equal(e.counter('tx_packets'), 3);
    assertAccounted(e);
  });

  it('the service VIP:port itself still works, and a deleted service turns into port unreachable', () => {
    const e = makeEngine('icmp');
    const [syn] = feed(e, segment(CIP, VIP, 80));
    assert.equal(new Ipv4View().wrap(syn!, 0).dst, RIP, 'forwarded to the RS');
    assert.equal(e.counter('icmp_unreachable_sent'), 0);
    e.deleteService(0);
    const late = segment(CIP, VIP, 80, TCP_SYN, { sport: 40001 });
    const [icmp] = feed(e, late);
    // No live service has this VIP any more: the LB is no longer that host.
    assertUnreachable(icmp!, late, 1);
  });

  it('never answers a RST, a non-unicast or loopback address, ICMP, a fragment or a LIP reply', () => {
    const e = makeEngine('icmp');
    const quiet: Array<[string, Uint8Array]> = [
      ['RST', segment(CIP, VIP, 81, TCP_RST)],
      ['RST+ACK', segment(CIP, OTHER, 80, TCP_RST | TCP_ACK)],
      ['multicast source', segment(parseIpv4('224.0.0.5'), VIP, 81)],
      ['broadcast source', segment(parseIpv4('255.255.255.255'), VIP, 81)],
      ['reserved source', segment(parseIpv4('240.1.2.3'), VIP, 81)],
      ['"this network" source', segment(parseIpv4('0.0.0.0'), VIP, 81)],
      ['loopback source', segment(parseIpv4('127.0.0.1'), VIP, 81)],
      ['multicast destination', segment(CIP, parseIpv4('239.1.2.3'), 80)],
      ['broadcast destination', segment(CIP, parseIpv4('255.255.255.255'), 80)],
    ];
    for (const [what, pkt] of quiet) assert.deepEqual(feed(e, pkt), [], what);
    assert.equal(e.counter('no_service_dropped'), quiet.length);

    // ICMP to a VIP: never an ICMP error about an ICMP message. (An echo request is answered
    // with an echo reply, icmp.test.ts; an echo reply is answered with nothing.)
    const icmp = new Uint8Array(28);
    writeIpv4Header(icmp, 0, { src: CIP, dst: VIP, protocol: IPPROTO_ICMP, payloadLength: 8 });
    icmp[20] = 0;
    icmp.set([0, 0], 22);
    const sum = finishChecksum(sumWords(icmp, 20, 8, 0));
    icmp[22] = sum >>> 8;
    icmp[23] = sum & 0xff;
    assert.deepEqual(feed(e, icmp), [], 'ICMP echo reply');
    assert.equal(e.counter('icmp_unhandled_dropped'), 1);

    // Fragments: a later piece (offset ≠ 0), and the first piece too (the LB does not reassemble).
    for (const [what, frag] of [
      ['offset 1480', 0x00b9],
      ['first, more fragments', 0x2000],
    ] as const) {
      const f = segment(CIP, OTHER, 80);
      const ip = new Ipv4View().wrap(f, 0);
      f[6] = frag >>> 8;
      f[7] = frag & 0xff;
      ip.checksum = 0;
      ip.checksum = ip.computeChecksum();
      assert.deepEqual(feed(e, f), [], what);
    }
    assert.equal(e.counter('fragment_dropped'), 2);

    // A reply toward a LIP with no connection is a LIP's business, not an unknown service:
    // no ICMP; the unknown-flow answer (a TCP RST from the LIP, unknown-flow.test.ts) instead.
    const [lipAnswer, ...more] = feed(
      e,
      buildSegment({ src: RIP, dst: LIP, sport: 8080, dport: 5000, seq: 1, flags: TCP_ACK }),
    );
    assert.deepEqual(more, []);
    const answer = new Ipv4View().wrap(lipAnswer!, 0);
    assert.equal(answer.protocol, 6, 'a TCP RST, not an ICMP error');
    assert.equal(answer.src, LIP);
    assert.equal(e.counter('no_conn_dropped'), 1);
    assert.equal(e.counter('unknown_flow_rst_sent'), 1);

    assert.equal(e.counter('icmp_unreachable_sent'), 0);
    assert.equal(e.counter('icmp_unreachable_ratelimited'), 0);
    assert.equal(e.counter('tx_packets'), 1);
    assertAccounted(e);
  });

  it('is rate-limited: a burst of 50, then 1000 a second', () => {
    const e = makeEngine('icmp');
    const pkt = segment(CIP, VIP, 81);
    let sent = 0;
    for (let i = 0; i < 200; i++) sent += feed(e, pkt, 0).length;
    assert.equal(sent, 50, 'the burst');
    assert.equal(e.counter('icmp_unreachable_ratelimited'), 150);

    // 10 ms later: 10 tokens.
    sent = 0;
    for (let i = 0; i < 30; i++) sent += feed(e, pkt, 10).length;
    assert.equal(sent, 10);

    // Idle for a second: the bucket holds no more than the burst.
    sent = 0;
    for (let i = 0; i < 200; i++) sent += feed(e, pkt, 1010).length;
    assert.equal(sent, 50);

    // Sustained: 4 packets per ms for 2 s (4000/s offered) → 1000/s get through.
    sent = 0;
    let offered = 0;
    for (let t = 1011; t < 3011; t++) {
      for (let k = 0; k < 4; k++, offered++) sent += feed(e, pkt, t).length;
    }
    assert.equal(sent, 2000);
    assert.equal(
      e.counter('icmp_unreachable_sent') + e.counter('icmp_unreachable_ratelimited'),
      200 + 30 + 200 + offered,
      'every eligible packet is either answered or counted as rate-limited',
    );
    assert.equal(e.counter('no_service_dropped'), 200 + 30 + 200 + offered);
    assertAccounted(e);
  });

  it('takes its rate and burst from the options', () => {
    const e = makeEngine('icmp', { icmpRateLimit: 10, icmpRateBurst: 2 });
    const pkt = segment(CIP, OTHER, 80);
    let sent = 0;
    for (let i = 0; i < 5; i++) sent += feed(e, pkt, 0).length;
    assert.equal(sent, 2);
    sent = 0;
    for (let i = 0; i < 5; i++) sent += feed(e, pkt, 100).length;
    assert.equal(sent, 1, '10 a second is one per 100 ms');
  });

  it('switches with reconfigure (reload) both ways', () => {
    const e = makeEngine();
    const pkt = segment(CIP, VIP, 81);
    assert.equal(feed(e, pkt).length, 0);
    e.reconfigure({ unknownServiceAction: 'icmp' });
    assert.equal(feed(e, pkt).length, 1);
    e.reconfigure({ unknownServiceAction: 'drop' });
    assert.equal(feed(e, pkt).length, 0);
    assert.equal(e.counter('no_service_dropped'), 3);
    assert.equal(e.counter('icmp_unreachable_sent'), 1);
  });

  it('allocates no packets in steady state', () => {
    const e = makeEngine('icmp', { icmpRateLimit: 1e9, icmpRateBurst: 1_000_000 });
    const pkt = segment(CIP, VIP, 81);
    for (let i = 0; i < 100; i++) feed(e, pkt);
    const created = e.pool.created;
    for (let i = 0; i < 10_000; i++) assert.equal(feed(e, pkt, i).length, 1);
    assert.equal(e.pool.created, created);
  });

  it('refuses bad options with a clear error', () => {
    assert.throws(
      () => new Engine({ unknownServiceAction: 'reject' as UnknownServiceAction }),
      /unknownServiceAction must be one of drop, icmp, got 'reject'/,
    );
    assert.throws(
      () => makeEngine().reconfigure({ unknownServiceAction: 'ICMP' as UnknownServiceAction }),
      RangeError,
    );
    assert.throws(() => new Engine({ icmpRateLimit: 0 }), /rate must be a positive number/);
    assert.throws(
      () => new Engine({ icmpRateBurst: 0.5 }),
      /burst must be an integer of at least 1/,
    );
    assert.throws(() => new TokenBucket(Number.NaN, 1), RangeError);
  });
});

const tshark = probeTshark();

describe('unknown services: tshark reads the ICMP as intended', () => {
  it(
    'type 3 codes 3 and 1, good checksums, the quoted header and ports',
    { skip: tshark.ok ? false : tshark.reason, timeout: 30_000 },
    () => {
      const e = makeEngine('icmp');
      const sent = [
        { orig: segment(CIP, VIP, 81, TCP_SYN, { sport: 40001, seq: 0xdeadbeef }), code: 3 },
        { orig: segment(CIP, OTHER, 80, TCP_ACK, { sport: 40002, seq: 7 }), code: 1 },
      ];
      const pcap = new PcapWriter(LINKTYPE_RAW);
      const answers = sent.map(({ orig }, i) => {
        const [icmp] = feed(e, orig);
        assert.ok(icmp);
        pcap.add(1_700_000_000_000_000 + i, icmp);
        return icmp;
      });
      assert.equal(answers.length, 2);
      const dir = mkdtempSync(join(tmpdir(), 'fullnat-icmp-'));
      try {
        const file = join(dir, 'icmp.pcap');
        writeFileSync(file, pcap.toBytes());
        const fields = [
          'ip.src',
          'ip.dst',
          'ip.checksum.status',
          'icmp.type',
          'icmp.code',
          'icmp.checksum.status',
          'tcp.srcport',
          'tcp.dstport',
          'tcp.seq',
        ];
        const rows = tsharkFields(file, fields, { home: dir, timeoutMs: 20_000 }).map((cols) =>
          Object.fromEntries(cols.map((v, i) => [fields[i]!, v])),
        );
        assert.equal(rows.length, 2);
        sent.forEach(({ orig, code }, i) => {
          const o = new Ipv4View().wrap(orig, 0);
          const row = rows[i]!;
          const at = `frame ${i + 1}`;
          // Outer header, then the quoted one inside the ICMP message.
          assert.equal(
            row['ip.src'],
            `${ipv4ToString(o.dst)},${ipv4ToString(o.src)}`,
            `${at}: ip.src`,
          );
          assert.equal(
            row['ip.dst'],
            `${ipv4ToString(o.src)},${ipv4ToString(o.dst)}`,
            `${at}: ip.dst`,
          );
          assert.equal(row['ip.checksum.status'], '1,1', `${at}: both IP checksums good`);
          assert.equal(row['icmp.type'], '3', at);
          assert.equal(row['icmp.code'], String(code), at);
          assert.equal(row['icmp.checksum.status'], '1', `${at}: ICMP checksum good`);
          const sport = (orig[20]! << 8) | orig[21]!;
          const dport = (orig[22]! << 8) | orig[23]!;
          const seq = ((orig[24]! << 24) | (orig[25]! << 16) | (orig[26]! << 8) | orig[27]!) >>> 0;
          assert.equal(row['tcp.srcport'], String(sport), `${at}: quoted source port`);
          assert.equal(row['tcp.dstport'], String(dport), `${at}: quoted destination port`);
          assert.equal(row['tcp.seq'], String(seq), `${at}: quoted sequence number`);
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

describe('unknown services over IPv6: icmp answers with ICMPv6 destination unreachable', () => {
  const VIP6 = v6('2001:db8::100');
  const OTHER6 = v6('2001:db8::200');
  const CIP6 = v6('2001:db8:c::1');

  function engine6(action?: UnknownServiceAction, extra: Partial<EngineOptions> = {}): Engine {
    const e = makeEngine(action, extra);
    e.addService({
      vip: Ipv6Address.fromBytes(VIP6),
      vport: 80,
      scheduler: 'rr',
      laddrs: [Ipv6Address.fromBytes(v6('2001:db8:1::1'))],
      realServers: [{ addr: Ipv6Address.fromBytes(v6('2001:db8:2::10')), port: 8080, weight: 1 }],
    });
    return e;
  }

  function seg6(
    dst: Uint8Array,
    dport: number,
    flags = TCP_SYN,
    src = CIP6,
    ext?: { type: number; body: Uint8Array }[],
  ): Uint8Array {
    return buildSegment6({ src, dst, sport: 40000, dport, seq: 0x11223344, flags, ext });
  }

  /** Checks an ICMPv6 destination unreachable against the packet it answers (sent without extension headers). */
  function assertUnreachable6(m: Uint8Array, orig: Uint8Array, code: number): void {
    assert.equal(m[0]! >>> 4, 6);
    assert.equal(m[6], 58, 'ICMPv6');
    assert.deepEqual(
      [...m.subarray(8, 24)],
      [...orig.subarray(24, 40)],
      'from the address it went to',
    );
    assert.deepEqual([...m.subarray(24, 40)], [...orig.subarray(8, 24)], 'to its sender');
    const len = get16(m, 4);
    assert.equal(len + 40, m.length);
    assert.equal(m[40], 1, 'type 1 destination unreachable');
    assert.equal(m[41], code);
    assert.deepEqual([...m.subarray(44, 48)], [0, 0, 0, 0], 'unused word');
    const pseudo = sumWords(m, 8, 32, 0) + 58 + len;
    assert.equal(finishChecksum(sumWords(m, 40, len, pseudo)), 0, 'ICMPv6 checksum');
    assert.deepEqual([...m.subarray(48)], [...orig], 'quotes the packet');
  }

  it('port unreachable (1/4) for an IPv6 VIP without that port, address unreachable (1/3) for another IPv6 address; counted as for IPv4', () => {
    const e = engine6('icmp');
    const toVip = seg6(VIP6, 81);
    const a = feed(e, toVip);
    assert.equal(a.length, 1);
    assertUnreachable6(a[0]!, toVip, 4);
    const toOther = seg6(OTHER6, 80, TCP_ACK | TCP_PSH);
    const b = feed(e, toOther);
    assert.equal(b.length, 1);
    assertUnreachable6(b[0]!, toOther, 3);
    assert.equal(e.counter('icmp_unreachable_sent'), 2);
    assert.equal(e.counter('no_service_dropped'), 2);
    assertAccounted(e);
    // The service itself still works.
    assert.equal(feed(e, seg6(VIP6, 80)).length, 1);
    assert.equal(e.counter('icmp_unreachable_sent'), 2);
    // Default drop: nothing sent, counted the same.
    const d = engine6();
    assert.equal(feed(d, seg6(VIP6, 81)).length, 0);
    assert.equal(d.counter('no_service_dropped'), 1);
    assert.equal(d.counter('icmp_unreachable_sent'), 0);
  });

  it('quotes the packet without the extension headers the LB takes out, at most 1280 bytes in all', () => {
    const e = engine6('icmp');
    const hbh = new Uint8Array(8);
    const withExt = seg6(VIP6, 81, TCP_SYN, CIP6, [{ type: 0, body: hbh }]);
    const out = feed(e, withExt);
    assert.equal(out.length, 1);
    assertUnreachable6(out[0]!, seg6(VIP6, 81), 4);
    const big = buildSegment6({
      src: CIP6,
      dst: OTHER6,
      sport: 40000,
      dport: 80,
      seq: 1,
      flags: TCP_ACK,
      payload: pattern(1400),
    });
    const m = feed(e, big)[0]!;
    assert.equal(m.length, 1280);
    assert.deepEqual([...m.subarray(48)], [...big.subarray(0, 1280 - 48)]);
  });

  it('never for a RST, nor to or from a multicast, unspecified or loopback address', () => {
    const e = engine6('icmp');
    const never = [
      seg6(VIP6, 81, TCP_RST),
      seg6(v6('ff02::1'), 80),
      seg6(VIP6, 81, TCP_SYN, v6('ff05::2')),
      seg6(VIP6, 81, TCP_SYN, v6('::')),
      seg6(VIP6, 81, TCP_SYN, v6('::1')),
      seg6(v6('::1'), 80),
    ];
    for (const p of never) assert.equal(feed(e, p).length, 0);
    assert.equal(e.counter('icmp_unreachable_sent'), 0);
    assert.equal(e.counter('no_service_dropped'), never.length);
    // ::2 is an ordinary address (not loopback): answered.
    assert.equal(feed(e, seg6(VIP6, 81, TCP_SYN, v6('::2'))).length, 1);
    assertAccounted(e);
  });

  it('shares the IPv4 bucket: a burst, then the rate; held back ones counted icmp_unreachable_ratelimited', () => {
    const e = engine6('icmp', { icmpRateLimit: 10, icmpRateBurst: 3 });
    let sent = 0;
    for (let i = 0; i < 5; i++) sent += feed(e, seg6(OTHER6, 80), 0).length;
    sent += feed(e, segment(CIP, OTHER, 80), 0).length;
    assert.equal(sent, 3, 'the burst, IPv4 and IPv6 together');
    assert.equal(e.counter('icmp_unreachable_ratelimited'), 3);
    assert.equal(feed(e, seg6(OTHER6, 80), 100).length, 1, 'one more after 100 ms at 10/s');
    assertAccounted(e);
  });

  it('tshark reads type 1 codes 4 and 3 with a good checksum', (t) => {
    if (!tshark.ok) {
      t.skip(tshark.reason);
      return;
    }
    const e = engine6('icmp');
    const frames = [...feed(e, seg6(VIP6, 81)), ...feed(e, seg6(OTHER6, 80))];
    const rows = tsharkDecode(frames, [
      'icmpv6.type',
      'icmpv6.code',
      'icmpv6.checksum.status',
      'tcp.dstport',
    ]);
    assert.deepEqual(
      rows.map((r) => [r['icmpv6.type'], r['icmpv6.code'], r['icmpv6.checksum.status']]),
      [
        ['1', '4', '1'],
        ['1', '3', '1'],
      ],
    );
    assert.equal(rows[0]!['tcp.dstport'], '81', 'the quoted segment read');
  });
});
