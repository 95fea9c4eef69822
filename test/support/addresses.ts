/** Addresses from their text for control tests, failing the test on a typo instead of passing on a -1 or null. */
import assert from 'node:assert/strict';
import { Ipv6Address } from '../../src/wire/address.js';
import { parseIpv4 } from '../../src/wire/bytes.js';

export function ipv4(text: string): number {
  const a = parseIpv4(text);
  assert.ok(a >= 0, text);
  return a;
}

export function ipv6(text: string): Ipv6Address {
  const a = Ipv6Address.parse(text);
  assert.ok(a, text);
  return a;
}
