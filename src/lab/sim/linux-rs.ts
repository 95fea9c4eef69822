/**
 * A real server as Linux 6.x sees passive opens, with the `toa` kernel module
 * loaded, running an unmodified request/response application.
 *
 * The part that decides the project's outcome is `checkRequest`, a
 * transcription of the rules of `tcp_check_req` (docs/SCENARIOS.md): whichever
 * segment passes them creates the child socket, and the toa module reads the
 * client address from that one segment only — never from the SYN, never from
 * later segments.
 *
 * IPv6 as Linux does it: a 40-byte header, MSS = MTU − 60, Packet Too Big
 * instead of frag-needed. The toa module reads kind 254 length 8 (IPv4)
 * and kind 254 or 253 length 20 (IPv6 client: DPVS's toa.ko, Alibaba's),
 * and `getpeername()` reports the IPv6 client of a 20-byte TOA even on an
 * IPv4 connection (FNAT64), as the eBPF receiver does on a dual-stack
 * socket (`[::]:80`, `ipv6only=off`).
 */
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, seqAfter, seqBefore } from '../../wire/tcp.js';
import { addressEquals, Ipv6Address, type IpAddress } from '../../wire/address.js';
import { ALL_TOA_KINDS, findToa, ToaResult, type ToaKinds } from '../../wire/toa.js';
import type { Host, HostIo, Timer } from './net.js';
import { buildResponse, MessageReader, REQUEST_SALT } from './pattern.js';
import { mix32, Rng } from './rng.js';
import {
  addressSeed,
  buildResetFor,
  buildTcp,
  endpointKey,
  ipHeaderLength,
  linuxSynAckOptions,
  parsePacket,
  sameEndpoint,
  segmentLength,
  type Endpoint,
  type Segment,
} from './segment.js';
import { TcpConn, type CloseReason } from './tcp-conn.js';

export const SYNACK_RTO_MS = 1000;
export const SYNACK_RETRIES = 5;
/** Window in the SYN+ACK (never scaled there) and the receive window afterwards. */
export const RS_RCV_WND = 65535;
export const RS_WSCALE = 7;
export const TIME_WAIT_MS = 60_000;

export interface RsOptions {
  addr: IpAddress;
  port: number;
  /** MSS announced in SYN+ACK (Linux: interface MTU − 40, IPv6 − 60). */
  mss?: number;
  /** The RS's own interface MTU: its PMTU until an ICMP lowers it. */
  mtu?: number;
  deferAccept?: boolean;
  /** Response body size in bytes. */
  responseSize?: number;
  seed?: number;
  /** TOA kinds the module accepts (default: all known kinds). */
  toaKinds?: ToaKinds;
}

/** One accepted connection, as the server application and the toa module saw it. */
export interface RsRecord {
  /** Virtual time of accept. */
  t: number;
  /** Source of the concluding segment's IP header (a LIP:lport behind FULLNAT). */
  ipPeer: Endpoint;
  /** What getpeername() reports: the TOA address if found (IPv4 or IPv6), else ipPeer. */
  seenAddr: IpAddress;
  seenPort: number;
  toaFound: boolean;
  /** 4 or 6 when a TOA was found: the family of the address it carried. */
  toaFamily: 0 | 4 | 6;
  concludingFlags: number;
  concludingLen: number;
  /** The client named by the request bytes themselves, once the request is complete. */
  requestKey: Endpoint | null;
  requestIntact: boolean;
  responded: boolean;
  closed: 'open' | CloseReason;
}

export interface RsCounters {
  synReceived: number;
  synAckSent: number;
  synAckRetransmits: number;
  /** RSTs answering an ACK that did not acknowledge our ISN+1. */
  badAckRst: number;
  rstSent: number;
  /** Bare ACKs swallowed by TCP_DEFER_ACCEPT. */
  deferDropped: number;
  /** Request socks that died (RST, stray SYN, SYN+ACK retries exhausted). */
  requestsDropped: number;
  /** Segments failing the request-sock window check. */
  outOfWindow: number;
  /** New SYNs refused by a TIME_WAIT socket of the same tuple. */
  timeWaitSynRejected: number;
  accepted: number;
}

interface RequestSock {
  kind: 'req';
  peer: Endpoint;
  rcvIsn: number;
  isn: number;
  peerMss: number;
  tsOk: boolean;
  tsRecent: number;
  sackOk: boolean;
  wscaleOk: boolean;
  acked: boolean;
  retries: number;
  timer: Timer | null;
}

interface Established {
  kind: 'est';
  conn: TcpConn;
}

interface TimeWait {
  kind: 'tw';
  rcvNxt: number;
  sndNxt: number;
  tsOk: boolean;
  tsRecent: number;
  expires: number;
}

type SockEntry = RequestSock | Established | TimeWait;

export class LinuxRs implements Host {
  readonly records: RsRecord[] = [];
  readonly counters: RsCounters = {
    synReceived: 0,
    synAckSent: 0,
    synAckRetransmits: 0,
    badAckRst: 0,
    rstSent: 0,
    deferDropped: 0,
    requestsDropped: 0,
    outOfWindow: 0,
    timeWaitSynRejected: 0,
    accepted: 0,
  };
  readonly local: Endpoint;
  private readonly socks = new Map<string, SockEntry>();
  private readonly rng: Rng;
  private readonly mss: number;
  private readonly mtu: number;
  private readonly deferAccept: boolean;
  private readonly responseSize: number;
  private readonly toaKinds: ToaKinds;
  private readonly tsOffset: number;
  private readonly toa = new ToaResult();

  constructor(
    private readonly io: HostIo,
    opts: RsOptions,
  ) {
    this.local = { addr: opts.addr, port: opts.port };
    this.mtu = opts.mtu ?? 1500;
    this.mss = opts.mss ?? this.mtu - ipHeaderLength(opts.addr) - 20;
    this.deferAccept = opts.deferAccept ?? false;
    this.responseSize = opts.responseSize ?? 2000;
    this.toaKinds = opts.toaKinds ?? ALL_TOA_KINDS;
    this.rng = new Rng(mix32(opts.seed ?? 1, addressSeed(opts.addr), opts.port));
    this.tsOffset = this.rng.u32();
  }

  receive(pkt: Uint8Array): void {
    const p = parsePacket(pkt);
    if (p.kind === 'bad') {
      this.io.count(`rsBadPacket:${p.reason}`);
      return;
    }
    if (p.kind === 'fragNeeded') {
      const q = p.icmp.inner;
      if (!sameEndpoint({ addr: q.src, port: q.sport }, this.local)) return;
      const e = this.socks.get(endpointKey(q.dst, q.dport));
      if (e?.kind === 'est') e.conn.fragNeeded(p.icmp.mtu);
      return;
    }
    if (p.kind !== 'tcp') return;
    const seg = p.seg;
    if (!addressEquals(seg.dst, this.local.addr)) return;
    if (seg.dport !== this.local.port) {
      this.reset(seg); // closed port
      return;
    }
    const k = endpointKey(seg.src, seg.sport);
    const e = this.socks.get(k);
    if (!e) this.listen(seg);
    else if (e.kind === 'req') this.checkRequest(k, e, seg);
    else if (e.kind === 'est') e.conn.receive(seg);
    else this.timeWait(k, e, seg);
  }

  /** LISTEN: RST dropped, ACK answered by RST, SYN (without FIN) starts a request sock. */
  private listen(seg: Segment): void {
    const f = seg.flags;
    if (f & TCP_RST) return;
    if (f & TCP_ACK) {
      this.reset(seg);
      return;
    }
    if (!(f & TCP_SYN) || f & TCP_FIN) return;
    this.counters.synReceived++;
    const req: RequestSock = {
      kind: 'req',
      peer: { addr: seg.src, port: seg.sport },
      rcvIsn: seg.seq,
      isn: this.rng.u32(),
      peerMss: seg.mss > 0 ? seg.mss : 536,
      tsOk: seg.tsVal !== null,
      tsRecent: seg.tsVal ?? 0,
      sackOk: seg.sackPermitted,
      wscaleOk: seg.wscale >= 0,
      acked: false,
      retries: 0,
      timer: null,
    };
    const k = endpointKey(seg.src, seg.sport);
    this.socks.set(k, req);
    this.sendSynAck(req);
    this.armSynAck(k, req);
  }

  /** The rules of tcp_check_req, in the kernel's order. */
  private checkRequest(k: string, req: RequestSock, seg: Segment): void {
    let flg = seg.flags & (TCP_ACK | TCP_RST | TCP_SYN | TCP_FIN);
    if (seg.seq === req.rcvIsn && flg === TCP_SYN) {
      this.sendSynAck(req); // retransmitted SYN
      return;
    }
    if (flg & TCP_ACK && seg.ack !== (req.isn + 1) >>> 0) {
      // The listener answers an ACK for something it never sent with RST; the request stays.
      if (!(flg & TCP_RST)) {
        this.counters.badAckRst++;
        this.reset(seg);
      }
      return;
    }
    const rcvNxt = (req.rcvIsn + 1) >>> 0;
    const endSeq = (seg.seq + segmentLength(seg)) >>> 0;
    if (seqBefore(endSeq, rcvNxt) || seqAfter(seg.seq, (rcvNxt + RS_RCV_WND) >>> 0)) {
      this.counters.outOfWindow++;
      if (!(flg & TCP_RST)) this.sendReqAck(req);
      return;
    }
    if (seg.seq === req.rcvIsn) flg &= ~TCP_SYN;
    if (flg & (TCP_RST | TCP_SYN)) {
      if (!(flg & TCP_RST)) this.reset(seg);
      this.dropRequest(k, req);
      return;
    }
    if (!(flg & TCP_ACK)) return;
    // FIN does not count here: only a bare ACK (end_seq == rcv_isn + 1) is deferred.
    if (this.deferAccept && endSeq === rcvNxt) {
      req.acked = true;
      this.counters.deferDropped++;
      return;
    }
    this.accept(k, req, { ...seg, flags: seg.flags & ~TCP_SYN });
  }

  /** syn_recv_sock: the child is born from `seg`, and the toa module reads `seg`. */
  private accept(k: string, req: RequestSock, seg: Segment): void {
    req.timer?.cancel();
    this.counters.accepted++;
    const found = findToa(seg.options, 0, seg.options.length, this.toa, this.toaKinds);
    const family = found ? this.toa.family : 0;
    const record: RsRecord = {
      t: this.io.now(),
      ipPeer: { ...req.peer },
      seenAddr: found
        ? family === 4
          ? this.toa.v4
          : Ipv6Address.fromBytes(this.toa.v6)
        : req.peer.addr,
      seenPort: found ? this.toa.port : req.peer.port,
      toaFound: found,
      toaFamily: family,
      concludingFlags: seg.flags,
      concludingLen: seg.payload.length,
      requestKey: null,
      requestIntact: false,
      responded: false,
      closed: 'open',
    };
    this.records.push(record);
    const reader = new MessageReader('REQ', REQUEST_SALT);
    const conn: TcpConn = new TcpConn(
      this.io,
      {
        local: this.local,
        remote: req.peer,
        iss: req.isn,
        irs: req.rcvIsn,
        peerMss: req.peerMss,
        pmtu: this.mtu,
        tsOk: req.tsOk,
        tsRecent: req.tsRecent,
        tsOffset: this.tsOffset,
        rcvWnd: RS_RCV_WND,
        rcvWscale: req.wscaleOk ? RS_WSCALE : -1,
      },
      {
        data: (bytes) => {
          reader.push(bytes);
          record.requestIntact = reader.intact();
          if (reader.state === 'complete' && !record.responded) {
            record.requestKey = reader.key;
            record.responded = true;
            if (reader.key) conn.write(buildResponse(reader.key, this.responseSize));
            conn.close();
          } else if (reader.state === 'bad') {
            conn.close();
          }
        },
        // HTTP/1.0 style: a client that half-closes early gets whatever it earned, then our FIN.
        peerFin: () => conn.close(),
        closed: (how) => {
          record.closed = how;
          if (how === 'normal' && conn.activeClose) {
            this.socks.set(k, {
              kind: 'tw',
              rcvNxt: conn.wireRcvNxt(),
              sndNxt: conn.wireSndNxt(),
              tsOk: req.tsOk,
              tsRecent: conn.tsRecent,
              expires: this.io.now() + TIME_WAIT_MS,
            });
          } else {
            this.socks.delete(k);
          }
        },
      },
    );
    this.socks.set(k, { kind: 'est', conn });
    conn.receive(seg);
  }

  /** tcp_timewait_state_process, reduced to what request/response traffic meets. */
  private timeWait(k: string, tw: TimeWait, seg: Segment): void {
    if (this.io.now() >= tw.expires) {
      this.socks.delete(k);
      this.listen(seg);
      return;
    }
    const f = seg.flags;
    if (f & TCP_RST) {
      this.socks.delete(k);
      return;
    }
    if (f & TCP_SYN && !(f & TCP_ACK)) {
      const newerTs = tw.tsOk && seg.tsVal !== null && seqAfter(seg.tsVal, tw.tsRecent);
      if (seqAfter(seg.seq, tw.rcvNxt) || newerTs) {
        this.socks.delete(k);
        this.listen(seg);
        return;
      }
      this.counters.timeWaitSynRejected++;
    } else if (seg.payload.length === 0 && !(f & (TCP_FIN | TCP_SYN))) {
      return;
    }
    this.io.send(
      buildTcp({
        src: this.local.addr,
        dst: seg.src,
        sport: this.local.port,
        dport: seg.sport,
        seq: tw.sndNxt,
        ack: tw.rcvNxt,
        flags: TCP_ACK,
        window: RS_RCV_WND >>> RS_WSCALE,
      }),
    );
  }

  private sendSynAck(req: RequestSock): void {
    this.counters.synAckSent++;
    const ts = req.tsOk
      ? { val: (Math.floor(this.io.now()) + this.tsOffset) >>> 0, ecr: req.tsRecent }
      : null;
    this.io.send(
      buildTcp({
        src: this.local.addr,
        dst: req.peer.addr,
        sport: this.local.port,
        dport: req.peer.port,
        seq: req.isn,
        ack: (req.rcvIsn + 1) >>> 0,
        flags: TCP_SYN | TCP_ACK,
        window: RS_RCV_WND,
        options: linuxSynAckOptions(this.mss, ts, req.sackOk, req.wscaleOk ? RS_WSCALE : null),
      }),
    );
  }

  /** The ACK a request sock sends for an out-of-window segment (req->rsk_ops->send_ack). */
  private sendReqAck(req: RequestSock): void {
    this.io.send(
      buildTcp({
        src: this.local.addr,
        dst: req.peer.addr,
        sport: this.local.port,
        dport: req.peer.port,
        seq: (req.isn + 1) >>> 0,
        ack: (req.rcvIsn + 1) >>> 0,
        flags: TCP_ACK,
        window: RS_RCV_WND,
      }),
    );
  }

  private armSynAck(k: string, req: RequestSock): void {
    req.timer = this.io.setTimer(SYNACK_RTO_MS << req.retries, () => {
      req.timer = null;
      if (this.socks.get(k) !== req) return;
      if (req.retries >= SYNACK_RETRIES) {
        this.dropRequest(k, req);
        return;
      }
      req.retries++;
      // With TCP_DEFER_ACCEPT and the bare ACK seen, Linux stays quiet and waits for data.
      if (!(this.deferAccept && req.acked)) {
        this.counters.synAckRetransmits++;
        this.sendSynAck(req);
      }
      this.armSynAck(k, req);
    });
  }

  private dropRequest(k: string, req: RequestSock): void {
    req.timer?.cancel();
    req.timer = null;
    this.counters.requestsDropped++;
    if (this.socks.get(k) === req) this.socks.delete(k);
  }

  private reset(seg: Segment): void {
    if (seg.flags & TCP_RST) return;
    this.counters.rstSent++;
    this.io.count('rsRstSent');
    this.io.send(buildResetFor(seg));
  }
}
