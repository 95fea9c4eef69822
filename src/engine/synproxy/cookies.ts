/**
 * SYNPROXY building blocks: syncookies, the store of client packets held
 * while the RS leg opens, and the packets the LB writes itself (the cookie
 * SYN+ACK, the RST for a bad cookie, the LB→RS SYN). The engine (engine.ts,
 * its `sp*` methods) drives the connection life cycle:
 *
 *   client SYN       → the LB's SYN+ACK, ISN = cookie; no table entry.
 *   client ACK/data  → cookie checked (ack − 1 for client ISN seq − 1, this or
 *                      the previous minute): bad → RST; good → entry (SYN_SENT),
 *                      LB→RS SYN, the packet held. With `synproxyDefer` a bare
 *                      ACK is dropped and the first data (or FIN) does this.
 *   RS SYN+ACK       → absorbed; RS ISN known; held packets replayed through
 *                      the ordinary client→RS path (TOA policy and all).
 *   afterwards       → client acks and SACK edges + (RS ISN − cookie ISN),
 *                      RS seqs − the same; windows rescaled where needed.
 *   RS RST / silence → RST to the client (after `synproxySynRetries` SYN
 *                      retransmissions, backing off from `synproxySynRtoMs`).
 *   RS old ACK       → the RS still has the LIP:lport tuple in TIME_WAIT: the LB
 *                      answers as a client stack in SYN_SENT would, RST with
 *                      seq = that ack (ends the TIME_WAIT), and resends its SYN.
 *
 * Cookie ISN (32 bits), sent as the seq of the LB's SYN+ACK:
 *
 *     31                               10 9  8  7    4 3     0
 *     +----------------------------------+--+--+------+-------+
 *     |  MAC (22 bits)                   |TS|SK|  WS  | MSS i |
 *     +----------------------------------+--+--+------+-------+
 *
 * - MSS i: index into SYNPROXY_MSS_TABLE, the largest entry not above the
 *   client's MSS (capped at the configured SYNPROXY MSS);
 * - WS: the client's window-scale shift 0..14, 15 = the client offered none;
 * - SK: the client offered SACK; TS: timestamps in use (always 0: the LB
 *   offers no timestamps, so neither leg uses them);
 * - MAC: keyed hash (HalfSipHash-2-4 construction, 64-bit key) of client
 *   address and port, VIP and port, client ISN, the minute counter and the
 *   10 data bits, so the data bits are authenticated too.
 *
 * Keys rotate every minute: the key of the current minute and of the
 * previous one are kept, so a cookie is accepted for 60 to 120 s. Keys come
 * from the system CSPRNG unless the engine is given `synproxySecret`.
 *
 * Window scaling. The LB's SYN+ACK offers the client `synproxyWscale`
 * (default 7, what Linux RSs use with default buffers) when the client
 * offered scaling, and the LB→RS SYN passes the client's own shift on, so
 * client windows need no translation. When the RS answers with another
 * shift, RS windows are rescaled for the client (w << rs >> ours, clamped to
 * 16 bits); when the RS refuses scaling, client windows are unscaled for it
 * (w << client, clamped) and RS windows (raw bytes) are shifted down.
 *
 * Held packets. Each opening connection gets a slot of
 * `synproxyMaxStoredAcks` packet references (the pool packets themselves, no
 * copy); `synproxyMaxStoredTotal` bounds all slots together, so buffer
 * memory is at most that many pool packets. The SYN+ACK window invites no
 * more than a slot holds. Beyond either bound packets are dropped (counted
 * `synproxy_ack_overflow`); TCP retransmits them.
 *
 * Nothing here allocates per packet: 32-bit values travel through typed
 * arrays or are read from and written to packet bytes directly.
 */
import { webcrypto } from 'node:crypto';
import { set16, storeU32From } from '../../wire/bytes.js';
import { finishChecksum, sumWords } from '../../wire/checksum.js';
import { IPPROTO_TCP } from '../../wire/ipv4.js';
import { TCP_ACK, TCP_RST, TCP_SYN, TcpView } from '../../wire/tcp.js';
import {
  TCPOPT_MSS,
  TCPOPT_NOP,
  TCPOPT_SACK_PERM,
  TCPOPT_TOA,
  TCPOPT_WINDOW,
} from '../../wire/tcp-options.js';
import { TOA_V4_LEN } from '../../wire/toa.js';
import type { ConnTable } from '../conn-table.js';
import type { Packet } from '../packet.js';

/** MSS values a cookie can carry (Alibaba's and DPVS's table). */
export const SYNPROXY_MSS_TABLE: readonly number[] = [
  64, 256, 512, 536, 1024, 1280, 1440, 1452, 1460, 4312,
];
export const COOKIE_DATA_BITS = 10;
export const COOKIE_DATA_MASK = (1 << COOKIE_DATA_BITS) - 1;
/** Cookie key rotation period and minute counter unit. */
export const COOKIE_PERIOD_MS = 60_000;
const WS_NONE = 15;
const DATA_SACK = 0x100;
const DATA_TS = 0x200;

/** Index of the largest table MSS not above `mss` (0 below the smallest). */
export function mssIndex(mss: number): number {
  let i = SYNPROXY_MSS_TABLE.length - 1;
  while (i > 0 && SYNPROXY_MSS_TABLE[i]! > mss) i--;
  return i;
}

/** The 10 data bits of a cookie; `wscale` < 0 means the client offered no window scaling. */
export function cookieData(mssIdx: number, wscale: number, sack: boolean, ts: boolean): number {
  const ws = wscale < 0 ? WS_NONE : wscale > 14 ? 14 : wscale;
  return mssIdx | (ws << 4) | (sack ? DATA_SACK : 0) | (ts ? DATA_TS : 0);
}

export function cookieMss(data: number): number {
  return SYNPROXY_MSS_TABLE[data & 0xf] ?? 536;
}

/** The client's window-scale shift, or -1 when it offered none. */
export function cookieWscale(data: number): number {
  const ws = (data >>> 4) & 0xf;
  return ws === WS_NONE ? -1 : ws;
}

export function cookieSack(data: number): boolean {
  return (data & DATA_SACK) !== 0;
}

export function cookieTimestamps(data: number): boolean {
  return (data & DATA_TS) !== 0;
}

/** Data bits the LB could have issued: a table MSS index, and no timestamps (never offered). */
function cookieDataValid(data: number): boolean {
  return (data & 0xf) < SYNPROXY_MSS_TABLE.length && (data & DATA_TS) === 0;
}

/** Syncookie maker and checker with per-minute key rotation. */
export class SynCookies {
  /** k0, k1 of the current minute, then k0, k1 of the previous minute. */
  private readonly keys = new Int32Array(4);
  private readonly msg = new Int32Array(7);
  private readonly rnd = new Int32Array(2);
  /** Deterministic key stream state (only with a seed). */
  private seedState: number;
  private readonly seeded: boolean;
  /** Minute the current key belongs to. */
  minute = 0;

  constructor(seed?: number) {
    this.seeded = seed !== undefined;
    this.seedState = (seed ?? 0) | 0;
    this.fresh(2);
    this.fresh(0);
  }

  /** Makes the keys current for `minute` (engine ms / COOKIE_PERIOD_MS, floored). */
  rotate(minute: number): void {
    if (minute === this.minute) return;
    if (minute === this.minute + 1) {
      this.keys[2] = this.keys[0]!;
      this.keys[3] = this.keys[1]!;
    } else {
      this.fresh(2);
    }
    this.fresh(0);
    this.minute = minute;
  }

  private fresh(at: number): void {
    if (this.seeded) {
      // splitmix32-style stream from the seed: reproducible keys for tests and the simulator.
      for (let k = 0; k < 2; k++) {
        let z = (this.seedState = (this.seedState + 0x9e3779b9) | 0);
        z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
        z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
        this.rnd[k] = z ^ (z >>> 16);
      }
    } else {
      webcrypto.getRandomValues(this.rnd);
    }
    this.keys[at] = this.rnd[0]!;
    this.keys[at + 1] = this.rnd[1]!;
  }

  /**
   * 22-bit MAC of the connection whose client packet is at b (IPv4 header at
   * ipOff, TCP at tcpOff): client address and port, VIP and port, client ISN
   * (= seq + isnAdjust), minute and data bits, under the key at keyAt.
   */
  private mac(
    b: Uint8Array,
    ipOff: number,
    tcpOff: number,
    isnAdjust: number,
    minute: number,
    data: number,
    keyAt: number,
  ): number {
    const m = this.msg;
    // Words read straight from the packet: a 32-bit value returned by a helper could be boxed.
    const a = ipOff + 12;
    m[0] = (b[a]! << 24) | (b[a + 1]! << 16) | (b[a + 2]! << 8) | b[a + 3]!;
    m[1] = (b[a + 4]! << 24) | (b[a + 5]! << 16) | (b[a + 6]! << 8) | b[a + 7]!;
    m[2] = (b[tcpOff]! << 24) | (b[tcpOff + 1]! << 16) | (b[tcpOff + 2]! << 8) | b[tcpOff + 3]!;
    const s = tcpOff + 4;
    m[3] = (((b[s]! << 24) | (b[s + 1]! << 16) | (b[s + 2]! << 8) | b[s + 3]!) + isnAdjust) | 0;
    m[4] = minute;
    m[5] = data;
    // The final block: message length in bytes in the top byte, no tail bytes.
    m[6] = 24 << 24;
    // HalfSipHash-2-4 over the 7 words, state in locals (int32 all the way, nothing boxed).
    const k0 = this.keys[keyAt]!;
    const k1 = this.keys[keyAt + 1]!;
    let v0 = k0;
    let v1 = k1;
    let v2 = 0x6c796765 ^ k0;
    let v3 = 0x74656462 ^ k1;
    for (let i = 0; i <= 7; i++) {
      // Words 0..6 with 2 rounds each, then the finalization (v2 ^= 0xff) with 4.
      const w = i < 7 ? m[i]! : 0;
      const rounds = i < 7 ? 2 : 4;
      if (i < 7) v3 ^= w;
      else v2 ^= 0xff;
      for (let r = 0; r < rounds; r++) {
        v0 = (v0 + v1) | 0;
        v1 = ((v1 << 5) | (v1 >>> 27)) ^ v0;
        v0 = (v0 << 16) | (v0 >>> 16);
        v2 = (v2 + v3) | 0;
        v3 = ((v3 << 8) | (v3 >>> 24)) ^ v2;
        v0 = (v0 + v3) | 0;
        v3 = ((v3 << 7) | (v3 >>> 25)) ^ v0;
        v2 = (v2 + v1) | 0;
        v1 = ((v1 << 13) | (v1 >>> 19)) ^ v2;
        v2 = (v2 << 16) | (v2 >>> 16);
      }
      v0 ^= w;
    }
    return (v1 ^ v3) >>> COOKIE_DATA_BITS;
  }

  /** Writes the cookie ISN answering the client SYN at b (its seq is the client ISN) to out[idx]. */
  make(
    b: Uint8Array,
    ipOff: number,
    tcpOff: number,
    data: number,
    out: Uint32Array,
    idx: number,
  ): void {
    out[idx] = (this.mac(b, ipOff, tcpOff, 0, this.minute, data, 0) << COOKIE_DATA_BITS) | data;
  }

  /**
   * Checks the client ACK at b: ack − 1 must be a cookie for client ISN
   * seq − 1, made this minute or the previous one. Returns the cookie's data
   * bits, or -1.
   */
  check(b: Uint8Array, ipOff: number, tcpOff: number): number {
    const k = tcpOff + 8;
    const cookie = (((b[k]! << 24) | (b[k + 1]! << 16) | (b[k + 2]! << 8) | b[k + 3]!) - 1) | 0;
    const data = cookie & COOKIE_DATA_MASK;
    if (!cookieDataValid(data)) return -1;
    const mac = cookie >>> COOKIE_DATA_BITS;
    if (this.mac(b, ipOff, tcpOff, -1, this.minute, data, 0) === mac) return data;
    if (this.mac(b, ipOff, tcpOff, -1, this.minute - 1, data, 2) === mac) return data;
    return -1;
  }
}

/**
 * Client packets held while the RS leg of a SYNPROXY connection opens: a
 * slot per opening connection with room for `perConn` packets, at most
 * `limit` packets in all. Slots are reused; the arrays only grow to the
 * high-water mark of connections opening at once.
 */
export class HeldPackets {
  private readonly pkts: (Packet | null)[] = [];
  private readonly counts: number[] = [];
  private readonly retries: number[] = [];
  private readonly windows: number[] = [];
  private readonly free: number[] = [];
  private slots = 0;
  /** Packets held in all slots. */
  total = 0;

  constructor(
    readonly perConn: number,
    readonly limit: number,
  ) {}

  /** True when no packet more may be held. */
  get full(): boolean {
    return this.total >= this.limit;
  }

  alloc(): number {
    let s = this.free.length > 0 ? this.free.pop()! : -1;
    if (s < 0) {
      s = this.slots++;
      for (let k = 0; k < this.perConn; k++) this.pkts.push(null);
    }
    this.counts[s] = 0;
    this.retries[s] = 0;
    this.windows[s] = 0;
    return s;
  }

  /** Holds p in slot s; false (p not taken) when the slot or the store is full. */
  push(s: number, p: Packet): boolean {
    const n = this.counts[s]!;
    if (n >= this.perConn || this.total >= this.limit) return false;
    this.pkts[s * this.perConn + n] = p;
    this.counts[s] = n + 1;
    this.total++;
    return true;
  }

  count(s: number): number {
    return this.counts[s]!;
  }

  at(s: number, k: number): Packet {
    return this.pkts[s * this.perConn + k]!;
  }

  /** Frees slot s; the caller has taken (or returned to the pool) every packet in it. */
  release(s: number): void {
    const n = this.counts[s]!;
    for (let k = 0; k < n; k++) this.pkts[s * this.perConn + k] = null;
    this.total -= n;
    this.counts[s] = 0;
    this.free.push(s);
  }

  retriesOf(s: number): number {
    return this.retries[s]!;
  }

  setRetries(s: number, n: number): void {
    this.retries[s] = n;
  }

  /** Window the LB announces in its SYN to the RS (the client's, unscaled, clamped). */
  windowOf(s: number): number {
    return this.windows[s]!;
  }

  setWindow(s: number, w: number): void {
    this.windows[s] = w;
  }
}

const tcpView = new TcpView();

/** SYN options: [TOA] MSS [NOP NOP SACK-perm] [NOP WS]; returns their length (a multiple of 4). */
function writeSynOptions(
  b: Uint8Array,
  o: number,
  mss: number,
  wscale: number,
  sack: boolean,
): number {
  let p = o;
  b[p] = TCPOPT_MSS;
  b[p + 1] = 4;
  set16(b, p + 2, mss);
  p += 4;
  if (sack) {
    b[p] = TCPOPT_NOP;
    b[p + 1] = TCPOPT_NOP;
    b[p + 2] = TCPOPT_SACK_PERM;
    b[p + 3] = 2;
    p += 4;
  }
  if (wscale >= 0) {
    b[p] = TCPOPT_NOP;
    b[p + 1] = TCPOPT_WINDOW;
    b[p + 2] = 3;
    b[p + 3] = wscale;
    p += 4;
  }
  return p - o;
}

/** A 20-byte IPv4 header (DF, id 0) whose addresses the caller has written or will keep. */
function finishIpv4(b: Uint8Array, o: number, totalLength: number, ttl: number): void {
  b[o] = 0x45;
  b[o + 1] = 0;
  set16(b, o + 2, totalLength);
  set16(b, o + 4, 0);
  set16(b, o + 6, 0x4000);
  b[o + 8] = ttl;
  b[o + 9] = IPPROTO_TCP;
  set16(b, o + 10, 0);
  set16(b, o + 10, finishChecksum(sumWords(b, o, 20, 0)));
}

/**
 * Turns a received packet around in place for an answer: swaps the IPv4
 * addresses and the TCP ports, and drops IP options by starting the TCP
 * header at ip+20. Returns that offset; the rest of the TCP header is the caller's.
 */
function reverseEndpoints(b: Uint8Array, ip: number, ipHl: number): number {
  const s0 = b[ip + 12]!;
  const s1 = b[ip + 13]!;
  const s2 = b[ip + 14]!;
  const s3 = b[ip + 15]!;
  const oldTcp = ip + ipHl;
  const sportHi = b[oldTcp]!;
  const sportLo = b[oldTcp + 1]!;
  const dportHi = b[oldTcp + 2]!;
  const dportLo = b[oldTcp + 3]!;
  // Destination becomes source (bytes 16..19 → 12..15), then the sender's address goes to 16..19.
  b.copyWithin(ip + 12, ip + 16, ip + 20);
  b[ip + 16] = s0;
  b[ip + 17] = s1;
  b[ip + 18] = s2;
  b[ip + 19] = s3;
  const t = ip + 20;
  b[t] = dportHi;
  b[t + 1] = dportLo;
  b[t + 2] = sportHi;
  b[t + 3] = sportLo;
  return t;
}

/**
 * Turns the client SYN in p into the LB's cookie SYN+ACK, in place: VIP:vport →
 * CIP:cport, seq = vals[0] (the cookie), ack = vals[1] (client ISN + 1),
 * options MSS, SACK-permitted (if `sack`), window scale (if `wscale` ≥ 0),
 * no timestamps. IP options and any SYN payload are dropped.
 */
export function reflectCookieSynAck(
  p: Packet,
  ipHl: number,
  vals: Uint32Array,
  mss: number,
  wscale: number,
  sack: boolean,
  window: number,
  ttl: number,
): void {
  const b = p.buf;
  const ip = p.start;
  const t = reverseEndpoints(b, ip, ipHl);
  storeU32From(b, t + 4, vals, 0);
  storeU32From(b, t + 8, vals, 1);
  const optLen = writeSynOptions(b, t + 20, mss, wscale, sack);
  const hl = 20 + optLen;
  b[t + 12] = (hl >>> 2) << 4;
  b[t + 13] = TCP_SYN | TCP_ACK;
  set16(b, t + 14, window);
  set16(b, t + 16, 0);
  set16(b, t + 18, 0);
  finishIpv4(b, ip, 20 + hl, ttl);
  p.length = 20 + hl;
  const tcp = tcpView.wrap(b, t);
  tcp.checksum = tcp.computeChecksumV4(ip, hl);
}

/**
 * Turns the client ACK in p into the RST that refuses it, in place (RFC 793:
 * an unacceptable ACK gets <SEQ=SEG.ACK><CTL=RST>).
 */
export function reflectReset(p: Packet, ipHl: number): void {
  const b = p.buf;
  const ip = p.start;
  const oldTcp = ip + ipHl;
  const a0 = b[oldTcp + 8]!;
  const a1 = b[oldTcp + 9]!;
  const a2 = b[oldTcp + 10]!;
  const a3 = b[oldTcp + 11]!;
  const t = reverseEndpoints(b, ip, ipHl);
  b[t + 4] = a0;
  b[t + 5] = a1;
  b[t + 6] = a2;
  b[t + 7] = a3;
  b.fill(0, t + 8, t + 20);
  b[t + 12] = 5 << 4;
  b[t + 13] = TCP_RST;
  finishIpv4(b, ip, 40, 64);
  p.length = 40;
  const tcp = tcpView.wrap(b, t);
  tcp.checksum = tcp.computeChecksumV4(ip, 20);
}

/**
 * Writes the LB→RS SYN of connection c into q: LIP:lport → RIP:rport,
 * seq = the connection's LB ISN, options [TOA of the client] MSS
 * [SACK-permitted] [window scale], no timestamps.
 */
export function writeRsSyn(
  q: Packet,
  t: ConnTable,
  c: number,
  mss: number,
  wscale: number,
  sack: boolean,
  window: number,
  toa: boolean,
): void {
  const b = q.buf;
  const ip = q.start;
  storeU32From(b, ip + 12, t.lip, c);
  storeU32From(b, ip + 16, t.rip, c);
  const tp = ip + 20;
  set16(b, tp, t.lport[c]!);
  set16(b, tp + 2, t.rport[c]!);
  storeU32From(b, tp + 4, t.lbIsn, c);
  b.fill(0, tp + 8, tp + 12);
  let o = tp + 20;
  if (toa) {
    b[o] = TCPOPT_TOA;
    b[o + 1] = TOA_V4_LEN;
    set16(b, o + 2, t.cport[c]!);
    storeU32From(b, o + 4, t.cip, c);
    o += TOA_V4_LEN;
  }
  o += writeSynOptions(b, o, mss, wscale, sack);
  const hl = o - tp;
  b[tp + 12] = (hl >>> 2) << 4;
  b[tp + 13] = TCP_SYN;
  set16(b, tp + 14, window);
  set16(b, tp + 16, 0);
  set16(b, tp + 18, 0);
  finishIpv4(b, ip, 20 + hl, 64);
  q.length = 20 + hl;
  const tcp = tcpView.wrap(b, tp);
  tcp.checksum = tcp.computeChecksumV4(ip, hl);
}
