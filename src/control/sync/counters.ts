/** What the channel counts: traffic each way, refusals by reason, what the table did with records. */

/** Every reason a datagram is refused, in the order the checks run. */
export const SYNC_REJECT_REASONS = [
  'truncated',
  'bad_magic',
  'bad_version',
  'bad_type',
  'bad_record_size',
  'bad_length',
  'bad_incarnation',
  'unknown_sender',
  'wrong_source',
  'bad_mac',
  'old_incarnation',
  'replay',
] as const;

export type SyncRejectReason = (typeof SYNC_REJECT_REASONS)[number];

/** The counters' names as Snapshot.sync shows them. */
export const SYNC_COUNTER_NAMES = [
  'messages_in',
  'messages_out',
  'bytes_in',
  'bytes_out',
  'records_in',
  'records_out',
  'records_applied',
  'records_removed',
  'records_refused',
  'heartbeats_out',
  'table_requests_in',
  'table_requests_out',
  'tables_sent',
  'tables_received',
  'entries_purged',
  'peer_restarts',
  'partitions_healed',
  'send_errors',
] as const;

export type SyncCounterName = (typeof SYNC_COUNTER_NAMES)[number];

export class SyncCounters {
  readonly n: Record<SyncCounterName, number>;
  readonly rejected: Record<SyncRejectReason, number>;

  constructor() {
    this.n = Object.fromEntries(SYNC_COUNTER_NAMES.map((k) => [k, 0])) as Record<
      SyncCounterName,
      number
    >;
    this.rejected = Object.fromEntries(SYNC_REJECT_REASONS.map((k) => [k, 0])) as Record<
      SyncRejectReason,
      number
    >;
  }

  /** One flat record: the counters, then `rejected_<reason>` for each reason. */
  toRecord(): Record<string, number> {
    const out: Record<string, number> = { ...this.n };
    for (const r of SYNC_REJECT_REASONS) out[`rejected_${r}`] = this.rejected[r];
    return out;
  }
}
