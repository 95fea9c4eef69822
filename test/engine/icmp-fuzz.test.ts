/**
 * Hostile ICMP through the engine: errors from both sides quoting packets of
 * live connections (as they left the LB, truncated anywhere, with bytes
 * flipped — lying quotes), quoting stray tuples, random bytes, echo of every
 * shape, and floods. For every packet: no throw, counted exactly once
 * (forwarded or one drop counter), what goes out is a valid IPv4 ICMP packet
 * (outer IP and ICMP checksums right, and the quoted IP header's when the
 * input's was), and an error goes out only about a connection the table
 * holds, to that connection's client or RS. The same for errors about UDP
 * flows, whose quotes from the RS's side carry the UOA (ipo, opp, or none):
 * what goes out quotes a UDP datagram of a live flow, protocol 17, the UOA
 * taken out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Engine } from '../../src/engine/engine.js';
import { get16, get32 } from '../../src/wire/bytes.js';
import { IPPROTO_ICMP, IPPROTO_UDP } from '../../src/wire/ipv4.js';
import { uoaOptionAt } from '../../src/wire/uoa.js';
import { TCP_ACK, TCP_PSH, TCP_SYN } from '../../src/wire/tcp.js';
import { opt } from '../../src/wire/tcp-options.js';
import {
  CIP,
  CISN,
  LINUX_SYN_OPTS,
  LIP,
  RIP,
  RISN,
  VIP,
  assertFuzzReached,
  clientSegment,
  feedCountedOnce,
  feedRaw,
  newTestEngine,
  rsSegment,
} from '../support/engine-fixture.js';
import { checksumOk, hostileQuote, icmpPacket, randomBytes } from '../support/icmp.js';
import { buildSegment, pattern } from '../support/packets.js';
import { rng } from '../support/rng.js';
import { addressKeyAt, buildUdp4, udpFlowKeys } from '../support/udp-packets.js';

const ROUTER = 0xc6336401; // 198.51.100.1
const CONNS = 12;

/** An engine with CONNS open connections; what the LB sent on each leg, as routers would quote it. */
function setup(policy: 'lvs' | 'dpvs' | 'fullnat'): {
  e: Engine;
  toRs: Uint8Array[];
  toClient: Uint8Array[];
} {
  const e = newTestEngine({ toaPolicy: policy, maxConnections: 64 }, { rsMtu: 1400 });
  const toRs: Uint8Array[] = [];
  const toClient: Uint8Array[] = [];
  for (let k = 0; k < CONNS; k++) {
    const sport = 30000 + k;
    const [syn] = feedRaw(
      e,
      clientSegment({ seq: CISN, flags: TCP_SYN, options: LINUX_SYN_OPTS, sport }),
    );
    assert.ok(syn);
    toRs.push(syn.bytes);
    const lport = get16(syn.bytes, 20);
    const lbIsn = get32(syn.bytes, 24);
    const [sa] = feedRaw(
      e,
      rsSegment({
        lport,
        seq: RISN,
        ack: lbIsn + 1,
        flags: TCP_SYN | TCP_ACK,
        options: [opt.mss(1460)],
      }),
    );
    assert.ok(sa);
    toClient.push(sa.bytes);
    for (const o of feedRaw(
      e,
      clientSegment({
        seq: CISN + 1,
        ack: RISN + 1,
        flags: TCP_ACK,
        payload: pattern(1300),
        sport,
      }),
    ))
      toRs.push(o.bytes);
    for (const o of feedRaw(
      e,
      rsSegment({
        lport,
        seq: RISN + 1,
        ack: lbIsn + 1301,
        flags: TCP_ACK | TCP_PSH,
        payload: pattern(1400),
      }),
    ))
      toClient.push(o.bytes);
  }
  return { e, toRs, toClient };
}

/** Feeds one packet and checks the invariants; returns what went out. */
function feedChecked(e: Engine, pkt: Uint8Array, what: string): Uint8Array[] {
  const quotedIpValid =
    pkt.length >= 48 &&
    pkt[9] === IPPROTO_ICMP &&
    checksumOk(pkt, 28, Math.min((pkt[28]! & 15) * 4, pkt.length - 28));
  const out = feedCountedOnce(e, pkt, what);
  const t = e.table;
  for (const b of out) {
    const hex = Buffer.from(pkt).toString('hex');
    assert.equal(b[9], IPPROTO_ICMP, `${what}: only ICMP comes out of ICMP\n${hex}`);
    const ihl = (b[0]! & 15) * 4;
    assert.ok(checksumOk(b, 0, ihl), `${what}: outer IP checksum`);
    assert.ok(checksumOk(b, ihl, b.length - ihl), `${what}: ICMP checksum`);
    const type = b[ihl]!;
    if (type === 0) {
      assert.equal(pkt[20], 8, `${what}: an echo reply answers an echo request`);
      assert.equal(get32(b, 12), VIP);
      continue;
    }
    // An error: its quote is a packet of a connection the table holds, sent to that leg's host.
    const q = ihl + 8;
    const qhl = (b[q]! & 15) * 4;
    if (quotedIpValid) assert.ok(checksumOk(b, q, qhl), `${what}: quoted IP checksum`);
    const qt = q + qhl;
    const dst = get32(b, 16);
    if (dst === RIP) {
      assert.equal(get32(b, 12), LIP);
      assert.ok(
        t.lookupReplyAt(b, q, qt) >= 0,
        `${what}: error to the RS about no connection\n${hex}`,
      );
    } else {
      assert.equal(dst, CIP, `${what}: an error goes to a client or an RS`);
      assert.equal(get32(b, 12), VIP);
      assert.ok(
        t.lookupClientAt(b, q, qt, 0) >= 0,
        `${what}: error to the client about no connection\n${hex}`,
      );
    }
  }
  return out;
}

test('ICMP errors with real, truncated, lying and random quotes, from both sides: no throw, counted once, nothing forwarded about no connection', () => {
  for (const policy of ['lvs', 'dpvs', 'fullnat'] as const) {
    const { e, toRs, toClient } = setup(policy);
    const r = rng(0x1c4e + policy.length);
    let forwarded = 0;
    let now = 0;
    for (let i = 0; i < 6000; i++) {
      // 1 ms a packet: the forwarding bucket refills, so valid errors do go through.
      now += 1;
      e.tick(now);
      const fromRs = r() < 0.5;
      const orig = fromRs
        ? toRs[Math.floor(r() * toRs.length)]!
        : toClient[Math.floor(r() * toClient.length)]!;
      const quote = hostileQuote(r, orig, 28, 80);
      const types = [3, 3, 3, 11, 12, 4, 5, 0, 8, Math.floor(r() * 256)];
      const type = types[Math.floor(r() * types.length)]!;
      const code = r() < 0.5 ? 4 : Math.floor(r() * 16);
      const dst = r() < 0.9 ? (fromRs ? LIP : VIP) : r() < 0.5 ? RIP : ROUTER;
      const src = r() < 0.9 ? ROUTER : 0;
      const mtu = r() < 0.7 ? 576 + Math.floor(r() * 1000) : Math.floor(r() * 65536);
      const pkt = icmpPacket(src, dst, type, code, mtu, quote, r() < 0.05);
      forwarded += feedChecked(e, pkt, `${policy} #${i}`).length;
    }
    assertFuzzReached(e, policy, forwarded, 200, [
      'icmp_error_forwarded',
      'icmp_error_no_conn_dropped',
      'icmp_malformed_dropped',
      'icmp_unhandled_dropped',
      'icmp_pmtu_learned',
      'icmp_pmtu_ignored',
    ]);
    assert.ok(e.pathMtu(0) >= 552 && e.pathMtu(0) <= 1400, `${policy}: path MTU ${e.pathMtu(0)}`);
  }
});

test('random bytes as ICMP, and ICMP with lying IP lengths: no throw, counted once, only echo replies sent', () => {
  const { e } = setup('fullnat');
  const r = rng(77);
  for (let i = 0; i < 3000; i++) {
    const body = randomBytes(r, 120);
    const pkt = icmpPacket(
      ROUTER,
      r() < 0.5 ? LIP : VIP,
      Math.floor(r() * 256),
      Math.floor(r() * 256),
      0,
      body,
    );
    if (r() < 0.3) pkt[2] = 0; // total length lies: the IP check drops it first
    if (r() < 0.3) pkt[0] = 0x46; // an IHL that eats the ICMP header
    feedChecked(e, pkt, `random #${i}`);
  }
});

test('an ICMP flood: errors about a live connection and pings to the VIP, at one instant, go out at most a burst', () => {
  const { e, toRs } = setup('fullnat');
  e.tick(10);
  let out = 0;
  const err = icmpPacket(ROUTER, LIP, 3, 1, 0, toRs[1]!.subarray(0, 48));
  const ping = icmpPacket(CIP, VIP, 8, 0, 1, pattern(56));
  for (let i = 0; i < 5000; i++)
    out += feedChecked(e, i % 2 === 0 ? err : ping, `flood #${i}`).length;
  // The forwarding bucket and the echo bucket: 50 each at once (icmpRateBurst).
  assert.equal(out, 100);
  assert.equal(e.counter('icmp_rate_limited'), 4900);
  // A stray TCP segment still goes its way meanwhile: the flood costs only its own tokens.
  const stray = buildSegment({ src: CIP, dst: VIP, sport: 1, dport: 80, seq: 1, flags: TCP_SYN });
  assert.equal(feedRaw(e, stray).length, 1);
});

/** UDP services under each UOA mode (ports 53 opp, 54 ipo, 55 off) with flows, and what the LB sent each leg. */
function setupUdp(): { e: Engine; toRs: Uint8Array[]; toClient: Uint8Array[] } {
  const e = newTestEngine({ toaPolicy: 'fullnat', maxConnections: 64 }, { rsMtu: 1400 });
  const toRs: Uint8Array[] = [];
  const toClient: Uint8Array[] = [];
  for (const [vport, uoaMode] of [
    [53, 'opp'],
    [54, 'ipo'],
    [55, 'off'],
  ] as const) {
    e.addService({
      vip: VIP,
      vport,
      protocol: 'UDP',
      scheduler: 'rr',
      laddrs: [LIP],
      realServers: [{ addr: RIP, port: 5353, weight: 1, mtu: 700 }],
      uoaMode,
    });
    for (let k = 0; k < 4; k++) {
      const sport = 30000 + k;
      let lport = -1;
      // The second datagram fills the RS path: its UOA goes ahead in a datagram of its own.
      for (const n of [20, 700 - 28, 30, 40]) {
        const query = buildUdp4({
          src: CIP,
          dst: VIP,
          sport,
          dport: vport,
          payload: pattern(n),
          noChecksum: k === 3,
        });
        for (const o of feedRaw(e, query)) {
          toRs.push(o.bytes);
          lport = get16(o.bytes, o.bytes.length - 8 - n);
        }
      }
      const answer = buildUdp4({
        src: RIP,
        dst: LIP,
        sport: 5353,
        dport: lport,
        payload: pattern(9),
      });
      for (const o of feedRaw(e, answer)) toClient.push(o.bytes);
    }
  }
  assert.equal(e.connectionCount, 12);
  assert.equal(toClient.length, 12);
  return { e, toRs, toClient };
}

/** Feeds one packet and checks the invariants for errors about UDP flows; returns what went out. */
function feedCheckedUdp(e: Engine, pkt: Uint8Array, what: string): Uint8Array[] {
  const quotedIpValid =
    pkt.length >= 48 &&
    pkt[9] === IPPROTO_ICMP &&
    checksumOk(pkt, 28, Math.min((pkt[28]! & 15) * 4, pkt.length - 28));
  const out = feedCountedOnce(e, pkt, what);
  const flows = udpFlowKeys(e);
  for (const b of out) {
    const hex = Buffer.from(pkt).toString('hex');
    assert.equal(b[9], IPPROTO_ICMP, `${what}: only ICMP comes out of ICMP\n${hex}`);
    const ihl = (b[0]! & 15) * 4;
    assert.ok(checksumOk(b, 0, ihl), `${what}: outer IP checksum`);
    assert.ok(checksumOk(b, ihl, b.length - ihl), `${what}: ICMP checksum`);
    if (b[ihl] === 0) {
      assert.equal(pkt[20], 8, `${what}: an echo reply answers an echo request`);
      continue;
    }
    const q = ihl + 8;
    const qhl = (b[q]! & 15) * 4;
    if (quotedIpValid) assert.ok(checksumOk(b, q, qhl), `${what}: quoted IP checksum\n${hex}`);
    assert.equal(b[q + 9], IPPROTO_UDP, `${what}: the quote is UDP, the opp shim out\n${hex}`);
    assert.ok(uoaOptionAt(b, q + 20, q + qhl) < 0, `${what}: the ipo option out\n${hex}`);
    const qu = q + qhl;
    const quoted = `${addressKeyAt(b, q + 12, 4)}|${get16(b, qu)}|${addressKeyAt(b, q + 16, 4)}|${get16(b, qu + 2)}`;
    const dst = get32(b, 16);
    if (dst === RIP) {
      assert.equal(get32(b, 12), LIP);
      // RIP:rport → LIP:lport, the flow's RS leg read backwards.
      const [rip, rport, lip, lport] = quoted.split('|');
      assert.ok(
        flows.rsLeg.has(`${lip}|${lport}|${rip}|${rport}`),
        `${what}: error to the RS about no flow\n${hex}`,
      );
    } else {
      assert.equal(dst, CIP, `${what}: an error goes to a client or an RS`);
      assert.equal(get32(b, 12), VIP);
      assert.ok(flows.clientLeg.has(quoted), `${what}: error to the client about no flow\n${hex}`);
    }
  }
  return out;
}

test('ICMP errors quoting UDP flows (plain, ipo and opp quotes; real, truncated, lying, random): no throw, counted once, nothing forwarded about no flow', () => {
  const { e, toRs, toClient } = setupUdp();
  const r = rng(0x1d9);
  let forwarded = 0;
  let now = 0;
  for (let i = 0; i < 6000; i++) {
    now += 1;
    e.tick(now);
    const fromRs = r() < 0.6;
    const orig = fromRs
      ? toRs[Math.floor(r() * toRs.length)]!
      : toClient[Math.floor(r() * toClient.length)]!;
    // 48 bytes reach the UDP header behind the largest shim (20 + 12 + 8) and 8 more.
    const quote = hostileQuote(r, orig, 48, 80);
    const types = [3, 3, 3, 3, 11, 12, 4, 0, 8, Math.floor(r() * 256)];
    const type = types[Math.floor(r() * types.length)]!;
    const code = r() < 0.4 ? 3 : r() < 0.5 ? 4 : Math.floor(r() * 16);
    const dst = r() < 0.9 ? (fromRs ? LIP : VIP) : r() < 0.5 ? RIP : ROUTER;
    const src = r() < 0.5 ? RIP : ROUTER;
    const mtu = r() < 0.7 ? 576 + Math.floor(r() * 1000) : Math.floor(r() * 65536);
    const pkt = icmpPacket(src, dst, type, code, mtu, quote, r() < 0.05);
    forwarded += feedCheckedUdp(e, pkt, `udp #${i}`).length;
  }
  assertFuzzReached(e, 'udp', forwarded, 200, [
    'icmp_error_forwarded',
    'icmp_error_no_conn_dropped',
    'icmp_malformed_dropped',
    'icmp_unhandled_dropped',
    'icmp_pmtu_learned',
    'icmp_pmtu_ignored',
  ]);
  // The RS (index 1: the TCP fixture's is 0) learned from frag-needed about its flows.
  assert.ok(e.pathMtu(1) >= 552 && e.pathMtu(1) <= 700, `udp: path MTU ${e.pathMtu(1)}`);
});
