// Real-kernel test of the eBPF TOA receiver (native/bpf/toa.bpf.c loaded by
// src/realserver/ebpf.ts, driven through `fullnat rs …` = runRs()).
//
// Runs only as root with bpftool, build/bpf/toa.bpf.o, cgroup v2, network
// namespaces and the native TUN and TOA lookup addons; otherwise the suite is
// skipped with the reason shown.
//
// Topology (all names carry this process's pid; everything is removed after):
//
//   this process ── TUN fnrt<pid> ──[ns fnrs-<pid>-cl]── veth ──[ns fnrs-<pid>-rs]
//   writes crafted     10.201.1.1       forwards        10.201.0.1 │ 10.201.0.2
//   client packets     fd00:201:1::1                    fd00:201::1│ fd00:201::2
//   (client 10.201.1.2 / fd00:201:1::2)                              servers
//
// The servers run under `fullnat rs exec --cgroup <test cgroup> -- ip netns
// exec <rs> …` (rs exec first: `ip netns exec` remounts /sys and hides the
// cgroup2 and bpf mounts). Node servers report socket.remoteAddress (libuv
// getpeername); Python servers report what accept() returned as well as
// getpeername() (one uses TCP_DEFER_ACCEPT, one is dual-stack); nginx on
// [::] ipv6only=off logs $remote_addr. A Node server that asks toaPeer()
// (the receiver's socket storage) runs under `nsenter --net` instead, which
// keeps the bpf mount where the pins are. We complete each
// handshake by hand: SYN out, SYN+ACK read back from the TUN, then the
// concluding segment with or without a TOA. A seeded random walk over option
// blocks checks the in-kernel parser against src/wire's TcpOptionCursor
// (FULLNAT_FUZZ_SEED, FULLNAT_FUZZ_CASES), and the counters of
// `rs status --json` must match what was sent.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { ip, openTun, setUp, tunAvailable, type TunDevice } from '../../src/io/tun.js';
import {
  checkPrerequisites,
  detach,
  findCgroup2Mount,
  formatTrustPrefix,
  kernelVersion,
  parseStatsDump,
  parseTrustList,
  parseTrustPrefix,
  readMounts,
  STAT_NAMES,
  TRUST_ANY,
  trustState,
  type Counters,
  type Status,
} from '../../src/realserver/ebpf.js';
import { runForwarding, runRs } from '../../src/realserver/cli.js';
import { toaPeer } from '../../src/realserver/index.js';
import { parseIpv4, parseIpv6 } from '../../src/wire/bytes.js';
import { IPPROTO_TCP, writeIpv4Header } from '../../src/wire/ipv4.js';
import { writeIpv6Header } from '../../src/wire/ipv6.js';
import {
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TcpView,
  writeTcpHeader,
} from '../../src/wire/tcp.js';
import { encodeOptions, opt, type TcpOption } from '../../src/wire/tcp-options.js';
import { toaV4Option, toaV6Option } from '../../src/wire/toa.js';

const PID = process.pid;
const NS_CL = `fnrs-${PID}-cl`;
const NS_RS = `fnrs-${PID}-rs`;
const TUN_NAME = `fnrt${PID}`.slice(0, 15);
const PIN_DIR = `/sys/fs/bpf/fullnat-toa-test-${PID}`;
const CLIENT4 = '10.201.1.2';
const RS4 = '10.201.0.2';
const CLIENT6 = 'fd00:201:1::2';
const RS6 = 'fd00:201::2';
const DUAL_PORT = 8080; // Node, '::' (AF_INET6 socket, dual stack)
const V4_PORT = 8081; // Node, '0.0.0.0' (AF_INET socket)
const PY_PORT = 8082; // Python accept(), AF_INET
const PY_DEFER_PORT = 8083; // Python accept(), AF_INET, TCP_DEFER_ACCEPT
const NGINX_PORT = 8084; // nginx, listen [::]:8084 ipv6only=off
const PY_DUAL_PORT = 8085; // Python accept(), AF_INET6 with IPV6_V6ONLY off
const TOA_V4_PORT = 8086; // Node, '0.0.0.0', asks toaPeer()
const TOA_DUAL_PORT = 8087; // Node, '::', asks toaPeer()
const STEP_MS = 4000;

const CLI_URL = pathToFileURL(
  fileURLToPath(new URL('../../src/realserver/cli.js', import.meta.url)),
).href;
const LAUNCHER = `import { runRs } from ${JSON.stringify(CLI_URL)}; process.exitCode = await runRs(process.argv.slice(1));`;
const REALSERVER_URL = pathToFileURL(
  fileURLToPath(new URL('../../src/realserver/index.js', import.meta.url)),
).href;
/** The toaPeer addon, called directly for the errors toaPeer() cannot provoke. */
const TOA_ADDON = fileURLToPath(
  new URL('../../../build/Release/fullnat_toa.node', import.meta.url),
);

let cgroup = '';
let nsCreated = false;
let python: string | undefined;
let nginx: string | undefined;
let ipv6 = false;

function skipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (eBPF, cgroups, network namespaces)';
  const pre = checkPrerequisites({ pinDir: PIN_DIR });
  if (!pre.ok) return pre.reason;
  const tun = tunAvailable();
  if (!tun.ok) return tun.reason;
  if (!existsSync(TOA_ADDON))
    return 'native TOA lookup addon not built (node scripts/build-native.js; needs a C compiler and Node headers)';
  try {
    ip(['netns', 'add', NS_CL]);
    nsCreated = true;
    ip(['netns', 'add', NS_RS]);
  } catch (err) {
    return `cannot create network namespaces: ${(err as Error).message}`;
  }
  cgroup = join(findCgroup2Mount()!, `fullnat-toa-test-${PID}`);
  python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : undefined;
  nginx = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
  return false;
}

function killCgroup(): void {
  if (!cgroup || !existsSync(cgroup)) return;
  try {
    writeFileSync(join(cgroup, 'cgroup.kill'), '1');
  } catch {
    // Linux < 5.14: kill one by one
    try {
      for (const pid of readFileSync(join(cgroup, 'cgroup.procs'), 'utf8').split('\n'))
        if (pid) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone
    }
  }
}

function deleteNamespaces(): void {
  if (!nsCreated) return;
  nsCreated = false;
  for (const ns of [NS_CL, NS_RS]) {
    try {
      ip(['netns', 'del', ns]);
    } catch {
      // already gone
    }
  }
}

process.on('exit', () => {
  // Normally `after` has done all this; here for a run that died half-way.
  killCgroup();
  deleteNamespaces();
  if (cgroup && existsSync(cgroup)) {
    try {
      detach(cgroup, { pinDir: PIN_DIR });
      rmdirSync(cgroup);
    } catch {
      // processes still exiting: the cgroup stays, the pins are gone with detach
    }
  }
});

// ------------------------------------------------------------- processes

interface Proc {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: string;
  waiters: (() => void)[];
}
const procs: Proc[] = [];

/** How a server enters the RS namespace: `ip netns exec` (its own /sys), or `nsenter --net` (the host's mounts, bpffs included). */
const IN_RS = (): string[] => ['ip', 'netns', 'exec', NS_RS];
const IN_RS_KEEP_MOUNTS = (): string[] => ['nsenter', `--net=/run/netns/${NS_RS}`, '--'];

/**
 * These tests attach from the host's namespace: the TCP part only, so the
 * receiver's tc program never goes on the host's own interfaces (the UDP
 * part is tested inside namespaces, uoa.test.ts).
 */
const HOST_TCP_ONLY = ['--dev', 'none'] as const;

function startUnderRs(cmd: string[], env: NodeJS.ProcessEnv = {}, enter = IN_RS()): Proc {
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      LAUNCHER,
      'exec',
      '--cgroup',
      cgroup,
      '--pin-dir',
      PIN_DIR,
      ...HOST_TCP_ONLY,
      '--',
      ...enter,
      ...cmd,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
  );
  const p: Proc = { child, lines: [], stderr: '', waiters: [] };
  let buf = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      try {
        p.lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        p.lines.push({ text: line });
      }
      for (const w of p.waiters.splice(0)) w();
    }
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (p.stderr += d));
  child.on('exit', () => {
    for (const w of p.waiters.splice(0)) w();
  });
  procs.push(p);
  return p;
}

/** Waits for (and removes) the first line matching `pred`. */
async function takeLine(
  p: Proc,
  pred: (l: Record<string, unknown>) => boolean,
  what: string,
  ms = STEP_MS,
): Promise<Record<string, unknown>> {
  const end = Date.now() + ms;
  for (;;) {
    const i = p.lines.findIndex(pred);
    if (i >= 0) return p.lines.splice(i, 1)[0]!;
    if (p.child.exitCode !== null || p.child.signalCode !== null)
      throw new Error(
        `server exited (${p.child.exitCode ?? p.child.signalCode}) before ${what}: ${p.stderr.trim()}`,
      );
    const left = end - Date.now();
    if (left <= 0)
      throw new Error(`timed out after ${ms} ms waiting for ${what}; stderr: ${p.stderr.trim()}`);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, left);
      p.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

/** Waits until something listens on TCP `port` in the RS namespace (for servers that print nothing when ready). */
async function untilListening(port: number, p: Proc, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!new RegExp(`:${port}\\b`).test(ip(['netns', 'exec', NS_RS, 'ss', '-Hltn']))) {
    if (p.child.exitCode !== null || p.child.signalCode !== null)
      throw new Error(
        `${what} exited (${p.child.exitCode ?? p.child.signalCode}): ${p.stderr.trim()}`,
      );
    if (Date.now() > end)
      throw new Error(
        `${what} not listening on :${port} after ${ms} ms; stderr: ${p.stderr.trim()}`,
      );
    await sleep(50);
  }
}

async function runCli(
  args: string[],
): Promise<{ code: number; signal: string | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', LAUNCHER, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const [code, signal] = await new Promise<[number, string | null]>((resolve) =>
    child.on('close', (c, s) => resolve([c ?? -1, s])),
  );
  clearTimeout(killer);
  return { code, signal, out, err };
}

const NODE_SERVER = `
const net = require('net');
for (const [port, host] of [[${DUAL_PORT}, '::'], [${V4_PORT}, '0.0.0.0']]) {
  net.createServer((c) => {
    c.on('error', () => {});
    console.log(JSON.stringify({ server: port, remote: c.remoteAddress, rport: c.remotePort, family: c.remoteFamily }));
    c.destroy();
  }).listen(port, host, () => console.log(JSON.stringify({ listening: port })));
}
`;

// argv: port, defer (1/0), dual (1: AF_INET6 with IPV6_V6ONLY off, 0: AF_INET). Addresses as (host, port).
const PY_SERVER = `
import json, socket, sys
port, defer, dual = int(sys.argv[1]), sys.argv[2] == '1', sys.argv[3:] == ['1']
s = socket.socket(socket.AF_INET6 if dual else socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if dual:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
if defer:
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 5)
s.bind(('::' if dual else '0.0.0.0', port))
s.listen(16)
print(json.dumps({'listening': port}), flush=True)
while True:
    c, addr = s.accept()
    print(json.dumps({'server': port, 'accept': list(addr)[:2], 'peer': list(c.getpeername())[:2]}), flush=True)
    c.close()
`;

// argv: the pin directory. Reports getpeername (remoteAddress) and toaPeer() side by side.
const TOA_PEER_SERVER = `
import net from 'node:net';
import { toaPeer } from ${JSON.stringify(REALSERVER_URL)};
const pinDir = process.argv[1];
for (const [port, host] of [[${TOA_V4_PORT}, '0.0.0.0'], [${TOA_DUAL_PORT}, '::']]) {
  net.createServer((c) => {
    c.on('error', () => {});
    let toa;
    try {
      toa = toaPeer(c, { pinDir });
    } catch (err) {
      toa = { error: err.name + ': ' + err.message };
    }
    console.log(JSON.stringify({ server: port, remote: c.remoteAddress, rport: c.remotePort, toa }));
    c.destroy();
  }).listen(port, host, () => console.log(JSON.stringify({ listening: port })));
}
`;

/** nginx in the foreground, one process (it opens the listener inside the cgroup), one JSON line per request on stdout. */
function nginxConfig(dir: string): string {
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((k) => `    ${k}_temp_path ${dir}/${k};`)
    .join('\n');
  return `user root;
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log stderr;
events { worker_connections 64; }
http {
    log_format toa escape=json '{"server":$server_port,"remote":"$remote_addr","rport":$remote_port}';
${temp}
    server {
        listen [::]:${NGINX_PORT} ipv6only=off;
        access_log /dev/stdout toa;
        location / { return 200 "ok\\n"; }
    }
}
`;
}
import { sleep } from '../support/time.js';
import { closePair, loopbackPair } from '../support/loopback.js';

// ----------------------------------------------------------------- packets

interface Seg {
  v6: boolean;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  options?: TcpOption[];
  rawOptions?: number[];
  payload?: string;
}

const RS6_BYTES = parseIpv6(RS6)!;
const CLIENT6_BYTES = parseIpv6(CLIENT6)!;

function build(s: Seg): Uint8Array {
  const opts = s.rawOptions ? Uint8Array.from(s.rawOptions) : encodeOptions(s.options ?? []);
  const payload = new TextEncoder().encode(s.payload ?? '');
  const tcpLen = 20 + opts.length + payload.length;
  const ipLen = s.v6 ? 40 : 20;
  const b = new Uint8Array(ipLen + tcpLen);
  if (s.v6)
    writeIpv6Header(b, 0, {
      src: CLIENT6_BYTES,
      dst: RS6_BYTES,
      nextHeader: IPPROTO_TCP,
      payloadLength: tcpLen,
    });
  else
    writeIpv4Header(b, 0, {
      src: parseIpv4(CLIENT4),
      dst: parseIpv4(RS4),
      protocol: IPPROTO_TCP,
      payloadLength: tcpLen,
      id: s.sport,
      dontFragment: true,
    });
  writeTcpHeader(b, ipLen, {
    srcPort: s.sport,
    dstPort: s.dport,
    seq: s.seq,
    ack: s.ack,
    flags: s.flags,
    window: 64240,
    options: opts,
  });
  b.set(payload, ipLen + 20 + opts.length);
  const t = new TcpView().wrap(b, ipLen);
  t.checksum = s.v6 ? t.computeChecksumV6(0, tcpLen) : t.computeChecksumV4(0, tcpLen);
  return b;
}

let dev: TunDevice | undefined;
interface Rx {
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
}
const received: Rx[] = [];
const rxWaiters: (() => void)[] = [];

function onTunReadable(): void {
  const bufs = Array.from({ length: 32 }, () => new Uint8Array(2048));
  const lens = new Int32Array(32);
  for (let n; (n = dev!.readBatch(bufs, 0, lens)) > 0;) {
    for (let i = 0; i < n; i++) {
      const b = bufs[i]!;
      const len = lens[i]!;
      let l4: number;
      if (len >= 40 && b[0]! >> 4 === 4 && b[9] === IPPROTO_TCP) l4 = (b[0]! & 15) * 4;
      else if (len >= 60 && b[0]! >> 4 === 6 && b[6] === IPPROTO_TCP) l4 = 40;
      else continue;
      const t = new TcpView().wrap(b, l4);
      received.push({ sport: t.srcPort, dport: t.dstPort, seq: t.seq, ack: t.ack, flags: t.flags });
    }
  }
  for (const w of rxWaiters.splice(0)) w();
}

async function takeRx(pred: (r: Rx) => boolean, what: string, ms = STEP_MS): Promise<Rx> {
  const end = Date.now() + ms;
  for (;;) {
    const i = received.findIndex(pred);
    if (i >= 0) return received.splice(i, 1)[0]!;
    const left = end - Date.now();
    if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, left);
      rxWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

function send(pkt: Uint8Array): void {
  const done = dev!.writeBatch([pkt], Int32Array.of(0), Int32Array.of(pkt.length), 1);
  assert.equal(done, 1, 'TUN write accepted');
  assert.equal(dev!.txErrors, 0, `TUN write rejected: ${dev!.lastTxError}`);
}

let nextSport = 40000;

interface Conclude {
  flags: number;
  options?: TcpOption[];
  rawOptions?: number[];
  payload?: string;
}

interface Conn {
  sport: number;
  /** Sends a segment with seq = ISN+1 + bytes sent so far, ack = server ISN+1. */
  send: (c: Conclude) => void;
  /** RST, so the RS forgets the connection. */
  reset: () => void;
}

/** SYN → SYN+ACK; the caller then sends the concluding segment(s). */
async function open(dport: number, v6 = false): Promise<Conn> {
  const sport = nextSport++;
  const isn = (Math.random() * 0xffffffff) >>> 0;
  send(build({ v6, sport, dport, seq: isn, ack: 0, flags: TCP_SYN, options: [opt.mss(1400)] }));
  const synAck = await takeRx(
    (r) =>
      r.sport === dport &&
      r.dport === sport &&
      (r.flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK),
    `SYN+ACK from :${dport} to :${sport}`,
  );
  assert.equal(synAck.ack, (isn + 1) >>> 0, 'SYN+ACK acknowledges our SYN');
  let seq = (isn + 1) >>> 0;
  const ack = (synAck.seq + 1) >>> 0;
  return {
    sport,
    send: (c) => {
      send(build({ v6, sport, dport, seq, ack, ...c }));
      const len = new TextEncoder().encode(c.payload ?? '').length + (c.flags & TCP_FIN ? 1 : 0);
      seq = (seq + len) >>> 0;
    },
    reset: () => send(build({ v6, sport, dport, seq, ack, flags: TCP_RST | TCP_ACK })),
  };
}

/**
 * Linux >= 6.7 built with TCP-MD5 or TCP-AO scans every incoming segment's
 * options for auth options first (tcp_do_parse_auth_options) and DROPS the
 * segment when that walk meets an option with size < 2 or running past the
 * header — but only while at least `minlen` option bytes remain (18 with MD5
 * only, 5 with TCP-AO). Such a segment never concludes a handshake, so no
 * TOA receiver (module or eBPF) ever sees it. This models that scan.
 */
function authScanDrops(opts: Uint8Array, minlen: number): boolean {
  let length = opts.length;
  let i = 0;
  let seen = false;
  while (length >= minlen) {
    const op = opts[i++]!;
    if (op === 0) return false;
    if (op === 1) {
      length--;
      continue;
    }
    const size = opts[i++]!;
    if (size < 2 || size > length) return true;
    if (op === 19 || op === 29) {
      if ((op === 19 && size !== 18) || (op === 29 && size <= 4) || seen) return true;
      seen = true;
    }
    i += size - 2;
    length -= size;
  }
  return false;
}

/** minlen of that scan on this kernel; null when it does not drop (older kernel or neither option built); undefined if unknown. */
function kernelAuthScan(): number | null | undefined {
  const [major, minor] = kernelVersion();
  if (major < 6 || (major === 6 && minor < 7)) return null;
  let config: string;
  try {
    config = gunzipSync(readFileSync('/proc/config.gz')).toString('latin1');
  } catch {
    return undefined;
  }
  if (/^CONFIG_TCP_AO=y/m.test(config)) return 5;
  if (/^CONFIG_TCP_MD5SIG=y/m.test(config)) return 18;
  return null;
}

const toa4 = (addr: string, port: number): TcpOption => toaV4Option(port, parseIpv4(addr));
const toa6 = (addr: string, port: number, kind = 254): TcpOption =>
  toaV6Option(port, parseIpv6(addr)!, kind);
const ACK = TCP_ACK;
const DATA = TCP_ACK | TCP_PSH;
const REQUEST = 'GET / HTTP/1.0\r\n\r\n';

// --------------------------------------------------------------- the suite

const reason = skipReason();

describe('eBPF TOA receiver on a real kernel', { skip: reason }, () => {
  let node: Proc;
  let py: Proc | undefined;
  let pyDefer: Proc | undefined;
  let pyDual: Proc | undefined;
  let nginxProc: Proc | undefined;
  let toaServer: Proc;
  let nginxDir = '';
  /** What the counters must read at the end. */
  const expected = { withToa: 0, withoutToa: 0, malformed: 0, untrusted: 0 };
  /** getpeername()/accept() calls that must have been rewritten (at least). */
  let rewritesMin = 0;
  /** Connections whose IPv6 TOA reached an AF_INET socket. */
  let v6OnV4 = 0;

  before(
    async () => {
      // The client namespace: TUN (opened here, then moved in) + forwarding; the RS namespace: veth.
      for (const ns of [NS_CL, NS_RS]) {
        ip(['link', 'set', 'lo', 'up'], { netns: ns });
        for (const k of ['default', 'all'])
          try {
            ip(['netns', 'exec', ns, 'sysctl', '-qw', `net.ipv6.conf.${k}.accept_dad=0`]);
          } catch {
            // no IPv6
          }
      }
      dev = openTun(TUN_NAME);
      ip(['link', 'set', TUN_NAME, 'netns', NS_CL]);
      setUp(TUN_NAME, 1500, { netns: NS_CL });
      ip(['addr', 'add', '10.201.1.1/24', 'dev', TUN_NAME], { netns: NS_CL });
      ip(['link', 'add', 'vcl', 'type', 'veth', 'peer', 'name', 'vrs', 'netns', NS_RS], {
        netns: NS_CL,
      });
      ip(['addr', 'add', '10.201.0.1/24', 'dev', 'vcl'], { netns: NS_CL });
      ip(['link', 'set', 'vcl', 'up'], { netns: NS_CL });
      ip(['addr', 'add', `${RS4}/24`, 'dev', 'vrs'], { netns: NS_RS });
      ip(['link', 'set', 'vrs', 'up'], { netns: NS_RS });
      ip(['route', 'add', '10.201.1.0/24', 'via', '10.201.0.1'], { netns: NS_RS });
      ip(['netns', 'exec', NS_CL, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      try {
        ip(['netns', 'exec', NS_CL, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
        ip(['-6', 'addr', 'add', 'fd00:201:1::1/64', 'dev', TUN_NAME, 'nodad'], { netns: NS_CL });
        ip(['-6', 'addr', 'add', 'fd00:201::1/64', 'dev', 'vcl', 'nodad'], { netns: NS_CL });
        ip(['-6', 'addr', 'add', `${RS6}/64`, 'dev', 'vrs', 'nodad'], { netns: NS_RS });
        ip(['-6', 'route', 'add', 'fd00:201:1::/64', 'via', 'fd00:201::1'], { netns: NS_RS });
        ipv6 = true;
      } catch {
        ipv6 = false;
      }
      dev.onReadable(onTunReadable, (err) => {
        throw err;
      });

      node = startUnderRs([process.execPath, '-e', NODE_SERVER]);
      await takeLine(node, (l) => l.listening === DUAL_PORT, 'the Node server on :8080', 10_000);
      await takeLine(node, (l) => l.listening === V4_PORT, 'the Node server on :8081', 10_000);
      toaServer = startUnderRs(
        [process.execPath, '--input-type=module', '-e', TOA_PEER_SERVER, PIN_DIR],
        {},
        IN_RS_KEEP_MOUNTS(),
      );
      for (const port of [TOA_V4_PORT, TOA_DUAL_PORT])
        await takeLine(
          toaServer,
          (l) => l.listening === port,
          `the toaPeer server on :${port}`,
          10_000,
        );
      if (python) {
        py = startUnderRs([python, '-c', PY_SERVER, String(PY_PORT), '0']);
        pyDefer = startUnderRs([python, '-c', PY_SERVER, String(PY_DEFER_PORT), '1']);
        pyDual = startUnderRs([python, '-c', PY_SERVER, String(PY_DUAL_PORT), '0', '1']);
        await takeLine(py, (l) => l.listening === PY_PORT, 'the Python server', 10_000);
        await takeLine(
          pyDefer,
          (l) => l.listening === PY_DEFER_PORT,
          'the Python defer server',
          10_000,
        );
        await takeLine(
          pyDual,
          (l) => l.listening === PY_DUAL_PORT,
          'the Python dual-stack server',
          10_000,
        );
      }
      if (nginx) {
        nginxDir = mkdtempSync(join(tmpdir(), 'fullnat-toa-nginx-'));
        writeFileSync(join(nginxDir, 'nginx.conf'), nginxConfig(nginxDir));
        // Through a pipe: our end of its stdout is a socket, which /dev/stdout cannot open (ENXIO).
        nginxProc = startUnderRs([
          'sh',
          '-c',
          '"$0" -e stderr -c "$1" | cat',
          nginx,
          join(nginxDir, 'nginx.conf'),
        ]);
        await untilListening(NGINX_PORT, nginxProc, 'nginx');
      }
    },
    { timeout: 20_000 },
  );

  after(
    async () => {
      for (const p of procs) p.child.kill('SIGTERM');
      killCgroup();
      // The programs must be detached and the cgroup removed whatever happened above.
      for (let i = 0; i < 50 && cgroup && existsSync(cgroup); i++) {
        const left = readFileSync(join(cgroup, 'cgroup.procs'), 'utf8').trim();
        if (!left) break;
        await sleep(40);
      }
      try {
        detach(cgroup, { pinDir: PIN_DIR });
      } catch (err) {
        console.error(`detach: ${(err as Error).message}`);
      }
      // A cgroup whose last process has just exited may still be busy for a moment.
      for (let i = 0; i < 50 && cgroup && existsSync(cgroup); i++) {
        try {
          rmdirSync(cgroup);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EBUSY') break;
          await sleep(40);
        }
      }
      dev?.close();
      deleteNamespaces();
      for (const p of procs) p.child.kill('SIGKILL');
      if (nginxDir) rmSync(nginxDir, { recursive: true, force: true });
    },
    { timeout: 20_000 },
  );

  /** One Node connection on `port`: returns what the server saw. */
  async function nodeSees(
    port: number,
    concluding: Conclude[],
    v6 = false,
  ): Promise<{ remote: unknown; rport: unknown; sport: number }> {
    const conn = await open(port, v6);
    for (const c of concluding) conn.send(c);
    const line = await takeLine(node, (l) => l.server === port, `the server on :${port} to accept`);
    conn.reset();
    return { remote: line.remote, rport: line.rport, sport: conn.sport };
  }

  /**
   * Sends a concluding segment whose options are malformed. If the kernel
   * drops it (see authScanDrops) the handshake is then concluded by a plain
   * ACK, which the receiver counts as "without TOA"; otherwise the receiver
   * must have counted it as malformed. Either way the TOA behind the
   * malformed option must not be used.
   */
  async function malformedCase(port: number, raw: number[]): Promise<void> {
    const conn = await open(port);
    conn.send({ flags: ACK, rawOptions: raw });
    const predicted = kernelAuthScan();
    const drops = predicted === null ? false : authScanDrops(Uint8Array.from(raw), predicted ?? 5);
    let line = await takeLine(
      node,
      (l) => l.server === port,
      'accept',
      drops ? 400 : STEP_MS,
    ).catch(() => undefined);
    if (line === undefined) {
      assert.ok(drops, 'the segment was dropped although the kernel model says it is accepted');
      conn.send({ flags: ACK });
      line = await takeLine(node, (l) => l.server === port, `the server on :${port} to accept`);
      expected.withoutToa++;
    } else {
      if (drops && predicted !== undefined)
        assert.fail('the kernel accepted a segment its auth-option scan should have dropped');
      expected.malformed++;
    }
    conn.reset();
    const real = port === DUAL_PORT ? `::ffff:${CLIENT4}` : CLIENT4;
    assert.deepEqual([line.remote, line.rport], [real, conn.sport]);
  }

  test(
    'bare ACK concluding with TOA 254/8, AF_INET6 listener: ::ffff:TOA',
    { timeout: 20_000 },
    async () => {
      const r = await nodeSees(DUAL_PORT, [{ flags: ACK, options: [toa4('203.0.113.7', 4321)] }]);
      expected.withToa++;
      rewritesMin++;
      assert.deepEqual([r.remote, r.rport], ['::ffff:203.0.113.7', 4321]);
    },
  );

  test(
    'bare ACK concluding with TOA 254/8, AF_INET listener: TOA',
    { timeout: 20_000 },
    async () => {
      const r = await nodeSees(V4_PORT, [{ flags: ACK, options: [toa4('203.0.113.8', 4322)] }]);
      expected.withToa++;
      rewritesMin++;
      assert.deepEqual([r.remote, r.rport], ['203.0.113.8', 4322]);
    },
  );

  test('ACK+data concluding, TOA after NOPs and a timestamp', { timeout: 20_000 }, async () => {
    const r = await nodeSees(DUAL_PORT, [
      {
        flags: DATA,
        options: [opt.nop(), opt.nop(), opt.timestamp(1, 0), toa4('198.51.100.1', 1)],
        payload: REQUEST,
      },
    ]);
    expected.withToa++;
    rewritesMin++;
    assert.deepEqual([r.remote, r.rport], ['::ffff:198.51.100.1', 1]);
  });

  test('FIN+ACK+data concluding with TOA', { timeout: 20_000 }, async () => {
    const r = await nodeSees(V4_PORT, [
      { flags: DATA | TCP_FIN, options: [toa4('198.51.100.2', 65535)], payload: REQUEST },
    ]);
    expected.withToa++;
    rewritesMin++;
    assert.deepEqual([r.remote, r.rport], ['198.51.100.2', 65535]);
  });

  test('no TOA: the server sees the real source', { timeout: 20_000 }, async () => {
    const r = await nodeSees(DUAL_PORT, [
      { flags: ACK, options: [opt.nop(), opt.nop(), opt.timestamp(5, 0)] },
    ]);
    expected.withoutToa++;
    assert.deepEqual([r.remote, r.rport], [`::ffff:${CLIENT4}`, r.sport]);
  });

  test('EOL before the TOA: not found', { timeout: 20_000 }, async () => {
    const r = await nodeSees(V4_PORT, [
      { flags: ACK, rawOptions: [0, 0, 0, 0, 254, 8, 0, 80, 1, 2, 3, 4] },
    ]);
    expected.withoutToa++;
    assert.deepEqual([r.remote, r.rport], [CLIENT4, r.sport]);
  });

  test(
    'malformed option (size < 2) before the TOA: TOA not used',
    { timeout: 20_000 },
    async () => {
      await malformedCase(DUAL_PORT, [30, 1, 1, 1, 254, 8, 0, 80, 1, 2, 3, 4]);
    },
  );

  test(
    'option running past the header before the TOA: TOA not used',
    { timeout: 20_000 },
    async () => {
      // kind 30 claims 16 bytes but only 12 remain: parsing stops there, the TOA inside is never seen.
      await malformedCase(V4_PORT, [30, 16, 254, 8, 0, 80, 1, 2, 3, 4, 1, 1]);
    },
  );

  test(
    'malformed option with >= 18 option bytes left: Linux >= 6.7 (TCP-MD5/AO) drops the segment',
    { timeout: 20_000 },
    async (t) => {
      const minlen = kernelAuthScan();
      if (minlen === undefined) {
        t.skip('cannot tell from /proc/config.gz whether this kernel drops it');
        return;
      }
      // NOP NOP, then kind 30 claiming 43 bytes with 22 left, then a TOA that must never be used.
      const raw = [1, 1, 30, 43, 254, 8, 0, 80, 1, 2, 3, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
      const drops = minlen !== null && authScanDrops(Uint8Array.from(raw), minlen);
      t.diagnostic(
        drops
          ? `this kernel (auth-option scan, minlen ${minlen}) drops the segment; a plain ACK concludes instead`
          : 'this kernel accepts the segment; the receiver counts it malformed',
      );
      await malformedCase(DUAL_PORT, raw);
    },
  );

  test(
    '254 with another length (experimental option) is skipped; the first real TOA wins',
    { timeout: 20_000 },
    async () => {
      const r = await nodeSees(V4_PORT, [
        {
          flags: ACK,
          rawOptions: [
            254,
            4,
            0xf9,
            0x89,
            ...[254, 8, 0x1f, 0x90, 192, 0, 2, 1],
            ...[254, 8, 0, 1, 192, 0, 2, 2],
          ],
        },
      ]);
      expected.withToa++;
      rewritesMin++;
      assert.deepEqual([r.remote, r.rport], ['192.0.2.1', 8080]);
    },
  );

  test('IPv6 TOA kind 254 len 20 (DPVS) on an AF_INET6 socket', { timeout: 20_000 }, async () => {
    const r = await nodeSees(DUAL_PORT, [{ flags: ACK, options: [toa6('2001:db8:1::7', 443)] }]);
    expected.withToa++;
    rewritesMin++;
    assert.deepEqual([r.remote, r.rport], ['2001:db8:1::7', 443]);
  });

  test(
    'IPv6 TOA kind 253 len 20 (Alibaba) with data on an AF_INET6 socket',
    { timeout: 20_000 },
    async () => {
      const r = await nodeSees(DUAL_PORT, [
        { flags: DATA, options: [toa6('2001:db8:2::9', 8443, 253)], payload: REQUEST },
      ]);
      expected.withToa++;
      rewritesMin++;
      assert.deepEqual([r.remote, r.rport], ['2001:db8:2::9', 8443]);
    },
  );

  test(
    'IPv6 TOA on an AF_INET socket: left unchanged (cannot be expressed)',
    { timeout: 20_000 },
    async () => {
      const r = await nodeSees(V4_PORT, [{ flags: ACK, options: [toa6('2001:db8:3::1', 1000)] }]);
      expected.withToa++;
      v6OnV4++;
      assert.deepEqual([r.remote, r.rport], [CLIENT4, r.sport]);
    },
  );

  test(
    'IPv6 packets: IPv4 TOA → ::ffff:a.b.c.d, IPv6 TOA → itself',
    { timeout: 20_000 },
    async (t) => {
      if (!ipv6) {
        t.skip('IPv6 could not be configured in the namespaces');
        return;
      }
      const a = await nodeSees(
        DUAL_PORT,
        [{ flags: ACK, options: [toa4('198.51.100.5', 5555)] }],
        true,
      );
      expected.withToa++;
      rewritesMin++;
      assert.deepEqual([a.remote, a.rport], ['::ffff:198.51.100.5', 5555]);
      const b = await nodeSees(
        DUAL_PORT,
        [{ flags: DATA, options: [toa6('2001:db8:5::5', 6666, 253)], payload: REQUEST }],
        true,
      );
      expected.withToa++;
      rewritesMin++;
      assert.deepEqual([b.remote, b.rport], ['2001:db8:5::5', 6666]);
      const c = await nodeSees(DUAL_PORT, [{ flags: ACK }], true);
      expected.withoutToa++;
      assert.deepEqual([c.remote, c.rport], [CLIENT6, c.sport]);
    },
  );

  test(
    'accept() reports the TOA too, not only getpeername() (Python server)',
    { timeout: 20_000 },
    async (t) => {
      if (!py) {
        t.skip('/usr/bin/python3 not installed');
        return;
      }
      const conn = await open(PY_PORT);
      conn.send({ flags: DATA, options: [toa4('203.0.113.99', 2222)], payload: REQUEST });
      const line = await takeLine(py, (l) => l.server === PY_PORT, 'the Python server to accept');
      conn.reset();
      expected.withToa++;
      rewritesMin += 2;
      assert.deepEqual(line.accept, ['203.0.113.99', 2222]);
      assert.deepEqual(line.peer, ['203.0.113.99', 2222]);
    },
  );

  test(
    'TCP_DEFER_ACCEPT: the bare ACK is dropped, the data segment with the TOA concludes',
    { timeout: 20_000 },
    async (t) => {
      if (!pyDefer) {
        t.skip('/usr/bin/python3 not installed');
        return;
      }
      const conn = await open(PY_DEFER_PORT);
      conn.send({ flags: ACK }); // no TOA; with TCP_DEFER_ACCEPT it does not complete the handshake
      await sleep(300);
      assert.equal(
        pyDefer.lines.filter((l) => l.server === PY_DEFER_PORT).length,
        0,
        'the bare ACK did not complete the handshake',
      );
      conn.send({ flags: DATA, options: [toa4('203.0.113.100', 3333)], payload: REQUEST });
      const line = await takeLine(
        pyDefer,
        (l) => l.server === PY_DEFER_PORT,
        'the defer server to accept',
      );
      conn.reset();
      expected.withToa++;
      rewritesMin += 2;
      assert.deepEqual(line.accept, ['203.0.113.100', 3333]);
      assert.deepEqual(line.peer, ['203.0.113.100', 3333]);
    },
  );

  /** One connection to the line-printing server `p` on `port`: returns its line and our source port. */
  async function serverSees(
    p: Proc,
    port: number,
    concluding: Conclude[],
    v6 = false,
  ): Promise<{ line: Record<string, unknown>; sport: number }> {
    const conn = await open(port, v6);
    for (const c of concluding) conn.send(c);
    const line = await takeLine(p, (l) => l.server === port, `the server on :${port} to answer`);
    conn.reset();
    return { line, sport: conn.sport };
  }

  test(
    'dual-stack listener (AF_INET6, IPV6_V6ONLY off), IPv4 connection with an IPv6 TOA (FNAT64): accept() and getpeername() give the IPv6 client',
    { timeout: 20_000 },
    async (t) => {
      if (!pyDual) {
        t.skip('/usr/bin/python3 not installed');
        return;
      }
      for (const [kind, addr, port] of [
        [254, '2001:db8:64::1', 6401],
        [253, '2001:db8:64::2', 6402],
      ] as const) {
        const { line } = await serverSees(pyDual, PY_DUAL_PORT, [
          { flags: DATA, options: [toa6(addr, port, kind)], payload: REQUEST },
        ]);
        expected.withToa++;
        rewritesMin += 2;
        assert.deepEqual(line.accept, [addr, port], `accept(), TOA ${kind}/20`);
        assert.deepEqual(line.peer, [addr, port], `getpeername(), TOA ${kind}/20`);
      }
      const plain = await serverSees(pyDual, PY_DUAL_PORT, [{ flags: ACK }]);
      expected.withoutToa++;
      assert.deepEqual(plain.line.accept, [`::ffff:${CLIENT4}`, plain.sport], 'no TOA: the LB');
    },
  );

  test(
    'nginx `listen [::]:8084 ipv6only=off` under rs exec logs the IPv6 client of an IPv4 connection with TOA 254/20 or 253/20 (FNAT64)',
    { timeout: 20_000 },
    async (t) => {
      if (!nginxProc) {
        t.skip('nginx is not installed (scripts/ensure-system-deps.sh installs nginx-light)');
        return;
      }
      // The TOA on the bare ACK and the request after it, or on the data segment that concludes the handshake.
      const onAck = (kind: number, addr: string, port: number): Conclude[] => [
        { flags: ACK, options: [toa6(addr, port, kind)] },
        { flags: DATA, payload: REQUEST },
      ];
      const onData = (kind: number, addr: string, port: number): Conclude[] => [
        { flags: DATA, options: [toa6(addr, port, kind)], payload: REQUEST },
      ];
      for (const [kind, addr, port, concluding] of [
        [254, '2001:db8:84::1', 8401, onAck],
        [254, '2001:db8:84::2', 8402, onData],
        [253, '2001:db8:84::3', 8403, onData],
      ] as const) {
        const { line } = await serverSees(nginxProc, NGINX_PORT, concluding(kind, addr, port));
        expected.withToa++;
        rewritesMin++;
        assert.deepEqual(
          [line.remote, line.rport],
          [addr, port],
          `nginx $remote_addr:$remote_port, TOA ${kind}/20 on the ${concluding === onAck ? 'ACK' : 'data'}`,
        );
      }
      const v4 = await serverSees(nginxProc, NGINX_PORT, [
        { flags: DATA, options: [toa4('203.0.113.84', 8404)], payload: REQUEST },
      ]);
      expected.withToa++;
      rewritesMin++;
      assert.deepEqual([v4.line.remote, v4.line.rport], ['::ffff:203.0.113.84', 8404], 'TOA 254/8');
      const plain = await serverSees(nginxProc, NGINX_PORT, [{ flags: DATA, payload: REQUEST }]);
      expected.withoutToa++;
      assert.deepEqual([plain.line.remote, plain.line.rport], [`::ffff:${CLIENT4}`, plain.sport]);
    },
  );

  test(
    'toaPeer() on an AF_INET socket: the IPv6 client getpeername cannot give (TOA 254/20, 253/20); the IPv4 client (254/8); null without a TOA',
    { timeout: 20_000 },
    async () => {
      for (const [kind, addr, port] of [
        [254, '2001:db8:86::1', 8601],
        [253, '2001:db8:86::2', 8602],
      ] as const) {
        const { line, sport } = await serverSees(toaServer, TOA_V4_PORT, [
          { flags: ACK, options: [toa6(addr, port, kind)] },
        ]);
        expected.withToa++;
        v6OnV4++;
        assert.deepEqual([line.remote, line.rport], [CLIENT4, sport], 'getpeername: unchanged');
        assert.deepEqual(line.toa, { address: addr, port, family: 6 }, `toaPeer, TOA ${kind}/20`);
      }
      const v4 = await serverSees(toaServer, TOA_V4_PORT, [
        { flags: DATA, options: [toa4('203.0.113.86', 8603)], payload: REQUEST },
      ]);
      expected.withToa++;
      rewritesMin++;
      assert.deepEqual([v4.line.remote, v4.line.rport], ['203.0.113.86', 8603]);
      assert.deepEqual(v4.line.toa, { address: '203.0.113.86', port: 8603, family: 4 }, '254/8');
      const plain = await serverSees(toaServer, TOA_V4_PORT, [{ flags: ACK }]);
      expected.withoutToa++;
      assert.deepEqual([plain.line.remote, plain.line.toa], [CLIENT4, null], 'no TOA: null');
    },
  );

  test(
    'toaPeer() on a dual-stack socket: the TOA as sent (IPv4 as IPv4, not ::ffff:), over IPv4 and IPv6',
    { timeout: 20_000 },
    async () => {
      const a = await serverSees(toaServer, TOA_DUAL_PORT, [
        { flags: ACK, options: [toa4('198.51.100.87', 8701)] },
      ]);
      expected.withToa++;
      rewritesMin++;
      assert.equal(a.line.remote, '::ffff:198.51.100.87');
      assert.deepEqual(a.line.toa, { address: '198.51.100.87', port: 8701, family: 4 });
      const b = await serverSees(toaServer, TOA_DUAL_PORT, [
        { flags: DATA, options: [toa6('2001:db8:87::1', 8702)], payload: REQUEST },
      ]);
      expected.withToa++;
      rewritesMin++;
      assert.equal(b.line.remote, '2001:db8:87::1');
      assert.deepEqual(b.line.toa, { address: '2001:db8:87::1', port: 8702, family: 6 });
      if (!ipv6) return;
      const c = await serverSees(
        toaServer,
        TOA_DUAL_PORT,
        [{ flags: ACK, options: [toa6('2001:db8:87::2', 8703, 253)] }],
        true,
      );
      expected.withToa++;
      rewritesMin++;
      assert.deepEqual(c.line.toa, { address: '2001:db8:87::2', port: 8703, family: 6 });
      const d = await serverSees(toaServer, TOA_DUAL_PORT, [{ flags: ACK }], true);
      expected.withoutToa++;
      assert.deepEqual([d.line.remote, d.line.toa], [CLIENT6, null]);
    },
  );

  test(
    'toaPeer() errors: a socket without storage is null; closed socket, receiver not loaded, wrong map, no socket throw',
    { timeout: 20_000 },
    async () => {
      // In this process (not in the cgroup): the map is there, the socket never got a TOA.
      const pair = await loopbackPair();
      const c = pair.accepted;
      try {
        assert.equal(toaPeer(c, { pinDir: PIN_DIR }), null);
        assert.throws(() => toaPeer(c, { pinDir: `/sys/fs/bpf/fullnat-toa-absent-${PID}` }), {
          name: 'RealServerError',
          message:
            /the TOA receiver is not loaded: nothing is pinned at \/sys\/fs\/bpf\/fullnat-toa-absent-\d+\/maps\/toa_sk/,
        });
        const native = createRequire(import.meta.url)(TOA_ADDON) as {
          toaLookup: (path: string, fd: number) => unknown;
        };
        const fd = (c as unknown as { _handle: { fd: number } })._handle.fd;
        assert.throws(() => native.toaLookup(join(PIN_DIR, 'maps', 'toa_stats'), fd), {
          code: 'EINVAL',
          message: /toa_stats is not the TOA receiver's socket storage \(map type 6,/,
        });
        const sk = join(PIN_DIR, 'maps', 'toa_sk');
        const file = openSync(fileURLToPath(import.meta.url), 'r');
        try {
          assert.throws(() => native.toaLookup(sk, file), { code: 'ENOTSOCK' });
        } finally {
          closeSync(file);
        }
        // The closed number may be reused at once by another thread; the largest fd never is.
        assert.throws(() => native.toaLookup(sk, 0x7fffffff), { code: 'EBADF' });
        assert.throws(() => native.toaLookup(sk, -1), TypeError);
        assert.throws(() => native.toaLookup(sk, 1.5), TypeError);
        assert.throws(() => (native.toaLookup as (...a: unknown[]) => unknown)(7, fd), TypeError);
        assert.throws(() => toaPeer({} as Socket), TypeError);
      } finally {
        closePair(pair);
      }
      assert.throws(() => toaPeer(c, { pinDir: PIN_DIR }), {
        name: 'RealServerError',
        message: /no file descriptor/,
      });
    },
  );

  test(
    'random option blocks: the kernel-side parser agrees with src/wire (tcp_parse_options rules)',
    { timeout: 20_000 },
    async (t) => {
      const seed = Number(process.env.FULLNAT_FUZZ_SEED ?? 20240611) >>> 0;
      const cases = Number(process.env.FULLNAT_FUZZ_CASES ?? 150);
      t.diagnostic(`seed ${seed} (FULLNAT_FUZZ_SEED), ${cases} cases (FULLNAT_FUZZ_CASES)`);
      let x = seed || 1;
      const rnd = (n: number): number => {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        x >>>= 0;
        return x % n;
      };
      // Kinds the kernel ignores on a non-SYN segment of a connection without timestamps/SACK/MD5/AO/MPTCP.
      const SAFE = [5, 6, 7, 9, 10, 11, 12, 14, 15, 24, 27, 34, 69, 76, 200, 252, 255];
      const opts = (): number[] => {
        const out: number[] = [];
        while (out.length < 40 && rnd(6) !== 0) {
          const r = rnd(100);
          const room = 40 - out.length;
          let o: number[];
          if (r < 25) o = [1];
          else if (r < 28) o = [0];
          else if (r < 45)
            o = [254, 8, rnd(256), rnd(256), 1 + rnd(223), rnd(256), rnd(256), rnd(256)];
          else if (r < 60) {
            const kind = rnd(2) ? 254 : 253;
            o = [kind, 20, rnd(256), rnd(256), 0x20, 0x01, 0x0d, 0xb8];
            for (let i = 0; i < 12; i++) o.push(rnd(256));
          } else if (r < 70) {
            const len = [2, 3, 4, 6, 7, 9, 10, 19, 21][rnd(9)]!;
            o = [rnd(2) ? 254 : 253, len];
            for (let i = 2; i < len; i++) o.push(rnd(256));
          } else if (r < 90) {
            const len = 2 + rnd(9);
            o = [SAFE[rnd(SAFE.length)]!, len];
            for (let i = 2; i < len; i++) o.push(rnd(256));
          } else o = [SAFE[rnd(SAFE.length)]!, rnd(2) ? rnd(2) : room + 1 + rnd(4)]; // size < 2 or past the end
          out.push(...o.slice(0, room));
        }
        while (out.length % 4) out.push(rnd(3) ? 0 : 1);
        return out;
      };
      const { TcpOptionCursor } = await import('../../src/wire/tcp-options.js');
      const cursor = new TcpOptionCursor();
      const kinds = { found: 0, without: 0, malformed: 0 };
      for (let i = 0; i < cases; i++) {
        let raw = opts();
        // Only blocks every kernel accepts (see authScanDrops; minlen 5 is the strictest).
        while (authScanDrops(Uint8Array.from(raw), 5)) raw = opts();
        const bytes = Uint8Array.from(raw);
        // Reference: the first TOA under the kernel's walking rules, else whether the walk broke.
        let want: { addr: Uint8Array; port: number } | undefined;
        cursor.reset(bytes, 0, bytes.length);
        while (cursor.next()) {
          const at = cursor.at;
          if (
            (cursor.kind === 254 && cursor.size === 8) ||
            ((cursor.kind === 254 || cursor.kind === 253) && cursor.size === 20)
          ) {
            const port = (bytes[at + 2]! << 8) | bytes[at + 3]!;
            const addr = new Uint8Array(16);
            if (cursor.size === 8)
              addr.set([
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0xff,
                0xff,
                ...bytes.subarray(at + 4, at + 8),
              ]);
            else addr.set(bytes.subarray(at + 4, at + 20));
            want = { addr, port };
            break;
          }
        }
        if (want) kinds.found++;
        else if (cursor.malformed) kinds.malformed++;
        else kinds.without++;
        const flags = [ACK, DATA, DATA | TCP_FIN][rnd(3)]!;
        const r = await nodeSees(DUAL_PORT, [
          { flags, rawOptions: raw, ...(flags === ACK ? {} : { payload: REQUEST }) },
        ]).catch((err: Error) => {
          throw new Error(`case ${i}: options [${raw.join(',')}] flags ${flags}: ${err.message}`);
        });
        const got = parseIpv6(String(r.remote));
        const expectAddr = want ? want.addr : parseIpv6(`::ffff:${CLIENT4}`)!;
        const expectPort = want ? want.port : r.sport;
        assert.deepEqual(
          [Array.from(got ?? []), r.rport],
          [Array.from(expectAddr), expectPort],
          `case ${i}: options [${raw.join(',')}] flags ${flags}: server saw ${String(r.remote)}:${String(r.rport)}`,
        );
      }
      expected.withToa += kinds.found;
      expected.withoutToa += kinds.without;
      expected.malformed += kinds.malformed;
      rewritesMin += kinds.found;
      t.diagnostic(`reference: ${JSON.stringify(kinds)}`);
    },
  );

  /** `rs status --json`. */
  async function statusJson(): Promise<Status> {
    const { code, out, err } = await runCli(['status', '--json', '--pin-dir', PIN_DIR]);
    assert.equal(code, 0, `rs status exit code (stderr: ${err})`);
    return JSON.parse(out) as Status;
  }

  /** `rs attach --trust LIST` on the test cgroup: must succeed; returns its output. */
  async function attachTrust(list: string | undefined): Promise<{ out: string; err: string }> {
    const args = ['attach', '--cgroup', cgroup, '--pin-dir', PIN_DIR, ...HOST_TCP_ONLY];
    const r = await runCli(list === undefined ? args : [...args, '--trust', list]);
    assert.equal(r.code, 0, `rs attach --trust ${list}: ${r.err}`);
    return r;
  }

  /** Counter increments over `body`, for the counters trust can move. */
  async function countersDuring(body: () => Promise<void>): Promise<Record<string, number>> {
    const before = (await statusJson()).counters;
    await body();
    const after = (await statusJson()).counters;
    return {
      withToa: after.withToa - before.withToa,
      withoutToa: after.withoutToa - before.withoutToa,
      untrusted: after.untrusted - before.untrusted,
    };
  }

  test(
    'without --trust: any peer is trusted, and the first attach warned about it',
    { timeout: 20_000 },
    async () => {
      assert.match(
        node.stderr,
        /warning: TOAs are trusted from any peer: any host that can reach this server can forge its client address; restrict it with --trust/,
      );
      assert.deepEqual((await statusJson()).trust, {
        anyPeer: true,
        prefixes: ['0.0.0.0/0', '::/0'],
      });
      const text = await runCli(['status', '--pin-dir', PIN_DIR]);
      assert.match(text.out, /\n {2}trusted LBs: any peer /);
    },
  );

  test(
    '--trust covering the sender: its TOA is used (AF_INET, ::ffff: peer of a dual-stack socket, IPv6)',
    { timeout: 20_000 },
    async () => {
      const a = await attachTrust('10.201.1.0/24,fd00:201:1::/64');
      assert.doesNotMatch(a.err, /warning/);
      assert.match(a.out, /TOAs believed only from 10\.201\.1\.0\/24, fd00:201:1::\/64\n/);
      assert.deepEqual((await statusJson()).trust, {
        anyPeer: false,
        prefixes: ['10.201.1.0/24', 'fd00:201:1::/64'],
      });
      let n = 0;
      const delta = await countersDuring(async () => {
        const a4 = await nodeSees(V4_PORT, [
          { flags: ACK, options: [toa4('198.51.100.21', 2101)] },
        ]);
        assert.deepEqual([a4.remote, a4.rport], ['198.51.100.21', 2101], 'AF_INET socket');
        n++;
        const m = await nodeSees(DUAL_PORT, [
          { flags: DATA, options: [toa4('198.51.100.22', 2102)], payload: REQUEST },
        ]);
        assert.deepEqual([m.remote, m.rport], ['::ffff:198.51.100.22', 2102], '::ffff: peer');
        n++;
        if (ipv6) {
          const b6 = await nodeSees(
            DUAL_PORT,
            [{ flags: ACK, options: [toa6('2001:db8:21::1', 2103)] }],
            true,
          );
          assert.deepEqual([b6.remote, b6.rport], ['2001:db8:21::1', 2103], 'IPv6 peer');
          n++;
        }
      });
      expected.withToa += n;
      rewritesMin += n;
      assert.deepEqual(delta, { withToa: n, withoutToa: 0, untrusted: 0 });
    },
  );

  test(
    '--trust not covering the sender: the TOA is ignored, the server sees the real peer, counted untrusted',
    { timeout: 20_000 },
    async () => {
      // Near misses only: the neighbours of 10.201.1.2 and fd00:201:1::2. This list replaces the last one.
      await attachTrust('10.201.1.3,10.201.1.0/31,10.201.9.0/24,fd00:201:1::3,fd00:201:9::/64');
      assert.deepEqual((await statusJson()).trust?.prefixes, [
        '10.201.1.0/31',
        '10.201.1.3/32',
        '10.201.9.0/24',
        'fd00:201:1::3/128',
        'fd00:201:9::/64',
      ]);
      let n = 0;
      const delta = await countersDuring(async () => {
        const a4 = await nodeSees(V4_PORT, [
          { flags: ACK, options: [toa4('198.51.100.31', 3101)] },
        ]);
        assert.deepEqual([a4.remote, a4.rport], [CLIENT4, a4.sport], 'AF_INET socket');
        n++;
        const m = await nodeSees(DUAL_PORT, [
          { flags: DATA, options: [toa4('198.51.100.32', 3102)], payload: REQUEST },
        ]);
        assert.deepEqual([m.remote, m.rport], [`::ffff:${CLIENT4}`, m.sport], '::ffff: peer');
        n++;
        if (ipv6) {
          const b6 = await nodeSees(
            DUAL_PORT,
            [{ flags: ACK, options: [toa6('2001:db8:31::1', 3103, 253)] }],
            true,
          );
          assert.deepEqual([b6.remote, b6.rport], [CLIENT6, b6.sport], 'IPv6 peer');
          n++;
        }
        const fnat64 = await serverSees(toaServer, TOA_V4_PORT, [
          { flags: ACK, options: [toa6('2001:db8:31::2', 3104)] },
        ]);
        assert.deepEqual(
          [fnat64.line.remote, fnat64.line.toa],
          [CLIENT4, null],
          'toaPeer: an untrusted TOA is not stored',
        );
        n++;
        // No TOA at all: "without", not "untrusted".
        const plain = await nodeSees(V4_PORT, [{ flags: ACK }]);
        assert.deepEqual([plain.remote, plain.rport], [CLIENT4, plain.sport]);
      });
      expected.untrusted += n;
      expected.withoutToa++;
      assert.deepEqual(delta, { withToa: 0, withoutToa: 1, untrusted: n });
    },
  );

  test(
    'the IPv4 and IPv6 lists are separate; ::ffff:a.b.c.d is an IPv4 address; host entries match exactly',
    { timeout: 20_000 },
    async (t) => {
      if (!ipv6) {
        t.skip('IPv6 could not be configured in the namespaces');
        return;
      }
      await attachTrust(`::ffff:${CLIENT4}`);
      assert.deepEqual((await statusJson()).trust?.prefixes, [`${CLIENT4}/32`]);
      const v4only = await countersDuring(async () => {
        const m = await nodeSees(DUAL_PORT, [
          { flags: ACK, options: [toa4('198.51.100.41', 4101)] },
        ]);
        assert.deepEqual([m.remote, m.rport], ['::ffff:198.51.100.41', 4101]);
        const b6 = await nodeSees(
          DUAL_PORT,
          [{ flags: ACK, options: [toa6('2001:db8:41::1', 4102)] }],
          true,
        );
        assert.deepEqual([b6.remote, b6.rport], [CLIENT6, b6.sport], 'no IPv6 LB is trusted');
      });
      assert.deepEqual(v4only, { withToa: 1, withoutToa: 0, untrusted: 1 });
      await attachTrust(CLIENT6);
      assert.deepEqual((await statusJson()).trust?.prefixes, [`${CLIENT6}/128`]);
      const v6only = await countersDuring(async () => {
        const m = await nodeSees(DUAL_PORT, [
          { flags: ACK, options: [toa4('198.51.100.42', 4201)] },
        ]);
        assert.deepEqual(
          [m.remote, m.rport],
          [`::ffff:${CLIENT4}`, m.sport],
          'no IPv4 LB is trusted',
        );
        const b6 = await nodeSees(
          DUAL_PORT,
          [{ flags: ACK, options: [toa6('2001:db8:42::1', 4202)] }],
          true,
        );
        assert.deepEqual([b6.remote, b6.rport], ['2001:db8:42::1', 4202]);
      });
      assert.deepEqual(v6only, { withToa: 1, withoutToa: 0, untrusted: 1 });
      expected.withToa += 2;
      expected.untrusted += 2;
      rewritesMin += 2;
    },
  );

  test(
    'attach without --trust keeps the list in force; a malformed --trust changes nothing; 0.0.0.0/0,::/0 trusts anyone again (with the warning)',
    { timeout: 20_000 },
    async () => {
      const list = `${CLIENT4}/32`;
      await attachTrust(CLIENT4);
      const keep = await attachTrust(undefined);
      assert.doesNotMatch(keep.err, /warning/);
      const kept = await nodeSees(V4_PORT, [
        { flags: ACK, options: [toa4('198.51.100.50', 5001)] },
      ]);
      assert.deepEqual([kept.remote, kept.rport], ['198.51.100.50', 5001], 'still trusted');
      expected.withToa++;
      rewritesMin++;
      assert.match(
        keep.out,
        /TOAs believed only from 10\.201\.1\.2\/32 \(the list in force; --trust replaces it\)/,
      );
      assert.deepEqual((await statusJson()).trust?.prefixes, [list]);

      const bad = await runCli([
        'attach',
        '--cgroup',
        cgroup,
        '--pin-dir',
        PIN_DIR,
        ...HOST_TCP_ONLY,
        '--trust',
        '0.0.0.0/0,10.201.1.0/33',
      ]);
      assert.equal(bad.code, 2, bad.err);
      assert.match(bad.err, /"10\.201\.1\.0\/33" has a bad prefix length/);
      assert.deepEqual((await statusJson()).trust?.prefixes, [list], 'list unchanged');

      const any = await attachTrust('0.0.0.0/0,::/0');
      assert.match(any.err, /warning: TOAs are trusted from any peer: any host that can reach/);
      assert.deepEqual((await statusJson()).trust, {
        anyPeer: true,
        prefixes: ['0.0.0.0/0', '::/0'],
      });
      const r = await nodeSees(V4_PORT, [{ flags: ACK, options: [toa4('198.51.100.51', 5101)] }]);
      assert.deepEqual([r.remote, r.rport], ['198.51.100.51', 5101]);
      expected.withToa++;
      rewritesMin++;
    },
  );

  test(
    'a malformed --trust attaches nothing: no pins, no cgroup',
    { timeout: 20_000 },
    async () => {
      const pins = `/sys/fs/bpf/fullnat-toa-never-${PID}`;
      const cg = join(findCgroup2Mount()!, `fullnat-toa-never-${PID}`);
      for (const trust of ['10.0.0.0/33', 'fd00::/129', '', '10.0.0.1,,10.0.0.2', '10.0.0.256/8']) {
        const r = await runCli([
          'attach',
          '--cgroup',
          cg,
          '--pin-dir',
          pins,
          ...HOST_TCP_ONLY,
          '--trust',
          trust,
        ]);
        assert.equal(r.code, 2, `--trust "${trust}": ${r.err}`);
        const e = await runCli([
          'exec',
          '--cgroup',
          cg,
          '--pin-dir',
          pins,
          '--trust',
          trust,
          '--',
          'true',
        ]);
        assert.equal(e.code, 2, `exec --trust "${trust}": ${e.err}`);
        assert.equal(existsSync(pins), false, 'no pins');
        assert.equal(existsSync(cg), false, 'no cgroup');
      }
    },
  );

  test('rs status --json reports the counters', { timeout: 20_000 }, async (t) => {
    const { code, out, err } = await runCli(['status', '--json', '--pin-dir', PIN_DIR]);
    assert.equal(code, 0, `rs status exit code (stderr: ${err})`);
    const s = JSON.parse(out) as Status;
    assert.equal(s.loaded, true);
    assert.equal(s.attached, true);
    assert.deepEqual(
      s.attachments.map((a) => [a.cgroup, a.programs.map((p) => p.attach).sort()]),
      [
        [
          cgroup,
          [
            'connect4',
            'connect6',
            'getpeername4',
            'getpeername6',
            'recvmsg4',
            'recvmsg6',
            'sendmsg4',
            'sendmsg6',
            'sock_ops',
          ],
        ],
      ],
    );
    const c: Counters = s.counters;
    t.diagnostic(`counters: ${JSON.stringify(c)}`);
    assert.deepEqual(
      {
        withToa: c.withToa,
        withoutToa: c.withoutToa,
        malformed: c.malformed,
        untrusted: c.untrusted,
        errors: c.errors,
      },
      { ...expected, errors: 0 },
    );
    assert.ok(c.v6OnV4Socket >= v6OnV4, 'the IPv6 TOA on an AF_INET socket was counted');
    assert.ok(c.peerRewrites >= rewritesMin, `peer rewrites: ${c.peerRewrites} >= ${rewritesMin}`);
    const text = await runCli(['status', '--pin-dir', PIN_DIR]);
    assert.equal(text.code, 0);
    assert.match(text.out, new RegExp(`handshakes with TOA\\s+${expected.withToa}\\n`));
    assert.match(
      text.out,
      new RegExp(`TOAs ignored \\(peer not trusted\\)\\s+${expected.untrusted}(\\n|$)`),
    );
  });

  test(
    "rs exec exits with the command's code, or dies of its signal",
    { timeout: 20_000 },
    async () => {
      const base = ['exec', '--cgroup', cgroup, '--pin-dir', PIN_DIR, ...HOST_TCP_ONLY, '--'];
      const seven = await runCli([
        ...base,
        'sh',
        '-c',
        'grep -q "^0::.*fullnat-toa-test-" /proc/self/cgroup && exit 7',
      ]);
      assert.equal(
        seven.code,
        7,
        `exit code passed through, and CMD ran inside the cgroup (${seven.err})`,
      );
      const term = await runCli([...base, 'sh', '-c', 'kill -TERM $$']);
      assert.equal(term.signal, 'SIGTERM');
      const missing = await runCli([...base, 'fullnat-no-such-command']);
      assert.equal(missing.code, 127);
      assert.match(missing.err, /cannot run fullnat-no-such-command/);
    },
  );

  test(
    'rs detach: programs unloaded; new connections see the LB address again',
    { timeout: 20_000 },
    async () => {
      const d = await runCli(['detach', '--cgroup', cgroup, '--pin-dir', PIN_DIR]);
      assert.equal(d.code, 0, d.err);
      assert.match(d.out, new RegExp(`detached from ${cgroup}\n`));
      assert.match(d.out, /programs unloaded/);
      assert.equal(existsSync(PIN_DIR), false, 'pins removed');
      const r = await nodeSees(V4_PORT, [{ flags: ACK, options: [toa4('203.0.113.50', 5050)] }]);
      assert.deepEqual([r.remote, r.rport], [CLIENT4, r.sport]);
      const st = await runCli(['status', '--json', '--pin-dir', PIN_DIR]);
      assert.equal(st.code, 3, 'status exits 3 when not attached');
      assert.equal((JSON.parse(st.out) as Status).loaded, false);
    },
  );
});

// Pure parts: run everywhere, root or not.
describe('rs helpers', () => {
  test('cgroup2 mount found in /proc/mounts, hybrid or unified; octal escapes decoded', () => {
    const hybrid = [
      'tmpfs /sys/fs/cgroup tmpfs rw 0 0',
      'cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0',
      'cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0',
    ].join('\n');
    assert.equal(findCgroup2Mount(hybrid), '/sys/fs/cgroup/unified');
    assert.equal(findCgroup2Mount('cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n'), '/sys/fs/cgroup');
    assert.equal(findCgroup2Mount('cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n'), undefined);
    assert.equal(readMounts('none /mnt/my\\040dir cgroup2 rw 0 0')[0]!.target, '/mnt/my dir');
  });

  test('kernel versions', () => {
    assert.deepEqual(kernelVersion('6.18.44-fc-v657'), [6, 18]);
    assert.deepEqual(kernelVersion('5.4.0-150-generic'), [5, 4]);
  });

  test('counters parsed from bpftool map dump -j, with and without BTF', () => {
    const btf = [
      {
        key: [],
        formatted: {
          key: 0,
          values: [
            { cpu: 0, value: 3 },
            { cpu: 1, value: 4 },
          ],
        },
      },
      { key: [], formatted: { key: 2, values: [{ cpu: 0, value: 1 }] } },
    ];
    const le = (n: number): string[] =>
      Array.from(
        { length: 8 },
        (_v, i) => `0x${(Math.floor(n / 2 ** (8 * i)) & 0xff).toString(16).padStart(2, '0')}`,
      );
    const raw = [
      {
        key: ['0x01', '0x00', '0x00', '0x00'],
        values: [
          { cpu: 0, value: le(258) },
          { cpu: 1, value: le(2) },
        ],
      },
    ];
    const a = parseStatsDump(btf);
    assert.equal(a.withToa, 7);
    assert.equal(a.malformed, 1);
    assert.equal(parseStatsDump(raw as never).withoutToa, 260);
    assert.deepEqual(Object.keys(a), [...STAT_NAMES]);
  });

  test('usage: help, unknown commands and options, exec without a command', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
    assert.equal(await runRs(['--help'], io), 0);
    assert.match(out.join('\n'), /fullnat rs <command>/);
    assert.equal(await runRs(['frobnicate'], io), 2);
    assert.equal(await runRs(['status', '--cgroup', 'x'], io), 2);
    assert.equal(await runRs(['exec'], io), 2);
    assert.equal(await runRs(['attach', '--cgroup'], io), 2);
    assert.match(err.join('\n'), /unknown command "frobnicate"/);
  });

  test('--trust prefixes: parsed, host bits cleared, ::ffff: as IPv4, merged and sorted', () => {
    const list = parseTrustList([
      'fd00:3::1/64, 10.0.4.7',
      '10.0.3.9/24,::ffff:192.0.2.0/120,10.0.3.0/24',
      '::/0,0.0.0.0/0',
    ]);
    assert.deepEqual(list.map(formatTrustPrefix), [
      '0.0.0.0/0',
      '10.0.3.0/24',
      '10.0.4.7/32',
      '192.0.2.0/24',
      '::/0',
      'fd00:3::/64',
    ]);
    assert.deepEqual(parseTrustPrefix('10.0.3.255/23'), {
      family: 4,
      addr: [10, 0, 2, 0],
      bits: 23,
    });
    assert.deepEqual(parseTrustPrefix('::ffff:10.1.2.3'), {
      family: 4,
      addr: [10, 1, 2, 3],
      bits: 32,
    });
    assert.equal(formatTrustPrefix(parseTrustPrefix('2001:db8::ff/121')), '2001:db8::80/121');
    assert.deepEqual(trustState(TRUST_ANY), { anyPeer: true, prefixes: ['0.0.0.0/0', '::/0'] });
    assert.equal(trustState(parseTrustList('0.0.0.0/0,fd00::/8')).anyPeer, false);
  });

  test('--trust validation: a usage error (exit 2) naming the bad item', async () => {
    const cases: [string, RegExp][] = [
      ['10.0.3.0/33', /"10\.0\.3\.0\/33" has a bad prefix length "\/33" \(IPv4: \/0 to \/32\)/],
      ['fd00:3::/129', /"fd00:3::\/129" has a bad prefix length "\/129" \(IPv6: \/0 to \/128\)/],
      ['10.0.3.0/', /"10\.0\.3\.0\/" has a bad prefix length/],
      ['10.0.3.0/-1', /"10\.0\.3\.0\/-1" has a bad prefix length/],
      ['10.0.3.0/24/8', /"10\.0\.3\.0\/24\/8" has a bad prefix length/],
      ['10.0.3.256', /"10\.0\.3\.256" is not an IPv4 or IPv6 address/],
      ['010.0.3.1', /"010\.0\.3\.1" is not an IPv4 or IPv6 address/],
      ['lb1.example', /"lb1\.example" is not an IPv4 or IPv6 address/],
      ['fe80::1%eth0', /"fe80::1%eth0" is not an IPv4 or IPv6 address/],
      ['fd00:3:::1', /"fd00:3:::1" is not an IPv4 or IPv6 address/],
      ['::ffff:10.0.3.0/64', /"::ffff:10\.0\.3\.0\/64" is an IPv4-mapped prefix shorter than \/96/],
      ['', /--trust: empty list/],
      ['10.0.3.0/24,,10.0.4.7', /--trust "10\.0\.3\.0\/24,,10\.0\.4\.7": item 2 of 3 is empty/],
      ['10.0.3.0/24,', /item 2 of 2 is empty/],
    ];
    for (const [value, want] of cases)
      for (const command of ['attach', 'exec']) {
        const err: string[] = [];
        const io = { out: () => {}, err: (l: string) => err.push(l) };
        const args = [command, '--pin-dir', '/nonexistent/fullnat', '--trust', value];
        const code = await runRs(command === 'exec' ? [...args, '--', 'true'] : args, io);
        assert.equal(code, 2, `${command} --trust "${value}"`);
        assert.match(err.join('\n'), want, `${command} --trust "${value}"`);
      }
    const io = { out: () => {}, err: () => {} };
    assert.equal(await runRs(['status', '--trust', '10.0.3.0/24'], io), 2, 'status has no --trust');
    assert.equal(await runRs(['detach', '--trust', '10.0.3.0/24'], io), 2, 'detach neither');
  });

  test('exec forwards signals and passes the exit code through', { timeout: 20_000 }, async () => {
    const io = { out: () => {}, err: () => {} };
    assert.equal(await runForwarding(['sh', '-c', 'exit 7'], io), 7);
    assert.equal(await runForwarding(['fullnat-no-such-command'], io), 127);
    // The child exits 42 on SIGUSR2; we send it to ourselves, runForwarding passes it on. Sent
    // only once the child says its trap is set (a file it creates), or the signal would kill it.
    const dir = mkdtempSync(join(tmpdir(), 'fullnat-fwd-'));
    const ready = join(dir, 'trap-set');
    try {
      const p = runForwarding(
        ['sh', '-c', 'trap "exit 42" USR2; : > "$0"; while :; do sleep 0.05; done', ready],
        io,
      );
      for (let i = 0; i < 500 && !existsSync(ready); i++) await sleep(20);
      assert.ok(existsSync(ready), 'the child set its trap within 10 s');
      process.kill(process.pid, 'SIGUSR2');
      assert.equal(await p, 42);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
