/**
 * The foundation's acceptance, as a test: every scenario × policy through the
 * real engine and the Linux-faithful endpoints, at least 100 connections each.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TOA_POLICIES } from '../../src/engine/options.js';
import { simulate, type ResultRow } from '../../src/cli/simulate.js';
import { SCENARIO_NAMES } from '../../src/lab/sim/scenarios.js';
import { expectedCell } from '../support/toa-table.js';

const CONNECTIONS = 100;

function run(mssAdjust: boolean): ResultRow[] {
  return simulate(
    {
      json: true,
      policies: [...TOA_POLICIES],
      scenarios: [...SCENARIO_NAMES],
      connections: CONNECTIONS,
      seed: 1,
      mssAdjust,
      timestampRemove: true,
      trace: false,
    },
    () => undefined,
  ).results;
}

const rows = run(true);
const row = (scenario: string, policy: string, list = rows): ResultRow => {
  const r = list.find((x) => x.scenario === scenario && x.policy === policy);
  assert.ok(r, `${scenario}/${policy} missing`);
  return r;
};

test('every scenario and policy ran with the requested connections, outcomes adding up', () => {
  assert.equal(rows.length, SCENARIO_NAMES.length * TOA_POLICIES.length);
  for (const r of rows) {
    assert.equal(r.connections, CONNECTIONS);
    assert.equal(r.realIp + r.wrongIp + r.failed, r.connections, `${r.scenario}/${r.policy}`);
  }
});

test('every cell exactly as the table says: fullnat keeps every address, lvs and dpvs lose theirs whole', () => {
  for (const policy of ['lvs', 'dpvs', 'fullnat'] as const) {
    for (const s of SCENARIO_NAMES) {
      const r = row(s, policy);
      assert.deepEqual(
        { realIp: r.realIp, wrongIp: r.wrongIp, failed: r.failed },
        expectedCell(s, policy, CONNECTIONS),
        `${s}/${policy}`,
      );
    }
  }
});

test('with mss_adjust off, lvs also loses full-mss; fullnat still does not', () => {
  const off = simulate(
    {
      json: true,
      policies: ['lvs', 'fullnat'],
      scenarios: ['full-mss'],
      connections: CONNECTIONS,
      seed: 2,
      mssAdjust: false,
      timestampRemove: true,
      trace: false,
    },
    () => undefined,
  ).results;
  assert.ok(row('full-mss', 'lvs', off).wrongIp > 0);
  assert.equal(row('full-mss', 'fullnat', off).realIp, CONNECTIONS);
});
