/**
 * `fullnat doctor` against captures whose truth is known: the simulator's
 * RS-side packets for every scenario × policy (the simulator's toa module
 * says which segment it read and whether it found a TOA), plus hand-built
 * IPv6, Ethernet/pcapng and damaged files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDoctor, type DoctorOutput } from '../../src/cli/doctor.js';
import { TOA_POLICIES, type ToaPolicy } from '../../src/engine/options.js';
import { engineMiddlebox } from '../../src/lab/engine-middlebox.js';
import {
  analyzeCapture,
  analyzeRecords,
  type Analysis,
  type ConnectionReport,
  type MissCause,
} from '../../src/doctor/analyze.js';
import { renderHtml } from '../../src/doctor/html.js';
import { formatText, toJson } from '../../src/doctor/report.js';
import { runScenario, type ScenarioRun } from '../../src/lab/sim/run.js';
import { SCENARIO_NAMES, getScenario, type ScenarioName } from '../../src/lab/sim/scenarios.js';
import { flagString } from '../../src/wire/tcp.js';
import { parseIpv4, parseIpv6 } from '../../src/wire/bytes.js';
import { readCapture } from '../../src/wire/capture.js';
import { IPPROTO_TCP, IPPROTO_UDP, writeIpv4Header } from '../../src/wire/ipv4.js';
import { writeIpv6Header } from '../../src/wire/ipv6.js';
import { LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapWriter, ethernetFrame } from '../../src/wire/pcap.js';
import { PcapngWriter } from '../../src/wire/pcapng.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN, writeTcpHeader } from '../../src/wire/tcp.js';
import { encodeOptions, opt, type TcpOption } from '../../src/wire/tcp-options.js';
import { toaV4Option, toaV6Option } from '../../src/wire/toa.js';
import { buildSegment } from '../support/packets.js';

const CONNECTIONS = 20;

interface Case {
  scenario: ScenarioName;
  policy: ToaPolicy;
  run: ScenarioRun;
  pcap: Uint8Array;
  analysis: Analysis;
}

/**
 * What a capture at the RS holds: the RS link's packets that were delivered.
 * A packet the link dropped as too big never reached the RS (its sender's
 * own capture would show it, but nothing of it concluded anything).
 */
function rsPcap(run: ScenarioRun, bothLinks = false): Uint8Array {
  const w = new PcapWriter(LINKTYPE_RAW);
  for (const r of run.records) {
    if (!r.drop && (bothLinks || r.link === 'rs')) w.add(Math.round(r.t * 1000), r.bytes);
  }
  return w.toBytes();
}

function simulate(scenario: ScenarioName, policy: ToaPolicy): ScenarioRun {
  return runScenario({
    scenario,
    middleboxFactory: engineMiddlebox({ toaPolicy: policy }),
    connections: CONNECTIONS,
    capture: true,
  });
}

const cases: Case[] = [];
for (const scenario of SCENARIO_NAMES) {
  for (const policy of TOA_POLICIES) {
    const run = simulate(scenario, policy);
    const pcap = rsPcap(run);
    const analysis = analyzeCapture(pcap, { deferAccept: getScenario(scenario).deferAccept });
    cases.push({ scenario, policy, run, pcap, analysis });
  }
}

function find(scenario: ScenarioName, policy: ToaPolicy): Case {
  const c = cases.find((x) => x.scenario === scenario && x.policy === policy);
  assert.ok(c, `${scenario}/${policy} missing`);
  return c;
}

/** The analyzer's connection for a simulator connection, by the RS-side tuple. */
function connFor(a: Analysis, run: ScenarioRun, i: number): ConnectionReport {
  const d = run.details[i]!;
  const matches = a.connections.filter((c) => c.client === d.rsPeer && c.server === d.rs);
  assert.equal(matches.length, 1, `${run.scenario} #${i}: ${matches.length} connections match`);
  return matches[0]!;
}

const label = (c: Case): string => `${c.scenario}/${c.policy}`;

test('key property: the segment found concluding is the one the RS toa module read', () => {
  for (const c of cases) {
    assert.equal(c.analysis.summary.connections, CONNECTIONS, label(c));
    assert.equal(c.analysis.packets.malformed, 0, label(c));
    c.run.details.forEach((d, i) => {
      const r = connFor(c.analysis, c.run, i);
      const k = r.concluding;
      assert.ok(k, `${label(c)} #${i}: no concluding segment (${r.verdict})`);
      assert.equal(k.toa !== null, d.toaFound, `${label(c)} #${i}: TOA on the concluding segment`);
      assert.equal(k.payload, d.concludingLen, `${label(c)} #${i}: concluding payload`);
      assert.equal(k.flags, flagString(d.concludingFlags), `${label(c)} #${i}: concluding flags`);
      // The address the module reported is the one the doctor says it would read.
      if (d.toaFound) assert.equal(k.toa?.endpoint, d.seen, `${label(c)} #${i}: TOA address`);
      assert.equal(r.verdict, d.toaFound ? 'toa' : 'miss', `${label(c)} #${i}`);
    });
  }
});

test('the misses are classified by the cause the scenario builds', () => {
  const expected: [ScenarioName, ToaPolicy, MissCause][] = [
    ['fin-data', 'lvs', 'fin-data'],
    ['over-mss', 'lvs', 'over-mss'],
    ['over-mss', 'dpvs', 'over-mss'],
    ['options-full', 'lvs', 'options-full'],
    ['small-rs-mtu', 'dpvs', 'full-segment'],
    ['small-rs-mtu', 'lvs', 'full-segment'],
  ];
  for (const [scenario, policy, cause] of expected) {
    const c = find(scenario, policy);
    const s = c.analysis.summary;
    assert.equal(s.concluded, CONNECTIONS, label(c));
    assert.equal(s.withToa, 0, label(c));
    assert.equal(s.coverage, 0, label(c));
    assert.equal(s.misses[cause], CONNECTIONS, `${label(c)}: ${JSON.stringify(s.misses)}`);
    for (const r of c.analysis.connections) assert.equal(r.cause, cause, `${label(c)} #${r.id}`);
  }
  // The RS path of small-rs-mtu is 1400 bytes, and the doctor learnt it from the capture.
  assert.deepEqual(find('small-rs-mtu', 'dpvs').analysis.summary.pathMtu, [
    { interfaceId: 0, mtu: 1400, source: 'observed' },
  ]);
});

test('fullnat: 100 % coverage and no miss in every scenario', () => {
  for (const c of cases.filter((x) => x.policy === 'fullnat')) {
    const s = c.analysis.summary;
    assert.equal(s.coverage, 100, label(c));
    assert.equal(s.withToa, CONNECTIONS, label(c));
    assert.ok(
      Object.values(s.misses).every((n) => n === 0),
      label(c),
    );
    assert.equal(s.spoofed, 0, `${label(c)}: fullnat strips client TOAs`);
  }
});

test('every miss is a connection the simulator judged wrongIp, and only those', () => {
  for (const c of cases) {
    const misses = c.analysis.connections.filter((r) => r.verdict === 'miss').length;
    assert.equal(misses, c.run.wrongIp, label(c));
  }
});

test('spoof-toa: no miss when the LB puts its TOA first; a second TOA is flagged', () => {
  for (const policy of ['lvs', 'dpvs'] as const) {
    const c = find('spoof-toa', policy);
    const s = c.analysis.summary;
    assert.equal(s.coverage, 100, label(c));
    assert.equal(s.spoofed, CONNECTIONS, label(c));
    for (const r of c.analysis.connections) {
      assert.equal(r.spoofed, 'multiple-toa', label(c));
      assert.equal(r.concluding?.toaCount, 2, label(c));
    }
  }
});

test('defer-accept: without --defer-accept the bare ACK is taken as concluding', () => {
  const c = find('defer-accept', 'lvs');
  const plain = analyzeCapture(c.pcap);
  for (const r of plain.connections) assert.equal(r.concluding?.payload, 0);
  for (const r of c.analysis.connections) {
    assert.ok((r.concluding?.payload ?? 0) > 0);
    assert.equal(r.deferredAcks, 1);
  }
});

test('--mtu overrides the estimate', () => {
  const a = analyzeCapture(find('small-rs-mtu', 'dpvs').pcap, { mtu: 1500 });
  assert.deepEqual(a.summary.pathMtu, [{ interfaceId: 0, mtu: 1500, source: 'option' }]);
  assert.equal(a.summary.misses['full-segment'], 0);
  assert.equal(a.summary.misses.unknown, CONNECTIONS);
});

test('a capture of both legs: client legs are recognised and left out', () => {
  for (const [scenario, policy] of [
    ['spoof-toa', 'lvs'],
    ['fin-data', 'lvs'],
    ['baseline', 'fullnat'],
  ] as const) {
    const c = find(scenario, policy);
    const both = analyzeCapture(rsPcap(c.run, true));
    assert.equal(both.summary.clientLeg, CONNECTIONS, label(c));
    assert.deepEqual(both.summary.misses, c.analysis.summary.misses, label(c));
    assert.equal(both.summary.withToa, c.analysis.summary.withToa, label(c));
    assert.equal(both.summary.spoofed, c.analysis.summary.spoofed, label(c));
  }
});

test('pcapng with an Ethernet link type gives the same verdicts as the raw-IP pcap', () => {
  const c = find('fin-data', 'lvs');
  const w = new PcapngWriter(LINKTYPE_ETHERNET);
  for (const rec of readCapture(c.pcap)) w.add(rec.timestampUs, ethernetFrame(rec.data));
  const bytes = w.toBytes();
  assert.equal(readCapture(bytes)[0]?.linkType, LINKTYPE_ETHERNET);
  const a = analyzeCapture(bytes);
  assert.deepEqual(a.summary, c.analysis.summary);
  assert.deepEqual(
    a.connections.map((r) => [r.client, r.cause]),
    c.analysis.connections.map((r) => [r.client, r.cause]),
  );
});

test('a snap length that cuts payloads but not headers changes nothing', () => {
  for (const [scenario, policy] of [
    ['options-full', 'lvs'],
    ['small-rs-mtu', 'dpvs'],
  ] as const) {
    const c = find(scenario, policy);
    // 20 (IPv4) + 60 (TCP with 40 option bytes): every header fits, no payload does.
    const w = new PcapWriter(LINKTYPE_RAW, 80);
    for (const rec of readCapture(c.pcap)) w.add(rec.timestampUs, rec.data);
    const a = analyzeCapture(w.toBytes());
    assert.deepEqual(a.summary, c.analysis.summary, label(c));
    assert.equal(a.packets.malformed, 0, label(c));
  }
});

test('the MSS histogram counts what the clients announced', () => {
  const h = find('mss-mix', 'dpvs').analysis.summary.mssHistogram;
  assert.equal(
    Object.values(h).reduce((x, y) => x + y, 0),
    CONNECTIONS,
  );
  for (const mss of ['1460', '1452', '1412', '1400', '1394', '1260', '1120', '536', '1440']) {
    assert.ok((h[mss] ?? 0) > 0, `MSS ${mss} missing from ${JSON.stringify(h)}`);
  }
});

// ---- hand-built captures ----

const LIP = parseIpv4('10.0.0.1');
const RIP = parseIpv4('10.0.0.2');
const CIP = parseIpv4('198.51.100.7');
const S = TCP_SYN;
const A = TCP_ACK;

function v4(
  fromClient: boolean,
  sport: number,
  seq: number,
  ack: number,
  flags: number,
  payload = 0,
  options: TcpOption[] = [],
): Uint8Array {
  return buildSegment({
    src: fromClient ? LIP : RIP,
    dst: fromClient ? RIP : LIP,
    sport: fromClient ? sport : 80,
    dport: fromClient ? 80 : sport,
    seq,
    ack,
    flags,
    window: 65535,
    options,
    payload: new Uint8Array(payload),
  });
}

const LIP6 = parseIpv6('2001:db8::1')!;
const RIP6 = parseIpv6('2001:db8::2')!;
const CIP6 = parseIpv6('2001:db8:c::7')!;

function v6(
  fromClient: boolean,
  seq: number,
  ack: number,
  flags: number,
  payload = 0,
  options: TcpOption[] = [],
): Uint8Array {
  const opts = encodeOptions(options);
  const tcpLen = 20 + opts.length + payload;
  const b = new Uint8Array(40 + tcpLen);
  writeIpv6Header(b, 0, {
    src: fromClient ? LIP6 : RIP6,
    dst: fromClient ? RIP6 : LIP6,
    nextHeader: IPPROTO_TCP,
    payloadLength: tcpLen,
  });
  writeTcpHeader(b, 40, {
    srcPort: fromClient ? 40000 : 443,
    dstPort: fromClient ? 443 : 40000,
    seq,
    ack,
    flags,
    window: 65535,
    options: opts,
  });
  return b;
}

function pcapOf(packets: Uint8Array[], snaplen?: number): Uint8Array {
  const w = new PcapWriter(LINKTYPE_RAW, snaplen);
  packets.forEach((p, i) => w.add(1_000_000 + i, p));
  return w.toBytes();
}

test('IPv6: TOA read as the module would, 20-byte room needed, junk counted not thrown', () => {
  const toa6 = toaV6Option(5555, CIP6);
  const sack = opt.sack([
    [1, 2],
    [3, 4],
  ]);
  const udp = new Uint8Array(28);
  writeIpv4Header(udp, 0, { src: LIP, dst: RIP, protocol: IPPROTO_UDP, payloadLength: 8 });
  const packets = [
    v6(true, 1000, 0, S, 0, [opt.mss(1440), toa6]),
    v6(false, 9000, 1001, S | A, 0, [opt.mss(1440)]),
    v6(true, 1001, 9001, A | TCP_PSH, 100, [toa6]),
    // A second connection whose concluding segment has 24 option bytes: no room for 20.
    v6(true, 5000, 0, S, 0, [opt.mss(1220), toa6]),
    v6(false, 7000, 5001, S | A, 0, [opt.mss(1440)]),
    v6(true, 5001, 7001, A | TCP_PSH, 100, [opt.nop(), opt.nop(), opt.timestamp(1, 2), sack]),
    udp,
    Uint8Array.of(0x45, 0, 0), // cut-off IPv4 header
    v4(true, 1234, 1, 0, S).subarray(0, 30), // TCP header cut off without a snap length to blame
  ];
  // Same tuple for both IPv6 connections, one after the other: a new ISN is a new connection.
  const a = analyzeCapture(pcapOf(packets));
  assert.equal(a.packets.notTcp, 1);
  assert.equal(a.packets.malformed, 2);
  assert.equal(a.summary.connections, 2);
  const [first, second] = a.connections;
  assert.equal(first?.family, 6);
  assert.equal(first?.concluding?.toa?.endpoint, '[2001:db8:c::7]:5555');
  assert.equal(first?.verdict, 'toa');
  assert.equal(second?.verdict, 'miss');
  assert.equal(second?.cause, 'options-full');
  assert.deepEqual(a.summary.mssHistogram, { '1220': 1, '1440': 1 });
  // Cut right after the longest header (40 + 20 + 32 option bytes): the same verdicts.
  const cut = analyzeCapture(pcapOf(packets.slice(0, 6), 92));
  assert.deepEqual(
    cut.connections.map((r) => [r.verdict, r.cause, r.concluding?.payload]),
    a.connections.map((r) => [r.verdict, r.cause, r.concluding?.payload]),
  );
  assert.equal(cut.packets.malformed, 0);
});

test('reordered, no-toa-at-all, lb-address and the window check on hand-built IPv4', () => {
  const toa = toaV4Option(4444, CIP);
  const lipToa = toaV4Option(5001, LIP);
  const packets = [
    // 1: data (no TOA) concludes, the bare ACK comes later → reordered.
    v4(true, 5001, 100, 0, S, 0, [opt.mss(1460), toa]),
    v4(false, 5001, 500, 101, S | A, 0, [opt.mss(1460)]),
    v4(true, 5001, 101, 501, A | TCP_PSH, 200),
    v4(true, 5001, 101, 501, A, 0, [toa]),
    // 2: outside the window first (ignored), then a segment with a TOA naming the LB itself.
    v4(true, 5002, 100, 0, S),
    v4(false, 5002, 800, 101, S | A),
    v4(true, 5002, 101 + 70000, 801, A | TCP_PSH, 10, [toa]),
    v4(true, 5002, 101, 801, A | TCP_FIN, 0, [lipToa]),
  ];
  const a = analyzeCapture(pcapOf(packets));
  const [one, two] = a.connections;
  assert.equal(one?.cause, 'reordered');
  assert.equal(two?.concluding?.flags, 'F.');
  assert.equal(two?.spoofed, 'lb-address');

  // No packet anywhere carries a TOA: the LB is not inserting.
  const none = analyzeCapture(
    pcapOf([
      v4(true, 6000, 1, 0, S, 0, [opt.mss(1460)]),
      v4(false, 6000, 2, 2, S | A),
      v4(true, 6000, 2, 3, A | TCP_FIN | TCP_PSH, 1460),
    ]),
  );
  assert.equal(none.connections[0]?.cause, 'no-toa-at-all');
  assert.equal(none.summary.coverage, 0);
});

test('damaged packets are counted, never thrown', () => {
  const records = readCapture(find('options-full', 'dpvs').pcap);
  let state = 12345;
  const rand = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state % n;
  };
  for (let round = 0; round < 200; round++) {
    const damaged = records.map((r) => {
      const data = r.data.slice(0, rand(4) === 0 ? rand(r.data.length + 1) : r.data.length);
      for (let k = rand(4); k > 0 && data.length > 0; k--) data[rand(data.length)] = rand(256);
      return { ...r, data, originalLength: rand(3) === 0 ? r.data.length + 100 : data.length };
    });
    const a = analyzeRecords(damaged);
    const p = a.packets;
    assert.equal(p.tcp + p.notIp + p.notTcp + p.fragments + p.malformed, p.total);
  }
});

test('connections the capture cannot judge are reported, not counted', () => {
  const a = analyzeRecords(
    readCapture(
      pcapOf([
        v4(true, 7000, 50, 60, A, 10), // began before the capture
        v4(true, 7001, 1, 0, S), // no SYN+ACK
      ]),
    ),
  );
  assert.equal(a.summary.connections, 1);
  assert.equal(a.summary.noSyn, 1);
  assert.equal(a.summary.noSynAck, 1);
  assert.equal(a.summary.coverage, null);

  // The RS's own outgoing connection (no TOA from its source) next to LB traffic.
  const mixed = analyzeCapture(
    pcapOf([
      v4(true, 7002, 1, 0, S, 0, [toaV4Option(1, CIP)]),
      v4(false, 7002, 9, 2, S | A),
      v4(true, 7002, 2, 10, A, 0, [toaV4Option(1, CIP)]),
      v4(false, 33000, 100, 0, S), // RS → 10.0.0.1:33000, e.g. to a database
      v4(true, 33000, 500, 101, S | A),
      v4(false, 33000, 101, 501, A),
    ]),
  );
  assert.equal(mixed.summary.connections, 1);
  assert.equal(mixed.summary.notViaLb, 1);
  assert.equal(mixed.summary.coverage, 100);
  assert.equal(mixed.connections[1]?.verdict, 'not-via-lb');
});

// ---- CLI and outputs ----

function capture(): { io: DoctorOutput; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t) => out.push(t), err: (t) => err.push(t) }, out, err };
}

test('runDoctor: text, one JSON document, HTML; damaged files fail with exit code 1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fullnat-doctor-'));
  try {
    const file = join(dir, 'rs.pcap');
    writeFileSync(file, find('fin-data', 'lvs').pcap);

    const text = capture();
    assert.equal(await runDoctor({ file, limit: 3 }, text.io), 0);
    const report = text.out.join('\n');
    assert.match(report, /TOA coverage 0\.00 %/);
    assert.match(report, /fin-data\s+20/);
    assert.match(report, /allow FIN packets to carry TOA/);
    assert.match(report, /3 of 20/);

    const json = capture();
    const html = join(dir, 'out.html');
    assert.equal(await runDoctor({ file, json: true, html }, json.io), 0);
    assert.equal(json.out.length, 1);
    const doc = JSON.parse(json.out[0]!) as ReturnType<typeof toJson>;
    for (const key of [
      'file',
      'connections',
      'concluded',
      'withToa',
      'coverage',
      'misses',
      'mssHistogram',
      'fixes',
      'details',
    ]) {
      assert.ok(key in doc, `JSON lacks ${key}`);
    }
    assert.equal(doc.connections, CONNECTIONS);
    assert.equal(doc.misses['fin-data'], CONNECTIONS);
    assert.equal(doc.details.length, CONNECTIONS);
    assert.match(doc.fixes['fin-data'] ?? '', /FIN/);
    assert.deepEqual(json.err, [`wrote ${html}`]);

    const page = readFileSync(html, 'utf8');
    assert.match(page, /<svg id="mss-histogram"[^>]*>.*<rect class="bar"/s);
    assert.match(page, /<table id="misses">/);
    assert.match(page, /<table id="causes">/);
    assert.doesNotMatch(page, /<script|<link|\bsrc=|\bhref=|@import|url\(/i);

    const good = find('fin-data', 'lvs').pcap;
    for (const [name, bytes, pattern] of [
      ['truncated.pcap', good.subarray(0, good.length - 7), /truncated/],
      ['corrupt.pcap', Uint8Array.from({ length: 64 }, (_, i) => (i * 37) & 0xff), /unrecognised/],
    ] as const) {
      const bad = join(dir, name);
      writeFileSync(bad, bytes);
      const r = capture();
      assert.equal(await runDoctor({ file: bad, json: true }, r.io), 1, name);
      assert.deepEqual(r.out, [], `${name}: nothing on stdout`);
      assert.match(r.err.join('\n'), pattern, name);
    }
    const missing = capture();
    assert.equal(await runDoctor({ file: join(dir, 'nope.pcap') }, missing.io), 1);
    assert.match(missing.err.join('\n'), /cannot read/);
    const badMtu = capture();
    assert.equal(await runDoctor({ file, mtu: 20 }, badMtu.io), 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('HTML escapes what comes from outside', () => {
  const a = find('baseline', 'fullnat').analysis;
  const page = renderHtml('<img src=x onerror=alert(1)>.pcap', a);
  assert.doesNotMatch(page, /<img/);
  assert.match(page, /&lt;img src=x/);
  assert.match(formatText('x.pcap', a), /TOA coverage 100\.00 %/);
});
