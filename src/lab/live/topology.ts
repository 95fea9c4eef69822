/**
 * The namespaces of the real-kernel lab (`fullnat lab`) and everything that
 * runs in them:
 *
 *   TUN clients 10.78.8.0/22 ─┐
 *   (this process)          [fnlab-c] 10.78.1.2 ── 10.78.1.1 [fnlab-lb: fullnat run, fnat0 ←
 *   kernel clients 10.78.9.x ─┘   eth0            eth0       VIP 10.78.0.100, LIPs 10.78.3.1-2]
 *                                                            br0 10.78.2.1
 *                                                  rs1 ┌──────┴──────┐ rs2
 *                                      [fnlab-r1] 10.78.2.11   10.78.2.12 [fnlab-r2]
 *
 * - Client namespace: forwards between its veth and a TUN whose far end is
 *   this process (tun-client.ts); Linux's own clients use addresses
 *   10.78.9.x, one per announced MSS (`ip rule from ADDR` → a table whose
 *   route to the LB has `advmss MSS`).
 * - LB namespace: `fullnat run -f lb-POLICY.conf --no-health-checks`,
 *   restarted for each TOA policy, each with its own local port range (the
 *   RSs hold TIME_WAIT for 60 s and a fresh LB would reuse LIP:lport tuples).
 *   Three services on the VIP: :80 → RS :8080 (plain), :81 → RS :8081
 *   (listener with TCP_DEFER_ACCEPT), :82 → RS :8082 (`mtu 1400`, for the
 *   small-RS-MTU scenario, whose links are lowered to 1400 while it runs).
 * - Real servers: one rs-app per namespace (fixtures/rs-app.ts) on the three
 *   ports, started under `fullnat rs exec` when the eBPF TOA receiver can be
 *   loaded (then the application's own view of its peer is the verdict),
 *   else plainly (then the verdict comes from a capture at the RS, read by
 *   the doctor). The RSs announce MSS 1460 whatever their link MTU
 *   (`advmss 1460` on their route), like a server behind an overlay hop.
 *
 * Address families (lab/family.ts): every link is dual-stack, IPv6 beside
 * IPv4 in fd00:78::/32 laid out alike (VIP fd00:78::100, client link
 * fd00:78:1::/64, RSs fd00:78:2::11-12, LIPs fd00:78:3::1-2, TUN clients
 * fd00:78:8::/64, Linux clients fd00:78:9::x); the LB's configuration says
 * which of them a family uses (`labAddresses`): 6 all IPv6, 64 the IPv6 VIP
 * with the IPv4 LIPs and RSs. The RS applications listen dual-stack (`::`),
 * so one socket takes the connections of every family.
 *
 * One lab at a time: a lock file, and a fixed prefix (`fnlab`) so that the
 * leftovers of a run killed with SIGKILL are found and removed first.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleepMs } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { openTun, type TunDevice } from '../../io/tun.js';
import type { ToaPolicy } from '../../engine/options.js';
import { acquireLabLock, labLockPath } from '../lock.js';
import { LabReceiver, spawnRealServerApp } from '../receiver.js';
import { NetnsLab, namespacesWithPrefix, removeNamespace } from '../netns.js';
import { parseTcpdumpStats, type CaptureStats } from './capture-stats.js';
import { MSS_MIX } from '../sim/scenarios.js';
import { clientIpVersion, serverIpVersion, type LabFamily } from '../family.js';
import { waitForOutput } from '../child-output.js';

export const LAB_PREFIX = 'fnlab';
export const VIP = '10.78.0.100';
export const LIPS = ['10.78.3.1', '10.78.3.2'] as const;
export const CLIENT_LINK = { client: '10.78.1.2', lb: '10.78.1.1' } as const;
export const RS_GATEWAY = '10.78.2.1';
export const REAL_SERVERS = [
  { host: 'r1', addr: '10.78.2.11', lbPort: 'rs1' },
  { host: 'r2', addr: '10.78.2.12', lbPort: 'rs2' },
] as const;
/** Addresses behind the client TUN: 10.78.8.0 – 10.78.11.255. */
export const TUN_NET = '10.78.8.0/22';
export const TUN_BASE = '10.78.8.0';
export const TUN_ADDRS = 1024;
export const KERNEL_NET = '10.78.9.0/24';
/** Linux clients: one address per announced MSS (policy routing with advmss). */
export const KERNEL_MSS = [1460, ...MSS_MIX.filter((m) => m !== 1460)] as const;
export function kernelClientAddr(mss: number): string {
  const i = KERNEL_MSS.indexOf(mss as (typeof KERNEL_MSS)[number]);
  if (i < 0) throw new Error(`no lab client address announces MSS ${mss}`);
  return `10.78.9.${10 + i}`;
}
export const VIP6 = 'fd00:78::100';
export const LIPS6 = ['fd00:78:3::1', 'fd00:78:3::2'] as const;
export const CLIENT_LINK6 = { client: 'fd00:78:1::2', lb: 'fd00:78:1::1' } as const;
export const RS_GATEWAY6 = 'fd00:78:2::1';
export const REAL_SERVERS6 = [
  { host: 'r1', addr: 'fd00:78:2::11' },
  { host: 'r2', addr: 'fd00:78:2::12' },
] as const;
/** IPv6 addresses behind the client TUN: fd00:78:8::1 – fd00:78:8::ffff. */
export const TUN_NET6 = 'fd00:78:8::/64';
export const TUN_BASE6 = 'fd00:78:8::';
export const KERNEL_NET6 = 'fd00:78:9::/64';
/**
 * The MSS an IPv6 client on the same link MTU announces where an IPv4 one
 * announces `mss` (sim/scenarios.ts clientFor): 20 less, the MTU raised to
 * the IPv6 minimum of 1280 first (536 → 1220).
 */
export function ipv6Mss(mss: number): number {
  return Math.max(1280, mss + 40) - 60;
}

/** The IPv6 Linux client standing for the IPv4 one announcing `mss` (it announces `ipv6Mss(mss)`). */
export function kernelClientAddr6(mss: number): string {
  const i = KERNEL_MSS.indexOf(mss as (typeof KERNEL_MSS)[number]);
  if (i < 0) throw new Error(`no lab client address announces MSS ${mss}`);
  return `fd00:78:9::${(10 + i).toString(16)}`;
}

/** The lab's addresses in one family, as text (the LB configuration and the clients use them). */
export interface LabAddresses {
  family: LabFamily;
  vip: string;
  lips: readonly string[];
  realServers: readonly { host: string; addr: string }[];
  /** The Linux client that announces `mss`. */
  kernelClient(mss: number): string;
}

export function labAddresses(family: LabFamily): LabAddresses {
  const client6 = clientIpVersion(family) === 6;
  const server6 = serverIpVersion(family) === 6;
  return {
    family,
    vip: client6 ? VIP6 : VIP,
    lips: server6 ? LIPS6 : LIPS,
    realServers: server6 ? REAL_SERVERS6 : REAL_SERVERS,
    kernelClient: client6 ? kernelClientAddr6 : kernelClientAddr,
  };
}

/** VIP port → RS port; :81 is the TCP_DEFER_ACCEPT listener, :82 has `mtu 1400`. */
export const SERVICES = {
  plain: { vport: 80, rport: 8080 },
  defer: { vport: 81, rport: 8081 },
  smallMtu: { vport: 82, rport: 8082, mtu: 1400 },
} as const;
export const RS_RESPONSE_SIZE = 2000;
/**
 * Local port ranges per family and policy, so a restarted LB never reuses a
 * tuple an RS holds in TIME_WAIT (families 4 and 64 share the IPv4 LIPs and RSs).
 */
function portRange(policy: ToaPolicy, family: LabFamily): [number, number] {
  const p = Math.max(0, ['lvs', 'dpvs', 'fullnat', 'off'].indexOf(policy));
  const i = [4, 6, 64].indexOf(family) * 4 + p;
  return [5000 + i * 5000, 5000 + i * 5000 + 4999];
}

const CLIENT_TUN = `${LAB_PREFIX}t0`;
const here = dirname(fileURLToPath(import.meta.url));
/** dist/src/lab/live → repo root. */
const REPO = join(here, '..', '..', '..', '..');
export const CLI = join(REPO, 'bin', 'fullnat.js');
export const RS_APP = join(here, 'fixtures', 'rs-app.js');
export const LIVE_RECEIVER = new LabReceiver(LAB_PREFIX);
export const LOCK_FILE = labLockPath(LAB_PREFIX);
export const WORK_DIR = join(tmpdir(), `fullnat-${LAB_PREFIX}`);

/**
 * Creates the listening socket with TCP_DEFER_ACCEPT (Node cannot set it),
 * dual-stack like the other listeners,
 * then becomes the Node server, which adopts it with `--defer-fd`.
 */
const DEFER_LAUNCHER = `
import os, socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 5)
s.bind(('::', int(sys.argv[1])))
s.listen(1024)
os.set_inheritable(s.fileno(), True)
args = sys.argv[2:] + ['--defer-fd', str(s.fileno())]
os.execv(args[0], args)
`;

export type Log = (line: string) => void;

// ------------------------------------------------------------- one at a time

/** Takes the lab lock; throws naming the holder when another lab is running. */
export function acquireLock(path = LOCK_FILE): () => void {
  return acquireLabLock(path);
}

// ------------------------------------------------------------------ leftovers

/** Namespaces carrying the lab's prefix (ours, or a killed run's). */
export function labNamespaces(): string[] {
  return namespacesWithPrefix(LAB_PREFIX);
}

/**
 * Removes whatever a previous lab left (killed with SIGKILL, say): its
 * namespaces and their processes, the receiver's cgroup and pins, the work
 * directory. Returns what it removed.
 */
export async function cleanupLeftovers(log: Log = () => {}): Promise<string[]> {
  const removed: string[] = [];
  LIVE_RECEIVER.killMembers();
  for (const ns of labNamespaces()) if (removeNamespace(ns)) removed.push(`namespace ${ns}`);
  try {
    execFileSync('ip', ['link', 'del', CLIENT_TUN], { stdio: 'ignore' });
    removed.push(`interface ${CLIENT_TUN}`);
  } catch {
    // none (the usual case: a TUN dies with its descriptor)
  }
  removed.push(...(await LIVE_RECEIVER.removeLeftovers()));
  if (existsSync(WORK_DIR)) {
    rmSync(WORK_DIR, { recursive: true, force: true });
  }
  if (removed.length) log(`lab: removed leftovers of an earlier run: ${removed.join(', ')}`);
  return removed;
}

// ------------------------------------------------------------------ topology

export interface StoppedCapture {
  pcap: Uint8Array;
  /** tcpdump's closing counters (packets dropped by the kernel…); null when it printed none. */
  stats: CaptureStats | null;
}

export interface Capture {
  stop(): Promise<StoppedCapture>;
}

interface RsApp {
  host: string;
  child: ChildProcess;
  records: RsRecordLine[];
  listening: Promise<void>;
}

/** One line of rs-app output for an accepted connection. */
export interface RsRecordLine {
  rs: string;
  port: number;
  peer: string;
  key: string | null;
  intact: boolean;
  bytes: number;
}

/** The engine switches `fullnat simulate` also has (both on by default). */
export interface EngineSwitches {
  mssAdjust?: boolean;
  timestampRemove?: boolean;
}

export interface TopologyOptions {
  /** Start the RS applications under the eBPF TOA receiver. */
  receiver: boolean;
  log: Log;
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(() => {
      child.kill('SIGKILL');
    }, graceMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill(signal);
  });
}

export class LabTopology {
  readonly lab = new NetnsLab(LAB_PREFIX);
  readonly workDir = WORK_DIR;
  tun: TunDevice | undefined;
  private lb: ChildProcess | undefined;
  private lbLog = '';
  private readonly apps: RsApp[] = [];
  private readonly rootChildren = new Set<ChildProcess>();
  private rsMtu = 1500;
  private destroyed = false;
  private torndown = false;

  constructor(private readonly opts: TopologyOptions) {}

  get receiver(): boolean {
    return this.opts.receiver;
  }

  /** Namespaces, links, addresses, routes, the client TUN. Synchronous and quick (~1 s). */
  build(): void {
    mkdirSync(this.workDir, { recursive: true });
    const L = this.lab;
    for (const h of ['c', 'lb', 'r1', 'r2']) {
      L.addHost(h);
      // Before any link exists, so every interface inherits it.
      for (const k of ['all', 'default']) L.sysctl(h, `net.ipv4.conf.${k}.rp_filter`, '0');
    }
    L.link('c', 'eth0', `${CLIENT_LINK.client}/24`, 'lb', 'eth0', `${CLIENT_LINK.lb}/24`);
    L.ip('c', 'route', 'add', 'default', 'via', CLIENT_LINK.lb);
    L.sysctl('c', 'net.ipv4.ip_forward', '1');
    L.sysctl('c', 'net.ipv6.conf.all.forwarding', '1');
    L.ip('c', '-6', 'addr', 'add', `${CLIENT_LINK6.client}/64`, 'dev', 'eth0', 'nodad');
    L.ip('lb', '-6', 'addr', 'add', `${CLIENT_LINK6.lb}/64`, 'dev', 'eth0', 'nodad');
    L.ip('c', '-6', 'route', 'add', 'default', 'via', CLIENT_LINK6.lb);
    // Linux clients: one address per announced MSS.
    KERNEL_MSS.forEach((mss, i) => {
      const addr = kernelClientAddr(mss);
      const table = String(100 + i);
      L.ip('c', 'addr', 'add', `${addr}/32`, 'dev', 'eth0');
      L.ip('c', 'rule', 'add', 'from', addr, 'lookup', table, 'priority', String(1000 + i));
      L.ip(
        'c',
        'route',
        'add',
        'default',
        'via',
        CLIENT_LINK.lb,
        'dev',
        'eth0',
        'advmss',
        String(mss),
        'table',
        table,
      );
      const addr6 = kernelClientAddr6(mss);
      L.ip('c', '-6', 'addr', 'add', `${addr6}/128`, 'dev', 'eth0', 'nodad');
      L.ip('c', '-6', 'rule', 'add', 'from', addr6, 'lookup', table, 'priority', String(1000 + i));
      L.ip(
        'c',
        '-6',
        'route',
        'add',
        'default',
        'via',
        CLIENT_LINK6.lb,
        'dev',
        'eth0',
        'advmss',
        String(ipv6Mss(mss)),
        'table',
        table,
      );
    });

    L.ip('lb', 'link', 'add', 'br0', 'type', 'bridge');
    L.ip('lb', 'addr', 'add', `${RS_GATEWAY}/24`, 'dev', 'br0');
    L.ip('lb', '-6', 'addr', 'add', `${RS_GATEWAY6}/64`, 'dev', 'br0', 'nodad');
    L.ip('lb', 'link', 'set', 'br0', 'up');
    L.ip('lb', 'route', 'add', TUN_NET, 'via', CLIENT_LINK.client);
    L.ip('lb', 'route', 'add', KERNEL_NET, 'via', CLIENT_LINK.client);
    L.ip('lb', '-6', 'route', 'add', TUN_NET6, 'via', CLIENT_LINK6.client);
    L.ip('lb', '-6', 'route', 'add', KERNEL_NET6, 'via', CLIENT_LINK6.client);
    REAL_SERVERS.forEach((r, i) => {
      const addr6 = REAL_SERVERS6[i]!.addr;
      L.link(r.host, 'eth0', `${r.addr}/24`, 'lb', r.lbPort, null);
      L.ip(r.host, '-6', 'addr', 'add', `${addr6}/64`, 'dev', 'eth0', 'nodad');
      L.ip('lb', 'link', 'set', r.lbPort, 'master', 'br0');
      // The RSs reach the LIPs through the LB, and announce MSS 1460 (IPv6: 1440) whatever their link MTU.
      L.ip(r.host, 'route', 'add', 'default', 'via', RS_GATEWAY, 'dev', 'eth0', 'advmss', '1460');
      L.ip(
        r.host,
        '-6',
        'route',
        'add',
        'default',
        'via',
        RS_GATEWAY6,
        'dev',
        'eth0',
        'advmss',
        '1440',
      );
    });

    // The client TUN: opened here, moved into the client namespace (the descriptor keeps working).
    const tun = openTun(CLIENT_TUN);
    this.tun = tun;
    execFileSync('ip', ['link', 'set', tun.name, 'netns', L.ns('c')]);
    L.sysctl('c', `net.ipv6.conf.${tun.name}.accept_dad`, '0');
    L.sysctl('c', `net.ipv4.conf.${tun.name}.rp_filter`, '0');
    L.ip('c', 'link', 'set', tun.name, 'mtu', '1500', 'up');
    L.ip('c', 'route', 'add', TUN_NET, 'dev', tun.name);
    L.ip('c', '-6', 'route', 'add', TUN_NET6, 'dev', tun.name);
  }

  // ---------------------------------------------------------------- RS apps

  /** Starts rs-app in both RS namespaces (under the TOA receiver when enabled); resolves once listening. */
  async startRsApps(python: string, receiverExec: string[] | null): Promise<void> {
    for (const r of REAL_SERVERS) {
      const app = [
        python,
        '-c',
        DEFER_LAUNCHER,
        String(SERVICES.defer.rport),
        process.execPath,
        RS_APP,
        'server',
        '--name',
        r.host,
        '--ports',
        `${SERVICES.plain.rport},${SERVICES.smallMtu.rport}`,
        '--response',
        String(RS_RESPONSE_SIZE),
      ];
      const child = spawnRealServerApp(this.lab, r.host, app, receiverExec, this.rootChildren);
      const rec: RsApp = { host: r.host, child, records: [], listening: Promise.resolve() };
      let err = '';
      child.stderr!.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
      rec.listening = waitForOutput(
        child,
        'stdout',
        /"listening"/,
        15_000,
        `rs-app in ${r.host}`,
        () => err,
      );
      let buf = '';
      child.stdout!.on('data', (c: Buffer) => {
        buf += c.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          try {
            const o = JSON.parse(line) as { event?: string } & RsRecordLine;
            if (o.event === 'conn') rec.records.push(o);
          } catch {
            // not ours
          }
        }
      });
      this.apps.push(rec);
    }
    await Promise.all(this.apps.map((a) => a.listening));
  }

  /** Takes (and forgets) the connections the RS applications reported so far. */
  takeRsRecords(): RsRecordLine[] {
    return this.apps.flatMap((a) => a.records.splice(0));
  }

  rsRecordCount(): number {
    return this.apps.reduce((n, a) => n + a.records.length, 0);
  }

  // -------------------------------------------------------------------- LB

  config(policy: ToaPolicy, switches: EngineSwitches = {}, family: LabFamily = 4): string {
    const [lo, hi] = portRange(policy, family);
    const a = labAddresses(family);
    const vs = (
      vport: number,
      rport: number,
      mtu?: number,
    ): string => `virtual_server ${a.vip} ${vport} {
    delay_loop 60
    lb_algo rr
    lb_kind FNAT
    protocol TCP
    laddr_group_name lips
${a.realServers
  .map(
    (r) => `    real_server ${r.addr} ${rport} {
        weight 1${mtu ? `\n        mtu ${mtu}` : ''}
    }`,
  )
  .join('\n')}
}`;
    return `# fullnat lab, policy ${policy}, family ${family}
fullnat_defs {
    interface fnat0
    toa_policy ${policy}
    mss_adjust ${switches.mssAdjust === false ? 'off' : 'on'}
    timestamp_remove ${switches.timestampRemove === false ? 'off' : 'on'}
    control_socket ${join(this.workDir, 'fullnat.sock')}
    local_port_range ${lo} ${hi}
    timeout_syn_recv 5
    timeout_fin_wait 2
    timeout_time_wait 2
    timeout_close 1
    timeout_close_wait 2
    timeout_last_ack 2
}
local_address_group lips {
${a.lips.map((l) => `    ${l}`).join('\n')}
}
${vs(SERVICES.plain.vport, SERVICES.plain.rport)}
${vs(SERVICES.defer.vport, SERVICES.defer.rport)}
${vs(SERVICES.smallMtu.vport, SERVICES.smallMtu.rport, SERVICES.smallMtu.mtu)}
`;
  }

  /** (Re)starts `fullnat run` in the LB namespace with `policy` for `family`; resolves once it forwards. */
  async startLb(
    policy: ToaPolicy,
    switches: EngineSwitches = {},
    family: LabFamily = 4,
  ): Promise<void> {
    await this.stopLb();
    const conf = join(this.workDir, `lb-${policy}-${family}.conf`);
    writeFileSync(conf, this.config(policy, switches, family));
    this.lbLog = '';
    const child = this.lab.spawn('lb', process.execPath, [
      CLI,
      'run',
      '-f',
      conf,
      '--no-health-checks',
    ]);
    const keep = (c: Buffer): void => {
      this.lbLog = (this.lbLog + c.toString()).slice(-20_000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.lb = child;
    await waitForOutput(child, 'stderr', /fullnat running/, 15_000, `fullnat run (${policy})`, () =>
      this.lbLog.slice(-3000),
    );
  }

  async stopLb(): Promise<void> {
    const lb = this.lb;
    this.lb = undefined;
    if (lb) await stopChild(lb, 'SIGTERM', 3000);
  }

  /** `fullnat run` is up (started and not exited since). */
  lbAlive(): boolean {
    return this.lb !== undefined && this.lb.exitCode === null && this.lb.signalCode === null;
  }

  lbLogTail(chars = 3000): string {
    return this.lbLog.slice(-chars);
  }

  /** `fullnat ctl --socket … ARGS` in the LB namespace (stdout; '' on failure). */
  ctl(args: string[]): string {
    try {
      return this.lab.exec(
        'lb',
        process.execPath,
        [CLI, 'ctl', '--socket', join(this.workDir, 'fullnat.sock'), ...args],
        10_000,
      );
    } catch (e) {
      return (e as { stdout?: string }).stdout ?? '';
    }
  }

  // ------------------------------------------------------------------ links

  /** MTU of the LB→RS links (bridge ports, bridge, RS interfaces). */
  setRsLinkMtu(mtu: number): void {
    if (mtu === this.rsMtu) return;
    const L = this.lab;
    for (const r of REAL_SERVERS) {
      L.ip('lb', 'link', 'set', r.lbPort, 'mtu', String(mtu));
      L.ip(r.host, 'link', 'set', 'eth0', 'mtu', String(mtu));
    }
    L.ip('lb', 'link', 'set', 'br0', 'mtu', String(mtu));
    this.rsMtu = mtu;
  }

  // ---------------------------------------------------------------- capture

  /**
   * tcpdump on an RS's eth0 (TCP only, immediate mode); `stop()` returns the
   * pcap bytes and tcpdump's own counters of what it captured and dropped.
   */
  async startCapture(host: string, file: string): Promise<Capture> {
    rmSync(file, { force: true });
    const child = this.lab.spawn(host, 'tcpdump', [
      '--immediate-mode',
      '-U',
      '-n',
      '-i',
      'eth0',
      '-s',
      '0',
      '-w',
      file,
      'tcp',
    ]);
    let err = '';
    child.stdout!.resume();
    await waitForOutput(
      child,
      'stderr',
      /listening on/,
      10_000,
      `tcpdump in ${host}`,
      () => err,
    ).catch((e: Error) => {
      child.kill('SIGKILL');
      throw e;
    });
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    // 'close' comes after the last of stderr, where tcpdump prints its counters as it exits.
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    return {
      stop: async () => {
        await stopChild(child, 'SIGINT', 3000);
        await Promise.race([closed, sleepMs(1000, undefined, { ref: false })]);
        const pcap = existsSync(file) ? new Uint8Array(readFileSync(file)) : new Uint8Array(0);
        return { pcap, stats: parseTcpdumpStats(err) };
      },
    };
  }

  // --------------------------------------------------------------- teardown

  /** Stops everything and deletes the namespaces. Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    try {
      this.tun?.close();
    } catch {
      // already closed
    }
    this.tun = undefined;
    await this.stopLb();
    await Promise.all([...this.rootChildren].map((c) => stopChild(c, 'SIGTERM', 2000)));
    await this.lab.destroy();
    rmSync(this.workDir, { recursive: true, force: true });
    this.torndown = true;
  }

  /**
   * For `process.on('exit')`: no waiting, just kill and delete — also when an
   * asynchronous `destroy()` was cut short by the exit.
   */
  destroySync(): void {
    if (this.torndown) return;
    this.destroyed = true;
    try {
      this.tun?.close();
    } catch {
      // already closed
    }
    for (const c of this.rootChildren) c.kill('SIGKILL');
    for (const h of ['c', 'lb', 'r1', 'r2']) removeNamespace(this.lab.ns(h));
    rmSync(this.workDir, { recursive: true, force: true });
    this.torndown = true;
  }
}

/** A Python 3 for the TCP_DEFER_ACCEPT listener (the system one starts fastest). */
export function findPython(): string | undefined {
  for (const p of ['/usr/bin/python3', '/usr/local/bin/python3']) if (existsSync(p)) return p;
  for (const dir of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    const p = join(dir, 'python3');
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Which of tcpdump is installed (the capture source needs it). */
export function hasTcpdump(): boolean {
  for (const d of ['/usr/sbin', '/usr/bin', '/sbin', ...(process.env.PATH ?? '').split(':')])
    if (d && existsSync(join(d, 'tcpdump'))) return true;
  return false;
}
