/**
 * Addresses in the socket's JSON lines: an IPv4 address travels as the
 * host-order number it has always been, an IPv6 address as its RFC 5952
 * text ("2001:db8::1"), in every field that holds one (`vip`, `addr`,
 * `laddr`, `laddrs`). Both sides of the socket go through here.
 */
import { Ipv6Address } from '../../wire/address.js';

/**
 * One JSON line's text, an Ipv6Address anywhere in `v` written as its text
 * (its toJSON). No replacer: a listing of a million IPv4 connections costs
 * what plain JSON.stringify costs, on the thread that forwards packets.
 */
export function toWireJson(v: unknown): string {
  return JSON.stringify(v);
}

const ADDRESS_FIELDS = new Set(['vip', 'addr', 'laddr']);

/** IPv6 text back to an Ipv6Address; anything else is left for the reader to judge. */
function revive(x: unknown): unknown {
  if (typeof x !== 'string') return x;
  return Ipv6Address.parse(x) ?? x;
}

/**
 * Parses a response line from the LB, the IPv6 addresses of its address
 * fields made Ipv6Address again. (Requests are parsed plainly: the
 * server's validation checks each address field itself.)
 */
export function fromWireJson(text: string): unknown {
  return JSON.parse(text, (key, x: unknown) => {
    if (ADDRESS_FIELDS.has(key)) return revive(x);
    if (key === 'laddrs' && Array.isArray(x)) return x.map(revive);
    return x;
  });
}
