/**
 * `fullnat run` end to end on real kernels: a client namespace (Linux TCP),
 * an LB namespace running the load balancer over its TUN device, and real
 * servers in their own namespaces behind a bridge.
 *
 *   client 10.77.1.2 ── 10.77.1.1 [LB: fnat0 ← VIP 10.77.0.100, LIPs 10.77.3.1-2] 10.77.2.1 ── br0 ── RS 10.77.2.11/12/13
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
import { untilCaptureQuiet, untilListening } from '../support/tcpdump.js';

const VIP = '10.77.0.100';
const URL = `http://${VIP}`;

const netns = netnsAvailable();
const tun = tunAvailable();
const skip = !netns.ok ? netns.reason : !tun.ok ? tun.reason : undefined;

const lab = new NetnsLab(`fe${process.pid % 100000}`);
const dir = mkdtempSync(join(tmpdir(), 'fullnat-e2e-'));
const confPath = join(dir, 'lb.conf');
const sock = join(dir, 'fullnat.sock');
const servers = new Map<string, ChildProcess>();
let lbProc: ChildProcess | undefined;
let lbLog = '';

function config(reals: { addr: string; weight: number }[]): string {
  const rs = reals
    .map(
      (r) => `    real_server ${r.addr} 8080 {
        weight ${r.weight}
        # A DOWN RS stays listed at weight 0 (without it, keepalived's meaning: removed from the list).
        inhibit_on_failure
        TCP_CHECK { connect_timeout 1 retry 1 delay_before_retry 1 }
    }`,
    )
    .join('\n');
  return `fullnat_defs {
    interface fnat0
    toa_policy fullnat
    control_socket ${sock}
    metrics 127.0.0.1:9400
    timeout_syn_recv 5
    timeout_fin_wait 2
    timeout_time_wait 2
    timeout_close 1
    timeout_close_wait 2
    timeout_last_ack 2
}
local_address_group lips {
    10.77.3.1
    10.77.3.2
}
virtual_server ${VIP} 80 {
    delay_loop 1
    lb_algo wrr
    lb_kind FNAT
    protocol TCP
    laddr_group_name lips
${rs}
}
`;
}

const TWO_RS = [
  { addr: '10.77.2.11', weight: 1 },
  { addr: '10.77.2.12', weight: 3 },
];

function startServer(host: string, name: string): Promise<void> {
  const child = lab.spawn(host, process.execPath, [join(fixtures, 'rs-server.js'), name, '8080']);
  servers.set(name, child);
  return untilServing(child, name);
}

const client = (args: string[], timeoutMs?: number): Record<string, unknown> =>
  runClient(lab, args, timeoutMs);

const ctl = (args: string[]): { code: number; out: string } => runCtl(lab, sock, args);

const until = (what: string, fn: () => boolean, timeoutMs: number): Promise<void> =>
  untilOr(
    what,
    fn,
    timeoutMs,
    () => `LB log:
${lbLog.slice(-3000)}`,
  );

before(async () => {
  if (skip) return;
  buildTopology(lab, '10.77', ['r1', 'r2', 'r3']);
  await Promise.all([startServer('r1', 'r1'), startServer('r2', 'r2'), startServer('r3', 'r3')]);
  writeFileSync(confPath, config(TWO_RS));
  lbProc = lab.spawn('lb', process.execPath, [cli, 'run', '-f', confPath]);
  lbProc.stdout!.on('data', (c: Buffer) => (lbLog += c.toString()));
  lbProc.stderr!.on('data', (c: Buffer) => (lbLog += c.toString()));
  await until('LB control socket', () => ctl(['-Ln']).code === 0, 15_000);
});

after(async () => {
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('requests through the VIP reach both RS in proportion to their weights', { skip }, () => {
  const r = client(['many', URL, '1000']);
  const counts = r.counts as Record<string, number>;
  assert.equal(r.failed, 0, `failed requests\n${lbLog.slice(-2000)}`);
  assert.ok(Math.abs((counts.r1 ?? 0) - 250) <= 25, JSON.stringify(counts));
  assert.ok(Math.abs((counts.r2 ?? 0) - 750) <= 75, JSON.stringify(counts));
});

test('20 MB download and 20 MB upload arrive byte-identical', { skip }, () => {
  const d = client(['download', URL, String(20 * 1024 * 1024)]);
  assert.equal(d.bytes, 20 * 1024 * 1024);
  assert.equal(d.sha256, d.expected);
  const u = client(['upload', URL, String(20 * 1024 * 1024)]);
  assert.equal(u.received, u.sent);
});

test(
  'tshark at the RS: the handshake-completing packet carries the client in a TOA; LB checksums valid',
  { skip },
  async () => {
    const pcap = join(dir, 'r1.pcap');
    // Immediate mode: libpcap would otherwise hold packets in a ring block for up to a
    // second, and SIGINT can end the capture before that block is handed over.
    const dump = lab.spawn('r1', 'tcpdump', [
      '--immediate-mode',
      '-i',
      'eth0',
      '-U',
      '-w',
      pcap,
      'tcp',
      'port',
      '8080',
    ]);
    await untilListening(dump);
    const r = client(['many', URL, '40']);
    await untilCaptureQuiet(pcap);
    dump.kill('SIGINT');
    await new Promise((r) => dump.once('exit', r));
    const ports = new Set((r.ports as number[]).map(String));
    const fields = spawn(
      'tshark',
      [
        '-n',
        '-r',
        pcap,
        '-o',
        'ip.check_checksum:TRUE',
        '-o',
        'tcp.check_checksum:TRUE',
        '-o',
        'tcp.relative_sequence_numbers:FALSE',
        '-T',
        'fields',
        '-E',
        'separator=|',
        '-e',
        'tcp.stream',
        '-e',
        'ip.src',
        '-e',
        'tcp.flags',
        '-e',
        'tcp.seq_raw',
        '-e',
        'tcp.ack_raw',
        '-e',
        'ip.checksum.status',
        '-e',
        'tcp.checksum.status',
        '-e',
        'tcp.options',
      ],
      { env: { ...process.env, HOME: dir } },
    );
    let text = '';
    fields.stdout.on('data', (c: Buffer) => (text += c.toString()));
    await new Promise((r) => fields.once('close', r));
    // Health checks from the LB's own address also reach the RS; only LIP streams went through fullnat.
    const streams = new Map<string, { viaLip?: boolean; isn?: number; concluding?: string }>();
    let fromLb = 0;
    for (const line of text.trim().split('\n')) {
      const [stream, src, flags, seq, ack, ipOk, tcpOk, options] = line.split('|');
      const st = streams.get(stream!) ?? {};
      streams.set(stream!, st);
      const f = parseInt(flags!, 16);
      if (src!.startsWith('10.77.3.')) {
        st.viaLip = true;
        fromLb++;
        assert.equal(ipOk, '1', `IP checksum of an LB packet: ${line}`);
        assert.equal(tcpOk, '1', `TCP checksum of an LB packet: ${line}`);
        const isAck = (f & 0x10) !== 0 && (f & 0x02) === 0;
        if (
          isAck &&
          st.isn !== undefined &&
          Number(ack) === (st.isn + 1) >>> 0 &&
          st.concluding === undefined
        ) {
          st.concluding = options ?? '';
        }
      } else if ((f & 0x12) === 0x12) {
        st.isn = Number(seq);
      }
    }
    let checked = 0;
    for (const st of streams.values()) {
      if (!st.viaLip || st.isn === undefined) continue;
      assert.ok(
        st.concluding !== undefined,
        `every handshake has a concluding packet: ${JSON.stringify(st)}`,
      );
      assert.ok(st.concluding.startsWith('fe08'), `TOA first in the options: ${st.concluding}`);
      const port = parseInt(st.concluding.slice(4, 8), 16);
      const addr = [8, 10, 12, 14]
        .map((i) => parseInt(st.concluding!.slice(i, i + 2), 16))
        .join('.');
      assert.equal(addr, '10.77.1.2');
      assert.ok(ports.has(String(port)), `TOA port ${port} is one of the client's`);
      checked++;
    }
    assert.ok(checked >= 5, `handshakes checked at r1: ${checked} ${JSON.stringify(r.counts)}`);
    assert.ok(fromLb > checked * 3);
  },
);

test(
  'after the clients close, ctl -Lnc empties within the configured timeouts',
  { skip },
  async () => {
    client(['many', URL, '20']);
    assert.ok(
      ctl(['-Lnc'])
        .out.split('\n')
        .filter((l) => l.startsWith('TCP')).length > 0,
    );
    await until(
      'connection table empty',
      () =>
        !ctl(['-Lnc'])
          .out.split('\n')
          .some((l) => l.startsWith('TCP')),
      8_000,
    );
  },
);

test(
  'a killed RS gets no new connections within delay_loop × retry, and comes back when restarted',
  { skip },
  async () => {
    const killedAt = Date.now();
    servers.get('r2')!.kill('SIGKILL');
    // delay_loop 1 × retry 1: out within a second, plus the 200 ms polling of this test.
    await until(
      'r2 held out (weight 0)',
      () => /10\.77\.2\.12:8080\s+FullNat\s+0\s/.test(ctl(['-Ln']).out),
      1_500,
    );
    const detectedMs = Date.now() - killedAt;
    const r = client(['many', URL, '30']);
    assert.deepEqual(r.counts, { r1: 30 }, `detected after ${detectedMs} ms`);
    await startServer('r2', 'r2');
    await until(
      'r2 restored (weight 3)',
      () => /10\.77\.2\.12:8080\s+FullNat\s+3\s/.test(ctl(['-Ln']).out),
      5_000,
    );
    const back = client(['many', URL, '40']);
    assert.ok(((back.counts as Record<string, number>).r2 ?? 0) > 20, JSON.stringify(back.counts));
  },
);

test(
  'a long-lived connection keeps working across a reload that adds a third RS',
  { skip },
  async () => {
    const c = lab.spawn(
      'c',
      process.execPath,
      [join(fixtures, 'client.js'), 'keepalive', VIP, '80'],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let out = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await until('first response', () => out.includes('"response":1'), 5_000);
    writeFileSync(confPath, config([...TWO_RS, { addr: '10.77.2.13', weight: 1 }]));
    const reload = ctl(['--reload']);
    assert.equal(reload.code, 0, reload.out);
    assert.match(ctl(['-Ln']).out, /10\.77\.2\.13:8080/);
    c.stdin!.write('go\n');
    await until(
      'second response on the same connection',
      () => out.includes('"response":2'),
      5_000,
    );
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const bodies = lines.filter((l) => 'body' in l).map((l) => String(l.body).split(' ')[0]);
    assert.equal(bodies[0], bodies[1], 'both answers come from the same RS');
    const r = client(['many', URL, '50']);
    assert.ok(((r.counts as Record<string, number>).r3 ?? 0) > 0, JSON.stringify(r.counts));
  },
);

test(
  'a config with an error is refused with file:line and the running LB is untouched',
  { skip },
  () => {
    const good = readFileSync(confPath, 'utf8');
    writeFileSync(confPath, good.replace('lb_algo wrr', 'lb_algo fastest'));
    const reload = ctl(['--reload']);
    assert.notEqual(reload.code, 0);
    assert.match(
      reload.out,
      new RegExp(`${confPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: `),
    );
    const list = ctl(['-Ln']).out;
    assert.match(list, /wrr/);
    assert.match(list, /10\.77\.2\.13:8080/);
    const r = client(['many', URL, '10']);
    assert.equal(r.failed, 0);
    writeFileSync(confPath, good);
  },
);

test('Prometheus metrics on the configured address count the TOA insertions', { skip }, () => {
  const text = lab.exec('lb', 'curl', ['-s', '-m', '5', 'http://127.0.0.1:9400/metrics']);
  const m = /^fullnat_toa_inserted_total (\d+)/m.exec(text);
  assert.ok(m && Number(m[1]) > 1000, `toa_inserted: ${m?.[1]}`);
  // The 20 MB transfers crossed the TUN as GSO super-packets (offload is on by default).
  for (const dir of ['rx', 'tx']) {
    const g = new RegExp(`^fullnat_io_${dir}_super_packets_total (\\d+)`, 'm').exec(text);
    assert.ok(g && Number(g[1]) > 10, `io_${dir}_super_packets: ${g?.[1]}`);
  }
  assert.match(
    text,
    /fullnat_real_server_active_connections\{service="10\.77\.0\.100:80",protocol="TCP",real_server="10\.77\.2\.11:8080"\}/,
  );
});

test(
  'SIGHUP reloads; SIGTERM removes the routes, the device and the control socket',
  { skip },
  async () => {
    const good = readFileSync(confPath, 'utf8');
    writeFileSync(confPath, good.replace(/lb_algo wrr/, 'lb_algo rr'));
    lbProc!.kill('SIGHUP');
    await until(
      'scheduler rr after SIGHUP',
      () => /10\.77\.0\.100:80 rr/.test(ctl(['-Ln']).out),
      5_000,
    );
    lbProc!.kill('SIGTERM');
    await new Promise((r) => lbProc!.once('exit', r));
    assert.equal(lbProc!.exitCode, 0);
    const routes = lab.ip('lb', 'route');
    assert.doesNotMatch(routes, /fnat0/);
    assert.doesNotMatch(lab.ip('lb', 'link'), /fnat0/);
    assert.notEqual(ctl(['-Ln']).code, 0);
  },
);
