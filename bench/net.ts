/**
 * Network benchmark on real kernels: fullnat next to the kernel and HAProxy.
 *
 *   client 10.88.1.2 ── eth0 10.88.1.1 [LB] eth1 10.88.2.1 ── RS 10.88.2.2
 *   VIP 10.88.0.100 (:5201 iperf3, :80 HTTP); LIPs 10.88.3.1-4 (kernel),
 *   10.88.5.1 (haproxy), 10.88.4.1-4 (fullnat)
 *
 * One topology, four variants in turn in the LB namespace:
 *   direct   client → RS address, routed by the LB (no NAT): the topology's own limit
 *   kernel   nftables DNAT + SNAT to the LIPs (full NAT by the kernel, no TOA)
 *   haproxy  HAProxy TCP mode (send-proxy-v2 to nginx for HTTP; none for iperf3)
 *   fullnat  `fullnat run` over its TUN device, toa_policy fullnat
 * and four measurements each (throughput, small-packet rate, new connections
 * per second with short HTTP requests, latency at moderate load), plus CPU
 * per connection. Everything stays inside the namespaces, which are deleted at
 * the end, on failure and on Ctrl-C.
 */
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetnsLab, netnsAvailable } from '../src/lab/netns.js';
import { napiThreads, tunAvailable } from '../src/io/tun.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root, from bench/ (ts) or dist/bench/ (js). */
const repo = existsSync(join(here, '..', 'package.json'))
  ? join(here, '..')
  : join(here, '..', '..');
const fixtures = join(repo, 'bench', 'fixtures');
const cli = join(repo, 'bin', 'fullnat.js');

const VIP = '10.88.0.100';
const RS = '10.88.2.2';
/**
 * LIPs per variant, in separate subnets: the RS keeps (LIP:port, RS:port) in
 * TIME_WAIT for 60 s after each short connection, and a later variant reusing
 * those tuples with unrelated sequence numbers would have its SYNs answered
 * with the old connection's ACK (RFC 793 TIME_WAIT) instead of a SYN+ACK.
 */
const LIPS = {
  kernel: ['10.88.3.1', '10.88.3.2', '10.88.3.3', '10.88.3.4'],
  haproxy: ['10.88.5.1'],
  fullnat: ['10.88.4.1', '10.88.4.2', '10.88.4.3', '10.88.4.4'],
};
const TUN = 'fnb0';
const PREFIX = 'fnbench';

export const VARIANTS = ['direct', 'kernel', 'haproxy', 'fullnat'] as const;
export type Variant = (typeof VARIANTS)[number];

export interface NetOptions {
  /** Seconds per throughput / small-packet / wrk run. */
  seconds: number;
  variants: Variant[];
  /** Write a V8 CPU profile of the fullnat LB here and summarise it. */
  cpuProfDir?: string;
  log: (line: string) => void;
}

export interface Throughput {
  bitsPerSecond: number;
  retransmits: number;
}
export interface SmallPackets {
  /** Packets/s the LB received from the client (its client-side NIC), during the run. */
  packetsPerSecond: number;
  /** iperf3 goodput over the LB's received packets: payload per segment. */
  payloadBytesPerPacket: number;
  /** Estimate from bytes/s ÷ segment payload (88-byte MSS less options). */
  bitsPerSecond: number;
  /** For fullnat: packets the process read from / wrote to its TUN per second. */
  tunRxPerSecond?: number;
  tunTxPerSecond?: number;
}
export interface HttpRun {
  connections: number;
  connectionsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}
export interface CpuPerConnection {
  /** utime+stime of the LB process (haproxy, fullnat), µs per connection; 0 for direct/kernel. */
  processUs: number;
  /** System-wide softirq time (/proc/stat) per connection, µs: the kernel's forwarding/NAT work, plus the client's and RS's receive paths. */
  softirqUs: number;
  /** processUs + softirqUs: what the figure is compared on. */
  lbUs: number;
  /** Busy CPU time on the machine (user+system+irq+softirq) less other processes' utime+stime, per connection, µs: client, RS and LB together. */
  machineUs: number;
}
export interface VariantResult {
  variant: Variant;
  /** client → RS (upload; iperf3 default direction). */
  throughput: Throughput | null;
  /** RS → client (download; iperf3 -R). */
  download: Throughput | null;
  smallPackets: SmallPackets | null;
  http: HttpRun | null;
  moderate: HttpRun | null;
  cpu: CpuPerConnection | null;
  /** CPUs' worth of other processes (outside the bench) busy during the throughput and HTTP runs. */
  backgroundCpus: { throughput: number | null; http: number | null };
  notes: string[];
}
export interface ProfileEntry {
  selfPercent: number;
  selfMs: number;
  function: string;
  location: string;
}
export interface NetBenchResult {
  seconds: number;
  kernel: string;
  cpus: number;
  offloads: string;
  variants: VariantResult[];
  ratios: Record<string, Record<string, number | null>>;
  targets: Record<string, { value: number | null; target: string; met: boolean | null }>;
  profile?: { file: string; samples: number; top: ProfileEntry[]; byFile: ProfileEntry[] };
  runSeconds: number;
}

// ------------------------------------------------------------------ availability

/** Why the suite cannot run here, or '' when it can. */
export function netBenchUnavailable(): string {
  const ns = netnsAvailable();
  if (!ns.ok) return ns.reason;
  const tun = tunAvailable();
  if (!tun.ok) return tun.reason;
  const missing = ['iperf3', 'wrk', 'nginx', 'haproxy', 'nft', 'ethtool'].filter((t) => !which(t));
  if (missing.length > 0) {
    return `missing tools: ${missing.join(', ')} (apt-get install iperf3 wrk nginx haproxy nftables ethtool)`;
  }
  return '';
}

function which(cmd: string): boolean {
  for (const d of (process.env.PATH ?? '/usr/bin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    if (existsSync(join(d, cmd))) return true;
  }
  return false;
}

// ------------------------------------------------------------------ helpers

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function template(name: string, vars: Record<string, string>): string {
  let text = readFileSync(join(fixtures, name), 'utf8');
  for (const [k, v] of Object.entries(vars)) text = text.split(`@${k}@`).join(v);
  return text;
}

class Bench {
  readonly lab = new NetnsLab(PREFIX);
  readonly dir = mkdtempSync(join(tmpdir(), 'fullnat-netbench-'));
  private readonly running = new Set<ChildProcess>();
  private offloadState = new Map<string, string[]>();
  closed = false;

  constructor(readonly o: NetOptions) {}

  /** Runs CMD in namespace HOST, asynchronously (Ctrl-C stays responsive), bounded by timeoutMs. */
  run(host: string, cmd: string, args: string[], timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = execFile(
        'ip',
        ['netns', 'exec', this.lab.ns(host), cmd, ...args],
        { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 },
        (err, stdout, stderr) => {
          this.running.delete(child);
          if (err && !stdout) reject(new Error(`${cmd}: ${stderr.trim() || err.message}`));
          else resolve(stdout);
        },
      );
      this.running.add(child);
    });
  }

  async destroy(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.running) c.kill('SIGKILL');
    await this.lab.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }

  build(): void {
    // A run killed with -9 leaves its namespaces and their processes: remove both.
    for (const h of ['c', 'lb', 'rs']) {
      try {
        const pids = execFileSync('ip', ['netns', 'pids', this.lab.ns(h)], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        });
        for (const p of pids.split(/\s+/).filter(Boolean)) process.kill(Number(p), 'SIGKILL');
      } catch {
        // no leftover
      }
    }
    for (const h of ['c', 'rs']) this.lab.addHost(h);
    for (const h of ['c', 'rs']) {
      this.lab.sysctl(h, 'net.ipv4.ip_local_port_range', '1024 65535');
      this.lab.sysctl(h, 'net.ipv4.tcp_tw_reuse', '1');
      this.lab.sysctl(h, 'net.core.somaxconn', '4096');
    }
    this.lab.sysctl('rs', 'net.ipv4.tcp_max_syn_backlog', '8192');
    // One client stands in for many: it keeps no TIME_WAIT sockets. fullnat (like LVS)
    // strips TCP timestamps, without which tcp_tw_reuse cannot recycle a port, so
    // after a few seconds at 10k+ connections/s every client port would sit in
    // TIME_WAIT toward the VIP and connect() would scan the whole range each time.
    this.lab.sysctl('c', 'net.ipv4.tcp_max_tw_buckets', '0');
    this.buildLb(false);
    for (const [h, i] of this.ifaces()) {
      this.offloadState.set(`${h}/${i}`, this.offloads(h, i));
    }
  }

  /**
   * A fresh LB namespace (and fresh veths to the client and the RS). Each variant
   * gets its own: conntrack entries left by the kernel variant would otherwise
   * keep NATing reused client ports behind the next variant's back.
   */
  buildLb(rebuild = true): void {
    // Deleting a namespace frees its veths asynchronously: delete the pairs first.
    for (const h of rebuild ? ['c', 'rs'] : []) {
      try {
        this.lab.ip(h, 'link', 'del', 'eth0');
      } catch {
        // first build: none yet
      }
    }
    // addHost replaces the old namespace; keep one entry for destroy().
    const i = this.lab.namespaces.indexOf(this.lab.ns('lb'));
    if (i >= 0) this.lab.namespaces.splice(i, 1);
    this.lab.addHost('lb');
    this.lab.link('c', 'eth0', '10.88.1.2/24', 'lb', 'eth0', '10.88.1.1/24');
    this.lab.link('lb', 'eth1', '10.88.2.1/24', 'rs', 'eth0', `${RS}/24`);
    this.lab.ip('c', 'route', 'add', 'default', 'via', '10.88.1.1');
    this.lab.ip('rs', 'route', 'add', 'default', 'via', '10.88.2.1');
    this.lab.sysctl('lb', 'net.ipv4.ip_forward', '1');
    this.lab.sysctl('lb', 'net.ipv4.ip_local_port_range', '1024 65535');
    this.lab.sysctl('lb', 'net.core.somaxconn', '4096');
  }

  ifaces(): [string, string][] {
    return [
      ['c', 'eth0'],
      ['lb', 'eth0'],
      ['lb', 'eth1'],
      ['rs', 'eth0'],
    ];
  }

  /** tso/gso/gro of an interface as `ethtool -K` arguments. */
  offloads(host: string, dev: string): string[] {
    const text = this.lab.exec(host, 'ethtool', ['-k', dev]);
    const out: string[] = [];
    for (const [name, key] of [
      ['tcp-segmentation-offload', 'tso'],
      ['generic-segmentation-offload', 'gso'],
      ['generic-receive-offload', 'gro'],
    ] as const) {
      const m = new RegExp(`^${name}: (on|off)`, 'm').exec(text);
      if (m) out.push(key, m[1]!);
    }
    return out;
  }

  /**
   * Offloads off on every veth (off=true), or back to how the veths came
   * (off=false). fullnat's TUN, when there is one, gets GRO off as well: with
   * threaded NAPI the kernel could otherwise merge the small segments fullnat
   * writes, a help the NAT variants do not get in this run.
   */
  setOffloads(off: boolean): void {
    for (const [h, i] of this.ifaces()) {
      const args = off
        ? ['tso', 'off', 'gso', 'off', 'gro', 'off']
        : this.offloadState.get(`${h}/${i}`)!;
      try {
        this.lab.exec(h, 'ethtool', ['-K', i, ...args]);
      } catch {
        // a feature the driver fixes; the others are set
      }
    }
    try {
      this.lab.exec('lb', 'ethtool', ['-K', TUN, 'gro', off ? 'off' : 'on']);
    } catch {
      // no TUN in this variant
    }
  }

  offloadSummary(): string {
    return [...this.offloadState.entries()]
      .map(([k, v]) => `${k}: ${v.join(' ')}`)
      .slice(0, 1)
      .join('; ');
  }

  async waitListening(host: string, port: number, what: string | (() => string)): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const out = this.lab.exec(host, 'ss', ['-Hltn', `sport = :${port}`]);
      if (out.trim()) return;
      await sleep(100);
    }
    const name = typeof what === 'string' ? what : what();
    throw new Error(`${name} is not listening on :${port} after 10 s`);
  }

  async startServers(): Promise<void> {
    writeFileSync(join(this.dir, 'nginx.conf'), template('nginx.conf', { DIR: this.dir }));
    this.lab.spawn('rs', 'nginx', [
      '-p',
      this.dir,
      '-c',
      join(this.dir, 'nginx.conf'),
      '-e',
      join(this.dir, 'nginx-error.log'),
    ]);
    this.lab.spawn('rs', 'iperf3', ['-s', '-p', '5201']);
    await this.waitListening('rs', 80, 'nginx');
    await this.waitListening('rs', 8081, 'nginx (proxy_protocol)');
    await this.waitListening('rs', 5201, 'iperf3 -s');
  }

  devCounters(
    host: string,
  ): Map<string, { rxBytes: number; rxPackets: number; txBytes: number; txPackets: number }> {
    const out = new Map<
      string,
      { rxBytes: number; rxPackets: number; txBytes: number; txPackets: number }
    >();
    const text = this.lab.exec(host, 'cat', ['/proc/net/dev']);
    for (const line of text.split('\n').slice(2)) {
      const m = /^\s*([^:]+):\s*(.*)$/.exec(line);
      if (!m) continue;
      const f = m[2]!.trim().split(/\s+/).map(Number);
      out.set(m[1]!, { rxBytes: f[0]!, rxPackets: f[1]!, txBytes: f[8]!, txPackets: f[9]! });
    }
    return out;
  }

  async iperf(
    target: string,
    extra: string[],
  ): Promise<{ bps: number; retransmits: number; bytes: number; seconds: number }> {
    const text = await this.run(
      'c',
      'iperf3',
      [
        '-c',
        target,
        '-p',
        '5201',
        '-t',
        String(this.o.seconds),
        '-J',
        '--connect-timeout',
        '3000',
        ...extra,
      ],
      (this.o.seconds + 15) * 1000,
    );
    const j = JSON.parse(text) as {
      error?: string;
      end?: {
        sum_received?: { bits_per_second: number; bytes: number; seconds: number };
        sum_sent?: { retransmits?: number };
      };
    };
    if (j.error || !j.end?.sum_received) throw new Error(`iperf3: ${j.error ?? 'no result'}`);
    return {
      bps: j.end.sum_received.bits_per_second,
      bytes: j.end.sum_received.bytes,
      seconds: j.end.sum_received.seconds,
      retransmits: j.end.sum_sent?.retransmits ?? 0,
    };
  }

  async wrk(url: string, threads: number, conns: number, seconds: number): Promise<HttpRun> {
    const text = await this.run(
      'c',
      'wrk',
      [
        `-t${threads}`,
        `-c${conns}`,
        `-d${seconds}s`,
        '--timeout',
        '2s',
        '--latency',
        '-H',
        'Connection: close',
        url,
      ],
      (seconds + 15) * 1000,
    );
    const requests = /(\d+) requests in ([\d.]+)(m?s)/.exec(text);
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
    const p = (q: string): number => {
      const m = new RegExp(`^\\s+${q}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(text);
      if (!m) return NaN;
      const v = Number(m[1]);
      return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
    };
    const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
    const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
    if (!requests || !rps) throw new Error(`wrk: unexpected output: ${text.slice(0, 300)}`);
    const errors =
      (errs ? Number(errs[1]) + Number(errs[2]) + Number(errs[3]) + Number(errs[4]) : 0) +
      (non2xx ? Number(non2xx[1]) : 0);
    return {
      connections: Number(requests[1]),
      connectionsPerSecond: Number(rps[1]),
      p50Ms: p('50'),
      p99Ms: p('99'),
      errors,
    };
  }
}

// ------------------------------------------------------------------ CPU accounting

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface CpuSample {
  busy: number;
  softirq: number;
}
function procStat(): CpuSample {
  const f = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]!
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
  const [user, nice, system, , , irq, softirq] = f as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return { busy: (user + nice + system + irq + softirq) / CLK_TCK, softirq: softirq / CLK_TCK };
}
/**
 * CPU seconds used so far by every process outside the bench's namespaces
 * (other work on a shared machine), so that noisy runs can be told apart.
 */
function foreignCpu(b: Bench): number {
  const ours = new Set<number>([process.pid]);
  for (const h of ['c', 'lb', 'rs']) {
    try {
      const text = execFileSync('ip', ['netns', 'pids', b.lab.ns(h)], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      for (const p of text.split(/\s+/).filter(Boolean)) ours.add(Number(p));
    } catch {
      // namespace gone
    }
  }
  // fullnat's TUN under threaded NAPI: napi/fnb0-N do what its write(2) calls did before.
  for (const pid of napiThreads(TUN)) ours.add(pid);
  let sum = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || ours.has(Number(d))) continue;
    sum += processCpu(Number(d));
  }
  return sum;
}

/** The LB's CPU seconds: its process and, for fullnat, its TUN's NAPI threads. */
function lbCpu(pid: number | undefined): number {
  let sum = processCpu(pid);
  for (const t of napiThreads(TUN)) sum += processCpu(t);
  return sum;
}

function processCpu(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // fields after the command: state(3) … utime(14) stime(15) → indexes 11 and 12 here
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

// ------------------------------------------------------------------ variants

interface Lb {
  target: string;
  httpUrl: string;
  pid?: number;
  stop: () => Promise<void>;
}

async function startVariant(b: Bench, v: Variant): Promise<Lb> {
  const { lab, dir } = b;
  switch (v) {
    case 'direct':
      return { target: RS, httpUrl: `http://${RS}:80/`, stop: async () => {} };
    case 'kernel': {
      const conf = join(dir, 'nft.conf');
      writeFileSync(
        conf,
        template('nft.conf', { VIP, RS, LIP_FIRST: LIPS.kernel[0]!, LIP_LAST: LIPS.kernel[3]! }),
      );
      lab.exec('lb', 'nft', ['-f', conf]);
      return {
        target: VIP,
        httpUrl: `http://${VIP}:80/`,
        stop: async () => {
          lab.exec('lb', 'nft', ['delete', 'table', 'ip', 'fnbench']);
        },
      };
    }
    case 'haproxy': {
      lab.ip('lb', 'addr', 'add', `${VIP}/32`, 'dev', 'lo');
      lab.ip('lb', 'addr', 'add', `${LIPS.haproxy[0]}/32`, 'dev', 'lo');
      const conf = join(dir, 'haproxy.cfg');
      writeFileSync(conf, template('haproxy.cfg', { VIP, RS, LIP: LIPS.haproxy[0]! }));
      const child = lab.spawn('lb', 'haproxy', ['-db', '-f', conf]);
      let log = '';
      child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
      await b.waitListening('lb', 80, () => `haproxy (${log.slice(-500)})`);
      await b.waitListening('lb', 5201, 'haproxy');
      return {
        target: VIP,
        httpUrl: `http://${VIP}:80/`,
        pid: child.pid,
        stop: async () => {
          await stopChild(child);
          lab.ip('lb', 'addr', 'del', `${VIP}/32`, 'dev', 'lo');
          lab.ip('lb', 'addr', 'del', `${LIPS.haproxy[0]}/32`, 'dev', 'lo');
        },
      };
    }
    case 'fullnat': {
      const conf = join(dir, 'fullnat.conf');
      const last = LIPS.fullnat[3]!.split('.')[3];
      writeFileSync(
        conf,
        template('fullnat.conf', { VIP, RS, DIR: dir, LIP_RANGE: `${LIPS.fullnat[0]}-${last}` }),
      );
      // Node 20 refuses --cpu-prof in NODE_OPTIONS: it goes on the command line.
      const prof = b.o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${b.o.cpuProfDir}`] : [];
      const child = lab.spawn('lb', process.execPath, [
        ...prof,
        cli,
        'run',
        '-f',
        conf,
        '--no-health-checks',
      ]);
      let log = '';
      child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
      child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
      const sock = join(dir, 'fullnat.sock');
      for (let i = 0; ; i++) {
        if (child.exitCode !== null) throw new Error(`fullnat run exited: ${log.slice(-1000)}`);
        if (existsSync(sock) && lab.ip('lb', 'route').includes(VIP)) break;
        if (i > 150) throw new Error(`fullnat run did not come up in 15 s: ${log.slice(-1000)}`);
        await sleep(100);
      }
      return {
        target: VIP,
        httpUrl: `http://${VIP}:80/`,
        pid: child.pid,
        stop: async () => {
          await stopChild(child);
        },
      };
    }
  }
}

function stopChild(c: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    const t = setTimeout(() => {
      c.kill('SIGKILL');
      resolve();
    }, 10_000);
    c.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    c.kill('SIGTERM');
  });
}

async function measure(b: Bench, v: Variant): Promise<VariantResult> {
  const r: VariantResult = {
    variant: v,
    throughput: null,
    download: null,
    smallPackets: null,
    http: null,
    moderate: null,
    cpu: null,
    backgroundCpus: { throughput: null, http: null },
    notes: [],
  };
  let lb: Lb;
  try {
    lb = await startVariant(b, v);
  } catch (e) {
    r.notes.push(`could not start: ${(e as Error).message.split('\n')[0]}`);
    b.o.log(`  ${v} could not start: ${(e as Error).message}`);
    return r;
  }
  const attempt = async <T>(what: string, fn: () => Promise<T>): Promise<T | null> => {
    try {
      return await fn();
    } catch (e) {
      r.notes.push(`${what}: ${(e as Error).message.split('\n')[0]}`);
      b.o.log(`  ${v} ${what} failed: ${(e as Error).message.split('\n')[0]}`);
      return null;
    }
  };
  try {
    // Warm-up: a connection through the LB path (ARP, routes, first-packet work).
    await attempt('warm-up', () =>
      b.run('c', 'curl', ['-s', '-m', '3', '-o', '/dev/null', lb.httpUrl], 5000),
    );
    if (b.closed) return r;

    const f0 = foreignCpu(b);
    const w0 = Date.now();
    r.throughput = await attempt('throughput', async () => {
      const t = await b.iperf(lb.target, []);
      return { bitsPerSecond: t.bps, retransmits: t.retransmits };
    });
    r.backgroundCpus.throughput = (foreignCpu(b) - f0) / ((Date.now() - w0) / 1000);
    b.o.log(`  ${v} throughput: ${fmtGbps(r.throughput?.bitsPerSecond)}`);
    if (b.closed) return r;

    r.download = await attempt('download', async () => {
      const t = await b.iperf(lb.target, ['-R']);
      return { bitsPerSecond: t.bps, retransmits: t.retransmits };
    });
    b.o.log(`  ${v} download (-R): ${fmtGbps(r.download?.bitsPerSecond)}`);
    if (b.closed) return r;

    b.setOffloads(true);
    try {
      r.smallPackets = await attempt('small packets', async () => {
        const before = b.devCounters('lb');
        const t0 = Date.now();
        const t = await b.iperf(lb.target, ['-M', '88']);
        const secs = (Date.now() - t0) / 1000;
        const after = b.devCounters('lb');
        const rx = after.get('eth0')!.rxPackets - before.get('eth0')!.rxPackets;
        // iperf3's own interval excludes connection setup; the counters span the whole call.
        const pps = rx / Math.max(secs, t.seconds);
        const payload = t.bytes / rx;
        const out: SmallPackets = {
          packetsPerSecond: pps,
          payloadBytesPerPacket: payload,
          bitsPerSecond: t.bps,
        };
        const tb = before.get(TUN);
        const ta = after.get(TUN);
        if (tb && ta) {
          // The TUN as the kernel sees it: tx = packets handed to fullnat, rx = packets it wrote back.
          out.tunRxPerSecond = (ta.txPackets - tb.txPackets) / secs;
          out.tunTxPerSecond = (ta.rxPackets - tb.rxPackets) / secs;
        }
        return out;
      });
    } finally {
      b.setOffloads(false);
    }
    b.o.log(
      `  ${v} small packets: ${fmtKpps(r.smallPackets?.packetsPerSecond)} (${r.smallPackets?.payloadBytesPerPacket.toFixed(0) ?? '?'} B payload)`,
    );
    if (b.closed) return r;

    const f1 = foreignCpu(b);
    const w1 = Date.now();
    const cpu0 = procStat();
    const p0 = lbCpu(lb.pid);
    r.http = await attempt('http', () => b.wrk(lb.httpUrl, 2, 32, b.o.seconds));
    const cpu1 = procStat();
    const p1 = lbCpu(lb.pid);
    const foreignHttp = foreignCpu(b) - f1;
    r.backgroundCpus.http = foreignHttp / ((Date.now() - w1) / 1000);
    if (r.http && r.http.connections > 0) {
      const n = r.http.connections;
      const processUs = ((p1 - p0) / n) * 1e6;
      const softirqUs = ((cpu1.softirq - cpu0.softirq) / n) * 1e6;
      r.cpu = {
        processUs,
        softirqUs,
        lbUs: processUs + softirqUs,
        // Less what processes outside the bench used meanwhile (a shared machine).
        machineUs: ((cpu1.busy - cpu0.busy - foreignHttp) / n) * 1e6,
      };
    }
    b.o.log(
      `  ${v} http: ${r.http?.connectionsPerSecond.toFixed(0) ?? '-'} conn/s, p50 ${r.http?.p50Ms ?? '-'} ms, p99 ${r.http?.p99Ms ?? '-'} ms, errors ${r.http?.errors ?? '-'}`,
    );
    if (b.closed) return r;

    // Moderate load: 4 connections in flight, one at a time each (wrk -t1 -c4).
    r.moderate = await attempt('http (moderate)', () =>
      b.wrk(lb.httpUrl, 1, 4, Math.min(3, b.o.seconds)),
    );
    b.o.log(
      `  ${v} http moderate: ${r.moderate?.connectionsPerSecond.toFixed(0) ?? '-'} conn/s, p50 ${r.moderate?.p50Ms ?? '-'} ms, p99 ${r.moderate?.p99Ms ?? '-'} ms`,
    );
  } finally {
    await lb.stop();
  }
  return r;
}

// ------------------------------------------------------------------ profile summary

interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }[];
  samples: number[];
  timeDeltas: number[];
}

export function summariseProfile(file: string, top = 15): NonNullable<NetBenchResult['profile']> {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  const files = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]!);
    const dt = Math.max(0, p.timeDeltas[i] ?? 0) / 1000; // µs → ms
    if (!n) continue;
    total += dt;
    const url = n.callFrame.url.replace(/^file:\/\//, '').replace(`${repo}/`, '');
    const fn = n.callFrame.functionName || '(anonymous)';
    const key = `${fn}\u0000${url ? `${url}:${n.callFrame.lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    const f = url || fn;
    files.set(f, (files.get(f) ?? 0) + dt);
  }
  const entries = (m: Map<string, number>, split: boolean): ProfileEntry[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, ms]) => {
        const [fn, loc] = split ? k.split('\u0000') : [k, ''];
        return {
          selfPercent: total ? (100 * ms) / total : 0,
          selfMs: ms,
          function: fn!,
          location: loc ?? '',
        };
      });
  return {
    file,
    samples: p.samples.length,
    top: entries(self, true),
    byFile: entries(files, false),
  };
}

// ------------------------------------------------------------------ the suite

const ratio = (a: number | null | undefined, k: number | null | undefined): number | null =>
  a == null || k == null || !Number.isFinite(a) || !Number.isFinite(k) || k === 0 ? null : a / k;

function metrics(v: VariantResult): Record<string, number | null> {
  return {
    throughputGbps: v.throughput ? v.throughput.bitsPerSecond / 1e9 : null,
    downloadGbps: v.download ? v.download.bitsPerSecond / 1e9 : null,
    smallKpps: v.smallPackets ? v.smallPackets.packetsPerSecond / 1e3 : null,
    connsPerSecond: v.http?.connectionsPerSecond ?? null,
    p50Ms: v.http?.p50Ms ?? null,
    p99Ms: v.http?.p99Ms ?? null,
    moderateP50Ms: v.moderate?.p50Ms ?? null,
    moderateP99Ms: v.moderate?.p99Ms ?? null,
    lbCpuUsPerConn: v.cpu?.lbUs ?? null,
    machineCpuUsPerConn: v.cpu?.machineUs ?? null,
  };
}

export async function runNetBench(o: NetOptions): Promise<NetBenchResult> {
  const started = Date.now();
  const b = new Bench(o);
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupted = true;
    o.log(`net: ${sig}, tearing down the namespaces`);
    void b.destroy().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const results: VariantResult[] = [];
  let offloads: string;
  try {
    b.build();
    offloads = b.offloadSummary();
    await b.startServers();
    for (const [i, v] of o.variants.entries()) {
      if (b.closed) break;
      if (i > 0) b.buildLb();
      o.log(`net: ${v}`);
      results.push(await measure(b, v));
    }
  } finally {
    await b.destroy();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  // Interrupted: the signal handler exits once the teardown is done; print nothing partial.
  if (interrupted) await new Promise<never>(() => {});
  const kernel = results.find((r) => r.variant === 'kernel');
  const km = kernel ? metrics(kernel) : {};
  const ratios: NetBenchResult['ratios'] = {};
  for (const r of results) {
    const m = metrics(r);
    ratios[r.variant] = Object.fromEntries(Object.entries(m).map(([k, x]) => [k, ratio(x, km[k])]));
  }
  const f = results.find((r) => r.variant === 'fullnat');
  const h = results.find((r) => r.variant === 'haproxy');
  const fr = ratios.fullnat ?? {};
  const targets: NetBenchResult['targets'] = {};
  if (f) {
    const t = (
      value: number | null,
      target: string,
      ok: (x: number) => boolean,
    ): {
      value: number | null;
      target: string;
      met: boolean | null;
    } => ({ value, target, met: value == null ? null : ok(value) });
    targets.throughput = t(fr.throughputGbps ?? null, '≥ 0.8× kernel', (x) => x >= 0.8);
    targets.smallPackets = t(fr.smallKpps ?? null, '≥ 0.5× kernel', (x) => x >= 0.5);
    targets.connsVsKernel = t(fr.connsPerSecond ?? null, '≥ 0.5× kernel', (x) => x >= 0.5);
    targets.connsVsHaproxy = t(
      ratio(f.http?.connectionsPerSecond, h?.http?.connectionsPerSecond),
      '≥ 1× haproxy',
      (x) => x >= 1,
    );
    targets.p99Moderate = t(fr.moderateP99Ms ?? null, '≤ 2× kernel', (x) => x <= 2);
  }
  let profile: NetBenchResult['profile'];
  if (o.cpuProfDir && existsSync(o.cpuProfDir)) {
    const files = readdirSync(o.cpuProfDir)
      .filter((x) => x.endsWith('.cpuprofile'))
      .map((x) => join(o.cpuProfDir!, x));
    // The LB is the largest profile in the directory (ctl calls are not profiled).
    files.sort((a, z) => readFileSync(z).length - readFileSync(a).length);
    if (files[0]) profile = summariseProfile(files[0]);
  }
  return {
    seconds: o.seconds,
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    cpus: Number(execFileSync('nproc', { encoding: 'utf8' }).trim()),
    offloads,
    variants: results,
    ratios,
    targets,
    ...(profile ? { profile } : {}),
    runSeconds: (Date.now() - started) / 1000,
  };
}

// ------------------------------------------------------------------ report

function fmtGbps(bps: number | undefined): string {
  return bps === undefined ? '-' : `${(bps / 1e9).toFixed(2)} Gbit/s`;
}
function fmtKpps(pps: number | undefined): string {
  return pps === undefined ? '-' : `${(pps / 1e3).toFixed(0)} kpps`;
}
const num = (x: number | null | undefined, digits: number): string =>
  x == null || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits);
const withRatio = (
  x: number | null | undefined,
  r: number | null | undefined,
  digits: number,
): string => (x == null || !Number.isFinite(x) ? 'n/a' : `${x.toFixed(digits)} (${num(r, 2)}×)`);

/** Markdown: one row per variant, every figure with its ratio to `kernel`. */
export function formatNetTable(r: NetBenchResult): string {
  const lines = [
    '| variant | upload Gbit/s | download Gbit/s (-R) | small-pkt kpps (MSS 88) | new conn/s (wrk -c32) | p50 / p99 ms (-c32) | p50 / p99 ms (-c4, moderate) | LB CPU µs/conn | machine CPU µs/conn |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const v of r.variants) {
    const m = metrics(v);
    const q = r.ratios[v.variant] ?? {};
    lines.push(
      `| ${v.variant} | ${withRatio(m.throughputGbps, q.throughputGbps, 2)} | ${withRatio(m.downloadGbps, q.downloadGbps, 2)} | ${withRatio(m.smallKpps, q.smallKpps, 0)} | ${withRatio(m.connsPerSecond, q.connsPerSecond, 0)} | ${num(m.p50Ms, 2)} / ${withRatio(m.p99Ms, q.p99Ms, 2)} | ${num(m.moderateP50Ms, 2)} / ${withRatio(m.moderateP99Ms, q.moderateP99Ms, 2)} | ${withRatio(m.lbCpuUsPerConn, q.lbCpuUsPerConn, 1)} | ${withRatio(m.machineCpuUsPerConn, q.machineCpuUsPerConn, 1)} |`,
    );
  }
  lines.push('', '(ratio to `kernel` in parentheses)');
  const errs = r.variants.filter((v) => (v.http?.errors ?? 0) + (v.moderate?.errors ?? 0) > 0);
  for (const v of errs) {
    lines.push(
      `- ${v.variant}: wrk errors ${v.http?.errors ?? 0} (-c32), ${v.moderate?.errors ?? 0} (-c4)`,
    );
  }
  lines.push(
    `- background load (other processes on the machine, in CPUs) during throughput / HTTP: ${r.variants
      .map(
        (v) =>
          `${v.variant} ${num(v.backgroundCpus.throughput, 2)} / ${num(v.backgroundCpus.http, 2)}`,
      )
      .join(', ')}`,
  );
  for (const v of r.variants) {
    if (v.throughput?.retransmits || v.download?.retransmits) {
      lines.push(
        `- ${v.variant}: iperf3 retransmits ${v.throughput?.retransmits ?? '-'} (upload), ${v.download?.retransmits ?? '-'} (download)`,
      );
    }
    for (const n of v.notes) lines.push(`- ${v.variant}: ${n}`);
    if (v.smallPackets?.tunRxPerSecond !== undefined) {
      lines.push(
        `- ${v.variant}: TUN during the small-packet run: ${num(v.smallPackets.tunRxPerSecond / 1e3, 0)} kpps read by the LB, ${num((v.smallPackets.tunTxPerSecond ?? 0) / 1e3, 0)} kpps written back; ${num(v.smallPackets.payloadBytesPerPacket, 0)} B payload/segment`,
      );
    }
  }
  if (Object.keys(r.targets).length > 0) {
    lines.push('', '| target (fullnat) | value | met |', '|---|---|---|');
    for (const [k, t] of Object.entries(r.targets)) {
      lines.push(
        `| ${k} ${t.target} | ${num(t.value, 2)}× | ${t.met == null ? 'n/a' : t.met ? 'yes' : 'no'} |`,
      );
    }
  }
  if (r.profile) {
    lines.push(
      '',
      `CPU profile of the fullnat LB (${r.profile.samples} samples, ${r.profile.file}):`,
      '',
    );
    lines.push('| self % | function | location |', '|---|---|---|');
    for (const e of r.profile.top)
      lines.push(`| ${e.selfPercent.toFixed(1)} | ${e.function} | ${e.location} |`);
    lines.push('', '| self % | file |', '|---|---|');
    for (const e of r.profile.byFile) lines.push(`| ${e.selfPercent.toFixed(1)} | ${e.function} |`);
  }
  lines.push(
    '',
    `Linux ${r.kernel}, ${r.cpus} CPUs shared by client, LB and RS; ${r.seconds} s per run; bench ran ${r.runSeconds.toFixed(0)} s.`,
  );
  return lines.join('\n');
}
