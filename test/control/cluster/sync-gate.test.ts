/**
 * The Cluster's sync gate: with a `sync` block and the gate closed nothing
 * is announced (status and bird's file say so); opened, everything is, the
 * backups with them. Without a `sync` block the gate changes nothing. bird
 * is a stand-in that only sleeps: what is checked is what fullnat hands it.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from '../../../src/control/cluster/cluster.js';
import type { LoadBalancer } from '../../../src/control/lb.js';
import { ipv4 } from '../../support/addresses.js';
import { bgpSpec, neighbor } from '../../support/bird.js';
import { recordingLogger, testLb } from '../../support/lb-harness.js';
import { noHost } from '../../support/no-host.js';
import { prefix, syncPeer, syncSpec } from '../../support/sync-spec.js';

const dir = mkdtempSync(join(tmpdir(), 'fullnat-sync-gate-'));
const fakeBird = join(dir, 'bird');
writeFileSync(fakeBird, '#!/bin/sh\nexec sleep 60\n');
chmodSync(fakeBird, 0o755);

const VIP = '10.94.100.1/32';
const OWN = '10.94.3.0/28';
const PEER = '10.94.9.16/28';

const clusters: Cluster[] = [];
after(async () => {
  for (const c of clusters) await c.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** An LB with one VIP and LIP 10.94.3.1, a bgp block, and (unless `sync` is false) a sync block with one peer. */
function node(name: string, sync = true): LoadBalancer {
  const stateDir = join(dir, name);
  const file = join(dir, `${name}.conf`);
  writeFileSync(
    file,
    `fullnat_defs {
    state_dir ${stateDir}
}
local_address_group lips {
    10.94.3.1
}
virtual_server 10.94.100.1 80 {
    laddr_group_name lips
    real_server 10.94.2.11 80 {
        weight 1
    }
}
`,
  );
  const lb = testLb(file, noHost);
  lb.config.bgp = bgpSpec({
    routerId: ipv4('10.94.0.11'),
    neighbors: [neighbor('10.94.0.1', 65000)],
    lipPrefixes: [prefix(OWN)],
  });
  if (sync) lb.config.sync = syncSpec(1, '10.94.0.11', [syncPeer('10.94.0.12', 2, [PEER])]);
  return lb;
}

function start(
  lb: LoadBalancer,
  syncReady?: boolean,
): { cluster: Cluster; birdConf: () => string } {
  const { log } = recordingLogger();
  const cluster = new Cluster(lb, {
    log,
    onDrained: () => {},
    ...(syncReady === undefined ? {} : { syncReady }),
    speaker: { birdPath: fakeBird, pollMs: 60_000 },
  });
  clusters.push(cluster);
  lb.cluster = cluster;
  cluster.start();
  return {
    cluster,
    birdConf: () => readFileSync(join(lb.config.defs.stateDir, 'bird.conf'), 'utf8'),
  };
}

const routes = (conf: string): string[] =>
  [...conf.matchAll(/route (\S+) blackhole;/g)].map((m) => m[1]!).sort();

test('closed: nothing in bird’s file, every prefix withheld for resync; opened: all of it, backups included', () => {
  const { cluster, birdConf } = start(node('closed'), false);
  assert.equal(cluster.syncReady, false);
  let st = cluster.status()!;
  assert.deepEqual(st.announced, []);
  assert.deepEqual(st.backup, [PEER]);
  assert.deepEqual(st.withheld, [
    { prefix: VIP, reason: 'resync' },
    { prefix: OWN, reason: 'resync' },
    { prefix: PEER, reason: 'resync' },
  ]);
  assert.deepEqual(routes(birdConf()), []);
  // A change of the LB's state while closed announces nothing either.
  cluster.changed();
  assert.deepEqual(cluster.status()!.announced, []);

  cluster.setSyncReady(true);
  assert.equal(cluster.syncReady, true);
  st = cluster.status()!;
  assert.deepEqual(st.announced, [OWN, PEER, VIP].sort());
  assert.deepEqual(st.withheld, []);
  assert.deepEqual(routes(birdConf()), [OWN, PEER, VIP].sort());
  assert.match(
    birdConf(),
    /protocol static fullnat_backup \{\n {4}ipv4;\n {4}route 10\.94\.9\.16\/28/,
  );

  // Closed again (the sync restarted): everything goes.
  cluster.setSyncReady(false);
  assert.deepEqual(cluster.status()!.announced, []);
  assert.deepEqual(routes(birdConf()), []);
});

test('the gate is open unless the process closes it (a takeover starts announcing at once)', () => {
  const { cluster, birdConf } = start(node('default'));
  assert.equal(cluster.syncReady, true);
  assert.deepEqual(cluster.status()!.announced, [OWN, PEER, VIP].sort());
  assert.deepEqual(routes(birdConf()), [OWN, PEER, VIP].sort());
});

test('without a sync block a closed gate holds nothing back, and a reload that drops the block opens it', () => {
  const plain = start(node('plain', false), false);
  assert.deepEqual(plain.cluster.status()!.announced, [OWN, VIP].sort());
  assert.equal(plain.cluster.status()!.backup, undefined);

  const lb = node('dropped');
  const { cluster } = start(lb, false);
  assert.deepEqual(cluster.status()!.announced, []);
  delete lb.config.sync;
  cluster.changed();
  assert.deepEqual(cluster.status()!.announced, [OWN, VIP].sort());
  assert.deepEqual(cluster.status()!.withheld, []);
});
