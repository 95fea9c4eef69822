#!/usr/bin/env node
// Runs every compiled test file under dist/test with Node's own test runner,
// after making sure the system tools the tests use are present.
//
// A test that cannot run here (not root, no network namespaces, no TUN, no
// eBPF) skips with its reason, and this prints the skipped tests at the end.
// Under FULLNAT_REQUIRE_ALL=1 (set by .ci/run) a skipped or todo test fails
// the run, and so does a missing system package: CI must not pass by skipping
// what it claims to test.
//
//   node scripts/test.js [FILTER...]    only test files whose path contains a FILTER
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const required = process.env.FULLNAT_REQUIRE_ALL === '1';

const deps = spawnSync('bash', ['scripts/ensure-system-deps.sh'], { stdio: 'inherit' });
if (required && deps.status !== 0) {
  console.error('fullnat: FULLNAT_REQUIRE_ALL=1: the system packages the tests need are missing');
  process.exit(1);
}

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...collect(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filter = process.argv.slice(2);
const files = collect('dist/test')
  .filter((f) => filter.length === 0 || filter.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('no test files found under dist/test');
  process.exit(1);
}

// The same TAP stream goes to stdout and to a file read back for the skips.
const tmp = mkdtempSync(join(tmpdir(), 'fullnat-test-'));
const tapFile = join(tmp, 'report.tap');
const r = spawnSync(
  process.execPath,
  [
    '--test',
    '--test-concurrency=2',
    '--test-reporter=tap',
    '--test-reporter-destination=stdout',
    '--test-reporter=tap',
    `--test-reporter-destination=${tapFile}`,
    ...files,
  ],
  { stdio: 'inherit' },
);
let tap = '';
try {
  tap = readFileSync(tapFile, 'utf8');
} catch {
  // no report: the runner itself failed, its status says so
}
rmSync(tmp, { recursive: true, force: true });

/** Tests the runner reported with a SKIP or TODO directive, with their reasons. */
function directives(text, kind) {
  const re = new RegExp(`^\\s*(?:not )?ok \\d+ - (.*?) # ${kind}\\b ?(.*)$`, 'gm');
  return [...text.matchAll(re)].map((m) => `${m[1]}${m[2] ? ` (${m[2]})` : ''}`);
}
const skipped = directives(tap, 'SKIP');
const todo = directives(tap, 'TODO');
/** A number from the runner's closing lines (`# pass 575`). */
function count(name) {
  const m = new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tap);
  return m ? Number(m[1]) : 0;
}
for (const [label, list] of [
  ['skipped', skipped],
  ['todo', todo],
]) {
  if (list.length === 0) continue;
  console.error(`fullnat: ${list.length} test(s) ${label}:`);
  for (const t of list) console.error(`  - ${t}`);
}
// The runner's own totals decide; the lists above say which tests they were.
const skippedTotal = Math.max(count('skipped'), skipped.length);
const todoTotal = Math.max(count('todo'), todo.length);
console.log(`${count('pass')} passed, ${count('fail')} failed, ${skippedTotal} skipped`);

let status = r.status ?? 1;
if (required && skippedTotal + todoTotal > 0) {
  console.error(
    'fullnat: FULLNAT_REQUIRE_ALL=1: skipped or todo tests fail the run (CI must run everything)',
  );
  status = status || 1;
}
if (required && tap === '') {
  console.error('fullnat: FULLNAT_REQUIRE_ALL=1: no test report was written');
  status = status || 1;
}
process.exit(status);
