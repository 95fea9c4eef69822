/**
 * `fullnat ctl --sync`: the node's sync channel as text, like `--cluster`:
 * one line for the channel, a table of peers in fixed columns, the traffic,
 * and the refusals that happened.
 */
import { endpointToString } from '../../wire/address.js';
import type { Snapshot } from '../model.js';

const pad = (s: string, n: number): string => (s.length >= n ? `${s} ` : s.padEnd(n));

const ago = (ms: number | undefined): string =>
  ms === undefined
    ? '-'
    : ms < 10_000
      ? `${(ms / 1000).toFixed(1)} s`
      : `${Math.round(ms / 1000)} s`;

/** The lines of `ctl --sync`. */
export function formatSync(snap: Snapshot): string[] {
  const s = snap.sync;
  if (!s) return ['No sync block: connections are not shared with other nodes.'];
  const c = s.counters;
  const n = (k: string): number => c[k] ?? 0;
  const out = [
    `Sync: node ${s.nodeId}, listen ${endpointToString(s.listen.addr, s.listen.port)}, ` +
      `${s.ready ? 'ready' : "waiting for the peers' tables"}, incarnation ${s.incarnation}`,
    `${pad('Node', 6)}${pad('Peer', 46)}${pad('State', 13)}${pad('Heard', 9)}Incarnation`,
  ];
  for (const p of s.peers)
    out.push(
      `${pad(String(p.node), 6)}${pad(endpointToString(p.addr, p.port), 46)}${pad(p.state, 13)}` +
        `${pad(ago(p.lastHeardMs), 9)}${p.incarnation ?? '-'}`,
    );
  out.push(
    `Entries held for peers: ${s.synced}`,
    `Messages: in ${n('messages_in')}, out ${n('messages_out')}; bytes: in ${n('bytes_in')}, out ${n('bytes_out')}`,
    `Records: in ${n('records_in')} (applied ${n('records_applied')}, removed ${n('records_removed')}, refused ${n('records_refused')}), out ${n('records_out')}`,
    `Tables: asked ${n('table_requests_out')}, received ${n('tables_received')}, asked of this node ${n('table_requests_in')}, sent ${n('tables_sent')}`,
    `Peers: restarts ${n('peer_restarts')}, partitions healed ${n('partitions_healed')} (entries dropped ${n('entries_purged')})`,
  );
  const refused = Object.entries(c)
    .filter(([k, v]) => k.startsWith('rejected_') && v > 0)
    .map(([k, v]) => `${k.slice('rejected_'.length)} ${v}`);
  out.push(`Messages refused: ${refused.length > 0 ? refused.join(', ') : 'none'}`);
  if (n('send_errors') > 0) out.push(`Send errors: ${n('send_errors')}`);
  return out;
}
