/**
 * bird2's configuration as fullnat writes it: what it holds, what it must
 * never hold (a kernel protocol), and bird's own parser accepting it
 * (`bird -p`, parse only).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BACKUP_PREPEND,
  birdConfig,
  sessionName,
} from '../../../src/control/cluster/bird-config.js';
import { ipv4, ipv6 } from '../../support/addresses.js';
import { bgpSpec, birdTools, neighbor } from '../../support/bird.js';

const tools = birdTools();

const spec = bgpSpec({
  routerId: ipv4('10.79.0.11'),
  localAs: 65011,
  neighbors: [
    neighbor('10.79.0.1', 65000, { holdTime: 3, bfd: true, sourceAddress: ipv4('10.79.0.11') }),
    neighbor('10.79.0.2', 65000, { holdTime: 0 }),
    { ...neighbor('10.79.0.3', 65001), addr: ipv6('fd00:79::1') },
  ],
  communities: [
    [65000, 100],
    [65000, 200],
  ],
  med: 10,
  bfdInterval: 50,
  bfdMultiplier: 5,
});
const prefixes = ['10.79.100.1/32', '10.79.9.0/28', '2001:db8::100/128'];

/** bird's verdict on a file: '' when it parses, else its message. */
function birdParse(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'fullnat-birdconf-'));
  try {
    const file = join(dir, 'bird.conf');
    writeFileSync(file, text);
    execFileSync(tools.bird, ['-p', '-c', file], { stdio: 'pipe' });
    return '';
  } catch (e) {
    return String((e as { stderr?: Buffer }).stderr ?? e);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the whole file: router id, static blackhole routes, BFD, one session per neighbour', () => {
  const text = birdConfig(spec, prefixes);
  assert.match(text, /^router id 10\.79\.0\.11;$/m);
  assert.match(
    text,
    /protocol static fullnat_announce \{\n {4}ipv4;\n {4}route 10\.79\.100\.1\/32 blackhole;\n {4}route 10\.79\.9\.0\/28 blackhole;\n\}/,
  );
  assert.match(
    text,
    /protocol static fullnat_announce6 \{\n {4}ipv6;\n {4}route 2001:db8::100\/128 blackhole;\n\}/,
  );
  assert.match(text, /interval 50 ms;\n {8}multiplier 5;/);
  assert.match(
    text,
    /bgp_community\.add\(\(65000, 100\)\);\n {8}bgp_community\.add\(\(65000, 200\)\);\n {8}bgp_med = 10;/,
  );
  const first = text.slice(text.indexOf(`protocol bgp ${sessionName(ipv4('10.79.0.1'))}`));
  assert.match(
    first,
    /local as 65011;\n {4}neighbor 10\.79\.0\.1 as 65000;\n {4}hold time 3;\n {4}source address 10\.79\.0\.11;\n {4}bfd on;/,
  );
  assert.match(text, /neighbor 10\.79\.0\.2 as 65000;\n {4}hold time 0;\n {4}ipv4 \{/);
  // An IPv6 neighbour gets the IPv6 channel.
  assert.match(text, /neighbor fd00:79::1 as 65001;\n {4}hold time 9;\n {4}ipv6 \{/);
  assert.equal(text.match(/export filter fullnat_export;/g)?.length, 3);
  assert.equal(text.match(/import none;/g)?.length, 3);
});

test('bird never touches the node’s routes: no kernel protocol, only static routes exported', () => {
  for (const text of [birdConfig(spec, prefixes), birdConfig(spec, [])]) {
    assert.doesNotMatch(text, /protocol kernel/);
    assert.doesNotMatch(text, /export all/);
    assert.match(text, /if proto = "fullnat_announce" \|\| proto = "fullnat_announce6" then/);
    assert.match(text, /\n {4}reject;\n\}/);
  }
});

test('without BFD on any neighbour there is no BFD protocol; MED and communities are optional', () => {
  const plain = bgpSpec({ routerId: ipv4('10.0.0.1'), neighbors: [neighbor('10.0.0.2', 65000)] });
  const text = birdConfig(plain, ['10.0.0.100/32']);
  assert.doesNotMatch(text, /protocol bfd/);
  assert.doesNotMatch(text, /bgp_med|bgp_community/);
  assert.doesNotMatch(text, /bfd on/);
});

test('the include of an attached bird: statics and the filter only', () => {
  const text = birdConfig(spec, prefixes, { mode: 'include' });
  assert.doesNotMatch(text, /router id|protocol bgp|protocol bfd|protocol device|log /);
  assert.match(text, /protocol static fullnat_announce \{/);
  assert.match(text, /filter fullnat_export \{/);
});

test('the file is the same for the same input (a rewrite with no change is seen as none)', () => {
  assert.equal(birdConfig(spec, prefixes), birdConfig(spec, [...prefixes]));
});

const backups = ['10.79.9.16/28', '2001:db8:9::/64'];
const withBackups = [...prefixes, ...backups];

test('backups: static protocols of their own, exported with the local AS prepended three times', () => {
  assert.equal(BACKUP_PREPEND, 3);
  const text = birdConfig(spec, withBackups, { backup: backups });
  assert.match(
    text,
    /protocol static fullnat_backup \{\n {4}ipv4;\n {4}route 10\.79\.9\.16\/28 blackhole;\n\}/,
  );
  assert.match(
    text,
    /protocol static fullnat_backup6 \{\n {4}ipv6;\n {4}route 2001:db8:9::\/64 blackhole;\n\}/,
  );
  // The own prefixes stay where they were, without the backups.
  assert.match(
    text,
    /protocol static fullnat_announce \{\n {4}ipv4;\n {4}route 10\.79\.100\.1\/32 blackhole;\n {4}route 10\.79\.9\.0\/28 blackhole;\n\}/,
  );
  assert.match(
    text,
    /protocol static fullnat_announce6 \{\n {4}ipv6;\n {4}route 2001:db8::100\/128 blackhole;\n\}/,
  );
  // Communities and MED on the backups too, after the longer path.
  assert.match(
    text,
    /if proto = "fullnat_backup" \|\| proto = "fullnat_backup6" then \{\n(?: {8}bgp_path\.prepend\(65011\);\n){3} {8}bgp_community\.add\(\(65000, 100\)\);\n {8}bgp_community\.add\(\(65000, 200\)\);\n {8}bgp_med = 10;\n {8}accept;\n {4}\}\n {4}reject;\n\}/,
  );
  assert.equal(text.match(/bgp_path\.prepend/g)?.length, 3);
  assert.match(text, /if proto = "fullnat_announce" \|\| proto = "fullnat_announce6" then/);
  assert.doesNotMatch(text, /protocol kernel/);
  // In the include of an attached bird alike.
  const inc = birdConfig(spec, withBackups, { mode: 'include', backup: backups });
  assert.match(inc, /protocol static fullnat_backup \{/);
  assert.equal(inc.match(/bgp_path\.prepend\(65011\);/g)?.length, 3);
});

test('without backups the file has no backup protocol and no prepend (a node without sync is as before)', () => {
  for (const text of [
    birdConfig(spec, prefixes),
    birdConfig(spec, prefixes, { backup: [] }),
    // A backup that is not announced (the sync gate holds everything back) is no backup either.
    birdConfig(spec, [], { backup: backups }),
  ]) {
    assert.doesNotMatch(text, /fullnat_backup|bgp_path/);
  }
  assert.equal(birdConfig(spec, prefixes, { backup: [] }), birdConfig(spec, prefixes));
});

test(
  'bird parses the file fullnat writes (bird -p)',
  { skip: tools.ok ? false : tools.reason },
  () => {
    assert.equal(birdParse(birdConfig(spec, prefixes)), '');
    assert.equal(birdParse(birdConfig(spec, [])), '');
    const plain = bgpSpec({ routerId: ipv4('10.0.0.1'), neighbors: [neighbor('10.0.0.2', 65000)] });
    assert.equal(birdParse(birdConfig(plain, ['10.0.0.100/32'])), '');
    // With backups, both families and one alone.
    assert.equal(birdParse(birdConfig(spec, withBackups, { backup: backups })), '');
    assert.equal(
      birdParse(birdConfig(plain, ['10.0.0.100/32', '10.0.9.0/28'], { backup: ['10.0.9.0/28'] })),
      '',
    );
    // The include inside an operator's own file, whose session uses fullnat's filter.
    const dir = mkdtempSync(join(tmpdir(), 'fullnat-birdinc-'));
    try {
      const inc = join(dir, 'fullnat.conf');
      writeFileSync(inc, birdConfig(spec, prefixes, { mode: 'include' }));
      const main = [
        'router id 10.0.0.1;',
        'protocol device {}',
        `include "${inc}";`,
        'protocol bgp up { local as 65011; neighbor 10.0.0.2 as 65000; ipv4 { import none; export filter fullnat_export; }; }',
        '',
      ].join('\n');
      assert.equal(birdParse(main), '');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // And the check is real: bird refuses a broken file.
    assert.notEqual(birdParse('protocol static { ipv4; route 10.0.0.1/32 nowhere; }'), '');
  },
);
