/**
 * A fleet behind ECMP: the router may send a client's next connection to
 * another node, so every node must pick the same real server for it. Two
 * engines built from the same configuration — the second given the real
 * servers in another order, as a node whose file lists them differently or
 * whose ctl added them one by one would — must agree on every pick of the
 * hashing schedulers (mh, sh), and mh must move few clients when a real
 * server goes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseConfig } from '../../src/control/config/index.js';
import type { ServiceSpec } from '../../src/control/model.js';
import { fold16 } from '../../src/engine/addr6.js';
import { Engine } from '../../src/engine/engine.js';
import { hashAddrAt } from '../../src/engine/isn.js';
import type { SchedulerName } from '../../src/engine/sched/scheduler.js';
import type { Service } from '../../src/engine/services.js';

const TUPLES = 100_000;
const N = 7;

/** Unequal weights: the table must follow (address:port, weight), not position. */
const unequal = (i: number): number => 1 + (i % 3);

function configText(scheduler: SchedulerName, v6: boolean, weight = unequal): string {
  const vip = v6 ? '2001:db8:1::100' : '10.10.1.100';
  const lip = v6 ? '2001:db8:3::1' : '10.10.3.1';
  const rs = (i: number): string => (v6 ? `2001:db8:2::${i + 10}` : `10.10.2.${i + 10}`);
  const reals = Array.from(
    { length: N },
    (_, i) => `    real_server ${rs(i)} 8080 {\n        weight ${weight(i)}\n    }\n`,
  ).join('');
  return `local_address_group g1 {\n    ${lip}\n}\nvirtual_server ${vip} 80 {\n    lb_algo ${scheduler}\n    laddr_group_name g1\n${reals}}\n`;
}

/** One node's engine with the file's service, its real servers added in `order` as the LB adds them. */
function nodeEngine(spec: ServiceSpec, order: readonly number[]): { engine: Engine; svc: Service } {
  const engine = new Engine({ maxConnections: 64 });
  const svc = engine.addService({
    vip: spec.vip,
    vport: spec.vport,
    scheduler: spec.scheduler,
    laddrs: spec.laddrs,
    realServers: [],
  });
  for (const i of order) {
    const r = spec.realServers[i]!;
    engine.addRealServer(svc.index, { addr: r.addr, port: r.port, weight: r.weight });
  }
  return { engine, svc };
}

/** Random client addresses, hashed as the client path hashes a SYN's source (IPv4 or IPv6). */
function clientHashes(count: number, v6: boolean, seed: number): Uint32Array {
  let x = seed >>> 0 || 1;
  const rand = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
  const src = new Uint8Array(16);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    for (let b = 0; b < 16; b += 4) {
      const r = rand();
      src[b] = r >>> 24;
      src[b + 1] = (r >>> 16) & 0xff;
      src[b + 2] = (r >>> 8) & 0xff;
      src[b + 3] = r & 0xff;
    }
    out[i] = v6 ? fold16(src, 0) : hashAddrAt(src, 0);
  }
  return out;
}

/** The real server (address:port key) each client is sent to. */
function picks(svc: Service, hashes: Uint32Array): string[] {
  return Array.from(hashes, (h) => {
    const i = svc.scheduler.pick(svc.targets, h);
    assert.ok(i >= 0, 'no real server picked');
    return svc.targets[i]!.key;
  });
}

const inOrder = Array.from({ length: N }, (_, i) => i);
/** Reversed, then the middle rotated: not a mirror image of the first order. */
const shuffled = [...inOrder].reverse().map((_, k, a) => a[(k + 3) % N]!);

for (const v6 of [false, true]) {
  const family = v6 ? 'IPv6' : 'IPv4';
  for (const scheduler of ['mh', 'sh'] as const) {
    describe(`${scheduler} (${family}): two nodes with the same configuration`, () => {
      const spec = parseConfig(configText(scheduler, v6), 'node.conf').services[0]!;
      const hashes = clientHashes(TUPLES, v6, v6 ? 0x6e6f6465 : 0x66756c6c);

      it(`pick the same real server for ${TUPLES} random clients, whatever the order of the real servers`, () => {
        const a = nodeEngine(spec, inOrder);
        const b = nodeEngine(spec, shuffled);
        assert.notDeepEqual(
          a.svc.targets.map((t) => t.key),
          b.svc.targets.map((t) => t.key),
        );
        const pa = picks(a.svc, hashes);
        const pb = picks(b.svc, hashes);
        const differ = pa.filter((k, i) => k !== pb[i]).length;
        assert.equal(differ, 0, `${differ} of ${TUPLES} picks differ`);
        assert.equal(new Set(pa).size, N, 'every real server takes clients');
      });
    });
  }

  describe(`mh (${family}): one of ${N} real servers removed`, () => {
    const hashes = clientHashes(TUPLES, v6, 0x72656d76);

    /** Removes the third real server from a running node; returns the share of picks that moved. */
    function removeThird(weight: (i: number) => number): number {
      const spec = parseConfig(configText('mh', v6, weight), 'node.conf').services[0]!;
      const node = nodeEngine(spec, inOrder);
      const before = picks(node.svc, hashes);
      const gone = spec.realServers[2]!;
      const goneKey = node.svc.targets[2]!.key;
      node.engine.removeRealServer(
        node.engine.findRealServer(node.svc.index, gone.addr, gone.port),
      );
      const after = picks(node.svc, hashes);
      assert.ok(!after.includes(goneKey), 'the removed real server is still picked');

      // A node restarted with the real server gone from its file agrees with the reloaded one.
      const fresh = nodeEngine(
        spec,
        shuffled.filter((i) => i !== 2),
      );
      const restarted = picks(fresh.svc, hashes);
      const differ = restarted.filter((k, i) => k !== after[i]).length;
      assert.equal(differ, 0, `${differ} picks differ between the reloaded and a restarted node`);
      return after.filter((k, i) => k !== before[i]).length / TUPLES;
    }

    it(`equal weights: at most 1/${N} + 2 % of the picks move`, () => {
      const moved = removeThird(() => 1);
      assert.ok(moved <= 1 / N + 0.02, `moved ${(moved * 100).toFixed(2)} % of the picks`);
    });

    it("unequal weights: at most the removed server's share + 2 % move", () => {
      const total = inOrder.reduce((n, i) => n + unequal(i), 0);
      const share = unequal(2) / total;
      const moved = removeThird(unequal);
      assert.ok(moved <= share + 0.02, `moved ${(moved * 100).toFixed(2)} % (share ${share})`);
    });
  });
}
