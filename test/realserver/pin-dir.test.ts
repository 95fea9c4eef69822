/**
 * `fullnat rs attach|detach --pin-dir DIR`: DIR is taken as the kernel sees it,
 * must lie inside a bpf filesystem, and detach removes only the pins the tool
 * made — never an ordinary directory, never what others pinned beside ours.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test } from 'node:test';
import {
  BPFFS,
  MAP_PINS,
  PROGRAMS,
  canonicalPinDir,
  checkPrerequisites,
} from '../../src/realserver/ebpf.js';

const CLI_URL = pathToFileURL(
  fileURLToPath(new URL('../../src/realserver/cli.js', import.meta.url)),
).href;
const LAUNCHER = `import { runRs } from ${JSON.stringify(CLI_URL)}; process.exitCode = await runRs(process.argv.slice(1));`;

function rs(args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', LAUNCHER, ...args], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function skipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (bpffs, bpftool)';
  const pre = checkPrerequisites({ pinDir: `${BPFFS}/fullnat-pin-test` });
  return pre.ok ? false : pre.reason;
}
const skip = skipReason();

test('the pin directory is resolved as the kernel sees it', () => {
  assert.equal(canonicalPinDir('/sys/fs/bpf/../../etc'), '/sys/etc');
  assert.equal(canonicalPinDir('/sys/fs/bpf/../../../etc'), '/etc');
  assert.equal(canonicalPinDir('/sys/fs/bpf/./a/../b'), '/sys/fs/bpf/b');
  const dir = mkdtempSync(join(tmpdir(), 'fullnat-pin-'));
  try {
    // A path through a directory that does not exist yet keeps its tail.
    assert.equal(canonicalPinDir(join(dir, 'x', '..', 'y', 'z')), join(dir, 'y', 'z'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('attach refuses a pin directory that escapes bpffs with ..', { skip }, () => {
  const before = readdirSync('/etc').length;
  for (const [arg, real] of [
    ['/sys/fs/bpf/../../etc', '/sys/etc'],
    ['/sys/fs/bpf/../../../etc', '/etc'],
  ] as const) {
    const r = rs(['attach', '--pin-dir', arg]);
    assert.notEqual(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`pin directory ${real} is not inside a bpf filesystem`));
  }
  assert.equal(readdirSync('/etc').length, before);
  assert.equal(existsSync('/sys/etc'), false);
});

test('detach refuses a directory that is not on bpffs and removes nothing', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'fullnat-pin-'));
  try {
    // Names that look like ours, on an ordinary filesystem.
    mkdirSync(join(dir, 'maps'));
    for (const p of PROGRAMS) writeFileSync(join(dir, p.name), 'not a pin');
    writeFileSync(join(dir, 'precious'), 'keep me');
    for (const pinDir of [dir, `/sys/fs/bpf/../../..${dir}`]) {
      const r = rs(['detach', '--pin-dir', pinDir]);
      assert.notEqual(r.code, 0, r.out);
      assert.match(r.out, /is not inside a bpf filesystem/);
      assert.deepEqual(
        readdirSync(dir).sort(),
        [...PROGRAMS.map((p) => p.name), 'maps', 'precious'].sort(),
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('detach refuses the bpffs mount point itself', { skip }, () => {
  // Other tests pin beside us at the same time: watch an entry of our own, not the whole listing.
  const sentinel = `${BPFFS}/fullnat-pin-sentinel-${process.pid}`;
  mkdirSync(sentinel, { recursive: true });
  try {
    const r = rs(['detach', '--pin-dir', BPFFS]);
    assert.notEqual(r.code, 0, r.out);
    assert.match(r.out, /is not inside a bpf filesystem/);
    assert.ok(existsSync(sentinel), 'an entry of the bpffs root survives');
  } finally {
    rmSync(sentinel, { recursive: true, force: true });
  }
});

test('detach on bpffs removes our pins and leaves what others put there', { skip }, () => {
  const dir = `${BPFFS}/fullnat-pin-test-${process.pid}`;
  rmSync(dir, { recursive: true, force: true });
  try {
    mkdirSync(join(dir, 'maps'), { recursive: true });
    // bpffs holds only pins and directories: another tool's directory stands for its pins.
    mkdirSync(join(dir, 'someone-else'));
    mkdirSync(join(dir, 'maps', 'their-map-dir'));
    const r = rs(['detach', '--pin-dir', dir]);
    assert.equal(r.code, 0, r.out);
    assert.ok(existsSync(join(dir, 'someone-else')), 'a foreign entry survives');
    assert.ok(existsSync(join(dir, 'maps', 'their-map-dir')), 'a foreign map entry survives');
    for (const m of MAP_PINS) assert.equal(existsSync(join(dir, 'maps', m)), false);
    // With nothing foreign left, detach removes the directory itself.
    rmSync(join(dir, 'someone-else'), { recursive: true });
    rmSync(join(dir, 'maps', 'their-map-dir'), { recursive: true });
    assert.equal(rs(['detach', '--pin-dir', dir]).code, 0);
    assert.equal(existsSync(dir), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
