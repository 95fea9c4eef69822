import { ICMPV6_ECHO_REPLY, IcmpField, finishIcmpv6Checksum } from '../wire/icmp.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import type { Packet } from './packet.js';
import { TokenBucket } from './token-bucket.js';

/**
 * `ping -6 VIP`: an ICMPv6 echo request to an IPv6 VIP is turned around in
 * place into the reply its host would send (RFC 4443 4.2: addresses
 * swapped, type 129, identifier, sequence number and data as they came), as
 * icmp-echo.ts does for IPv4, under the same `icmp_echo` switch and rate.
 */
export class Icmp6Echo {
  private readonly bucket: TokenBucket;

  constructor(private readonly ctx: EngineContext) {
    this.bucket = new TokenBucket(ctx.opts.icmpRateLimit, ctx.opts.icmpRateBurst);
  }

  /** Answers the echo request p (fixed IPv6 header at p.start, the message at `icmp`, `len` bytes, checked). */
  answer(p: Packet, icmp: number, len: number): void {
    const ctx = this.ctx;
    const b = p.buf;
    const s = p.start + 8;
    if (!ctx.opts.icmpEcho || !unicastSource(b, s)) {
      ctx.drop(p, C.icmp_echo_dropped);
      return;
    }
    if (!this.bucket.take(ctx.now)) {
      ctx.drop(p, C.icmp_rate_limited);
      return;
    }
    const d = p.start + 24;
    for (let k = 0; k < 16; k++) {
      const x = b[s + k]!;
      b[s + k] = b[d + k]!;
      b[d + k] = x;
    }
    b[p.start + 7] = 64;
    b[icmp + IcmpField.Type] = ICMPV6_ECHO_REPLY;
    finishIcmpv6Checksum(b, p.start, icmp, len);
    ctx.count(C.icmp_echo_replied);
    ctx.emit(p);
  }
}

/** False for a source no reply may go to: multicast (ff00::/8), unspecified (::) or loopback (::1). */
function unicastSource(b: Uint8Array, s: number): boolean {
  if (b[s] === 0xff) return false;
  for (let k = 0; k < 15; k++) if (b[s + k] !== 0) return true;
  return b[s + 15] !== 0 && b[s + 15] !== 1;
}
