/**
 * Real servers behind `fullnat run` learn the client's address without any
 * change to the server: the eBPF receiver (`fullnat rs exec`) for a plain
 * Node server and for nginx, and PROXY protocol v2 for nginx `proxy_protocol`.
 *
 *   client 10.79.1.2 ── 10.79.1.1 [LB fnat0: VIP 10.79.0.100:80/81/82, LIPs 10.79.3.1-2] 10.79.2.1 ── RS 10.79.2.11
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsLab } from '../../src/lab/netns.js';
import { cli, fixtures, runClient, runCtl, until as untilOr } from './support/harness.js';
import {
  attachReceiver,
  nginxConfig,
  receiverFor,
  receiverUnavailable,
  spawnUnderReceiver,
  tearDown,
} from './support/receiver.js';

const VIP = '10.79.0.100';
const CLIENT = '10.79.1.2';

const why = (): string | undefined => receiverUnavailable(['nginx', 'bpftool']);

const skip = why();
const pid = process.pid % 100000;
const lab = new NetnsLab(`fr${pid}`);
const dir = mkdtempSync(join(tmpdir(), 'fullnat-rs-'));
const confPath = join(dir, 'lb.conf');
const sock = join(dir, 'fullnat.sock');
const receiver = receiverFor(`e2e-${pid}`);
const { pinDir, rsFlags } = receiver;
let lbProc: ChildProcess | undefined;
let lbLog = '';

function config(toaPolicy: string): string {
  return `fullnat_defs {
    interface fnat1
    toa_policy ${toaPolicy}
    control_socket ${sock}
}
local_address_group lips {
    10.79.3.1
    10.79.3.2
}
virtual_server ${VIP} 80 {
    lb_algo rr
    laddr_group_name lips
    real_server 10.79.2.11 8080 { weight 1 }
}
virtual_server ${VIP} 81 {
    lb_algo rr
    laddr_group_name lips
    real_server 10.79.2.11 8081 { weight 1 }
}
virtual_server ${VIP} 82 {
    lb_algo rr
    laddr_group_name lips
    proxy_protocol v2
    real_server 10.79.2.11 8082 { weight 1 }
}
`;
}

function nginxConf(): string {
  return nginxConfig(
    dir,
    `    log_format peer '$remote_addr:$remote_port';
    log_format pp '$proxy_protocol_addr:$proxy_protocol_port';
    server {
        listen 8081;
        access_log ${dir}/toa.log peer;
        location / { return 200 "ok\\n"; }
    }
    server {
        listen 8082 proxy_protocol;
        access_log ${dir}/pp.log pp;
        location / {
            root ${dir}/www;
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 64m;
        }
    }
`,
  );
}

const spawnOnRs = (cmd: string, args: string[]): ChildProcess =>
  spawnUnderReceiver(lab, rsFlags, 'r1', cmd, args);

const client = (args: string[], timeoutMs?: number): Record<string, unknown> =>
  runClient(lab, args, timeoutMs);

const ctl = (args: string[]): { code: number; out: string } => runCtl(lab, sock, args);

function rsStatus(): Record<string, number> {
  const text = execFileSync(
    process.execPath,
    [cli, 'rs', 'status', '--json', '--pin-dir', pinDir],
    { encoding: 'utf8' },
  );
  return (JSON.parse(text) as { counters: Record<string, number> }).counters;
}

const until = (what: string, fn: () => boolean, timeoutMs: number): Promise<void> =>
  untilOr(what, fn, timeoutMs, () => lbLog.slice(-2000));

type Seen = { seen: { localPort: number; body: string }[]; failed: number };

before(async () => {
  if (skip) return;
  for (const h of ['c', 'lb', 'r1']) lab.addHost(h);
  lab.link('c', 'eth0', `${CLIENT}/24`, 'lb', 'eth0', '10.79.1.1/24');
  lab.link('lb', 'eth1', '10.79.2.1/24', 'r1', 'eth0', '10.79.2.11/24');
  lab.ip('c', 'route', 'add', 'default', 'via', '10.79.1.1');
  lab.ip('r1', 'route', 'add', 'default', 'via', '10.79.2.1');
  mkdirSync(join(dir, 'www'));
  attachReceiver(rsFlags);
  spawnOnRs(process.execPath, [join(fixtures, 'rs-server.js'), 'r1', '8080']);
  writeFileSync(join(dir, 'nginx.conf'), nginxConf());
  spawnOnRs('nginx', ['-c', join(dir, 'nginx.conf')]);
  writeFileSync(confPath, config('fullnat'));
  lbProc = lab.spawn('lb', process.execPath, [cli, 'run', '-f', confPath]);
  lbProc.stderr!.on('data', (c: Buffer) => (lbLog += c.toString()));
  await until('LB control socket', () => ctl(['-Ln']).code === 0, 15_000);
  await until(
    'servers listening',
    () =>
      /:8080\b/.test(lab.exec('r1', 'ss', ['-ltn'])) &&
      /:8082\b/.test(lab.exec('r1', 'ss', ['-ltn'])),
    10_000,
  );
});

after(() => tearDown(lab, dir, skip ? undefined : receiver));

test(
  'an unmodified Node server sees the true client address and port on 500 of 500 connections',
  { skip },
  () => {
    const r = client(['peers', `http://${VIP}:80`, '500']) as unknown as Seen;
    assert.equal(r.failed, 0);
    assert.equal(r.seen.length, 500);
    const wrong = r.seen.filter((s) => s.body !== `r1 ${CLIENT}:${s.localPort}`);
    assert.deepEqual(wrong.slice(0, 3), [], `${wrong.length} connections saw another address`);
  },
);

test(
  'unmodified nginx logs the true client address and port ($remote_addr:$remote_port)',
  { skip },
  async () => {
    const r = client(['peers', `http://${VIP}:81`, '100']) as unknown as Seen;
    assert.equal(r.failed, 0);
    const expected = new Set(r.seen.map((s) => `${CLIENT}:${s.localPort}`));
    let lines: string[] = [];
    await until(
      '100 nginx log lines',
      () => {
        lines = existsSync(join(dir, 'toa.log'))
          ? readFileSync(join(dir, 'toa.log'), 'utf8').trim().split('\n')
          : [];
        return lines.length >= 100;
      },
      5_000,
    );
    assert.equal(lines.length, 100);
    assert.ok(
      lines.every((l) => expected.has(l)),
      lines
        .filter((l) => !expected.has(l))
        .slice(0, 3)
        .join(' '),
    );
  },
);

test('rs status counts every handshake, all with a TOA', { skip }, () => {
  const c = rsStatus();
  assert.equal(c.withToa, 600);
  assert.equal(c.withoutToa, 0);
  assert.equal(c.malformed, 0);
});

test(
  'with toa_policy off the same server sees the LIP: the receiver is what made the difference',
  { skip },
  () => {
    writeFileSync(confPath, config('off'));
    assert.equal(ctl(['--reload']).code, 0);
    const r = client(['peers', `http://${VIP}:80`, '20']) as unknown as Seen;
    assert.equal(r.failed, 0);
    assert.ok(
      r.seen.every((s) => /^r1 10\.79\.3\.[12]:\d+$/.test(s.body)),
      r.seen[0]?.body,
    );
    writeFileSync(confPath, config('fullnat'));
    assert.equal(ctl(['--reload']).code, 0);
  },
);

test(
  'nginx listen … proxy_protocol behind proxy_protocol v2 logs the client; a 20 MB upload is byte-identical',
  { skip },
  async () => {
    const size = 20 * 1024 * 1024;
    const r = client(['put', `http://${VIP}:82/up.bin`, String(size)]);
    assert.ok(r.status === 201 || r.status === 204, `PUT status ${String(r.status)}`);
    const stored = readFileSync(join(dir, 'www', 'up.bin'));
    assert.equal(stored.length, size);
    assert.equal(createHash('sha256').update(stored).digest('hex'), r.sent);
    const g = client(['peers', `http://${VIP}:82/`, '5']) as unknown as Seen;
    assert.equal(g.failed, 0);
    let lines: string[] = [];
    await until(
      'proxy-protocol log lines',
      () => {
        lines = readFileSync(join(dir, 'pp.log'), 'utf8').trim().split('\n');
        return lines.length >= 6;
      },
      5_000,
    );
    const expected = new Set(g.seen.map((s) => `${CLIENT}:${s.localPort}`));
    assert.ok(lines[0]!.startsWith(`${CLIENT}:`), lines[0]);
    assert.ok(
      lines.slice(1).every((l) => expected.has(l)),
      lines.join(' '),
    );
  },
);
