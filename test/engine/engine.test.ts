import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import { GSO_BUFFER_SIZE, PacketPool } from '../../src/engine/packet.js';
import type { EngineOptions, ToaPolicy } from '../../src/engine/options.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { Ipv4View } from '../../src/wire/ipv4.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../src/wire/tcp.js';
import {
  TCPOPT_NOP,
  TCPOPT_SACK,
  TCPOPT_TIMESTAMP,
  opt,
  type TcpOption,
} from '../../src/wire/tcp-options.js';
import { toaV4Option } from '../../src/wire/toa.js';
import { buildSegment, pattern } from '../support/packets.js';
import { decodeSegment, type Decoded } from '../support/decode.js';
import {
  CIP,
  CISN,
  CPORT,
  LINUX_SYN_OPTS,
  LIP,
  RIP,
  RISN,
  VIP,
  clientSegment,
  decodeChecked,
  feedRaw,
  newTestEngine,
  rsSegment,
} from '../support/engine-fixture.js';

const decode = decodeSegment;

function makeEngine(
  policy: ToaPolicy,
  extra: Partial<EngineOptions> = {},
  rsMtu = 1500,
  pool?: PacketPool,
): Engine {
  return newTestEngine({ toaPolicy: policy, maxConnections: 64, ...extra }, { rsMtu }, pool);
}

/**
 * Feeds one packet (a GSO super-packet of `gsoSize`-byte segments if given)
 * and returns the decoded outputs with their gso_size, checking each one's checksums.
 */
function feed(
  e: Engine,
  bytes: Uint8Array,
  now = 0,
  gsoSize = 0,
  csumPartial = false,
): (Decoded & { gso: number })[] {
  return feedRaw(e, bytes, now, (p) => {
    p.gsoSize = gsoSize;
    p.gsoType = gsoSize > 0 ? 1 : 0;
    if (csumPartial) {
      // As the kernel hands a super-packet over: the field is not a checksum of the segment.
      p.csumPartial = true;
      p.buf[p.start + 36] = 0x12;
      p.buf[p.start + 37] = 0x34;
    }
  }).map((o) => ({ ...decodeChecked(o), gso: o.gso }));
}

function client(
  seq: number,
  ack: number,
  flags: number,
  payload?: Uint8Array,
  options?: TcpOption[],
): Uint8Array {
  return clientSegment({ seq, ack, flags, payload, options });
}

/** SYN → RS, SYN+ACK ← RS; returns the LB→RS ISN and the LIP port. */
function handshake(e: Engine, rsMss = 1460): { lbIsn: number; lport: number; synAck: Decoded } {
  const [syn] = feed(e, client(CISN, 0, TCP_SYN, undefined, LINUX_SYN_OPTS));
  assert.ok(syn);
  const synAckIn = rsSegment({
    lport: syn.sport,
    seq: RISN,
    ack: syn.seq + 1,
    flags: TCP_SYN | TCP_ACK,
    options: [opt.mss(rsMss), opt.nop(), opt.nop(), opt.sackPermitted(), opt.nop(), opt.wscale(7)],
  });
  const [synAck] = feed(e, synAckIn);
  assert.ok(synAck);
  return { lbIsn: syn.seq, lport: syn.sport, synAck };
}

test('SYN is rewritten to LIP→RIP with a fresh ISN and its timestamp NOPed', () => {
  const e = makeEngine('fullnat');
  const out = feed(e, client(CISN, 0, TCP_SYN, undefined, LINUX_SYN_OPTS));
  assert.equal(out.length, 1);
  const s = out[0]!;
  assert.equal(s.src, LIP);
  assert.equal(s.dst, RIP);
  assert.equal(s.dport, 8080);
  assert.ok(s.sport >= 5000 && s.sport <= 65535);
  assert.notEqual(s.seq, CISN);
  assert.equal(s.toa.family, 0, 'fullnat puts no TOA on the SYN');
  assert.ok(!s.options.some((o) => o.kind === TCPOPT_TIMESTAMP));
  assert.equal(s.options.filter((o) => o.kind === TCPOPT_NOP).length, 11);
  assert.equal(e.counter('timestamp_removed'), 1);
});

test('lvs policy puts a TOA on the SYN too', () => {
  const e = makeEngine('lvs');
  const [s] = feed(e, client(CISN, 0, TCP_SYN, undefined, LINUX_SYN_OPTS));
  assert.equal(s!.toa.family, 4);
  assert.equal(s!.toa.v4, CIP);
  assert.equal(s!.toa.port, CPORT);
});

test('RS SYN+ACK: MSS lowered by the TOA length, ack mapped back, addresses VIP→CIP', () => {
  const e = makeEngine('fullnat');
  const { synAck } = handshake(e);
  assert.equal(synAck.src, VIP);
  assert.equal(synAck.sport, 80);
  assert.equal(synAck.dst, CIP);
  assert.equal(synAck.dport, CPORT);
  assert.equal(synAck.ack, CISN + 1);
  assert.equal(synAck.seq, RISN);
  const mss = synAck.options.find((o) => o.kind === 2)!;
  assert.equal((mss.data[0]! << 8) | mss.data[1]!, 1452);
});

test('fullnat clamps the MSS to what the RS path MTU leaves room for', () => {
  const e = makeEngine('fullnat', {}, 1400);
  const { synAck } = handshake(e);
  const mss = synAck.options.find((o) => o.kind === 2)!;
  assert.equal((mss.data[0]! << 8) | mss.data[1]!, 1400 - 40 - 8);
});

test('bare ACK and data carry the client address in a TOA until the RS sends data', () => {
  const e = makeEngine('fullnat');
  const { lbIsn } = handshake(e);
  const [ackOut] = feed(e, client(CISN + 1, RISN + 1, TCP_ACK));
  assert.equal(ackOut!.toa.family, 4);
  assert.equal(ackOut!.toa.v4, CIP);
  assert.equal(ackOut!.toa.port, CPORT);
  assert.equal(ackOut!.seq, lbIsn + 1);
  assert.equal(ackOut!.options[0]!.kind, 254, 'our TOA comes first');
  const req = pattern(300);
  const [dataOut] = feed(e, client(CISN + 1, RISN + 1, TCP_ACK | TCP_PSH, req));
  assert.equal(dataOut!.toa.v4, CIP);
  assert.deepEqual(dataOut!.payload, req);
  // The RS answers with data; the client's ack moves past fdata_seq: no more TOA.
  feed(
    e,
    rsSegment({
      lport: ackOut!.sport,
      seq: RISN + 1,
      ack: lbIsn + 301,
      flags: TCP_ACK,
      payload: pattern(100),
    }),
  );
  const [later] = feed(e, client(CISN + 301, RISN + 101, TCP_ACK));
  assert.equal(later!.toa.family, 0);
  assert.equal(e.counter('toa_inserted'), 2);
});

test('FIN+ACK+data: lvs skips it, dpvs and fullnat insert', () => {
  for (const [policy, expected] of [
    ['lvs', 0],
    ['dpvs', 4],
    ['fullnat', 4],
  ] as const) {
    const e = makeEngine(policy);
    handshake(e);
    const [out] = feed(e, client(CISN + 1, RISN + 1, TCP_ACK | TCP_PSH | TCP_FIN, pattern(200)));
    assert.equal(out!.toa.family, expected, policy);
    assert.equal(out!.flags & TCP_FIN, TCP_FIN);
  }
});

test('over-MSS segment: lvs/dpvs give up, fullnat splits into pieces that each carry the TOA', () => {
  const payload = pattern(1460);
  for (const policy of ['lvs', 'dpvs'] as const) {
    const e = makeEngine(policy);
    handshake(e);
    const out = feed(e, client(CISN + 1, RISN + 1, TCP_ACK | TCP_PSH, payload));
    assert.equal(out.length, 1);
    assert.equal(out[0]!.toa.family, 0, policy);
    assert.equal(e.counter('toa_failed_mtu'), 1);
  }
  const e = makeEngine('fullnat');
  const { lbIsn } = handshake(e);
  const out = feed(e, client(CISN + 1, RISN + 1, TCP_ACK | TCP_PSH | TCP_FIN, payload));
  assert.equal(out.length, 2);
  for (const piece of out) {
    assert.equal(piece.toa.v4, CIP);
    assert.ok(piece.bytes.length <= 1500);
    assert.ok(
      piece.payload.length > 0,
      'every piece carries data, so TCP_DEFER_ACCEPT cannot drop it',
    );
  }
  assert.equal(out[0]!.seq, lbIsn + 1);
  assert.equal(out[1]!.seq, lbIsn + 1 + out[0]!.payload.length);
  assert.equal(out[0]!.flags & (TCP_FIN | TCP_PSH), 0);
  assert.equal(out[1]!.flags & (TCP_FIN | TCP_PSH), TCP_FIN | TCP_PSH);
  assert.deepEqual(Buffer.concat([out[0]!.payload, out[1]!.payload]), Buffer.from(payload));
  assert.equal(e.counter('toa_split'), 1);
});

test('GSO super-packet: the TOA goes in once and the kernel cuts segments that each fit the RS path', () => {
  // fullnat told the client MSS 1452 (1500 - 40 - TOA): its super-packets have room for the TOA in every segment.
  const e = makeEngine('fullnat', {}, 1500, new PacketPool(16, GSO_BUFFER_SIZE));
  const { lbIsn } = handshake(e);
  const payload = pattern(3 * 1452 + 100);
  const out = feed(e, client(CISN + 1, RISN + 1, TCP_ACK | TCP_PSH, payload), 0, 1452);
  assert.equal(out.length, 1, 'one super-packet out, not a software split');
  const o = out[0]!;
  assert.equal(o.toa.v4, CIP);
  assert.equal(o.toa.port, CPORT);
  assert.equal(o.gso, 1452, 'gso_size unchanged: 20 + 28 + 1452 = 1500');
  assert.equal(o.seq, lbIsn + 1);
  assert.deepEqual(o.payload, payload);
  assert.equal(e.counter('toa_inserted'), 1);
  assert.equal(e.counter('toa_split'), 0);
});

test('GSO super-packet whose segments leave no room for the TOA: fullnat shrinks gso_size, lvs/dpvs forward without', () => {
  // A client that ignores the clamped MSS sends 1460-byte segments: 40 + 1460 fills the MTU.
  const payload = pattern(4 * 1460);
  for (const policy of ['lvs', 'dpvs'] as const) {
    const e = makeEngine(policy, {}, 1500, new PacketPool(16, GSO_BUFFER_SIZE));
    handshake(e);
    const out = feed(e, client(CISN + 1, RISN + 1, TCP_ACK, payload), 0, 1460);
    assert.equal(out.length, 1, policy);
    assert.equal(out[0]!.toa.family, 0, policy);
    assert.equal(out[0]!.gso, 1460, policy);
    assert.equal(e.counter('toa_failed_mtu'), 1, policy);
    assert.equal(e.counter('icmp_frag_needed_sent'), 0, 'each segment still fits: no ICMP');
  }
  const e = makeEngine('fullnat', {}, 1500, new PacketPool(16, GSO_BUFFER_SIZE));
  handshake(e);
  const out = feed(e, client(CISN + 1, RISN + 1, TCP_ACK, payload), 0, 1460);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.toa.v4, CIP);
  assert.equal(out[0]!.gso, 1500 - 20 - 28, 'segments of 1452 bytes: each fits with the TOA');
  assert.deepEqual(out[0]!.payload, payload);
  assert.equal(e.counter('toa_gso_resized'), 1);
});

for (const partial of [false, true])
  test(`GSO super-packet at the IPv4 length limit${partial ? ', checksum left partial by the kernel' : ''}: no room to grow, so fullnat splits it in software`, () => {
    const e = makeEngine('fullnat', {}, 1500, new PacketPool(64, GSO_BUFFER_SIZE));
    const { lbIsn } = handshake(e);
    const payload = pattern(65535 - 40);
    // feed() checks every piece's checksum: a partial one must have been completed, not trusted or dropped.
    const out = feed(e, client(CISN + 1, RISN + 1, TCP_ACK, payload), 0, 1452, partial);
    assert.equal(out.length, Math.ceil(payload.length / 1452));
    let seq = lbIsn + 1;
    for (const piece of out) {
      assert.equal(piece.toa.v4, CIP);
      assert.equal(piece.gso, 0);
      assert.ok(piece.bytes.length <= 1500);
      assert.equal(piece.seq, seq >>> 0);
      seq += piece.payload.length;
    }
    assert.equal(seq - lbIsn - 1, payload.length);
    assert.equal(e.counter('toa_split'), 1);
  });

test('a GSO super-packet too big per segment, with no TOA to add, gets ICMP frag-needed for its segment size', () => {
  const e = makeEngine('fullnat', {}, 1400, new PacketPool(16, GSO_BUFFER_SIZE));
  const { lbIsn, lport } = handshake(e);
  // Past the handshake: the RS acked data, so no TOA is wanted.
  feed(
    e,
    rsSegment({
      lport,
      seq: RISN + 1,
      ack: lbIsn + 1,
      flags: TCP_ACK,
      payload: pattern(10),
    }),
  );
  const fits = feed(e, client(CISN + 1, RISN + 11, TCP_ACK, pattern(4 * 1360)), 0, 1360);
  assert.equal(fits.length, 1);
  assert.equal(fits[0]!.gso, 1360);
  assert.equal(fits[0]!.toa.family, 0);
  const p = e.pool.take();
  p.load(client(CISN + 1 + 4 * 1360, RISN + 11, TCP_ACK, pattern(4 * 1400)));
  p.gsoSize = 1400;
  e.process(p);
  assert.equal(e.outCount, 1);
  const icmp = e.out[0]!.view().slice();
  e.pool.give(e.out[0]!);
  e.clearOutput();
  assert.equal(icmp[9], 1);
  // Under fullnat: the path's 1400 less the TOA's 8, the room the LB needs on the packets that carry one.
  assert.equal((icmp[26]! << 8) | icmp[27]!, 1400 - 8);
});

test('full option space: lvs fails, dpvs and fullnat prune', () => {
  const sack = opt.sack([
    [RISN + 10, RISN + 20],
    [RISN + 30, RISN + 40],
    [RISN + 50, RISN + 60],
  ]);
  const unknown: TcpOption = { kind: 79, data: pattern(10) };
  const options = [opt.nop(), opt.nop(), sack, unknown];
  for (const [policy, family] of [
    ['lvs', 0],
    ['dpvs', 4],
    ['fullnat', 4],
  ] as const) {
    const e = makeEngine(policy);
    handshake(e);
    const req = pattern(300);
    const [out] = feed(e, client(CISN + 1, RISN + 1, TCP_ACK | TCP_PSH, req, options));
    assert.equal(out!.toa.family, family, policy);
    assert.deepEqual(out!.payload, req);
    if (family === 4) {
      assert.equal(e.counter('toa_pruned'), 1);
      assert.ok(!out!.options.some((o) => o.kind === TCPOPT_SACK));
    } else {
      assert.equal(e.counter('toa_failed_no_room'), 1);
    }
  }
});

test('a client-supplied TOA is stripped under fullnat, and ours is read first under every policy', () => {
  const forged = toaV4Option(6666, parseIpv4('6.6.6.6'));
  for (const policy of ['lvs', 'dpvs', 'fullnat'] as const) {
    const e = makeEngine(policy);
    handshake(e);
    const [out] = feed(e, client(CISN + 1, RISN + 1, TCP_ACK | TCP_PSH, pattern(100), [forged]));
    assert.equal(out!.toa.v4, CIP, policy);
    const forgedStill = out!.options.filter((o) => o.kind === 254).length;
    assert.equal(forgedStill, policy === 'fullnat' ? 1 : 2, policy);
  }
});

test('oversized packet without room for a TOA gets ICMP frag-needed (DF) under dpvs', () => {
  const e = makeEngine('dpvs', {}, 1400);
  handshake(e);
  const p = e.pool.take();
  const big = client(CISN + 1, RISN + 1, TCP_ACK, pattern(1452));
  p.load(big);
  e.process(p);
  assert.equal(e.outCount, 1);
  const icmp = e.out[0]!.view().slice();
  e.clearOutput();
  const ip = new Ipv4View().wrap(icmp, 0);
  assert.equal(ip.protocol, 1);
  assert.equal(ip.dst, CIP);
  assert.equal(ip.computeChecksum(), ip.checksum);
  assert.equal(icmp[20], 3);
  assert.equal(icmp[21], 4);
  assert.equal((icmp[26]! << 8) | icmp[27]!, 1400);
  assert.deepEqual(
    icmp.subarray(28, 48),
    big.subarray(0, 20),
    'quotes the packet as the client sent it',
  );
  assert.equal(e.counter('icmp_frag_needed_sent'), 1);
  assert.equal(e.counter('toa_failed_mtu'), 1);
});

test('RS SACK blocks are mapped back into the client sequence space', () => {
  const e = makeEngine('fullnat');
  const { lbIsn, lport } = handshake(e);
  const [out] = feed(
    e,
    rsSegment({
      lport,
      seq: RISN + 1,
      ack: lbIsn + 1,
      flags: TCP_ACK,
      options: [opt.nop(), opt.nop(), opt.sack([[lbIsn + 101, lbIsn + 201]])],
    }),
  );
  const s = out!.options.find((o) => o.kind === TCPOPT_SACK)!;
  const dv = new DataView(s.data.buffer, s.data.byteOffset);
  assert.equal(dv.getUint32(0), CISN + 101);
  assert.equal(dv.getUint32(4), CISN + 201);
});

test('established connection expiry sends RST both ways and frees the port', () => {
  const e = makeEngine('fullnat');
  const { lport } = handshake(e);
  feed(e, client(CISN + 1, RISN + 1, TCP_ACK));
  assert.equal(e.table.count, 1);
  e.tick(91_000);
  assert.equal(e.outCount, 2);
  const rsts = [0, 1].map((i) => decode(e.out[i]!.view().slice()));
  e.clearOutput();
  assert.ok(rsts.every((r) => (r.flags & TCP_RST) !== 0));
  assert.deepEqual(rsts.map((r) => r.dst).sort(), [CIP, RIP].sort());
  assert.equal(e.table.count, 0);
  assert.equal(e.laddrs.portsInUse(0, 0), 0);
  assert.ok(lport > 0);
});

test('table full and LIP ports exhausted: the client gets RST, nothing else breaks', () => {
  const e = new Engine({
    toaPolicy: 'fullnat',
    maxConnections: 2,
    portRange: { min: 5000, max: 5002 },
  });
  e.addService({
    vip: VIP,
    vport: 80,
    scheduler: 'rr',
    laddrs: [LIP],
    realServers: [{ addr: RIP, port: 8080, weight: 1 }],
  });
  const mk = (port: number): Uint8Array =>
    buildSegment({ src: CIP, dst: VIP, sport: port, dport: 80, seq: 1, flags: TCP_SYN });
  assert.equal(feed(e, mk(1))[0]!.dst, RIP);
  assert.equal(feed(e, mk(2))[0]!.dst, RIP);
  const r = feed(e, mk(3))[0]!;
  assert.equal(r.dst, CIP);
  assert.ok((r.flags & TCP_RST) !== 0);
  assert.equal(e.counter('table_full'), 1);

  const e2 = new Engine({
    toaPolicy: 'fullnat',
    maxConnections: 16,
    portRange: { min: 5000, max: 5001 },
  });
  e2.addService({
    vip: VIP,
    vport: 80,
    scheduler: 'rr',
    laddrs: [LIP],
    realServers: [{ addr: RIP, port: 8080, weight: 1 }],
  });
  feed(e2, mk(1));
  feed(e2, mk(2));
  const r2 = feed(e2, mk(3))[0]!;
  assert.ok((r2.flags & TCP_RST) !== 0);
  assert.equal(e2.counter('laddr_ports_exhausted'), 1);
});

test('malformed packets are counted and dropped, never thrown', () => {
  const e = makeEngine('fullnat');
  const good = client(CISN, 0, TCP_SYN, undefined, LINUX_SYN_OPTS);
  const cases: Uint8Array[] = [
    new Uint8Array(0),
    new Uint8Array(10),
    good.slice(0, 30),
    (() => {
      const b = good.slice();
      b[0] = 0x4f; // IHL beyond the packet
      return b;
    })(),
    (() => {
      const b = good.slice();
      b[20 + 12] = 0xf0; // data offset 60 beyond the packet
      return b;
    })(),
  ];
  for (const c of cases) assert.equal(feed(e, c).length, 0);
  assert.equal(e.counter('rx_packets'), cases.length);
  assert.equal(e.counter('malformed_dropped') + e.counter('bad_checksum_dropped'), cases.length);
});

test('configuration changes: RS removed, new connections go elsewhere, its own end on their next client packet; stats and listing', () => {
  const RIP2 = parseIpv4('10.10.2.3');
  const e = new Engine({ toaPolicy: 'fullnat', maxConnections: 64 });
  e.addService({
    vip: VIP,
    vport: 80,
    scheduler: 'rr',
    laddrs: [LIP],
    realServers: [{ addr: RIP, port: 8080, weight: 1 }],
  });
  const syn = (port: number): Uint8Array =>
    buildSegment({ src: CIP, dst: VIP, sport: port, dport: 80, seq: 1, flags: TCP_SYN });
  assert.equal(feed(e, syn(1))[0]!.dst, RIP);
  const added = e.addRealServer(0, { addr: RIP2, port: 8080, weight: 1 });
  e.removeRealServer(e.findRealServer(0, RIP, 8080));
  assert.equal(feed(e, syn(2))[0]!.dst, RIP2);
  assert.equal(feed(e, syn(3))[0]!.dst, RIP2);
  // The first connection's SYN again (IPVS's expire_nodest_conn): its entry on the removed RS
  // ends, and the SYN is scheduled afresh, to the RS still in the service.
  assert.equal(feed(e, syn(1))[0]!.dst, RIP2);
  assert.equal(e.counter('conns_rescheduled'), 1);
  const conns = e.listConnections();
  assert.equal(conns.length, 3);
  assert.deepEqual(conns.map((c) => c.rip).sort(), [RIP2, RIP2, RIP2].sort());
  assert.equal(e.realServers[added]!.stats[0], 3);
  assert.equal(e.services[0]!.stats[0], 4);
  assert.equal(e.counter('conns_created') - e.counter('conns_released'), e.table.count);
  e.deleteService(0);
  assert.equal(feed(e, syn(9)).length, 0);
  assert.equal(e.counter('no_service_dropped'), 1);
  assert.throws(() => e.addRealServer(0, { addr: RIP, port: 1, weight: 1 }), /no service/);
});

test('PROXY protocol v2: header segment first, client bytes shifted by its length, acks mapped back', () => {
  const e = new Engine({ toaPolicy: 'fullnat', maxConnections: 64 });
  e.addService({
    vip: VIP,
    vport: 80,
    scheduler: 'rr',
    laddrs: [LIP],
    realServers: [{ addr: RIP, port: 8080, weight: 1 }],
    proxyProtocol: 2,
  });
  const { lbIsn, lport } = handshake(e);
  // A bare ACK carries no header and no TOA.
  const [bare] = feed(e, client(CISN + 1, RISN + 1, TCP_ACK));
  assert.equal(bare!.toa.family, 0);
  assert.equal(bare!.payload.length, 0);
  const req = pattern(300);
  const out = feed(e, client(CISN + 1, RISN + 1, TCP_ACK | TCP_PSH, req));
  assert.equal(out.length, 2);
  const [hdr, data] = [out[0]!, out[1]!];
  assert.equal(hdr.seq, lbIsn + 1);
  assert.equal(hdr.payload.length, 28);
  assert.deepEqual(
    [...hdr.payload.subarray(0, 13)],
    [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21],
  );
  const dv = new DataView(hdr.payload.buffer, hdr.payload.byteOffset);
  assert.equal(dv.getUint32(16), CIP, 'source address: the client');
  assert.equal(dv.getUint32(20), VIP, 'destination address: the VIP');
  assert.equal(dv.getUint16(24), CPORT);
  assert.equal(dv.getUint16(26), 80);
  assert.equal(data.seq, lbIsn + 1 + 28);
  assert.deepEqual(data.payload, req);
  assert.equal(data.toa.family, 0);
  // A retransmission of the first segment gets the same header again.
  assert.equal(feed(e, client(CISN + 1, RISN + 1, TCP_ACK | TCP_PSH, req)).length, 2);
  // The RS acks header + request: the client sees its 300 bytes acked.
  const [ack] = feed(
    e,
    rsSegment({
      lport,
      seq: RISN + 1,
      ack: lbIsn + 1 + 28 + 300,
      flags: TCP_ACK,
    }),
  );
  assert.equal(ack!.ack, CISN + 1 + 300);
  // An ack of the SYN only stays an ack of the SYN.
  const [synAck] = feed(
    e,
    rsSegment({
      lport,
      seq: RISN,
      ack: lbIsn + 1,
      flags: TCP_SYN | TCP_ACK,
    }),
  );
  assert.equal(synAck!.ack, CISN + 1);
  // Later client data stays shifted, and carries no header.
  const [later] = feed(e, client(CISN + 301, RISN + 1, TCP_ACK | TCP_PSH, pattern(10)));
  assert.equal(later!.seq, lbIsn + 1 + 28 + 300);
  assert.equal(e.counter('proxy_headers_sent'), 2);
  assert.equal(e.counter('toa_inserted'), 0);
});

test('a state change to a shorter timeout is honoured, not left in the longer slot', () => {
  const e = makeEngine('fullnat');
  const { lport } = handshake(e);
  feed(e, client(CISN + 1, RISN + 1, TCP_ACK));
  // ESTABLISHED (90 s), then both sides close: TIME_WAIT is 7 s.
  e.tick(1_000);
  feed(e, client(CISN + 1, RISN + 1, TCP_ACK | TCP_FIN), 1_000);
  feed(
    e,
    rsSegment({
      lport,
      seq: RISN + 1,
      ack: 0,
      flags: TCP_ACK | TCP_FIN,
    }),
    1_000,
  );
  assert.equal(e.table.count, 1);
  e.tick(1_000 + 7_000 + 500);
  e.clearOutput();
  assert.equal(e.table.count, 0, 'gone after the TIME_WAIT timeout, not after ESTABLISHED’s 90 s');
});
