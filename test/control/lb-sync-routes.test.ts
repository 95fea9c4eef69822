/**
 * A sync node's routes into its TUN device: each sync peer's `lip_prefix`
 * is routed there like the node's own LIPs (the router sends a dead peer's
 * real servers' replies here, and the TUN must get them), with the same
 * sysctls, removed by a real stop and left to a successor by a handover.
 * A fake host records what the LB asks of it.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';

import type { HostNetwork } from '../../src/io/host.js';
import { MemoryDevice } from '../../src/io/memory-device.js';
import { ONE_SERVICE, tempConfig, testLb } from '../support/lb-harness.js';
import { syncPeer, syncSpec } from '../support/sync-spec.js';

interface Fake {
  host: HostNetwork;
  routes: Set<string>;
  added: string[];
  deleted: string[];
  sysctls: Map<string, string>;
}

function fakeHost(): Fake {
  const routes = new Set<string>();
  const added: string[] = [];
  const deleted: string[] = [];
  const sysctls = new Map<string, string>();
  const host: HostNetwork = {
    openDevice: () => new MemoryDevice(),
    addRoute: (p, dev) => {
      assert.equal(dev, 'fnat6');
      routes.add(p);
      added.push(p);
    },
    delRoute: (p, dev) => {
      assert.equal(dev, 'fnat6');
      routes.delete(p);
      deleted.push(p);
    },
    sysctl: (k, v) => void sysctls.set(k, v),
  };
  return { host, routes, added, deleted, sysctls };
}

const OWN = ['10.10.1.100/32', '10.10.3.1/32'];

describe('LoadBalancer: a sync node routes its peers’ LIP prefixes into the TUN', () => {
  const file = tempConfig('fullnat-lbsync-');
  // A handover saves the table in state_dir: the test's directory, not /run/fullnat.
  writeFileSync(
    file,
    `fullnat_defs {\n    interface fnat6\n    state_dir ${join(dirname(file), 'state')}\n}\n${ONE_SERVICE}`,
  );

  /** The one-service LB with a sync block: peer 2 holds an IPv4 prefix (host bits set, as written), peer 3 one IPv4 and one IPv6. */
  function syncLb(fake: Fake) {
    const lb = testLb(file, fake.host);
    lb.config.sync = syncSpec(1, '10.10.0.11', [
      syncPeer('10.10.0.12', 2, ['10.10.9.20/28']),
      syncPeer('10.10.0.13', 3, ['10.10.9.32/28', '2001:db8:9::/64']),
    ]);
    return lb;
  }
  const PEERS = ['10.10.9.16/28', '10.10.9.32/28', '2001:db8:9::/64'];

  it('at start: the own VIP and LIP, and every peer prefix as its network, on the device', () => {
    const fake = fakeHost();
    const lb = syncLb(fake);
    lb.start();
    try {
      assert.deepEqual([...fake.routes].sort(), [...OWN, ...PEERS].sort());
      // The same sysctls as for the own LIPs: replies enter on the NIC and route into the TUN.
      assert.equal(fake.sysctls.get('net.ipv4.conf.fnat6.rp_filter'), '0');
      assert.equal(fake.sysctls.get('net.ipv4.ip_forward'), '1');
      // An IPv6 peer prefix routed here needs IPv6 forwarding, as an IPv6 LIP would.
      assert.equal(fake.sysctls.get('net.ipv6.conf.all.forwarding'), '1');
    } finally {
      lb.stop();
    }
  });

  it('a real stop removes them with the others', () => {
    const fake = fakeHost();
    const lb = syncLb(fake);
    lb.start();
    lb.stop();
    assert.deepEqual(fake.deleted.sort(), [...OWN, ...PEERS].sort());
    assert.equal(fake.routes.size, 0);
  });

  it('a handover leaves them to the successor, like the own routes', () => {
    const fake = fakeHost();
    const lb = syncLb(fake);
    lb.start();
    lb.handOver();
    lb.release();
    assert.deepEqual(fake.deleted, []);
    assert.deepEqual([...fake.routes].sort(), [...OWN, ...PEERS].sort());
  });

  it('without a sync block there is no peer route and no IPv6 forwarding', () => {
    const fake = fakeHost();
    const lb = testLb(file, fake.host);
    lb.start();
    lb.stop();
    assert.deepEqual(fake.added.sort(), OWN);
    assert.equal(fake.sysctls.has('net.ipv6.conf.all.forwarding'), false);
  });
});
