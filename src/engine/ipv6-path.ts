import { equalsU32AtPlus } from '../wire/bytes.js';
import { fold16 } from './addr6.js';
import { IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPV4_MIN_HEADER } from '../wire/ipv4.js';
import { IPV6_HEADER, Ipv6Error } from '../wire/ipv6.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, TcpField } from '../wire/tcp.js';
import { TOA_V6_LEN } from '../wire/toa.js';
import { CF_SP_PENDING } from './conn-table.js';
import type { Connections } from './connections.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import { IPV6_MIN_MTU, craftPacketTooBig6 } from './craft.js';
import type { Icmp6Input } from './icmp6-input.js';
import type { Ipv6RsPath } from './ipv6-rs-path.js';
import type { Nat6 } from './nat6.js';
import { dropIpv6ExtensionHeaders, type Packet } from './packet.js';
import type { ProxyHeaderWriter } from './proxy-header.js';
import { countInbound } from './services.js';
import { ClientOptions, segmentLength } from './client-options.js';
import type { SynProxy, SynProxyReplay6 } from './synproxy/synproxy.js';
import { TcpState } from './tcp-state.js';
import { ToaMode } from './toa-decision.js';
import { OptionPlan, ToaWriter } from './toa-insert.js';
import { TokenBucket } from './token-bucket.js';
import type { UdpPath } from './udp-path.js';
import type { UnknownFlowReplies } from './unknown-flow.js';
import type { UnknownServiceReplies } from './unknown-service.js';
import type { FragmentInput } from './fragment-input.js';

/**
 * IPv6 packets (DPVS's IPv6 and NAT64 handlers): the header checked and its
 * extension headers walked, then client → RS for a packet to an IPv6
 * VIP:vport (toward an IPv6 RS, or an IPv4 one: FNAT64) or RS → client for
 * one to an IPv6 LIP (ipv6-rs-path.ts); ICMPv6 goes to icmp6-input.ts, any
 * other protocol is dropped. The IPv4 data path never comes here:
 * `Engine.process` hands over only packets whose version nibble is 6.
 *
 * Extension headers: a fragment (even an atomic one) addressed to a VIP or
 * a LIP goes to the reassembler (fragment-input.ts) and comes back as a
 * whole datagram; any other fragment, and a Routing header with segments
 * left, are dropped and counted (`ipv6_fragment_dropped`,
 * `ipv6_routing_dropped`): the LB is not their final destination. Every other one (hop-by-hop,
 * destination options, a spent routing header, AH) is walked and left out
 * of the forwarded packet, which carries the fixed header and TCP only: none
 * of them means anything to the other leg, whose addresses are the LB's.
 *
 * The TOA of an IPv6 client is 20 bytes (kind `toaV6Kind`: port, then the
 * 16-byte address), on IPv6 and on FNAT64's IPv4 leg alike; the policies
 * place it as they place the IPv4 one (toa-decision.ts), with 20 for 8.
 *
 * A SYNPROXY service's packets go through `SynProxy` first, as on the IPv4
 * path; its held packets come back through `toRealServer6`.
 */
export class Ipv6Path implements SynProxyReplay6 {
  private readonly toa: ToaWriter;
  private readonly options: ClientOptions;
  private readonly tooBigBucket: TokenBucket;

  constructor(
    private readonly ctx: EngineContext,
    private readonly conns: Connections,
    private readonly nat: Nat6,
    private readonly rs: Ipv6RsPath,
    private readonly proxyHeader: ProxyHeaderWriter,
    private readonly unknownFlow: UnknownFlowReplies,
    private readonly synproxy: SynProxy,
    private readonly unknownService: UnknownServiceReplies,
    private readonly icmp6: Icmp6Input,
    private readonly fragments: FragmentInput,
    private readonly udp: UdpPath,
  ) {
    this.toa = new ToaWriter(ctx.pool);
    this.options = new ClientOptions(ctx, this.toa, synproxy);
    this.tooBigBucket = new TokenBucket(ctx.opts.icmpRateLimit, ctx.opts.icmpRateBurst);
  }

  /** An IPv6 packet (version nibble 6 at p.start), counted in rx already. */
  process(p: Packet): void {
    const ctx = this.ctx;
    const b = p.buf;
    const s = p.start;
    let l4 = s + IPV6_HEADER;
    if (p.length >= IPV6_HEADER && b[s + 6] === IPPROTO_TCP) {
      // No extension header (nearly every packet): the walk has nothing to find.
      const total = IPV6_HEADER + ((b[s + 4]! << 8) | b[s + 5]!);
      if (total > p.length) {
        ctx.drop(p, C.malformed_dropped);
        return;
      }
      p.length = total;
    } else {
      l4 = this.walkExtensionHeaders(p);
      if (l4 < 0) return;
    }
    if (!ctx.tcp.wrap(b, l4).fits(p.start + p.length - l4)) {
      ctx.drop(p, C.malformed_dropped);
      return;
    }
    if (l4 !== p.start + IPV6_HEADER) dropIpv6ExtensionHeaders(p, l4, IPPROTO_TCP);
    const dst = p.start + 24;
    const reg = ctx.reg;
    const dstHash = fold16(b, dst);
    const svc = reg.serviceByKey6.getHashedAt(b, dst, dstHash, l4 + TcpField.DstPort);
    if (svc >= 0) {
      ctx.count(C.inbound_packets);
      this.fromClient(p, svc);
      return;
    }
    // The reply table first: a hit means the destination is a LIP.
    const c = ctx.table.lookupReply6HashedAt(b, p.start + 8, p.start + IPV6_HEADER, dstHash);
    if (c >= 0) {
      ctx.count(C.outbound_packets);
      this.rs.fromRealServer(p, c);
      return;
    }
    if (reg.lipSet6.getHashedAt(b, dst, dstHash, -1) >= 0) {
      ctx.count(C.outbound_packets);
      this.unknownFlow.answer6(p);
      return;
    }
    if (ctx.opts.unknownServiceAction === 'icmp') this.unknownService.answer6(p);
    ctx.drop(p, C.no_service_dropped);
  }

  /**
   * The header checked and its extension headers walked: the TCP header's
   * offset, or -1 when p was dropped (counted). ICMPv6 goes to its handler here.
   */
  private walkExtensionHeaders(p: Packet): number {
    const ctx = this.ctx;
    const ip6 = ctx.ip6.wrap(p.buf, p.start);
    const err = ip6.walk(p.length);
    if (err !== Ipv6Error.None) {
      // ESP or No Next Header is well-formed, just not TCP we could reach.
      ctx.drop(p, err === Ipv6Error.NoTransport ? C.not_tcp_dropped : C.malformed_dropped);
      return -1;
    }
    // Link-layer padding may follow the datagram.
    p.length = ip6.totalLength;
    if (ip6.fragmented) {
      const reg = ctx.reg;
      const dst = p.start + 24;
      if (reg.vipSet6.getAt(p.buf, dst, -1) >= 0 || reg.lipSet6.getAt(p.buf, dst, -1) >= 0)
        this.fragments.receive6(p);
      else ctx.drop(p, C.ipv6_fragment_dropped);
      return -1;
    }
    if (ip6.routingSegmentsLeft !== 0) {
      ctx.drop(p, C.ipv6_routing_dropped);
      return -1;
    }
    if (ip6.upperProtocol !== IPPROTO_TCP) {
      if (ip6.upperProtocol === IPPROTO_UDP) this.udp.receive6(p, ip6.upperOffset);
      else if (ip6.upperProtocol === IPPROTO_ICMPV6) this.icmp6.receive(p, ip6.upperOffset);
      else ctx.drop(p, C.not_tcp_dropped);
      return -1;
    }
    return ip6.upperOffset;
  }

  /** A packet to IPv6 service svc's VIP:vport; header at p.start (40 bytes), TCP after it. */
  private fromClient(p: Packet, svc: number): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const tcpOff = p.start + IPV6_HEADER;
    let c = t.lookupClient6At(p.buf, p.start + 8, tcpOff, svc);
    const newSyn = (ctx.tcp.flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) === TCP_SYN;
    if (c >= 0 && this.conns.rsRemoved(c)) {
      ctx.countSvc(svc, newSyn ? C.conns_rescheduled : C.conns_expired_nodest);
      this.conns.release(c);
      c = -1;
    }
    if (c >= 0 && (t.flags[c]! & CF_SP_PENDING) !== 0) {
      this.synproxy.onPendingClient(p, c, IPV6_HEADER);
      return;
    }
    if (ctx.reg.svcSynProxy[svc] !== 0) {
      c = this.synproxy.onClientPacket(p, svc, IPV6_HEADER, c);
      if (c >= 0) this.toRealServer6(p, svc, c);
      return;
    }
    if (c >= 0 && newSyn) {
      const why = this.conns.reuseReason(c);
      if (why >= 0) {
        ctx.countSvc(svc, why);
        this.conns.release(c);
        c = -1;
      }
    }
    if (c < 0) {
      if (!newSyn) {
        this.unknownFlow.answer6(p);
        return;
      }
      c = this.conns.newConnection6(p, svc, tcpOff, 0, ctx.timeoutsMs[TcpState.SynRecv]!);
      if (c < 0) return;
    }
    this.toRealServer6(p, svc, c);
  }

  /**
   * The client packet p of connection c toward its RS (IPv6, or IPv4:
   * FNAT64); `ctx.tcp` wrapped at p.start + 40. Also where SYNPROXY replays
   * the packets it held.
   */
  toRealServer6(p: Packet, svc: number, c: number): void {
    const ctx = this.ctx;
    const b = p.buf;
    const t = ctx.table;
    const tcpOff = p.start + IPV6_HEADER;
    const flags = ctx.tcp.flags;
    const syn = (flags & TCP_SYN) !== 0;
    const fin = (flags & TCP_FIN) !== 0;
    const hl = ctx.tcp.headerLength;
    const rsV6 = t.replyIsV6(c);
    // The IP header the packet leaves with: IPv6 toward an IPv6 RS, IPv4 (20 bytes) under FNAT64.
    const outIpHl = rsV6 ? IPV6_HEADER : IPV4_MIN_HEADER;
    const payloadLen = p.length - IPV6_HEADER - hl;
    const outLength = outIpHl + hl + payloadLen;
    const options = this.options;

    options.clean(svc, c, syn, (flags & TCP_ACK) !== 0);
    // The path's MTU, lowered by what its routers reported (path-mtu.ts).
    const mtu = ctx.pmtu.of(t.rs[c]!);
    options.choose(p, svc, c, mtu, outIpHl, outLength, TOA_V6_LEN);
    const mode = options.mode;
    if (mode === ToaMode.None && segmentLength(p, outIpHl, hl, outLength) > mtu) {
      this.tooBig(p, mtu, outIpHl, c);
      return;
    }

    this.conns.stepFromClient(c, flags, b, tcpOff, payloadLen);
    countInbound(ctx.reg, svc, t.rs[c]!, p.length);
    if (!rsV6) this.nat.headerTo4(p, c);
    if (mode === ToaMode.None) {
      const shift = t.shift[c]!;
      if (shift !== 0 && !syn) {
        // The client's first bytes (or its FIN) go out behind the PROXY header, and so do their retransmissions.
        const first =
          (flags & TCP_RST) === 0 &&
          (payloadLen > 0 || fin) &&
          equalsU32AtPlus(b, tcpOff + TcpField.Seq, t.seqDelta, c, t.lbIsn, c, 1);
        this.nat.toRealServer(p, c, rsV6, shift, true);
        if (first) this.proxyHeader.emit6(p, outIpHl, c, rsV6);
      } else this.nat.toRealServer(p, c, rsV6, 0, true);
      ctx.forward(p);
      return;
    }
    // The TOA's rebuild and split verify the checksum: FNAT64's must cover the IPv4 header first.
    if (!rsV6) this.nat.pseudoHeaderTo4(c);
    const plan = options.plan;
    this.toa.setToaV6(ctx.toaV6Kind, t.cport[c]!, t.cip6, c * 16);
    const inserted = syn ? C.toa_inserted_syn : C.toa_inserted;
    switch (mode) {
      case ToaMode.Insert:
        this.toa.insertToa(p, outIpHl, rsV6);
        ctx.countSvc(svc, inserted);
        break;
      case ToaMode.Rebuild:
        if (!this.toa.rebuildToa(p, outIpHl, plan, rsV6)) {
          ctx.drop(p, C.bad_checksum_dropped);
          return;
        }
        ctx.countSvc(svc, C.toa_pruned);
        ctx.countSvc(svc, inserted);
        break;
      case ToaMode.Split:
        this.sendSplit(p, svc, c, plan, mtu, outIpHl, rsV6);
        return;
    }
    ctx.tcp.wrap(p.buf, p.start + outIpHl);
    this.nat.toRealServer(p, c, rsV6, 0, rsV6);
    ctx.forward(p);
  }

  /** Too large for the RS path with a TOA: pieces that each carry one. */
  private sendSplit(
    p: Packet,
    svc: number,
    c: number,
    plan: OptionPlan,
    mtu: number,
    ipHl: number,
    v6: boolean,
  ): void {
    const ctx = this.ctx;
    const n = this.toa.splitToa(p, ipHl, plan, mtu, v6);
    if (n <= 0) {
      ctx.drop(p, n < 0 ? C.bad_checksum_dropped : C.too_big_dropped);
      return;
    }
    if (plan !== OptionPlan.Keep) ctx.countSvc(svc, C.toa_pruned);
    ctx.countSvc(svc, C.toa_inserted);
    if (n > 1) {
      ctx.countSvc(svc, C.toa_split);
      ctx.add(C.toa_split_segments, n);
    }
    for (let k = 0; k < n; k++) {
      const q = this.toa.pieces[k]!;
      ctx.tcp.wrap(q.buf, q.start + ipHl);
      this.nat.toRealServer(q, c, v6, 0, v6);
      ctx.emit(q);
    }
    ctx.count(C.forwarded_packets);
    ctx.pool.give(p);
  }

  /**
   * Too big for the RS path and no TOA to blame: ICMPv6 Packet Too Big to
   * the client (IPv6 has no DF: every sender does path MTU discovery).
   * Rate-limited; the packet is dropped either way. The MTU told follows
   * the policy, as on IPv4 (client-path.ts):
   *
   * - `fullnat`: the client-side MTU that maps onto the RS path's — the
   *   header grows or shrinks on the way (`outIpHl` vs 40) — less room for
   *   the 20-byte TOA the LB adds (none on a PROXY-protocol connection), so
   *   the client's next segments fit with it.
   * - `lvs`, `dpvs`: the RS path MTU itself. DPVS (src/ipvs/ip_vs_xmit.c)
   *   checks `pkt_len > mtu` against the route MTU in `__dp_vs_xmit_fnat6`
   *   and sends `icmp6_send(mbuf, ICMP6_PACKET_TOO_BIG, 0, mtu)`; its
   *   `__dp_vs_xmit_fnat64` compares the packet's length once translated
   *   (`mbuf_nat6to4_len`) with the IPv4 route's MTU and sends that same
   *   bare `mtu` — the IPv6→IPv4 header difference enters the comparison,
   *   not the value told, and no room is left for a TOA. Kernel IPVS
   *   (`__mtu_check_toobig_v6`) tells the route MTU as well.
   *
   * Never below the IPv6 minimum of 1280, which a client would not go under.
   */
  private tooBig(p: Packet, mtu: number, outIpHl: number, c: number): void {
    const ctx = this.ctx;
    if (!this.tooBigBucket.take(ctx.now)) {
      ctx.count(C.icmp6_too_big_limited);
      ctx.drop(p, C.too_big_dropped);
      return;
    }
    let clientMtu = mtu;
    if (ctx.policy === 'fullnat') {
      const room = ctx.table.shift[c] === 0 ? TOA_V6_LEN : 0;
      clientMtu = mtu - outIpHl + IPV6_HEADER - room;
    }
    if (clientMtu < IPV6_MIN_MTU) clientMtu = IPV6_MIN_MTU;
    const r = ctx.pool.take();
    const b = p.buf;
    craftPacketTooBig6(r, b, p.start + 24, b, p.start + 8, clientMtu, b, p.start, p.length);
    ctx.count(C.icmp6_too_big_sent);
    ctx.drop(p, C.too_big_dropped);
    ctx.emit(r);
  }
}
