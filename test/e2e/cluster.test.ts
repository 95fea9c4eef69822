/**
 * A fleet on real kernels: `fullnat lab --cluster --json` builds three
 * fullnat nodes announcing one VIP by BGP (BFD 100 ms × 3) to a bird2
 * router, two real servers under the eBPF TOA receiver, and measures in
 * both router modes — plain ECMP (hash-threshold) and a resilient nexthop
 * group — the spread, the failover after `kill -9` of one node under
 * long-lived connections and 10,000 new ones, and a drain. Asserted: the
 * issue's targets.
 *
 *   client [fncl-c] ── [fncl-rt: bird2, ECMP] ── br0 ── lb1 lb2 lb3 [fncl-lbK: fullnat run + bird]
 *                                             └─ rs0 ── r1 r2 [fncl-rK: echo server, eBPF receiver]
 *
 * Addresses 10.120.0.0/16, namespaces `fncl-…` (src/lab/cluster/plan.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cli } from './support/harness.js';
import { receiverUnavailable } from './support/receiver.js';
import type { ClusterReport } from '../../src/lab/cluster/report.js';

const skip = receiverUnavailable(['bird', 'birdc']);

/** Runs the lab through the CLI: stdout must be exactly one JSON document. */
function runLab(args: string[]): Promise<{ report: ClusterReport; log: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, 'lab', '--cluster', '--json', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let log = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (log += c.toString()));
    const t = setTimeout(() => child.kill('SIGINT'), 14 * 60_000);
    child.on('exit', (code) => {
      clearTimeout(t);
      if (code !== 0) return reject(new Error(`lab --cluster exited ${code}\n${log.slice(-6000)}`));
      try {
        resolve({ report: JSON.parse(out) as ClusterReport, log });
      } catch (e) {
        reject(
          new Error(
            `stdout is not one JSON document: ${(e as Error).message}\n${out.slice(0, 500)}`,
          ),
        );
      }
    });
  });
}

test(
  'a fleet of three behind ECMP: failover within 1 s, survivors kept by resilient hashing, retries succeed, real IP through every node, drains',
  { skip, timeout: 15 * 60_000 },
  async () => {
    const { report: r, log } = await runLab(['--nodes', '3']);
    const why = `\n${JSON.stringify(r, null, 1)}\n${log.slice(-3000)}`;

    // The document.
    assert.equal(r.mode, 'cluster');
    assert.equal(r.nodes, 3);
    for (const key of ['connections', 'realIp', 'failoverMs', 'brokenSurvivors', 'brokenKilled'])
      assert.equal(typeof (r as unknown as Record<string, unknown>)[key], 'number', key + why);
    assert.deepEqual(
      r.perNode.map((p) => p.node),
      ['lb1', 'lb2', 'lb3'],
    );
    assert.equal(typeof r.drain.newToDrainingAfterMs, 'number', why);
    assert.equal(typeof r.drain.brokenDrained, 'number', why);
    assert.deepEqual(
      r.routers.map((x) => x.router),
      ['ecmp', 'resilient'],
    );
    assert.equal(r.router, 'resilient');

    // Every node carries connections; the real client IP through each of them.
    assert.equal(r.receiver, 'ebpf');
    assert.ok(r.connections >= 4 * 3 * 40, why);
    for (const p of r.perNode) assert.ok(p.connections >= r.connections / 3 / 3, `${p.node}${why}`);
    assert.equal(r.realIp, r.connections, why);

    for (const run of r.routers) {
      const f = run.failover;
      const label = `${run.router}${why}`;
      // The lab's idea of where the router sends a tuple is the kernel's.
      assert.equal(f.spread.hashAgreed, f.spread.hashChecked, label);
      assert.equal(f.spread.unmapped, 0, label);
      assert.equal(f.spread.failed, 0, label);
      assert.ok(f.killedConnections > 0 && f.survivorConnections > 0, label);
      // Failover within 1 s with BFD 100 ms × 3: the router's route, and new connections to the dead node's share.
      assert.ok(f.routeMs !== null && f.routeMs <= 1000, label);
      assert.ok(f.failoverMs !== null && f.failoverMs <= 1000, label);
      // ≥ 99.9 % of 10,000 new connections succeed on retry within 1 s, each with the client's address.
      const n = f.newConnections;
      assert.equal(n.attempted, 10_000, label);
      assert.ok(n.succeeded >= 0.999 * n.attempted, label);
      assert.equal(n.realIp, n.succeeded, label);
      assert.ok(n.inWindow.attempted > 0, label);
      // The dead node's connections are its share of the breakage, never more.
      assert.ok(f.brokenKilled <= f.killedConnections, label);

      const d = run.drain;
      assert.ok(d, label);
      // New connections stop reaching the draining node within 1 s.
      assert.ok(d.newToDrainingAfterMs !== null && d.newToDrainingAfterMs <= 1000, label);
      assert.ok(d.routeMs !== null && d.routeMs <= 1000, label);
      assert.ok(d.newConnections.succeeded >= 0.999 * d.newConnections.attempted, label);
      assert.equal(d.newConnections.realIp, d.newConnections.succeeded, label);
      // It stops once its connections are gone or drain_timeout (5 s) has passed.
      assert.ok(d.exitedAfterMs !== null && d.exitedAfterMs <= 7000, label);
    }
    // Resilient hashing keeps the survivors' flows where they are.
    const resilient = r.routers.find((x) => x.router === 'resilient')!;
    assert.equal(resilient.failover.brokenSurvivors, 0, why);
    assert.equal(r.brokenSurvivors, 0, why);
    assert.ok(r.failoverMs !== null && r.failoverMs <= 1000, why);
    assert.ok(r.retry.succeeded >= 0.999 * r.retry.attempted, why);
  },
);
