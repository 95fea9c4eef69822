import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Ipv6Address,
  addressEquals,
  addressFamily,
  addressKey,
  addressToString,
  endpointToString,
  parseAddress,
} from '../../src/wire/address.js';

test('parseAddress: dotted quads stay numbers, IPv6 (bare or bracketed) becomes Ipv6Address', () => {
  assert.equal(parseAddress('10.0.0.1'), 0x0a000001);
  const a = parseAddress('2001:DB8:0:0::100');
  assert.ok(a instanceof Ipv6Address);
  assert.equal(addressToString(a), '2001:db8::100');
  assert.ok(addressEquals(a, parseAddress('[2001:db8::100]')!));
  assert.equal(addressFamily(a), 6);
  assert.equal(addressFamily(0x0a000001), 4);
});

test('parseAddress refuses what is neither family', () => {
  for (const bad of [
    '',
    '10.0.0',
    '10.0.0.256',
    'host',
    '1::2::3',
    'fe80::1%eth0',
    '[10.0.0.1]',
    'g::1',
  ])
    assert.equal(parseAddress(bad), null, bad);
});

test('endpoints print as ipvsadm prints them; keys tell families apart', () => {
  assert.equal(endpointToString(0x0a000001, 80), '10.0.0.1:80');
  assert.equal(endpointToString(Ipv6Address.parse('2001:db8::1')!, 80), '[2001:db8::1]:80');
  assert.notEqual(addressKey(Ipv6Address.parse('::ffff:10.0.0.1')!), addressKey(0x0a000001));
});

test('mappedIpv4 finds the IPv4 inside ::ffff:a.b.c.d and only there', () => {
  assert.equal(Ipv6Address.parse('::ffff:10.0.0.1')!.mappedIpv4(), 0x0a000001);
  assert.equal(Ipv6Address.parse('::10.0.0.1')!.mappedIpv4(), -1);
  assert.equal(Ipv6Address.parse('2001:db8::1')!.mappedIpv4(), -1);
});

test('fromBytes copies, so the address does not change with the buffer', () => {
  const b = Ipv6Address.parse('2001:db8::7')!.bytes.slice();
  const a = Ipv6Address.fromBytes(b);
  b[15] = 9;
  assert.equal(a.text, '2001:db8::7');
  assert.throws(() => Ipv6Address.fromBytes(b, 1), RangeError);
});
