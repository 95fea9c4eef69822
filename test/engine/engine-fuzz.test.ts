/**
 * Hostile input through the whole engine (corpus, mutator and checks in
 * test/support/fuzz.ts): valid packets of live connections, SYNPROXY ones
 * included (cookie handshakes, held packets, RS-leg answers), hand-built
 * hostile ones (lying lengths, bad option lengths, duplicate and conflicting
 * options, client TOAs of every shape, IP options, fragments, IPv6 extension
 * chains, flag soups, zero windows, RSTs with guessed sequence numbers,
 * wrong cookies), the same packets mutated, and random bytes. For every
 * packet: the engine does not throw, counts it exactly once (forwarded, one
 * drop counter, or held by SYNPROXY until replayed or discarded), emits only
 * valid packets (checksums right, lengths consistent), never launders a
 * corrupt one, never lets the RS read a client-supplied TOA where the policy
 * promises otherwise, and gives every buffer back but the held ones. `npm
 * run fuzz` runs the same checks for as long as you like.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { C, DROP_COUNTERS } from '../../src/engine/counters.js';
import { get16, get32 } from '../../src/wire/bytes.js';
import { TCP_ACK, TCP_SYN } from '../../src/wire/tcp.js';
import { opt } from '../../src/wire/tcp-options.js';
import { toaV4Option } from '../../src/wire/toa.js';
import { buildSegment } from '../support/packets.js';
import {
  CLIENT_BASE,
  FORGED,
  FUZZ_POLICIES,
  Fuzzer,
  MAX_CONNECTIONS,
  RIP,
  VIP,
  buildCorpus,
  type FuzzCorpus,
  type FuzzPolicy,
} from '../support/fuzz.js';

const corpora = new Map<FuzzPolicy, FuzzCorpus>();
function corpus(policy: FuzzPolicy): FuzzCorpus {
  let c = corpora.get(policy);
  if (!c) corpora.set(policy, (c = buildCorpus(policy)));
  return c;
}

function ok(f: Fuzzer, v: string | null, what: string): void {
  if (v !== null) {
    assert.fail(`${f.policy}, ${what}, packet ${f.packets - 1}: ${v}\ninput: ${f.inputHex()}`);
  }
}

test('every corpus packet, in order, under each policy: valid answers, each packet counted once', () => {
  for (const policy of FUZZ_POLICIES) {
    const c = corpus(policy);
    const f = new Fuzzer(policy, 1, c);
    for (let round = 0; round < 2; round++) {
      for (const pkt of [...c.flows, ...c.hostile]) ok(f, f.feed(pkt), `round ${round}`);
      ok(f, f.advance(60_000), 'timers');
    }
    const s = f.summary();
    assert.ok(s.forwarded > 0, policy);
    assert.ok((s.counters.toa_inserted ?? 0) > 0, `${policy}: TOAs inserted`);
  }
});

test('IPv6 to an engine without IPv6 services, with any extension-header chain: dropped, counted once, by the counter its header earns', () => {
  for (const policy of FUZZ_POLICIES) {
    const c = corpus(policy);
    assert.ok(c.ipv6.length >= 15);
    const f = new Fuzzer(policy, 1, c);
    for (const { bytes, counter } of c.ipv6) {
      const before = f.engine.counters[C[counter]]!;
      ok(f, f.feed(bytes), 'ipv6');
      assert.equal(f.engine.counters[C[counter]]!, before + 1, `${counter}: ${f.inputHex()}`);
      assert.equal(f.engine.outCount, 0);
    }
  }
});

test('IPv4 fragments (MF set or a non-zero offset) to a VIP or a LIP go to the reassembler: counted once, nothing incomplete sent', () => {
  const c = corpus('fullnat');
  const f = new Fuzzer('fullnat', 1, c);
  for (const pkt of c.fragments) {
    const before = f.engine.counters[C.fragments_received]!;
    ok(f, f.feed(pkt), 'fragment');
    assert.equal(f.engine.counters[C.fragments_received]!, before + 1, f.inputHex());
    assert.equal(f.engine.outCount, 0, f.inputHex());
  }
  assert.equal(f.engine.counters[C.datagrams_reassembled], 0);
  assert.ok(f.engine.counters[C.reasm_tiny_first]! > 0, 'the 8-byte first fragment refused');
});

test('client TOAs of every shape: the RS reads the client, never the forged address, where the policy promises it', () => {
  for (const policy of FUZZ_POLICIES) {
    const c = corpus(policy);
    const f = new Fuzzer(policy, 1, c);
    // The connections' SYNs and RS SYN+ACKs, then every concluding segment with client TOAs.
    for (const pkt of c.flows.slice(0, 16)) ok(f, f.feed(pkt), 'handshakes');
    const inserted0 = f.engine.counters[C.toa_inserted]!;
    for (const pkt of c.forgedToa) ok(f, f.feed(pkt), 'forged TOA');
    assert.ok(f.engine.counters[C.toa_inserted]! > inserted0, `${policy}: our TOA went in`);
    if (policy === 'fullnat') assert.ok(f.engine.counters[C.toa_spoof_stripped]! > 0);
  }
});

test('the checks catch what they guard against: a forged TOA the RS would read', () => {
  // Checked as fullnat, run as dpvs, which leaves client TOAs alone on a non-concluding segment.
  const c = corpus('fullnat');
  const f = new Fuzzer('fullnat', 1, c);
  f.engine.reconfigure({ toaPolicy: 'dpvs' });
  const [syn, synAck] = [c.sessions[0]!.steps[0]![0]!, c.sessions[0]!.steps[1]![0]!];
  ok(f, f.feed(syn), 'syn');
  ok(f, f.feed(synAck), 'syn+ack');
  const notConcluding = buildSegment({
    src: get32(syn, 12),
    dst: VIP,
    sport: get16(syn, 20),
    dport: 80,
    seq: 1001,
    ack: 9500,
    flags: TCP_ACK,
    options: [toaV4Option(1, FORGED)],
  });
  assert.match(f.feed(notConcluding) ?? '', /RS would read a TOA for 000106060606/);
});

// Found by the fuzzer: the clamp used to update the checksum as if the MSS value were 16-bit
// aligned, so a SYN+ACK with NOP, MSS left with a wrong TCP checksum.
test('an RS SYN+ACK with its MSS at an odd offset (NOP, MSS) keeps a valid TCP checksum when clamped', () => {
  for (const policy of FUZZ_POLICIES) {
    const c = corpus(policy);
    const f = new Fuzzer(policy, 1, c);
    const [syn, synAck] = [c.sessions[0]!.steps[0]![0]!, c.sessions[0]!.steps[1]![0]!];
    ok(f, f.feed(syn), 'syn');
    const odd = buildSegment({
      src: RIP,
      dst: get32(synAck, 16),
      sport: 80,
      dport: get16(synAck, 22),
      seq: 9000,
      ack: get32(synAck, 28),
      flags: TCP_SYN | TCP_ACK,
      options: [opt.nop(), opt.mss(1460), opt.nop(), opt.nop(), opt.nop()],
    });
    ok(f, f.feed(odd), 'SYN+ACK with NOP, MSS');
    assert.equal(f.engine.counters[C.mss_clamped], 1);
  }
});

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; len: number }
  | { kind: 'extend'; extra: Uint8Array }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'random'; bytes: Uint8Array };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(1600), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant('truncate' as const), len: fc.nat(1600) }),
  fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ maxLength: 64 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(80), value: fc.nat(255) }),
  fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ maxLength: 120 }) }),
);

function apply(b: Uint8Array, m: Mutation): Uint8Array {
  switch (m.kind) {
    case 'flip': {
      const c = b.slice();
      if (c.length) c[m.at % c.length]! ^= 1 << m.bit;
      return c;
    }
    case 'truncate':
      return b.slice(0, m.len % (b.length + 1));
    case 'extend': {
      const c = new Uint8Array(b.length + m.extra.length);
      c.set(b);
      c.set(m.extra, b.length);
      return c;
    }
    case 'set': {
      const c = b.slice();
      if (c.length) c[m.at % c.length] = m.value;
      return c;
    }
    case 'random':
      return m.bytes;
  }
}

for (const policy of FUZZ_POLICIES) {
  test(`property (${policy}): no throw, every packet accounted for, valid output, no forged TOA read`, () => {
    const c = corpus(policy);
    const base = [...c.flows, ...c.hostile];
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.nat(base.length - 1), fc.array(mutation, { maxLength: 3 }), fc.nat(200)),
          { minLength: 1, maxLength: 60 },
        ),
        (steps) => {
          const f = new Fuzzer(policy, 1, c);
          for (const [which, muts, dt] of steps) {
            let pkt = base[which]!;
            for (const m of muts) pkt = apply(pkt, m);
            ok(f, f.advance(dt * 50), 'timers');
            ok(f, f.feed(pkt), 'property');
          }
        },
      ),
      { numRuns: 300 },
    );
  });
}

test('SYNPROXY: a held packet counts as held until it is replayed, then as forwarded', () => {
  for (const policy of FUZZ_POLICIES) {
    const c = corpus(policy);
    const f = new Fuzzer(policy, 1, c);
    const e = f.engine;
    const identity = (): void => {
      let n = e.counters[C.forwarded_packets]! + e.heldPackets + e.heldFragments;
      for (const d of DROP_COUNTERS) n += e.counters[C[d]]!;
      assert.equal(n, e.counters[C.rx_packets]!, `${policy}: rx == forwarded + drops + held`);
    };
    // Four SYNs answered with cookies, four cookie ACKs (with data) held while the RS legs open.
    for (const pkt of c.synproxy.slice(0, 8)) {
      ok(f, f.feed(pkt), 'opening');
      identity();
    }
    assert.equal(e.counters[C.synproxy_syn_answered], 4, policy);
    assert.equal(e.counters[C.synproxy_cookie_valid], 4, policy);
    assert.equal(e.heldPackets, 4, policy);
    assert.equal(e.counters[C.forwarded_packets], 0, policy);
    assert.equal(
      e.pool.created - e.pool.available,
      4,
      `${policy}: held buffers are out of the pool`,
    );
    for (const pkt of c.synproxy.slice(8)) {
      ok(f, f.feed(pkt), 'connections');
      identity();
    }
    assert.equal(e.heldPackets, 0, policy);
    assert.equal(e.counters[C.synproxy_ack_stored], 8, policy);
    assert.equal(e.counters[C.synproxy_ack_replayed], 8, policy);
    assert.equal(e.counters[C.synproxy_rs_synack], 4, policy);
    assert.ok(e.counters[C.toa_inserted]! >= 4, `${policy}: replayed packets carry the TOA`);
    ok(f, f.advance(60_000), 'timers');
  }
});

test('SYN flood from many clients: the table and the ports stay bounded, refusals are counted', () => {
  const f = new Fuzzer('fullnat', 1, corpus('fullnat'));
  for (let i = 0; i < 500; i++) {
    const syn = buildSegment({
      src: CLIENT_BASE + 1000 + i,
      dst: VIP,
      sport: 30000 + i,
      dport: 80,
      seq: i * 7919,
      flags: i % 7 === 0 ? TCP_SYN | TCP_ACK : TCP_SYN,
    });
    ok(f, f.feed(syn), 'syn flood');
  }
  assert.ok(f.engine.table.count <= MAX_CONNECTIONS);
  assert.ok(f.engine.counters[C.syn_rejected]! > 0);
  // Refused SYNs get a RST each; a SYN+ACK opens nothing and is answered as a segment of no flow.
  const synAcks = Math.ceil(500 / 7);
  assert.equal(f.engine.counters[C.unknown_flow_rst_sent], synAcks);
  assert.equal(
    f.engine.counters[C.rst_sent],
    f.engine.counters[C.syn_rejected]! + f.engine.counters[C.unknown_flow_rst_sent]!,
  );
});

const N = 1_000_000;
for (const policy of FUZZ_POLICIES) {
  test(`one million hostile packets through ${policy}: no violation, memory bounded`, () => {
    const f = new Fuzzer(policy, 0x5eed, corpus(policy));
    const heapBefore = process.memoryUsage().heapUsed;
    const v = f.run(N);
    ok(f, v, `seed ${f.seed}`);
    const s = f.summary();
    assert.equal(s.packets, N);
    assert.equal(s.counters.rx_packets, N);
    let dropped = 0;
    for (const n of Object.values(s.drops)) dropped += n;
    assert.equal(s.forwarded + dropped + s.held, N);
    assert.ok(s.forwarded > N / 10, 'a good share still forwarded');
    // The stream reaches every way in and out that this configuration has.
    for (const name of [
      'malformed_dropped',
      'bad_checksum_dropped',
      'fragment_dropped',
      'not_tcp_dropped',
      'no_service_dropped',
      'no_conn_dropped',
      'syn_rejected',
      'toa_inserted',
      'mss_clamped',
      'proxy_headers_sent',
      'conns_expired',
      // SYNPROXY: every way a connection opens, is held, replayed, refused or cut.
      'synproxy_syn_answered',
      'synproxy_cookie_valid',
      'synproxy_cookie_invalid',
      'synproxy_ack_stored',
      'synproxy_ack_overflow',
      'synproxy_ack_replayed',
      'synproxy_ack_discarded',
      'synproxy_rs_syn_retransmitted',
      'synproxy_rs_synack',
      'synproxy_rs_refused',
      'synproxy_rs_timeout',
      'synproxy_rs_stale_ack',
      'synproxy_setup_dropped',
      'synproxy_ack_storm',
    ] as const) {
      assert.ok((s.counters[name] ?? 0) > 0, `${policy}: ${name} never happened`);
    }
    if (policy === 'lvs') {
      assert.ok((s.counters.toa_inserted_syn ?? 0) > 0);
      assert.ok((s.counters.toa_failed_no_room ?? 0) > 0);
    } else assert.ok((s.counters.toa_pruned ?? 0) > 0);
    if (policy === 'dpvs') assert.ok((s.counters.synproxy_deferred ?? 0) > 0);
    if (policy === 'fullnat') {
      assert.ok((s.counters.toa_split ?? 0) > 0);
      assert.ok((s.counters.toa_spoof_stripped ?? 0) > 0);
    } else {
      assert.ok((s.counters.icmp_frag_needed_sent ?? 0) > 0);
    }
    assert.ok(s.connections <= MAX_CONNECTIONS);
    const grown = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(grown < 64 * 1024 * 1024, `heap grew ${grown} bytes`);
  });
}
