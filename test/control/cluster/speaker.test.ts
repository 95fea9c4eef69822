/**
 * The fleet's runtime against real bird peers: fullnat's Cluster (its bird
 * started in namespace `node` through a wrapper) and a plain bird "router"
 * in namespace `router`, BGP with BFD between them. What the router learns
 * is read with `birdc show route`.
 *
 *   node 10.90.0.11 (AS 65011) ── router 10.90.0.1 (AS 65000)
 *   VIPs 10.90.100.1 (two RSs), 10.90.100.2 (one RS); LIP 10.90.3.1
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from '../../../src/control/cluster/cluster.js';
import type { DrainEnd } from '../../../src/control/cluster/drain.js';
import type { LoadBalancer } from '../../../src/control/lb.js';
import { NetnsLab, netnsAvailable } from '../../../src/lab/netns.js';
import { ipv4 } from '../../support/addresses.js';
import {
  alive,
  bgpSpec,
  birdInNamespace,
  birdTools,
  neighbor,
  routerConfig,
  routesAt,
  sessionLine,
  sessionsAt,
  startRouter,
} from '../../support/bird.js';
import { recordingLogger, testLb } from '../../support/lb-harness.js';
import { noHost } from '../../support/no-host.js';
import { sleep } from '../../support/time.js';
import { writeFileSync } from 'node:fs';

const netns = netnsAvailable();
const tools = birdTools();
const skip = !netns.ok ? netns.reason : !tools.ok ? tools.reason : undefined;

const lab = new NetnsLab(`bg${process.pid % 100000}`);
const dir = mkdtempSync(join(tmpdir(), 'fullnat-speaker-'));
const VIP1 = '10.90.100.1/32';
const VIP2 = '10.90.100.2/32';
const LIP = '10.90.3.1/32';

const CONFIG = `fullnat_defs {
    state_dir ${dir}/state
}
local_address_group lips {
    10.90.3.1
}
virtual_server 10.90.100.1 80 {
    laddr_group_name lips
    real_server 10.90.2.11 80 {
        weight 1
    }
    real_server 10.90.2.12 80 {
        weight 1
    }
}
virtual_server 10.90.100.2 80 {
    laddr_group_name lips
    real_server 10.90.2.13 80 {
        weight 1
    }
}
`;

const { log, records } = recordingLogger();
let lb: LoadBalancer;
let cluster: Cluster;
let router: { sock: string };
const drained: DrainEnd[] = [];

async function until(what: string, fn: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (fn()) return;
    await sleep(100);
  }
  assert.fail(
    `${what}: not within ${timeoutMs} ms; router has ${JSON.stringify(routesAt(tools, router.sock))}, ` +
      `node: ${JSON.stringify(cluster.status())}`,
  );
}

const routes = (): string[] => routesAt(tools, router.sock);
const same = (want: string[]) => (): boolean =>
  JSON.stringify(routes()) === JSON.stringify([...want].sort());

before(async () => {
  if (skip) return;
  lab.addHost('node');
  lab.addHost('router');
  lab.link('node', 'eth0', '10.90.0.11/24', 'router', 'eth0', '10.90.0.1/24');
  router = startRouter(
    lab,
    'router',
    tools,
    dir,
    routerConfig('10.90.0.1', 65000, [{ addr: '10.90.0.11', as: 65011, bfd: true }]),
  );
  const file = join(dir, 'lb.conf');
  writeFileSync(file, CONFIG);
  lb = testLb(file, noHost, log);
  lb.config.bgp = bgpSpec({
    routerId: ipv4('10.90.0.11'),
    neighbors: [neighbor('10.90.0.1', 65000, { holdTime: 3, bfd: true })],
  });
  cluster = newCluster();
  cluster.start();
  await sleep(0);
});

const routerSession = (): string => sessionLine(tools, router.sock, 'peer1');

/** A Cluster over the test's LB, its bird in namespace `node`; the LB's hook points at it. */
function newCluster(): Cluster {
  const c = new Cluster(lb, {
    log,
    onDrained: (how) => drained.push(how),
    speaker: {
      birdPath: birdInNamespace(tools, dir, lab.ns('node')),
      pollMs: 200,
      restartMinMs: 200,
      adoptWaitMs: 2000,
    },
  });
  lb.cluster = c;
  return c;
}

after(async () => {
  await cluster?.stop();
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test(
  'the router learns both VIPs and the LIP over an Established session with BFD up',
  { skip },
  async () => {
    await until('routes at the router', same([VIP1, VIP2, LIP]));
    await until('session and BFD up at the node', () => {
      const s = cluster.status()?.speaker?.sessions[0];
      return s?.up === true && s.bfd === 'Up';
    });
    assert.equal(sessionsAt(tools, router.sock).get('peer1'), 'Established');
    const st = cluster.status()!;
    assert.deepEqual(st.announced, [VIP1, VIP2, LIP]);
    assert.equal(st.speaker?.mode, 'managed');
    assert.equal(st.speaker?.running, true);
    // bird announces the VIPs but never routes them on the node: no kernel protocol.
    assert.doesNotMatch(lab.ip('node', 'route', 'show', 'table', 'all'), /10\.90\.(100|3)\./);
    assert.equal(records.filter((r) => r.msg === 'BGP session established').length, 1);
  },
);

test(
  'a VIP whose services fall below quorum is withdrawn, and announced again',
  { skip },
  async () => {
    const real = (addr: string) => ({
      vip: ipv4('10.90.100.2'),
      vport: 80,
      addr: ipv4(addr),
      port: 80,
    });
    assert.deepEqual(await lb.handle({ op: 'edit-real', real: real('10.90.2.13'), weight: 0 }), {
      ok: true,
    });
    await until('VIP2 withdrawn', same([VIP1, LIP]));
    assert.deepEqual(cluster.status()?.withheld, [{ prefix: VIP2, reason: 'quorum' }]);
    await lb.handle({ op: 'edit-real', real: real('10.90.2.13'), weight: 1 });
    await until('VIP2 back', same([VIP1, VIP2, LIP]));

    // quorum 2 on VIP1: one RS of two out is below it.
    lb.config.services.find((s) => s.vip === ipv4('10.90.100.1'))!.quorum = 2;
    const real1 = { vip: ipv4('10.90.100.1'), vport: 80, addr: ipv4('10.90.2.12'), port: 80 };
    await lb.handle({ op: 'edit-real', real: real1, weight: 0 });
    await until('VIP1 withdrawn under quorum 2', same([VIP2, LIP]));
    await lb.handle({ op: 'edit-real', real: real1, weight: 1 });
    await until('VIP1 back', same([VIP1, VIP2, LIP]));
  },
);

test(
  'bird killed with SIGKILL is started again and the router learns it all again',
  { skip },
  async () => {
    const before = cluster.status()!.speaker!;
    assert.ok(before.pid !== undefined && alive(before.pid), 'bird runs');
    process.kill(before.pid, 'SIGKILL');
    // BFD at the router notices within 300 ms: the routes go, then come back with the new bird.
    await until('routes gone at the router', same([]), 5000);
    await until('routes back at the router', same([VIP1, VIP2, LIP]), 30_000);
    const now = cluster.status()!.speaker!;
    assert.ok(now.restarts >= 1, `restarts ${now.restarts}`);
    assert.notEqual(now.pid, before.pid);
    assert.ok(records.some((r) => r.msg === 'bird exited: starting it again'));
  },
);

test(
  'released for a successor: bird keeps announcing, and the next Cluster adopts it',
  { skip },
  async () => {
    const pid = cluster.status()!.speaker!.pid!;
    const since = routerSession();
    await cluster.release();
    assert.ok(alive(pid), 'bird left running');
    assert.ok(same([VIP1, VIP2, LIP])(), 'nothing withdrawn');
    cluster = newCluster();
    cluster.start();
    await until('adopted', () =>
      records.some((r) => r.msg === 'bird adopted from the predecessor'),
    );
    // Past the released watchdog's wait: the adopted bird stays.
    await sleep(2500);
    assert.ok(alive(pid));
    assert.ok(same([VIP1, VIP2, LIP])());
    assert.equal(routerSession(), since, 'the router session never dropped');
    await until('status names the adopted bird', () => cluster.status()?.speaker?.pid === pid);
    assert.equal(cluster.status()!.speaker!.running, true);
    // An adopted bird is watched like a started one: killed, it is started again.
    process.kill(pid, 'SIGKILL');
    await until('a new bird', () => {
      const now = cluster.status()?.speaker?.pid;
      return now !== undefined && now !== pid && alive(now);
    });
    await until('routes back at the router', same([VIP1, VIP2, LIP]), 30_000);
  },
);

test(
  'released and never adopted: bird stops after the wait, and the router forgets the node',
  { skip },
  async () => {
    const pid = cluster.status()!.speaker!.pid!;
    await cluster.release();
    assert.ok(alive(pid));
    await sleep(1000);
    assert.ok(alive(pid), 'still waiting for a successor');
    await until('bird stopped', () => !alive(pid), 5000);
    await until('routes gone', same([]), 5000);
    cluster = newCluster();
    cluster.start();
    await until('announced by a new bird', same([VIP1, VIP2, LIP]), 30_000);
    assert.notEqual(cluster.status()!.speaker!.pid, pid);
  },
);

test(
  'a drain withdraws the VIPs, keeps the LIP, and ends at once without connections',
  { skip },
  async () => {
    const d = cluster.drain(30, 'test');
    assert.equal(d.active, true);
    assert.equal(d.connectionsAtStart, 0);
    await until('VIPs withdrawn, LIP kept', same([LIP]));
    await until('drain ended', () => drained.length === 1);
    assert.deepEqual(drained, ['connections']);
    const st = cluster.status()!;
    assert.equal(st.drain?.active, false);
    assert.equal(st.drain?.ended, 'connections');
    assert.deepEqual(
      st.withheld.map((w) => w.reason),
      ['draining', 'draining'],
    );
    // A reload or a health change while draining does not bring the VIPs back.
    cluster.changed();
    await sleep(500);
    assert.deepEqual(routes(), [LIP]);
  },
);

test('stopping the cluster stops its bird, and the router forgets the node', { skip }, async () => {
  const pid = cluster.status()!.speaker!.pid!;
  await cluster.stop();
  assert.equal(alive(pid), false);
  await until('routes gone', same([]), 5000);
});
