/**
 * `fullnat rs attach|detach|status|exec`: the eBPF TOA and UOA receiver on a
 * real server, so an unmodified server sees the client's address over TCP
 * and UDP (see ebpf.ts, tc.ts).
 *
 * `runRs(args)` parses its own arguments (everything after `rs`), so that
 * `exec -- CMD ARGS…` reaches the command untouched; wire it like `ctl`:
 *
 *   program.command('rs').helpOption(false).allowUnknownOption().allowExcessArguments()
 *     .argument('[args...]').action(async (args: string[]) => { code = await runRs(args); });
 *
 * Exit codes: 0 success; 1 failure (message on stderr naming what is
 * missing); 2 usage error; `status` exits 3 when the receiver is not
 * attached anywhere; `exec` exits with the command's code (128+N if it died
 * of signal N, after re-raising it; 127 if it could not be found, 126 if it
 * could not be run).
 */
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import {
  attach,
  detach,
  enterCgroup,
  ownCgroup,
  parseTrustList,
  RealServerError,
  status,
  UOA_MAP_MAX,
  type AttachOptions,
  type EbpfOptions,
  type Status,
  type TrustPrefix,
  type TrustState,
} from './ebpf.js';
import type { TcAttachResult } from './tc.js';

export const RS_USAGE = `Usage: fullnat rs <command> [options]

The TOA and UOA receiver for real servers, in eBPF (no kernel module): an
unmodified server started inside the cgroup sees the client's address — TCP:
from the load balancer's TOA option, in accept() and getpeername(); UDP: from
its UOA (DPVS's ipo and opp formats, as uoa.ko reads them), in recvfrom(),
and its sendto() the client goes back through the load balancer.

Commands:
  attach [--cgroup PATH] [--trust PREFIXES] [--dev IFACE]...
                                    load the programs (once), attach them to the cgroup
                                    (default <cgroup2 mount>/fullnat-toa, created if missing)
                                    and the UDP part's tc program to the interfaces' ingress
  detach [--cgroup PATH] [--dev IFACE]...
                                    detach from PATH and/or the interfaces named; with neither,
                                    from every cgroup and every interface; unload when none is left
  status [--json]                   loaded? attached where? trusted LBs? counters: TCP handshakes
                                    with TOA / without / malformed / from untrusted peers, errors,
                                    getpeername rewrites; UDP datagrams with ipo / opp UOA, opp
                                    shims removed, UOA-only datagrams dropped, untrusted,
                                    malformed, mappings, recvfrom rewrites, sendto redirects; the
                                    kernel's InUnknownProtos
  exec [--cgroup PATH] [--trust PREFIXES] [--dev IFACE]... -- CMD ARGS
                                    attach if needed, move into the cgroup, run CMD there
                                    (stdio inherited, signals forwarded, exits with CMD's code)

Options:
  --cgroup PATH    a cgroup v2 directory (absolute, or relative to the cgroup2 mount);
                   "self" = the cgroup this process is in (exec then does not move)
  --trust PREFIXES the load balancers whose TOAs are believed: their local addresses (LIPs)
                   as comma-separated IPv4/IPv6 prefixes, e.g. 10.0.3.0/24,10.0.4.7,fd00:3::/64
                   (a bare address is one host; an IPv4 peer of a dual-stack socket is matched
                   as IPv4). A TOA on a connection from any other peer is ignored: the server
                   sees that peer, and \`status\` counts it as untrusted. The list belongs to
                   the pins (every cgroup attached from one --pin-dir shares it) and each
                   --trust REPLACES it; without --trust a first load trusts any peer (and
                   warns: any host that reaches the server can forge its client address), a
                   later attach keeps the list in force. --trust 0.0.0.0/0,::/0 trusts anyone.
  --dev IFACE      an interface of this network namespace whose ingress runs the UDP part's tc
                   program (clsact, pref 248); repeatable or comma-separated; default every UP
                   non-loopback interface; "none": no interface (TCP only). tc acts in the
                   network namespace fullnat runs in: to serve one, enter it with
                   \`nsenter --net=/run/netns/NS fullnat rs exec -- CMD\` (\`ip netns exec\`
                   hides /sys/fs/bpf, where the programs are pinned).
  --pin-dir DIR    bpffs directory for the pins (default $FULLNAT_TOA_PIN_DIR or /sys/fs/bpf/fullnat-toa)
  --object FILE    compiled programs (default build/bpf/toa.bpf.o)
  --json           one JSON document on stdout

Only sockets created inside the cgroup are covered, so the server must open its
listening socket after joining it: start it with \`fullnat rs exec -- CMD\`. With
systemd, either ExecStart=fullnat rs exec --cgroup self -- CMD (attaches to the
unit's own cgroup, nothing moves) or ExecStartPre=fullnat rs attach --cgroup self.
Needs root (CAP_BPF+CAP_NET_ADMIN), Linux >= 5.10, cgroup v2, bpftool, tc (iproute2).

UDP: the load balancer puts the UOA on a flow's first datagrams. ipo (an IPv4
option) reaches any server; opp (IP protocol 248) is dropped by a kernel
without the receiver — the kernel's Ip: InUnknownProtos (nstat -az
IpInUnknownProtos Ip6InUnknownProtos) grows, and \`status\` prints it: choose
uoa_mode ipo or off on the load balancer for servers that do not run this.
A UDP socket connected to the client is connected to the LIP instead (its
getpeername() reports the LIP); an IPv6 client behind an IPv4 LIP (NAT64) is
reported as the LIP and counted as unexpressible.
`;

export interface RsIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

const defaultIo: RsIo = {
  out: (l) => console.log(l),
  err: (l) => console.error(l),
};

interface Parsed {
  command: string;
  cgroup?: string;
  /** The --trust values as given (repeatable), checked by parse. */
  trustArgs: string[];
  trust?: TrustPrefix[];
  /** --dev values, split at commas; undefined: the default interfaces. */
  devs?: string[];
  json: boolean;
  ebpf: EbpfOptions;
  rest: string[];
}

class UsageError extends Error {}

const COMMANDS = new Set(['attach', 'detach', 'status', 'exec', 'help']);

function parse(args: string[]): Parsed {
  const [command = 'help', ...tail] = args;
  if (command === '-h' || command === '--help')
    return { command: 'help', trustArgs: [], json: false, ebpf: {}, rest: [] };
  if (!COMMANDS.has(command)) throw new UsageError(`unknown command "${command}"`);
  const p: Parsed = { command, trustArgs: [], json: false, ebpf: {}, rest: [] };
  for (let i = 0; i < tail.length; i++) {
    const a = tail[i]!;
    const value = (): string => {
      const eq = a.indexOf('=');
      if (eq > 0) return a.slice(eq + 1);
      const v = tail[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    const name = a.startsWith('--') && a.includes('=') ? a.slice(0, a.indexOf('=')) : a;
    if (name === '--cgroup' && command !== 'status') p.cgroup = value();
    else if (name === '--pin-dir') p.ebpf.pinDir = value();
    else if (name === '--object' && (command === 'attach' || command === 'exec'))
      p.ebpf.object = value();
    else if (name === '--trust' && (command === 'attach' || command === 'exec'))
      p.trustArgs.push(value());
    else if (name === '--dev' && command !== 'status') {
      const devs = value()
        .split(',')
        .map((d) => d.trim())
        .filter(Boolean);
      if (devs.length === 0) throw new UsageError('--dev needs an interface name');
      p.devs = [...(p.devs ?? []), ...devs];
    } else if (name === '--json' && command !== 'exec') p.json = true;
    else if (a === '-h' || a === '--help')
      return { command: 'help', trustArgs: [], json: false, ebpf: {}, rest: [] };
    else if (command === 'exec' && a === '--') {
      p.rest = tail.slice(i + 1);
      break;
    } else if (command === 'exec' && !a.startsWith('-')) {
      // The command line's `--` may already have been consumed by an outer parser.
      p.rest = tail.slice(i);
      break;
    } else throw new UsageError(`unknown option "${a}" for "rs ${command}"`);
  }
  if (command === 'exec' && p.rest.length === 0)
    throw new UsageError('rs exec needs a command: rs exec [--cgroup PATH] -- CMD ARGS…');
  if (p.devs && p.devs.includes('none') && p.devs.length > 1)
    throw new UsageError('--dev none cannot be combined with interface names');
  if (p.trustArgs.length > 0) {
    try {
      p.trust = parseTrustList(p.trustArgs);
    } catch (err) {
      if (err instanceof RealServerError) throw new UsageError(err.message);
      throw err;
    }
  }
  return p;
}

/** The warning for a list that lets anyone forge, or undefined when it does not. */
export function trustWarning(t: TrustState): string | undefined {
  const v4 = t.prefixes.includes('0.0.0.0/0');
  const v6 = t.prefixes.includes('::/0');
  if (!v4 && !v6) return undefined;
  const who = v4 && v6 ? '' : v4 ? 'IPv4 ' : 'IPv6 ';
  return (
    `fullnat rs: warning: TOAs are trusted from any ${who}peer: any ${who}host that can reach this server can forge its client address; ` +
    "restrict it with --trust LIP-PREFIXES (the load balancers' local addresses, e.g. --trust 10.0.3.0/24)"
  );
}

const trustText = (t: TrustState): string =>
  t.anyPeer
    ? 'any peer'
    : t.prefixes.length === 0
      ? 'none (every TOA is ignored)'
      : t.prefixes.join(', ');

function attachOptions(p: Parsed): AttachOptions {
  return { ...(p.trust ? { trust: p.trust } : {}), ...(p.devs ? { devs: p.devs } : {}) };
}

/** Where the UDP part runs after an attach. */
function tcText(tc: readonly TcAttachResult[]): string {
  const on = tc.filter((t) => t.error === undefined);
  if (on.length === 0)
    return 'UDP (UOA) part on no interface (UOAs are not read; --dev IFACE to choose)';
  return `UDP (UOA) part on the ingress of ${on.map((t) => `${t.dev}${t.attached ? '' : ' (already)'}`).join(', ')}`;
}

function tcWarnings(tc: readonly TcAttachResult[], io: RsIo): void {
  for (const t of tc)
    if (t.error !== undefined)
      io.err(`fullnat rs: warning: UDP (UOA) part not attached to ${t.dev}: ${t.error}`);
}

const UNKNOWN_PROTOS_HINT =
  'grows when opp UOA datagrams (protocol 248) reach a server without the receiver; nstat -az IpInUnknownProtos';

function unknownProtosLines(s: Status): string[] {
  const u = s.unknownProtos;
  const v = (n: number | undefined): string => (n === undefined ? 'unreadable' : String(n));
  return [
    `  kernel: Ip InUnknownProtos ${v(u.ipv4)}, Ip6InUnknownProtos ${v(u.ipv6)} (${UNKNOWN_PROTOS_HINT})`,
  ];
}

/** The human-readable `rs status`. */
export function formatStatus(s: Status): string[] {
  const lines: string[] = [];
  if (!s.loaded) {
    lines.push(`TOA receiver: not loaded (no pins in ${s.pinDir})`);
    if (s.problem) lines.push(`  cannot load here: ${s.problem}`);
    else if (!s.objectBuilt) lines.push(`  object ${s.object} is not built`);
    lines.push(...unknownProtosLines(s));
    return lines;
  }
  lines.push(`TOA receiver: loaded, pinned at ${s.pinDir}`);
  lines.push(
    `  programs: ${s.programs.map((p) => `${p.name} (id ${p.id}, ${p.attach})`).join(', ')}`,
  );
  if (s.attachments.length === 0) lines.push('  attached: nowhere (run: fullnat rs attach)');
  for (const a of s.attachments)
    lines.push(`  attached: ${a.cgroup} (${a.programs.map((p) => p.attach).join(', ')})`);
  if (s.trust)
    lines.push(
      `  trusted LBs: ${trustText(s.trust)}${s.trust.anyPeer ? ' (restrict: fullnat rs attach --trust LIP-PREFIXES)' : ''}`,
    );
  const c = s.counters;
  const rows: [string, number][] = [
    ['handshakes with TOA', c.withToa],
    ['handshakes without TOA', c.withoutToa],
    ['handshakes malformed options', c.malformed],
    ['errors (no segment / no storage)', c.errors],
    ['getpeername/accept rewrites', c.peerRewrites],
    ['IPv6 TOA on an IPv4 socket', c.v6OnV4Socket],
    ['TOAs ignored (peer not trusted)', c.untrusted],
  ];
  const u = s.uoa.counters;
  const udpRows: [string, number | string][] = [
    ['datagrams with an ipo UOA', u.ipo],
    ['opp datagrams (protocol 248)', u.opp],
    ['opp shims removed', u.oppStripped],
    ['UOA-only datagrams dropped', u.emptyDropped],
    ['UOAs ignored (source not trusted)', u.untrusted],
    ['malformed UOA / opp header', u.malformed],
    ['client mappings recorded', u.recorded],
    ['client mappings held', `${s.uoa.mappings} (of ${UOA_MAP_MAX}, LRU)`],
    ['recvfrom sources rewritten', u.recvRewrites],
    ['sendto/connect redirected to LIP', u.sendRedirects],
    ['client family not expressible', u.unexpressible],
    ['UDP errors (map update / shim)', u.errors],
  ];
  const w = Math.max(...[...rows, ...udpRows].map(([k]) => k.length));
  for (const [k, v] of rows) lines.push(`  ${k.padEnd(w)}  ${v}`);
  lines.push(
    s.uoa.tc.length === 0
      ? '  UDP (UOA): on no interface of this network namespace (run: fullnat rs attach [--dev IFACE])'
      : `  UDP (UOA): tc ingress of ${s.uoa.tc.map((t) => `${t.dev} (${t.program}, id ${t.id})`).join(', ')}`,
  );
  for (const [k, v] of udpRows) lines.push(`  ${k.padEnd(w)}  ${v}`);
  lines.push(...unknownProtosLines(s));
  return lines;
}

function signalNumber(sig: NodeJS.Signals): number {
  return (osConstants.signals as Record<string, number>)[sig] ?? 0;
}

const FORWARDED: NodeJS.Signals[] = [
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
  'SIGWINCH',
];
/** Signals whose default action ends a Node process, so re-raising them reproduces the child's fate. */
const FATAL = new Set<NodeJS.Signals>([
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGQUIT',
  'SIGKILL',
  'SIGABRT',
  'SIGALRM',
  'SIGUSR2',
]);

function onPath(file: string): boolean {
  return (process.env.PATH ?? '')
    .split(':')
    .filter(Boolean)
    .some((d) => {
      try {
        return statSync(join(d, file)).isFile();
      } catch {
        return false;
      }
    });
}

/** Spawns `cmd` with inherited stdio, forwards signals, resolves with its exit code. */
export function runForwarding(cmd: string[], io: RsIo = defaultIo): Promise<number> {
  return new Promise((resolve) => {
    const [file, ...args] = cmd as [string, ...string[]];
    const child = spawn(file, args, { stdio: 'inherit' });
    const handlers = new Map<NodeJS.Signals, () => void>();
    for (const sig of FORWARDED) {
      const h = (): void => {
        if (child.exitCode === null && child.signalCode === null) child.kill(sig);
      };
      handlers.set(sig, h);
      process.on(sig, h);
    }
    const cleanup = (): void => {
      for (const [sig, h] of handlers) process.removeListener(sig, h);
    };
    child.on('error', (err: NodeJS.ErrnoException) => {
      cleanup();
      // execvp reports EACCES when an unreadable PATH directory was tried, even if the
      // command exists nowhere: say "not found" (127) then, like a shell.
      const notFound = err.code === 'ENOENT' || (!file.includes('/') && !onPath(file));
      io.err(`fullnat rs: cannot run ${file}: ${notFound ? 'command not found' : err.message}`);
      resolve(notFound ? 127 : 126);
    });
    child.on('exit', (code, signal) => {
      cleanup();
      if (signal === null) {
        resolve(code ?? 0);
        return;
      }
      const signalled = 128 + signalNumber(signal);
      if (!FATAL.has(signal) || process.listenerCount(signal) > 0) {
        resolve(signalled);
        return;
      }
      // Die of the same signal, so our parent (a shell, systemd) sees what happened to CMD.
      try {
        process.kill(process.pid, signal);
      } catch {
        // fall through to the exit code
      }
      setTimeout(() => resolve(signalled), 100).unref();
    });
  });
}

/** Runs `fullnat rs ARGS…`; returns the exit code. */
export async function runRs(args: string[], io: RsIo = defaultIo): Promise<number> {
  let p: Parsed;
  try {
    p = parse(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`fullnat rs: ${err.message}`);
    io.err('run `fullnat rs --help` for usage');
    return 2;
  }
  try {
    switch (p.command) {
      case 'help':
        io.out(RS_USAGE.trimEnd());
        return 0;
      case 'attach': {
        const r = attach(p.cgroup, p.ebpf, attachOptions(p));
        const warning = trustWarning(r.trust);
        if (warning) io.err(warning);
        tcWarnings(r.tc, io);
        if (p.json) io.out(JSON.stringify(r));
        else {
          const what = r.attached.length
            ? `attached to ${r.cgroup}`
            : r.inherited.length
              ? `already in force on ${r.cgroup} (attached to an ancestor cgroup)`
              : `already attached to ${r.cgroup}`;
          io.out(
            `fullnat rs: TOA receiver ${what}${r.loaded ? `; programs loaded and pinned at ${r.pinDir}` : ''}`,
          );
          if (!r.trust.anyPeer)
            io.out(
              `fullnat rs: TOAs believed only from ${trustText(r.trust)}${r.trustSet ? '' : ' (the list in force; --trust replaces it)'}`,
            );
          io.out(`fullnat rs: ${tcText(r.tc)}`);
          io.out(
            `fullnat rs: servers must create their listening socket inside it: fullnat rs exec${p.cgroup === undefined ? '' : ` --cgroup ${r.cgroup}`} -- CMD`,
          );
        }
        return 0;
      }
      case 'detach': {
        const r = detach(p.cgroup, p.ebpf, p.devs);
        if (p.json) io.out(JSON.stringify(r));
        else {
          if (r.detached.length === 0 && r.tcDetached.length === 0)
            io.out(`fullnat rs: TOA receiver was not attached${r.cgroup ? ` to ${r.cgroup}` : ''}`);
          for (const c of r.detached) io.out(`fullnat rs: detached from ${c}`);
          for (const d of r.tcDetached) io.out(`fullnat rs: UDP (UOA) program removed from ${d}`);
          if (r.unloaded) io.out(`fullnat rs: programs unloaded (pins in ${r.pinDir} removed)`);
          if (r.removedCgroup) io.out(`fullnat rs: removed the empty cgroup ${r.removedCgroup}`);
        }
        return 0;
      }
      case 'status': {
        const s = status(p.ebpf);
        if (p.json) io.out(JSON.stringify(s));
        else for (const l of formatStatus(s)) io.out(l);
        return s.attached ? 0 : 3;
      }
      case 'exec': {
        const self = p.cgroup === 'self';
        const r = attach(p.cgroup, p.ebpf, attachOptions(p));
        if (r.attached.length || r.loaded)
          io.err(`fullnat rs: TOA receiver attached to ${r.cgroup}`);
        if (r.tc.some((t) => t.attached)) io.err(`fullnat rs: ${tcText(r.tc)}`);
        tcWarnings(r.tc, io);
        const warning = trustWarning(r.trust);
        if (warning) io.err(warning);
        if (!self && ownCgroup() !== r.cgroup) enterCgroup(r.cgroup);
        return await runForwarding(p.rest, io);
      }
    }
  } catch (err) {
    if (err instanceof RealServerError) {
      io.err(`fullnat rs: ${err.message}`);
      return 1;
    }
    throw err;
  }
  return 2;
}
