import { get16, set16, storeU32From } from '../wire/bytes.js';
import { ChecksumDelta, applySum, foldSum, sumWords, wordChange } from '../wire/checksum.js';
import { IPPROTO_TCP, IPV4_MIN_HEADER, finishIpv4Header, Ipv4Field } from '../wire/ipv4.js';
import { IPV6_HEADER, finishIpv6Header } from '../wire/ipv6.js';
import { TcpField } from '../wire/tcp.js';
import { copy16FromWords } from './addr6.js';
import { CF_SYNPROXY, type ConnTable } from './conn-table.js';
import type { EngineContext } from './context.js';
import type { Packet } from './packet.js';
import type { Registry } from './registry.js';
import { addToSeqField } from './seq-rewrite.js';
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
 * traffic class = TOS, flow label 0.
 *
 * The TCP checksum. Whichever the families, the pseudo-header's change is
 * the connection's `addrDelta6` (the same protocol and length, other
 * addresses), so `toRealServer` and `toClient` fold it in with the ports
 * and the sequence number: one update per packet, the header swaps
 * (`headerTo4`, `headerTo6`) leave the TCP checksum alone. A client packet
 * that must carry a right checksum between the swap and the translation
 * (the TOA's rebuild and split verify it) gets `pseudoHeaderTo4` and then
 * `toRealServer` with `pseudoPending` false.
 *
 * The rewrites are runs of byte reads and writes with the checksum terms
 * (`wordChange`) summed in a local, as in nat.ts: every packet of an IPv6
 * client comes through here.
 *
 * `ctx.tcp` is wrapped around the packet's TCP header throughout (and stays
 * valid: the segment does not move).
 */
export class Nat6 {
  /** For SYNPROXY's step, which notes its changes in a `ChecksumDelta`. */
  private readonly delta = new ChecksumDelta();

  constructor(
    private readonly ctx: EngineContext,
    private readonly synproxy: SynProxy,
  ) {}

  /**
   * FNAT64, client → RS: p's IPv6 header (40 bytes, at p.start) becomes an
   * IPv4 one LIP → RIP of connection c. The TCP checksum still covers the
   * IPv6 pseudo-header (see the class comment).
   */
  headerTo4(p: Packet, c: number): void {
    const t = this.ctx.table;
    const b = p.buf;
    const s = p.start;
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

  /** FNAT64, client → RS, after `headerTo4`: the TCP checksum moved to the IPv4 pseudo-header now. */
  pseudoHeaderTo4(c: number): void {
    const tcp = this.ctx.tcp;
    const at = tcp.off + TcpField.Checksum;
    set16(tcp.buf, at, applySum(get16(tcp.buf, at), wordChange(0, this.ctx.table.addrDelta6[c]!)));
  }

  /**
   * FNAT64, RS → client: p's IPv4 header (ipHl bytes at p.start) becomes an
   * IPv6 one VIP → CIP of connection c, in the headroom; the TCP checksum is
   * `toClient`'s. False (p untouched) when the buffer has no headroom for it.
   */
  headerTo6(p: Packet, ipHl: number, c: number): boolean {
    const s = p.start;
    const o = s + ipHl - IPV6_HEADER;
    if (o < 0) return false;
    const ctx = this.ctx;
    const b = p.buf;
    const svc = ctx.table.svc[c]!;
    const tos = b[s + Ipv4Field.Tos]!;
    const ttl = b[s + Ipv4Field.Ttl]!;
    const payload = p.length - ipHl;
    finishIpv6Header(b, o, payload, IPPROTO_TCP, ttl, tos);
    copy16FromWords(b, o + 8, ctx.reg.svcVips6Words, svc * 16);
    copy16FromWords(b, o + 24, ctx.table.cip6Words, c * 16);
    p.start = o;
    p.length = IPV6_HEADER + payload;
    if ((p.gsoType & ~GSO_ECN) === GSO_TCPV4) p.gsoType = GSO_TCPV6 | (p.gsoType & GSO_ECN);
    return true;
  }

  /**
   * Client → RS, the TCP part (and, IPv6 → IPv6, the addresses): ports
   * cport → lport and vport → rport, seq into the LB→RS space (`shift`
   * further: a PROXY header went first). `v6`: p is still IPv6 (its RS is
   * IPv6), so its addresses become LIP → RIP here. `pseudoPending`: the TCP
   * checksum still covers the client's pseudo-header (false only after
   * `pseudoHeaderTo4`).
   */
  toRealServer(p: Packet, c: number, v6: boolean, shift: number, pseudoPending: boolean): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const b = p.buf;
    const tcpOff = ctx.tcp.off;
    if (v6) {
      copy16FromWords(b, p.start + 8, t.lip6Words, c * 16);
      copy16FromWords(b, p.start + 24, t.rip6Words, c * 16);
    }
    const lport = t.lport[c]!;
    const rport = t.rport[c]!;
    let sum =
      wordChange(get16(b, tcpOff), lport) +
      wordChange(get16(b, tcpOff + TcpField.DstPort), rport) +
      addToSeqField(b, tcpOff + TcpField.Seq, t.seqDelta[c]! + shift);
    if (pseudoPending) sum += wordChange(0, t.addrDelta6[c]!);
    // SYNPROXY's second sequence space (acks, windows), as on the IPv4 path.
    if ((t.flags[c]! & CF_SYNPROXY) !== 0) {
      const d = this.delta.reset();
      this.synproxy.translateToRealServer(b, tcpOff, c, d);
      sum += d.pending;
    }
    const check = tcpOff + TcpField.Checksum;
    set16(b, check, applySum(get16(b, check), sum));
    set16(b, tcpOff, lport);
    set16(b, tcpOff + TcpField.DstPort, rport);
  }

  /**
   * RS → client, the TCP part and the pseudo-header's change (and, IPv6 →
   * IPv6, the addresses): ports rport → vport and lport → cport, ack back
   * into the client's space. `v6`: p is still IPv6 (its RS is IPv6), so its
   * addresses become VIP → CIP here; FNAT64's came with `headerTo6`.
   */
  toClient(p: Packet, c: number, ackFlag: boolean, v6: boolean): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const reg = ctx.reg;
    const b = p.buf;
    const tcpOff = ctx.tcp.off;
    const svc = t.svc[c]!;
    if (v6) {
      copy16FromWords(b, p.start + 8, reg.svcVips6Words, svc * 16);
      copy16FromWords(b, p.start + 24, t.cip6Words, c * 16);
    }
    const vport = reg.svcPorts[svc]!;
    const cport = t.cport[c]!;
    // RIP, LIP → VIP, CIP: the connection's delta the other way.
    let sum =
      wordChange(0, ~t.addrDelta6[c]! & 0xffff) +
      wordChange(get16(b, tcpOff), vport) +
      wordChange(get16(b, tcpOff + TcpField.DstPort), cport);
    if (ackFlag) {
      const at = tcpOff + TcpField.Ack;
      let add = -t.seqDelta[c]!;
      // Acks beyond the LB's ISN+1 cover the PROXY header the client never sent.
      const shift = t.shift[c]!;
      if (shift !== 0 && ((get16(b, at) * 65536 + get16(b, at + 2) - t.lbIsn[c]! - 1) | 0) > 0)
        add -= shift;
      sum += addToSeqField(b, at, add);
    }
    if ((t.flags[c]! & CF_SYNPROXY) !== 0) {
      const d = this.delta.reset();
      this.synproxy.translateToClient(b, tcpOff, c, d);
      sum += d.pending;
    }
    const check = tcpOff + TcpField.Checksum;
    set16(b, check, applySum(get16(b, check), sum));
    set16(b, tcpOff, vport);
    set16(b, tcpOff + TcpField.DstPort, cport);
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
