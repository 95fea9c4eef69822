import { equalsU32AtPlus } from '../wire/bytes.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, TcpField } from '../wire/tcp.js';
import { TOA_V4_LEN } from '../wire/toa.js';
import { CF_SP_PENDING } from './conn-table.js';
import type { Connections } from './connections.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import { craftFragNeeded } from './craft.js';
import type { Nat } from './nat.js';
import type { Packet } from './packet.js';
import type { ProxyHeaderWriter } from './proxy-header.js';
import { countInbound } from './services.js';
import { ClientOptions, segmentLength } from './client-options.js';
import type { SynProxy, SynProxyReplay } from './synproxy/synproxy.js';
import { TcpState } from './tcp-state.js';
import { ToaMode } from './toa-decision.js';
import { OptionPlan, ToaWriter } from './toa-insert.js';
import { TokenBucket } from './token-bucket.js';
import type { UnknownFlowReplies } from './unknown-flow.js';

/**
 * Client → RS (DPVS's tcp_fnat_in_handler): find or open the connection,
 * clean the client's options, decide the TOA, step the state, translate,
 * send. `ctx.ip`/`ctx.tcp` are wrapped around the packet throughout.
 */
export class ClientPath implements SynProxyReplay {
  private readonly toa: ToaWriter;
  private readonly options: ClientOptions;
  /** The frag-needed this path sends, as the kernel limits its ICMP errors. */
  private readonly icmpBucket: TokenBucket;

  constructor(
    private readonly ctx: EngineContext,
    private readonly conns: Connections,
    private readonly nat: Nat,
    private readonly synproxy: SynProxy,
    private readonly proxyHeader: ProxyHeaderWriter,
    private readonly unknownFlow: UnknownFlowReplies,
  ) {
    this.toa = new ToaWriter(ctx.pool);
    this.options = new ClientOptions(ctx, this.toa, synproxy);
    this.icmpBucket = new TokenBucket(ctx.opts.icmpRateLimit, ctx.opts.icmpRateBurst);
  }

  /** A packet to service svc's VIP:vport. */
  fromClient(p: Packet, svc: number, ipHl: number): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const tcpOff = p.start + ipHl;
    let c = t.lookupClientAt(p.buf, p.start, tcpOff, svc);
    if (c >= 0 && this.conns.rsRemoved(c)) {
      // IPVS's expire_nodest_conn: the entry ends; a SYN is scheduled afresh, anything else is
      // answered as a packet of no connection (a RST, so the client does not wait for a dead RS).
      const newSyn = (ctx.tcp.flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) === TCP_SYN;
      ctx.countSvc(svc, newSyn ? C.conns_rescheduled : C.conns_expired_nodest);
      this.conns.release(c);
      c = -1;
    }
    if (c >= 0 && (t.flags[c]! & CF_SP_PENDING) !== 0) {
      this.synproxy.onPendingClient(p, c, ipHl);
      return;
    }
    if (ctx.reg.svcSynProxy[svc] !== 0) {
      c = this.synproxy.onClientPacket(p, svc, ipHl, c);
      if (c < 0) return;
    } else {
      c = this.findOrOpen(p, svc, ipHl, c);
      if (c < 0) return;
    }
    this.toRealServer(p, svc, ipHl, c);
  }

  /**
   * The connection of p: c, or a new one for a SYN (also in place of c when
   * c is closing or its RS takes no new connections, as IPVS's
   * conn_reuse_mode does); -1 when p was consumed (a new connection refused,
   * or a segment of no connection answered by `UnknownFlowReplies`).
   */
  private findOrOpen(p: Packet, svc: number, ipHl: number, c: number): number {
    const ctx = this.ctx;
    const newSyn = (ctx.tcp.flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) === TCP_SYN;
    if (c >= 0 && newSyn) {
      const why = this.conns.reuseReason(c);
      if (why >= 0) {
        ctx.countSvc(svc, why);
        this.conns.release(c);
        c = -1;
      }
    }
    if (c >= 0) return c;
    if (!newSyn) {
      this.unknownFlow.answer(p, ipHl);
      return -1;
    }
    return this.conns.newConnection(p, svc, p.start + ipHl, 0, ctx.timeoutsMs[TcpState.SynRecv]!);
  }

  /**
   * The client packet p of connection c toward the RS: options, TOA, state,
   * translation. Also where SYNPROXY replays the packets it held.
   */
  toRealServer(p: Packet, svc: number, ipHl: number, c: number): void {
    const ctx = this.ctx;
    const b = p.buf;
    const t = ctx.table;
    const tcpOff = p.start + ipHl;
    const flags = ctx.tcp.flags;
    const syn = (flags & TCP_SYN) !== 0;
    const fin = (flags & TCP_FIN) !== 0;
    const hl = ctx.tcp.headerLength;
    const options = this.options;
    if (ctx.reg.svcNat[svc] !== 0) {
      this.toRealServerNat(p, svc, ipHl, c);
      return;
    }

    options.clean(svc, c, syn, (flags & TCP_ACK) !== 0);
    // The path's MTU, lowered by what its routers reported (path-mtu.ts).
    const mtu = ctx.pmtu.of(t.rs[c]!);
    options.choose(p, svc, c, mtu, ipHl, p.length, TOA_V4_LEN);
    const mode = options.mode;
    if (mode === ToaMode.None && segmentLength(p, ipHl, hl, p.length) > mtu) {
      this.tooBig(p, mtu, ipHl, c);
      return;
    }

    const payloadLen = p.length - ipHl - hl;
    this.conns.stepFromClient(c, flags, b, tcpOff, payloadLen);
    countInbound(ctx.reg, svc, t.rs[c]!, p.length);
    if (mode !== ToaMode.None) {
      this.sendWithToa(p, svc, ipHl, c, mode, options.plan, mtu, syn);
      return;
    }
    const shift = t.shift[c]!;
    if (shift !== 0 && !syn) {
      // The client's first bytes (or its FIN) go out behind the PROXY header, and so do their retransmissions.
      const first =
        (flags & TCP_RST) === 0 &&
        (payloadLen > 0 || fin) &&
        equalsU32AtPlus(b, tcpOff + TcpField.Seq, t.seqDelta, c, t.lbIsn, c, 1);
      this.nat.toRealServer(c, shift);
      if (first) this.proxyHeader.emit(p, ipHl, c);
    } else {
      this.nat.toRealServer(c, 0);
    }
    ctx.forward(p);
  }

  /**
   * A NAT service's packet: the client's options and sequence numbers go
   * through as they are (no TOA: the RS sees the client's own address);
   * only the destination becomes RIP:rport (the source's "LIP:lport" is the
   * client's own: nat.ts rewrites it to itself).
   */
  private toRealServerNat(p: Packet, svc: number, ipHl: number, c: number): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const hl = ctx.tcp.headerLength;
    const mtu = ctx.pmtu.of(t.rs[c]!);
    if (segmentLength(p, ipHl, hl, p.length) > mtu) {
      this.tooBig(p, mtu, ipHl, c);
      return;
    }
    this.conns.stepFromClient(c, ctx.tcp.flags, p.buf, p.start + ipHl, p.length - ipHl - hl);
    countInbound(ctx.reg, svc, t.rs[c]!, p.length);
    this.nat.toRealServer(c, 0);
    ctx.forward(p);
  }

  /**
   * Translates and emits p with the TOA as `mode` says. The TOA goes in while
   * the packet still carries the client's address and port, which it copies.
   */
  private sendWithToa(
    p: Packet,
    svc: number,
    ipHl: number,
    c: number,
    mode: ToaMode,
    plan: OptionPlan,
    mtu: number,
    syn: boolean,
  ): void {
    const ctx = this.ctx;
    const inserted = syn ? C.toa_inserted_syn : C.toa_inserted;
    switch (mode) {
      case ToaMode.Insert:
        this.toa.insertV4(p, ipHl);
        ctx.countSvc(svc, inserted);
        this.sendRewrapped(p, ipHl, c);
        return;
      case ToaMode.Rebuild:
        if (!this.toa.rebuildV4(p, ipHl, plan)) {
          ctx.drop(p, C.bad_checksum_dropped);
          return;
        }
        ctx.countSvc(svc, C.toa_pruned);
        ctx.countSvc(svc, inserted);
        this.sendRewrapped(p, ipHl, c);
        return;
      case ToaMode.Split:
        this.sendSplit(p, svc, ipHl, c, plan, mtu);
        return;
    }
  }

  /** After the TOA went in: the headers may have moved into the headroom. */
  private sendRewrapped(p: Packet, ipHl: number, c: number): void {
    const ctx = this.ctx;
    ctx.ip.wrap(p.buf, p.start);
    ctx.tcp.wrap(p.buf, p.start + ipHl);
    this.nat.toRealServer(c, 0);
    ctx.forward(p);
  }

  /** Too large for the RS path with a TOA: pieces that each carry one. */
  private sendSplit(
    p: Packet,
    svc: number,
    ipHl: number,
    c: number,
    plan: OptionPlan,
    mtu: number,
  ): void {
    const ctx = this.ctx;
    const n = this.toa.splitV4(p, ipHl, plan, mtu);
    if (n <= 0) {
      // n == 0: the RS path MTU cannot even hold the headers; a configuration error, counted.
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
      ctx.ip.wrap(q.buf, q.start);
      ctx.tcp.wrap(q.buf, q.start + ipHl);
      this.nat.toRealServer(c, 0);
      ctx.emit(q);
    }
    ctx.count(C.forwarded_packets);
    ctx.pool.give(p);
  }

  /**
   * Too big for the RS path and no TOA to blame: ICMP fragmentation needed
   * (DF, rate-limited), or a drop. Under `fullnat` the MTU told leaves room
   * for the TOA the LB adds to the packets that carry one, so the client's
   * next segments fit with it (a PROXY-protocol connection, shift, carries
   * none); `lvs` and `dpvs` tell the path MTU itself, as LVS and DPVS do.
   */
  private tooBig(p: Packet, mtu: number, ipHl: number, c: number): void {
    const ctx = this.ctx;
    if (!ctx.ip.dontFragment) {
      // IPv4 fragmentation on the way to the RS is not supported: TCP clients set DF.
      ctx.drop(p, C.too_big_dropped);
      return;
    }
    if (!this.icmpBucket.take(ctx.now)) {
      ctx.count(C.icmp_frag_needed_ratelimited);
      ctx.drop(p, C.too_big_dropped);
      return;
    }
    const room =
      ctx.policy === 'fullnat' &&
      ctx.table.shift[c] === 0 &&
      ctx.reg.svcNat[ctx.table.svc[c]!] === 0
        ? TOA_V4_LEN
        : 0;
    const r = ctx.pool.take();
    craftFragNeeded(r, ctx.ip.dst, ctx.ip.src, mtu - room, p.buf, p.start, ipHl);
    ctx.count(C.icmp_frag_needed_sent);
    ctx.drop(p, C.too_big_dropped);
    ctx.emit(r);
  }
}
