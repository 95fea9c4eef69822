/**
 * The device's kernel counters: read from a fake sysfs tree (every counter,
 * a missing one left out, garbage refused, a device without statistics an
 * error naming the path), and the names checked against the real sysfs of
 * this machine, whose statistics directory is the same for every device.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { DEVICE_STAT_FILES, readDeviceStatistics, SYSFS_NET } from '../../src/io/device-stats.js';

describe('readDeviceStatistics', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'fullnat-sysfs-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const fakeDevice = (name: string, files: Record<string, string>): void => {
    const dir = join(root, name, 'statistics');
    mkdirSync(dir, { recursive: true });
    for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  };

  it('reads every counter, as sysfs writes them (decimal and a newline)', () => {
    const files: Record<string, string> = {};
    DEVICE_STAT_FILES.forEach((f, i) => (files[f] = `${1000 + i}\n`));
    files.tx_dropped = '18446744073709551615\n';
    files.rx_errors = '9\n';
    fakeDevice('fnat9', files);
    const s = readDeviceStatistics('fnat9', root);
    assert.deepEqual(Object.keys(s).sort(), [...DEVICE_STAT_FILES].sort(), 'only the ones asked');
    assert.equal(s.rx_packets, 1000);
    assert.equal(s.rx_frame_errors, 1000 + DEVICE_STAT_FILES.indexOf('rx_frame_errors'));
    assert.equal(s.tx_dropped, 2 ** 64, 'a u64 beyond 2^53 is kept, approximately');
  });

  it('leaves out a counter that is missing or not a number', () => {
    fakeDevice('fnat8', { tx_dropped: '7\n', tx_packets: 'x\n', rx_bytes: '-1\n', rx_packets: '' });
    assert.deepEqual(readDeviceStatistics('fnat8', root), { tx_dropped: 7 });
  });

  it('a device with no readable counter is an error naming the path', () => {
    assert.throws(
      () => readDeviceStatistics('gone0', root),
      (e: Error) =>
        e.message.startsWith(`${join(root, 'gone0', 'statistics')}: no counters readable`),
    );
    fakeDevice('empty0', {});
    assert.throws(() => readDeviceStatistics('empty0', root), /no counters readable/);
  });

  it('refuses a name that is not an interface name (no path tricks)', () => {
    for (const bad of ['', '..', '.', 'a/b', '../etc', 'x'.repeat(16)])
      assert.throws(() => readDeviceStatistics(bad, root), /bad interface name/, bad);
  });

  it('the names exist in the real sysfs (lo)', (t) => {
    if (!existsSync(join(SYSFS_NET, 'lo', 'statistics'))) {
      t.skip(`${SYSFS_NET}/lo/statistics not present (no sysfs here)`);
      return;
    }
    for (const f of DEVICE_STAT_FILES)
      assert.ok(existsSync(join(SYSFS_NET, 'lo', 'statistics', f)), f);
    const s = readDeviceStatistics('lo');
    assert.deepEqual(Object.keys(s).sort(), [...DEVICE_STAT_FILES].sort());
  });
});
