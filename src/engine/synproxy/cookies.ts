/**
 * SYNPROXY's syncookies. The cookie ISN (32 bits) is the seq of the LB's
 * SYN+ACK:
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
 *   10 data bits, so the data bits are authenticated too. For an IPv6
 *   client the addresses are the whole 16 bytes of each (13 words hashed
 *   instead of 7): a cookie is bound to the full IPv6 tuple, not to a fold
 *   of it that other clients could share.
 *
 * Keys rotate every minute: the key of the current minute and of the
 * previous one are kept, so a cookie is accepted for 60 to 120 s. Keys come
 * from the system CSPRNG unless the engine is given `synproxySecret`. In a
 * fleet (`useFleetKey`) they are derived from the fleet's key and the
 * wall-clock minute (fleet-keys.ts), and the minute the MAC covers is the
 * wall clock's, so every node makes and accepts the same cookies whenever
 * it started.
 *
 * A connection keeps the data bits in the table (`spData`), with the RS's
 * window-scale shift in force in bits 10-13 once the RS has answered; the
 * functions below name every field of both.
 */
import { webcrypto } from 'node:crypto';
import { Ipv4Field } from '../../wire/ipv4.js';
import { TcpField } from '../../wire/tcp.js';
import { fleetCookieKey } from './fleet-keys.js';

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
  return SYNPROXY_MSS_TABLE[cookieMssIndex(data)] ?? 536;
}

function cookieMssIndex(data: number): number {
  return data & 0xf;
}

/** The client's window-scale field: its shift, or 15 when it offered none. */
export function cookieWscaleField(data: number): number {
  return (data >>> 4) & 0xf;
}

/** The client's window-scale shift, or -1 when it offered none. */
export function cookieWscale(data: number): number {
  const ws = cookieWscaleField(data);
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
  return cookieMssIndex(data) < SYNPROXY_MSS_TABLE.length && (data & DATA_TS) === 0;
}

/** A connection's `spData`: its cookie's data bits and the RS's window-scale shift `rsWscale`. */
export function connData(cookie: number, rsWscale: number): number {
  return (cookie & COOKIE_DATA_MASK) | (rsWscale << COOKIE_DATA_BITS);
}

/** The RS's window-scale shift in force, from a connection's `spData` (0: none). */
export function connRsWscale(spData: number): number {
  return (spData >>> COOKIE_DATA_BITS) & 0xf;
}

/** Syncookie maker and checker with per-minute key rotation. */
export class SynCookies {
  /** k0, k1 of the current minute, then k0, k1 of the previous minute. */
  private readonly keys = new Int32Array(4);
  /** The hashed words: the addresses (2 or 8 words), ports, ISN, minute, data, final block. */
  private readonly msg = new Int32Array(13);
  private readonly rnd = new Int32Array(2);
  /** Deterministic key stream state (only with a seed). */
  private seedState: number;
  private readonly seeded: boolean;
  /** Minute the current key belongs to. */
  minute = 0;
  /** The fleet's key (`useFleetKey`); undefined: keys of this process alone. */
  private fleetKey: Uint8Array | undefined;
  /** Unix ms at engine time 0 under a fleet key (the minute is the wall clock's); 0 otherwise. */
  private originMs = 0;

  constructor(seed?: number) {
    this.seeded = seed !== undefined;
    this.seedState = (seed ?? 0) | 0;
    this.fresh(2);
    this.fresh(0);
  }

  /** The minute of engine time `now`: the engine's own, or under a fleet key the wall clock's. */
  minuteAt(now: number): number {
    return Math.floor((this.originMs + now) / COOKIE_PERIOD_MS);
  }

  /**
   * From now on the keys of each minute come from the fleet's key and the
   * wall-clock minute (`originMs`: Unix ms at engine time 0), made current
   * for engine time `now`.
   */
  useFleetKey(fleetKey: Uint8Array, originMs: number, now: number): void {
    this.fleetKey = Uint8Array.from(fleetKey);
    this.originMs = originMs;
    this.derive(this.minuteAt(now));
  }

  /** Makes the keys current for `minute` (`minuteAt`). */
  rotate(minute: number): void {
    if (minute === this.minute) return;
    if (this.fleetKey !== undefined) {
      this.derive(minute);
      return;
    }
    if (minute === this.minute + 1) {
      this.keys[2] = this.keys[0]!;
      this.keys[3] = this.keys[1]!;
    } else {
      this.fresh(2);
    }
    this.fresh(0);
    this.minute = minute;
  }

  /** The fleet's keys of `minute` and of the minute before it. */
  private derive(minute: number): void {
    const key = this.fleetKey;
    if (key === undefined) return;
    if (minute === this.minute + 1) {
      this.keys[2] = this.keys[0]!;
      this.keys[3] = this.keys[1]!;
    } else fleetCookieKey(key, minute - 1, this.keys, 2);
    fleetCookieKey(key, minute, this.keys, 0);
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
   * 22-bit MAC of the connection whose client packet is at b (IP header at
   * ipOff, TCP at tcpOff; `v6`: an IPv6 fixed header): client address and
   * port, VIP and port, client ISN (= seq + isnAdjust), minute and data
   * bits, under the key at keyAt.
   */
  private mac(
    b: Uint8Array,
    ipOff: number,
    v6: boolean,
    tcpOff: number,
    isnAdjust: number,
    minute: number,
    data: number,
    keyAt: number,
  ): number {
    const m = this.msg;
    // Source then destination address, contiguous in both families (IPv4 at 12, IPv6 at 8).
    const a = ipOff + (v6 ? 8 : Ipv4Field.Src);
    const addrWords = v6 ? 8 : 2;
    // Words read straight from the packet: a 32-bit value returned by a helper could be boxed.
    for (let i = 0; i < addrWords; i++) {
      const o = a + 4 * i;
      m[i] = (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
    }
    let n = addrWords;
    m[n++] = (b[tcpOff]! << 24) | (b[tcpOff + 1]! << 16) | (b[tcpOff + 2]! << 8) | b[tcpOff + 3]!;
    const s = tcpOff + TcpField.Seq;
    m[n++] = (((b[s]! << 24) | (b[s + 1]! << 16) | (b[s + 2]! << 8) | b[s + 3]!) + isnAdjust) | 0;
    m[n++] = minute;
    m[n++] = data;
    // The final block: message length in bytes in the top byte, no tail bytes.
    m[n] = (n * 4) << 24;
    // HalfSipHash-2-4 over the n+1 words, state in locals (int32 all the way, nothing boxed).
    const k0 = this.keys[keyAt]!;
    const k1 = this.keys[keyAt + 1]!;
    let v0 = k0;
    let v1 = k1;
    let v2 = 0x6c796765 ^ k0;
    let v3 = 0x74656462 ^ k1;
    const words = n + 1;
    for (let i = 0; i <= words; i++) {
      // The message words with 2 rounds each, then the finalization (v2 ^= 0xff) with 4.
      const w = i < words ? m[i]! : 0;
      const rounds = i < words ? 2 : 4;
      if (i < words) v3 ^= w;
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

  /**
   * Writes the cookie ISN answering the client SYN at b (its seq is the
   * client ISN) to out[idx]; the IP header at ipOff is IPv4 or IPv6 by its
   * version nibble (an IPv6 one without extension headers: the IPv6 path
   * takes them out first).
   */
  make(
    b: Uint8Array,
    ipOff: number,
    tcpOff: number,
    data: number,
    out: Uint32Array,
    idx: number,
  ): void {
    const v6 = (b[ipOff]! & 0xf0) === 0x60;
    out[idx] = (this.mac(b, ipOff, v6, tcpOff, 0, this.minute, data, 0) << COOKIE_DATA_BITS) | data;
  }

  /**
   * Checks the client ACK at b: ack − 1 must be a cookie for client ISN
   * seq − 1, made this minute or the previous one. Returns the cookie's data
   * bits, or -1.
   */
  check(b: Uint8Array, ipOff: number, tcpOff: number): number {
    const k = tcpOff + TcpField.Ack;
    const cookie = (((b[k]! << 24) | (b[k + 1]! << 16) | (b[k + 2]! << 8) | b[k + 3]!) - 1) | 0;
    const data = cookie & COOKIE_DATA_MASK;
    if (!cookieDataValid(data)) return -1;
    const mac = cookie >>> COOKIE_DATA_BITS;
    const v6 = (b[ipOff]! & 0xf0) === 0x60;
    if (this.mac(b, ipOff, v6, tcpOff, -1, this.minute, data, 0) === mac) return data;
    if (this.mac(b, ipOff, v6, tcpOff, -1, this.minute - 1, data, 2) === mac) return data;
    return -1;
  }
}
