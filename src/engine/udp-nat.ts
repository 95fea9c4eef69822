import { get16, set16, storeU32From } from '../wire/bytes.js';
import { ChecksumDelta } from '../wire/checksum.js';
import { IPPROTO_UDP, IPV4_MIN_HEADER, Ipv4Field, finishIpv4Header } from '../wire/ipv4.js';
import { IPV6_HEADER, finishIpv6Header } from '../wire/ipv6.js';
import { UDP_NO_CHECKSUM, UdpView } from '../wire/udp.js';
import { copy16 } from './addr6.js';
import type { EngineContext } from './context.js';
import type { Packet } from './packet.js';

/** Offset of the checksum in a UDP header. */
const UDP_CHECKSUM = 6;

/**
 * The FULLNAT rewrite of UDP flows (the UDP table's entries): addresses and
 * ports both ways, IPv4, IPv6 and FNAT64's header swap, as nat.ts and
 * nat6.ts do for TCP, with UDP's checksum rules:
 *
 * - every change goes into the checksum incrementally (RFC 1624);
 * - an IPv4 checksum of 0 means "none" (RFC 768) and stays 0; an updated
 *   checksum that comes out 0 is sent as 0xffff, its other form;
 * - IPv6 has no "none" (RFC 8200 8.1): the IPv6 path drops a datagram with
 *   0, and an IPv4 RS's datagram with 0 that FNAT64 turns into IPv6 gets its
 *   checksum computed in full (RFC 7915 4.5 lets a translator do so).
 *
 * The UOA (uoa-writer.ts) does not touch the UDP checksum: its
 * pseudo-header is the addresses, protocol 17 and the UDP length, none of
 * which a UOA changes.
 */
export class UdpNat {
  private readonly delta = new ChecksumDelta();
  private readonly udp = new UdpView();

  constructor(private readonly ctx: EngineContext) {}

  /** IPv4 CIP:cport → VIP:vport (IP header at ipOff, UDP at udpOff) becomes LIP:lport → RIP:rport of flow c. */
  toRealServer4(b: Uint8Array, ipOff: number, udpOff: number, c: number): void {
    const t = this.ctx.udp.table;
    const src = ipOff + Ipv4Field.Src;
    const dst = ipOff + Ipv4Field.Dst;
    const d = this.delta.reset();
    d.replaceWord(get16(b, src), t.lip[c]! >>> 16);
    d.replaceWord(get16(b, src + 2), t.lip[c]! & 0xffff);
    d.replaceWord(get16(b, dst), t.rip[c]! >>> 16);
    d.replaceWord(get16(b, dst + 2), t.rip[c]! & 0xffff);
    set16(b, ipOff + Ipv4Field.Checksum, d.apply(get16(b, ipOff + Ipv4Field.Checksum)));
    storeU32From(b, src, t.lip, c);
    storeU32From(b, dst, t.rip, c);
    this.ports(d, b, udpOff, t.lport[c]!, t.rport[c]!);
  }

  /** IPv4 RIP:rport → LIP:lport becomes VIP:vport → CIP:cport of flow c. */
  toClient4(b: Uint8Array, ipOff: number, udpOff: number, c: number): void {
    const t = this.ctx.udp.table;
    const reg = this.ctx.reg;
    const svc = t.svc[c]!;
    const src = ipOff + Ipv4Field.Src;
    const dst = ipOff + Ipv4Field.Dst;
    const d = this.delta.reset();
    d.replaceWord(get16(b, src), reg.svcVips[svc]! >>> 16);
    d.replaceWord(get16(b, src + 2), reg.svcVips[svc]! & 0xffff);
    d.replaceWord(get16(b, dst), t.cip[c]! >>> 16);
    d.replaceWord(get16(b, dst + 2), t.cip[c]! & 0xffff);
    set16(b, ipOff + Ipv4Field.Checksum, d.apply(get16(b, ipOff + Ipv4Field.Checksum)));
    storeU32From(b, src, reg.svcVips, svc);
    storeU32From(b, dst, t.cip, c);
    this.ports(d, b, udpOff, reg.svcPorts[svc]!, t.cport[c]!);
  }

  /** IPv6 → IPv6, client → RS: p's addresses become LIP → RIP in place, ports lport → rport. */
  toRealServer6(p: Packet, c: number): void {
    const t = this.ctx.udp.table;
    const b = p.buf;
    const d = this.delta.reset();
    d.replaceWord(0, t.addrDelta6[c]!);
    copy16(b, p.start + 8, t.lip6, c * 16);
    copy16(b, p.start + 24, t.rip6, c * 16);
    this.ports(d, b, p.start + IPV6_HEADER, t.lport[c]!, t.rport[c]!);
  }

  /** IPv6 → IPv6, RS → client: p's addresses become VIP → CIP in place, ports vport → cport. */
  toClient6(p: Packet, c: number): void {
    const t = this.ctx.udp.table;
    const reg = this.ctx.reg;
    const svc = t.svc[c]!;
    const b = p.buf;
    const d = this.delta.reset();
    d.replaceWord(0, ~t.addrDelta6[c]! & 0xffff);
    copy16(b, p.start + 8, reg.svcVips6, svc * 16);
    copy16(b, p.start + 24, t.cip6, c * 16);
    this.ports(d, b, p.start + IPV6_HEADER, reg.svcPorts[svc]!, t.cport[c]!);
  }

  /**
   * FNAT64, client → RS: p's IPv6 header becomes an IPv4 one LIP → RIP
   * written over its last 20 bytes (DF, ID 0, TTL = hop limit, TOS =
   * traffic class, as nat6.ts does for TCP), ports lport → rport.
   */
  toRealServer64(p: Packet, c: number): void {
    const t = this.ctx.udp.table;
    const b = p.buf;
    const s = p.start;
    const udpOff = s + IPV6_HEADER;
    const d = this.delta.reset();
    d.replaceWord(0, t.addrDelta6[c]!);
    this.ports(d, b, udpOff, t.lport[c]!, t.rport[c]!);
    const tos = ((b[s]! & 0x0f) << 4) | (b[s + 1]! >>> 4);
    const ttl = b[s + 7]!;
    const o = udpOff - IPV4_MIN_HEADER;
    storeU32From(b, o + Ipv4Field.Src, t.lip, c);
    storeU32From(b, o + Ipv4Field.Dst, t.rip, c);
    const length = p.length - IPV6_HEADER + IPV4_MIN_HEADER;
    finishIpv4Header(b, o, length, IPPROTO_UDP, ttl, tos, 0, true);
    p.start = o;
    p.length = length;
  }

  /**
   * FNAT64, RS → client: p's IPv4 header (ipHl bytes) becomes an IPv6 one
   * VIP → CIP in the headroom, ports vport → cport; a datagram the RS sent
   * without a checksum gets one. False (p untouched) without headroom.
   */
  toClient64(p: Packet, ipHl: number, c: number): boolean {
    const s = p.start;
    const o = s + ipHl - IPV6_HEADER;
    if (o < 0) return false;
    const t = this.ctx.udp.table;
    const reg = this.ctx.reg;
    const b = p.buf;
    const svc = t.svc[c]!;
    const udpOff = s + ipHl;
    const none = get16(b, udpOff + UDP_CHECKSUM) === UDP_NO_CHECKSUM;
    const d = this.delta.reset();
    d.replaceWord(0, ~t.addrDelta6[c]! & 0xffff);
    this.ports(d, b, udpOff, reg.svcPorts[svc]!, t.cport[c]!);
    const tos = b[s + Ipv4Field.Tos]!;
    const ttl = b[s + Ipv4Field.Ttl]!;
    const payload = p.length - ipHl;
    finishIpv6Header(b, o, payload, IPPROTO_UDP, ttl, tos);
    copy16(b, o + 8, reg.svcVips6, svc * 16);
    copy16(b, o + 24, t.cip6, c * 16);
    p.start = o;
    p.length = IPV6_HEADER + payload;
    if (none) this.udp.wrap(b, udpOff).refreshChecksumV6(o);
    return true;
  }

  /** Ports become sport → dport; the checksum takes them and whatever d noted before (addresses). */
  private ports(
    d: ChecksumDelta,
    b: Uint8Array,
    udpOff: number,
    sport: number,
    dport: number,
  ): void {
    d.replaceWord(get16(b, udpOff), sport);
    d.replaceWord(get16(b, udpOff + 2), dport);
    set16(b, udpOff, sport);
    set16(b, udpOff + 2, dport);
    const at = udpOff + UDP_CHECKSUM;
    const check = get16(b, at);
    if (check === UDP_NO_CHECKSUM) return;
    const next = d.apply(check);
    set16(b, at, next === 0 ? 0xffff : next);
  }
}
