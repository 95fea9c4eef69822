// Real-kernel test of the eBPF receiver's UDP part (native/bpf/uoa.bpf.c,
// attached by `fullnat rs exec|attach|detach`): an unmodified Node `dgram`
// echo server sees the client a UOA names, and its replies go back to the LIP.
//
//   ns fnuoa-<pid>-lb ── veth ── ns fnuoa-<pid>-rs
//   10.202.0.1 (LIP, trusted)        10.202.0.2   echo servers under `rs exec`:
//   10.202.0.9 (not trusted)         fd00:202::2    7001 udp4, 7002 udp6 dual stack,
//   fd00:202::1 (LIP, trusted)                      7003 udp4 that connects to its peer
//   scapy crafts the datagrams (ipo, opp, plain) from the LIPs; a Node listener
//   bound to each LIP port there receives the replies.
//
// The server runs under `nsenter --net` rather than `ip netns exec`, which
// would hide /sys/fs/bpf: `rs exec` attaches the tc program to the interfaces
// of the namespace it runs in. Without the tc program (the negative control),
// opp datagrams are lost and the namespace's Ip: InUnknownProtos grows.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { rmdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { NetnsLab } from '../../src/lab/netns.js';
import { checkPrerequisites, findCgroup2Mount, type Status } from '../../src/realserver/ebpf.js';
import { findTc } from '../../src/realserver/tc.js';
import { parseSnmp } from '../../src/realserver/unknown-protos.js';
import { SCAPY_PYTHON, probeScapy } from '../support/scapy.js';
import { sleep } from '../support/time.js';

const PID = process.pid;
const lab = new NetnsLab(`fnuoa${PID % 100000}`);
const NS_LB = lab.ns('lb');
const NS_RS = lab.ns('rs');
const RS_DEV = `ur${PID % 100000}`;
const PIN_DIR = `/sys/fs/bpf/fullnat-uoa-test-${PID}`;
const LIP = '10.202.0.1';
const ROGUE = '10.202.0.9';
const RS = '10.202.0.2';
const LIP6 = 'fd00:202::1';
const RS6 = 'fd00:202::2';
const TRUST = `${LIP},${LIP6}`;

const CLI_URL = pathToFileURL(
  fileURLToPath(new URL('../../src/realserver/cli.js', import.meta.url)),
).href;
const LAUNCHER = `import { runRs } from ${JSON.stringify(CLI_URL)}; process.exitCode = await runRs(process.argv.slice(1));`;

/** Echo servers: one JSON line per datagram, then the echo (to rinfo, or through a connect()). */
const SERVER = String.raw`
const dgram = require('node:dgram');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
function serve(type, port, connect) {
  const s = dgram.createSocket({ type, ipv6Only: false });
  s.on('message', (msg, r) => {
    out({ port, from: r.address, fromPort: r.port, data: msg.toString(), size: msg.length });
    const reply = Buffer.from('echo:' + msg.toString());
    if (connect) {
      s.connect(r.port, r.address, () => {
        const p = s.remoteAddress();
        out({ port, connectedTo: p.address, connectedPort: p.port });
        s.send(reply, (e) => e && out({ port, sendError: e.code }));
      });
    } else s.send(reply, r.port, r.address, (e) => e && out({ port, sendError: e.code }));
  });
  s.bind(port, type === 'udp4' ? '0.0.0.0' : '::', () => out({ listening: port }));
}
serve('udp4', 7001, false);
serve('udp6', 7002, false);
serve('udp4', 7003, true);
`;

/** The LB side: sockets on the LIP ports, one JSON line per reply received. */
const LISTENER = String.raw`
const dgram = require('node:dgram');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const binds = JSON.parse(process.argv[1]);
let left = binds.length;
for (const [addr, port] of binds) {
  const s = dgram.createSocket(addr.includes(':') ? 'udp6' : 'udp4');
  s.on('message', (msg, r) => out({ to: addr + ':' + port, from: r.address, fromPort: r.port, data: msg.toString() }));
  s.bind(port, addr, () => { if (--left === 0) out({ listening: binds.length }); });
}
`;

/** Builds each datagram with scapy (an encoder independent of src/wire) and sends it, in order. */
const CRAFTER = String.raw`
import json, socket, struct, sys, time
from scapy.all import IP, IPv6, UDP, Raw, IPOption, send, conf
conf.verb = 0

def uoa(d):
    fam = socket.AF_INET6 if ':' in d['client'] else socket.AF_INET
    addr = socket.inet_pton(fam, d['client'])
    return bytes([d.get('uoaCode', 31), 4 + len(addr)]) + struct.pack('!H', d['cport']) + addr

def udp_bytes(d):
    ip = IPv6(src=d['src'], dst=d['dst']) if d['family'] == 6 else IP(src=d['src'], dst=d['dst'])
    raw = bytes(ip / UDP(sport=d['sport'], dport=d['dport']) / Raw(d['payload'].encode()))
    return raw[40:] if d['family'] == 6 else raw[20:]

for d in json.load(sys.stdin):
    mode = d['mode']
    if mode == 'plain':
        p = IP(src=d['src'], dst=d['dst']) / UDP(sport=d['sport'], dport=d['dport']) / Raw(d['payload'].encode())
    elif mode == 'ipo':
        p = IP(src=d['src'], dst=d['dst'], options=[IPOption(uoa(d))]) / UDP(sport=d['sport'], dport=d['dport']) / Raw(d['payload'].encode())
    else:
        u = uoa(d)
        version = 2 if ':' in d['client'] else 1
        opp = bytes([version << 4, 17]) + struct.pack('!H', 4 + len(u)) + u
        if d['family'] == 6:
            p = IPv6(src=d['src'], dst=d['dst'], nh=248) / Raw(opp + udp_bytes(d))
        else:
            # ipOptions: an IPv4 header with options (NOP NOP NOP END) ahead of the shim.
            options = [IPOption(b'\x01\x01\x01\x00')] if d.get('ipOptions') else []
            p = IP(src=d['src'], dst=d['dst'], proto=248, options=options) / Raw(opp + udp_bytes(d))
    send(p)
    time.sleep(0.02)
`;

interface Datagram {
  mode: 'ipo' | 'opp' | 'plain';
  family?: 4 | 6;
  src: string;
  sport: number;
  dport: number;
  client?: string;
  cport?: number;
  payload: string;
  uoaCode?: number;
  ipOptions?: boolean;
}

interface Line {
  port?: number;
  from?: string;
  fromPort?: number;
  data?: string;
  size?: number;
  to?: string;
  listening?: number;
  connectedTo?: string;
  connectedPort?: number;
  sendError?: string;
}

interface Proc {
  child: ChildProcess;
  lines: Line[];
  stderr: string;
}

function watch(child: ChildProcess): Proc {
  const p: Proc = { child, lines: [], stderr: '' };
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        p.lines.push(JSON.parse(line) as Line);
      } catch {
        p.stderr += `${line}\n`;
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (p.stderr += d));
  return p;
}

async function until(what: string, fn: () => boolean, ms: number, ctx: () => string) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fn()) return;
    await sleep(50);
  }
  assert.fail(`${what}: not within ${ms} ms\n${ctx()}`);
}

let cgroup = '';
let server: Proc | undefined;
let listener: Proc | undefined;

function skipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (eBPF, cgroups, network namespaces)';
  const pre = checkPrerequisites({ pinDir: PIN_DIR });
  if (!pre.ok) return pre.reason;
  if (!findTc()) return 'tc (iproute2) is not installed';
  const scapy = probeScapy();
  if (!scapy.ok && process.env.FULLNAT_REQUIRE_ALL !== '1') return scapy.reason;
  return false;
}

/** `fullnat rs ARGS` inside the RS namespace (nsenter keeps the bpf mount). */
function rsIn(args: string[]): string {
  return execFileSync(
    'nsenter',
    [`--net=/run/netns/${NS_RS}`, process.execPath, '--input-type=module', '-e', LAUNCHER, ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 },
  );
}

function rsStatus(): Status {
  return JSON.parse(rsIn(['status', '--json', '--pin-dir', PIN_DIR])) as Status;
}

function craft(datagrams: readonly Datagram[]): void {
  const full = datagrams.map((d) => ({
    family: 4,
    dst: d.family === 6 ? RS6 : RS,
    ...d,
  }));
  execFileSync('ip', ['netns', 'exec', NS_LB, SCAPY_PYTHON, '-c', CRAFTER], {
    input: JSON.stringify(full),
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: 60_000,
  });
}

function unknownProtos(): number {
  const text = execFileSync('ip', ['netns', 'exec', NS_RS, 'cat', '/proc/net/snmp'], {
    encoding: 'utf8',
  });
  const v = parseSnmp(text);
  assert.ok(v !== undefined, 'Ip: InUnknownProtos readable');
  return v;
}

const received = (port: number): Line[] =>
  (server?.lines ?? []).filter((l) => l.port === port && l.data !== undefined);
const replies = (): Line[] => (listener?.lines ?? []).filter((l) => l.to !== undefined);
const context = (): string =>
  `server: ${JSON.stringify(server?.lines)}\n${server?.stderr ?? ''}\nlistener: ${JSON.stringify(listener?.lines)}\n${listener?.stderr ?? ''}`;

const reason = skipReason();

describe('eBPF UOA receiver (UDP) on a real kernel', { skip: reason }, () => {
  before(async () => {
    lab.addHost('lb');
    lab.addHost('rs');
    lab.link('lb', `ul${PID % 100000}`, `${LIP}/24`, 'rs', RS_DEV, `${RS}/24`);
    lab.ip('lb', 'addr', 'add', `${ROGUE}/24`, 'dev', `ul${PID % 100000}`);
    lab.ip('lb', 'addr', 'add', `${LIP6}/64`, 'dev', `ul${PID % 100000}`, 'nodad');
    lab.ip('rs', 'addr', 'add', `${RS6}/64`, 'dev', RS_DEV, 'nodad');
    cgroup = join(findCgroup2Mount()!, `fullnat-uoa-test-${PID}`);

    listener = watch(
      lab.spawn('lb', process.execPath, [
        '-e',
        LISTENER,
        JSON.stringify([
          ...[5001, 5002, 5003, 5004, 5005, 5009, 5011, 5012, 5014].map((p) => [LIP, p]),
          [ROGUE, 5006],
          [LIP6, 5008],
        ]),
      ]),
    );
    server = watch(
      lab.spawnHost('nsenter', [
        `--net=/run/netns/${NS_RS}`,
        process.execPath,
        '--input-type=module',
        '-e',
        LAUNCHER,
        'exec',
        '--cgroup',
        cgroup,
        '--pin-dir',
        PIN_DIR,
        '--trust',
        TRUST,
        '--',
        process.execPath,
        '-e',
        SERVER,
      ]),
    );
    await until(
      'servers and listener up',
      () =>
        (server?.lines.filter((l) => l.listening !== undefined).length ?? 0) === 3 &&
        (listener?.lines.some((l) => l.listening !== undefined) ?? false),
      15_000,
      context,
    );
  });

  after(async () => {
    await lab.destroy();
    try {
      execFileSync(
        process.execPath,
        ['--input-type=module', '-e', LAUNCHER, 'detach', '--cgroup', cgroup, '--pin-dir', PIN_DIR],
        { stdio: 'pipe' },
      );
    } catch {
      // already gone
    }
    for (let i = 0; i < 40 && cgroup; i++) {
      try {
        rmdirSync(cgroup);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') break;
        await sleep(50);
      }
    }
  });

  test('rs exec put the tc program on the namespace’s only UP interface', () => {
    const s = rsStatus();
    assert.deepEqual(
      s.uoa.tc.map((t) => [t.dev, t.program]),
      [[RS_DEV, 'uoa_ingress']],
    );
  });

  test(
    'recvfrom reports the UOA client (ipo, opp, IPv4 and IPv6); replies go to LIP:port; empty carriers, untrusted opp and malformed opp never reach the server',
    { timeout: 60_000 },
    async (t) => {
      craft([
        {
          mode: 'ipo',
          src: LIP,
          sport: 5001,
          dport: 7001,
          client: '10.7.0.1',
          cport: 40001,
          payload: 'ipo',
        },
        {
          mode: 'opp',
          src: LIP,
          sport: 5002,
          dport: 7001,
          client: '10.7.0.2',
          cport: 40002,
          payload: 'opp',
        },
        // The fourth datagram of a flow carries no UOA: the mapping holds.
        { mode: 'plain', src: LIP, sport: 5002, dport: 7001, payload: 'opp-then-plain' },
        {
          mode: 'opp',
          src: LIP,
          sport: 5003,
          dport: 7002,
          client: '10.7.0.3',
          cport: 40003,
          payload: 'opp-dual',
        },
        // UOA-only carriers (UDP length 8) ahead of the datagram itself.
        {
          mode: 'opp',
          src: LIP,
          sport: 5004,
          dport: 7001,
          client: '10.7.0.4',
          cport: 40004,
          payload: '',
        },
        { mode: 'plain', src: LIP, sport: 5004, dport: 7001, payload: 'after-empty-opp' },
        {
          mode: 'ipo',
          src: LIP,
          sport: 5005,
          dport: 7001,
          client: '10.7.0.5',
          cport: 40005,
          payload: '',
        },
        { mode: 'plain', src: LIP, sport: 5005, dport: 7001, payload: 'after-empty-ipo' },
        {
          mode: 'ipo',
          src: ROGUE,
          sport: 5006,
          dport: 7001,
          client: '10.7.0.6',
          cport: 40006,
          payload: 'rogue-ipo',
        },
        {
          mode: 'opp',
          src: ROGUE,
          sport: 5007,
          dport: 7001,
          client: '10.7.0.7',
          cport: 40007,
          payload: 'rogue-opp',
        },
        {
          mode: 'opp',
          src: LIP,
          sport: 5013,
          dport: 7001,
          client: '10.7.0.13',
          cport: 40013,
          payload: 'malformed',
          uoaCode: 30,
        },
        {
          mode: 'opp',
          family: 6,
          src: LIP6,
          sport: 5008,
          dport: 7002,
          client: 'fd00:7::8',
          cport: 40008,
          payload: 'opp6',
        },
        {
          mode: 'opp',
          src: LIP,
          sport: 5009,
          dport: 7003,
          client: '10.7.0.9',
          cport: 40009,
          payload: 'connect',
        },
        {
          mode: 'opp',
          src: LIP,
          sport: 5014,
          dport: 7001,
          client: '10.7.0.14',
          cport: 40014,
          payload: 'opp-behind-ip-options',
          ipOptions: true,
        },
      ]);
      await until(
        '10 datagrams served and 10 replies back at the LB',
        () =>
          received(7001).length + received(7002).length + received(7003).length >= 10 &&
          replies().length >= 10,
        15_000,
        context,
      );
      await sleep(500); // anything that should not arrive has had its chance
      t.diagnostic(
        `server saw: ${JSON.stringify(server?.lines.filter((l) => l.data !== undefined))}`,
      );

      const seen = (port: number): string[] =>
        received(port).map((l) => `${l.from}:${l.fromPort} ${l.data}`);
      assert.deepEqual(seen(7001), [
        '10.7.0.1:40001 ipo',
        '10.7.0.2:40002 opp',
        '10.7.0.2:40002 opp-then-plain',
        '10.7.0.4:40004 after-empty-opp',
        '10.7.0.5:40005 after-empty-ipo',
        `${ROGUE}:5006 rogue-ipo`,
        '10.7.0.14:40014 opp-behind-ip-options',
      ]);
      assert.deepEqual(seen(7002), ['::ffff:10.7.0.3:40003 opp-dual', 'fd00:7::8:40008 opp6']);
      assert.deepEqual(seen(7003), ['10.7.0.9:40009 connect']);
      assert.ok(
        (server?.lines ?? []).every((l) => l.size !== 0),
        'no empty datagram reached the server',
      );
      assert.deepEqual(
        (server?.lines ?? []).filter((l) => l.sendError !== undefined),
        [],
      );
      // A UDP socket connected to the client is connected to its LIP.
      assert.deepEqual(
        (server?.lines ?? [])
          .filter((l) => l.connectedTo !== undefined)
          .map((l) => `${l.connectedTo}:${l.connectedPort}`),
        [`${LIP}:5009`],
      );

      const back = replies()
        .map((l) => `${l.to} <- ${l.from}:${l.fromPort} ${l.data}`)
        .sort();
      assert.deepEqual(
        back,
        [
          `${LIP}:5001 <- ${RS}:7001 echo:ipo`,
          `${LIP}:5002 <- ${RS}:7001 echo:opp`,
          `${LIP}:5002 <- ${RS}:7001 echo:opp-then-plain`,
          `${LIP}:5003 <- ${RS}:7002 echo:opp-dual`,
          `${LIP}:5004 <- ${RS}:7001 echo:after-empty-opp`,
          `${LIP}:5005 <- ${RS}:7001 echo:after-empty-ipo`,
          `${LIP}:5009 <- ${RS}:7003 echo:connect`,
          `${LIP}:5014 <- ${RS}:7001 echo:opp-behind-ip-options`,
          `${ROGUE}:5006 <- ${RS}:7001 echo:rogue-ipo`,
          `${LIP6}:5008 <- ${RS6}:7002 echo:opp6`,
        ].sort(),
      );
    },
  );

  test('rs status counts every UOA datagram once', () => {
    const s = rsStatus();
    const u = s.uoa.counters;
    assert.deepEqual(u, {
      ipo: 2,
      opp: 7,
      oppStripped: 5,
      emptyDropped: 2,
      untrusted: 2,
      malformed: 1,
      recorded: 8,
      recvRewrites: 9,
      sendRedirects: 9,
      unexpressible: 0,
      errors: 0,
    });
    assert.equal(s.uoa.mappings, 8);
    assert.equal(typeof s.unknownProtos.ipv4, 'number');
    const text = rsIn(['status', '--pin-dir', PIN_DIR]);
    assert.match(text, /opp shims removed\s+5/);
    assert.match(text, /UDP \(UOA\): tc ingress of ur\d+ \(uoa_ingress, id \d+\)/);
    assert.match(text, /InUnknownProtos \d+/);
  });

  test(
    'without the tc program opp datagrams are lost and InUnknownProtos grows by as many; ipo then shows the LIP',
    { timeout: 60_000 },
    async () => {
      const out = rsIn(['detach', '--dev', RS_DEV, '--pin-dir', PIN_DIR]);
      assert.match(out, new RegExp(`removed from ${RS_DEV}`));
      assert.deepEqual(rsStatus().uoa.tc, []);
      const before = unknownProtos();
      const count = received(7001).length;
      craft([
        {
          mode: 'opp',
          src: LIP,
          sport: 5011,
          dport: 7001,
          client: '10.7.0.11',
          cport: 40011,
          payload: 'lost-1',
        },
        {
          mode: 'opp',
          src: LIP,
          sport: 5011,
          dport: 7001,
          client: '10.7.0.11',
          cport: 40011,
          payload: 'lost-2',
        },
        {
          mode: 'opp',
          src: LIP,
          sport: 5011,
          dport: 7001,
          client: '10.7.0.11',
          cport: 40011,
          payload: 'lost-3',
        },
        {
          mode: 'ipo',
          src: LIP,
          sport: 5012,
          dport: 7001,
          client: '10.7.0.12',
          cport: 40012,
          payload: 'ipo-unread',
        },
      ]);
      await until('the ipo datagram', () => received(7001).length > count, 10_000, context);
      await sleep(500);
      assert.deepEqual(
        received(7001)
          .slice(count)
          .map((l) => `${l.from}:${l.fromPort} ${l.data}`),
        [`${LIP}:5012 ipo-unread`],
      );
      assert.equal(unknownProtos() - before, 3);
      assert.equal(rsStatus().unknownProtos.ipv4, unknownProtos());
    },
  );
});
