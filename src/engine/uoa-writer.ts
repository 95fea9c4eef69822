import { get16, set16, storeU32From } from '../wire/bytes.js';
import { internetChecksum } from '../wire/checksum.js';
import { IPPROTO_UDP, IPV4_MIN_HEADER, Ipv4Field, finishIpv4Header } from '../wire/ipv4.js';
import { IPV6_HEADER, finishIpv6Header } from '../wire/ipv6.js';
import { UDP_HEADER, UdpView, writeUdpHeader } from '../wire/udp.js';
import {
  IPO_GROWTH,
  IPPROTO_OPP,
  IPV4_MAX_HEADER,
  OPP_GROWTH_V4,
  OPP_GROWTH_V6,
  OPP_HEADER,
  OPP_VERSION_V4,
  OPP_VERSION_V6,
  UOA_V4_LEN,
  UOA_V6_LEN,
  insertIpoV4,
  insertOpp,
  writeOppHeader,
  writeUoaOption,
  writeUoaV4Words,
} from '../wire/uoa.js';
import { copy16 } from './addr6.js';
import { CF_IPV6 } from './conn-table.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import type { Packet } from './packet.js';
import { UOA_INHERIT, UOA_IPO, UOA_OFF, uoaCode } from './registry.js';

/**
 * The UOA of a UDP flow's first datagrams toward its RS (DPVS's
 * udp_insert_uoa): the client's address and port, in the bytes of
 * wire/uoa.ts, on the first `uoaMaxTrail` datagrams of each flow.
 *
 * - `ipo`: an IPv4 option, IPv4 client and IPv4 RS only; an IPv6 flow
 *   (the configuration refuses `ipo` for an IPv6 service) gets none.
 * - `opp`: the protocol-248 shim, for every family pair: version 1 and the
 *   8-byte UOA for an IPv4 client, version 2 and the 20-byte one for an
 *   IPv6 client, on an IPv6 datagram or FNAT64's IPv4 one.
 * - When the datagram has no room for the UOA under the RS path MTU (the
 *   one path-mtu.ts keeps, as TCP's TOA uses it), or its IPv4 header none
 *   for the option, a datagram of its own goes first: LIP:lport → RIP:rport,
 *   UDP length 8, no payload, carrying the UOA as the mode places it; the
 *   client's datagram follows unchanged (DPVS's send_standalone_uoa). Its
 *   UDP checksum is computed (DPVS leaves an IPv4 one 0).
 *
 * Every datagram of the trail counts toward it, with a UOA or without
 * (`uoa_skipped`: a family pair the mode cannot carry, no buffer room), so
 * a flow never pays for more than the trail.
 */
export class UoaWriter {
  private readonly udp = new UdpView();

  constructor(private readonly ctx: EngineContext) {}

  /** Service svc's placement now (UOA_* of registry.ts). */
  private modeOf(svc: number): number {
    const m = this.ctx.reg.svcUoa[svc]!;
    return m === UOA_INHERIT ? uoaCode(this.ctx.opts.uoaMode) : m;
  }

  /**
   * The placement for flow c's datagram now: UOA_OFF once its trail is
   * done or under `off`; otherwise the datagram counts toward the trail.
   */
  private inTrail(c: number, svc: number): number {
    const ctx = this.ctx;
    const sent = ctx.udp.uoaSent;
    if (sent[c]! >= ctx.opts.uoaMaxTrail) return UOA_OFF;
    const mode = this.modeOf(svc);
    if (mode !== UOA_OFF) sent[c] = sent[c]! + 1;
    return mode;
  }

  /**
   * An IPv4 client's datagram p (header ipHl bytes at p.start, not yet
   * translated) of flow c toward an IPv4 RS whose path MTU is `mtu`. Returns
   * the UDP header's offset afterwards: p may have grown and moved.
   */
  carry4(p: Packet, ipHl: number, c: number, svc: number, mtu: number): number {
    const udpOff = p.start + ipHl;
    const mode = this.inTrail(c, svc);
    if (mode === UOA_OFF) return udpOff;
    const ctx = this.ctx;
    const b = p.buf;
    const port = get16(b, udpOff);
    if (mode === UOA_IPO) {
      if (ipHl + UOA_V4_LEN <= IPV4_MAX_HEADER && p.length + IPO_GROWTH <= mtu) {
        const s = insertIpoV4(b, p.start, p.length, port, b, p.start + Ipv4Field.Src);
        if (s >= 0) {
          p.start = s;
          p.length += IPO_GROWTH;
          ctx.countSvc(svc, C.uoa_sent_ipo);
          return s + ipHl + IPO_GROWTH;
        }
      }
    } else if (p.length + OPP_GROWTH_V4 <= mtu) {
      const s = insertOpp(b, p.start, p.length, port, b, p.start + Ipv4Field.Src, 4);
      if (s >= 0) {
        p.start = s;
        p.length += OPP_GROWTH_V4;
        ctx.countSvc(svc, C.uoa_sent_opp);
        return s + ipHl + OPP_GROWTH_V4;
      }
    }
    this.sendAhead(p.buf[p.start + Ipv4Field.Ttl]!, p.buf[p.start + Ipv4Field.Tos]!, c, svc, mode);
    return udpOff;
  }

  /**
   * An IPv6 client's datagram p of flow c, already translated for its RS:
   * IPv6 (40-byte header) toward an IPv6 RS, IPv4 (20) under FNAT64.
   */
  carry6(p: Packet, c: number, svc: number, mtu: number): void {
    const mode = this.inTrail(c, svc);
    if (mode === UOA_OFF) return;
    const ctx = this.ctx;
    if (mode === UOA_IPO) {
      ctx.countSvc(svc, C.uoa_skipped);
      return;
    }
    const t = ctx.udp.table;
    const b = p.buf;
    if (p.length + OPP_GROWTH_V6 <= mtu) {
      const s = insertOpp(b, p.start, p.length, t.cport[c]!, t.cip6, c * 16, 16);
      if (s >= 0) {
        p.start = s;
        p.length += OPP_GROWTH_V6;
        ctx.countSvc(svc, C.uoa_sent_opp);
        return;
      }
    }
    const v6 = b[p.start]! >>> 4 === 6;
    const ttl = v6 ? b[p.start + 7]! : b[p.start + Ipv4Field.Ttl]!;
    const tos = v6 ? ((b[p.start]! & 0x0f) << 4) | (b[p.start + 1]! >>> 4) : b[p.start + 1]!;
    this.sendAhead(ttl, tos, c, svc, mode);
  }

  /**
   * The UOA alone, ahead of the datagram: an empty UDP datagram LIP:lport →
   * RIP:rport of flow c in the RS leg's family, the UOA placed as `mode`
   * says (ipo only for an IPv4 client on IPv4), TTL and TOS the datagram's.
   */
  private sendAhead(ttl: number, tos: number, c: number, svc: number, mode: number): void {
    const ctx = this.ctx;
    const t = ctx.udp.table;
    const clientV6 = (t.flags[c]! & CF_IPV6) !== 0;
    const replyV6 = t.replyIsV6(c);
    if (mode === UOA_IPO && (clientV6 || replyV6)) {
      ctx.countSvc(svc, C.uoa_skipped);
      return;
    }
    const r = ctx.pool.take();
    const o = r.buf;
    const s = r.start;
    const uoaLen = clientV6 ? UOA_V6_LEN : UOA_V4_LEN;
    let udpOff: number;
    if (replyV6) {
      const payload = OPP_HEADER + uoaLen + UDP_HEADER;
      finishIpv6Header(o, s, payload, IPPROTO_OPP, ttl, tos);
      copy16(o, s + 8, t.lip6, c * 16);
      copy16(o, s + 24, t.rip6, c * 16);
      udpOff = this.writeOpp(o, s + IPV6_HEADER, c, clientV6);
      r.length = IPV6_HEADER + payload;
    } else if (mode === UOA_IPO) {
      storeU32From(o, s + Ipv4Field.Src, t.lip, c);
      storeU32From(o, s + Ipv4Field.Dst, t.rip, c);
      const total = IPV4_MIN_HEADER + UOA_V4_LEN + UDP_HEADER;
      finishIpv4Header(o, s, total, IPPROTO_UDP, ttl, tos, 0, true);
      // The header grows by the option: its length nibble, and the checksum once more.
      o[s] = 0x40 | ((IPV4_MIN_HEADER + UOA_V4_LEN) >>> 2);
      writeUoaV4Words(o, s + IPV4_MIN_HEADER, t.cport[c]!, t.cip[c]! >>> 16, t.cip[c]! & 0xffff);
      set16(o, s + Ipv4Field.Checksum, 0);
      set16(o, s + Ipv4Field.Checksum, internetChecksum(o, s, IPV4_MIN_HEADER + UOA_V4_LEN));
      udpOff = s + IPV4_MIN_HEADER + UOA_V4_LEN;
      r.length = total;
    } else {
      storeU32From(o, s + Ipv4Field.Src, t.lip, c);
      storeU32From(o, s + Ipv4Field.Dst, t.rip, c);
      const total = IPV4_MIN_HEADER + OPP_HEADER + uoaLen + UDP_HEADER;
      finishIpv4Header(o, s, total, IPPROTO_OPP, ttl, tos, 0, true);
      udpOff = this.writeOpp(o, s + IPV4_MIN_HEADER, c, clientV6);
      r.length = total;
    }
    writeUdpHeader(o, udpOff, t.lport[c]!, t.rport[c]!, 0);
    const u = this.udp.wrap(o, udpOff);
    set16(o, udpOff + 6, replyV6 ? u.computeChecksumV6(s) : u.computeChecksumV4(s));
    ctx.countSvc(svc, C.uoa_empty_sent);
    ctx.emit(r);
  }

  /** The OPP header and flow c's client UOA at b[o]; returns the offset after them (the UDP header's). */
  private writeOpp(b: Uint8Array, o: number, c: number, clientV6: boolean): number {
    const t = this.ctx.udp.table;
    if (clientV6) {
      writeOppHeader(b, o, OPP_VERSION_V6, IPPROTO_UDP, UOA_V6_LEN);
      writeUoaOption(b, o + OPP_HEADER, t.cport[c]!, t.cip6, c * 16, 16);
      return o + OPP_HEADER + UOA_V6_LEN;
    }
    writeOppHeader(b, o, OPP_VERSION_V4, IPPROTO_UDP, UOA_V4_LEN);
    writeUoaV4Words(b, o + OPP_HEADER, t.cport[c]!, t.cip[c]! >>> 16, t.cip[c]! & 0xffff);
    return o + OPP_HEADER + UOA_V4_LEN;
  }
}
