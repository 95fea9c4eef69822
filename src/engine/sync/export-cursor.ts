import { RECORD_V1_SIZE, RECORD_V2_SIZE } from '../conn-record.js';
import type { SyncJournal } from './journal.js';
import { SF_SENT, type TableJournal } from './table-journal.js';

/**
 * One pass over the tables for a peer's TABLE_REQUEST (`exportFor`), in
 * chunks so a big table never blocks the loop: each `next` writes up to its
 * `maxRecords` records of the cursor's version and moves on; `done` once
 * both tables are walked. The tables may change between chunks: an entry
 * made after the cursor passed it reaches the peer through the journal.
 */
export class SyncExportCursor {
  done = false;
  private pos = 0;

  constructor(
    private readonly sync: SyncJournal,
    readonly requester: number,
    readonly includeRequesters: boolean,
    readonly version: 1 | 2,
  ) {}

  /** Writes up to `maxRecords` records at buf[off…]; returns how many. */
  next(buf: Uint8Array, off: number, maxRecords: number): number {
    const sync = this.sync;
    const size = this.version === 2 ? RECORD_V2_SIZE : RECORD_V1_SIZE;
    const max = Math.min(maxRecords, Math.floor((buf.length - off) / size));
    const dv = sync.viewOf(buf);
    const tcp = sync.tcp;
    const udp = sync.udp();
    const tcpCap = tcp.table.capacity;
    const total = tcpCap + (udp === undefined ? 0 : udp.table.capacity);
    let n = 0;
    while (n < max && this.pos < total) {
      const pos = this.pos++;
      const isUdp = pos >= tcpCap;
      const j = isUdp ? udp : tcp;
      if (j === undefined) break;
      const c = isUdp ? pos - tcpCap : pos;
      if (!this.wanted(j, c, isUdp)) continue;
      sync.writeEntry(c, isUdp, dv, off + n * size, this.version);
      if (j.origin[c] === 0) {
        j.syncFlags[c] = j.syncFlags[c]! | SF_SENT;
        j.sentExpires[c] = j.table.expires[c]!;
      }
      n++;
    }
    if (this.pos >= total) this.done = true;
    return n;
  }

  private wanted(j: TableJournal, c: number, udp: boolean): boolean {
    const o = j.origin[c]!;
    if (o !== 0 && !(this.includeRequesters && o === this.requester)) return false;
    return this.sync.sendable(j, c, udp) && j.versionOf(c) === this.version;
  }
}
