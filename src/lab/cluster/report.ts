/**
 * What `fullnat lab --cluster` reports: the JSON document (its
 * figures from the router mode that keeps flows in place, the resilient
 * nexthop group, when the kernel has it), each router mode's measurements
 * beside them, and the table a person reads.
 */
import type { DrainResult, FailoverResult, PerNode } from './measure.js';
import type { RouterMode } from './router-bird.js';

export interface RouterRun {
  router: RouterMode;
  failover: FailoverResult;
  drain: DrainResult | null;
}

export interface ClusterReport {
  mode: 'cluster';
  nodes: number;
  /** Long-lived connections opened over the whole run, and those whose RS saw the client's own address. */
  connections: number;
  realIp: number;
  perNode: PerNode[];
  failoverMs: number | null;
  brokenSurvivors: number;
  brokenKilled: number;
  drain: { newToDrainingAfterMs: number | null; brokenDrained: number };
  /** The router mode the figures above come from. */
  router: RouterMode;
  /** The router's route without the dead node, ms after the kill. */
  routeMs: number | null;
  /** New connections during the failover: established within the deadline, over those attempted. */
  retry: { attempted: number; succeeded: number; realIp: number };
  /** Every router mode measured, in the order run. */
  routers: RouterRun[];
  /** Where the RS's view of the client came from: the eBPF receiver, or none (real IP not checked). */
  receiver: 'ebpf' | 'none';
  elapsedMs: number;
}

export function buildReport(
  nodes: readonly string[],
  runs: readonly RouterRun[],
  receiver: 'ebpf' | 'none',
  elapsedMs: number,
): ClusterReport {
  const primary = runs.find((r) => r.router === 'resilient') ?? runs[0];
  if (!primary) throw new Error('no router mode was measured');
  const spreads = runs.flatMap((r) => [r.failover.spread, ...(r.drain ? [r.drain.spread] : [])]);
  const perNode = nodes.map((node) => ({
    node,
    connections: spreads.reduce(
      (n, s) => n + (s.perNode.find((p) => p.node === node)?.connections ?? 0),
      0,
    ),
  }));
  const f = primary.failover;
  return {
    mode: 'cluster',
    nodes: nodes.length,
    connections: spreads.reduce((n, s) => n + s.connections, 0),
    realIp: spreads.reduce((n, s) => n + s.realIp, 0),
    perNode,
    failoverMs: f.failoverMs,
    brokenSurvivors: f.brokenSurvivors,
    brokenKilled: f.brokenKilled,
    drain: {
      newToDrainingAfterMs: primary.drain?.newToDrainingAfterMs ?? null,
      brokenDrained: primary.drain?.brokenDrained ?? 0,
    },
    router: primary.router,
    routeMs: f.routeMs,
    retry: {
      attempted: f.newConnections.attempted,
      succeeded: f.newConnections.succeeded,
      realIp: f.newConnections.realIp,
    },
    routers: [...runs],
    receiver,
    elapsedMs,
  };
}

const ms = (v: number | null): string => (v === null ? 'never' : `${Math.round(v)} ms`);
const pct = (n: number, d: number): string =>
  d === 0 ? '-' : `${n}/${d} (${((100 * n) / d).toFixed(2)} %)`;

const ROUTER_TITLES: Record<RouterMode, string> = {
  ecmp: 'ECMP (hash-threshold)',
  resilient: 'resilient nexthop group',
};

/** The report as a table: one column per router mode. */
export function formatClusterTable(r: ClusterReport): string {
  const rows: [string, ...string[]][] = [];
  const col = (label: string, f: (run: RouterRun) => string): void => {
    rows.push([label, ...r.routers.map(f)]);
  };
  col('router', (x) => ROUTER_TITLES[x.router]);
  col('connections per node', (x) =>
    x.failover.spread.perNode.map((p) => `${p.node} ${p.connections}`).join(', '),
  );
  col('real client IP (long-lived)', (x) =>
    pct(x.failover.spread.realIp, x.failover.spread.connections),
  );
  col('killed', (x) => `${x.failover.killed} (kill -9)`);
  col('route without it', (x) => ms(x.failover.routeMs));
  col('first new connection to its share', (x) => ms(x.failover.failoverMs));
  col('broken on survivors', (x) =>
    pct(x.failover.brokenSurvivors, x.failover.survivorConnections),
  );
  col('broken on the dead node', (x) => pct(x.failover.brokenKilled, x.failover.killedConnections));
  col('new connections within 1 s', (x) =>
    pct(x.failover.newConnections.succeeded, x.failover.newConnections.attempted),
  );
  col('… started in the failover window', (x) =>
    pct(x.failover.newConnections.inWindow.succeeded, x.failover.newConnections.inWindow.attempted),
  );
  col('real client IP (new)', (x) =>
    pct(x.failover.newConnections.realIp, x.failover.newConnections.succeeded),
  );
  col('drained', (x) => (x.drain ? `${x.drain.node} (ctl --drain)` : '-'));
  col('last new connection to it after', (x) => (x.drain ? ms(x.drain.newToDrainingAfterMs) : '-'));
  col('broken on the draining node', (x) =>
    x.drain ? pct(x.drain.brokenDrained, x.drain.drainedConnections) : '-',
  );
  col('broken on the others', (x) =>
    x.drain ? pct(x.drain.brokenOthers, x.drain.otherConnections) : '-',
  );
  col('draining node exited after', (x) => (x.drain ? ms(x.drain.exitedAfterMs) : '-'));
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const lines = rows.map((row) =>
    row
      .map((cell, c) => cell.padEnd(widths[c]!))
      .join('  ')
      .trimEnd(),
  );
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  lines.push(
    '',
    `mode: cluster, ${r.nodes} nodes; ${r.connections} long-lived connections, real client IP on ${pct(r.realIp, r.connections)}` +
      (r.receiver === 'none' ? ' (no eBPF receiver: the RS saw the LIPs)' : ''),
  );
  return lines.join('\n');
}
