import { get16, set16, set32 } from './bytes.js';

export const TCPOPT_EOL = 0;
export const TCPOPT_NOP = 1;
export const TCPOPT_MSS = 2;
export const TCPOPT_WINDOW = 3;
export const TCPOPT_SACK_PERM = 4;
export const TCPOPT_SACK = 5;
export const TCPOPT_TIMESTAMP = 8;
/** Alibaba LVS IPv6 TOA kind. */
export const TCPOPT_TOA_ALI_V6 = 253;
/** TOA kind used by LVS (IPv4) and by DPVS/Huawei (both families). */
export const TCPOPT_TOA = 254;

export const TCPOLEN_MSS = 4;
export const TCPOLEN_WINDOW = 3;
export const TCPOLEN_SACK_PERM = 2;
export const TCPOLEN_TIMESTAMP = 10;

/**
 * Walks TCP options with the Linux `tcp_parse_options` rules: EOL stops, NOP
 * advances one byte, a length below 2 or running past the end stops. One
 * cursor is reused; `next()` moves to the next option and fills kind/at/size.
 */
export class TcpOptionCursor {
  buf: Uint8Array = new Uint8Array(0);
  pos = 0;
  end = 0;
  /** Option kind of the current option. */
  kind = 0;
  /** Offset of the kind byte of the current option. */
  at = 0;
  /** Total option length (1 for NOP). */
  size = 0;
  /** Set when parsing stopped on a malformed option rather than at the end or EOL. */
  malformed = false;

  reset(buf: Uint8Array, start: number, end: number): this {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.malformed = false;
    return this;
  }

  next(): boolean {
    const b = this.buf;
    if (this.pos >= this.end) return false;
    const kind = b[this.pos]!;
    if (kind === TCPOPT_EOL) {
      this.pos = this.end;
      return false;
    }
    this.kind = kind;
    this.at = this.pos;
    if (kind === TCPOPT_NOP) {
      this.size = 1;
      this.pos++;
      return true;
    }
    const remaining = this.end - this.pos;
    if (remaining < 2) {
      this.malformed = true;
      this.pos = this.end;
      return false;
    }
    const size = b[this.pos + 1]!;
    if (size < 2 || size > remaining) {
      this.malformed = true;
      this.pos = this.end;
      return false;
    }
    this.size = size;
    this.pos += size;
    return true;
  }
}

export function isToaOption(kind: number, size: number): boolean {
  return (
    (kind === TCPOPT_TOA && (size === 8 || size === 20)) ||
    (kind === TCPOPT_TOA_ALI_V6 && size === 20)
  );
}

/** What the data path needs from a segment's options, filled without allocating. */
export class TcpOptionSummary {
  mss = -1;
  mssAt = -1;
  wscale = -1;
  sackPermitted = false;
  hasTimestamp = false;
  /** Offset of the timestamp option; values are read from there when needed. */
  timestampAt = -1;
  sackAt = -1;
  sackBlocks = 0;
  /** Offset of the first TOA-shaped option, as the RS module would find it. */
  toaAt = -1;
  toaCount = 0;
  nopCount = 0;
  unknownCount = 0;
  malformed = false;
  /** Offset where option parsing stopped (EOL or end). */
  parsedEnd = 0;

  private readonly cursor = new TcpOptionCursor();

  parse(buf: Uint8Array, start: number, end: number): this {
    this.mss = -1;
    this.mssAt = -1;
    this.wscale = -1;
    this.sackPermitted = false;
    this.hasTimestamp = false;
    this.timestampAt = -1;
    this.sackAt = -1;
    this.sackBlocks = 0;
    this.toaAt = -1;
    this.toaCount = 0;
    this.nopCount = 0;
    this.unknownCount = 0;
    const c = this.cursor.reset(buf, start, end);
    while (c.next()) {
      switch (c.kind) {
        case TCPOPT_NOP:
          this.nopCount++;
          break;
        case TCPOPT_MSS:
          if (c.size === TCPOLEN_MSS) {
            this.mss = get16(buf, c.at + 2);
            this.mssAt = c.at;
          }
          break;
        case TCPOPT_WINDOW:
          if (c.size === TCPOLEN_WINDOW) this.wscale = buf[c.at + 2]!;
          break;
        case TCPOPT_SACK_PERM:
          if (c.size === TCPOLEN_SACK_PERM) this.sackPermitted = true;
          break;
        case TCPOPT_TIMESTAMP:
          if (c.size === TCPOLEN_TIMESTAMP) {
            this.hasTimestamp = true;
            this.timestampAt = c.at;
          }
          break;
        case TCPOPT_SACK:
          if (c.size >= 10 && (c.size - 2) % 8 === 0) {
            this.sackAt = c.at;
            this.sackBlocks = (c.size - 2) / 8;
          }
          break;
        default:
          if (isToaOption(c.kind, c.size)) {
            if (this.toaAt < 0) this.toaAt = c.at;
            this.toaCount++;
          } else {
            this.unknownCount++;
          }
      }
    }
    this.malformed = c.malformed;
    this.parsedEnd = c.pos;
    return this;
  }
}

/**
 * Writes the options of a SYN the LB sends itself: MSS, then [NOP NOP
 * SACK-permitted] when `sack`, then [NOP window scale] when `wscale` >= 0.
 * Returns their length (a multiple of 4).
 */
export function writeSynOptions(
  b: Uint8Array,
  o: number,
  mss: number,
  wscale: number,
  sack: boolean,
): number {
  let p = o;
  b[p] = TCPOPT_MSS;
  b[p + 1] = TCPOLEN_MSS;
  set16(b, p + 2, mss);
  p += 4;
  if (sack) {
    b[p] = TCPOPT_NOP;
    b[p + 1] = TCPOPT_NOP;
    b[p + 2] = TCPOPT_SACK_PERM;
    b[p + 3] = TCPOLEN_SACK_PERM;
    p += 4;
  }
  if (wscale >= 0) {
    b[p] = TCPOPT_NOP;
    b[p + 1] = TCPOPT_WINDOW;
    b[p + 2] = TCPOLEN_WINDOW;
    b[p + 3] = wscale;
    p += 4;
  }
  return p - o;
}

/** One option as a value, for tools and tests (not the data path). */
export interface TcpOption {
  kind: number;
  /** Bytes after kind and length; empty for NOP/EOL. */
  data: Uint8Array;
}

/** Decodes options into values; unknown kinds are kept verbatim. Stops like the kernel. */
export function decodeOptions(buf: Uint8Array, start = 0, end = buf.length): TcpOption[] {
  const out: TcpOption[] = [];
  const c = new TcpOptionCursor().reset(buf, start, end);
  while (c.next()) {
    out.push({
      kind: c.kind,
      data: c.size === 1 ? new Uint8Array(0) : buf.slice(c.at + 2, c.at + c.size),
    });
  }
  return out;
}

/** Encodes options, padding with EOL to a multiple of 4; throws past 40 bytes. */
export function encodeOptions(options: readonly TcpOption[]): Uint8Array {
  let len = 0;
  for (const o of options)
    len += o.kind === TCPOPT_NOP || o.kind === TCPOPT_EOL ? 1 : 2 + o.data.length;
  const padded = (len + 3) & ~3;
  if (padded > 40) throw new RangeError(`TCP options take ${padded} bytes, more than 40`);
  const out = new Uint8Array(padded);
  let p = 0;
  for (const o of options) {
    if (o.kind === TCPOPT_NOP || o.kind === TCPOPT_EOL) {
      out[p++] = o.kind;
      continue;
    }
    if (o.data.length > 253) throw new RangeError(`option ${o.kind} too long`);
    out[p] = o.kind;
    out[p + 1] = 2 + o.data.length;
    out.set(o.data, p + 2);
    p += 2 + o.data.length;
  }
  return out;
}

export const opt = {
  nop: (): TcpOption => ({ kind: TCPOPT_NOP, data: new Uint8Array(0) }),
  eol: (): TcpOption => ({ kind: TCPOPT_EOL, data: new Uint8Array(0) }),
  mss: (mss: number): TcpOption => {
    const d = new Uint8Array(2);
    set16(d, 0, mss);
    return { kind: TCPOPT_MSS, data: d };
  },
  wscale: (shift: number): TcpOption => ({ kind: TCPOPT_WINDOW, data: Uint8Array.of(shift) }),
  sackPermitted: (): TcpOption => ({ kind: TCPOPT_SACK_PERM, data: new Uint8Array(0) }),
  timestamp: (val: number, ecr: number): TcpOption => {
    const d = new Uint8Array(8);
    set32(d, 0, val >>> 0);
    set32(d, 4, ecr >>> 0);
    return { kind: TCPOPT_TIMESTAMP, data: d };
  },
  sack: (blocks: ReadonlyArray<readonly [number, number]>): TcpOption => {
    const d = new Uint8Array(blocks.length * 8);
    blocks.forEach(([l, r], i) => {
      set32(d, i * 8, l >>> 0);
      set32(d, i * 8 + 4, r >>> 0);
    });
    return { kind: TCPOPT_SACK, data: d };
  },
};
