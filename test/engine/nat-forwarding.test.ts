/**
 * NAT forwarding (IPVS's masquerading, `lb_kind NAT`): only the destination
 * VIP:vport becomes RIP:rport; the RS sees the client's own address, port,
 * sequence numbers and options (no TOA), and its replies, addressed to the
 * client, come back through the LB and leave from VIP:vport. Checksums are
 * checked on every packet out.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from '../../src/wire/tcp.js';
import { buildSegment } from '../support/packets.js';
import {
  CIP,
  CISN,
  CPORT,
  LINUX_SYN_ACK_OPTS,
  LINUX_SYN_OPTS,
  LIP,
  RIP,
  RISN,
  RPORT,
  VIP,
  VPORT,
  clientSegment,
  feed,
} from '../support/engine-fixture.js';
import { pattern } from '../support/packets.js';
import { TcpState } from '../../src/engine/tcp-state.js';

function natEngine(vports: number[] = [VPORT]): Engine {
  const e = new Engine({ toaPolicy: 'fullnat' });
  for (const vport of vports)
    e.addService({
      vip: VIP,
      vport,
      scheduler: 'rr',
      laddrs: [],
      realServers: [{ addr: RIP, port: RPORT, weight: 1 }],
      forwarding: 'nat',
    });
  return e;
}

/** RIP:RPORT → CIP:cport, as the RS answers a NAT connection. */
function rsToClient(
  f: {
    seq: number;
    ack: number;
    flags: number;
    payload?: Uint8Array;
    options?: typeof LINUX_SYN_ACK_OPTS;
  },
  cport = CPORT,
): Uint8Array {
  return buildSegment({
    src: RIP,
    dst: CIP,
    sport: RPORT,
    dport: cport,
    seq: f.seq >>> 0,
    ack: f.ack >>> 0,
    flags: f.flags,
    payload: f.payload,
    options: f.options,
  });
}

describe('NAT forwarding', () => {
  it('a connection both ways: only VIP:vport ↔ RIP:rport changes, nothing else', () => {
    const e = natEngine();
    const [syn] = feed(e, clientSegment({ seq: CISN, flags: TCP_SYN, options: LINUX_SYN_OPTS }));
    assert.ok(syn);
    assert.equal(syn.src, CIP, 'the RS sees the client');
    assert.equal(syn.sport, CPORT);
    assert.equal(syn.dst, RIP);
    assert.equal(syn.dport, RPORT);
    assert.equal(syn.seq, CISN, 'the client ISN unchanged');
    assert.equal(syn.toa.family, 0, 'no TOA');
    assert.deepEqual(syn.options, LINUX_SYN_OPTS, 'the client options as sent (timestamps kept)');
    const [synAck] = feed(
      e,
      rsToClient({
        seq: RISN,
        ack: CISN + 1,
        flags: TCP_SYN | TCP_ACK,
        options: LINUX_SYN_ACK_OPTS,
      }),
    );
    assert.ok(synAck);
    assert.equal(synAck.src, VIP);
    assert.equal(synAck.sport, VPORT);
    assert.equal(synAck.dst, CIP);
    assert.equal(synAck.dport, CPORT);
    assert.equal(synAck.seq, RISN);
    assert.equal(synAck.ack, CISN + 1, 'the ack unchanged');
    feed(e, clientSegment({ seq: CISN + 1, ack: RISN + 1, flags: TCP_ACK }));
    assert.equal(e.listConnections()[0]!.state, TcpState.Established);
    const req = pattern(400, 1);
    const [data] = feed(
      e,
      clientSegment({ seq: CISN + 1, ack: RISN + 1, flags: TCP_ACK | TCP_PSH, payload: req }),
    );
    assert.deepEqual(data!.payload, req);
    assert.equal(data!.seq, CISN + 1);
    const resp = pattern(1400, 2);
    const [back] = feed(
      e,
      rsToClient({ seq: RISN + 1, ack: CISN + 401, flags: TCP_ACK | TCP_PSH, payload: resp }),
    );
    assert.deepEqual(back!.payload, resp);
    assert.equal(back!.src, VIP);
    feed(e, clientSegment({ seq: CISN + 401, ack: RISN + 1401, flags: TCP_ACK | TCP_FIN }));
    feed(e, rsToClient({ seq: RISN + 1401, ack: CISN + 402, flags: TCP_ACK | TCP_FIN }));
    feed(e, clientSegment({ seq: CISN + 402, ack: RISN + 1402, flags: TCP_ACK }));
    assert.equal(e.listConnections()[0]!.state, TcpState.TimeWait);
    assert.equal(e.counter('toa_inserted_syn') + e.counter('toa_inserted'), 0);
    assert.equal(e.counter('forwarded_packets'), 8);
    // No LIP port was taken, and releasing the entry frees none.
    e.tick(60_000);
    assert.equal(e.connectionCount, 0);
  });

  it('the same client port to two NAT services on one RS: the second SYN is refused (their replies would be one tuple)', () => {
    const e = natEngine([80, 81]);
    assert.equal(feed(e, clientSegment({ seq: CISN, flags: TCP_SYN })).length, 1);
    const second = buildSegment({
      src: CIP,
      dst: VIP,
      sport: CPORT,
      dport: 81,
      seq: 5,
      ack: 0,
      flags: TCP_SYN,
    });
    const out = feed(e, second);
    assert.equal(e.counter('nat_reply_conflict'), 1);
    assert.equal(out.length, 1, 'answered with a RST');
    assert.ok((out[0]!.flags & 0x04) !== 0);
    assert.equal(e.connectionCount, 1);
  });

  it('a NAT service refuses what it cannot do: SYNPROXY, PROXY protocol, UDP, IPv6', () => {
    const e = new Engine({});
    const base = {
      vip: VIP,
      vport: 80,
      scheduler: 'rr' as const,
      laddrs: [],
      realServers: [],
      forwarding: 'nat' as const,
    };
    assert.throws(
      () => e.addService({ ...base, synProxy: true }),
      /NAT forwarding is for IPv4 TCP/,
    );
    assert.throws(
      () => e.addService({ ...base, proxyProtocol: 2 }),
      /NAT forwarding is for IPv4 TCP/,
    );
    assert.throws(
      () => e.addService({ ...base, protocol: 'UDP' }),
      /NAT forwarding is for IPv4 TCP/,
    );
    // Refused before anything was added: the service can be added as it should be.
    e.addService(base);
  });

  it('a FULLNAT service beside it still uses its LIP', () => {
    const e = natEngine();
    e.addService({
      vip: VIP,
      vport: 443,
      scheduler: 'rr',
      laddrs: [LIP],
      realServers: [{ addr: RIP, port: 443, weight: 1 }],
    });
    const [syn] = feed(
      e,
      buildSegment({ src: CIP, dst: VIP, sport: 5555, dport: 443, seq: 9, ack: 0, flags: TCP_SYN }),
    );
    assert.equal(syn!.src, LIP);
    assert.notEqual(syn!.seq, 9);
  });

  it('a restart hands NAT connections over: the new engine translates them as the old one did', () => {
    const a = natEngine();
    feed(a, clientSegment({ seq: CISN, flags: TCP_SYN, options: LINUX_SYN_OPTS }));
    feed(a, rsToClient({ seq: RISN, ack: CISN + 1, flags: TCP_SYN | TCP_ACK }));
    feed(a, clientSegment({ seq: CISN + 1, ack: RISN + 1, flags: TCP_ACK }));
    const b = natEngine();
    const r = b.importConnections(a.exportConnections(), 0);
    assert.equal(r.imported, 1, JSON.stringify(r));
    const data = clientSegment({
      seq: CISN + 1,
      ack: RISN + 1,
      flags: TCP_ACK | TCP_PSH,
      payload: pattern(100, 3),
    });
    const [viaA] = feed(a, data);
    const [viaB] = feed(b, data);
    assert.deepEqual(viaB!.bytes, viaA!.bytes);
    const reply = rsToClient({
      seq: RISN + 1,
      ack: CISN + 101,
      flags: TCP_ACK,
      payload: pattern(200, 4),
    });
    assert.deepEqual(feed(b, reply)[0]!.bytes, feed(a, reply)[0]!.bytes);
    // Into a FULLNAT service of the same VIP:port, a NAT record does not go.
    const f = new Engine({});
    f.addService({
      vip: VIP,
      vport: VPORT,
      scheduler: 'rr',
      laddrs: [LIP],
      realServers: [{ addr: RIP, port: RPORT, weight: 1 }],
    });
    const rf = f.importConnections(a.exportConnections(), 0);
    assert.equal(rf.imported, 0);
    assert.equal(f.connectionCount, 0);
  });
});
