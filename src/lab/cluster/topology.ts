/**
 * The cluster lab's namespaces and what runs in them (addresses: plan.ts):
 * the client, the router with its bird2 (and, in the resilient mode, the
 * nexthop agent), the fleet nodes each running `fullnat run -f nodeK.conf`,
 * and the two real servers running echo-server.ts under the eBPF TOA
 * receiver.
 *
 * The router hashes flows on the packet's 5-tuple: `fib_multipath_hash_policy`
 * 3 with the fields of policy 1 (addresses, protocol, ports). A router gets
 * policy 1's hash from its NIC, computed from those headers; here the
 * packets come over a veth from a socket of the same kernel, and carry that
 * socket's random flow hash, which policy 1 would take instead — so flows
 * would spread by socket, not by tuple, and the lab could not tell beforehand
 * which node a tuple goes to.
 *
 * A node whose fullnat died drops what still reaches it (a blackhole route
 * for the VIP and its LIPs under fullnat's own), as a dead machine would,
 * instead of routing it back to the router.
 *
 * One cluster lab at a time: a lock file, and the fixed prefix `fncl` so
 * that the leftovers of a run killed with SIGKILL are found and removed.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sendControlRequest } from '../../control/socket/index.js';
import type { ControlRequest, ControlResponse } from '../../control/model.js';
import { labLockPath } from '../lock.js';
import { NetnsLab, namespacesWithPrefix, removeNamespace } from '../netns.js';
import { LabReceiver, spawnRealServerApp } from '../receiver.js';
import { nodeConfig, nodeControlSocket } from './node-config.js';
import { waitForOutput } from '../child-output.js';
import {
  BURST_SOURCES,
  CLIENT_LINK,
  CLIENT_SOURCES,
  CLUSTER_PREFIX,
  HOLD_SOURCES,
  LAN,
  REAL_SERVERS,
  RESILIENT_GROUP_ID,
  ROUTER_CLIENT_IF,
  RS_NET,
  RS_PORT,
  VIP,
  clusterNodes,
  type ClusterNode,
} from './plan.js';
import {
  AGENT_ROUTE_METRIC,
  parseNexthops,
  routeGateways,
  routerBirdConfig,
  type RouterMode,
} from './router-bird.js';

export type Log = (line: string) => void;

const here = dirname(fileURLToPath(import.meta.url));
/** dist/src/lab/cluster → repo root. */
const REPO = join(here, '..', '..', '..', '..');
export const CLI = join(REPO, 'bin', 'fullnat.js');
export const ECHO_SERVER = join(here, 'fixtures', 'echo-server.js');
export const CLUSTER_CLIENT = join(here, 'fixtures', 'cluster-client.js');
export const NEXTHOP_AGENT = join(here, 'fixtures', 'nexthop-agent.js');
export const OBJECT_SERVER = join(here, 'fixtures', 'object-server.js');
export const DOWNLOAD_CLIENT = join(here, 'fixtures', 'download-client.js');

export const CLUSTER_WORK_DIR = join(tmpdir(), `fullnat-${CLUSTER_PREFIX}`);
export const CLUSTER_LOCK_FILE = labLockPath(CLUSTER_PREFIX);
export const CLUSTER_RECEIVER = new LabReceiver(CLUSTER_PREFIX);

/** A node's fullnat keeps routing the VIP and its LIPs; under them these drop what a dead node gets. */
const DEAD_NODE_METRIC = '4000';

/** Where bird2's programs are (Debian puts them in /usr/sbin, often not on a user's PATH). */
export function birdBinaries(): { bird: string; birdc: string } | undefined {
  for (const dir of ['/usr/sbin', '/usr/local/sbin', ...(process.env.PATH ?? '').split(':')]) {
    if (dir && existsSync(join(dir, 'bird')) && existsSync(join(dir, 'birdc')))
      return { bird: join(dir, 'bird'), birdc: join(dir, 'birdc') };
  }
  return undefined;
}

/** Removes what a killed cluster lab left: namespaces and their processes, the receiver's cgroup and pins, the work directory. */
export async function cleanupClusterLeftovers(log: Log = () => {}): Promise<string[]> {
  const removed: string[] = [];
  CLUSTER_RECEIVER.killMembers();
  for (const ns of namespacesWithPrefix(CLUSTER_PREFIX))
    if (removeNamespace(ns)) removed.push(`namespace ${ns}`);
  removed.push(...(await CLUSTER_RECEIVER.removeLeftovers()));
  if (existsSync(CLUSTER_WORK_DIR)) rmSync(CLUSTER_WORK_DIR, { recursive: true, force: true });
  if (removed.length) log(`cluster: removed leftovers of an earlier run: ${removed.join(', ')}`);
  return removed;
}

export function stopChild(
  child: ChildProcess,
  signal: NodeJS.Signals,
  graceMs: number,
): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill(signal);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface RunningNode {
  child: ChildProcess;
  log: string;
  exited: Promise<void>;
}

export interface ClusterTopologyOptions {
  nodes: number;
  /** `drain_timeout` of every node, seconds. */
  drainTimeout: number;
  log: Log;
  /** Connection sync between the nodes (a `sync` block each, one key file). */
  sync?: boolean;
  /** Each node's metrics listener, `HOST:PORT` inside its namespace. */
  metrics?: string;
}

/** A real server's application: argv, started in its namespace. */
export type RealServerApp = (rs: { host: string }) => string[];

/** The echo server on RS_PORT (the failover and drain measurements). */
export const ECHO_APP: RealServerApp = (r) => [
  process.execPath,
  ECHO_SERVER,
  '--name',
  r.host,
  '--port',
  String(RS_PORT),
];

export class ClusterTopology {
  readonly lab = new NetnsLab(CLUSTER_PREFIX);
  readonly workDir = CLUSTER_WORK_DIR;
  readonly nodes: ClusterNode[];
  private readonly bin: { bird: string; birdc: string };
  private readonly running = new Map<string, RunningNode>();
  private readonly rootChildren = new Set<ChildProcess>();
  private routerBird: ChildProcess | undefined;
  private routerLog = '';
  private agent: ChildProcess | undefined;
  private agentLog = '';
  private mode: RouterMode = 'ecmp';
  private torndown = false;

  constructor(private readonly opts: ClusterTopologyOptions) {
    this.nodes = clusterNodes(opts.nodes);
    const bin = birdBinaries();
    if (!bin) throw new Error('bird2 is not installed (bird, birdc)');
    this.bin = bin;
  }

  get routerMode(): RouterMode {
    return this.mode;
  }

  nodeDir(node: ClusterNode): string {
    return join(this.workDir, node.name);
  }

  /** The fleet's shared sync secret (written by build() when sync is on). */
  syncKeyFile(): string {
    return join(this.workDir, 'sync.key');
  }

  /** Namespaces, links, addresses, routes, sysctls. Synchronous and quick. */
  build(): void {
    mkdirSync(this.workDir, { recursive: true });
    const L = this.lab;
    const hosts = ['c', 'rt', ...this.nodes.map((n) => n.name), ...REAL_SERVERS.map((r) => r.host)];
    for (const h of hosts) {
      L.addHost(h);
      // Before any link exists, so every interface inherits them.
      for (const k of ['all', 'default']) {
        L.sysctl(h, `net.ipv4.conf.${k}.rp_filter`, '0');
        L.sysctl(h, `net.ipv4.conf.${k}.send_redirects`, '0');
      }
    }
    L.sysctl('rt', 'net.ipv4.ip_forward', '1');
    L.sysctl('rt', 'net.ipv4.fib_multipath_hash_policy', '3');
    // Source and destination address, protocol, source and destination port: policy 1's fields.
    L.sysctl('rt', 'net.ipv4.fib_multipath_hash_fields', '0x0037');

    const cl = CLIENT_LINK;
    L.link(
      'c',
      'eth0',
      `${cl.client}/${cl.prefix}`,
      'rt',
      ROUTER_CLIENT_IF,
      `${cl.router}/${cl.prefix}`,
    );
    for (const a of [...HOLD_SOURCES, ...BURST_SOURCES])
      L.ip('c', 'addr', 'add', `${a}/32`, 'dev', 'eth0');
    L.ip('c', 'route', 'add', 'default', 'via', cl.router);
    L.ip('rt', 'route', 'add', CLIENT_SOURCES, 'via', cl.client);

    L.ip('rt', 'link', 'add', 'br0', 'type', 'bridge');
    L.ip('rt', 'addr', 'add', `${LAN.router}/${LAN.prefix}`, 'dev', 'br0');
    L.ip('rt', 'link', 'set', 'br0', 'up');
    for (const n of this.nodes) {
      L.link(n.name, 'eth0', `${n.addr}/${LAN.prefix}`, 'rt', n.name, null);
      L.ip('rt', 'link', 'set', n.name, 'master', 'br0');
      L.ip(n.name, 'route', 'add', 'default', 'via', LAN.router);
      L.ip(n.name, 'route', 'add', 'blackhole', `${VIP}/32`, 'metric', DEAD_NODE_METRIC);
      // With sync a node is routed its peers' LIPs when they die: dropped, not sent back, while it carries none.
      for (const p of this.opts.sync ? this.nodes : [n])
        L.ip(n.name, 'route', 'add', 'blackhole', p.lipPrefix, 'metric', DEAD_NODE_METRIC);
      mkdirSync(this.nodeDir(n), { recursive: true });
    }
    // Hex: whitespace-free, so the key is the same bytes however a reader trims it.
    if (this.opts.sync)
      writeFileSync(this.syncKeyFile(), randomBytes(32).toString('hex'), { mode: 0o600 });

    L.ip('rt', 'link', 'add', 'rs0', 'type', 'bridge');
    L.ip('rt', 'addr', 'add', `${RS_NET.router}/${RS_NET.prefix}`, 'dev', 'rs0');
    L.ip('rt', 'link', 'set', 'rs0', 'up');
    for (const r of REAL_SERVERS) {
      L.link(r.host, 'eth0', `${r.addr}/${RS_NET.prefix}`, 'rt', r.host, null);
      L.ip('rt', 'link', 'set', r.host, 'master', 'rs0');
      // The LIPs only through the router, which learns them from the nodes by BGP.
      L.ip(r.host, 'route', 'add', 'default', 'via', RS_NET.router);
    }
  }

  // ---------------------------------------------------------------- router

  private routerConf(): string {
    return join(this.workDir, 'router-bird.conf');
  }

  routerSocket(): string {
    return join(this.workDir, 'router-bird.ctl');
  }

  /** Starts the router's bird in `mode`; resolves once it answers on its socket. */
  async startRouter(mode: RouterMode): Promise<void> {
    this.mode = mode;
    writeFileSync(this.routerConf(), routerBirdConfig(this.nodes));
    const child = this.lab.spawn('rt', this.bin.bird, [
      '-f',
      '-c',
      this.routerConf(),
      '-s',
      this.routerSocket(),
    ]);
    const keep = (c: Buffer): void => {
      this.routerLog = (this.routerLog + c.toString()).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.routerBird = child;
    const until = Date.now() + 10_000;
    while (!(await this.birdc(['show', 'status'])).includes('Daemon is up')) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`the router's bird exited\n${this.routerLog.slice(-2000)}`);
      if (Date.now() > until)
        throw new Error(
          `the router's bird did not answer within 10 s\n${this.routerLog.slice(-2000)}`,
        );
      await sleep(100);
    }
    if (mode === 'resilient') await this.startAgent();
  }

  /** Switches the router between plain ECMP and the resilient group (the agent started or stopped). */
  async setRouterMode(mode: RouterMode): Promise<void> {
    if (mode === this.mode) return;
    if (mode === 'resilient') await this.startAgent();
    else await this.stopAgent();
    this.mode = mode;
  }

  /** `birdc -s SOCK ARGS` against the router's bird (its output; '' when it could not be reached). */
  birdc(args: string[]): Promise<string> {
    return new Promise((resolve) =>
      execFile(
        this.bin.birdc,
        ['-s', this.routerSocket(), ...args],
        { timeout: 5000 },
        (err, out) => resolve(err ? '' : out),
      ),
    );
  }

  routerLogTail(chars = 2000): string {
    return this.routerLog.slice(-chars);
  }

  private async startAgent(): Promise<void> {
    await this.stopAgent();
    this.agentLog = '';
    const child = this.lab.spawn('rt', process.execPath, [
      NEXTHOP_AGENT,
      '--vip',
      VIP,
      '--metric',
      String(AGENT_ROUTE_METRIC),
      '--group',
      String(RESILIENT_GROUP_ID),
      '--dev',
      'br0',
    ]);
    child.stdout?.on('data', (c: Buffer) => {
      this.agentLog = (this.agentLog + c.toString()).slice(-20_000);
    });
    child.stderr?.on('data', (c: Buffer) => {
      this.agentLog = (this.agentLog + c.toString()).slice(-20_000);
    });
    this.agent = child;
  }

  private async stopAgent(): Promise<void> {
    const a = this.agent;
    this.agent = undefined;
    if (a) await stopChild(a, 'SIGTERM', 2000);
  }

  agentLogTail(chars = 2000): string {
    return this.agentLog.slice(-chars);
  }

  /**
   * The nodes the router's route for the VIP sends to (their LAN
   * addresses, sorted): the multipath route's members, or in the resilient
   * mode the members of the nexthop group behind it.
   */
  async vipGateways(): Promise<string[]> {
    const gws = routeGateways(await this.ipJson('rt', ['route', 'show', `${VIP}/32`]));
    if (!gws.some((g) => g.startsWith('nhid:'))) return gws;
    const { groups, gateways } = parseNexthops(await this.ipJson('rt', ['nexthop', 'show']));
    const out = new Set<string>();
    for (const g of gws) {
      if (!g.startsWith('nhid:')) {
        out.add(g);
        continue;
      }
      const id = Number(g.slice(5));
      for (const m of groups.get(id) ?? [id]) {
        const gw = gateways.get(m);
        if (gw) out.add(gw);
      }
    }
    return [...out].sort();
  }

  /** Per member id, how many buckets of the resilient group it holds. */
  async groupBuckets(): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    const text = (
      await this.ipJson('rt', ['nexthop', 'bucket', 'show', 'id', String(RESILIENT_GROUP_ID)])
    ).trim();
    if (!text) return out;
    for (const b of JSON.parse(text) as { bucket?: { nhid?: number } }[]) {
      const id = b.bucket?.nhid;
      if (id !== undefined) out.set(id, (out.get(id) ?? 0) + 1);
    }
    return out;
  }

  /** The LIP prefixes the router has a route for. */
  async lipRoutes(): Promise<Map<string, string[]>> {
    const text = (await this.ipJson('rt', ['route', 'show', 'proto', 'bird'])).trim();
    const out = new Map<string, string[]>();
    if (!text) return out;
    for (const r of JSON.parse(text) as {
      dst: string;
      gateway?: string;
      nexthops?: { gateway?: string }[];
    }[]) {
      const gws = r.nexthops?.length
        ? r.nexthops.flatMap((n) => (n.gateway ? [n.gateway] : []))
        : r.gateway
          ? [r.gateway]
          : [];
      out.set(r.dst, gws);
    }
    return out;
  }

  ipJson(host: string, args: string[]): Promise<string> {
    return new Promise((resolve, reject) =>
      execFile('ip', ['-n', this.lab.ns(host), '-j', ...args], { timeout: 5000 }, (err, out) =>
        err ? reject(err) : resolve(out),
      ),
    );
  }

  /**
   * Waits until the router sends the VIP to exactly `members` and routes
   * each member's LIP prefix to it; in the resilient mode also until every
   * member holds its share of the buckets (a returning node gets idle ones).
   */
  async waitForFleet(members: readonly ClusterNode[], timeoutMs: number): Promise<void> {
    const want = members
      .map((n) => n.addr)
      .sort()
      .join(',');
    const until = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < until) {
      const gws = (await this.vipGateways()).join(',');
      const lips = await this.lipRoutes();
      const lipsOk = members.every((n) => lips.get(n.lipPrefix)?.includes(n.addr));
      last = `VIP via [${gws}], LIP routes ${[...lips.keys()].join(' ') || 'none'}`;
      if (
        gws === want &&
        lipsOk &&
        (this.mode === 'ecmp' || (await this.groupBalanced(members.length)))
      )
        return;
      await sleep(100);
    }
    throw new Error(
      `the router did not converge on ${members.map((n) => n.name).join(', ')} within ${timeoutMs} ms (${last})\n` +
        `router bird:\n${this.routerLogTail()}\n${members.map((n) => `${n.name}:\n${this.nodeLogTail(n, 800)}`).join('\n')}`,
    );
  }

  private async groupBalanced(members: number): Promise<boolean> {
    const counts = [...(await this.groupBuckets()).values()];
    if (counts.length !== members) return false;
    return Math.max(...counts) - Math.min(...counts) <= 1;
  }

  // ------------------------------------------------------------ real servers

  /** Starts `app` (the echo server by default) in every RS namespace, under the receiver when `receiverExec` is given. */
  async startRealServers(
    receiverExec: string[] | null,
    app: RealServerApp = ECHO_APP,
  ): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const r of REAL_SERVERS) {
      const child = spawnRealServerApp(this.lab, r.host, app(r), receiverExec, this.rootChildren);
      let err = '';
      child.stderr?.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
      waits.push(
        waitForOutput(
          child,
          'stdout',
          /"listening"/,
          15_000,
          `the application of ${r.host}`,
          () => err,
        ),
      );
    }
    await Promise.all(waits);
  }

  // ------------------------------------------------------------------ nodes

  /** Writes the node's configuration and starts `fullnat run` in its namespace; resolves once it forwards. */
  async startNode(node: ClusterNode): Promise<void> {
    if (this.nodeAlive(node)) return;
    const dir = this.nodeDir(node);
    const conf = join(dir, `${node.name}.conf`);
    writeFileSync(
      conf,
      nodeConfig(node, {
        dir,
        drainTimeout: this.opts.drainTimeout,
        metrics: this.opts.metrics,
        sync: this.opts.sync ? { fleet: this.nodes, keyFile: this.syncKeyFile() } : undefined,
      }),
    );
    const child = this.lab.spawn(node.name, process.execPath, [CLI, 'run', '-f', conf]);
    const rec: RunningNode = {
      child,
      log: '',
      exited: new Promise((resolve) => child.once('exit', () => resolve())),
    };
    const keep = (c: Buffer): void => {
      rec.log = (rec.log + c.toString()).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.running.set(node.name, rec);
    await waitForOutput(
      child,
      'stderr',
      /fullnat running/,
      20_000,
      `fullnat run (${node.name})`,
      () => rec.log.slice(-3000),
    );
  }

  nodeAlive(node: ClusterNode): boolean {
    const r = this.running.get(node.name);
    return r !== undefined && r.child.exitCode === null && r.child.signalCode === null;
  }

  /** Resolves when the node's fullnat has exited (at once when it is not running). */
  nodeExited(node: ClusterNode): Promise<void> {
    return this.running.get(node.name)?.exited ?? Promise.resolve();
  }

  /** The pid of the node's fullnat while it runs (`ip netns exec` execs it: the child's own pid). */
  nodePid(node: ClusterNode): number | undefined {
    return this.nodeAlive(node) ? this.running.get(node.name)?.child.pid : undefined;
  }

  nodeLogTail(node: ClusterNode, chars = 3000): string {
    return (this.running.get(node.name)?.log ?? '').slice(-chars);
  }

  /** `kill -9` of the node's fullnat; returns when it was sent (epoch ms). */
  killNode(node: ClusterNode): number {
    const r = this.running.get(node.name);
    if (!r?.child.pid) throw new Error(`${node.name} is not running`);
    const at = Date.now();
    process.kill(r.child.pid, 'SIGKILL');
    return at;
  }

  /** One control request to the node's fullnat (its socket is a file: reachable from here). */
  request(node: ClusterNode, req: ControlRequest, timeoutMs = 5000): Promise<ControlResponse> {
    return sendControlRequest(nodeControlSocket(this.nodeDir(node)), req, timeoutMs);
  }

  // --------------------------------------------------------------- teardown

  /** Stops everything and deletes the namespaces. Idempotent. */
  async destroy(): Promise<void> {
    if (this.torndown) return;
    await this.stopAgent();
    await Promise.all([...this.running.values()].map((r) => stopChild(r.child, 'SIGTERM', 3000)));
    if (this.routerBird) await stopChild(this.routerBird, 'SIGTERM', 2000);
    await Promise.all([...this.rootChildren].map((c) => stopChild(c, 'SIGTERM', 2000)));
    await this.lab.destroy();
    rmSync(this.workDir, { recursive: true, force: true });
    this.torndown = true;
  }

  /** For `process.on('exit')`: no waiting, kill and delete — also when `destroy()` was cut short. */
  destroySync(): void {
    if (this.torndown) return;
    for (const c of this.rootChildren) c.kill('SIGKILL');
    for (const ns of [...this.lab.namespaces]) removeNamespace(ns);
    rmSync(this.workDir, { recursive: true, force: true });
    this.torndown = true;
  }
}
