import type { EngineContext } from './context.js';
import { C } from './counters.js';
import { ICMP_HOST_UNREACHABLE, ICMP_PORT_UNREACHABLE, craftDestUnreachable } from './craft.js';
import type { Packet } from './packet.js';
import { TokenBucket } from './token-bucket.js';

/**
 * `unknown_service_action icmp`: answers a TCP packet that no service and
 * no LIP claims with ICMP destination unreachable from its destination,
 * quoting its IP header and first 8 bytes (RFC 792): port unreachable when
 * the destination is a VIP (the LB is that host), host unreachable
 * otherwise. Never for a RST, nor for a multicast, broadcast, loopback or
 * "this network" source or destination (RFC 1122 3.2.2, RFC 1812 4.3.2.7);
 * ICMP and fragments never get here. At most `icmpRateLimit` a second,
 * `icmpRateBurst` at once.
 */
export class UnknownServiceReplies {
  private readonly bucket: TokenBucket;

  constructor(private readonly ctx: EngineContext) {
    this.bucket = new TokenBucket(ctx.opts.icmpRateLimit, ctx.opts.icmpRateBurst);
  }

  /** Answers p (`ctx.ip`/`ctx.tcp` wrapped around it), if it may be; p stays the caller's to drop. */
  answer(p: Packet, ipHl: number): void {
    const ctx = this.ctx;
    const src = ctx.ip.src;
    const dst = ctx.ip.dst;
    const s8 = src >>> 24;
    const d8 = dst >>> 24;
    if (ctx.tcp.rst || s8 === 0 || s8 === 127 || s8 >= 224 || d8 === 0 || d8 === 127 || d8 >= 224)
      return;
    if (!this.bucket.take(ctx.now)) {
      ctx.count(C.icmp_unreachable_ratelimited);
      return;
    }
    const code = ctx.reg.isVip(dst) ? ICMP_PORT_UNREACHABLE : ICMP_HOST_UNREACHABLE;
    const r = ctx.pool.take();
    craftDestUnreachable(r, dst, src, code, 0, p.buf, p.start, ipHl);
    ctx.count(C.icmp_unreachable_sent);
    ctx.emit(r);
  }
}
