/**
 * SYNPROXY acceptance in the simulator: every scenario, Linux-faithful
 * clients and real servers, the service behind SYNPROXY, policy fullnat —
 * every connection must establish, carry its request and response intact,
 * and show the RS the client's real address — in every address family (4,
 * 6, and 64: FNAT64).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulate } from '../../src/cli/simulate.js';
import { engineMiddlebox, type EngineMiddlebox } from '../../src/lab/engine-middlebox.js';
import { LAB_FAMILIES } from '../../src/lab/family.js';
import { runScenario } from '../../src/lab/sim/run.js';
import { SCENARIO_NAMES } from '../../src/lab/sim/scenarios.js';

const CONNECTIONS = 100;

test('simulate --syn-proxy --family all, policy fullnat: the real client IP on every connection of every scenario', () => {
  const report = simulate(
    {
      families: [...LAB_FAMILIES],
      json: true,
      policies: ['fullnat'],
      scenarios: [...SCENARIO_NAMES],
      connections: CONNECTIONS,
      seed: 1,
      mssAdjust: true,
      timestampRemove: true,
      trace: false,
      synProxy: true,
    },
    () => undefined,
  );
  assert.equal(report.skipped, undefined, 'no family skipped');
  const rows = report.results;
  assert.equal(rows.length, SCENARIO_NAMES.length * LAB_FAMILIES.length);
  for (const r of rows) {
    assert.deepEqual(
      { realIp: r.realIp, wrongIp: r.wrongIp, failed: r.failed },
      { realIp: CONNECTIONS, wrongIp: 0, failed: 0 },
      `${r.scenario} family ${r.family}`,
    );
  }
});

for (const family of LAB_FAMILIES) {
  for (const defer of [false, true]) {
    test(`family ${family}: every scenario really goes through SYNPROXY${defer ? ' (defer)' : ''}: cookies, held packets replayed, nothing lost`, () => {
      for (const scenario of SCENARIO_NAMES) {
        const run = runScenario({
          scenario,
          family,
          middleboxFactory: engineMiddlebox({
            toaPolicy: 'fullnat',
            synProxy: true,
            synproxyDefer: defer,
          }),
          connections: CONNECTIONS,
          seed: 3,
        });
        const what = `${scenario} family ${family}${defer ? ' (defer)' : ''}`;
        assert.equal(
          run.realIp,
          CONNECTIONS,
          `${what}: ${JSON.stringify(run.details.find((d) => d.outcome !== 'realIp')?.reason)}`,
        );
        assert.equal(run.failed, 0, what);
        const e = (run.middlebox as EngineMiddlebox).engine;
        assert.ok(e.counter('synproxy_syn_answered') >= CONNECTIONS, what);
        assert.equal(e.counter('synproxy_cookie_valid'), CONNECTIONS, what);
        assert.equal(e.counter('synproxy_cookie_invalid'), 0, what);
        assert.equal(e.counter('synproxy_rs_synack'), CONNECTIONS, what);
        assert.ok(e.counter('synproxy_ack_replayed') >= CONNECTIONS, what);
        assert.equal(e.counter('synproxy_rs_timeout'), 0, what);
        assert.equal(e.counter('synproxy_rs_refused'), 0, what);
        if (defer) assert.equal(e.counter('synproxy_ack_discarded'), 0, what);
        // The RSs never saw a SYN+ACK go unanswered nor a connection half-open.
        for (const r of run.rs) {
          assert.equal(r.counters.badAckRst, 0, `${what} ${r.rs}`);
          assert.equal(r.counters.requestsDropped, 0, `${what} ${r.rs}`);
          assert.equal(r.counters.synAckRetransmits, 0, `${what} ${r.rs}`);
        }
      }
    });
  }
}
