import { IPV4_MIN_HEADER } from '../wire/ipv4.js';
import { TCP_ACK } from '../wire/tcp.js';
import { TOA_V4_LEN } from '../wire/toa.js';
import { CF_IPV6, CF_SP_PENDING } from './conn-table.js';
import type { Connections } from './connections.js';
import type { EngineContext } from './context.js';
import type { Ipv6RsPath } from './ipv6-rs-path.js';
import type { Nat } from './nat.js';
import type { Packet } from './packet.js';
import { RsOptions } from './rs-options.js';
import { countOutbound } from './services.js';
import type { SynProxy } from './synproxy/synproxy.js';

/**
 * RS → client (DPVS's tcp_fnat_out_handler), for a connection found by its
 * reply tuple: adjust the RS's options (MSS clamp, SACK edges), step the
 * state, translate, send. `ctx.ip`/`ctx.tcp` are wrapped around the packet.
 */
export class RsPath {
  private readonly options: RsOptions;

  constructor(
    private readonly ctx: EngineContext,
    private readonly conns: Connections,
    private readonly nat: Nat,
    private readonly synproxy: SynProxy,
    private readonly v64: Ipv6RsPath,
  ) {
    this.options = new RsOptions(ctx, synproxy);
  }

  /** A packet of connection c (found by its reply tuple: it is to a LIP). */
  fromRealServer(p: Packet, ipHl: number, c: number): void {
    const ctx = this.ctx;
    const b = p.buf;
    const tcp = ctx.tcp;
    const t = ctx.table;
    const tcpOff = p.start + ipHl;
    if ((t.flags[c]! & (CF_SP_PENDING | CF_IPV6)) !== 0) {
      // SYNPROXY's RS leg opening (IPv4 or FNAT64 client), or FNAT64 (an IPv6 client behind this IPv4 reply tuple).
      if ((t.flags[c]! & CF_SP_PENDING) !== 0) this.synproxy.onRsPacketDuringSetup(p, c, ipHl);
      else this.v64.fromRealServer64(p, ipHl, c);
      return;
    }
    const svc = t.svc[c]!;
    const flags = tcp.flags;
    const payloadLen = p.length - ipHl - tcp.headerLength;
    // The LB's packets to the RS carry no IP options: the RS leg's header is 20 bytes whatever this one has.
    // A NAT service's client packets carry no TOA: its SYN+ACK's MSS needs no room for one.
    const toaLen = ctx.reg.svcNat[svc] === 0 ? TOA_V4_LEN : 0;
    if (!this.options.adjust(p, svc, c, payloadLen, IPV4_MIN_HEADER, toaLen)) return;
    this.conns.stepFromRs(c, flags, b, tcpOff, payloadLen);
    this.nat.toClient(c, (flags & TCP_ACK) !== 0);
    countOutbound(ctx.reg, svc, t.rs[c]!, p.length);
    ctx.forward(p);
  }
}
