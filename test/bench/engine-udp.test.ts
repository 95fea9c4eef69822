/**
 * The engine bench's UDP workload is what it says: every datagram of every
 * flow forwarded (the first three up with the opp UOA, as the defaults
 * have it), and the comparison with IPv4 TCP gives one figure per round.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareUdp, newUdpEngine, recordUdp, UDP_EXCHANGES } from '../../bench/engine-udp.js';
import { replay } from '../../bench/engine.js';

test('the UDP workload: every datagram forwarded, one flow per client, the UOA on the first three up', () => {
  const flows = 300;
  const w = recordUdp(flows);
  assert.equal(w.packets.length, flows * 2 * UDP_EXCHANGES);
  for (const b of w.packets) assert.equal(b[9], 17, 'UDP datagrams only');
  const e = newUdpEngine(flows);
  replay(w, e);
  assert.equal(e.counter('rx_packets'), w.packets.length);
  assert.equal(e.counter('forwarded_packets'), w.packets.length, 'every datagram forwarded');
  assert.equal(e.counter('udp_flows_created'), flows);
  assert.equal(e.counter('uoa_sent_opp'), 3 * flows);
  assert.equal(e.counter('uoa_empty_sent'), 0);
});

test('compareUdp: a figure per round for each protocol and the ratio of the same round', () => {
  const cmp = compareUdp(300, 3);
  assert.equal(cmp.packets, 300 * 2 * UDP_EXCHANGES);
  for (const s of [cmp.ns.tcp, cmp.ns.udp, cmp.rateVsTcp]) {
    assert.equal(s.n, 3);
    assert.ok(s.min > 0 && Number.isFinite(s.max) && s.max >= s.median);
  }
});
