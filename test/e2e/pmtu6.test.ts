/**
 * Path MTU through `fullnat run` for IPv6 clients on real kernels, the IPv6
 * and FNAT64 counterpart of pmtu.test.ts: routers in namespaces narrow a
 * path the LB's config knows nothing about, and Linux's own PMTU discovery
 * on the client and the RS must work through the LB.
 *
 *   c1 fd00:116:1::2 ─────────────────────────────────── fd00:116:1::1 ┐
 *   c2 fd00:116:7::2 ═(1400)═ rc fd00:116:7::1|6::2 ──── fd00:116:6::1 ┤ LB fnat116
 *                                       fd00:116:2::1 10.116.2.1 ──────┘
 *                                        │
 *                 rr fd00:116:2::2 10.116.2.2 ═(1400)═ r1 fd00:116:4::11 10.116.4.11
 *                                             ──────── r2 fd00:116:5::12
 *
 *   VIP  fd00:116::100 :80 → [fd00:116:4::11]:8080  uploads across rr's narrow hop, ICMPv6 Packet Too Big
 *                      :81 → [fd00:116:5::12]:8080  downloads across rc's narrow hop
 *   VIP64 fd00:116::64 :80 → 10.116.4.11:8080       FNAT64 uploads across rr's narrow hop, ICMPv4 frag-needed
 *   LIPs fd00:116:3::1, 10.116.3.1
 *
 * The routers' interfaces toward c2 and r1 have MTU 1400, as a tunnel's
 * would; the hosts' own links stay 1500, so they announce MSS 1440 and only
 * the path knows. FNAT64 has a VIP of its own: c1 keeps the path MTU it
 * learned for the first VIP, which would let FNAT64's uploads pass without
 * any error reaching it.
 *
 * FULLNAT_PMTU6_CLI=/path/to/bin/fullnat.js runs the LB from another tree
 * (to show how a build without ICMPv6 handling fares).
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
import {
  RsConnections,
  counterDeltas,
  downloadLoop,
  engineCounters,
  uploadLoop,
} from './support/transfers.js';

const cli = process.env.FULLNAT_PMTU6_CLI ?? ownCli;
const VIP = 'fd00:116::100';
const VIP64 = 'fd00:116::64';
const C1 = 'fd00:116:1::2';
const R1 = 'fd00:116:4::11';
const R1V4 = '10.116.4.11';
const R2 = 'fd00:116:5::12';
const MB = 1024 * 1024;
const TRANSFERS = 200;
const METRICS_PORT = 9416;
const CURL6 = '-6 -g';
/** What the report of each case shows of the LB's counters. */
const REPORTED = [
  'icmp_pmtu_learned',
  'icmp_pmtu_ignored',
  'icmp_error_forwarded',
  'icmp_error_no_conn_dropped',
  'icmp_rate_limited',
  'icmp6_too_big_sent',
  'icmp6_too_big_limited',
  'icmp_frag_needed_sent',
  'too_big_dropped',
  'toa_inserted',
  'toa_split',
  'toa_split_segments',
  'toa_failed_mtu',
] as const;

const why = (): string | undefined => receiverUnavailable(['curl', 'bpftool', 'sha256sum']);

const skip = why();
const pid = process.pid % 100000;
const lab = new NetnsLab(`p6${pid}`);
const dir = mkdtempSync(join(tmpdir(), 'fullnat-pmtu6-'));
const confPath = join(dir, 'lb.conf');
const sock = join(dir, 'fullnat.sock');
const receiver = receiverFor(`pmtu6-${pid}`);
const { rsFlags } = receiver;
let lbLog = '';
const r1Conns = new RsConnections();

const CONFIG = `fullnat_defs {
    interface fnat116
    toa_policy fullnat
    control_socket ${sock}
    metrics 127.0.0.1:${METRICS_PORT}
}
local_address_group lips {
    fd00:116:3::1
    10.116.3.1
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
virtual_server ${VIP64} 80 {
    lb_algo rr
    laddr_group_name lips
    real_server ${R1V4} 8080 { weight 1 }
}
`;

const ctl = (args: string[]): { code: number; out: string } => runCtl(lab, sock, args);
const until = (what: string, fn: () => boolean, timeoutMs: number): Promise<void> =>
  untilOr(what, fn, timeoutMs, () => lbLog.slice(-2000));
const counters = (): Record<string, number> => engineCounters(lab, METRICS_PORT);

/** An IPv6 address on `dev` of host `h`, usable at once (no duplicate address detection). */
function addr6(h: string, dev: string, cidr: string): void {
  lab.ip(h, '-6', 'addr', 'add', cidr, 'dev', dev, 'nodad');
}

/**
 * `TRANSFERS` uploads of 1 MB from c1 to `url` (an rs-server's /sha256 on
 * r1), all byte-identical and each seen by r1's application as coming from
 * c1; the router's error taught the LB the path (its config says nothing of
 * it). `label` names the case in what it prints.
 */
async function uploadsThroughNarrowRsLeg(label: string, url: string): Promise<void> {
  const file = join(dir, 'upload.bin');
  const body = randomBytes(MB);
  writeFileSync(file, body);
  const sha = createHash('sha256').update(body).digest('hex');
  const mark = await r1Conns.mark();
  const c0 = counters();
  const r = uploadLoop(lab, 'c1', { count: TRANSFERS, file, sha, url, curlFlags: CURL6 });
  const c = counters();
  console.log(
    `# ${label}: ${r.good}/${TRANSFERS} uploads byte-identical in ${r.ms} ms ` +
      `(mean ${r.meanMs.toFixed(0)} ms, slowest ${r.slowestMs.toFixed(0)} ms); ` +
      counterDeltas(c0, c, REPORTED),
  );
  assert.equal(r.good, TRANSFERS, `uploads that completed intact\n${r.out.slice(-1500)}`);
  const learned = (c.icmp_pmtu_learned ?? 0) - (c0.icmp_pmtu_learned ?? 0);
  assert.ok(learned >= 1, `icmp_pmtu_learned +${learned}`);
  await r1Conns.assertAllFrom(label, mark, C1, TRANSFERS);
}

before(async () => {
  if (skip) return;
  for (const h of ['c1', 'c2', 'rc', 'lb', 'rr', 'r1', 'r2']) lab.addHost(h);
  lab.link('c1', 'eth0', null, 'lb', 'eth0', null);
  lab.link('lb', 'eth1', '10.116.2.1/24', 'rr', 'eth0', '10.116.2.2/24');
  lab.link('lb', 'eth2', null, 'rc', 'eth0', null);
  lab.link('rc', 'eth1', null, 'c2', 'eth0', null);
  lab.link('rr', 'eth1', '10.116.4.1/24', 'r1', 'eth0', `${R1V4}/24`);
  lab.link('rr', 'eth2', null, 'r2', 'eth0', null);
  addr6('c1', 'eth0', `${C1}/64`);
  addr6('lb', 'eth0', 'fd00:116:1::1/64');
  addr6('lb', 'eth1', 'fd00:116:2::1/64');
  addr6('rr', 'eth0', 'fd00:116:2::2/64');
  addr6('lb', 'eth2', 'fd00:116:6::1/64');
  addr6('rc', 'eth0', 'fd00:116:6::2/64');
  addr6('rc', 'eth1', 'fd00:116:7::1/64');
  addr6('c2', 'eth0', 'fd00:116:7::2/64');
  addr6('rr', 'eth1', 'fd00:116:4::1/64');
  addr6('r1', 'eth0', `${R1}/64`);
  addr6('rr', 'eth2', 'fd00:116:5::1/64');
  addr6('r2', 'eth0', `${R2}/64`);
  // The narrow hops: only the routers' side of these links.
  lab.ip('rc', 'link', 'set', 'eth1', 'mtu', '1400');
  lab.ip('rr', 'link', 'set', 'eth1', 'mtu', '1400');
  for (const h of ['rc', 'rr']) lab.sysctl(h, 'net.ipv6.conf.all.forwarding', '1');
  lab.sysctl('rr', 'net.ipv4.ip_forward', '1');
  lab.ip('c1', '-6', 'route', 'add', 'default', 'via', 'fd00:116:1::1');
  lab.ip('c2', '-6', 'route', 'add', 'default', 'via', 'fd00:116:7::1');
  lab.ip('rc', '-6', 'route', 'add', 'default', 'via', 'fd00:116:6::1');
  lab.ip('rr', '-6', 'route', 'add', 'default', 'via', 'fd00:116:2::1');
  lab.ip('rr', 'route', 'add', 'default', 'via', '10.116.2.1');
  lab.ip('r1', '-6', 'route', 'add', 'default', 'via', 'fd00:116:4::1');
  lab.ip('r1', 'route', 'add', 'default', 'via', '10.116.4.1');
  lab.ip('r2', '-6', 'route', 'add', 'default', 'via', 'fd00:116:5::1');
  lab.ip('lb', '-6', 'route', 'add', 'fd00:116:7::/64', 'via', 'fd00:116:6::2');
  for (const net of ['fd00:116:4::/64', 'fd00:116:5::/64'])
    lab.ip('lb', '-6', 'route', 'add', net, 'via', 'fd00:116:2::2');
  lab.ip('lb', 'route', 'add', '10.116.4.0/24', 'via', '10.116.2.2');

  // r1 learns the client from the TOA through the eBPF receiver, as an unmodified server would;
  // it listens on both families, so an FNAT64 connection shows the IPv6 client too.
  attachReceiver(rsFlags);
  const r1 = spawnUnderReceiver(lab, rsFlags, 'r1', process.execPath, [
    join(fixtures, 'rs-server.js'),
    'r1',
    '8080',
    '--host',
    '::',
  ]);
  r1Conns.follow(r1);
  const r2: ChildProcess = lab.spawn('r2', process.execPath, [
    join(fixtures, 'rs-server.js'),
    'r2',
    '8080',
    '--host',
    '::',
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
  'IPv6 RS leg narrowed to 1400 by a router: 200 uploads of 1 MB arrive byte-identical, each with the IPv6 client in its TOA',
  { skip },
  () => uploadsThroughNarrowRsLeg('IPv6 RS leg', `http://[${VIP}]:80/sha256`),
);

test(
  'IPv6 client leg narrowed to 1400 by a router: 200 downloads of 1 MB arrive byte-identical',
  { skip },
  () => {
    const expected = createHash('sha256').update(patternChunk(0, MB)).digest('hex');
    const c0 = counters();
    const r = downloadLoop(lab, 'c2', {
      count: TRANSFERS,
      sha: expected,
      url: `http://[${VIP}]:81/bytes?n=${MB}`,
      curlFlags: CURL6,
    });
    const c = counters();
    console.log(
      `# IPv6 client leg: ${r.good}/${TRANSFERS} downloads byte-identical in ${r.ms} ms; ` +
        counterDeltas(c0, c, REPORTED),
    );
    assert.equal(r.good, TRANSFERS, r.out.slice(-1500));
    // The client-side router's Packet Too Big reached the RS through the LB.
    const forwarded = (c.icmp_error_forwarded ?? 0) - (c0.icmp_error_forwarded ?? 0);
    assert.ok(forwarded >= 1, `icmp_error_forwarded +${forwarded}`);
  },
);

test(
  'FNAT64 RS leg narrowed to 1400 by a router: 200 uploads of 1 MB arrive byte-identical, each with the IPv6 client in its TOA',
  { skip },
  () => uploadsThroughNarrowRsLeg('FNAT64 RS leg', `http://[${VIP64}]:80/sha256`),
);
