/**
 * IPv6 services and FNAT64 on real kernels: curl -6 to an IPv6 VIP served by
 * an IPv6 real server (port 80) and by an IPv4 one (port 81, FNAT64), nginx
 * on the real server listening on `[::]:8080 ipv6only=off` under `fullnat rs
 * exec` (the eBPF TOA receiver), the LB's TUN captured and decoded by tshark.
 *
 *   client fd00:46:1::2 ── fd00:46:1::1 [LB fnat46: VIP fd00:46::100, LIPs fd00:46:3::1-2, 10.46.3.1-2]
 *       fd00:46:2::1 10.46.2.1 ── RS fd00:46:2::11 10.46.2.11
 *
 * Offloads are on (the default), so the large transfers cross the TUN as
 * GSO super-packets — TCPv6 on both legs, or TCPv6 in and TCPv4 out (FNAT64).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsLab } from '../../src/lab/netns.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { cli, runCtl, until as untilOr } from './support/harness.js';
import {
  attachReceiver,
  nginxConfig,
  receiverFor,
  receiverUnavailable,
  spawnUnderReceiver,
  tearDown,
} from './support/receiver.js';
import { startCapture, stopCapture } from '../support/tcpdump.js';
import { probeTshark, tsharkFields } from '../support/tshark.js';

const VIP = 'fd00:46::100';
const CLIENT = 'fd00:46:1::2';
const RS6 = 'fd00:46:2::11';
const RS4 = '10.46.2.11';
const DEV = 'fnat46';
const REQUESTS = 1000;
const BIG = 16 * 1024 * 1024;

function why(): string | undefined {
  const missing = receiverUnavailable(['nginx', 'bpftool', 'curl', 'tcpdump']);
  if (missing) return missing;
  const ts = probeTshark();
  return ts.ok ? undefined : ts.reason;
}

const skip = why();
const pid = process.pid % 100000;
const lab = new NetnsLab(`f6${pid}`);
const dir = mkdtempSync(join(tmpdir(), 'fullnat-ipv6-'));
const confPath = join(dir, 'lb.conf');
const sock = join(dir, 'fullnat.sock');
const accessLog = join(dir, 'access.log');
const receiver = receiverFor(`e2e6-${pid}`);
const { rsFlags } = receiver;
let lbProc: ChildProcess | undefined;
let lbLog = '';
let bigSha = '';

function config(toaV6Kind: number): string {
  return `fullnat_defs {
    interface ${DEV}
    toa_policy fullnat
    toa_v6_kind ${toaV6Kind}
    # Each LB run its own LIP ports: the RS still holds the last run's tuples in TIME_WAIT.
    local_port_range ${toaV6Kind === 254 ? '10000 29999' : '30000 49999'}
    control_socket ${sock}
    metrics 127.0.0.1:9446
}
local_address_group lips {
    fd00:46:3::1
    fd00:46:3::2
    10.46.3.1
    10.46.3.2
}
virtual_server ${VIP} 80 {
    lb_algo rr
    laddr_group_name lips
    real_server ${RS6} 8080 { weight 1 }
}
virtual_server ${VIP} 81 {
    lb_algo rr
    laddr_group_name lips
    real_server ${RS4} 8080 { weight 1 }
}
`;
}

function nginxConf(): string {
  return nginxConfig(
    dir,
    `    log_format peer '$remote_addr $remote_port $request_method $uri';
    server {
        listen [::]:8080 ipv6only=off;
        access_log ${accessLog} peer;
        location / { return 200 "ok\\n"; }
        location /big/ {
            root ${dir}/www;
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 64m;
        }
    }
`,
  );
}

const ctl = (args: string[]): { code: number; out: string } => runCtl(lab, sock, args);

const until = (what: string, fn: () => boolean, timeoutMs: number): Promise<void> =>
  untilOr(what, fn, timeoutMs, () => lbLog.slice(-2000));

function startLb(toaV6Kind: number): Promise<void> {
  writeFileSync(confPath, config(toaV6Kind));
  lbLog = '';
  lbProc = lab.spawn('lb', process.execPath, [cli, 'run', '-f', confPath]);
  lbProc.stdout!.on('data', (c: Buffer) => (lbLog += c.toString()));
  lbProc.stderr!.on('data', (c: Buffer) => (lbLog += c.toString()));
  return until('LB control socket', () => ctl(['-Ln']).code === 0, 15_000);
}

async function stopLb(): Promise<void> {
  const p = lbProc;
  if (!p || p.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  p.kill('SIGTERM');
  await exited;
}

function logLines(): string[] {
  if (!existsSync(accessLog)) return [];
  return readFileSync(accessLog, 'utf8').split('\n').filter(Boolean);
}

/** Runs curl -6 in the client namespace; its stdout. */
function curl(args: string[], timeoutMs: number): string {
  return lab.exec(
    'c',
    'curl',
    ['-6', '-g', '-sS', '--connect-timeout', '5', '--max-time', '60', ...args],
    timeoutMs,
  );
}

/**
 * `REQUESTS` GETs, each on a connection of its own (Connection: close), 16
 * at a time, all made by one curl -6; their status and client port.
 */
function manyRequests(port: number): { status: string; localPort: number }[] {
  const conf = join(dir, `urls-${port}.txt`);
  let text = '';
  for (let i = 0; i < REQUESTS; i++)
    text += `url = "http://[${VIP}]:${port}/r${i}"\noutput = "/dev/null"\n`;
  writeFileSync(conf, text);
  const out = curl(
    [
      '--parallel',
      '--parallel-max',
      '16',
      '-H',
      'Connection: close',
      '-w',
      '%{http_code} %{local_port}\\n',
      '--config',
      conf,
    ],
    180_000,
  );
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [status, p] = l.split(' ');
      return { status: status!, localPort: Number(p) };
    });
}

const capture = (file: string): Promise<ChildProcess> =>
  startCapture(lab, 'lb', DEV, file, 'tcp', 256);

/** The options of a TCP header as (kind, bytes) from tshark's `tcp.options` hex. */
function parseOptions(hex: string): { kind: number; bytes: Buffer }[] {
  const b = Buffer.from(hex, 'hex');
  const out: { kind: number; bytes: Buffer }[] = [];
  let i = 0;
  while (i < b.length) {
    const kind = b[i]!;
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    const len = b[i + 1] ?? 0;
    assert.ok(len >= 2 && i + len <= b.length, `option ${kind} length ${len} in ${hex}`);
    out.push({ kind, bytes: b.subarray(i, i + len) });
    i += len;
  }
  return out;
}

type Verdict = {
  lbSent: number;
  rsStreams: number;
  toaStreams: number;
  toaPackets: number;
  toaPorts: Set<number>;
};

/**
 * Every packet the LB wrote into the TUN (from a LIP toward the RS, from the
 * VIP toward the client): good IP and TCP checksums; every TOA it carries is
 * `kind`/20, the client's port, then its 16 bytes.
 */
function checkCapture(file: string, kind: number): Verdict {
  const home = join(dir, 'tshark-home');
  mkdirSync(home, { recursive: true });
  const fields = [
    'ip.version',
    'ip.checksum.status',
    'tcp.checksum.status',
    'tcp.stream',
    'tcp.flags.syn',
    'tcp.flags.ack',
    'tcp.options',
    'ip.src',
    'ipv6.src',
  ] as const;
  const rows = tsharkFields(file, fields, {
    home,
    timeoutMs: 120_000,
    filter: `ip.src == 10.46.3.0/24 || ipv6.src == fd00:46:3::/64 || ipv6.src == ${VIP}`,
  }).map((r) => Object.fromEntries(fields.map((f, i) => [f, r[i] ?? ''])));
  const client = Buffer.from(Ipv6Address.parse(CLIENT)!.bytes);
  const rsStreams = new Set<string>();
  const toaStreams = new Set<string>();
  const toaPorts = new Set<number>();
  let toaPackets = 0;
  rows.forEach((r, i) => {
    const what = `LB-sent packet ${i} (${r['ip.src']}${r['ipv6.src']}, stream ${r['tcp.stream']})`;
    if (r['ip.version'] === '4') assert.equal(r['ip.checksum.status'], '1', `${what}: IP checksum`);
    assert.equal(r['tcp.checksum.status'], '1', `${what}: TCP checksum`);
    const toRs = r['ipv6.src'] !== VIP;
    if (toRs && r['tcp.flags.syn'] === '1' && r['tcp.flags.ack'] === '0')
      rsStreams.add(r['tcp.stream']!);
    for (const o of parseOptions(r['tcp.options'] ?? '')) {
      if (o.kind !== 254 && o.kind !== 253) continue;
      assert.ok(toRs, `${what}: a TOA toward the client`);
      assert.equal(o.kind, kind, `${what}: TOA kind`);
      assert.equal(o.bytes.length, 20, `${what}: TOA length`);
      assert.deepEqual(o.bytes.subarray(4), client, `${what}: TOA address`);
      toaPorts.add(o.bytes.readUInt16BE(2));
      toaStreams.add(r['tcp.stream']!);
      toaPackets++;
    }
  });
  return {
    lbSent: rows.length,
    rsStreams: rsStreams.size,
    toaStreams: toaStreams.size,
    toaPackets,
    toaPorts,
  };
}

/**
 * The acceptance for one service: 1000 curl -6 requests, all 200; nginx logs
 * the client's IPv6 address and the very port curl used on every one; the
 * capture as `checkCapture` says, one TOA'd RS connection per request.
 */
async function acceptance(port: number, kind: number, rsFrom: RegExp): Promise<void> {
  const pcap = join(dir, `port${port}-kind${kind}.pcap`);
  const dump = await capture(pcap);
  const before = logLines().length;
  const t0 = Date.now();
  const results = manyRequests(port);
  const ms = Date.now() - t0;
  // At once: the entries leave the table TIME_WAIT (7 s) after their close.
  // --lip: the local address as a last column, after ipvsadm's six.
  const conns = ctl(['-Lnc', '--lip']).out;
  await stopCapture(dump, pcap);
  const ok = results.filter((r) => r.status === '200');
  console.log(`# port ${port} TOA kind ${kind}: ${ok.length}/${REQUESTS} in ${ms} ms`);
  assert.equal(results.length, REQUESTS);
  assert.equal(
    ok.length,
    REQUESTS,
    `failed: ${JSON.stringify(results.find((r) => r.status !== '200'))}`,
  );
  // Every request its own connection, but not always its own port: nginx
  // closes first (`Connection: close`), so the client keeps no TIME_WAIT and
  // its kernel may hand the same source port out again within the run —
  // then the LB sees a new SYN on a tuple it still holds, as in production.
  const curlPorts = results.map((r) => r.localPort).sort((a, b) => a - b);
  const ports = new Set(curlPorts);
  let lines: string[] = [];
  await until(
    `${REQUESTS} nginx log lines`,
    () => (lines = logLines().slice(before)).length >= REQUESTS,
    10_000,
  );
  assert.equal(lines.length, REQUESTS);
  const wrong = lines.filter((l) => l.split(' ')[0] !== CLIENT);
  assert.deepEqual(wrong.slice(0, 3), [], `${wrong.length} log lines without the client`);
  const loggedPorts = lines.map((l) => Number(l.split(' ')[1])).sort((a, b) => a - b);
  assert.deepEqual(loggedPorts, curlPorts, 'nginx logged the very ports curl used, each as often');
  const v = checkCapture(pcap, kind);
  console.log(
    `# port ${port}: tshark: ${v.lbSent} LB-sent packets, all checksums good; ` +
      `${v.rsStreams} RS connections (${v.toaStreams} with a TOA), ${v.toaPackets} TOA ${kind}/20, ` +
      `${v.toaPorts.size} client ports (${REQUESTS - ports.size} reused by the client's kernel)`,
  );
  assert.equal(v.rsStreams, REQUESTS, 'one RS connection opened by the LB per request');
  assert.equal(v.toaStreams, REQUESTS, 'a TOA on every RS connection');
  assert.deepEqual(
    [...v.toaPorts].filter((p) => !ports.has(p)),
    [],
    'TOA ports that curl did not use',
  );
  assert.equal(v.toaPorts.size, ports.size, 'every port curl used arrived in a TOA');
  // The LB's connections come from the LIPs of the RS's family.
  assert.match(conns, rsFrom);
}

before(async () => {
  if (skip) return;
  for (const h of ['c', 'lb', 'r1']) lab.addHost(h);
  lab.link('c', 'eth0', null, 'lb', 'eth0', null);
  lab.link('lb', 'eth1', '10.46.2.1/24', 'r1', 'eth0', `${RS4}/24`);
  lab.ip('c', '-6', 'addr', 'add', `${CLIENT}/64`, 'dev', 'eth0', 'nodad');
  lab.ip('lb', '-6', 'addr', 'add', 'fd00:46:1::1/64', 'dev', 'eth0', 'nodad');
  lab.ip('lb', '-6', 'addr', 'add', 'fd00:46:2::1/64', 'dev', 'eth1', 'nodad');
  lab.ip('r1', '-6', 'addr', 'add', `${RS6}/64`, 'dev', 'eth0', 'nodad');
  lab.ip('c', '-6', 'route', 'add', 'default', 'via', 'fd00:46:1::1');
  lab.ip('r1', '-6', 'route', 'add', 'default', 'via', 'fd00:46:2::1');
  lab.ip('r1', 'route', 'add', 'default', 'via', '10.46.2.1');
  mkdirSync(join(dir, 'www', 'big'), { recursive: true });
  const big = randomBytes(BIG);
  bigSha = createHash('sha256').update(big).digest('hex');
  writeFileSync(join(dir, 'www', 'big', 'down.bin'), big);
  attachReceiver(rsFlags);
  writeFileSync(join(dir, 'nginx.conf'), nginxConf());
  spawnUnderReceiver(lab, rsFlags, 'r1', 'nginx', ['-c', join(dir, 'nginx.conf')]);
  await startLb(254);
  await until('nginx listening', () => /:8080\b/.test(lab.exec('r1', 'ss', ['-ltn'])), 10_000);
});

after(() => tearDown(lab, dir, skip ? undefined : receiver));

test(
  'IPv6 VIP → IPv6 RS: 1000/1000 curl -6 requests, nginx logs the client on each, tshark: checksums and TOA 254/20',
  { skip, timeout: 300_000 },
  () =>
    acceptance(
      80,
      254,
      /TCP\s+\S+\s+\S+\s+\[fd00:46:1::2\]:\d+\s+\[fd00:46::100\]:80\s+\[fd00:46:2::11\]:8080\s+\[fd00:46:3::[12]\]:\d+/,
    ),
);

test(
  'FNAT64, IPv6 VIP → IPv4 RS: 1000/1000 curl -6 requests, nginx logs the IPv6 client on each, tshark: checksums and TOA 254/20 over IPv4',
  { skip, timeout: 300_000 },
  () => acceptance(81, 254, /\[fd00:46::100\]:81\s+10\.46\.2\.11:8080\s+10\.46\.3\.[12]:\d+/),
);

test(
  '16 MB down and up through both services with offloads: byte-identical, GSO super-packets on the TUN both ways',
  { skip, timeout: 300_000 },
  () => {
    const superPackets = (): { rx: number; tx: number } => {
      const text = lab.exec('lb', 'curl', ['-sS', 'http://127.0.0.1:9446/metrics']);
      const get = (d: string): number =>
        Number(new RegExp(`^fullnat_io_${d}_super_packets_total (\\d+)`, 'm').exec(text)?.[1]);
      return { rx: get('rx'), tx: get('tx') };
    };
    const upload = join(dir, 'up-src.bin');
    writeFileSync(upload, randomBytes(BIG));
    const upSha = createHash('sha256').update(readFileSync(upload)).digest('hex');
    for (const port of [80, 81]) {
      const s0 = superPackets();
      const got = join(dir, `down-${port}.bin`);
      const t0 = Date.now();
      curl(['-o', got, `http://[${VIP}]:${port}/big/down.bin`], 90_000);
      const downMs = Date.now() - t0;
      assert.equal(createHash('sha256').update(readFileSync(got)).digest('hex'), bigSha);
      const t1 = Date.now();
      curl(['-T', upload, `http://[${VIP}]:${port}/big/up-${port}.bin`], 90_000);
      const upMs = Date.now() - t1;
      const stored = readFileSync(join(dir, 'www', 'big', `up-${port}.bin`));
      assert.equal(createHash('sha256').update(stored).digest('hex'), upSha);
      const s1 = superPackets();
      console.log(
        `# port ${port}: 16 MB down ${downMs} ms, up ${upMs} ms; super-packets rx +${s1.rx - s0.rx} tx +${s1.tx - s0.tx}`,
      );
      assert.ok(s1.rx - s0.rx > 10, `rx super-packets: ${s1.rx - s0.rx}`);
      assert.ok(s1.tx - s0.tx > 10, `tx super-packets: ${s1.tx - s0.tx}`);
    }
  },
);

test(
  'toa_v6_kind 253: both services send the Alibaba TOA 253/20, and nginx still logs the client',
  { skip, timeout: 300_000 },
  async () => {
    await stopLb();
    await startLb(253);
    await acceptance(80, 253, /\[fd00:46:2::11\]:8080/);
    await acceptance(81, 253, /10\.46\.2\.11:8080/);
  },
);
