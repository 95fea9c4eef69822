/**
 * What a `Reassembler` (reassembly.ts) reports: the status of each fragment
 * pushed and its counters, drops by reason.
 */

/** Counter slots of `Reassembler.counters`; every drop counter counts fragments. */
export const enum ReasmCounter {
  /** Fragments pushed. */
  Fragments = 0,
  /** Datagrams put back together (atomic IPv6 fragments included). */
  Datagrams = 1,
  /** Fragments that went into a reassembled datagram. */
  FragmentsReassembled = 2,
  Overlap = 3,
  /** Fragments wholly inside data already held: dropped alone, the queue kept. */
  Duplicate = 4,
  TooBig = 5,
  Timeout = 6,
  /** Refused past the memory bound, or held by a queue evicted to make room. */
  Memory = 7,
  TinyFirst = 8,
  /** Bad header, inconsistent lengths or ends, ECN mix, not a fragment. */
  Malformed = 9,
  /** The complete datagram did not fit the caller's buffer. */
  NoRoom = 10,
  /** Queues killed before completion (Linux's ReasmFails), whatever the reason. */
  QueuesFailed = 11,
  Count = 12,
}

export const REASM_COUNTER_NAMES: readonly string[] = [
  'fragments',
  'datagrams',
  'fragments_reassembled',
  'drop_overlap',
  'drop_duplicate',
  'drop_too_big',
  'drop_timeout',
  'drop_memory',
  'drop_tiny_first',
  'drop_malformed',
  'drop_no_room',
  'queues_failed',
];

/** The counters that count dropped fragments: with the held and reassembled ones they add up to `Fragments`. */
export const REASM_DROP_COUNTERS: readonly ReasmCounter[] = [
  ReasmCounter.Overlap,
  ReasmCounter.Duplicate,
  ReasmCounter.TooBig,
  ReasmCounter.Timeout,
  ReasmCounter.Memory,
  ReasmCounter.TinyFirst,
  ReasmCounter.Malformed,
  ReasmCounter.NoRoom,
];

export const enum ReasmStatus {
  /** Kept in its queue; the datagram is not complete yet. */
  Held = 0,
  /** The datagram is complete: `length` bytes at the caller's `out[outOff]`. */
  Complete = 1,
  /** Dropped (perhaps with its queue); `dropReason` says why. */
  Dropped = 2,
}
