/**
 * doctor on captures taken at the real servers while the real-kernel lab
 * runs policy lvs: every lost address is explained by the cause of the
 * scenario that produced it, and nothing else is called a miss.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLab } from '../../src/cli/lab.js';
import { labAvailable } from '../../src/lab/live/run-lab.js';
import { analyzeCapture } from '../../src/lab/doctor/analyze.js';
import type { ScenarioName } from '../../src/lab/sim/scenarios.js';

const avail = labAvailable();
const EXPECTED: Partial<Record<ScenarioName, string>> = {
  'fin-data': 'fin-data',
  'over-mss': 'over-mss',
  'options-full': 'options-full',
  'small-rs-mtu': 'full-segment',
  baseline: 'none',
  'no-bare-ack': 'none',
};

test(
  'doctor explains every loss in the RS captures of lab --policy lvs',
  { skip: avail.ok ? undefined : avail.reason },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fullnat-doctor-lab-'));
    try {
      const report = await runLab(
        {
          json: true,
          policies: ['lvs'],
          scenarios: Object.keys(EXPECTED) as ScenarioName[],
          connections: 12,
          seed: 7,
          source: 'auto',
          pcapDir: dir,
        },
        () => undefined,
      );
      for (const [scenario, cause] of Object.entries(EXPECTED)) {
        const row = report.results.find((r) => r.scenario === scenario)!;
        const files = readdirSync(dir).filter((f) => f.startsWith(`${scenario}-lvs-`));
        assert.ok(files.length > 0, `captures for ${scenario}`);
        let judged = 0;
        const misses: Record<string, number> = {};
        for (const f of files) {
          const a = analyzeCapture(readFileSync(join(dir, f)));
          judged += a.summary.connections;
          for (const [k, n] of Object.entries(a.summary.misses))
            if (n > 0) misses[k] = (misses[k] ?? 0) + n;
        }
        assert.equal(judged, row.connections, `${scenario}: doctor judged every handshake`);
        if (cause === 'none') {
          assert.deepEqual(misses, {}, `${scenario}: no miss`);
        } else {
          assert.deepEqual(
            misses,
            { [cause]: row.wrongIp },
            `${scenario}: lab says ${row.wrongIp} wrong`,
          );
          assert.ok(row.wrongIp > 0);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
