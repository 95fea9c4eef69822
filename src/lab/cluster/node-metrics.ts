/**
 * A node's Prometheus metrics, read from inside its namespace (its
 * listener is on the namespace's loopback, out of the lab's reach
 * otherwise), and one family's value picked out of the text.
 */
import { execFile } from 'node:child_process';
import type { ClusterNode } from './plan.js';
import type { ClusterTopology } from './topology.js';

/** Where every node's metrics listen, inside its own namespace. */
export const NODE_METRICS = '127.0.0.1:9400';

/** The node's /metrics text; null when it does not answer within `timeoutMs`. */
export function scrapeNode(
  topo: ClusterTopology,
  node: ClusterNode,
  timeoutMs = 5000,
): Promise<string | null> {
  return new Promise((resolve) =>
    execFile(
      'ip',
      [
        'netns',
        'exec',
        topo.lab.ns(node.name),
        'curl',
        '-sf',
        '--max-time',
        String(Math.ceil(timeoutMs / 1000)),
        `http://${NODE_METRICS}/metrics`,
      ],
      { timeout: timeoutMs + 1000, maxBuffer: 16 << 20 },
      (err, out) => resolve(err ? null : out),
    ),
  );
}

/**
 * The sum of `family`'s samples whose labels include every one of
 * `labels` (`{direction: 'out'}`); null when the family has no such sample.
 */
export function metricValue(
  text: string,
  family: string,
  labels: Record<string, string> = {},
): number | null {
  let sum: number | null = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith(family)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== family) continue;
    const have = new Map<string, string>();
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      have.set(l[1]!, l[2]!);
    if (Object.entries(labels).some(([k, v]) => have.get(k) !== v)) continue;
    const v = Number(m[3]);
    if (Number.isFinite(v)) sum = (sum ?? 0) + v;
  }
  return sum;
}
