/**
 * The IPv6 fixed header on the data path's fast way (no extension header):
 * the payload length checked against what arrived, link-layer padding cut
 * off, and a reply to a LIP found without the LIP set (a segment to a LIP
 * with no connection still gets its RST, one to an unknown address none).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { TCP_ACK, TCP_RST, TCP_SYN } from '../../src/wire/tcp.js';
import { feedRaw } from '../support/engine-fixture.js';
import { buildSegment6, v6 } from '../support/packets.js';

const VIP = v6('2001:db8::100');
const CIP = v6('2001:db8:c::1');
const LIP = v6('2001:db8:1::1');
const RIP = v6('2001:db8:2::10');

function makeEngine(): Engine {
  const e = new Engine({ toaPolicy: 'fullnat', maxConnections: 16, isnSecret: 3 });
  e.addService({
    vip: Ipv6Address.fromBytes(VIP),
    vport: 80,
    scheduler: 'rr',
    laddrs: [Ipv6Address.fromBytes(LIP)],
    realServers: [{ addr: Ipv6Address.fromBytes(RIP), port: 8080, weight: 1 }],
  });
  return e;
}

const syn = (): Uint8Array =>
  buildSegment6({ src: CIP, dst: VIP, sport: 40000, dport: 80, seq: 1, flags: TCP_SYN });

test('a payload length beyond the bytes that arrived: malformed, dropped, nothing sent', () => {
  const e = makeEngine();
  const b = syn();
  b[5] = b[5]! + 1;
  assert.equal(feedRaw(e, b).length, 0);
  assert.equal(e.counter('malformed_dropped'), 1);
  assert.equal(e.counter('conns_created'), 0);
  // Shorter than the fixed header itself.
  assert.equal(feedRaw(e, b.subarray(0, 39)).length, 0);
  assert.equal(e.counter('malformed_dropped'), 2);
});

test('link-layer padding after the datagram is cut off before forwarding', () => {
  const e = makeEngine();
  const b = syn();
  const padded = new Uint8Array(b.length + 6);
  padded.set(b);
  padded.fill(0xee, b.length);
  const out = feedRaw(e, padded);
  assert.equal(out.length, 1);
  const sent = out[0]!.bytes;
  assert.equal(
    sent.length,
    40 + ((sent[4]! << 8) | sent[5]!),
    'length is the payload length, padding gone',
  );
  assert.equal(e.counter('conns_created'), 1);
});

test('RS → LIP: a known connection translates; an unknown one gets the RST; an unknown address is no service', () => {
  const e = makeEngine();
  const out = feedRaw(e, syn());
  const toRs = out[0]!.bytes;
  const lport = (toRs[40]! << 8) | toRs[41]!;
  const rsSeq = 5000;
  const isn = ((toRs[44]! << 24) | (toRs[45]! << 16) | (toRs[46]! << 8) | toRs[47]!) >>> 0;
  const synAck = buildSegment6({
    src: RIP,
    dst: LIP,
    sport: 8080,
    dport: lport,
    seq: rsSeq,
    ack: (isn + 1) >>> 0,
    flags: TCP_SYN | TCP_ACK,
  });
  const back = feedRaw(e, synAck);
  assert.equal(back.length, 1);
  assert.deepEqual([...back[0]!.bytes.subarray(8, 24)], [...VIP]);
  assert.deepEqual([...back[0]!.bytes.subarray(24, 40)], [...CIP]);
  assert.equal(e.counter('outbound_packets'), 1);

  const stray = buildSegment6({
    src: RIP,
    dst: LIP,
    sport: 8080,
    dport: lport ^ 1,
    seq: 9,
    ack: 7,
    flags: TCP_ACK,
  });
  const rst = feedRaw(e, stray);
  assert.equal(rst.length, 1, 'the RST its host would send');
  assert.equal(rst[0]!.bytes[40 + 13]! & TCP_RST, TCP_RST);
  assert.equal(e.counter('outbound_packets'), 2);

  const elsewhere = buildSegment6({
    src: RIP,
    dst: v6('2001:db8:9::9'),
    sport: 8080,
    dport: lport,
    seq: 9,
    ack: 7,
    flags: TCP_ACK,
  });
  assert.equal(feedRaw(e, elsewhere).length, 0);
  assert.equal(e.counter('no_service_dropped'), 1);
  assert.equal(e.counter('outbound_packets'), 2);
});
