/**
 * The synchronized part of a TCP connection, shared by the simulated client
 * and server once their handshake is done: segmentation to the current MSS,
 * retransmission on RTO, in-order delivery with an out-of-order buffer,
 * FIN in sequence, and PMTU reduction on ICMP frag-needed.
 *
 * Deliberate simplifications (deterministic and enough for request/response
 * exchanges of a few KB): no congestion or flow control (windows are
 * advertised but never limit sending), an immediate ACK for every segment
 * carrying data or FIN, no SACK generation, no PAWS.
 *
 * Sequence numbers are kept as offsets relative to ISN+1 (so data offset 0 is
 * the first byte) and converted at the wire.
 */
import { opt, type TcpOption } from '../../wire/tcp-options.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../wire/tcp.js';
import type { HostIo, Timer } from './net.js';
import { buildTcp, ipHeaderLength, minPmtu, type Endpoint, type Segment } from './segment.js';

export const RTO_INITIAL_MS = 200;
export const RTO_MAX_RETRIES = 6;
const MAX_OOO_SEGMENTS = 512;

export type CloseReason = 'normal' | 'reset' | 'timeout';

export interface ConnSetup {
  local: Endpoint;
  remote: Endpoint;
  /** Our ISN (the SYN consumed ISN). */
  iss: number;
  /** The peer's ISN. */
  irs: number;
  /** MSS the peer announced (536 when it announced none). */
  peerMss: number;
  /** Our current path MTU (interface MTU until ICMP lowers it). */
  pmtu: number;
  tsOk: boolean;
  /** Last TSval seen from the peer. */
  tsRecent: number;
  /** Offset of our TS clock from virtual ms. */
  tsOffset: number;
  /** Bytes we accept beyond rcv_nxt. */
  rcvWnd: number;
  /** Our window-scale shift, or -1 when scaling was not negotiated. */
  rcvWscale: number;
  /** Appended to every segment's options (a client forging TOA). */
  alwaysOptions?: readonly TcpOption[];
  /** Payload per segment regardless of MSS (clients that ignore the MSS). */
  forcedPayload?: number;
}

export interface ConnHandler {
  data(bytes: Uint8Array): void;
  peerFin(): void;
  closed(how: CloseReason): void;
}

interface OooSegment {
  off: number;
  data: Uint8Array;
  fin: boolean;
}

export class TcpConn {
  pmtu: number;
  /** Offsets relative to iss+1; the FIN, once sent, sits at `sndLen`. */
  sndUna = 0;
  sndNxt = 0;
  /** Highest offset ever sent (sndNxt rewinds on retransmission, this does not). */
  sndMax = 0;
  rcvNxt = 0;
  finQueued = false;
  peerFinReceived = false;
  /** We sent our FIN before the peer's arrived (we will hold TIME_WAIT). */
  activeClose = false;
  state: 'open' | CloseReason = 'open';
  retransmits = 0;
  tsRecent: number;

  private sndBuf = new Uint8Array(4096);
  private sndLen = 0;
  private readonly ooo: OooSegment[] = [];
  private rto = RTO_INITIAL_MS;
  private backoffs = 0;
  private timer: Timer | null = null;
  private ackPending = false;
  private readonly inbox: Uint8Array[] = [];
  private finToSignal = false;

  constructor(
    private readonly io: HostIo,
    readonly setup: ConnSetup,
    private readonly handler: ConnHandler,
  ) {
    this.pmtu = setup.pmtu;
    this.tsRecent = setup.tsRecent;
  }

  get finAcked(): boolean {
    return this.finQueued && this.sndUna === this.sndLen + 1;
  }

  get unacked(): number {
    return this.sndMax - this.sndUna;
  }

  /** Our next sequence number on the wire. */
  wireSndNxt(): number {
    return (this.setup.iss + 1 + this.sndNxt) >>> 0;
  }

  wireRcvNxt(): number {
    return (this.setup.irs + 1 + this.rcvNxt) >>> 0;
  }

  /** Payload that fits one segment carrying `optLen` bytes of options (RFC 6691). */
  payloadFor(optLen: number): number {
    const room = this.pmtu - ipHeaderLength(this.setup.local.addr) - 20 - optLen;
    if (this.setup.forcedPayload !== undefined)
      return Math.max(1, Math.min(this.setup.forcedPayload, room));
    return Math.max(1, Math.min(this.setup.peerMss - optLen, room));
  }

  /** The usual per-segment option list (TS, then any forged options). */
  defaultOptions(): TcpOption[] {
    const out: TcpOption[] = [];
    if (this.setup.tsOk) out.push(opt.nop(), opt.nop(), opt.timestamp(this.tsNow(), this.tsRecent));
    if (this.setup.alwaysOptions) out.push(...this.setup.alwaysOptions);
    return out;
  }

  /** The send MSS for ordinary segments, as Linux's mss_cache would be. */
  sendMss(): number {
    return this.payloadFor(optionsLength(this.defaultOptions()));
  }

  write(bytes: Uint8Array): void {
    if (this.finQueued) throw new Error('write after close');
    if (this.sndLen + bytes.length > this.sndBuf.length) {
      const grown = new Uint8Array(Math.max(this.sndBuf.length * 2, this.sndLen + bytes.length));
      grown.set(this.sndBuf.subarray(0, this.sndLen));
      this.sndBuf = grown;
    }
    this.sndBuf.set(bytes, this.sndLen);
    this.sndLen += bytes.length;
  }

  close(): void {
    if (this.finQueued) return;
    this.finQueued = true;
    if (!this.peerFinReceived) this.activeClose = true;
  }

  /** Unsent bytes (the FIN excluded). */
  get unsent(): number {
    return Math.max(0, this.sndLen - this.sndNxt);
  }

  /**
   * Sends one segment of up to `maxLen` bytes at sndNxt; the FIN rides along
   * when the segment reaches the end of queued data. `options` replaces the
   * usual options for this segment only.
   */
  sendNext(maxLen: number, options?: readonly TcpOption[]): void {
    const off = this.sndNxt;
    const len = Math.max(0, Math.min(maxLen, this.sndLen - off));
    const fin = this.finQueued && off + len === this.sndLen;
    if (len === 0 && !fin) return;
    let flags = TCP_ACK;
    if (len > 0 && off + len === this.sndLen) flags |= TCP_PSH;
    if (fin) flags |= TCP_FIN;
    this.emit(off, len, flags, options ?? this.defaultOptions());
    this.sndNxt = off + len + (fin ? 1 : 0);
    if (this.sndNxt > this.sndMax) this.sndMax = this.sndNxt;
    this.armRto();
  }

  /** Sends everything queued from sndNxt, at the current MSS. */
  pump(): void {
    if (this.state !== 'open') return;
    for (let guard = 0; guard < 100_000; guard++) {
      if (this.sndNxt > this.sndLen || (this.sndNxt === this.sndLen && !this.finQueued)) return;
      this.sendNext(this.sendMss());
    }
  }

  /**
   * A segment with no data: a bare ACK. `off` backdates its sequence number
   * (an ACK generated before data that overtook it); `lose` makes the network
   * lose it.
   */
  sendAck(opts: { off?: number; lose?: boolean } = {}): void {
    const pkt = this.packet(opts.off ?? this.sndNxt, 0, TCP_ACK, this.defaultOptions());
    this.ackPending = false;
    this.io.send(pkt, { lose: opts.lose === true });
  }

  receive(seg: Segment): void {
    if (this.state !== 'open') {
      // TIME_WAIT-like: re-ACK retransmitted data or FIN so a peer that lost our last ACK can finish.
      const retransmitted = seg.payload.length > 0 || (seg.flags & TCP_FIN) !== 0;
      if (this.state === 'normal' && retransmitted && !(seg.flags & TCP_RST)) this.sendAck();
      return;
    }
    const relSeq = (seg.seq - this.setup.irs - 1) | 0;
    if (seg.flags & TCP_RST) {
      if (relSeq === this.rcvNxt) this.finish('reset');
      else if (relSeq > this.rcvNxt && relSeq < this.rcvNxt + this.setup.rcvWnd) this.sendAck();
      return;
    }
    if (seg.flags & TCP_SYN) {
      // A retransmitted SYN/SYN+ACK or a stray SYN: (challenge) ACK.
      this.sendAck();
      return;
    }
    if (!(seg.flags & TCP_ACK)) return;
    if (!this.processAck(seg)) return;
    if (this.setup.tsOk && seg.tsVal !== null && relSeq <= this.rcvNxt) this.tsRecent = seg.tsVal;
    const gotFin = (seg.flags & TCP_FIN) !== 0;
    if (seg.payload.length > 0 || gotFin) this.processData(relSeq, seg.payload, gotFin);
    this.wakeApp();
    this.pump();
    if (this.ackPending) this.sendAck();
    this.maybeFinished();
  }

  /** ICMP frag-needed or ICMPv6 Packet Too Big: shrink the MSS and resend every unacked byte now (tcp_simple_retransmit). */
  fragNeeded(mtu: number): void {
    const m = Math.max(minPmtu(this.setup.local.addr), mtu);
    if (this.state !== 'open' || m >= this.pmtu) return;
    this.pmtu = m;
    if (this.sndUna >= this.sndMax) return;
    this.sndNxt = this.sndUna;
    this.retransmits++;
    this.pump();
  }

  abort(how: CloseReason): void {
    this.finish(how);
  }

  private processAck(seg: Segment): boolean {
    const relAck = (seg.ack - this.setup.iss - 1) | 0;
    if (relAck > this.sndMax) return false; // acks what we never sent: Linux discards the segment
    if (relAck > this.sndUna) {
      this.sndUna = relAck;
      if (this.sndNxt < this.sndUna) this.sndNxt = this.sndUna;
      this.rto = RTO_INITIAL_MS;
      this.backoffs = 0;
      this.cancelRto();
      this.armRto();
    }
    return true;
  }

  private processData(relSeq: number, payload: Uint8Array, fin: boolean): void {
    this.ackPending = true;
    if (this.peerFinReceived) return;
    let off = relSeq;
    let data = payload;
    if (off < this.rcvNxt) {
      const skip = this.rcvNxt - off;
      if (skip > data.length || (skip === data.length && !fin)) return; // duplicate
      data = data.subarray(skip);
      off = this.rcvNxt;
    }
    if (off > this.rcvNxt) {
      if (off - this.rcvNxt < this.setup.rcvWnd && this.ooo.length < MAX_OOO_SEGMENTS) {
        this.ooo.push({ off, data: data.slice(), fin });
      }
      return;
    }
    this.deliver(data, fin);
    this.drainOoo();
  }

  private deliver(data: Uint8Array, fin: boolean): void {
    if (data.length > 0) {
      this.rcvNxt += data.length;
      this.inbox.push(data.slice());
    }
    if (fin && !this.peerFinReceived) {
      this.rcvNxt += 1;
      this.peerFinReceived = true;
      this.finToSignal = true;
    }
  }

  /**
   * The application runs after the whole segment is processed, as a woken
   * reader would: data and FIN in one segment are both seen before it reacts
   * (so the server answering a FIN+data request closes passively).
   */
  private wakeApp(): void {
    const chunks = this.inbox.splice(0);
    for (const c of chunks) if (this.state === 'open') this.handler.data(c);
    if (this.finToSignal && this.state === 'open') {
      this.finToSignal = false;
      this.handler.peerFin();
    }
  }

  private drainOoo(): void {
    this.ooo.sort((a, b) => a.off - b.off);
    while (this.ooo.length > 0 && !this.peerFinReceived) {
      const s = this.ooo[0]!;
      if (s.off > this.rcvNxt) return;
      this.ooo.shift();
      const skip = this.rcvNxt - s.off;
      if (skip > s.data.length || (skip === s.data.length && !s.fin)) continue;
      this.deliver(s.data.subarray(skip), s.fin);
    }
  }

  private maybeFinished(): void {
    if (this.state === 'open' && this.finAcked && this.peerFinReceived) this.finish('normal');
  }

  private finish(how: CloseReason): void {
    if (this.state !== 'open') return;
    this.state = how;
    this.cancelRto();
    this.handler.closed(how);
  }

  private emit(off: number, len: number, flags: number, options: readonly TcpOption[]): void {
    this.ackPending = false;
    this.io.send(this.packet(off, len, flags, options));
  }

  private packet(
    off: number,
    len: number,
    flags: number,
    options: readonly TcpOption[],
  ): Uint8Array {
    const s = this.setup;
    const wnd = s.rcvWscale >= 0 ? s.rcvWnd >>> s.rcvWscale : s.rcvWnd;
    return buildTcp({
      src: s.local.addr,
      dst: s.remote.addr,
      sport: s.local.port,
      dport: s.remote.port,
      seq: (s.iss + 1 + off) >>> 0,
      ack: flags & TCP_ACK ? this.wireRcvNxt() : 0,
      flags,
      window: Math.min(0xffff, wnd),
      options,
      payload: this.sndBuf.subarray(off, off + len),
    });
  }

  private tsNow(): number {
    return (Math.floor(this.io.now()) + this.setup.tsOffset) >>> 0;
  }

  private armRto(): void {
    if (this.timer || this.sndUna >= this.sndMax || this.state !== 'open') return;
    this.timer = this.io.setTimer(this.rto, () => this.onRto());
  }

  private cancelRto(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  private onRto(): void {
    this.timer = null;
    if (this.state !== 'open' || this.sndUna >= this.sndMax) return;
    if (this.backoffs >= RTO_MAX_RETRIES) {
      this.finish('timeout');
      return;
    }
    this.backoffs++;
    this.retransmits++;
    this.rto *= 2;
    // Like Linux after an RTO: everything outstanding is lost; resend the head, the rest follows the ACKs.
    this.sndNxt = this.sndUna;
    this.sendNext(this.sendMss());
  }
}

/** Encoded length of an option list (padded to 4, as on the wire). */
export function optionsLength(options: readonly TcpOption[]): number {
  let n = 0;
  for (const o of options) n += o.kind <= 1 ? 1 : 2 + o.data.length;
  return (n + 3) & ~3;
}
