import { get16, loadU32Plus, storeU32From } from '../wire/bytes.js';
import { ChecksumDelta, alignedRangeSum, checksumAdjust } from '../wire/checksum.js';
import { Ipv4Field } from '../wire/ipv4.js';
import { type TcpView, TcpField } from '../wire/tcp.js';
import { CF_SYNPROXY } from './conn-table.js';
import type { EngineContext } from './context.js';
import type { SynProxy } from './synproxy/synproxy.js';

// Checksums are patched incrementally (RFC 1624) over 16-bit halves: a 32-bit
// value passed to a call V8 does not inline would be boxed, once per packet.

/**
 * Adds `add` (mod 2^32) to the sequence or acknowledgment number at b[at],
 * noting the change in d: the one seq/ack rewrite of both directions and of
 * SYNPROXY's translation.
 */
export function rewriteSeqField(b: Uint8Array, at: number, add: number, d: ChecksumDelta): void {
  // Byte reads and writes spelled out: this is inlined into every translation.
  const hi = (b[at]! << 8) | b[at + 1]!;
  const lo = (b[at + 2]! << 8) | b[at + 3]!;
  const n = (hi * 65536 + lo + add) >>> 0;
  d.replaceWord(hi, n >>> 16);
  d.replaceWord(lo, n & 0xffff);
  b[at] = n >>> 24;
  b[at + 1] = (n >>> 16) & 0xff;
  b[at + 2] = (n >>> 8) & 0xff;
  b[at + 3] = n & 0xff;
}

const edge = new Uint32Array(1);

/**
 * Adds `add` (mod 2^32) to every edge of the SACK option at `at` of the
 * segment `tcp` is wrapped around, keeping its checksum right. RS→client:
 * edges in the LB→RS space move back by the sequence delta (and any PROXY
 * header); client→RS under SYNPROXY: edges in the cookie's space move into
 * the RS's.
 */
export function shiftSackEdges(tcp: TcpView, at: number, blocks: number, add: number): void {
  const b = tcp.buf;
  const from = at + 2;
  const to = from + blocks * 8;
  const before = alignedRangeSum(b, tcp.off, from, to);
  for (let k = from; k < to; k += 4) {
    loadU32Plus(edge, 0, b, k, add);
    storeU32From(b, k, edge, 0);
  }
  const after = alignedRangeSum(b, tcp.off, from, to);
  tcp.checksum = checksumAdjust(tcp.checksum, before, after);
}

/**
 * The FULLNAT translation of the packet `ctx.ip`/`ctx.tcp` are wrapped
 * around: both addresses, both ports, one sequence space, checksums updated
 * incrementally. SYNPROXY connections add their own step (a second sequence
 * space and window scaling), called from here.
 */
export class Nat {
  private readonly delta = new ChecksumDelta();

  constructor(
    private readonly ctx: EngineContext,
    private readonly synproxy: SynProxy,
  ) {}

  /**
   * CIP:cport → VIP:vport becomes LIP:lport → RIP:rport, the sequence number
   * moved into the LB→RS space (and `shift` further: a PROXY header went first).
   */
  toRealServer(c: number, shift: number): void {
    const ip = this.ctx.ip;
    const tcp = this.ctx.tcp;
    const t = this.ctx.table;
    const b = ip.buf;
    const src = ip.off + Ipv4Field.Src;
    const dst = ip.off + Ipv4Field.Dst;
    const d = this.delta.reset();
    d.replaceWord(get16(b, src), t.lip[c]! >>> 16);
    d.replaceWord(get16(b, src + 2), t.lip[c]! & 0xffff);
    d.replaceWord(get16(b, dst), t.rip[c]! >>> 16);
    d.replaceWord(get16(b, dst + 2), t.rip[c]! & 0xffff);
    ip.checksum = d.apply(ip.checksum);
    storeU32From(b, src, t.lip, c);
    storeU32From(b, dst, t.rip, c);
    d.replaceWord(tcp.srcPort, t.lport[c]!);
    d.replaceWord(tcp.dstPort, t.rport[c]!);
    rewriteSeqField(b, tcp.off + TcpField.Seq, t.seqDelta[c]! + shift, d);
    if ((t.flags[c]! & CF_SYNPROXY) !== 0) this.synproxy.translateToRealServer(b, tcp.off, c, d);
    tcp.checksum = d.apply(tcp.checksum);
    tcp.srcPort = t.lport[c]!;
    tcp.dstPort = t.rport[c]!;
  }

  /** RIP:rport → LIP:lport becomes VIP:vport → CIP:cport, the ack moved back into the client's space. */
  toClient(c: number, ackFlag: boolean): void {
    const ip = this.ctx.ip;
    const tcp = this.ctx.tcp;
    const t = this.ctx.table;
    const reg = this.ctx.reg;
    const b = ip.buf;
    const svc = t.svc[c]!;
    const src = ip.off + Ipv4Field.Src;
    const dst = ip.off + Ipv4Field.Dst;
    const d = this.delta.reset();
    d.replaceWord(get16(b, src), reg.svcVips[svc]! >>> 16);
    d.replaceWord(get16(b, src + 2), reg.svcVips[svc]! & 0xffff);
    d.replaceWord(get16(b, dst), t.cip[c]! >>> 16);
    d.replaceWord(get16(b, dst + 2), t.cip[c]! & 0xffff);
    ip.checksum = d.apply(ip.checksum);
    storeU32From(b, src, reg.svcVips, svc);
    storeU32From(b, dst, t.cip, c);
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
