/**
 * Faults on real kernels: a real server crashing mid-transfer, a real
 * server's network cut, and the LB itself killed with SIGKILL and started
 * again. Each must end in a clean state, not stuck entries or dead routes.
 *
 *   client 10.82.1.2 ── 10.82.1.1 [LB fnat2: VIP 10.82.0.100] 10.82.2.1 ── br0 ── RS 10.82.2.11 / .12
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

const VIP = '10.82.0.100';
const URL = `http://${VIP}`;
const netns = netnsAvailable();
const tun = tunAvailable();
const skip = !netns.ok ? netns.reason : !tun.ok ? tun.reason : undefined;

const lab = new NetnsLab(`ff${process.pid % 100000}`);
const dir = mkdtempSync(join(tmpdir(), 'fullnat-faults-'));
const confPath = join(dir, 'lb.conf');
const sock = join(dir, 'fullnat.sock');
const servers = new Map<string, ChildProcess>();
let lbProc: ChildProcess | undefined;
let lbLog = '';

const client = (args: string[], timeoutMs?: number): Record<string, unknown> =>
  runClient(lab, args, timeoutMs);
const ctl = (args: string[]): { code: number; out: string } => runCtl(lab, sock, args);
const until = (what: string, fn: () => boolean, timeoutMs: number): Promise<void> =>
  untilOr(what, fn, timeoutMs, () => lbLog.slice(-2000));
const connectionLines = (): string[] =>
  ctl(['-Lnc'])
    .out.split('\n')
    .filter((l) => l.startsWith('TCP'));

const CONFIG = `fullnat_defs {
    interface fnat2
    napi_thread off              # the write path without NAPI runs here (live.test.ts uses the default)
    control_socket ${sock}
    timeout_fin_wait 2
    timeout_time_wait 2
    timeout_close 1
    timeout_close_wait 2
    timeout_last_ack 2
    timeout_established 6
}
local_address_group lips {
    10.82.3.1
}
virtual_server ${VIP} 80 {
    delay_loop 1
    lb_algo rr
    laddr_group_name lips
    real_server 10.82.2.11 8080 {
        inhibit_on_failure
        TCP_CHECK { connect_timeout 1 retry 1 }
    }
    real_server 10.82.2.12 8080 {
        inhibit_on_failure
        TCP_CHECK { connect_timeout 1 retry 1 }
    }
}
`;

function startServer(host: string): Promise<void> {
  const child = lab.spawn(host, process.execPath, [join(fixtures, 'rs-server.js'), host, '8080']);
  servers.set(host, child);
  return untilServing(child, host);
}

function startLb(): void {
  lbProc = lab.spawn('lb', process.execPath, [cli, 'run', '-f', confPath]);
  lbProc.stderr!.on('data', (c: Buffer) => (lbLog += c.toString()));
}

before(async () => {
  if (skip) return;
  buildTopology(lab, '10.82', ['r1', 'r2']);
  await Promise.all([startServer('r1'), startServer('r2')]);
  writeFileSync(confPath, CONFIG);
  startLb();
  await until('LB up', () => ctl(['-Ln']).code === 0, 15_000);
});

after(async () => {
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/** From the RS's death to the client's ECONNRESET: the LB forwards the RS's reset (or FIN) at once. */
const RESET_BOUND_MS = 5_000;

test(
  'an RS crashing mid-transfer: the client gets a reset, no entry stays behind',
  { skip },
  async () => {
    // Both RS serve; a long download lands on one of them, which is then killed.
    const download = lab.spawn('c', process.execPath, [
      join(fixtures, 'client.js'),
      'download',
      URL,
      // Far more than can arrive before the kill, even at tens of Gbit/s with TUN offloads.
      String(1_000_000_000_000),
    ]);
    let out = '';
    download.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    download.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    await until(
      'transfer running',
      () => connectionLines().some((l) => l.includes('ESTABLISHED')),
      5_000,
    );
    const victim = connectionLines()
      .find((l) => l.includes('ESTABLISHED'))!
      .includes('10.82.2.11')
      ? 'r1'
      : 'r2';
    const killedAt = Date.now();
    servers.get(victim)!.kill('SIGKILL');
    // The reset must reach the client promptly: its own deadline (60 s) is not an answer.
    const exit = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no reset within ${RESET_BOUND_MS} ms of the kill: ${out}`)),
        RESET_BOUND_MS,
      );
      download.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    const elapsed = Date.now() - killedAt;
    assert.notEqual(exit, 0, 'the client saw the transfer fail');
    const result = JSON.parse(out.trim().split('\n').pop()!) as { code?: string; error?: string };
    assert.equal(result.code, 'ECONNRESET', `the client saw ${out}`);
    assert.ok(elapsed <= RESET_BOUND_MS, `reset after ${elapsed} ms`);
    await until('connection table empty', () => connectionLines().length === 0, 10_000).catch(
      (e: Error) => {
        throw new Error(`${e.message}\n${connectionLines().join('\n')}`);
      },
    );
    await startServer(victim);
    await until(`${victim} back in`, () => !/FullNat\s+0\s/.test(ctl(['-Ln']).out), 5_000);
  },
);

test(
  'an RS whose network is cut is taken out by its health check; traffic goes to the other',
  { skip },
  async () => {
    lab.ip('lb', 'link', 'set', 'rs2', 'down');
    await until(
      'r2 weight 0',
      () => /10\.82\.2\.12:8080\s+FullNat\s+0\s/.test(ctl(['-Ln']).out),
      5_000,
    );
    const r = client(['many', URL, '20']);
    assert.deepEqual(r.counts, { r1: 20 });
    assert.equal(r.failed, 0);
    lab.ip('lb', 'link', 'set', 'rs2', 'up');
    await until(
      'r2 back',
      () => /10\.82\.2\.12:8080\s+FullNat\s+1\s/.test(ctl(['-Ln']).out),
      8_000,
    );
  },
);

test(
  'the LB killed with SIGKILL and started again: device, routes and service come back',
  { skip },
  async () => {
    lbProc!.kill('SIGKILL');
    await new Promise((r) => lbProc!.once('exit', r));
    // A non-persistent TUN dies with its process, and its routes with it.
    await until('fnat2 gone', () => !/fnat2/.test(lab.ip('lb', 'link')), 5_000);
    startLb();
    await until(
      'LB up again (stale control socket replaced)',
      () => ctl(['-Ln']).code === 0,
      15_000,
    );
    assert.match(lab.ip('lb', 'route'), /10\.82\.0\.100 dev fnat2/);
    const r = client(['many', URL, '20']);
    assert.equal(r.failed, 0);
    assert.equal(
      ((r.counts as Record<string, number>).r1 ?? 0) +
        ((r.counts as Record<string, number>).r2 ?? 0),
      20,
    );
  },
);
