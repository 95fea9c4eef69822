/**
 * The fleet's control surface: `ctl --drain` and `ctl --cluster` (argv,
 * the request over a real socket, what they print), the `drain` op's
 * validation, Snapshot.cluster in the metrics, and a single node without
 * `bgp` left as it was.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCtlArgs } from '../../../src/control/ctl/index.js';
import { formatCluster } from '../../../src/control/ctl/cluster-format.js';
import { createMetricsRegistry } from '../../../src/control/metrics.js';
import type { ClusterStatus, Snapshot } from '../../../src/control/model.js';
import { validateControlRequest } from '../../../src/control/socket/index.js';
import { ipv4 } from '../../support/addresses.js';
import { RecordingLb, serveCtl, type CtlBench } from '../../support/ctl-bench.js';
import { ONE_SERVICE, tempConfig, testLb } from '../../support/lb-harness.js';
import { noHost } from '../../support/no-host.js';

const T0 = Date.UTC(2026, 0, 1);

const CLUSTER: ClusterStatus = {
  speaker: {
    mode: 'managed',
    running: true,
    pid: 4242,
    restarts: 1,
    socket: '/run/fullnat/bird.ctl',
    config: '/run/fullnat/bird.conf',
    sessions: [
      {
        addr: ipv4('10.79.0.1'),
        remoteAs: 65000,
        state: 'Established',
        up: true,
        since: '17:32:24.413',
        bfd: 'Up',
      },
      {
        addr: ipv4('10.79.0.2'),
        remoteAs: 65000,
        state: 'Active',
        up: false,
        info: 'Socket: Connection refused',
      },
    ],
  },
  announced: ['10.79.100.1/32', '10.79.9.0/28'],
  withheld: [{ prefix: '10.79.100.2/32', reason: 'quorum' }],
  drain: {
    active: true,
    startedAt: T0,
    connectionsAtStart: 40,
    connectionsLeft: 12,
    timeout: 30,
  },
};

const snap = (cluster?: ClusterStatus): Snapshot => ({
  services: [],
  counters: {},
  connections: 0,
  uptime: 1,
  ...(cluster ? { cluster } : {}),
});

test('ctl argv: --drain and --cluster are commands of their own', () => {
  assert.deepEqual(parseCtlArgs(['--drain']), { kind: 'drain' });
  assert.deepEqual(parseCtlArgs(['--cluster']), { kind: 'cluster' });
  assert.deepEqual(parseCtlArgs(['--cluster', '-n']), { kind: 'cluster' });
  assert.throws(() => parseCtlArgs(['--drain', '-t', '10.0.0.1:80']), /not allowed with --drain/);
  assert.throws(() => parseCtlArgs(['--drain', '--shutdown']), /multiple commands/);
});

test('the drain op: an optional whole number of seconds, 1..86400, nothing else', () => {
  assert.deepEqual(validateControlRequest({ op: 'drain' }), { ok: true, request: { op: 'drain' } });
  assert.deepEqual(validateControlRequest({ op: 'drain', timeout: 30 }), {
    ok: true,
    request: { op: 'drain', timeout: 30 },
  });
  for (const timeout of [0, 1.5, -1, 86_401, '30', null]) {
    const r = validateControlRequest({ op: 'drain', timeout });
    assert.equal(r.ok, false, String(timeout));
    if (!r.ok) assert.match(r.error, /^timeout must be an integer 1-86400/);
  }
  const extra = validateControlRequest({ op: 'drain', force: true });
  assert.deepEqual(extra, { ok: false, error: 'unexpected field "force" in op "drain"' });
});

test('ctl --cluster: speaker, neighbours with BFD, announced and withheld prefixes, drain progress', () => {
  assert.deepEqual(formatCluster(snap(CLUSTER), T0 + 5_200), [
    'BGP speaker: bird managed, running (pid 4242), restarts 1',
    '  socket /run/fullnat/bird.ctl',
    '  config /run/fullnat/bird.conf',
    'Neighbor                  RemoteAS   State        BFD      Since         Info',
    '10.79.0.1                 65000      Established  Up       17:32:24.413',
    '10.79.0.2                 65000      Active       -                      Socket: Connection refused',
    'Announced (2):',
    '  10.79.100.1/32',
    '  10.79.9.0/28',
    'Withheld (1):',
    '  10.79.100.2/32          quorum',
    'Drain: active, 12 of 40 connections left, 5.2 s of 30 s',
  ]);
  assert.deepEqual(formatCluster(snap()), [
    'No bgp block: this node announces nothing, and no drain has run.',
  ]);
  const ended = formatCluster(
    snap({
      announced: [],
      withheld: [],
      drain: { ...CLUSTER.drain!, active: false, ended: 'timeout' },
    }),
  );
  assert.deepEqual(ended, [
    'No bgp block: nothing is announced.',
    'Announced (0):',
    'Drain: ended (timeout), 12 of 40 connections left',
  ]);
});

test('metrics: BGP and BFD per neighbour, the prefixes, the drain', async () => {
  const text = await createMetricsRegistry(() => snap(CLUSTER), {
    defaultMetrics: false,
  }).metrics();
  for (const line of [
    'fullnat_bgp_session_up{neighbor="10.79.0.1"} 1',
    'fullnat_bgp_session_up{neighbor="10.79.0.2"} 0',
    'fullnat_bfd_session_up{neighbor="10.79.0.1"} 1',
    'fullnat_bgp_announced_prefixes 2',
    'fullnat_bgp_prefix_announced{prefix="10.79.100.1/32"} 1',
    'fullnat_bgp_prefix_announced{prefix="10.79.9.0/28"} 1',
    'fullnat_bgp_prefix_announced{prefix="10.79.100.2/32"} 0',
    'fullnat_drain_active 1',
    'fullnat_drain_connections_left 12',
  ])
    assert.ok(text.split('\n').includes(line), line);
  // BFD off for the second neighbour: no series rather than a 0 that reads as "down".
  assert.doesNotMatch(text, /fullnat_bfd_session_up\{neighbor="10\.79\.0\.2"\}/);
});

/** A sync node: its own LIP prefix, two peers' as backups, one of them held back with everything while resyncing. */
const SYNCING: ClusterStatus = {
  announced: ['10.79.100.1/32', '10.79.9.0/28', '10.79.9.16/28', '10.79.9.32/28'],
  backup: ['10.79.9.16/28', '10.79.9.32/28'],
  withheld: [],
};

test('ctl --cluster marks the backups; a resync says why everything is held back', () => {
  assert.deepEqual(formatCluster(snap(SYNCING)), [
    'No bgp block: nothing is announced.',
    'Announced (4):',
    '  10.79.100.1/32',
    '  10.79.9.0/28',
    '  10.79.9.16/28           backup',
    '  10.79.9.32/28           backup',
  ]);
  const resync = formatCluster(
    snap({
      announced: [],
      backup: ['10.79.9.16/28'],
      withheld: [
        { prefix: '10.79.100.1/32', reason: 'resync' },
        { prefix: '10.79.100.2/32', reason: 'quorum' },
        { prefix: '10.79.9.0/28', reason: 'resync' },
        { prefix: '10.79.9.16/28', reason: 'resync' },
      ],
    }),
  );
  assert.deepEqual(resync, [
    'No bgp block: nothing is announced.',
    'Announced (0):',
    'Withheld (4):',
    '  10.79.100.1/32          resync',
    '  10.79.100.2/32          quorum',
    '  10.79.9.0/28            resync',
    '  10.79.9.16/28           resync (backup)',
    "Sync: waiting for the peers' tables; nothing is announced until then.",
  ]);
});

test('metrics: a backup carries role="backup", announced or held back; own prefixes keep their one label', async () => {
  const text = await createMetricsRegistry(() => snap(SYNCING), {
    defaultMetrics: false,
  }).metrics();
  for (const line of [
    'fullnat_bgp_announced_prefixes 4',
    'fullnat_bgp_prefix_announced{prefix="10.79.100.1/32"} 1',
    'fullnat_bgp_prefix_announced{prefix="10.79.9.0/28"} 1',
    'fullnat_bgp_prefix_announced{prefix="10.79.9.16/28",role="backup"} 1',
    'fullnat_bgp_prefix_announced{prefix="10.79.9.32/28",role="backup"} 1',
  ])
    assert.ok(text.split('\n').includes(line), line);
  const held = await createMetricsRegistry(
    () =>
      snap({
        announced: [],
        backup: ['10.79.9.16/28'],
        withheld: [
          { prefix: '10.79.9.0/28', reason: 'resync' },
          { prefix: '10.79.9.16/28', reason: 'resync' },
        ],
      }),
    { defaultMetrics: false },
  ).metrics();
  for (const line of [
    'fullnat_bgp_announced_prefixes 0',
    'fullnat_bgp_prefix_announced{prefix="10.79.9.0/28"} 0',
    'fullnat_bgp_prefix_announced{prefix="10.79.9.16/28",role="backup"} 0',
  ])
    assert.ok(held.split('\n').includes(line), line);
});

test('a single node without bgp: no cluster in the snapshot, the fleet metrics at 0 with no series', async () => {
  const lb = testLb(tempConfig('fullnat-cl-', ONE_SERVICE), noHost);
  const s = lb.snapshot();
  assert.equal('cluster' in s, false);
  const text = await createMetricsRegistry(() => s, { defaultMetrics: false }).metrics();
  assert.match(text, /^fullnat_drain_active 0$/m);
  assert.match(text, /^fullnat_bgp_announced_prefixes 0$/m);
  assert.doesNotMatch(text, /^fullnat_bgp_session_up\{/m);
  assert.doesNotMatch(text, /^fullnat_bgp_prefix_announced\{/m);
  // The op needs the process (fullnat run) around the LB.
  assert.deepEqual(await lb.handle({ op: 'drain' }), {
    ok: false,
    error: 'drain is not available without fullnat run',
  });
});

let bench: CtlBench;
const lbStandIn = new RecordingLb(() => snap(CLUSTER), []);
before(async () => {
  // A drain answer carries the snapshot with the drain in it.
  const api = {
    handle: async (req: Parameters<RecordingLb['handle']>[0]) =>
      req.op === 'drain' ? { ok: true as const, snapshot: snap(CLUSTER) } : lbStandIn.handle(req),
  };
  bench = await serveCtl(api, 'fullnat-ctl-cluster-');
});
after(() => bench.close());

test('ctl --drain over the socket: one drain request, what was withdrawn and the progress', async () => {
  const r = await bench.run(['--drain']);
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.match(
    r.out[0]!,
    /^Draining: 0 VIP prefix\(es\) withdrawn; the node stops when its connections end or after 30 s\.$/,
  );
  assert.match(r.out[1]!, /^Drain: active, 12 of 40 connections left, /);
});

test('ctl --cluster over the socket asks for one snapshot', async () => {
  const before = lbStandIn.requests.length;
  const r = await bench.run(['--cluster']);
  assert.equal(r.code, 0);
  assert.equal(r.out[0], 'BGP speaker: bird managed, running (pid 4242), restarts 1');
  assert.deepEqual(lbStandIn.requests.slice(before), [{ op: 'snapshot' }]);
});
