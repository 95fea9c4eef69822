/**
 * Hostile packets for the whole data path (engine + wire), shared by
 * test/engine/engine-fuzz.test.ts and `npm run fuzz` (scripts/fuzz.js).
 *
 * - A corpus: valid packets of live connections (three services: one with a
 *   TOA, one with a PROXY header instead, one behind SYNPROXY), and
 *   hand-built hostile ones: truncated headers, IHL / data offset / total
 *   length out of range, TCP option lengths 0, 1 and overrunning, duplicate
 *   and conflicting options, client TOAs (two, wrong length 254/6 and
 *   254/12, IPv6-sized, hidden after EOL), IP options, IPv4 fragments, IPv6
 *   with extension-header chains, non-TCP, SYN+FIN and other flag soups,
 *   zero windows, RSTs with guessed sequence numbers, bad checksums; for
 *   SYNPROXY, SYNs with hostile options, cookie ACKs wrong in every way,
 *   client packets while the RS leg opens, and RS answers to the LB's SYN
 *   (SYN+ACK, RST, a stale ACK, a wrong ack).
 * - Scripted connections, played step by step: the fuzzer learns what the
 *   engine chose (LIP port and ISN of the RS leg, the SYNPROXY cookie of
 *   the LB's SYN+ACK) and addresses the later steps to it, so valid cookie
 *   ACKs and RS SYN+ACKs keep coming however far the clock has moved.
 * - A mutator driven by xorshift32, so a seed replays the same stream: it
 *   works in one scratch buffer and allocates nothing per packet but the
 *   view it hands to `Packet.load`.
 * - The per-packet checks (`Fuzzer.feed`): the engine does not throw; the
 *   packet is counted exactly once, as forwarded, under one drop counter, or
 *   held by SYNPROXY (rx_packets == forwarded + Σ drops + held after every
 *   packet and every clock tick: a held packet leaves the count of held ones
 *   when it is replayed and forwarded or dropped, or discarded); every
 *   packet it emits is a valid IPv4 packet (header checksum, total length ==
 *   buffer length, no fragment, TCP header inside the packet, TCP checksum
 *   valid when the input's checksums were, ICMP checksum valid); a corrupt
 *   packet it forwards stays corrupt (never laundered), a replayed held
 *   packet keeps the validity it arrived with; the TOA the RS module would
 *   read is the client's own under `fullnat` (client TOAs are stripped) and
 *   under every policy on a packet the engine put its TOA in, replayed held
 *   packets included; no packet buffer stays out of the pool but the held
 *   ones, and the table stays within its limit.
 */
import { Engine } from '../../src/engine/engine.js';
import { C, COUNTER_NAMES, DROP_COUNTERS, type CounterName } from '../../src/engine/counters.js';
import type { ToaPolicy } from '../../src/engine/options.js';
import type { Packet } from '../../src/engine/packet.js';
import { get16, get32, set16, set32 } from '../../src/wire/bytes.js';
import { foldSum, pseudoSumV4, sumWords } from '../../src/wire/checksum.js';
import { IPPROTO_ICMP, IPPROTO_TCP, Ipv4View } from '../../src/wire/ipv4.js';
import { PROXY_V2_SIGNATURE } from '../../src/wire/proxy-protocol.js';
import {
  TCP_ACK,
  TCP_CWR,
  TCP_ECE,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TCP_URG,
  TcpView,
  writeTcpHeader,
} from '../../src/wire/tcp.js';
import { TCPOPT_TOA, opt, type TcpOption } from '../../src/wire/tcp-options.js';
import { TOA_V4_LEN, ToaResult, findToa, toaV4Option, toaV6Option } from '../../src/wire/toa.js';
import { LIP, RIP, VIP, addTestService, feedRaw } from './engine-fixture.js';
import { buildSegment, pattern } from './packets.js';

// VIP 192.0.2.100, LIP 10.10.3.1 and RIP 10.10.2.2 (service VIP:80, TOA, path MTU 1400) are the fixture's.
export { LIP, RIP, VIP };
export const RIP2 = 0x0a0a0203; // 10.10.2.3, service VIP:8080 (PROXY protocol v2)
export const RIP3 = 0x0a0a0204; // 10.10.2.4, service VIP:443 (SYNPROXY), path MTU 1400
export const SP_VPORT = 443;
/** Index of the SYNPROXY service in the fuzz engine. */
export const SP_SERVICE = 2;
/** The address every client-supplied TOA in the corpus claims. */
export const FORGED = 0x06060606;
export const CLIENT_BASE = 0xcb007101; // 203.0.113.1
export const MAX_CONNECTIONS = 32;
export const PORT_MIN = 5000;
export const PORT_MAX = 5015;
const RS_MTU = 1400;
/**
 * SYNPROXY holds at most this many client packets in all (3 a connection):
 * small, so a full store is reached too, and the pool (256) never runs dry.
 */
export const SP_MAX_HELD = 8;
/** A third identical pure ACK from an RS in a row is cut as an ACK storm. */
const SP_STORM_THRESHOLD = 2;

export const FUZZ_POLICIES = ['lvs', 'dpvs', 'fullnat'] as const;
export type FuzzPolicy = (typeof FUZZ_POLICIES)[number];

/** Packets between two engine clock ticks, and the clock step (ms). */
const TICK_EVERY = 1000;
const TICK_MS = 2000;
/** Longest input the mutator produces (a pool buffer holds 2048 bytes behind 128 of headroom). */
const MAX_INPUT = 1900;

export function newFuzzEngine(policy: ToaPolicy): Engine {
  const e = new Engine({
    toaPolicy: policy,
    maxConnections: MAX_CONNECTIONS,
    portRange: { min: PORT_MIN, max: PORT_MAX },
    // Cookie keys from a seed: the same stream makes the same cookies.
    synproxySecret: 0x5eed,
    synproxyMaxStoredTotal: SP_MAX_HELD,
    synproxyAckStormThreshold: SP_STORM_THRESHOLD,
    // DPVS can defer the RS leg to the first data: fuzzed under that policy, so both ways are.
    synproxyDefer: policy === 'dpvs',
  });
  addTestService(e, { vport: 80, rport: 80, rsMtu: RS_MTU });
  addTestService(e, { vport: 8080, rip: RIP2, rport: 8080, proxyProtocol: 2 });
  addTestService(e, { vport: SP_VPORT, rip: RIP3, rport: SP_VPORT, rsMtu: RS_MTU, synProxy: true });
  return e;
}

// ---- corpus -------------------------------------------------------------------------------

export interface FuzzCorpus {
  /** Valid packets of live connections, both directions. */
  flows: Uint8Array[];
  /** Everything hostile, including the lists below. */
  hostile: Uint8Array[];
  /** IPv6 packets, many with extension-header chains (the engine is IPv4-only). */
  /** Hand-built IPv6 and the drop counter each earns from an engine without IPv6 services. */
  ipv6: { bytes: Uint8Array; counter: CounterName }[];
  /** IPv4 fragments (MF set or a non-zero offset) to the VIP or a LIP, all with valid checksums; none completes a datagram. */
  fragments: Uint8Array[];
  /** Concluding client segments (they get the LB's TOA) carrying client TOAs of every shape. */
  forgedToa: Uint8Array[];
  /** One script per live client: whole connections the fuzzer plays step by step. */
  sessions: SessionScript[];
  /**
   * The SYNPROXY connections' packets, in order (also in `flows`): four SYNs and cookie
   * ACKs with data, then each connection's held ACK, RS SYN+ACK, data both ways and close.
   */
  synproxy: Uint8Array[];
}

/**
 * A connection from SYN to RST, one step at a time. Each step has
 * alternatives (the first is the plain one); the fuzzer picks one per visit
 * and may mutate it. RS packets are re-addressed to the LIP port and
 * acknowledge the ISN the fuzzer's own engine chose for the connection;
 * under SYNPROXY, client packets acknowledge the cookie of the LB's SYN+ACK.
 */
export interface SessionScript {
  steps: Uint8Array[][];
  /** Per step: -1 for a client packet; for an RS packet, its ack minus the LB's ISN. */
  rsAck: number[];
  /** SYNPROXY, per step: for a client packet, its ack minus the cookie; else -1. */
  cookieAck?: number[];
}

const raw = (...bytes: number[]): Uint8Array => {
  const out = new Uint8Array((bytes.length + 3) & ~3);
  out.set(bytes);
  return out;
};
const forged4 = [6, 6, 6, 6];
const toaForged = toaV4Option(1, FORGED);
const toaForged2 = toaV4Option(2, FORGED);
const toaV6Forged = toaV6Option(1, new Uint8Array(16).fill(6));
const toaV6AliForged = toaV6Option(1, new Uint8Array(16).fill(6), 253);
/** kind 254 with length 6 and 12: not a TOA to the RS module, but close. */
const toaLen6: TcpOption = { kind: 254, data: Uint8Array.from(forged4) };
const toaLen12: TcpOption = { kind: 254, data: Uint8Array.of(0, 1, ...forged4, 0, 0, 0, 0) };

/** 38 bytes: a TOA fits only once the padding (or the SACK) goes. */
const FULL_WITH_TOA = {
  options: [
    opt.nop(),
    opt.nop(),
    opt.timestamp(7, 8),
    opt.sack([
      [100, 200],
      [300, 400],
    ]),
    toaForged,
  ],
};

/** Option lists no sane stack sends: each is tried on SYNs, concluding segments and RS packets. */
const HOSTILE_OPTIONS: { options?: TcpOption[]; rawOptions?: Uint8Array }[] = [
  { options: [opt.mss(1460), opt.mss(1460)] },
  { options: [opt.mss(1460), opt.mss(536)] },
  { options: [opt.mss(0)] },
  { options: [opt.mss(1)] },
  { options: [opt.mss(65535)] },
  { options: [toaForged] },
  { options: [toaForged, toaForged2] },
  { options: [toaLen6] },
  { options: [toaLen12] },
  { options: [toaLen6, toaForged] },
  { options: [toaLen12, toaForged2, opt.nop(), opt.nop(), opt.timestamp(5, 6)] },
  { options: [toaV6Forged] },
  { options: [toaV6Forged, toaV6AliForged] },
  { options: [toaForged, toaForged2, toaV6Forged, opt.nop(), opt.nop(), opt.nop(), opt.nop()] },
  { rawOptions: raw(2, 0, 5, 180) }, // length 0
  { rawOptions: raw(8, 1, 0, 0) }, // length 1
  { rawOptions: raw(254, 0, 254, 8, 0, 1, ...forged4) }, // length 0 ahead of a TOA
  { rawOptions: raw(2, 40, 5, 180) }, // overruns the header
  { rawOptions: raw(1, 1, 1, 254, 8, 0, 1, 6) }, // TOA overrunning the header
  { rawOptions: raw(0, 254, 8, 0, 1, ...forged4) }, // TOA hidden after EOL
  { rawOptions: raw(30, 12, ...pattern(10), 254, 8, 0, 1, ...forged4) }, // unknown, then a TOA
  { options: [opt.wscale(7), opt.wscale(14)] },
  { options: [opt.wscale(255), opt.sackPermitted(), opt.sackPermitted()] },
  { options: [opt.timestamp(1, 2), opt.timestamp(3, 4), toaForged] },
  FULL_WITH_TOA,
  {
    options: [
      opt.nop(),
      opt.nop(),
      opt.sack([
        [1, 2],
        [3, 4],
        [5, 6],
        [7, 8],
      ]),
    ],
  },
  { rawOptions: raw(5, 11, ...pattern(9)) }, // SACK of a length no block count gives
  { rawOptions: raw(5, 2, 4, 3, 0) }, // empty SACK, SACK-permitted of length 3
  { options: [{ kind: 79, data: pattern(38) }] }, // one option filling all 40 bytes
  { rawOptions: raw(0, 0, 0, 0) },
  { rawOptions: new Uint8Array(40).fill(1) },
  { rawOptions: pattern(40, 99) },
];

/** Hand-built IPv6: a fixed header, the extension headers of `chain` in order, then `upper`. */
function ipv6(
  chain: { type: number; body: Uint8Array }[],
  upperType: number,
  upper: Uint8Array,
  payloadLengthDelta = 0,
): Uint8Array {
  let extLen = 0;
  for (const h of chain) extLen += h.body.length;
  const b = new Uint8Array(40 + extLen + upper.length);
  b[0] = 0x60;
  set16(b, 4, Math.max(0, extLen + upper.length + payloadLengthDelta) & 0xffff);
  b[6] = chain.length > 0 ? chain[0]!.type : upperType;
  b[7] = 64;
  set32(b, 8, 0x20010db8); // 2001:db8::203.0.113.1
  set32(b, 20, CLIENT_BASE);
  set16(b, 34, 0xffff); // ::ffff:192.0.2.100, the VIP as a mapped address
  set32(b, 36, VIP);
  let o = 40;
  chain.forEach((h, i) => {
    b.set(h.body, o);
    b[o] = i + 1 < chain.length ? chain[i + 1]!.type : upperType;
    o += h.body.length;
  });
  b.set(upper, o);
  return b;
}

/** Hop-by-hop or destination options of (units + 1) * 8 bytes, PadN-filled. */
function optsHeader(type: number, units = 0): { type: number; body: Uint8Array } {
  const body = new Uint8Array((units + 1) * 8);
  body[1] = units;
  body[2] = 1; // PadN
  body[3] = body.length - 4;
  return { type, body };
}
function routingHeader(segments: number, segmentsLeft: number): { type: number; body: Uint8Array } {
  const body = new Uint8Array(8 + 16 * segments);
  body[1] = 2 * segments;
  body[2] = 4; // segment routing
  body[3] = segmentsLeft;
  for (let i = 8; i < body.length; i += 16) body[i] = 0x20;
  return { type: 43, body };
}
function fragmentHeader(offset8: number, more: boolean): { type: number; body: Uint8Array } {
  const body = new Uint8Array(8);
  set16(body, 2, (offset8 << 3) | (more ? 1 : 0));
  set32(body, 4, 0x1234);
  return { type: 44, body };
}
function tcpBytes(flags: number, payload = 0): Uint8Array {
  const b = new Uint8Array(20 + payload);
  writeTcpHeader(b, 0, { srcPort: 40000, dstPort: 80, seq: 1000, ack: 0, flags, window: 8192 });
  b.set(pattern(payload), 20);
  set16(b, 16, 0x5a5a);
  return b;
}

function ipv6Corpus(): { bytes: Uint8Array; counter: CounterName }[] {
  const syn = tcpBytes(TCP_SYN);
  const data = tcpBytes(TCP_ACK | TCP_PSH, 100);
  const HBH = 0;
  const DST = 60;
  const many = Array.from({ length: 9 }, () => optsHeader(DST));
  const overrun = optsHeader(HBH);
  overrun.body[1] = 30;
  const jumbo = optsHeader(HBH);
  jumbo.body.set([0xc2, 4, 0, 1, 0, 0], 2);
  // Each packet with the counter it must end in, to an engine with no IPv6 service.
  const cases: [Uint8Array, CounterName][] = [
    [ipv6([], IPPROTO_TCP, syn), 'no_service_dropped'],
    [ipv6([optsHeader(HBH)], IPPROTO_TCP, syn), 'no_service_dropped'],
    [
      ipv6([optsHeader(HBH), routingHeader(2, 1), optsHeader(DST, 1)], IPPROTO_TCP, data),
      'ipv6_routing_dropped',
    ],
    [
      ipv6(
        [optsHeader(HBH), routingHeader(1, 0), fragmentHeader(0, true), optsHeader(DST)],
        IPPROTO_TCP,
        data,
      ),
      'ipv6_fragment_dropped',
    ],
    [ipv6([fragmentHeader(185, false)], IPPROTO_TCP, pattern(64)), 'ipv6_fragment_dropped'],
    [ipv6([fragmentHeader(0, false)], IPPROTO_TCP, syn), 'ipv6_fragment_dropped'],
    [ipv6([optsHeader(DST)], 50, pattern(48)), 'not_tcp_dropped'], // ESP
    [ipv6([optsHeader(HBH)], 59, new Uint8Array(0)), 'not_tcp_dropped'], // no next header
    [ipv6(many, IPPROTO_TCP, syn), 'malformed_dropped'],
    [ipv6([overrun], IPPROTO_TCP, syn), 'malformed_dropped'],
    [ipv6([routingHeader(1, 1), optsHeader(HBH)], IPPROTO_TCP, syn), 'ipv6_routing_dropped'],
    [ipv6([jumbo], IPPROTO_TCP, syn, -100), 'malformed_dropped'],
    // ICMPv6 echo with its checksum unset, then right (to no VIP), then a neighbour solicitation.
    [ipv6([], 58, Uint8Array.of(128, 0, 0, 0, 0, 1, 0, 1)), 'icmp_malformed_dropped'],
    [
      fixIcmpv6Checksum(ipv6([], 58, Uint8Array.of(128, 0, 0, 0, 0, 1, 0, 1))),
      'icmp_unhandled_dropped',
    ],
    [
      fixIcmpv6Checksum(ipv6([optsHeader(HBH)], 58, new Uint8Array(24).fill(135, 0, 1))),
      'icmp_unhandled_dropped',
    ],
    // UDP: checksum 0 (IPv6 forbids it), to no UDP service, a length beyond the datagram.
    [ipv6([], 17, Uint8Array.of(0x9c, 0x40, 0, 80, 0, 8, 0, 0)), 'udp_zero_checksum_dropped'],
    [
      ipv6([optsHeader(HBH)], 17, Uint8Array.of(0x9c, 0x40, 0, 80, 0, 8, 1, 2)),
      'no_service_dropped',
    ],
    [ipv6([], 17, Uint8Array.of(0x9c, 0x40, 0, 80, 0, 9, 1, 2)), 'malformed_dropped'],
    [ipv6([optsHeader(HBH)], 4, new Uint8Array(20)), 'not_tcp_dropped'], // IPv4 in IPv6
    [ipv6([], IPPROTO_TCP, syn, 200), 'malformed_dropped'], // payload length beyond the packet
    [ipv6([], IPPROTO_TCP, syn, -20), 'malformed_dropped'],
    [ipv6([], IPPROTO_TCP, syn).subarray(0, 39), 'malformed_dropped'],
    [ipv6([], IPPROTO_TCP, new Uint8Array(0)), 'malformed_dropped'],
  ];
  return cases.map(([bytes, counter]) => ({ bytes, counter }));
}

/** Sets the checksum of the ICMPv6 message that ends the IPv6 packet b (its last header's next is 58). */
function fixIcmpv6Checksum(b: Uint8Array): Uint8Array {
  let at = 40;
  let next = b[6]!;
  while (next !== 58) {
    next = b[at]!;
    at += (b[at + 1]! + 1) * 8;
  }
  const len = b.length - at;
  b[at + 2] = 0;
  b[at + 3] = 0;
  let sum = len + 58;
  for (let i = 8; i < 40; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  for (let i = at; i < b.length; i += 2) sum += (b[i]! << 8) | (i + 1 < b.length ? b[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const ck = ~sum & 0xffff;
  b[at + 2] = ck >>> 8;
  b[at + 3] = ck & 0xff;
  return b;
}

function fixIpChecksum(b: Uint8Array): Uint8Array {
  new Ipv4View().wrap(b, 0).updateChecksum();
  return b;
}

function fixTcpChecksum(b: Uint8Array): Uint8Array {
  const ihl = (b[0]! & 0x0f) * 4;
  const t = new TcpView().wrap(b, ihl);
  t.checksum = t.computeChecksumV4(0, get16(b, 2) - ihl);
  return b;
}

/** The packet with IP options inserted (header length and checksum fixed, TCP unchanged). */
function withIpOptions(pkt: Uint8Array, ipOptions: Uint8Array): Uint8Array {
  const b = new Uint8Array(pkt.length + ipOptions.length);
  b.set(pkt.subarray(0, 20));
  b.set(ipOptions, 20);
  b.set(pkt.subarray(20), 20 + ipOptions.length);
  b[0] = 0x40 | ((20 + ipOptions.length) >>> 2);
  set16(b, 2, b.length);
  return fixIpChecksum(b);
}

/** Sets IPv4 fragment fields (flags byte 6 high bits, offset in 8-byte units). */
function asFragment(pkt: Uint8Array, flags: number, offset8: number): Uint8Array {
  const b = pkt.slice();
  set16(b, 6, (flags << 13) | offset8);
  return fixIpChecksum(b);
}

/**
 * Builds the corpus. A scratch engine opens the connections first, so the RS
 * packets are addressed to the LIP ports and sequence numbers it chose (a
 * fresh engine fed the same SYNs in the same order chooses the same).
 */
export function buildCorpus(policy: ToaPolicy = 'fullnat'): FuzzCorpus {
  const e = newFuzzEngine(policy);
  const ip = new Ipv4View();
  const tcp = new TcpView();
  const flows: Uint8Array[] = [];
  const hostile: Uint8Array[] = [];
  const forgedToa: Uint8Array[] = [];

  interface Leg {
    cip: number;
    cport: number;
    vport: number;
    rip: number;
    lport: number;
    lbIsn: number;
  }
  const synOptions = [
    opt.mss(1460),
    opt.sackPermitted(),
    opt.timestamp(1, 0),
    opt.nop(),
    opt.wscale(7),
  ];
  const open = (k: number, vport: number): Leg => {
    const cip = CLIENT_BASE + k;
    const cport = 40000 + k;
    const syn = buildSegment({
      src: cip,
      dst: VIP,
      sport: cport,
      dport: vport,
      seq: 1000,
      flags: TCP_SYN,
      options: synOptions,
    });
    flows.push(syn);
    const q = feedRaw(e, syn)[0]!.bytes;
    ip.wrap(q, 0);
    tcp.wrap(q, ip.headerLength);
    return {
      cip,
      cport,
      vport,
      rip: ip.dst,
      lport: tcp.srcPort,
      lbIsn: tcp.seq,
    };
  };
  type Extra = {
    payload?: Uint8Array;
    options?: TcpOption[];
    rawOptions?: Uint8Array;
    window?: number;
  };
  const client = (l: Leg, seq: number, ack: number, flags: number, x: Extra = {}) =>
    buildSegment({
      src: l.cip,
      dst: VIP,
      sport: l.cport,
      dport: l.vport,
      seq,
      ack,
      flags,
      ...x,
      options: x.rawOptions ? undefined : (x.options ?? [toaForged]),
    });
  const rs = (l: Leg, seq: number, ack: number, flags: number, x: Extra = {}) =>
    buildSegment({
      src: l.rip,
      dst: LIP,
      sport: l.vport,
      dport: l.lport,
      seq,
      ack,
      flags,
      ...x,
      options: x.rawOptions
        ? undefined
        : (x.options ?? [
            opt.mss(1460),
            opt.nop(),
            opt.nop(),
            opt.sack([[l.lbIsn + 5, l.lbIsn + 9]]),
          ]),
    });

  const sackData = (l: Leg) =>
    client(l, 1001, 9001, TCP_ACK, {
      payload: pattern(200),
      options: [
        opt.nop(),
        opt.nop(),
        opt.sack([
          [1, 2],
          [3, 4],
          [5, 6],
        ]),
        { kind: 79, data: pattern(10) },
      ],
    });

  // Live connections: four to the TOA service, two to the PROXY-protocol service.
  const legs: Leg[] = [];
  for (let k = 0; k < 6; k++) legs.push(open(k, k < 4 ? 80 : 8080));
  for (const l of legs) {
    flows.push(
      rs(l, 9000, l.lbIsn + 1, TCP_SYN | TCP_ACK),
      client(l, 1001, 9001, TCP_ACK),
      client(l, 1001, 9001, TCP_ACK | TCP_PSH, { payload: pattern(300) }),
      client(l, 1001, 9001, TCP_ACK | TCP_PSH | TCP_FIN, { payload: pattern(1460) }),
      sackData(l),
      rs(l, 9001, l.lbIsn + 301, TCP_ACK, { payload: pattern(500) }),
      client(l, 1301, 9501, TCP_ACK | TCP_FIN),
      rs(l, 9501, l.lbIsn + 302, TCP_ACK | TCP_FIN),
      client(l, 1302, 9502, TCP_RST),
    );
  }

  // The same connections as scripts, with hostile options at every step that takes options.
  const sessions: SessionScript[] = legs.map((l) => {
    const concluding = [
      client(l, 1001, 9001, TCP_ACK),
      client(l, 1001, 9001, TCP_ACK | TCP_PSH, { payload: pattern(300) }),
      client(l, 1001, 9001, TCP_ACK | TCP_PSH | TCP_FIN, { payload: pattern(1460) }),
      sackData(l),
      ...HOSTILE_OPTIONS.flatMap((o) => [
        client(l, 1001, 9001, TCP_ACK | TCP_PSH, { ...o, payload: pattern(100) }),
        client(l, 1001, 9001, TCP_ACK | TCP_PSH | TCP_FIN, { ...o, payload: pattern(1360) }),
        client(l, 1001, 9001, TCP_ACK, o),
      ]),
    ];
    return {
      steps: [
        [
          client(l, 1000, 0, TCP_SYN, { options: synOptions }),
          ...HOSTILE_OPTIONS.map((o) => client(l, 1000, 0, TCP_SYN, o)),
          client(l, 1000, 0, TCP_SYN, { window: 0, options: synOptions }),
        ],
        [
          rs(l, 9000, l.lbIsn + 1, TCP_SYN | TCP_ACK),
          ...HOSTILE_OPTIONS.map((o) => rs(l, 9000, l.lbIsn + 1, TCP_SYN | TCP_ACK, o)),
          rs(l, 9000, l.lbIsn + 1, TCP_SYN | TCP_ACK, { window: 0 }),
        ],
        concluding,
        concluding,
        [
          rs(l, 9001, l.lbIsn + 301, TCP_ACK, { payload: pattern(500) }),
          ...HOSTILE_OPTIONS.map((o) =>
            rs(l, 9001, l.lbIsn + 301, TCP_ACK, { ...o, payload: pattern(700) }),
          ),
          rs(l, 9001, l.lbIsn + 301, TCP_ACK, { window: 0 }),
        ],
        concluding,
        [client(l, 1301, 9501, TCP_ACK | TCP_FIN)],
        [rs(l, 9501, l.lbIsn + 302, TCP_ACK | TCP_FIN)],
        [client(l, 1302, 9502, TCP_RST), client(l, 1302, 9502, TCP_ACK)],
      ],
      rsAck: [-1, 1, -1, -1, 301, -1, -1, 302, -1],
    };
  });

  const [l0, l1] = legs as [Leg, Leg];
  const pp = legs[4]!;
  // Fresh clients (no entry yet) for the hostile SYNs: they also fill the table and the ports.
  const fresh = (k: number): Leg => ({
    cip: CLIENT_BASE + 8 + (k % 48),
    cport: 41000 + k,
    vport: 80,
    rip: RIP,
    lport: PORT_MIN + (k % 16),
    lbIsn: 0,
  });

  HOSTILE_OPTIONS.forEach((o, i) => {
    const l = legs[i % 4]!;
    hostile.push(client(fresh(i), 1000, 0, TCP_SYN, o));
    const concluding = [
      client(l, 1001, 9001, TCP_ACK | TCP_PSH, { ...o, payload: pattern(100) }),
      client(l, 1001, 9001, TCP_ACK | TCP_PSH | TCP_FIN, { ...o, payload: pattern(1360) }),
      client(l, 1001, 9001, TCP_ACK, o),
    ];
    hostile.push(...concluding);
    forgedToa.push(...concluding);
    hostile.push(
      client(pp, 1001, 9001, TCP_ACK | TCP_PSH, { ...o, payload: pattern(50) }),
      rs(l, 9000, l.lbIsn + 1, TCP_SYN | TCP_ACK, o),
      rs(l, 9001, l.lbIsn + 101, TCP_ACK, { ...o, payload: pattern(700) }),
    );
  });

  // Flag soups, zero windows, RSTs with guessed sequence numbers.
  const soups = [
    TCP_SYN | TCP_FIN,
    TCP_SYN | TCP_FIN | TCP_ACK,
    TCP_SYN | TCP_RST,
    TCP_SYN | TCP_RST | TCP_ACK,
    TCP_FIN | TCP_RST,
    TCP_SYN | TCP_FIN | TCP_PSH | TCP_URG,
    0,
    TCP_FIN,
    TCP_PSH,
    TCP_SYN | TCP_ACK,
    0xff,
    TCP_SYN | TCP_ECE | TCP_CWR,
  ];
  soups.forEach((flags, i) => {
    hostile.push(
      client(l0, 1001, 9001, flags, { payload: pattern(i * 10) }),
      client(fresh(100 + i), 1000, 0, flags, { options: synOptions }),
      rs(l1, 9001, l1.lbIsn + 1, flags),
    );
  });
  hostile.push(
    client(fresh(200), 1000, 0, TCP_SYN, { window: 0, options: synOptions }),
    client(l0, 1001, 9001, TCP_ACK, { window: 0 }),
    client(l0, 1001, 9001, TCP_ACK | TCP_PSH, { window: 0, payload: pattern(10) }),
    rs(l0, 9000, l0.lbIsn + 1, TCP_SYN | TCP_ACK, { window: 0 }),
    rs(l0, 9001, l0.lbIsn + 1, TCP_ACK, { window: 0 }),
  );
  for (const guess of [0, 1, 0x7fffffff, 0xdeadbeef, 1001 + 65536, 1000, 1002]) {
    hostile.push(
      client(l0, guess, 0, TCP_RST, { options: [] }),
      client(l1, guess, 9001, TCP_RST | TCP_ACK, { options: [] }),
      client(pp, guess, 0, TCP_RST, { payload: pattern(16) }),
      rs(l0, (9001 + guess) >>> 0, 0, TCP_RST, { options: [] }),
      rs(l1, 9001, guess, TCP_RST | TCP_ACK, { options: [] }),
    );
  }

  // Corrupt checksums: a rewrite that recomputes must drop, an incremental one keeps them wrong.
  const corrupt = (b: Uint8Array): Uint8Array => {
    const c = b.slice();
    c[c.length - 1]! ^= 0x5a;
    return c;
  };
  hostile.push(
    corrupt(client(l0, 1001, 9001, TCP_ACK | TCP_PSH, { payload: pattern(101) })),
    corrupt(client(l0, 1001, 9001, TCP_ACK | TCP_PSH | TCP_FIN, { payload: pattern(1460) })),
    corrupt(
      client(l0, 1001, 9001, TCP_ACK | TCP_PSH, {
        ...FULL_WITH_TOA,
        payload: pattern(200),
      }),
    ),
    corrupt(client(l1, 1001, 9001, TCP_ACK | TCP_PSH, { payload: pattern(300), options: [] })),
    corrupt(client(pp, 1001, 9001, TCP_ACK | TCP_PSH, { payload: pattern(30) })),
    corrupt(rs(l0, 9001, l0.lbIsn + 1, TCP_ACK, { payload: pattern(31) })),
    corrupt(client(fresh(300), 1000, 0, TCP_SYN, { options: synOptions })),
  );
  {
    const badIp = client(l0, 1001, 9001, TCP_ACK);
    badIp[10]! ^= 1;
    hostile.push(badIp);
  }

  // Lengths that lie; the IP header checksum is right, so only the lengths are wrong.
  const base = client(l0, 1001, 9001, TCP_ACK | TCP_PSH, { payload: pattern(64) });
  const lie = (f: (b: Uint8Array) => void, len = base.length): Uint8Array => {
    const b = base.slice(0, len);
    f(b);
    if (b.length >= 20) fixIpChecksum(b);
    return b;
  };
  hostile.push(
    new Uint8Array(0),
    Uint8Array.of(0x45),
    base.slice(0, 19),
    lie((b) => set16(b, 2, 20), 20), // an IP header and nothing else
    lie((b) => set16(b, 2, 39), 39), // a TCP header one byte short
    lie((b) => set16(b, 2, 10)), // total length below the header length
    lie((b) => set16(b, 2, 30)), // total length cuts the TCP header
    lie((b) => set16(b, 2, base.length + 100)), // total length beyond the packet
    lie((b) => set16(b, 2, 0xffff)),
    lie((b) => (b[0] = 0x44)), // IHL 4 (16 bytes)
    lie((b) => (b[0] = 0x40)),
    lie((b) => (b[0] = 0x4f), 40), // IHL 15 in a 40-byte packet
    lie((b) => (b[0] = 0x46)), // IHL 6: the TCP header read 4 bytes late
    lie((b) => (b[32] = 0x40)), // data offset 4
    lie((b) => (b[32] = 0x00)),
    lie((b) => (b[32] = 0xf0)), // data offset 15
    lie((b) => (b[32] = 0xf0), 52),
    lie((b) => set16(b, 2, 52), 52), // consistent, options overrun the segment
    lie((b) => (b[0] = 0x55)), // version 5
    lie((b) => (b[0] = 0x65)), // version 6 with an IPv4 layout
  );
  {
    // Link-layer padding behind a valid packet: the engine must trim it.
    const padded = new Uint8Array(base.length + 18);
    padded.set(base);
    hostile.push(padded);
  }

  // IP options: the TCP header starts later; TOA insertion and splitting must follow it.
  const nops = new Uint8Array(40).fill(1);
  const rr = raw(7, 39, 4, ...new Uint8Array(36));
  hostile.push(
    withIpOptions(client(fresh(400), 1000, 0, TCP_SYN, { options: synOptions }), raw(1, 1, 1, 0)),
    withIpOptions(client(l0, 1001, 9001, TCP_ACK | TCP_PSH, { payload: pattern(100) }), nops),
    withIpOptions(
      client(l0, 1001, 9001, TCP_ACK | TCP_PSH | TCP_FIN, { payload: pattern(1300) }),
      rr.subarray(0, 40),
    ),
    withIpOptions(
      client(l1, 1001, 9001, TCP_ACK, { ...FULL_WITH_TOA, payload: pattern(1340) }),
      raw(1, 1, 1, 1, 1, 1, 1, 0),
    ),
    withIpOptions(client(pp, 1001, 9001, TCP_ACK | TCP_PSH, { payload: pattern(20) }), nops),
    withIpOptions(rs(l0, 9000, l0.lbIsn + 1, TCP_SYN | TCP_ACK), raw(7, 0, 0, 0)),
    withIpOptions(rs(l0, 9001, l0.lbIsn + 1, TCP_ACK, { payload: pattern(77) }), raw(68, 255)),
  );

  // IPv4 fragments: first (MF, offset 0), middle, last, DF+MF, the largest offset.
  const fragments: Uint8Array[] = [];
  const whole = [
    client(fresh(500), 1000, 0, TCP_SYN, { options: synOptions }),
    client(l0, 1001, 9001, TCP_ACK | TCP_PSH, { payload: pattern(300) }),
    rs(l0, 9001, l0.lbIsn + 1, TCP_ACK, { payload: pattern(300) }),
  ];
  for (const w of whole) {
    fragments.push(
      asFragment(w, 1, 0),
      asFragment(w, 1, 185),
      asFragment(w, 0, 185),
      asFragment(w, 3, 0),
      asFragment(w, 0, 0x1fff),
      asFragment(w, 5, 1),
    );
  }
  {
    // A first fragment that carries only 8 bytes of the TCP header.
    const tiny = asFragment(whole[1]!.slice(0, 28), 1, 0);
    set16(tiny, 2, 28);
    fragments.push(fixIpChecksum(tiny));
  }
  hostile.push(...fragments);

  // Not TCP, not ours.
  const other = (proto: number, dst = VIP, dport = 80): Uint8Array => {
    const b = client(l0, 1001, 9001, TCP_ACK, { payload: pattern(12) });
    b[9] = proto;
    set32(b, 16, dst);
    set16(b, 22, dport);
    return fixTcpChecksum(fixIpChecksum(b));
  };
  hostile.push(
    other(17),
    other(1),
    other(0),
    other(255),
    other(4),
    other(IPPROTO_TCP, VIP, 81),
    other(IPPROTO_TCP, 0x08080808),
    other(IPPROTO_TCP, LIP, 5000),
    rs({ ...l0, rip: 0x0a0a0299 }, 9001, 0, TCP_ACK), // to the LIP from a stranger
    rs({ ...l0, lport: 4999 }, 9001, 0, TCP_ACK), // to a LIP port outside the range
  );

  // SYNPROXY (VIP:443). The scratch engine answers each SYN with its cookie SYN+ACK, and the
  // cookie ACK with its RS-leg SYN (it holds the ACK): the cookies and the LIP ports and ISNs
  // of these connections are what a fresh engine fed the same packets at clock 0 chooses.
  interface SpLeg extends Leg {
    cookie: number;
  }
  const firstOutput = (pkt: Uint8Array): { sport: number; seq: number } => {
    const q = feedRaw(e, pkt)[0]!.bytes;
    ip.wrap(q, 0);
    tcp.wrap(q, ip.headerLength);
    return { sport: tcp.srcPort, seq: tcp.seq };
  };
  /** The cookie plus n, the ack of a client that has seen n − 1 bytes of the RS. */
  const ck = (l: SpLeg, n: number): number => (l.cookie + n) >>> 0;
  const spFlows: Uint8Array[] = [];
  const spLegs: SpLeg[] = [];
  for (let k = 0; k < 4; k++) {
    const l: SpLeg = {
      cip: CLIENT_BASE + 16 + k,
      cport: 40016 + k,
      vport: SP_VPORT,
      rip: RIP3,
      lport: 0,
      lbIsn: 0,
      cookie: 0,
    };
    const syn = client(l, 1000, 0, TCP_SYN, { options: synOptions });
    l.cookie = firstOutput(syn).seq;
    // With the RS leg deferred to the first data, the opening packet carries some.
    const ack = client(l, 1001, ck(l, 1), TCP_ACK | TCP_PSH, { payload: pattern(300) });
    const rsSyn = firstOutput(ack);
    l.lport = rsSyn.sport;
    l.lbIsn = rsSyn.seq;
    spFlows.push(syn, ack);
    spLegs.push(l);
  }
  for (const l of spLegs) {
    spFlows.push(
      client(l, 1301, ck(l, 1), TCP_ACK), // held too
      rs(l, 9000, l.lbIsn + 1, TCP_SYN | TCP_ACK), // the held packets are replayed
      client(l, 1301, ck(l, 1), TCP_ACK | TCP_PSH, { payload: pattern(100) }),
      rs(l, 9001, l.lbIsn + 401, TCP_ACK, { payload: pattern(500) }),
      client(l, 1401, ck(l, 501), TCP_ACK),
      client(l, 1401, ck(l, 501), TCP_ACK | TCP_FIN),
      rs(l, 9501, l.lbIsn + 402, TCP_ACK | TCP_FIN),
      client(l, 1402, ck(l, 502), TCP_RST),
    );
  }
  flows.push(...spFlows);

  for (const l of spLegs.slice(0, 3)) {
    const concluding = [
      client(l, 1301, ck(l, 1), TCP_ACK | TCP_PSH, { payload: pattern(100) }),
      client(l, 1301, ck(l, 1), TCP_ACK),
      client(l, 1301, ck(l, 1), TCP_ACK | TCP_PSH | TCP_FIN, { payload: pattern(1360) }),
      ...HOSTILE_OPTIONS.flatMap((o) => [
        client(l, 1301, ck(l, 1), TCP_ACK | TCP_PSH, { ...o, payload: pattern(100) }),
        client(l, 1301, ck(l, 1), TCP_ACK | TCP_PSH | TCP_FIN, { ...o, payload: pattern(1360) }),
        client(l, 1301, ck(l, 1), TCP_ACK, o),
      ]),
    ];
    // The client packet that opens the connection, and those held after it.
    const opening = [
      client(l, 1001, ck(l, 1), TCP_ACK),
      client(l, 1001, ck(l, 1), TCP_ACK | TCP_PSH, { payload: pattern(300) }),
      client(l, 1001, ck(l, 1), TCP_ACK | TCP_PSH | TCP_FIN, { payload: pattern(1360) }),
      client(l, 1001, ck(l, 1), TCP_ACK | TCP_FIN),
      client(l, 1001, ck(l, 1), TCP_ACK, { window: 0 }),
      ...HOSTILE_OPTIONS.map((o) =>
        client(l, 1001, ck(l, 1), TCP_ACK | TCP_PSH, { ...o, payload: pattern(100) }),
      ),
    ];
    const pending = [
      client(l, 1001, ck(l, 1), TCP_ACK | TCP_PSH, { payload: pattern(300) }),
      client(l, 1001, ck(l, 1), TCP_ACK),
      client(l, 1301, ck(l, 1), TCP_ACK | TCP_PSH | TCP_FIN, { payload: pattern(1360) }),
      ...HOSTILE_OPTIONS.map((o) =>
        client(l, 1001, ck(l, 1), TCP_ACK | TCP_PSH, { ...o, payload: pattern(100) }),
      ),
      client(l, 1001, ck(l, 1), TCP_RST, { options: [] }),
      client(l, 1000, 0, TCP_SYN, { options: synOptions }),
    ];
    const rsAnswer = [
      rs(l, 9000, l.lbIsn + 1, TCP_SYN | TCP_ACK),
      ...HOSTILE_OPTIONS.map((o) => rs(l, 9000, l.lbIsn + 1, TCP_SYN | TCP_ACK, o)),
      rs(l, 9000, l.lbIsn + 1, TCP_SYN | TCP_ACK, { window: 0 }),
      rs(l, 9000, l.lbIsn + 1, TCP_SYN | TCP_ACK, { options: [] }), // no scaling, no SACK
      rs(l, 9000, l.lbIsn + 1, TCP_SYN | TCP_ACK, { options: [opt.mss(536), opt.wscale(14)] }),
      rs(l, 9000, l.lbIsn + 1, TCP_SYN | TCP_ACK, { options: [opt.nop(), opt.wscale(0)] }),
      rs(l, 0, l.lbIsn + 1, TCP_RST | TCP_ACK, { options: [] }),
      rs(l, 0, 0, TCP_RST, { options: [] }),
    ];
    sessions.push({
      steps: [
        [
          client(l, 1000, 0, TCP_SYN, { options: synOptions }),
          ...HOSTILE_OPTIONS.map((o) => client(l, 1000, 0, TCP_SYN, o)),
          client(l, 1000, 0, TCP_SYN, { window: 0, options: synOptions }),
          client(l, 1000, 0, TCP_SYN, { options: [] }),
          client(l, 1000, 0, TCP_SYN, { options: [opt.mss(64), opt.wscale(14)] }),
          client(l, 1000, 0, TCP_SYN, { options: [opt.mss(9000), opt.sackPermitted()] }),
        ],
        opening,
        pending,
        rsAnswer,
        concluding,
        [
          rs(l, 9001, l.lbIsn + 401, TCP_ACK, { payload: pattern(500) }),
          ...HOSTILE_OPTIONS.map((o) =>
            rs(l, 9001, l.lbIsn + 401, TCP_ACK, { ...o, payload: pattern(700) }),
          ),
          rs(l, 9001, l.lbIsn + 401, TCP_ACK, { window: 0 }),
        ],
        [
          client(l, 1401, ck(l, 501), TCP_ACK),
          client(l, 1401, ck(l, 501), TCP_ACK, {
            options: [opt.nop(), opt.nop(), opt.sack([[ck(l, 101), ck(l, 201)]])],
          }),
          client(l, 1401, ck(l, 501), TCP_ACK | TCP_PSH, { payload: pattern(200) }),
        ],
        [client(l, 1401, ck(l, 501), TCP_ACK | TCP_FIN)],
        [rs(l, 9501, l.lbIsn + 402, TCP_ACK | TCP_FIN)],
        [client(l, 1402, ck(l, 502), TCP_RST), client(l, 1402, ck(l, 502), TCP_ACK)],
      ],
      rsAck: [-1, -1, -1, 1, -1, 401, -1, -1, 402, -1],
      cookieAck: [-1, 1, 1, -1, 1, -1, 501, 501, -1, 502],
    });
  }
  {
    // An RS that repeats its pure ACK: the third in a row and those after it are cut.
    const l = spLegs[3]!;
    const dupAck = [rs(l, 9001, l.lbIsn + 301, TCP_ACK, { options: [] })];
    sessions.push({
      steps: [
        [client(l, 1000, 0, TCP_SYN, { options: synOptions })],
        [client(l, 1001, ck(l, 1), TCP_ACK | TCP_PSH, { payload: pattern(300) })],
        [rs(l, 9000, l.lbIsn + 1, TCP_SYN | TCP_ACK)],
        dupAck,
        dupAck,
        dupAck,
        dupAck,
        [client(l, 1301, ck(l, 1), TCP_RST, { options: [] })],
      ],
      rsAck: [-1, -1, 1, 301, 301, 301, 301, -1],
      cookieAck: [-1, 1, -1, -1, -1, -1, -1, 1],
    });
  }

  // SYNPROXY, hostile: SYNs with every option list, cookie ACKs with them (valid cookies while
  // the clock is in its first two minutes), RS SYN+ACKs with them.
  const freshSp = (k: number): SpLeg => ({ ...fresh(k), vport: SP_VPORT, rip: RIP3, cookie: 0 });
  HOSTILE_OPTIONS.forEach((o, i) => {
    const l = spLegs[i % spLegs.length]!;
    hostile.push(
      client(freshSp(600 + i), 1000, 0, TCP_SYN, o),
      client(l, 1001, ck(l, 1), TCP_ACK | TCP_PSH, { ...o, payload: pattern(100) }),
      rs(l, 9000, l.lbIsn + 1, TCP_SYN | TCP_ACK, o),
    );
  });
  const [s0, s1] = spLegs as [SpLeg, SpLeg];
  // Cookies that are wrong: off by one or two, data bits changed (window scale, an MSS index
  // beyond the table, the timestamp bit), another client ISN, another client port.
  for (const ack of [
    0,
    1,
    s0.cookie,
    ck(s0, 2),
    (s0.cookie ^ 0x10) + 1,
    (s0.cookie | 0xf) + 1,
    (s0.cookie | 0x200) + 1,
    (s0.cookie ^ 0x80000000) + 1,
    0xffffffff,
  ]) {
    hostile.push(client(s0, 1001, ack >>> 0, TCP_ACK, { options: [] }));
  }
  hostile.push(
    client(s0, 2001, ck(s0, 1), TCP_ACK),
    client({ ...s0, cport: s0.cport + 1 }, 1001, ck(s0, 1), TCP_ACK),
    client(s1, 1001, ck(s1, 1), TCP_ACK | TCP_PSH | TCP_FIN, { payload: pattern(1360) }),
    client(s1, 1001, ck(s1, 1), TCP_ACK | TCP_RST),
    client(s1, 1001, ck(s1, 1), TCP_SYN | TCP_ACK),
    client(s1, 1001, 0, TCP_FIN),
    client(freshSp(700), 1000, 0, TCP_SYN, { options: synOptions, payload: pattern(100) }),
    client(freshSp(701), 1000, 0, TCP_SYN | TCP_FIN, { options: synOptions }),
    corrupt(client(s0, 1001, ck(s0, 1), TCP_ACK | TCP_PSH, { payload: pattern(64) })),
    corrupt(client(s1, 1001, ck(s1, 1), TCP_ACK | TCP_PSH | TCP_FIN, { payload: pattern(1360) })),
    corrupt(rs(s0, 9000, s0.lbIsn + 1, TCP_SYN | TCP_ACK)),
    withIpOptions(client(s0, 1001, ck(s0, 1), TCP_ACK | TCP_PSH, { payload: pattern(100) }), nops),
    withIpOptions(client(freshSp(702), 1000, 0, TCP_SYN, { options: synOptions }), rr),
  );
  // The RS during setup: refusals, a stale ACK, a wrong ack, flags no SYN+ACK has.
  for (const l of spLegs) {
    hostile.push(
      rs(l, 0, l.lbIsn + 1, TCP_RST | TCP_ACK, { options: [] }),
      rs(l, 0, 0, TCP_RST, { options: [] }),
      rs(l, 0, l.lbIsn + 7, TCP_RST | TCP_ACK, { options: [] }),
      rs(l, 5555, 777, TCP_ACK, { options: [] }),
      rs(l, 9000, l.lbIsn + 2, TCP_SYN | TCP_ACK),
      rs(l, 9000, l.lbIsn + 1, TCP_SYN | TCP_ACK | TCP_FIN),
      rs(l, 9000, l.lbIsn + 1, TCP_SYN),
      rs(l, 9001, l.lbIsn + 1, TCP_ACK, { payload: pattern(50) }),
    );
  }

  const v6 = ipv6Corpus();
  hostile.push(...v6.map((x) => x.bytes));
  return { flows, hostile, ipv6: v6, fragments, forgedToa, sessions, synproxy: spFlows };
}

// ---- the fuzzer ---------------------------------------------------------------------------

const HOSTILE_FLAGS = Uint8Array.of(
  TCP_SYN | TCP_FIN,
  TCP_SYN | TCP_FIN | TCP_ACK,
  TCP_SYN | TCP_RST,
  TCP_FIN | TCP_RST | TCP_ACK,
  TCP_SYN | TCP_FIN | TCP_PSH | TCP_URG,
  0,
  TCP_FIN,
  TCP_SYN | TCP_ACK,
  TCP_ACK,
  TCP_ACK | TCP_PSH,
  TCP_SYN,
  0xff,
);

const DROP_INDEXES = Int32Array.from(DROP_COUNTERS.map((n) => C[n]));

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
}

export interface FuzzSummary {
  policy: FuzzPolicy;
  seed: number;
  packets: number;
  forwarded: number;
  /** Drop counters that are not zero. */
  drops: Partial<Record<CounterName, number>>;
  /** Every counter that is not zero. */
  counters: Partial<Record<CounterName, number>>;
  /** Most packets one input (or one tick) made the engine emit. */
  maxOutputs: number;
  /** Packet buffers the engine's pool holds (it grows only when it runs dry). */
  poolBuffers: number;
  connections: number;
  /** Client packets SYNPROXY holds and fragments the reassembler holds at the end (rx_packets == forwarded + Σ drops + held). */
  held: number;
}

/**
 * One engine fed a deterministic stream of hostile packets. `step()` makes
 * and checks the next packet; it returns null, or what went wrong (the
 * stream stops being meaningful after a violation).
 */
export class Fuzzer {
  readonly engine: Engine;
  readonly policy: FuzzPolicy;
  readonly seed: number;
  /** Packets handed to the engine so far (the index of the next one). */
  packets = 0;
  maxOutputs = 0;
  /** The last input, for reports. */
  readonly input = new Uint8Array(2048);
  inputLength = 0;

  private x: number;
  private now = 0;
  private readonly flows: Uint8Array[];
  private readonly hostile: Uint8Array[];
  private readonly ip = new Ipv4View();
  private readonly tcp = new TcpView();
  private readonly toa = new ToaResult();
  private readonly poolBuffers: number;
  // The current input, read before the engine rewrites it.
  private inValid = false;
  /**
   * The input is an IPv4 fragment: what it completes is a datagram of other
   * packets too, whose checksum and client this one fragment cannot tell.
   */
  private inFragment = false;
  private inSrc = -1;
  private inSport = -1;
  /** The input goes to the LIP (an RS packet, or one posing as it). */
  private fromRs = false;
  /** For an RS packet: its connection, looked up before the engine sees the packet, or -1. */
  private rsConn = -1;
  /**
   * The client whose TOA the RS may read in what the input makes: its
   * sender, or for an RS packet the client of its connection (-1: none).
   */
  private expCip = -1;
  private expCport = -1;
  /** The input is an RS SYN+ACK that replayed the held packets of `rsConn`. */
  private replay = false;
  /** The input went out (rewritten): `forwarded_packets` went up. */
  private forwarded = false;
  /** Packets to an RS, made from the current input, in which the RS reads `expCip`'s TOA. */
  private toaSeen = 0;
  // SYNPROXY: packets held for each connection (by table index), valid and corrupt on arrival.
  private readonly heldValid: Int32Array;
  private readonly heldCorrupt: Int32Array;

  // Scripted connections: the step each is at, the LIP port and ISN the engine gave it, and under
  // SYNPROXY the cookie of the LB's SYN+ACK (-1 while unknown) and the client it answers.
  private readonly sessions: SessionScript[];
  private readonly slotStep: Int32Array;
  private readonly slotLport: Int32Array;
  private readonly slotIsn: Float64Array;
  private readonly slotCookie: Float64Array;
  private readonly slotCip: Float64Array;
  private readonly slotCport: Int32Array;
  /** The scripted connection the current input belongs to, or -1. */
  private slot = -1;

  constructor(policy: FuzzPolicy, seed: number, corpus: FuzzCorpus = buildCorpus(policy)) {
    this.policy = policy;
    this.seed = seed >>> 0;
    this.x = this.seed || 1;
    this.engine = newFuzzEngine(policy);
    this.flows = corpus.flows;
    this.hostile = corpus.hostile;
    this.sessions = corpus.sessions;
    this.slotStep = new Int32Array(this.sessions.length);
    this.slotLport = new Int32Array(this.sessions.length).fill(-1);
    this.slotIsn = new Float64Array(this.sessions.length);
    this.slotCookie = new Float64Array(this.sessions.length).fill(-1);
    this.slotCip = Float64Array.from(this.sessions, (s) => get32(s.steps[0]![0]!, 12));
    this.slotCport = Int32Array.from(this.sessions, (s) => get16(s.steps[0]![0]!, 20));
    this.heldValid = new Int32Array(this.engine.table.capacity);
    this.heldCorrupt = new Int32Array(this.engine.table.capacity);
    this.poolBuffers = this.engine.pool.created;
  }

  /** xorshift32. */
  next(): number {
    let x = this.x;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.x = x;
    return x >>> 0;
  }

  /** Makes, feeds and checks `n` packets; stops at the first violation. */
  run(n: number): string | null {
    for (let i = 0; i < n; i++) {
      const v = this.step();
      if (v !== null) return v;
    }
    return null;
  }

  step(): string | null {
    if (this.packets % TICK_EVERY === 0 && this.packets > 0) {
      const v = this.advance(TICK_MS);
      if (v !== null) return v;
    }
    this.generate();
    return this.feedInput();
  }

  /** Moves the engine clock on and checks what its timers emit (RSTs for expired connections). */
  advance(ms: number): string | null {
    const e = this.engine;
    const rx0 = e.counters[C.rx_packets]!;
    const acc0 = this.accounted();
    this.now += ms;
    e.tick(this.now);
    for (let i = 0; i < e.outCount; i++) {
      const v = this.checkOutput(e.out[i]!, true, false);
      if (v !== null) return `timer output: ${v}`;
      e.pool.give(e.out[i]!);
    }
    if (e.outCount > this.maxOutputs) this.maxOutputs = e.outCount;
    e.clearOutput();
    // Timers may discard held packets: they move from held to a drop counter.
    const acc = this.accounted() - acc0;
    if (e.counters[C.rx_packets]! !== rx0 || acc !== 0) {
      return `a clock tick moved rx_packets by ${e.counters[C.rx_packets]! - rx0} and forwarded + dropped + held by ${acc}`;
    }
    return this.checkHome();
  }

  /** Feeds one given packet (at most 1900 bytes) and checks the engine's answer. */
  feed(pkt: Uint8Array): string | null {
    if (pkt.length > MAX_INPUT) throw new RangeError(`input of ${pkt.length} bytes`);
    this.slot = -1;
    this.input.set(pkt);
    this.inputLength = pkt.length;
    return this.feedInput();
  }

  /** Hex of the last input, for a report that replays without the fuzzer. */
  inputHex(): string {
    return hex(this.input.subarray(0, this.inputLength));
  }

  summary(): FuzzSummary {
    const c = this.engine.counters;
    const drops: Partial<Record<CounterName, number>> = {};
    for (const n of DROP_COUNTERS) if (c[C[n]]! > 0) drops[n] = c[C[n]]!;
    const counters: Partial<Record<CounterName, number>> = {};
    for (const n of COUNTER_NAMES) if (c[C[n]]! > 0) counters[n] = c[C[n]]!;
    return {
      policy: this.policy,
      seed: this.seed,
      packets: this.packets,
      forwarded: c[C.forwarded_packets]!,
      drops,
      counters,
      maxOutputs: this.maxOutputs,
      poolBuffers: this.engine.pool.created,
      connections: this.engine.table.count,
      held: this.engine.heldPackets + this.engine.heldFragments,
    };
  }

  /** forwarded + Σ drops + held (SYNPROXY's packets, the reassembler's fragments): rx_packets, when every packet is counted once. */
  private accounted(): number {
    const c = this.engine.counters;
    let n = c[C.forwarded_packets]! + this.engine.heldPackets + this.engine.heldFragments;
    for (let i = 0; i < DROP_INDEXES.length; i++) n += c[DROP_INDEXES[i]!]!;
    return n;
  }

  private feedInput(): string | null {
    const e = this.engine;
    const c = e.counters;
    this.noteInput();
    const rx0 = c[C.rx_packets]!;
    const acc0 = this.accounted();
    const toa0 = c[C.toa_inserted]! + c[C.toa_inserted_syn]!;
    const held0 = e.heldPackets;
    const opened0 = c[C.synproxy_cookie_valid]!;
    const synAck0 = c[C.synproxy_rs_synack]!;
    const fwd0 = c[C.forwarded_packets]!;
    const p = e.pool.take();
    if (!p.load(this.input.subarray(0, this.inputLength))) {
      e.pool.give(p);
      return `input of ${this.inputLength} bytes does not fit a packet buffer`;
    }
    this.packets++;
    try {
      e.process(p);
    } catch (err) {
      return `engine threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
    }
    if (c[C.rx_packets]! !== rx0 + 1) return `rx_packets went up by ${c[C.rx_packets]! - rx0}`;
    const acc = this.accounted() - acc0;
    if (acc !== 1) {
      return `counted ${acc} times as forwarded, dropped or held (must be exactly once)`;
    }
    const toas = c[C.toa_inserted]! + c[C.toa_inserted_syn]! - toa0;
    this.replay = c[C.synproxy_rs_synack]! > synAck0;
    this.forwarded = c[C.forwarded_packets]! > fwd0;
    if (this.replay && this.rsConn < 0) return 'held packets replayed for no connection';
    this.toaSeen = 0;
    for (let i = 0; i < e.outCount; i++) {
      const v = this.checkOutput(e.out[i]!, false, toas > 0);
      if (v !== null) return `output ${i + 1} of ${e.outCount}: ${v}`;
      if (this.slot >= 0) this.learn(e.out[i]!);
      e.pool.give(e.out[i]!);
    }
    if (e.outCount > this.maxOutputs) this.maxOutputs = e.outCount;
    e.clearOutput();
    if (this.toaSeen < toas && !this.inFragment) {
      return `${toas} TOAs inserted, but the RS reads the client's in ${this.toaSeen} packets`;
    }
    if (e.heldPackets > held0) {
      const v = this.noteHeld(c[C.synproxy_cookie_valid]! > opened0);
      if (v !== null) return v;
    }
    return this.checkHome();
  }

  /** Notes the input as held for its connection, a new one (its count restarts) when `opened`. */
  private noteHeld(opened: boolean): string | null {
    const b = this.input;
    const c = this.engine.table.lookupClientAt(b, 0, (b[0]! & 0x0f) * 4, SP_SERVICE);
    if (c < 0) return 'a packet is held for no connection';
    if (opened) {
      this.heldValid[c] = 0;
      this.heldCorrupt[c] = 0;
    }
    if (this.inValid) this.heldValid[c]!++;
    else this.heldCorrupt[c]!++;
    return null;
  }

  /** Every packet buffer is back in the pool, the pool did not grow, the table is within bounds. */
  private checkHome(): string | null {
    const pool = this.engine.pool;
    if (pool.created !== this.poolBuffers) {
      return `packet pool grew from ${this.poolBuffers} to ${pool.created} buffers`;
    }
    // Held packets are out of the pool until they are replayed or discarded.
    const held = this.engine.heldPackets;
    if (held < 0 || held > SP_MAX_HELD) return `${held} packets held, limit ${SP_MAX_HELD}`;
    if (pool.created - pool.available !== held) {
      return `${pool.created - pool.available - held} packet buffers not returned to the pool (${held} held)`;
    }
    if (this.engine.table.count > MAX_CONNECTIONS) {
      return `${this.engine.table.count} connections, limit ${MAX_CONNECTIONS}`;
    }
    return null;
  }

  /** Reads what the checks need from the input before the engine rewrites its copy. */
  private noteInput(): void {
    const b = this.input;
    const len = this.inputLength;
    this.inValid = false;
    this.inFragment = len >= 20 && (get16(b, 6) & 0x3fff) !== 0;
    this.inSrc = -1;
    this.inSport = -1;
    this.fromRs = false;
    this.rsConn = -1;
    this.expCip = -1;
    this.expCport = -1;
    if (len < 20 || b[0]! >>> 4 !== 4) return;
    this.inSrc = get32(b, 12);
    this.fromRs = get32(b, 16) === LIP;
    if (!this.fromRs) this.expCip = this.inSrc;
    const ihl = (b[0]! & 0x0f) * 4;
    const tl = get16(b, 2);
    if (ihl < 20 || tl < ihl + 20 || tl > len || b[9] !== IPPROTO_TCP) return;
    this.inSport = get16(b, ihl);
    if (!this.fromRs) {
      this.expCport = this.inSport;
    } else {
      const t = this.engine.table;
      const c = t.lookupReplyAt(b, 0, ihl);
      this.rsConn = c;
      if (c >= 0) {
        this.expCip = t.cip[c]!;
        this.expCport = t.cport[c]!;
      }
    }
    this.inValid =
      foldSum(sumWords(b, 0, ihl, 0)) === 0xffff &&
      foldSum(sumWords(b, ihl, tl - ihl, pseudoSumV4(b, 0, IPPROTO_TCP, tl - ihl))) === 0xffff;
  }

  /**
   * One emitted packet: a valid IPv4 packet; for TCP, valid when the input
   * was, still corrupt when a corrupt input was forwarded (a replayed held
   * packet: when the packets held were), and carrying no client TOA the RS
   * module would take for the client.
   */
  private checkOutput(q: Packet, fromTimer: boolean, inserted: boolean): string | null {
    const b = q.buf;
    const o = q.start;
    const n = q.length;
    if (n < 20 || o < 0 || o + n > b.length) return `bad bounds (start ${o}, length ${n})`;
    if (b[o]! >>> 4 !== 4) return `IP version ${b[o]! >>> 4}`;
    const ihl = (b[o]! & 0x0f) * 4;
    if (ihl < 20 || ihl > n) return `IP header length ${ihl} in a ${n}-byte packet`;
    const tl = get16(b, o + 2);
    if (tl !== n) return `IP total length ${tl} but ${n} bytes emitted`;
    if (foldSum(sumWords(b, o, ihl, 0)) !== 0xffff) return 'IP header checksum wrong';
    // A reassembled datagram: valid IPv4 (fragments of it, when it was too big) is all one can ask.
    if (this.inFragment && !fromTimer) return null;
    if ((b[o + 6]! & 0x3f) !== 0 || b[o + 7]! !== 0) return 'emitted an IP fragment';
    const proto = b[o + 9]!;
    if (proto === IPPROTO_ICMP) {
      if (foldSum(sumWords(b, o + ihl, n - ihl, 0)) !== 0xffff) return 'ICMP checksum wrong';
      return null;
    }
    if (proto !== IPPROTO_TCP) return `emitted IP protocol ${proto}`;
    const t = o + ihl;
    if (n - ihl < 20) return `TCP segment of ${n - ihl} bytes`;
    const doff = (b[t + 12]! >>> 4) * 4;
    if (doff < 20 || ihl + doff > n) {
      return `TCP header length ${doff} with ${n - ihl} bytes after the IP header`;
    }
    const valid =
      foldSum(sumWords(b, t, n - ihl, pseudoSumV4(b, o, IPPROTO_TCP, n - ihl))) === 0xffff;
    if (fromTimer) return valid ? null : 'TCP checksum wrong';
    const dst = get32(b, o + 16);
    if (this.replay) {
      // The RS SYN+ACK is absorbed; what goes out are the held client packets.
      if (!valid && this.heldCorrupt[this.rsConn] === 0) {
        return 'TCP checksum wrong on a replayed packet (the packets held were valid)';
      }
      if (valid && this.heldValid[this.rsConn] === 0) {
        return 'a replayed packet went out with a valid TCP checksum, all those held were corrupt (laundered)';
      }
    } else {
      if (this.inValid && !valid) return 'TCP checksum wrong (the input was valid)';
      // Packets the LB writes itself are valid: answers to the sender, the PROXY header, and
      // under SYNPROXY the RS-leg SYN or RST for an input it holds or drops.
      if (
        !this.inValid &&
        valid &&
        this.forwarded &&
        dst !== this.inSrc &&
        !this.isProxyHeader(b, t + doff, o + n)
      ) {
        return 'a corrupt input went out with a valid TCP checksum (laundered)';
      }
    }
    if (dst !== RIP && dst !== RIP2 && dst !== RIP3) return null;
    const found = findToa(b, t + 20, t + doff, this.toa);
    const ours =
      found &&
      this.toa.family === 4 &&
      this.toa.v4 === this.expCip &&
      this.toa.port === this.expCport;
    if (ours) this.toaSeen++;
    // From a client packet, each packet to the RS is that packet or made for it: with a TOA
    // inserted, it is the client's. From an RS packet (SYNPROXY: the replay, or the SYN sent
    // again) some may have one and some not: the engine's must be the one the RS reads.
    const wrong = this.fromRs
      ? found && !ours && (this.policy === 'fullnat' || this.hasClientToa(b, t + 20, t + doff))
      : (this.policy === 'fullnat' || inserted) && (inserted ? !ours : found && !ours);
    if (wrong) {
      const what = !found
        ? 'no TOA'
        : this.toa.family === 6
          ? 'an IPv6 TOA'
          : `a TOA for ${hex(b.subarray(this.toa.at + 2, this.toa.at + 8))} (port, address)`;
      return `the RS would read ${what}, not the client's address (policy ${this.policy}${inserted ? ', TOA inserted' : ''})`;
    }
    return null;
  }

  /** Whether the option bytes [from, to) hold a TOA of the expected client anywhere. */
  private hasClientToa(b: Uint8Array, from: number, to: number): boolean {
    for (let i = from; i + TOA_V4_LEN <= to; i++) {
      if (
        b[i] === TCPOPT_TOA &&
        b[i + 1] === TOA_V4_LEN &&
        get16(b, i + 2) === this.expCport &&
        get32(b, i + 4) === this.expCip
      ) {
        return true;
      }
    }
    return false;
  }

  private isProxyHeader(b: Uint8Array, from: number, to: number): boolean {
    if (to - from < PROXY_V2_SIGNATURE.length) return false;
    for (let i = 0; i < PROXY_V2_SIGNATURE.length; i++) {
      if (b[from + i] !== PROXY_V2_SIGNATURE[i]) return false;
    }
    return true;
  }

  // ---- the mutator ------------------------------------------------------------------------

  /**
   * The next input: a quarter are the next step of one of the scripted
   * connections, a quarter packets of the live flows, half hostile ones; each
   * as it is or mutated.
   */
  private generate(): void {
    const r = this.next();
    this.slot = -1;
    if ((r & 3) === 0 && this.sessions.length > 0) {
      this.sessionStep();
      if (((r >>> 2) & 1) === 0) this.mutateSome(r >>> 3);
      return;
    }
    const list = (r & 3) === 1 ? this.flows : this.hostile;
    const src = list[this.next() % list.length]!;
    this.input.set(src);
    this.inputLength = src.length;
    if (((r >>> 2) & 3) !== 0) this.mutateSome(r >>> 4); // a quarter go as they are
  }

  /** Loads the next step of a scripted connection, addressed to what the engine chose for it. */
  private sessionStep(): void {
    const s = this.next() % this.sessions.length;
    const script = this.sessions[s]!;
    const step = this.slotStep[s]!;
    this.slotStep[s] = (step + 1) % script.steps.length;
    const alts = script.steps[step]!;
    const k = this.next() % (2 * alts.length); // the plain alternative half of the time
    const src = alts[k < alts.length ? k : 0]!;
    this.input.set(src);
    this.inputLength = src.length;
    this.slot = s;
    if (step === 0) {
      this.slotLport[s] = -1;
      this.slotCookie[s] = -1;
    }
    const delta = script.rsAck[step]!;
    if (delta >= 0 && this.slotLport[s]! >= 0) {
      const ihl = (this.input[0]! & 0x0f) * 4;
      set16(this.input, ihl + 2, this.slotLport[s]!);
      set32(this.input, ihl + 8, (this.slotIsn[s]! + delta) >>> 0);
      this.fixTcp();
    }
    // SYNPROXY: a client packet acks the cookie the engine answered this client's SYN with.
    const cookieDelta = script.cookieAck !== undefined ? script.cookieAck[step]! : -1;
    if (cookieDelta >= 0 && this.slotCookie[s]! >= 0) {
      const ihl = (this.input[0]! & 0x0f) * 4;
      set32(this.input, ihl + 8, (this.slotCookie[s]! + cookieDelta) >>> 0);
      this.fixTcp();
    }
  }

  /**
   * Learns the LIP port and ISN of a scripted connection from the SYN the
   * engine sent the RS, and under SYNPROXY the cookie from its SYN+ACK.
   */
  private learn(q: Packet): void {
    const b = q.buf;
    const o = q.start;
    const t = o + (b[o]! & 0x0f) * 4;
    if (b[o + 9] !== IPPROTO_TCP) return;
    const dst = get32(b, o + 16);
    const flags = b[t + 13]! & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN);
    if (
      (flags & (TCP_SYN | TCP_ACK)) === TCP_SYN &&
      (dst === RIP || dst === RIP2 || dst === RIP3)
    ) {
      this.slotLport[this.slot] = get16(b, t);
      this.slotIsn[this.slot] = get32(b, t + 4);
    } else if (
      flags === (TCP_SYN | TCP_ACK) &&
      this.sessions[this.slot]!.cookieAck !== undefined &&
      dst === this.slotCip[this.slot] &&
      get16(b, t + 2) === this.slotCport[this.slot]
    ) {
      this.slotCookie[this.slot] = get32(b, t + 4);
    }
  }

  /** One mutation (two a quarter of the time); most mutants get their checksums fixed. */
  private mutateSome(r: number): void {
    this.mutate(4 + ((r & 0xff) % 12));
    if (((r >>> 8) & 3) === 0) this.mutate(4 + (this.next() % 12));
    // Fixed checksums take a mutant past the checksum checks into the code behind them.
    if (((r >>> 10) & 7) !== 0) this.fixIp();
    if (((r >>> 13) & 7) !== 0) this.fixTcp();
  }

  private mutate(m: number): void {
    const b = this.input;
    let len = this.inputLength;
    const ihl = (b[0]! & 0x0f) * 4;
    const t = ihl >= 20 ? ihl : 20;
    switch (m) {
      case 4: {
        // Random bytes, half of them behind the start of an IPv4/TCP header for the VIP.
        len = this.next() % 128;
        for (let k = 0; k < len; k++) b[k] = this.next() & 0xff;
        if (len >= 24 && (this.next() & 1) === 0) {
          b[0] = 0x45;
          set16(b, 2, len);
          b[6] = 0x40;
          b[7] = 0;
          b[9] = IPPROTO_TCP;
          set32(b, 16, VIP);
          set16(b, 22, [80, 8080, SP_VPORT][this.next() % 3]!);
        }
        break;
      }
      case 5: // truncated, half of them with the total length saying so
        len = this.next() % (len + 1);
        if (len >= 4 && (this.next() & 1) === 0) set16(b, 2, len);
        break;
      case 6: {
        const span = Math.min(len, 80);
        if (span === 0) break;
        const flips = 1 + (this.next() % 4);
        for (let k = 0; k < flips; k++) b[this.next() % span]! ^= 1 << (this.next() & 7);
        break;
      }
      case 7: {
        // Lengths that lie: IHL, total length, data offset.
        const r = this.next();
        if ((r & 3) === 0 && len > 0) b[0] = (b[0]! & 0xf0) | ((r >>> 2) & 0x0f);
        if ((r & 3) === 1 && len >= 4)
          set16(
            b,
            2,
            (r & 4) !== 0 ? (r >>> 8) & 0xffff : Math.max(0, len + ((r >>> 8) % 41) - 20),
          );
        if ((r & 3) >= 2 && t + 12 < len) b[t + 12] = ((r >>> 8) & 0xf0) | (b[t + 12]! & 0x0f);
        break;
      }
      case 8: {
        // Option bytes: random, or one hostile option planted somewhere in the option space.
        if (t + 13 >= len) break;
        const end = Math.min(len, t + (b[t + 12]! >>> 4) * 4);
        if (end <= t + 20) {
          b[t + 12] = (((10 + (this.next() % 6)) << 4) | (b[t + 12]! & 0x0f)) & 0xff;
          break;
        }
        const at = t + 20 + (this.next() % (end - t - 20));
        const r = this.next();
        switch (r & 7) {
          case 0:
            for (let k = at; k < end; k++) b[k] = this.next() & 0xff;
            break;
          case 1: // length 0 or 1
            b[at] = (r >>> 8) & 0xff;
            if (at + 1 < end) b[at + 1] = (r >>> 16) & 1;
            break;
          case 2: // overrunning
            b[at] = (r >>> 8) & 0xff;
            if (at + 1 < end) b[at + 1] = end - at + 1 + ((r >>> 16) % 200);
            break;
          case 3: // a TOA with the forged address, of a right or wrong length
          case 4: {
            const sizes = [8, 8, 6, 12, 20, 2];
            b[at] = (r & 1) === 0 ? 254 : 253;
            if (at + 1 < end) b[at + 1] = sizes[(r >>> 8) % sizes.length]!;
            for (let k = at + 2; k < end && k < at + 20; k++) b[k] = k < at + 4 ? 0 : 6;
            break;
          }
          case 5: // MSS, of any value
            b[at] = 2;
            if (at + 1 < end) b[at + 1] = 4;
            if (at + 3 < end) set16(b, at + 2, (r >>> 8) & 0xffff);
            break;
          case 6: // SACK of any length
            b[at] = 5;
            if (at + 1 < end) b[at + 1] = (r >>> 8) % 40;
            break;
          default: // EOL or NOP
            b[at] = (r >>> 8) & 1;
        }
        break;
      }
      case 9:
        if (t + 13 < len) {
          const r = this.next();
          b[t + 13] = (r & 1) === 0 ? HOSTILE_FLAGS[(r >>> 1) % HOSTILE_FLAGS.length]! : r >>> 24;
        }
        break;
      case 10:
        // RST flood: guessed sequence numbers, near the real one or anywhere.
        if (t + 13 < len) {
          const r = this.next();
          b[t + 13] = (r & 1) === 0 ? TCP_RST : TCP_RST | TCP_ACK;
          const seq = (r & 2) === 0 ? this.next() : get32(b, t + 4) + ((r >>> 8) & 0xffff) - 0x8000;
          set32(b, t + 4, seq >>> 0);
          if ((r & 4) !== 0) set32(b, t + 8, this.next());
        }
        break;
      case 11:
        // Zero (or any) window, sometimes an urgent pointer.
        if (t + 19 < len) {
          const r = this.next();
          set16(b, t + 14, (r & 3) === 0 ? (r >>> 16) & 0xffff : 0);
          if ((r & 4) !== 0) {
            b[t + 13] = b[t + 13]! | TCP_URG;
            set16(b, t + 18, (r >>> 8) & 0xffff);
          }
        }
        break;
      case 12:
        // Fragments: MF, any offset, DF+MF.
        if (len >= 8) {
          const r = this.next();
          const flags = [1, 1, 0, 3, 2, 5][(r & 0xff) % 6]!;
          const offset = (r & 0x100) !== 0 ? 0 : (r >>> 16) & 0x1fff;
          set16(b, 6, (flags << 13) | offset);
        }
        break;
      case 13: {
        // Other clients (new connections fill the table and the ports), ports and addresses.
        if (t + 4 > len) break;
        const r = this.next();
        const src = get32(b, 12);
        if (src === RIP || src === RIP2 || src === RIP3) {
          set16(b, t + 2, PORT_MIN + (r % (PORT_MAX - PORT_MIN + 2)));
        } else if ((r & 3) === 0) {
          set32(b, 12, CLIENT_BASE + ((r >>> 2) % 64));
        } else if ((r & 3) === 1) {
          set16(b, t, 40000 + ((r >>> 2) % 64));
        } else if ((r & 3) === 2) {
          set16(b, t + 2, [80, 8080, SP_VPORT, 81, 0, 80, 8080, SP_VPORT][(r >>> 2) & 7]!);
        } else {
          set32(b, 16, [VIP, LIP, RIP, r][(r >>> 2) & 3]! >>> 0);
        }
        break;
      }
      case 14: {
        // Bytes behind the datagram (link-layer padding or junk).
        const extra = 1 + (this.next() % 64);
        if (len + extra > MAX_INPUT) break;
        const junk = (this.next() & 1) === 0;
        for (let k = 0; k < extra; k++) b[len + k] = junk ? this.next() & 0xff : 0;
        len += extra;
        break;
      }
      default: {
        // Other IP header fields: TOS, ID, TTL (0 too), protocol, version.
        if (len < 20) break;
        const r = this.next();
        const at = [1, 4, 5, 8, 9, 0][r % 6]!;
        b[at] = at === 0 ? ((r >>> 8) & 0xf0) | (b[0]! & 0x0f) : (r >>> 16) & 0xff;
      }
    }
    this.inputLength = len;
  }

  private fixIp(): void {
    const b = this.input;
    const len = this.inputLength;
    if (len < 20) return;
    const ihl = (b[0]! & 0x0f) * 4;
    if (ihl < 20 || ihl > len) return;
    this.ip.wrap(b, 0).updateChecksum();
  }

  private fixTcp(): void {
    const b = this.input;
    const len = this.inputLength;
    if (len < 20 || b[9] !== IPPROTO_TCP) return;
    const ihl = (b[0]! & 0x0f) * 4;
    const tl = get16(b, 2);
    if (ihl < 20 || tl > len || tl < ihl + 20) return;
    const t = this.tcp.wrap(b, ihl);
    t.checksum = t.computeChecksumV4(0, tl - ihl);
  }
}
