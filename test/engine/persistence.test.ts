/**
 * Client persistence (persistence.ts) through the engine: the RS a client's
 * new connections reach, under rr (which would otherwise alternate), for
 * IPv4 and IPv6 clients, TCP and UDP; the granularity grouping a network;
 * a template's expiry after its timeout once its connections are gone, and
 * its life while one is open; an RS removed or quiesced; templates listed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import type { ServiceConfig } from '../../src/engine/options.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { TCP_ACK, TCP_SYN } from '../../src/wire/tcp.js';
import { feedRaw } from '../support/engine-fixture.js';
import { buildSegment, buildSegment6, v6 } from '../support/packets.js';
import { buildUdp4 } from '../support/udp-packets.js';

const VIP = parseIpv4('192.0.2.100');
const LIP = parseIpv4('10.10.3.1');
const RS_A = parseIpv4('10.10.2.2');
const RS_B = parseIpv4('10.10.2.3');
const CLIENT = parseIpv4('203.0.113.7');
const VIP6 = v6('2001:db8::100');
const LIP6 = v6('2001:db8:1::1');
const RS6_A = v6('2001:db8:2::10');
const RS6_B = v6('2001:db8:2::11');

/** SYN_RECV lives 1 s here, so a connection left alone ends soon and its template is free to go. */
const TIMEOUTS = {
  SYN_SENT: 1,
  SYN_RECV: 1,
  ESTABLISHED: 60,
  FIN_WAIT: 1,
  TIME_WAIT: 1,
  CLOSE: 1,
  CLOSE_WAIT: 1,
  LAST_ACK: 1,
};

function engine(svc: Partial<ServiceConfig> = {}, v6Service = false): Engine {
  const e = new Engine({ toaPolicy: 'fullnat', maxConnections: 4096, timeouts: TIMEOUTS });
  e.addService(
    v6Service
      ? {
          vip: Ipv6Address.fromBytes(VIP6),
          vport: 80,
          scheduler: 'rr',
          laddrs: [Ipv6Address.fromBytes(LIP6)],
          realServers: [
            { addr: Ipv6Address.fromBytes(RS6_A), port: 8080, weight: 1 },
            { addr: Ipv6Address.fromBytes(RS6_B), port: 8080, weight: 1 },
          ],
          ...svc,
        }
      : {
          vip: VIP,
          vport: 80,
          scheduler: 'rr',
          laddrs: [LIP],
          realServers: [
            { addr: RS_A, port: 8080, weight: 1 },
            { addr: RS_B, port: 8080, weight: 1 },
          ],
          ...svc,
        },
  );
  return e;
}

/** A client SYN (IPv4) at `now`: the RS address it was sent to ('' when nothing went to an RS). */
function syn(e: Engine, src: number, sport: number, now?: number): number {
  const out = feedRaw(
    e,
    buildSegment({ src, dst: VIP, sport, dport: 80, seq: 1000, ack: 0, flags: TCP_SYN }),
    now,
  );
  assert.equal(out.length, 1, 'one SYN toward an RS');
  const b = out[0]!.bytes;
  return ((b[16]! << 24) | (b[17]! << 16) | (b[18]! << 8) | b[19]!) >>> 0;
}

/** The same for an IPv6 client: the RS address's text. */
function syn6(e: Engine, src: Uint8Array, sport: number): string {
  const out = feedRaw(
    e,
    buildSegment6({ src, dst: VIP6, sport, dport: 80, seq: 1000, ack: 0, flags: TCP_SYN }),
  );
  assert.equal(out.length, 1, 'one SYN toward an RS');
  return Ipv6Address.fromBytes(out[0]!.bytes.slice(24, 40)).text;
}

const PERSIST = { persistenceTimeout: 2 };

describe('persistence: one client, one RS', () => {
  it('1,000 connections from one client land on one RS (rr alone would alternate)', () => {
    const e = engine(PERSIST);
    const seen = new Map<number, number>();
    for (let i = 0; i < 1000; i++) {
      const rs = syn(e, CLIENT, 10000 + i);
      seen.set(rs, (seen.get(rs) ?? 0) + 1);
    }
    assert.deepEqual([...seen.values()], [1000], 'every connection to one RS');
    assert.equal(e.templateCount, 1);
    assert.equal(e.counter('persistence_templates_created'), 1);
    assert.equal(e.counter('persistence_template_hits'), 999);
    // Control: the same without persistence alternates.
    const plain = engine();
    const rs1 = syn(plain, CLIENT, 10000);
    const rs2 = syn(plain, CLIENT, 10001);
    assert.notEqual(rs1, rs2, 'rr without persistence alternates');
    assert.equal(plain.templateCount, 0);
  });

  it('different clients spread as the scheduler spreads them', () => {
    const e = engine(PERSIST);
    const perRs = new Map<number, number>();
    for (let i = 1; i <= 100; i++) {
      const client = (parseIpv4('198.51.100.0') + i) >>> 0;
      const first = syn(e, client, 20000);
      // Each client's second connection follows its first.
      assert.equal(syn(e, client, 20001), first, `client ${i} stays`);
      perRs.set(first, (perRs.get(first) ?? 0) + 1);
    }
    assert.deepEqual([...perRs.values()].sort(), [50, 50]);
    assert.equal(e.templateCount, 100);
  });

  it('a granularity mask groups a /24: one template, one RS; another /24 gets the next RS', () => {
    const e = engine({ ...PERSIST, persistenceGranularity: parseIpv4('255.255.255.0') });
    const net1 = parseIpv4('198.51.100.0');
    const net2 = parseIpv4('198.51.101.0');
    const first = syn(e, (net1 + 1) >>> 0, 30000);
    for (let h = 2; h < 255; h++)
      assert.equal(syn(e, (net1 + h) >>> 0, 30000), first, `host .${h}`);
    const other = syn(e, (net2 + 9) >>> 0, 30000);
    assert.notEqual(other, first, 'the next network is scheduled: rr moves on');
    assert.equal(e.templateCount, 2);
    const t = e.listTemplates().find((x) => x.client === net1);
    assert.ok(t, 'the template names the masked client network');
    assert.equal(t.rip, first);
    assert.equal(t.rport, 8080);
    assert.equal(t.vport, 80);
  });
});

describe('persistence: a template expires', () => {
  it('after its timeout once its connections ended, and scheduling resumes', () => {
    const e = engine(PERSIST);
    const first = syn(e, CLIENT, 40000, 0);
    // The connection (SYN_RECV, 1 s) ends at about 1 s; the template lives to 2 s.
    e.tick(1500);
    assert.equal(e.connectionCount, 0, 'the connection expired');
    assert.equal(e.templateCount, 1, 'the template outlives it until its timeout');
    assert.equal(syn(e, CLIENT, 40001, 1600), first, 'before the timeout: same RS');
    // The second connection ends at about 2.6 s; the template then has its 2 s timeout.
    e.tick(3000);
    assert.equal(e.connectionCount, 0);
    assert.equal(e.templateCount, 1, 'a full timeout after its last connection ended');
    e.tick(5000);
    assert.equal(e.templateCount, 0, 'idle past its timeout: gone');
    assert.equal(e.counter('persistence_templates_expired'), 1);
    assert.notEqual(syn(e, CLIENT, 40002, 5100), first, 'scheduled afresh: rr picks the other RS');
  });

  it('is kept alive by a connection it controls, past its timeout', () => {
    const e = new Engine({
      toaPolicy: 'fullnat',
      maxConnections: 64,
      timeouts: { ...TIMEOUTS, SYN_RECV: 10 },
    });
    e.addService({
      vip: VIP,
      vport: 80,
      scheduler: 'rr',
      laddrs: [LIP],
      realServers: [
        { addr: RS_A, port: 8080, weight: 1 },
        { addr: RS_B, port: 8080, weight: 1 },
      ],
      persistenceTimeout: 2,
    });
    const first = syn(e, CLIENT, 41000, 0);
    for (let t = 500; t <= 6000; t += 500) e.tick(t);
    assert.equal(e.connectionCount, 1, 'the connection is open (SYN_RECV, 10 s)');
    assert.equal(e.templateCount, 1, 'its template stays past the 2 s timeout');
    assert.equal(syn(e, CLIENT, 41001, 6100), first, 'a new connection follows it');
    // Both connections end by 16.1 s; the template then lasts one more timeout.
    for (let t = 6500; t <= 17000; t += 500) e.tick(t);
    assert.equal(e.connectionCount, 0);
    assert.equal(e.templateCount, 1, 'still there within the timeout after its last connection');
    for (let t = 17500; t <= 20000; t += 500) e.tick(t);
    assert.equal(e.connectionCount, 0);
    assert.equal(e.templateCount, 0, 'gone once its connections and its timeout are');
  });
});

describe('persistence: the RS goes', () => {
  it('a removed RS: the client is scheduled afresh and the template follows the new RS', () => {
    const e = engine(PERSIST);
    const first = syn(e, CLIENT, 42000);
    const idx = e.findRealServer(0, first, 8080);
    e.removeRealServer(idx);
    const next = syn(e, CLIENT, 42001);
    assert.notEqual(next, first);
    assert.equal(syn(e, CLIENT, 42002), next, 'and stays there');
    const ts = e.listTemplates();
    assert.equal(ts.length, 1);
    assert.equal(ts[0]!.rip, next);
  });

  it('a quiesced RS (weight 0): the client is scheduled afresh', () => {
    const e = engine(PERSIST);
    const first = syn(e, CLIENT, 43000);
    e.setWeight(e.findRealServer(0, first, 8080), 0);
    const next = syn(e, CLIENT, 43001);
    assert.notEqual(next, first);
    assert.equal(syn(e, CLIENT, 43002), next);
  });

  it('persistence switched off: the templates go and rr alternates again', () => {
    const e = engine(PERSIST);
    syn(e, CLIENT, 44000, 0);
    e.setPersistence(0, 0);
    assert.equal(e.listTemplates().length, 0, 'out of the index at once');
    assert.equal(e.templateCount, 1, 'held until the connection it controls goes');
    e.tick(1500);
    assert.equal(e.connectionCount, 0);
    assert.equal(e.templateCount, 0, 'freed with it');
    assert.notEqual(syn(e, CLIENT, 44001), syn(e, CLIENT, 44002));
    e.setPersistence(0, 5);
    const a = syn(e, CLIENT, 44003);
    assert.equal(syn(e, CLIENT, 44004), a, 'on again');
  });

  it('refuses a timeout or granularity out of range', () => {
    const e = engine();
    assert.throws(() => e.setPersistence(0, 86400 * 31 + 1), /persistence timeout/);
    const e6 = engine({}, true);
    assert.throws(() => e6.setPersistence(0, 10, 129), /prefix length/);
  });
});

describe('persistence: SYNPROXY', () => {
  it('the template is consulted when the cookie ACK opens the RS leg', () => {
    const e = engine({ ...PERSIST, synProxy: true });
    const rsOf = (sport: number): number => {
      const synAck = feedRaw(
        e,
        buildSegment({
          src: CLIENT,
          dst: VIP,
          sport,
          dport: 80,
          seq: 5000,
          ack: 0,
          flags: TCP_SYN,
        }),
      );
      assert.equal(synAck.length, 1, 'the LB answers the SYN itself');
      const b = synAck[0]!.bytes;
      const cookie = ((b[24]! << 24) | (b[25]! << 16) | (b[26]! << 8) | b[27]!) >>> 0;
      assert.equal(e.templateCount, sport === 60000 ? 0 : 1, 'no template for a bare SYN');
      const out = feedRaw(
        e,
        buildSegment({
          src: CLIENT,
          dst: VIP,
          sport,
          dport: 80,
          seq: 5001,
          ack: (cookie + 1) >>> 0,
          flags: TCP_ACK,
        }),
      );
      assert.equal(out.length, 1, 'the SYN toward the RS');
      const o = out[0]!.bytes;
      return ((o[16]! << 24) | (o[17]! << 16) | (o[18]! << 8) | o[19]!) >>> 0;
    };
    const first = rsOf(60000);
    for (let i = 1; i < 20; i++) assert.equal(rsOf(60000 + i), first, `connection ${i}`);
    assert.equal(e.templateCount, 1);
    assert.equal(e.counter('persistence_template_hits'), 19);
  });
});

describe('persistence: IPv6 and UDP', () => {
  it('IPv6 clients: one client to one RS; a /64 granularity groups its network', () => {
    const e = engine({ ...PERSIST, persistenceGranularity: 64 }, true);
    const first = syn6(e, v6('2001:db8:c::1'), 50000);
    for (let i = 1; i < 200; i++)
      assert.equal(syn6(e, v6('2001:db8:c::1'), 50000 + i), first, `connection ${i}`);
    assert.equal(syn6(e, v6('2001:db8:c::ffff:2'), 50000), first, 'same /64');
    assert.notEqual(syn6(e, v6('2001:db8:d::1'), 50000), first, 'another /64: rr moves on');
    assert.equal(e.templateCount, 2);
    assert.equal(
      e
        .listTemplates()
        .some((x) => typeof x.client !== 'number' && x.client.text === '2001:db8:c::'),
      true,
      'the template names the /64',
    );
  });

  it('UDP flows of one client land on one RS', () => {
    const e = new Engine({ toaPolicy: 'fullnat', maxConnections: 256 });
    e.addService({
      vip: VIP,
      vport: 53,
      protocol: 'UDP',
      scheduler: 'rr',
      laddrs: [LIP],
      realServers: [
        { addr: RS_A, port: 53, weight: 1 },
        { addr: RS_B, port: 53, weight: 1 },
      ],
      persistenceTimeout: 60,
    });
    const seen = new Set<number>();
    for (let i = 0; i < 50; i++) {
      const out = feedRaw(
        e,
        buildUdp4({
          src: CLIENT,
          dst: VIP,
          sport: 30000 + i,
          dport: 53,
          payload: new Uint8Array(8),
        }),
      );
      assert.equal(out.length, 1);
      const b = out[0]!.bytes;
      seen.add(((b[16]! << 24) | (b[17]! << 16) | (b[18]! << 8) | b[19]!) >>> 0);
    }
    assert.equal(seen.size, 1, 'one RS for every flow');
    assert.equal(e.listTemplates()[0]!.protocol, 'UDP');
  });
});
