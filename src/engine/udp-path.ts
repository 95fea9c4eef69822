import { IPPROTO_UDP, Ipv4Field } from '../wire/ipv4.js';
import { IPV6_HEADER } from '../wire/ipv6.js';
import { UDP_NO_CHECKSUM, UdpView } from '../wire/udp.js';
import { fold16 } from './addr6.js';
import { CF_IPV6 } from './conn-table.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import { craftFragNeeded } from './craft.js';
import { Fragmenter } from './fragment.js';
import { dropIpv6ExtensionHeaders, type Packet } from './packet.js';
import { countInbound, countOutbound } from './services.js';
import { TokenBucket } from './token-bucket.js';
import { UdpFlows } from './udp-flows.js';
import { UdpNat } from './udp-nat.js';
import { UoaWriter } from './uoa-writer.js';

/**
 * UDP (DPVS's udp_fnat_in_handler / udp_fnat_out_handler): the datagrams
 * `Engine.process` (IPv4, after the TCP test) and `Ipv6Path` (IPv6, on its
 * non-TCP branch) hand over, so TCP pays nothing for them.
 *
 * - To a UDP service's VIP:vport: client → RS. The flow is found by the
 *   client tuple or opened (udp-flows.ts), its idle deadline restarted, the
 *   UOA put on its first datagrams (uoa-writer.ts), the datagram translated
 *   (udp-nat.ts) and sent; IPv4, IPv6, and FNAT64 (IPv6 client, IPv4 RS).
 * - To a LIP with a flow's reply tuple: RS → client, translated back.
 * - A datagram too big for the RS path (its MTU as path-mtu.ts keeps it):
 *   an IPv4 one with DF is dropped (`too_big_dropped`) and answered with
 *   frag-needed telling that MTU (rate-limited), as a router would; any
 *   other goes to the RS in fragments (`fragments_sent`) — on that leg the
 *   LB is the datagram's source, which IPv6 lets fragment, and a client
 *   that fragmented a datagram for the VIP (reassembled by
 *   fragment-input.ts) would only fragment it again if told Packet Too Big.
 * - To a LIP without a flow: `no_conn_dropped`; to no UDP service:
 *   `no_service_dropped` (no RST: UDP has none, and no ICMP either).
 *
 * Malformed datagrams (a UDP header or length that does not fit) are
 * `malformed_dropped`; an IPv6 one with checksum 0 `udp_zero_checksum_dropped`.
 */
export class UdpPath {
  readonly flows: UdpFlows;
  private readonly nat: UdpNat;
  private readonly uoa: UoaWriter;
  private readonly udp = new UdpView();
  private readonly icmpBucket: TokenBucket;
  private readonly fragmenter: Fragmenter;
  /** Identification of the IPv6 fragments the LB makes toward an RS. */
  private nextId6 = (Math.random() * 0x100000000) >>> 0;

  constructor(private readonly ctx: EngineContext) {
    this.fragmenter = new Fragmenter(ctx.pool);
    this.flows = new UdpFlows(ctx);
    this.nat = new UdpNat(ctx);
    this.uoa = new UoaWriter(ctx);
    this.icmpBucket = new TokenBucket(ctx.opts.icmpRateLimit, ctx.opts.icmpRateBurst);
  }

  /** An IPv4 UDP datagram, not a fragment; its header (ipHl bytes) checked and p.length its total length. */
  receive4(p: Packet, ipHl: number): void {
    const ctx = this.ctx;
    const b = p.buf;
    const udpOff = p.start + ipHl;
    if (!this.udp.wrap(b, udpOff).fits(p.length - ipHl)) {
      ctx.drop(p, C.malformed_dropped);
      return;
    }
    const dst = p.start + Ipv4Field.Dst;
    const svc = ctx.reg.udpServiceByKey.getAt(b, dst, udpOff + 2);
    if (svc >= 0) {
      ctx.count(C.inbound_packets);
      this.fromClient4(p, svc, ipHl);
      return;
    }
    const c = ctx.udp.table.lookupReplyAt(b, p.start, udpOff);
    if (c >= 0) {
      ctx.count(C.outbound_packets);
      this.fromRealServer4(p, ipHl, c);
      return;
    }
    if (ctx.reg.lipSet.getAt(b, dst, -1) >= 0) {
      ctx.count(C.outbound_packets);
      ctx.drop(p, C.no_conn_dropped);
      return;
    }
    ctx.drop(p, C.no_service_dropped);
  }

  /**
   * An IPv6 UDP datagram (not a fragment, no routing header left to do):
   * its fixed header at p.start, the UDP header at l4, after any extension
   * headers, which are left out as the TCP path leaves them out.
   */
  receive6(p: Packet, l4: number): void {
    const ctx = this.ctx;
    if (l4 !== p.start + IPV6_HEADER) dropIpv6ExtensionHeaders(p, l4, IPPROTO_UDP);
    const b = p.buf;
    const udpOff = p.start + IPV6_HEADER;
    const udp = this.udp.wrap(b, udpOff);
    if (!udp.fits(p.length - IPV6_HEADER)) {
      ctx.drop(p, C.malformed_dropped);
      return;
    }
    if (udp.checksum === UDP_NO_CHECKSUM) {
      ctx.drop(p, C.udp_zero_checksum_dropped);
      return;
    }
    const dst = p.start + 24;
    const reg = ctx.reg;
    const dstHash = fold16(b, dst);
    const svc = reg.udpServiceByKey6.getHashedAt(b, dst, dstHash, udpOff + 2);
    if (svc >= 0) {
      ctx.count(C.inbound_packets);
      this.fromClient6(p, svc);
      return;
    }
    const c = ctx.udp.table.lookupReply6HashedAt(b, p.start + 8, udpOff, dstHash);
    if (c >= 0) {
      ctx.count(C.outbound_packets);
      this.fromRealServer6(p, c);
      return;
    }
    if (reg.lipSet6.getHashedAt(b, dst, dstHash, -1) >= 0) {
      ctx.count(C.outbound_packets);
      ctx.drop(p, C.no_conn_dropped);
      return;
    }
    ctx.drop(p, C.no_service_dropped);
  }

  /** Flow c of p's client tuple, opened when there is none (or its RS was removed); -1 with p consumed. */
  private flowOf(p: Packet, svc: number, c: number, v6: boolean, udpOff: number): number {
    const ctx = this.ctx;
    if (c >= 0 && this.flows.rsRemoved(c)) {
      ctx.countSvc(svc, C.conns_expired_nodest);
      this.flows.release(c);
      c = -1;
    }
    if (c >= 0) {
      this.flows.touch(c);
      return c;
    }
    return v6 ? this.flows.open6(p, svc, udpOff) : this.flows.open4(p, svc, udpOff);
  }

  private fromClient4(p: Packet, svc: number, ipHl: number): void {
    const ctx = this.ctx;
    const t = ctx.udp.table;
    const b = p.buf;
    const udpOff = p.start + ipHl;
    const c = this.flowOf(p, svc, t.lookupClientAt(b, p.start, udpOff, svc), false, udpOff);
    if (c < 0) return;
    const rs = t.rs[c]!;
    const mtu = ctx.pmtu.of(rs);
    // The LB's packets to the RS carry the client's IP options (ipo adds one): the length is as it came.
    if (p.length > mtu && (b[p.start + Ipv4Field.Flags]! & 0x40) !== 0) {
      this.tooBig4(p, mtu, ipHl);
      return;
    }
    countInbound(ctx.reg, svc, rs, p.length);
    const uo = this.uoa.carry4(p, ipHl, c, svc, mtu);
    this.nat.toRealServer4(p.buf, p.start, uo, c);
    this.forwardWithin(p, mtu);
  }

  private fromRealServer4(p: Packet, ipHl: number, c: number): void {
    const ctx = this.ctx;
    const t = ctx.udp.table;
    const svc = t.svc[c]!;
    this.flows.touch(c);
    if ((t.flags[c]! & CF_IPV6) !== 0) {
      // FNAT64: an IPv6 client behind this IPv4 reply tuple.
      if (!this.nat.toClient64(p, ipHl, c)) {
        ctx.dropSvc(p, svc, C.malformed_dropped);
        return;
      }
    } else this.nat.toClient4(p.buf, p.start, p.start + ipHl, c);
    countOutbound(ctx.reg, svc, t.rs[c]!, p.length);
    ctx.forward(p);
  }

  private fromClient6(p: Packet, svc: number): void {
    const ctx = this.ctx;
    const t = ctx.udp.table;
    const udpOff = p.start + IPV6_HEADER;
    const c = this.flowOf(p, svc, t.lookupClient6At(p.buf, p.start + 8, udpOff, svc), true, udpOff);
    if (c < 0) return;
    const rsV6 = t.replyIsV6(c);
    const rs = t.rs[c]!;
    const mtu = ctx.pmtu.of(rs);
    countInbound(ctx.reg, svc, rs, p.length);
    if (rsV6) this.nat.toRealServer6(p, c);
    else this.nat.toRealServer64(p, c);
    this.uoa.carry6(p, c, svc, mtu);
    this.forwardWithin(p, mtu);
  }

  private fromRealServer6(p: Packet, c: number): void {
    const ctx = this.ctx;
    const t = ctx.udp.table;
    this.flows.touch(c);
    this.nat.toClient6(p, c);
    countOutbound(ctx.reg, t.svc[c]!, t.rs[c]!, p.length);
    ctx.forward(p);
  }

  /** Too big for the RS path: frag-needed with the path's MTU when DF is set (rate-limited); dropped. */
  private tooBig4(p: Packet, mtu: number, ipHl: number): void {
    const ctx = this.ctx;
    const b = p.buf;
    const df = (b[p.start + Ipv4Field.Flags]! & 0x40) !== 0;
    if (df && this.icmpBucket.take(ctx.now)) {
      const r = ctx.pool.take();
      const ip = ctx.ip.wrap(b, p.start);
      craftFragNeeded(r, ip.dst, ip.src, mtu, b, p.start, ipHl);
      ctx.count(C.icmp_frag_needed_sent);
      ctx.emit(r);
    } else if (df) ctx.count(C.icmp_frag_needed_ratelimited);
    ctx.drop(p, C.too_big_dropped);
  }

  /**
   * Forwards translated datagram p toward its RS: whole when it fits the
   * path's `mtu`, else in fragments of at most `mtu` bytes (IPv4 pieces
   * keep the identification; IPv6 pieces get a Fragment header of the LB's
   * own). A packet FNAT64 made carries DF (RFC 7915 for a large one): the
   * LB made it and may clear it.
   */
  private forwardWithin(p: Packet, mtu: number): void {
    const ctx = this.ctx;
    if (p.length <= mtu) {
      ctx.forward(p);
      return;
    }
    const b = p.buf;
    const s = p.start;
    const f = this.fragmenter;
    let n: number;
    if (b[s]! >>> 4 === 4) {
      // Every piece's header checksum is computed afresh: DF can go without an update here.
      b[s + Ipv4Field.Flags] = b[s + Ipv4Field.Flags]! & ~0x40;
      n = f.fragmentV4(b, s, p.length, mtu);
    } else {
      n = f.fragmentV6(b, s, p.length, mtu, this.nextId6);
      this.nextId6 = (this.nextId6 + 1) >>> 0;
    }
    if (n <= 0) {
      ctx.drop(p, C.too_big_dropped);
      return;
    }
    ctx.count(C.forwarded_packets);
    ctx.pool.give(p);
    for (let k = 0; k < n; k++) ctx.emit(f.pieces[k]!);
    ctx.add(C.fragments_sent, n);
  }
}
