import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from '../../src/wire/tcp.js';
import { TcpClient } from '../../src/lab/sim/client.js';
import { DirectMiddlebox } from '../../src/lab/sim/direct.js';
import { ManualIo } from '../../src/lab/sim/manual-io.js';
import type { Middlebox, Topology } from '../../src/lab/sim/net.js';
import { connectionTrace, runScenario, type ScenarioRun } from '../../src/lab/sim/run.js';
import { buildRequest } from '../../src/lab/sim/pattern.js';
import { Rng } from '../../src/lab/sim/rng.js';
import { SCENARIO_NAMES, type ScenarioName } from '../../src/lab/sim/scenarios.js';
import {
  buildFragNeeded,
  buildTcp,
  linuxSynAckOptions,
  parsePacket,
} from '../../src/lab/sim/segment.js';

const direct = (t: Topology): Middlebox => new DirectMiddlebox(t);
const N = 100;
const runs = new Map<ScenarioName, ScenarioRun>();
const run = (s: ScenarioName): ScenarioRun => {
  let r = runs.get(s);
  if (!r) {
    r = runScenario({ scenario: s, middleboxFactory: direct, connections: N, seed: 1 });
    runs.set(s, r);
  }
  return r;
};

test('SCENARIO_NAMES follow docs/SCENARIOS.md', () => {
  assert.deepEqual(
    [...SCENARIO_NAMES],
    [
      'baseline',
      'mss-mix',
      'reorder',
      'no-bare-ack',
      'fin-data',
      'full-mss',
      'over-mss',
      'options-full',
      'defer-accept',
      'spoof-toa',
      'lost-ack',
      'small-rs-mtu',
    ],
  );
});

for (const name of SCENARIO_NAMES) {
  test(`${name}: every connection completes intact without an LB`, () => {
    const r = run(name);
    assert.equal(r.realIp + r.wrongIp + r.failed, r.connections);
    assert.equal(r.failed, 0, r.details.find((d) => d.outcome === 'failed')?.reason ?? '');
    assert.equal(r.net.stoppedBy, 'idle');
    assert.equal(r.net.linkTooBig, 0, 'a router never sends what the link cannot carry');
    for (const d of r.details) {
      assert.ok(d.clientResult.finished, `${d.client} finished`);
      assert.ok(d.requestIntact && d.responseIntact);
    }
    if (name === 'spoof-toa') {
      // Nothing strips the forged TOA here: the RS believes it. That is the attack an LB must stop.
      assert.equal(r.wrongIp, N);
      assert.ok(r.details.every((d) => d.seen === '6.6.6.6:6666' && d.toaFound));
    } else {
      assert.equal(r.realIp, N);
      assert.ok(r.details.every((d) => !d.toaFound));
    }
  });
}

test('each scenario concludes the RS handshake with the segment it is about', () => {
  const concluding = (s: ScenarioName): Set<string> =>
    new Set(run(s).details.map((d) => d.concluding ?? ''));
  assert.deepEqual(concluding('baseline'), new Set(['. 0']));
  assert.deepEqual(concluding('reorder'), new Set(['. 1448']));
  assert.deepEqual(concluding('no-bare-ack'), new Set(['P. 308']));
  assert.deepEqual(concluding('fin-data'), new Set(['FP. 308']));
  assert.deepEqual(concluding('full-mss'), new Set(['. 1448']));
  assert.deepEqual(concluding('over-mss'), new Set(['. 1460']));
  assert.deepEqual(concluding('options-full'), new Set(['P. 308']));
  assert.deepEqual(concluding('defer-accept'), new Set(['P. 308']));
  assert.deepEqual(concluding('spoof-toa'), new Set(['. 0']));
  assert.deepEqual(concluding('lost-ack'), new Set(['P. 308']));
  assert.equal(run('lost-ack').net.lost, N);
  assert.equal(
    run('defer-accept').rs.reduce((n, s) => n + s.counters.deferDropped, 0),
    N,
  );
  const mss = new Set(run('mss-mix').details.map((d) => d.clientResult.sendMss));
  assert.ok(mss.size >= 2, 'mss-mix exercises several segment sizes');
});

test('options-full: the first data segment carries exactly 40 bytes of options', () => {
  const r = runScenario({
    scenario: 'options-full',
    middleboxFactory: direct,
    connections: 1,
    seed: 3,
    capture: true,
  });
  const first = r.records
    .filter((rec) => rec.link === 'client' && rec.dir === 'toMiddlebox')
    .map((rec) => parsePacket(rec.bytes))
    .find((p) => p.kind === 'tcp' && p.seg.payload.length > 0);
  assert.ok(first && first.kind === 'tcp');
  assert.equal(first.seg.options.length, 40);
  assert.equal(first.seg.options[2], 5, 'SACK');
  assert.equal(first.seg.options[28], 79, 'unknown kind');
});

test('small-rs-mtu: the client honours ICMP frag-needed and the RS learns its PMTU from the hop', () => {
  const r = run('small-rs-mtu');
  const mb = r.middlebox as DirectMiddlebox;
  assert.ok(mb.stats.fragNeededSent >= N);
  assert.ok(
    r.details.every((d) => d.clientResult.pmtu === 1400 && d.clientResult.fragNeededSeen > 0),
  );
  assert.ok(r.net.hostTooBig > 0 && r.net.icmpFromHop === r.net.hostTooBig);
});

test('same seed, same run; another seed, other ports and ISNs', () => {
  const a = runScenario({
    scenario: 'reorder',
    middleboxFactory: direct,
    connections: 20,
    seed: 9,
    capture: true,
  });
  const b = runScenario({
    scenario: 'reorder',
    middleboxFactory: direct,
    connections: 20,
    seed: 9,
    capture: true,
  });
  assert.deepEqual(
    a.records.map((x) => [x.t, x.link, [...x.bytes]]),
    b.records.map((x) => [x.t, x.link, [...x.bytes]]),
  );
  assert.deepEqual(
    a.details.map((d) => [d.client, d.seen, d.concluding]),
    b.details.map((d) => [d.client, d.seen, d.concluding]),
  );
  const c = runScenario({
    scenario: 'reorder',
    middleboxFactory: direct,
    connections: 20,
    seed: 10,
  });
  assert.notDeepEqual(
    a.details.map((d) => d.client),
    c.details.map((d) => d.client),
  );
});

test('more connections than client addresses reuse addresses with distinct ports', () => {
  const r = runScenario({
    scenario: 'no-bare-ack',
    middleboxFactory: direct,
    connections: 600,
    seed: 2,
  });
  assert.equal(r.realIp, 600);
  assert.equal(new Set(r.details.map((d) => d.client)).size, 600);
  assert.equal(r.topology.clients.length, 500);
});

test('a path losing 10 % of packets still completes every connection (retransmissions)', () => {
  for (const scenario of ['baseline', 'fin-data', 'small-rs-mtu'] as const) {
    const rng = new Rng(42);
    const lossy = (t: Topology): Middlebox => {
      const d = new DirectMiddlebox(t);
      return {
        receive: (p, now) => (rng.u32() % 10 === 0 ? [] : d.receive(p, now)),
        tick: () => [],
      };
    };
    const r = runScenario({ scenario, middleboxFactory: lossy, connections: 100, seed: 3 });
    assert.equal(
      r.failed,
      0,
      `${scenario}: ${r.details.find((d) => d.outcome === 'failed')?.reason}`,
    );
    assert.ok(r.details.every((d) => d.clientResult.finished));
  }
});

test('a black-hole middlebox: every connection fails, and the run still ends', () => {
  const hole: Middlebox = { receive: () => [], tick: () => [] };
  const r = runScenario({
    scenario: 'baseline',
    middleboxFactory: () => hole,
    connections: 10,
    seed: 1,
  });
  assert.equal(r.failed, 10);
  assert.ok(r.details.every((d) => d.reason === 'no SYN+ACK' || d.reason === 'not established'));
  assert.ok(r.net.endTime <= 60_000);
});

test('connectionTrace explains one connection packet by packet', () => {
  const r = runScenario({
    scenario: 'lost-ack',
    middleboxFactory: direct,
    connections: 2,
    seed: 1,
    capture: true,
  });
  const t = connectionTrace(r, 1);
  assert.match(t, /lost-ack #1 .*realIp/);
  assert.match(
    t,
    /\[S\] seq \d+ ack 0 win 64240 len 0 <mss 1460,sackOK,TS val \d+ ecr 0,nop,wscale 7>/,
  );
  assert.match(t, /DROPPED \(lost\)/);
  assert.match(t, /LB→RS .*\[P\.\] .* len 308/);
  assert.ok(!t.includes(r.details[0]!.client), 'only this connection');
});

test('client: Linux SYN bytes, then re-segmentation on ICMP frag-needed', () => {
  const io = new ManualIo();
  const local = { addr: parseIpv4('203.0.113.7'), port: 40000 };
  const vip = { addr: parseIpv4('192.0.2.100'), port: 80 };
  const c = new TcpClient(
    io,
    local,
    vip,
    { advmss: 1460, requestSize: 4000, firstFlight: 'data-only' },
    5,
  );
  const total = buildRequest(local, 4000).length;
  c.start();
  const [syn] = io.takeSegments();
  assert.ok(syn);
  const o = syn.options;
  assert.equal(o.length, 20);
  assert.deepEqual([...o.subarray(0, 8)], [2, 4, 0x05, 0xb4, 4, 2, 8, 10]);
  assert.deepEqual([...o.subarray(12, 20)], [0, 0, 0, 0, 1, 3, 3, 7]);
  assert.equal(syn.window, 64240);

  const serverIsn = 77777;
  const synAck = buildTcp({
    src: vip.addr,
    dst: local.addr,
    sport: vip.port,
    dport: local.port,
    seq: serverIsn,
    ack: syn.seq + 1,
    flags: TCP_SYN | TCP_ACK,
    window: 65535,
    options: linuxSynAckOptions(1460, { val: 5, ecr: syn.tsVal ?? 0 }, true, 7),
  });
  const p = parsePacket(synAck);
  assert.ok(p.kind === 'tcp');
  c.receive(p.seg);
  const flight = io.takePackets();
  const segs = flight.map((b) => parsePacket(b)).flatMap((x) => (x.kind === 'tcp' ? [x.seg] : []));
  assert.deepEqual(
    segs.map((s) => s.payload.length),
    [1448, 1448, total - 2 * 1448],
  );
  assert.ok(segs.every((s) => s.ack === serverIsn + 1 && s.flags & TCP_ACK));
  assert.equal(segs[2]!.flags & TCP_PSH, TCP_PSH);
  assert.equal(segs[0]!.flags & (TCP_PSH | TCP_FIN), 0);

  c.fragNeeded(1400);
  const again = io.takeSegments();
  assert.deepEqual(
    again.map((s) => s.payload.length),
    [1348, 1348, total - 2 * 1348],
  );
  assert.equal(again[0]!.seq, syn.seq + 1, 'every unacked byte, from snd_una');
  assert.equal(c.result().pmtu, 1400);
  // The same holds when the ICMP arrives as a packet quoting the oversized segment.
  const icmp = buildFragNeeded(parseIpv4('192.0.2.100'), flight[0]!, 1300);
  const q = parsePacket(icmp);
  assert.ok(q.kind === 'fragNeeded' && q.icmp.inner.sport === local.port && q.icmp.mtu === 1300);
});
