/**
 * Network benchmark on real kernels: fullnat next to the kernel and HAProxy.
 *
 *   client 10.88.1.2 ── eth0 10.88.1.1 [LB] eth1 10.88.2.1 ── RS 10.88.2.2
 *   VIP 10.88.0.100 (:5201 and :5202 iperf3, :5203 iperf3 over UDP, :80 HTTP); LIPs per variant and
 *   round (net-stats.ts lipsFor): 10.88.3.x kernel, 10.88.5.x haproxy,
 *   10.88.4.x fullnat
 *
 * One topology, four variants in the LB namespace, measured in interleaved
 * rounds (direct kernel haproxy fullnat, direct kernel haproxy fullnat, …),
 * each in a fresh LB namespace:
 *   direct   client → RS address, routed by the LB (no NAT): the topology's own limit
 *   kernel   nftables DNAT + SNAT to the LIPs (full NAT by the kernel, no TOA)
 *   haproxy  HAProxy TCP mode (send-proxy-v2 to nginx for HTTP; none for iperf3)
 *   fullnat  `fullnat run` at its defaults (health checks, metrics), toa_policy fullnat
 * and six measurements each (throughput both ways, small-packet rate counted
 * at the RS, new connections per second with short HTTP requests, latency at
 * moderate load, a mixed phase with all three kinds of traffic at once, and
 * small UDP datagrams counted at the RS, haproxy excepted: it balances no
 * UDP), plus CPU per connection. Each figure is reported as the median of the
 * rounds with its range. Everything stays inside the namespaces, which are
 * deleted at the end, on failure and on Ctrl-C.
 */
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetnsLab, netnsAvailable } from '../src/lab/netns.js';
import { napiThreads, tunAvailable } from '../src/io/tun.js';
import {
  cpuGrowth,
  formatSpread,
  lipsFor,
  MAX_ROUNDS,
  napiDuring,
  parseNapiSwitches,
  ratioOf,
  spread,
  timeWaitToward,
  type NapiPhase,
  type Spread,
} from './net-stats.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root, from bench/ (ts) or dist/bench/ (js). */
const repo = existsSync(join(here, '..', 'package.json'))
  ? join(here, '..')
  : join(here, '..', '..');
const fixtures = join(repo, 'bench', 'fixtures');
const cli = join(repo, 'bin', 'fullnat.js');

const VIP = '10.88.0.100';
const RS = '10.88.2.2';
const CLIENT = '10.88.1.2';
/** iperf3 servers on the RS: one for the single-flow runs, one for the small-packet flow (the mixed phase runs both at once). */
const BULK_PORT = 5201;
const SMALL_PORT = 5202;
/** iperf3's UDP test: its TCP control connection and its datagrams on one port. */
const UDP_PORT = 5203;
/**
 * UDP payload of the small-datagram phase: 18 bytes make a 46-byte IP
 * packet, Ethernet's minimum frame (64 bytes with its header and FCS), as
 * the TCP small-packet run uses the smallest MSS Linux allows (88).
 */
export const UDP_PAYLOAD = 18;
/** fullnat's LIP subnet (every round's LIPs are in it): the LBs the RS's UOA receiver trusts. */
const FULLNAT_LIP_NET = '10.88.4.0/24';
/** fullnat's Prometheus endpoint, inside the LB namespace. */
const METRICS_URL = 'http://127.0.0.1:9400/metrics';
const TUN = 'fnb0';
const PREFIX = 'fnbench';

export const VARIANTS = ['direct', 'kernel', 'haproxy', 'fullnat'] as const;
export type Variant = (typeof VARIANTS)[number];
export { MAX_ROUNDS };

export interface NetOptions {
  /** Seconds per throughput / small-packet / wrk / mixed run. */
  seconds: number;
  /** Interleaved rounds over all variants. */
  rounds: number;
  variants: Variant[];
  /** Write a V8 CPU profile of the fullnat LB here and summarise it. */
  cpuProfDir?: string;
  /** fullnat's `napi_thread` when not its default (auto): to compare the modes on one machine. */
  napiThread?: 'auto' | 'on' | 'off';
  log: (line: string) => void;
}

export interface Throughput {
  bitsPerSecond: number;
  retransmits: number;
}
export interface SmallPackets {
  /** Packets/s the RS received (its NIC, /proc/net/dev in its namespace) during the run: what was delivered. */
  packetsPerSecond: number;
  /** Packets/s the LB received from the client (its client-side NIC) during the run. */
  lbIngressPacketsPerSecond: number;
  /** iperf3 goodput over the RS's received packets: payload per delivered packet. */
  payloadBytesPerPacket: number;
  /** iperf3 goodput over the LB's received packets: payload per segment the client sent. */
  payloadBytesPerSegment: number;
  bitsPerSecond: number;
  /** For fullnat: packets the process read from / wrote to its TUN per second. */
  tunRxPerSecond?: number;
  tunTxPerSecond?: number;
}
export interface UdpSmall {
  /** Datagrams/s the RS received (its NIC, in its namespace) during the run: what was delivered. */
  packetsPerSecond: number;
  /** Datagrams/s the LB received from the client (its client-side NIC). */
  lbIngressPacketsPerSecond: number;
  /** Datagrams/s iperf3 sent. */
  sentPerSecond: number;
  /** iperf3's own loss: datagrams sent that its server did not receive, % of those sent. */
  lostPercent: number;
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
export interface MixedRun {
  /** The bulk flow (iperf3 -R, RS → client, one flow, GSO as the RS's NIC comes). */
  bulk: Throughput | null;
  /** The small-segment flow (iperf3 -M 88, client → RS, the client's TSO/GSO off). */
  small: {
    bitsPerSecond: number;
    /** Goodput ÷ the payload per segment this variant's small-packet run measured: segments delivered per second. */
    segmentsPerSecond: number | null;
  } | null;
  /** New connections meanwhile (wrk -t1 -c16, Connection: close). */
  http: HttpRun | null;
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
export const PHASES = ['upload', 'download', 'small', 'http', 'moderate', 'mixed', 'udp'] as const;
export type Phase = (typeof PHASES)[number];

/** One variant in one round. */
export interface VariantResult {
  variant: Variant;
  /** 0-based. */
  round: number;
  /** The LB's source addresses toward the RS in this round (the client's for direct). */
  sources: string[];
  /** Sockets the RS still held in TIME_WAIT toward those addresses before the round began: 0 when no tuple can be reused. */
  rsTimeWaitBefore: number | null;
  /**
   * The same, toward this variant's addresses of the round before (null in
   * the first round): what a round reusing its LIPs would have run into.
   */
  rsTimeWaitPreviousRound: number | null;
  /** client → RS (upload; iperf3 default direction). */
  throughput: Throughput | null;
  /** RS → client (download; iperf3 -R). */
  download: Throughput | null;
  smallPackets: SmallPackets | null;
  http: HttpRun | null;
  moderate: HttpRun | null;
  mixed: MixedRun | null;
  /** Small UDP datagrams client → RS (iperf3 -u); null for haproxy, which balances no UDP. */
  udp: UdpSmall | null;
  cpu: CpuPerConnection | null;
  /** CPUs' worth of other processes (outside the bench) busy during the throughput, HTTP, mixed and UDP runs. */
  backgroundCpus: {
    throughput: number | null;
    http: number | null;
    mixed: number | null;
    udp: number | null;
  };
  /** fullnat: where its NAPI work ran during each phase (its log and sysfs; whatever napi_thread the run used). */
  napi?: Partial<Record<Phase, NapiPhase>>;
  /** fullnat: health-check failures and DOWN transitions its log recorded; whether /metrics answered. */
  health?: { failures: number; down: number };
  metricsAnswered?: boolean;
  /** haproxy: threads the process ran (nbthread left to its default). */
  haproxyThreads?: number;
  notes: string[];
}
export interface ProfileEntry {
  selfPercent: number;
  selfMs: number;
  function: string;
  location: string;
}
/** A variant's figures over the rounds. */
export interface VariantSummary {
  variant: Variant;
  figures: Record<MetricKey, Spread | null>;
  /** fullnat: per phase, in how many rounds the NAPI thread was on at some point, and the median share of the phase it was on. */
  napi?: Partial<Record<Phase, { roundsOn: number; rounds: number; onShare: Spread | null }>>;
}
export interface NetBenchResult {
  seconds: number;
  rounds: number;
  kernel: string;
  cpus: number;
  offloads: string;
  /** What differs from each product's defaults, in words (printed with the table). */
  setup: string[];
  /** fullnat's napi_thread in this run (auto unless --napi-thread said otherwise). */
  napiThread: 'auto' | 'on' | 'off';
  /** Medians and ranges per variant. */
  variants: VariantSummary[];
  /** Median ÷ kernel's median, per figure. */
  ratios: Record<string, Record<string, number | null>>;
  targets: Record<string, { value: number | null; target: string; met: boolean | null }>;
  /** Every variant in every round, in the order run. */
  runs: VariantResult[];
  profile?: { file: string; samples: number; top: ProfileEntry[]; byFile: ProfileEntry[] };
  runSeconds: number;
}

/** The bench's setup as printed with its results: what each LB runs with. */
export const SETUP = [
  'fullnat: `fullnat run` at its defaults (timeouts, max_connections, port range, offloads, napi_thread auto), health checks on (TCP_CHECK every 6 s on each RS), metrics on (127.0.0.1:9400 in the LB namespace); nothing turned off',
  'haproxy: 2.6, TCP mode, threads left to the default (one per CPU), option splice-auto, maxconn 5000',
  'kernel: nftables DNAT + SNAT; direct: routed, no NAT',
  'small-packet run: TSO/GSO/GRO off on every veth and GRO off on fullnat’s TUN; mixed phase: only the client’s TSO/GSO off (its 88-byte segments leave it as such), everything else as it comes',
  `UDP run: iperf3 -u -l ${UDP_PAYLOAD} -b 0 (${UDP_PAYLOAD + 28}-byte IP packets, as fast as the client sends), offloads as in the small-packet run; fullnat’s UDP service at the defaults (uoa_mode opp, uoa_max_trail 3), the RS running the UOA receiver’s tc part on its NIC for that run (\`fullnat rs attach\`; iperf3 is not in its cgroup: it needs no client address); haproxy balances no UDP`,
];
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

/** Where cgroup v2 is mounted, if it is. */
function cgroup2Mount(): string | undefined {
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n');
  return mounts.map((l) => l.split(' ')).find((f) => f[2] === 'cgroup2')?.[1];
}

/**
 * Why the RS cannot run fullnat's UOA receiver here (its UDP run then gives
 * no figure, said in the table), or '' when it can.
 */
export function udpReceiverUnavailable(): string {
  if (!cgroup2Mount()) return 'no cgroup v2 mount for the UOA receiver';
  if (!existsSync(join(repo, 'build', 'bpf', 'toa.bpf.o'))) {
    return 'the UOA receiver is not built (node scripts/build-bpf.js)';
  }
  const missing = ['bpftool', 'tc', 'nsenter'].filter((t) => !which(t));
  return missing.length > 0 ? `the UOA receiver needs ${missing.join(', ')}` : '';
}

function which(cmd: string): boolean {
  for (const d of (process.env.PATH ?? '/usr/bin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    if (existsSync(join(d, cmd))) return true;
  }
  return false;
}

// ------------------------------------------------------------------ helpers

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function template(name: string, vars: Record<string, string>): string {
  let text = readFileSync(join(fixtures, name), 'utf8');
  for (const [k, v] of Object.entries(vars)) text = text.split(`@${k}@`).join(v);
  return text;
}

export class Bench {
  readonly lab = new NetnsLab(PREFIX);
  readonly dir = mkdtempSync(join(tmpdir(), 'fullnat-netbench-'));
  private readonly running = new Set<ChildProcess>();
  private offloadState = new Map<string, string[]>();
  /** The RS's UOA receiver: its cgroup (left empty: iperf3 needs no client address) and its pins. */
  private readonly receiver = {
    cgroup: join(cgroup2Mount() ?? '/nonexistent', `fullnat-${PREFIX}`),
    pinDir: `/sys/fs/bpf/${PREFIX}`,
  };
  private receiverLoaded = false;
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
    if (this.receiverLoaded) this.unloadReceiver();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private rs(args: string[], inRsNamespace: boolean): void {
    const rs = [cli, 'rs', ...args, '--cgroup', this.receiver.cgroup];
    rs.push('--pin-dir', this.receiver.pinDir);
    // nsenter, not `ip netns exec`: that would hide /sys/fs/bpf, where the programs are pinned.
    if (inRsNamespace) {
      execFileSync('nsenter', [`--net=/run/netns/${this.lab.ns('rs')}`, process.execPath, ...rs], {
        stdio: 'pipe',
        timeout: 30_000,
      });
    } else execFileSync(process.execPath, rs, { stdio: 'pipe', timeout: 30_000 });
  }

  /**
   * fullnat's UOA receiver on the RS's NIC (tc ingress in its namespace):
   * it takes the opp shim off the first datagrams of a flow, which the RS's
   * kernel would otherwise drop as protocol 248.
   */
  attachReceiver(): void {
    this.receiverLoaded = true;
    this.rs(['attach', '--trust', FULLNAT_LIP_NET, '--dev', 'eth0'], true);
  }

  /** The receiver's tc program off the RS's NIC again (its cgroup part stays until the end). */
  detachReceiverFromNic(): void {
    try {
      this.rs(['detach', '--dev', 'eth0'], true);
    } catch {
      // the RS's NIC goes with the next LB namespace anyway
    }
  }

  private unloadReceiver(): void {
    try {
      this.rs(['detach', '--dev', 'none'], false);
    } catch {
      // not attached
    }
    rmSync(this.receiver.pinDir, { recursive: true, force: true });
    try {
      rmdirSync(this.receiver.cgroup);
    } catch {
      // gone, or never made
    }
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

  /**
   * The client's TSO/GSO off (off=true) or back as they came: in the mixed
   * phase its 88-byte segments must leave it as such, while the RS still
   * sends the bulk flow as GSO super-packets.
   */
  setClientSegmentation(off: boolean): void {
    const saved = this.offloadState.get('c/eth0')!;
    const args = off
      ? ['tso', 'off', 'gso', 'off']
      : saved.filter((_, i, a) => ['tso', 'gso'].includes(a[i - (i % 2)]!));
    try {
      this.lab.exec('c', 'ethtool', ['-K', 'eth0', ...args]);
    } catch {
      // a feature the driver fixes; the others are set
    }
  }

  /** Sockets the RS holds in TIME_WAIT toward any of `peers`. */
  rsTimeWait(peers: string[]): number | null {
    try {
      // Filtered by ss itself: after a short-connection run the full list runs to many megabytes.
      const filter = peers.map((p) => `dst ${p}`).join(' or ');
      // Tens of thousands of lines toward last round's LIPs: more than exec's 1 MiB default.
      const text = execFileSync(
        'ip',
        ['netns', 'exec', this.lab.ns('rs'), 'ss', '-Htan', 'state', 'time-wait', `( ${filter} )`],
        { encoding: 'utf8', timeout: 30_000, maxBuffer: 256 * 1024 * 1024 },
      );
      return timeWaitToward(text, peers);
    } catch {
      return null;
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
    for (const port of [BULK_PORT, SMALL_PORT, UDP_PORT])
      this.lab.spawn('rs', 'iperf3', ['-s', '-p', String(port)]);
    await this.waitListening('rs', 80, 'nginx');
    await this.waitListening('rs', 8081, 'nginx (proxy_protocol)');
    await this.waitListening('rs', BULK_PORT, 'iperf3 -s');
    await this.waitListening('rs', SMALL_PORT, 'iperf3 -s (small-packet flow)');
    await this.waitListening('rs', UDP_PORT, 'iperf3 -s (UDP)');
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
    port = BULK_PORT,
  ): Promise<{ bps: number; retransmits: number; bytes: number; seconds: number }> {
    const text = await this.run(
      'c',
      'iperf3',
      [
        '-c',
        target,
        '-p',
        String(port),
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

  /** iperf3's UDP test, small datagrams as fast as the client sends: what it sent and lost. */
  async iperfUdp(
    target: string,
  ): Promise<{ sent: number; lost: number; lostPercent: number; seconds: number }> {
    const text = await this.run(
      'c',
      'iperf3',
      [
        '-c',
        target,
        '-p',
        String(UDP_PORT),
        '-u',
        '-l',
        String(UDP_PAYLOAD),
        '-b',
        '0',
        '-t',
        String(this.o.seconds),
        '-J',
        '--connect-timeout',
        '3000',
      ],
      (this.o.seconds + 15) * 1000,
    );
    const j = JSON.parse(text) as {
      error?: string;
      end?: {
        sum_sent?: { packets: number; seconds: number };
        sum_received?: { lost_packets: number; lost_percent: number };
      };
    };
    if (j.error || !j.end?.sum_sent || !j.end.sum_received) {
      throw new Error(`iperf3 -u: ${j.error ?? 'no result'}`);
    }
    return {
      sent: j.end.sum_sent.packets,
      lost: j.end.sum_received.lost_packets,
      lostPercent: j.end.sum_received.lost_percent,
      seconds: j.end.sum_sent.seconds,
    };
  }

  /** `extra`: more wrk arguments (the sync benchmark's pacing script). */
  async wrk(
    url: string,
    threads: number,
    conns: number,
    seconds: number,
    extra: string[] = [],
  ): Promise<HttpRun> {
    const text = await this.run(
      'c',
      'wrk',
      [
        ...extra,
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
export function procStat(): CpuSample {
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
 * CPU seconds used so far by each process outside the bench's namespaces
 * (other work on a shared machine), by pid, so that noisy runs can be told
 * apart; `cpuGrowth` turns two samples into the CPU used between them.
 */
function foreignCpu(b: Bench): Map<number, number> {
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
  const out = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || ours.has(Number(d))) continue;
    out.set(Number(d), processCpu(Number(d)));
  }
  return out;
}

/** The LB's CPU seconds: its process and, for fullnat, its TUN's NAPI threads. */
export function lbCpu(pid: number | undefined): number {
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

export interface Lb {
  target: string;
  httpUrl: string;
  pid?: number;
  /** fullnat: its log so far (pino JSON lines) and whether its NAPI thread was on at start. */
  log?: () => string;
  napiAtStart?: boolean;
  stop: () => Promise<void>;
}

/** The addresses the RS sees connections from, for a variant in a round. */
function sourcesFor(v: Variant, round: number): string[] {
  return v === 'direct' ? [CLIENT] : lipsFor(v, round);
}

/**
 * Starts variant v in the LB namespace. `extraConfig` goes at the end of
 * fullnat's configuration file (the sync benchmark's `sync` block); other
 * variants ignore it.
 */
export async function startVariant(
  b: Bench,
  v: Variant,
  round: number,
  extraConfig = '',
): Promise<Lb> {
  const { lab, dir } = b;
  const lips = sourcesFor(v, round);
  switch (v) {
    case 'direct':
      return { target: RS, httpUrl: `http://${RS}:80/`, stop: async () => {} };
    case 'kernel': {
      const conf = join(dir, 'nft.conf');
      writeFileSync(
        conf,
        template('nft.conf', { VIP, RS, LIP_FIRST: lips[0]!, LIP_LAST: lips[lips.length - 1]! }),
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
      lab.ip('lb', 'addr', 'add', `${lips[0]}/32`, 'dev', 'lo');
      const conf = join(dir, 'haproxy.cfg');
      writeFileSync(conf, template('haproxy.cfg', { VIP, RS, LIP: lips[0]! }));
      const child = lab.spawn('lb', 'haproxy', ['-db', '-f', conf]);
      let log = '';
      child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
      await b.waitListening('lb', 80, () => `haproxy (${log.slice(-500)})`);
      await b.waitListening('lb', BULK_PORT, 'haproxy');
      await b.waitListening('lb', SMALL_PORT, 'haproxy');
      return {
        target: VIP,
        httpUrl: `http://${VIP}:80/`,
        pid: child.pid,
        stop: async () => {
          await stopChild(child);
          lab.ip('lb', 'addr', 'del', `${VIP}/32`, 'dev', 'lo');
          lab.ip('lb', 'addr', 'del', `${lips[0]}/32`, 'dev', 'lo');
        },
      };
    }
    case 'fullnat': {
      const conf = join(dir, 'fullnat.conf');
      const first = lips[0]!;
      const last = lips[lips.length - 1]!.split('.')[3];
      writeFileSync(
        conf,
        template('fullnat.conf', {
          VIP,
          RS,
          DIR: dir,
          LIP_RANGE: `${first}-${last}`,
          EXTRA_DEFS: b.o.napiThread ? `napi_thread ${b.o.napiThread}` : '',
          EXTRA_BLOCKS: extraConfig,
        }),
      );
      // Node 20 refuses --cpu-prof in NODE_OPTIONS: it goes on the command line.
      const prof = b.o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${b.o.cpuProfDir}`] : [];
      const child = lab.spawn('lb', process.execPath, [...prof, cli, 'run', '-f', conf]);
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
      let napiAtStart = false;
      try {
        napiAtStart = lab.exec('lb', 'cat', [`/sys/class/net/${TUN}/threaded`]).trim() !== '0';
      } catch {
        // no threaded NAPI on this kernel: the thread is never on
      }
      return {
        target: VIP,
        httpUrl: `http://${VIP}:80/`,
        pid: child.pid,
        log: () => log,
        napiAtStart,
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

/** Threads of a process (/proc/PID/status), or null. */
function threadsOf(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const m = /^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function measure(b: Bench, v: Variant, round: number): Promise<VariantResult> {
  const sources = sourcesFor(v, round);
  const r: VariantResult = {
    variant: v,
    round,
    sources,
    rsTimeWaitBefore: b.rsTimeWait(sources),
    rsTimeWaitPreviousRound:
      round > 0 && v !== 'direct' ? b.rsTimeWait(sourcesFor(v, round - 1)) : null,
    throughput: null,
    download: null,
    smallPackets: null,
    http: null,
    moderate: null,
    mixed: null,
    udp: null,
    cpu: null,
    backgroundCpus: { throughput: null, http: null, mixed: null, udp: null },
    notes: [],
  };
  if (r.rsTimeWaitBefore && v !== 'direct') {
    r.notes.push(
      `the RS held ${r.rsTimeWaitBefore} TIME_WAIT sockets toward this round's LIPs before it began`,
    );
  }
  let lb: Lb;
  try {
    lb = await startVariant(b, v, round);
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
  /** Wall-clock span of each phase, for the NAPI state in fullnat's log. */
  const spans: Partial<Record<Phase, [number, number]>> = {};
  const timed = async <T>(phase: Phase, fn: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try {
      return await fn();
    } finally {
      spans[phase] = [t0, Date.now()];
    }
  };
  try {
    if (v === 'haproxy') {
      const t = threadsOf(lb.pid);
      if (t != null) r.haproxyThreads = t;
    }
    // Warm-up: a connection through the LB path (ARP, routes, first-packet work).
    await attempt('warm-up', () =>
      b.run('c', 'curl', ['-s', '-m', '3', '-o', '/dev/null', lb.httpUrl], 5000),
    );
    if (b.closed) return r;

    const f0 = foreignCpu(b);
    const w0 = Date.now();
    r.throughput = await timed('upload', () =>
      attempt('throughput', async () => {
        const t = await b.iperf(lb.target, []);
        return { bitsPerSecond: t.bps, retransmits: t.retransmits };
      }),
    );
    r.backgroundCpus.throughput = cpuGrowth(f0, foreignCpu(b)) / ((Date.now() - w0) / 1000);
    b.o.log(`  ${v} throughput: ${fmtGbps(r.throughput?.bitsPerSecond)}`);
    if (b.closed) return r;

    r.download = await timed('download', () =>
      attempt('download', async () => {
        const t = await b.iperf(lb.target, ['-R']);
        return { bitsPerSecond: t.bps, retransmits: t.retransmits };
      }),
    );
    b.o.log(`  ${v} download (-R): ${fmtGbps(r.download?.bitsPerSecond)}`);
    if (b.closed) return r;

    b.setOffloads(true);
    try {
      r.smallPackets = await timed('small', () =>
        attempt('small packets', async () => {
          const before = { lb: b.devCounters('lb'), rs: b.devCounters('rs') };
          const t0 = Date.now();
          const t = await b.iperf(lb.target, ['-M', '88'], SMALL_PORT);
          const secs = (Date.now() - t0) / 1000;
          const after = { lb: b.devCounters('lb'), rs: b.devCounters('rs') };
          const delivered = after.rs.get('eth0')!.rxPackets - before.rs.get('eth0')!.rxPackets;
          const ingress = after.lb.get('eth0')!.rxPackets - before.lb.get('eth0')!.rxPackets;
          // iperf3's own interval excludes connection setup; the counters span the whole call.
          const span = Math.max(secs, t.seconds);
          const out: SmallPackets = {
            packetsPerSecond: delivered / span,
            lbIngressPacketsPerSecond: ingress / span,
            payloadBytesPerPacket: t.bytes / delivered,
            payloadBytesPerSegment: t.bytes / ingress,
            bitsPerSecond: t.bps,
          };
          const tb = before.lb.get(TUN);
          const ta = after.lb.get(TUN);
          if (tb && ta) {
            // The TUN as the kernel sees it: tx = packets handed to fullnat, rx = packets it wrote back.
            out.tunRxPerSecond = (ta.txPackets - tb.txPackets) / secs;
            out.tunTxPerSecond = (ta.rxPackets - tb.rxPackets) / secs;
          }
          return out;
        }),
      );
    } finally {
      b.setOffloads(false);
    }
    b.o.log(
      `  ${v} small packets: ${fmtKpps(r.smallPackets?.packetsPerSecond)} at the RS, ${fmtKpps(r.smallPackets?.lbIngressPacketsPerSecond)} into the LB (${r.smallPackets?.payloadBytesPerPacket.toFixed(0) ?? '?'} B payload per delivered packet)`,
    );
    if (b.closed) return r;

    const f1 = foreignCpu(b);
    const w1 = Date.now();
    const cpu0 = procStat();
    const p0 = lbCpu(lb.pid);
    r.http = await timed('http', () =>
      attempt('http', () => b.wrk(lb.httpUrl, 2, 32, b.o.seconds)),
    );
    const cpu1 = procStat();
    const p1 = lbCpu(lb.pid);
    const foreignHttp = cpuGrowth(f1, foreignCpu(b));
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
    r.moderate = await timed('moderate', () =>
      attempt('http (moderate)', () => b.wrk(lb.httpUrl, 1, 4, Math.min(3, b.o.seconds))),
    );
    b.o.log(
      `  ${v} http moderate: ${r.moderate?.connectionsPerSecond.toFixed(0) ?? '-'} conn/s, p50 ${r.moderate?.p50Ms ?? '-'} ms, p99 ${r.moderate?.p99Ms ?? '-'} ms`,
    );
    if (b.closed) return r;

    const f2 = foreignCpu(b);
    const w2 = Date.now();
    r.mixed = await timed('mixed', () => mixedPhase(b, lb, r.smallPackets, attempt));
    r.backgroundCpus.mixed = cpuGrowth(f2, foreignCpu(b)) / ((Date.now() - w2) / 1000);
    b.o.log(
      `  ${v} mixed: bulk ${fmtGbps(r.mixed.bulk?.bitsPerSecond)}, small ${fmtKpps(r.mixed.small?.segmentsPerSecond ?? undefined)} (${((r.mixed.small?.bitsPerSecond ?? NaN) / 1e6).toFixed(1)} Mbit/s), ${r.mixed.http?.connectionsPerSecond.toFixed(0) ?? '-'} conn/s, p99 ${r.mixed.http?.p99Ms ?? '-'} ms`,
    );
    if (b.closed) return r;

    // Last in the round, so that the phases before it run as they did before it existed.
    if (v !== 'haproxy') {
      const f3 = foreignCpu(b);
      const w3 = Date.now();
      r.udp = await timed('udp', () => udpPhase(b, v, lb, attempt));
      r.backgroundCpus.udp = cpuGrowth(f3, foreignCpu(b)) / ((Date.now() - w3) / 1000);
      b.o.log(
        `  ${v} udp: ${fmtKpps(r.udp?.packetsPerSecond)} at the RS, ${fmtKpps(r.udp?.lbIngressPacketsPerSecond)} into the LB, ${fmtKpps(r.udp?.sentPerSecond)} sent, iperf3 loss ${r.udp?.lostPercent.toFixed(1) ?? '-'} %`,
      );
    }

    if (v === 'fullnat') {
      r.metricsAnswered = await b
        .run('lb', 'curl', ['-s', '-m', '2', METRICS_URL], 4000)
        .then((text) => text.includes('fullnat_'))
        .catch(() => false);
      if (!r.metricsAnswered) r.notes.push(`${METRICS_URL} did not answer with fullnat_ metrics`);
    }
  } finally {
    await lb.stop();
    if (lb.log) {
      const text = lb.log();
      const switches = parseNapiSwitches(text);
      r.napi = {};
      for (const [phase, span] of Object.entries(spans) as [Phase, [number, number]][]) {
        r.napi[phase] = napiDuring(switches, lb.napiAtStart ?? false, span[0], span[1]);
      }
      r.health = {
        failures: text.split('\n').filter((l) => l.includes('health check failed')).length,
        down: text.split('\n').filter((l) => l.includes('real server DOWN')).length,
      };
      if (r.health.down > 0) {
        r.notes.push(`health checks took an RS down ${r.health.down} times during the round`);
      }
    }
  }
  return r;
}

/**
 * Small UDP datagrams client → RS for `seconds` (iperf3 -u -b 0), counted
 * where they are delivered (the RS's NIC) and where they enter the LB, with
 * iperf3's own loss; offloads off as in the small-packet run. For fullnat
 * the RS runs the UOA receiver's tc part meanwhile: the defaults' `opp`
 * shim on a flow's first datagrams (iperf3's own handshake datagram among
 * them) would otherwise be dropped by the RS's kernel.
 */
async function udpPhase(
  b: Bench,
  v: Variant,
  lb: Lb,
  attempt: <T>(what: string, fn: () => Promise<T>) => Promise<T | null>,
): Promise<UdpSmall | null> {
  if (v === 'fullnat') {
    const why = udpReceiverUnavailable();
    const attached = await attempt('udp receiver', async () => {
      if (why) throw new Error(why);
      b.attachReceiver();
      return true;
    });
    if (!attached) return null;
  }
  b.setOffloads(true);
  try {
    return await attempt('udp', async () => {
      const before = { lb: b.devCounters('lb'), rs: b.devCounters('rs') };
      const t0 = Date.now();
      const t = await b.iperfUdp(lb.target);
      const secs = (Date.now() - t0) / 1000;
      const after = { lb: b.devCounters('lb'), rs: b.devCounters('rs') };
      const delivered = after.rs.get('eth0')!.rxPackets - before.rs.get('eth0')!.rxPackets;
      const ingress = after.lb.get('eth0')!.rxPackets - before.lb.get('eth0')!.rxPackets;
      // As in the small-packet run: the counters span the whole call, iperf3's interval less.
      const span = Math.max(secs, t.seconds);
      const out: UdpSmall = {
        packetsPerSecond: delivered / span,
        lbIngressPacketsPerSecond: ingress / span,
        sentPerSecond: t.sent / t.seconds,
        lostPercent: t.lostPercent,
      };
      const tb = before.lb.get(TUN);
      const ta = after.lb.get(TUN);
      if (tb && ta) {
        out.tunRxPerSecond = (ta.txPackets - tb.txPackets) / secs;
        out.tunTxPerSecond = (ta.rxPackets - tb.rxPackets) / secs;
      }
      return out;
    });
  } finally {
    b.setOffloads(false);
    if (v === 'fullnat') b.detachReceiverFromNic();
  }
}

/**
 * All three kinds of traffic at once for `seconds`: one bulk download flow
 * (RS → client, GSO from the RS as its NIC comes), one flow of 88-byte
 * segments upward (the client's TSO/GSO off, so they leave it as such) and
 * new connections (wrk -t1 -c16, Connection: close). The small flow is
 * counted as goodput ÷ the payload per segment of this variant's small-packet
 * run: the RS's packet counter would count a GRO-merged train as one.
 */
async function mixedPhase(
  b: Bench,
  lb: Lb,
  small: SmallPackets | null,
  attempt: <T>(what: string, fn: () => Promise<T>) => Promise<T | null>,
): Promise<MixedRun> {
  b.setClientSegmentation(true);
  try {
    const [bulk, smallRun, http] = await Promise.all([
      attempt('mixed bulk', async () => {
        const t = await b.iperf(lb.target, ['-R']);
        return { bitsPerSecond: t.bps, retransmits: t.retransmits };
      }),
      attempt('mixed small packets', () => b.iperf(lb.target, ['-M', '88'], SMALL_PORT)),
      attempt('mixed http', () => b.wrk(lb.httpUrl, 1, 16, b.o.seconds)),
    ]);
    const perSegment = small?.payloadBytesPerSegment;
    return {
      bulk,
      small: smallRun
        ? {
            bitsPerSecond: smallRun.bps,
            segmentsPerSecond:
              perSegment && Number.isFinite(perSegment) ? smallRun.bps / 8 / perSegment : null,
          }
        : null,
      http,
    };
  } finally {
    b.setClientSegmentation(false);
  }
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

/** Every figure the table reports, per variant and round. */
export const METRIC_KEYS = [
  'throughputGbps',
  'downloadGbps',
  'smallKpps',
  'smallKppsLbIngress',
  'connsPerSecond',
  'p50Ms',
  'p99Ms',
  'moderateP50Ms',
  'moderateP99Ms',
  'lbCpuUsPerConn',
  'machineCpuUsPerConn',
  'mixedBulkGbps',
  'mixedSmallKpps',
  'mixedSmallMbps',
  'mixedConnsPerSecond',
  'mixedP99Ms',
  'udpKpps',
  'udpKppsLbIngress',
  'udpLossPercent',
] as const;
export type MetricKey = (typeof METRIC_KEYS)[number];

export function metrics(v: VariantResult): Record<MetricKey, number | null> {
  return {
    throughputGbps: v.throughput ? v.throughput.bitsPerSecond / 1e9 : null,
    downloadGbps: v.download ? v.download.bitsPerSecond / 1e9 : null,
    smallKpps: v.smallPackets ? v.smallPackets.packetsPerSecond / 1e3 : null,
    smallKppsLbIngress: v.smallPackets ? v.smallPackets.lbIngressPacketsPerSecond / 1e3 : null,
    connsPerSecond: v.http?.connectionsPerSecond ?? null,
    p50Ms: v.http?.p50Ms ?? null,
    p99Ms: v.http?.p99Ms ?? null,
    moderateP50Ms: v.moderate?.p50Ms ?? null,
    moderateP99Ms: v.moderate?.p99Ms ?? null,
    lbCpuUsPerConn: v.cpu?.lbUs ?? null,
    machineCpuUsPerConn: v.cpu?.machineUs ?? null,
    mixedBulkGbps: v.mixed?.bulk ? v.mixed.bulk.bitsPerSecond / 1e9 : null,
    mixedSmallKpps:
      v.mixed?.small?.segmentsPerSecond != null ? v.mixed.small.segmentsPerSecond / 1e3 : null,
    mixedSmallMbps: v.mixed?.small ? v.mixed.small.bitsPerSecond / 1e6 : null,
    mixedConnsPerSecond: v.mixed?.http?.connectionsPerSecond ?? null,
    mixedP99Ms: v.mixed?.http?.p99Ms ?? null,
    udpKpps: v.udp ? v.udp.packetsPerSecond / 1e3 : null,
    udpKppsLbIngress: v.udp ? v.udp.lbIngressPacketsPerSecond / 1e3 : null,
    udpLossPercent: v.udp?.lostPercent ?? null,
  };
}

/** Medians and ranges of a variant's rounds, and for fullnat where its NAPI work ran per phase. */
export function summarise(variant: Variant, runs: VariantResult[]): VariantSummary {
  const per = runs.map(metrics);
  const figures = Object.fromEntries(
    METRIC_KEYS.map((k) => [k, spread(per.map((m) => m[k]))]),
  ) as Record<MetricKey, Spread | null>;
  const out: VariantSummary = { variant, figures };
  if (runs.some((r) => r.napi)) {
    out.napi = {};
    for (const phase of PHASES) {
      const seen = runs.map((r) => r.napi?.[phase]).filter((p): p is NapiPhase => p != null);
      if (seen.length === 0) continue;
      out.napi[phase] = {
        roundsOn: seen.filter((p) => p.onShare > 0).length,
        rounds: seen.length,
        onShare: spread(seen.map((p) => p.onShare)),
      };
    }
  }
  return out;
}

export async function runNetBench(o: NetOptions): Promise<NetBenchResult> {
  if (!Number.isInteger(o.rounds) || o.rounds < 1 || o.rounds > MAX_ROUNDS) {
    throw new Error(`--rounds must be 1..${MAX_ROUNDS} (each round uses LIPs of its own)`);
  }
  if (!(o.seconds > 0 && o.seconds <= 600)) throw new Error('--seconds must be in (0, 600]');
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
  const runs: VariantResult[] = [];
  let offloads: string;
  try {
    b.build();
    offloads = b.offloadSummary();
    await b.startServers();
    // Interleaved: every variant once per round, in the same order, each in a fresh LB namespace.
    for (let round = 0; round < o.rounds && !b.closed; round++) {
      for (const v of o.variants) {
        if (b.closed) break;
        if (runs.length > 0) b.buildLb();
        o.log(`net: round ${round + 1}/${o.rounds}: ${v}`);
        runs.push(await measure(b, v, round));
      }
    }
  } finally {
    await b.destroy();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  // Interrupted: the signal handler exits once the teardown is done; print nothing partial.
  if (interrupted) await new Promise<never>(() => {});
  const variants = o.variants
    .filter((v, i, a) => a.indexOf(v) === i)
    .map((v) =>
      summarise(
        v,
        runs.filter((r) => r.variant === v),
      ),
    );
  const med = (v: Variant, k: MetricKey): number | null =>
    variants.find((s) => s.variant === v)?.figures[k]?.median ?? null;
  const ratios: NetBenchResult['ratios'] = {};
  for (const s of variants) {
    ratios[s.variant] = Object.fromEntries(
      METRIC_KEYS.map((k) => [k, ratioOf(s.figures[k]?.median, med('kernel', k))]),
    );
  }
  const targets: NetBenchResult['targets'] = {};
  if (variants.some((s) => s.variant === 'fullnat')) {
    const fr = ratios.fullnat ?? {};
    const t = (
      value: number | null,
      target: string,
      ok: (x: number) => boolean,
    ): { value: number | null; target: string; met: boolean | null } => ({
      value,
      target,
      met: value == null ? null : ok(value),
    });
    targets.throughput = t(fr.throughputGbps ?? null, '≥ 0.8× kernel', (x) => x >= 0.8);
    targets.smallPackets = t(fr.smallKpps ?? null, '≥ 0.5× kernel (at the RS)', (x) => x >= 0.5);
    targets.connsVsKernel = t(fr.connsPerSecond ?? null, '≥ 0.5× kernel', (x) => x >= 0.5);
    targets.connsVsHaproxy = t(
      ratioOf(med('fullnat', 'connsPerSecond'), med('haproxy', 'connsPerSecond')),
      '≥ 1× haproxy',
      (x) => x >= 1,
    );
    targets.p99Moderate = t(fr.moderateP99Ms ?? null, '≤ 2× kernel', (x) => x <= 2);
    targets.udpPackets = t(fr.udpKpps ?? null, '≥ 0.5× kernel (UDP, at the RS)', (x) => x >= 0.5);
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
    rounds: o.rounds,
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    cpus: Number(execFileSync('nproc', { encoding: 'utf8' }).trim()),
    offloads,
    setup: o.napiThread
      ? [...SETUP, `fullnat: napi_thread ${o.napiThread} (--napi-thread), not the default auto`]
      : SETUP,
    napiThread: o.napiThread ?? 'auto',
    variants,
    ratios,
    targets,
    runs,
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

/**
 * Markdown: per variant, each figure as `median (min–max) ratio-to-kernel×`
 * over the rounds; the mixed phase in a table of its own; where fullnat's
 * NAPI work ran in each phase; the targets on the medians.
 */
export function formatNetTable(r: NetBenchResult): string {
  const n = r.rounds;
  const lines = [
    `${n} interleaved round${n === 1 ? '' : 's'} (${r.variants.map((v) => v.variant).join(' ')}, …), each variant in a fresh LB namespace; every cell: median (min–max) over the rounds, then its ratio to kernel's median.`,
    '',
    ...r.setup.map((s) => `- ${s}`),
    '',
    '| variant | upload Gbit/s | download Gbit/s (-R) | small-pkt kpps at the RS (MSS 88) | small-pkt kpps into the LB | new conn/s (wrk -c32) | p99 ms (-c32) | p99 ms (-c4, moderate) | LB CPU µs/conn | machine CPU µs/conn |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  const cell = (s: VariantSummary, k: MetricKey, digits: number, withRatio = true): string =>
    formatSpread(
      s.figures[k],
      digits,
      n,
      withRatio ? (r.ratios[s.variant]?.[k] ?? null) : undefined,
    );
  for (const s of r.variants) {
    lines.push(
      `| ${s.variant} | ${cell(s, 'throughputGbps', 2)} | ${cell(s, 'downloadGbps', 2)} | ${cell(s, 'smallKpps', 0)} | ${cell(s, 'smallKppsLbIngress', 0)} | ${cell(s, 'connsPerSecond', 0)} | ${cell(s, 'p99Ms', 2)} | ${cell(s, 'moderateP99Ms', 2)} | ${cell(s, 'lbCpuUsPerConn', 1)} | ${cell(s, 'machineCpuUsPerConn', 1)} |`,
    );
  }
  lines.push(
    '',
    `Mixed phase: one bulk download flow, one flow of 88-byte segments up and new connections (wrk -t1 -c16, Connection: close), all at once for ${r.seconds} s:`,
    '',
    '| variant | bulk Gbit/s (-R) | small kseg/s delivered | small Mbit/s | new conn/s | p99 ms |',
    '|---|---|---|---|---|---|',
  );
  for (const s of r.variants) {
    lines.push(
      `| ${s.variant} | ${cell(s, 'mixedBulkGbps', 2)} | ${cell(s, 'mixedSmallKpps', 0)} | ${cell(s, 'mixedSmallMbps', 1)} | ${cell(s, 'mixedConnsPerSecond', 0)} | ${cell(s, 'mixedP99Ms', 2)} |`,
    );
  }
  lines.push(
    '',
    `UDP: iperf3 -u -l ${UDP_PAYLOAD} -b 0 (${UDP_PAYLOAD + 28}-byte IP packets) client → RS for ${r.seconds} s, one flow:`,
    '',
    '| variant | kpps at the RS | kpps into the LB | iperf3 loss % |',
    '|---|---|---|---|',
  );
  for (const s of r.variants) {
    lines.push(
      s.variant === 'haproxy'
        ? '| haproxy | n/a: HAProxy balances no UDP | n/a | n/a |'
        : `| ${s.variant} | ${cell(s, 'udpKpps', 0)} | ${cell(s, 'udpKppsLbIngress', 0)} | ${cell(s, 'udpLossPercent', 1, false)} |`,
    );
  }
  const napi = r.variants.find((s) => s.napi);
  if (napi?.napi) {
    lines.push(
      '',
      `fullnat's NAPI thread (\`napi_thread ${r.napiThread}\`) per phase — rounds in which it was on at some point, and the share of the phase it was on:`,
      '',
      '| phase | rounds on | share of the phase on |',
      '|---|---|---|',
    );
    for (const phase of PHASES) {
      const p = napi.napi[phase];
      if (!p) continue;
      lines.push(
        `| ${phase} | ${p.roundsOn}/${p.rounds} | ${formatSpread(
          p.onShare && {
            ...p.onShare,
            median: p.onShare.median * 100,
            min: p.onShare.min * 100,
            max: p.onShare.max * 100,
          },
          0,
          p.rounds,
        )} % |`,
      );
    }
  }
  lines.push('');
  for (const v of r.runs) {
    const tag = `${v.variant} round ${v.round + 1}`;
    const errs = (v.http?.errors ?? 0) + (v.moderate?.errors ?? 0) + (v.mixed?.http?.errors ?? 0);
    if (errs > 0) {
      lines.push(
        `- ${tag}: wrk errors ${v.http?.errors ?? 0} (-c32), ${v.moderate?.errors ?? 0} (-c4), ${v.mixed?.http?.errors ?? 0} (mixed)`,
      );
    }
    if (v.throughput?.retransmits || v.download?.retransmits) {
      lines.push(
        `- ${tag}: iperf3 retransmits ${v.throughput?.retransmits ?? '-'} (upload), ${v.download?.retransmits ?? '-'} (download)`,
      );
    }
    for (const note of v.notes) lines.push(`- ${tag}: ${note}`);
    if (v.smallPackets?.tunRxPerSecond !== undefined) {
      lines.push(
        `- ${tag}: TUN during the small-packet run: ${num(v.smallPackets.tunRxPerSecond / 1e3, 0)} kpps read by the LB, ${num((v.smallPackets.tunTxPerSecond ?? 0) / 1e3, 0)} kpps written back; ${num(v.smallPackets.payloadBytesPerPacket, 0)} B payload per packet at the RS`,
      );
    }
    if (v.udp?.tunRxPerSecond !== undefined) {
      lines.push(
        `- ${tag}: TUN during the UDP run: ${num(v.udp.tunRxPerSecond / 1e3, 0)} kpps read by the LB, ${num((v.udp.tunTxPerSecond ?? 0) / 1e3, 0)} kpps written back; iperf3 sent ${num(v.udp.sentPerSecond / 1e3, 0)} kpps`,
      );
    }
    if (v.health) {
      lines.push(
        `- ${tag}: health checks: ${v.health.failures} failed probes, ${v.health.down} RS down; /metrics ${v.metricsAnswered ? 'answered' : 'did not answer'}`,
      );
    }
    if (v.haproxyThreads != null) lines.push(`- ${tag}: haproxy ran ${v.haproxyThreads} threads`);
  }
  lines.push(
    `- background load (other processes, in CPUs) during throughput / HTTP / mixed / UDP: ${r.runs
      .map(
        (v) =>
          `${v.variant}#${v.round + 1} ${num(v.backgroundCpus.throughput, 2)}/${num(v.backgroundCpus.http, 2)}/${num(v.backgroundCpus.mixed, 2)}/${num(v.backgroundCpus.udp, 2)}`,
      )
      .join(', ')}`,
  );
  const tw = r.runs.filter((v) => v.variant !== 'direct');
  const previous = tw.filter((v) => v.rsTimeWaitPreviousRound != null);
  lines.push(
    `- RS TIME_WAIT sockets toward a round's own LIPs when it began: ${tw.every((v) => v.rsTimeWaitBefore === 0) ? 'none in any round' : tw.map((v) => `${v.variant}#${v.round + 1} ${v.rsTimeWaitBefore ?? '?'}`).join(', ')}${previous.length > 0 ? `; toward the same variant's LIPs of the round before (what reusing them would meet): ${previous.map((v) => `${v.variant}#${v.round + 1} ${v.rsTimeWaitPreviousRound}`).join(', ')}` : ''}`,
  );
  if (Object.keys(r.targets).length > 0) {
    lines.push('', '| target (fullnat, medians) | value | met |', '|---|---|---|');
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
