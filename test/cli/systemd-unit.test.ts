/**
 * `fullnat --version` and `fullnat systemd-unit`: the version from
 * package.json; the unit as systemd reads it (`systemd-analyze verify`, the
 * independent checker, must be silent), what it asks for, the copy in
 * contrib/ kept equal to the rendering, and --install's file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';

import {
  CAPABILITIES,
  DEFAULT_CONFIG,
  quoteExecWord,
  renderUnit,
  runSystemdUnit,
} from '../../src/cli/systemd-unit.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const cli = join(repo, 'bin', 'fullnat.js');
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };
const analyze = spawnSync('systemd-analyze', ['--version']).status === 0;

const dir = mkdtempSync(join(tmpdir(), 'fullnat-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function fullnat(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** `[Section]` → key → values (a key may repeat), comments and blank lines left out. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const section = /^\[(\w+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const kv = /^(\w+)=(.*)$/.exec(line);
    assert.ok(kv && current, `a key=value line inside a section: ${line}`);
    current.set(kv[1]!, [...(current.get(kv[1]!) ?? []), kv[2]!]);
  }
  return sections;
}

/** systemd-analyze verify on `text` saved as fullnat.service: its complaints, '' when none. */
function verify(text: string): string {
  const unitDir = mkdtempSync(join(dir, 'verify-'));
  const path = join(unitDir, 'fullnat.service');
  writeFileSync(path, text);
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', path], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return `${r.status === 0 ? '' : `exit ${r.status}\n`}${r.stderr}`.trim();
}

describe('fullnat --version', () => {
  it("--version and -V print package.json's version and exit 0", () => {
    for (const flag of ['--version', '-V']) {
      const r = fullnat(flag);
      assert.deepEqual([r.code, r.out, r.err], [0, `${pkg.version}\n`, ''], flag);
    }
  });
});

describe('fullnat systemd-unit', () => {
  it('prints a unit with what the service needs, ExecStart running this install', () => {
    const r = fullnat('systemd-unit', '--config', '/etc/fullnat/lb.conf');
    assert.equal(r.code, 0, r.err);
    const unit = parseUnit(r.out);
    const svc = unit.get('Service')!;
    assert.deepEqual(svc.get('Type'), ['notify']);
    assert.deepEqual(svc.get('NotifyAccess'), ['main']);
    assert.deepEqual(svc.get('ExecStart'), [
      `${process.execPath} ${cli} run -f /etc/fullnat/lb.conf`,
    ]);
    assert.deepEqual(svc.get('ExecReload'), ['/bin/kill -HUP $MAINPID']);
    assert.deepEqual(svc.get('Restart'), ['on-failure']);
    const caps = ['CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW'];
    assert.deepEqual(svc.get('CapabilityBoundingSet'), caps);
    assert.deepEqual(svc.get('AmbientCapabilities'), caps);
    assert.deepEqual(CAPABILITIES.join(' '), caps[0]);
    assert.deepEqual(unit.get('Install')?.get('WantedBy'), ['multi-user.target']);
    assert.deepEqual(unit.get('Unit')?.get('After'), ['network-online.target']);
  });

  it('contrib/fullnat.service is the rendering with the defaults', () => {
    assert.equal(
      readFileSync(join(repo, 'contrib', 'fullnat.service'), 'utf8'),
      renderUnit({ config: DEFAULT_CONFIG, command: ['/usr/bin/env', 'fullnat'] }),
    );
  });

  it(
    'systemd-analyze verify finds nothing to say about either unit',
    { skip: analyze ? undefined : 'systemd-analyze not available (Debian package systemd)' },
    () => {
      assert.equal(verify(readFileSync(join(repo, 'contrib', 'fullnat.service'), 'utf8')), '');
      assert.equal(verify(fullnat('systemd-unit').out), '');
      // The checker is awake: a misspelt type and an unknown key are reported.
      assert.match(
        verify(fullnat('systemd-unit').out.replace('Type=notify', 'Type=notifyy\nBogus=1')),
        /Failed to parse service type[\s\S]*Unknown key 'Bogus'/,
      );
    },
  );

  it('ExecStart words are quoted as systemd reads them (blanks, %, $, quotes)', () => {
    assert.equal(quoteExecWord('/etc/fullnat/a.conf'), '/etc/fullnat/a.conf');
    assert.equal(quoteExecWord('/etc/my lb/a%b$c.conf'), '"/etc/my lb/a%%b$$c.conf"');
    assert.equal(quoteExecWord('a"b\\c'), '"a\\"b\\\\c"');
    const unit = renderUnit({
      config: '/etc/my lb/a%b.conf',
      command: ['/usr/bin/env', 'fullnat'],
    });
    assert.match(unit, /^ExecStart=\/usr\/bin\/env fullnat run -f "\/etc\/my lb\/a%%b\.conf"$/m);
    if (analyze) assert.equal(verify(unit), '');
  });

  it('--install writes the unit, keeps a different one unless --force, and says what next', () => {
    const unitDir = join(dir, 'system');
    const err: string[] = [];
    const flags = { install: true, config: '/etc/fullnat/lb.conf', unitDir };
    assert.equal(
      runSystemdUnit(
        flags,
        () => assert.fail('prints nothing'),
        (l) => err.push(l),
      ),
      0,
    );
    const path = join(unitDir, 'fullnat.service');
    assert.ok(existsSync(path));
    let printed = '';
    runSystemdUnit({ ...flags, install: false }, (t) => (printed = t));
    assert.equal(readFileSync(path, 'utf8'), printed, 'the file is what the command prints');
    assert.match(err.at(-1)!, /systemctl daemon-reload && systemctl enable --now fullnat$/);
    assert.equal(
      runSystemdUnit(
        flags,
        () => undefined,
        () => undefined,
      ),
      0,
      'the same unit again',
    );
    writeFileSync(path, '# mine\n');
    const refused: string[] = [];
    assert.equal(
      runSystemdUnit(
        flags,
        () => undefined,
        (l) => refused.push(l),
      ),
      1,
    );
    assert.match(refused[0]!, /exists and differs; --force replaces it$/);
    assert.equal(readFileSync(path, 'utf8'), '# mine\n');
    assert.equal(
      runSystemdUnit(
        { ...flags, force: true },
        () => undefined,
        () => undefined,
      ),
      0,
    );
    assert.equal(readFileSync(path, 'utf8'), printed);
  });
});
