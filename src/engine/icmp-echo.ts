import { ICMP_ECHO_REPLY, IcmpField, finishIcmpChecksum } from '../wire/icmp.js';
import { Ipv4Field } from '../wire/ipv4.js';
import { swapBytes } from '../wire/swap.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import type { Packet } from './packet.js';
import { TokenBucket } from './token-bucket.js';

/**
 * What answering `ping` is in either family: the `icmp_echo` switch, no
 * reply to a source that names no single host, at most `icmpRateLimit` a
 * second (`icmpRateBurst` at once, a bucket per family), the reply emitted
 * where the request came from.
 */
export abstract class EchoResponder {
  private readonly bucket: TokenBucket;

  constructor(protected readonly ctx: EngineContext) {
    this.bucket = new TokenBucket(ctx.opts.icmpRateLimit, ctx.opts.icmpRateBurst);
  }

  /** Answers the echo request p (its message at `icmp`, `len` bytes, checksum checked). */
  abstract answer(p: Packet, icmp: number, len: number): void;

  /** False with p dropped and counted when it gets no reply; `unicastSource` is the family's verdict on its source. */
  protected admit(p: Packet, unicastSource: boolean): boolean {
    const ctx = this.ctx;
    if (!ctx.opts.icmpEcho || !unicastSource) {
      ctx.drop(p, C.icmp_echo_dropped);
      return false;
    }
    if (!this.bucket.take(ctx.now)) {
      ctx.drop(p, C.icmp_rate_limited);
      return false;
    }
    return true;
  }

  /** Sends p, turned into the reply. */
  protected reply(p: Packet): void {
    this.ctx.count(C.icmp_echo_replied);
    this.ctx.emit(p);
  }
}

/**
 * `ping VIP`: an echo request to a VIP is turned around in place into the
 * reply its host would send (RFC 792: addresses swapped, type 0, the
 * identifier, sequence number and data as they came), as monitoring that
 * pings service addresses expects of LVS and DPVS. `icmp_echo off` drops
 * them instead.
 */
export class IcmpEcho extends EchoResponder {
  answer(p: Packet, icmp: number, len: number): void {
    const b = p.buf;
    const s = p.start + Ipv4Field.Src;
    const s8 = b[s]!;
    // No reply to a source that names no single host (RFC 1122 3.2.2.6, 3.2.1.3).
    if (!this.admit(p, s8 !== 0 && s8 !== 127 && s8 < 224)) return;
    swapBytes(b, s, p.start + Ipv4Field.Dst, 4);
    b[p.start + Ipv4Field.Ttl] = 64;
    this.ctx.ip.wrap(b, p.start).updateChecksum();
    b[icmp + IcmpField.Type] = ICMP_ECHO_REPLY;
    finishIcmpChecksum(b, icmp, len);
    this.reply(p);
  }
}
