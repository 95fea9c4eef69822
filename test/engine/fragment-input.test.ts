/**
 * Fragments addressed to the LB (fragment-input.ts), with scapy as the
 * independent fragmenter and defragmenter: a big ping to a VIP (IPv4 and
 * IPv6) answered in fragments no larger than the MTU, a fragmented SYN
 * forwarded like a whole one, fragments for others dropped, tiny first
 * fragments, timeouts and a flood counted, memory bounded, every packet
 * counted once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Engine } from '../../src/engine/engine.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { internetChecksum } from '../../src/wire/checksum.js';
import { TCP_SYN } from '../../src/wire/tcp.js';
import {
  CIP,
  CISN,
  LINUX_SYN_OPTS,
  RIP,
  VIP,
  assertCountedOnce,
  clientSegment,
  decodeChecked,
  feedRaw,
  newTestEngine,
} from '../support/engine-fixture.js';
import { CIP6, VIP6, newDualEngine } from '../support/engine6-fixture.js';
import { icmp6Packet, icmpPacket } from '../support/icmp.js';
import { pattern } from '../support/packets.js';
import { probeScapy, scapySkip } from '../support/scapy.js';
import { scapyFragmentJobs } from '../support/scapy-fragments.js';

const skip = scapySkip(probeScapy());
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));

/** An IPv4 datagram with DF cleared (a sender that lets routers fragment), header checksum fixed. */
function withoutDf(d: Uint8Array): Uint8Array {
  const b = d.slice();
  b[6] = b[6]! & ~0x40;
  b[10] = 0;
  b[11] = 0;
  const ck = internetChecksum(b, 0, (b[0]! & 0x0f) * 4);
  b[10] = ck >>> 8;
  b[11] = ck & 0xff;
  return b;
}

/** An IPv6 datagram with an empty Fragment header after the fixed one, as scapy's fragment6 wants it. */
function withFragmentHeader(d: Uint8Array): Uint8Array {
  const b = new Uint8Array(d.length + 8);
  b.set(d.subarray(0, 40), 0);
  b[48 - 8] = d[6]!;
  b.set(d.subarray(40), 48);
  b[6] = 44;
  const payload = d.length - 40 + 8;
  b[4] = payload >>> 8;
  b[5] = payload & 0xff;
  return b;
}

function feedAll(e: Engine, packets: readonly Uint8Array[], now?: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const p of packets) for (const o of feedRaw(e, p, now)) out.push(o.bytes);
  return out;
}

function engine4(): Engine {
  return newTestEngine({ toaPolicy: 'fullnat', maxConnections: 64 }, { rsMtu: 1500 });
}

test(
  'a 3000-byte ping to the VIP in fragments, out of order: the reply leaves in fragments of at most 1500 bytes, and scapy puts it back together',
  { skip },
  () => {
    const e = engine4();
    const ping = withoutDf(icmpPacket(CIP, VIP, 8, 0, 0x4242_0001, pattern(2972)));
    const [frags] = scapyFragmentJobs([{ op: 'frag4', packet: hex(ping), size: 1480 }]);
    assert.ok(frags && frags.length === 3, `scapy made ${frags?.length} fragments`);
    const pieces = feedAll(e, [frags[2]!, frags[0]!, frags[1]!].map(bytes));
    assert.equal(e.counter('datagrams_reassembled'), 1);
    assert.equal(e.counter('icmp_echo_replied'), 1);
    assert.ok(pieces.length >= 3, `${pieces.length} pieces`);
    for (const p of pieces) assert.ok(p.length <= 1500, `a piece of ${p.length} bytes`);
    assert.equal(e.counter('fragments_sent'), pieces.length);
    const [whole] = scapyFragmentJobs([{ op: 'defrag4', packets: pieces.map(hex) }]);
    assert.equal(whole?.length, 1, 'one datagram back');
    const expected = withoutDf(icmpPacket(VIP, CIP, 0, 0, 0x4242_0001, pattern(2972)));
    const got = bytes(whole[0]!);
    // Identification and TTL are the LB's to choose; the rest is the echo reply.
    assert.deepEqual(got.subarray(20), expected.subarray(20), 'ICMP echo reply, payload intact');
    assert.deepEqual(got.subarray(12, 20), expected.subarray(12, 20), 'VIP → client');
    assert.equal(e.counter('fragments_merged'), 2);
    assert.equal(e.heldFragments, 0);
    assertCountedOnce(e);
  },
);

test(
  'a 3000-byte ping6 to an IPv6 VIP in fragments: the reply goes out in IPv6 fragments scapy reassembles',
  { skip },
  () => {
    const e = newDualEngine({ toaPolicy: 'fullnat', maxConnections: 64, rsMtu: 1500 });
    const ping = icmp6Packet(CIP6, VIP6, 128, 0, 0x4242_0001, pattern(2952));
    const [frags] = scapyFragmentJobs([
      { op: 'frag6', packet: hex(withFragmentHeader(ping)), size: 1280 },
    ]);
    assert.ok(frags && frags.length >= 3, `scapy made ${frags?.length} fragments`);
    const pieces = feedAll(e, frags.reverse().map(bytes));
    assert.equal(e.counter('datagrams_reassembled'), 1);
    assert.equal(e.counter('icmp_echo_replied'), 1);
    assert.ok(pieces.length >= 3, `${pieces.length} pieces`);
    for (const p of pieces) {
      assert.ok(p.length <= 1500, `a piece of ${p.length} bytes`);
      assert.equal(p[6], 44, 'each piece carries a Fragment header');
    }
    const [whole] = scapyFragmentJobs([{ op: 'defrag6', packets: pieces.map(hex) }]);
    const got = bytes(whole![0]!);
    const expected = icmp6Packet(VIP6, CIP6, 129, 0, 0x4242_0001, pattern(2952));
    assert.deepEqual(got.subarray(40), expected.subarray(40), 'ICMPv6 echo reply, payload intact');
    assert.deepEqual(got.subarray(8, 40), expected.subarray(8, 40), 'VIP → client');
    assertCountedOnce(e);
  },
);

test('a fragmented SYN to the VIP is forwarded as the whole SYN would be', { skip }, () => {
  const syn = withoutDf(clientSegment({ seq: CISN, flags: TCP_SYN, options: LINUX_SYN_OPTS }));
  const whole = feedRaw(engine4(), syn).map((o) => decodeChecked(o));
  const e = engine4();
  const [frags] = scapyFragmentJobs([{ op: 'frag4', packet: hex(syn), size: 24 }]);
  assert.equal(frags?.length, 2);
  const out = feedAll(e, frags.map(bytes));
  assert.equal(out.length, 1);
  const d = decodeChecked({ bytes: out[0]!, gso: 0 });
  const w = whole[0]!;
  assert.equal(d.dst, RIP);
  assert.equal(d.flags, w.flags);
  assert.deepEqual(d.options, w.options, 'the same options (and TOA, where the policy puts one)');
  assert.deepEqual(d.toa, w.toa);
  assert.equal(out[0]!.length, w.bytes.length);
  assert.equal(e.counter('conns_created'), 1);
  assertCountedOnce(e);
});

test(
  'fragments the LB is not the destination of are dropped and counted, IPv4 and IPv6',
  { skip },
  () => {
    const e = newDualEngine({ toaPolicy: 'fullnat', maxConnections: 64 });
    const stranger = parseIpv4('192.0.2.77');
    const ping = withoutDf(icmpPacket(CIP, stranger, 8, 0, 1, pattern(2000)));
    const ping6 = icmp6Packet(CIP6, new Uint8Array(16).fill(0x20), 128, 0, 1, pattern(2000));
    const [f4, f6] = scapyFragmentJobs([
      { op: 'frag4', packet: hex(ping), size: 1480 },
      { op: 'frag6', packet: hex(withFragmentHeader(ping6)), size: 1280 },
    ]);
    assert.equal(feedAll(e, [...f4!, ...f6!].map(bytes)).length, 0);
    assert.equal(e.counter('fragment_dropped'), f4!.length);
    assert.equal(e.counter('ipv6_fragment_dropped'), f6!.length);
    assert.equal(e.counter('fragments_received'), 0);
    assert.equal(e.reassemblyFootprintBytes, 0, 'no reassembler made for strangers');
    assertCountedOnce(e);
  },
);

test(
  'a tiny first fragment (8 bytes of TCP, RFC 1858) is dropped; a lone fragment is held, then times out after 30 s',
  { skip },
  () => {
    const e = engine4();
    const syn = withoutDf(clientSegment({ seq: CISN, flags: TCP_SYN, options: LINUX_SYN_OPTS }));
    const [tiny, big] = scapyFragmentJobs([
      { op: 'frag4', packet: hex(syn), size: 8 },
      {
        op: 'frag4',
        packet: hex(withoutDf(icmpPacket(CIP, VIP, 8, 0, 7, pattern(3000)))),
        size: 1480,
      },
    ]);
    assert.equal(feedAll(e, tiny!.map(bytes), 1000).length, 0);
    assert.ok(e.counter('reasm_tiny_first') >= 1);
    assert.equal(e.counter('conns_created'), 0);
    assertCountedOnce(e);
    const before = e.counter('fragment_reasm_dropped');
    feedAll(e, [bytes(big![0]!)], 2000);
    assert.equal(e.heldFragments >= 1, true);
    assertCountedOnce(e);
    e.tick(2000 + 29_000);
    assert.ok(e.heldFragments >= 1, 'still waiting at 29 s');
    e.tick(2000 + 30_000);
    assert.equal(e.counter('reasm_timeout') >= 1, true);
    assert.ok(e.counter('fragment_reasm_dropped') > before);
    assertCountedOnce(e);
  },
);

test('a flood of first fragments to the VIP stays inside the memory bound and is counted once', () => {
  const e = engine4();
  const frag = withoutDf(icmpPacket(CIP, VIP, 8, 0, 9, pattern(1472)));
  // More fragments (MF) at offset 0: each one a new queue that never completes.
  frag[6] = 0x20;
  frag[10] = 0;
  frag[11] = 0;
  const N = 20_000;
  let maxHeld = 0;
  for (let i = 0; i < N; i++) {
    frag[4] = (i >>> 8) & 0xff;
    frag[5] = i & 0xff;
    frag[12] = 10 + (i >>> 16);
    frag[10] = 0;
    frag[11] = 0;
    const ck = internetChecksum(frag, 0, 20);
    frag[10] = ck >>> 8;
    frag[11] = ck & 0xff;
    assert.equal(feedRaw(e, frag, 1000 + (i >>> 10)).length, 0);
    maxHeld = Math.max(maxHeld, e.heldFragments);
  }
  const footprint = e.reassemblyFootprintBytes;
  console.log(
    `# ${N} fragments of 1492 bytes (${((N * 1492) / 2 ** 20).toFixed(1)} MiB): ` +
      `at most ${maxHeld} held, reassembler footprint ${(footprint / 2 ** 20).toFixed(2)} MiB, ` +
      `${e.counter('reasm_memory')} dropped for memory`,
  );
  assert.ok(e.counter('reasm_memory') > 0, 'the bound was reached');
  assert.ok(maxHeld * 1492 <= 4 * 2 ** 20, `held ${maxHeld} fragments`);
  assert.ok(footprint < 6 * 2 ** 20, `footprint ${footprint}`);
  assertCountedOnce(e);
});
