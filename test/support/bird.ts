/**
 * bird2 as the fleet tests use it: whether it is installed, a plain bird
 * "router" in a namespace peering with the node under test, what that
 * router has learned (`birdc -s SOCK show route`), a wrapper that starts
 * fullnat's own bird inside a namespace, and BgpSpecs built in place
 * (the tests do not depend on the config grammar).
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findBird } from '../../src/control/cluster/bird.js';
import type { BgpNeighborSpec, BgpSpec } from '../../src/control/model.js';
import type { NetnsLab } from '../../src/lab/netns.js';
import { ipv4 } from './addresses.js';

export interface BirdTools {
  ok: boolean;
  reason: string;
  bird: string;
  birdc: string;
}

/** bird and birdc (Debian's bird2); under FULLNAT_REQUIRE_ALL the skip this gives fails the run. */
export function birdTools(): BirdTools {
  const bird = findBird() ?? '';
  const birdc = bird === '' ? '' : join(bird, '..', 'birdc');
  if (bird === '' || !existsSync(birdc))
    return { ok: false, reason: 'bird2 is not installed (apt-get install bird2)', bird, birdc };
  return { ok: true, reason: '', bird, birdc };
}

/** A neighbour of the node: defaults of the config grammar (hold 9 s, BFD off). */
export function neighbor(addr: string, remoteAs: number, over: Partial<BgpNeighborSpec> = {}) {
  return {
    addr: ipv4(addr),
    remoteAs,
    holdTime: 9,
    bfd: false,
    pos: { file: 'test', line: 1 },
    ...over,
  } satisfies BgpNeighborSpec;
}

/** A `bgp` block as the parser would hand it over. */
export function bgpSpec(over: Partial<BgpSpec> & Pick<BgpSpec, 'routerId' | 'neighbors'>): BgpSpec {
  return {
    localAs: 65011,
    communities: [],
    bfdInterval: 100,
    bfdMultiplier: 3,
    lipPrefixes: [],
    pos: { file: 'test', line: 1 },
    ...over,
  };
}

export interface RouterPeer {
  addr: string;
  as: number;
  bfd?: boolean;
}

/** A plain bird that learns what its peers announce (and installs it when `kernel`). */
export function routerConfig(
  routerId: string,
  localAs: number,
  peers: RouterPeer[],
  opts: { kernel?: boolean; holdTime?: number } = {},
): string {
  const lines = [`router id ${routerId};`, 'protocol device {}'];
  if (opts.kernel) lines.push('protocol kernel { ipv4 { import none; export all; }; }');
  if (peers.some((p) => p.bfd))
    lines.push('protocol bfd { interface "*" { interval 100 ms; multiplier 3; }; }');
  peers.forEach((p, i) => {
    lines.push(
      `protocol bgp peer${i + 1} {`,
      `  local as ${localAs};`,
      `  neighbor ${p.addr} as ${p.as};`,
      `  hold time ${opts.holdTime ?? 3};`,
      ...(p.bfd ? ['  bfd on;'] : []),
      '  ipv4 { import all; export none; };',
      '}',
    );
  });
  return `${lines.join('\n')}\n`;
}

/** Starts the router's bird in `host` (killed with the lab); its control socket is `dir/router.ctl`. */
export function startRouter(
  lab: NetnsLab,
  host: string,
  tools: BirdTools,
  dir: string,
  config: string,
): { sock: string; child: ChildProcess } {
  const conf = join(dir, `${host}-bird.conf`);
  const sock = join(dir, `${host}.ctl`);
  writeFileSync(conf, config);
  const child = lab.spawn(host, tools.bird, ['-f', '-c', conf, '-s', sock]);
  return { sock, child };
}

/** `birdc -s SOCK ARGS…`: its output, '' when bird does not answer. */
export function birdc(tools: BirdTools, sock: string, ...args: string[]): string {
  try {
    return execFileSync(tools.birdc, ['-s', sock, ...args], { encoding: 'utf8', timeout: 5000 });
  } catch {
    return '';
  }
}

/** The prefixes in the router's table (`show route`): what its peers announce. */
export function routesAt(tools: BirdTools, sock: string): string[] {
  const out = birdc(tools, sock, 'show', 'route');
  return [...out.matchAll(/^(\S+\/\d+)\s/gm)].map((m) => m[1]!).sort();
}

/** The router's BGP sessions by protocol name and state (`show protocols`). */
export function sessionsAt(tools: BirdTools, sock: string): Map<string, string> {
  const out = birdc(tools, sock, 'show', 'protocols');
  const m = new Map<string, string>();
  for (const row of out.matchAll(/^(\S+)\s+BGP\s+\S+\s+\S+\s+\S+\s+(\S+)/gm))
    m.set(row[1]!, row[2]!);
  return m;
}

/**
 * A stand-in for the bird binary that runs the real one inside namespace
 * `ns` (exec all the way, so the pid the watchdog holds is bird's).
 */
export function birdInNamespace(tools: BirdTools, dir: string, ns: string): string {
  const path = join(dir, `bird-in-${ns}`);
  writeFileSync(path, `#!/bin/sh\nexec ip netns exec ${ns} ${tools.bird} "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

/** Whether process `pid` is alive (and not a zombie). */
export function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * The router's session `protocol` as `show protocols` prints it past the
 * table column: state, since when, info. A session that dropped and came
 * back has another "since".
 */
export function sessionLine(tools: BirdTools, sock: string, protocol: string): string {
  const line = birdc(tools, sock, 'show', 'protocols')
    .split('\n')
    .find((l) => l.startsWith(`${protocol} `));
  return line?.trim().split(/\s+/).slice(3).join(' ') ?? '';
}

/** One route the router holds: which session brought it, whether bird picked it, its AS path. */
export interface RouterRoute {
  prefix: string;
  /** The router's protocol (session) the route came from: `peer1`, `peer2`… */
  protocol: string;
  /** bird's best route for the prefix (the `*` of `show route`). */
  best: boolean;
  asPath: number[];
}

/** The router's routes with their AS paths (`show route all`), in bird's order. */
export function routeDetails(tools: BirdTools, sock: string): RouterRoute[] {
  const out: RouterRoute[] = [];
  let prefix = '';
  for (const line of birdc(tools, sock, 'show', 'route', 'all').split('\n')) {
    // `10.0.0.0/28  unicast [peer1 12:00:00.000] * (100) [AS65011i]`; a further route of the prefix omits it.
    const head = /^(\S+\/\d+)?\s+\S+\s+\[(\S+) [^\]]*\]( \*)?/.exec(line);
    if (head && !line.startsWith('\t')) {
      if (head[1] !== undefined) prefix = head[1];
      out.push({ prefix, protocol: head[2]!, best: head[3] !== undefined, asPath: [] });
      continue;
    }
    const path = /^\s+BGP\.as_path:\s*(.*)$/.exec(line);
    const last = out.at(-1);
    if (path && last) last.asPath = path[1]!.split(/\s+/).filter(Boolean).map(Number);
  }
  return out;
}
