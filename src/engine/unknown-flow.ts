import type { EngineContext } from './context.js';
import { C } from './counters.js';
import { reflectRst, reflectRst6 } from './craft.js';
import type { Packet } from './packet.js';
import { TokenBucket } from './token-bucket.js';

/**
 * `unknown_flow_reset`: a segment of a flow the LB has no entry for — to a
 * VIP:vport without opening a connection, or to a LIP (an RS still talking
 * on a connection the LB forgot) — is answered with the RST its destination's
 * host would send (RFC 793), the segment itself turned around. Then the
 * client, or the RS, drops its side at once instead of retransmitting for
 * minutes. Never for a RST, nor to a multicast, broadcast, loopback or "this
 * network" source (RFC 1122 3.2.2). At most `unknownFlowResetRate` a second,
 * `unknownFlowResetBurst` at once; counted `no_conn_dropped` either way.
 */
export class UnknownFlowReplies {
  private bucket: TokenBucket;

  constructor(private readonly ctx: EngineContext) {
    this.bucket = new TokenBucket(ctx.opts.unknownFlowResetRate, ctx.opts.unknownFlowResetBurst);
  }

  /** The rate changed (reload). */
  optionsChanged(): void {
    const o = this.ctx.opts;
    if (
      o.unknownFlowResetRate !== this.bucket.rate ||
      o.unknownFlowResetBurst !== this.bucket.burst
    )
      this.bucket = new TokenBucket(o.unknownFlowResetRate, o.unknownFlowResetBurst);
  }

  /**
   * p (`ctx.ip`/`ctx.tcp` wrapped around it) belongs to no connection: it
   * becomes the RST and is sent, or it is dropped. Consumes p.
   */
  answer(p: Packet, ipHl: number): void {
    const s8 = this.ctx.ip.src >>> 24;
    if (!this.admit(p, s8 !== 0 && s8 !== 127 && s8 < 224)) return;
    reflectRst(p, ipHl);
    this.send(p);
  }

  /**
   * `answer` for an IPv6 segment (fixed header, TCP at 40, `ctx.tcp` wrapped
   * around it): never to a multicast (ff00::/8), unspecified or loopback
   * source. Consumes p.
   */
  answer6(p: Packet): void {
    const b = p.buf;
    const src = p.start + 8;
    let high = 0;
    for (let k = 0; k < 15; k++) high |= b[src + k]!;
    if (!this.admit(p, b[src] !== 0xff && high !== 0)) return;
    reflectRst6(p);
    this.send(p);
  }

  /**
   * False with p dropped when it gets no RST: the switch off, p a RST
   * itself, `hostSource` false (its source names no single host), or the
   * rate spent.
   */
  private admit(p: Packet, hostSource: boolean): boolean {
    const ctx = this.ctx;
    if (!ctx.opts.unknownFlowReset || ctx.tcp.rst || !hostSource) {
      ctx.drop(p, C.no_conn_dropped);
      return false;
    }
    if (!this.bucket.take(ctx.now)) {
      ctx.count(C.unknown_flow_rst_limited);
      ctx.drop(p, C.no_conn_dropped);
      return false;
    }
    return true;
  }

  /** Sends p, turned into the RST. */
  private send(p: Packet): void {
    const ctx = this.ctx;
    ctx.count(C.no_conn_dropped);
    ctx.count(C.unknown_flow_rst_sent);
    ctx.count(C.rst_sent);
    ctx.emit(p);
  }
}
