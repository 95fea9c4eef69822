/**
 * `lb_kind NAT` end to end on real kernels: the real server sees the
 * client's own address (no TOA, no receiver) and routes its replies back
 * through the LB, whose rule (`from RIP ipproto tcp sport RPORT`) steers
 * them into the TUN; the LB's own health checks to the same RIP:RPORT stay
 * local.
 *
 *   client 10.117.1.2 ── 10.117.1.1 [LB: fnat17 ← VIP 10.117.0.100] 10.117.2.1 ── br0 ── RS 10.117.2.11 (default via the LB)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsLab, netnsAvailable } from '../../src/lab/netns.js';
import { tunAvailable } from '../../src/io/tun.js';
import { patternChunk } from './fixtures/pattern.js';
import {
  buildTopology,
  cli,
  fixtures,
  runCtl,
  until as untilOr,
  untilServing,
} from './support/harness.js';
import { RsConnections, downloadLoop, engineCounters, uploadLoop } from './support/transfers.js';

const VIP = '10.117.0.100';
const CLIENT = '10.117.1.2';
const RS = '10.117.2.11';
const MB = 1024 * 1024;
const METRICS_PORT = 9417;

const netns = netnsAvailable();
const tun = tunAvailable();
const skip = !netns.ok ? netns.reason : !tun.ok ? tun.reason : undefined;

const lab = new NetnsLab(`nt${process.pid % 100000}`);
const dir = mkdtempSync(join(tmpdir(), 'fullnat-nat-'));
const confPath = join(dir, 'lb.conf');
const sock = join(dir, 'fullnat.sock');
const rsConns = new RsConnections();
let lbProc: ChildProcess | undefined;
let lbLog = '';

const CONFIG = `fullnat_defs {
    interface fnat17
    control_socket ${sock}
    metrics 127.0.0.1:${METRICS_PORT}
}
virtual_server ${VIP} 80 {
    lb_algo rr
    lb_kind NAT
    real_server ${RS} 8080 {
        weight 1
        # One check at the start (the RS's log then holds only the client's connections).
        delay_loop 600
        TCP_CHECK { connect_timeout 1 retry 1 delay_before_retry 1 }
    }
}
`;

const ctl = (args: string[]): { code: number; out: string } => runCtl(lab, sock, args);
const until = (what: string, fn: () => boolean, timeoutMs: number): Promise<void> =>
  untilOr(what, fn, timeoutMs, () => `LB log:\n${lbLog.slice(-3000)}`);

before(async () => {
  if (skip) return;
  buildTopology(lab, '10.117', ['r1']);
  const rs = lab.spawn('r1', process.execPath, [join(fixtures, 'rs-server.js'), 'r1', '8080']);
  rsConns.follow(rs);
  await untilServing(rs, 'r1');
  writeFileSync(confPath, CONFIG);
  lbProc = lab.spawn('lb', process.execPath, [cli, 'run', '-f', confPath]);
  lbProc.stdout!.on('data', (c: Buffer) => (lbLog += c.toString()));
  lbProc.stderr!.on('data', (c: Buffer) => (lbLog += c.toString()));
  await until('LB control socket', () => ctl(['-Ln']).code === 0, 15_000);
});

after(async () => {
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('the reply rule is in place, and ctl lists the real server as Masq', { skip }, async () => {
  const rules = lab.exec('lb', 'ip', ['rule', 'show']);
  assert.match(
    rules,
    new RegExp(`from ${RS.replaceAll('.', '\\.')} ipproto tcp sport 8080 lookup 2929`),
  );
  assert.match(lab.exec('lb', 'ip', ['route', 'show', 'table', '2929']), /default dev fnat17/);
  // The health check's own connections to RIP:8080 are answered to the LB's address: local, not steered.
  await until(
    'the RS healthy',
    () => /-> 10\.117\.2\.11:8080\s+Masq\s+1\s/.test(ctl(['-Ln']).out),
    10_000,
  );
});

test(
  '20 MB down and 20 MB up arrive byte-identical; the RS sees the client itself',
  { skip },
  async () => {
    const mark = await rsConns.mark();
    const down = downloadLoop(lab, 'c', {
      count: 1,
      sha: createHash('sha256')
        .update(patternChunk(0, 20 * MB))
        .digest('hex'),
      url: `http://${VIP}/bytes?n=${20 * MB}`,
    });
    assert.equal(down.good, 1, down.out.slice(-1500));
    const file = join(dir, 'up.bin');
    const body = randomBytes(20 * MB);
    writeFileSync(file, body);
    const up = uploadLoop(lab, 'c', {
      count: 1,
      file,
      sha: createHash('sha256').update(body).digest('hex'),
      url: `http://${VIP}/sha256`,
    });
    assert.equal(up.good, 1, up.out.slice(-1500));
    await rsConns.assertAllFrom('NAT', mark, CLIENT, 2);
    const c = engineCounters(lab, METRICS_PORT);
    assert.equal((c.toa_inserted ?? 0) + (c.toa_inserted_syn ?? 0), 0, 'no TOA under NAT');
  },
);

test(
  '100 short connections in a row: each completes, each seen from the client',
  { skip },
  async () => {
    const mark = await rsConns.mark();
    const r = downloadLoop(lab, 'c', {
      count: 100,
      sha: createHash('sha256').update(patternChunk(0, 4096)).digest('hex'),
      url: `http://${VIP}/bytes?n=4096`,
    });
    assert.equal(r.good, 100, r.out.slice(-1500));
    await rsConns.assertAllFrom('NAT, short', mark, CLIENT, 100);
  },
);

test('the LB stops: its reply rule goes with it', { skip }, async () => {
  lbProc!.kill('SIGTERM');
  await until('the LB exited', () => lbProc!.exitCode !== null, 15_000);
  assert.doesNotMatch(lab.exec('lb', 'ip', ['rule', 'show']), /lookup 2929/);
});
