/**
 * `fullnat run` as systemd runs it from `fullnat systemd-unit`'s unit: only
 * the unit's CapabilityBoundingSet (setpriv drops the rest, as systemd
 * would), NOTIFY_SOCKET pointing at a listener that stands in for systemd.
 * READY=1 must come once the TUN device is up with its routes and the
 * control socket answers — the listener looks at the namespace the moment
 * the datagram arrives — and STOPPING=1 on SIGTERM, then a clean exit.
 *
 *   lb [fnatsd: VIP 10.97.1.100, LIP 10.97.3.1]
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { CAPABILITIES } from '../../src/cli/systemd-unit.js';
import { tunAvailable } from '../../src/io/tun.js';
import { NetnsLab, netnsAvailable } from '../../src/lab/netns.js';
import { cli, runCtl } from './support/harness.js';

const netns = netnsAvailable();
const tun = tunAvailable();
const skip = !netns.ok
  ? netns.reason
  : !tun.ok
    ? tun.reason
    : spawnSync('setpriv', ['--help']).status !== 0
      ? 'setpriv (util-linux) not available'
      : spawnSync('python3', ['-c', 'pass']).status !== 0
        ? 'python3 not available'
        : undefined;

const lab = new NetnsLab(`sd${process.pid % 100000}`);
const dir = mkdtempSync(join(tmpdir(), 'fullnat-systemd-'));
const DEV = 'fnatsd';
const sock = join(dir, 'fullnat.sock');
const notifySocket = join(dir, 'notify');

const CONFIG = `fullnat_defs {
    interface ${DEV}
    control_socket ${sock}
    state_dir ${dir}/state
}
local_address_group lips {
    10.97.3.1
}
virtual_server 10.97.1.100 80 {
    laddr_group_name lips
    real_server 10.97.2.11 80 {
        weight 1
    }
}
`;

/**
 * systemd's side: binds the notify socket, prints "bound", then for each
 * datagram one JSON line with the message and, for READY=1, the device and
 * routes of namespace argv[2] as `ip` shows them at that moment.
 */
const LISTENER = `
import json, socket, subprocess, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
print('bound', flush=True)
while True:
    msg = s.recv(4096).decode()
    seen = {'msg': msg}
    if 'READY=1' in msg.split('\\n'):
        ip = lambda *a: subprocess.run(['ip', '-n', sys.argv[2], *a], capture_output=True, text=True).stdout
        seen['link'] = ip('-o', 'link', 'show', 'dev', sys.argv[3])
        seen['routes'] = ip('route', 'show', 'dev', sys.argv[3])
    print(json.dumps(seen), flush=True)
    if 'STOPPING=1' in msg.split('\\n'):
        break
`;

interface Seen {
  msg: string;
  link?: string;
  routes?: string;
}

let listener: ChildProcess;
let heard: Seen[] = [];
let lb: ChildProcess;
let lbErr = '';

async function until(what: string, fn: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > end) assert.fail(`${what}: not within ${timeoutMs} ms\n${lbErr.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  if (skip) return;
  lab.addHost('lb');
  writeFileSync(join(dir, 'lb.conf'), CONFIG);
  listener = spawn('python3', ['-c', LISTENER, notifySocket, lab.ns('lb'), DEV], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let buf = '';
  let bound = false;
  listener.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line === 'bound') bound = true;
      else heard.push(JSON.parse(line) as Seen);
    }
  });
  await until('the notify listener bound', () => bound, 10_000);
  const caps = CAPABILITIES.map((c) => `+${c.slice('CAP_'.length).toLowerCase()}`).join(',');
  lb = lab.spawn(
    'lb',
    'setpriv',
    [`--bounding-set=-all,${caps}`, process.execPath, cli, 'run', '-f', join(dir, 'lb.conf')],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: notifySocket } },
  );
  lb.stderr!.on('data', (c: Buffer) => (lbErr += c.toString()));
});

after(async () => {
  lb?.kill('SIGKILL');
  listener?.kill();
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
  heard = [];
});

test(
  "READY=1 once the TUN device and its routes are up, under the unit's capabilities only",
  { skip, timeout: 60_000 },
  async () => {
    await until('READY=1', () => heard.some((h) => h.msg === 'READY=1'), 30_000);
    const ready = heard.find((h) => h.msg === 'READY=1')!;
    assert.equal(heard.indexOf(ready), 0, `READY=1 is the first message: ${JSON.stringify(heard)}`);
    assert.match(ready.link ?? '', new RegExp(`^\\d+: ${DEV}: <[^>]*\\bUP\\b`), 'the device is up');
    assert.match(ready.routes ?? '', /^10\.97\.1\.100 /m, 'the VIP is routed into the device');
    assert.match(ready.routes ?? '', /^10\.97\.3\.1 /m, 'the LIP is routed into the device');
    const list = runCtl(lab, sock, ['-Ln']);
    assert.equal(list.code, 0, list.out);
    assert.match(list.out, /^IP Virtual Server version 1\.2\.1 \(size=\d+\)\nProt LocalAddress/);
    // Nothing but CAP_NET_ADMIN, CAP_NET_BIND_SERVICE and CAP_NET_RAW was in the set it ran with.
    assert.doesNotMatch(lbErr, /EPERM|operation not permitted/i, lbErr);
  },
);

test('STOPPING=1 on SIGTERM, then a clean exit', { skip, timeout: 30_000 }, async () => {
  const exited = new Promise<number | null>((r) => lb.once('exit', (code) => r(code)));
  lb.kill('SIGTERM');
  await until('STOPPING=1', () => heard.some((h) => h.msg === 'STOPPING=1'), 15_000);
  assert.equal(await exited, 0, lbErr.slice(-2000));
});

test(
  'without CAP_NET_ADMIN in the set, run fails and says why',
  { skip, timeout: 30_000 },
  async () => {
    lab.addHost('bare');
    const bare = lab.spawn(
      'bare',
      'setpriv',
      [
        '--bounding-set=-all,+net_bind_service,+net_raw',
        process.execPath,
        cli,
        'run',
        '-f',
        join(dir, 'lb.conf'),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    bare.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((r) => bare.once('exit', (c) => r(c)));
    assert.notEqual(code, 0, err);
    assert.match(err, /EPERM|not permitted/i);
  },
);
