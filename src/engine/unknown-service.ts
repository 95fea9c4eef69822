import type { EngineContext } from './context.js';
import { C } from './counters.js';
import {
  ICMPV6_ADDRESS_UNREACHABLE,
  ICMPV6_PORT_UNREACHABLE,
  ICMP_HOST_UNREACHABLE,
  ICMP_PORT_UNREACHABLE,
  craftDestUnreachable,
  craftDestUnreachable6,
} from './craft.js';
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
 *
 * IPv6 (`answer6`) the same way with ICMPv6 destination unreachable (RFC
 * 4443 §3.1): port unreachable (code 4) when the destination is an IPv6
 * VIP, address unreachable (code 3, IPv6's host unreachable) otherwise;
 * never for a RST, nor to or from a multicast (ff00::/8), unspecified or
 * loopback address (RFC 4443 §2.4 (e)). The same bucket and counters as
 * IPv4's.
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

  /**
   * `answer` for an IPv6 packet: fixed header at p.start (the IPv6 path has
   * taken extension headers out, so the quote is the packet as it would
   * have been forwarded), `ctx.tcp` wrapped. p stays the caller's to drop.
   */
  answer6(p: Packet): void {
    const ctx = this.ctx;
    const b = p.buf;
    const src = p.start + 8;
    const dst = p.start + 24;
    if (ctx.tcp.rst || !unicast6(b, src) || !unicast6(b, dst)) return;
    if (!this.bucket.take(ctx.now)) {
      ctx.count(C.icmp_unreachable_ratelimited);
      return;
    }
    const code = ctx.reg.isVip6At(b, dst) ? ICMPV6_PORT_UNREACHABLE : ICMPV6_ADDRESS_UNREACHABLE;
    const r = ctx.pool.take();
    craftDestUnreachable6(r, b, dst, b, src, code, b, p.start, p.length);
    ctx.count(C.icmp_unreachable_sent);
    ctx.emit(r);
  }
}

/** Not multicast (ff00::/8), unspecified (::) nor loopback (::1): an address an error may name. */
function unicast6(b: Uint8Array, o: number): boolean {
  if (b[o] === 0xff) return false;
  let high = 0;
  for (let k = 0; k < 15; k++) high |= b[o + k]!;
  return high !== 0 || b[o + 15]! > 1;
}
