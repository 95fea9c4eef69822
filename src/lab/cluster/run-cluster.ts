/**
 * `fullnat lab --cluster`: a fleet of fullnat nodes behind a bird2 router
 * on real kernels (topology.ts), measured in each router mode
 * (router-bird.ts) — spread, failover after `kill -9` of the first node,
 * drain of the second (measure.ts) — and reported (report.ts). The lab's
 * lifecycle (lock, receiver, teardown on exit, Ctrl-C or failure) is
 * session.ts's.
 */
import { ClusterMeasure, DEFAULT_SETTINGS, type MeasureSettings } from './measure.js';
import { DEFAULT_NODES } from './plan.js';
import { buildReport, type ClusterReport, type RouterRun } from './report.js';
import { ROUTER_MODES, type RouterMode } from './router-bird.js';
import { withClusterLab } from './session.js';
import type { Log } from './topology.js';

export { clusterLabAvailable } from './session.js';

export interface ClusterLabOptions {
  nodes?: number;
  /** Router modes, measured in this order (default: ecmp, then resilient). */
  routers?: readonly RouterMode[];
  /** Measure a drain in each mode (default true). */
  drain?: boolean;
  settings?: Partial<MeasureSettings>;
}

export async function runClusterLab(o: ClusterLabOptions, log: Log): Promise<ClusterReport> {
  const t0 = Date.now();
  const settings: MeasureSettings = { ...DEFAULT_SETTINGS, ...o.settings };
  const routers = o.routers?.length ? o.routers : ROUTER_MODES;
  return withClusterLab(
    {
      nodes: o.nodes ?? DEFAULT_NODES,
      drainTimeout: settings.drainTimeout,
      router: routers[0]!,
    },
    log,
    async ({ topo, receiver, interrupted }) => {
      const measure = new ClusterMeasure(topo, settings, log);
      const [victim, drained] = topo.nodes;
      const runs: RouterRun[] = [];
      for (const router of routers) {
        if (interrupted()) break;
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
        if (o.drain !== false && !interrupted()) {
          drain = await measure.drain(drained!);
          log(
            `cluster: ${router}: last new connection to ${drained!.name} ${drain.newToDrainingAfterMs} ms after the drain; ` +
              `broken ${drain.brokenDrained}/${drain.drainedConnections} on it, ${drain.brokenOthers}/${drain.otherConnections} on the others; exited after ${drain.exitedAfterMs} ms`,
          );
        }
        runs.push({ router, failover, drain });
      }
      // Interrupted: the signal handler tears down and exits; no partial report.
      if (interrupted()) await new Promise<never>(() => {});
      return buildReport(
        topo.nodes.map((n) => n.name),
        runs,
        receiver,
        Date.now() - t0,
      );
    },
  );
}
