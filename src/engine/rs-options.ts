import { loadU32Plus, set16 } from '../wire/bytes.js';
import { alignedRangeSum, checksumAdjust } from '../wire/checksum.js';
import { TCP_ACK, TCP_MIN_HEADER, TCP_SYN, TcpField } from '../wire/tcp.js';
import { CF_FDATA_KNOWN, CF_SYNPROXY } from './conn-table.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import type { Packet } from './packet.js';
import { shiftSackEdges } from './seq-rewrite.js';
import type { SynProxy } from './synproxy/synproxy.js';

/**
 * An RS segment's TCP options on the way back to the client, the same for
 * every address family (rs-path.ts, ipv6-rs-path.ts): the RS's ISN noted
 * from its SYN+ACK (the client's first ack of it concludes the handshake,
 * and carries the TOA), the SYN+ACK's MSS lowered to leave room for the
 * TOA, SACK edges moved back into the client's space, and SYNPROXY's ACK
 * storm guard. The families differ only in numbers: the RS leg's IP header
 * and the TOA's length.
 */
export class RsOptions {
  constructor(
    private readonly ctx: EngineContext,
    private readonly synproxy: SynProxy,
  ) {}

  /**
   * Adjusts RS packet p of connection c (`ctx.tcp` wrapped around its TCP
   * header, `payloadLen` bytes of data). False when p was dropped (counted).
   * `rsIpHl`: the IP header of the RS leg (20 for IPv4, 40 for IPv6);
   * `toaLen`: the TOA the client's packets carry (8 or 20).
   */
  adjust(
    p: Packet,
    svc: number,
    c: number,
    payloadLen: number,
    rsIpHl: number,
    toaLen: number,
  ): boolean {
    const ctx = this.ctx;
    const tcp = ctx.tcp;
    const t = ctx.table;
    const b = p.buf;
    const tcpOff = tcp.off;
    const flags = tcp.flags;
    const hl = tcp.headerLength;
    const syn = (flags & TCP_SYN) !== 0;
    const ackFlag = (flags & TCP_ACK) !== 0;
    if (syn && ackFlag) {
      loadU32Plus(t.fdataSeq, c, b, tcpOff + TcpField.Seq, 1);
      t.flags[c] = t.flags[c]! | CF_FDATA_KNOWN;
    }
    let sackBlocks = 0;
    if (hl > TCP_MIN_HEADER) {
      const o = ctx.opt.parse(b, tcpOff + TCP_MIN_HEADER, tcpOff + hl);
      if (syn && ctx.mssAdjust && o.mss > 0) this.clampMss(svc, c, rsIpHl, toaLen);
      sackBlocks = o.sackBlocks;
      if (sackBlocks > 0 && ackFlag)
        shiftSackEdges(tcp, o.sackAt, sackBlocks, -t.seqDelta[c]! - t.shift[c]!);
    }
    if (
      (t.flags[c]! & CF_SYNPROXY) !== 0 &&
      this.synproxy.isAckStorm(b, tcpOff, c, flags, payloadLen, sackBlocks)
    ) {
      ctx.dropSvc(p, svc, C.synproxy_ack_storm);
      return false;
    }
    return true;
  }

  /**
   * Lowers the MSS of the RS's SYN+ACK (parsed in `ctx.opt`) by the TOA,
   * and under fullnat to what the RS path leaves: its MTU less the RS leg's
   * IP header, TCP's 20 and the TOA. The client's segments keep their
   * payload across FNAT64's header swap, so the RS leg's header is the one
   * that counts.
   */
  private clampMss(svc: number, c: number, rsIpHl: number, toaLen: number): void {
    const ctx = this.ctx;
    const tcp = ctx.tcp;
    const o = ctx.opt;
    const b = tcp.buf;
    let mss = o.mss - toaLen;
    if (ctx.policy === 'fullnat') {
      // The path's MTU, lowered by what its routers reported (path-mtu.ts).
      const pathMss = ctx.pmtu.of(ctx.table.rs[c]!) - rsIpHl - TCP_MIN_HEADER - toaLen;
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
