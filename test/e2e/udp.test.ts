/**
 * UDP through fullnat on real kernels, with unmodified servers that see the
 * real client: dnsmasq (Debian's dnsmasq-base) on two real servers under
 * `fullnat rs exec`, the receiver's tc part in each RS namespace, `dig`
 * from two client addresses; a Node dgram echo server; 3,000-byte DNS
 * answers that cross both legs in fragments; the UOA bytes on the LB's TUN
 * read by scapy.
 *
 *   client 10.47.1.2, 10.47.1.3 ── 10.47.1.1 [LB: VIP 10.47.0.100, LIPs 10.47.3.1-2]
 *       10.47.2.1 ── br ── r1 10.47.2.11, r2 10.47.2.12
 *
 * Three DNS services on one VIP, the same servers behind each: port 53
 * `uoa_mode opp`, 54 `ipo`, 55 `off` — with `off` the servers log LIPs,
 * which shows the receiver is what made the difference. Ports 9, 10 and 11
 * (opp, ipo, off) lead to an RS port nothing listens on: the RS's port
 * unreachable comes back through the LB to the client's socket.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsLab } from '../../src/lab/netns.js';
import { LINKTYPE_RAW, locateIpHeader, readPcap } from '../../src/wire/pcap.js';
import { buildTopology, cli, runCtl, until as untilOr } from './support/harness.js';
import {
  attachUdpReceiverIn,
  receiverFor,
  receiverUnavailable,
  spawnUnderReceiver,
  tearDown,
} from './support/receiver.js';
import { startCapture, stopCapture } from '../support/tcpdump.js';
import { probeScapy, scapyDecode, type ScapyPacket } from '../support/scapy.js';

const VIP = '10.47.0.100';
const CLIENTS = ['10.47.1.2', '10.47.1.3'] as const;
const LIPS = ['10.47.3.1', '10.47.3.2'];
const RS = ['10.47.2.11', '10.47.2.12'];
const DEV = 'fnatu';
const QUERIES = 1000;
const BIG_ANSWERS = 100;
/** Services whose RS port has no listener, one per UOA mode. */
const REFUSED = [
  [9, 'opp'],
  [10, 'ipo'],
  [11, 'off'],
] as const;
const CLOSED_PORT = 9009;
/** One TXT string of 250 bytes, twelve of them: a 3,000-byte answer. */
const TXT = 'x'.repeat(250);

function why(): string | undefined {
  const missing = receiverUnavailable(['dnsmasq', 'dig', 'bpftool', 'tcpdump', 'nsenter']);
  if (missing) return missing;
  const s = probeScapy();
  return s.ok ? undefined : s.reason;
}

const skip = why();
const pid = process.pid % 100000;
const lab = new NetnsLab(`fu${pid}`);
const dir = mkdtempSync(join(tmpdir(), 'fullnat-udp-'));
const confPath = join(dir, 'lb.conf');
const sock = join(dir, 'fullnat.sock');
const receiver = receiverFor(`e2eu-${pid}`);
let lbProc: ChildProcess | undefined;
let lbLog = '';

function config(): string {
  const service = (port: number, mode: string, rsPort: number): string => `
virtual_server ${VIP} ${port} {
    protocol UDP
    lb_algo rr
    laddr_group_name lips
    uoa_mode ${mode}
${RS.map((r) => `    real_server ${r} ${rsPort} { weight 1 }`).join('\n')}
}`;
  return `fullnat_defs {
    interface ${DEV}
    control_socket ${sock}
    metrics 127.0.0.1:9447
}
local_address_group lips {
${LIPS.map((l) => `    ${l}`).join('\n')}
}
${service(53, 'opp', 53)}
${service(54, 'ipo', 53)}
${service(55, 'off', 53)}
virtual_server ${VIP} 7 {
    protocol UDP
    lb_algo rr
    laddr_group_name lips
    real_server ${RS[0]} 7007 { weight 1 }
}
${REFUSED.map(([port, mode]) => service(port, mode, CLOSED_PORT)).join('\n')}
`;
}

const ctl = (args: string[]): { code: number; out: string } => runCtl(lab, sock, args);

const until = (what: string, fn: () => boolean, timeoutMs: number): Promise<void> =>
  untilOr(what, fn, timeoutMs, () => lbLog.slice(-2000));

const queryLog = (rs: string): string => join(dir, `dnsmasq-${rs}.log`);

type Query = { name: string; from: string };

/** dnsmasq's own log lines `query[A] NAME from ADDRESS`, per server. */
function queries(): Query[][] {
  return ['r1', 'r2'].map((rs) =>
    existsSync(queryLog(rs))
      ? [
          ...readFileSync(queryLog(rs), 'utf8').matchAll(/query\[(?:A|TXT)\] (\S+) from (\S+)/g),
        ].map((m) => ({ name: m[1]!, from: m[2]! }))
      : [],
  );
}

/** The queries both servers logged since `before` (a `queries()` of then). */
function queriesSince(before: Query[][]): Query[] {
  return queries().flatMap((q, i) => q.slice(before[i]!.length));
}

/** `count` A queries NAME-i.example.test from `client` to VIP:port, one dig; the names answered. */
function dig(client: string, port: number, tag: string, count: number): string[] {
  const batch = join(dir, `batch-${tag}.txt`);
  let text = '';
  for (let i = 0; i < count; i++) text += `${tag}-${i}.example.test A\n`;
  writeFileSync(batch, text);
  const out = lab.exec(
    'c',
    'dig',
    [
      '-b',
      client,
      `@${VIP}`,
      '-p',
      String(port),
      '+tries=2',
      '+timeout=3',
      '+noall',
      '+answer',
      '-f',
      batch,
    ],
    180_000,
  );
  return [...out.matchAll(/^(\S+)\.\s+\d+\s+IN\s+A\s+192\.0\.2\.1$/gm)].map((m) => m[1]!);
}

const capture = (file: string): Promise<ChildProcess> =>
  startCapture(lab, 'lb', DEV, file, 'not tcp', 512);

/** The IP datagrams of a capture on the TUN (raw IP link type). */
function datagrams(file: string): Uint8Array[] {
  return readPcap(new Uint8Array(readFileSync(file))).map((r) => {
    const at = locateIpHeader(LINKTYPE_RAW, r.data);
    return r.data.subarray(at);
  });
}

/**
 * One DNS service's acceptance: QUERIES names from each client address,
 * every one answered, and the server's own log names, for every query, the
 * client that sent it (`expectClient`) or a LIP (`uoa_mode off`).
 */
async function dnsAcceptance(port: number, mode: string): Promise<Uint8Array[]> {
  const before = queries();
  const pcap = join(dir, `dns-${port}.pcap`);
  const dump = await capture(pcap);
  const t0 = Date.now();
  const answered = CLIENTS.map((c, k) => dig(c, port, `${mode}${k}`, QUERIES));
  const ms = Date.now() - t0;
  await stopCapture(dump, pcap);
  console.log(
    `# port ${port} (uoa_mode ${mode}): ${answered[0]!.length + answered[1]!.length}/${2 * QUERIES} answers in ${ms} ms`,
  );
  for (const a of answered) assert.equal(a.length, QUERIES, 'every query answered');
  let logged: Query[] = [];
  await until(
    `${2 * QUERIES} queries in the servers' logs`,
    () => (logged = queriesSince(before)).length >= 2 * QUERIES,
    10_000,
  );
  assert.equal(logged.length, 2 * QUERIES);
  const wrong = logged.filter((q) => {
    const k = Number(/^[a-z]+(\d)-/.exec(q.name)?.[1]);
    return mode === 'off' ? !LIPS.includes(q.from) : q.from !== CLIENTS[k];
  });
  const perServer = ['r1', 'r2'].map((rs) => readFileSync(queryLog(rs), 'utf8').length);
  console.log(
    `# port ${port}: the servers logged ${logged.length} queries, ${logged.length - wrong.length} from ` +
      `${mode === 'off' ? 'a LIP' : 'the true client'} (log sizes ${perServer.join(', ')} bytes)`,
  );
  assert.deepEqual(wrong.slice(0, 3), [], `${wrong.length} queries logged with the wrong source`);
  return datagrams(pcap);
}

/** What the LB sent toward the RSs on the TUN, decoded by scapy: UOA where `mode` says, the client in it. */
function checkUoa(packets: Uint8Array[], mode: string): void {
  // Only what the LB sent toward the RSs (source a LIP), a thousand per scapy run.
  const fromLip = packets.filter(
    (p) => p[0]! >>> 4 === 4 && LIPS.includes(`${p[12]}.${p[13]}.${p[14]}.${p[15]}`),
  );
  const toRs: ScapyPacket[] = [];
  for (let i = 0; i < fromLip.length; i += 1000)
    toRs.push(...scapyDecode(fromLip.slice(i, i + 1000)));
  assert.ok(toRs.length >= 2 * QUERIES, `${toRs.length} datagrams toward the RSs`);
  let withUoa = 0;
  for (const p of toRs) {
    if (mode === 'opp') {
      assert.equal(p.proto, 248, 'opp: IP protocol 248');
      assert.equal(p.opp?.version, 1);
      assert.equal(p.opp?.protocol, 17);
      assert.equal(p.opp?.length, 12, 'OPP header and an 8-byte UOA');
      const uoa = Buffer.from(p.l4Hex, 'hex').subarray(4, 12);
      assert.equal(uoa[0], 31);
      assert.equal(uoa[1], 8);
      assert.ok(CLIENTS.includes(`${uoa[4]}.${uoa[5]}.${uoa[6]}.${uoa[7]}` as (typeof CLIENTS)[0]));
      assert.equal(p.udp?.chksum, p.udp?.chksumRebuilt, 'UDP checksum after the shim');
      withUoa++;
    } else if (mode === 'ipo') {
      assert.equal(p.proto, 17);
      const o = p.options?.find((x) => x.option === 31);
      assert.ok(o, 'ipo: IP option 31');
      assert.equal(o.length, 8);
      const b = Buffer.from(o.hex, 'hex');
      assert.ok(CLIENTS.includes(`${b[4]}.${b[5]}.${b[6]}.${b[7]}` as (typeof CLIENTS)[0]));
      assert.equal(p.chksum, p.chksumRebuilt, 'IP header checksum');
      assert.equal(p.udp?.chksum, p.udp?.chksumRebuilt, 'UDP checksum');
      withUoa++;
    } else {
      assert.equal(p.proto, 17);
      assert.equal(p.options?.length ?? 0, 0);
    }
  }
  console.log(
    `# uoa_mode ${mode}: scapy read ${toRs.length} datagrams toward the RSs, ${withUoa} with a UOA`,
  );
}

before(async () => {
  if (skip) return;
  buildTopology(lab, '10.47', ['r1', 'r2']);
  lab.ip('c', 'addr', 'add', `${CLIENTS[1]}/24`, 'dev', 'eth0');
  for (const rs of ['r1', 'r2']) {
    attachUdpReceiverIn(lab, receiver, rs);
    // dnsmasq splits the strings at the commas (no shell here, so no quotes).
    const txt = Array.from({ length: 12 }, () => TXT).join(',');
    spawnUnderReceiver(lab, receiver.rsFlags, rs, 'dnsmasq', [
      '-k',
      '--conf-file=/dev/null',
      '--no-resolv',
      '--no-hosts',
      '--user=root',
      '--group=root',
      '--pid-file=',
      '--port=53',
      '--edns-packet-max=4096',
      '--address=/example.test/192.0.2.1',
      `--txt-record=big.example.test,${txt}`,
      '--log-queries',
      `--log-facility=${queryLog(rs)}`,
    ]);
  }
  writeFileSync(
    join(dir, 'echo.mjs'),
    `import dgram from 'node:dgram';
import { appendFileSync } from 'node:fs';
const s = dgram.createSocket('udp4');
s.on('message', (m, r) => {
  appendFileSync(${JSON.stringify(join(dir, 'echo.log'))}, r.address + ' ' + r.port + ' ' + m + '\\n');
  s.send(m, r.port, r.address);
});
s.bind(7007);
`,
  );
  spawnUnderReceiver(lab, receiver.rsFlags, 'r1', process.execPath, [join(dir, 'echo.mjs')]);
  writeFileSync(confPath, config());
  lbProc = lab.spawn('lb', process.execPath, [cli, 'run', '-f', confPath]);
  lbProc.stdout!.on('data', (c: Buffer) => (lbLog += c.toString()));
  lbProc.stderr!.on('data', (c: Buffer) => (lbLog += c.toString()));
  await until('LB control socket', () => ctl(['-Ln']).code === 0, 15_000);
  for (const rs of ['r1', 'r2'])
    await until(`dnsmasq on ${rs}`, () => /:53\b/.test(lab.exec(rs, 'ss', ['-lun'])), 10_000);
  await until('echo server', () => /:7007\b/.test(lab.exec('r1', 'ss', ['-lun'])), 10_000);
});

after(() => tearDown(lab, dir, skip ? undefined : receiver));

test(
  `uoa_mode opp: ${2 * QUERIES} dig queries from two clients, all answered; dnsmasq logs the true client on every one; scapy reads protocol 248 and the UOA`,
  { skip, timeout: 300_000 },
  async () => checkUoa(await dnsAcceptance(53, 'opp'), 'opp'),
);

test(
  `uoa_mode ipo: ${2 * QUERIES} dig queries, all answered, the true client logged on every one; scapy reads IP option 31`,
  { skip, timeout: 300_000 },
  async () => checkUoa(await dnsAcceptance(54, 'ipo'), 'ipo'),
);

test(
  'uoa_mode off: the same servers log LIPs — the receiver is what made the difference',
  { skip, timeout: 300_000 },
  async () => checkUoa(await dnsAcceptance(55, 'off'), 'off'),
);

test('ctl -Ln and -Lnc show the UDP services and flows as ipvsadm does', { skip }, () => {
  const l = ctl(['-Ln']).out;
  assert.match(l, new RegExp(`UDP\\s+${VIP.replace(/\./g, '\\.')}:53 rr`));
  assert.match(l, new RegExp(`UDP\\s+${VIP.replace(/\./g, '\\.')}:7 rr`));
  const c = ctl(['-Lnc']).out;
  assert.match(c, /UDP\s+\d\d:\d\d\s+UDP\s+10\.47\.1\.[23]:\d+\s+10\.47\.0\.100:5[345]/);
});

test(
  'a Node dgram echo server sees the client in rinfo and its send() reaches the client through the LB',
  { skip, timeout: 60_000 },
  () => {
    const script = join(dir, 'echo-client.mjs');
    writeFileSync(
      script,
      `import dgram from 'node:dgram';
const s = dgram.createSocket('udp4');
const got = [];
s.on('message', (m, r) => got.push({ m: String(m), from: r.address + ':' + r.port }));
s.bind(0, ${JSON.stringify(CLIENTS[0])}, () => {
  for (let i = 0; i < 20; i++) s.send('ping-' + i, 7, ${JSON.stringify(VIP)});
  setTimeout(() => { console.log(JSON.stringify({ port: s.address().port, got })); s.close(); }, 1500);
});
`,
    );
    const r = JSON.parse(lab.exec('c', process.execPath, [script], 30_000)) as {
      port: number;
      got: { m: string; from: string }[];
    };
    assert.equal(r.got.length, 20, 'every echo came back');
    for (const g of r.got) assert.equal(g.from, `${VIP}:7`, 'replies come from the VIP');
    const lines = readFileSync(join(dir, 'echo.log'), 'utf8').trim().split('\n');
    assert.equal(lines.length, 20);
    for (const l of lines) assert.match(l, new RegExp(`^${CLIENTS[0]} ${r.port} ping-\\d+$`));
  },
);

test(
  `${BIG_ANSWERS} DNS answers of 3,000 bytes (EDNS0): fragmented by the RS, reassembled and fragmented again by the LB, all complete at the client`,
  { skip, timeout: 120_000 },
  () => {
    const batch = join(dir, 'big.txt');
    writeFileSync(batch, 'big.example.test TXT\n'.repeat(BIG_ANSWERS));
    const out = lab.exec(
      'c',
      'dig',
      [
        '-b',
        CLIENTS[0],
        `@${VIP}`,
        '-p',
        '53',
        '+bufsize=4096',
        '+ignore',
        '+noall',
        '+answer',
        '-f',
        batch,
      ],
      90_000,
    );
    const answers = out.split('\n').filter((l) => /\bTXT\b/.test(l));
    const complete = answers.filter((l) => (l.match(/"x{250}"/g) ?? []).length === 12);
    const metrics = lab.exec('lb', 'curl', ['-sS', 'http://127.0.0.1:9447/metrics']);
    const metric = (n: string): number =>
      Number(new RegExp(`^fullnat_${n}_total (\\d+)`, 'm').exec(metrics)?.[1] ?? NaN);
    console.log(
      `# ${complete.length}/${BIG_ANSWERS} complete 3,000-byte answers; LB: ${metric('datagrams_reassembled')} datagrams ` +
        `reassembled, ${metric('fragments_sent')} fragments sent, ${metric('fragment_reasm_dropped')} fragments dropped`,
    );
    assert.equal(complete.length, BIG_ANSWERS);
    assert.ok(metric('datagrams_reassembled') >= BIG_ANSWERS);
    assert.ok(metric('fragments_sent') >= 2 * BIG_ANSWERS);
  },
);

test(
  "a service whose RS port has no listener: the RS's port unreachable comes back through the LB, and the client's connected socket gets ECONNREFUSED (opp, ipo, off)",
  { skip, timeout: 60_000 },
  () => {
    const script = join(dir, 'refused-client.mjs');
    writeFileSync(
      script,
      `import dgram from 'node:dgram';
const [port] = process.argv.slice(2);
const s = dgram.createSocket('udp4');
const started = Date.now();
const done = (r) => { console.log(JSON.stringify({ ...r, ms: Date.now() - started })); s.close(); process.exit(0); };
s.on('error', (e) => done({ code: e.code }));
s.on('message', () => done({ code: 'answered' }));
s.bind(0, ${JSON.stringify(CLIENTS[1])}, () => {
  s.connect(Number(port), ${JSON.stringify(VIP)}, () => {
    // A few tries: the RS's kernel rate-limits its unreachables, the first may race the route.
    s.send('anyone?');
    let n = 0;
    const t = setInterval(() => { if (n++ < 10) s.send('anyone?'); }, 200);
    t.unref();
    setTimeout(() => done({ code: 'timeout' }), 5000).unref();
  });
});
`,
    );
    const metrics = (): string => lab.exec('lb', 'curl', ['-sS', 'http://127.0.0.1:9447/metrics']);
    const forwarded = (): number =>
      Number(/^fullnat_icmp_error_forwarded_total (\d+)/m.exec(metrics())?.[1] ?? NaN);
    const before = forwarded();
    for (const [port, mode] of REFUSED) {
      const r = JSON.parse(lab.exec('c', process.execPath, [script, String(port)], 30_000)) as {
        code: string;
        ms: number;
      };
      console.log(`# ${mode}: ${r.code} after ${r.ms} ms`);
      assert.equal(r.code, 'ECONNREFUSED', `${mode}: the client's socket hears the RS refuse`);
    }
    assert.ok(forwarded() - before >= REFUSED.length, 'the LB translated the RS port unreachables');
  },
);
