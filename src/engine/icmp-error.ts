import { get16, set16, storeU32From } from '../wire/bytes.js';
import { ChecksumDelta } from '../wire/checksum.js';
import {
  ICMP_DEST_UNREACH,
  ICMP_FRAG_NEEDED,
  IPV4_MIN_PMTU,
  IcmpField,
  finishIcmpChecksum,
} from '../wire/icmp.js';
import { IPPROTO_TCP, IPPROTO_UDP, Ipv4Field } from '../wire/ipv4.js';
import { IPPROTO_OPP } from '../wire/uoa.js';
import { TOA_V4_LEN } from '../wire/toa.js';
import { CF_IPV6, CF_SP_PENDING } from './conn-table.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import type { Icmp6Errors } from './icmp6-error.js';
import { quotedTcpAsClientSent, quotedTcpAsRsSent } from './icmp-quote-tcp.js';
import {
  quotedOppLength,
  quotedUdpAsClientSent,
  quotedUdpAsRsSent,
  takeUoaOutOfQuote4,
} from './icmp-quote-udp.js';
import type { Packet } from './packet.js';
import { PmtuVerdict } from './path-mtu.js';
import { TokenBucket } from './token-bucket.js';

/**
 * ICMP errors about the LB's connections and UDP flows (kernel IPVS's
 * ip_vs_in_icmp / ip_vs_out_icmp, DPVS's icmp handling): an error quotes a
 * packet the LB sent on one leg; the connection is found by the quoted
 * header with the lookup of the quoted protocol, and the error is
 * translated to the other leg — outer addresses, quoted addresses, ports
 * and sequence numbers — so the host that sent the original packet there
 * learns of it: the client fails fast on an unreachable RS (a UDP client's
 * socket gets ECONNREFUSED from the RS's port unreachable), the RS lowers
 * its MSS for a narrow client path. A frag-needed from the RS's path also
 * lowers that RS's path MTU (path-mtu.ts).
 *
 * The quoted protocol picks the table, the lookup and the translation: TCP
 * (`quotedTcp*` of icmp-quote-tcp.ts, shared with ICMPv6) or UDP, whose
 * quote of a datagram the LB sent an RS may carry the UOA — the opp shim
 * (protocol 248) or the ipo option — which comes out of it
 * (icmp-quote-udp.ts). ICMPv6 and FNAT64 are icmp6-error.ts's.
 * Called with the message checked: checksum good, quote readable
 * (icmp-input.ts). Forwarded errors are rate-limited: a flood of valid-looking
 * errors costs one token each and goes no further.
 */
export class IcmpErrors {
  private readonly delta = new ChecksumDelta();
  private readonly bucket: TokenBucket;

  constructor(
    private readonly ctx: EngineContext,
    /** FNAT64 connections' errors become ICMPv6 to their IPv6 client there. */
    private readonly errors6: Icmp6Errors,
  ) {
    this.bucket = new TokenBucket(ctx.opts.icmpRateLimit, ctx.opts.icmpRateBurst);
  }

  /**
   * An error to a LIP: a router on an RS's path (or the RS) about a packet
   * the LB sent it. `icmp` is the message's offset, `len` its length, `qHl`
   * the quoted IPv4 header's length.
   */
  fromRealServerSide(p: Packet, icmp: number, len: number, qHl: number): void {
    const q = this.quoted(p, icmp);
    if (q < 0) return;
    const proto = p.buf[q + Ipv4Field.Protocol];
    if (proto === IPPROTO_TCP) {
      this.quotedFromRs(p, icmp, len, q, q + qHl, false);
      return;
    }
    const qu = this.quotedUdpHeader(p, icmp, len, q, qHl, true);
    if (qu >= 0) this.quotedFromRs(p, icmp, len, q, qu, true);
  }

  /** An error to a VIP: from the client's side, about a packet the LB sent the client. */
  fromClientSide(p: Packet, icmp: number, len: number, qHl: number): void {
    const q = this.quoted(p, icmp);
    if (q < 0) return;
    const proto = p.buf[q + Ipv4Field.Protocol];
    if (proto === IPPROTO_TCP) {
      this.quotedFromClient(p, icmp, len, q, q + qHl, false);
      return;
    }
    const qu = this.quotedUdpHeader(p, icmp, len, q, qHl, false);
    if (qu >= 0) this.quotedFromClient(p, icmp, len, q, qu, true);
  }

  /**
   * The quoted IPv4 header's offset, or -1 with p dropped: the quote must
   * be of a datagram's first piece sent from the address the error came
   * to (a packet sent from there; a quote from anywhere else lies).
   */
  private quoted(p: Packet, icmp: number): number {
    const b = p.buf;
    const q = icmp + IcmpField.Quote;
    if (!sameAddress(b, q + Ipv4Field.Src, p.start + Ipv4Field.Dst) || !isFirstPiece(b, q)) {
      this.ctx.drop(p, C.icmp_error_no_conn_dropped);
      return -1;
    }
    return q;
  }

  /**
   * The quoted UDP header's offset, or -1 with p dropped: right after the
   * quoted IP header for protocol 17; after the opp shim for protocol 248
   * in a quote of what the LB sent an RS (`toRs`), whose shim must be whole
   * and followed by the whole UDP header (else the quote is unreadable).
   * Any other protocol quotes nothing the LB keeps.
   */
  private quotedUdpHeader(
    p: Packet,
    icmp: number,
    len: number,
    q: number,
    qHl: number,
    toRs: boolean,
  ): number {
    const b = p.buf;
    const proto = b[q + Ipv4Field.Protocol];
    if (proto === IPPROTO_UDP) return q + qHl;
    if (proto === IPPROTO_OPP && toRs) {
      const at = q + qHl;
      const n = quotedOppLength(b, at, len - (at - icmp));
      if (n >= 0) return at + n;
      this.ctx.drop(p, C.icmp_malformed_dropped);
      return -1;
    }
    this.ctx.drop(p, C.icmp_error_no_conn_dropped);
    return -1;
  }

  /**
   * A quoted LIP:lport → RIP:rport segment or datagram (its TCP or UDP
   * header at ql4): the connection or flow by its reply tuple; the error
   * goes to the client as VIP → CIP about CIP:cport → VIP:vport — a TCP
   * sequence number back in the client's space, a UDP quote without the UOA.
   */
  private quotedFromRs(
    p: Packet,
    icmp: number,
    len: number,
    q: number,
    ql4: number,
    udp: boolean,
  ): void {
    const ctx = this.ctx;
    const t = udp ? ctx.udp.table : ctx.table;
    const b = p.buf;
    const c = t.lookupReplyQuotedAt(b, q, ql4);
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
    // above; the client hears of it in ICMPv6 (RFC 7915 4.2).
    if (fnat64) {
      this.errors6.fromRealServer64(p, icmp, len, q, ql4, c, udp);
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
      // the MTU on as LVS and DPVS do. A UDP flow's UOA needs no room: one that does not fit
      // goes ahead in a datagram of its own. A value below the minimum is passed on as it
      // is: the client's stack applies its own floor.
      const told = get16(b, icmp + IcmpField.NextHopMtu);
      const room = !udp && ctx.policy === 'fullnat' && t.shift[c] === 0 ? TOA_V4_LEN : 0;
      if (told >= IPV4_MIN_PMTU) {
        const mtu = ctx.pmtu.of(t.rs[c]!);
        set16(b, icmp + IcmpField.NextHopMtu, (mtu < told ? mtu : told) - room);
      }
    }
    if (udp) {
      const n = takeUoaOutOfQuote4(p, q, ql4);
      icmp += n;
      q += n;
      len -= n;
    }
    const reg = ctx.reg;
    const avail = len - (ql4 - icmp);
    const d = this.delta.reset();
    // Quoted IP: LIP → RIP becomes CIP → VIP.
    rewriteQuotedAddresses(d, b, q, t.cip, c, reg.svcVips, svc);
    if (udp) quotedUdpAsClientSent(t, reg, d, b, ql4, avail, c);
    else quotedTcpAsClientSent(t, reg, d, b, ql4, avail, c);
    // Outer: VIP → CIP, from the address the client sent to.
    storeU32From(b, p.start + Ipv4Field.Src, reg.svcVips, svc);
    storeU32From(b, p.start + Ipv4Field.Dst, t.cip, c);
    this.send(p, icmp, len);
  }

  /**
   * A quoted VIP:vport → CIP:cport segment or datagram: the connection or
   * flow by its client tuple; the error goes to the RS as LIP → RIP about
   * RIP:rport → LIP:lport, a TCP sequence number back in the RS's space. A
   * frag-needed keeps its MTU: the RS's packets reach the client as large
   * as they left.
   */
  private quotedFromClient(
    p: Packet,
    icmp: number,
    len: number,
    q: number,
    ql4: number,
    udp: boolean,
  ): void {
    const ctx = this.ctx;
    const reg = ctx.reg;
    const t = udp ? ctx.udp.table : ctx.table;
    const b = p.buf;
    const svc = (udp ? reg.udpServiceByKey : reg.serviceByKey).getAt(b, q + Ipv4Field.Src, ql4);
    const c = svc < 0 ? -1 : t.lookupClientQuotedAt(b, q, ql4, svc);
    if (c < 0 || (t.flags[c]! & CF_SP_PENDING) !== 0) {
      ctx.drop(p, C.icmp_error_no_conn_dropped);
      return;
    }
    if (!this.bucket.take(ctx.now)) {
      ctx.drop(p, C.icmp_rate_limited);
      return;
    }
    const avail = len - (ql4 - icmp);
    const d = this.delta.reset();
    rewriteQuotedAddresses(d, b, q, t.rip, c, t.lip, c);
    if (udp) quotedUdpAsRsSent(t, d, b, ql4, avail, c);
    else quotedTcpAsRsSent(t, d, b, ql4, avail, c);
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
 * The quoted IPv4 header at b[q] gets source src[si] and destination
 * dst[di]; its checksum follows the two, and d notes them too (the quoted
 * segment's pseudo-header holds them).
 */
function rewriteQuotedAddresses(
  d: ChecksumDelta,
  b: Uint8Array,
  q: number,
  src: Uint32Array,
  si: number,
  dst: Uint32Array,
  di: number,
): void {
  replaceAddress(d, b, q + Ipv4Field.Src, src, si);
  replaceAddress(d, b, q + Ipv4Field.Dst, dst, di);
  set16(b, q + Ipv4Field.Checksum, d.apply(get16(b, q + Ipv4Field.Checksum)));
  storeU32From(b, q + Ipv4Field.Src, src, si);
  storeU32From(b, q + Ipv4Field.Dst, dst, di);
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
