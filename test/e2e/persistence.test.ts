/**
 * Client persistence on real kernels: 1,000 connections from one client to
 * a persistent service (rr over two real servers, which alone would
 * alternate) all reach one RS, counted where they are accepted; `ctl -Lnc`
 * lists the template as ipvsadm does (state NONE, client port 0) and `ctl
 * -Ln` the service as `persistent 3`; once the connections are gone and the
 * 3 s timeout has passed, the template goes and new connections reach the
 * other RS.
 *
 *   client 10.118.1.2 ── 10.118.1.1 [LB fnatps: VIP 10.118.0.100] 10.118.2.1 ── br0 ── RS 10.118.2.11 / .12
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsLab, netnsAvailable } from '../../src/lab/netns.js';
import { tunAvailable } from '../../src/io/tun.js';
import {
  cli,
  fixtures,
  runClient,
  runCtl,
  until as untilOr,
  buildTopology,
  untilServing,
} from './support/harness.js';

const VIP = '10.118.0.100';
const URL = `http://${VIP}`;
const CLIENT = '10.118.1.2';
const RS = { r1: '10.118.2.11', r2: '10.118.2.12' } as const;
const netns = netnsAvailable();
const tun = tunAvailable();
const skip = !netns.ok ? netns.reason : !tun.ok ? tun.reason : undefined;

const lab = new NetnsLab(`ps${process.pid % 100000}`);
const dir = mkdtempSync(join(tmpdir(), 'fullnat-persist-'));
const confPath = join(dir, 'lb.conf');
const sock = join(dir, 'fullnat.sock');
/** Connections each RS accepted, from its own log. */
const accepted: Record<string, number> = { r1: 0, r2: 0 };
let lbLog = '';

const ctl = (args: string[]): { code: number; out: string } => runCtl(lab, sock, args);
const until = (what: string, fn: () => boolean, timeoutMs: number): Promise<void> =>
  untilOr(what, fn, timeoutMs, () => lbLog.slice(-2000));
const templateLines = (): string[] =>
  ctl(['-Lnc'])
    .out.split('\n')
    .filter((l) => /^TCP\s+\d\d:\d\d\s+NONE\s/.test(l));

const CONFIG = `fullnat_defs {
    interface fnatps
    control_socket ${sock}
    timeout_fin_wait 1
    timeout_time_wait 1
    timeout_close 1
    timeout_close_wait 1
    timeout_last_ack 1
}
local_address_group lips {
    10.118.3.1
}
virtual_server ${VIP} 80 {
    lb_algo rr
    persistence_timeout 3
    laddr_group_name lips
    real_server ${RS.r1} 8080 {
        weight 1
    }
    real_server ${RS.r2} 8080 {
        weight 1
    }
}
`;

function startServer(host: 'r1' | 'r2'): Promise<void> {
  const child: ChildProcess = lab.spawn(host, process.execPath, [
    join(fixtures, 'rs-server.js'),
    host,
    '8080',
  ]);
  let buf = '';
  child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) if (l.includes('"event":"conn"')) accepted[host]!++;
  });
  return untilServing(child, host);
}

before(async () => {
  if (skip) return;
  buildTopology(lab, '10.118', ['r1', 'r2']);
  await Promise.all([startServer('r1'), startServer('r2')]);
  writeFileSync(confPath, CONFIG);
  const lb = lab.spawn('lb', process.execPath, [cli, 'run', '-f', confPath]);
  lb.stderr!.on('data', (c: Buffer) => (lbLog += c.toString()));
  await until('LB up', () => ctl(['-Ln']).code === 0, 15_000);
});

after(async () => {
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test(
  '1,000 connections from one client reach one RS; -Lnc shows the template; after it expires the other RS',
  { skip },
  async () => {
    assert.match(ctl(['-Ln']).out, new RegExp(`TCP  ${VIP}:80 rr persistent 3\\n`));

    const r = runClient(lab, ['many', URL, '1000']) as {
      counts: Record<string, number>;
      failed: number;
    };
    assert.equal(r.failed, 0, JSON.stringify(r));
    const names = Object.keys(r.counts);
    assert.equal(names.length, 1, `one RS answered every connection: ${JSON.stringify(r.counts)}`);
    const first = names[0] as 'r1' | 'r2';
    const other = first === 'r1' ? 'r2' : 'r1';
    assert.equal(r.counts[first], 1000);
    // The RS side: the servers' own accept logs.
    await until('accept logs read', () => accepted[first] === 1000, 5_000);
    assert.equal(accepted[other], 0, `the other RS accepted nothing: ${JSON.stringify(accepted)}`);

    // ipvsadm's template line: TCP, expiry, NONE, the client with port 0, the VIP, the RS.
    const lines = templateLines();
    assert.equal(lines.length, 1, ctl(['-Lnc']).out);
    // ipvsadm's six columns (the LB's local address only behind --lip, where a template has 0.0.0.0:0).
    const cols = lines[0]!.trim().split(/\s+/);
    assert.deepEqual(
      [cols[0], cols[2], cols[3], cols[4], cols[5], cols.length],
      ['TCP', 'NONE', `${CLIENT}:0`, `${VIP}:80`, `${RS[first]}:8080`, 6],
    );
    assert.match(cols[1]!, /^00:0[0-3]$/, 'expires within the 3 s timeout');

    // Connections end (TIME_WAIT 1 s), then the template's 3 s pass: it goes.
    await until('template expired', () => templateLines().length === 0, 20_000);
    const after = runClient(lab, ['many', URL, '20']) as {
      counts: Record<string, number>;
      failed: number;
    };
    assert.equal(after.failed, 0);
    assert.deepEqual(
      after.counts,
      { [other]: 20 },
      'scheduled afresh: rr moves on, and the new template holds',
    );
    assert.equal(templateLines().length, 1);
    assert.ok(templateLines()[0]!.includes(`${RS[other]}:8080`));
  },
);
