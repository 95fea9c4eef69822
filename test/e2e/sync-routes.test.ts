/**
 * A sync node's routes on a real kernel: each sync peer's `lip_prefix`
 * routed into the TUN device like the node's own LIPs (the router sends a
 * dead peer's real servers' replies here), the device's reverse-path filter
 * off as for those, and every route gone with a real stop. The LB runs in
 * namespace `lb` from a fixture that builds its sync block in place.
 *
 *   lb [fnatsr: VIP 10.95.1.100, LIP 10.95.3.1; peers' prefixes 10.95.9.16/28, 10.95.9.32/28, fd00:95:9::/64]
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tunAvailable } from '../../src/io/tun.js';
import { NetnsLab, netnsAvailable } from '../../src/lab/netns.js';
import { fixtures } from './support/harness.js';

const netns = netnsAvailable();
const tun = tunAvailable();
const skip = !netns.ok ? netns.reason : !tun.ok ? tun.reason : undefined;

const lab = new NetnsLab(`sr${process.pid % 100000}`);
const dir = mkdtempSync(join(tmpdir(), 'fullnat-sync-routes-'));
const DEV = 'fnatsr';
const PEERS = [
  { addr: '10.95.0.12', nodeId: 2, lipPrefixes: ['10.95.9.20/28'] },
  { addr: '10.95.0.13', nodeId: 3, lipPrefixes: ['10.95.9.32/28', 'fd00:95:9::/64'] },
];

const CONFIG = `fullnat_defs {
    interface ${DEV}
    state_dir ${dir}/state
}
local_address_group lips {
    10.95.3.1
}
virtual_server 10.95.1.100 80 {
    laddr_group_name lips
    real_server 10.95.2.11 80 {
        weight 1
    }
}
`;

let proc: ChildProcess;
let out = '';
let err = '';

async function untilOut(line: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!out.split('\n').includes(line)) {
    if (Date.now() > end || proc.exitCode !== null)
      assert.fail(`no '${line}' from the LB (exit ${proc.exitCode}): ${out}${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sysctlIn = (key: string): string =>
  execFileSync('ip', ['netns', 'exec', lab.ns('lb'), 'cat', `/proc/sys/${key}`], {
    encoding: 'utf8',
  }).trim();

before(async () => {
  if (skip) return;
  lab.addHost('lb');
  const conf = join(dir, 'lb.conf');
  writeFileSync(conf, CONFIG);
  proc = lab.spawn(
    'lb',
    process.execPath,
    [join(fixtures, 'sync-lb.js'), conf, JSON.stringify(PEERS)],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  await untilOut('started');
});

after(async () => {
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test(
  'the peers’ LIP prefixes route into the TUN like the own LIP, rp_filter off on it',
  { skip },
  () => {
    const v4 = lab.ip('lb', 'route', 'show', 'dev', DEV);
    for (const r of ['10.95.1.100', '10.95.3.1', '10.95.9.16/28', '10.95.9.32/28'])
      assert.match(v4, new RegExp(`^${r.replace(/\./g, '\\.')} `, 'm'), `${r} in\n${v4}`);
    assert.match(lab.ip('lb', '-6', 'route', 'show', 'dev', DEV), /^fd00:95:9::\/64 /m);
    // Any address in a peer's prefix goes to the LB, as the peer's LIPs in use would.
    assert.match(lab.ip('lb', 'route', 'get', '10.95.9.29'), new RegExp(`dev ${DEV}`));
    assert.match(lab.ip('lb', '-6', 'route', 'get', 'fd00:95:9::7'), new RegExp(`dev ${DEV}`));
    assert.equal(sysctlIn(`net/ipv4/conf/${DEV}/rp_filter`), '0');
    assert.equal(sysctlIn('net/ipv6/conf/all/forwarding'), '1');
  },
);

test('a real stop removes them with the device', { skip }, async () => {
  proc.stdin!.write('stop\n');
  await untilOut('stopped');
  await new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once('exit', r)));
  assert.doesNotMatch(lab.ip('lb', 'route'), /10\.95\.|fnatsr/);
  assert.doesNotMatch(lab.ip('lb', '-6', 'route'), /fd00:95|fnatsr/);
  assert.doesNotMatch(lab.ip('lb', 'link'), new RegExp(DEV));
});
