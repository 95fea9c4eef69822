import { get16, storeU32From } from '../wire/bytes.js';
import { ChecksumDelta, foldSum, sumWords } from '../wire/checksum.js';
import { IPPROTO_TCP, IPV4_MIN_HEADER, finishIpv4Header, Ipv4Field } from '../wire/ipv4.js';
import { IPV6_HEADER, finishIpv6Header } from '../wire/ipv6.js';
import { TcpField } from '../wire/tcp.js';
import { copy16 } from './addr6.js';
import { CF_SYNPROXY, type ConnTable } from './conn-table.js';
import type { EngineContext } from './context.js';
import type { Packet } from './packet.js';
import type { Registry } from './registry.js';
import { rewriteSeqField } from './seq-rewrite.js';
import type { SynProxy } from './synproxy/synproxy.js';

/** virtio_net_hdr GSO types: a super-packet that changes family changes type (the ECN bit stays). */
const GSO_TCPV4 = 1;
const GSO_TCPV6 = 4;
const GSO_ECN = 0x80;

/**
 * The FULLNAT translation of connections with an IPv6 client: IPv6 ↔ IPv6
 * (addresses rewritten in place), and FNAT64, IPv6 ↔ IPv4, where the IP
 * header itself is replaced.
 *
 * FNAT64 headers. Client → RS: the IPv4 header (20 bytes, no options) is
 * written over the last 20 bytes of the IPv6 one, so the TCP segment stays
 * where it is; DF set (the LB never fragments; a packet too big gets an
 * ICMPv6 Packet Too Big before it gets here), ID 0 (RFC 6864: atomic
 * datagrams need none), TTL = hop limit, TOS = traffic class; the flow label
 * has no IPv4 field and is dropped. RS → client: the IPv6 header goes 20
 * bytes (more with IPv4 options) into the headroom; hop limit = TTL,
 * traffic class = TOS, flow label 0. The TCP checksum is adjusted for the
 * new pseudo-header: the same protocol and length, only the addresses differ.
 *
 * `ctx.tcp` is wrapped around the packet's TCP header throughout (and stays
 * valid: the segment does not move).
 */
export class Nat6 {
  private readonly delta = new ChecksumDelta();

  constructor(
    private readonly ctx: EngineContext,
    private readonly synproxy: SynProxy,
  ) {}

  /**
   * FNAT64, client → RS: p's IPv6 header (40 bytes, at p.start) becomes an
   * IPv4 one LIP → RIP of connection c. The TCP checksum loses the IPv6
   * addresses and gains the IPv4 ones; ports and seq are `toRealServer`'s.
   */
  headerTo4(p: Packet, c: number): void {
    const t = this.ctx.table;
    const b = p.buf;
    const s = p.start;
    const d = this.delta.reset();
    d.replaceWord(0, t.addrDelta6[c]!);
    const tcp = this.ctx.tcp;
    tcp.checksum = d.apply(tcp.checksum);
    const tos = ((b[s]! & 0x0f) << 4) | (b[s + 1]! >>> 4);
    const ttl = b[s + 7]!;
    const o = s + IPV6_HEADER - IPV4_MIN_HEADER;
    storeU32From(b, o + Ipv4Field.Src, t.lip, c);
    storeU32From(b, o + Ipv4Field.Dst, t.rip, c);
    const length = p.length - IPV6_HEADER + IPV4_MIN_HEADER;
    finishIpv4Header(b, o, length, IPPROTO_TCP, ttl, tos, 0, true);
    p.start = o;
    p.length = length;
    if ((p.gsoType & ~GSO_ECN) === GSO_TCPV6) p.gsoType = GSO_TCPV4 | (p.gsoType & GSO_ECN);
  }

  /**
   * FNAT64, RS → client: p's IPv4 header (ipHl bytes at p.start) becomes an
   * IPv6 one VIP → CIP of connection c, in the headroom. False (p untouched)
   * when the buffer has no headroom for it.
   */
  headerTo6(p: Packet, ipHl: number, c: number): boolean {
    const s = p.start;
    const o = s + ipHl - IPV6_HEADER;
    if (o < 0) return false;
    const ctx = this.ctx;
    const t = ctx.table;
    const reg = ctx.reg;
    const b = p.buf;
    const svc = t.svc[c]!;
    const d = this.delta.reset();
    // RIP, LIP → VIP, CIP: the connection's delta the other way.
    d.replaceWord(0, ~t.addrDelta6[c]! & 0xffff);
    const vips = reg.svcVips6;
    const cips = t.cip6;
    const tcp = ctx.tcp;
    tcp.checksum = d.apply(tcp.checksum);
    const tos = b[s + Ipv4Field.Tos]!;
    const ttl = b[s + Ipv4Field.Ttl]!;
    const payload = p.length - ipHl;
    finishIpv6Header(b, o, payload, IPPROTO_TCP, ttl, tos);
    copy16(b, o + 8, vips, svc * 16);
    copy16(b, o + 24, cips, c * 16);
    p.start = o;
    p.length = IPV6_HEADER + payload;
    if ((p.gsoType & ~GSO_ECN) === GSO_TCPV4) p.gsoType = GSO_TCPV6 | (p.gsoType & GSO_ECN);
    return true;
  }

  /**
   * Client → RS, the TCP part (and, IPv6 → IPv6, the addresses): ports
   * cport → lport and vport → rport, seq into the LB→RS space (`shift`
   * further: a PROXY header went first). `v6`: p is
   * still IPv6 (its RS is IPv6), so its addresses become LIP → RIP here.
   */
  toRealServer(p: Packet, c: number, v6: boolean, shift: number): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const tcp = ctx.tcp;
    const b = p.buf;
    const d = this.delta.reset();
    if (v6) {
      d.replaceWord(0, t.addrDelta6[c]!);
      copy16(b, p.start + 8, t.lip6, c * 16);
      copy16(b, p.start + 24, t.rip6, c * 16);
    }
    d.replaceWord(tcp.srcPort, t.lport[c]!);
    d.replaceWord(tcp.dstPort, t.rport[c]!);
    rewriteSeqField(b, tcp.off + TcpField.Seq, t.seqDelta[c]! + shift, d);
    // SYNPROXY's second sequence space (acks, windows), as on the IPv4 path.
    if ((t.flags[c]! & CF_SYNPROXY) !== 0) this.synproxy.translateToRealServer(b, tcp.off, c, d);
    tcp.checksum = d.apply(tcp.checksum);
    tcp.srcPort = t.lport[c]!;
    tcp.dstPort = t.rport[c]!;
  }

  /**
   * RS → client, the TCP part (and, IPv6 → IPv6, the addresses): ports
   * rport → vport and lport → cport, ack back into the client's space.
   * `v6`: p is still IPv6 (its RS is IPv6), so its addresses become VIP → CIP.
   */
  toClient(p: Packet, c: number, ackFlag: boolean, v6: boolean): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const reg = ctx.reg;
    const tcp = ctx.tcp;
    const b = p.buf;
    const svc = t.svc[c]!;
    const d = this.delta.reset();
    if (v6) {
      d.replaceWord(0, ~t.addrDelta6[c]! & 0xffff);
      copy16(b, p.start + 8, reg.svcVips6, svc * 16);
      copy16(b, p.start + 24, t.cip6, c * 16);
    }
    d.replaceWord(tcp.srcPort, reg.svcPorts[svc]!);
    d.replaceWord(tcp.dstPort, t.cport[c]!);
    if (ackFlag) {
      const at = tcp.off + TcpField.Ack;
      let add = -t.seqDelta[c]!;
      // Acks beyond the LB's ISN+1 cover the PROXY header the client never sent.
      const shift = t.shift[c]!;
      if (shift !== 0 && ((get16(b, at) * 65536 + get16(b, at + 2) - t.lbIsn[c]! - 1) | 0) > 0)
        add -= shift;
      rewriteSeqField(b, at, add, d);
    }
    if ((t.flags[c]! & CF_SYNPROXY) !== 0) this.synproxy.translateToClient(b, tcp.off, c, d);
    tcp.checksum = d.apply(tcp.checksum);
    tcp.srcPort = reg.svcPorts[svc]!;
    tcp.dstPort = t.cport[c]!;
  }
}

/**
 * Sets connection c's `addrDelta6` from its tuples (CIP and VIP of its
 * service; LIP and RIP, IPv6 or IPv4): once, when it enters the table,
 * after its `svc` and `rs` are set.
 */
export function setAddressDelta(t: ConnTable, reg: Registry, c: number): void {
  // The VIP's and the RS's sums are the registry's, kept per address; the CIP's and the LIP's are summed here.
  const old = sumWords(t.cip6, c * 16, 16, 0) + reg.svcVipSums[t.svc[c]!]!;
  let now = reg.rsAddrSums[t.rs[c]!]!;
  if (t.replyIsV6(c)) now += sumWords(t.lip6, c * 16, 16, 0);
  else {
    const l = t.lip[c]!;
    now += (l >>> 16) + (l & 0xffff);
  }
  // now − old in one's complement: now + ~old.
  t.addrDelta6[c] = foldSum(foldSum(now) + (~foldSum(old) & 0xffff));
}
