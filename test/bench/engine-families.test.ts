/**
 * The family comparison times what it names: each family's workload goes
 * through its own path (IPv6 packets to the IPv6 path, FNAT64's RS leg in
 * IPv4), every round times all three, and each ratio is that round's own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareFamilies, newEngine, record } from '../../bench/engine.js';

test('compareFamilies: three families per round, ratios per round, figures positive', () => {
  const cmp = compareFamilies(300, 3);
  for (const f of [4, 6, 64] as const) {
    assert.equal(cmp.ns[f].n, 3, `family ${f}: one figure per round`);
    assert.ok(cmp.ns[f].min > 0 && cmp.ns[f].max >= cmp.ns[f].median);
  }
  for (const f of [6, 64] as const) {
    assert.equal(cmp.rateVsIpv4[f].n, 3);
    assert.ok(cmp.rateVsIpv4[f].median > 0 && Number.isFinite(cmp.rateVsIpv4[f].median));
  }
});

test('the workloads are the families they say: IPv4, IPv6 on both legs, FNAT64 (IPv6 to the client, IPv4 to the RS)', () => {
  for (const [family, clientVersion, sent] of [
    [4, 4, [4]],
    [6, 6, [6]],
    [64, 6, [4, 6]],
  ] as const) {
    const w = record(50, family);
    assert.equal(
      w.packets[0]![0]! >>> 4,
      clientVersion,
      `family ${family}: the first packet is the client's`,
    );
    const e = newEngine(50, family);
    const versions = new Set<number>();
    const pool = e.pool;
    for (const bytes of w.packets) {
      const p = pool.take();
      p.load(bytes);
      e.process(p);
      for (let k = 0; k < e.outCount; k++) {
        const o = e.out[k]!;
        versions.add(o.buf[o.start]! >>> 4);
        pool.give(o);
      }
      e.clearOutput();
    }
    assert.deepEqual([...versions].sort(), [...sent], `family ${family}: IP versions the LB sent`);
    assert.ok(e.counter('toa_inserted') > 0, `family ${family}: TOAs went in`);
    assert.equal(
      e.counter('forwarded_packets'),
      w.packets.length,
      `family ${family}: every packet forwarded`,
    );
  }
});
