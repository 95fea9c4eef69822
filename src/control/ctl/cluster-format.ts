/**
 * `fullnat ctl --cluster` and `--drain`: a fleet node's view as text. Not
 * an ipvsadm format (ipvsadm has none for this): one block per concern, the
 * neighbour table in fixed columns like `-Ln`'s, for people and for grep.
 */
import { addressToString } from '../../wire/address.js';
import type { ClusterStatus, DrainStatus, Snapshot } from '../model.js';

const pad = (s: string, n: number): string => (s.length >= n ? `${s} ` : s.padEnd(n));

function drainLine(d: DrainStatus, now: number): string {
  const elapsed = ((now - d.startedAt) / 1000).toFixed(1);
  const counts = `${d.connectionsLeft} of ${d.connectionsAtStart} connections left`;
  if (d.active) return `Drain: active, ${counts}, ${elapsed} s of ${d.timeout} s`;
  return `Drain: ended (${d.ended === 'timeout' ? 'timeout' : 'no connection left'}), ${counts}`;
}

/** The lines of `ctl --cluster`. */
export function formatCluster(snap: Snapshot, now = Date.now()): string[] {
  const c: ClusterStatus | undefined = snap.cluster;
  if (!c) return ['No bgp block: this node announces nothing, and no drain has run.'];
  const out: string[] = [];
  const sp = c.speaker;
  if (sp) {
    const run = sp.running ? `running${sp.pid === undefined ? '' : ` (pid ${sp.pid})`}` : 'down';
    out.push(`BGP speaker: bird ${sp.mode}, ${run}, restarts ${sp.restarts}`);
    out.push(`  socket ${sp.socket}`, `  config ${sp.config}`);
    if (sp.lastError !== undefined) out.push(`  last error: ${sp.lastError}`);
    out.push(
      `${pad('Neighbor', 26)}${pad('RemoteAS', 11)}${pad('State', 13)}${pad('BFD', 9)}${pad('Since', 14)}Info`,
    );
    for (const s of sp.sessions) {
      out.push(
        `${pad(addressToString(s.addr), 26)}${pad(String(s.remoteAs), 11)}${pad(s.state, 13)}` +
          `${pad(s.bfd ?? '-', 9)}${pad(s.since ?? '', 14)}${s.info ?? ''}`.trimEnd(),
      );
    }
  } else out.push('No bgp block: nothing is announced.');
  // A backup is a sync peer's LIP prefix, announced with the longer AS path.
  const backup = new Set(c.backup ?? []);
  out.push(
    `Announced (${c.announced.length}):`,
    ...c.announced.map((p) => (backup.has(p) ? `  ${pad(p, 24)}backup` : `  ${p}`)),
  );
  if (c.withheld.length > 0)
    out.push(
      `Withheld (${c.withheld.length}):`,
      ...c.withheld.map(
        (w) => `  ${pad(w.prefix, 24)}${w.reason}${backup.has(w.prefix) ? ' (backup)' : ''}`,
      ),
    );
  if (c.withheld.some((w) => w.reason === 'resync'))
    out.push("Sync: waiting for the peers' tables; nothing is announced until then.");
  if (c.drain) out.push(drainLine(c.drain, now));
  return out;
}

/** What `ctl --drain` prints once the LB has started the drain. */
export function formatDrainStarted(snap: Snapshot, now = Date.now()): string[] {
  const d = snap.cluster?.drain;
  if (!d) return [];
  const withdrawn = snap.cluster?.withheld.filter((w) => w.reason === 'draining') ?? [];
  return [
    `Draining: ${withdrawn.length} VIP prefix(es) withdrawn; the node stops when its connections end or after ${d.timeout} s.`,
    drainLine(d, now),
  ];
}
