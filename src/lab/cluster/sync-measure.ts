/**
 * The sync scenario on a full fleet behind the router (ECMP): long HTTP
 * downloads of one object, rate-limited at the real servers so that each
 * lasts `transferSeconds`, spread over the nodes by the router's hash.
 * Once every download has a body byte, `kill -9` of the fullnat of the
 * node the router sends the most of them to (its bird must go with it);
 * after `restartAfterMs`, `fullnat run` again with the same configuration
 * — with sync it resyncs before it announces — until the router routes to
 * it again; then short connections through the VIP, some of which the
 * router sends to it; then the downloads to their end. Every wait is
 * bounded.
 *
 * What a download became: completed with the object's sha256, or broken
 * (download-client.ts names why); whether the real server saw the client's
 * own address. The sync channel's cost: the nodes' outgoing sync bytes
 * (`fullnat_sync_bytes_total{direction="out"}`) over the connections they
 * created, the killed node's counters read just before the kill.
 */
import { processCpuSeconds, machineTicks, busyPercent, CPUS } from './cpu.js';
import { Downloads, runProbes, type DownloadResult, type Probe } from './downloads.js';
import { metricValue, scrapeNode } from './node-metrics.js';
import { burstTuple, nodeByGateway, type ClusterNode } from './plan.js';
import { RouteWatch } from './route-watch.js';
import { routerGateways } from './router-hash.js';
import type { ClusterTopology, Log } from './topology.js';
import type { Snapshot } from '../../control/model.js';
import { endpointToString } from '../../wire/address.js';

export interface SyncSettings {
  transfers: number;
  objectBytes: number;
  /** Each download's length at the real servers' rate: objectBytes / transferSeconds a second. */
  transferSeconds: number;
  /** A download without a byte this long is broken. */
  stallMs: number;
  /** From every download flowing to the kill. */
  killAfterFlowingMs: number;
  /** From the kill to `fullnat run` again. */
  restartAfterMs: number;
  /** Short connections once the killed node is back, and the time each has. */
  probes: number;
  probeDeadlineMs: number;
}

export const DEFAULT_SYNC_SETTINGS: SyncSettings = {
  transfers: 300,
  objectBytes: 50 * 1024 * 1024,
  transferSeconds: 100,
  stallMs: 10_000,
  killAfterFlowingMs: 1000,
  restartAfterMs: 5000,
  probes: 60,
  probeDeadlineMs: 2000,
};

/** The real servers' rate per download, bytes a second. */
export function downloadRate(s: SyncSettings): number {
  return Math.ceil(s.objectBytes / s.transferSeconds);
}

export interface NodeShare {
  node: string;
  /** Downloads the router's hash sent to it when the node was killed. */
  transfers: number;
  /** Entries in its connection table then (`ctl -Lnc`; with sync, its peers' too). */
  tableEntries: number;
}

export interface RestartCheck {
  /** From the kill: `fullnat run` started again, said it runs, the router routed the VIP to it again (null: not within the bound). */
  startedAfterMs: number;
  runningAfterMs: number | null;
  announcedAfterMs: number | null;
  /** Entries in its table when the router first routed to it again (what the resync brought back). */
  tableAtAnnounce: number | null;
  probes: {
    attempted: number;
    succeeded: number;
    realIp: number;
    /** Those the router sent to the restarted node, and how many of them succeeded. */
    toRestarted: number;
    toRestartedSucceeded: number;
    failures: Record<string, number>;
  };
  /** Announced again, and every short connection through it answered. */
  ok: boolean;
}

export interface SyncMeasurement {
  transfers: number;
  completed: number;
  sha256Ok: number;
  realIp: number;
  broken: number;
  brokenBy: Record<string, number>;
  /** Broken among the downloads on the killed node, and on the others (the router's hash at the kill). */
  brokenKilled: number;
  brokenSurvivors: number;
  perNode: NodeShare[];
  killed: {
    node: string;
    transfers: number;
    /** Its bird's pid before the kill (null: the node did not say), and how long after the kill it was gone (null: not within 5 s). */
    birdPid: number | null;
    birdGoneAfterMs: number | null;
    /** The router's route for the VIP without it, ms after the kill. */
    routeAfterMs: number | null;
  };
  restart: RestartCheck;
  syncBytesOut: number | null;
  connectionsCreated: number;
  syncBytesPerConnection: number | null;
  rateBytesPerSecond: number;
  objectBytes: number;
  transferMs: { min: number; median: number; max: number } | null;
  /** Body bytes received over all downloads. */
  bytes: number;
  durations: { flowingMs: number; killAtMs: number; downloadsMs: number };
  cpu: {
    cpus: number;
    /** Whole machine, from the first download to the last. */
    busyPercent: number;
    /** fullnat's CPU seconds per node over the downloads (the killed node: both of its runs). */
    nodeSeconds: Record<string, number>;
    clientSeconds: number;
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A node's counters the sync figure needs; nulls where it does not answer. */
interface NodeCounters {
  created: number | null;
  syncOut: number | null;
}

export class SyncMeasure {
  constructor(
    private readonly topo: ClusterTopology,
    private readonly s: SyncSettings,
    private readonly log: Log,
  ) {}

  async run(object: { sha256: string }): Promise<SyncMeasurement> {
    const { topo, s, log } = this;
    for (const n of topo.nodes) await topo.startNode(n);
    await topo.waitForFleet(topo.nodes, 45_000);
    const cpu0 = machineTicks();
    const nodeCpu = new Map<string, number>();
    const pid0 = new Map<string, { pid: number; cpu: number }>();
    for (const n of topo.nodes) {
      const pid = topo.nodePid(n);
      if (pid) pid0.set(n.name, { pid, cpu: processCpuSeconds(pid) ?? 0 });
    }
    const rate = downloadRate(s);
    log(
      `cluster-sync: ${s.transfers} downloads of ${s.objectBytes} bytes at ${rate} bytes/s each (${s.transferSeconds} s), ` +
        `${((s.transfers * rate * 8) / 1e9).toFixed(2)} Gbit/s in all`,
    );
    const downloads = Downloads.start(topo, {
      count: s.transfers,
      bytes: s.objectBytes,
      sha256: object.sha256,
      stallMs: s.stallMs,
      maxMs: s.transferSeconds * 1000 + s.stallMs + 60_000,
    });
    const t0 = downloads.startedAt;
    let clientCpu = 0;
    const clientPid = downloads.pid;
    const sampler = setInterval(() => {
      const v = clientPid ? processCpuSeconds(clientPid) : null;
      if (v !== null) clientCpu = v;
    }, 1000);
    const watch = new RouteWatch(() => topo.vipGateways(), 20);
    try {
      const flowingAt = await downloads.waitFlowing(s.transfers * 10 + 30_000);
      log(`cluster-sync: every download flowing after ${flowingAt - t0} ms`);
      await sleep(s.killAfterFlowingMs);

      // Who carries what: the router's hash decides; the tables are shown beside it.
      const locals = downloads.opened.map((o) => o.local);
      const nodeOf = await this.nodeOfTransfers(locals);
      const victim = this.mostLoaded(nodeOf);
      const [perNode, before, victimSnap] = await Promise.all([
        this.shares(nodeOf, locals),
        this.counters(victim),
        this.snapshot(victim),
      ]);
      const birdPid = victimSnap?.cluster?.speaker?.pid;
      const victimPid = pid0.get(victim.name);
      const victimCpu = victimPid ? processCpuSeconds(victimPid.pid) : null;

      watch.start();
      const killedAt = topo.killNode(victim);
      log(
        `cluster-sync: kill -9 of ${victim.name}'s fullnat (${perNode.find((p) => p.node === victim.name)?.transfers} downloads through it), ${Date.now() - t0} ms into the downloads`,
      );
      if (victimPid && victimCpu !== null) nodeCpu.set(victim.name, victimCpu - victimPid.cpu);
      const birdGoneAfterMs =
        birdPid === undefined ? null : await goneAfter(birdPid, killedAt, 5000);
      if (birdPid !== undefined && birdGoneAfterMs === null)
        log(`cluster-sync: ${victim.name}'s bird (pid ${birdPid}) still runs 5 s after the kill`);

      await sleep(Math.max(0, killedAt + s.restartAfterMs - Date.now()));
      const restart = await this.restart(victim, killedAt, watch);
      await watch.stop();
      const routeAt = watch.firstWithout(victim.addr, killedAt);
      log(
        `cluster-sync: ${victim.name} back: running after ${restart.runningAfterMs} ms, announced after ${restart.announcedAfterMs} ms ` +
          `with ${restart.tableAtAnnounce} entries; short connections ${restart.probes.succeeded}/${restart.probes.attempted}, ` +
          `${restart.probes.toRestartedSucceeded}/${restart.probes.toRestarted} through it`,
      );

      const results = await downloads.finish(
        Math.max(10_000, t0 + s.transferSeconds * 1000 + s.stallMs + 70_000 - Date.now()),
      );
      const endedAt = Date.now();
      const cpu1 = machineTicks();
      for (const n of topo.nodes) {
        const pid = topo.nodePid(n);
        const cpu = pid ? processCpuSeconds(pid) : null;
        if (cpu === null) continue;
        // The killed node's second run counts from its own start.
        const base = n.name === victim.name ? 0 : (pid0.get(n.name)?.cpu ?? 0);
        nodeCpu.set(n.name, (nodeCpu.get(n.name) ?? 0) + cpu - base);
      }

      let syncOut: number | null = before.syncOut;
      let created = before.created ?? 0;
      for (const n of topo.nodes) {
        const c = await this.counters(n);
        if (c.syncOut !== null) syncOut = (syncOut ?? 0) + c.syncOut;
        created += c.created ?? 0;
      }
      const m = tally(results, s.transfers, nodeOf, victim.name);
      for (const line of brokenSummary(results, nodeOf, killedAt)) log(`cluster-sync: ${line}`);
      const durations = results
        .filter((r) => r.state === 'completed')
        .map((r) => r.end - r.start)
        .sort((a, b) => a - b);
      return {
        ...m,
        perNode,
        killed: {
          node: victim.name,
          transfers: perNode.find((p) => p.node === victim.name)?.transfers ?? 0,
          birdPid: birdPid ?? null,
          birdGoneAfterMs,
          routeAfterMs: routeAt === null ? null : routeAt - killedAt,
        },
        restart,
        syncBytesOut: syncOut,
        connectionsCreated: created,
        syncBytesPerConnection:
          syncOut === null || created === 0 ? null : Math.round(syncOut / created),
        rateBytesPerSecond: rate,
        objectBytes: s.objectBytes,
        transferMs: durations.length
          ? {
              min: durations[0]!,
              median: durations[durations.length >> 1]!,
              max: durations[durations.length - 1]!,
            }
          : null,
        bytes: results.reduce((n, r) => n + r.bytes, 0),
        durations: {
          flowingMs: flowingAt - t0,
          killAtMs: killedAt - t0,
          downloadsMs: endedAt - t0,
        },
        cpu: {
          cpus: CPUS,
          busyPercent: Math.round(busyPercent(cpu0, cpu1)),
          nodeSeconds: Object.fromEntries(
            topo.nodes.map((n) => [n.name, round1(nodeCpu.get(n.name) ?? 0)]),
          ),
          clientSeconds: round1(clientCpu),
        },
      };
    } finally {
      clearInterval(sampler);
      await watch.stop();
      downloads.kill();
    }
  }

  /** `fullnat run` of the killed node again; the router routing to it; short connections, some through it. */
  private async restart(
    victim: ClusterNode,
    killedAt: number,
    watch: RouteWatch,
  ): Promise<RestartCheck> {
    const { topo, s, log } = this;
    const startedAfterMs = Date.now() - killedAt;
    let runningAfterMs: number | null = null;
    try {
      await topo.startNode(victim);
      runningAfterMs = Date.now() - killedAt;
    } catch (e) {
      log(`cluster-sync: ${victim.name} did not start again: ${(e as Error).message}`);
    }
    let announcedAfterMs: number | null = null;
    let tableAtAnnounce: number | null = null;
    if (runningAfterMs !== null) {
      try {
        await topo.waitForFleet(topo.nodes, 30_000);
        const seen = watch.changes.find(
          (c) => c.at >= killedAt + startedAfterMs && c.gateways.includes(victim.addr),
        );
        announcedAfterMs = (seen?.at ?? Date.now()) - killedAt;
        tableAtAnnounce = (await this.snapshot(victim))?.connections ?? null;
      } catch (e) {
        log(
          `cluster-sync: the router did not route to ${victim.name} again: ${(e as Error).message.split('\n')[0]}`,
        );
      }
    }
    const tuples = Array.from({ length: s.probes }, (_, k) => burstTuple(k));
    const gws = await routerGateways(topo.lab.ns('rt'), tuples);
    const probes: Probe[] = await runProbes(topo, 0, s.probes, s.probeDeadlineMs);
    const through = probes.filter((p) => gws[p.tuple] === victim.addr);
    const failures: Record<string, number> = {};
    for (const p of probes) if (!p.ok) failures[p.outcome] = (failures[p.outcome] ?? 0) + 1;
    if (Object.keys(failures).length)
      log(`cluster-sync: short connections failed: ${JSON.stringify(failures)}`);
    const p = {
      attempted: probes.length,
      succeeded: probes.filter((x) => x.ok).length,
      realIp: probes.filter((x) => x.realIp).length,
      toRestarted: through.length,
      toRestartedSucceeded: through.filter((x) => x.ok).length,
      failures,
    };
    return {
      startedAfterMs,
      runningAfterMs,
      announcedAfterMs,
      tableAtAnnounce,
      probes: p,
      ok:
        announcedAfterMs !== null &&
        p.toRestarted > 0 &&
        p.toRestartedSucceeded === p.toRestarted &&
        p.succeeded === p.attempted,
    };
  }

  /** The node the router sends each client end (`ip:port`) to. */
  private async nodeOfTransfers(locals: readonly string[]): Promise<Map<string, string>> {
    const tuples = locals.map((l) => {
      const [addr = '', port = '0'] = l.split(':');
      return { addr, port: Number(port) };
    });
    const gws = await routerGateways(this.topo.lab.ns('rt'), tuples);
    const out = new Map<string, string>();
    locals.forEach((l, k) => {
      const node = nodeByGateway(this.topo.nodes, gws[k] ?? '');
      if (node) out.set(l, node.name);
    });
    return out;
  }

  /** Per node: the downloads the router sends it, and how many of them its table holds. */
  private async shares(
    nodeOf: Map<string, string>,
    locals: readonly string[],
  ): Promise<NodeShare[]> {
    const wanted = new Set(locals);
    return Promise.all(
      this.topo.nodes.map(async (n) => {
        let tableEntries = 0;
        const res = await this.topo
          .request(n, { op: 'connections' }, 10_000)
          .catch(() => undefined);
        for (const c of res?.ok ? (res.connections ?? []) : [])
          if (wanted.has(endpointToString(c.client.addr, c.client.port))) tableEntries++;
        let transfers = 0;
        for (const v of nodeOf.values()) if (v === n.name) transfers++;
        return { node: n.name, transfers, tableEntries };
      }),
    );
  }

  /** The node the router sends the most downloads to (the first of equals). */
  private mostLoaded(nodeOf: Map<string, string>): ClusterNode {
    let best = this.topo.nodes[0]!;
    let most = -1;
    for (const n of this.topo.nodes) {
      let t = 0;
      for (const v of nodeOf.values()) if (v === n.name) t++;
      if (t > most) {
        most = t;
        best = n;
      }
    }
    return best;
  }

  /** The node's snapshot; undefined when it does not answer within 2 s. */
  private async snapshot(node: ClusterNode): Promise<Snapshot | undefined> {
    try {
      const res = await this.topo.request(node, { op: 'snapshot' }, 2000);
      return res.ok ? res.snapshot : undefined;
    } catch {
      return undefined;
    }
  }

  /** Connections the node created (its services' counters) and the sync bytes it sent. */
  private async counters(node: ClusterNode): Promise<NodeCounters> {
    const snap = await this.snapshot(node);
    const created = snap ? snap.services.reduce((n, svc) => n + svc.stats.conns, 0) : null;
    const text = await scrapeNode(this.topo, node);
    const syncOut =
      text === null ? null : metricValue(text, 'fullnat_sync_bytes_total', { direction: 'out' });
    return { created, syncOut };
  }
}

const round1 = (v: number): number => Math.round(v * 10) / 10;

/** Ms after `since` when process `pid` was found gone; null if it still ran after `limitMs`. */
async function goneAfter(pid: number, since: number, limitMs: number): Promise<number | null> {
  while (Date.now() - since <= limitMs) {
    try {
      process.kill(pid, 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') return Date.now() - since;
    }
    await sleep(20);
  }
  return null;
}

/** The downloads' figures: completed, sha256, real IP, broken by reason and by the node that carried them. */
export function tally(
  results: readonly DownloadResult[],
  transfers: number,
  nodeOf: Map<string, string>,
  killed: string,
): Pick<
  SyncMeasurement,
  | 'transfers'
  | 'completed'
  | 'sha256Ok'
  | 'realIp'
  | 'broken'
  | 'brokenBy'
  | 'brokenKilled'
  | 'brokenSurvivors'
> {
  const brokenBy: Record<string, number> = {};
  let brokenKilled = 0;
  let brokenSurvivors = 0;
  for (const r of results) {
    if (r.state !== 'broken') continue;
    const why = r.reason ?? 'unknown';
    brokenBy[why] = (brokenBy[why] ?? 0) + 1;
    if (nodeOf.get(r.local) === killed) brokenKilled++;
    else brokenSurvivors++;
  }
  // A download the client never reported on counts as broken.
  const missing = Math.max(0, transfers - results.length);
  if (missing > 0) brokenBy.unreported = missing;
  return {
    transfers,
    completed: results.filter((r) => r.state === 'completed').length,
    sha256Ok: results.filter((r) => r.state === 'completed' && r.sha256Ok).length,
    realIp: results.filter((r) => r.peer !== null && r.peer === r.local).length,
    broken: results.filter((r) => r.state === 'broken').length + missing,
    brokenBy,
    brokenKilled,
    brokenSurvivors: brokenSurvivors + missing,
  };
}

/** One line per reason a download broke: how many, on which nodes, when (ms after the kill) and after how many bytes. */
export function brokenSummary(
  results: readonly DownloadResult[],
  nodeOf: Map<string, string>,
  killedAt: number,
): string[] {
  const by = new Map<string, DownloadResult[]>();
  for (const r of results) {
    if (r.state !== 'broken') continue;
    const k = r.reason ?? 'unknown';
    by.set(k, [...(by.get(k) ?? []), r]);
  }
  return [...by].map(([reason, rs]) => {
    const nodes = new Map<string, number>();
    for (const r of rs) {
      const n = nodeOf.get(r.local) ?? '?';
      nodes.set(n, (nodes.get(n) ?? 0) + 1);
    }
    const at = rs.map((r) => r.end - killedAt);
    const bytes = rs.map((r) => r.bytes);
    return (
      `broken (${reason}): ${rs.length}, ${[...nodes].map(([n, c]) => `${n} ${c}`).join(', ')}; ` +
      `${Math.min(...at)}..${Math.max(...at)} ms after the kill, after ${Math.min(...bytes)}..${Math.max(...bytes)} bytes`
    );
  });
}
