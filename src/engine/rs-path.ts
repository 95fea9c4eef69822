import { loadU32Plus, set16 } from '../wire/bytes.js';
import { alignedRangeSum, checksumAdjust } from '../wire/checksum.js';
import { TCP_ACK, TCP_FIN, TCP_MIN_HEADER, TCP_SYN, TcpField } from '../wire/tcp.js';
import { TOA_V4_LEN } from '../wire/toa.js';
import { CF_FDATA_KNOWN, CF_IPV6, CF_SP_PENDING, CF_SYNPROXY } from './conn-table.js';
import type { Connections } from './connections.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import type { Ipv6RsPath } from './ipv6-rs-path.js';
import type { Nat } from './nat.js';
import { shiftSackEdges } from './seq-rewrite.js';
import type { Packet } from './packet.js';
import { STAT_OUT_BYTES, STAT_OUT_PACKETS } from './services.js';
import type { SynProxy } from './synproxy/synproxy.js';
import { TcpState, nextStateFromRs, tcpEvent } from './tcp-state.js';

/**
 * RS → client (DPVS's tcp_fnat_out_handler), for a connection found by its
 * reply tuple: adjust the RS's options (MSS clamp, SACK edges), step the
 * state, translate, send. `ctx.ip`/`ctx.tcp` are wrapped around the packet.
 */
export class RsPath {
  constructor(
    private readonly ctx: EngineContext,
    private readonly conns: Connections,
    private readonly nat: Nat,
    private readonly synproxy: SynProxy,
    private readonly v64: Ipv6RsPath,
  ) {}

  /** A packet of connection c (found by its reply tuple: it is to a LIP). */
  fromRealServer(p: Packet, ipHl: number, c: number): void {
    const ctx = this.ctx;
    const b = p.buf;
    const tcp = ctx.tcp;
    const t = ctx.table;
    const tcpOff = p.start + ipHl;
    if ((t.flags[c]! & (CF_SP_PENDING | CF_IPV6)) !== 0) {
      // SYNPROXY's RS leg opening (IPv4 or FNAT64 client), or FNAT64 (an IPv6 client behind this IPv4 reply tuple).
      if ((t.flags[c]! & CF_SP_PENDING) !== 0) this.synproxy.onRsPacketDuringSetup(p, c, ipHl);
      else this.v64.fromRealServer64(p, ipHl, c);
      return;
    }
    const svc = t.svc[c]!;
    const flags = tcp.flags;
    const syn = (flags & TCP_SYN) !== 0;
    const ackFlag = (flags & TCP_ACK) !== 0;
    const fin = (flags & TCP_FIN) !== 0;
    const hl = tcp.headerLength;
    const payloadLen = p.length - ipHl - hl;

    if (syn && ackFlag) {
      // The RS's ISN: the client's first ack of RS+1 concludes the handshake.
      loadU32Plus(t.fdataSeq, c, b, tcpOff + TcpField.Seq, 1);
      t.flags[c] = t.flags[c]! | CF_FDATA_KNOWN;
    }
    let sackBlocks = 0;
    if (hl > TCP_MIN_HEADER) {
      // The RS's options: its SYN+ACK's MSS lowered to leave room for the TOA (and,
      // under fullnat, to what the RS path carries); SACK edges moved back into the client's space.
      const o = ctx.opt.parse(b, tcpOff + TCP_MIN_HEADER, tcpOff + hl);
      if (syn && ctx.opts.mssAdjust && o.mss > 0) this.clampMss(svc, c);
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

    // In LAST_ACK (the RS closed first, then the client) the RS's ack of the client's FIN ends it.
    const finAcked = t.state[c] === TcpState.LastAck && ackFlag && this.acksClientFin(b, tcpOff, c);
    this.conns.advance(c, nextStateFromRs(t.state[c]!, tcpEvent(flags, finAcked)));
    loadU32Plus(t.rsNxt, c, b, tcpOff + TcpField.Seq, payloadLen + (syn ? 1 : 0) + (fin ? 1 : 0));
    this.nat.toClient(c, ackFlag);
    // Traffic stats of the service and the RS, written out here rather than in a method: a call
    // would take V8's inlining budget for this function, and the reply lookup above (the
    // costlier call) would then no longer be inlined (seen with --trace-turbo-inlining).
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

  /** True when the RS's ack covers the client's last byte (its FIN), in the LB→RS sequence space. */
  private acksClientFin(b: Uint8Array, tcpOff: number, c: number): boolean {
    const t = this.ctx.table;
    const o = tcpOff + TcpField.Ack;
    const ack = (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
    return ((ack - t.clientNxt[c]! - t.seqDelta[c]! - t.shift[c]!) | 0) === 0;
  }

  /** Lowers the MSS of the RS's SYN+ACK (parsed in `ctx.opt`) to leave room for the TOA. */
  private clampMss(svc: number, c: number): void {
    const ctx = this.ctx;
    const tcp = ctx.tcp;
    const o = ctx.opt;
    const b = tcp.buf;
    let mss = o.mss - TOA_V4_LEN;
    if (ctx.policy === 'fullnat') {
      const pathMss = ctx.pmtu.of(ctx.table.rs[c]!) - 40 - TOA_V4_LEN;
      if (pathMss < mss) mss = pathMss;
    }
    if (mss < o.mss && mss > 0) {
      // The option may sit at an odd offset, straddling two checksum words.
      const at = o.mssAt + 2;
      const before = alignedRangeSum(b, tcp.off, at, at + 2);
      set16(b, at, mss);
      tcp.checksum = checksumAdjust(tcp.checksum, before, alignedRangeSum(b, tcp.off, at, at + 2));
      ctx.countSvc(svc, C.mss_clamped);
    }
  }
}
