/**
 * `fullnat check`: per file `FILE: ok` or its `FILE:LINE: reason`; a fleet's
 * files checked against each other; one file's neighbours' routes (the
 * lookup injected, so no network is needed); `--json` one document; exit
 * 0 unless a file has an error. One run spawns the real command.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { checkFiles, runCheck, type RouteLookup } from '../../src/cli/check.js';

const node = (
  lip: string,
  routerId: string,
  remoteAs = '65000',
): string => `local_address_group g1 {
    ${lip}
}
virtual_server 10.79.1.100 80 {
    lb_algo mh
    laddr_group_name g1
    real_server 10.79.2.2 80 {
        weight 1
    }
}
bgp {
    router_id ${routerId}
    local_as 65011
    neighbor 10.79.0.1 remote_as ${remoteAs}
    neighbor 2001:db8:ff::1 remote_as ${remoteAs}
}
`;

let dir = '';
const path = (name: string): string => join(dir, name);

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'fullnat-check-'));
  writeFileSync(path('a.conf'), node('10.79.9.1', '10.79.0.11'));
  writeFileSync(path('b.conf'), node('10.79.9.2', '10.79.0.12'));
  writeFileSync(path('same-lip.conf'), node('10.79.9.1', '10.79.0.13', '65001'));
  writeFileSync(path('no-bgp.conf'), node('10.79.9.3', '1').replace(/bgp \{[^}]*\}\n/, ''));
  writeFileSync(path('bad.conf'), node('10.79.9.4', '10.79.0.14', '23456'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Every neighbour reachable; records what was asked. */
function routes(missing: string[] = []): { lookup: RouteLookup; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    lookup: (addr) => {
      asked.push(addr);
      return missing.includes(addr) ? 'RTNETLINK answers: Network is unreachable' : null;
    },
  };
}

function run(
  files: string[],
  flags: { offline?: boolean; json?: boolean } = {},
  lookup = routes().lookup,
): { code: number; lines: string[] } {
  const lines: string[] = [];
  const code = runCheck(files, flags, (l) => lines.push(l), { routeLookup: lookup });
  return { code, lines };
}

describe('fullnat check: one file', () => {
  it('ok: every neighbour has a route', () => {
    const r = routes();
    const out = run([path('a.conf')], {}, r.lookup);
    assert.equal(out.code, 0);
    assert.deepEqual(out.lines, [`${path('a.conf')}: ok`, '1 file checked: 0 errors, 0 warnings']);
    assert.deepEqual(r.asked, ['10.79.0.1', '2001:db8:ff::1']);
  });

  it('a neighbour without a route is an error at its line; --offline does not look', () => {
    const r = routes(['2001:db8:ff::1']);
    const out = run([path('a.conf')], {}, r.lookup);
    assert.equal(out.code, 1);
    assert.deepEqual(out.lines, [
      `${path('a.conf')}:15: no route to neighbour 2001:db8:ff::1 (RTNETLINK answers: Network is unreachable)`,
      '1 file checked: 1 error, 0 warnings',
    ]);
    const offline = routes(['2001:db8:ff::1']);
    assert.equal(run([path('a.conf')], { offline: true }, offline.lookup).code, 0);
    assert.deepEqual(offline.asked, []);
  });

  it('a file that does not parse: its FILE:LINE: reason, exit 1, no route asked', () => {
    const r = routes();
    const out = run([path('bad.conf')], {}, r.lookup);
    assert.equal(out.code, 1);
    // Every error of the file, not just the first: both neighbours give AS_TRANS.
    assert.deepEqual(out.lines, [
      `${path('bad.conf')}:14: bad remote_as '23456' (23456 is AS_TRANS, RFC 6793: a stand-in, never a real AS)`,
      `${path('bad.conf')}:15: bad remote_as '23456' (23456 is AS_TRANS, RFC 6793: a stand-in, never a real AS)`,
      '1 file checked: 2 errors, 0 warnings',
    ]);
    assert.deepEqual(r.asked, []);
    const missing = run([path('none.conf')]);
    assert.equal(missing.code, 1);
    assert.equal(missing.lines[0], `${path('none.conf')}:0: cannot read configuration: ENOENT`);
  });
});

describe('fullnat check: a fleet', () => {
  it('consistent nodes: ok each, routes not asked (they are other machines)', () => {
    const r = routes(['10.79.0.1']);
    const out = run([path('a.conf'), path('b.conf')], {}, r.lookup);
    assert.equal(out.code, 0);
    assert.deepEqual(out.lines, [
      `${path('a.conf')}: ok`,
      `${path('b.conf')}: ok`,
      '2 files checked: 0 errors, 0 warnings',
    ]);
    assert.deepEqual(r.asked, []);
  });

  it('errors and warnings against the node they concern; the others ok', () => {
    const files = [path('a.conf'), path('b.conf'), path('same-lip.conf'), path('no-bgp.conf')];
    const out = run(files);
    assert.equal(out.code, 1);
    const s = path('same-lip.conf');
    assert.deepEqual(out.lines, [
      `${path('a.conf')}: ok`,
      `${path('b.conf')}: ok`,
      `${s}:2: local address 10.79.9.1 is also a local address of ${path('a.conf')}:2: each node needs its own LIPs, or real servers' replies reach the wrong node`,
      `${s}:14: neighbor 10.79.0.1 has remote_as 65001 here but 65000 in ${path('a.conf')}:14: one router has one AS`,
      `${s}:15: neighbor 2001:db8:ff::1 has remote_as 65001 here but 65000 in ${path('a.conf')}:15: one router has one AS`,
      `${s}:14: neighbor 10.79.0.1 has remote_as 65001 here but 65000 in ${path('b.conf')}:14: one router has one AS`,
      `${s}:15: neighbor 2001:db8:ff::1 has remote_as 65001 here but 65000 in ${path('b.conf')}:15: one router has one AS`,
      `${path('no-bgp.conf')}: warning: no bgp block while ${path('a.conf')}:11 has one: this node announces nothing, so the router sends it no traffic`,
      `${path('no-bgp.conf')}: ok`,
      '4 files checked: 5 errors, 1 warning',
    ]);
  });

  it('a file that does not parse is reported; the others are still checked together', () => {
    const out = run([path('a.conf'), path('bad.conf'), path('same-lip.conf')]);
    assert.equal(out.code, 1);
    assert.equal(out.lines[0], `${path('a.conf')}: ok`);
    assert.match(out.lines[1]!, /bad\.conf:14: bad remote_as '23456'/);
    assert.match(out.lines[2]!, /bad\.conf:15: bad remote_as '23456'/);
    assert.match(out.lines[3]!, /same-lip\.conf:2: local address 10\.79\.9\.1 is also/);
  });

  it('--json: one document with each finding and its text', () => {
    const out = run([path('a.conf'), path('no-bgp.conf')], { json: true });
    assert.equal(out.code, 0);
    assert.equal(out.lines.length, 1);
    assert.deepEqual(JSON.parse(out.lines[0]!), {
      ok: true,
      files: [
        { file: path('a.conf'), ok: true, errors: [], warnings: [] },
        {
          file: path('no-bgp.conf'),
          ok: true,
          errors: [],
          warnings: [
            {
              file: path('no-bgp.conf'),
              reason: `no bgp block while ${path('a.conf')}:11 has one: this node announces nothing, so the router sends it no traffic`,
              message: `${path('no-bgp.conf')}: no bgp block while ${path('a.conf')}:11 has one: this node announces nothing, so the router sends it no traffic`,
            },
          ],
        },
      ],
    });
    const report = checkFiles([path('a.conf'), path('same-lip.conf')], { offline: true });
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.files.map((f) => [f.ok, f.errors.length]),
      [
        [true, 0],
        [false, 3],
      ],
    );
  });

  it('the fullnat command: exit codes and output', () => {
    const bin = fileURLToPath(new URL('../../../bin/fullnat.js', import.meta.url));
    const ok = spawnSync(
      process.execPath,
      [bin, 'check', '--offline', path('a.conf'), path('b.conf')],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(
      ok.stdout,
      `${path('a.conf')}: ok\n${path('b.conf')}: ok\n2 files checked: 0 errors, 0 warnings\n`,
    );
    const bad = spawnSync(process.execPath, [bin, 'check', '--json', path('bad.conf')], {
      encoding: 'utf8',
    });
    assert.equal(bad.status, 1, bad.stderr);
    const doc = JSON.parse(bad.stdout) as { ok: boolean; files: { errors: { line: number }[] }[] };
    assert.equal(doc.ok, false);
    assert.equal(doc.files[0]!.errors[0]!.line, 14);
  });
});
