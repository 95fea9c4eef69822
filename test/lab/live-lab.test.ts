/**
 * `fullnat lab` on real kernels: the simulator's scenarios through
 * `fullnat run` in network namespaces, Linux real servers, verdicts from the
 * RS application (eBPF TOA receiver) or from captures at the RS.
 *
 * The real-kernel tests need root, network namespaces, the TUN addon and
 * python3; without them they are skipped with the reason shown. The
 * helpers' tests run anywhere.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from '../support/time.js';
import { formatLabTable, labOptionsFromFlags, runLab, type LabReport } from '../../src/cli/lab.js';
import {
  hasTcpdump,
  acquireLock,
  labNamespaces,
  LabTopology,
  LAB_PREFIX,
} from '../../src/lab/live/topology.js';
import {
  labAvailable,
  linuxCanPlay,
  pcapFile,
  runLabScenarios,
} from '../../src/lab/live/run-lab.js';
import { getScenario, SCENARIO_NAMES } from '../../src/lab/sim/scenarios.js';
import type { ToaPolicy } from '../../src/engine/options.js';
import type { ScenarioName } from '../../src/lab/sim/scenarios.js';
import { analyzeCapture } from '../../src/doctor/analyze.js';
import { expectedCell } from '../support/toa-table.js';

/** Connections per cell of the whole-table test (36 cells; about 20 s on two CPUs). */
const TABLE_CONNECTIONS = 20;
/** Connections per cell of the IPv6 and FNAT64 tables (72 cells; about 22 s on two CPUs). */
const FAMILY_CONNECTIONS = 20;

const avail = labAvailable();
const skip = avail.ok ? undefined : avail.reason;
const silent = (): void => {};

function lab(
  policies: ToaPolicy[],
  scenarios: ScenarioName[],
  connections: number,
  extra: Partial<Parameters<typeof labOptionsFromFlags>[0]> = {},
): Promise<LabReport> {
  return runLab(
    labOptionsFromFlags({
      policy: policies.join(','),
      scenario: scenarios.join(','),
      connections,
      seed: 7,
      ...extra,
    }),
    silent,
  );
}

const row = (r: LabReport, scenario: string, policy: string) => {
  const x = r.results.find((y) => y.scenario === scenario && y.policy === policy);
  assert.ok(x, `no row ${scenario}/${policy} in ${JSON.stringify(r)}`);
  return x;
};

describe('lab helpers', () => {
  test('Linux clients play the well-behaved scenarios, the scripted TUN client the rest', () => {
    const linux = SCENARIO_NAMES.filter((s) =>
      Array.from({ length: 20 }, (_, i) => getScenario(s).client(i)).every(linuxCanPlay),
    );
    assert.deepEqual(linux, ['baseline', 'mss-mix', 'defer-accept']);
  });

  test('each policy gets its own local port range; switches reach the configuration', () => {
    const t = new LabTopology({ receiver: false, log: silent });
    const ranges = (['lvs', 'dpvs', 'fullnat'] as ToaPolicy[]).map((p) => {
      const m = /local_port_range (\d+) (\d+)/.exec(t.config(p))!;
      return [Number(m[1]), Number(m[2])] as const;
    });
    for (let i = 1; i < ranges.length; i++) assert.ok(ranges[i]![0] > ranges[i - 1]![1]);
    assert.match(t.config('dpvs'), /toa_policy dpvs/);
    assert.match(t.config('lvs', { mssAdjust: false }), /mss_adjust off/);
    assert.match(t.config('lvs'), /timestamp_remove on/);
    assert.match(t.config('fullnat'), /real_server 10\.78\.2\.11 8082 \{\s+weight 1\s+mtu 1400/);
  });

  test('the LB configuration per family: 6 all IPv6, 64 an IPv6 VIP before IPv4 LIPs and RSs', () => {
    const t = new LabTopology({ receiver: false, log: silent });
    const c6 = t.config('fullnat', {}, 6);
    assert.match(c6, /virtual_server fd00:78::100 80 \{/);
    assert.match(c6, /real_server fd00:78:2::11 8080 \{/);
    assert.match(c6, /local_address_group lips \{\s+fd00:78:3::1\s+fd00:78:3::2\s+\}/);
    assert.doesNotMatch(c6, /10\.78\./);
    const c64 = t.config('fullnat', {}, 64);
    assert.match(c64, /virtual_server fd00:78::100 82 \{/);
    assert.match(c64, /real_server 10\.78\.2\.12 8082 \{\s+weight 1\s+mtu 1400/);
    assert.match(c64, /local_address_group lips \{\s+10\.78\.3\.1\s+10\.78\.3\.2\s+\}/);
    assert.match(t.config('fullnat'), /virtual_server 10\.78\.0\.100 80 \{/);
    // Every family × policy its own local ports: 4 and 64 share the LIPs and RSs.
    const ranges = ([4, 6, 64] as const).flatMap((f) =>
      (['lvs', 'dpvs', 'fullnat', 'off'] as ToaPolicy[]).map((p) => {
        const m = /local_port_range (\d+) (\d+)/.exec(t.config(p, {}, f))!;
        return [Number(m[1]), Number(m[2])] as const;
      }),
    );
    for (let i = 1; i < ranges.length; i++) assert.ok(ranges[i]![0] > ranges[i - 1]![1]);
    assert.ok(ranges.at(-1)![1] <= 65535);
    assert.equal(pcapFile('fin-data', 'lvs', 4, 'r1'), 'fin-data-lvs-r1.pcap');
    assert.equal(pcapFile('fin-data', 'lvs', 64, 'r1'), 'fin-data-lvs-64-r1.pcap');
  });

  test('the lock keeps a second lab out and is taken over from a dead holder', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fnlab-lock-'));
    const path = join(dir, 'lock');
    try {
      const release = acquireLock(path);
      // Another live node process holds it.
      const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)']);
      try {
        writeFileSync(path, `${other.pid}\n`);
        assert.throws(() => acquireLock(path), /another fullnat lab is running/);
      } finally {
        other.kill('SIGKILL');
      }
      // A dead holder's lock is taken over.
      writeFileSync(path, '999999999\n');
      const again = acquireLock(path);
      again();
      release(); // not ours any more: leaves the file alone
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('option parsing: defaults and lists', () => {
    const o = labOptionsFromFlags({});
    assert.equal(o.connections, 200);
    assert.deepEqual(o.policies, ['lvs', 'dpvs', 'fullnat']);
    assert.equal(o.scenarios.length, 12);
    assert.equal(o.source, 'auto');
    assert.deepEqual(o.families, [4]);
    assert.deepEqual(labOptionsFromFlags({ family: 'all' }).families, [4, 6, 64]);
    assert.deepEqual(labOptionsFromFlags({ family: '64,6' }).families, [64, 6]);
    assert.throws(() => labOptionsFromFlags({ family: '46' }), /unknown family "46"/);
    assert.throws(() => labOptionsFromFlags({ source: 'nope' }), /unknown source/);
    assert.throws(() => labOptionsFromFlags({ scenario: 'nope' }), /unknown scenario/);
  });
});

describe('fullnat lab on real kernels', { skip, timeout: 300_000 }, () => {
  test('the whole table on real kernels: every scenario × policy, exact outcomes', async () => {
    const policies = ['lvs', 'dpvs', 'fullnat'] as const;
    const r = await lab([...policies], [...SCENARIO_NAMES], TABLE_CONNECTIONS);
    assert.equal(r.mode, 'lab');
    assert.equal(r.results.length, SCENARIO_NAMES.length * policies.length);
    for (const p of policies) {
      for (const s of SCENARIO_NAMES) {
        const x = row(r, s, p);
        assert.equal(x.connections, TABLE_CONNECTIONS, `${s}/${p}`);
        assert.deepEqual(
          { realIp: x.realIp, wrongIp: x.wrongIp, failed: x.failed },
          expectedCell(s, p, TABLE_CONNECTIONS),
          `${s}/${p}: ${JSON.stringify(x)}`,
        );
        assert.ok(x.source === 'rs-app' || x.source === 'rs-capture');
      }
    }
    // JSON: the docs/CLI.md contract plus `source`.
    const doc = JSON.parse(JSON.stringify(r)) as LabReport;
    assert.deepEqual(Object.keys(doc.results[0]!).sort(), [
      'connections',
      'failed',
      'family',
      'policy',
      'realIp',
      'scenario',
      'source',
      'wrongIp',
    ]);
    assert.ok(r.results.every((x) => x.family === 4));
    assert.match(formatLabTable(r), /mode: lab \(real kernels\); verdict source: rs-/);
  });

  test('IPv6 and FNAT64 on real kernels: every scenario × policy, exact outcomes, fullnat 100 %', async () => {
    const policies = ['lvs', 'dpvs', 'fullnat'] as const;
    const families = [6, 64] as const;
    const r = await runLabScenarios(
      {
        families: [...families],
        policies: [...policies],
        scenarios: [...SCENARIO_NAMES],
        connections: FAMILY_CONNECTIONS,
        seed: 11,
        source: 'auto',
      },
      silent,
    );
    assert.equal(r.rows.length, families.length * SCENARIO_NAMES.length * policies.length);
    // Rows family-major, as `fullnat simulate` orders them.
    assert.deepEqual(
      [...new Set(r.rows.map((x) => x.family))],
      [...families],
      'rows grouped by family',
    );
    for (const f of families)
      for (const p of policies)
        for (const s of SCENARIO_NAMES) {
          const x = r.rows.find((y) => y.family === f && y.scenario === s && y.policy === p);
          assert.ok(x, `no row ${f}/${s}/${p}`);
          assert.equal(x.connections, FAMILY_CONNECTIONS);
          assert.deepEqual(
            { realIp: x.realIp, wrongIp: x.wrongIp, failed: x.failed },
            expectedCell(s, p, FAMILY_CONNECTIONS, f),
            `family ${f} ${s}/${p}: ${JSON.stringify(x)}`,
          );
        }
    // The RS application saw the IPv6 client (FNAT64: on an IPv4 connection, through the receiver).
    if (r.source === 'rs-app') {
      const seen = r.runs.find(
        (x) => x.row.family === 64 && x.row.scenario === 'baseline' && x.row.policy === 'fullnat',
      )!;
      for (const c of seen.connections) {
        assert.match(c.client, /^\[fd00:78:9::[0-9a-f]+\]:\d+$/);
        assert.equal(c.appPeer, c.client);
        assert.match(c.rs!, /^10\.78\.2\.1[12]:8080$/);
      }
    }
    // Where captures were taken, they agree with the receiver in both families.
    for (const run of r.runs) assert.equal(run.disagreements, 0, JSON.stringify(run.row));
    const text = formatLabTable({ mode: 'lab', results: r.rows });
    assert.ok(text.indexOf('family 6: IPv6') < text.indexOf('family 64: FNAT64'), text);
  });

  test(
    'judged from captures at the RS (doctor), and the receiver agrees with the captures',
    { skip: hasTcpdump() ? undefined : 'tcpdump is not installed' },
    async () => {
      const cap = await lab(['lvs', 'fullnat'], ['fin-data'], 6, { source: 'rs-capture' });
      assert.equal(row(cap, 'fin-data', 'lvs').source, 'rs-capture');
      assert.equal(row(cap, 'fin-data', 'lvs').wrongIp, 6);
      assert.equal(row(cap, 'fin-data', 'fullnat').realIp, 6);
      // The doctor reads the IPv6 captures (6) and the 254/20 TOA on the IPv4 leg (64) alike.
      const cap6 = await lab(['lvs', 'fullnat'], ['fin-data'], 6, {
        source: 'rs-capture',
        family: '6,64',
      });
      for (const f of [6, 64]) {
        const at = (p: string) =>
          cap6.results.find((y) => y.family === f && y.scenario === 'fin-data' && y.policy === p)!;
        assert.deepEqual(
          [at('lvs').source, at('lvs').wrongIp, at('fullnat').realIp],
          ['rs-capture', 6, 6],
          `family ${f}: ${JSON.stringify(cap6.results)}`,
        );
      }

      const auto = await runLabScenarios(
        {
          policies: ['lvs', 'fullnat'],
          scenarios: ['fin-data', 'lost-ack'],
          connections: 6,
          seed: 3,
          source: 'auto',
        },
        silent,
      );
      for (const run of auto.runs) {
        assert.notEqual(run.captureDropped, null, "tcpdump's closing counters were read");
        assert.equal(
          run.disagreements,
          0,
          JSON.stringify({ captureDropped: run.captureDropped, connections: run.connections }),
        );
        for (const c of run.connections) {
          assert.notEqual(c.captureToa, null, `capture view of ${c.client}`);
        }
      }
      assert.equal(
        auto.runs.find((x) => x.row.scenario === 'lost-ack' && x.row.policy === 'lvs')!.row.realIp,
        6,
      );
    },
  );

  test('two runs in a row, and leftovers of a killed run are removed first', async () => {
    const first = await lab(['dpvs'], ['baseline'], 4);
    assert.equal(row(first, 'baseline', 'dpvs').realIp, 4);
    assert.deepEqual(labNamespaces(), [], 'nothing left after a run');

    // What a `kill -9`'d lab leaves: namespaces with the prefix, a process in one, its lock.
    const stale = `${LAB_PREFIX}-stale`;
    execFileSync('ip', ['netns', 'add', stale]);
    const sleeper = spawn('ip', ['netns', 'exec', stale, 'sleep', '60'], { stdio: 'ignore' });
    await sleep(200);
    try {
      const second = await lab(['dpvs'], ['baseline'], 4);
      assert.equal(row(second, 'baseline', 'dpvs').realIp, 4);
      assert.deepEqual(labNamespaces(), []);
      await sleep(100);
      assert.ok(sleeper.exitCode !== null || sleeper.signalCode !== null, 'stale process killed');
    } finally {
      sleeper.kill('SIGKILL');
      try {
        execFileSync('ip', ['netns', 'del', stale], { stdio: 'ignore' });
      } catch {
        // removed by the lab, as it should be
      }
    }
  });
});

// Here rather than in a file of its own: a lab holds a lock, and test files run two at a time.
/*
 * doctor on captures taken at the real servers while the lab runs policy
 * lvs: every lost address is explained by the cause of the scenario that
 * produced it, and nothing else is called a miss.
 */
const EXPECTED: Partial<Record<ScenarioName, string>> = {
  'fin-data': 'fin-data',
  'over-mss': 'over-mss',
  'options-full': 'options-full',
  'small-rs-mtu': 'full-segment',
  baseline: 'none',
  'no-bare-ack': 'none',
};

test('doctor explains every loss in the RS captures of lab --policy lvs', { skip }, async () => {
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
});
