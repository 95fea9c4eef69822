import {
  RECORD_V1_SIZE,
  RECORD_V2_SIZE,
  emptyRecord,
  stateCode,
  writeRecord,
  writeRecordV2,
} from '../conn-record.js';
import { CF_IN_USE, CF_SP_PENDING, NO_LIP } from '../conn-table.js';
import type { Connections } from '../connections.js';
import type { EngineContext } from '../context.js';
import { C } from '../counters.js';
import type { RecordEntries } from '../record-entries.js';
import { TcpState } from '../tcp-state.js';
import type { UdpFlows } from '../udp-flows.js';
import { SyncApply, type ApplyResult } from './apply.js';
import { SyncExportCursor } from './export-cursor.js';
import { PeerPrefixes } from './peer-prefixes.js';
import { RemovalRing } from './removal-ring.js';
import { SF_DIRTY, SF_QUEUED, SF_SENT, TableJournal } from './table-journal.js';

/** What `Engine.enableSync` takes. */
export interface SyncSettings {
  /** This node's id, 1..255 (its share of the LIP ports, and the origin peers file its records under). */
  nodeId: number;
  /** Shares the LIP ports are cut into (the fleet's size); nodeId ≤ nodes ≤ 255. */
  nodes: number;
  /** Entries from peers held at most (TCP and UDP together). */
  maxSynced: number;
  /** The fleet's key for SYNPROXY cookies (synproxy/fleet-keys.ts); without it, keys stay this process's own. */
  fleetKey?: Uint8Array;
}

/** True when TCP entry c is in a state that only ends: TIME_WAIT or CLOSE. */
function endedState(j: TableJournal, c: number): boolean {
  const s = j.table.state[c]!;
  return s === TcpState.TimeWait || s === TcpState.Close;
}

/** Removal records held per record version between drains. */
export const REMOVAL_SLOTS = 8192;

/**
 * Connection sync, the engine's side: what this node tells its peers
 * (dirty entries and removals, drained into records), what it takes from
 * them (`apply`), the full table for a peer that asks (`exportFor`), and
 * the peer's entries dropped at once (`purgeFrom`). The data path calls
 * the hooks below only when sync is on (`ctx.sync` set); they allocate
 * nothing. See README.md for who calls what.
 */
export class SyncJournal {
  readonly tcp: TableJournal;
  private udpJournal: TableJournal | undefined;
  private readonly removals1 = new RemovalRing(RECORD_V1_SIZE, REMOVAL_SLOTS);
  private readonly removals2 = new RemovalRing(RECORD_V2_SIZE, REMOVAL_SLOTS);
  readonly prefixes = new PeerPrefixes();
  /** Entries whose origin is a peer (both tables): bounded by maxSynced. */
  imported = 0;
  nodeId: number;
  nodes: number;
  maxSynced: number;
  /** The record a removal is read into (on the data path, apart from the drain's and apply's). */
  private readonly removal = emptyRecord();
  private readonly record = emptyRecord();
  private readonly applier: SyncApply;
  private sweepPos = 0;
  private lastBuf: Uint8Array | undefined;
  private lastView: DataView | undefined;

  constructor(
    private readonly ctx: EngineContext,
    readonly conns: Connections,
    readonly flows: UdpFlows,
    readonly entries: RecordEntries,
    s: SyncSettings,
  ) {
    this.nodeId = s.nodeId;
    this.nodes = s.nodes;
    this.maxSynced = s.maxSynced;
    this.tcp = new TableJournal(ctx.table);
    this.applier = new SyncApply(ctx, this);
  }

  /** The settings of a later `enableSync` (the same ones change nothing). */
  configure(s: SyncSettings): void {
    this.nodeId = s.nodeId;
    this.nodes = s.nodes;
    this.maxSynced = s.maxSynced;
  }

  /** The UDP flows' journal, made with the UDP table (undefined before a UDP service exists). */
  udp(): TableJournal | undefined {
    const u = this.ctx.udp;
    if (!u.enabled) return undefined;
    let j = this.udpJournal;
    if (j === undefined || j.table !== u.table) {
      j = new TableJournal(u.table);
      this.udpJournal = j;
    }
    return j;
  }

  // ---- hooks of the data path ---------------------------------------------------------

  /** A packet of TCP entry c (Connections.advance): a peer's entry is carried here from now on. */
  carried(c: number): void {
    if (this.tcp.origin[c] !== 0) this.takeOver(this.tcp, c);
  }

  /** A datagram of UDP flow c. */
  carriedUdp(c: number): void {
    const j = this.udpJournal;
    if (j !== undefined && j.origin[c] !== 0) this.takeOver(j, c);
  }

  /**
   * c was a peer's: this node carries it now. Its peers know it (its owner
   * sent it to all), so it counts as sent: its changes, refreshes and
   * removal go to them from here. No message for the take-over itself.
   */
  private takeOver(j: TableJournal, c: number): void {
    j.origin[c] = 0;
    this.imported--;
    j.syncFlags[c] = j.syncFlags[c]! | SF_SENT;
    j.sentExpires[c] = j.table.expires[c]!;
    this.ctx.count(C.sync_taken_over);
  }

  /** TCP entry c moved to `next`: synced from ESTABLISHED on, and every change after. */
  stateChanged(c: number, next: TcpState): void {
    const j = this.tcp;
    if (next === TcpState.Established || (j.syncFlags[c]! & (SF_DIRTY | SF_SENT)) !== 0)
      j.markDirty(c);
  }

  /** UDP flow c opened here. */
  udpOpened(c: number): void {
    this.udp()?.markDirty(c);
  }

  /** True when TCP entry c is a peer's, untouched here: it expires without RSTs. */
  isPeers(c: number): boolean {
    return this.tcp.origin[c] !== 0;
  }

  /** True when UDP flow c is a peer's, untouched here. */
  isPeersUdp(c: number): boolean {
    const j = this.udpJournal;
    return j !== undefined && j.origin[c] !== 0;
  }

  /** TCP entry c is about to leave the table (Connections.release). */
  releasing(c: number): void {
    this.leaving(this.tcp, c, false);
  }

  /** UDP flow c is about to leave its table. */
  releasingUdp(c: number): void {
    const j = this.udpJournal;
    if (j !== undefined) this.leaving(j, c, true);
  }

  /**
   * A peer's entry goes silently; one peers know leaves a removal record,
   * unless what they know is its end: a TCP entry last sent in TIME_WAIT
   * or CLOSE (and unchanged since) carries its remaining time to the peers,
   * which let their copy expire on its own, as this node does. That saves
   * the third record of most connections (established, closed, removed);
   * a port this node hands out again before the peers' copy expires
   * replaces that copy (apply.ts).
   */
  private leaving(j: TableJournal, c: number, udp: boolean): void {
    const f = j.syncFlags[c]!;
    if (j.origin[c] !== 0) {
      j.origin[c] = 0;
      this.imported--;
    } else if ((f & SF_SENT) !== 0 && (udp || (f & SF_DIRTY) !== 0 || !endedState(j, c)))
      this.writeRemoval(j, c, udp);
    j.syncFlags[c] = f & SF_QUEUED;
  }

  private writeRemoval(j: TableJournal, c: number, udp: boolean): void {
    const r = this.removal;
    if (udp) this.entries.readUdp(c, r);
    else this.entries.readTcp(c, r);
    r.remainingMs = 0;
    const version = j.versionOf(c);
    const ring = version === 2 ? this.removals2 : this.removals1;
    const at = ring.reserve();
    if (ring.overwrote) this.ctx.count(C.sync_removals_lost);
    if (version === 2) writeRecordV2(ring.view, at, r);
    else writeRecord(ring.view, at, r);
  }

  // ---- toward the peers ---------------------------------------------------------------

  /**
   * Writes up to `maxRecords` records of `version` (1: IPv4 entries, 60
   * bytes each; 2: entries with an IPv6 side, 108 bytes) at buf[off…]:
   * removals first, oldest first, then dirty entries with their state now
   * (TCP, then UDP). Returns how many; fewer than asked means nothing of
   * that version is left. Allocates nothing once it has seen `buf`.
   */
  drainInto(buf: Uint8Array, off: number, maxRecords: number, version: 1 | 2): number {
    const size = version === 2 ? RECORD_V2_SIZE : RECORD_V1_SIZE;
    const max = Math.min(maxRecords, Math.floor((buf.length - off) / size));
    if (!(max > 0)) return 0;
    const removed = (version === 2 ? this.removals2 : this.removals1).take(buf, off, max);
    this.ctx.add(C.sync_removals_out, removed);
    let n = removed;
    const dv = this.viewOf(buf);
    n = this.drainTable(this.tcp, false, dv, off, n, max, version);
    const u = this.udpJournal;
    if (u !== undefined) n = this.drainTable(u, true, dv, off, n, max, version);
    this.ctx.add(C.sync_records_out, n);
    return n;
  }

  private drainTable(
    j: TableJournal,
    udp: boolean,
    dv: DataView,
    off: number,
    n: number,
    max: number,
    version: 1 | 2,
  ): number {
    const size = version === 2 ? RECORD_V2_SIZE : RECORD_V1_SIZE;
    const t = j.table;
    while (n < max) {
      const c = j.pop(version);
      if (c < 0) break;
      const f = j.syncFlags[c]!;
      if ((f & SF_DIRTY) === 0) continue;
      // Not sendable, or ended (TIME_WAIT, CLOSE) before peers ever heard of it: nothing for them to carry.
      if (!this.sendable(j, c, udp) || ((f & SF_SENT) === 0 && !udp && endedState(j, c))) {
        j.syncFlags[c] = f & ~SF_DIRTY;
        continue;
      }
      // The slot was reused by an entry of the other family since it was queued.
      if (j.versionOf(c) !== version) {
        j.push(c, version === 2 ? 1 : 2);
        j.syncFlags[c] = f | SF_QUEUED;
        continue;
      }
      this.writeEntry(c, udp, dv, off + n * size, version);
      j.syncFlags[c] = (f & ~SF_DIRTY) | SF_SENT;
      j.sentExpires[c] = t.expires[c]!;
      n++;
    }
    return n;
  }

  /**
   * True when entry c is one peers are told of: in use, settled (no
   * SYNPROXY leg opening), a state the record has, and a FULLNAT one (a NAT
   * service's entry has no LIP whose backup route would bring its replies
   * to a peer).
   */
  sendable(j: TableJournal, c: number, udp: boolean): boolean {
    const t = j.table;
    const f = t.flags[c]!;
    if ((f & CF_IN_USE) === 0) return false;
    if (udp) return true;
    if (this.ctx.table.lipIndex[c] === NO_LIP) return false;
    const s = t.state[c]!;
    return (
      (f & CF_SP_PENDING) === 0 &&
      stateCode(s) !== 0 &&
      s !== TcpState.SynRecv &&
      s !== TcpState.SynSent
    );
  }

  /** Entry c's record at byte `at` of dv. */
  writeEntry(c: number, udp: boolean, dv: DataView, at: number, version: 1 | 2): void {
    const r = this.record;
    if (udp) this.entries.readUdp(c, r);
    else this.entries.readTcp(c, r);
    if (version === 2) writeRecordV2(dv, at, r);
    else writeRecord(dv, at, r);
  }

  /** A DataView over buf, kept while the caller reuses the buffer. */
  viewOf(buf: Uint8Array): DataView {
    if (buf !== this.lastBuf || this.lastView === undefined) {
      this.lastBuf = buf;
      this.lastView = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    }
    return this.lastView;
  }

  /**
   * Looks at up to `maxEntries` entries from where the last sweep stopped
   * (TCP's table, then UDP's, round and round) and marks dirty each of this
   * node's entries peers know whose deadline moved more than half its
   * timeout since it was last sent, so long-lived connections stay alive
   * on the peers. Returns how many it marked.
   */
  sweep(maxEntries: number): number {
    const tcpCap = this.tcp.table.capacity;
    const u = this.udpJournal;
    const total = tcpCap + (u === undefined ? 0 : u.table.capacity);
    let marked = 0;
    const n = Math.min(maxEntries, total);
    for (let k = 0; k < n; k++) {
      if (this.sweepPos >= total) this.sweepPos = 0;
      const pos = this.sweepPos++;
      if (pos < tcpCap) {
        if (this.refresh(this.tcp, pos, false)) marked++;
      } else if (u !== undefined && this.refresh(u, pos - tcpCap, true)) marked++;
    }
    return marked;
  }

  private refresh(j: TableJournal, c: number, udp: boolean): boolean {
    const t = j.table;
    if ((t.flags[c]! & CF_IN_USE) === 0 || j.origin[c] !== 0) return false;
    if ((j.syncFlags[c]! & (SF_SENT | SF_DIRTY)) !== SF_SENT) return false;
    const timeout = udp ? this.ctx.opts.timeoutUdpMs : this.ctx.timeoutsMs[t.state[c]!]!;
    if (t.expires[c]! - j.sentExpires[c]! <= timeout / 2) return false;
    j.markDirty(c);
    return true;
  }

  /**
   * The table for peer `requester` (its TABLE_REQUEST), in chunks of one
   * record version: this node's entries, and with `includeRequesters` also
   * those whose origin is the requester (a restarted peer gets its
   * connections back). Entries it writes count as known to the peers.
   */
  exportFor(requester: number, includeRequesters: boolean, version: 1 | 2): SyncExportCursor {
    return new SyncExportCursor(this, requester, includeRequesters, version);
  }

  /** Removes every entry whose origin is `node`, silently (no RST, no removal record); returns how many. */
  purgeFrom(node: number): number {
    // Origin 0 is this node's own: never purged.
    if (!(node >= 1 && node <= 255)) return 0;
    let n = 0;
    const t = this.tcp;
    for (let c = 0; c < t.table.capacity; c++) {
      if (t.origin[c] !== node) continue;
      this.conns.release(c);
      n++;
    }
    const u = this.udpJournal;
    if (u !== undefined) {
      for (let c = 0; c < u.table.capacity; c++) {
        if (u.origin[c] !== node) continue;
        this.flows.release(c);
        n++;
      }
    }
    this.ctx.add(C.sync_purged, n);
    return n;
  }

  /**
   * Enters `count` records of `version` from buf[off…], sent by peer
   * `fromNode`: each an upsert by its client tuple (a new entry's origin is
   * the peer; a known one takes the record's state, sequence fields and
   * deadline; another reply tuple replaces it) or, with no time left, a
   * removal (silent). Never throws: what it refuses is counted by reason
   * (`sync_rejected_*`). The result object is reused by the next call.
   */
  apply(
    buf: Uint8Array,
    off: number,
    count: number,
    version: number,
    fromNode: number,
  ): ApplyResult {
    return this.applier.apply(buf, off, count, version, fromNode);
  }
}
