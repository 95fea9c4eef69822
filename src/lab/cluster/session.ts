/**
 * One run of a cluster lab, whatever it measures: the machine checked, the
 * lock taken, a killed run's leftovers cleared, the eBPF receiver loaded,
 * the topology built with its real servers and router; then the
 * measurement; then everything removed — on return, on failure (after the
 * logs of the router and the nodes), on Ctrl-C or SIGTERM (no report), and
 * at process exit as a last resort.
 */
import { tunAvailable } from '../../io/tun.js';
import { acquireLabLock } from '../lock.js';
import { netnsAvailable } from '../netns.js';
import type { ReceiverHandle } from '../receiver.js';
import type { RouterMode } from './router-bird.js';
import {
  birdBinaries,
  cleanupClusterLeftovers,
  CLI,
  CLUSTER_LOCK_FILE,
  CLUSTER_RECEIVER,
  ClusterTopology,
  type ClusterTopologyOptions,
  type Log,
  type RealServerApp,
} from './topology.js';
import { LabInterrupt } from '../interrupt.js';

/** Whether this machine can run the cluster lab; `reason` says why not. */
export function clusterLabAvailable(): { ok: boolean; reason: string } {
  const n = netnsAvailable();
  if (!n.ok) return n;
  const t = tunAvailable();
  if (!t.ok) return { ok: false, reason: t.reason };
  if (!birdBinaries()) return { ok: false, reason: 'bird2 is not installed (bird, birdc)' };
  return { ok: true, reason: '' };
}

export interface SessionOptions extends Omit<ClusterTopologyOptions, 'log'> {
  /** The router's mode at start. */
  router: RouterMode;
  /** The real servers' application, chosen once the topology (and its work directory) exists; the echo server by default. */
  realServerApp?: (topo: ClusterTopology) => RealServerApp;
}

export interface ClusterSession {
  topo: ClusterTopology;
  /** 'ebpf' when the real servers run under the receiver, 'none' when it could not load. */
  receiver: 'ebpf' | 'none';
  /** A signal arrived: the teardown is under way, stop measuring. */
  interrupted(): boolean;
}

/** Runs `measure` on a lab built as `o` says, and tears the lab down whatever happens. */
export async function withClusterLab<T>(
  o: SessionOptions,
  log: Log,
  measure: (s: ClusterSession) => Promise<T>,
): Promise<T> {
  const avail = clusterLabAvailable();
  if (!avail.ok) throw new Error(`fullnat lab --cluster: ${avail.reason}`);
  const release = acquireLabLock(CLUSTER_LOCK_FILE);
  let topo: ClusterTopology | undefined;
  let receiver: ReceiverHandle | undefined;
  const stop = new LabInterrupt(
    'cluster',
    log,
    () => {
      topo?.destroySync();
      release();
    },
    async () => {
      await topo?.destroy();
      if (receiver) await CLUSTER_RECEIVER.tearDown(receiver);
      release();
    },
  );
  try {
    await cleanupClusterLeftovers(log);
    const r = await CLUSTER_RECEIVER.setUp(CLI);
    if (typeof r === 'string') log(`cluster: the RSs run without the eBPF receiver (${r})`);
    else receiver = r;
    const { router, realServerApp, ...topoOptions } = o;
    topo = new ClusterTopology({ ...topoOptions, log });
    topo.build();
    await topo.startRealServers(receiver ? receiver.exec : null, realServerApp?.(topo));
    await topo.startRouter(router);
    const session: ClusterSession = {
      topo,
      receiver: receiver ? 'ebpf' : 'none',
      interrupted: () => stop.signal !== undefined,
    };
    const result = await measure(session);
    // Interrupted: the signal handler tears down and exits; no partial report.
    if (stop.signal) await new Promise(() => {});
    return result;
  } catch (e) {
    if (stop.signal) await new Promise(() => {});
    if (topo) {
      log(`cluster: router's bird log tail:\n${topo.routerLogTail(1500)}`);
      const agent = topo.agentLogTail(800);
      if (agent) log(`cluster: nexthop agent log tail:\n${agent}`);
      for (const n of topo.nodes) log(`cluster: ${n.name} log tail:\n${topo.nodeLogTail(n, 800)}`);
    }
    throw e;
  } finally {
    await stop.finish();
  }
}
