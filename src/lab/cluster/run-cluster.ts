/**
 * `fullnat lab --cluster`: a fleet of fullnat nodes behind a bird2 router
 * on real kernels (topology.ts), measured in each router mode
 * (router-bird.ts) — spread, failover after `kill -9` of the first node,
 * drain of the second (measure.ts) — and reported (report.ts). Everything
 * it creates is removed on exit, Ctrl-C or failure; a run killed outright
 * is cleaned up by the next.
 */
import { tunAvailable } from '../../io/tun.js';
import { acquireLabLock } from '../lock.js';
import { netnsAvailable } from '../netns.js';
import type { ReceiverHandle } from '../receiver.js';
import { ClusterMeasure, DEFAULT_SETTINGS, type MeasureSettings } from './measure.js';
import { DEFAULT_NODES } from './plan.js';
import { buildReport, type ClusterReport, type RouterRun } from './report.js';
import { ROUTER_MODES, type RouterMode } from './router-bird.js';
import {
  birdBinaries,
  cleanupClusterLeftovers,
  CLI,
  CLUSTER_LOCK_FILE,
  CLUSTER_RECEIVER,
  ClusterTopology,
  type Log,
} from './topology.js';

export interface ClusterLabOptions {
  nodes?: number;
  /** Router modes, measured in this order (default: ecmp, then resilient). */
  routers?: readonly RouterMode[];
  /** Measure a drain in each mode (default true). */
  drain?: boolean;
  settings?: Partial<MeasureSettings>;
}

/** Whether this machine can run the cluster lab; `reason` says why not. */
export function clusterLabAvailable(): { ok: boolean; reason: string } {
  const n = netnsAvailable();
  if (!n.ok) return n;
  const t = tunAvailable();
  if (!t.ok) return { ok: false, reason: t.reason };
  if (!birdBinaries()) return { ok: false, reason: 'bird2 is not installed (bird, birdc)' };
  return { ok: true, reason: '' };
}

export async function runClusterLab(o: ClusterLabOptions, log: Log): Promise<ClusterReport> {
  const t0 = Date.now();
  const avail = clusterLabAvailable();
  if (!avail.ok) throw new Error(`fullnat lab --cluster: ${avail.reason}`);
  const settings: MeasureSettings = { ...DEFAULT_SETTINGS, ...o.settings };
  const routers = o.routers?.length ? o.routers : ROUTER_MODES;
  const release = acquireLabLock(CLUSTER_LOCK_FILE);
  let topo: ClusterTopology | undefined;
  let receiver: ReceiverHandle | undefined;
  let interrupted: NodeJS.Signals | undefined;
  const onExit = (): void => {
    topo?.destroySync();
    release();
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = sig;
    log(`cluster: ${sig}: tearing down`);
    void (async () => {
      await topo?.destroy();
      if (receiver) await CLUSTER_RECEIVER.tearDown(receiver);
      release();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    })();
  };
  process.on('exit', onExit);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await cleanupClusterLeftovers(log);
    const r = await CLUSTER_RECEIVER.setUp(CLI);
    if (typeof r === 'string') log(`cluster: the RSs run without the eBPF receiver (${r})`);
    else receiver = r;
    topo = new ClusterTopology({
      nodes: o.nodes ?? DEFAULT_NODES,
      drainTimeout: settings.drainTimeout,
      log,
    });
    topo.build();
    await topo.startRealServers(receiver ? receiver.exec : null);
    await topo.startRouter(routers[0]!);
    const measure = new ClusterMeasure(topo, settings, log);
    const [victim, drained] = topo.nodes;
    const runs: RouterRun[] = [];
    for (const router of routers) {
      if (interrupted) break;
      await topo.setRouterMode(router);
      log(
        `cluster: ${router}: failover (${settings.newConnections} new connections at ${settings.rate}/s)`,
      );
      const failover = await measure.failover(victim!);
      log(
        `cluster: ${router}: route without ${victim!.name} after ${failover.routeMs} ms, first new connection to its share after ${failover.failoverMs} ms; ` +
          `broken ${failover.brokenSurvivors}/${failover.survivorConnections} on survivors, ${failover.brokenKilled}/${failover.killedConnections} on ${victim!.name}; ` +
          `new ${failover.newConnections.succeeded}/${failover.newConnections.attempted}`,
      );
      let drain = null;
      if (o.drain !== false && !interrupted) {
        drain = await measure.drain(drained!);
        log(
          `cluster: ${router}: last new connection to ${drained!.name} ${drain.newToDrainingAfterMs} ms after the drain; ` +
            `broken ${drain.brokenDrained}/${drain.drainedConnections} on it, ${drain.brokenOthers}/${drain.otherConnections} on the others; exited after ${drain.exitedAfterMs} ms`,
        );
      }
      runs.push({ router, failover, drain });
    }
    // Interrupted: the signal handler tears down and exits; no partial report.
    if (interrupted) await new Promise(() => {});
    return buildReport(
      topo.nodes.map((n) => n.name),
      runs,
      receiver ? 'ebpf' : 'none',
      Date.now() - t0,
    );
  } catch (e) {
    if (interrupted) await new Promise(() => {});
    if (topo) {
      log(`cluster: router's bird log tail:\n${topo.routerLogTail(1500)}`);
      const agent = topo.agentLogTail(800);
      if (agent) log(`cluster: nexthop agent log tail:\n${agent}`);
      for (const n of topo.nodes) log(`cluster: ${n.name} log tail:\n${topo.nodeLogTail(n, 800)}`);
    }
    throw e;
  } finally {
    if (!interrupted) {
      await topo?.destroy();
      if (receiver) await CLUSTER_RECEIVER.tearDown(receiver);
      release();
    }
    process.off('exit', onExit);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
