import { test } from 'node:test';
import assert from 'node:assert/strict';
import { finishIpv6Header, Ipv6View } from '../../src/wire/ipv6.js';

test('finishIpv6Header writes version 6, traffic class, flow label 0, length, next header, hop limit', () => {
  const b = new Uint8Array(44).fill(0xaa);
  finishIpv6Header(b, 2, 0x1234, 6, 64, 0xb8);
  assert.deepEqual([...b.subarray(2, 10)], [0x6b, 0x80, 0, 0, 0x12, 0x34, 6, 64]);
  assert.equal(b[1], 0xaa, 'nothing before the header');
  assert.equal(b[10], 0xaa, 'the addresses are left alone');
});

test('finishIpv6Header without a traffic class writes 0x60 0 0 0, as Ipv6View reads it', () => {
  const b = new Uint8Array(40).fill(0xff);
  finishIpv6Header(b, 0, 20, 58, 255);
  assert.deepEqual([...b.subarray(0, 8)], [0x60, 0, 0, 0, 0, 20, 58, 255]);
  const v = new Ipv6View().wrap(b, 0);
  assert.equal(v.payloadLength, 20);
});
