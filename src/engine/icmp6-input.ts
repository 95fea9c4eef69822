import {
  ICMPV6_DEST_UNREACH,
  ICMPV6_ECHO_REQUEST,
  ICMPV6_PACKET_TOO_BIG,
  ICMPV6_TIME_EXCEEDED,
  ICMP_HEADER,
  IcmpField,
  icmpv6ChecksumOk,
} from '../wire/icmp.js';
import { IPPROTO_ICMPV6 } from '../wire/ipv4.js';
import { IPV6_HEADER } from '../wire/ipv6.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import { Icmp6Echo } from './icmp6-echo.js';
import type { Icmp6Errors } from './icmp6-error.js';
import type { Packet } from './packet.js';

/**
 * The ICMPv6 the engine receives (Ipv6Path hands it every unfragmented
 * IPv6 packet whose upper layer is ICMPv6), the sibling of icmp-input.ts:
 * checks the message (its checksum covers the pseudo-header), then by
 * destination and type — an echo request to an IPv6 VIP is answered
 * (icmp6-echo.ts); a destination unreachable, Packet Too Big or time
 * exceeded to an IPv6 VIP (from the client's side) or to an IPv6 LIP (from
 * an RS's side) is translated for its connection (icmp6-error.ts).
 * Everything else — neighbour discovery, router advertisements, MLD,
 * parameter problems, echo to a LIP — is dropped and counted
 * (`icmp_unhandled_dropped`): on a TUN the kernel answers neighbour
 * discovery itself, so none of it is the LB's.
 */
export class Icmp6Input {
  private readonly echo: Icmp6Echo;

  constructor(
    private readonly ctx: EngineContext,
    private readonly errors: Icmp6Errors,
  ) {
    this.echo = new Icmp6Echo(ctx);
  }

  /**
   * An ICMPv6 packet: its IPv6 header at p.start walked (p.length its
   * datagram), the message at `icmp` behind any extension headers. Takes
   * ownership of p.
   */
  receive(p: Packet, icmp: number): void {
    const ctx = this.ctx;
    const b = p.buf;
    const len = p.start + p.length - icmp;
    if (len < ICMP_HEADER || !icmpv6ChecksumOk(b, p.start, icmp, len)) {
      ctx.drop(p, C.icmp_malformed_dropped);
      return;
    }
    const type = b[icmp + IcmpField.Type]!;
    const error =
      type === ICMPV6_DEST_UNREACH ||
      type === ICMPV6_PACKET_TOO_BIG ||
      type === ICMPV6_TIME_EXCEEDED;
    const dst = p.start + 24;
    const reg = ctx.reg;
    const toVip = reg.vipSet6.getAt(b, dst, -1) >= 0;
    if (!(toVip && (error || type === ICMPV6_ECHO_REQUEST))) {
      if (!error || reg.lipSet6.getAt(b, dst, -1) < 0) {
        ctx.drop(p, C.icmp_unhandled_dropped);
        return;
      }
    }
    // What goes out is the fixed header and the message: the extension headers meant
    // something to the LB only.
    if (icmp !== p.start + IPV6_HEADER) {
      const s = icmp - IPV6_HEADER;
      b.copyWithin(s, p.start, p.start + IPV6_HEADER);
      p.length -= s - p.start;
      p.start = s;
      b[s + 6] = IPPROTO_ICMPV6;
      b[s + 4] = len >>> 8;
      b[s + 5] = len & 0xff;
    }
    if (type === ICMPV6_ECHO_REQUEST) this.echo.answer(p, icmp, len);
    else if (toVip) this.errors.fromClientSide(p, icmp, len);
    else this.errors.fromRealServerSide(p, icmp, len);
  }
}
