import { get16, set16, storeU32From } from '../wire/bytes.js';
import { ChecksumDelta, applySum, wordChange } from '../wire/checksum.js';
import { Ipv4Field } from '../wire/ipv4.js';
import { TcpField } from '../wire/tcp.js';
import { CF_SYNPROXY } from './conn-table.js';
import type { EngineContext } from './context.js';
import { addToSeqField } from './seq-rewrite.js';
import type { SynProxy } from './synproxy/synproxy.js';

/**
 * The FULLNAT translation of the packet `ctx.ip`/`ctx.tcp` are wrapped
 * around: both addresses, both ports, one sequence space, checksums updated
 * incrementally. SYNPROXY connections add their own step (a second sequence
 * space and window scaling), called from here.
 *
 * Every packet comes through here, so the rewrite is written as one run of
 * byte reads and writes with the checksum terms (`wordChange`) summed in a
 * local: helpers that V8 cannot inline once the function has spent its
 * inlining budget (the header views' accessors, `ChecksumDelta`'s methods)
 * cost a call each.
 */
export class Nat {
  /** For SYNPROXY's step, which notes its changes in a `ChecksumDelta`. */
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
    const ctx = this.ctx;
    const t = ctx.table;
    const b = ctx.ip.buf;
    const src = ctx.ip.off + Ipv4Field.Src;
    const dst = ctx.ip.off + Ipv4Field.Dst;
    const tcpOff = ctx.tcp.off;
    const lip = t.lip[c]!;
    const rip = t.rip[c]!;
    // The addresses are in the TCP checksum too (its pseudo-header).
    const addrs =
      wordChange(get16(b, src), lip >>> 16) +
      wordChange(get16(b, src + 2), lip & 0xffff) +
      wordChange(get16(b, dst), rip >>> 16) +
      wordChange(get16(b, dst + 2), rip & 0xffff);
    const ipCheck = ctx.ip.off + Ipv4Field.Checksum;
    set16(b, ipCheck, applySum(get16(b, ipCheck), addrs));
    storeU32From(b, src, t.lip, c);
    storeU32From(b, dst, t.rip, c);
    const lport = t.lport[c]!;
    const rport = t.rport[c]!;
    let sum =
      addrs +
      wordChange(get16(b, tcpOff), lport) +
      wordChange(get16(b, tcpOff + TcpField.DstPort), rport) +
      addToSeqField(b, tcpOff + TcpField.Seq, t.seqDelta[c]! + shift);
    if ((t.flags[c]! & CF_SYNPROXY) !== 0) {
      const d = this.delta.reset();
      this.synproxy.translateToRealServer(b, tcpOff, c, d);
      sum += d.pending;
    }
    const tcpCheck = tcpOff + TcpField.Checksum;
    set16(b, tcpCheck, applySum(get16(b, tcpCheck), sum));
    set16(b, tcpOff, lport);
    set16(b, tcpOff + TcpField.DstPort, rport);
  }

  /** RIP:rport → LIP:lport becomes VIP:vport → CIP:cport, the ack moved back into the client's space. */
  toClient(c: number, ackFlag: boolean): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const reg = ctx.reg;
    const b = ctx.ip.buf;
    const src = ctx.ip.off + Ipv4Field.Src;
    const dst = ctx.ip.off + Ipv4Field.Dst;
    const tcpOff = ctx.tcp.off;
    const svc = t.svc[c]!;
    const vip = reg.svcVips[svc]!;
    const cip = t.cip[c]!;
    const addrs =
      wordChange(get16(b, src), vip >>> 16) +
      wordChange(get16(b, src + 2), vip & 0xffff) +
      wordChange(get16(b, dst), cip >>> 16) +
      wordChange(get16(b, dst + 2), cip & 0xffff);
    const ipCheck = ctx.ip.off + Ipv4Field.Checksum;
    set16(b, ipCheck, applySum(get16(b, ipCheck), addrs));
    storeU32From(b, src, reg.svcVips, svc);
    storeU32From(b, dst, t.cip, c);
    const vport = reg.svcPorts[svc]!;
    const cport = t.cport[c]!;
    let sum =
      addrs +
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
    const tcpCheck = tcpOff + TcpField.Checksum;
    set16(b, tcpCheck, applySum(get16(b, tcpCheck), sum));
    set16(b, tcpOff, vport);
    set16(b, tcpOff + TcpField.DstPort, cport);
  }
}
