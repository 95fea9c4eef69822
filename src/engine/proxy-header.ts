import { copyBytes, loadU32Plus, storeU32From } from '../wire/bytes.js';
import { Ipv4View } from '../wire/ipv4.js';
import { IPV6_HEADER, Ipv6View } from '../wire/ipv6.js';
import {
  encodeProxyV1,
  encodeProxyV1v6,
  encodeProxyV2,
  encodeProxyV2v6,
} from '../wire/proxy-protocol.js';
import { TCP_ACK, TCP_MIN_HEADER, TcpView, TcpField } from '../wire/tcp.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import type { Packet } from './packet.js';

/**
 * The PROXY protocol header (v1 text or v2 binary) that a PROXY-protocol
 * service sends the RS instead of a TOA: its own segment at the LB's ISN+1,
 * ahead of the client's first bytes, which move up by its length (the
 * connection's `shift`).
 */
export class ProxyHeaderWriter {
  /** Views for the packet built here, so `ctx.ip`/`ctx.tcp` stay on the packet being processed. */
  private readonly ip = new Ipv4View();
  private readonly ip6 = new Ipv6View();
  private readonly tcp = new TcpView();
  private readonly seq = new Uint32Array(1);

  constructor(private readonly ctx: EngineContext) {}

  /**
   * Sends the PROXY header of connection c, its IP and TCP headers copied from
   * p (already translated), which starts the client's stream right after it.
   */
  emit(p: Packet, ipHl: number, c: number): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const svc = ctx.reg.services[t.svc[c]!]!;
    const q = this.headersOf(p, ipHl);
    const payloadOff = q.start + ipHl + TCP_MIN_HEADER;
    // IPv4 only: an IPv6 service refuses PROXY protocol (registry.ts).
    const vip = ctx.reg.svcVips[svc.index]!;
    const encode = svc.proxyProtocol === 2 ? encodeProxyV2 : encodeProxyV1;
    const len = encode(q.buf, payloadOff, t.cip[c]!, t.cport[c]!, vip, svc.vport);
    this.send(q, ipHl, c, svc.index, len, false);
  }

  /**
   * `emit` for a connection with an IPv6 client: the header names the IPv6
   * client and VIP (v1 `TCP6`, v2 AF_INET6); it goes out in p's family
   * (`rsV6`: IPv6, else IPv4 under FNAT64), p already translated.
   */
  emit6(p: Packet, ipHl: number, c: number, rsV6: boolean): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const reg = ctx.reg;
    const si = t.svc[c]!;
    const svc = reg.services[si]!;
    const q = this.headersOf(p, ipHl);
    const at = q.start + ipHl + TCP_MIN_HEADER;
    const encode = svc.proxyProtocol === 2 ? encodeProxyV2v6 : encodeProxyV1v6;
    const len = encode(q.buf, at, t.cip6, t.cport[c]!, reg.svcVips6, svc.vport, c * 16, si * 16);
    this.send(q, ipHl, c, si, len, rsV6);
  }

  /** A pool packet holding p's IP and TCP headers (ipHl + 20 bytes), for the header's own segment. */
  private headersOf(p: Packet, ipHl: number): Packet {
    const q = this.ctx.pool.take();
    copyBytes(q.buf, q.start, p.buf, p.start, ipHl + TCP_MIN_HEADER);
    return q;
  }

  /**
   * Finishes q, the headers of `headersOf` and `len` bytes of PROXY header
   * after them, as connection c's segment at the LB's ISN+1 (`v6`: under an
   * IPv6 header, else IPv4) and sends it, counted for service si.
   */
  private send(q: Packet, ipHl: number, c: number, si: number, len: number, v6: boolean): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const b = q.buf;
    const s = q.start;
    const tcpOff = s + ipHl;
    q.length = ipHl + TCP_MIN_HEADER + len;
    if (v6) this.ip6.wrap(b, s).payloadLength = q.length - IPV6_HEADER;
    else {
      const ip = this.ip.wrap(b, s);
      ip.totalLength = q.length;
      ip.updateChecksum();
    }
    const tcp = this.tcp.wrap(b, tcpOff);
    tcp.headerLength = TCP_MIN_HEADER;
    tcp.flags = TCP_ACK;
    storeU32From(b, tcpOff + TcpField.Seq, t.lbIsn, c);
    loadU32Plus(this.seq, 0, b, tcpOff + TcpField.Seq, 1);
    storeU32From(b, tcpOff + TcpField.Seq, this.seq, 0);
    tcp.checksum = v6
      ? tcp.computeChecksumV6(s, TCP_MIN_HEADER + len)
      : tcp.computeChecksumV4(s, TCP_MIN_HEADER + len);
    ctx.countSvc(si, C.proxy_headers_sent);
    ctx.emit(q);
  }
}
