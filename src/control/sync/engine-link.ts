/**
 * The one place the engine's side of sync is turned on: `Engine.enableSync`
 * (the port plan, the share of the table held for peers, SYNPROXY's fleet
 * key) and `Engine.addPeerPrefix` for every peer's `lip_prefix` (imported
 * entries on those LIPs are accepted, and the real servers' replies to them
 * found). The engine's side is written apart (src/engine/sync/); until it
 * lands this finds the two methods by name and says plainly when they are
 * missing.
 *
 * LEAD: replace the lookup below by direct calls once Engine has
 * `enableSync(opts): SyncTable` and `addPeerPrefix(prefix)`.
 */
import type { Engine } from '../../engine/engine.js';
import type { AnnouncedPrefix, SyncSpec } from '../model.js';
import type { EngineSyncOptions, SyncTable } from './sync-table.js';

/** What the channel needs of the engine beyond the table: the peers' prefixes, added as reloads bring them. */
export interface EngineSyncSide {
  table: SyncTable;
  addPeerPrefix(prefix: AnnouncedPrefix): void;
}

interface SyncCapableEngine {
  enableSync(opts: EngineSyncOptions): SyncTable;
  addPeerPrefix(prefix: AnnouncedPrefix): void;
}

export function linkEngine(engine: Engine, spec: SyncSpec, fleetKey: Uint8Array): EngineSyncSide {
  const e = engine as unknown as Partial<SyncCapableEngine>;
  const enable = e.enableSync;
  const addPrefix = e.addPeerPrefix;
  if (typeof enable !== 'function' || typeof addPrefix !== 'function')
    throw new Error(
      'this build of the engine has no connection sync (Engine.enableSync, Engine.addPeerPrefix)',
    );
  const table = enable.call(engine, {
    nodeId: spec.nodeId,
    nodes: spec.nodes,
    maxSynced: spec.maxSynced,
    fleetKey,
  });
  return {
    table,
    addPeerPrefix: (p) => addPrefix.call(engine, { addr: p.addr, length: p.length }),
  };
}
