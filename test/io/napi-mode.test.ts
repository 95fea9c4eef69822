import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NapiModeController } from '../../src/io/napi-mode.js';

const opts = { minPacketsPerSecond: 40_000, maxAverageBytes: 4096, windows: 3 };

test('many small packets switch the thread on, after three windows in a row', () => {
  const c = new NapiModeController(opts);
  // 200 ms windows: 20,000 packets of 100 bytes = 100 kpps.
  assert.equal(c.update(20_000, 2_000_000, 200), false);
  assert.equal(c.update(20_000, 2_000_000, 200), false);
  assert.equal(c.update(20_000, 2_000_000, 200), true);
  assert.equal(c.threaded, true);
  assert.equal(c.update(20_000, 2_000_000, 200), false, 'no change while it stays');
});

test('super-packets or light traffic switch it back off; a single odd window does not', () => {
  const c = new NapiModeController(opts);
  for (let i = 0; i < 3; i++) c.update(20_000, 2_000_000, 200);
  assert.equal(c.threaded, true);
  // Bulk: 8,000 packets averaging 40 KB — the GSO case.
  assert.equal(c.update(8_000, 320_000_000, 200), false);
  assert.equal(
    c.update(20_000, 2_000_000, 200),
    false,
    'back to small packets: the streak restarts',
  );
  assert.equal(c.update(8_000, 320_000_000, 200), false);
  assert.equal(c.update(8_000, 320_000_000, 200), false);
  assert.equal(c.update(8_000, 320_000_000, 200), true);
  assert.equal(c.threaded, false);
  // Light: 1,000 small packets in 200 ms = 5 kpps keeps it off.
  for (let i = 0; i < 5; i++) assert.equal(c.update(1_000, 100_000, 200), false);
  assert.equal(c.threaded, false);
});

test('an empty or zero-length window counts as light traffic', () => {
  const c = new NapiModeController(opts);
  for (let i = 0; i < 3; i++) c.update(20_000, 2_000_000, 200);
  for (let i = 0; i < 2; i++) assert.equal(c.update(0, 0, 0), false);
  assert.equal(c.update(0, 0, 200), true);
  assert.equal(c.threaded, false);
});
