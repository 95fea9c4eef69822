/**
 * The one place the engine's side of sync is turned on: `Engine.enableSync`
 * (the port plan, the share of the table held for peers, SYNPROXY's fleet
 * key) and `Engine.addPeerPrefix` for every peer's `lip_prefix` (imported
 * entries on those LIPs are accepted, and the real servers' replies to them
 * found); and `JournalTable`, the engine's journal seen as the channel's
 * `SyncTable` (sinks filled per record version, table exports as a pair of
 * cursors, sweeps told when a pass ends).
 */
import type { Engine } from '../../engine/engine.js';
import { RECORD_V1_SIZE, RECORD_V2_SIZE } from '../../engine/conn-record.js';
import type { SyncExportCursor } from '../../engine/sync/export-cursor.js';
import type { SyncJournal } from '../../engine/sync/journal.js';
import type { AnnouncedPrefix, SyncSpec } from '../model.js';
import type {
  RecordSink,
  SyncApplyResult,
  SyncExport,
  SyncRecordVersion,
  SyncTable,
} from './sync-table.js';

/** What the channel needs of the engine beyond the table: the peers' prefixes, added as reloads bring them. */
export interface EngineSyncSide {
  table: SyncTable;
  addPeerPrefix(prefix: AnnouncedPrefix): void;
}

const sizeOf = (v: SyncRecordVersion): number => (v === 2 ? RECORD_V2_SIZE : RECORD_V1_SIZE);

/** Records of one version that still fit in a sink. */
const roomIn = (sink: RecordSink, v: SyncRecordVersion): number =>
  Math.max(0, Math.floor((sink.end - sink.off) / sizeOf(v)));

/** A table streamed to one peer: one engine cursor per record version. */
class JournalExport implements SyncExport {
  constructor(
    private readonly v1: SyncExportCursor,
    private readonly v2: SyncExportCursor,
  ) {}

  next(s1: RecordSink, s2: RecordSink): boolean {
    fill(s1, 1, (buf, off, max) => this.v1.next(buf, off, max), this.v1.done);
    fill(s2, 2, (buf, off, max) => this.v2.next(buf, off, max), this.v2.done);
    return !(this.v1.done && this.v2.done);
  }
}

/** Writes what `write` gives into the sink's room; true when the room ran out first. */
function fill(
  sink: RecordSink,
  v: SyncRecordVersion,
  write: (buf: Uint8Array, off: number, max: number) => number,
  done = false,
): boolean {
  if (done) return false;
  const room = roomIn(sink, v);
  if (room === 0) return true;
  const n = write(sink.buf, sink.off, room);
  sink.off += n * sizeOf(v);
  sink.count += n;
  return n === room;
}

/** The engine's sync journal as the channel's SyncTable. */
export class JournalTable implements SyncTable {
  /** Entries the sweep has looked at since its pass began. */
  private swept = 0;
  private readonly result: SyncApplyResult = { applied: 0, removed: 0, rejected: 0 };

  constructor(private readonly journal: SyncJournal) {}

  drain(v1: RecordSink, v2: RecordSink): boolean {
    const j = this.journal;
    const full1 = fill(v1, 1, (buf, off, max) => j.drainInto(buf, off, max, 1));
    const full2 = fill(v2, 2, (buf, off, max) => j.drainInto(buf, off, max, 2));
    return full1 || full2;
  }

  apply(
    buf: Uint8Array,
    off: number,
    count: number,
    version: SyncRecordVersion,
    fromNode: number,
  ): SyncApplyResult {
    const r = this.journal.apply(buf, off, count, version, fromNode);
    this.result.applied = r.applied;
    this.result.removed = r.removed;
    this.result.rejected = r.rejected;
    return this.result;
  }

  exportFor(requesterNode: number, includeRequesters: boolean): SyncExport {
    const j = this.journal;
    return new JournalExport(
      j.exportFor(requesterNode, includeRequesters, 1),
      j.exportFor(requesterNode, includeRequesters, 2),
    );
  }

  purgeFrom(node: number): number {
    return this.journal.purgeFrom(node);
  }

  sweep(maxEntries: number): boolean {
    const j = this.journal;
    const total = j.tcp.table.capacity + (j.udp()?.table.capacity ?? 0);
    // A UDP table made since the pass began only lengthens it.
    const n = Math.max(0, Math.min(maxEntries, total - this.swept));
    j.sweep(n);
    this.swept += n;
    if (this.swept < total) return false;
    this.swept = 0;
    return true;
  }

  get synced(): number {
    return this.journal.imported;
  }
}

export function linkEngine(engine: Engine, spec: SyncSpec, fleetKey: Uint8Array): EngineSyncSide {
  engine.enableSync({
    nodeId: spec.nodeId,
    nodes: spec.nodes,
    maxSynced: spec.maxSynced,
    fleetKey,
  });
  const journal = engine.syncJournal;
  if (journal === undefined) throw new Error('Engine.enableSync left no sync journal');
  return {
    table: new JournalTable(journal),
    addPeerPrefix: (p) => engine.addPeerPrefix({ addr: p.addr, length: p.length }),
  };
}
