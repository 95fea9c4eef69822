import { ICMP_ECHO_REPLY, IcmpField, finishIcmpChecksum } from '../wire/icmp.js';
import { Ipv4Field } from '../wire/ipv4.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import type { Packet } from './packet.js';
import { TokenBucket } from './token-bucket.js';

/**
 * `ping VIP`: an echo request to a VIP is turned around in place into the
 * reply its host would send (RFC 792: addresses swapped, type 0, the
 * identifier, sequence number and data as they came), as monitoring that
 * pings service addresses expects of LVS and DPVS. `icmp_echo off` drops
 * them instead; at most `icmpRateLimit` a second, `icmpRateBurst` at once.
 */
export class IcmpEcho {
  private readonly bucket: TokenBucket;

  constructor(private readonly ctx: EngineContext) {
    this.bucket = new TokenBucket(ctx.opts.icmpRateLimit, ctx.opts.icmpRateBurst);
  }

  /** Answers the echo request p (its ICMP message at `icmp`, `len` bytes, checksum checked). */
  answer(p: Packet, icmp: number, len: number): void {
    const ctx = this.ctx;
    const b = p.buf;
    const s = p.start + Ipv4Field.Src;
    const s8 = b[s]!;
    // No reply to a source that names no single host (RFC 1122 3.2.2.6, 3.2.1.3).
    if (!ctx.opts.icmpEcho || s8 === 0 || s8 === 127 || s8 >= 224) {
      ctx.drop(p, C.icmp_echo_dropped);
      return;
    }
    if (!this.bucket.take(ctx.now)) {
      ctx.drop(p, C.icmp_rate_limited);
      return;
    }
    const d = p.start + Ipv4Field.Dst;
    for (let k = 0; k < 4; k++) {
      const x = b[s + k]!;
      b[s + k] = b[d + k]!;
      b[d + k] = x;
    }
    b[p.start + Ipv4Field.Ttl] = 64;
    ctx.ip.wrap(b, p.start).updateChecksum();
    b[icmp + IcmpField.Type] = ICMP_ECHO_REPLY;
    finishIcmpChecksum(b, icmp, len);
    ctx.count(C.icmp_echo_replied);
    ctx.emit(p);
  }
}
