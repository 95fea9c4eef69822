import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TOA_POLICIES, type ToaPolicy } from '../engine/options.js';
import { engineMiddlebox } from '../lab/engine-middlebox.js';
import { DEFAULT_FAMILY, describeFamily, type LabFamily } from '../lab/family.js';
import type { MiddleboxFactory } from '../lab/sim/net.js';
import {
  buildTopology,
  connectionRecords,
  connectionTrace,
  runScenario,
  summaryRow,
  type ScenarioRun,
} from '../lab/sim/run.js';
import {
  SCENARIO_NAMES,
  getScenario,
  isScenarioName,
  type ScenarioName,
} from '../lab/sim/scenarios.js';
import { PcapWriter } from '../wire/pcap.js';

export interface SimulateOptions {
  json: boolean;
  policies: ToaPolicy[];
  scenarios: ScenarioName[];
  /** Address families to run (lab/family.ts); default [4]. */
  families?: LabFamily[];
  connections: number;
  seed: number;
  mssAdjust: boolean;
  timestampRemove: boolean;
  /** Print the packet trace of the first connection that did not see the real IP. */
  trace: boolean;
  /** Write one pcap per scenario × policy into this folder. */
  pcapDir?: string;
  /** SYNPROXY on the simulated service. */
  synProxy?: boolean;
}

export interface ResultRow {
  scenario: ScenarioName;
  policy: ToaPolicy;
  /** 4, 6 or 64 (FNAT64): see lab/family.ts. */
  family: LabFamily;
  connections: number;
  realIp: number;
  wrongIp: number;
  failed: number;
}

/** A family that could not run, and why (the engine's own message). */
export interface SkippedFamily {
  family: LabFamily;
  reason: string;
}

export interface SimulateReport {
  mode: 'simulate' | 'lab';
  results: ResultRow[];
  /** Present only when a requested family could not run at all. */
  skipped?: SkippedFamily[];
}

/** Splits "a,b" lists and checks every item against the allowed names. */
export function parseList<T extends string>(
  text: string | undefined,
  allowed: readonly T[],
  what: string,
): T[] {
  if (text === undefined || text === '' || text === 'all') return [...allowed];
  const items = text.split(',').map((s) => s.trim());
  for (const it of items) {
    if (!(allowed as readonly string[]).includes(it)) {
      throw new Error(`unknown ${what} "${it}"; valid: ${allowed.join(', ')}`);
    }
  }
  return items as T[];
}

export function parseScenarios(text: string | undefined): ScenarioName[] {
  const list = parseList(text, SCENARIO_NAMES, 'scenario');
  return list.filter(isScenarioName);
}

/** `SCENARIO-POLICY.pcap` for family 4 (as before families), `SCENARIO-POLICY-6.pcap`, `…-64.pcap`. */
export function pcapName(scenario: ScenarioName, policy: ToaPolicy, family: LabFamily): string {
  return `${scenario}-${policy}${family === 4 ? '' : `-${family}`}.pcap`;
}

function writePcap(dir: string, run: ScenarioRun, policy: ToaPolicy): string {
  mkdirSync(dir, { recursive: true });
  // Raw IP: each record is an IPv4 or an IPv6 packet, told apart by its version nibble.
  const w = new PcapWriter(101);
  for (const r of run.records) w.add(Math.round(r.t * 1000), r.bytes);
  const file = join(dir, pcapName(run.scenario, policy, run.family));
  writeFileSync(file, w.toBytes());
  return file;
}

function middleboxFor(o: SimulateOptions, policy: ToaPolicy): MiddleboxFactory {
  return engineMiddlebox({
    toaPolicy: policy,
    mssAdjust: o.mssAdjust,
    timestampRemove: o.timestampRemove,
    synProxy: o.synProxy === true,
  });
}

/**
 * Why the engine cannot be configured for a family with these options
 * (its own message), or null. Asked once per family, before any run, so
 * that a failure during a run is never mistaken for it.
 */
function refusal(o: SimulateOptions, family: LabFamily): string | null {
  const scenario = o.scenarios[0];
  const policy = o.policies[0];
  if (scenario === undefined || policy === undefined) return null;
  try {
    middleboxFor(o, policy)(buildTopology(getScenario(scenario), 1, family));
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * Rows family-major, then scenario, then policy, each in the order given.
 * A family the engine refuses with these options (none today: SYNPROXY
 * and PROXY protocol work in every family) is left out, said in `skipped`
 * and logged; when every family is refused, that is an error.
 */
export function simulate(o: SimulateOptions, log: (line: string) => void): SimulateReport {
  const results: ResultRow[] = [];
  const skipped: SkippedFamily[] = [];
  const families = o.families ?? [DEFAULT_FAMILY];
  for (const family of families) {
    const reason = refusal(o, family);
    if (reason !== null) {
      skipped.push({ family, reason });
      log(`family ${family}: not run — ${reason}`);
      continue;
    }
    for (const scenario of o.scenarios) {
      for (const policy of o.policies) {
        results.push(runOne(o, family, scenario, policy, log));
      }
    }
  }
  if (skipped.length > 0 && skipped.length === families.length)
    throw new Error(skipped.map((s) => `family ${s.family}: ${s.reason}`).join('; '));
  return skipped.length > 0
    ? { mode: 'simulate', results, skipped }
    : { mode: 'simulate', results };
}

function runOne(
  o: SimulateOptions,
  family: LabFamily,
  scenario: ScenarioName,
  policy: ToaPolicy,
  log: (line: string) => void,
): ResultRow {
  const run = runScenario({
    scenario,
    family,
    middleboxFactory: middleboxFor(o, policy),
    connections: o.connections,
    seed: o.seed,
    capture: o.trace || o.pcapDir !== undefined,
  });
  const row = summaryRow(run);
  if (o.pcapDir !== undefined) log(`wrote ${writePcap(o.pcapDir, run, policy)}`);
  if (o.trace) {
    const miss = run.details.findIndex((d) => d.outcome !== 'realIp');
    if (miss >= 0 && connectionRecords(run, miss).length > 0) {
      log(`\n[${policy}${family === 4 ? '' : `, family ${family}`}] ${connectionTrace(run, miss)}`);
    }
  }
  return {
    scenario,
    policy,
    family,
    connections: row.connections,
    realIp: row.realIp,
    wrongIp: row.wrongIp,
    failed: row.failed,
  };
}

/**
 * The scenario × policy table a person reads, one per family, each headed
 * by the family it is about.
 */
export function formatTable(report: SimulateReport): string {
  const families = [...new Set(report.results.map((r) => r.family))];
  return families
    .map((f) => {
      const rows = report.results.filter((r) => r.family === f);
      return `family ${f}: ${describeFamily(f)}\n${formatFamilyTable(rows)}`;
    })
    .join('\n\n');
}

function formatFamilyTable(results: readonly ResultRow[]): string {
  const report = { results };
  const policies = [...new Set(report.results.map((r) => r.policy))];
  const scenarios = [...new Set(report.results.map((r) => r.scenario))];
  const cell = (r: ResultRow | undefined): string => {
    if (!r) return '-';
    const pct = r.connections === 0 ? 0 : (100 * r.realIp) / r.connections;
    const tail = [r.wrongIp ? `${r.wrongIp} wrong` : '', r.failed ? `${r.failed} failed` : '']
      .filter(Boolean)
      .join(', ');
    return `${r.realIp}/${r.connections} ${pct.toFixed(0).padStart(3)}%${tail ? ` (${tail})` : ''}`;
  };
  const widths = policies.map((p) =>
    Math.max(
      p.length,
      ...scenarios.map(
        (s) => cell(report.results.find((r) => r.scenario === s && r.policy === p)).length,
      ),
    ),
  );
  const sw = Math.max('scenario'.length, ...scenarios.map((s) => s.length));
  const lines = [
    `${'scenario'.padEnd(sw)}  ${policies.map((p, i) => p.padEnd(widths[i]!)).join('  ')}`,
    `${'-'.repeat(sw)}  ${widths.map((w) => '-'.repeat(w)).join('  ')}`,
  ];
  for (const s of scenarios) {
    lines.push(
      `${s.padEnd(sw)}  ${policies.map((p, i) => cell(report.results.find((r) => r.scenario === s && r.policy === p)).padEnd(widths[i]!)).join('  ')}`,
    );
  }
  lines.push('');
  for (const p of policies) {
    const rows = report.results.filter((r) => r.policy === p);
    const total = rows.reduce((a, r) => a + r.connections, 0);
    const real = rows.reduce((a, r) => a + r.realIp, 0);
    const lost = rows.filter((r) => r.realIp < r.connections).map((r) => r.scenario);
    lines.push(
      `${p.padEnd(8)} real client IP on ${real}/${total} connections (${((100 * real) / Math.max(1, total)).toFixed(2)}%)` +
        (lost.length ? `; lost in: ${lost.join(', ')}` : ''),
    );
  }
  return lines.join('\n');
}

export { TOA_POLICIES };
