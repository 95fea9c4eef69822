/**
 * The network bench's pure helpers: medians and ranges over rounds, their
 * table cells, the NAPI thread's state per phase from fullnat's log, the RS's
 * TIME_WAIT count, and each round's own LIPs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cpuGrowth,
  formatSpread,
  lipsFor,
  MAX_ROUNDS,
  median,
  napiDuring,
  parseNapiSwitches,
  ratioOf,
  spread,
  timeWaitToward,
} from '../../bench/net-stats.js';
import { formatNetTable, summarise, type VariantResult } from '../../bench/net.js';

test('median: odd and even counts, unsorted input, non-finite values skipped', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([5, NaN, 1, Infinity, 3]), 3);
  assert.ok(Number.isNaN(median([])));
});

test('spread: median, min, max and the rounds that gave a figure', () => {
  assert.deepEqual(spread([10, null, 30, 20, undefined]), { median: 20, min: 10, max: 30, n: 3 });
  assert.deepEqual(spread([7]), { median: 7, min: 7, max: 7, n: 1 });
  assert.equal(spread([null, NaN]), null);
});

test('formatSpread: median (min–max), the ratio, and missing rounds said', () => {
  const s = { median: 1.234, min: 1.1, max: 1.5, n: 3 };
  assert.equal(formatSpread(s, 2, 3), '1.23 (1.10–1.50)');
  assert.equal(formatSpread(s, 2, 3, 0.5), '1.23 (1.10–1.50) 0.50×');
  assert.equal(formatSpread(s, 2, 3, null), '1.23 (1.10–1.50) n/a×');
  assert.equal(formatSpread({ ...s, n: 2 }, 1, 3), '1.2 (1.1–1.5) [2/3 rounds]');
  assert.equal(formatSpread({ median: 5, min: 5, max: 5, n: 1 }, 0, 1), '5');
  assert.equal(formatSpread(null, 2, 3), 'n/a');
});

test('ratioOf: null when either side is missing or the divisor is 0', () => {
  assert.equal(ratioOf(3, 4), 0.75);
  assert.equal(ratioOf(null, 4), null);
  assert.equal(ratioOf(3, 0), null);
  assert.equal(ratioOf(3, NaN), null);
});

const line = (iso: string, threaded: boolean): string =>
  JSON.stringify({ level: 30, time: iso, device: 'fnb0', threaded, msg: 'NAPI thread switched' });

test('parseNapiSwitches: the switch lines of a pino log, in time order; other lines skipped', () => {
  const log = [
    '{"level":30,"time":"2026-12-07T03:00:00.000Z","msg":"fullnat running"}',
    line('2026-12-07T03:00:02.000Z', false),
    'not json NAPI thread switched',
    line('2026-12-07T03:00:01.000Z', true),
    '{"level":30,"time":"2026-12-07T03:00:03.000Z","msg":"NAPI thread switched"}',
  ].join('\n');
  assert.deepEqual(parseNapiSwitches(log), [
    { atMs: Date.parse('2026-12-07T03:00:01.000Z'), threaded: true },
    { atMs: Date.parse('2026-12-07T03:00:02.000Z'), threaded: false },
  ]);
});

test('napiDuring: state at the start, switches inside, share of time on', () => {
  const sw = [
    { atMs: 1000, threaded: true },
    { atMs: 3000, threaded: false },
    { atMs: 9000, threaded: true },
  ];
  // Off from the start, on over [1000, 3000) of [0, 4000).
  assert.deepEqual(napiDuring(sw, false, 0, 4000), { onAtStart: false, switches: 2, onShare: 0.5 });
  // Begins while on (switched at 1000), off at 3000: on for 1000 of 2000.
  assert.deepEqual(napiDuring(sw, false, 2000, 4000), {
    onAtStart: true,
    switches: 1,
    onShare: 0.5,
  });
  // No switch inside; the state comes from the last one before.
  assert.deepEqual(napiDuring(sw, false, 4000, 8000), {
    onAtStart: false,
    switches: 0,
    onShare: 0,
  });
  assert.deepEqual(napiDuring(sw, false, 10000, 12000), {
    onAtStart: true,
    switches: 0,
    onShare: 1,
  });
  // The initial state counts until the first switch.
  assert.deepEqual(napiDuring([], true, 0, 100), { onAtStart: true, switches: 0, onShare: 1 });
});

test('timeWaitToward: counts TIME_WAIT sockets by peer address only', () => {
  const ss = [
    '0      0      10.88.2.2:80     10.88.4.1:5123',
    '0      0      10.88.2.2:80     10.88.4.11:5123',
    '0      0      10.88.2.2:5201   10.88.4.2:6000',
    '0      0      10.88.2.2:80     10.88.1.2:40000',
    '',
  ].join('\n');
  assert.equal(timeWaitToward(ss, ['10.88.4.1', '10.88.4.2']), 2);
  assert.equal(timeWaitToward(ss, ['10.88.3.1']), 0);
});

test('lipsFor: every (variant, round) its own addresses, none shared', () => {
  const seen = new Set<string>();
  for (const v of ['kernel', 'haproxy', 'fullnat'] as const) {
    for (let r = 0; r < MAX_ROUNDS; r++) {
      for (const a of lipsFor(v, r)) {
        assert.ok(!seen.has(a), `${a} used twice`);
        const last = Number(a.split('.')[3]);
        assert.ok(last >= 1 && last <= 254, a);
        seen.add(a);
      }
    }
  }
  assert.deepEqual(lipsFor('fullnat', 1), ['10.88.4.5', '10.88.4.6', '10.88.4.7', '10.88.4.8']);
  assert.throws(() => lipsFor('kernel', MAX_ROUNDS), /outside/);
  assert.throws(() => lipsFor('kernel', -1), /outside/);
});

test('cpuGrowth: growth of processes alive in both samples, new ones whole, ended ones not subtracted', () => {
  const before = new Map([
    [1, 10],
    [2, 5],
    [3, 100], // ends before the second sample
    [4, 50], // pid reused by a process that has used 0.5 s so far
  ]);
  const after = new Map([
    [1, 10.5],
    [2, 5],
    [4, 0.5],
    [9, 2], // started in between
  ]);
  assert.equal(cpuGrowth(before, after), 0.5 + 0 + 0.5 + 2);
  assert.equal(cpuGrowth(new Map(), new Map()), 0);
});

function run(variant: VariantResult['variant'], round: number, gbps: number): VariantResult {
  return {
    variant,
    round,
    sources: [],
    rsTimeWaitBefore: 0,
    rsTimeWaitPreviousRound: null,
    throughput: { bitsPerSecond: gbps * 1e9, retransmits: 0 },
    download: null,
    smallPackets: null,
    http: { connections: 100, connectionsPerSecond: 1000 * gbps, p50Ms: 1, p99Ms: 2, errors: 0 },
    moderate: null,
    mixed: null,
    udp:
      variant === 'haproxy'
        ? null
        : {
            packetsPerSecond: 100_000 * gbps,
            lbIngressPacketsPerSecond: 120_000 * gbps,
            sentPerSecond: 150_000,
            lostPercent: 10 * round,
          },
    cpu: null,
    backgroundCpus: { throughput: 0, http: 0, mixed: 0, udp: 0 },
    ...(variant === 'fullnat'
      ? {
          napi: {
            small: { onAtStart: false, switches: 1, onShare: round === 0 ? 0.8 : 0 },
          },
        }
      : {}),
    notes: [],
  };
}

test('summarise and formatNetTable: medians with ranges, ratios to kernel, NAPI per phase', () => {
  const kernel = summarise('kernel', [
    run('kernel', 0, 10),
    run('kernel', 1, 12),
    run('kernel', 2, 11),
  ]);
  const fullnat = summarise('fullnat', [
    run('fullnat', 0, 9),
    run('fullnat', 1, 6),
    run('fullnat', 2, 8),
  ]);
  assert.deepEqual(kernel.figures.throughputGbps, { median: 11, min: 10, max: 12, n: 3 });
  assert.equal(kernel.figures.downloadGbps, null);
  assert.deepEqual(fullnat.napi?.small, {
    roundsOn: 1,
    rounds: 3,
    onShare: { median: 0, min: 0, max: 0.8, n: 3 },
  });
  const table = formatNetTable({
    seconds: 2,
    rounds: 3,
    kernel: 'test',
    cpus: 2,
    offloads: '',
    setup: ['setup line'],
    napiThread: 'auto',
    variants: [kernel, fullnat],
    ratios: { kernel: { throughputGbps: 1 }, fullnat: { throughputGbps: 8 / 11 } },
    targets: { throughput: { value: 8 / 11, target: '≥ 0.8× kernel', met: false } },
    runs: [],
    runSeconds: 1,
  });
  assert.match(table, /\| kernel \| 11\.00 \(10\.00–12\.00\) 1\.00× \|/);
  assert.match(table, /\| fullnat \| 8\.00 \(6\.00–9\.00\) 0\.73× \|/);
  assert.match(table, /\| small \| 1\/3 \| 0 \(0–80\) % \|/);
  assert.match(table, /NAPI thread \(`napi_thread auto`\)/);
  assert.match(table, /\| throughput ≥ 0\.8× kernel \| 0\.73× \| no \|/);
  assert.match(table, /- setup line/);
});

test('summarise and formatNetTable: the UDP datagram rate with its range, ratio and target; haproxy said to balance no UDP', () => {
  const rounds = (v: VariantResult['variant'], gbps: number[]): VariantResult[] =>
    gbps.map((g, i) => run(v, i, g));
  const kernel = summarise('kernel', rounds('kernel', [10, 12, 11]));
  const haproxy = summarise('haproxy', rounds('haproxy', [5, 5, 5]));
  const fullnat = summarise('fullnat', rounds('fullnat', [4, 6, 5]));
  assert.deepEqual(kernel.figures.udpKpps, { median: 1100, min: 1000, max: 1200, n: 3 });
  assert.deepEqual(fullnat.figures.udpKppsLbIngress, { median: 600, min: 480, max: 720, n: 3 });
  assert.deepEqual(fullnat.figures.udpLossPercent, { median: 10, min: 0, max: 20, n: 3 });
  assert.equal(haproxy.figures.udpKpps, null);
  const table = formatNetTable({
    seconds: 2,
    rounds: 3,
    kernel: 'test',
    cpus: 2,
    offloads: '',
    setup: [],
    napiThread: 'auto',
    variants: [kernel, haproxy, fullnat],
    ratios: {
      kernel: { udpKpps: 1, udpKppsLbIngress: 1 },
      fullnat: { udpKpps: 500 / 1100, udpKppsLbIngress: 600 / 1320 },
    },
    targets: {
      udpPackets: { value: 500 / 1100, target: '≥ 0.5× kernel (UDP, at the RS)', met: false },
    },
    runs: [],
    runSeconds: 1,
  });
  assert.match(table, /iperf3 -u -l 18 -b 0 \(46-byte IP packets\)/);
  assert.match(
    table,
    /\| kernel \| 1100 \(1000–1200\) 1\.00× \| 1320 \(1200–1440\) 1\.00× \| 10\.0 \(0\.0–20\.0\) \|/,
  );
  assert.match(
    table,
    /\| fullnat \| 500 \(400–600\) 0\.45× \| 600 \(480–720\) 0\.45× \| 10\.0 \(0\.0–20\.0\) \|/,
  );
  assert.match(table, /\| haproxy \| n\/a: HAProxy balances no UDP \| n\/a \| n\/a \|/);
  assert.match(table, /\| udpPackets ≥ 0\.5× kernel \(UDP, at the RS\) \| 0\.45× \| no \|/);
});
