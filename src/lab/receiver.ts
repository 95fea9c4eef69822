/**
 * The eBPF TOA receiver as the labs use it: loaded once with its own pin
 * directory, attached to a cgroup of the lab's own, and real-server
 * applications started inside that cgroup (`fullnat rs exec`) so that they
 * see the client's address. Each lab (`prefix`) has its own pins and
 * cgroup, so labs do not disturb each other or a receiver in production.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import type { NetnsLab } from './netns.js';

/** The receiver in force for a lab: the command prefix that runs a program under it. */
export interface ReceiverHandle {
  exec: string[];
  cgroup: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function cgroup2Mount(): string | undefined {
  try {
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const f = line.split(' ');
      if (f[2] === 'cgroup2') return f[1];
    }
  } catch {
    // no /proc/mounts
  }
  return undefined;
}

function killPids(pids: string[]): void {
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export class LabReceiver {
  readonly pinDir: string;
  readonly cgroupName: string;

  constructor(prefix: string) {
    this.pinDir = `/sys/fs/bpf/${prefix}-toa`;
    this.cgroupName = `${prefix}-toa`;
  }

  /** The lab's cgroup (under the cgroup2 mount); undefined without cgroup v2. */
  cgroup(): string | undefined {
    const m = cgroup2Mount();
    return m ? join(m, this.cgroupName) : undefined;
  }

  /** Loads and attaches the receiver to the lab's cgroup; or says why it cannot. */
  async setUp(cli: string): Promise<ReceiverHandle | string> {
    const cgroup = this.cgroup();
    if (!cgroup) return 'no cgroup v2 mount';
    try {
      const ebpf = await import('../realserver/ebpf.js');
      const pre = ebpf.checkPrerequisites({ pinDir: this.pinDir }, true);
      if (!pre.ok) return pre.reason;
      ebpf.attach(cgroup, { pinDir: this.pinDir });
    } catch (e) {
      return `the eBPF receiver did not load: ${(e as Error).message.split('\n')[0]}`;
    }
    return { exec: this.execCommand(cli, cgroup), cgroup };
  }

  /** Detaches the receiver and removes the cgroup (its processes must be gone). */
  async tearDown(h: ReceiverHandle): Promise<void> {
    try {
      const ebpf = await import('../realserver/ebpf.js');
      ebpf.detach(h.cgroup, { pinDir: this.pinDir });
    } catch {
      // removeLeftovers retries next time
    }
    for (let i = 0; i < 20; i++) {
      try {
        rmdirSync(h.cgroup);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        await sleep(50); // killed processes leave the cgroup asynchronously
      }
    }
  }

  /** Kills what a killed run left running in the lab's cgroup (before its namespaces go). */
  killMembers(): void {
    const cg = this.cgroup();
    if (!cg || !existsSync(cg)) return;
    try {
      killPids(readFileSync(join(cg, 'cgroup.procs'), 'utf8').split(/\s+/).filter(Boolean));
    } catch {
      // unreadable: removeLeftovers' rmdir says so
    }
  }

  /** Detaches and removes what a killed run left: the cgroup, the pins. Returns what it removed. */
  async removeLeftovers(): Promise<string[]> {
    const removed: string[] = [];
    const cg = this.cgroup();
    if (cg && existsSync(cg)) {
      try {
        const { detach } = await import('../realserver/ebpf.js');
        detach(cg, { pinDir: this.pinDir });
      } catch {
        // receiver code or bpftool unavailable: the pins stay, harmless
      }
      for (let i = 0; i < 20; i++) {
        try {
          rmdirSync(cg);
          removed.push(`cgroup ${cg}`);
          break;
        } catch {
          await sleep(50);
        }
      }
    }
    if (existsSync(this.pinDir)) {
      try {
        const { detach } = await import('../realserver/ebpf.js');
        detach(undefined, { pinDir: this.pinDir });
      } catch {
        // best effort
      }
    }
    return removed;
  }

  /** `fullnat rs exec --cgroup … --pin-dir …`, TCP only (the tc program stays off the interfaces). */
  private execCommand(cli: string, cgroup: string): string[] {
    const args = ['exec', '--cgroup', cgroup, '--pin-dir', this.pinDir, '--dev', 'none'];
    const probe = spawnSync(process.execPath, [cli, 'rs', '--help'], {
      stdio: 'ignore',
      timeout: 10_000,
    });
    if (probe.status === 0) return [process.execPath, cli, 'rs', ...args];
    // `rs` not wired into the CLI (yet): the same code, called directly.
    const cliModule = new URL('../realserver/cli.js', import.meta.url).href;
    return [
      process.execPath,
      '--input-type=module',
      '-e',
      'const [u, ...a] = process.argv.slice(1); const m = await import(u); process.exitCode = await m.runRs(a);',
      cliModule,
      ...args,
    ];
  }
}

/**
 * Starts a real server's application (`app`: argv) in namespace `host`,
 * under the eBPF receiver when `receiverExec` is given. Such a child is
 * started from the root namespace, not by `lab`, so it is kept in
 * `rootChildren` while it runs for the teardown to stop.
 */
export function spawnRealServerApp(
  lab: NetnsLab,
  host: string,
  app: readonly string[],
  receiverExec: readonly string[] | null,
  rootChildren: Set<ChildProcess>,
): ChildProcess {
  const [cmd, ...args] = app;
  if (cmd === undefined) throw new Error('spawnRealServerApp: empty command');
  const [exec, ...execArgs] = receiverExec ?? [];
  if (exec === undefined) return lab.spawn(host, cmd, args);
  // `rs exec` first: `ip netns exec` remounts /sys, which hides the cgroup2 and bpf mounts.
  const child = spawn(exec, [...execArgs, '--', 'ip', 'netns', 'exec', lab.ns(host), ...app], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  rootChildren.add(child);
  child.on('exit', () => rootChildren.delete(child));
  return child;
}
