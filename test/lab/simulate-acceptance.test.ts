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

// The address-family dimension: IPv6 services (6) and FNAT64 (64), every scenario × policy.
const familyRows = simulate(
  {
    json: true,
    policies: [...TOA_POLICIES],
    scenarios: [...SCENARIO_NAMES],
    families: [6, 64],
    connections: CONNECTIONS,
    seed: 1,
    mssAdjust: true,
    timestampRemove: true,
    trace: false,
  },
  () => undefined,
).results;

test('families 6 and 64: every scenario and policy ran, family-major, outcomes adding up', () => {
  assert.equal(familyRows.length, 2 * SCENARIO_NAMES.length * TOA_POLICIES.length);
  assert.deepEqual(
    familyRows.map((r) => r.family),
    [6, 64].flatMap((f) => Array<number>(SCENARIO_NAMES.length * TOA_POLICIES.length).fill(f)),
  );
  for (const r of familyRows) {
    assert.equal(r.connections, CONNECTIONS);
    assert.equal(r.realIp + r.wrongIp + r.failed, r.connections, `${r.family} ${r.scenario}`);
  }
  assert.ok(
    rows.every((r) => r.family === 4),
    'the default is family 4',
  );
});

test('families 6 and 64: fullnat keeps the real client address on every connection', () => {
  for (const r of familyRows.filter((x) => x.policy === 'fullnat'))
    assert.equal(r.realIp, CONNECTIONS, `family ${r.family} ${r.scenario}`);
});

test('families 6 and 64: every lvs and dpvs cell exactly as the table says', () => {
  for (const family of [6, 64] as const) {
    for (const policy of ['lvs', 'dpvs', 'fullnat'] as const) {
      for (const s of SCENARIO_NAMES) {
        const r = familyRows.find(
          (x) => x.family === family && x.scenario === s && x.policy === policy,
        );
        assert.ok(r, `${family} ${s}/${policy} missing`);
        assert.deepEqual(
          { realIp: r.realIp, wrongIp: r.wrongIp, failed: r.failed },
          expectedCell(s, policy, CONNECTIONS, family),
          `family ${family} ${s}/${policy}`,
        );
      }
    }
  }
});

test('a 20-byte TOA finds no room where 8 bytes did: lvs with client timestamps kept, spoof-toa', () => {
  const kept = (families: (4 | 6 | 64)[]): ResultRow[] =>
    simulate(
      {
        json: true,
        policies: ['lvs', 'fullnat'],
        scenarios: ['spoof-toa'],
        families,
        connections: CONNECTIONS,
        seed: 3,
        mssAdjust: true,
        timestampRemove: false,
        trace: false,
      },
      () => undefined,
    ).results;
  const [v4lvs, v4fullnat, v6lvs, v6fullnat, f64lvs, f64fullnat] = kept([4, 6, 64]);
  // TS (12) + the client's TOA (8) + ours (8) fit 40; TS + the client's 20 + our 20 do not.
  assert.equal(v4lvs!.realIp, CONNECTIONS);
  assert.equal(v6lvs!.wrongIp, CONNECTIONS);
  assert.equal(f64lvs!.wrongIp, CONNECTIONS);
  for (const r of [v4fullnat, v6fullnat, f64fullnat]) assert.equal(r!.realIp, CONNECTIONS);
});
