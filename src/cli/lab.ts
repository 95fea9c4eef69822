/**
 * `fullnat lab`: the TOA-loss scenarios on real Linux kernels (network
 * namespaces, `fullnat run`, Linux real servers), reported like
 * `fullnat simulate` with `"mode": "lab"` and, per row, where the verdict
 * came from (`"source": "rs-app" | "rs-capture"`), in the address families
 * of `--family` (lab/family.ts). See src/lab/live/.
 */
import type { ToaPolicy } from '../engine/options.js';
import {
  DEFAULT_DEADLINE_MS,
  DEFAULT_LAB_CONNECTIONS,
  labAvailable,
  runLabScenarios,
  type LabOptions,
  type LabRow,
  type LabSource,
} from '../lab/live/run-lab.js';
import { parseFamilies, type LabFamily } from '../lab/family.js';
import type { ScenarioName } from '../lab/sim/scenarios.js';
import { DEFAULT_SETTINGS } from '../lab/cluster/measure.js';
import { MAX_NODES } from '../lab/cluster/plan.js';
import { ROUTER_MODES, type RouterMode } from '../lab/cluster/router-bird.js';
import type { ClusterLabOptions } from '../lab/cluster/run-cluster.js';
import type { SyncLabOptions } from '../lab/cluster/run-sync.js';
import {
  formatTable,
  parseList,
  parseScenarios,
  TOA_POLICIES,
  type SimulateReport,
} from './simulate.js';

export { DEFAULT_LAB_CONNECTIONS, labAvailable, type LabRow };

export const LAB_SOURCES = ['auto', 'rs-app', 'rs-capture'] as const;

export interface LabCliOptions {
  json: boolean;
  /** Address families (lab/family.ts); default [4]. */
  families?: LabFamily[];
  policies: ToaPolicy[];
  scenarios: ScenarioName[];
  connections: number;
  seed: number;
  source: 'auto' | LabSource;
  pcapDir?: string;
  /** Per scenario × policy, ms. */
  deadlineMs?: number;
  mssAdjust?: boolean;
  timestampRemove?: boolean;
}

/** A lab row as reported: `family` first, as `fullnat simulate` has it. */
export type LabReportRow = LabRow;

/** The report: `fullnat simulate`'s shape, rows carrying `source` as well. */
export interface LabReport extends SimulateReport {
  mode: 'lab';
  results: LabReportRow[];
}

/**
 * Runs the lab. `log` gets progress and diagnostics (one line per
 * scenario × policy, the reason for the first miss of each); the caller
 * prints the report (JSON or `formatLabTable`).
 */
export async function runLab(opts: LabCliOptions, log: (line: string) => void): Promise<LabReport> {
  const o: LabOptions = {
    families: opts.families,
    policies: opts.policies,
    scenarios: opts.scenarios,
    connections: opts.connections,
    seed: opts.seed,
    source: opts.source,
    pcapDir: opts.pcapDir,
    deadlineMs: opts.deadlineMs ?? DEFAULT_DEADLINE_MS,
    mssAdjust: opts.mssAdjust,
    timestampRemove: opts.timestampRemove,
  };
  const r = await runLabScenarios(o, log);
  log(
    `lab: ${r.rows.length} runs in ${(r.elapsedMs / 1000).toFixed(1)} s; verdicts from ${
      r.source === 'rs-app'
        ? 'the RS application under the eBPF TOA receiver (fullnat rs exec)'
        : `captures at the RS read by the doctor${r.receiverNote ? ` (receiver: ${r.receiverNote})` : ''}`
    }`,
  );
  const disagree = r.runs.reduce((n, x) => n + x.disagreements, 0);
  if (disagree > 0)
    log(
      `lab: the receiver and the RS captures disagree on ${disagree} connections (see lines above)`,
    );
  const lost = r.runs.reduce((n, x) => n + x.captureLoss, 0);
  const dropped = r.runs.reduce((n, x) => n + (x.captureDropped ?? 0), 0);
  if (dropped > 0)
    log(
      `lab: tcpdump dropped ${dropped} packets at the RS captures; ${lost} connections missing from them are capture loss, not TOA failures` +
        (r.source === 'rs-capture' ? ' (counted as failed: no verdict)' : ''),
    );
  return { mode: 'lab', results: r.rows };
}

/** The table a person reads: the simulator's, then where the verdicts came from. */
export function formatLabTable(report: LabReport): string {
  const sources = [...new Set(report.results.map((r) => r.source))];
  return `${formatTable(report)}\n\nmode: lab (real kernels); verdict source: ${sources.join(', ') || '-'}`;
}

/** Parses the CLI's string options (the same lists as `simulate`). */
export function labOptionsFromFlags(flags: {
  json?: boolean;
  policy?: string;
  scenario?: string;
  family?: string;
  connections?: number;
  seed?: number;
  source?: string;
  pcap?: string;
  timeout?: number;
  mssAdjust?: boolean;
  timestampRemove?: boolean;
}): LabCliOptions {
  const [source] = parseList(flags.source ?? 'auto', LAB_SOURCES, 'source');
  return {
    json: flags.json === true,
    families: parseFamilies(flags.family),
    policies: parseList<ToaPolicy>(flags.policy, TOA_POLICIES, 'policy'),
    scenarios: parseScenarios(flags.scenario),
    connections: flags.connections ?? DEFAULT_LAB_CONNECTIONS,
    seed: flags.seed ?? Date.now() >>> 0,
    source: source ?? 'auto',
    pcapDir: flags.pcap,
    deadlineMs: flags.timeout ?? DEFAULT_DEADLINE_MS,
    mssAdjust: flags.mssAdjust !== false,
    timestampRemove: flags.timestampRemove !== false,
  };
}

/** `fullnat lab --cluster`'s own flags. */
export interface ClusterFlags {
  nodes?: number;
  router?: string;
  newConnections?: number;
  rate?: number;
  hold?: number;
  drain?: boolean;
  /** true: the sync scenario with sync; false: the same without (`--no-sync`); absent: the failover lab. */
  sync?: boolean;
  transfers?: number;
  objectMb?: number;
  transferSeconds?: number;
}

/** Parses `--cluster`'s flags: 2..8 nodes, router modes `ecmp`, `resilient` (both by default). */
export function clusterOptionsFromFlags(flags: ClusterFlags): ClusterLabOptions {
  const nodes = flags.nodes ?? 3;
  if (nodes < 2 || nodes > MAX_NODES)
    throw new Error(`--nodes: a fleet has 2..${MAX_NODES} nodes (got ${nodes})`);
  return {
    nodes,
    routers: parseList<RouterMode>(flags.router, ROUTER_MODES, 'router'),
    drain: flags.drain !== false,
    settings: {
      newConnections: flags.newConnections ?? DEFAULT_SETTINGS.newConnections,
      rate: flags.rate ?? DEFAULT_SETTINGS.rate,
      holdPerNode: flags.hold ?? DEFAULT_SETTINGS.holdPerNode,
    },
  };
}

/** The sync scenario's options when `--sync` or `--no-sync` was given; undefined otherwise. */
export function syncOptionsFromFlags(flags: ClusterFlags): SyncLabOptions | undefined {
  if (flags.sync === undefined) return undefined;
  const nodes = flags.nodes ?? 3;
  if (nodes < 2 || nodes > MAX_NODES)
    throw new Error(`--nodes: a fleet has 2..${MAX_NODES} nodes (got ${nodes})`);
  const settings: SyncLabOptions['settings'] = {};
  if (flags.transfers !== undefined) settings.transfers = flags.transfers;
  if (flags.objectMb !== undefined) settings.objectBytes = flags.objectMb * 1024 * 1024;
  if (flags.transferSeconds !== undefined) settings.transferSeconds = flags.transferSeconds;
  return { nodes, sync: flags.sync, settings };
}
