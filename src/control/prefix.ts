/**
 * Address prefixes (`10.79.9.0/28`, `2001:db8:9::/64`): what a fleet node
 * announces besides its VIPs. Containment and overlap decide whether two
 * nodes would attract each other's replies.
 */
import { addressFamily, addressToString, Ipv6Address, type IpAddress } from '../wire/address.js';
import type { AnnouncedPrefix } from './model.js';

/** The address's bits, most significant first: 4 bytes for IPv4, 16 for IPv6. */
function addressBytes(a: IpAddress): Uint8Array {
  if (typeof a !== 'number') return a.bytes;
  return Uint8Array.of(a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff);
}

/** True when the first `bits` bits of a and b are equal (same family assumed). */
function samePrefix(a: IpAddress, b: IpAddress, bits: number): boolean {
  const x = addressBytes(a);
  const y = addressBytes(b);
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((x[i]! & mask) !== (y[i]! & mask)) return false;
  }
  return true;
}

/** The longest prefix length of the address's family: 32 or 128. */
export const maxPrefixLength = (a: IpAddress): number => (addressFamily(a) === 4 ? 32 : 128);

/** The prefix with every bit beyond its length cleared (`10.79.9.3/28` → `10.79.9.0/28`). */
export function networkOf(p: AnnouncedPrefix): AnnouncedPrefix {
  const b = addressBytes(p.addr).slice();
  for (let bit = p.length; bit < b.length * 8; bit++) b[bit >> 3]! &= ~(0x80 >> (bit & 7));
  const addr: IpAddress =
    typeof p.addr === 'number'
      ? ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0
      : Ipv6Address.fromBytes(b);
  return { addr, length: p.length };
}

export function prefixContains(p: AnnouncedPrefix, a: IpAddress): boolean {
  return addressFamily(p.addr) === addressFamily(a) && samePrefix(p.addr, a, p.length);
}

/** Two prefixes overlap when the shorter one contains the longer one's network. */
export function prefixesOverlap(p: AnnouncedPrefix, q: AnnouncedPrefix): boolean {
  if (addressFamily(p.addr) !== addressFamily(q.addr)) return false;
  return samePrefix(p.addr, q.addr, Math.min(p.length, q.length));
}

export const prefixToString = (p: AnnouncedPrefix): string =>
  `${addressToString(p.addr)}/${p.length}`;

/** The host route of one address: /32 or /128. */
export const hostPrefix = (a: IpAddress): AnnouncedPrefix => ({
  addr: a,
  length: maxPrefixLength(a),
});
