/**
 * Engine counters live in Float64Arrays indexed by these constants so the
 * data path increments a typed-array slot instead of touching objects.
 * Names are the exported (Prometheus / JSON) names.
 */
export const COUNTER_NAMES = [
  'rx_packets',
  'tx_packets',
  'rx_bytes',
  'tx_bytes',
  'inbound_packets',
  'outbound_packets',
  'forwarded_packets',
  'syn_rejected',
  'conns_created',
  'conns_expired',
  'conns_expired_established_rst',
  /** Connections entered from a snapshot (a restart's handover or checkpoint), not created here. */
  'conns_imported',
  /** Every connection that left the table, whatever the reason: conns_created + conns_imported − conns_released is the table's count. */
  'conns_released',
  /** A client SYN on a closing entry (FIN_WAIT … CLOSE) ended it and opened a new connection (IPVS's conn_reuse_mode). */
  'conns_reused_closing',
  /** A client SYN on an entry whose RS is quiesced (weight 0) or removed ended it and was scheduled afresh. */
  'conns_rescheduled',
  /** A client packet of a connection whose RS was removed: the entry ends (IPVS's expire_nodest_conn). */
  'conns_expired_nodest',
  'malformed_dropped',
  'bad_checksum_dropped',
  /** IPv4 fragments not addressed to a VIP or a LIP. */
  'fragment_dropped',
  /** IPv6 fragments not addressed to a VIP or a LIP. */
  'ipv6_fragment_dropped',
  /** Fragments addressed to a VIP or a LIP, taken by the reassembler (fragment-input.ts). */
  'fragments_received',
  /** Datagrams put back together; each went on as one packet. */
  'datagrams_reassembled',
  /** Fragments that went into a reassembled datagram, less one per datagram (which stands for it). */
  'fragments_merged',
  /** Fragments the reassembler dropped, for one of the reasons below. */
  'fragment_reasm_dropped',
  /** Fragments overlapping data already held: the whole datagram dropped (RFC 5722). */
  'reasm_overlap',
  'reasm_duplicate',
  /** Datagrams that would exceed 65535 bytes. */
  'reasm_too_big',
  /** Incomplete after 30 s (IPv4) / 60 s (IPv6) from the first fragment. */
  'reasm_timeout',
  /** Over the memory bound (4 MiB per family, as ipfrag_high_thresh): refused, or held by an evicted queue. */
  'reasm_memory',
  /** A first fragment without the whole transport header (RFC 1858, RFC 7112). */
  'reasm_tiny_first',
  'reasm_malformed',
  'reasm_no_room',
  /** Fragments the LB sent for datagrams larger than the device MTU after translation. */
  'fragments_sent',
  /** A reassembled datagram's translation, too large for the device MTU with DF set: not sent (its fate is counted already). */
  'refragment_df_dropped',
  /** Not sent: the fragmenter refused it (malformed, MTU below the minimum). */
  'refragment_failed',
  /** IPv6 packets with a Routing header whose segments left is not 0 (the LB is not their final destination). */
  'ipv6_routing_dropped',
  'not_tcp_dropped',
  'no_service_dropped',
  'no_conn_dropped',
  'no_real_server',
  'table_full',
  'laddr_ports_exhausted',
  /** NAT services: a SYN refused because another entry has its reply tuple (the same client port to two NAT services on one RS). */
  'nat_reply_conflict',
  'rst_sent',
  'icmp_frag_needed_sent',
  /** ICMPv6 Packet Too Big sent to IPv6 clients whose packet would not fit the RS path, and those the rate limit held back. */
  'icmp6_too_big_sent',
  'icmp6_too_big_limited',
  /** `unknown_service_action icmp`: destination unreachables sent, and those the rate limit held back. */
  'icmp_unreachable_sent',
  'icmp_unreachable_ratelimited',
  /** ICMP errors about a connection translated to its other leg and sent on (also in forwarded_packets). */
  'icmp_error_forwarded',
  /** ICMP errors quoting a packet of no connection (or one still opening under SYNPROXY), or a quote whose source is not the address the error came to. */
  'icmp_error_no_conn_dropped',
  /** FNAT64 errors RFC 7915 does not translate: ICMPv4 host precedence violation and unassigned unreachable codes, ICMPv6 unreachable codes 5 and up. */
  'icmp_error_family_dropped',
  /** ICMP messages too short, with a bad checksum, or quoting a header that cannot be read. */
  'icmp_malformed_dropped',
  /** ICMP the LB has nothing to do with: types other than errors and echo, echo to a LIP, anything to neither a VIP nor a LIP. */
  'icmp_unhandled_dropped',
  /** ICMP errors to forward and echo requests to answer beyond the ICMP rate (a flood). */
  'icmp_rate_limited',
  /** Echo requests to a VIP answered (`icmp_echo on`). */
  'icmp_echo_replied',
  /** Echo requests to a VIP dropped: `icmp_echo off`, or a source no reply may go to. */
  'icmp_echo_dropped',
  /** Frag-needed from an RS's path that lowered its path MTU, and those that did not (not lower, or below 552). */
  'icmp_pmtu_learned',
  'icmp_pmtu_ignored',
  /** Frag-needed the LB would have sent a client (a packet too big for the RS path) held back by the rate limit. */
  'icmp_frag_needed_ratelimited',
  /** `unknown_flow_reset`: RSTs sent for segments of flows the LB has no entry for, and those the rate limit held back. */
  'unknown_flow_rst_sent',
  'unknown_flow_rst_limited',
  'too_big_dropped',
  /**
   * UDP flows opened, brought in by a restart's snapshot, ended by their idle timeout, and every one
   * that left the table: created + imported − released is the UDP table's size.
   */
  'udp_flows_created',
  'udp_flows_imported',
  'udp_flows_expired',
  'udp_flows_released',
  /** A datagram to a UDP service that could not open a flow (why: table_full, no_real_server, laddr_ports_exhausted). */
  'udp_flow_rejected',
  /** IPv6 UDP datagrams with checksum 0: IPv6 has no "none" (RFC 8200 8.1). */
  'udp_zero_checksum_dropped',
  /** UOAs sent in the datagram itself, as an IPv4 option or in the protocol-248 shim. */
  'uoa_sent_ipo',
  'uoa_sent_opp',
  /** UOAs sent ahead of a datagram with no room for one under the RS path MTU, in an empty datagram of their own. */
  'uoa_empty_sent',
  /** Datagrams of a flow still in its UOA trail that went without one (no buffer room, or a family pair the mode cannot carry). */
  'uoa_skipped',
  /** Persistence (persistence.ts): a new connection sent to its client's template's RS without a scheduler call. */
  'persistence_template_hits',
  /** Templates made for a client of a persistent service, and freed after their timeout with no connection left. */
  'persistence_templates_created',
  'persistence_templates_expired',
  /** The template table was full: the connection was scheduled without one. */
  'persistence_templates_full',
  'toa_inserted',
  'toa_inserted_syn',
  'toa_pruned',
  'toa_split',
  'toa_split_segments',
  'toa_gso_resized',
  'toa_failed_no_room',
  'toa_failed_mtu',
  'toa_spoof_stripped',
  'proxy_headers_sent',
  'mss_clamped',
  'timestamp_removed',
  'pool_exhausted',
  'synproxy_syn_answered',
  'synproxy_cookie_valid',
  'synproxy_cookie_invalid',
  'synproxy_deferred',
  'synproxy_ack_stored',
  'synproxy_ack_overflow',
  'synproxy_ack_replayed',
  'synproxy_ack_discarded',
  'synproxy_rs_syn_retransmitted',
  'synproxy_rs_synack',
  'synproxy_rs_refused',
  'synproxy_rs_timeout',
  'synproxy_rs_stale_ack',
  'synproxy_setup_dropped',
  'synproxy_ack_storm',
  /** Connection sync (sync/): records of this node's entries drained for peers, and removal records among them. */
  'sync_records_out',
  'sync_removals_out',
  /** Removal records the ring had no room for (the oldest went): peers let those entries expire. */
  'sync_removals_lost',
  /** Peers' records entered or updated here, and peers' removals carried out. */
  'sync_applied',
  'sync_removed',
  /** Peers' records refused, by reason (see sync/README.md). */
  'sync_rejected_malformed',
  'sync_rejected_bad_node',
  'sync_rejected_no_service',
  'sync_rejected_no_real_server',
  'sync_rejected_no_local_address',
  'sync_rejected_port_out_of_range',
  'sync_rejected_port_conflict',
  'sync_rejected_table_full',
  'sync_rejected_max_synced',
  /** A peer's entry whose packets now come here: this node carries it from then on. */
  'sync_taken_over',
  /** A peer's entry that expired here untouched: removed without RSTs (its owner answers for it). */
  'sync_expired_silent',
  /** Entries of a peer removed at once (`purgeFrom`: the peer came back from a partition). */
  'sync_purged',
  /** A peer's closed entry (left to expire, no removal record) whose port that peer handed out again: replaced by the newer record. */
  'sync_replaced_stale',
] as const;

export type CounterName = (typeof COUNTER_NAMES)[number];

export const C: { readonly [K in CounterName]: number } = Object.freeze(
  Object.fromEntries(COUNTER_NAMES.map((n, i) => [n, i])) as { [K in CounterName]: number },
);

export const COUNTER_COUNT = COUNTER_NAMES.length;

export function newCounterArray(): Float64Array {
  return new Float64Array(COUNTER_COUNT);
}

export function countersToObject(a: Float64Array): Record<CounterName, number> {
  const out = {} as Record<CounterName, number>;
  COUNTER_NAMES.forEach((n, i) => {
    out[n] = a[i]!;
  });
  return out;
}

/**
 * Every received packet ends in exactly one of `forwarded_packets` or these:
 * rx_packets == forwarded_packets + the sum of DROP_COUNTERS.
 */
export const DROP_COUNTERS: readonly CounterName[] = [
  'malformed_dropped',
  'bad_checksum_dropped',
  'fragment_dropped',
  'ipv6_fragment_dropped',
  // Fragments: those still held count in `Engine.heldFragments`.
  'fragments_merged',
  'fragment_reasm_dropped',
  'ipv6_routing_dropped',
  'not_tcp_dropped',
  'no_service_dropped',
  'no_conn_dropped',
  'too_big_dropped',
  'udp_flow_rejected',
  'udp_zero_checksum_dropped',
  // ICMP: every message ends in forwarded_packets (a translated error) or one of these.
  'icmp_error_no_conn_dropped',
  'icmp_error_family_dropped',
  'icmp_malformed_dropped',
  'icmp_unhandled_dropped',
  'icmp_rate_limited',
  'icmp_echo_replied',
  'icmp_echo_dropped',
  'syn_rejected',
  // SYNPROXY: packets it consumed. Client packets it holds while the RS leg
  // opens count nowhere until replayed (forwarded) or discarded.
  'synproxy_syn_answered',
  'synproxy_cookie_invalid',
  'synproxy_deferred',
  'synproxy_ack_overflow',
  'synproxy_ack_discarded',
  'synproxy_rs_synack',
  'synproxy_rs_refused',
  'synproxy_rs_stale_ack',
  'synproxy_setup_dropped',
  'synproxy_ack_storm',
];
