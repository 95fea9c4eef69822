import {
  ICMP_DEST_UNREACH,
  ICMP_ECHO,
  ICMP_HEADER,
  ICMP_TIME_EXCEEDED,
  IcmpField,
  icmpChecksumOk,
  quotedIpv4HeaderLength,
} from '../wire/icmp.js';
import { Ipv4Field } from '../wire/ipv4.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import { IcmpEcho } from './icmp-echo.js';
import { IcmpErrors } from './icmp-error.js';
import type { Icmp6Errors } from './icmp6-error.js';
import type { Packet } from './packet.js';

/**
 * The ICMP the engine receives (Engine.process hands it every unfragmented
 * IPv4 ICMP packet): checks the message, then by destination and type —
 * an echo request to a VIP is answered (icmp-echo.ts); a destination
 * unreachable or time exceeded to a VIP (from the client's side) or to a LIP
 * (from an RS's side) is translated for its connection (icmp-error.ts).
 * Everything else is dropped and counted, so every message ends in exactly
 * one counter: forwarded_packets or an icmp_* drop.
 */
export class IcmpInput {
  private readonly echo: IcmpEcho;
  private readonly errors: IcmpErrors;

  constructor(
    private readonly ctx: EngineContext,
    errors6: Icmp6Errors,
  ) {
    this.echo = new IcmpEcho(ctx);
    this.errors = new IcmpErrors(ctx, errors6);
  }

  /** An ICMP packet whose IPv4 header (`ipHl` bytes) is checked. Takes ownership of p. */
  receive(p: Packet, ipHl: number): void {
    const ctx = this.ctx;
    const b = p.buf;
    const icmp = p.start + ipHl;
    const len = p.length - ipHl;
    if (len < ICMP_HEADER || !icmpChecksumOk(b, icmp, len)) {
      ctx.drop(p, C.icmp_malformed_dropped);
      return;
    }
    const type = b[icmp + IcmpField.Type]!;
    const error = type === ICMP_DEST_UNREACH || type === ICMP_TIME_EXCEEDED;
    const dst = p.start + Ipv4Field.Dst;
    const reg = ctx.reg;
    const toVip = reg.vipSet.getAt(b, dst, -1) >= 0;
    if (toVip && type === ICMP_ECHO) {
      this.echo.answer(p, icmp, len);
      return;
    }
    if (!error || (!toVip && reg.lipSet.getAt(b, dst, -1) < 0)) {
      ctx.drop(p, C.icmp_unhandled_dropped);
      return;
    }
    const qHl = quotedIpv4HeaderLength(b, icmp, len);
    if (qHl === 0) {
      ctx.drop(p, C.icmp_malformed_dropped);
      return;
    }
    if (toVip) this.errors.fromClientSide(p, icmp, len, qHl);
    else this.errors.fromRealServerSide(p, icmp, len, qHl);
  }
}
