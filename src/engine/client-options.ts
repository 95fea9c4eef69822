import { equalsU32At } from '../wire/bytes.js';
import { TCP_ACK, TCP_FIN, TCP_MIN_HEADER, TCP_RST, TCP_SYN, TcpField } from '../wire/tcp.js';
import { TCPOLEN_TIMESTAMP } from '../wire/tcp-options.js';
import { CF_FDATA_KNOWN, CF_SYNPROXY } from './conn-table.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import type { Packet } from './packet.js';
import type { SynProxy } from './synproxy/synproxy.js';
import {
  ToaDecision,
  ToaMode,
  decideToa,
  resizedGsoSize,
  toaModeOf,
  wantsToa,
} from './toa-decision.js';
import { OptionPlan, type ToaWriter, nopOut } from './toa-insert.js';

/**
 * A client segment's TCP options on the way to the RS, the same for every
 * address family (client-path.ts for IPv4, ipv6-path.ts for IPv6 and
 * FNAT64): the options cleaned as the RS may see them, then whether and how
 * the LB's TOA goes in. What differs between the families comes in as
 * numbers: the IP header the packet leaves with and the TOA's length (8 for
 * an IPv4 client, 20 for an IPv6 one).
 *
 * `choose` leaves its answer in `mode` and `plan` (fields, so the data path
 * allocates nothing to return two values).
 */
export class ClientOptions {
  /** How the TOA goes in (`ToaMode.None`: it does not). */
  mode = ToaMode.None;
  /** What happens to the client's options to make room for it. */
  plan = OptionPlan.Keep;

  constructor(
    private readonly ctx: EngineContext,
    private readonly toa: ToaWriter,
    private readonly synproxy: SynProxy,
  ) {}

  /**
   * The client's options as the RS may see them: no TOA of its own (the RS
   * would read it as the client's address), no timestamp on a SYN if so
   * configured, SACK edges in the RS's space. Leaves them parsed in `ctx.opt`
   * (when there are any: a segment without options has nothing to clean, and
   * most of a connection's segments come without them).
   */
  clean(svc: number, c: number, syn: boolean, ackFlag: boolean): void {
    const ctx = this.ctx;
    const tcp = ctx.tcp;
    const optStart = tcp.off + TCP_MIN_HEADER;
    const optEnd = tcp.off + tcp.headerLength;
    if (optEnd === optStart) return;
    const o = ctx.opt.parse(tcp.buf, optStart, optEnd);
    if (ctx.policy === 'fullnat' && o.toaCount > 0) {
      this.toa.stripToa(tcp, optStart, optEnd);
      ctx.countSvc(svc, C.toa_spoof_stripped);
    }
    if (syn && ctx.timestampRemove && o.hasTimestamp) {
      nopOut(tcp, o.timestampAt, TCPOLEN_TIMESTAMP);
      ctx.countSvc(svc, C.timestamp_removed);
    }
    if (ackFlag && o.sackBlocks > 0 && (ctx.table.flags[c]! & CF_SYNPROXY) !== 0)
      this.synproxy.translateClientSack(c, o.sackAt, o.sackBlocks);
  }

  /**
   * Whether client packet p of connection c carries the TOA toward the RS,
   * and how (`mode`, `plan`); counts what the decision says and resizes a
   * super-packet's segments when that is the way. Decided before anything
   * is rewritten, so an ICMP error can still quote the packet as the client
   * sent it. `outIpHl`: the IP header p leaves with; `outLength`: p's length
   * with it; `mtu`: the RS path's.
   */
  choose(
    p: Packet,
    svc: number,
    c: number,
    mtu: number,
    outIpHl: number,
    outLength: number,
    toaLen: number,
  ): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const tcp = ctx.tcp;
    const b = p.buf;
    const tcpOff = tcp.off;
    const hl = tcp.headerLength;
    const flags = tcp.flags;
    const syn = (flags & TCP_SYN) !== 0;
    const ackFlag = (flags & TCP_ACK) !== 0;
    this.mode = ToaMode.None;
    this.plan = OptionPlan.Keep;
    // A PROXY-protocol connection carries the client address in its stream, not in a TOA.
    if (t.shift[c] !== 0) return;
    // The first packet acking the RS's SYN+ACK, compared in the RS's space.
    const concluding =
      ackFlag &&
      (flags & (TCP_SYN | TCP_RST)) === 0 &&
      (t.flags[c]! & CF_FDATA_KNOWN) !== 0 &&
      ((t.flags[c]! & CF_SYNPROXY) !== 0
        ? this.synproxy.acksFirstRsByte(b, tcpOff, c)
        : equalsU32At(b, tcpOff + TcpField.Ack, t.fdataSeq, c));
    if (!wantsToa(ctx.policy, syn, ackFlag, (flags & TCP_FIN) !== 0, concluding)) return;
    const optStart = tcpOff + TCP_MIN_HEADER;
    const optEnd = tcpOff + hl;
    let plan = OptionPlan.Keep;
    if (ctx.policy !== 'lvs') plan = this.toa.plan(b, optStart, optEnd, syn, toaLen);
    const newHl =
      plan === OptionPlan.Impossible
        ? 0
        : TCP_MIN_HEADER + this.toa.newOptionsLength(b, optStart, optEnd, plan, toaLen);
    const decision = decideToa(
      ctx.policy,
      mtu,
      segmentLength(p, outIpHl, hl, outLength),
      hl,
      plan,
      newHl,
      outIpHl,
      p.gsoSize,
      p.tailroom,
      outLength,
      toaLen,
    );
    this.mode = toaModeOf(decision);
    this.plan = plan;
    if ((decision & ToaDecision.FailedMtu) !== 0) ctx.countSvc(svc, C.toa_failed_mtu);
    if ((decision & ToaDecision.FailedNoRoom) !== 0) ctx.countSvc(svc, C.toa_failed_no_room);
    if ((decision & ToaDecision.GsoResized) !== 0) {
      p.gsoSize = resizedGsoSize(mtu, outIpHl, newHl);
      ctx.countSvc(svc, C.toa_gso_resized);
    }
  }
}

/**
 * What must fit the RS path: one segment of p as it leaves (`outLength`
 * bytes with an `outIpHl`-byte IP header). A GSO super-packet is cut after
 * the LB, so its segments count, not its whole length.
 */
export function segmentLength(p: Packet, outIpHl: number, hl: number, outLength: number): number {
  return p.gsoSize > 0 ? Math.min(outLength, outIpHl + hl + p.gsoSize) : outLength;
}
