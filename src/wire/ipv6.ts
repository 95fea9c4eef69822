import { get16, get32, set16 } from './bytes.js';

export const IPV6_HEADER = 40;

export const IPV6_NEXT_HOPOPTS = 0;
export const IPV6_NEXT_ROUTING = 43;
export const IPV6_NEXT_FRAGMENT = 44;
export const IPV6_NEXT_ESP = 50;
export const IPV6_NEXT_AUTH = 51;
export const IPV6_NEXT_NONE = 59;
export const IPV6_NEXT_DSTOPTS = 60;

/** Most extension headers a packet may carry before we refuse to walk further. */
export const IPV6_MAX_EXT_HEADERS = 8;

export const enum Ipv6Error {
  None = 0,
  Truncated = 1,
  BadVersion = 2,
  BadPayloadLength = 3,
  ExtTruncated = 4,
  TooManyExtHeaders = 5,
  /** ESP or No Next Header: no transport header to reach. Any other unknown value is taken as the transport protocol. */
  NoTransport = 6,
}

/**
 * A view over an IPv6 header. `walk` follows the extension chain and leaves
 * the transport protocol and offset in `upperProtocol`/`upperOffset`.
 */
export class Ipv6View {
  buf: Uint8Array = new Uint8Array(0);
  off = 0;
  upperProtocol = -1;
  upperOffset = -1;
  /**
   * Set by `walk` when a Fragment header was seen. For a non-first fragment
   * `upperOffset` points at fragment data, not a transport header: callers check `fragmentOffset`.
   */
  fragmented = false;
  fragmentOffset = 0;
  moreFragments = false;
  /**
   * Set by `walk` from the first Fragment header (-1 and 0 when none): where
   * it starts, where the byte naming it sits (the fixed header's Next Header
   * or the previous extension header's first byte) and its Identification.
   * Reassembly removes that header and mends the byte that named it.
   */
  fragmentHeaderOffset = -1;
  fragmentNextHeaderAt = -1;
  fragmentId = 0;
  /**
   * Set by `walk`: the Segments Left of the last Routing header seen (0 when
   * none). Above 0 the destination address is not the packet's final one.
   */
  routingSegmentsLeft = 0;

  wrap(buf: Uint8Array, off: number): this {
    this.buf = buf;
    this.off = off;
    return this;
  }

  get version(): number {
    return this.buf[this.off]! >>> 4;
  }
  get trafficClass(): number {
    return ((this.buf[this.off]! & 0x0f) << 4) | (this.buf[this.off + 1]! >>> 4);
  }
  get flowLabel(): number {
    return ((this.buf[this.off + 1]! & 0x0f) << 16) | get16(this.buf, this.off + 2);
  }
  get payloadLength(): number {
    return get16(this.buf, this.off + 4);
  }
  set payloadLength(v: number) {
    set16(this.buf, this.off + 4, v);
  }
  get nextHeader(): number {
    return this.buf[this.off + 6]!;
  }
  get hopLimit(): number {
    return this.buf[this.off + 7]!;
  }
  set hopLimit(v: number) {
    this.buf[this.off + 7] = v;
  }
  get srcOffset(): number {
    return this.off + 8;
  }
  get dstOffset(): number {
    return this.off + 24;
  }
  get totalLength(): number {
    return IPV6_HEADER + this.payloadLength;
  }

  /** Validates the fixed header against `avail` bytes and walks the extension headers. */
  walk(avail: number): Ipv6Error {
    this.upperProtocol = -1;
    this.upperOffset = -1;
    this.fragmented = false;
    this.fragmentOffset = 0;
    this.moreFragments = false;
    this.fragmentHeaderOffset = -1;
    this.fragmentNextHeaderAt = -1;
    this.fragmentId = 0;
    this.routingSegmentsLeft = 0;
    if (avail < IPV6_HEADER) return Ipv6Error.Truncated;
    if (this.version !== 6) return Ipv6Error.BadVersion;
    const end = this.off + IPV6_HEADER + this.payloadLength;
    if (end > this.off + avail) return Ipv6Error.BadPayloadLength;
    const b = this.buf;
    let next = this.nextHeader;
    let p = this.off + IPV6_HEADER;
    let nextAt = this.off + 6;
    for (let n = 0; ; n++) {
      switch (next) {
        case IPV6_NEXT_HOPOPTS:
        case IPV6_NEXT_ROUTING:
        case IPV6_NEXT_DSTOPTS: {
          if (n >= IPV6_MAX_EXT_HEADERS) return Ipv6Error.TooManyExtHeaders;
          if (p + 8 > end) return Ipv6Error.ExtTruncated;
          const len = (b[p + 1]! + 1) * 8;
          if (p + len > end) return Ipv6Error.ExtTruncated;
          if (next === IPV6_NEXT_ROUTING) this.routingSegmentsLeft = b[p + 3]!;
          next = b[p]!;
          nextAt = p;
          p += len;
          break;
        }
        case IPV6_NEXT_FRAGMENT: {
          if (n >= IPV6_MAX_EXT_HEADERS) return Ipv6Error.TooManyExtHeaders;
          if (p + 8 > end) return Ipv6Error.ExtTruncated;
          const fo = get16(b, p + 2);
          if (!this.fragmented) {
            this.fragmentHeaderOffset = p;
            this.fragmentNextHeaderAt = nextAt;
            this.fragmentId = get32(b, p + 4);
          }
          this.fragmented = true;
          this.fragmentOffset = fo & 0xfff8;
          this.moreFragments = (fo & 1) !== 0;
          next = b[p]!;
          nextAt = p;
          p += 8;
          break;
        }
        case IPV6_NEXT_AUTH: {
          if (n >= IPV6_MAX_EXT_HEADERS) return Ipv6Error.TooManyExtHeaders;
          if (p + 8 > end) return Ipv6Error.ExtTruncated;
          const len = (b[p + 1]! + 2) * 4;
          if (p + len > end) return Ipv6Error.ExtTruncated;
          next = b[p]!;
          nextAt = p;
          p += len;
          break;
        }
        case IPV6_NEXT_ESP:
        case IPV6_NEXT_NONE:
          return Ipv6Error.NoTransport;
        default:
          this.upperProtocol = next;
          this.upperOffset = p;
          return Ipv6Error.None;
      }
    }
  }
}

export interface Ipv6HeaderFields {
  src: Uint8Array;
  dst: Uint8Array;
  nextHeader: number;
  hopLimit?: number;
  payloadLength: number;
}

export function writeIpv6Header(b: Uint8Array, o: number, f: Ipv6HeaderFields): number {
  b[o] = 0x60;
  b[o + 1] = 0;
  b[o + 2] = 0;
  b[o + 3] = 0;
  set16(b, o + 4, f.payloadLength);
  b[o + 6] = f.nextHeader;
  b[o + 7] = f.hopLimit ?? 64;
  b.set(f.src.subarray(0, 16), o + 8);
  b.set(f.dst.subarray(0, 16), o + 24);
  return IPV6_HEADER;
}

/**
 * Writes the first 8 bytes of a fixed IPv6 header at b[o], flow label 0;
 * the addresses after them are the caller's. IPv6's `finishIpv4Header`:
 * positional, so a packet the engine writes itself costs no object.
 */
export function finishIpv6Header(
  b: Uint8Array,
  o: number,
  payloadLength: number,
  nextHeader: number,
  hopLimit: number,
  trafficClass = 0,
): void {
  b[o] = 0x60 | (trafficClass >>> 4);
  b[o + 1] = (trafficClass & 0x0f) << 4;
  b[o + 2] = 0;
  b[o + 3] = 0;
  set16(b, o + 4, payloadLength);
  b[o + 6] = nextHeader;
  b[o + 7] = hopLimit;
}
