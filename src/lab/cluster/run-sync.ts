/**
 * `fullnat lab --cluster --sync` (and `--no-sync`): the sync scenario
 * (sync-measure.ts) in a cluster lab session — the nodes with a `sync`
 * block each and one key file, or without, the real servers serving one
 * object of random bytes written by the lab (its sha256 known), the
 * router in ECMP — and its report (sync-report.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NODE_METRICS } from './node-metrics.js';
import { DEFAULT_NODES, RS_PORT } from './plan.js';
import { withClusterLab } from './session.js';
import {
  DEFAULT_SYNC_SETTINGS,
  downloadRate,
  SyncMeasure,
  type SyncSettings,
} from './sync-measure.js';
import { buildSyncReport, type SyncReport } from './sync-report.js';
import { OBJECT_SERVER, type Log, type RealServerApp } from './topology.js';

export interface SyncLabOptions {
  nodes?: number;
  /** A `sync` block on every node; false: the same run without (the figure to beat). */
  sync: boolean;
  settings?: Partial<SyncSettings>;
}

/** `drain_timeout` of the nodes: the scenario never drains, a stop is quick. */
const DRAIN_TIMEOUT = 2;

/** Writes `bytes` random bytes to `file`; returns their sha256. */
function writeObject(file: string, bytes: number): string {
  const data = randomBytes(bytes);
  writeFileSync(file, data);
  return createHash('sha256').update(data).digest('hex');
}

export async function runClusterSyncLab(o: SyncLabOptions, log: Log): Promise<SyncReport> {
  const t0 = Date.now();
  const settings: SyncSettings = { ...DEFAULT_SYNC_SETTINGS, ...o.settings };
  const nodes = o.nodes ?? DEFAULT_NODES;
  let sha256 = '';
  const objectServer = (file: string): RealServerApp => {
    const rate = String(downloadRate(settings));
    return (r) => [
      process.execPath,
      OBJECT_SERVER,
      '--name',
      r.host,
      '--port',
      String(RS_PORT),
      '--object',
      file,
      '--rate',
      rate,
    ];
  };
  return withClusterLab(
    {
      nodes,
      drainTimeout: DRAIN_TIMEOUT,
      sync: o.sync,
      metrics: NODE_METRICS,
      router: 'ecmp',
      realServerApp: (topo) => {
        const file = join(topo.workDir, 'object.bin');
        sha256 = writeObject(file, settings.objectBytes);
        return objectServer(file);
      },
    },
    log,
    async ({ topo, receiver }) => {
      log(`cluster-sync: ${nodes} nodes, sync ${o.sync ? 'on' : 'off'}`);
      const m = await new SyncMeasure(topo, settings, log).run({ sha256 });
      return buildSyncReport(m, nodes, o.sync, receiver, Date.now() - t0);
    },
  );
}
