import { Ipv6Address } from '../../wire/address.js';
import {
  FAMILY_IPV6,
  PROTO_UDP,
  RECORD_V1_SIZE,
  RECORD_V2_SIZE,
  emptyRecord,
  readRecord,
  readRecordV2,
  type ConnRecord,
} from '../conn-record.js';
import { CF_SP_PENDING, type ConnTable } from '../conn-table.js';
import type { EngineContext } from '../context.js';
import { C } from '../counters.js';
import type { TcpState } from '../tcp-state.js';
import type { SyncJournal } from './journal.js';
import { SF_DIRTY, SF_QUEUED, SF_SENT, type TableJournal } from './table-journal.js';

/** What one `apply` did; the rejections by reason are the engine's `sync_rejected_*` counters. */
export interface ApplyResult {
  /** Records entered or updated. */
  applied: number;
  /** Removal records carried out. */
  removed: number;
  /** Records refused (malformed, or nothing here to hold them). */
  rejected: number;
  /** Removals of entries this node does not hold (or holds with another reply tuple). */
  ignored: number;
}

/** Why a record is refused → its counter. */
const REJECTED: Readonly<Record<string, number>> = {
  malformed: C.sync_rejected_malformed,
  bad_node: C.sync_rejected_bad_node,
  no_service: C.sync_rejected_no_service,
  no_real_server: C.sync_rejected_no_real_server,
  no_local_address: C.sync_rejected_no_local_address,
  port_out_of_range: C.sync_rejected_port_out_of_range,
  port_conflict: C.sync_rejected_port_conflict,
  table_full: C.sync_rejected_table_full,
  max_synced: C.sync_rejected_max_synced,
};

/**
 * Peers' records entering this engine (`SyncJournal.apply`): each checked
 * by the record reader, then an upsert by client tuple or a removal,
 * through the same entry code as the restart handover (record-entries.ts).
 * A peer's LIP inside one of its prefixes joins the pool and the LIP set on
 * its first record (never a service's group: new connections never take
 * it). Nothing a peer sends makes it throw.
 */
export class SyncApply {
  private readonly record = emptyRecord();
  private readonly result: ApplyResult = { applied: 0, removed: 0, rejected: 0, ignored: 0 };
  /** A reply tuple laid out as a packet's addresses and ports, for the table's reply lookups. */
  private readonly replyTuple = new Uint8Array(40);

  constructor(
    private readonly ctx: EngineContext,
    private readonly journal: SyncJournal,
  ) {}

  apply(
    buf: Uint8Array,
    off: number,
    count: number,
    version: number,
    fromNode: number,
  ): ApplyResult {
    const res = this.result;
    res.applied = 0;
    res.removed = 0;
    res.rejected = 0;
    res.ignored = 0;
    const n = Number.isSafeInteger(count) && count > 0 ? count : 0;
    if (n === 0) return res;
    if (
      !(fromNode >= 1 && fromNode <= 255 && Number.isInteger(fromNode)) ||
      fromNode === this.journal.nodeId
    ) {
      this.reject(n, 'bad_node');
      return res;
    }
    const size = version === 1 ? RECORD_V1_SIZE : version === 2 ? RECORD_V2_SIZE : 0;
    const len = buf instanceof Uint8Array ? buf.length : 0;
    if (size === 0 || len === 0 || !Number.isSafeInteger(off) || off < 0 || off >= len) {
      this.reject(n, 'malformed');
      return res;
    }
    const held = Math.min(n, Math.floor((len - off) / size));
    const dv = new DataView(buf.buffer, buf.byteOffset, len);
    for (let k = 0; k < held; k++) {
      try {
        this.one(dv, off + k * size, k, version === 2, fromNode);
      } catch {
        // A record the reader refused (ConnRecordError), or anything else a hostile one could cause.
        this.reject(1, 'malformed');
      }
    }
    if (held < n) this.reject(n - held, 'malformed');
    return res;
  }

  private reject(n: number, why: string): void {
    this.result.rejected += n;
    this.ctx.add(REJECTED[why] ?? C.sync_rejected_malformed, n);
  }

  private one(dv: DataView, at: number, k: number, v2: boolean, from: number): void {
    const ctx = this.ctx;
    const sync = this.journal;
    const entries = sync.entries;
    const r = this.record;
    if (v2) readRecordV2(dv, at, k, r);
    else {
      r.replyFamily = 4;
      readRecord(dv, at, k, r);
    }
    const udp = r.protocol === PROTO_UDP;
    const svc = entries.serviceOf(r);
    const t = udp ? (ctx.udp.enabled ? ctx.udp.table : undefined) : ctx.table;
    const c = t === undefined || svc < 0 ? -1 : entries.lookup(t, r, svc);
    if (r.remainingMs === 0) {
      this.remove(t, c, r, udp);
      return;
    }
    if (svc < 0) {
      this.reject(1, 'no_service');
      return;
    }
    if (t !== undefined && c >= 0) {
      const j = this.journalOf(udp);
      if (entries.sameReply(t, c, r) && (t.flags[c]! & CF_SP_PENDING) === 0) {
        this.update(t, j, c, r, udp, from);
        return;
      }
      // Another connection of the same client tuple: the peer's is newer; this one goes silently.
      j.syncFlags[c] = j.syncFlags[c]! & ~SF_SENT;
      this.release(c, udp);
    }
    if (sync.imported >= sync.maxSynced) {
      this.reject(1, 'max_synced');
      return;
    }
    this.admitLip(r);
    let entered = udp ? entries.enterUdp(r, r.remainingMs) : entries.enterTcp(r, r.remainingMs);
    if (entered === 'port_conflict' && !udp && this.dropStaleHolder(r, from))
      entered = entries.enterTcp(r, r.remainingMs);
    if (typeof entered === 'string') {
      this.reject(1, entered);
      return;
    }
    const j = this.journalOf(udp);
    j.origin[entered] = from;
    j.syncFlags[entered] = j.syncFlags[entered]! & SF_QUEUED;
    sync.imported++;
    this.result.applied++;
    ctx.count(C.sync_applied);
  }

  /** A newer record of entry c's connection: its state, sequence fields and deadline; the peer carries it. */
  private update(
    t: ConnTable,
    j: TableJournal,
    c: number,
    r: ConnRecord,
    udp: boolean,
    from: number,
  ): void {
    const ctx = this.ctx;
    if (udp) ctx.udp.uoaSent[c] = r.uoaSent;
    else {
      const prev = t.state[c]! as TcpState;
      if (prev !== r.state) this.journal.conns.setState(c, prev, r.state);
      this.journal.entries.setTcpFields(c, r);
    }
    t.expires[c] = ctx.now + r.remainingMs;
    t.armTimer(c);
    if (j.origin[c] === 0) this.journal.imported++;
    j.origin[c] = from;
    j.syncFlags[c] = j.syncFlags[c]! & ~SF_DIRTY;
    this.result.applied++;
    ctx.count(C.sync_applied);
  }

  /**
   * The record's LIP:lport toward its RS is held here by another entry.
   * When that entry is `from`'s own, untouched here, the sender has handed
   * the port out again, so the entry ended there (a closed connection's
   * copy, left to expire with no removal record: journal.ts `leaving`):
   * it goes, silently, and the newer record takes the port. Returns true
   * when it dropped one. An entry carried here keeps its port.
   */
  private dropStaleHolder(r: ConnRecord, from: number): boolean {
    const t = this.ctx.table;
    const b = this.replyTuple;
    let c: number;
    if (r.replyFamily === FAMILY_IPV6) {
      b.set(r.rip6, 0);
      b.set(r.lip6, 16);
      b[32] = r.rport >>> 8;
      b[33] = r.rport & 0xff;
      b[34] = r.lport >>> 8;
      b[35] = r.lport & 0xff;
      c = t.lookupReply6At(b, 0, 32);
    } else c = t.lookupReply(r.rip, r.rport, r.lip, r.lport);
    if (c < 0 || this.journal.tcp.origin[c] !== from) return false;
    this.journal.tcp.syncFlags[c] = this.journal.tcp.syncFlags[c]! & ~SF_SENT;
    this.release(c, false);
    this.ctx.count(C.sync_replaced_stale);
    return true;
  }

  /** A removal record: the entry of that connection (same reply tuple) goes, silently. */
  private remove(t: ConnTable | undefined, c: number, r: ConnRecord, udp: boolean): void {
    if (t === undefined || c < 0 || !this.journal.entries.sameReply(t, c, r)) {
      this.result.ignored++;
      return;
    }
    const j = this.journalOf(udp);
    j.syncFlags[c] = j.syncFlags[c]! & ~SF_SENT;
    this.release(c, udp);
    this.result.removed++;
    this.ctx.count(C.sync_removed);
  }

  private release(c: number, udp: boolean): void {
    if (udp) this.journal.flows.release(c);
    else this.journal.conns.release(c);
  }

  private journalOf(udp: boolean): TableJournal {
    const j = udp ? this.journal.udp() : this.journal.tcp;
    if (j === undefined) throw new Error('UDP record before the UDP table exists');
    return j;
  }

  /** A record's LIP this node lacks but a peer prefix holds: into the pool and the LIP set. */
  private admitLip(r: ConnRecord): void {
    const lip = r.replyFamily === FAMILY_IPV6 ? Ipv6Address.fromBytes(r.lip6) : r.lip;
    if (this.ctx.laddrs.indexOf(lip) >= 0 || !this.journal.prefixes.contains(lip)) return;
    try {
      this.ctx.reg.addPeerLocalAddress(lip);
    } catch {
      // No room for another LIP: the record is refused as no_local_address.
    }
  }
}
