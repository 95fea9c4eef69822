import { get16, set16, storeU32From } from '../wire/bytes.js';
import { ChecksumDelta } from '../wire/checksum.js';
import {
  ICMP_DEST_UNREACH,
  ICMP_FRAG_NEEDED,
  IPV4_MIN_PMTU,
  IcmpField,
  finishIcmpChecksum,
} from '../wire/icmp.js';
import { IPPROTO_TCP, Ipv4Field } from '../wire/ipv4.js';
import { TCP_ACK, TcpField } from '../wire/tcp.js';
import { TOA_V4_LEN } from '../wire/toa.js';
import { CF_IPV6, CF_SP_PENDING, CF_SYNPROXY } from './conn-table.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import type { Packet } from './packet.js';
import { PmtuVerdict } from './path-mtu.js';
import { rewriteSeqField } from './seq-rewrite.js';
import { TokenBucket } from './token-bucket.js';

/**
 * ICMP errors about the LB's connections (kernel IPVS's ip_vs_in_icmp /
 * ip_vs_out_icmp, DPVS's icmp handling): an error quotes a packet the LB
 * sent on one leg; the connection is found by the quoted header with the
 * lookup of the quoted protocol, and the error is translated to the other
 * leg — outer addresses, quoted addresses, ports and sequence numbers —
 * so the host that sent the original packet there learns of it: the client
 * fails fast on an unreachable RS, the RS lowers its MSS for a narrow client
 * path. A frag-needed from the RS's path also lowers that RS's path MTU
 * (path-mtu.ts).
 *
 * Only TCP is quoted today; the quoted protocol picks the lookup and the
 * translation (`quotedTcp*`), where ICMPv6 and other protocols will join.
 * Called with the message checked: checksum good, quote readable
 * (icmp-input.ts). Forwarded errors are rate-limited: a flood of valid-looking
 * errors costs one token each and goes no further.
 */
export class IcmpErrors {
  private readonly delta = new ChecksumDelta();
  private readonly bucket: TokenBucket;

  constructor(private readonly ctx: EngineContext) {
    this.bucket = new TokenBucket(ctx.opts.icmpRateLimit, ctx.opts.icmpRateBurst);
  }

  /**
   * An error to a LIP: a router on an RS's path (or the RS) about a packet
   * the LB sent it. `icmp` is the message's offset, `len` its length, `qHl`
   * the quoted IPv4 header's length.
   */
  fromRealServerSide(p: Packet, icmp: number, len: number, qHl: number): void {
    const b = p.buf;
    const q = icmp + IcmpField.Quote;
    // The error is about a packet sent from this LIP; a quote from anywhere else lies.
    if (!sameAddress(b, q + Ipv4Field.Src, p.start + Ipv4Field.Dst) || !isFirstPiece(b, q)) {
      this.ctx.drop(p, C.icmp_error_no_conn_dropped);
      return;
    }
    switch (b[q + Ipv4Field.Protocol]) {
      case IPPROTO_TCP:
        this.quotedTcpFromRs(p, icmp, len, q, q + qHl);
        return;
      default:
        this.ctx.drop(p, C.icmp_error_no_conn_dropped);
    }
  }

  /** An error to a VIP: from the client's side, about a packet the LB sent the client. */
  fromClientSide(p: Packet, icmp: number, len: number, qHl: number): void {
    const b = p.buf;
    const q = icmp + IcmpField.Quote;
    if (!sameAddress(b, q + Ipv4Field.Src, p.start + Ipv4Field.Dst) || !isFirstPiece(b, q)) {
      this.ctx.drop(p, C.icmp_error_no_conn_dropped);
      return;
    }
    switch (b[q + Ipv4Field.Protocol]) {
      case IPPROTO_TCP:
        this.quotedTcpFromClient(p, icmp, len, q, q + qHl);
        return;
      default:
        this.ctx.drop(p, C.icmp_error_no_conn_dropped);
    }
  }

  /**
   * A quoted LIP:lport → RIP:rport segment: the connection by its reply
   * tuple; the error goes to the client as VIP → CIP about CIP:cport →
   * VIP:vport, the sequence number back in the client's space.
   */
  private quotedTcpFromRs(p: Packet, icmp: number, len: number, q: number, qt: number): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const b = p.buf;
    const c = t.lookupReplyQuotedAt(b, q, qt);
    // A SYNPROXY connection whose RS leg is opening: the client knows only the LB's
    // handshake; SYNPROXY's own retries and timeout answer it.
    if (c < 0 || (t.flags[c]! & CF_SP_PENDING) !== 0) {
      ctx.drop(p, C.icmp_error_no_conn_dropped);
      return;
    }
    const svc = t.svc[c]!;
    const fnat64 = (t.flags[c]! & CF_IPV6) !== 0;
    const type = b[icmp + IcmpField.Type]!;
    const fragNeeded = type === ICMP_DEST_UNREACH && b[icmp + IcmpField.Code] === ICMP_FRAG_NEEDED;
    if (fragNeeded) {
      const told = get16(b, icmp + IcmpField.NextHopMtu);
      const v = ctx.pmtu.learn(t.rs[c]!, told);
      ctx.count(v === PmtuVerdict.Learned ? C.icmp_pmtu_learned : C.icmp_pmtu_ignored);
    }
    // An FNAT64 connection (an IPv6 client behind an IPv4 RS path): the path MTU is learned
    // above; telling the client needs an ICMPv6 Packet Too Big, which is not written yet.
    if (fnat64) {
      ctx.drop(p, C.icmp_error_family_dropped);
      return;
    }
    if (!this.bucket.take(ctx.now)) {
      ctx.drop(p, C.icmp_rate_limited);
      return;
    }
    if (fragNeeded) {
      // The client's segments grow by the TOA the LB adds on its way to the RS: under
      // `fullnat`, tell it the path's MTU less that room, so what it sends next fits with the
      // TOA in (the split still covers a packet sent before it heard); `lvs` and `dpvs` pass
      // the MTU on as LVS and DPVS do. A value below the minimum is passed on as it is: the
      // client's stack applies its own floor.
      const told = get16(b, icmp + IcmpField.NextHopMtu);
      const room = ctx.policy === 'fullnat' && t.shift[c] === 0 ? TOA_V4_LEN : 0;
      if (told >= IPV4_MIN_PMTU) {
        const mtu = ctx.pmtu.of(t.rs[c]!);
        set16(b, icmp + IcmpField.NextHopMtu, (mtu < told ? mtu : told) - room);
      }
    }
    const reg = ctx.reg;
    const avail = len - (qt - icmp);
    const d = this.delta.reset();
    // Quoted IP: LIP → RIP becomes CIP → VIP; its checksum follows the two addresses.
    replaceAddress(d, b, q + Ipv4Field.Src, t.cip, c);
    replaceAddress(d, b, q + Ipv4Field.Dst, reg.svcVips, svc);
    set16(b, q + Ipv4Field.Checksum, d.apply(get16(b, q + Ipv4Field.Checksum)));
    storeU32From(b, q + Ipv4Field.Src, t.cip, c);
    storeU32From(b, q + Ipv4Field.Dst, reg.svcVips, svc);
    // Quoted TCP: ports, then the sequence number back into the client's space (the client
    // checks it lies in its unacknowledged window, or ignores the error): less the
    // connection's delta, and less the PROXY header for bytes behind it.
    d.replaceWord(get16(b, qt), t.cport[c]!);
    d.replaceWord(get16(b, qt + 2), reg.svcPorts[svc]!);
    set16(b, qt, t.cport[c]!);
    set16(b, qt + 2, reg.svcPorts[svc]!);
    const so = qt + TcpField.Seq;
    let add = -t.seqDelta[c]!;
    const shift = t.shift[c]!;
    if (shift !== 0 && ((get16(b, so) * 65536 + get16(b, so + 2) - t.lbIsn[c]! - 1) | 0) > 0)
      add -= shift;
    rewriteSeqField(b, so, add, d);
    // The ack, when quoted, as the client sent it: SYNPROXY moved it by the cookie's delta.
    if (
      avail >= TcpField.Flags + 1 &&
      (t.flags[c]! & CF_SYNPROXY) !== 0 &&
      (b[qt + TcpField.Flags]! & TCP_ACK) !== 0
    )
      rewriteSeqField(b, qt + TcpField.Ack, -t.ackDelta[c]!, d);
    finishQuotedTcpChecksum(d, b, qt, avail);
    // Outer: VIP → CIP, from the address the client sent to.
    storeU32From(b, p.start + Ipv4Field.Src, reg.svcVips, svc);
    storeU32From(b, p.start + Ipv4Field.Dst, t.cip, c);
    this.send(p, icmp, len);
  }

  /**
   * A quoted VIP:vport → CIP:cport segment: the connection by its client
   * tuple; the error goes to the RS as LIP → RIP about RIP:rport →
   * LIP:lport, the sequence number back in the RS's space. A frag-needed
   * keeps its MTU: the RS's segments reach the client as large as they left.
   */
  private quotedTcpFromClient(p: Packet, icmp: number, len: number, q: number, qt: number): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const b = p.buf;
    const svc = ctx.reg.serviceByKey.getAt(b, q + Ipv4Field.Src, qt);
    const c = svc < 0 ? -1 : t.lookupClientQuotedAt(b, q, qt, svc);
    if (c < 0 || (t.flags[c]! & CF_SP_PENDING) !== 0) {
      ctx.drop(p, C.icmp_error_no_conn_dropped);
      return;
    }
    if (!this.bucket.take(ctx.now)) {
      ctx.drop(p, C.icmp_rate_limited);
      return;
    }
    const avail = len - (qt - icmp);
    const d = this.delta.reset();
    replaceAddress(d, b, q + Ipv4Field.Src, t.rip, c);
    replaceAddress(d, b, q + Ipv4Field.Dst, t.lip, c);
    set16(b, q + Ipv4Field.Checksum, d.apply(get16(b, q + Ipv4Field.Checksum)));
    storeU32From(b, q + Ipv4Field.Src, t.rip, c);
    storeU32From(b, q + Ipv4Field.Dst, t.lip, c);
    d.replaceWord(get16(b, qt), t.rport[c]!);
    d.replaceWord(get16(b, qt + 2), t.lport[c]!);
    set16(b, qt, t.rport[c]!);
    set16(b, qt + 2, t.lport[c]!);
    // The RS's own sequence number: SYNPROXY's translation moved it by the cookie's delta.
    if ((t.flags[c]! & CF_SYNPROXY) !== 0) rewriteSeqField(b, qt + TcpField.Seq, t.ackDelta[c]!, d);
    if (avail >= TcpField.Flags + 1 && (b[qt + TcpField.Flags]! & TCP_ACK) !== 0) {
      const ao = qt + TcpField.Ack;
      let add = t.seqDelta[c]!;
      const shift = t.shift[c]!;
      if (
        shift !== 0 &&
        ((get16(b, ao) * 65536 + get16(b, ao + 2) + add - t.lbIsn[c]! - 1) | 0) > 0
      )
        add += shift;
      rewriteSeqField(b, ao, add, d);
    }
    finishQuotedTcpChecksum(d, b, qt, avail);
    storeU32From(b, p.start + Ipv4Field.Src, t.lip, c);
    storeU32From(b, p.start + Ipv4Field.Dst, t.rip, c);
    this.send(p, icmp, len);
  }

  /** The outer header's checksum and the ICMP checksum over the translated message; sends. */
  private send(p: Packet, icmp: number, len: number): void {
    const ctx = this.ctx;
    ctx.ip.wrap(p.buf, p.start).updateChecksum();
    finishIcmpChecksum(p.buf, icmp, len);
    ctx.count(C.icmp_error_forwarded);
    ctx.forward(p);
  }
}

/**
 * The quoted segment's checksum, when the quote reaches it: updated for
 * every word the translation changed, pseudo-header addresses included, as
 * Linux's NAT does for the inner header of an ICMP error (nf_nat's
 * l4proto manip, which skips it when fewer than the header's 20 bytes are
 * quoted). IPVS leaves it alone: the segment is truncated, so no receiver
 * can verify it, and Linux's tcp_v4_err does not read it. The incremental
 * update keeps it what the other leg's original segment carried, so a
 * capture shows no false checksum error there.
 */
function finishQuotedTcpChecksum(d: ChecksumDelta, b: Uint8Array, qt: number, avail: number): void {
  if (avail < TcpField.Checksum + 2) return;
  const at = qt + TcpField.Checksum;
  set16(b, at, d.apply(get16(b, at)));
}

/** Notes in d the replacement of the IPv4 address at b[at] by arr[i]. */
function replaceAddress(
  d: ChecksumDelta,
  b: Uint8Array,
  at: number,
  arr: Uint32Array,
  i: number,
): void {
  d.replaceWord(get16(b, at), arr[i]! >>> 16);
  d.replaceWord(get16(b, at + 2), arr[i]! & 0xffff);
}

function sameAddress(b: Uint8Array, x: number, y: number): boolean {
  return b[x] === b[y] && b[x + 1] === b[y + 1] && b[x + 2] === b[y + 2] && b[x + 3] === b[y + 3];
}

/** True when the quoted header is a whole datagram's or its first fragment's: only then do ports follow it. */
function isFirstPiece(b: Uint8Array, q: number): boolean {
  return (get16(b, q + Ipv4Field.Flags) & 0x1fff) === 0;
}
