import { loadU32Plus, set16 } from '../wire/bytes.js';
import { alignedRangeSum, checksumAdjust } from '../wire/checksum.js';
import { IPV6_HEADER } from '../wire/ipv6.js';
import { TCP_ACK, TCP_FIN, TCP_MIN_HEADER, TCP_SYN, TcpField } from '../wire/tcp.js';
import { TOA_V6_LEN } from '../wire/toa.js';
import { CF_FDATA_KNOWN, CF_SP_PENDING, CF_SYNPROXY } from './conn-table.js';
import type { Connections } from './connections.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import type { Nat6 } from './nat6.js';
import type { Packet } from './packet.js';
import { shiftSackEdges } from './seq-rewrite.js';
import { STAT_OUT_BYTES, STAT_OUT_PACKETS } from './services.js';
import type { SynProxy } from './synproxy/synproxy.js';
import { TcpState, nextStateFromRs, tcpEvent } from './tcp-state.js';

/**
 * RS → client for connections with an IPv6 client: from an IPv6 RS to an
 * IPv6 LIP, or (FNAT64) from an IPv4 RS to an IPv4 LIP, which the IPv4 RS
 * path finds and hands over. MSS clamp (room for the 20-byte TOA), SACK
 * edges, state step, translation to VIP → CIP over IPv6.
 */
export class Ipv6RsPath {
  constructor(
    private readonly ctx: EngineContext,
    private readonly conns: Connections,
    private readonly nat: Nat6,
    private readonly synproxy: SynProxy,
  ) {}

  /** An IPv6 packet of connection c from its IPv6 RS: header at p.start (40 bytes), `ctx.tcp` wrapped after it. */
  fromRealServer(p: Packet, c: number): void {
    if ((this.ctx.table.flags[c]! & CF_SP_PENDING) !== 0) {
      this.synproxy.onRsPacketDuringSetup(p, c, IPV6_HEADER);
      return;
    }
    this.toClient(p, IPV6_HEADER, c, true);
  }

  /**
   * FNAT64: an IPv4 packet of connection c (an IPv6 client's) from its IPv4
   * RS; the IPv4 RS path found c and `ctx.ip`/`ctx.tcp` are wrapped around p.
   */
  fromRealServer64(p: Packet, ipHl: number, c: number): void {
    this.toClient(p, ipHl, c, false);
  }

  private toClient(p: Packet, ipHl: number, c: number, v6: boolean): void {
    const ctx = this.ctx;
    const b = p.buf;
    const tcp = ctx.tcp;
    const t = ctx.table;
    const tcpOff = p.start + ipHl;
    const svc = t.svc[c]!;
    const flags = tcp.flags;
    const syn = (flags & TCP_SYN) !== 0;
    const ackFlag = (flags & TCP_ACK) !== 0;
    const fin = (flags & TCP_FIN) !== 0;
    const hl = tcp.headerLength;
    const payloadLen = p.length - ipHl - hl;

    if (syn && ackFlag) {
      loadU32Plus(t.fdataSeq, c, b, tcpOff + TcpField.Seq, 1);
      t.flags[c] = t.flags[c]! | CF_FDATA_KNOWN;
    }
    let sackBlocks = 0;
    if (hl > TCP_MIN_HEADER) {
      const o = ctx.opt.parse(b, tcpOff + TCP_MIN_HEADER, tcpOff + hl);
      if (syn && ctx.opts.mssAdjust && o.mss > 0) this.clampMss(svc, c, v6);
      sackBlocks = o.sackBlocks;
      if (sackBlocks > 0 && ackFlag)
        shiftSackEdges(tcp, o.sackAt, sackBlocks, -t.seqDelta[c]! - t.shift[c]!);
    }
    if (
      (t.flags[c]! & CF_SYNPROXY) !== 0 &&
      this.synproxy.isAckStorm(b, tcpOff, c, flags, payloadLen, sackBlocks)
    ) {
      ctx.dropSvc(p, svc, C.synproxy_ack_storm);
      return;
    }
    if (!v6 && !this.nat.headerTo6(p, ipHl, c)) {
      ctx.dropSvc(p, svc, C.malformed_dropped);
      return;
    }
    const finAcked = t.state[c] === TcpState.LastAck && ackFlag && this.acksClientFin(b, tcpOff, c);
    this.conns.advance(c, nextStateFromRs(t.state[c]!, tcpEvent(flags, finAcked)));
    loadU32Plus(t.rsNxt, c, b, tcpOff + TcpField.Seq, payloadLen + (syn ? 1 : 0) + (fin ? 1 : 0));
    this.nat.toClient(p, c, ackFlag, v6);
    const reg = ctx.reg;
    const s = reg.services[svc]!;
    const bytes = p.length;
    s.counters[C.outbound_packets]!++;
    s.stats[STAT_OUT_PACKETS]!++;
    s.stats[STAT_OUT_BYTES]! += bytes;
    const rsStats = reg.realServers[t.rs[c]!]!.stats;
    rsStats[STAT_OUT_PACKETS]!++;
    rsStats[STAT_OUT_BYTES]! += bytes;
    ctx.forward(p);
  }

  private acksClientFin(b: Uint8Array, tcpOff: number, c: number): boolean {
    const t = this.ctx.table;
    const o = tcpOff + TcpField.Ack;
    const ack = (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
    return ((ack - t.clientNxt[c]! - t.seqDelta[c]! - t.shift[c]!) | 0) === 0;
  }

  /**
   * Lowers the MSS of the RS's SYN+ACK (parsed in `ctx.opt`) by the 20-byte
   * TOA, and under fullnat to what the RS path leaves: its MTU less the RS
   * leg's IP header (40, or 20 under FNAT64), TCP's 20 and the TOA. The
   * client's segments keep their payload across FNAT64's header swap, so
   * the RS leg's header is the one that counts.
   */
  private clampMss(svc: number, c: number, v6: boolean): void {
    const ctx = this.ctx;
    const tcp = ctx.tcp;
    const o = ctx.opt;
    const b = tcp.buf;
    let mss = o.mss - TOA_V6_LEN;
    if (ctx.policy === 'fullnat') {
      // The path's MTU, lowered by what its routers reported (path-mtu.ts).
      const pathMss =
        ctx.pmtu.of(ctx.table.rs[c]!) - (v6 ? IPV6_HEADER : 20) - TCP_MIN_HEADER - TOA_V6_LEN;
      if (pathMss < mss) mss = pathMss;
    }
    if (mss < o.mss && mss > 0) {
      const at = o.mssAt + 2;
      const before = alignedRangeSum(b, tcp.off, at, at + 2);
      set16(b, at, mss);
      tcp.checksum = checksumAdjust(tcp.checksum, before, alignedRangeSum(b, tcp.off, at, at + 2));
      ctx.countSvc(svc, C.mss_clamped);
    }
  }
}
