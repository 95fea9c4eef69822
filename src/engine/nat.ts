import { get16, storeU32From } from '../wire/bytes.js';
import { ChecksumDelta } from '../wire/checksum.js';
import { Ipv4Field } from '../wire/ipv4.js';
import { TcpField } from '../wire/tcp.js';
import { CF_SYNPROXY } from './conn-table.js';
import type { EngineContext } from './context.js';
import { rewriteSeqField } from './seq-rewrite.js';
import type { SynProxy } from './synproxy/synproxy.js';

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
