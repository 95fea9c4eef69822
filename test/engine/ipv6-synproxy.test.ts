/**
 * SYNPROXY on IPv6 services: the cookie SYN+ACK to an IPv6 client, cookies
 * bound to the whole 16-byte client address, the RS leg it opens (an IPv6
 * SYN toward an IPv6 RS; FNAT64: an IPv4 SYN, under lvs with the 20-byte
 * TOA of the IPv6 client), the replay of held packets, both sequence
 * spaces and windows afterwards, retransmissions, refusals, the ack storm,
 * expiry, a handover; and tshark's reading of every packet the LB sends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import type { EngineOptions, ToaPolicy } from '../../src/engine/options.js';
import { get32 } from '../../src/wire/bytes.js';
import { TCP_ACK, TCP_PSH, TCP_RST, TCP_SYN } from '../../src/wire/tcp.js';
import { opt, type TcpOption } from '../../src/wire/tcp-options.js';
import { LINUX_SYN_ACK_OPTS, assertCountedOnce, feedRaw } from '../support/engine-fixture.js';
import {
  CIP6,
  CPORT6,
  LIP6,
  RIP6,
  V64_PORT,
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
import { buildSegment6, pattern } from '../support/packets.js';

const CISN = 1000;
const RISN = 50000;

type Out = DecodedAnyFamily;
const decode = decodeChecked46;

function makeEngine(policy: ToaPolicy, extra: Partial<EngineOptions> = {}, rsMtu = 1500): Engine {
  return newDualEngine(
    { toaPolicy: policy, maxConnections: 64, isnSecret: 7, ...extra },
    { rsMtu, synProxy: true },
  );
}

const sent: Uint8Array[] = [];

function feed(e: Engine, bytes: Uint8Array, now?: number): Uint8Array[] {
  const out = feedRaw(e, bytes, now).map((o) => o.bytes);
  sent.push(...out);
  return out;
}

function tick(e: Engine, now: number): Uint8Array[] {
  e.tick(now);
  const out = feedRaw(e, new Uint8Array(0), now).map((o) => o.bytes);
  sent.push(...out);
  return out;
}

const LINUX_SYN: TcpOption[] = [
  opt.mss(1440),
  opt.sackPermitted(),
  opt.timestamp(5, 0),
  opt.nop(),
  opt.wscale(7),
];

function client(
  vport: number,
  seq: number,
  ack: number,
  flags: number,
  payload?: Uint8Array,
  options?: TcpOption[],
  src = CIP6,
  window = 502,
): Uint8Array {
  return client6Segment({ vport, seq, ack, flags, payload, options, src, window });
}

function rsIn(
  vport: number,
  lport: number,
  seq: number,
  ack: number,
  flags: number,
  options?: TcpOption[],
  payload?: Uint8Array,
  window = 509,
): Uint8Array {
  return rsSegment46({ vport, lport, seq, ack, flags, options, payload, window });
}

/** Client SYN → the LB's cookie SYN+ACK (decoded). */
function synToLb(e: Engine, vport: number, src = CIP6, now?: number): Out {
  const out = feed(e, client(vport, CISN, 0, TCP_SYN, undefined, LINUX_SYN, src, 64800), now);
  assert.equal(out.length, 1);
  return decode(out[0]!);
}

/** SYN, cookie SYN+ACK, cookie ACK → the LB→RS SYN. */
function openToRs(e: Engine, vport: number): { cookie: number; rsSyn: Out } {
  const synAck = synToLb(e, vport);
  const out = feed(e, client(vport, CISN + 1, synAck.seq + 1, TCP_ACK));
  assert.equal(out.length, 1, 'only the LB→RS SYN goes out');
  return { cookie: synAck.seq, rsSyn: decode(out[0]!) };
}

/** The whole opening: the RS's SYN+ACK and what it releases. */
function establish(
  e: Engine,
  vport: number,
  rsOpts = LINUX_SYN_ACK_OPTS,
): { cookie: number; rsSyn: Out; replayed: Out[] } {
  const { cookie, rsSyn } = openToRs(e, vport);
  const out = feed(e, rsIn(vport, rsSyn.sport, RISN, rsSyn.seq + 1, TCP_SYN | TCP_ACK, rsOpts));
  return { cookie, rsSyn, replayed: out.map(decode) };
}

test('IPv6 SYNPROXY: the cookie SYN+ACK byte by byte, no state; the RS leg an IPv6 SYN byte by byte; the replayed ACK with TOA 254/20', () => {
  const e = makeEngine('fullnat');
  const out = feed(e, client(V6_PORT, CISN, 0, TCP_SYN, undefined, LINUX_SYN, CIP6, 64800));
  assert.equal(out.length, 1);
  const synAck = out[0]!;
  const cookie = decode(synAck).seq;
  // VIP → CIP, hop limit synproxySynAckTtl (63), MSS 1452 − 12 − 20 = 1420 (the IPv6 cap), SACK,
  // WS 7, no timestamps; window (3 − 1) × 1420: no more than the LB holds.
  const want = buildSegment6({
    src: VIP6,
    dst: CIP6,
    sport: V6_PORT,
    dport: CPORT6,
    seq: cookie,
    ack: CISN + 1,
    flags: TCP_SYN | TCP_ACK,
    window: 2 * 1420,
    hopLimit: 63,
    options: [opt.mss(1420), opt.nop(), opt.nop(), opt.sackPermitted(), opt.nop(), opt.wscale(7)],
  });
  assert.deepEqual([...synAck], [...want], 'the cookie SYN+ACK, every byte');
  assert.equal(e.listConnections().length, 0, 'stateless until the cookie comes back');
  assert.equal(e.counter('synproxy_syn_answered', 0), 1);

  const rsSynOut = feed(e, client(V6_PORT, CISN + 1, cookie + 1, TCP_ACK));
  assert.equal(rsSynOut.length, 1);
  const rsSyn = decode(rsSynOut[0]!);
  // LIP6 → RIP6, seq = the LB's ISN, MSS from the cookie (the client's 1440), SACK, the client's WS 7,
  // window the client's, unscaled (502 << 7), no TOA under fullnat (the concluding ACK carries it).
  const wantSyn = buildSegment6({
    src: LIP6,
    dst: RIP6,
    sport: rsSyn.sport,
    dport: 8080,
    seq: rsSyn.seq,
    ack: 0,
    flags: TCP_SYN,
    window: 502 << 7,
    options: [opt.mss(1440), opt.nop(), opt.nop(), opt.sackPermitted(), opt.nop(), opt.wscale(7)],
  });
  assert.deepEqual([...rsSynOut[0]!], [...wantSyn], 'the LB→RS SYN, every byte');
  assert.equal(e.counter('synproxy_cookie_valid', 0), 1);
  assert.equal(e.listConnections().length, 1);

  const replay = feed(
    e,
    rsIn(V6_PORT, rsSyn.sport, RISN, rsSyn.seq + 1, TCP_SYN | TCP_ACK, LINUX_SYN_ACK_OPTS),
  ).map(decode);
  assert.equal(replay.length, 1, 'the held ACK replayed; the RS SYN+ACK goes no further');
  const ack = replay[0]!;
  assert.equal(ack.family, 6);
  assert.equal(ack.src, '2001:db8:1::1');
  assert.equal(ack.dst, '2001:db8:2::10');
  assert.equal(ack.seq, rsSyn.seq + 1);
  assert.equal(ack.ack, RISN + 1, 'the client acked the cookie; the RS sees its own ISN + 1');
  assert.equal(ack.flags, TCP_ACK);
  assert.ok(ack.toa);
  assert.equal(ack.toa.kind, 254);
  assert.equal(ack.toa.port, CPORT6);
  assert.deepEqual([...ack.toa.v6], [...CIP6]);
  assert.equal(e.counter('synproxy_rs_synack', 0), 1);
  assert.equal(e.counter('synproxy_ack_replayed', 0), 1);

  // After the opening: RS seqs move into the cookie space, client acks into the RS's.
  const data = feed(
    e,
    rsIn(V6_PORT, rsSyn.sport, RISN + 1, rsSyn.seq + 1, TCP_ACK | TCP_PSH, undefined, pattern(100)),
  ).map(decode);
  assert.equal(data.length, 1);
  assert.equal(data[0]!.family, 6);
  assert.equal(data[0]!.src, '2001:db8::100');
  assert.equal(data[0]!.dst, '2001:db8:c::1');
  assert.equal(data[0]!.sport, V6_PORT);
  assert.equal(data[0]!.seq, cookie + 1);
  assert.equal(data[0]!.ack, CISN + 1);
  const back = feed(
    e,
    client(V6_PORT, CISN + 1, cookie + 101, TCP_ACK, undefined, [
      opt.nop(),
      opt.nop(),
      opt.sack([[cookie + 1, cookie + 51]]),
    ]),
  ).map(decode);
  assert.equal(back.length, 1);
  assert.equal(back[0]!.ack, RISN + 101);
  const sackAt = back[0]!.options.sackAt;
  assert.equal(back[0]!.options.sackBlocks, 1);
  assert.deepEqual(
    [get32(back[0]!.bytes, sackAt + 2), get32(back[0]!.bytes, sackAt + 6)],
    [RISN + 1, RISN + 51],
    'the client SACKs RS data in the RS space',
  );
  assertCountedOnce(e);
});

test('FNAT64 SYNPROXY: MSS 1440 to the client, an IPv4 SYN toward the RS (DF), under lvs with the 20-byte TOA of the IPv6 client first', () => {
  for (const policy of ['fullnat', 'dpvs', 'lvs'] as const) {
    const e = makeEngine(policy, { toaV6Kind: 253 });
    const synAck = synToLb(e, V64_PORT);
    assert.equal(synAck.family, 6);
    assert.equal(synAck.ttl, 63);
    assert.equal(
      synAck.options.mss,
      1440,
      `${policy}: 1452 − 12 (the larger TOA) toward an IPv4 RS`,
    );
    const out = feed(e, client(V64_PORT, CISN + 1, synAck.seq + 1, TCP_ACK));
    assert.equal(out.length, 1);
    const rsSyn = decode(out[0]!);
    assert.equal(rsSyn.family, 4);
    assert.equal(rsSyn.src, '10.60.3.1');
    assert.equal(rsSyn.dst, '10.60.2.10');
    assert.equal(rsSyn.dport, 8080);
    assert.equal(rsSyn.flags, TCP_SYN);
    assert.equal(rsSyn.ack, 0);
    assert.ok(rsSyn.df, 'DF on the IPv4 leg');
    assert.equal(rsSyn.options.mss, 1440);
    assert.equal(rsSyn.options.wscale, 7);
    assert.ok(rsSyn.options.sackPermitted);
    const tcpOpts = rsSyn.bytes.subarray(rsSyn.ipHl + 20);
    if (policy === 'lvs') {
      // LVS puts the TOA on the SYN: the IPv6 client's, 20 bytes, first.
      const want = [253, 20, CPORT6 >>> 8, CPORT6 & 0xff, ...CIP6];
      assert.deepEqual([...tcpOpts.subarray(0, 20)], want, 'TOA 253/20 first on the SYN');
      assert.equal(e.counter('toa_inserted_syn', 1), 1);
    } else {
      assert.equal(rsSyn.toa, null, `${policy}: no TOA on the SYN`);
    }
    const replay = feed(
      e,
      rsIn(V64_PORT, rsSyn.sport, RISN, rsSyn.seq + 1, TCP_SYN | TCP_ACK, LINUX_SYN_ACK_OPTS),
    ).map(decode);
    assert.equal(replay.length, 1);
    assert.equal(replay[0]!.family, 4);
    assert.equal(replay[0]!.ack, RISN + 1);
    assert.equal(replay[0]!.seq, rsSyn.seq + 1);
    if (policy !== 'lvs') {
      assert.ok(replay[0]!.toa, `${policy}: the concluding ACK carries the TOA`);
      assert.equal(replay[0]!.toa.kind, 253);
      assert.deepEqual([...replay[0]!.toa.v6], [...CIP6]);
    }
    // RS data back as IPv6 in the cookie space.
    const data = feed(
      e,
      rsIn(V64_PORT, rsSyn.sport, RISN + 1, rsSyn.seq + 1, TCP_ACK, undefined, pattern(10)),
    ).map(decode);
    assert.equal(data.length, 1);
    assert.equal(data[0]!.family, 6);
    assert.equal(data[0]!.src, '2001:db8::100');
    assert.equal(data[0]!.seq, synAck.seq + 1);
    assertCountedOnce(e);
  }
});

test('IPv6 cookies: bound to all 16 bytes of the client address, the ports and the minute; a bad one gets a RST and opens nothing', () => {
  const e = makeEngine('fullnat');
  const { seq: cookie } = synToLb(e, V6_PORT);
  // The same cookie from a client differing in any one address byte: refused.
  for (const k of [0, 5, 9, 15]) {
    const other = Uint8Array.from(CIP6);
    other[k] = other[k]! ^ 0x20;
    const out = feed(
      e,
      client(V6_PORT, CISN + 1, cookie + 1, TCP_ACK, undefined, undefined, other),
    );
    assert.equal(out.length, 1, `address byte ${k}: answered`);
    const rst = decode(out[0]!);
    assert.equal(rst.family, 6);
    assert.equal(rst.flags, TCP_RST);
    assert.equal(rst.seq, cookie + 1, 'RFC 793: seq = the refused ACK');
    assert.equal(rst.src, '2001:db8::100');
    assert.equal(rst.dst, ip6(other).text);
  }
  // Another port (the service's other port): refused.
  assert.equal(decode(feed(e, client(V64_PORT, CISN + 1, cookie + 1, TCP_ACK))[0]!).flags, TCP_RST);
  assert.equal(e.counter('synproxy_cookie_invalid', 0), 4);
  assert.equal(e.counter('synproxy_cookie_invalid', 1), 1);
  assert.equal(e.listConnections().length, 0);
  // The right client, a minute later: still good (this minute or the previous one).
  e.tick(60_000);
  const ok = feed(e, client(V6_PORT, CISN + 1, cookie + 1, TCP_ACK), 60_000).map(decode);
  assert.equal(ok.length, 1);
  assert.equal(ok[0]!.flags, TCP_SYN);
  assert.equal(e.counter('synproxy_cookie_valid', 0), 1);
  // Two minutes back: refused.
  const f = makeEngine('fullnat');
  const late = synToLb(f, V6_PORT).seq;
  f.tick(120_000);
  const r = feed(f, client(V6_PORT, CISN + 1, late + 1, TCP_ACK), 120_000).map(decode);
  assert.equal(r.length, 1);
  assert.equal(r[0]!.flags, TCP_RST);
  assertCountedOnce(e);
  assertCountedOnce(f);
});

test('IPv6 SYNPROXY: an RS that stays silent gets its SYN again with backoff, then the client a RST in its own spaces', () => {
  for (const vport of [V6_PORT, V64_PORT]) {
    const e = makeEngine('fullnat', { synproxySynRetries: 2, synproxySynRtoMs: 1000 });
    const { cookie, rsSyn } = openToRs(e, vport);
    const again = tick(e, 1000).map(decode);
    assert.equal(again.length, 1);
    assert.deepEqual([...again[0]!.bytes], [...rsSyn.bytes], 'the same SYN again');
    assert.equal(tick(e, 2500).length, 0, 'backoff: not before 1000 + 2000');
    assert.equal(tick(e, 3000).length, 1);
    const rst = tick(e, 7000).map(decode);
    assert.equal(rst.length, 1);
    assert.equal(rst[0]!.family, 6);
    assert.equal(rst[0]!.src, '2001:db8::100');
    assert.equal(rst[0]!.dst, '2001:db8:c::1');
    assert.equal(rst[0]!.flags, TCP_RST | TCP_ACK);
    assert.equal(rst[0]!.seq, cookie + 1);
    assert.equal(rst[0]!.ack, CISN + 1);
    const svc = vport === V6_PORT ? 0 : 1;
    assert.equal(e.counter('synproxy_rs_syn_retransmitted', svc), 2);
    assert.equal(e.counter('synproxy_rs_timeout', svc), 1);
    assert.equal(e.counter('synproxy_ack_discarded', svc), 1);
    assert.equal(e.listConnections().length, 0);
    assert.equal(e.heldPackets, 0);
    assertCountedOnce(e);
  }
});

test('IPv6 SYNPROXY: the RS refuses (RST) → the client gets a RST; a stale ACK from the RS → RST to it and the SYN again; the client gives up → RST to the RS', () => {
  for (const vport of [V6_PORT, V64_PORT]) {
    const svc = vport === V6_PORT ? 0 : 1;
    const rsFamily = vport === V6_PORT ? 6 : 4;
    const e = makeEngine('fullnat');
    const { cookie, rsSyn } = openToRs(e, vport);
    const refused = feed(e, rsIn(vport, rsSyn.sport, 0, rsSyn.seq + 1, TCP_RST | TCP_ACK)).map(
      decode,
    );
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!.family, 6);
    assert.equal(refused[0]!.dst, '2001:db8:c::1');
    assert.equal(refused[0]!.flags, TCP_RST | TCP_ACK);
    assert.equal(refused[0]!.seq, cookie + 1);
    assert.equal(e.counter('synproxy_rs_refused', svc), 1);
    assert.equal(e.listConnections().length, 0);

    const f = makeEngine('fullnat');
    const o = openToRs(f, vport);
    const stale = feed(f, rsIn(vport, o.rsSyn.sport, 777, 4242, TCP_ACK)).map(decode);
    assert.equal(stale.length, 2, 'RST to the RS, then the SYN again');
    assert.equal(stale[0]!.family, rsFamily);
    assert.equal(stale[0]!.flags, TCP_RST);
    assert.equal(stale[0]!.seq, 4242);
    assert.equal(stale[0]!.dport, 8080);
    assert.deepEqual([...stale[1]!.bytes], [...o.rsSyn.bytes]);
    assert.equal(f.counter('synproxy_rs_stale_ack', svc), 1);

    const g = makeEngine('fullnat');
    const q = openToRs(g, vport);
    const gaveUp = feed(g, client(vport, CISN + 1, q.cookie + 1, TCP_RST)).map(decode);
    assert.equal(gaveUp.length, 1);
    assert.equal(gaveUp[0]!.family, rsFamily);
    assert.equal(gaveUp[0]!.flags, TCP_RST);
    assert.equal(gaveUp[0]!.seq, q.rsSyn.seq + 1);
    assert.equal(gaveUp[0]!.dport, 8080);
    assert.equal(g.listConnections().length, 0);
    for (const x of [e, f, g]) assertCountedOnce(x);
    assert.equal(e.heldPackets, 0);
    assert.equal(f.heldPackets, 1, 'still opening: the ACK held');
    assert.equal(g.heldPackets, 0);
  }
});

test('IPv6 SYNPROXY: data held while the RS leg opens is replayed in order; windows rescaled for an RS with another shift; ack storm cut', () => {
  for (const vport of [V6_PORT, V64_PORT]) {
    const e = makeEngine('dpvs', { synproxyAckStormThreshold: 2 });
    const synAck = synToLb(e, vport);
    const cookie = synAck.seq;
    const first = feed(e, client(vport, CISN + 1, cookie + 1, TCP_ACK)).map(decode);
    const rsSyn = first[0]!;
    assert.equal(
      feed(e, client(vport, CISN + 1, cookie + 1, TCP_ACK | TCP_PSH, pattern(40))).length,
      0,
    );
    assert.equal(e.heldPackets, 2);
    // The RS answers with window scale 2: its windows (<< 2) are rescaled to the LB's 7 for the client.
    const replay = feed(
      e,
      rsIn(vport, rsSyn.sport, RISN, rsSyn.seq + 1, TCP_SYN | TCP_ACK, [
        opt.mss(1460),
        opt.nop(),
        opt.wscale(2),
      ]),
    ).map(decode);
    assert.equal(replay.length, 2);
    assert.equal(replay[0]!.payload, 0);
    assert.ok(replay[0]!.toa, 'dpvs: the TOA on the concluding ACK');
    assert.equal(replay[1]!.payload, 40);
    assert.equal(replay[1]!.seq, rsSyn.seq + 1);
    assert.equal(replay[1]!.ack, RISN + 1);
    const ack = rsIn(
      vport,
      rsSyn.sport,
      RISN + 1,
      rsSyn.seq + 41,
      TCP_ACK,
      undefined,
      undefined,
      4096,
    );
    const w = feed(e, ack).map(decode);
    assert.equal(w.length, 1);
    assert.equal(w[0]!.window, (4096 << 2) >> 7);
    assert.equal(w[0]!.seq, cookie + 1);
    // The same pure ACK again and again: beyond the threshold, dropped.
    assert.equal(feed(e, ack).length, 1);
    assert.equal(feed(e, ack).length, 0);
    assert.equal(e.counter('synproxy_ack_storm', vport === V6_PORT ? 0 : 1), 1);
    assertCountedOnce(e);
  }
});

test('IPv6 SYNPROXY: an established connection expiring resets the client in the cookie space; fullnat narrows the SYN+ACK MSS to the RS path', () => {
  const e = makeEngine('fullnat', {}, 1400);
  const { cookie, rsSyn } = establish(e, V6_PORT);
  assert.equal(e.listConnections().length, 1);
  const est = e.listConnections()[0]!;
  assert.ok(est);
  const rsts = tick(e, 10 * 24 * 3600 * 1000).map(decode);
  const toClient = rsts.find((r) => r.dst === '2001:db8:c::1');
  assert.ok(toClient, 'a RST to the client');
  assert.equal(toClient.seq, cookie + 1, 'in the cookie space, not the RS ISN');
  const toRs = rsts.find((r) => r.dst === '2001:db8:2::10');
  assert.ok(toRs);
  assert.equal(toRs.seq, rsSyn.seq + 1);
  // RS MTU 1400: 1400 − 40 − 20 − 20 toward the IPv6 RS, 1400 − 20 − 20 − 20 toward the IPv4 one.
  const f = makeEngine('fullnat', {}, 1400);
  assert.equal(synToLb(f, V6_PORT).options.mss, 1320);
  assert.equal(synToLb(f, V64_PORT).options.mss, 1340);
  const g = makeEngine('lvs', {}, 1400);
  assert.equal(synToLb(g, V6_PORT).options.mss, 1420, 'lvs: the cap only, as on IPv4');
  assertCountedOnce(e);
});

test('registry: SYNPROXY on IPv6 services is accepted at addService and setSynProxy', () => {
  const e = new Engine({ maxConnections: 8 });
  const s = e.addService({
    vip: ip6(VIP6),
    vport: 90,
    scheduler: 'rr',
    laddrs: [ip6(LIP6)],
    realServers: [],
    synProxy: true,
  });
  assert.equal(s.synProxy, true);
  const t = e.addService({
    vip: ip6(VIP6),
    vport: 91,
    scheduler: 'rr',
    laddrs: [],
    realServers: [],
  });
  e.setSynProxy(t.index, true);
  assert.equal(e.services[t.index]!.synProxy, true);
  e.setSynProxy(t.index, false);
  assert.equal(e.services[t.index]!.synProxy, false);
});

test('tshark decodes every packet the LB sent in these SYNPROXY tests: IPv6 and IPv4 checksums good, SYN+ACK and SYN options as written', (t) => {
  const probe = probeTshark();
  if (!probe.ok) {
    t.skip(probe.reason);
    return;
  }
  // Fresh handshakes of both kinds so the frames below are known, plus everything sent above.
  const e = makeEngine('lvs');
  const synAck6 = synToLb(e, V6_PORT);
  const synAck64 = synToLb(e, V64_PORT);
  const rsSyn64 = decode(feed(e, client(V64_PORT, CISN + 1, synAck64.seq + 1, TCP_ACK))[0]!);
  const frames = sent.slice();
  assert.ok(frames.length > 40, `${frames.length} frames`);
  const rows = tsharkDecode(frames, [
    'ip.version',
    'ip.checksum.status',
    'tcp.checksum.status',
    'tcp.options.mss_val',
    'tcp.options.wscale.shift',
    'tcp.options',
  ]);
  assert.equal(rows.length, frames.length);
  rows.forEach((row, i) => {
    const v = frames[i]![0]! >>> 4;
    assert.ok(row['ip.version']!.startsWith(String(v)), `frame ${i}: IPv${v}`);
    if (v === 4) assert.equal(row['ip.checksum.status'], '1', `frame ${i}: IP checksum`);
    assert.equal(row['tcp.checksum.status'], '1', `frame ${i}: TCP checksum`);
  });
  const at = (b: Uint8Array): Record<string, string> => rows[frames.indexOf(b)]!;
  assert.equal(at(synAck6.bytes)['tcp.options.mss_val'], '1420');
  assert.equal(at(synAck6.bytes)['tcp.options.wscale.shift'], '7');
  assert.equal(at(synAck64.bytes)['tcp.options.mss_val'], '1440');
  const toa = Buffer.concat([
    Buffer.from([254, 20, CPORT6 >>> 8, CPORT6 & 0xff]),
    Buffer.from(CIP6),
  ]);
  assert.ok(
    at(rsSyn64.bytes)['tcp.options']!.startsWith(toa.toString('hex')),
    'FNAT64 SYN under lvs: TOA 254/20 first',
  );
  assert.equal(at(rsSyn64.bytes)['tcp.options.mss_val'], '1440');
});

test('IPv6 SYNPROXY connections survive a handover: exported and imported, the cookie space and window rescaling go on', () => {
  for (const vport of [V6_PORT, V64_PORT]) {
    const e = makeEngine('fullnat');
    const rsOpts = [opt.mss(1460), opt.nop(), opt.wscale(2)];
    const { cookie, rsSyn } = establish(e, vport, rsOpts);
    const f = makeEngine('fullnat');
    const r = f.importConnections(e.exportConnections(), 0);
    assert.deepEqual(r, { imported: 1, skipped: 0, reasons: {} }, `family ${vport}`);
    const data = feed(
      f,
      rsIn(vport, rsSyn.sport, RISN + 1, rsSyn.seq + 1, TCP_ACK, undefined, pattern(10), 4096),
    ).map(decode);
    assert.equal(data.length, 1);
    assert.equal(data[0]!.family, 6);
    assert.equal(data[0]!.seq, cookie + 1, 'RS seqs still moved into the cookie space');
    assert.equal(data[0]!.window, (4096 << 2) >> 7, 'RS windows still rescaled');
    const back = feed(f, client(vport, CISN + 1, cookie + 11, TCP_ACK)).map(decode);
    assert.equal(back.length, 1);
    assert.equal(back[0]!.ack, RISN + 11, 'client acks still moved into the RS space');
  }
});
