/**
 * What `fullnat lab --cluster --sync` (and `--no-sync`, the figure to
 * beat) reports: the issue's JSON document, the measurement's details
 * beside it, and the table a person reads.
 */
import type { SyncMeasurement } from './sync-measure.js';

export interface SyncReport extends SyncMeasurement {
  mode: 'cluster-sync';
  nodes: number;
  /** Whether the nodes ran with a `sync` block. */
  sync: boolean;
  /** Where the RS's view of the client came from: the eBPF receiver, or none (real IP not checked). */
  receiver: 'ebpf' | 'none';
  /** From the start of the run to the report: setup and downloads, not the teardown. */
  elapsedMs: number;
}

/** The issue's fields first, in its order; the rest after. */
export function buildSyncReport(
  m: SyncMeasurement,
  nodes: number,
  sync: boolean,
  receiver: 'ebpf' | 'none',
  elapsedMs: number,
): SyncReport {
  const { transfers, completed, sha256Ok, realIp, broken, syncBytesPerConnection, ...rest } = m;
  return {
    mode: 'cluster-sync',
    nodes,
    transfers,
    completed,
    sha256Ok,
    realIp,
    broken,
    // Without sync there is nothing to divide, whatever a node's metrics hold.
    syncBytesPerConnection: sync ? syncBytesPerConnection : null,
    sync,
    ...rest,
    receiver,
    elapsedMs,
  };
}

const ms = (v: number | null): string => (v === null ? 'never' : `${Math.round(v)} ms`);
const of = (n: number, d: number): string =>
  d === 0 ? '-' : `${n}/${d} (${((100 * n) / d).toFixed(1)} %)`;
const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

/** The report as a two-column table. */
export function formatSyncTable(r: SyncReport): string {
  const reasons = Object.entries(r.brokenBy)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const p = r.restart.probes;
  const rows: [string, string][] = [
    ['sync', r.sync ? 'on' : 'off (the figure to beat)'],
    [
      'downloads',
      `${r.transfers} × ${mb(r.objectBytes)} at ${mb(r.rateBytesPerSecond)}/s each, through ${r.nodes} nodes (ECMP)`,
    ],
    ['per node (router hash)', r.perNode.map((x) => `${x.node} ${x.transfers}`).join(', ')],
    ['completed', of(r.completed, r.transfers)],
    ['sha256 equal', of(r.sha256Ok, r.transfers)],
    ['real client IP at the RS', of(r.realIp, r.transfers)],
    ['broken', `${of(r.broken, r.transfers)}${reasons ? `: ${reasons}` : ''}`],
    [
      '… on the killed node / the others',
      `${of(r.brokenKilled, r.killed.transfers)} / ${of(r.brokenSurvivors, r.transfers - r.killed.transfers)}`,
    ],
    [
      'killed',
      `${r.killed.node} (kill -9, ${r.killed.transfers} downloads) ${ms(r.durations.killAtMs)} into the downloads`,
    ],
    [
      '… its bird gone after',
      r.killed.birdPid === null ? 'unknown (no pid)' : ms(r.killed.birdGoneAfterMs),
    ],
    ['… the VIP route without it after', ms(r.killed.routeAfterMs)],
    [
      'restarted after / running / announced',
      `${ms(r.restart.startedAfterMs)} / ${ms(r.restart.runningAfterMs)} / ${ms(r.restart.announcedAfterMs)}`,
    ],
    [
      '… table entries when announced',
      r.restart.tableAtAnnounce === null ? '-' : String(r.restart.tableAtAnnounce),
    ],
    [
      '… new connections after (through it)',
      `${of(p.succeeded, p.attempted)} (${p.toRestartedSucceeded}/${p.toRestarted}); real IP ${p.realIp}`,
    ],
    [
      'sync bytes per connection',
      r.syncBytesPerConnection === null
        ? '-'
        : `${r.syncBytesPerConnection} (${r.syncBytesOut} bytes, ${r.connectionsCreated} connections)`,
    ],
    [
      'download time min / median / max',
      r.transferMs
        ? `${ms(r.transferMs.min)} / ${ms(r.transferMs.median)} / ${ms(r.transferMs.max)}`
        : '-',
    ],
    [
      'CPU',
      `${r.cpu.busyPercent} % of ${r.cpu.cpus} CPUs busy; fullnat ${Object.entries(
        r.cpu.nodeSeconds,
      )
        .map(([k, v]) => `${k} ${v} s`)
        .join(', ')}; client ${r.cpu.clientSeconds} s`,
    ],
    ['elapsed', `${(r.elapsedMs / 1000).toFixed(1)} s (downloads ${ms(r.durations.downloadsMs)})`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
  lines.push(
    '',
    `mode: cluster-sync, ${r.nodes} nodes` +
      (r.receiver === 'none' ? ' (no eBPF receiver: the RS saw the LIPs)' : ''),
  );
  return lines.join('\n');
}
