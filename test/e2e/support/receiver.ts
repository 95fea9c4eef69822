/**
 * Real servers that learn the client through the eBPF TOA receiver, as the
 * end-to-end tests run them: what the host must have, the cgroup and pin
 * directory of a test's receiver, attaching and detaching it, servers started
 * inside it, tearing a test file's lab down, and nginx's
 * configuration around a test's own `http` block.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { netnsAvailable, type NetnsLab } from '../../../src/lab/netns.js';
import { tunAvailable } from '../../../src/io/tun.js';
import { cli, repo } from './harness.js';

/** Where cgroup v2 is mounted, if it is. */
export function cgroup2Mount(): string | undefined {
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n');
  return mounts.map((l) => l.split(' ')).find((f) => f[2] === 'cgroup2')?.[1];
}

/** The first of `tools` found neither on PATH nor in /usr/sbin, as a skip reason. */
export function missingTool(tools: readonly string[]): string | undefined {
  for (const tool of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool} || test -x /usr/sbin/${tool}`], {
        stdio: 'ignore',
      });
    } catch {
      return `${tool} is not installed`;
    }
  }
  return undefined;
}

/**
 * Why an end-to-end test with the LB on a TUN and an RS under the eBPF
 * receiver cannot run here, or undefined: network namespaces, TUN, cgroup
 * v2, the built eBPF object, then `tools`.
 */
export function receiverUnavailable(tools: readonly string[]): string | undefined {
  const n = netnsAvailable();
  if (!n.ok) return n.reason;
  const t = tunAvailable();
  if (!t.ok) return t.reason;
  if (!cgroup2Mount())
    return 'no cgroup v2 mount (the RS learns the client through the eBPF receiver)';
  if (!existsSync(join(repo, 'build', 'bpf', 'toa.bpf.o')))
    return 'eBPF object not built (node scripts/build-bpf.js)';
  return missingTool(tools);
}

/** A test's receiver: its cgroup, its pin directory, and the `fullnat rs` flags naming both. */
export interface Receiver {
  cgroup: string;
  pinDir: string;
  rsFlags: string[];
}

/** The receiver of the test tagged `tag` (unique per test file and process). */
export function receiverFor(tag: string): Receiver {
  const cgroup = join(cgroup2Mount() ?? '/nonexistent', `fullnat-${tag}`);
  const pinDir = `/sys/fs/bpf/fn${tag}`;
  // TCP only: these attach from the host's namespace, whose interfaces the tc program stays off.
  return { cgroup, pinDir, rsFlags: ['--cgroup', cgroup, '--pin-dir', pinDir, '--dev', 'none'] };
}

/** Attaches the receiver: its programs pinned under its pin directory, on its cgroup. */
export function attachReceiver(rsFlags: readonly string[]): void {
  execFileSync(process.execPath, [cli, 'rs', 'attach', ...rsFlags], { stdio: 'pipe' });
}

/**
 * Puts the receiver's UDP part (its tc ingress program) on the interfaces of
 * host `host`: `rs attach` run inside that namespace with nsenter, which
 * keeps the bpf mount (`ip netns exec` would hide the pins). The cgroup part
 * is attached as by attachReceiver; servers then start with
 * spawnUnderReceiver as for TCP.
 */
export function attachUdpReceiverIn(lab: NetnsLab, receiver: Receiver, host: string): void {
  const flags = ['--cgroup', receiver.cgroup, '--pin-dir', receiver.pinDir];
  execFileSync(
    'nsenter',
    [`--net=/run/netns/${lab.ns(host)}`, process.execPath, cli, 'rs', 'attach', ...flags],
    { stdio: 'pipe' },
  );
}

/** Detaches a test's eBPF receiver and removes its cgroup; quiet when either is already gone. */
export function detachReceiver(rsFlags: readonly string[], cgroup: string): void {
  try {
    execFileSync(process.execPath, [cli, 'rs', 'detach', ...rsFlags], { stdio: 'pipe' });
  } catch {
    // already gone
  }
  // A cgroup goes with rmdir (rm of its files is refused); its killed processes leave it asynchronously.
  for (let i = 0; i < 40; i++) {
    try {
      rmdirSync(cgroup);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  }
}

/** After a test file: its namespaces, then its receiver (undefined when the file was skipped), then `dir`. */
export async function tearDown(
  lab: NetnsLab,
  dir: string,
  receiver: Receiver | undefined,
): Promise<void> {
  await lab.destroy();
  if (receiver) detachReceiver(receiver.rsFlags, receiver.cgroup);
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Runs `cmd args` in host `host` inside the receiver's cgroup: `rs exec`
 * first, then `ip netns exec` (which hides /sys/fs from what it runs).
 */
export function spawnUnderReceiver(
  lab: NetnsLab,
  rsFlags: readonly string[],
  host: string,
  cmd: string,
  args: readonly string[],
): ChildProcess {
  return lab.spawnHost(process.execPath, [
    cli,
    'rs',
    'exec',
    ...rsFlags,
    '--',
    'ip',
    'netns',
    'exec',
    lab.ns(host),
    cmd,
    ...args,
  ]);
}

/** A whole nginx.conf for a root nginx in the foreground, its files under `dir`, around `http` (the http block's body). */
export function nginxConfig(dir: string, http: string): string {
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((k) => `    ${k}_temp_path ${dir}/nginx-${k};`)
    .join('\n');
  return `user root;
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log;
events { worker_connections 1024; }
http {
${temp}
${http}}
`;
}
