/**
 * Hostile ICMPv6 (and FNAT64's ICMPv4) through the engine: errors from both
 * sides of IPv6 and FNAT64 connections quoting packets as they left the LB —
 * truncated anywhere, with bytes flipped (lying quotes), or random — random
 * messages of every type, and floods. For every packet: no throw, counted
 * exactly once, what goes out is a valid ICMPv6 or ICMPv4 packet (checksums
 * right, the ICMPv6 one over its pseudo-header), and an error goes out only
 * about a connection the table holds, to that connection's client or RS.
 * The same for errors about IPv6 and FNAT64 UDP flows, whose quotes from the
 * RS's side carry the opp shim on a flow's first datagrams: what goes out
 * quotes a UDP datagram of a live flow, the shim taken out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { get16, get32, parseIpv4 } from '../../src/wire/bytes.js';
import { foldSum, sumWords } from '../../src/wire/checksum.js';
import { TCP_ACK, TCP_PSH, TCP_SYN } from '../../src/wire/tcp.js';
import { opt } from '../../src/wire/tcp-options.js';
import { assertFuzzReached, feedCountedOnce, feedRaw } from '../support/engine-fixture.js';
import {
  LIP6,
  LIP64,
  RIP6,
  RIP64,
  VIP6,
  client6Segment,
  newDualEngine,
  rsSegment46,
} from '../support/engine6-fixture.js';
import { checksumOk, hostileQuote, icmp6Packet, icmpPacket, randomBytes } from '../support/icmp.js';
import { buildSegment6, pattern, v6 } from '../support/packets.js';
import { rng } from '../support/rng.js';
import { addressKeyAt, buildUdp4, buildUdp6, udpFlowKeys } from '../support/udp-packets.js';

const ROUTER6 = v6('2001:db8:ff::1');
const ROUTER4 = parseIpv4('10.60.2.254');
const CONNS = 8;

const clientAddr = (k: number): Uint8Array => v6(`2001:db8:c::${k + 1}`);

interface Setup {
  e: Engine;
  /** What the LB sent: to IPv6 RSs, to IPv4 RSs (FNAT64), to the clients of each. */
  toRs6: Uint8Array[];
  toRs4: Uint8Array[];
  toClient: Uint8Array[];
}

function setup(policy: 'lvs' | 'dpvs' | 'fullnat'): Setup {
  const e = newDualEngine({ toaPolicy: policy, maxConnections: 64, isnSecret: 3 }, { rsMtu: 1400 });
  const s: Setup = { e, toRs6: [], toRs4: [], toClient: [] };
  for (let k = 0; k < CONNS; k++) {
    for (const vport of [80, 81]) {
      const src = clientAddr(k);
      const c = (seq: number, ack: number, flags: number, payload?: Uint8Array) => {
        const options = flags & TCP_SYN ? [opt.mss(1440)] : undefined;
        return client6Segment({ vport, src, sport: 30000 + k, seq, ack, flags, payload, options });
      };
      const [syn] = feedRaw(e, c(1000, 0, TCP_SYN));
      assert.ok(syn);
      const ipHl = vport === 80 ? 40 : 20;
      const lport = get16(syn.bytes, ipHl);
      const lbIsn = get32(syn.bytes, ipHl + 4);
      const r = (seq: number, flags: number, payload?: Uint8Array) =>
        rsSegment46({ vport, lport, seq, ack: lbIsn + 1, flags, payload });
      feedRaw(e, r(5000, TCP_SYN | TCP_ACK));
      const sent = vport === 80 ? s.toRs6 : s.toRs4;
      sent.push(syn.bytes);
      for (const o of feedRaw(e, c(1001, 5001, TCP_ACK | TCP_PSH, pattern(1200))))
        sent.push(o.bytes);
      for (const o of feedRaw(e, r(5001, TCP_ACK | TCP_PSH, pattern(1300))))
        s.toClient.push(o.bytes);
    }
  }
  assert.equal(s.toClient.length, 2 * CONNS);
  return s;
}

function icmpv6Ok(b: Uint8Array): boolean {
  const len = b.length - 40;
  const pseudo = sumWords(b, 8, 32, 0) + 58 + len;
  return foldSum(sumWords(b, 40, len, pseudo)) === 0xffff;
}

const same16 = (a: Uint8Array, ao: number, b: Uint8Array): boolean =>
  b.every((x, i) => a[ao + i] === x);

/** Feeds one packet and checks the invariants; returns what went out. */
function feedChecked(e: Engine, pkt: Uint8Array, what: string): Uint8Array[] {
  const hex = Buffer.from(pkt).toString('hex');
  const out = feedCountedOnce(e, pkt, what);
  const t = e.table;
  for (const b of out) {
    if (b[0]! >>> 4 === 6) {
      assert.equal(b[6], 58, `${what}: only ICMPv6 comes out of ICMP\n${hex}`);
      assert.equal(get16(b, 4), b.length - 40, `${what}: payload length`);
      assert.ok(icmpv6Ok(b), `${what}: ICMPv6 checksum\n${hex}`);
      const type = b[40]!;
      const q = 48;
      if (type === 129) {
        assert.equal(pkt[pkt[6] === 58 ? 40 : 48], 128, `${what}: a reply answers a request`);
        assert.ok(same16(b, 8, VIP6));
        continue;
      }
      assert.ok(type < 128, `${what}: an error`);
      assert.ok(b.length <= 1280, `${what}: an ICMPv6 error fits the minimum MTU`);
      if (same16(b, 24, RIP6)) {
        assert.ok(same16(b, 8, LIP6));
        assert.ok(
          t.lookupReply6At(b, q + 8, q + 40) >= 0,
          `${what}: to the RS about no connection\n${hex}`,
        );
      } else {
        assert.ok(same16(b, 8, VIP6), `${what}: an error goes to a client or an RS`);
        const svc = get16(b, q + 40 + 2) === 80 ? 0 : 1;
        assert.ok(
          t.lookupClient6At(b, q + 8, q + 40, svc) >= 0,
          `${what}: to the client about no connection\n${hex}`,
        );
        assert.ok(same16(b, 24, b.subarray(q + 8, q + 24)), `${what}: to the quote's source`);
      }
    } else {
      assert.equal(b[9], 1, `${what}: only ICMP comes out of ICMP\n${hex}`);
      assert.ok(checksumOk(b, 0, 20), `${what}: outer IP checksum`);
      assert.ok(checksumOk(b, 20, b.length - 20), `${what}: ICMP checksum`);
      assert.ok(b.length <= 576, `${what}: an ICMP error fits 576 bytes`);
      assert.equal(get32(b, 12), LIP64);
      assert.equal(get32(b, 16), RIP64);
      assert.ok(checksumOk(b, 28, 20), `${what}: quoted IP checksum`);
      assert.ok(t.lookupReplyAt(b, 28, 48) >= 0, `${what}: to the RS about no connection\n${hex}`);
    }
  }
  return out;
}

test('ICMPv6 and FNAT64 ICMP errors with real, truncated, lying and random quotes, from both sides: no throw, counted once, nothing forwarded about no connection', () => {
  for (const policy of ['lvs', 'dpvs', 'fullnat'] as const) {
    const { e, toRs6, toRs4, toClient } = setup(policy);
    const r = rng(0x1c6e + policy.length);
    let forwarded = 0;
    let now = 0;
    for (let i = 0; i < 6000; i++) {
      now += 1;
      e.tick(now);
      const side = r();
      let pkt: Uint8Array;
      const pick = (a: Uint8Array[]): Uint8Array => a[Math.floor(r() * a.length)]!;
      if (side < 0.3) {
        // ICMPv4 from an FNAT64 RS's path.
        const types = [3, 3, 3, 11, 12, 0, 8, Math.floor(r() * 256)];
        const type = types[Math.floor(r() * types.length)]!;
        const code = r() < 0.4 ? 4 : Math.floor(r() * 16);
        const mtu = r() < 0.7 ? 576 + Math.floor(r() * 1000) : Math.floor(r() * 65536);
        const dst = r() < 0.9 ? LIP64 : RIP64;
        pkt = icmpPacket(
          ROUTER4,
          dst,
          type,
          code,
          mtu,
          hostileQuote(r, pick(toRs4), 48, 120),
          r() < 0.05,
        );
      } else {
        const fromRs = side < 0.6;
        const types = [1, 1, 1, 2, 2, 3, 4, 128, 129, 135, 136, Math.floor(r() * 256)];
        const type = types[Math.floor(r() * types.length)]!;
        const code = Math.floor(r() * 8);
        const mtu = r() < 0.7 ? 1200 + Math.floor(r() * 400) : Math.floor(r() * 2 ** 32);
        const dst = r() < 0.9 ? (fromRs ? LIP6 : VIP6) : r() < 0.5 ? RIP6 : ROUTER6;
        const quote = hostileQuote(r, fromRs ? pick(toRs6) : pick(toClient), 48, 120);
        pkt = icmp6Packet(ROUTER6, dst, type, code, mtu >>> 0, quote, {
          badChecksum: r() < 0.05,
          ext: r() < 0.1,
        });
      }
      forwarded += feedChecked(e, pkt, `${policy} #${i}`).length;
    }
    const names = [
      'icmp_error_forwarded',
      'icmp_error_no_conn_dropped',
      'icmp_error_family_dropped',
      'icmp_malformed_dropped',
      'icmp_unhandled_dropped',
      'icmp_pmtu_learned',
      'icmp_pmtu_ignored',
    ] as const;
    assertFuzzReached(e, policy, forwarded, 300, names);
    assert.ok(
      e.pathMtu(0) >= 1280 && e.pathMtu(0) <= 1400,
      `${policy}: IPv6 path MTU ${e.pathMtu(0)}`,
    );
    assert.ok(
      e.pathMtu(1) >= 552 && e.pathMtu(1) <= 1400,
      `${policy}: IPv4 path MTU ${e.pathMtu(1)}`,
    );
  }
});

test('random bytes as ICMPv6, with lying lengths and extension headers: no throw, counted once, only echo replies sent', () => {
  const { e } = setup('fullnat');
  const r = rng(0x6e6);
  for (let i = 0; i < 3000; i++) {
    const body = randomBytes(r, 120);
    const pkt = icmp6Packet(
      ROUTER6,
      r() < 0.5 ? LIP6 : VIP6,
      Math.floor(r() * 256),
      Math.floor(r() * 256),
      Math.floor(r() * 2 ** 32) >>> 0,
      body,
      { ext: r() < 0.3 },
    );
    if (r() < 0.2) pkt[5] = Math.floor(r() * 256); // payload length lies
    const out = feedChecked(e, pkt, `random #${i}`);
    for (const b of out) assert.equal(b[40], 129, `random #${i}: only echo replies`);
  }
});

test('an ICMPv6 flood: errors about a live connection and pings to the VIP, at one instant, go out at most a burst', () => {
  const { e, toRs6, toRs4 } = setup('fullnat');
  e.tick(10);
  let out = 0;
  const err6 = icmp6Packet(ROUTER6, LIP6, 1, 4, 0, toRs6[1]!.subarray(0, 68));
  const err4 = icmpPacket(ROUTER4, LIP64, 3, 3, 0, toRs4[1]!.subarray(0, 48));
  const ping = icmp6Packet(clientAddr(0), VIP6, 128, 0, 1, pattern(56));
  for (let i = 0; i < 6000; i++)
    out += feedChecked(e, i % 3 === 0 ? err6 : i % 3 === 1 ? err4 : ping, `flood #${i}`).length;
  // The ICMPv6 error bucket (both families' errors about IPv6 clients) and the echo bucket: 50 each.
  assert.equal(out, 100);
  assert.equal(e.counter('icmp_rate_limited'), 5900);
  // A client segment still goes its way meanwhile.
  const syn = buildSegment6({
    src: clientAddr(20),
    dst: VIP6,
    sport: 1,
    dport: 80,
    seq: 1,
    flags: TCP_SYN,
  });
  assert.equal(feedRaw(e, syn).length, 1);
});

/** UDP flows of IPv6 clients: port 53 to an IPv6 RS, 54 to an IPv4 one (FNAT64); what the LB sent each leg. */
function setupUdp(): Setup {
  const e = new Engine({ maxConnections: 64 });
  const s: Setup = { e, toRs6: [], toRs4: [], toClient: [] };
  const v6Of = (b: Uint8Array): Ipv6Address => Ipv6Address.fromBytes(b);
  e.addService({
    vip: v6Of(VIP6),
    vport: 53,
    protocol: 'UDP',
    scheduler: 'rr',
    laddrs: [v6Of(LIP6)],
    realServers: [{ addr: v6Of(RIP6), port: 5353, weight: 1, mtu: 1400 }],
  });
  e.addService({
    vip: v6Of(VIP6),
    vport: 54,
    protocol: 'UDP',
    scheduler: 'rr',
    laddrs: [LIP64],
    realServers: [{ addr: RIP64, port: 5353, weight: 1, mtu: 1400 }],
  });
  for (let k = 0; k < CONNS; k++) {
    for (const vport of [53, 54]) {
      const sent = vport === 53 ? s.toRs6 : s.toRs4;
      let lport = -1;
      for (const n of [20, 200, 30, 40]) {
        const q = buildUdp6({
          src: clientAddr(k),
          dst: VIP6,
          sport: 30000 + k,
          dport: vport,
          payload: pattern(n),
        });
        for (const o of feedRaw(e, q)) {
          sent.push(o.bytes);
          lport = get16(o.bytes, o.bytes.length - 8 - n);
        }
      }
      assert.ok(lport > 0);
      const answer =
        vport === 53
          ? buildUdp6({ src: RIP6, dst: LIP6, sport: 5353, dport: lport, payload: pattern(9) })
          : buildUdp4({ src: RIP64, dst: LIP64, sport: 5353, dport: lport, payload: pattern(9) });
      for (const o of feedRaw(e, answer)) s.toClient.push(o.bytes);
    }
  }
  assert.equal(s.toClient.length, 2 * CONNS);
  return s;
}

/** Feeds one packet and checks the invariants for errors about UDP flows; returns what went out. */
function feedCheckedUdp(e: Engine, pkt: Uint8Array, what: string): Uint8Array[] {
  const hex = Buffer.from(pkt).toString('hex');
  const out = feedCountedOnce(e, pkt, what);
  const flows = udpFlowKeys(e);
  /** The quoted datagram's source|sport|destination|dport. */
  const quoted = (b: Uint8Array, q: number, alen: 4 | 16, qu: number): string =>
    `${addressKeyAt(b, q + (alen === 4 ? 12 : 8), alen)}|${get16(b, qu)}|` +
    `${addressKeyAt(b, q + (alen === 4 ? 16 : 24), alen)}|${get16(b, qu + 2)}`;
  const backwards = (k: string): string => {
    const [a, ap, b, bp] = k.split('|');
    return `${b}|${bp}|${a}|${ap}`;
  };
  for (const b of out) {
    if (b[0]! >>> 4 === 6) {
      assert.equal(b[6], 58, `${what}: only ICMPv6 comes out of ICMP\n${hex}`);
      assert.equal(get16(b, 4), b.length - 40, `${what}: payload length`);
      assert.ok(icmpv6Ok(b), `${what}: ICMPv6 checksum\n${hex}`);
      const type = b[40]!;
      if (type === 129) {
        assert.equal(pkt[pkt[6] === 58 ? 40 : 48], 128, `${what}: a reply answers a request`);
        continue;
      }
      assert.ok(type < 128, `${what}: an error`);
      assert.ok(b.length <= 1280, `${what}: an ICMPv6 error fits the minimum MTU`);
      const q = 48;
      assert.equal(b[q + 6], 17, `${what}: the quote is UDP, the opp shim out\n${hex}`);
      const k = quoted(b, q, 16, q + 40);
      if (same16(b, 24, RIP6)) {
        assert.ok(same16(b, 8, LIP6));
        assert.ok(flows.rsLeg.has(backwards(k)), `${what}: to the RS about no flow\n${hex}`);
      } else {
        assert.ok(same16(b, 8, VIP6), `${what}: an error goes to a client or an RS`);
        assert.ok(flows.clientLeg.has(k), `${what}: to the client about no flow\n${hex}`);
        assert.ok(same16(b, 24, b.subarray(q + 8, q + 24)), `${what}: to the quote's source`);
      }
    } else {
      assert.equal(b[9], 1, `${what}: only ICMP comes out of ICMP\n${hex}`);
      assert.ok(checksumOk(b, 0, 20), `${what}: outer IP checksum`);
      assert.ok(checksumOk(b, 20, b.length - 20), `${what}: ICMP checksum`);
      assert.ok(b.length <= 576, `${what}: an ICMP error fits 576 bytes`);
      assert.equal(get32(b, 12), LIP64);
      assert.equal(get32(b, 16), RIP64);
      assert.ok(checksumOk(b, 28, 20), `${what}: quoted IP checksum`);
      assert.equal(b[28 + 9], 17, `${what}: the quote is UDP\n${hex}`);
      assert.ok(
        flows.rsLeg.has(backwards(quoted(b, 28, 4, 48))),
        `${what}: to the RS about no flow\n${hex}`,
      );
    }
  }
  return out;
}

test('ICMPv6 and FNAT64 ICMP errors quoting UDP flows (opp and plain quotes; real, truncated, lying, random): no throw, counted once, nothing forwarded about no flow', () => {
  const { e, toRs6, toRs4, toClient } = setupUdp();
  const r = rng(0x1d96);
  let forwarded = 0;
  let now = 0;
  const pick = (a: Uint8Array[]): Uint8Array => a[Math.floor(r() * a.length)]!;
  for (let i = 0; i < 6000; i++) {
    now += 1;
    e.tick(now);
    const side = r();
    let pkt: Uint8Array;
    if (side < 0.3) {
      // ICMPv4 from an FNAT64 RS's path: 20 + 24 (the IPv6 client's shim) + 8 reach the ports.
      const types = [3, 3, 3, 11, 12, 0, 8, Math.floor(r() * 256)];
      const type = types[Math.floor(r() * types.length)]!;
      const code = r() < 0.4 ? 3 : r() < 0.5 ? 4 : Math.floor(r() * 16);
      const mtu = r() < 0.7 ? 576 + Math.floor(r() * 1000) : Math.floor(r() * 65536);
      const dst = r() < 0.9 ? LIP64 : RIP64;
      const quote = hostileQuote(r, pick(toRs4), 60, 120);
      pkt = icmpPacket(r() < 0.5 ? RIP64 : ROUTER4, dst, type, code, mtu, quote, r() < 0.05);
    } else {
      const fromRs = side < 0.65;
      const types = [1, 1, 1, 2, 2, 3, 4, 128, 129, 135, Math.floor(r() * 256)];
      const type = types[Math.floor(r() * types.length)]!;
      const code = r() < 0.4 ? 4 : Math.floor(r() * 8);
      const mtu = r() < 0.7 ? 1200 + Math.floor(r() * 400) : Math.floor(r() * 2 ** 32);
      const dst = r() < 0.9 ? (fromRs ? LIP6 : VIP6) : r() < 0.5 ? RIP6 : ROUTER6;
      const quote = hostileQuote(r, fromRs ? pick(toRs6) : pick(toClient), 72, 120);
      pkt = icmp6Packet(r() < 0.5 ? RIP6 : ROUTER6, dst, type, code, mtu >>> 0, quote, {
        badChecksum: r() < 0.05,
        ext: r() < 0.1,
      });
    }
    forwarded += feedCheckedUdp(e, pkt, `udp #${i}`).length;
  }
  assertFuzzReached(e, 'udp', forwarded, 300, [
    'icmp_error_forwarded',
    'icmp_error_no_conn_dropped',
    'icmp_error_family_dropped',
    'icmp_malformed_dropped',
    'icmp_unhandled_dropped',
    'icmp_pmtu_learned',
    'icmp_pmtu_ignored',
  ]);
  assert.ok(e.pathMtu(0) >= 1280 && e.pathMtu(0) <= 1400, `udp: IPv6 path MTU ${e.pathMtu(0)}`);
  assert.ok(e.pathMtu(1) >= 552 && e.pathMtu(1) <= 1400, `udp: IPv4 path MTU ${e.pathMtu(1)}`);
});
