import { get16, get32, set16 } from './bytes.js';
import { TCPOPT_TOA, TCPOPT_TOA_ALI_V6, TcpOptionCursor, type TcpOption } from './tcp-options.js';

export const TOA_V4_LEN = 8;
export const TOA_V6_LEN = 20;

/** Writes an IPv4 TOA (kind 254, len 8: port, address) at o. */
export function writeToaV4(b: Uint8Array, o: number, port: number, addr: number): void {
  writeToaV4Words(b, o, port, addr >>> 16, addr & 0xffff);
}

/**
 * The IPv4 TOA encoder, taking the address as two 16-bit halves: the data
 * path passes only small integers (a 32-bit address through a call that is
 * not inlined would be boxed, once per packet).
 */
export function writeToaV4Words(
  b: Uint8Array,
  o: number,
  port: number,
  addrHi: number,
  addrLo: number,
): void {
  b[o] = TCPOPT_TOA;
  b[o + 1] = TOA_V4_LEN;
  set16(b, o + 2, port);
  set16(b, o + 4, addrHi);
  set16(b, o + 6, addrLo);
}

/** Writes an IPv6 TOA (len 20: port, 16-byte address); kind 254 (DPVS) or 253 (Alibaba). */
export function writeToaV6(
  b: Uint8Array,
  o: number,
  port: number,
  addr: Uint8Array,
  addrOff = 0,
  kind: number = TCPOPT_TOA,
): void {
  b[o] = kind;
  b[o + 1] = TOA_V6_LEN;
  set16(b, o + 2, port);
  b.set(addr.subarray(addrOff, addrOff + 16), o + 4);
}

export function toaV4Option(port: number, addr: number): TcpOption {
  const d = new Uint8Array(TOA_V4_LEN);
  writeToaV4(d, 0, port, addr);
  return { kind: TCPOPT_TOA, data: d.slice(2) };
}

export function toaV6Option(port: number, addr: Uint8Array, kind: number = TCPOPT_TOA): TcpOption {
  const d = new Uint8Array(TOA_V6_LEN);
  writeToaV6(d, 0, port, addr, 0, kind);
  return { kind, data: d.slice(2) };
}

/** The client address found in a TOA, as the RS module reports it. */
export class ToaResult {
  /** 0: none found, 4: IPv4 TOA, 6: IPv6 TOA. */
  family: 0 | 4 | 6 = 0;
  kind = 0;
  port = 0;
  v4 = 0;
  readonly v6 = new Uint8Array(16);
  /** Offset of the option's kind byte in the buffer. */
  at = -1;
}

export interface ToaKinds {
  /** Accept kind 254 len 8 (every module). */
  v4: boolean;
  /** Accept kind 254 len 20 (DPVS, Huawei modules). */
  v6Kind254: boolean;
  /** Accept kind 253 len 20 (Alibaba module). */
  v6Kind253: boolean;
}

export const ALL_TOA_KINDS: ToaKinds = { v4: true, v6Kind254: true, v6Kind253: true };

const cursor = new TcpOptionCursor();

/**
 * Finds the client address the way the RS `toa` module does: options are
 * walked like `tcp_parse_options`, a malformed option ends the walk, and the
 * first option of an accepted kind and length wins.
 */
export function findToa(
  b: Uint8Array,
  optStart: number,
  optEnd: number,
  out: ToaResult,
  kinds: ToaKinds = ALL_TOA_KINDS,
): boolean {
  out.family = 0;
  out.at = -1;
  out.kind = 0;
  out.port = 0;
  out.v4 = 0;
  out.v6.fill(0);
  const c = cursor.reset(b, optStart, optEnd);
  while (c.next()) {
    const k = c.kind;
    const s = c.size;
    if (k === TCPOPT_TOA && s === TOA_V4_LEN && kinds.v4) {
      out.family = 4;
      out.kind = k;
      out.port = get16(b, c.at + 2);
      out.v4 = get32(b, c.at + 4);
      out.at = c.at;
      return true;
    }
    if (
      s === TOA_V6_LEN &&
      ((k === TCPOPT_TOA && kinds.v6Kind254) || (k === TCPOPT_TOA_ALI_V6 && kinds.v6Kind253))
    ) {
      out.family = 6;
      out.kind = k;
      out.port = get16(b, c.at + 2);
      out.v6.set(b.subarray(c.at + 4, c.at + 20));
      out.at = c.at;
      return true;
    }
  }
  return false;
}
