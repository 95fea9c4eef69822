/**
 * The cluster lab's measurements, each on a full fleet behind the router in
 * one of its modes:
 *
 * - spread: long-lived connections, mapped to the node holding each (the
 *   nodes' own connection tables), the real client IP the RS saw;
 * - failover: `kill -9` of one node's fullnat under long-lived connections
 *   and a burst of new ones. The failover time is the first new connection
 *   established, after the kill, from a tuple the router sent to the dead
 *   node before it (`ip route get`, router-hash.ts); the route time is when
 *   the router's route for the VIP was first seen without it;
 * - drain: `fullnat ctl --drain` on one node under the same load: when the
 *   last new connection reached it (its connection counter, read every
 *   20 ms) and what became of its established ones.
 */
import type { ControlResponse } from '../../control/model.js';
import { endpointToString } from '../../wire/address.js';
import { nodeByGateway, burstTuple, type ClusterNode } from './plan.js';
import type { RouterMode } from './router-bird.js';
import { routerGateways } from './router-hash.js';
import { RouteWatch } from './route-watch.js';
import type { ClusterTopology, Log } from './topology.js';
import {
  HoldClients,
  runBurst,
  type BurstRun,
  type HeldConnection,
  type HeldOutcome,
} from './traffic.js';

export interface MeasureSettings {
  /** Long-lived connections per node. */
  holdPerNode: number;
  /** New connections of the failover burst, and their rate a second. */
  newConnections: number;
  rate: number;
  /** New connections of the drain burst, and their rate. */
  drainConnections: number;
  drainRate: number;
  /** Per attempt of a new connection, and per connection from its first attempt. */
  attemptMs: number;
  deadlineMs: number;
  /** The burst runs this long before the kill or the drain. */
  leadMs: number;
  /** A long-lived connection without an echo this long is broken. */
  brokenAfterMs: number;
  /** `drain_timeout` of the nodes, seconds. */
  drainTimeout: number;
}

export const DEFAULT_SETTINGS: MeasureSettings = {
  holdPerNode: 40,
  newConnections: 10_000,
  rate: 500,
  drainConnections: 2000,
  drainRate: 400,
  attemptMs: 200,
  deadlineMs: 1000,
  leadMs: 1000,
  brokenAfterMs: 2000,
  drainTimeout: 5,
};

export interface PerNode {
  node: string;
  connections: number;
}

export interface Spread {
  connections: number;
  realIp: number;
  perNode: PerNode[];
  /** Long-lived connections that did not open, or that no node's table held. */
  failed: number;
  unmapped: number;
  /** The node the router's hash named (ip route get) against the node that held the connection. */
  hashChecked: number;
  hashAgreed: number;
}

export interface NewConnections {
  attempted: number;
  /** Established, and the RS's first line read, within the deadline of the first attempt. */
  succeeded: number;
  realIp: number;
  /** Connections that needed more than one attempt. */
  retried: number;
  attempts: number;
  /** Failed attempts by outcome (timeout, ECONNRESET, …). */
  failedAttempts: Record<string, number>;
  /** Connections whose first attempt fell between the event and the router's change plus the deadline. */
  inWindow: { attempted: number; succeeded: number };
  durationMs: number;
}

export interface FailoverResult {
  router: RouterMode;
  killed: string;
  /** First new connection established from a tuple the router had sent to the dead node; ms after the kill. */
  failoverMs: number | null;
  /** The router's route for the VIP first seen without the dead node; ms after the kill. */
  routeMs: number | null;
  brokenSurvivors: number;
  survivorConnections: number;
  brokenKilled: number;
  killedConnections: number;
  spread: Spread;
  newConnections: NewConnections;
}

export interface DrainResult {
  router: RouterMode;
  node: string;
  /** The last new connection that reached the draining node; ms after `ctl --drain` (0: none after it). */
  newToDrainingAfterMs: number | null;
  routeMs: number | null;
  brokenDrained: number;
  drainedConnections: number;
  brokenOthers: number;
  otherConnections: number;
  /** The draining fullnat exited this long after `ctl --drain` (null: not within drain_timeout + 5 s). */
  exitedAfterMs: number | null;
  spread: Spread;
  newConnections: NewConnections;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class ClusterMeasure {
  /** The next unused tuple of the new-connection generator (a tuple is used once per lab). */
  private nextTuple = 0;

  constructor(
    private readonly topo: ClusterTopology,
    private readonly s: MeasureSettings,
    private readonly log: Log,
  ) {}

  /** Every node running and the router converged on all of them. */
  async fullFleet(): Promise<void> {
    for (const n of this.topo.nodes) await this.topo.startNode(n);
    await this.topo.waitForFleet(this.topo.nodes, 45_000);
  }

  async failover(victim: ClusterNode): Promise<FailoverResult> {
    const { topo, s } = this;
    const router = topo.routerMode;
    await this.fullFleet();
    const hold = await HoldClients.start(topo, {
      count: s.holdPerNode * topo.nodes.length,
      brokenAfterMs: s.brokenAfterMs,
      maxMs: 120_000,
    });
    let outcomes: HeldOutcome[];
    let run: BurstRun;
    let killedAt = 0;
    const watch = new RouteWatch(() => topo.vipGateways());
    try {
      const { spread, nodeOf } = await this.spread(hold.opened, hold.failed);
      const pool = this.takeTuples(s.newConnections);
      const before = await routerGateways(topo.lab.ns('rt'), pool.tuples);
      watch.start();
      let timer: NodeJS.Timeout | undefined;
      run = await runBurst(topo, this.burstOptions(pool, s.newConnections, s.rate), () => {
        timer = setTimeout(() => {
          killedAt = topo.killNode(victim);
          this.log(`cluster: ${router}: kill -9 of ${victim.name}'s fullnat`);
        }, s.leadMs);
      });
      clearTimeout(timer);
      if (killedAt === 0) throw new Error('the new-connection burst ended before the kill');
      await sleep(Math.max(0, killedAt + s.brokenAfterMs + 1500 - Date.now()));
      outcomes = await hold.stop();
      await watch.stop();

      const routeAt = watch.firstWithout(victim.addr, killedAt);
      let firstOk: number | null = null;
      for (const a of run.attempts) {
        if (a.outcome !== 'ok' || a.start < killedAt) continue;
        if (before[a.tuple - pool.first] !== victim.addr) continue;
        if (firstOk === null || a.end < firstOk) firstOk = a.end;
      }
      const broken = brokenByNode(hold.opened, outcomes, nodeOf);
      const killedConnections = countOn(nodeOf, (n) => n === victim.name);
      const survivorConnections = countOn(nodeOf, (n) => n !== victim.name);
      return {
        router,
        killed: victim.name,
        failoverMs: firstOk === null ? null : firstOk - killedAt,
        routeMs: routeAt === null ? null : routeAt - killedAt,
        brokenSurvivors: sumWhere(broken, (n) => n !== victim.name),
        survivorConnections,
        brokenKilled: broken.get(victim.name) ?? 0,
        killedConnections,
        spread,
        newConnections: summarize(run, killedAt, routeAt, s.deadlineMs),
      };
    } finally {
      await watch.stop();
      await hold.stop();
    }
  }

  async drain(node: ClusterNode): Promise<DrainResult> {
    const { topo, s } = this;
    const router = topo.routerMode;
    await this.fullFleet();
    const hold = await HoldClients.start(topo, {
      count: s.holdPerNode * topo.nodes.length,
      brokenAfterMs: s.brokenAfterMs,
      maxMs: 120_000,
    });
    let outcomes: HeldOutcome[];
    const watch = new RouteWatch(() => topo.vipGateways());
    const counts: { at: number; conns: number }[] = [];
    let polling = true;
    try {
      const { spread, nodeOf } = await this.spread(hold.opened, hold.failed);
      const pool = this.takeTuples(s.drainConnections);
      watch.start();
      let drainAt = 0;
      let drainRes: Promise<ControlResponse> | undefined;
      const poll = (async () => {
        while (polling) {
          const conns = await this.createdOn(node);
          if (conns === null) break; // it exited
          counts.push({ at: Date.now(), conns });
          await sleep(20);
        }
      })();
      let timer: NodeJS.Timeout | undefined;
      const run = await runBurst(
        topo,
        this.burstOptions(pool, s.drainConnections, s.drainRate),
        () => {
          timer = setTimeout(() => {
            void (async () => {
              // The count the drain starts from, read just before it.
              const c = await this.createdOn(node);
              if (c !== null) counts.push({ at: Date.now(), conns: c });
              drainAt = Date.now();
              // What `fullnat ctl --drain` sends; timed from the request, not from a CLI's start.
              drainRes = topo.request(node, { op: 'drain' });
              this.log(`cluster: ${router}: drain of ${node.name} (ctl --drain)`);
            })();
          }, s.leadMs);
        },
      );
      clearTimeout(timer);
      if (drainAt === 0 || !drainRes)
        throw new Error('the new-connection burst ended before the drain');
      const res = await drainRes;
      if (!res.ok) throw new Error(`drain of ${node.name} refused: ${res.error}`);
      await sleep(Math.max(0, drainAt + s.brokenAfterMs + 1500 - Date.now()));
      outcomes = await hold.stop();
      polling = false;
      await poll;
      await watch.stop();

      const exited = await Promise.race([
        topo.nodeExited(node).then(() => Date.now()),
        sleep(Math.max(0, drainAt + (s.drainTimeout + 5) * 1000 - Date.now())).then(() => null),
      ]);
      let lastNew: number | null = null;
      const base = counts.filter((c) => c.at <= drainAt).at(-1);
      if (base) {
        lastNew = 0;
        let prev = base.conns;
        for (const c of counts) {
          if (c.at <= drainAt) continue;
          if (c.conns > prev) lastNew = c.at - drainAt;
          prev = c.conns;
        }
      }
      const routeAt = watch.firstWithout(node.addr, drainAt);
      const broken = brokenByNode(hold.opened, outcomes, nodeOf);
      return {
        router,
        node: node.name,
        newToDrainingAfterMs: lastNew,
        routeMs: routeAt === null ? null : routeAt - drainAt,
        brokenDrained: broken.get(node.name) ?? 0,
        drainedConnections: countOn(nodeOf, (n) => n === node.name),
        brokenOthers: sumWhere(broken, (n) => n !== node.name),
        otherConnections: countOn(nodeOf, (n) => n !== node.name),
        exitedAfterMs: exited === null ? null : exited - drainAt,
        spread,
        newConnections: summarize(run, drainAt, routeAt, s.deadlineMs),
      };
    } finally {
      polling = false;
      await watch.stop();
      await hold.stop();
    }
  }

  /** Connections created on the node so far (its services' counters); null when it does not answer. */
  private async createdOn(node: ClusterNode): Promise<number | null> {
    if (!this.topo.nodeAlive(node)) return null;
    try {
      const res = await this.topo.request(node, { op: 'snapshot' }, 1000);
      if (!res.ok || !res.snapshot) return null;
      return res.snapshot.services.reduce((n, svc) => n + svc.stats.conns, 0);
    } catch {
      return null;
    }
  }

  /** Which node holds each long-lived connection, and the spread's figures. */
  private async spread(
    opened: readonly HeldConnection[],
    failed: number,
  ): Promise<{ spread: Spread; nodeOf: Map<string, string> }> {
    const { topo } = this;
    const held = new Map<string, string>();
    for (const n of topo.nodes) {
      if (!topo.nodeAlive(n)) continue;
      const res = await topo.request(n, { op: 'connections' }, 10_000);
      if (!res.ok) throw new Error(`${n.name}: ${res.error}`);
      for (const c of res.connections ?? [])
        held.set(endpointToString(c.client.addr, c.client.port), n.name);
    }
    const nodeOf = new Map<string, string>();
    for (const c of opened) {
      const n = held.get(c.local);
      if (n) nodeOf.set(c.local, n);
    }
    const hashed = await routerGateways(
      topo.lab.ns('rt'),
      opened.map((c) => {
        const [addr = '', port = '0'] = c.local.split(':');
        return { addr, port: Number(port) };
      }),
    );
    let hashAgreed = 0;
    let hashChecked = 0;
    opened.forEach((c, k) => {
      const n = nodeOf.get(c.local);
      const gw = hashed[k];
      if (!n || !gw) return;
      hashChecked++;
      if (nodeByGateway(topo.nodes, gw)?.name === n) hashAgreed++;
    });
    const perNode = topo.nodes.map((n) => ({
      node: n.name,
      connections: countOn(nodeOf, (x) => x === n.name),
    }));
    if (hashAgreed < hashChecked)
      this.log(
        `cluster: the router's hash (ip route get) named another node than the one holding ${hashChecked - hashAgreed} of ${hashChecked} connections`,
      );
    return {
      spread: {
        connections: opened.length,
        realIp: opened.filter((c) => c.peer === c.local).length,
        perNode,
        failed,
        unmapped: opened.length - nodeOf.size,
        hashChecked,
        hashAgreed,
      },
      nodeOf,
    };
  }

  /** Tuples for a burst of `total`: room for every connection to retry on a few more. */
  private takeTuples(total: number): {
    first: number;
    tuples: { addr: string; port: number }[];
  } {
    const first = this.nextTuple;
    const size = total * 2 + 1000;
    this.nextTuple += size;
    return { first, tuples: Array.from({ length: size }, (_, k) => burstTuple(first + k)) };
  }

  private burstOptions(
    pool: { first: number; tuples: unknown[] },
    total: number,
    rate: number,
  ): Parameters<typeof runBurst>[1] {
    return {
      first: pool.first,
      pool: pool.tuples.length,
      total,
      rate,
      attemptMs: this.s.attemptMs,
      deadlineMs: this.s.deadlineMs,
    };
  }
}

function countOn(nodeOf: Map<string, string>, where: (node: string) => boolean): number {
  let n = 0;
  for (const node of nodeOf.values()) if (where(node)) n++;
  return n;
}

function sumWhere(m: Map<string, number>, where: (node: string) => boolean): number {
  let n = 0;
  for (const [k, v] of m) if (where(k)) n += v;
  return n;
}

/** Broken (or not open at the end) long-lived connections, per node that held them. */
function brokenByNode(
  opened: readonly HeldConnection[],
  outcomes: readonly HeldOutcome[],
  nodeOf: Map<string, string>,
): Map<string, number> {
  const byIndex = new Map(outcomes.map((o) => [o.i, o]));
  const out = new Map<string, number>();
  for (const c of opened) {
    const node = nodeOf.get(c.local);
    if (!node) continue;
    if (byIndex.get(c.i)?.state === 'open') continue;
    out.set(node, (out.get(node) ?? 0) + 1);
  }
  return out;
}

function summarize(
  run: BurstRun,
  eventAt: number,
  routeAt: number | null,
  deadlineMs: number,
): NewConnections {
  const failedAttempts: Record<string, number> = {};
  for (const a of run.attempts)
    if (a.outcome !== 'ok') failedAttempts[a.outcome] = (failedAttempts[a.outcome] ?? 0) + 1;
  const windowEnd = (routeAt ?? eventAt) + deadlineMs;
  const inWindow = run.connections.filter((c) => c.first >= eventAt && c.first <= windowEnd);
  const last = run.connections.reduce((m, c) => Math.max(m, c.first), run.startedAt);
  return {
    attempted: run.connections.length,
    succeeded: run.connections.filter((c) => c.okAt >= 0).length,
    realIp: run.connections.filter((c) => c.realIp).length,
    retried: run.connections.filter((c) => c.attempts > 1).length,
    attempts: run.attempts.length,
    failedAttempts,
    inWindow: {
      attempted: inWindow.length,
      succeeded: inWindow.filter((c) => c.okAt >= 0).length,
    },
    durationMs: last - run.startedAt,
  };
}
