import { copyBytes, get16, set16, set32, storeU32From } from '../wire/bytes.js';
import { ChecksumDelta } from '../wire/checksum.js';
import {
  ICMPV6_ADDR_UNREACH,
  ICMPV6_ADM_PROHIBITED,
  ICMPV6_DEST_UNREACH,
  ICMPV6_NOROUTE,
  ICMPV6_NOT_NEIGHBOUR,
  ICMPV6_PACKET_TOO_BIG,
  ICMPV6_PARAMETER_PROBLEM,
  ICMPV6_PORT_UNREACH,
  ICMPV6_TIME_EXCEEDED,
  ICMP_DEST_UNREACH,
  ICMP_FRAG_NEEDED,
  ICMP_HOST_ANO,
  ICMP_HOST_UNREACH,
  ICMP_PORT_UNREACH,
  ICMP_TIME_EXCEEDED,
  IPV4_MIN_PMTU,
  IPV6_MIN_MTU,
  IcmpField,
  Icmpv6Field,
  finishIcmpChecksum,
  finishIcmpv6Checksum,
  packetTooBigMtu,
  quotedIpv6Offset,
  writeIcmpErrorHeader,
} from '../wire/icmp.js';
import {
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPV4_MIN_HEADER,
  Ipv4Field,
  finishIpv4Header,
} from '../wire/ipv4.js';
import { finishIpv6Header, IPV6_HEADER } from '../wire/ipv6.js';
import { TOA_V6_LEN } from '../wire/toa.js';
import { IPPROTO_OPP } from '../wire/uoa.js';
import { CF_SP_PENDING } from './conn-table.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import { quotedTcpAsClientSent, quotedTcpAsRsSent } from './icmp-quote-tcp.js';
import {
  quotedOppLength,
  quotedUdpAsClientSent,
  quotedUdpAsRsSent,
  takeUoaOutOfQuote6,
} from './icmp-quote-udp.js';
import type { Packet } from './packet.js';
import { PmtuVerdict } from './path-mtu.js';
import { TokenBucket } from './token-bucket.js';

/** ICMPv6 quotes stop where the error would exceed the IPv6 minimum MTU (RFC 4443 2.4 (c)). */
const ICMPV6_MAX_QUOTE = IPV6_MIN_MTU - IPV6_HEADER - 8;
/** ICMP quotes stop where the error would exceed 576 bytes (RFC 1812 4.3.2.3), as Linux's do. */
const ICMP_MAX_QUOTE = 576 - IPV4_MIN_HEADER - 8;

/**
 * ICMPv6 errors about the LB's connections and UDP flows with an IPv6
 * client, the IPv6 sibling of icmp-error.ts (same structure: the quoted
 * protocol picks the table and the lookup, the TCP part of the quote is
 * icmp-quote-tcp.ts's, the UDP part — the opp shim taken out of a quote of
 * what the LB sent an RS — icmp-quote-udp.ts's):
 *
 * - IPv6 RS: a Packet Too Big, destination unreachable or time exceeded to
 *   an IPv6 LIP (quoting LIP → RIP) goes to the client as VIP → CIP; one to
 *   the IPv6 VIP (quoting VIP → CIP) goes to the RS as LIP → RIP. A Packet
 *   Too Big from the RS's path lowers its path MTU (path-mtu.ts, never below
 *   the IPv6 minimum of 1280) and reaches the client less the 20-byte TOA
 *   room under `fullnat`, bare under `lvs` and `dpvs`, as IPv4's does.
 * - FNAT64 (IPv4 RS): an ICMPv4 error to the IPv4 LIP (icmp-error.ts finds
 *   the connection and hands it here) becomes ICMPv6 to the client, and an
 *   ICMPv6 error to the VIP becomes ICMPv4 to the RS, translated as RFC 7915
 *   4.2 and 5.2 say: types and codes mapped, the MTU moved by the 20 bytes
 *   the header changes by, the quote rewritten as the other leg's host sent
 *   it. Codes RFC 7915 drops (ICMPv4 host precedence violation and the
 *   unassigned ones, ICMPv6 destination unreachable codes 5 and up) are
 *   dropped here too, as `icmp_error_family_dropped`.
 *
 * The translated message is written into a fresh pool packet: the headers
 * change size, and errors are rare. Rate-limited as IPv4's are.
 */
export class Icmp6Errors {
  private readonly delta = new ChecksumDelta();
  private readonly bucket: TokenBucket;

  constructor(private readonly ctx: EngineContext) {
    this.bucket = new TokenBucket(ctx.opts.icmpRateLimit, ctx.opts.icmpRateBurst);
  }

  /**
   * An ICMPv6 error to an IPv6 LIP: p is the fixed IPv6 header (at p.start)
   * and the message at `icmp`, `len` bytes, its checksum checked.
   */
  fromRealServerSide(p: Packet, icmp: number, len: number): void {
    const q = this.quoted(p, icmp, len);
    if (q < 0) return;
    const next = p.buf[q + 6];
    if (next === IPPROTO_TCP) {
      this.quotedFromRs(p, icmp, len, q, q + IPV6_HEADER, false);
      return;
    }
    const qu = this.quotedUdpHeader(p, icmp, len, q, true);
    if (qu >= 0) this.quotedFromRs(p, icmp, len, q, qu, true);
  }

  /** An ICMPv6 error to an IPv6 VIP: from the client's side, about a packet the LB sent the client. */
  fromClientSide(p: Packet, icmp: number, len: number): void {
    const q = this.quoted(p, icmp, len);
    if (q < 0) return;
    if (p.buf[q + 6] === IPPROTO_TCP) {
      this.quotedFromClient(p, icmp, len, q, q + IPV6_HEADER, false);
      return;
    }
    const qu = this.quotedUdpHeader(p, icmp, len, q, false);
    if (qu >= 0) this.quotedFromClient(p, icmp, len, q, qu, true);
  }

  /**
   * The quoted UDP header's offset, or -1 with p dropped: right after the
   * quoted fixed header for next header 17; after the opp shim for 248 in
   * a quote of what the LB sent an RS (`toRs`), the shim whole and the UDP
   * header whole after it (else unreadable). Anything else (extension
   * headers included: the LB sends none) quotes nothing the LB keeps.
   */
  private quotedUdpHeader(p: Packet, icmp: number, len: number, q: number, toRs: boolean): number {
    const b = p.buf;
    const next = b[q + 6];
    const at = q + IPV6_HEADER;
    if (next === IPPROTO_UDP) return at;
    if (next === IPPROTO_OPP && toRs) {
      const n = quotedOppLength(b, at, len - (at - icmp));
      if (n >= 0) return at + n;
      this.ctx.drop(p, C.icmp_malformed_dropped);
      return -1;
    }
    this.ctx.drop(p, C.icmp_error_no_conn_dropped);
    return -1;
  }

  /**
   * The quoted IPv6 header's offset, or -1 with p dropped: it must be
   * readable (40 bytes and 8 after them) and sent from the address the
   * error came to (a quote from anywhere else lies).
   */
  private quoted(p: Packet, icmp: number, len: number): number {
    const b = p.buf;
    const q = quotedIpv6Offset(b, icmp, len);
    if (q < 0) {
      this.ctx.drop(p, C.icmp_malformed_dropped);
      return -1;
    }
    for (let k = 0; k < 16; k++) {
      if (b[q + 8 + k] !== b[p.start + 24 + k]) {
        this.ctx.drop(p, C.icmp_error_no_conn_dropped);
        return -1;
      }
    }
    return q;
  }

  /**
   * A quoted LIP6:lport → RIP6:rport segment or datagram (TCP or UDP header
   * at ql4): to the client as VIP → CIP about CIP:cport → VIP:vport, a UDP
   * quote without its opp shim.
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
    const c = t.lookupReply6QuotedAt(b, q + 8, ql4);
    if (c < 0 || (t.flags[c]! & CF_SP_PENDING) !== 0) {
      ctx.drop(p, C.icmp_error_no_conn_dropped);
      return;
    }
    const tooBig = b[icmp + IcmpField.Type] === ICMPV6_PACKET_TOO_BIG;
    const told = tooBig ? packetTooBigMtu(b, icmp) : 0;
    if (tooBig) {
      const v = told < IPV6_MIN_MTU ? PmtuVerdict.BelowMinimum : ctx.pmtu.learn(t.rs[c]!, told);
      ctx.count(v === PmtuVerdict.Learned ? C.icmp_pmtu_learned : C.icmp_pmtu_ignored);
    }
    if (!this.bucket.take(ctx.now)) {
      ctx.drop(p, C.icmp_rate_limited);
      return;
    }
    // As IPv4's: under `fullnat` the client hears the path's MTU less the TOA's room (the
    // header is 40 bytes on both legs; a UDP flow's UOA needs none), never below 1280 (it
    // would not go lower); a value below the minimum passes as it came.
    if (tooBig && told >= IPV6_MIN_MTU) {
      const mtu = ctx.pmtu.of(t.rs[c]!);
      const room = !udp && ctx.policy === 'fullnat' && t.shift[c] === 0 ? TOA_V6_LEN : 0;
      let m = (mtu < told ? mtu : told) - room;
      if (m < IPV6_MIN_MTU) m = IPV6_MIN_MTU;
      set32(b, icmp + Icmpv6Field.Mtu, m);
    }
    if (udp) {
      const n = takeUoaOutOfQuote6(p, q, ql4);
      icmp += n;
      q += n;
      len -= n;
    }
    const reg = ctx.reg;
    const svc = t.svc[c]!;
    const d = this.delta.reset();
    // LIP, RIP → CIP, VIP in the quoted segment's pseudo-header.
    d.replaceWord(0, ~t.addrDelta6[c]! & 0xffff);
    copyBytes(b, q + 8, t.cip6, c * 16, 16);
    copyBytes(b, q + 24, reg.svcVips6, svc * 16, 16);
    const avail = len - (ql4 - icmp);
    if (udp) quotedUdpAsClientSent(t, reg, d, b, ql4, avail, c);
    else quotedTcpAsClientSent(t, reg, d, b, ql4, avail, c);
    copyBytes(b, p.start + 8, reg.svcVips6, svc * 16, 16);
    copyBytes(b, p.start + 24, t.cip6, c * 16, 16);
    this.send6(p, icmp, len);
  }

  /**
   * A quoted VIP6:vport → CIP6:cport segment or datagram: to an IPv6 RS as
   * LIP → RIP about RIP:rport → LIP:lport (a Packet Too Big keeps its MTU:
   * the RS's packets reach the client as large as they left), or translated
   * to ICMPv4 for an FNAT64 connection's or flow's IPv4 RS.
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
    const svc = (udp ? reg.udpServiceByKey6 : reg.serviceByKey6).getAt(b, q + 8, ql4);
    // lookupClient6At reads the client's port at its tcpOff: the quote's destination port.
    const c = svc < 0 ? -1 : t.lookupClient6At(b, q + 24, ql4 + 2, svc);
    if (c < 0 || (t.flags[c]! & CF_SP_PENDING) !== 0) {
      ctx.drop(p, C.icmp_error_no_conn_dropped);
      return;
    }
    if (!t.replyIsV6(c)) {
      this.toRealServer64(p, icmp, len, q, ql4, c, udp);
      return;
    }
    if (!this.bucket.take(ctx.now)) {
      ctx.drop(p, C.icmp_rate_limited);
      return;
    }
    const d = this.delta.reset();
    d.replaceWord(0, t.addrDelta6[c]!);
    copyBytes(b, q + 8, t.rip6, c * 16, 16);
    copyBytes(b, q + 24, t.lip6, c * 16, 16);
    const avail = len - (ql4 - icmp);
    if (udp) quotedUdpAsRsSent(t, d, b, ql4, avail, c);
    else quotedTcpAsRsSent(t, d, b, ql4, avail, c);
    copyBytes(b, p.start + 8, t.lip6, c * 16, 16);
    copyBytes(b, p.start + 24, t.rip6, c * 16, 16);
    this.send6(p, icmp, len);
  }

  /**
   * Forwards the translated p: cut to the IPv6 minimum MTU (a router that
   * quoted more broke RFC 4443 2.4 (c), and the other leg's path may be no
   * wider), the ICMPv6 checksum over it, pseudo-header included.
   */
  private send6(p: Packet, icmp: number, len: number): void {
    const ctx = this.ctx;
    if (len > ICMPV6_MAX_QUOTE + 8) {
      len = ICMPV6_MAX_QUOTE + 8;
      p.length = icmp + len - p.start;
      set16(p.buf, p.start + 4, len);
    }
    finishIcmpv6Checksum(p.buf, p.start, icmp, len);
    ctx.count(C.icmp_error_forwarded);
    ctx.forward(p);
  }

  /**
   * FNAT64, RS leg: the ICMPv4 error p (IPv4 header at p.start, message at
   * `icmp`, `len` bytes, quoted IPv4 header at q, TCP or UDP header at qt)
   * about connection or flow c (of the UDP table when `udp`), found by
   * icmp-error.ts (which learned a frag-needed's MTU). Sent to the IPv6
   * client as ICMPv6 VIP → CIP quoting the IPv6 segment or datagram the
   * client sent (RFC 7915 4.2): what lies between the quoted header and qt
   * (an opp shim) is left out.
   */
  fromRealServer64(
    p: Packet,
    icmp: number,
    len: number,
    q: number,
    qt: number,
    c: number,
    udp: boolean,
  ): void {
    const ctx = this.ctx;
    const t = udp ? ctx.udp.table : ctx.table;
    const b = p.buf;
    const mapped = icmpToIcmpv6(b[icmp + IcmpField.Type]!, b[icmp + IcmpField.Code]!);
    if (!this.mayTranslate(p, mapped)) return;
    const type6 = mapped >>> 8;
    let rest = 0;
    if (type6 === ICMPV6_PACKET_TOO_BIG) {
      // The client's packets shrink by 20 bytes on the way (40-byte IPv6 header for 20), so
      // the IPv4 path's MTU is 20 more on its side; under `fullnat` less the 20-byte TOA
      // the LB adds there (a UDP flow's UOA needs no room); never below 1280, the least an
      // IPv6 host accepts.
      const told = get16(b, icmp + IcmpField.NextHopMtu);
      const mtu = ctx.pmtu.of(t.rs[c]!);
      const base = told >= IPV4_MIN_PMTU && mtu < told ? mtu : told;
      const room = !udp && ctx.policy === 'fullnat' && t.shift[c] === 0 ? TOA_V6_LEN : 0;
      rest = base + IPV6_HEADER - IPV4_MIN_HEADER - room;
      if (rest < IPV6_MIN_MTU) rest = IPV6_MIN_MTU;
    } else if (type6 === ICMPV6_PARAMETER_PROBLEM) {
      // Protocol unreachable: unrecognized next header, pointing at the Next Header field.
      rest = 6;
    }
    const reg = ctx.reg;
    const svc = t.svc[c]!;
    // A quoted length shorter than its own header (and shim) lies; the quote stays readable
    // regardless.
    const qPayload = Math.max(0, get16(b, q + Ipv4Field.TotalLength) - (qt - q));
    let tcpBytes = len - (qt - icmp);
    if (tcpBytes > ICMPV6_MAX_QUOTE - IPV6_HEADER) tcpBytes = ICMPV6_MAX_QUOTE - IPV6_HEADER;
    const len6 = 8 + IPV6_HEADER + tcpBytes;
    const r = ctx.pool.take();
    const o = r.buf;
    const s = r.start;
    finishIpv6Header(
      o,
      s,
      len6,
      IPPROTO_ICMPV6,
      b[p.start + Ipv4Field.Ttl]!,
      b[p.start + Ipv4Field.Tos],
    );
    copyBytes(o, s + 8, reg.svcVips6, svc * 16, 16);
    copyBytes(o, s + 24, t.cip6, c * 16, 16);
    const m = s + IPV6_HEADER;
    writeIcmpErrorHeader(o, m, type6, mapped & 0xff, rest);
    const q6 = m + 8;
    const proto = udp ? IPPROTO_UDP : IPPROTO_TCP;
    finishIpv6Header(o, q6, qPayload, proto, b[q + Ipv4Field.Ttl]!, b[q + Ipv4Field.Tos]);
    copyBytes(o, q6 + 8, t.cip6, c * 16, 16);
    copyBytes(o, q6 + 24, reg.svcVips6, svc * 16, 16);
    const qt6 = q6 + IPV6_HEADER;
    copyBytes(o, qt6, b, qt, tcpBytes);
    const d = this.delta.reset();
    // LIP, RIP (IPv4) → CIP, VIP (IPv6) in the quoted segment's pseudo-header.
    d.replaceWord(0, ~t.addrDelta6[c]! & 0xffff);
    if (udp) quotedUdpAsClientSent(t, reg, d, o, qt6, tcpBytes, c);
    else quotedTcpAsClientSent(t, reg, d, o, qt6, tcpBytes, c);
    finishIcmpv6Checksum(o, s, m, len6);
    r.length = IPV6_HEADER + len6;
    this.sendNew(p, r);
  }

  /**
   * FNAT64, client leg: an ICMPv6 error to the VIP about connection or flow
   * c (IPv4 RS) becomes ICMPv4 LIP → RIP quoting the IPv4 segment or
   * datagram the RS sent (RFC 7915 5.2).
   */
  private toRealServer64(
    p: Packet,
    icmp: number,
    len: number,
    q: number,
    qt: number,
    c: number,
    udp: boolean,
  ): void {
    const ctx = this.ctx;
    const t = udp ? ctx.udp.table : ctx.table;
    const b = p.buf;
    const mapped = icmpv6ToIcmp(b[icmp + IcmpField.Type]!, b[icmp + IcmpField.Code]!);
    if (!this.mayTranslate(p, mapped)) return;
    const type4 = mapped >>> 8;
    const code4 = mapped & 0xff;
    let rest = 0;
    if (type4 === ICMP_DEST_UNREACH && code4 === ICMP_FRAG_NEEDED) {
      // The RS's packets grow by 20 bytes on the way to the client: its path is 20 less.
      const told = packetTooBigMtu(b, icmp);
      rest = told > 0xffff + 20 ? 0xffff : told < 20 ? 0 : told - 20;
    }
    let tcpBytes = len - (qt - icmp);
    if (tcpBytes > ICMP_MAX_QUOTE - IPV4_MIN_HEADER) tcpBytes = ICMP_MAX_QUOTE - IPV4_MIN_HEADER;
    const len4 = 8 + IPV4_MIN_HEADER + tcpBytes;
    const r = ctx.pool.take();
    const o = r.buf;
    const s = r.start;
    storeU32From(o, s + Ipv4Field.Src, t.lip, c);
    storeU32From(o, s + Ipv4Field.Dst, t.rip, c);
    const tc = ((b[p.start]! & 0x0f) << 4) | (b[p.start + 1]! >>> 4);
    finishIpv4Header(o, s, IPV4_MIN_HEADER + len4, IPPROTO_ICMP, b[p.start + 7]!, tc, 0, false);
    const m = s + IPV4_MIN_HEADER;
    writeIcmpErrorHeader(o, m, type4, code4, rest);
    const q4 = m + 8;
    storeU32From(o, q4 + Ipv4Field.Src, t.rip, c);
    storeU32From(o, q4 + Ipv4Field.Dst, t.lip, c);
    const qtc = ((b[q]! & 0x0f) << 4) | (b[q + 1]! >>> 4);
    const qPayload = Math.min(get16(b, q + 4), 0xffff - IPV4_MIN_HEADER);
    const proto = udp ? IPPROTO_UDP : IPPROTO_TCP;
    finishIpv4Header(o, q4, IPV4_MIN_HEADER + qPayload, proto, b[q + 7]!, qtc, 0, true);
    const qt4 = q4 + IPV4_MIN_HEADER;
    copyBytes(o, qt4, b, qt, tcpBytes);
    const d = this.delta.reset();
    // VIP, CIP (IPv6) → RIP, LIP (IPv4) in the quoted segment's pseudo-header.
    d.replaceWord(0, t.addrDelta6[c]!);
    if (udp) quotedUdpAsRsSent(t, d, o, qt4, tcpBytes, c);
    else quotedTcpAsRsSent(t, d, o, qt4, tcpBytes, c);
    finishIcmpChecksum(o, m, len4);
    r.length = IPV4_MIN_HEADER + len4;
    this.sendNew(p, r);
  }

  /**
   * False with p dropped when its type and code (`mapped`, -1 where RFC
   * 7915 drops them) have no translation, or when the rate is spent.
   */
  private mayTranslate(p: Packet, mapped: number): boolean {
    const ctx = this.ctx;
    if (mapped < 0) {
      ctx.drop(p, C.icmp_error_family_dropped);
      return false;
    }
    if (!this.bucket.take(ctx.now)) {
      ctx.drop(p, C.icmp_rate_limited);
      return false;
    }
    return true;
  }

  /** Sends r, the translation of the received p, in p's place: one forwarded packet. */
  private sendNew(p: Packet, r: Packet): void {
    const ctx = this.ctx;
    ctx.pool.give(p);
    ctx.count(C.icmp_error_forwarded);
    ctx.forward(r);
  }
}

/**
 * RFC 7915 4.2: the ICMPv6 type << 8 | code for an ICMPv4 error, or -1 where
 * the RFC drops it. Only destination unreachable and time exceeded reach here
 * (icmp-input.ts).
 */
export function icmpToIcmpv6(type: number, code: number): number {
  if (type === ICMP_TIME_EXCEEDED) return (ICMPV6_TIME_EXCEEDED << 8) | code;
  if (type !== ICMP_DEST_UNREACH) return -1;
  switch (code) {
    case 0: // net unreachable
    case 1: // host unreachable
    case 5: // source route failed
    case 6: // net unknown
    case 7: // host unknown
    case 8: // source host isolated
    case 11: // net unreachable for TOS
    case 12: // host unreachable for TOS
      return (ICMPV6_DEST_UNREACH << 8) | ICMPV6_NOROUTE;
    case 2: // protocol unreachable: parameter problem, unrecognized next header
      return (ICMPV6_PARAMETER_PROBLEM << 8) | 1;
    case 3:
      return (ICMPV6_DEST_UNREACH << 8) | ICMPV6_PORT_UNREACH;
    case 4:
      return ICMPV6_PACKET_TOO_BIG << 8;
    case 9: // net administratively prohibited
    case 10: // host administratively prohibited
    case 13: // communication administratively prohibited
    case 15: // precedence cutoff in effect
      return (ICMPV6_DEST_UNREACH << 8) | ICMPV6_ADM_PROHIBITED;
    default: // 14 (host precedence violation) and unassigned codes
      return -1;
  }
}

/**
 * RFC 7915 5.2: the ICMPv4 type << 8 | code for an ICMPv6 error, or -1 where
 * the RFC drops it. Only destination unreachable, Packet Too Big and time
 * exceeded reach here (icmp6-input.ts).
 */
export function icmpv6ToIcmp(type: number, code: number): number {
  switch (type) {
    case ICMPV6_PACKET_TOO_BIG:
      return (ICMP_DEST_UNREACH << 8) | ICMP_FRAG_NEEDED;
    case ICMPV6_TIME_EXCEEDED:
      return (ICMP_TIME_EXCEEDED << 8) | code;
    case ICMPV6_DEST_UNREACH:
      switch (code) {
        case ICMPV6_NOROUTE:
        case ICMPV6_NOT_NEIGHBOUR:
        case ICMPV6_ADDR_UNREACH:
          return (ICMP_DEST_UNREACH << 8) | ICMP_HOST_UNREACH;
        case ICMPV6_ADM_PROHIBITED:
          return (ICMP_DEST_UNREACH << 8) | ICMP_HOST_ANO;
        case ICMPV6_PORT_UNREACH:
          return (ICMP_DEST_UNREACH << 8) | ICMP_PORT_UNREACH;
        default:
          return -1;
      }
    default:
      return -1;
  }
}
