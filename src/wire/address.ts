import { ipv4ToString, ipv6ToString, parseIpv4, parseIpv6 } from './bytes.js';

/**
 * An IP address as the control plane and the engine's admin calls hold it:
 * IPv4 stays a host-order number (every IPv4 path keeps working on plain
 * numbers), IPv6 is an `Ipv6Address`. `typeof a === 'number'` tells the
 * family apart; `addressFamily` says it in words.
 */
export type IpAddress = number | Ipv6Address;

export type AddressFamily = 4 | 6;

/** 16 IPv6 address bytes, immutable once made; `text` is the RFC 5952 form. */
export class Ipv6Address {
  readonly bytes: Uint8Array;
  readonly text: string;

  private constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.text = ipv6ToString(bytes);
  }

  /** A copy of b[off..off+16). */
  static fromBytes(b: Uint8Array, off = 0): Ipv6Address {
    if (off < 0 || off + 16 > b.length) throw new RangeError('an IPv6 address needs 16 bytes');
    return new Ipv6Address(b.slice(off, off + 16));
  }

  /** null when text is not an IPv6 address (zone ids are refused: an LB address has none). */
  static parse(text: string): Ipv6Address | null {
    if (text.includes('%')) return null;
    const b = parseIpv6(text);
    return b === null ? null : new Ipv6Address(b);
  }

  equals(o: Ipv6Address): boolean {
    for (let i = 0; i < 16; i++) if (this.bytes[i] !== o.bytes[i]) return false;
    return true;
  }

  /** The IPv4 address of an IPv4-mapped address (::ffff:a.b.c.d), or -1. */
  mappedIpv4(): number {
    const b = this.bytes;
    for (let i = 0; i < 10; i++) if (b[i] !== 0) return -1;
    if (b[10] !== 0xff || b[11] !== 0xff) return -1;
    return ((b[12]! << 24) | (b[13]! << 16) | (b[14]! << 8) | b[15]!) >>> 0;
  }

  toString(): string {
    return this.text;
  }

  /** JSON carries an IPv6 address as its text (the control socket's wire form). */
  toJSON(): string {
    return this.text;
  }
}

export function addressFamily(a: IpAddress): AddressFamily {
  return typeof a === 'number' ? 4 : 6;
}

/** Text of an address: dotted quad or RFC 5952. */
export function addressToString(a: IpAddress): string {
  return typeof a === 'number' ? ipv4ToString(a) : a.text;
}

/** addr:port as ipvsadm prints it: `10.0.0.1:80`, `[2001:db8::1]:80`. */
export function endpointToString(a: IpAddress, port: number): string {
  return typeof a === 'number' ? `${ipv4ToString(a)}:${port}` : `[${a.text}]:${port}`;
}

/** A dotted quad or IPv6 text (brackets allowed around IPv6); null when neither. */
export function parseAddress(text: string): IpAddress | null {
  const v4 = parseIpv4(text);
  if (v4 >= 0) return v4;
  const inner = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (!inner.includes(':')) return null;
  return Ipv6Address.parse(inner);
}

export function addressEquals(a: IpAddress, b: IpAddress): boolean {
  if (typeof a === 'number' || typeof b === 'number') return a === b;
  return a.equals(b);
}

/** A string key that tells any two addresses apart (for Maps and Sets). */
export function addressKey(a: IpAddress): string {
  return typeof a === 'number' ? ipv4ToString(a) : `[${a.text}]`;
}
