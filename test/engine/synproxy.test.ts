/**
 * SYNPROXY through the engine: the LB's own cookie SYN+ACK, cookie checks,
 * the RS leg it opens, the replay of held client packets (TOA included), the
 * translation of both sequence spaces and windows afterwards, and the ways an
 * opening can fail. Every packet the engine emits must have valid checksums.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Engine } from '../../src/engine/engine.js';
import { GSO_BUFFER_SIZE, PacketPool } from '../../src/engine/packet.js';
import type { EngineOptions, ToaPolicy } from '../../src/engine/options.js';
import { C, DROP_COUNTERS } from '../../src/engine/counters.js';
import {
  COOKIE_DATA_MASK,
  SYNPROXY_MSS_TABLE,
  cookieData,
  cookieMss,
  cookieSack,
  cookieWscale,
  mssIndex,
} from '../../src/engine/synproxy/cookies.js';
import { TCP_STATE_NAMES } from '../../src/engine/tcp-state.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../src/wire/tcp.js';
import {
  TCPOPT_MSS,
  TCPOPT_SACK,
  TCPOPT_SACK_PERM,
  TCPOPT_TIMESTAMP,
  TCPOPT_WINDOW,
  opt,
  type TcpOption,
} from '../../src/wire/tcp-options.js';
import { toaV4Option } from '../../src/wire/toa.js';
import { pattern } from '../support/packets.js';
import type { Decoded } from '../support/decode.js';
import {
  CIP,
  CISN,
  CPORT,
  LINUX_SYN_ACK_OPTS,
  LINUX_SYN_OPTS,
  LIP,
  RIP,
  RISN,
  VIP,
  clientSegment,
  drainOutput,
  feed,
  newTestEngine,
  rsSegment,
  tickDrain as tick,
} from '../support/engine-fixture.js';

function optValue(d: Decoded, kind: number): Uint8Array | undefined {
  return d.options.find((o) => o.kind === kind)?.data;
}

function mssOf(d: Decoded): number {
  const m = optValue(d, TCPOPT_MSS)!;
  return (m[0]! << 8) | m[1]!;
}

function makeEngine(
  policy: ToaPolicy = 'fullnat',
  extra: Partial<EngineOptions> = {},
  rsMtu = 1500,
  pool?: PacketPool,
): Engine {
  return newTestEngine(
    { toaPolicy: policy, maxConnections: 64, ...extra },
    { rsMtu, synProxy: true },
    pool,
  );
}

function client(
  seq: number,
  ack: number,
  flags: number,
  payload?: Uint8Array,
  options?: TcpOption[],
  window = 502,
  sport = CPORT,
): Uint8Array {
  return clientSegment({ seq, ack, flags, payload, options, window, sport });
}

function rs(
  lport: number,
  seq: number,
  ack: number,
  flags: number,
  payload?: Uint8Array,
  options?: TcpOption[],
  window = 509,
): Uint8Array {
  return rsSegment({ lport, seq, ack, flags, payload, options, window });
}

/** Client SYN → the LB's SYN+ACK; returns it and the cookie. */
function synToLb(
  e: Engine,
  now = 0,
  options: TcpOption[] = LINUX_SYN_OPTS,
  isn = CISN,
  sport = CPORT,
): { synAck: Decoded; cookie: number } {
  const out = feed(e, client(isn, 0, TCP_SYN, undefined, options, 64240, sport), now);
  assert.equal(out.length, 1);
  const synAck = out[0]!;
  assert.equal(synAck.flags, TCP_SYN | TCP_ACK);
  return { synAck, cookie: synAck.seq };
}

/** SYN, cookie SYN+ACK, client ACK (+ optional data) → the LB→RS SYN. */
function openToRs(
  e: Engine,
  first: { payload?: Uint8Array; flags?: number } = {},
): { cookie: number; rsSyn: Decoded } {
  const { cookie } = synToLb(e);
  const out = feed(e, client(CISN + 1, cookie + 1, first.flags ?? TCP_ACK, first.payload));
  assert.equal(out.length, 1, 'only the LB→RS SYN goes out');
  return { cookie, rsSyn: out[0]! };
}

/** The whole SYNPROXY opening: returns the replayed packets too. */
function establish(
  e: Engine,
  rsOptions: TcpOption[] = LINUX_SYN_ACK_OPTS,
): { cookie: number; lbIsn: number; lport: number; replayed: Decoded[] } {
  const { cookie, rsSyn } = openToRs(e);
  const replayed = feed(
    e,
    rs(rsSyn.sport, RISN, rsSyn.seq + 1, TCP_SYN | TCP_ACK, undefined, rsOptions, 65535),
  );
  return { cookie, lbIsn: rsSyn.seq, lport: rsSyn.sport, replayed };
}

function stateOf(e: Engine): string | undefined {
  const c = e.listConnections()[0];
  return c ? TCP_STATE_NAMES[c.state] : undefined;
}

test('cookie data bits: MSS table index, window scale, SACK', () => {
  assert.equal(SYNPROXY_MSS_TABLE.length, 10);
  assert.equal(mssIndex(1460), 8);
  assert.equal(mssIndex(1452), 7);
  assert.equal(mssIndex(1412), 5, '1412 rounds down to 1280');
  assert.equal(mssIndex(536), 3);
  assert.equal(mssIndex(40), 0);
  assert.equal(mssIndex(9000), 9);
  const d = cookieData(mssIndex(1452), 7, true, false);
  assert.ok(d <= COOKIE_DATA_MASK);
  assert.equal(cookieMss(d), 1452);
  assert.equal(cookieWscale(d), 7);
  assert.equal(cookieSack(d), true);
  const none = cookieData(mssIndex(536), -1, false, false);
  assert.equal(cookieWscale(none), -1);
  assert.equal(cookieSack(none), false);
  assert.equal(cookieWscale(cookieData(0, 20, false, false)), 14, 'shift clamped to 14');
});

test('client SYN: the LB answers with a cookie SYN+ACK and keeps no state', () => {
  const e = makeEngine();
  const { synAck, cookie } = synToLb(e);
  assert.equal(synAck.src, VIP);
  assert.equal(synAck.sport, 80);
  assert.equal(synAck.dst, CIP);
  assert.equal(synAck.dport, CPORT);
  assert.equal(synAck.ack, CISN + 1);
  assert.equal(synAck.ttl, 63);
  assert.equal(synAck.payload.length, 0);
  assert.equal(mssOf(synAck), 1452, 'the configured SYNPROXY MSS (below the client 1460)');
  assert.ok(optValue(synAck, TCPOPT_SACK_PERM), 'SACK offered: the client offered it');
  assert.deepEqual([...optValue(synAck, TCPOPT_WINDOW)!], [7], 'our own window scale');
  assert.ok(!optValue(synAck, TCPOPT_TIMESTAMP), 'no timestamps');
  assert.equal(synAck.window, 2 * 1452, 'invites the ACK plus two held segments');
  // The cookie's data bits carry what the RS SYN will need.
  const data = cookie & COOKIE_DATA_MASK;
  assert.equal(cookieMss(data), 1452);
  assert.equal(cookieWscale(data), 7);
  assert.equal(cookieSack(data), true);
  assert.equal(e.table.count, 0);
  assert.equal(e.counter('synproxy_syn_answered'), 1);
  assert.equal(e.counter('synproxy_syn_answered', 0), 1);
  assert.equal(e.counter('conns_created'), 0);
  // A retransmitted SYN gets the same cookie.
  assert.equal(synToLb(e, 500).cookie, cookie);
  // Another ISN, another cookie.
  assert.notEqual(synToLb(e, 500, LINUX_SYN_OPTS, CISN + 7).cookie, cookie);
});

test('SYN+ACK options follow the client: no WS/SACK when it offers none, MSS 536 when it says nothing', () => {
  const e = makeEngine();
  const { synAck, cookie } = synToLb(e, 0, []);
  assert.equal(mssOf(synAck), 536);
  assert.ok(!optValue(synAck, TCPOPT_SACK_PERM));
  assert.ok(!optValue(synAck, TCPOPT_WINDOW));
  assert.equal(cookieWscale(cookie & COOKIE_DATA_MASK), -1);
  const small = synToLb(e, 0, [opt.mss(1412)], CISN, CPORT + 1);
  assert.equal(mssOf(small.synAck), 1412, 'the client MSS when below ours');
  assert.equal(cookieMss(small.cookie & COOKIE_DATA_MASK), 1280, 'the table entry below it');
});

test('fullnat: the SYN+ACK MSS leaves room for the TOA on the narrowest RS path', () => {
  const e = makeEngine('fullnat', {}, 1400);
  assert.equal(mssOf(synToLb(e).synAck), 1400 - 40 - 8);
  const d = makeEngine('dpvs', {}, 1400);
  assert.equal(mssOf(synToLb(d).synAck), 1452);
});

test('an ACK without a valid cookie gets a RST and opens nothing', () => {
  const e = makeEngine();
  const { cookie } = synToLb(e);
  for (const [seq, ack] of [
    [CISN + 1, cookie + 2], // wrong cookie
    [CISN + 2, cookie + 1], // not the ISN the cookie was made for
    [CISN + 1, (cookie ^ 0x100) + 1], // data bits tampered with (SACK flipped)
    [CISN + 1, (cookie ^ 0x400) + 1], // MAC bit flipped
  ] as const) {
    const out = feed(e, client(seq, ack, TCP_ACK));
    assert.equal(out.length, 1);
    const r = out[0]!;
    assert.equal(r.flags, TCP_RST);
    assert.equal(r.src, VIP);
    assert.equal(r.dst, CIP);
    assert.equal(r.sport, 80);
    assert.equal(r.dport, CPORT);
    assert.equal(r.seq, ack >>> 0, 'RST seq = the ACK it refuses');
  }
  assert.equal(e.counter('synproxy_cookie_invalid'), 4);
  assert.equal(e.counter('rst_sent'), 4);
  assert.equal(e.table.count, 0);
  // Without ACK flag: no cookie to check, a segment of no connection (RFC 793: RST+ACK, seq 0,
  // ack = its seq + its length), answered once, not by SYNPROXY too. A RST: silently dropped.
  const noAck = feed(e, client(CISN + 1, 0, TCP_PSH, pattern(10)));
  assert.equal(noAck.length, 1);
  assert.equal(noAck[0]!.flags, TCP_RST | TCP_ACK);
  assert.equal(noAck[0]!.seq, 0);
  assert.equal(noAck[0]!.ack, CISN + 1 + 10);
  assert.equal(feed(e, client(CISN + 1, cookie + 1, TCP_RST | TCP_ACK)).length, 0);
  assert.equal(e.counter('no_conn_dropped'), 2);
  assert.equal(e.counter('unknown_flow_rst_sent'), 1);
  assert.equal(e.counter('synproxy_cookie_invalid'), 4);
});

test('a valid cookie ACK opens the RS leg: SYN with the decoded MSS, SACK and window scale', () => {
  const e = makeEngine();
  const { rsSyn } = openToRs(e);
  assert.equal(rsSyn.src, LIP);
  assert.equal(rsSyn.dst, RIP);
  assert.equal(rsSyn.dport, 8080);
  assert.ok(rsSyn.sport >= 5000);
  assert.equal(rsSyn.flags, TCP_SYN);
  assert.notEqual(rsSyn.seq, CISN, 'a fresh LB ISN');
  assert.equal(mssOf(rsSyn), 1452);
  assert.ok(optValue(rsSyn, TCPOPT_SACK_PERM));
  assert.deepEqual([...optValue(rsSyn, TCPOPT_WINDOW)!], [7], "the client's own shift");
  assert.ok(!optValue(rsSyn, TCPOPT_TIMESTAMP));
  assert.equal(rsSyn.toa.family, 0, 'fullnat: no TOA on the SYN');
  assert.equal(rsSyn.window, Math.min(65535, 502 << 7), "the client's window, unscaled");
  assert.equal(e.table.count, 1);
  assert.equal(stateOf(e), 'SYN_SENT');
  assert.equal(e.counter('synproxy_cookie_valid'), 1);
  assert.equal(e.counter('synproxy_ack_stored'), 1);
  assert.equal(e.counter('conns_created'), 1);

  const lvs = makeEngine('lvs');
  const s = openToRs(lvs).rsSyn;
  assert.equal(s.toa.family, 4, 'lvs: TOA on the SYN, as LVS does');
  assert.equal(s.toa.v4, CIP);
  assert.equal(s.toa.port, CPORT);
  assert.equal(mssOf(s), 1452);
});

test('RS SYN+ACK: absorbed; the held ACK and data replayed in the RS space with a TOA', () => {
  const e = makeEngine();
  const { cookie, rsSyn } = openToRs(e);
  const lbIsn = rsSyn.seq;
  const req = pattern(300);
  // Data sent before the RS answered: held too.
  assert.equal(feed(e, client(CISN + 1, cookie + 1, TCP_ACK | TCP_PSH, req)).length, 0);
  const out = feed(
    e,
    rs(rsSyn.sport, RISN, lbIsn + 1, TCP_SYN | TCP_ACK, undefined, [opt.mss(1460), opt.wscale(7)]),
  );
  assert.equal(out.length, 2, 'the two held packets, and no SYN+ACK to the client');
  for (const q of out) {
    assert.equal(q.src, LIP);
    assert.equal(q.dst, RIP);
    assert.equal(q.sport, rsSyn.sport);
    assert.equal(q.seq, lbIsn + 1);
    assert.equal(q.ack, RISN + 1, 'the cookie ack moved to RS ISN + 1');
    assert.equal(q.toa.family, 4, 'every concluding candidate carries the TOA');
    assert.equal(q.toa.v4, CIP);
    assert.equal(q.toa.port, CPORT);
    assert.equal(q.options[0]!.kind, 254);
  }
  assert.equal(out[0]!.payload.length, 0);
  assert.deepEqual(out[1]!.payload, req);
  assert.equal(e.counter('synproxy_ack_replayed'), 2);
  assert.equal(e.counter('synproxy_rs_synack'), 1);
  assert.equal(e.counter('toa_inserted'), 2);
  assert.equal(stateOf(e), 'ESTABLISHED');
});

test('with 64 KiB buffers (TUN offloads) a held packet moves to a small buffer and replays the same', () => {
  const e = makeEngine('fullnat', {}, 1500, new PacketPool(8, GSO_BUFFER_SIZE));
  const { cookie, rsSyn } = openToRs(e);
  const free = e.pool.available;
  const req = pattern(300);
  assert.equal(feed(e, client(CISN + 1, cookie + 1, TCP_ACK | TCP_PSH, req)).length, 0);
  assert.equal(
    e.pool.available,
    free,
    'the 64 KiB buffer went back to the pool; a small copy is held',
  );
  const out = feed(
    e,
    rs(rsSyn.sport, RISN, rsSyn.seq + 1, TCP_SYN | TCP_ACK, undefined, [
      opt.mss(1460),
      opt.wscale(7),
    ]),
  );
  assert.equal(out.length, 2);
  assert.equal(out[1]!.toa.v4, CIP);
  assert.equal(out[1]!.seq, rsSyn.seq + 1);
  assert.deepEqual(out[1]!.payload, req);
  assert.equal(e.counter('synproxy_ack_replayed'), 2);
});

test('after the opening: seq, ack and SACK edges translated both ways; TOA until the RS sends data', () => {
  const e = makeEngine();
  const { cookie, lbIsn, lport, replayed } = establish(e);
  assert.equal(replayed.length, 1);
  // Client data before the RS spoke: still a TOA.
  const [d1] = feed(e, client(CISN + 1, cookie + 1, TCP_ACK | TCP_PSH, pattern(100)));
  assert.equal(d1!.seq, lbIsn + 1);
  assert.equal(d1!.ack, RISN + 1);
  assert.equal(d1!.toa.v4, CIP);
  // RS → client: seq into the cookie space, ack into the client's; SACK of client data mapped.
  const [r1] = feed(
    e,
    rs(lport, RISN + 1, lbIsn + 101, TCP_ACK | TCP_PSH, pattern(500), [
      opt.nop(),
      opt.nop(),
      opt.sack([[lbIsn + 201, lbIsn + 301]]),
    ]),
  );
  assert.equal(r1!.src, VIP);
  assert.equal(r1!.dst, CIP);
  assert.equal(r1!.seq, cookie + 1);
  assert.equal(r1!.ack, CISN + 101);
  const sack = optValue(r1!, TCPOPT_SACK)!;
  const sv = new DataView(sack.buffer, sack.byteOffset);
  assert.deepEqual([sv.getUint32(0), sv.getUint32(4)], [CISN + 201, CISN + 301]);
  // Client → RS: its ack and its SACK blocks (of RS data) move from the cookie space to the RS's.
  const [c2] = feed(
    e,
    client(CISN + 101, cookie + 501, TCP_ACK, undefined, [
      opt.nop(),
      opt.nop(),
      opt.sack([
        [cookie + 1001, cookie + 1501],
        [cookie + 2001, cookie + 2501],
      ]),
    ]),
  );
  assert.equal(c2!.seq, lbIsn + 101);
  assert.equal(c2!.ack, RISN + 501);
  assert.equal(c2!.toa.family, 0, 'the ack moved past the RS ISN + 1: no TOA any more');
  const cs = optValue(c2!, TCPOPT_SACK)!;
  const cv = new DataView(cs.buffer, cs.byteOffset);
  assert.deepEqual(
    [cv.getUint32(0), cv.getUint32(4), cv.getUint32(8), cv.getUint32(12)],
    [RISN + 1001, RISN + 1501, RISN + 2001, RISN + 2501],
  );
  // Windows: both sides scale by 7, as announced: nothing to translate.
  assert.equal(c2!.window, 502);
  assert.equal(r1!.window, 509);
});

test('a retransmitted RS SYN+ACK (our replay lost) reaches the client in its spaces; its answer carries the TOA', () => {
  const e = makeEngine();
  const { cookie, lbIsn, lport } = establish(e);
  const [again] = feed(
    e,
    rs(lport, RISN, lbIsn + 1, TCP_SYN | TCP_ACK, undefined, [opt.mss(1460)]),
  );
  assert.equal(again!.dst, CIP);
  assert.equal(again!.flags, TCP_SYN | TCP_ACK);
  assert.equal(again!.seq, cookie, 'the ISN the client knows');
  assert.equal(again!.ack, CISN + 1);
  // The client, established, answers with a (challenge) ACK: it concludes the RS handshake.
  const [ack] = feed(e, client(CISN + 1, cookie + 1, TCP_ACK));
  assert.equal(ack!.ack, RISN + 1);
  assert.equal(ack!.toa.v4, CIP);
  assert.equal(e.counter('synproxy_rs_synack'), 1, 'only the first one is absorbed');
});

test('window scaling: RS shift differs → RS windows rescaled for the client; RS without scaling → client windows unscaled', () => {
  // RS announces shift 9, the LB told the client 7: RS windows ×4 toward the client.
  const e = makeEngine();
  const a = establish(e, [opt.mss(1460), opt.wscale(9)]);
  const [r] = feed(e, rs(a.lport, RISN + 1, a.lbIsn + 1, TCP_ACK, pattern(10), undefined, 1000));
  assert.equal(r!.window, 4000);
  const [big] = feed(
    e,
    rs(a.lport, RISN + 11, a.lbIsn + 1, TCP_ACK, pattern(10), undefined, 60000),
  );
  assert.equal(big!.window, 65535, 'clamped');
  const [c] = feed(e, client(CISN + 1, a.cookie + 21, TCP_ACK, undefined, undefined, 502));
  assert.equal(c!.window, 502, 'the RS took the client shift from our SYN');

  // RS refuses scaling: its windows are raw bytes (client applies 7), the client's must be unscaled.
  const f = makeEngine();
  const b = establish(f, [opt.mss(1460)]);
  const [r2] = feed(f, rs(b.lport, RISN + 1, b.lbIsn + 1, TCP_ACK, pattern(10), undefined, 64000));
  assert.equal(r2!.window, 64000 >> 7);
  const [c2] = feed(f, client(CISN + 1, b.cookie + 11, TCP_ACK, undefined, undefined, 600));
  assert.equal(c2!.window, 65535, '600 << 7, clamped to 16 bits');
  const [c3] = feed(f, client(CISN + 1, b.cookie + 11, TCP_ACK, undefined, undefined, 3));
  assert.equal(c3!.window, 3 << 7);

  // With the configured shift equal to the RS's, nothing changes.
  const g = makeEngine('fullnat', { synproxyWscale: 9 });
  const h = establish(g, [opt.mss(1460), opt.wscale(9)]);
  const [r3] = feed(g, rs(h.lport, RISN + 1, h.lbIsn + 1, TCP_ACK, pattern(10), undefined, 777));
  assert.equal(r3!.window, 777);
});

test('RS refuses during the opening: the client gets a RST in its own spaces', () => {
  const e = makeEngine();
  const { cookie, rsSyn } = openToRs(e, { payload: pattern(50), flags: TCP_ACK | TCP_PSH });
  const out = feed(e, rs(rsSyn.sport, 0, rsSyn.seq + 1, TCP_RST | TCP_ACK));
  assert.equal(out.length, 1);
  const r = out[0]!;
  assert.equal(r.flags & TCP_RST, TCP_RST);
  assert.equal(r.src, VIP);
  assert.equal(r.sport, 80);
  assert.equal(r.dst, CIP);
  assert.equal(r.dport, CPORT);
  assert.equal(r.seq, cookie + 1, "at the client's rcv_nxt, so it is accepted");
  assert.equal(r.ack, CISN + 51);
  assert.equal(e.table.count, 0);
  assert.equal(e.laddrs.portsInUse(0, 0), 0);
  assert.equal(e.counter('synproxy_rs_refused'), 1);
  assert.equal(e.counter('synproxy_ack_discarded'), 1);
  // A RST with the wrong ack, or other RS packets, do not count as an answer.
  const f = makeEngine();
  const o = openToRs(f);
  assert.equal(feed(f, rs(o.rsSyn.sport, 0, o.rsSyn.seq + 5, TCP_RST | TCP_ACK)).length, 0);
  assert.equal(feed(f, rs(o.rsSyn.sport, RISN, o.rsSyn.seq + 5, TCP_SYN | TCP_ACK)).length, 0);
  assert.equal(feed(f, rs(o.rsSyn.sport, RISN, o.rsSyn.seq + 1, TCP_ACK)).length, 0);
  assert.equal(f.counter('synproxy_setup_dropped'), 3);
  assert.equal(f.table.count, 1);
});

test('RS still in TIME_WAIT on the tuple acks its old connection: the LB resets that and resends the SYN', () => {
  const e = makeEngine();
  const { rsSyn } = openToRs(e);
  const OLD_RCV_NXT = (rsSyn.seq + 0x40000000) >>> 0;
  const out = feed(e, rs(rsSyn.sport, RISN + 555, OLD_RCV_NXT, TCP_ACK));
  assert.equal(out.length, 2);
  const [rst, syn] = out as [Decoded, Decoded];
  assert.equal(rst.flags, TCP_RST);
  assert.equal(rst.src, LIP);
  assert.equal(rst.sport, rsSyn.sport);
  assert.equal(rst.dst, RIP);
  assert.equal(rst.dport, 8080);
  assert.equal(rst.seq, OLD_RCV_NXT, "at the TIME_WAIT's rcv_nxt: it ends it");
  assert.equal(syn.flags, TCP_SYN);
  assert.equal(syn.seq, rsSyn.seq);
  assert.equal(e.counter('synproxy_rs_stale_ack'), 1);
  assert.equal(e.counter('synproxy_rs_syn_retransmitted'), 1);
  // The RS now answers the SYN; the opening completes.
  const [ack] = feed(e, rs(rsSyn.sport, RISN, rsSyn.seq + 1, TCP_SYN | TCP_ACK));
  assert.equal(ack!.ack, RISN + 1);
  assert.equal(ack!.toa.v4, CIP);
  // Bounded: an RS that keeps acking gets RSTs but no more SYNs than the retries allow.
  const f = makeEngine('fullnat', { synproxySynRetries: 2 });
  const o = openToRs(f);
  let syns = 0;
  for (let k = 0; k < 5; k++) {
    for (const q of feed(f, rs(o.rsSyn.sport, RISN, OLD_RCV_NXT, TCP_ACK)))
      if (q.flags === TCP_SYN) syns++;
  }
  assert.equal(syns, 2);
  assert.equal(f.counter('synproxy_rs_stale_ack'), 5);
});

test('RS silent: the SYN is retransmitted with backoff, then the client is reset', () => {
  const e = makeEngine('fullnat', { synproxySynRtoMs: 1000, synproxySynRetries: 3 });
  const { cookie, rsSyn } = openToRs(e);
  const sent: number[] = [];
  for (let now = 100; now <= 20_000; now += 100) {
    for (const q of tick(e, now)) {
      if (q.flags === TCP_SYN) {
        assert.equal(q.seq, rsSyn.seq, 'the same SYN');
        assert.equal(q.sport, rsSyn.sport);
        assert.equal(mssOf(q), 1452);
        sent.push(now);
      } else {
        assert.equal(q.flags & TCP_RST, TCP_RST);
        assert.equal(q.dst, CIP);
        assert.equal(q.seq, cookie + 1);
        sent.push(-now);
      }
    }
  }
  // Retransmissions after about 1, 2 and 4 s more; the reset 8 s after the last.
  assert.equal(sent.length, 4, JSON.stringify(sent));
  const [r1, r2, r3, rst] = sent as [number, number, number, number];
  assert.ok(r1 >= 1000 && r1 <= 1200, `${r1}`);
  assert.ok(r2 - r1 >= 2000 && r2 - r1 <= 2200, `${r2}`);
  assert.ok(r3 - r2 >= 4000 && r3 - r2 <= 4200, `${r3}`);
  assert.ok(-rst - r3 >= 8000 && -rst - r3 <= 8200, `${rst}`);
  assert.equal(e.counter('synproxy_rs_syn_retransmitted'), 3);
  assert.equal(e.counter('synproxy_rs_timeout'), 1);
  assert.equal(e.counter('synproxy_ack_discarded'), 1);
  assert.equal(e.table.count, 0);
  assert.equal(e.laddrs.portsInUse(0, 0), 0);
});

test('held packets are bounded per connection and in all', () => {
  const e = makeEngine('fullnat', { synproxyMaxStoredAcks: 3 });
  const { cookie, rsSyn } = openToRs(e);
  for (let k = 0; k < 4; k++)
    feed(e, client(CISN + 1 + 100 * k, cookie + 1, TCP_ACK, pattern(100)));
  assert.equal(e.counter('synproxy_ack_stored'), 3);
  assert.equal(e.counter('synproxy_ack_overflow'), 2);
  const out = feed(e, rs(rsSyn.sport, RISN, rsSyn.seq + 1, TCP_SYN | TCP_ACK));
  assert.equal(out.length, 3);
  assert.deepEqual(
    out.map((q) => q.seq - rsSyn.seq),
    [1, 1, 101],
  );

  // At most 2 held packets across connections: the third opening is refused.
  const f = makeEngine('fullnat', { synproxyMaxStoredTotal: 2 });
  for (let k = 0; k < 3; k++) {
    const { cookie: ck } = synToLb(f, 0, LINUX_SYN_OPTS, CISN, CPORT + k);
    feed(f, client(CISN + 1, ck + 1, TCP_ACK, undefined, undefined, 502, CPORT + k));
  }
  assert.equal(f.table.count, 2);
  assert.equal(f.counter('synproxy_ack_overflow'), 1);
});

test('a client RST during the opening aborts it and resets the RS leg', () => {
  const e = makeEngine();
  const { cookie, rsSyn } = openToRs(e);
  const out = feed(e, client(CISN + 1, cookie + 1, TCP_RST | TCP_ACK));
  assert.equal(out.length, 1);
  assert.equal(out[0]!.flags, TCP_RST);
  assert.equal(out[0]!.dst, RIP);
  assert.equal(out[0]!.src, LIP);
  assert.equal(out[0]!.seq, rsSyn.seq + 1);
  assert.equal(e.table.count, 0);
  assert.equal(e.counter('synproxy_setup_dropped'), 1);
  assert.equal(e.counter('synproxy_ack_discarded'), 1);
});

test('ack storm: identical pure ACKs from the RS beyond the threshold are dropped', () => {
  const e = makeEngine('fullnat', { synproxyAckStormThreshold: 10 });
  const { lbIsn, lport } = establish(e);
  const dup = rs(lport, RISN + 1, lbIsn + 1, TCP_ACK);
  let passed = 0;
  for (let k = 0; k < 15; k++) passed += feed(e, dup).length;
  assert.equal(passed, 10);
  assert.equal(e.counter('synproxy_ack_storm'), 5);
  // A window update is no repeat; nor is data.
  assert.equal(
    feed(e, rs(lport, RISN + 1, lbIsn + 1, TCP_ACK, undefined, undefined, 100)).length,
    1,
  );
  assert.equal(feed(e, dup).length, 1, 'the window changed back: counting starts again');
  assert.equal(feed(e, rs(lport, RISN + 1, lbIsn + 1, TCP_ACK | TCP_PSH, pattern(5))).length, 1);
  for (let k = 0; k < 12; k++) feed(e, rs(lport, RISN + 6, lbIsn + 1, TCP_ACK));
  assert.equal(e.counter('synproxy_ack_storm'), 7);
});

test('defer: the bare ACK opens nothing; the first data does, and is replayed with the TOA', () => {
  const e = makeEngine('fullnat', { synproxyDefer: true });
  const { cookie } = synToLb(e);
  assert.equal(feed(e, client(CISN + 1, cookie + 1, TCP_ACK)).length, 0);
  assert.equal(e.table.count, 0);
  assert.equal(e.counter('synproxy_deferred'), 1);
  const req = pattern(200);
  const [rsSyn] = feed(e, client(CISN + 1, cookie + 1, TCP_ACK | TCP_PSH, req));
  assert.equal(rsSyn!.flags, TCP_SYN);
  const out = feed(e, rs(rsSyn!.sport, RISN, rsSyn!.seq + 1, TCP_SYN | TCP_ACK));
  assert.equal(out.length, 1);
  assert.deepEqual(out[0]!.payload, req);
  assert.equal(out[0]!.ack, RISN + 1);
  assert.equal(out[0]!.toa.v4, CIP);
  // FIN counts as data: FIN+ACK opens it too.
  const f = makeEngine('fullnat', { synproxyDefer: true });
  const c2 = synToLb(f).cookie;
  assert.equal(feed(f, client(CISN + 1, c2 + 1, TCP_ACK | TCP_FIN)).length, 1);
});

test('cookie lifetime: the previous minute is accepted, two minutes back is not', () => {
  const e = makeEngine();
  const { cookie } = synToLb(e, 59_000);
  const ok = feed(e, client(CISN + 1, cookie + 1, TCP_ACK), 61_000);
  assert.equal(ok.length, 1);
  assert.equal(ok[0]!.flags, TCP_SYN);

  const f = makeEngine();
  const c2 = synToLb(f, 0).cookie;
  tick(f, 60_000);
  const late = feed(f, client(CISN + 1, c2 + 1, TCP_ACK), 120_000);
  assert.equal(late.length, 1);
  assert.equal(late[0]!.flags, TCP_RST);
  assert.equal(f.counter('synproxy_cookie_invalid'), 1);

  // The same after an idle gap with no tick in between.
  const g = makeEngine();
  const c3 = synToLb(g, 1000).cookie;
  assert.equal(feed(g, client(CISN + 1, c3 + 1, TCP_ACK), 200_000)[0]!.flags, TCP_RST);
  // And keys differ per engine unless seeded: another engine rejects this engine's cookie.
  const h = makeEngine();
  assert.equal(feed(h, client(CISN + 1, cookie + 1, TCP_ACK), 61_000)[0]!.flags, TCP_RST);
  const s1 = makeEngine('fullnat', { synproxySecret: 42 });
  const s2 = makeEngine('fullnat', { synproxySecret: 42 });
  assert.equal(synToLb(s1).cookie, synToLb(s2).cookie, 'seeded keys are reproducible');
});

test('a new valid cookie ACK on a tuple in TIME_WAIT or CLOSE replaces the old connection', () => {
  const e = makeEngine();
  const { cookie, lbIsn, lport } = establish(e);
  // Client FIN, RS FIN: TIME_WAIT.
  feed(e, client(CISN + 1, cookie + 1, TCP_ACK | TCP_FIN));
  feed(e, rs(lport, RISN + 1, lbIsn + 2, TCP_ACK | TCP_FIN));
  assert.equal(stateOf(e), 'TIME_WAIT');
  // An ordinary ACK still belongs to the old connection.
  const [last] = feed(e, client(CISN + 2, cookie + 2, TCP_ACK));
  assert.equal(last!.dst, RIP);
  assert.equal(last!.ack, RISN + 2);
  // A new SYN on the tuple: answered statelessly, the old entry left alone.
  const NEW_ISN = CISN + 5_000_000;
  const { cookie: c2 } = synToLb(e, 1000, LINUX_SYN_OPTS, NEW_ISN);
  assert.equal(e.table.count, 1);
  assert.equal(stateOf(e), 'TIME_WAIT');
  // Its ACK: the old entry goes, a new connection opens.
  const [syn2] = feed(e, client(NEW_ISN + 1, c2 + 1, TCP_ACK));
  assert.equal(syn2!.flags, TCP_SYN);
  assert.equal(e.table.count, 1);
  assert.equal(stateOf(e), 'SYN_SENT');
  const [ack2] = feed(e, rs(syn2!.sport, RISN + 9, syn2!.seq + 1, TCP_SYN | TCP_ACK));
  assert.equal(ack2!.seq, syn2!.seq + 1);
  assert.equal(ack2!.ack, RISN + 10);
  assert.equal(ack2!.toa.v4, CIP);

  // CLOSE (after a client RST) too.
  const f = makeEngine();
  const a = establish(f);
  feed(f, client(CISN + 1, a.cookie + 1, TCP_RST | TCP_ACK));
  assert.equal(stateOf(f), 'CLOSE');
  const c3 = synToLb(f, 500, LINUX_SYN_OPTS, NEW_ISN).cookie;
  assert.equal(feed(f, client(NEW_ISN + 1, c3 + 1, TCP_ACK))[0]!.flags, TCP_SYN);
  assert.equal(f.table.count, 1);
});

test('established SYNPROXY connection expiry: the client RST is in the cookie space', () => {
  const e = makeEngine();
  const { cookie, lbIsn, lport } = establish(e);
  feed(e, rs(lport, RISN + 1, lbIsn + 1, TCP_ACK | TCP_PSH, pattern(40)));
  const out = tick(e, 200_000);
  assert.equal(out.length, 2);
  const toClient = out.find((q) => q.dst === CIP)!;
  const toRs = out.find((q) => q.dst === RIP)!;
  assert.equal(toClient.seq, cookie + 41);
  assert.equal(toRs.seq, lbIsn + 1);
  assert.equal(toRs.ack, RISN + 41);
  assert.equal(e.table.count, 0);
});

test('FIN+ACK+data opens the connection (the fin-data client); PROXY protocol still works', () => {
  const e = makeEngine();
  const req = pattern(120);
  const { rsSyn } = openToRs(e, { payload: req, flags: TCP_ACK | TCP_PSH | TCP_FIN });
  const [out] = feed(e, rs(rsSyn.sport, RISN, rsSyn.seq + 1, TCP_SYN | TCP_ACK));
  assert.equal(out!.flags & TCP_FIN, TCP_FIN);
  assert.equal(out!.toa.v4, CIP);
  assert.deepEqual(out!.payload, req);

  const p = new Engine({ toaPolicy: 'fullnat', maxConnections: 8 });
  p.addService({
    vip: VIP,
    vport: 80,
    scheduler: 'rr',
    laddrs: [LIP],
    realServers: [{ addr: RIP, port: 8080, weight: 1 }],
    synProxy: true,
    proxyProtocol: 2,
  });
  const o = openToRs(p, { payload: req, flags: TCP_ACK | TCP_PSH });
  const both = feed(p, rs(o.rsSyn.sport, RISN, o.rsSyn.seq + 1, TCP_SYN | TCP_ACK));
  assert.equal(both.length, 2, 'PROXY header, then the request');
  assert.equal(both[0]!.payload.length, 28);
  assert.equal(both[0]!.ack, RISN + 1);
  assert.equal(both[1]!.seq, o.rsSyn.seq + 1 + 28);
  assert.deepEqual(both[1]!.payload, req);
  assert.equal(both[1]!.toa.family, 0);
});

test('client-supplied TOAs in held packets are stripped on replay; ours is read', () => {
  const e = makeEngine();
  const forged = toaV4Option(6666, parseIpv4('6.6.6.6'));
  const { cookie } = synToLb(e, 0, [...LINUX_SYN_OPTS, forged]);
  const [rsSyn] = feed(e, client(CISN + 1, cookie + 1, TCP_ACK, undefined, [forged]));
  assert.equal(rsSyn!.toa.family, 0);
  const [ack] = feed(e, rs(rsSyn!.sport, RISN, rsSyn!.seq + 1, TCP_SYN | TCP_ACK));
  assert.equal(ack!.toa.v4, CIP);
  assert.equal(ack!.toa.port, CPORT);
  assert.equal(e.counter('toa_spoof_stripped'), 1);
});

test('switching SYNPROXY off leaves opening connections to finish; new SYNs go to the RS', () => {
  const e = makeEngine();
  const { rsSyn } = openToRs(e);
  e.setSynProxy(0, false);
  const [ack] = feed(e, rs(rsSyn.sport, RISN, rsSyn.seq + 1, TCP_SYN | TCP_ACK));
  assert.equal(ack!.ack, RISN + 1);
  const [fwd] = feed(e, client(1, 0, TCP_SYN, undefined, LINUX_SYN_OPTS, 64240, CPORT + 1));
  assert.equal(fwd!.dst, RIP, 'an ordinary FULLNAT SYN');
});

test('random packet sequences on a SYNPROXY service: no throw, valid checksums, every packet accounted', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          kind: fc.integer({ min: 0, max: 7 }),
          port: fc.integer({ min: 0, max: 2 }),
          len: fc.integer({ min: 0, max: 1500 }),
          dt: fc.integer({ min: 0, max: 30_000 }),
          flip: fc.boolean(),
        }),
        { maxLength: 60 },
      ),
      (steps) => {
        const e = makeEngine('fullnat', { synproxyMaxStoredAcks: 2 });
        const cookies = new Map<number, number>();
        const lports = new Map<number, { lport: number; lbIsn: number }>();
        let now = 0;
        for (const s of steps) {
          now += s.dt;
          const sport = CPORT + s.port;
          const ck = cookies.get(sport) ?? 12345;
          const l = lports.get(sport);
          let pkt: Uint8Array;
          switch (s.kind) {
            case 0:
              pkt = client(CISN, 0, TCP_SYN, undefined, LINUX_SYN_OPTS, 64240, sport);
              break;
            case 1:
              pkt = client(
                CISN + 1,
                (s.flip ? ck ^ 1 : ck) + 1,
                TCP_ACK,
                undefined,
                undefined,
                502,
                sport,
              );
              break;
            case 2:
              pkt = client(
                CISN + 1,
                ck + 1,
                TCP_ACK | TCP_PSH,
                pattern(s.len),
                undefined,
                502,
                sport,
              );
              break;
            case 3:
              pkt = client(
                CISN + 1,
                ck + 1,
                s.flip ? TCP_RST : TCP_ACK | TCP_FIN,
                undefined,
                undefined,
                502,
                sport,
              );
              break;
            case 4:
              pkt = rs(l?.lport ?? 5000, RISN, (l?.lbIsn ?? 0) + 1, TCP_SYN | TCP_ACK);
              break;
            case 5:
              pkt = rs(l?.lport ?? 5000, RISN + 1, (l?.lbIsn ?? 0) + 1, TCP_ACK);
              break;
            case 6:
              pkt = rs(
                l?.lport ?? 5000,
                RISN + 1,
                (l?.lbIsn ?? 0) + 1,
                s.flip ? TCP_RST | TCP_ACK : TCP_ACK | TCP_PSH,
                pattern(s.len % 500),
              );
              break;
            default:
              pkt = client(
                CISN + 1,
                ck + 1,
                TCP_ACK,
                undefined,
                [opt.sack([[ck + 10, ck + 20]])],
                502,
                sport,
              );
          }
          for (const d of feed(e, pkt, now)) {
            if (d.flags === (TCP_SYN | TCP_ACK) && d.dst === CIP) cookies.set(d.dport, d.seq);
            if (d.flags === TCP_SYN && d.dst === RIP)
              lports.set(sport, { lport: d.sport, lbIsn: d.seq });
          }
        }
        // Let every opening resolve, then every packet received is forwarded or counted dropped.
        for (let t = now + 1000; t <= now + 600_000; t += 1000) {
          e.tick(t);
          drainOutput(e);
        }
        let dropped = 0;
        for (const name of DROP_COUNTERS) dropped += e.counters[C[name]]!;
        assert.equal(e.counters[C.rx_packets], e.counters[C.forwarded_packets]! + dropped);
        assert.equal(e.table.count, 0);
      },
    ),
    { numRuns: 200 },
  );
});
