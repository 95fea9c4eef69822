import { test } from 'node:test';
import assert from 'node:assert/strict';
import { swapBytes } from '../../src/wire/swap.js';

test('swapBytes exchanges two ranges and touches nothing else', () => {
  const b = Uint8Array.from({ length: 40 }, (_, i) => i);
  swapBytes(b, 8, 24, 16);
  const want = Uint8Array.from({ length: 40 }, (_, i) =>
    i >= 8 && i < 24 ? i + 16 : i >= 24 && i < 40 ? i - 16 : i,
  );
  assert.deepEqual(b, want);
  swapBytes(b, 8, 24, 16);
  assert.deepEqual(
    b,
    Uint8Array.from({ length: 40 }, (_, i) => i),
    'twice is the identity',
  );
});

test('swapBytes of IPv4 addresses (4 bytes at 12 and 16)', () => {
  const b = new Uint8Array(20);
  b.set([10, 0, 0, 1, 192, 168, 1, 2], 12);
  swapBytes(b, 12, 16, 4);
  assert.deepEqual([...b.subarray(12, 20)], [192, 168, 1, 2, 10, 0, 0, 1]);
});
