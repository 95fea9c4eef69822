/**
 * `fullnat doctor`: reads a capture taken at a real server (or on the LB's
 * RS-facing interface) and finds, per TCP connection, the one segment the RS
 * toa module reads — the segment that concluded the passive handshake under
 * Linux 6.x `tcp_check_req` rules — then says whether it carried a TOA and,
 * when it did not, why. docs/SCENARIOS.md has the rules and the causes.
 *
 * Rules chosen where the capture alone cannot be certain:
 *
 * - Window check: the kernel's (`tcp_in_window`), not a simplified
 *   `seq ∈ [ISN+1, ISN+1+wnd)`: a segment is rejected only when it ends before
 *   rcv_nxt or starts beyond rcv_nxt + the window of the SYN+ACK (unscaled).
 *   In-window RST or SYN from the client kills the request sock; nothing
 *   concludes after that until a new SYN.
 * - Miss causes, first that applies: `no-toa-at-all` when no packet of the
 *   connection carries a TOA *and* either no connection in the capture does
 *   (the LB is not inserting) or none of fin-data, options-full, over-mss,
 *   full-segment explains it — an LB that inserts elsewhere but had no room
 *   here is not "not inserting"; then `fin-data`, `options-full`, `over-mss`,
 *   `full-segment`, `reordered`, `unknown`, in that order.
 * - `over-mss`: payload above the smaller of the MSS the client announced in
 *   its SYN (terminals seen in the field announced 1444 and sent 1460) and
 *   the MSS the server announced in its SYN+ACK.
 * - `reordered`: the handshake's own bare ACK (seq client ISN+1, ack server
 *   ISN+1) arrived after the data segment that concluded; a later duplicate
 *   ACK has a higher seq and does not count.
 * - Path MTU: per capture interface, from client → server packets of the
 *   judged connections (what reached the RS fitted its path). The largest
 *   one is taken as the MTU only when some sender was seen cutting its data
 *   at a size (a data segment directly continued by the next), since a
 *   capture of short requests says nothing about the path; otherwise 1500
 *   (or the largest packet, if larger). `mtu` overrides.
 * - Spoofed (the TOA the RS read is suspect): its address is one of the LB's
 *   local addresses (source addresses of connections carrying TOAs);
 *   the concluding segment carries more than one TOA (a client-supplied TOA
 *   got past the LB — the RS took the first, which is only right if the LB put
 *   its own first); or the connection's packets claim different addresses.
 * - Client leg: a connection whose own client ip:port is what a TOA of a
 *   connection to another server claims is the LB's client-facing leg of
 *   that connection (a capture holding both legs); it is listed but left out
 *   of the numbers.
 * - Not via the LB: once the capture shows TOAs, only connections opened
 *   from an address that sent TOAs (a LIP) are judged; the RS's own outgoing
 *   connections, say, are listed and left out. Without any TOA, all are judged.
 */
import { ipv4ToString, ipv6ToString } from '../wire/bytes.js';
import { readCapture, type CaptureRecord } from '../wire/capture.js';
import { IPPROTO_TCP, Ipv4View } from '../wire/ipv4.js';
import { Ipv6Error, Ipv6View, IPV6_HEADER } from '../wire/ipv6.js';
import {
  TCP_ACK,
  TCP_FIN,
  TCP_MAX_OPTIONS,
  TCP_MIN_HEADER,
  TCP_RST,
  TCP_SYN,
  TcpView,
  seqAfter,
  seqBefore,
} from '../wire/tcp.js';
import { TcpOptionSummary } from '../wire/tcp-options.js';
import { findToa, ToaResult, TOA_V4_LEN, TOA_V6_LEN } from '../wire/toa.js';
import { flagString } from '../wire/tcp.js';

export const MISS_CAUSES = [
  'no-toa-at-all',
  'fin-data',
  'options-full',
  'over-mss',
  'full-segment',
  'reordered',
  'unknown',
] as const;
export type MissCause = (typeof MISS_CAUSES)[number];

export type SpoofReason = 'lb-address' | 'multiple-toa' | 'conflicting-toa';

/**
 * - toa / miss: the handshake concluded, with or without a TOA;
 * - no-syn: the capture started mid-connection (not judged);
 * - no-synack: the server's SYN+ACK is not in the capture;
 * - not-concluded: no client segment passed the checks (or a RST/SYN ended the request);
 * - client-leg: the LB's client-facing leg of a connection also in the capture;
 * - not-via-lb: not opened from a LIP, while other connections show the LB's TOAs.
 */
export type Verdict =
  'toa' | 'miss' | 'no-syn' | 'no-synack' | 'not-concluded' | 'client-leg' | 'not-via-lb';

export const DEFAULT_MTU = 1500;
/** Above any real link MTU: such packets were coalesced by the capturing host (GRO/LRO/TSO). */
const MAX_PLAUSIBLE_MTU = 9216;

export interface AnalyzeOptions {
  /** Model TCP_DEFER_ACCEPT on the listener: a bare ACK does not conclude. */
  deferAccept?: boolean;
  /** Path MTU toward the server, instead of the estimate from the capture. */
  mtu?: number;
}

export interface ToaClaim {
  family: 4 | 6;
  kind: number;
  address: string;
  port: number;
  /** "a.b.c.d:port" or "[v6]:port". */
  endpoint: string;
}

export interface ConcludingSegment {
  /** 1-based position of the packet in the file. */
  packet: number;
  timestampUs: number;
  flags: string;
  payload: number;
  ipLength: number;
  /** TCP option bytes the segment already used. */
  optionBytes: number;
  optionsMalformed: boolean;
  /** The TOA the RS module reads (first match), or null. */
  toa: ToaClaim | null;
  /** TOA-shaped options present (more than one: a client-supplied TOA got through). */
  toaCount: number;
}

export interface ConnectionReport {
  id: number;
  family: 4 | 6;
  /** SYN sender: the LB's LIP:lport in a capture at the RS. */
  client: string;
  server: string;
  firstPacket: number;
  packets: number;
  clientMss: number | null;
  serverMss: number | null;
  serverWindow: number | null;
  concluding: ConcludingSegment | null;
  /** Client-side packets (any, SYN included) carrying a TOA. */
  toaPackets: number;
  /** Bare ACKs dropped by TCP_DEFER_ACCEPT before the concluding segment. */
  deferredAcks: number;
  verdict: Verdict;
  cause: MissCause | null;
  spoofed: SpoofReason | null;
  /** Path MTU the verdict was judged against. */
  mtu: number;
  note: string | null;
}

export interface PathMtu {
  interfaceId: number;
  mtu: number;
  source: 'observed' | 'default' | 'option';
}

export interface PacketCounts {
  total: number;
  tcp: number;
  notIp: number;
  notTcp: number;
  fragments: number;
  malformed: number;
}

export interface Summary {
  /** Handshakes judged: connections with a SYN, client legs and others not via the LB left out. */
  connections: number;
  concluded: number;
  withToa: number;
  /** Percent of concluded handshakes whose concluding segment carried a TOA; null when none concluded. */
  coverage: number | null;
  misses: Record<MissCause, number>;
  spoofed: number;
  /** Client MSS from the SYNs ("none" when absent), per judged connection. */
  mssHistogram: Record<string, number>;
  pathMtu: PathMtu[];
  noSyn: number;
  noSynAck: number;
  notConcluded: number;
  clientLeg: number;
  notViaLb: number;
}

export interface Analysis {
  options: { deferAccept: boolean; mtu: number | null };
  packets: PacketCounts;
  summary: Summary;
  connections: ConnectionReport[];
  warnings: string[];
}

/** One TCP segment, with what the doctor needs from it already read out. */
interface Seg {
  packet: number;
  timestampUs: number;
  interfaceId: number;
  family: 4 | 6;
  src: string;
  dst: string;
  srcAddr: string;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  ipLength: number;
  payload: number;
  optionBytes: number;
  optionsMalformed: boolean;
  mss: number;
  toa: ToaClaim | null;
  toaCount: number;
  /** Size of the first TOA-shaped option, 0 when none. */
  toaSize: number;
}

type Decoded = Seg | 'not-ip' | 'not-tcp' | 'fragment' | 'malformed';

const ip4 = new Ipv4View();
const ip6 = new Ipv6View();
const tcp = new TcpView();
const optSummary = new TcpOptionSummary();
const toaResult = new ToaResult();

const endpoint = (family: 4 | 6, addr: string, port: number): string =>
  family === 4 ? `${addr}:${port}` : `[${addr}]:${port}`;

function decode(rec: CaptureRecord, packet: number): Decoded {
  const b = rec.data;
  const o = rec.ipOffset;
  if (o < 0) return 'not-ip';
  const avail = b.length - o;
  // A snap length cut the packet: header lengths are still right, the payload is just not here.
  const snapCut = rec.originalLength > b.length;
  if (avail < 1) return 'malformed';
  const version = b[o]! >>> 4;
  if (version === 4) {
    if (avail < 20) return 'malformed';
    ip4.wrap(b, o);
    const hl = ip4.headerLength;
    const tl = ip4.totalLength;
    if (hl < 20 || hl > avail || tl < hl || (tl > avail && !snapCut)) return 'malformed';
    if (ip4.protocol !== IPPROTO_TCP) return 'not-tcp';
    // The RS reassembles before TCP sees anything; judging pieces would mislead.
    if (ip4.isFragment) return 'fragment';
    const src = ipv4ToString(ip4.src);
    const dst = ipv4ToString(ip4.dst);
    return decodeTcp(rec, packet, 4, src, dst, o + hl, tl - hl, tl);
  }
  if (version === 6) {
    if (avail < IPV6_HEADER) return 'malformed';
    ip6.wrap(b, o);
    const payloadLength = ip6.payloadLength;
    let view = b;
    let base = o;
    if (IPV6_HEADER + payloadLength > avail) {
      if (!snapCut) return 'malformed';
      // Walk a copy whose payload length matches what was captured, so the
      // extension-header walk never reads past the buffer.
      view = b.slice(o);
      base = 0;
      view[4] = ((avail - IPV6_HEADER) >>> 8) & 0xff;
      view[5] = (avail - IPV6_HEADER) & 0xff;
    }
    const err = ip6.wrap(view, base).walk(view.length - base);
    if (err === Ipv6Error.NoTransport) return 'not-tcp';
    if (err !== Ipv6Error.None) return 'malformed';
    if (ip6.fragmented) return 'fragment';
    if (ip6.upperProtocol !== IPPROTO_TCP) return 'not-tcp';
    const src = ipv6ToString(view, base + 8);
    const dst = ipv6ToString(view, base + 24);
    const tcpAt = o + (ip6.upperOffset - base);
    const ipLength = IPV6_HEADER + payloadLength;
    return decodeTcp(rec, packet, 6, src, dst, tcpAt, ipLength - (tcpAt - o), ipLength);
  }
  return 'malformed';
}

function decodeTcp(
  rec: CaptureRecord,
  packet: number,
  family: 4 | 6,
  srcAddr: string,
  dstAddr: string,
  at: number,
  tcpLength: number,
  ipLength: number,
): Decoded {
  const b = rec.data;
  if (tcpLength < TCP_MIN_HEADER || at + TCP_MIN_HEADER > b.length) return 'malformed';
  tcp.wrap(b, at);
  const hl = tcp.headerLength;
  // Options cut off by the snap length cannot be judged, so the packet is not either.
  if (hl < TCP_MIN_HEADER || hl > tcpLength || at + hl > b.length) return 'malformed';
  const optStart = at + TCP_MIN_HEADER;
  const optEnd = at + hl;
  optSummary.parse(b, optStart, optEnd);
  let toa: ToaClaim | null = null;
  if (findToa(b, optStart, optEnd, toaResult)) {
    const family = toaResult.family === 6 ? 6 : 4;
    const address = family === 4 ? ipv4ToString(toaResult.v4) : ipv6ToString(toaResult.v6);
    toa = {
      family,
      kind: toaResult.kind,
      address,
      port: toaResult.port,
      endpoint: endpoint(family, address, toaResult.port),
    };
  }
  return {
    packet,
    timestampUs: rec.timestampUs,
    interfaceId: rec.interfaceId,
    family,
    src: endpoint(family, srcAddr, tcp.srcPort),
    dst: endpoint(family, dstAddr, tcp.dstPort),
    srcAddr,
    seq: tcp.seq,
    ack: tcp.ack,
    flags: tcp.flags,
    window: tcp.window,
    ipLength,
    payload: tcpLength - hl,
    optionBytes: hl - TCP_MIN_HEADER,
    optionsMalformed: optSummary.malformed,
    mss: optSummary.mss,
    toa,
    toaCount: optSummary.toaCount,
    toaSize: optSummary.toaAt >= 0 ? b[optSummary.toaAt + 1]! : 0,
  };
}

/** What is being learnt about one connection while the capture is read. */
interface Conn {
  id: number;
  family: 4 | 6;
  client: string;
  clientAddr: string;
  server: string;
  firstPacket: number;
  packets: number;
  synSeen: boolean;
  clientIsn: number;
  clientMss: number | null;
  serverIsn: number | null;
  serverMss: number | null;
  serverWindow: number;
  requestDropped: boolean;
  concluding: Seg | null;
  laterBareAck: boolean;
  deferredAcks: number;
  toaPackets: number;
  toaSize: number;
  claims: Set<string>;
  /** Largest client → server IP packet per capture interface. */
  maxLength: Map<number, number>;
  /** Interfaces on which this client was seen cutting its data into segments. */
  cutOn: Set<number>;
  lastData: Seg | null;
}

function newConn(id: number, s: Seg, synSeen: boolean): Conn {
  return {
    id,
    family: s.family,
    client: s.src,
    clientAddr: s.srcAddr,
    server: s.dst,
    firstPacket: s.packet,
    packets: 0,
    synSeen,
    clientIsn: s.seq,
    clientMss: synSeen && s.mss >= 0 ? s.mss : null,
    serverIsn: null,
    serverMss: null,
    serverWindow: 0,
    requestDropped: false,
    concluding: null,
    laterBareAck: false,
    deferredAcks: 0,
    toaPackets: 0,
    toaSize: 0,
    claims: new Set(),
    maxLength: new Map(),
    cutOn: new Set(),
    lastData: null,
  };
}

const isPureSyn = (s: Seg): boolean => (s.flags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN;
const isBareAck = (s: Seg): boolean =>
  (s.flags & (TCP_ACK | TCP_SYN | TCP_RST | TCP_FIN)) === TCP_ACK && s.payload === 0;

/** One client → server segment against the request sock, in `tcp_check_req` order. */
function checkRequest(c: Conn, s: Seg, deferAccept: boolean): void {
  const f = s.flags;
  if (c.serverIsn === null || c.requestDropped) return;
  // An exact SYN retransmission only makes the server repeat its SYN+ACK.
  if ((f & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) === TCP_SYN && s.seq === c.clientIsn) return;
  // A wrong ack is answered with RST and changes nothing.
  if (f & TCP_ACK && s.ack !== (c.serverIsn + 1) >>> 0) return;
  const rcvNxt = (c.clientIsn + 1) >>> 0;
  const endSeq = (s.seq + s.payload + (f & TCP_FIN ? 1 : 0)) >>> 0;
  if (seqBefore(endSeq, rcvNxt) || seqAfter(s.seq, (rcvNxt + c.serverWindow) >>> 0)) return;
  if (f & (TCP_RST | TCP_SYN)) {
    c.requestDropped = true;
    return;
  }
  if (!(f & TCP_ACK)) return;
  // Only a bare ACK is deferred: FIN or data concludes even with TCP_DEFER_ACCEPT.
  if (deferAccept && endSeq === rcvNxt) {
    c.deferredAcks++;
    return;
  }
  c.concluding = s;
}

function onSegment(c: Conn, s: Seg, deferAccept: boolean): void {
  c.packets++;
  if (s.src !== c.client) {
    const synAck = (s.flags & (TCP_SYN | TCP_ACK | TCP_RST)) === (TCP_SYN | TCP_ACK);
    if (synAck && c.synSeen && !c.concluding && s.ack === (c.clientIsn + 1) >>> 0) {
      c.serverIsn = s.seq;
      c.serverMss = s.mss >= 0 ? s.mss : null;
      c.serverWindow = s.window;
      c.requestDropped = false;
    }
    return;
  }
  c.maxLength.set(s.interfaceId, Math.max(c.maxLength.get(s.interfaceId) ?? 0, s.ipLength));
  if (s.payload > 0) {
    const p = c.lastData;
    if (p && s.seq === (p.seq + p.payload) >>> 0) c.cutOn.add(p.interfaceId);
    c.lastData = s;
  }
  if (s.toaCount > 0) {
    c.toaPackets++;
    if (c.toaSize === 0) c.toaSize = s.toaSize;
  }
  if (s.toa) c.claims.add(s.toa.endpoint);
  if (!c.synSeen) return;
  if (!c.concluding) checkRequest(c, s, deferAccept);
  else if (
    c.serverIsn !== null &&
    isBareAck(s) &&
    s.ack === (c.serverIsn + 1) >>> 0 &&
    // The handshake's own ACK, not a duplicate ACK sent after data went out.
    s.seq === (c.clientIsn + 1) >>> 0
  ) {
    c.laterBareAck = true;
  }
}

/** Follows every TCP connection of the capture, in capture order. */
function follow(
  records: readonly CaptureRecord[],
  deferAccept: boolean,
): { conns: Conn[]; counts: PacketCounts } {
  const counts: PacketCounts = {
    total: records.length,
    tcp: 0,
    notIp: 0,
    notTcp: 0,
    fragments: 0,
    malformed: 0,
  };
  const conns: Conn[] = [];
  const byTuple = new Map<string, Conn>();
  records.forEach((rec, i) => {
    const s = decode(rec, i + 1);
    if (s === 'not-ip') counts.notIp++;
    else if (s === 'not-tcp') counts.notTcp++;
    else if (s === 'fragment') counts.fragments++;
    else if (s === 'malformed') counts.malformed++;
    else {
      counts.tcp++;
      const key = s.src < s.dst ? `${s.src} ${s.dst}` : `${s.dst} ${s.src}`;
      let c = byTuple.get(key);
      // A SYN with a new ISN is a new connection on a reused tuple; a retransmitted SYN is not.
      const fresh =
        isPureSyn(s) && (!c || !c.synSeen || c.client !== s.src || c.clientIsn !== s.seq);
      if (!c || fresh) {
        c = newConn(conns.length + 1, s, isPureSyn(s));
        conns.push(c);
        byTuple.set(key, c);
      }
      onSegment(c, s, deferAccept);
    }
  });
  return { conns, counts };
}

function classify(c: Conn, k: Seg, mtu: number, captureHasToa: boolean): MissCause {
  const need = c.toaSize || k.toaSize || (c.family === 6 ? TOA_V6_LEN : TOA_V4_LEN);
  const mss = Math.min(c.clientMss ?? Infinity, c.serverMss ?? Infinity);
  const data = k.payload > 0;
  const shape: MissCause | null =
    k.flags & TCP_FIN
      ? 'fin-data'
      : TCP_MAX_OPTIONS - k.optionBytes < need
        ? 'options-full'
        : data && k.payload > mss
          ? 'over-mss'
          : data && k.ipLength + need > mtu
            ? 'full-segment'
            : null;
  if (c.toaPackets === 0 && (!captureHasToa || shape === null)) return 'no-toa-at-all';
  if (shape) return shape;
  if (data && c.laterBareAck) return 'reordered';
  return 'unknown';
}

function spoofCheck(c: Conn, k: Seg, lips: ReadonlySet<string>): SpoofReason | null {
  if (!k.toa) return null;
  if (lips.has(k.toa.address)) return 'lb-address';
  if (k.toaCount > 1) return 'multiple-toa';
  if (c.claims.size > 1) return 'conflicting-toa';
  return null;
}

function pathMtus(judged: readonly Conn[], override: number | undefined): Map<number, PathMtu> {
  const largest = new Map<number, number>();
  const cut = new Set<number>();
  for (const c of judged) {
    for (const [ifc, len] of c.maxLength) largest.set(ifc, Math.max(largest.get(ifc) ?? 0, len));
    for (const ifc of c.cutOn) cut.add(ifc);
  }
  const out = new Map<number, PathMtu>();
  for (const [ifc, len] of largest) {
    const mtu: PathMtu =
      override !== undefined
        ? { interfaceId: ifc, mtu: override, source: 'option' }
        : cut.has(ifc) || len > DEFAULT_MTU
          ? { interfaceId: ifc, mtu: len, source: 'observed' }
          : { interfaceId: ifc, mtu: DEFAULT_MTU, source: 'default' };
    out.set(ifc, mtu);
  }
  return out;
}

function report(
  c: Conn,
  verdict: Verdict,
  mtu: number,
  extra: Partial<ConnectionReport> = {},
): ConnectionReport {
  const k = c.concluding;
  return {
    id: c.id,
    family: c.family,
    client: c.client,
    server: c.server,
    firstPacket: c.firstPacket,
    packets: c.packets,
    clientMss: c.clientMss,
    serverMss: c.serverMss,
    serverWindow: c.serverIsn === null ? null : c.serverWindow,
    concluding: k
      ? {
          packet: k.packet,
          timestampUs: k.timestampUs,
          flags: flagString(k.flags),
          payload: k.payload,
          ipLength: k.ipLength,
          optionBytes: k.optionBytes,
          optionsMalformed: k.optionsMalformed,
          toa: k.toa,
          toaCount: k.toaCount,
        }
      : null,
    toaPackets: c.toaPackets,
    deferredAcks: c.deferredAcks,
    verdict,
    cause: null,
    spoofed: null,
    mtu,
    note: null,
    ...extra,
  };
}

/** Judges every connection of a decoded capture. Never throws on packet contents. */
export function analyzeRecords(
  records: readonly CaptureRecord[],
  opts: AnalyzeOptions = {},
): Analysis {
  const deferAccept = opts.deferAccept === true;
  const { conns, counts } = follow(records, deferAccept);
  // Claimed endpoint → the servers of the connections claiming it. A client
  // leg goes to the VIP, so a claim from a connection to the same server is
  // not one (it is a TOA naming an LB address, judged as spoofed instead).
  const claimedBy = new Map<string, Set<string>>();
  for (const c of conns) {
    for (const e of c.claims) {
      const servers = claimedBy.get(e) ?? new Set<string>();
      servers.add(c.server);
      claimedBy.set(e, servers);
    }
  }
  const isClientLeg = (c: Conn): boolean =>
    c.synSeen && [...(claimedBy.get(c.client) ?? [])].some((server) => server !== c.server);
  const legs = conns.filter((c) => c.synSeen && !isClientLeg(c));
  const lips = new Set(legs.filter((c) => c.toaPackets > 0).map((c) => c.clientAddr));
  const captureHasToa = lips.size > 0;
  const viaLb = (c: Conn): boolean => !captureHasToa || lips.has(c.clientAddr);
  const judged = legs.filter(viaLb);
  const mtus = pathMtus(judged, opts.mtu);
  const mtuOf = (c: Conn): number =>
    opts.mtu ?? mtus.get(c.concluding?.interfaceId ?? 0)?.mtu ?? DEFAULT_MTU;

  const misses = Object.fromEntries(MISS_CAUSES.map((m) => [m, 0])) as Record<MissCause, number>;
  const mssHistogram: Record<string, number> = {};
  const summary: Summary = {
    connections: judged.length,
    concluded: 0,
    withToa: 0,
    coverage: null,
    misses,
    spoofed: 0,
    mssHistogram,
    pathMtu: [...mtus.values()].sort((a, b) => a.interfaceId - b.interfaceId),
    noSyn: 0,
    noSynAck: 0,
    notConcluded: 0,
    clientLeg: 0,
    notViaLb: 0,
  };
  if (summary.pathMtu.length === 0) {
    summary.pathMtu.push({
      interfaceId: 0,
      mtu: opts.mtu ?? DEFAULT_MTU,
      source: opts.mtu === undefined ? 'default' : 'option',
    });
  }

  const details = conns.map((c): ConnectionReport => {
    const mtu = mtuOf(c);
    if (!c.synSeen) {
      summary.noSyn++;
      return report(c, 'no-syn', mtu, { note: 'capture started after the SYN' });
    }
    if (isClientLeg(c)) {
      summary.clientLeg++;
      return report(c, 'client-leg', mtu, { note: 'its address:port travels in a TOA' });
    }
    if (!viaLb(c)) {
      summary.notViaLb++;
      return report(c, 'not-via-lb', mtu, { note: 'not opened from an address that sent TOAs' });
    }
    const mss = c.clientMss === null ? 'none' : String(c.clientMss);
    mssHistogram[mss] = (mssHistogram[mss] ?? 0) + 1;
    const k = c.concluding;
    if (c.serverIsn === null) {
      summary.noSynAck++;
      return report(c, 'no-synack', mtu, { note: 'no SYN+ACK answering the SYN' });
    }
    if (!k) {
      summary.notConcluded++;
      const note = c.requestDropped ? 'RST or SYN ended the request' : 'no segment concluded';
      return report(c, 'not-concluded', mtu, { note });
    }
    summary.concluded++;
    if (k.toa) {
      summary.withToa++;
      const spoofed = spoofCheck(c, k, lips);
      if (spoofed) summary.spoofed++;
      return report(c, 'toa', mtu, { spoofed });
    }
    const cause = classify(c, k, mtu, captureHasToa);
    misses[cause]++;
    return report(c, 'miss', mtu, { cause });
  });
  if (summary.concluded > 0) {
    summary.coverage = Math.round((10000 * summary.withToa) / summary.concluded) / 100;
  }
  return {
    options: { deferAccept, mtu: opts.mtu ?? null },
    packets: counts,
    summary,
    connections: details,
    warnings: warnings(counts, summary),
  };
}

function warnings(counts: PacketCounts, s: Summary): string[] {
  const out: string[] = [];
  if (counts.tcp === 0) out.push('no TCP packets in the capture');
  else if (s.connections === 0) {
    out.push('no handshake in the capture: start it before the clients connect');
  }
  if (counts.malformed > 0) out.push(`${counts.malformed} malformed packets skipped`);
  const big = s.pathMtu.filter((p) => p.source === 'observed' && p.mtu > MAX_PLAUSIBLE_MTU);
  if (big.length > 0) {
    out.push(
      `packets of up to ${Math.max(...big.map((p) => p.mtu))} bytes: the capturing host ` +
        'coalesces segments (GRO/LRO), sizes are not wire sizes; pass --mtu',
    );
  }
  if (s.notViaLb > 0) {
    out.push(`${s.notViaLb} connections not opened from a LIP (no TOA from their source) left out`);
  }
  if (s.connections > 0 && s.misses['no-toa-at-all'] === s.connections) {
    out.push('no TOA anywhere: every connection was judged; capture only the service port');
  }
  if (s.clientLeg > 0) {
    out.push(`${s.clientLeg} client-leg connections (addresses carried in TOAs) left out`);
  }
  if (s.spoofed > 0) out.push(`${s.spoofed} connections with a suspect TOA (see spoofed)`);
  return out;
}

/** Reads a pcap/pcapng file's bytes and judges it; throws only when the file itself is damaged. */
export function analyzeCapture(bytes: Uint8Array, opts: AnalyzeOptions = {}): Analysis {
  return analyzeRecords(readCapture(bytes), opts);
}
