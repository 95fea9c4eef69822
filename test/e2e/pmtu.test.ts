/**
 * ICMP and path MTU through `fullnat run` on real kernels: routers in
 * namespaces narrow a path the LB's config knows nothing about, or refuse an
 * RS, and Linux's own PMTU discovery and error handling on the client and
 * the RS must work through the LB.
 *
 *   c1 10.114.1.2 ─────────────────────────── 10.114.1.1 ┐
 *   c2 10.114.7.2 ═(1400)═ rc 10.114.7.1|6.2 ── 10.114.6.1 ┤ LB fnat14: VIP 10.114.0.100, LIP 10.114.3.1
 *                                                         └ 10.114.2.1 ── 10.114.2.2 rr ═(1400)═ r1 10.114.4.11
 *                                                                                       ── r2 10.114.5.12
 *                                                                      (prohibit) 10.114.5.13
 *
 * The routers' interfaces toward c2 and r1 have MTU 1400, as a tunnel's
 * would; the hosts' own links stay 1500, so they announce MSS 1460 and only
 * the path knows. VIP:80 → r1 (uploads cross the narrow RS leg), VIP:81 →
 * r2 (downloads cross the narrow client leg), VIP:82 → 10.114.5.13, to
 * which rr answers "administratively prohibited".
 *
 * FULLNAT_PMTU_CLI=/path/to/bin/fullnat.js runs the LB from another tree
 * (to show how a build without ICMP handling fares).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsLab } from '../../src/lab/netns.js';
import { patternChunk } from './fixtures/pattern.js';
import {
  cli as ownCli,
  fixtures,
  runCtl,
  until as untilOr,
  untilServing,
} from './support/harness.js';
import {
  attachReceiver,
  receiverFor,
  receiverUnavailable,
  spawnUnderReceiver,
  tearDown,
} from './support/receiver.js';
import { RsConnections, downloadLoop, engineCounters, uploadLoop } from './support/transfers.js';

const cli = process.env.FULLNAT_PMTU_CLI ?? ownCli;
const VIP = '10.114.0.100';
const C1 = '10.114.1.2';
const R1 = '10.114.4.11';
const R2 = '10.114.5.12';
const PROHIBITED = '10.114.5.13';
const MB = 1024 * 1024;
const TRANSFERS = 200;
const METRICS_PORT = 9414;

const why = (): string | undefined => receiverUnavailable(['curl', 'bpftool', 'sha256sum']);

const skip = why();
const pid = process.pid % 100000;
const lab = new NetnsLab(`pm${pid}`);
const dir = mkdtempSync(join(tmpdir(), 'fullnat-pmtu-'));
const confPath = join(dir, 'lb.conf');
const sock = join(dir, 'fullnat.sock');
const receiver = receiverFor(`pmtu-${pid}`);
const { rsFlags } = receiver;
let lbLog = '';
const r1Conns = new RsConnections();

const CONFIG = `fullnat_defs {
    interface fnat14
    toa_policy fullnat
    control_socket ${sock}
    metrics 127.0.0.1:${METRICS_PORT}
}
local_address_group lips {
    10.114.3.1
}
virtual_server ${VIP} 80 {
    lb_algo rr
    laddr_group_name lips
    real_server ${R1} 8080 { weight 1 }
}
virtual_server ${VIP} 81 {
    lb_algo rr
    laddr_group_name lips
    real_server ${R2} 8080 { weight 1 }
}
virtual_server ${VIP} 82 {
    lb_algo rr
    laddr_group_name lips
    real_server ${PROHIBITED} 8080 { weight 1 }
}
`;

const ctl = (args: string[]): { code: number; out: string } => runCtl(lab, sock, args);
const until = (what: string, fn: () => boolean, timeoutMs: number): Promise<void> =>
  untilOr(what, fn, timeoutMs, () => lbLog.slice(-2000));

const counters = (): Record<string, number> => engineCounters(lab, METRICS_PORT);

before(async () => {
  if (skip) return;
  for (const h of ['c1', 'c2', 'rc', 'lb', 'rr', 'r1', 'r2']) lab.addHost(h);
  lab.link('c1', 'eth0', `${C1}/24`, 'lb', 'eth0', '10.114.1.1/24');
  lab.link('lb', 'eth1', '10.114.2.1/24', 'rr', 'eth0', '10.114.2.2/24');
  lab.link('lb', 'eth2', '10.114.6.1/24', 'rc', 'eth0', '10.114.6.2/24');
  lab.link('rc', 'eth1', '10.114.7.1/24', 'c2', 'eth0', '10.114.7.2/24');
  lab.link('rr', 'eth1', '10.114.4.1/24', 'r1', 'eth0', `${R1}/24`);
  lab.link('rr', 'eth2', '10.114.5.1/24', 'r2', 'eth0', `${R2}/24`);
  // The narrow hops: only the routers' side of these links.
  lab.ip('rc', 'link', 'set', 'eth1', 'mtu', '1400');
  lab.ip('rr', 'link', 'set', 'eth1', 'mtu', '1400');
  for (const h of ['rc', 'rr']) lab.sysctl(h, 'net.ipv4.ip_forward', '1');
  lab.ip('rr', 'route', 'add', 'prohibit', `${PROHIBITED}/32`);
  lab.ip('c1', 'route', 'add', 'default', 'via', '10.114.1.1');
  lab.ip('c2', 'route', 'add', 'default', 'via', '10.114.7.1');
  lab.ip('rc', 'route', 'add', 'default', 'via', '10.114.6.1');
  lab.ip('rr', 'route', 'add', 'default', 'via', '10.114.2.1');
  lab.ip('r1', 'route', 'add', 'default', 'via', '10.114.4.1');
  lab.ip('r2', 'route', 'add', 'default', 'via', '10.114.5.1');
  lab.ip('lb', 'route', 'add', '10.114.7.0/24', 'via', '10.114.6.2');
  for (const net of ['10.114.4.0/24', '10.114.5.0/24'])
    lab.ip('lb', 'route', 'add', net, 'via', '10.114.2.2');

  // r1 learns the client from the TOA through the eBPF receiver, as an unmodified server would.
  attachReceiver(rsFlags);
  const r1 = spawnUnderReceiver(lab, rsFlags, 'r1', process.execPath, [
    join(fixtures, 'rs-server.js'),
    'r1',
    '8080',
  ]);
  r1Conns.follow(r1);
  const r2: ChildProcess = lab.spawn('r2', process.execPath, [
    join(fixtures, 'rs-server.js'),
    'r2',
    '8080',
  ]);
  await Promise.all([untilServing(r1, 'r1'), untilServing(r2, 'r2')]);
  writeFileSync(confPath, CONFIG);
  const lb = lab.spawn('lb', process.execPath, [cli, 'run', '-f', confPath]);
  lb.stdout!.on('data', (c: Buffer) => (lbLog += c.toString()));
  lb.stderr!.on('data', (c: Buffer) => (lbLog += c.toString()));
  await until('LB control socket', () => ctl(['-Ln']).code === 0, 15_000);
});

after(() => tearDown(lab, dir, skip ? undefined : receiver));

test(
  'RS leg narrowed to 1400 by a router: 200 uploads of 1 MB arrive byte-identical, each with the client in its TOA',
  { skip },
  async () => {
    const file = join(dir, 'upload.bin');
    const body = randomBytes(MB);
    writeFileSync(file, body);
    const sha = createHash('sha256').update(body).digest('hex');
    const mark = await r1Conns.mark();
    const r = uploadLoop(lab, 'c1', {
      count: TRANSFERS,
      file,
      sha,
      url: `http://${VIP}:80/sha256`,
    });
    const c = counters();
    console.log(
      `# RS leg: ${r.good}/${TRANSFERS} uploads byte-identical in ${r.ms} ms ` +
        `(mean ${r.meanMs.toFixed(0)} ms, slowest ${r.slowestMs.toFixed(0)} ms); ` +
        `pmtu_learned ${c.icmp_pmtu_learned ?? '?'}, icmp_error_forwarded ${c.icmp_error_forwarded ?? '?'}, ` +
        `toa_split ${c.toa_split ?? '?'}, icmp_frag_needed_sent ${c.icmp_frag_needed_sent ?? '?'}`,
    );
    assert.equal(r.good, TRANSFERS, `uploads that completed intact\n${r.out.slice(-1500)}`);
    // The router's frag-needed is what taught the LB: its config says 1500.
    assert.ok((c.icmp_pmtu_learned ?? 0) >= 1, `icmp_pmtu_learned ${c.icmp_pmtu_learned}`);
    // The RS application saw the real client on every connection (the eBPF receiver read the TOA).
    await r1Conns.assertAllFrom('RS leg', mark, C1, TRANSFERS);
  },
);

test(
  'client leg narrowed to 1400 by a router: 200 downloads of 1 MB arrive byte-identical',
  { skip },
  () => {
    const expected = createHash('sha256').update(patternChunk(0, MB)).digest('hex');
    const forwardedBefore = counters().icmp_error_forwarded ?? 0;
    const r = downloadLoop(lab, 'c2', {
      count: TRANSFERS,
      sha: expected,
      url: `http://${VIP}:81/bytes?n=${MB}`,
    });
    const c = counters();
    console.log(
      `# client leg: ${r.good}/${TRANSFERS} downloads byte-identical in ${r.ms} ms; ` +
        `icmp_error_forwarded ${c.icmp_error_forwarded ?? '?'}`,
    );
    assert.equal(r.good, TRANSFERS, r.out.slice(-1500));
    // The client-side router's frag-needed reached the RS through the LB.
    assert.ok(
      (c.icmp_error_forwarded ?? 0) > forwardedBefore,
      `icmp_error_forwarded ${c.icmp_error_forwarded}`,
    );
  },
);

test(
  'an RS the router refuses: the client connect fails fast with EHOSTUNREACH instead of timing out',
  { skip },
  () => {
    // Attempts 2 s apart: the router answers a prohibited route at most once a second per
    // source (Linux's ip_error: ip_rt_error_cost), and the client's SYN retries must not be
    // what brings the error.
    const script = `
const net = require('node:net');
let n = 0;
const out = [];
function one() {
  const t0 = process.hrtime.bigint();
  const s = net.connect({ host: '${VIP}', port: 82 });
  const done = (code) => {
    out.push({ code, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
    s.destroy();
    if (++n < 5) setTimeout(one, 2000);
    else console.log(JSON.stringify(out));
  };
  s.setTimeout(10000, () => done('timeout'));
  s.on('connect', () => done('connected'));
  s.on('error', (e) => done(e.code));
}
one();
`;
    const text = lab.exec('c1', process.execPath, ['-e', script], 70_000);
    const rrStats = lab.exec('rr', 'nstat', ['-az', 'IcmpOutDestUnreachs', 'IcmpOutRateLimitHost']);
    const results = JSON.parse(text.trim().split('\n').pop()!) as { code: string; ms: number }[];
    console.log(
      `# prohibited RS: ${results.map((x) => `${x.code} after ${x.ms.toFixed(1)} ms`).join(', ')}; ` +
        `router: ${rrStats.replace(/\s+/g, ' ').trim()}`,
    );
    for (const x of results) {
      assert.equal(x.code, 'EHOSTUNREACH', JSON.stringify(results));
      assert.ok(x.ms < 1000, `failed within a second: ${JSON.stringify(results)}`);
    }
  },
);
