import {
  PROTO_UDP,
  RECORD_V1_SIZE,
  RECORD_V2_SIZE,
  SNAPSHOT_HEADER_SIZE,
  SNAPSHOT_VERSION,
  SNAPSHOT_VERSION_V2,
  checkRecords,
  emptyRecord,
  readAnyRecord,
  readSnapshotHeader,
  recordOffset,
  snapshotView,
  stateCode,
  writeHeader,
  writeRecord,
  writeRecordV2,
} from './conn-record.js';
import { CF_IN_USE, CF_IPV6, CF_SP_PENDING } from './conn-table.js';
import type { EngineContext } from './context.js';
import type { ImportSkipReason, RecordEntries } from './record-entries.js';
import { TCP_STATE_NAMES } from './tcp-state.js';

export type { ImportSkipReason };

export interface ImportResult {
  imported: number;
  skipped: number;
  reasons: Record<string, number>;
}

/**
 * The connection table leaving and entering a process (the restart
 * handover): `exportTable` writes every connection, then every UDP flow,
 * as a record (conn-record.ts), `importTable` enters a snapshot's records into an engine
 * that has its services, real servers and LIPs configured — by address and
 * port, never by the exporter's indexes (record-entries.ts writes and
 * enters each entry, for fleet sync too). Neither runs on the data path.
 */
export class TableTransfer {
  private readonly record = emptyRecord();

  constructor(
    private readonly ctx: EngineContext,
    private readonly entries: RecordEntries,
  ) {}

  exportTable(): Uint8Array {
    const ctx = this.ctx;
    const t = ctx.table;
    const udp = ctx.udp.enabled ? ctx.udp.table : undefined;
    let count = 0;
    let pending = 0;
    let v6 = false;
    for (let i = 0; i < t.capacity; i++) {
      const f = t.flags[i]!;
      if ((f & CF_IN_USE) === 0) continue;
      if ((f & CF_SP_PENDING) !== 0) pending++;
      else count++;
      if ((f & CF_IPV6) !== 0) v6 = true;
    }
    if (udp !== undefined) {
      count += udp.count;
      for (let i = 0; i < udp.capacity && !v6; i++) if ((udp.flags[i]! & CF_IPV6) !== 0) v6 = true;
    }
    // A table without IPv6 connections is written as version 1, which older builds read.
    const version = v6 ? SNAPSHOT_VERSION_V2 : SNAPSHOT_VERSION;
    const size = v6 ? RECORD_V2_SIZE : RECORD_V1_SIZE;
    const out = new Uint8Array(SNAPSHOT_HEADER_SIZE + count * size);
    const dv = snapshotView(out);
    writeHeader(dv, {
      version,
      recordSize: size,
      count,
      engineClockMs: ctx.now,
      isnClockOriginMs: ctx.opts.isnClockOriginMs,
      isnSecret: ctx.opts.isnSecret,
      pendingSkipped: pending,
    });
    const r = this.record;
    let k = 0;
    for (let i = 0; i < t.capacity && k < count; i++) {
      const f = t.flags[i]!;
      if ((f & CF_IN_USE) === 0 || (f & CF_SP_PENDING) !== 0) continue;
      const state = t.state[i]!;
      if (stateCode(state) === 0) {
        throw new Error(
          `connection ${i} in state ${TCP_STATE_NAMES[state] ?? state}, which the record format has no code for`,
        );
      }
      this.entries.readTcp(i, r);
      if (v6) writeRecordV2(dv, recordOffset(k, size), r);
      else writeRecord(dv, recordOffset(k), r);
      k++;
    }
    if (udp === undefined) return out;
    for (let i = 0; i < udp.capacity && k < count; i++) {
      if ((udp.flags[i]! & CF_IN_USE) === 0) continue;
      this.entries.readUdp(i, r);
      if (v6) writeRecordV2(dv, recordOffset(k, size), r);
      else writeRecord(dv, recordOffset(k), r);
      k++;
    }
    return out;
  }

  /**
   * Enters the snapshot's connections, each with its remaining timeout less
   * `elapsedMs` (the time between export and now). The whole snapshot is
   * checked first: a malformed one throws ConnRecordError and enters
   * nothing. Records this configuration cannot hold are skipped, by reason.
   */
  importTable(snapshot: Uint8Array, elapsedMs: number): ImportResult {
    if (!(elapsedMs >= 0 && elapsedMs < 2 ** 32))
      throw new RangeError(`elapsedMs must be a number of ms ≥ 0, got ${elapsedMs}`);
    const header = readSnapshotHeader(snapshot);
    checkRecords(snapshot, header);
    const dv = snapshotView(snapshot);
    const result: ImportResult = { imported: 0, skipped: 0, reasons: {} };
    const r = this.record;
    for (let k = 0; k < header.count; k++) {
      readAnyRecord(dv, header, k, r);
      const left = r.remainingMs - elapsedMs;
      const entered =
        r.protocol === PROTO_UDP ? this.entries.enterUdp(r, left) : this.entries.enterTcp(r, left);
      if (typeof entered === 'number') result.imported++;
      else {
        result.skipped++;
        result.reasons[entered] = (result.reasons[entered] ?? 0) + 1;
      }
    }
    return result;
  }
}
