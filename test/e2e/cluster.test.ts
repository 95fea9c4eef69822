/**
 * A fleet on real kernels: `fullnat lab --cluster --json` builds three
 * fullnat nodes announcing one VIP by BGP (BFD 100 ms × 3) to a bird2
 * router, two real servers under the eBPF TOA receiver, and measures in
 * both router modes — plain ECMP (hash-threshold) and a resilient nexthop
 * group — the spread, the failover after `kill -9` of one node under
 * long-lived connections and 10,000 new ones, and a drain. Asserted: the
 * issue's targets.
 *
 * Connection sync on the same fleet: `--cluster --sync` (and `--no-sync`,
 * the figure to beat) holds 300 downloads of 50 MiB, each rate-limited to
 * last 100 s, through the nodes; `kill -9` of the node carrying the most,
 * its restart. With sync every download completes intact with the client's
 * address at the server; without, some break. These run in this file, one
 * after another, not beside the other cluster test: one cluster lab at a
 * time (a lock), and each wants the machine's CPUs to itself.
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
import type { SyncReport } from '../../src/lab/cluster/sync-report.js';

const skip = receiverUnavailable(['bird', 'birdc']);

/** Runs the lab through the CLI: stdout must be exactly one JSON document. */
function runLab<R = ClusterReport>(args: string[]): Promise<{ report: R; log: string }> {
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
        resolve({ report: JSON.parse(out) as R, log });
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

/** The sync scenario's document: the fields, and the checks common to both runs. */
function checkSyncRun(r: SyncReport, sync: boolean, why: string): void {
  assert.equal(r.mode, 'cluster-sync', why);
  assert.equal(r.nodes, 3, why);
  assert.equal(r.transfers, 300, why);
  for (const key of ['completed', 'sha256Ok', 'realIp', 'broken'])
    assert.equal(typeof (r as unknown as Record<string, unknown>)[key], 'number', key + why);
  assert.ok('syncBytesPerConnection' in r, why);
  assert.equal(r.sync, sync, why);
  assert.equal(r.receiver, 'ebpf', why);
  assert.equal(r.objectBytes, 50 * 1024 * 1024, why);
  // Every download outcome accounted for; a completed one is the object, byte for byte.
  assert.equal(r.completed + r.broken, r.transfers, why);
  assert.equal(r.sha256Ok, r.completed, why);
  // Spread by ECMP over every node; the busiest one killed, its bird with it.
  for (const p of r.perNode) assert.ok(p.transfers > 0, `${p.node}${why}`);
  const most = Math.max(...r.perNode.map((p) => p.transfers));
  assert.equal(r.killed.transfers, most, why);
  assert.ok(r.killed.birdPid !== null, why);
  assert.ok(r.killed.birdGoneAfterMs !== null && r.killed.birdGoneAfterMs <= 5000, why);
  // Each lasts ≥ 10 s at the servers' rate.
  assert.ok(r.transferMs !== null && r.transferMs.min >= 10_000, why);
  // Restarted: it announces again and takes new connections, each with the client's address.
  assert.ok(r.restart.ok, why);
  assert.ok(r.restart.probes.toRestarted > 0, why);
  assert.equal(r.restart.probes.realIp, r.restart.probes.attempted, why);
}

test(
  'connection sync: 300 downloads through a fleet of three, kill -9 of the busiest node and its restart — none breaks, each intact with the client address at the server',
  { skip, timeout: 15 * 60_000 },
  async () => {
    const { report: r, log } = await runLab<SyncReport>(['--sync']);
    const why = `\n${JSON.stringify(r, null, 1)}\n${log.slice(-3000)}`;
    checkSyncRun(r, true, why);
    assert.equal(r.completed, 300, why);
    assert.equal(r.sha256Ok, 300, why);
    assert.equal(r.realIp, 300, why);
    assert.equal(r.broken, 0, why);
    // The restarted node resynced before it announced: its table was not empty.
    assert.ok(r.restart.tableAtAnnounce !== null && r.restart.tableAtAnnounce > 0, why);
    assert.ok(r.syncBytesPerConnection !== null && r.syncBytesPerConnection > 0, why);
  },
);

test(
  'the figure to beat: the same downloads and kill without sync break',
  { skip, timeout: 15 * 60_000 },
  async () => {
    const { report: r, log } = await runLab<SyncReport>(['--no-sync']);
    const why = `\n${JSON.stringify(r, null, 1)}\n${log.slice(-3000)}`;
    checkSyncRun(r, false, why);
    assert.equal(r.syncBytesPerConnection, null, why);
    assert.equal(r.realIp, 300, why);
    // The killed node's downloads have nowhere to go.
    assert.ok(r.broken > 0, why);
    assert.ok(r.brokenKilled > 0, why);
  },
);
