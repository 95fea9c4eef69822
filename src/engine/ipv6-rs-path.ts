import { IPV4_MIN_HEADER } from '../wire/ipv4.js';
import { IPV6_HEADER } from '../wire/ipv6.js';
import { TCP_ACK } from '../wire/tcp.js';
import { TOA_V6_LEN } from '../wire/toa.js';
import { CF_SP_PENDING } from './conn-table.js';
import type { Connections } from './connections.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import type { Nat6 } from './nat6.js';
import type { Packet } from './packet.js';
import { RsOptions } from './rs-options.js';
import { countOutbound } from './services.js';
import type { SynProxy } from './synproxy/synproxy.js';

/**
 * RS → client for connections with an IPv6 client: from an IPv6 RS to an
 * IPv6 LIP, or (FNAT64) from an IPv4 RS to an IPv4 LIP, which the IPv4 RS
 * path finds and hands over. MSS clamp (room for the 20-byte TOA), SACK
 * edges, state step, translation to VIP → CIP over IPv6.
 */
export class Ipv6RsPath {
  private readonly options: RsOptions;

  constructor(
    private readonly ctx: EngineContext,
    private readonly conns: Connections,
    private readonly nat: Nat6,
    private readonly synproxy: SynProxy,
  ) {
    this.options = new RsOptions(ctx, synproxy);
  }

  /** An IPv6 packet of connection c from its IPv6 RS: header at p.start (40 bytes), `ctx.tcp` wrapped after it. */
  fromRealServer(p: Packet, c: number): void {
    if ((this.ctx.table.flags[c]! & CF_SP_PENDING) !== 0) {
      this.synproxy.onRsPacketDuringSetup(p, c, IPV6_HEADER);
      return;
    }
    this.toClient(p, IPV6_HEADER, c, true);
  }

  /**
   * FNAT64: an IPv4 packet of connection c (an IPv6 client's) from its IPv4
   * RS; the IPv4 RS path found c and `ctx.ip`/`ctx.tcp` are wrapped around p.
   */
  fromRealServer64(p: Packet, ipHl: number, c: number): void {
    this.toClient(p, ipHl, c, false);
  }

  private toClient(p: Packet, ipHl: number, c: number, v6: boolean): void {
    const ctx = this.ctx;
    const b = p.buf;
    const tcp = ctx.tcp;
    const t = ctx.table;
    const tcpOff = p.start + ipHl;
    const svc = t.svc[c]!;
    const flags = tcp.flags;
    const payloadLen = p.length - ipHl - tcp.headerLength;
    // The RS leg's IP header is what it is (40, or 20 under FNAT64); the TOA is the IPv6 client's 20.
    if (!this.options.adjust(p, svc, c, payloadLen, v6 ? IPV6_HEADER : IPV4_MIN_HEADER, TOA_V6_LEN))
      return;
    if (!v6 && !this.nat.headerTo6(p, ipHl, c)) {
      ctx.dropSvc(p, svc, C.malformed_dropped);
      return;
    }
    this.conns.stepFromRs(c, flags, b, tcpOff, payloadLen);
    this.nat.toClient(p, c, (flags & TCP_ACK) !== 0, v6);
    countOutbound(ctx.reg, svc, t.rs[c]!, p.length);
    ctx.forward(p);
  }
}
