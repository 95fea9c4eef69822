import { equalsU32At, equalsU32AtPlus, loadU32Plus } from '../wire/bytes.js';
import { TCP_ACK, TCP_FIN, TCP_MIN_HEADER, TCP_RST, TCP_SYN, TcpField } from '../wire/tcp.js';
import { TCPOLEN_TIMESTAMP } from '../wire/tcp-options.js';
import { TOA_V4_LEN } from '../wire/toa.js';
import { CF_FDATA_KNOWN, CF_SP_PENDING, CF_SYNPROXY } from './conn-table.js';
import type { Connections } from './connections.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import { craftFragNeeded } from './craft.js';
import type { Nat } from './nat.js';
import type { Packet } from './packet.js';
import type { ProxyHeaderWriter } from './proxy-header.js';
import { STAT_IN_BYTES, STAT_IN_PACKETS } from './services.js';
import type { SynProxy, SynProxyReplay } from './synproxy/synproxy.js';
import { TcpState, nextStateFromClient, tcpEvent } from './tcp-state.js';
import {
  ToaDecision,
  ToaMode,
  decideToa,
  resizedGsoSize,
  toaModeOf,
  wantsToa,
} from './toa-decision.js';
import { OptionPlan, ToaWriter, nopOut } from './toa-insert.js';
import { TokenBucket } from './token-bucket.js';
import type { UnknownFlowReplies } from './unknown-flow.js';

/**
 * Client → RS (DPVS's tcp_fnat_in_handler): find or open the connection,
 * clean the client's options, decide the TOA, step the state, translate,
 * send. `ctx.ip`/`ctx.tcp` are wrapped around the packet throughout.
 */
export class ClientPath implements SynProxyReplay {
  private readonly toa: ToaWriter;
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
    const tcp = ctx.tcp;
    const t = ctx.table;
    const tcpOff = p.start + ipHl;
    const flags = tcp.flags;
    const syn = (flags & TCP_SYN) !== 0;
    const ackFlag = (flags & TCP_ACK) !== 0;
    const fin = (flags & TCP_FIN) !== 0;
    const rst = (flags & TCP_RST) !== 0;
    const sp = (t.flags[c]! & CF_SYNPROXY) !== 0;
    const hl = tcp.headerLength;
    const optStart = tcpOff + TCP_MIN_HEADER;
    const optEnd = tcpOff + hl;

    // The client's options as the RS may see them: no TOA of its own, no
    // timestamp on a SYN if so configured, SACK edges in the RS's space.
    const o = ctx.opt.parse(b, optStart, optEnd);
    // Client-supplied TOAs would be read by the RS module as the client address.
    if (ctx.policy === 'fullnat' && o.toaCount > 0) {
      this.toa.stripToa(tcp, optStart, optEnd);
      ctx.countSvc(svc, C.toa_spoof_stripped);
    }
    if (syn && ctx.opts.timestampRemove && o.hasTimestamp) {
      nopOut(tcp, o.timestampAt, TCPOLEN_TIMESTAMP);
      ctx.countSvc(svc, C.timestamp_removed);
    }
    if (sp && ackFlag && o.sackBlocks > 0)
      this.synproxy.translateClientSack(c, o.sackAt, o.sackBlocks);

    const payloadLen = p.length - ipHl - hl;
    // The path's MTU, lowered by what its routers reported (path-mtu.ts).
    const mtu = ctx.pmtu.of(t.rs[c]!);
    // The first packet acking the RS's SYN+ACK, compared in the RS's space.
    const concluding =
      (t.flags[c]! & CF_FDATA_KNOWN) !== 0 &&
      ackFlag &&
      !syn &&
      !rst &&
      (sp
        ? this.synproxy.acksFirstRsByte(b, tcpOff, c)
        : equalsU32At(b, tcpOff + TcpField.Ack, t.fdataSeq, c));
    const shift = t.shift[c]!;

    // Decide before rewriting, so an ICMP error can still quote the packet as the client sent it.
    let mode = ToaMode.None;
    let plan = OptionPlan.Keep;
    // What must fit the RS path is one segment: a GSO super-packet is cut after us.
    const segment = p.gsoSize > 0 ? Math.min(p.length, ipHl + hl + p.gsoSize) : p.length;
    // A PROXY-protocol connection carries the client address in its stream, not in a TOA.
    if (shift === 0 && wantsToa(ctx.policy, syn, ackFlag, fin, concluding)) {
      if (ctx.policy !== 'lvs') plan = this.toa.plan(b, optStart, optEnd, syn, TOA_V4_LEN);
      const newHl =
        plan === OptionPlan.Impossible
          ? 0
          : TCP_MIN_HEADER + this.toa.newOptionsLength(b, optStart, optEnd, plan, TOA_V4_LEN);
      const decision = decideToa(
        ctx.policy,
        mtu,
        segment,
        hl,
        plan,
        newHl,
        ipHl,
        p.gsoSize,
        p.tailroom,
        p.length,
        TOA_V4_LEN,
      );
      mode = toaModeOf(decision);
      if ((decision & ToaDecision.FailedMtu) !== 0) ctx.countSvc(svc, C.toa_failed_mtu);
      if ((decision & ToaDecision.FailedNoRoom) !== 0) ctx.countSvc(svc, C.toa_failed_no_room);
      if ((decision & ToaDecision.GsoResized) !== 0) {
        p.gsoSize = resizedGsoSize(mtu, ipHl, newHl);
        ctx.countSvc(svc, C.toa_gso_resized);
      }
    }
    if (mode === ToaMode.None && segment > mtu) {
      this.tooBig(p, mtu, ipHl, c);
      return;
    }

    this.conns.advance(c, nextStateFromClient(t.state[c]!, tcpEvent(flags, false)));
    loadU32Plus(
      t.clientNxt,
      c,
      b,
      tcpOff + TcpField.Seq,
      payloadLen + (syn ? 1 : 0) + (fin ? 1 : 0),
    );
    this.account(svc, c, p.length);
    if (mode !== ToaMode.None) {
      this.sendWithToa(p, svc, ipHl, c, mode, plan, mtu, syn);
      return;
    }
    if (shift !== 0 && !syn) {
      // The client's first bytes (or its FIN) go out behind the PROXY header, and so do their retransmissions.
      const first =
        !rst &&
        (payloadLen > 0 || fin) &&
        equalsU32AtPlus(b, tcpOff + TcpField.Seq, t.seqDelta, c, t.lbIsn, c, 1);
      this.nat.toRealServer(c, shift);
      if (first) this.proxyHeader.emit(p, ipHl, c);
    } else {
      this.nat.toRealServer(c, 0);
    }
    ctx.forward(p);
  }

  /** Traffic stats of the service and the RS for a client packet of `bytes`. */
  private account(svc: number, c: number, bytes: number): void {
    const reg = this.ctx.reg;
    const s = reg.services[svc]!;
    s.counters[C.inbound_packets]!++;
    s.stats[STAT_IN_PACKETS]!++;
    s.stats[STAT_IN_BYTES]! += bytes;
    const rsStats = reg.realServers[this.ctx.table.rs[c]!]!.stats;
    rsStats[STAT_IN_PACKETS]!++;
    rsStats[STAT_IN_BYTES]! += bytes;
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
    const room = ctx.policy === 'fullnat' && ctx.table.shift[c] === 0 ? TOA_V4_LEN : 0;
    const r = ctx.pool.take();
    craftFragNeeded(r, ctx.ip.dst, ctx.ip.src, mtu - room, p.buf, p.start, ipHl);
    ctx.count(C.icmp_frag_needed_sent);
    ctx.drop(p, C.too_big_dropped);
    ctx.emit(r);
  }
}
