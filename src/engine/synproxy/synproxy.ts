import { equalsU32At, equalsU32AtPlus, get16, loadU32Plus, set16 } from '../../wire/bytes.js';
import type { ChecksumDelta } from '../../wire/checksum.js';
import { TCP_ACK, TCP_FIN, TCP_MIN_HEADER, TCP_RST, TCP_SYN, TcpField } from '../../wire/tcp.js';
import { IPV4_MIN_HEADER } from '../../wire/ipv4.js';
import { IPV6_HEADER } from '../../wire/ipv6.js';
import { TOA_V4_LEN, TOA_V6_LEN } from '../../wire/toa.js';
import {
  CF_FDATA_KNOWN,
  CF_IPV6,
  CF_SP_PENDING,
  CF_SP_REUSE_SYN,
  CF_SP_WIN_IN,
  CF_SP_WIN_OUT,
  CF_SYNPROXY,
} from '../conn-table.js';
import type { EngineContext } from '../context.js';
import { C } from '../counters.js';
import { craftRst, craftRst6, reflectRst6 } from '../craft.js';
import { rewriteSeqField, shiftSackEdges } from '../seq-rewrite.js';
import type { Packet } from '../packet.js';
import { TcpState } from '../tcp-state.js';
import {
  SynCookies,
  connData,
  connRsWscale,
  cookieData,
  cookieMss,
  cookieSack,
  cookieWscale,
  cookieWscaleField,
  mssIndex,
} from './cookies.js';
import type { UnknownFlowReplies } from '../unknown-flow.js';
import { HeldPackets, compactForHold } from './held-packets.js';
import { reflectCookieSynAck, reflectCookieSynAck6, reflectReset, writeRsSyn } from './writers.js';

/** The connection life cycle as SYNPROXY needs it from the engine. */
export interface SynProxyConnections {
  /**
   * Schedules an RS and a LIP:port for client packet p and enters the
   * connection (client ISN = p's seq + isnAdjust, first deadline timeoutMs
   * away); -1 when refused (p answered and consumed).
   */
  newConnection(
    p: Packet,
    svc: number,
    tcpOff: number,
    isnAdjust: number,
    timeoutMs: number,
  ): number;
  /** `newConnection` for an IPv6 client packet (fixed header at p.start, TCP at tcpOff). */
  newConnection6(
    p: Packet,
    svc: number,
    tcpOff: number,
    isnAdjust: number,
    timeoutMs: number,
  ): number;
  setState(c: number, prev: TcpState, next: TcpState): void;
  release(c: number): void;
  /** The counter naming why a client SYN on c ends it and opens a new connection; -1 when c stays. */
  reuseReason(c: number): number;
}

/** The ordinary client→RS path, where held packets are replayed. */
export interface SynProxyReplay {
  toRealServer(p: Packet, svc: number, ipHl: number, c: number): void;
}

/** The IPv6 client→RS path (IPv6 RS or FNAT64), where an IPv6 client's held packets are replayed. */
export interface SynProxyReplay6 {
  toRealServer6(p: Packet, svc: number, c: number): void;
}

/**
 * SYNPROXY (DPVS's ip_vs_synproxy.c): the LB completes the client's handshake
 * with a syncookie before any RS sees a packet, then opens the RS leg itself.
 * The engine calls it through the `on*` hooks, `isAckStorm` and the two
 * `translate*` steps; it calls back through `SynProxyConnections`,
 * `SynProxyReplay` and the shared context (emit, drop, count).
 *
 * The life cycle, window scaling and the bounds on held packets are
 * described once, in README.md beside this file.
 *
 * Nothing here allocates per packet: 32-bit values travel through typed
 * arrays or are read from and written to packet bytes directly.
 */
export class SynProxy {
  private readonly cookies: SynCookies;
  private readonly held: HeldPackets;
  /** Scratch for 32-bit values (cookie, client ISN + 1) handed to the writers. */
  private readonly u32 = new Uint32Array(2);
  private readonly zero = new Uint32Array(1);
  private conns!: SynProxyConnections;
  private replay!: SynProxyReplay;
  private replay6!: SynProxyReplay6;
  private unknownFlow!: UnknownFlowReplies;

  constructor(private readonly ctx: EngineContext) {
    const o = ctx.opts;
    this.cookies = new SynCookies(o.synproxySecret);
    this.held = new HeldPackets(Math.max(1, o.synproxyMaxStoredAcks), o.synproxyMaxStoredTotal);
  }

  /** Connects the engine's side (built after this object). */
  bind(
    conns: SynProxyConnections,
    replay: SynProxyReplay,
    replay6: SynProxyReplay6,
    unknownFlow: UnknownFlowReplies,
  ): void {
    this.conns = conns;
    this.replay = replay;
    this.replay6 = replay6;
    this.unknownFlow = unknownFlow;
  }

  /** Client packets held (out of the pool, not yet counted) while RS legs open. */
  get heldPackets(): number {
    return this.held.total;
  }

  /** The clock moved: cookie keys follow the minute. */
  onTick(now: number): void {
    this.cookies.rotate(this.cookies.minuteAt(now));
  }

  /** Cookie keys shared by a fleet (cookies.ts `useFleetKey`), current from engine time `now`. */
  useFleetKey(fleetKey: Uint8Array, originMs: number, now: number): void {
    this.cookies.useFleetKey(fleetKey, originMs, now);
  }

  // ---- hooks of the client→RS path ----------------------------------------------------

  /**
   * A client packet to a SYNPROXY service whose connection (c, or -1) is not
   * opening: answers SYNs, checks cookie ACKs and opens connections. Returns
   * the connection to carry on with, or -1 when p was consumed. p is IPv4,
   * or IPv6 (fixed header only, ipHl 40) for an IPv6 service.
   */
  onClientPacket(p: Packet, svc: number, ipHl: number, c: number): number {
    const ctx = this.ctx;
    const t = ctx.table;
    const flags = ctx.tcp.flags;
    const v6 = (p.buf[p.start]! & 0xf0) === 0x60;
    // A tuple a new connection may take over: its entry is closing, or its RS takes no new ones.
    const reuse = c >= 0 ? this.conns.reuseReason(c) : -1;
    if (c >= 0 && reuse < 0) return c;
    if ((flags & TCP_SYN) !== 0) {
      if ((flags & (TCP_ACK | TCP_RST | TCP_FIN)) === 0) {
        // Stateless even on a reusable tuple: only a valid cookie may replace its entry.
        if (c >= 0) t.flags[c] = t.flags[c]! | CF_SP_REUSE_SYN;
        this.answerSyn(p, svc, ipHl, v6);
        return -1;
      }
      if (c >= 0) return c;
      this.answerUnknown(p, ipHl, v6);
      return -1;
    }
    if ((flags & TCP_ACK) === 0 || (flags & TCP_RST) !== 0) {
      if (c >= 0) return c;
      this.answerUnknown(p, ipHl, v6);
      return -1;
    }
    // Until a SYN came on it, an ACK on a reusable tuple is the old connection's: no cookie to check.
    if (c >= 0 && (t.flags[c]! & CF_SP_REUSE_SYN) === 0) return c;
    const data = this.cookies.check(p.buf, p.start, p.start + ipHl);
    if (data < 0) {
      // On a reusable tuple an ordinary ACK belongs to the old connection.
      if (c >= 0) return c;
      if (v6) reflectRst6(p);
      else reflectReset(p, ipHl);
      ctx.countSvc(svc, C.synproxy_cookie_invalid);
      ctx.count(C.rst_sent);
      ctx.emit(p);
      return -1;
    }
    if (
      ctx.opts.synproxyDefer &&
      p.length - ipHl - ctx.tcp.headerLength === 0 &&
      (flags & TCP_FIN) === 0
    ) {
      ctx.dropSvc(p, svc, C.synproxy_deferred);
      return -1;
    }
    if (c >= 0) {
      ctx.countSvc(svc, reuse);
      this.conns.release(c);
    }
    this.open(p, svc, ipHl, data, v6);
    return -1;
  }

  private answerUnknown(p: Packet, ipHl: number, v6: boolean): void {
    if (v6) this.unknownFlow.answer6(p);
    else this.unknownFlow.answer(p, ipHl);
  }

  /** A client packet while c's RS leg opens: held for the replay, within bounds. */
  onPendingClient(p: Packet, c: number, ipHl: number): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const svc = t.svc[c]!;
    const flags = ctx.tcp.flags;
    if ((flags & TCP_RST) !== 0) {
      // The client gave up: so does the LB, and it tells the RS.
      const r = ctx.pool.take();
      const seq = (t.lbIsn[c]! + 1) >>> 0;
      if (t.replyIsV6(c))
        craftRst6(r, t.lip6, c * 16, t.lport[c]!, t.rip6, c * 16, t.rport[c]!, seq, 0, false);
      else craftRst(r, t.lip[c]!, t.lport[c]!, t.rip[c]!, t.rport[c]!, seq, 0, false);
      ctx.count(C.rst_sent);
      ctx.emit(r);
      this.conns.release(c);
      ctx.dropSvc(p, svc, C.synproxy_setup_dropped);
      return;
    }
    if ((flags & TCP_SYN) !== 0) {
      ctx.dropSvc(p, svc, C.synproxy_setup_dropped);
      return;
    }
    p = compactForHold(ctx.pool, p);
    const tcp = ctx.tcp.wrap(p.buf, p.start + ipHl);
    if (!this.held.push(t.spSlot[c]!, p)) {
      ctx.dropSvc(p, svc, C.synproxy_ack_overflow);
      return;
    }
    ctx.countSvc(svc, C.synproxy_ack_stored);
    const len = p.length - ipHl - tcp.headerLength + ((flags & TCP_FIN) !== 0 ? 1 : 0);
    loadU32Plus(t.clientNxt, c, p.buf, tcp.off + TcpField.Seq, len);
  }

  /** Under SYNPROXY the client SACKs RS data in the cookie's sequence space: move its edges to the RS's. */
  translateClientSack(c: number, sackAt: number, sackBlocks: number): void {
    shiftSackEdges(this.ctx.tcp, sackAt, sackBlocks, this.ctx.table.ackDelta[c]!);
  }

  /** True when the client's ack (cookie space) is the RS's first data byte (fdataSeq, RS space). */
  acksFirstRsByte(b: Uint8Array, tcpOff: number, c: number): boolean {
    const t = this.ctx.table;
    return equalsU32AtPlus(b, tcpOff + TcpField.Ack, t.ackDelta, c, t.fdataSeq, c, 0);
  }

  /**
   * The translation step client→RS (after the FULLNAT one): the client acks
   * in the cookie's space, moved to the RS's; its window unscaled for an RS
   * that refused window scaling.
   */
  translateToRealServer(b: Uint8Array, tcpOff: number, c: number, d: ChecksumDelta): void {
    const t = this.ctx.table;
    if ((b[tcpOff + TcpField.Flags]! & TCP_ACK) !== 0)
      rewriteSeqField(b, tcpOff + TcpField.Ack, t.ackDelta[c]!, d);
    if ((t.flags[c]! & CF_SP_WIN_IN) !== 0) {
      const wo = tcpOff + TcpField.Window;
      const w = get16(b, wo);
      let nw = w * (1 << cookieWscaleField(t.spData[c]!));
      if (nw > 0xffff) nw = 0xffff;
      d.replaceWord(w, nw);
      set16(b, wo, nw);
    }
  }

  // ---- hooks of the RS→client path ----------------------------------------------------

  /** An RS packet while c's RS leg opens: its SYN+ACK, its refusal, or nothing the LB expects. */
  onRsPacketDuringSetup(p: Packet, c: number, ipHl: number): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const b = p.buf;
    const tcpOff = p.start + ipHl;
    const flags = ctx.tcp.flags;
    const ackOk =
      (flags & TCP_ACK) !== 0 &&
      equalsU32AtPlus(b, tcpOff + TcpField.Ack, this.zero, 0, t.lbIsn, c, 1);
    if ((flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) === (TCP_SYN | TCP_ACK) && ackOk) {
      this.establish(p, c, ipHl);
      return;
    }
    if ((flags & TCP_RST) !== 0 && (ackOk || (flags & TCP_ACK) === 0)) {
      ctx.dropSvc(p, t.svc[c]!, C.synproxy_rs_refused);
      this.resetClient(c);
      this.conns.release(c);
      return;
    }
    if ((flags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_ACK && !ackOk) {
      // The RS still holds the LIP:lport tuple in TIME_WAIT and acks its old connection.
      // Answer as a client stack in SYN_SENT would (RST, seq = its ack: that ends the
      // TIME_WAIT), then send the SYN again at once; bounded by the SYN retries.
      const slot = t.spSlot[c]!;
      const tries = this.held.retriesOf(slot);
      if (t.replyIsV6(c)) reflectRst6(p);
      else reflectReset(p, ipHl);
      ctx.countSvc(t.svc[c]!, C.synproxy_rs_stale_ack);
      ctx.count(C.rst_sent);
      ctx.emit(p);
      if (tries < ctx.opts.synproxySynRetries) {
        this.held.setRetries(slot, tries + 1);
        this.sendRsSyn(c);
        ctx.countSvc(t.svc[c]!, C.synproxy_rs_syn_retransmitted);
      }
      return;
    }
    ctx.dropSvc(p, t.svc[c]!, C.synproxy_setup_dropped);
  }

  /**
   * Ack-storm guard: true when the RS packet is a pure ACK (no data, SYN,
   * FIN, RST or SACK blocks) identical in seq, ack and window to more than
   * `synproxyAckStormThreshold` before it in a row. A window update or any
   * progress differs, so only true repeats are cut.
   */
  isAckStorm(
    b: Uint8Array,
    tcpOff: number,
    c: number,
    flags: number,
    payloadLen: number,
    sackBlocks: number,
  ): boolean {
    const t = this.ctx.table;
    if (
      (flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK)) !== TCP_ACK ||
      payloadLen !== 0 ||
      sackBlocks !== 0
    ) {
      t.stormCount[c] = 0;
      return false;
    }
    const win = get16(b, tcpOff + TcpField.Window);
    if (
      t.stormCount[c] !== 0 &&
      t.rsWin[c] === win &&
      equalsU32At(b, tcpOff + TcpField.Seq, t.rsNxt, c) &&
      equalsU32At(b, tcpOff + TcpField.Ack, t.rsAck, c)
    ) {
      if (t.stormCount[c]! < 255) t.stormCount[c]!++;
      return t.stormCount[c]! > this.ctx.opts.synproxyAckStormThreshold;
    }
    t.stormCount[c] = 1;
    t.rsWin[c] = win;
    loadU32Plus(t.rsAck, c, b, tcpOff + TcpField.Ack, 0);
    return false;
  }

  /**
   * The translation step RS→client (after the FULLNAT one): the client knows
   * the RS's bytes by the cookie's sequence space; RS windows rescaled to the
   * shift the LB announced.
   */
  translateToClient(b: Uint8Array, tcpOff: number, c: number, d: ChecksumDelta): void {
    const t = this.ctx.table;
    rewriteSeqField(b, tcpOff + TcpField.Seq, -t.ackDelta[c]!, d);
    if ((t.flags[c]! & CF_SP_WIN_OUT) !== 0) {
      const wo = tcpOff + TcpField.Window;
      const w = get16(b, wo);
      let nw = Math.floor(
        (w * (1 << connRsWscale(t.spData[c]!))) / (1 << this.ctx.opts.synproxyWscale),
      );
      if (nw > 0xffff) nw = 0xffff;
      d.replaceWord(w, nw);
      set16(b, wo, nw);
    }
  }

  // ---- hooks of the connection life cycle ---------------------------------------------

  /**
   * The timer of opening connection c fired: resend the RS SYN, or after the
   * last retry refuse the client. Returns true while c lives on.
   */
  onTimer(c: number): boolean {
    const ctx = this.ctx;
    const t = ctx.table;
    const slot = t.spSlot[c]!;
    const tries = this.held.retriesOf(slot);
    if (tries < ctx.opts.synproxySynRetries) {
      this.held.setRetries(slot, tries + 1);
      this.sendRsSyn(c);
      ctx.countSvc(t.svc[c]!, C.synproxy_rs_syn_retransmitted);
      t.expires[c] = ctx.now + ctx.opts.synproxySynRtoMs * 2 ** (tries + 1);
      t.armTimer(c);
      return true;
    }
    ctx.countSvc(t.svc[c]!, C.synproxy_rs_timeout);
    this.resetClient(c);
    return false;
  }

  /** Opening connection c goes: the packets held for it return to the pool, counted discarded. */
  onRelease(c: number): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const slot = t.spSlot[c]!;
    if (slot < 0) return;
    const n = this.held.count(slot);
    for (let k = 0; k < n; k++) {
      ctx.pool.give(this.held.at(slot, k));
      ctx.countSvc(t.svc[c]!, C.synproxy_ack_discarded);
    }
    this.held.release(slot);
    t.spSlot[c] = -1;
  }

  /** The RS's next sequence number as the client counts it (cookie space), for an RST. */
  rsNxtForClient(c: number): number {
    const t = this.ctx.table;
    return (t.rsNxt[c]! - t.ackDelta[c]!) >>> 0;
  }

  // ---- the steps ------------------------------------------------------------------------

  /** Answers the client SYN p with the LB's cookie SYN+ACK (p itself, rewritten). */
  private answerSyn(p: Packet, svc: number, ipHl: number, v6: boolean): void {
    const ctx = this.ctx;
    const opts = ctx.opts;
    const b = p.buf;
    const tcpOff = p.start + ipHl;
    const o = ctx.opt.parse(b, tcpOff + TCP_MIN_HEADER, tcpOff + ctx.tcp.headerLength);
    const clientMss = o.mss > 0 ? o.mss : 536;
    let mss = clientMss < opts.synproxyMss ? clientMss : opts.synproxyMss;
    // The cookie carries what the RS may send the client: the client's own MSS (which already
    // counts its family's header), capped as for IPv4.
    const data = cookieData(mssIndex(mss), o.wscale, o.sackPermitted, false);
    this.cookies.make(b, p.start, tcpOff, data, this.u32, 0);
    loadU32Plus(this.u32, 1, b, tcpOff + TcpField.Seq, 1);
    if (v6) {
      this.answerSyn6(p, svc, o.wscale, o.sackPermitted, clientMss);
      return;
    }
    if (ctx.policy === 'fullnat') {
      // What the narrowest RS path leaves once the TOA is in (the RS is not chosen yet).
      const targets = ctx.reg.services[svc]!.targets;
      for (let i = 0; i < targets.length; i++) {
        const pathMss = ctx.pmtu.of(targets[i]!.index) - 40 - TOA_V4_LEN;
        if (pathMss > 0 && pathMss < mss) mss = pathMss;
      }
    }
    // Invite no more than the LB holds for the RS: the ACK plus n−1 segments.
    const n = this.held.perConn;
    let win = (n > 1 ? n - 1 : 1) * mss;
    if (win > 0xffff) win = 0xffff;
    reflectCookieSynAck(
      p,
      ipHl,
      this.u32,
      mss,
      o.wscale >= 0 ? opts.synproxyWscale : -1,
      o.sackPermitted,
      win,
      opts.synproxySynAckTtl,
    );
    ctx.countSvc(svc, C.synproxy_syn_answered);
    ctx.emit(p);
  }

  /**
   * The cookie SYN+ACK to an IPv6 client (cookie and client ISN + 1 in u32).
   * The MSS it announces bounds the client's segments, which reach the RS
   * with the 20-byte TOA: `synproxyMss` is an IPv4 figure with room for the
   * 8-byte TOA (1452 = 1500 − 20 − 20 − 8), so an IPv6 service takes off what
   * IPv6 costs more — 12 for the larger TOA, and 20 for the larger IP header
   * toward an IPv6 RS (1452 → 1420 = 1500 − 40 − 20 − 20); toward an IPv4 RS
   * (FNAT64) the RS leg's header is IPv4's and 12 is all (1440, which is
   * also what a 1500-byte IPv6 client leg carries). The narrowest of the
   * service's RSs counts, its family unknown until one is scheduled; under
   * fullnat also each RS path (its MTU less its leg's headers and the TOA).
   */
  private answerSyn6(
    p: Packet,
    svc: number,
    wscale: number,
    sack: boolean,
    clientMss: number,
  ): void {
    const ctx = this.ctx;
    const opts = ctx.opts;
    const reg = ctx.reg;
    let mss = clientMss;
    const fullnat = ctx.policy === 'fullnat';
    const targets = reg.services[svc]!.targets;
    const toaGrowth = TOA_V6_LEN - TOA_V4_LEN;
    for (let i = 0; i < targets.length; i++) {
      const rsV6 = reg.rsV6[targets[i]!.index] === 1;
      const cap = opts.synproxyMss - toaGrowth - (rsV6 ? IPV6_HEADER - IPV4_MIN_HEADER : 0);
      if (cap > 0 && cap < mss) mss = cap;
      if (fullnat) {
        const pathMss =
          targets[i]!.mtu - (rsV6 ? IPV6_HEADER : IPV4_MIN_HEADER) - TCP_MIN_HEADER - TOA_V6_LEN;
        if (pathMss > 0 && pathMss < mss) mss = pathMss;
      }
    }
    if (targets.length === 0) {
      const cap = opts.synproxyMss - toaGrowth - (IPV6_HEADER - IPV4_MIN_HEADER);
      if (cap < mss) mss = cap;
    }
    const n = this.held.perConn;
    let win = (n > 1 ? n - 1 : 1) * mss;
    if (win > 0xffff) win = 0xffff;
    reflectCookieSynAck6(
      p,
      this.u32,
      mss,
      wscale >= 0 ? opts.synproxyWscale : -1,
      sack,
      win,
      opts.synproxySynAckTtl,
    );
    ctx.countSvc(svc, C.synproxy_syn_answered);
    ctx.emit(p);
  }

  /** A valid cookie ACK: opens the connection and its RS leg, and holds p for the replay. */
  private open(p: Packet, svc: number, ipHl: number, data: number, v6: boolean): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const b = p.buf;
    const tcpOff = p.start + ipHl;
    if (this.held.full) {
      ctx.dropSvc(p, svc, C.synproxy_ack_overflow);
      return;
    }
    const c = v6
      ? this.conns.newConnection6(p, svc, tcpOff, -1, ctx.opts.synproxySynRtoMs)
      : this.conns.newConnection(p, svc, tcpOff, -1, ctx.opts.synproxySynRtoMs);
    if (c < 0) return;
    ctx.countSvc(svc, C.synproxy_cookie_valid);
    t.flags[c] = t.flags[c]! | CF_SYNPROXY | CF_SP_PENDING;
    loadU32Plus(t.ackDelta, c, b, tcpOff + TcpField.Ack, -1);
    t.spData[c] = data;
    const slot = this.held.alloc();
    t.spSlot[c] = slot;
    const wc = cookieWscale(data);
    let win = ctx.tcp.window * (wc > 0 ? 1 << wc : 1);
    if (win > 0xffff) win = 0xffff;
    this.held.setWindow(slot, win);
    this.conns.setState(c, TcpState.None, TcpState.SynSent);
    this.sendRsSyn(c);
    this.onPendingClient(p, c, ipHl);
  }

  /** Sends (or resends) the LB→RS SYN of opening connection c. */
  private sendRsSyn(c: number): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const data = t.spData[c]!;
    // Under lvs the SYN carries the TOA too, as LVS puts it on the client's SYN.
    const toa = ctx.policy === 'lvs' && t.shift[c] === 0;
    const q = ctx.pool.take();
    writeRsSyn(
      q,
      t,
      c,
      cookieMss(data),
      cookieWscale(data),
      cookieSack(data),
      this.held.windowOf(t.spSlot[c]!),
      toa,
      ctx.opts.toaV6Kind,
    );
    if (toa) ctx.countSvc(t.svc[c]!, C.toa_inserted_syn);
    ctx.emit(q);
  }

  /**
   * The RS's SYN+ACK: now its ISN is known. The SYN+ACK itself goes no further
   * (the client finished its handshake with the LB); the held client packets
   * are replayed, and the first of them completes the RS's handshake.
   */
  private establish(p: Packet, c: number, ipHl: number): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const b = p.buf;
    const tcpOff = p.start + ipHl;
    const svc = t.svc[c]!;
    const seqAt = tcpOff + TcpField.Seq;
    loadU32Plus(t.fdataSeq, c, b, seqAt, 1);
    loadU32Plus(t.rsNxt, c, b, seqAt, 1);
    // ackDelta held the cookie ISN: it becomes RS ISN − cookie ISN.
    loadU32Plus(t.ackDelta, c, b, seqAt, -t.ackDelta[c]!);
    const hl = ctx.tcp.headerLength;
    const rsWs =
      hl > TCP_MIN_HEADER ? ctx.opt.parse(b, tcpOff + TCP_MIN_HEADER, tcpOff + hl).wscale : -1;
    const data = t.spData[c]!;
    const wc = cookieWscale(data);
    // Scaling is in force toward the client iff it offered it (the LB then offered
    // synproxyWscale), toward the RS iff the client did and the RS answered.
    const clientScaled = wc >= 0;
    const rsScaled = clientScaled && rsWs >= 0;
    const wr = rsScaled ? (rsWs > 14 ? 14 : rsWs) : 0;
    const ws = clientScaled ? ctx.opts.synproxyWscale : 0;
    let f = (t.flags[c]! & ~CF_SP_PENDING) | CF_FDATA_KNOWN;
    if (wr !== ws) f |= CF_SP_WIN_OUT;
    if (clientScaled && !rsScaled && wc > 0) f |= CF_SP_WIN_IN;
    t.flags[c] = f;
    t.spData[c] = connData(data, wr);
    this.conns.setState(c, TcpState.SynSent, TcpState.SynRecv);
    t.expires[c] = ctx.now + ctx.timeoutsMs[TcpState.SynRecv]!;
    t.armTimer(c);
    ctx.dropSvc(p, svc, C.synproxy_rs_synack);

    const slot = t.spSlot[c]!;
    t.spSlot[c] = -1;
    const n = this.held.count(slot);
    const v6 = (f & CF_IPV6) !== 0;
    for (let k = 0; k < n; k++) {
      const q = this.held.at(slot, k);
      ctx.countSvc(svc, C.synproxy_ack_replayed);
      if (v6) {
        // Held as the IPv6 path left it: the fixed header, TCP right after.
        ctx.tcp.wrap(q.buf, q.start + IPV6_HEADER);
        this.replay6.toRealServer6(q, svc, c);
        continue;
      }
      const qHl = ctx.ip.wrap(q.buf, q.start).headerLength;
      ctx.tcp.wrap(q.buf, q.start + qHl);
      this.replay.toRealServer(q, svc, qHl, c);
    }
    this.held.release(slot);
  }

  /** RST to the client of opening connection c, in the client's spaces. */
  private resetClient(c: number): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const svc = t.svc[c]!;
    const r = ctx.pool.take();
    const seq = (t.ackDelta[c]! + 1) >>> 0;
    if ((t.flags[c]! & CF_IPV6) !== 0)
      craftRst6(
        r,
        ctx.reg.svcVips6,
        svc * 16,
        ctx.reg.svcPorts[svc]!,
        t.cip6,
        c * 16,
        t.cport[c]!,
        seq,
        t.clientNxt[c]!,
        true,
      );
    else
      craftRst(
        r,
        ctx.reg.svcVips[svc]!,
        ctx.reg.svcPorts[svc]!,
        t.cip[c]!,
        t.cport[c]!,
        seq,
        t.clientNxt[c]!,
        true,
      );
    ctx.count(C.rst_sent);
    ctx.emit(r);
  }
}
