/**
 * The engine's side of connection sync, as the channel uses it: the
 * journal of changes to send, the records peers sent to apply, a table
 * exported for a peer that (re)starts, and the entries of one peer dropped.
 * The engine implements it (src/engine/sync/, `Engine.enableSync`); the
 * channel never reads a record, it only moves them. Records are the
 * engine's connection records (src/engine/conn-record.ts): version 1 for
 * IPv4 connections (60 bytes), version 2 for either family (108 bytes).
 */

/** A record version a message carries: 1 (IPv4, 60 B) or 2 (either family, 108 B). */
export type SyncRecordVersion = 1 | 2;

/**
 * Where records of one version are written, without allocating: the
 * writer puts each record at `off`, then adds its size to `off` and 1 to
 * `count`, as long as the record ends at or before `end`. The channel
 * points `buf` at a datagram's record area and resets `off`/`count` per
 * datagram.
 */
export interface RecordSink {
  readonly buf: Uint8Array;
  off: number;
  readonly end: number;
  count: number;
}

/** What applying one message's records did; rejected records are counted by reason in the engine's counters. */
export interface SyncApplyResult {
  /** Entries created or updated. */
  applied: number;
  /** Entries removed (records with remainingMs 0). */
  removed: number;
  /** Records refused (no service, no real server, no local address, max_synced reached, malformed…). */
  rejected: number;
}

/** A table being streamed to one peer: each call fills the sinks with the next records. */
export interface SyncExport {
  /**
   * Writes the next records, IPv4 entries as version 1 into `v1` and the
   * others as version 2 into `v2`, until the sink the next record needs is
   * full or nothing is left. Returns true while records remain.
   */
  next(v1: RecordSink, v2: RecordSink): boolean;
}

export interface SyncTable {
  /**
   * Writes the journal's pending changes: removals first, in the order they
   * happened, then the entries changed since last sent with their current
   * state; IPv4 entries as version 1 into `v1`, the others as version 2
   * into `v2`. Stops when the sink the next record needs is full (returns
   * true: more is pending) or the journal is empty (returns false). What it
   * wrote counts as sent.
   */
  drain(v1: RecordSink, v2: RecordSink): boolean;
  /**
   * Applies `count` records of `version` from `buf` at `off`, sent by node
   * `fromNode`: upserts by client tuple (a new entry's origin is
   * `fromNode`), removal for remainingMs 0. Never throws on a bad record.
   */
  apply(
    buf: Uint8Array,
    off: number,
    count: number,
    version: SyncRecordVersion,
    fromNode: number,
  ): SyncApplyResult;
  /**
   * The entries a peer asking for a table gets: this node's own (origin 0)
   * and, with `includeRequesters`, those whose origin is the requester
   * (its connections handed back after it restarted).
   */
  exportFor(requesterNode: number, includeRequesters: boolean): SyncExport;
  /** Drops every entry whose origin is `node`, silently (no RST); returns how many. */
  purgeFrom(node: number): number;
  /**
   * Looks at up to `maxEntries` entries from where the last call stopped and
   * marks for sending the long-lived ones peers would otherwise let expire.
   * Returns true when a pass over the whole table has ended.
   */
  sweep(maxEntries: number): boolean;
  /** Entries held for peers (origin ≠ 0). */
  readonly synced: number;
}

/** What `Engine.enableSync` takes. */
export interface EngineSyncOptions {
  nodeId: number;
  nodes: number;
  maxSynced: number;
  /** SYNPROXY's cookie keys are derived from it, alike on every node. */
  fleetKey?: Uint8Array;
}
