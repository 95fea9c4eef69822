/**
 * A SyncTable for the channel's tests, standing in for the engine's journal
 * (src/engine/sync/). Its records have the engine's sizes (60 B for
 * version 1, 108 B for version 2) and a layout of its own: u32 id at 0
 * (never 0), u8 family at 4 (4 in version 1, 6 in version 2), u32
 * remainingMs at 8 (0 = removal), u8 state at 12. It keeps the journal's
 * rules: removals of entries peers know go first, then changed entries;
 * origin 0 for this node's own, k for node k's; max_synced bounds the
 * entries held for peers.
 */
import { RECORD_V1_SIZE, RECORD_V2_SIZE } from '../../src/engine/conn-record.js';
import type {
  RecordSink,
  SyncApplyResult,
  SyncExport,
  SyncRecordVersion,
  SyncTable,
} from '../../src/control/sync/sync-table.js';

export interface FakeEntry {
  origin: number;
  version: SyncRecordVersion;
  state: number;
  remainingMs: number;
  sent: boolean;
}

const sizeOf = (v: SyncRecordVersion): number => (v === 1 ? RECORD_V1_SIZE : RECORD_V2_SIZE);

/** Writes one record into the sink of its version; false when that sink is full. */
function put(
  v1: RecordSink,
  v2: RecordSink,
  id: number,
  version: SyncRecordVersion,
  state: number,
  remainingMs: number,
): boolean {
  const s = version === 1 ? v1 : v2;
  const size = sizeOf(version);
  if (s.off + size > s.end) return false;
  s.buf.fill(0, s.off, s.off + size);
  const dv = new DataView(s.buf.buffer, s.buf.byteOffset + s.off, size);
  dv.setUint32(0, id);
  dv.setUint8(4, version === 1 ? 4 : 6);
  dv.setUint32(8, remainingMs);
  dv.setUint8(12, state);
  s.off += size;
  s.count++;
  return true;
}

export class FakeSyncTable implements SyncTable {
  readonly entries = new Map<number, FakeEntry>();
  private removals: { id: number; version: SyncRecordVersion }[] = [];
  private dirty: number[] = [];
  private dirtySet = new Set<number>();
  readonly calls = { drain: 0, apply: 0, exportFor: [] as [number, boolean][], purge: 0, sweep: 0 };
  refused = 0;

  constructor(readonly maxSynced = 1_000_000) {}

  /** A connection of this node's reaching ESTABLISHED (state 1). */
  create(id: number, version: SyncRecordVersion = 1, state = 1): void {
    this.entries.set(id, { origin: 0, version, state, remainingMs: 60_000, sent: false });
    this.markDirty(id);
  }

  /** A state change of an entry this node carries (a packet of a peer's entry makes it this node's). */
  change(id: number, state: number): void {
    const e = this.entries.get(id);
    if (!e) throw new Error(`no entry ${id}`);
    e.origin = 0;
    e.state = state;
    this.markDirty(id);
  }

  /** The connection ends: peers that know it hear of it. */
  remove(id: number): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.entries.delete(id);
    if (e.sent) this.removals.push({ id, version: e.version });
  }

  get synced(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.origin !== 0) n++;
    return n;
  }

  /** Ids held with this origin. */
  idsFrom(origin: number): number[] {
    return [...this.entries].filter(([, e]) => e.origin === origin).map(([id]) => id);
  }

  private markDirty(id: number): void {
    if (this.dirtySet.has(id)) return;
    this.dirtySet.add(id);
    this.dirty.push(id);
  }

  drain(v1: RecordSink, v2: RecordSink): boolean {
    this.calls.drain++;
    while (this.removals.length > 0) {
      const r = this.removals[0]!;
      if (!put(v1, v2, r.id, r.version, 0, 0)) return true;
      this.removals.shift();
    }
    while (this.dirty.length > 0) {
      const id = this.dirty[0]!;
      const e = this.entries.get(id);
      if (e && !put(v1, v2, id, e.version, e.state, e.remainingMs)) return true;
      if (e) e.sent = true;
      this.dirty.shift();
      this.dirtySet.delete(id);
    }
    return false;
  }

  apply(
    buf: Uint8Array,
    off: number,
    count: number,
    version: SyncRecordVersion,
    fromNode: number,
  ): SyncApplyResult {
    this.calls.apply++;
    const r: SyncApplyResult = { applied: 0, removed: 0, rejected: 0 };
    const size = sizeOf(version);
    for (let k = 0; k < count; k++) {
      const at = off + k * size;
      if (at + size > buf.length) {
        r.rejected++;
        continue;
      }
      const dv = new DataView(buf.buffer, buf.byteOffset + at, size);
      const id = dv.getUint32(0);
      const family = dv.getUint8(4);
      if (id === 0 || family !== (version === 1 ? 4 : 6)) {
        r.rejected++;
        continue;
      }
      const remainingMs = dv.getUint32(8);
      const state = dv.getUint8(12);
      const e = this.entries.get(id);
      if (remainingMs === 0) {
        if (e) {
          this.entries.delete(id);
          r.removed++;
        }
        continue;
      }
      if (e) {
        e.state = state;
        e.remainingMs = remainingMs;
        r.applied++;
        continue;
      }
      if (this.synced >= this.maxSynced) {
        r.rejected++;
        continue;
      }
      this.entries.set(id, { origin: fromNode, version, state, remainingMs, sent: true });
      r.applied++;
    }
    this.refused += r.rejected;
    return r;
  }

  exportFor(requesterNode: number, includeRequesters: boolean): SyncExport {
    this.calls.exportFor.push([requesterNode, includeRequesters]);
    const ids = [...this.entries]
      .filter(([, e]) => e.origin === 0 || (includeRequesters && e.origin === requesterNode))
      .map(([id]) => id);
    let i = 0;
    return {
      next: (v1, v2) => {
        for (; i < ids.length; i++) {
          const e = this.entries.get(ids[i]!);
          if (e && !put(v1, v2, ids[i]!, e.version, e.state, e.remainingMs)) return true;
        }
        return false;
      },
    };
  }

  purgeFrom(node: number): number {
    this.calls.purge++;
    let n = 0;
    for (const [id, e] of this.entries)
      if (e.origin === node) {
        this.entries.delete(id);
        n++;
      }
    return n;
  }

  sweep(_maxEntries: number): boolean {
    this.calls.sweep++;
    return true;
  }
}
