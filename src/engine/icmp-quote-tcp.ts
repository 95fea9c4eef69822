import { get16, set16 } from '../wire/bytes.js';
import type { ChecksumDelta } from '../wire/checksum.js';
import { TCP_ACK, TcpField } from '../wire/tcp.js';
import { CF_SYNPROXY, type ConnTable } from './conn-table.js';
import type { Registry } from './registry.js';
import { rewriteSeqField } from './seq-rewrite.js';

/**
 * The TCP part of an ICMP or ICMPv6 error's quote, translated to the other
 * leg of connection c: the same for both families and for FNAT64 (only the
 * IP headers around it differ). `qt` is the quoted TCP header, `avail` the
 * quoted bytes from there; d collects the changes for the quoted checksum
 * (the caller notes the pseudo-header's addresses in it first).
 */

/**
 * A quoted LIP:lport → RIP:rport segment as the client sent it: cport →
 * vport, the sequence number back in the client's space (the client checks
 * it lies in its unacknowledged window, or ignores the error): less the
 * connection's delta, and less the PROXY header for bytes behind it; the
 * ack, when quoted, as the client sent it (SYNPROXY moved it by the
 * cookie's delta).
 */
export function quotedTcpAsClientSent(
  t: ConnTable,
  reg: Registry,
  d: ChecksumDelta,
  b: Uint8Array,
  qt: number,
  avail: number,
  c: number,
): void {
  rewritePorts(d, b, qt, t.cport[c]!, reg.svcPorts[t.svc[c]!]!);
  const so = qt + TcpField.Seq;
  let add = -t.seqDelta[c]!;
  const shift = t.shift[c]!;
  if (shift !== 0 && ((get16(b, so) * 65536 + get16(b, so + 2) - t.lbIsn[c]! - 1) | 0) > 0)
    add -= shift;
  rewriteSeqField(b, so, add, d);
  if (
    avail >= TcpField.Flags + 1 &&
    (t.flags[c]! & CF_SYNPROXY) !== 0 &&
    (b[qt + TcpField.Flags]! & TCP_ACK) !== 0
  )
    rewriteSeqField(b, qt + TcpField.Ack, -t.ackDelta[c]!, d);
  finishQuotedTcpChecksum(d, b, qt, avail);
}

/**
 * A quoted VIP:vport → CIP:cport segment as the RS sent it: rport → lport,
 * the RS's own sequence number (SYNPROXY's translation moved it by the
 * cookie's delta), the ack, when quoted, back in the RS's space.
 */
export function quotedTcpAsRsSent(
  t: ConnTable,
  d: ChecksumDelta,
  b: Uint8Array,
  qt: number,
  avail: number,
  c: number,
): void {
  rewritePorts(d, b, qt, t.rport[c]!, t.lport[c]!);
  if ((t.flags[c]! & CF_SYNPROXY) !== 0) rewriteSeqField(b, qt + TcpField.Seq, t.ackDelta[c]!, d);
  if (avail >= TcpField.Flags + 1 && (b[qt + TcpField.Flags]! & TCP_ACK) !== 0) {
    const ao = qt + TcpField.Ack;
    let add = t.seqDelta[c]!;
    const shift = t.shift[c]!;
    if (shift !== 0 && ((get16(b, ao) * 65536 + get16(b, ao + 2) + add - t.lbIsn[c]! - 1) | 0) > 0)
      add += shift;
    rewriteSeqField(b, ao, add, d);
  }
  finishQuotedTcpChecksum(d, b, qt, avail);
}

/** The quoted segment's ports become sport → dport, noted in d. */
function rewritePorts(
  d: ChecksumDelta,
  b: Uint8Array,
  qt: number,
  sport: number,
  dport: number,
): void {
  d.replaceWord(get16(b, qt), sport);
  d.replaceWord(get16(b, qt + TcpField.DstPort), dport);
  set16(b, qt, sport);
  set16(b, qt + TcpField.DstPort, dport);
}

/**
 * The quoted segment's checksum, when the quote reaches it: updated for
 * every word the translation changed, pseudo-header addresses included, as
 * Linux's NAT does for the inner header of an ICMP error (nf_nat's
 * l4proto manip, which skips it when fewer than the header's 20 bytes are
 * quoted). IPVS leaves it alone: the segment is truncated, so no receiver
 * can verify it, and Linux's tcp_v4_err does not read it. The incremental
 * update keeps it what the other leg's original segment carried, so a
 * capture shows no false checksum error there. IPv4 and IPv6 pseudo-headers
 * sum protocol and length alike, so FNAT64 changes only the addresses.
 */
function finishQuotedTcpChecksum(d: ChecksumDelta, b: Uint8Array, qt: number, avail: number): void {
  if (avail < TcpField.Checksum + 2) return;
  const at = qt + TcpField.Checksum;
  set16(b, at, d.apply(get16(b, at)));
}
