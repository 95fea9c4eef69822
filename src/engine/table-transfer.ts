import { TcpField } from '../wire/tcp.js';
import {
  FAMILY_IPV4,
  PROTO_TCP,
  RECORD_V1_SIZE,
  RF_SYNPROXY,
  SNAPSHOT_HEADER_SIZE,
  SNAPSHOT_VERSION,
  checkRecords,
  emptyRecord,
  readRecord,
  readSnapshotHeader,
  recordFlags,
  recordOffset,
  snapshotView,
  stateCode,
  tableFlags,
  writeHeader,
  writeRecord,
  type ConnRecord,
} from './conn-record.js';
import { CF_IN_USE, CF_SP_PENDING } from './conn-table.js';
import { C } from './counters.js';
import type { EngineContext } from './context.js';
import { TCP_STATE_NAMES, TcpState } from './tcp-state.js';

/** Why an imported record was not entered (the keys of `ImportResult.reasons`). */
export type ImportSkipReason =
  | 'expired'
  | 'no_service'
  | 'no_real_server'
  | 'no_local_address'
  | 'port_out_of_range'
  | 'port_conflict'
  | 'exists'
  | 'table_full';

export interface ImportResult {
  imported: number;
  skipped: number;
  reasons: Record<string, number>;
}

/**
 * The connection table leaving and entering a process (the restart
 * handover): `exportTable` writes every connection as a record
 * (conn-record.ts), `importTable` enters a snapshot's records into an engine
 * that has its services, real servers and LIPs configured — by address and
 * port, never by the exporter's indexes. Neither runs on the data path.
 */
export class TableTransfer {
  /** A client tuple as packet bytes, for the table's lookups by packet (IPv4 src at 12, TCP at 20). */
  private readonly tuple = new Uint8Array(24);
  private readonly record = emptyRecord();

  constructor(private readonly ctx: EngineContext) {}

  exportTable(): Uint8Array {
    const ctx = this.ctx;
    const t = ctx.table;
    const reg = ctx.reg;
    let count = 0;
    let pending = 0;
    for (let i = 0; i < t.capacity; i++) {
      const f = t.flags[i]!;
      if ((f & CF_IN_USE) === 0) continue;
      if ((f & CF_SP_PENDING) !== 0) pending++;
      else count++;
    }
    const out = new Uint8Array(SNAPSHOT_HEADER_SIZE + count * RECORD_V1_SIZE);
    const dv = snapshotView(out);
    writeHeader(dv, {
      version: SNAPSHOT_VERSION,
      recordSize: RECORD_V1_SIZE,
      count,
      engineClockMs: ctx.now,
      isnClockOriginMs: ctx.opts.isnClockOriginMs,
      isnSecret: ctx.opts.isnSecret,
      pendingSkipped: pending,
    });
    const r = this.record;
    const sp = t.synproxyEnabled;
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
      const svc = t.svc[i]!;
      r.family = FAMILY_IPV4;
      r.protocol = PROTO_TCP;
      r.state = state;
      r.flags = recordFlags(f);
      r.cip = t.cip[i]!;
      r.cport = t.cport[i]!;
      r.vip = reg.svcVips[svc]!;
      r.vport = reg.svcPorts[svc]!;
      r.lip = t.lip[i]!;
      r.lport = t.lport[i]!;
      r.rip = t.rip[i]!;
      r.rport = t.rport[i]!;
      r.seqDelta = t.seqDelta[i]!;
      r.lbIsn = t.lbIsn[i]!;
      r.fdataSeq = t.fdataSeq[i]!;
      r.clientNxt = t.clientNxt[i]!;
      r.rsNxt = t.rsNxt[i]!;
      r.ackDelta = sp ? t.ackDelta[i]! : 0;
      r.spData = sp ? t.spData[i]! : 0;
      r.shift = t.shift[i]!;
      const left = t.expires[i]! - ctx.now;
      r.remainingMs = left > 0 ? Math.ceil(left) : 0;
      writeRecord(dv, recordOffset(k), r);
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
    checkRecords(snapshot, header.count);
    const dv = snapshotView(snapshot);
    const result: ImportResult = { imported: 0, skipped: 0, reasons: {} };
    const r = this.record;
    for (let k = 0; k < header.count; k++) {
      readRecord(dv, recordOffset(k), k, r);
      const why = this.enter(r, elapsedMs);
      if (why === undefined) result.imported++;
      else {
        result.skipped++;
        result.reasons[why] = (result.reasons[why] ?? 0) + 1;
      }
    }
    return result;
  }

  /** Enters one checked record; returns why not when it cannot. */
  private enter(r: ConnRecord, elapsedMs: number): ImportSkipReason | undefined {
    const ctx = this.ctx;
    const t = ctx.table;
    const reg = ctx.reg;
    const laddrs = ctx.laddrs;
    const left = r.remainingMs - elapsedMs;
    if (!(left > 0)) return 'expired';
    const svcIdx = reg.findService(r.vip, r.vport);
    if (svcIdx < 0) return 'no_service';
    const rsIdx = this.realServerOf(svcIdx, r.rip, r.rport);
    if (rsIdx < 0) return 'no_real_server';
    const lipIdx = laddrs.indexOf(r.lip);
    if (lipIdx < 0) return 'no_local_address';
    if (r.lport < laddrs.range.min || r.lport > laddrs.range.max) return 'port_out_of_range';
    const b = this.tuple;
    this.writeTuple(r);
    if (t.lookupClientAt(b, 0, 20, svcIdx) >= 0) return 'exists';
    if (t.full) return 'table_full';
    // The allocator is the one authority on reply tuples: a LIP:lport toward an RS address:port is claimed once.
    if (!laddrs.claim(lipIdx, rsIdx, r.lport)) return 'port_conflict';
    if ((r.flags & RF_SYNPROXY) !== 0) t.enableSynproxy();
    const c = t.insertAt(b, 0, 20, svcIdx);
    t.lip[c] = r.lip;
    t.lport[c] = r.lport;
    t.rip[c] = r.rip;
    t.rport[c] = r.rport;
    t.linkReply(c);
    t.rs[c] = rsIdx;
    t.lipIndex[c] = lipIdx;
    t.state[c] = r.state;
    t.flags[c] = CF_IN_USE | tableFlags(r.flags);
    t.seqDelta[c] = r.seqDelta;
    t.lbIsn[c] = r.lbIsn;
    t.fdataSeq[c] = r.fdataSeq;
    t.clientNxt[c] = r.clientNxt;
    t.rsNxt[c] = r.rsNxt;
    t.shift[c] = r.shift;
    if (t.synproxyEnabled) {
      t.ackDelta[c] = r.ackDelta;
      t.spData[c] = r.spData;
    }
    t.expires[c] = ctx.now + Math.ceil(left);
    t.armTimer(c);
    const rs = reg.realServers[rsIdx]!;
    if (r.state === TcpState.Established) rs.activeConns++;
    else rs.inactiveConns++;
    ctx.countSvc(svcIdx, C.conns_imported);
    return undefined;
  }

  /** The RS addr:port of service svc: a member, else one removed but still known. */
  private realServerOf(svc: number, addr: number, port: number): number {
    const member = this.ctx.reg.findRealServer(svc, addr, port);
    if (member >= 0) return member;
    const all = this.ctx.reg.realServers;
    for (let i = 0; i < all.length; i++) {
      const rs = all[i]!;
      if (rs.service === svc && rs.addr === addr && rs.port === port) return i;
    }
    return -1;
  }

  /** The client tuple in `tuple` as the table's insert and lookup read a packet. */
  private writeTuple(r: ConnRecord): void {
    const b = this.tuple;
    b[12] = r.cip >>> 24;
    b[13] = (r.cip >>> 16) & 0xff;
    b[14] = (r.cip >>> 8) & 0xff;
    b[15] = r.cip & 0xff;
    b[20 + TcpField.SrcPort] = r.cport >>> 8;
    b[21 + TcpField.SrcPort] = r.cport & 0xff;
  }
}
