/**
 * ICMPv6 through the engine: errors about IPv6 connections translated to the
 * other leg, FNAT64's errors translated between ICMPv4 and ICMPv6 (RFC 7915),
 * the RS path MTU learned from Packet Too Big, echo to an IPv6 VIP, and what
 * is dropped. The expected packets are built here independently: a
 * translated quote is the other leg's host's own packet, byte for byte.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import type { EngineOptions, ToaSetting } from '../../src/engine/options.js';
import { get16, get32, ipv4ToString, parseIpv4 } from '../../src/wire/bytes.js';
import { Ipv4View } from '../../src/wire/ipv4.js';
import { TCP_ACK, TCP_PSH, TCP_SYN } from '../../src/wire/tcp.js';
import { opt } from '../../src/wire/tcp-options.js';
import { assertCountedOnce, feedRaw } from '../support/engine-fixture.js';
import {
  CIP6,
  CPORT6,
  LIP6,
  LIP64,
  RIP6,
  RIP64,
  RPORT6,
  V64_PORT,
  V6_PORT,
  VIP6,
  client6Segment,
  ip6,
  newDualEngine,
  rsSegment46,
} from '../support/engine6-fixture.js';
import { icmp6Packet, icmpPacket, quoteOf } from '../support/icmp.js';
import { pattern, v6 } from '../support/packets.js';
import { probeTshark, tsharkDecode } from '../support/tshark.js';

const ROUTER6_RS = v6('2001:db8:2::fe');
const ROUTER6_CLIENT = v6('2001:db8:c::fe');
const ROUTER4_RS = parseIpv4('10.60.2.254');
const CISN = 1000;
const RISN = 50000;
/** Service ports: 80 has an IPv6 RS (index 0), 81 an IPv4 one (FNAT64, index 1). */

function makeEngine(policy: ToaSetting = 'fullnat', extra: Partial<EngineOptions> = {}): Engine {
  return newDualEngine({ toaPolicy: policy, maxConnections: 64, isnSecret: 7, ...extra });
}

function client(vport: number, seq: number, ack: number, flags: number, payload?: Uint8Array) {
  const options = flags & TCP_SYN ? [opt.mss(1440), opt.sackPermitted()] : undefined;
  return client6Segment({ vport, seq, ack, flags, payload, options });
}

/** A segment from the connection's RS to its LIP: IPv6 for port 80, IPv4 for 81. */
function rs(
  vport: number,
  lport: number,
  seq: number,
  ack: number,
  flags: number,
  payload?: Uint8Array,
) {
  const options = flags & TCP_SYN ? [opt.mss(1460)] : undefined;
  return rsSegment46({ vport, lport, seq, ack, flags, payload, options });
}

interface Opened {
  lport: number;
  lbIsn: number;
  /** The client's data segment, and what the LB sent the RS of it. */
  clientData: Uint8Array;
  toRs: Uint8Array;
  /** The RS's data segment, and what the LB sent the client of it. */
  rsData: Uint8Array;
  toClient: Uint8Array;
}

/**
 * Handshake, 10 bytes from the RS (so the client's next segments conclude
 * nothing and carry no TOA), then 1000 bytes each way.
 */
function open(e: Engine, vport: number): Opened {
  const [syn] = feedRaw(e, client(vport, CISN, 0, TCP_SYN));
  assert.ok(syn);
  const ipHl = vport === V6_PORT ? 40 : 20;
  const lport = get16(syn.bytes, ipHl);
  const lbIsn = get32(syn.bytes, ipHl + 4);
  assert.equal(feedRaw(e, rs(vport, lport, RISN, lbIsn + 1, TCP_SYN | TCP_ACK)).length, 1);
  feedRaw(e, client(vport, CISN + 1, RISN + 1, TCP_ACK));
  feedRaw(e, rs(vport, lport, RISN + 1, lbIsn + 1, TCP_ACK | TCP_PSH, pattern(10)));
  const clientData = client(vport, CISN + 1, RISN + 11, TCP_ACK | TCP_PSH, pattern(1000));
  const [toRs] = feedRaw(e, clientData);
  const rsData = rs(vport, lport, RISN + 11, lbIsn + 1001, TCP_ACK | TCP_PSH, pattern(1000));
  const [toClient] = feedRaw(e, rsData);
  assert.ok(toRs && toClient);
  assert.equal(toRs.bytes.length, clientData.length - 40 + ipHl, 'no TOA on the data');
  return { lport, lbIsn, clientData, toRs: toRs.bytes, rsData, toClient: toClient.bytes };
}

function only(out: { bytes: Uint8Array }[]): Uint8Array {
  assert.equal(out.length, 1);
  return out[0]!.bytes;
}

/** `packet` with IPv4 ID 0 and its header checksum redone: the quoted header FNAT64 rebuilds. */
function withIdZero(packet: Uint8Array): Uint8Array {
  const b = packet.slice();
  b[4] = 0;
  b[5] = 0;
  new Ipv4View().wrap(b, 0).updateChecksum();
  return b;
}

/** An ICMPv4 message as icmpPacket builds it, with DF clear (the LB's own ICMPv4 carries none). */
function icmpNoDf(...args: Parameters<typeof icmpPacket>): Uint8Array {
  const b = icmpPacket(...args);
  b[6] = 0;
  new Ipv4View().wrap(b, 0).updateChecksum();
  return b;
}

// ---- IPv6 connections -----------------------------------------------------------------------

test('Packet Too Big from the IPv6 RS path: learned for the RS, to the client as VIP → CIP with MTU − 20, quoting its own segment', () => {
  const e = makeEngine();
  const o = open(e, V6_PORT);
  const err = icmp6Packet(ROUTER6_RS, LIP6, 2, 0, 1400, quoteOf(o.toRs, 40 + 28));
  const got = only(feedRaw(e, err));
  assert.deepEqual(got, icmp6Packet(VIP6, CIP6, 2, 0, 1380, quoteOf(o.clientData, 68)));
  assert.equal(e.pathMtu(0), 1400);
  assert.equal(e.counter('icmp_pmtu_learned'), 1);
  assert.equal(e.counter('icmp_error_forwarded'), 1);
  // The whole segment quoted: its TCP checksum is the client's own again.
  const full = only(feedRaw(e, icmp6Packet(ROUTER6_RS, LIP6, 2, 0, 1400, o.toRs)));
  assert.deepEqual(got.subarray(48), o.clientData.subarray(0, 68));
  assert.deepEqual(full, icmp6Packet(VIP6, CIP6, 2, 0, 1380, o.clientData));
  assertCountedOnce(e);
});

test('Packet Too Big under lvs and dpvs reaches the client bare; never raises, never below 1280', () => {
  for (const policy of ['lvs', 'dpvs'] as const) {
    const e = makeEngine(policy);
    const o = open(e, V6_PORT);
    const got = only(feedRaw(e, icmp6Packet(ROUTER6_RS, LIP6, 2, 0, 1400, quoteOf(o.toRs, 68))));
    assert.deepEqual(got, icmp6Packet(VIP6, CIP6, 2, 0, 1400, quoteOf(o.clientData, 68)), policy);
  }
  const e = makeEngine();
  const o = open(e, V6_PORT);
  // 1290 less the TOA room would be 1270: the client is told 1280.
  let got = only(feedRaw(e, icmp6Packet(ROUTER6_RS, LIP6, 2, 0, 1290, quoteOf(o.toRs, 68))));
  assert.equal(get32(got, 44), 1280);
  assert.equal(e.pathMtu(0), 1290);
  // Higher than learned: not learned, the client told the learned path's less the room.
  got = only(feedRaw(e, icmp6Packet(ROUTER6_RS, LIP6, 2, 0, 1450, quoteOf(o.toRs, 68))));
  assert.equal(get32(got, 44), 1280);
  assert.equal(e.pathMtu(0), 1290);
  // Below the IPv6 minimum: ignored for the path, passed on as it came.
  got = only(feedRaw(e, icmp6Packet(ROUTER6_RS, LIP6, 2, 0, 1000, quoteOf(o.toRs, 68))));
  assert.equal(get32(got, 44), 1000);
  assert.equal(e.pathMtu(0), 1290);
  assert.equal(e.counter('icmp_pmtu_learned'), 1);
  assert.equal(e.counter('icmp_pmtu_ignored'), 2);
  // Forgotten after rs_mtu expiry, as IPv4's.
  feedRaw(e, client(V6_PORT, CISN + 1001, RISN + 1011, TCP_ACK), 11 * 60_000);
  assert.equal(e.pathMtu(0), 1500);
  assertCountedOnce(e);
});

test('destination unreachable (every code) and time exceeded from the IPv6 RS path reach the client, type and code kept', () => {
  const e = makeEngine();
  const o = open(e, V6_PORT);
  const cases: [number, number][] = [
    [1, 0],
    [1, 1],
    [1, 2],
    [1, 3],
    [1, 4],
    [1, 5],
    [1, 6],
    [3, 0],
    [3, 1],
  ];
  for (const [type, code] of cases) {
    const got = only(feedRaw(e, icmp6Packet(ROUTER6_RS, LIP6, type, code, 0, quoteOf(o.toRs, 48))));
    assert.deepEqual(
      got,
      icmp6Packet(VIP6, CIP6, type, code, 0, quoteOf(o.clientData, 48)),
      `${type}/${code}`,
    );
  }
  assertCountedOnce(e);
});

test('errors from the IPv6 client side reach the RS as LIP → RIP quoting its own segment; Packet Too Big keeps its MTU', () => {
  const e = makeEngine();
  const o = open(e, V6_PORT);
  for (const [type, code, rest] of [
    [2, 0, 1400],
    [1, 4, 0],
    [3, 0, 0],
  ] as const) {
    const err = icmp6Packet(ROUTER6_CLIENT, VIP6, type, code, rest, quoteOf(o.toClient, 40 + 28));
    const got = only(feedRaw(e, err));
    assert.deepEqual(got, icmp6Packet(LIP6, RIP6, type, code, rest, quoteOf(o.rsData, 68)));
  }
  // The client side teaches nothing about the RS path.
  assert.equal(e.pathMtu(0), 1500);
  assertCountedOnce(e);
});

// ---- FNAT64 ----------------------------------------------------------------------------------

test('FNAT64, RS leg: ICMPv4 errors become ICMPv6 to the client (RFC 7915 4.2), quoting the IPv6 segment it sent', () => {
  const cases: [number, number, number, number][] = [
    // ICMPv4 type, code → ICMPv6 type, code
    [3, 0, 1, 0],
    [3, 1, 1, 0],
    [3, 3, 1, 4],
    [3, 5, 1, 0],
    [3, 6, 1, 0],
    [3, 7, 1, 0],
    [3, 9, 1, 1],
    [3, 10, 1, 1],
    [3, 13, 1, 1],
    [3, 15, 1, 1],
    [11, 0, 3, 0],
    [11, 1, 3, 1],
  ];
  const e = makeEngine();
  const o = open(e, V64_PORT);
  for (const [t4, c4, t6, c6] of cases) {
    const got = only(
      feedRaw(e, icmpPacket(ROUTER4_RS, LIP64, t4, c4, 0, quoteOf(o.toRs, 20 + 28))),
    );
    assert.deepEqual(
      got,
      icmp6Packet(VIP6, CIP6, t6, c6, 0, quoteOf(o.clientData, 68)),
      `${t4}/${c4}`,
    );
  }
  // Protocol unreachable: parameter problem, unrecognized next header, pointing at it.
  const got = only(feedRaw(e, icmpPacket(ROUTER4_RS, LIP64, 3, 2, 0, quoteOf(o.toRs, 48))));
  assert.deepEqual(got, icmp6Packet(VIP6, CIP6, 4, 1, 6, quoteOf(o.clientData, 68)));
  // Host precedence violation has no ICMPv6 counterpart: dropped, counted.
  assert.equal(feedRaw(e, icmpPacket(ROUTER4_RS, LIP64, 3, 14, 0, quoteOf(o.toRs, 48))).length, 0);
  assert.equal(e.counter('icmp_error_family_dropped'), 1);
  assertCountedOnce(e);
});

test('FNAT64, RS leg: frag-needed becomes Packet Too Big with MTU + 20, less the TOA under fullnat, never below 1280', () => {
  for (const [policy, told, want] of [
    ['fullnat', 1400, 1400],
    ['lvs', 1400, 1420],
    ['dpvs', 1400, 1420],
    ['fullnat', 1200, 1280],
    ['fullnat', 0, 1280],
  ] as const) {
    const e = makeEngine(policy);
    const o = open(e, V64_PORT);
    const got = only(feedRaw(e, icmpPacket(ROUTER4_RS, LIP64, 3, 4, told, o.toRs)));
    assert.deepEqual(got, icmp6Packet(VIP6, CIP6, 2, 0, want, o.clientData), `${policy} ${told}`);
    assert.equal(e.pathMtu(1), told >= 552 ? told : 1500, `${policy} ${told}`);
    assertCountedOnce(e);
  }
});

test('FNAT64, client leg: ICMPv6 errors become ICMPv4 to the RS (RFC 7915 5.2), quoting the IPv4 segment it sent', () => {
  const cases: [number, number, number, number, number, number][] = [
    // ICMPv6 type, code, rest → ICMPv4 type, code, rest
    [2, 0, 1400, 3, 4, 1380],
    [1, 0, 0, 3, 1, 0],
    [1, 1, 0, 3, 10, 0],
    [1, 2, 0, 3, 1, 0],
    [1, 3, 0, 3, 1, 0],
    [1, 4, 0, 3, 3, 0],
    [3, 0, 0, 11, 0, 0],
    [3, 1, 0, 11, 1, 0],
  ];
  const e = makeEngine();
  const o = open(e, V64_PORT);
  const quoted = withIdZero(o.rsData);
  for (const [t6, c6, r6, t4, c4, r4] of cases) {
    const err = icmp6Packet(ROUTER6_CLIENT, VIP6, t6, c6, r6, quoteOf(o.toClient, 40 + 28));
    const got = only(feedRaw(e, err));
    assert.deepEqual(got, icmpNoDf(LIP64, RIP64, t4, c4, r4, quoteOf(quoted, 48)), `${t6}/${c6}`);
  }
  // The whole segment quoted: the RS's own TCP checksum again (ICMPv4 quotes stop at 576 bytes).
  const got = only(feedRaw(e, icmp6Packet(ROUTER6_CLIENT, VIP6, 2, 0, 1400, o.toClient)));
  assert.deepEqual(got, icmpNoDf(LIP64, RIP64, 3, 4, 1380, quoteOf(quoted, 576 - 28)));
  // Codes 5 and 6 have no ICMPv4 counterpart: dropped, counted.
  for (const code of [5, 6])
    assert.equal(
      feedRaw(e, icmp6Packet(ROUTER6_CLIENT, VIP6, 1, code, 0, quoteOf(o.toClient, 68))).length,
      0,
    );
  assert.equal(e.counter('icmp_error_family_dropped'), 2);
  assertCountedOnce(e);
});

// ---- echo, and what is dropped -------------------------------------------------------------

test('ICMPv6 echo to an IPv6 VIP is answered (extension headers left out); off, to a LIP, or from multicast it is dropped', () => {
  const e = makeEngine();
  const req = icmp6Packet(CIP6, VIP6, 128, 0, 0x00070001, pattern(56), { hopLimit: 50 });
  assert.deepEqual(only(feedRaw(e, req)), icmp6Packet(VIP6, CIP6, 129, 0, 0x00070001, pattern(56)));
  const withExt = icmp6Packet(CIP6, VIP6, 128, 0, 0x00070002, pattern(8), { ext: true });
  assert.deepEqual(
    only(feedRaw(e, withExt)),
    icmp6Packet(VIP6, CIP6, 129, 0, 0x00070002, pattern(8)),
  );
  assert.equal(e.counter('icmp_echo_replied'), 2);
  assert.equal(feedRaw(e, icmp6Packet(CIP6, LIP6, 128, 0, 1, pattern(8))).length, 0);
  assert.equal(e.counter('icmp_unhandled_dropped'), 1);
  assert.equal(feedRaw(e, icmp6Packet(v6('ff02::1'), VIP6, 128, 0, 1, pattern(8))).length, 0);
  assert.equal(e.counter('icmp_echo_dropped'), 1);
  const off = makeEngine('fullnat', { icmpEcho: false });
  assert.equal(feedRaw(off, req).length, 0);
  assert.equal(off.counter('icmp_echo_dropped'), 1);
  assertCountedOnce(e);
  assertCountedOnce(off);
});

test('neighbour discovery and other informational ICMPv6, bad checksums, truncated and stray quotes: dropped and counted', () => {
  const e = makeEngine();
  const o = open(e, V6_PORT);
  const o64 = open(e, V64_PORT);
  const rx0 = e.counter('rx_packets');
  const drops: [Uint8Array, string][] = [
    [icmp6Packet(CIP6, VIP6, 135, 0, 0, new Uint8Array(16)), 'icmp_unhandled_dropped'], // NS
    [icmp6Packet(ROUTER6_RS, LIP6, 136, 0, 0, new Uint8Array(16)), 'icmp_unhandled_dropped'], // NA
    [icmp6Packet(ROUTER6_RS, VIP6, 134, 0, 0, new Uint8Array(8)), 'icmp_unhandled_dropped'], // RA
    [icmp6Packet(ROUTER6_RS, LIP6, 4, 0, 6, quoteOf(o.toRs, 48)), 'icmp_unhandled_dropped'], // param problem
    [icmp6Packet(ROUTER6_RS, LIP6, 129, 0, 0, new Uint8Array(8)), 'icmp_unhandled_dropped'], // echo reply
    [
      icmp6Packet(ROUTER6_RS, v6('2001:db8:9::1'), 1, 0, 0, quoteOf(o.toRs, 48)),
      'icmp_unhandled_dropped',
    ],
    [
      icmp6Packet(ROUTER6_RS, LIP6, 2, 0, 1400, quoteOf(o.toRs, 48), { badChecksum: true }),
      'icmp_malformed_dropped',
    ],
    [icmp6Packet(ROUTER6_RS, LIP6, 2, 0, 1400, quoteOf(o.toRs, 47)), 'icmp_malformed_dropped'],
    [shortMessage(), 'icmp_malformed_dropped'],
    // A quote from another address than the one the error came to, and one of no connection.
    [icmp6Packet(ROUTER6_CLIENT, VIP6, 1, 4, 0, quoteOf(o.toRs, 48)), 'icmp_error_no_conn_dropped'],
    [
      icmp6Packet(ROUTER6_RS, LIP6, 1, 4, 0, withPort(o.toRs, 40 + 2, 9)),
      'icmp_error_no_conn_dropped',
    ],
    [
      icmp6Packet(ROUTER6_CLIENT, VIP6, 1, 4, 0, withPort(o.toClient, 40 + 2, 9)),
      'icmp_error_no_conn_dropped',
    ],
    [
      icmp6Packet(ROUTER6_CLIENT, VIP6, 1, 4, 0, withPort(o64.toClient, 40, 82)),
      'icmp_error_no_conn_dropped',
    ],
    [
      icmpPacket(ROUTER4_RS, LIP64, 3, 3, 0, withPort(o64.toRs, 20 + 2, 9)),
      'icmp_error_no_conn_dropped',
    ],
    // A quoted UDP header: no UDP connections.
    [icmp6Packet(ROUTER6_RS, LIP6, 1, 4, 0, withByte(o.toRs, 6, 17)), 'icmp_error_no_conn_dropped'],
  ];
  for (const [bytes, counter] of drops) {
    const before = e.counter(counter as never);
    assert.equal(feedRaw(e, bytes).length, 0, counter);
    assert.equal(e.counter(counter as never), before + 1, counter);
  }
  assert.equal(e.counter('rx_packets') - rx0, drops.length);
  assertCountedOnce(e);
});

/** An ICMPv6 message of 6 bytes, shorter than its own header, in a consistent IPv6 packet. */
function shortMessage(): Uint8Array {
  const b = icmp6Packet(ROUTER6_RS, LIP6, 2, 0, 1400, new Uint8Array(0)).slice(0, 46);
  b[5] = 6;
  return b;
}

function withPort(packet: Uint8Array, at: number, port: number): Uint8Array {
  const b = quoteOf(packet, 68);
  b[at] = port >>> 8;
  b[at + 1] = port & 0xff;
  return b;
}

function withByte(packet: Uint8Array, at: number, v: number): Uint8Array {
  const b = quoteOf(packet, 68);
  b[at] = v;
  return b;
}

test('a flood of valid errors is rate-limited: one token each, the rest counted', () => {
  const e = makeEngine('fullnat', { icmpRateLimit: 10, icmpRateBurst: 20 });
  const o = open(e, V6_PORT);
  let out = 0;
  for (let k = 0; k < 100; k++)
    out += feedRaw(e, icmp6Packet(ROUTER6_RS, LIP6, 1, 4, 0, quoteOf(o.toRs, 48)), 1000).length;
  assert.equal(out, 20);
  assert.equal(e.counter('icmp_rate_limited'), 80);
  assertCountedOnce(e);
});

const tshark = probeTshark();

test(
  "tshark decodes the translated ICMPv6 and ICMPv4: good checksums outer and quoted, the other leg's ports and seq",
  { skip: tshark.ok ? undefined : tshark.reason },
  () => {
    const e = makeEngine();
    const o = open(e, V6_PORT);
    const o64 = open(e, V64_PORT);
    const packets = [
      ...feedRaw(e, icmp6Packet(ROUTER6_RS, LIP6, 2, 0, 1400, o.toRs)),
      ...feedRaw(e, icmp6Packet(ROUTER6_CLIENT, VIP6, 1, 4, 0, quoteOf(o.toClient, 68))),
      ...feedRaw(e, icmpPacket(ROUTER4_RS, LIP64, 3, 4, 1400, o64.toRs)),
      ...feedRaw(e, icmpPacket(ROUTER4_RS, LIP64, 3, 13, 0, quoteOf(o64.toRs, 48))),
      ...feedRaw(e, icmp6Packet(ROUTER6_CLIENT, VIP6, 2, 0, 1400, o64.toClient)),
      ...feedRaw(e, icmp6Packet(CIP6, VIP6, 128, 0, 0x00070001, pattern(56))),
    ].map((p) => p.bytes);
    assert.equal(packets.length, 6);
    const rows = tsharkDecode(packets, [
      'ipv6.src',
      'ipv6.dst',
      'ip.src',
      'ip.dst',
      'ip.checksum.status',
      'icmpv6.type',
      'icmpv6.code',
      'icmpv6.checksum.status',
      'icmpv6.mtu',
      'icmp.type',
      'icmp.code',
      'icmp.checksum.status',
      'icmp.mtu',
      'tcp.srcport',
      'tcp.dstport',
      'tcp.seq',
      'tcp.checksum.status',
    ]);
    for (const r of rows) {
      const ck = r['icmpv6.checksum.status'] || r['icmp.checksum.status'];
      assert.equal(ck, '1', JSON.stringify(r));
      for (const s of (r['ip.checksum.status'] ?? '').split(',').filter((x) => x !== ''))
        assert.equal(s, '1', JSON.stringify(r));
    }
    const c = ip6(CIP6).text;
    const vip = ip6(VIP6).text;
    const pick = (r: Record<string, string>) => [
      r['ipv6.src'] || r['ip.src'],
      r['icmpv6.type'] || r['icmp.type'],
      r['icmpv6.code'] || r['icmp.code'],
      r['icmpv6.mtu'] || r['icmp.mtu'],
      r['tcp.srcport'],
      r['tcp.dstport'],
      r['tcp.seq'],
    ];
    assert.deepEqual(rows.map(pick), [
      [`${vip},${c}`, '2', '0', '1380', String(CPORT6), String(V6_PORT), String(CISN + 1)],
      [
        `${ip6(LIP6).text},${ip6(RIP6).text}`,
        '1',
        '4',
        '',
        String(RPORT6),
        String(o.lport),
        String(RISN + 11),
      ],
      [`${vip},${c}`, '2', '0', '1400', String(CPORT6), String(V64_PORT), String(CISN + 1)],
      [`${vip},${c}`, '1', '1', '', String(CPORT6), String(V64_PORT), String(CISN + 1)],
      [
        `${ipv4ToString(LIP64)},${ipv4ToString(RIP64)}`,
        '3',
        '4',
        '1380',
        String(RPORT6),
        String(o64.lport),
        String(RISN + 11),
      ],
      [`${vip}`, '129', '0', '', '', '', ''],
    ]);
    // The whole quoted segments (rows 0 and 2) carry their host's own TCP checksum (row 4's
    // quote stops at 576 bytes: no decoder can check it; the byte-by-byte test above does).
    for (const k of [0, 2])
      assert.equal(rows[k]!['tcp.checksum.status'], '1', JSON.stringify(rows[k]));
  },
);

test('IPv6 SYNPROXY: an error about a connection whose RS leg is opening is dropped; once open, the quotes go back to each host its own sequence space', () => {
  for (const vport of [V6_PORT, V64_PORT]) {
    const e = makeEngine('lvs');
    e.setSynProxy(vport === V6_PORT ? 0 : 1, true);
    const [synAck] = feedRaw(e, client(vport, CISN, 0, TCP_SYN));
    assert.ok(synAck);
    const cookie = get32(synAck.bytes, 44);
    const [rsSyn] = feedRaw(e, client(vport, CISN + 1, cookie + 1, TCP_ACK));
    assert.ok(rsSyn, 'the LB opens the RS leg');
    const ipHl = vport === V6_PORT ? 40 : 20;
    const lport = get16(rsSyn.bytes, ipHl);
    const lbIsn = get32(rsSyn.bytes, ipHl + 4);
    const pending =
      vport === V6_PORT
        ? icmp6Packet(ROUTER6_RS, LIP6, 1, 4, 0, quoteOf(rsSyn.bytes, 68))
        : icmpPacket(ROUTER4_RS, LIP64, 3, 3, 0, quoteOf(rsSyn.bytes, 48));
    assert.equal(feedRaw(e, pending).length, 0);
    assert.equal(e.counter('icmp_error_no_conn_dropped'), 1);
    feedRaw(e, rs(vport, lport, RISN, lbIsn + 1, TCP_SYN | TCP_ACK));
    const rsData = rs(vport, lport, RISN + 1, lbIsn + 1, TCP_ACK | TCP_PSH, pattern(10));
    const [toClient] = feedRaw(e, rsData);
    assert.ok(toClient);
    assert.equal(get32(toClient.bytes, 44), cookie + 1, "the client sees the LB's cookie space");
    const clientData = client(vport, CISN + 1, cookie + 11, TCP_ACK | TCP_PSH, pattern(1000));
    const [toRs] = feedRaw(e, clientData);
    assert.ok(toRs);
    assert.equal(toRs.bytes.length, clientData.length - 40 + ipHl, 'no TOA on the data');
    const fromRs =
      vport === V6_PORT
        ? icmp6Packet(ROUTER6_RS, LIP6, 1, 1, 0, quoteOf(toRs.bytes, 68))
        : icmpPacket(ROUTER4_RS, LIP64, 3, 13, 0, quoteOf(toRs.bytes, 48));
    assert.deepEqual(
      only(feedRaw(e, fromRs)),
      icmp6Packet(VIP6, CIP6, 1, 1, 0, quoteOf(clientData, 68)),
      `${vport}: the client's own seq and ack`,
    );
    const fromClient = icmp6Packet(ROUTER6_CLIENT, VIP6, 1, 4, 0, quoteOf(toClient.bytes, 68));
    const expected =
      vport === V6_PORT
        ? icmp6Packet(LIP6, RIP6, 1, 4, 0, quoteOf(rsData, 68))
        : icmpNoDf(LIP64, RIP64, 3, 3, 0, quoteOf(withIdZero(rsData), 48));
    assert.deepEqual(only(feedRaw(e, fromClient)), expected, `${vport}: the RS's own seq and ack`);
    assertCountedOnce(e);
  }
});
