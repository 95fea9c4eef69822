/**
 * A sync node's announcements against real bird peers: its own LIP prefix
 * and VIP as before, its sync peers' LIP prefixes as backups with a longer
 * AS path, and nothing at all while the sync gate is closed. A plain bird
 * in namespace `peer` stands for the owner of one backup prefix, so the
 * router's choice between owner and backup is seen, before and after the
 * owner goes.
 *
 *   node 10.93.0.11 (AS 65011) ── router 10.93.0.1 / 10.93.1.1 (AS 65000) ── peer 10.93.1.12 (AS 65012)
 *   node: VIP 10.93.100.1, LIP 10.93.3.1 (lip_prefix 10.93.3.0/28);
 *   sync peers: node 2 (lip_prefix 10.93.9.16/28, the `peer` bird), node 3 (10.93.9.32/28, absent)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BACKUP_PREPEND } from '../../../src/control/cluster/bird-config.js';
import { Cluster } from '../../../src/control/cluster/cluster.js';
import type { DrainEnd } from '../../../src/control/cluster/drain.js';
import type { LoadBalancer } from '../../../src/control/lb.js';
import { NetnsLab, netnsAvailable } from '../../../src/lab/netns.js';
import { ipv4 } from '../../support/addresses.js';
import {
  bgpSpec,
  birdInNamespace,
  birdTools,
  neighbor,
  routeDetails,
  routerConfig,
  routesAt,
  sessionLine,
  sessionsAt,
  startRouter,
  type RouterRoute,
} from '../../support/bird.js';
import { recordingLogger, testLb } from '../../support/lb-harness.js';
import { noHost } from '../../support/no-host.js';
import { prefix, syncPeer, syncSpec } from '../../support/sync-spec.js';
import { sleep } from '../../support/time.js';

const netns = netnsAvailable();
const tools = birdTools();
const skip = !netns.ok ? netns.reason : !tools.ok ? tools.reason : undefined;

const lab = new NetnsLab(`sb${process.pid % 100000}`);
const dir = mkdtempSync(join(tmpdir(), 'fullnat-sync-backup-'));
const VIP = '10.93.100.1/32';
const OWN = '10.93.3.0/28';
const PEER2 = '10.93.9.16/28';
const PEER3 = '10.93.9.32/28';
const NODE_ALL = [VIP, OWN, PEER2, PEER3];

const CONFIG = `fullnat_defs {
    state_dir ${dir}/state
}
local_address_group lips {
    10.93.3.1
}
virtual_server 10.93.100.1 80 {
    laddr_group_name lips
    real_server 10.93.2.11 80 {
        weight 1
    }
}
`;

const { log, records } = recordingLogger();
let lb: LoadBalancer;
let cluster: Cluster;
let router: { sock: string };
let peerBird: ChildProcess;
const drained: DrainEnd[] = [];

/** The node's session at the router (the peer's is peer2). */
const NODE_SESSION = 'peer1';

const details = (): RouterRoute[] => routeDetails(tools, router.sock);
/** The prefixes the router learned from the node. */
const fromNode = (): string[] =>
  details()
    .filter((r) => r.protocol === NODE_SESSION)
    .map((r) => r.prefix)
    .sort();
const sameFromNode = (want: string[]) => (): boolean =>
  JSON.stringify(fromNode()) === JSON.stringify([...want].sort());

async function until(what: string, fn: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (fn()) return;
    await sleep(100);
  }
  assert.fail(
    `${what}: not within ${timeoutMs} ms; router has ${JSON.stringify(details())}, ` +
      `node: ${JSON.stringify(cluster.status())}`,
  );
}

before(async () => {
  if (skip) return;
  for (const h of ['node', 'router', 'peer']) lab.addHost(h);
  lab.link('node', 'eth0', '10.93.0.11/24', 'router', 'eth0', '10.93.0.1/24');
  lab.link('peer', 'eth0', '10.93.1.12/24', 'router', 'eth1', '10.93.1.1/24');
  router = startRouter(
    lab,
    'router',
    tools,
    dir,
    routerConfig('10.93.0.1', 65000, [
      { addr: '10.93.0.11', as: 65011 },
      { addr: '10.93.1.12', as: 65012 },
    ]),
  );
  // The owner of PEER2: a plain bird announcing it as its own.
  const peerConf = join(dir, 'peer-bird.conf');
  writeFileSync(
    peerConf,
    [
      'router id 10.93.1.12;',
      'protocol device {}',
      `protocol static { ipv4; route ${PEER2} blackhole; }`,
      'protocol bgp up { local as 65012; neighbor 10.93.1.1 as 65000; hold time 3; ipv4 { import none; export all; }; }',
      '',
    ].join('\n'),
  );
  peerBird = lab.spawn('peer', tools.bird, [
    '-f',
    '-c',
    peerConf,
    '-s',
    join(dir, 'peer-bird.ctl'),
  ]);
  const file = join(dir, 'lb.conf');
  writeFileSync(file, CONFIG);
  lb = testLb(file, noHost, log);
  lb.config.bgp = bgpSpec({
    routerId: ipv4('10.93.0.11'),
    neighbors: [neighbor('10.93.0.1', 65000, { holdTime: 3 })],
    lipPrefixes: [prefix(OWN)],
  });
  lb.config.sync = syncSpec(1, '10.93.0.11', [
    syncPeer('10.93.1.12', 2, [PEER2]),
    syncPeer('10.93.1.13', 3, [PEER3]),
  ]);
  cluster = new Cluster(lb, {
    log,
    onDrained: (how) => drained.push(how),
    syncReady: false,
    speaker: {
      birdPath: birdInNamespace(tools, dir, lab.ns('node')),
      pollMs: 200,
      restartMinMs: 200,
    },
  });
  lb.cluster = cluster;
  cluster.start();
  await sleep(0);
});

after(async () => {
  await cluster?.stop();
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test(
  'a closed sync gate: the session comes up but nothing is announced, each prefix withheld for resync',
  { skip },
  async () => {
    await until(
      'both sessions up at the router',
      () =>
        sessionsAt(tools, router.sock).get(NODE_SESSION) === 'Established' &&
        sessionsAt(tools, router.sock).get('peer2') === 'Established',
    );
    await until('the peer’s own prefix at the router', () =>
      routesAt(tools, router.sock).includes(PEER2),
    );
    // Long enough for bird to have announced anything it was given.
    await sleep(1000);
    assert.deepEqual(fromNode(), []);
    const st = cluster.status()!;
    assert.deepEqual(st.announced, []);
    assert.deepEqual(st.backup, [PEER2, PEER3]);
    assert.deepEqual(
      st.withheld,
      [...NODE_ALL].sort().map((p) => ({ prefix: p, reason: 'resync' })),
    );
    assert.equal(cluster.syncReady, false);
    const conf = readFileSync(join(dir, 'state', 'bird.conf'), 'utf8');
    assert.doesNotMatch(conf, /route /, 'no static route in bird.conf');
  },
);

test(
  'the gate opens: VIP and own LIP prefix with a path of one AS, the peers’ prefixes with four; the session stays',
  { skip },
  async () => {
    const since = sessionLine(tools, router.sock, NODE_SESSION);
    cluster.setSyncReady(true);
    await until('everything from the node', sameFromNode(NODE_ALL));
    const node = details().filter((r) => r.protocol === NODE_SESSION);
    const pathOf = (p: string): number[] | undefined => node.find((r) => r.prefix === p)?.asPath;
    assert.deepEqual(pathOf(VIP), [65011]);
    assert.deepEqual(pathOf(OWN), [65011]);
    const backupPath = Array<number>(1 + BACKUP_PREPEND).fill(65011);
    assert.equal(backupPath.length, 4);
    assert.deepEqual(pathOf(PEER2), backupPath);
    assert.deepEqual(pathOf(PEER3), backupPath);
    const st = cluster.status()!;
    assert.deepEqual(st.announced, [...NODE_ALL].sort());
    assert.deepEqual(st.backup, [PEER2, PEER3]);
    assert.deepEqual(st.withheld, []);
    // The backups' export filter came with them: bird took it without dropping the session.
    assert.equal(sessionLine(tools, router.sock, NODE_SESSION), since);
    assert.ok(records.some((r) => r.msg === 'connection sync ready: announcing'));
  },
);

test(
  'the router prefers the owner of a prefix while it is up, and the backup once it is gone',
  { skip },
  async () => {
    const best = (p: string): RouterRoute | undefined =>
      details().find((r) => r.prefix === p && r.best);
    assert.equal(best(PEER2)?.protocol, 'peer2');
    assert.deepEqual(best(PEER2)?.asPath, [65012]);
    // With no owner around, the backup is the route.
    assert.equal(best(PEER3)?.protocol, NODE_SESSION);
    peerBird.kill('SIGTERM');
    await until('the node’s backup is the route to the peer’s LIPs', () => {
      const b = best(PEER2);
      return (
        b?.protocol === NODE_SESSION && details().filter((r) => r.prefix === PEER2).length === 1
      );
    });
  },
);

test('the gate closed again withdraws everything; open, it all comes back', { skip }, async () => {
  cluster.setSyncReady(false);
  await until('nothing from the node', sameFromNode([]));
  assert.deepEqual(
    cluster.status()!.withheld.map((w) => w.reason),
    ['resync', 'resync', 'resync', 'resync'],
  );
  cluster.setSyncReady(true);
  await until('everything back', sameFromNode(NODE_ALL));
});

test(
  'a drain withdraws the VIP and keeps the own LIP prefix and the backups',
  { skip },
  async () => {
    cluster.drain(30, 'test');
    await until('VIP withdrawn', sameFromNode([OWN, PEER2, PEER3]));
    await until('drain ended', () => drained.length === 1);
    const st = cluster.status()!;
    assert.deepEqual(st.announced, [OWN, PEER2, PEER3]);
    assert.deepEqual(st.withheld, [{ prefix: VIP, reason: 'draining' }]);
    const backupPath = Array<number>(1 + BACKUP_PREPEND).fill(65011);
    assert.deepEqual(details().find((r) => r.prefix === PEER3)?.asPath, backupPath);
  },
);

test('stopped, the node’s routes go from the router', { skip }, async () => {
  await cluster.stop();
  await until('nothing from the node', () => fromNode().length === 0, 5000);
});
