/**
 * The mixed engine benchmark measures what it says: each kind of connection
 * takes the path it is there for (checked on the engine's own counters), the
 * connections are open at once, timers fire inside the loop, and a replay takes
 * the same decisions as the recording.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runMixedEngineBench } from '../../bench/engine-mixed.js';

test('mixed workload: prune, split, SYNPROXY, expiry and closes happen as the mix says', () => {
  const conns = 4000;
  const r = runMixedEngineBench(conns, 1);
  const k = r.kinds;
  const c = r.counters;
  assert.equal(k.plain + k.prune + k.split + k.silent + k.synproxy, conns);
  for (const [kind, n] of Object.entries(k)) assert.ok(n > 0, `${kind} connections in the mix`);
  assert.equal(c.conns_created, conns, 'every connection opened');
  assert.equal(c.no_conn_dropped, 0, 'no packet outlived its connection');
  assert.equal(c.toa_pruned, k.prune, 'each prune connection pruned once');
  assert.equal(c.toa_split, k.split, 'each split connection split once');
  assert.equal(c.synproxy_cookie_valid, k.synproxy);
  assert.equal(c.synproxy_rs_synack, k.synproxy);
  // A silent client's entry lives 90 s past its last packet: most, not all, end before the timeline does.
  assert.ok(
    c.conns_expired_established_rst! <= k.silent &&
      c.conns_expired_established_rst! >= k.silent * 0.8,
    `silent clients expired with RSTs inside the loop: ${c.conns_expired_established_rst} of ${k.silent}`,
  );
  assert.ok(c.conns_expired! >= conns * 0.9, `entries expired in the loop: ${c.conns_expired}`);
  assert.ok(r.peakConnections >= conns * 0.8, `open at once: ${r.peakConnections}`);
  assert.equal(r.nsPerPacket.length, 1);
});
