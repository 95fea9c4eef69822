/**
 * A scripted-but-real TCP client: a Linux-like active open, then a first
 * flight whose shape the scenario chooses (that is what decides which
 * segment concludes the server's handshake), then ordinary TCP until the
 * response is in and both FINs are exchanged.
 */
import { type TcpOption } from '../../wire/tcp-options.js';
import { TCP_ACK, TCP_RST, TCP_SYN } from '../../wire/tcp.js';
import { addressEquals, type IpAddress } from '../../wire/address.js';
import { toaV4Option, toaV6Option } from '../../wire/toa.js';
import type { Host, HostIo, Timer } from './net.js';
import {
  buildRequest,
  MessageReader,
  patternKeyLength,
  requestHeaderLength,
  RESPONSE_SALT,
} from './pattern.js';
import { mix32, Rng } from './rng.js';
import {
  addressSeed,
  buildResetFor,
  buildTcp,
  ipHeaderLength,
  linuxSynOptions,
  minPmtu,
  parsePacket,
  type Endpoint,
  type Segment,
} from './segment.js';
import { optionsLength, TcpConn, type CloseReason } from './tcp-conn.js';

export const SYN_RTO_MS = 1000;
export const SYN_RETRIES = 5;
export const CLIENT_SYN_WINDOW = 64240;
export const CLIENT_WSCALE = 7;

export type FirstFlight =
  /** ACK the SYN+ACK at once, then send the request. */
  | 'bare-ack-then-data'
  /** The first data segment overtakes the bare ACK (same seq, sent first). */
  | 'data-then-bare-ack'
  /** Data pending at SYN+ACK time: the request itself acknowledges it. */
  | 'data-only';

export interface ClientBehaviour {
  /** MSS announced in the SYN. */
  advmss: number;
  /**
   * Interface MTU, the initial PMTU (default advmss + 40 for IPv4, + 60 for
   * IPv6, as Linux derives advmss from the MTU).
   */
  mtu?: number;
  /** Request body bytes (the `REQ n\n` header comes on top). */
  requestSize: number;
  /**
   * Instead of `requestSize`: size the whole request (header included) to
   * exactly this many segments of the send MSS learnt from the SYN+ACK, so
   * every request segment is full-size whatever MSS the path imposed.
   */
  requestFullSegments?: number;
  firstFlight: FirstFlight;
  /** Half-close with the last request segment (FIN+ACK+PSH+data). */
  finWithData?: boolean;
  /** Offer timestamps in the SYN (default true). */
  timestamps?: boolean;
  /** Forge a TOA with this address on every segment, SYN included (8 bytes for IPv4, 20 for IPv6). */
  spoofToa?: Endpoint;
  /**
   * The complete option list of the first data segment, replacing the usual
   * timestamp (and any forged TOA) on that segment only. Receives the
   * client's ack value (server ISN + 1, the "fdata_seq").
   */
  extraOptions?: (fdataSeq: number) => TcpOption[];
  /** Send segments of this payload whatever MSS the server announced. */
  overMssPayload?: number;
  /** The network loses the bare ACK. */
  dropBareAck?: boolean;
}

export interface ClientResult {
  local: Endpoint;
  established: boolean;
  responseIntact: boolean;
  reset: boolean;
  /** Both FINs exchanged and acknowledged. */
  finished: boolean;
  failure: string | null;
  /** Server ISN + 1 as the client saw it: its ack on every early segment. */
  fdataSeq: number;
  /** Send MSS right after the handshake. */
  sendMss: number;
  pmtu: number;
  fragNeededSeen: number;
  synRetransmits: number;
  retransmits: number;
  responseBytes: number;
}

export class TcpClient {
  private state: 'idle' | 'syn-sent' | 'open' | CloseReason | 'no-synack' = 'idle';
  private readonly isn: number;
  private readonly tsOffset: number;
  private readonly tsOffered: boolean;
  private readonly reader: MessageReader;
  private conn: TcpConn | null = null;
  private synTimer: Timer | null = null;
  private synRetransmits = 0;
  private fragNeededSeen = 0;
  private pmtu: number;
  private fdataSeq = 0;
  private sendMss = 0;

  constructor(
    private readonly io: HostIo,
    readonly local: Endpoint,
    private readonly remote: Endpoint,
    private readonly b: ClientBehaviour,
    seed: number,
  ) {
    const rng = new Rng(mix32(seed, addressSeed(local.addr), local.port));
    this.isn = rng.u32();
    this.tsOffset = rng.u32();
    this.tsOffered = b.timestamps !== false;
    this.pmtu = b.mtu ?? b.advmss + ipHeaderLength(local.addr) + 20;
    this.reader = new MessageReader('RESP', RESPONSE_SALT, local);
  }

  start(): void {
    if (this.state !== 'idle') return;
    this.state = 'syn-sent';
    this.sendSyn();
  }

  receive(seg: Segment): void {
    if (this.state === 'syn-sent') this.synSent(seg);
    else if (this.conn) this.conn.receive(seg);
  }

  fragNeeded(mtu: number): void {
    this.fragNeededSeen++;
    if (this.conn) this.conn.fragNeeded(mtu);
    else this.pmtu = Math.min(this.pmtu, Math.max(minPmtu(this.local.addr), mtu));
  }

  result(): ClientResult {
    const c = this.conn;
    const failure =
      this.state === 'no-synack' || this.state === 'syn-sent' || this.state === 'idle'
        ? 'no SYN+ACK'
        : this.state === 'reset'
          ? 'reset'
          : this.state === 'timeout'
            ? 'retransmissions exhausted'
            : this.responseProblem();
    return {
      local: this.local,
      established: c !== null,
      responseIntact: this.reader.intact(),
      reset: this.state === 'reset',
      finished: this.state === 'normal',
      failure,
      fdataSeq: this.fdataSeq,
      sendMss: this.sendMss,
      pmtu: c ? c.pmtu : this.pmtu,
      fragNeededSeen: this.fragNeededSeen,
      synRetransmits: this.synRetransmits,
      retransmits: c ? c.retransmits : 0,
      responseBytes: this.reader.received,
    };
  }

  private responseProblem(): string | null {
    const r = this.reader;
    if (r.intact()) return null;
    if (r.state === 'header' || r.state === 'body')
      return `response incomplete (${r.received} bytes)`;
    if (r.state === 'bad') return 'response malformed';
    return r.extra > 0 ? `response followed by ${r.extra} extra bytes` : 'response corrupt';
  }

  private sendSyn(): void {
    const opts = linuxSynOptions(
      this.b.advmss,
      this.tsOffered ? this.tsNow() : null,
      CLIENT_WSCALE,
    );
    if (this.b.spoofToa) opts.push(forgedToa(this.b.spoofToa));
    this.io.send(
      buildTcp({
        src: this.local.addr,
        dst: this.remote.addr,
        sport: this.local.port,
        dport: this.remote.port,
        seq: this.isn,
        ack: 0,
        flags: TCP_SYN,
        window: CLIENT_SYN_WINDOW,
        options: opts,
      }),
    );
    this.synTimer = this.io.setTimer(SYN_RTO_MS << this.synRetransmits, () => {
      this.synTimer = null;
      if (this.state !== 'syn-sent') return;
      if (this.synRetransmits >= SYN_RETRIES) {
        this.state = 'no-synack';
        return;
      }
      this.synRetransmits++;
      this.sendSyn();
    });
  }

  private synSent(seg: Segment): void {
    const okAck = seg.ack === (this.isn + 1) >>> 0;
    if (seg.flags & TCP_RST) {
      if (seg.flags & TCP_ACK && okAck) this.closeWith('reset');
      return;
    }
    if ((seg.flags & (TCP_SYN | TCP_ACK)) !== (TCP_SYN | TCP_ACK)) return;
    if (!okAck) {
      this.io.count('clientRstSent');
      this.io.send(buildResetFor(seg));
      return;
    }
    this.synTimer?.cancel();
    this.synTimer = null;
    this.state = 'open';
    this.fdataSeq = (seg.seq + 1) >>> 0;
    const conn: TcpConn = new TcpConn(
      this.io,
      {
        local: this.local,
        remote: this.remote,
        iss: this.isn,
        irs: seg.seq,
        peerMss: seg.mss > 0 ? seg.mss : 536,
        pmtu: this.pmtu,
        tsOk: this.tsOffered && seg.tsVal !== null,
        tsRecent: seg.tsVal ?? 0,
        tsOffset: this.tsOffset,
        rcvWnd: CLIENT_SYN_WINDOW,
        rcvWscale: seg.wscale >= 0 ? CLIENT_WSCALE : -1,
        alwaysOptions: this.b.spoofToa ? [forgedToa(this.b.spoofToa)] : undefined,
        forcedPayload: this.b.overMssPayload,
      },
      {
        data: (bytes) => this.reader.push(bytes),
        // The server closes after its response (HTTP/1.0): answer with our FIN.
        peerFin: () => conn.close(),
        closed: (how) => this.closeWith(how),
      },
    );
    this.conn = conn;
    this.sendMss = conn.sendMss();
    this.firstFlight(conn);
  }

  private firstFlight(conn: TcpConn): void {
    conn.write(buildRequest(this.local, this.requestBody(conn)));
    if (this.b.finWithData) conn.close();
    const lose = this.b.dropBareAck === true;
    switch (this.b.firstFlight) {
      case 'bare-ack-then-data':
        conn.sendAck({ lose });
        this.firstData(conn);
        break;
      case 'data-then-bare-ack':
        this.firstData(conn);
        conn.sendAck({ off: 0, lose });
        break;
      case 'data-only':
        this.firstData(conn);
        break;
    }
    conn.pump();
  }

  private requestBody(conn: TcpConn): number {
    const k = this.b.requestFullSegments;
    if (k === undefined) return this.b.requestSize;
    const total = k * conn.sendMss();
    let body = total;
    // The header's length depends on the body's digit count: settle it in a few rounds.
    for (let i = 0; i < 4; i++) body = total - requestHeaderLength(this.local, body);
    return Math.max(patternKeyLength(this.local), body);
  }

  private firstData(conn: TcpConn): void {
    const extra = this.b.extraOptions?.(this.fdataSeq);
    if (extra) conn.sendNext(conn.payloadFor(optionsLength(extra)), extra);
    else conn.sendNext(conn.sendMss());
  }

  private closeWith(how: CloseReason): void {
    this.synTimer?.cancel();
    this.synTimer = null;
    this.state = how;
  }

  private tsNow(): number {
    return (Math.floor(this.io.now()) + this.tsOffset) >>> 0;
  }
}

/** The TOA a client forges: kind 254 of the forged address's family. */
function forgedToa(e: Endpoint): TcpOption {
  return typeof e.addr === 'number'
    ? toaV4Option(e.port, e.addr)
    : toaV6Option(e.port, e.addr.bytes);
}

/** One client address; demultiplexes its connections by local port. */
export class ClientHost implements Host {
  private readonly clients = new Map<number, TcpClient>();

  constructor(
    private readonly io: HostIo,
    readonly addr: IpAddress,
  ) {}

  connect(port: number, remote: Endpoint, behaviour: ClientBehaviour, seed: number): TcpClient {
    if (this.clients.has(port)) throw new Error(`port ${port} already in use`);
    const c = new TcpClient(this.io, { addr: this.addr, port }, remote, behaviour, seed);
    this.clients.set(port, c);
    return c;
  }

  receive(pkt: Uint8Array): void {
    const p = parsePacket(pkt);
    if (p.kind === 'bad') {
      this.io.count(`clientBadPacket:${p.reason}`);
      return;
    }
    if (p.kind === 'fragNeeded') {
      const q = p.icmp.inner;
      if (addressEquals(q.src, this.addr)) this.clients.get(q.sport)?.fragNeeded(p.icmp.mtu);
      return;
    }
    if (p.kind !== 'tcp' || !addressEquals(p.seg.dst, this.addr)) return;
    const c = this.clients.get(p.seg.dport);
    if (c) c.receive(p.seg);
    else this.io.count('clientNoSocket');
  }
}
