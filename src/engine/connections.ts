import {
  PROXY_V2_IPV4_LENGTH,
  PROXY_V2_IPV6_LENGTH,
  proxyV1Length,
  proxyV1v6Length,
} from '../wire/proxy-protocol.js';
import { Ipv4Field } from '../wire/ipv4.js';
import { get32, loadU32Plus } from '../wire/bytes.js';
import { TCP_ACK, TCP_FIN, TCP_SYN, TcpField } from '../wire/tcp.js';
import { copy16, fold16 } from './addr6.js';
import { CF_IPV6, CF_SP_PENDING, CF_SYNPROXY, NO_LIP } from './conn-table.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import { craftRst, craftRst6 } from './craft.js';
import { IsnGenerator, hashAddrAt } from './isn.js';
import { setAddressDelta } from './nat6.js';
import type { Packet } from './packet.js';
import { STAT_CONNS } from './services.js';
import type { SynProxy, SynProxyConnections } from './synproxy/synproxy.js';
import {
  TcpState,
  isClosing,
  nextStateFromClient,
  nextStateFromRs,
  tcpEvent,
} from './tcp-state.js';

/**
 * The life of a connection in the table: created for a client's SYN (or
 * SYNPROXY's cookie ACK) with a scheduled RS and a LIP:port, moved from state
 * to state by packets of both directions, released, or expired by the timer
 * wheel (an ESTABLISHED one with a RST to each side).
 */
export class Connections implements SynProxyConnections {
  private readonly isn: IsnGenerator;
  /** The timer wheel's callback, made once. */
  readonly onExpire = (c: number): void => this.expire(c);

  constructor(
    private readonly ctx: EngineContext,
    private readonly synproxy: SynProxy,
  ) {
    this.isn = new IsnGenerator(ctx.opts.isnSecret, ctx.opts.isnClockOriginMs);
  }

  /**
   * Schedules an RS and a LIP:port for the client packet p and enters the
   * connection. `isnAdjust`: the client ISN is p's seq plus this (-1 for the
   * ACK that opens a SYNPROXY connection). `timeoutMs`: the first deadline.
   * Returns -1 when refused (p answered with a RST and consumed).
   */
  newConnection(
    p: Packet,
    svcIdx: number,
    tcpOff: number,
    isnAdjust: number,
    timeoutMs: number,
  ): number {
    const ctx = this.ctx;
    const t = ctx.table;
    const svc = ctx.reg.services[svcIdx]!;
    if (t.full) {
      this.rejectSyn(p, svcIdx, C.table_full);
      return -1;
    }
    const b = p.buf;
    const s = p.start;
    const hash = hashAddrAt(b, s + Ipv4Field.Src);
    let rsIdx: number;
    if (svc.persistMs !== 0) rsIdx = ctx.persist.choose4(svc, b, s + Ipv4Field.Src, hash);
    else {
      const pick = svc.scheduler.pick(svc.targets, hash);
      rsIdx = pick < 0 ? -1 : svc.targets[pick]!.index;
    }
    if (rsIdx < 0) {
      this.rejectSyn(p, svcIdx, C.no_real_server);
      return -1;
    }
    const rs = ctx.reg.realServers[rsIdx]!;
    if (svc.forwarding === 'nat') return this.newNatConnection(p, svcIdx, tcpOff, rsIdx, timeoutMs);
    let lipSlot = -1;
    let lport = -1;
    for (let tries = 0; tries < svc.lipIndexes.length; tries++) {
      lipSlot = svc.lipIndexes[svc.nextLip()]!;
      lport = ctx.laddrs.allocate(lipSlot, rs.index);
      if (lport >= 0) break;
    }
    if (lport < 0) {
      this.rejectSyn(p, svcIdx, C.laddr_ports_exhausted);
      return -1;
    }
    const c = t.insertAt(b, s, tcpOff, svcIdx);
    t.expires[c] = ctx.now + timeoutMs;
    t.armTimer(c);
    t.lip[c] = ctx.laddrs.addrs[lipSlot]!;
    t.lport[c] = lport;
    t.rip[c] = ctx.reg.rsAddrs[rs.index]!;
    t.rport[c] = rs.port;
    t.linkReply(c);
    t.rs[c] = rs.index;
    t.lipIndex[c] = lipSlot;
    this.isn.storeSeqDelta(t, c, ctx.clock, b, tcpOff + TcpField.Seq, isnAdjust);
    if (svc.proxyProtocol !== 0) {
      t.shift[c] =
        svc.proxyProtocol === 2
          ? PROXY_V2_IPV4_LENGTH
          : proxyV1Length(t.cip[c]!, t.cport[c]!, ctx.reg.svcVips[svcIdx]!, svc.vport);
    }
    if (svc.persistMs !== 0) ctx.persist.bind(ctx.persist.tcpControl, c);
    rs.inactiveConns++;
    rs.stats[STAT_CONNS]!++;
    svc.stats[STAT_CONNS]!++;
    ctx.countSvc(svcIdx, C.conns_created);
    return c;
  }

  /**
   * `newConnection` for a NAT service: the client's address and port stand
   * where a LIP:lport would (the RS answers the client, and its replies
   * reach the LB by the route back), no port is allocated, and the client's
   * sequence numbers go through unchanged. Refused when another entry has
   * that reply tuple (the same client port to two NAT services on one RS).
   */
  private newNatConnection(
    p: Packet,
    svcIdx: number,
    tcpOff: number,
    rsIdx: number,
    timeoutMs: number,
  ): number {
    const ctx = this.ctx;
    const t = ctx.table;
    const reg = ctx.reg;
    const b = p.buf;
    const s = p.start;
    const rip = reg.rsAddrs[rsIdx]!;
    const rs = reg.realServers[rsIdx]!;
    const cip = get32(b, s + Ipv4Field.Src);
    const cport = (b[tcpOff]! << 8) | b[tcpOff + 1]!;
    if (t.lookupReply(rip, rs.port, cip, cport) >= 0) {
      this.rejectSyn(p, svcIdx, C.nat_reply_conflict);
      return -1;
    }
    const c = t.insertAt(b, s, tcpOff, svcIdx);
    t.expires[c] = ctx.now + timeoutMs;
    t.armTimer(c);
    t.lip[c] = cip;
    t.lport[c] = cport;
    t.rip[c] = rip;
    t.rport[c] = rs.port;
    t.linkReply(c);
    t.rs[c] = rsIdx;
    t.lipIndex[c] = NO_LIP;
    const isn = get32(b, tcpOff + TcpField.Seq);
    t.lbIsn[c] = isn;
    t.seqDelta[c] = 0;
    const svc = reg.services[svcIdx]!;
    if (svc.persistMs !== 0) ctx.persist.bind(ctx.persist.tcpControl, c);
    rs.inactiveConns++;
    rs.stats[STAT_CONNS]!++;
    svc.stats[STAT_CONNS]!++;
    ctx.countSvc(svcIdx, C.conns_created);
    return c;
  }

  /**
   * `newConnection` for an IPv6 client: the packet's IPv6 header at p.start
   * (40 bytes, extension headers already taken out), its TCP header at
   * tcpOff. The RS may be IPv6 (an IPv6 LIP toward it) or IPv4 (FNAT64, an
   * IPv4 LIP); only LIPs of the RS's family are tried.
   */
  newConnection6(
    p: Packet,
    svcIdx: number,
    tcpOff: number,
    isnAdjust: number,
    timeoutMs: number,
  ): number {
    const ctx = this.ctx;
    const t = ctx.table;
    const reg = ctx.reg;
    const svc = reg.services[svcIdx]!;
    if (t.full) {
      this.rejectSyn6(p, svcIdx, C.table_full);
      return -1;
    }
    const b = p.buf;
    const s = p.start;
    const hash = fold16(b, s + 8);
    let rsIdx: number;
    if (svc.persistMs !== 0) rsIdx = ctx.persist.choose6(svc, b, s + 8, hash);
    else {
      const pick = svc.scheduler.pick(svc.targets, hash);
      rsIdx = pick < 0 ? -1 : svc.targets[pick]!.index;
    }
    if (rsIdx < 0) {
      this.rejectSyn6(p, svcIdx, C.no_real_server);
      return -1;
    }
    const rs = reg.realServers[rsIdx]!;
    const rsV6 = reg.rsV6[rs.index]!;
    const laddrs = ctx.laddrs;
    let lipSlot = -1;
    let lport = -1;
    for (let tries = 0; tries < svc.lipIndexes.length; tries++) {
      lipSlot = svc.lipIndexes[svc.nextLip()]!;
      if (laddrs.isV6[lipSlot] !== rsV6) continue;
      lport = laddrs.allocate(lipSlot, rs.index);
      if (lport >= 0) break;
    }
    if (lport < 0) {
      this.rejectSyn6(p, svcIdx, C.laddr_ports_exhausted);
      return -1;
    }
    const c = t.insert6At(b, s + 8, tcpOff, svcIdx, rsV6 === 1);
    t.expires[c] = ctx.now + timeoutMs;
    t.armTimer(c);
    t.lip[c] = laddrs.addrs[lipSlot]!;
    t.lport[c] = lport;
    t.rip[c] = reg.rsAddrs[rs.index]!;
    t.rport[c] = rs.port;
    if (rsV6 === 1) {
      copy16(t.lip6, c * 16, laddrs.addrs6, lipSlot * 16);
      copy16(t.rip6, c * 16, reg.rsAddrs6, rs.index * 16);
    }
    t.linkReply(c);
    t.rs[c] = rs.index;
    // After t.rs: the delta takes the RS address's sum from the registry.
    setAddressDelta(t, reg, c);
    t.lipIndex[c] = lipSlot;
    this.isn.storeSeqDelta(t, c, ctx.clock, b, tcpOff + TcpField.Seq, isnAdjust);
    if (svc.proxyProtocol !== 0) {
      // The header names the IPv6 client and VIP, whatever the RS leg's family.
      t.shift[c] =
        svc.proxyProtocol === 2
          ? PROXY_V2_IPV6_LENGTH
          : proxyV1v6Length(t.cip6, t.cport[c]!, reg.svcVips6, svc.vport, c * 16, svcIdx * 16);
    }
    if (svc.persistMs !== 0) ctx.persist.bind(ctx.persist.tcpControl, c);
    rs.inactiveConns++;
    rs.stats[STAT_CONNS]!++;
    svc.stats[STAT_CONNS]!++;
    ctx.countSvc(svcIdx, C.conns_created);
    return c;
  }

  /** `rejectSyn` for an IPv6 client packet (its IPv6 header at p.start, `ctx.tcp` wrapped). */
  private rejectSyn6(p: Packet, svcIdx: number, reason: number): void {
    const ctx = this.ctx;
    ctx.countSvc(svcIdx, reason);
    const tcp = ctx.tcp;
    const r = ctx.pool.take();
    const b = p.buf;
    const s = p.start;
    if (tcp.ackFlag) craftRst6(r, b, s + 24, tcp.dstPort, b, s + 8, tcp.srcPort, tcp.ack, 0, false);
    else craftRst6(r, b, s + 24, tcp.dstPort, b, s + 8, tcp.srcPort, 0, (tcp.seq + 1) >>> 0, true);
    ctx.drop(p, C.syn_rejected);
    ctx.count(C.rst_sent);
    ctx.emit(r);
  }

  /**
   * Answers a SYN (or a SYNPROXY cookie ACK) that cannot become a connection
   * with a RST, counting why. `ctx.ip`/`ctx.tcp` are wrapped around p.
   */
  private rejectSyn(p: Packet, svcIdx: number, reason: number): void {
    const ctx = this.ctx;
    ctx.countSvc(svcIdx, reason);
    const ip = ctx.ip;
    const tcp = ctx.tcp;
    const r = ctx.pool.take();
    if (tcp.ackFlag) craftRst(r, ip.dst, tcp.dstPort, ip.src, tcp.srcPort, tcp.ack, 0, false);
    else craftRst(r, ip.dst, tcp.dstPort, ip.src, tcp.srcPort, 0, (tcp.seq + 1) >>> 0, true);
    ctx.drop(p, C.syn_rejected);
    ctx.count(C.rst_sent);
    ctx.emit(r);
  }

  /**
   * The state step of a packet of either direction: c moves to `next`, its
   * deadline to now + that state's timeout.
   */
  advance(c: number, next: TcpState): void {
    const ctx = this.ctx;
    const sync = ctx.sync;
    // A peer's entry whose packets come here is this node's from now on.
    if (sync !== undefined) sync.carried(c);
    const t = ctx.table;
    const timeouts = ctx.timeoutsMs;
    const prev = t.state[c]! as TcpState;
    t.expires[c] = ctx.now + timeouts[next]!;
    if (next !== prev) {
      this.setState(c, prev, next);
      // Only a shorter timeout can leave the entry in a slot later than its new deadline.
      if (timeouts[next]! < timeouts[prev]!) t.armTimer(c);
    }
  }

  /**
   * The state step of client packet (TCP header at tcpOff, payloadLen bytes
   * of data) of connection c, and the client's next sequence number after it.
   */
  stepFromClient(
    c: number,
    flags: number,
    b: Uint8Array,
    tcpOff: number,
    payloadLen: number,
  ): void {
    this.advance(c, nextStateFromClient(this.ctx.table.state[c]!, tcpEvent(flags, false)));
    loadU32Plus(
      this.ctx.table.clientNxt,
      c,
      b,
      tcpOff + TcpField.Seq,
      payloadLen + ((flags & TCP_SYN) !== 0 ? 1 : 0) + ((flags & TCP_FIN) !== 0 ? 1 : 0),
    );
  }

  /**
   * The state step of RS packet (TCP header at tcpOff, payloadLen bytes of
   * data) of connection c, and the RS's next sequence number after it. In
   * LAST_ACK (the RS closed first, then the client) the RS's ack of the
   * client's FIN ends the connection.
   */
  stepFromRs(c: number, flags: number, b: Uint8Array, tcpOff: number, payloadLen: number): void {
    const t = this.ctx.table;
    const finAcked =
      t.state[c] === TcpState.LastAck &&
      (flags & TCP_ACK) !== 0 &&
      this.acksClientFin(b, tcpOff, c);
    this.advance(c, nextStateFromRs(t.state[c]!, tcpEvent(flags, finAcked)));
    loadU32Plus(
      t.rsNxt,
      c,
      b,
      tcpOff + TcpField.Seq,
      payloadLen + ((flags & TCP_SYN) !== 0 ? 1 : 0) + ((flags & TCP_FIN) !== 0 ? 1 : 0),
    );
  }

  /** True when the RS's ack covers the client's last byte (its FIN), in the LB→RS sequence space. */
  private acksClientFin(b: Uint8Array, tcpOff: number, c: number): boolean {
    const t = this.ctx.table;
    const o = tcpOff + TcpField.Ack;
    const ack = (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
    return ((ack - t.clientNxt[c]! - t.seqDelta[c]! - t.shift[c]!) | 0) === 0;
  }

  /** Sets c's state, keeping its RS's active/inactive connection counts. */
  setState(c: number, prev: TcpState, next: TcpState): void {
    const t = this.ctx.table;
    const rs = this.ctx.reg.realServers[t.rs[c]!]!;
    if (prev === TcpState.Established) {
      rs.activeConns--;
      rs.inactiveConns++;
    }
    if (next === TcpState.Established) {
      rs.inactiveConns--;
      rs.activeConns++;
    }
    t.state[c] = next;
    const sync = this.ctx.sync;
    if (sync !== undefined) sync.stateChanged(c, next);
  }

  /**
   * Why a client SYN (without ACK) on c must end c and open a new connection
   * instead of riding it: `C.conns_reused_closing` when c is closing (IPVS's
   * conn_reuse_mode), `C.conns_rescheduled` when c's RS takes no new
   * connections (quiesced, weight 0, or removed); -1 when c stays (a
   * retransmitted SYN of a live connection).
   */
  reuseReason(c: number): number {
    const t = this.ctx.table;
    if (isClosing(t.state[c]!)) return C.conns_reused_closing;
    const rs = this.ctx.reg.realServers[t.rs[c]!]!;
    if (!rs.member || rs.weight <= 0) return C.conns_rescheduled;
    return -1;
  }

  /** True when c's RS was removed from its service. */
  rsRemoved(c: number): boolean {
    return !this.ctx.reg.realServers[this.ctx.table.rs[c]!]!.member;
  }

  /** Frees c: its RS's count, its LIP:port, its table entry (and what SYNPROXY held for it). */
  release(c: number): void {
    const ctx = this.ctx;
    const t = ctx.table;
    ctx.count(C.conns_released);
    if ((t.flags[c]! & CF_SP_PENDING) !== 0) this.synproxy.onRelease(c);
    const rs = ctx.reg.realServers[t.rs[c]!]!;
    if (t.state[c] === TcpState.Established) rs.activeConns--;
    else rs.inactiveConns--;
    const sync = ctx.sync;
    if (sync !== undefined) sync.releasing(c);
    const lipIdx = t.lipIndex[c]!;
    if (lipIdx !== NO_LIP) ctx.laddrs.release(lipIdx, rs.index, t.lport[c]!);
    if (ctx.persist.enabled) ctx.persist.release(ctx.persist.tcpControl, c);
    t.remove(c);
  }

  /** c's deadline passed (the timer wheel calls this from `Engine.tick`). */
  private expire(c: number): void {
    const ctx = this.ctx;
    const t = ctx.table;
    if ((t.flags[c]! & CF_SP_PENDING) !== 0 && this.synproxy.onTimer(c)) return;
    const sync = ctx.sync;
    if (sync !== undefined && sync.isPeers(c)) {
      // A peer's entry nothing here touched: its owner answers for it, so no RST from this node.
      ctx.count(C.sync_expired_silent);
    } else if (t.state[c] === TcpState.Established && (t.flags[c]! & CF_IPV6) !== 0)
      this.resetBoth6(c);
    else if (t.state[c] === TcpState.Established) {
      const svc = ctx.reg.services[t.svc[c]!]!;
      const toClient = ctx.pool.take();
      craftRst(
        toClient,
        ctx.reg.svcVips[t.svc[c]!]!,
        svc.vport,
        t.cip[c]!,
        t.cport[c]!,
        (t.flags[c]! & CF_SYNPROXY) !== 0 ? this.synproxy.rsNxtForClient(c) : t.rsNxt[c]!,
        t.clientNxt[c]!,
        true,
      );
      ctx.emit(toClient);
      const toRs = ctx.pool.take();
      craftRst(
        toRs,
        t.lip[c]!,
        t.lport[c]!,
        t.rip[c]!,
        t.rport[c]!,
        (t.clientNxt[c]! + t.seqDelta[c]! + t.shift[c]!) >>> 0,
        t.rsNxt[c]!,
        true,
      );
      ctx.emit(toRs);
      ctx.add(C.rst_sent, 2);
      ctx.count(C.conns_expired_established_rst);
    }
    ctx.count(C.conns_expired);
    this.release(c);
  }

  /** The RSTs of an expiring ESTABLISHED connection with an IPv6 client: to the client, and to the RS in its family. */
  private resetBoth6(c: number): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const reg = ctx.reg;
    const svc = t.svc[c]!;
    const toClient = ctx.pool.take();
    craftRst6(
      toClient,
      reg.svcVips6,
      svc * 16,
      reg.svcPorts[svc]!,
      t.cip6,
      c * 16,
      t.cport[c]!,
      (t.flags[c]! & CF_SYNPROXY) !== 0 ? this.synproxy.rsNxtForClient(c) : t.rsNxt[c]!,
      t.clientNxt[c]!,
      true,
    );
    ctx.emit(toClient);
    const toRs = ctx.pool.take();
    const seq = (t.clientNxt[c]! + t.seqDelta[c]! + t.shift[c]!) >>> 0;
    if (t.replyIsV6(c))
      craftRst6(
        toRs,
        t.lip6,
        c * 16,
        t.lport[c]!,
        t.rip6,
        c * 16,
        t.rport[c]!,
        seq,
        t.rsNxt[c]!,
        true,
      );
    else craftRst(toRs, t.lip[c]!, t.lport[c]!, t.rip[c]!, t.rport[c]!, seq, t.rsNxt[c]!, true);
    ctx.emit(toRs);
    ctx.add(C.rst_sent, 2);
    ctx.count(C.conns_expired_established_rst);
  }
}
