/**
 * The cluster lab's parts that run anywhere: the address plan, the nodes'
 * configuration files (parsed and fleet-checked as `fullnat check` does),
 * the router's bird configuration (parsed by bird itself when installed),
 * reading `ip -j` routes, nexthop groups and `ip route get` answers, the
 * route watch, the report and the CLI's flags. The fleet itself runs in
 * test/e2e/cluster.test.ts.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/control/config/parse.js';
import { checkFleet } from '../../src/control/config/fleet-checks.js';
import { clusterOptionsFromFlags, syncOptionsFromFlags } from '../../src/cli/lab.js';
import {
  BURST_PORT_BASE,
  BURST_SOURCES,
  BURST_TUPLES,
  burstTuple,
  clusterNode,
  clusterNodes,
  nexthopId,
  nodeByGateway,
  RESILIENT_GROUP_ID,
} from '../../src/lab/cluster/plan.js';
import { nodeConfig, SYNC_PORT } from '../../src/lab/cluster/node-config.js';
import { metricValue } from '../../src/lab/cluster/node-metrics.js';
import { busyPercent, machineTicks, processCpuSeconds } from '../../src/lab/cluster/cpu.js';
import type { DownloadResult } from '../../src/lab/cluster/downloads.js';
import {
  brokenSummary,
  DEFAULT_SYNC_SETTINGS,
  downloadRate,
  tally,
  type SyncMeasurement,
} from '../../src/lab/cluster/sync-measure.js';
import { buildSyncReport, formatSyncTable } from '../../src/lab/cluster/sync-report.js';
import { addressToString } from '../../src/wire/address.js';
import { prefixToString } from '../../src/control/prefix.js';
import {
  parseNexthops,
  routeGateways,
  routerBirdConfig,
} from '../../src/lab/cluster/router-bird.js';
import { parseRouteGets, routeGetLines } from '../../src/lab/cluster/router-hash.js';
import { RouteWatch } from '../../src/lab/cluster/route-watch.js';
import { buildReport, formatClusterTable, type RouterRun } from '../../src/lab/cluster/report.js';
import type { FailoverResult, DrainResult, Spread } from '../../src/lab/cluster/measure.js';
import { birdBinaries } from '../../src/lab/cluster/topology.js';

describe('the address plan', () => {
  test('nodes: own address, AS, device and LIP prefix holding their LIPs', () => {
    const nodes = clusterNodes(3);
    assert.deepEqual(
      nodes.map((n) => [n.name, n.addr, n.asn, n.device, n.lipPrefix, n.lips.join(' ')]),
      [
        ['lb1', '10.120.2.11', 65001, 'fnat1', '10.120.17.0/28', '10.120.17.1 10.120.17.2'],
        ['lb2', '10.120.2.12', 65002, 'fnat2', '10.120.18.0/28', '10.120.18.1 10.120.18.2'],
        ['lb3', '10.120.2.13', 65003, 'fnat3', '10.120.19.0/28', '10.120.19.1 10.120.19.2'],
      ],
    );
    assert.throws(() => clusterNodes(1), /2\.\.8 nodes/);
    assert.throws(() => clusterNodes(9), /2\.\.8 nodes/);
    assert.throws(() => clusterNode(0), /out of 1\.\.8/);
    assert.equal(nodeByGateway(nodes, '10.120.2.12')?.name, 'lb2');
    assert.equal(nodeByGateway(nodes, '10.120.2.99'), undefined);
  });

  test('nexthop ids: the last octet, never the group id', () => {
    assert.equal(nexthopId('10.120.2.11'), 11);
    assert.equal(nexthopId('10.120.2.18'), 18);
    assert.throws(() => nexthopId(`10.120.2.${RESILIENT_GROUP_ID}`), /no nexthop id/);
  });

  test('new-connection tuples: sources in turn, ports upwards, each once', () => {
    const k = BURST_SOURCES.length;
    assert.deepEqual(burstTuple(0), { addr: BURST_SOURCES[0], port: BURST_PORT_BASE });
    assert.deepEqual(burstTuple(k - 1), { addr: BURST_SOURCES[k - 1], port: BURST_PORT_BASE });
    assert.deepEqual(burstTuple(k), { addr: BURST_SOURCES[0], port: BURST_PORT_BASE + 1 });
    const seen = new Set<string>();
    for (let j = 0; j < 5000; j++) {
      const t = burstTuple(j);
      seen.add(`${t.addr}:${t.port}`);
    }
    assert.equal(seen.size, 5000);
    assert.doesNotThrow(() => burstTuple(BURST_TUPLES - 1));
    assert.throws(() => burstTuple(BURST_TUPLES), /port range/);
  });
});

describe('the nodes’ configuration files', () => {
  const nodes = clusterNodes(3);
  const configs = nodes.map((n) =>
    parseConfig(nodeConfig(n, { dir: `/run/fncl/${n.name}`, drainTimeout: 5 }), `${n.name}.conf`),
  );

  test('each parses: its device, socket, state, LIPs, drain_timeout and bgp block', () => {
    const c = configs[1]!;
    assert.equal(c.defs.interface, 'fnat2');
    assert.equal(c.defs.controlSocket, '/run/fncl/lb2/fullnat.sock');
    assert.equal(c.defs.stateDir, '/run/fncl/lb2');
    assert.equal(c.defs.drainTimeout, 5);
    assert.equal(c.services.length, 1);
    assert.equal(c.services[0]!.scheduler, 'mh');
    const bgp = c.bgp!;
    assert.equal(bgp.localAs, 65002);
    assert.equal(bgp.neighbors.length, 1);
    assert.equal(bgp.neighbors[0]!.remoteAs, 65000);
    assert.equal(bgp.neighbors[0]!.bfd, true);
    assert.equal(bgp.neighbors[0]!.holdTime, 3);
    assert.equal(bgp.bfdInterval, 100);
    assert.equal(bgp.bfdMultiplier, 3);
    assert.equal(bgp.lipPrefixes.length, 1);
    assert.equal(bgp.lipPrefixes[0]!.length, 28);
  });

  test('together they pass the fleet checks without a warning', () => {
    const r = checkFleet(configs);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.warnings, []);
  });
});

describe('the nodes’ configuration files with sync', () => {
  const nodes = clusterNodes(3);
  const dir = mkdtempSync(join(tmpdir(), 'fncl-sync-'));
  const keyFile = join(dir, 'sync.key');
  writeFileSync(keyFile, 'a'.repeat(64), { mode: 0o600 });
  const configs = nodes.map((n) =>
    parseConfig(
      nodeConfig(n, {
        dir: `/run/fncl/${n.name}`,
        drainTimeout: 5,
        metrics: '127.0.0.1:9400',
        sync: { fleet: nodes, keyFile },
      }),
      `${n.name}.conf`,
    ),
  );
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('each has its sync block: its id and address, one key file, every other node a peer with its LIP prefix', () => {
    configs.forEach((c, k) => {
      const node = nodes[k]!;
      const sync = c.sync!;
      assert.ok(sync, node.name);
      assert.equal(sync.nodeId, node.index);
      assert.equal(sync.nodes, 3);
      assert.equal(addressToString(sync.listen.addr), node.addr);
      assert.equal(sync.listen.port, SYNC_PORT);
      assert.equal(sync.keyFile, keyFile);
      const others = nodes.filter((n) => n.name !== node.name);
      assert.deepEqual(
        sync.peers.map((p) => [
          addressToString(p.addr),
          p.port,
          p.nodeId,
          p.lipPrefixes.map(prefixToString),
        ]),
        others.map((n) => [n.addr, SYNC_PORT, n.index, [n.lipPrefix]]),
      );
      assert.deepEqual(c.defs.metrics, { host: '127.0.0.1', port: 9400 });
    });
  });

  test('together they pass the fleet checks, sync blocks and key file included, without a warning', () => {
    const r = checkFleet(configs);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.warnings, []);
  });

  test('without sync, no sync block and no metrics listener', () => {
    const c = parseConfig(
      nodeConfig(nodes[0]!, { dir: '/run/fncl/lb1', drainTimeout: 5 }),
      'lb1.conf',
    );
    assert.equal(c.sync, undefined);
    assert.equal(c.defs.metrics, undefined);
  });
});

describe('the router', () => {
  const nodes = clusterNodes(3);
  const conf = routerBirdConfig(nodes);

  test('bird: one passive BFD session per node, multipath routes to the kernel', () => {
    assert.match(
      conf,
      /protocol kernel \{\s+merge paths on;\s+ipv4 \{ import none; export all; \};/,
    );
    assert.match(conf, /min rx interval 100 ms;\s+min tx interval 100 ms;\s+multiplier 3;/);
    assert.match(conf, /passive on;\s+hold time 3;\s+bfd on;/);
    for (const n of nodes)
      assert.match(
        conf,
        new RegExp(`protocol bgp ${n.name} from fleet \\{\\s+neighbor ${n.addr} as ${n.asn};`),
      );
  });

  test(
    'bird accepts the configuration (bird -p)',
    { skip: birdBinaries() ? undefined : 'bird2 is not installed' },
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'fncl-bird-'));
      try {
        const file = join(dir, 'router.conf');
        writeFileSync(file, conf);
        execFileSync(birdBinaries()!.bird, ['-p', '-c', file], { stdio: 'pipe' });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test('routes: the members of the route in force (lowest metric), a nexthop object by id', () => {
    const multipath = JSON.stringify([
      {
        dst: '10.120.0.100',
        protocol: 'bird',
        metric: 32,
        flags: [],
        nexthops: [
          { gateway: '10.120.2.12', dev: 'br0', weight: 1, flags: [] },
          { gateway: '10.120.2.11', dev: 'br0', weight: 1, flags: [] },
        ],
      },
    ]);
    assert.deepEqual(routeGateways(multipath), ['10.120.2.11', '10.120.2.12']);
    const single = JSON.stringify([{ dst: '10.120.0.100', gateway: '10.120.2.13', metric: 32 }]);
    assert.deepEqual(routeGateways(single), ['10.120.2.13']);
    const both = JSON.stringify([
      { dst: '10.120.0.100', nhid: 100, metric: 1 },
      ...(JSON.parse(multipath) as object[]),
    ]);
    assert.deepEqual(routeGateways(both), ['nhid:100']);
    assert.deepEqual(routeGateways(''), []);
    assert.deepEqual(routeGateways('[]'), []);
  });

  test('nexthop objects: group members and gateways', () => {
    const json = JSON.stringify([
      { id: 11, gateway: '10.120.2.11', dev: 'br0', scope: 'link', flags: [] },
      { id: 12, gateway: '10.120.2.12', dev: 'br0', scope: 'link', flags: [] },
      {
        id: 100,
        group: [{ id: 11 }, { id: 12, weight: 1 }],
        type: 'resilient',
        resilient_args: { buckets: 64, idle_timer: 1 },
        flags: [],
      },
    ]);
    const { groups, gateways } = parseNexthops(json);
    assert.deepEqual(groups.get(100), [11, 12]);
    assert.equal(gateways.get(12), '10.120.2.12');
    assert.equal(gateways.get(100), undefined);
  });

  test('ip route get: one question per tuple, the gateway of each answer in order', () => {
    assert.deepEqual(routeGetLines([{ addr: '10.120.9.1', port: 20000 }]), [
      'route get 10.120.0.100 from 10.120.9.1 iif eth-c ipproto tcp sport 20000 dport 80',
    ]);
    const out = [
      '10.120.0.100 from 10.120.9.1 via 10.120.2.12 dev br0 ',
      '    cache iif eth-c ',
      '10.120.0.100 from 10.120.9.2 via 10.120.2.11 dev br0 ',
      '    cache iif eth-c ',
      'unreachable 10.120.0.100 from 10.120.9.3 ',
      '10.120.0.100 from 10.120.9.4 dev br0 ',
    ].join('\n');
    assert.deepEqual(parseRouteGets(out), ['10.120.2.12', '10.120.2.11', null]);
  });
});

test('the route watch: when a member was first seen gone', async () => {
  const reads = [['a', 'b'], ['a', 'b'], ['b'], ['b']];
  let k = 0;
  const w = new RouteWatch(async () => reads[Math.min(k++, reads.length - 1)]!, 1);
  w.start();
  while (k < reads.length + 1) await new Promise((r) => setTimeout(r, 2));
  await w.stop();
  assert.deepEqual(
    w.changes.map((c) => c.gateways),
    [['a', 'b'], ['b']],
  );
  const [first, second] = w.changes;
  assert.equal(w.firstWithout('a', first!.at), second!.at);
  // Already gone when asked from a later time: that time.
  assert.equal(w.firstWithout('a', second!.at + 5), second!.at + 5);
  assert.equal(w.firstWithout('b', first!.at), null);
});

describe('the report', () => {
  const spread = (per: [string, number][]): Spread => ({
    connections: per.reduce((n, [, c]) => n + c, 0),
    realIp: per.reduce((n, [, c]) => n + c, 0),
    perNode: per.map(([node, connections]) => ({ node, connections })),
    failed: 0,
    unmapped: 0,
    hashChecked: 3,
    hashAgreed: 3,
  });
  const newConns = {
    attempted: 10_000,
    succeeded: 9_995,
    realIp: 9_995,
    retried: 40,
    attempts: 10_040,
    failedAttempts: { timeout: 40 },
    inWindow: { attempted: 1_300, succeeded: 1_295 },
    durationMs: 9_990,
  };
  const failover = (router: 'ecmp' | 'resilient', broken: number): FailoverResult => ({
    router,
    killed: 'lb1',
    failoverMs: 310,
    routeMs: router === 'ecmp' ? 280 : 300,
    brokenSurvivors: broken,
    survivorConnections: 80,
    brokenKilled: 40,
    killedConnections: 40,
    spread: spread([
      ['lb1', 40],
      ['lb2', 41],
      ['lb3', 39],
    ]),
    newConnections: newConns,
  });
  const drain = (router: 'ecmp' | 'resilient'): DrainResult => ({
    router,
    node: 'lb2',
    newToDrainingAfterMs: 60,
    routeMs: 40,
    brokenDrained: 38,
    drainedConnections: 38,
    brokenOthers: 0,
    otherConnections: 82,
    exitedAfterMs: 5100,
    spread: spread([
      ['lb1', 42],
      ['lb2', 38],
      ['lb3', 40],
    ]),
    newConnections: newConns,
  });
  const runs: RouterRun[] = [
    { router: 'ecmp', failover: failover('ecmp', 20), drain: drain('ecmp') },
    { router: 'resilient', failover: failover('resilient', 0), drain: drain('resilient') },
  ];

  test("the issue's document, its figures from the resilient group, every mode beside", () => {
    const r = buildReport(['lb1', 'lb2', 'lb3'], runs, 'ebpf', 123_000);
    const doc = JSON.parse(JSON.stringify(r)) as Record<string, unknown>;
    for (const key of [
      'mode',
      'nodes',
      'connections',
      'realIp',
      'perNode',
      'failoverMs',
      'brokenSurvivors',
      'brokenKilled',
      'drain',
    ])
      assert.ok(key in doc, key);
    assert.equal(r.mode, 'cluster');
    assert.equal(r.nodes, 3);
    assert.equal(r.connections, 480);
    assert.equal(r.realIp, 480);
    assert.deepEqual(r.perNode, [
      { node: 'lb1', connections: 164 },
      { node: 'lb2', connections: 158 },
      { node: 'lb3', connections: 158 },
    ]);
    assert.equal(r.router, 'resilient');
    assert.equal(r.failoverMs, 310);
    assert.equal(r.routeMs, 300);
    assert.equal(r.brokenSurvivors, 0);
    assert.equal(r.brokenKilled, 40);
    assert.deepEqual(r.drain, { newToDrainingAfterMs: 60, brokenDrained: 38 });
    assert.deepEqual(r.retry, { attempted: 10_000, succeeded: 9_995, realIp: 9_995 });
    assert.deepEqual(
      r.routers.map((x) => x.router),
      ['ecmp', 'resilient'],
    );
  });

  test('without a resilient run the figures come from the first mode', () => {
    const r = buildReport(['lb1', 'lb2', 'lb3'], [runs[0]!], 'ebpf', 1);
    assert.equal(r.router, 'ecmp');
    assert.equal(r.brokenSurvivors, 20);
    assert.throws(() => buildReport(['lb1'], [], 'ebpf', 1), /no router mode/);
  });

  test('the table: one column per router mode', () => {
    const t = formatClusterTable(buildReport(['lb1', 'lb2', 'lb3'], runs, 'ebpf', 1));
    assert.match(t, /^router +ECMP \(hash-threshold\) +resilient nexthop group$/m);
    assert.match(t, /^broken on survivors +20\/80 \(25\.00 %\) +0\/80 \(0\.00 %\)$/m);
    assert.match(t, /^first new connection to its share +310 ms +310 ms$/m);
    assert.match(t, /^new connections within 1 s +9995\/10000 \(99\.95 %\)/m);
    assert.match(t, /^last new connection to it after +60 ms +60 ms$/m);
    assert.match(t, /real client IP on 480\/480 \(100\.00 %\)$/);
  });
});

test('lab --cluster --sync / --no-sync flags: the scenario and its sizes; neither is the failover lab', () => {
  assert.equal(syncOptionsFromFlags({}), undefined);
  assert.deepEqual(syncOptionsFromFlags({ sync: true }), { nodes: 3, sync: true, settings: {} });
  assert.deepEqual(
    syncOptionsFromFlags({ sync: false, transfers: 30, objectMb: 10, transferSeconds: 20 }),
    {
      nodes: 3,
      sync: false,
      settings: { transfers: 30, objectBytes: 10 * 1024 * 1024, transferSeconds: 20 },
    },
  );
  assert.throws(() => syncOptionsFromFlags({ sync: true, nodes: 9 }), /2\.\.8 nodes/);
  // The issue's scenario by default: 300 downloads of 50 MiB, each ≥ 10 s at the servers' rate.
  const d = DEFAULT_SYNC_SETTINGS;
  assert.equal(d.transfers, 300);
  assert.equal(d.objectBytes, 50 * 1024 * 1024);
  assert.ok(d.objectBytes / downloadRate(d) >= 10);
});

test('lab --cluster flags: nodes 2..8, router modes, sizes', () => {
  const d = clusterOptionsFromFlags({});
  assert.equal(d.nodes, 3);
  assert.deepEqual(d.routers, ['ecmp', 'resilient']);
  assert.equal(d.drain, true);
  assert.equal(d.settings?.newConnections, 10_000);
  const o = clusterOptionsFromFlags({
    nodes: 4,
    router: 'resilient',
    newConnections: 500,
    rate: 250,
    hold: 5,
    drain: false,
  });
  assert.equal(o.nodes, 4);
  assert.deepEqual(o.routers, ['resilient']);
  assert.equal(o.drain, false);
  assert.deepEqual(
    [o.settings?.newConnections, o.settings?.rate, o.settings?.holdPerNode],
    [500, 250, 5],
  );
  assert.throws(() => clusterOptionsFromFlags({ nodes: 1 }), /2\.\.8 nodes/);
  assert.throws(() => clusterOptionsFromFlags({ nodes: 9 }), /2\.\.8 nodes/);
  assert.throws(() => clusterOptionsFromFlags({ router: 'wcmp' }), /unknown router "wcmp"/);
});

test('node metrics: one family summed over the samples with the labels asked', () => {
  const text = [
    '# HELP fullnat_sync_bytes_total Sync bytes.',
    '# TYPE fullnat_sync_bytes_total counter',
    'fullnat_sync_bytes_total{direction="out"} 1200',
    'fullnat_sync_bytes_total{direction="in"} 800',
    'fullnat_sync_bytes_total_extra{direction="out"} 5',
    'fullnat_connections 3',
  ].join('\n');
  assert.equal(metricValue(text, 'fullnat_sync_bytes_total', { direction: 'out' }), 1200);
  assert.equal(metricValue(text, 'fullnat_sync_bytes_total'), 2000);
  assert.equal(metricValue(text, 'fullnat_connections'), 3);
  assert.equal(metricValue(text, 'fullnat_sync_bytes_total', { direction: 'sideways' }), null);
  assert.equal(metricValue('', 'fullnat_sync_bytes_total'), null);
});

test('CPU: the machine busy between two reads, a process’s seconds past its name', () => {
  const a = machineTicks('cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n');
  const b = machineTicks('cpu  250 0 100 1000 50 0 0 0 0 0\n');
  assert.deepEqual(a, { total: 1000, idle: 850 });
  assert.equal(busyPercent(a, b), 50);
  assert.equal(busyPercent(a, a), 0);
  const stat = '4242 (node (x) y) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 1 0';
  assert.equal(processCpuSeconds(4242, stat), 4);
  assert.equal(processCpuSeconds(2 ** 30), null);
});

describe('the sync scenario’s report', () => {
  const result = (
    i: number,
    state: 'completed' | 'broken',
    reason: string | null,
    peerIsClient = true,
  ): DownloadResult => ({
    i,
    local: `10.120.8.1:${40000 + i}`,
    peer: peerIsClient ? `10.120.8.1:${40000 + i}` : '10.120.17.1:5000',
    rs: 'r1',
    state,
    reason,
    bytes: state === 'completed' ? 100 : 40,
    sha256Ok: state === 'completed',
    start: 1000,
    end: 2000 + i,
  });
  const results = [
    result(0, 'completed', null),
    result(1, 'completed', null, false),
    result(2, 'broken', 'timeout'),
    result(3, 'broken', 'reset'),
    result(4, 'broken', 'timeout'),
  ];
  const nodeOf = new Map([
    ['10.120.8.1:40000', 'lb1'],
    ['10.120.8.1:40001', 'lb2'],
    ['10.120.8.1:40002', 'lb1'],
    ['10.120.8.1:40003', 'lb2'],
    ['10.120.8.1:40004', 'lb1'],
  ]);

  test('tally: completed, sha256, real IP, broken by reason and by node; an unreported one is broken', () => {
    assert.deepEqual(tally(results, 6, nodeOf, 'lb1'), {
      transfers: 6,
      completed: 2,
      sha256Ok: 2,
      realIp: 4,
      broken: 4,
      brokenBy: { timeout: 2, reset: 1, unreported: 1 },
      brokenKilled: 2,
      brokenSurvivors: 2,
    });
    assert.deepEqual(brokenSummary(results, nodeOf, 1000), [
      'broken (timeout): 2, lb1 2; 1002..1004 ms after the kill, after 40..40 bytes',
      'broken (reset): 1, lb2 1; 1003..1003 ms after the kill, after 40..40 bytes',
    ]);
  });

  const measurement = (sync: boolean): SyncMeasurement => ({
    ...tally(sync ? results.slice(0, 2) : results, sync ? 2 : 5, nodeOf, 'lb1'),
    perNode: [
      { node: 'lb1', transfers: 3, tableEntries: 3 },
      { node: 'lb2', transfers: 2, tableEntries: 2 },
    ],
    killed: { node: 'lb1', transfers: 3, birdPid: 77, birdGoneAfterMs: 30, routeAfterMs: 280 },
    restart: {
      startedAfterMs: 5000,
      runningAfterMs: 5900,
      announcedAfterMs: 9000,
      tableAtAnnounce: sync ? 5 : 0,
      probes: {
        attempted: 60,
        succeeded: 60,
        realIp: 60,
        toRestarted: 20,
        toRestartedSucceeded: 20,
        failures: {},
      },
      ok: true,
    },
    syncBytesOut: sync ? 36_000 : null,
    connectionsCreated: 360,
    syncBytesPerConnection: sync ? 100 : null,
    rateBytesPerSecond: 524_288,
    objectBytes: 52_428_800,
    transferMs: { min: 100_000, median: 100_300, max: 101_000 },
    bytes: 200,
    durations: { flowingMs: 3000, killAtMs: 4000, downloadsMs: 103_000 },
    cpu: { cpus: 2, busyPercent: 60, nodeSeconds: { lb1: 4, lb2: 5 }, clientSeconds: 11 },
  });

  test("the issue's document: its fields first, in its order; syncBytesPerConnection null without sync", () => {
    const r = buildSyncReport(measurement(true), 3, true, 'ebpf', 120_000);
    assert.deepEqual(Object.keys(r).slice(0, 9), [
      'mode',
      'nodes',
      'transfers',
      'completed',
      'sha256Ok',
      'realIp',
      'broken',
      'syncBytesPerConnection',
      'sync',
    ]);
    assert.equal(r.mode, 'cluster-sync');
    assert.equal(r.syncBytesPerConnection, 100);
    assert.equal(r.killed.node, 'lb1');
    assert.equal(r.elapsedMs, 120_000);
    const off = buildSyncReport(
      { ...measurement(false), syncBytesPerConnection: 7 },
      3,
      false,
      'ebpf',
      1,
    );
    assert.equal(off.syncBytesPerConnection, null);
    assert.equal(off.broken, 3);
  });

  test('the table', () => {
    const t = formatSyncTable(buildSyncReport(measurement(false), 3, false, 'ebpf', 120_000));
    assert.match(t, /^sync +off \(the figure to beat\)$/m);
    assert.match(t, /^completed +2\/5 \(40\.0 %\)$/m);
    assert.match(t, /^broken +3\/5 \(60\.0 %\): timeout 2, reset 1$/m);
    assert.match(t, /^… on the killed node \/ the others +2\/3 \(66\.7 %\) \/ 1\/2 \(50\.0 %\)$/m);
    assert.match(t, /^… its bird gone after +30 ms$/m);
    assert.match(
      t,
      /^… new connections after \(through it\) +60\/60 \(100\.0 %\) \(20\/20\); real IP 60$/m,
    );
    assert.match(t, /^sync bytes per connection +-$/m);
    const on = formatSyncTable(buildSyncReport(measurement(true), 3, true, 'ebpf', 1));
    assert.match(on, /^sync bytes per connection +100 \(36000 bytes, 360 connections\)$/m);
  });
});
