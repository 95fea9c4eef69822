import { CF_IPV6, type ConnTable } from '../conn-table.js';

/** `syncFlags` bits of an entry. */
/** Changed since last drained: the next drain writes its record. */
export const SF_DIRTY = 1;
/** Peers know the entry (drained, exported, or carried for a peer that synced it): its removal is sent. */
export const SF_SENT = 2;
/** The entry's index is in one of the dirty rings (at most once: the rings never overflow). */
export const SF_QUEUED = 4;

/**
 * The sync state of one connection table (TCP's, or the UDP flows'), beside
 * it in typed arrays of the table's capacity: per entry its `syncFlags` and
 * `origin` (0: made or carried here; k: a record from node k not touched
 * here since), the deadline it had when last sent (the sweep's refresh), and
 * two FIFO rings of dirty entries, one per record version (IPv4 entries go
 * as version 1, the others as version 2). An index is queued once
 * (SF_QUEUED), so each ring holds at most the table's capacity. 14 bytes per
 * entry, made only when sync is enabled.
 */
export class TableJournal {
  readonly origin: Uint8Array;
  readonly syncFlags: Uint8Array;
  readonly sentExpires: Uint32Array;
  private readonly ring1: Int32Array;
  private readonly ring2: Int32Array;
  private readonly heads = new Int32Array(2);
  private readonly lengths = new Int32Array(2);

  constructor(readonly table: ConnTable) {
    const n = table.capacity;
    this.origin = new Uint8Array(n);
    this.syncFlags = new Uint8Array(n);
    this.sentExpires = new Uint32Array(n);
    this.ring1 = new Int32Array(n);
    this.ring2 = new Int32Array(n);
  }

  /** The record version entry c is written as: 2 when it has an IPv6 side, else 1. */
  versionOf(c: number): 1 | 2 {
    return (this.table.flags[c]! & CF_IPV6) !== 0 ? 2 : 1;
  }

  /** Entry c changed: the next drain of its version writes it. */
  markDirty(c: number): void {
    const f = this.syncFlags[c]!;
    if ((f & SF_DIRTY) !== 0) return;
    if ((f & SF_QUEUED) === 0) {
      this.push(c, this.versionOf(c));
      this.syncFlags[c] = f | SF_DIRTY | SF_QUEUED;
    } else this.syncFlags[c] = f | SF_DIRTY;
  }

  /** Queues c (its SF_QUEUED is the caller's) in the ring of `version`. */
  push(c: number, version: 1 | 2): void {
    const k = version - 1;
    const ring = version === 2 ? this.ring2 : this.ring1;
    ring[(this.heads[k]! + this.lengths[k]!) % ring.length] = c;
    this.lengths[k]!++;
  }

  /** The oldest queued index of `version`'s ring (its SF_QUEUED cleared), or -1. */
  pop(version: 1 | 2): number {
    const k = version - 1;
    if (this.lengths[k] === 0) return -1;
    const ring = version === 2 ? this.ring2 : this.ring1;
    const c = ring[this.heads[k]!]!;
    this.heads[k] = (this.heads[k]! + 1) % ring.length;
    this.lengths[k]!--;
    this.syncFlags[c] = this.syncFlags[c]! & ~SF_QUEUED;
    return c;
  }

  /** Entries queued in `version`'s ring (some may no longer be dirty). */
  queued(version: 1 | 2): number {
    return this.lengths[version - 1]!;
  }
}
