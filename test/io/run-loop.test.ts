import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import { GSO_BUFFER_SIZE, PacketPool } from '../../src/engine/packet.js';
import { GSO_CSUM_PARTIAL, RunLoop } from '../../src/io/run-loop.js';
import { MemoryDevice } from '../../src/io/memory-device.js';
import { Ipv4View } from '../../src/wire/ipv4.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { findToa, ToaResult } from '../../src/wire/toa.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { TCP_ACK, TCP_PSH, TCP_SYN, TcpView } from '../../src/wire/tcp.js';
import { buildSegment, buildSegment6, pattern, v6 } from '../support/packets.js';
import { RIP, VIP, newTestEngine } from '../support/engine-fixture.js';

/** An engine with one service and a loop over an in-memory device (an offload one: 64 KiB buffers). */
function setup(offload = false): { e: Engine; dev: MemoryDevice; loop: RunLoop } {
  const e = newTestEngine(
    { maxConnections: 4096 },
    { rport: 80 },
    offload ? new PacketPool(32, GSO_BUFFER_SIZE) : undefined,
  );
  const dev = new MemoryDevice(offload);
  const loop = new RunLoop(e, dev, 16);
  return { e, dev, loop };
}

const syn = (i: number): Uint8Array =>
  buildSegment({
    src: 0xcb007100 + (i % 200),
    dst: VIP,
    sport: 1024 + i,
    dport: 80,
    seq: i,
    flags: TCP_SYN,
  });

test('the loop reads batches, runs the engine and writes every output', () => {
  const { e, dev, loop } = setup();
  for (let i = 0; i < 100; i++) dev.inbox.push(syn(i));
  loop.start();
  loop.stop();
  assert.equal(dev.written.length, 100);
  assert.ok(dev.written.every((b) => new Ipv4View().wrap(b, 0).dst === RIP));
  assert.equal(loop.stats.rxPackets, 100);
  assert.ok(loop.stats.rxBatches >= 7, 'batches of at most 16');
  assert.equal(e.table.count, 100);
});

test('packets the device will not take are counted as dropped and their buffers come back', () => {
  const { e, dev, loop } = setup();
  dev.writeLimit = 3;
  loop.start();
  const before = e.pool.available;
  dev.inject(...Array.from({ length: 10 }, (_, i) => syn(i)));
  loop.stop();
  assert.equal(loop.stats.txPackets + loop.stats.txDropped, 10);
  assert.ok(loop.stats.txDropped > 0);
  assert.equal(e.pool.available, before, 'no packet buffer leaked');
});

test('with an offload device, gso_size and the partial-checksum flag ride through and super-packets are counted', () => {
  const { dev, loop } = setup(true);
  // A SYN flagged as a partial-checksum super-packet (odd for a SYN, but the loop must not care).
  dev.inbox.push(syn(1), syn(2));
  dev.inboxGso.push({ type: 1 | GSO_CSUM_PARTIAL, size: 1000 }, { type: 0, size: 0 });
  loop.start();
  loop.stop();
  assert.equal(dev.written.length, 2);
  assert.deepEqual(dev.writtenGso, [
    { type: 1, size: 1000 },
    { type: 0, size: 0 },
  ]);
  assert.equal(loop.stats.rxSuperPackets, 1);
  assert.equal(loop.stats.txSuperPackets, 1);
});

test('an offload device needs 64 KiB buffers: a loop over a small-buffer pool is refused', () => {
  const e = new Engine({ maxConnections: 64 });
  assert.throws(() => new RunLoop(e, new MemoryDevice(true), 16), /needs packet buffers of/);
});

test('engine time counts from the epoch the caller gives (the moment its ISN clock origin names)', () => {
  const e = newTestEngine({});
  const fresh = new RunLoop(e, new MemoryDevice(false), 4);
  assert.ok(fresh.now() >= 0 && fresh.now() < 1000, 'by default from the loop’s creation');
  const epoch = performance.now() - 5000;
  const given = new RunLoop(e, new MemoryDevice(false), 4, epoch);
  const now = given.now();
  assert.ok(now >= 5000 && now < 6000, `5 s since the given epoch, got ${now}`);
});

test('FNAT64 through an offload device: a TCPv6 super-packet goes out as TCPv4 with the TOA, an RS TCPv4 one comes back TCPv6', () => {
  const GSO_TCPV4 = 1;
  const GSO_TCPV6 = 4;
  const GSO_ECN = 0x80;
  const vip = v6('2001:db8::100');
  const cip = v6('2001:db8:c::1');
  const lip = parseIpv4('10.60.3.1');
  const rip = parseIpv4('10.60.2.10');
  const e = new Engine(
    { toaPolicy: 'fullnat', maxConnections: 64, isnSecret: 7 },
    new PacketPool(32, GSO_BUFFER_SIZE),
  );
  e.addService({
    vip: Ipv6Address.fromBytes(vip),
    vport: 81,
    scheduler: 'rr',
    laddrs: [lip],
    realServers: [{ addr: rip, port: 8080, weight: 1 }],
  });
  const dev = new MemoryDevice(true);
  const loop = new RunLoop(e, dev, 16);
  loop.start();
  try {
    const fromClient = (
      seq: number,
      ack: number,
      flags: number,
      payload?: Uint8Array,
    ): Uint8Array =>
      buildSegment6({ src: cip, dst: vip, sport: 40000, dport: 81, seq, ack, flags, payload });
    dev.inject(fromClient(1000, 0, TCP_SYN));
    const syn = new TcpView().wrap(dev.written[0]!, 20);
    const lport = syn.srcPort;
    const lbIsn = syn.seq;
    const fromRs = (seq: number, ack: number, flags: number, payload?: Uint8Array): Uint8Array =>
      buildSegment({ src: rip, dst: lip, sport: 8080, dport: lport, seq, ack, flags, payload });
    dev.inject(fromRs(50000, lbIsn + 1, TCP_SYN | TCP_ACK));
    // The SYN+ACK the client got: its seq + 1 is what the concluding packets acknowledge.
    const synAck = new TcpView().wrap(dev.written.at(-1)!, 40);
    const ack = synAck.seq + 1;
    dev.inject(fromClient(1001, ack, TCP_ACK));
    const before = dev.written.length;
    // inject() hands each packet to the loop at once: the metadata goes in just before its packet.
    dev.inboxGso.push({ type: GSO_TCPV6 | GSO_ECN | GSO_CSUM_PARTIAL, size: 1000 });
    dev.inject(fromClient(1001, ack, TCP_ACK | TCP_PSH, pattern(4000)));
    const up = dev.written.slice(before);
    const upGso = dev.writtenGso.slice(before);
    assert.equal(up.length, 1, 'one super-packet out');
    assert.equal(up[0]![0]! >>> 4, 4, 'IPv4 toward the RS');
    assert.equal(upGso[0]!.type, GSO_TCPV4 | GSO_ECN, 'gso type follows the family; ECN kept');
    assert.ok(upGso[0]!.size > 0 && upGso[0]!.size <= 1000, `gso_size ${upGso[0]!.size}`);
    const t = new TcpView().wrap(up[0]!, 20);
    const toa = new ToaResult();
    assert.ok(
      findToa(up[0]!, 40, 20 + t.headerLength, toa),
      'a TOA on the concluding super-packet',
    );
    assert.equal(toa.kind, 254);
    assert.equal(toa.port, 40000);
    assert.deepEqual(toa.v6, cip);
    dev.inboxGso.push({ type: GSO_TCPV4 | GSO_CSUM_PARTIAL, size: 1448 });
    dev.inject(fromRs(50001, lbIsn + 1 + 4000, TCP_ACK, pattern(5000)));
  } finally {
    loop.stop();
  }
  const down = dev.written.at(-1)!;
  assert.equal(down[0]! >>> 4, 6, 'IPv6 toward the client');
  assert.deepEqual(down.subarray(24, 40), cip);
  assert.deepEqual(dev.writtenGso.at(-1), { type: GSO_TCPV6, size: 1448 });
  assert.equal(loop.stats.rxSuperPackets, 2);
  assert.equal(loop.stats.txSuperPackets, 2);
});
