/**
 * Network namespaces for tests and the lab: hosts with veth links, addresses
 * and routes, commands run inside them, and a teardown that leaves nothing
 * behind (processes killed first, then the namespaces deleted).
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface Availability {
  ok: boolean;
  reason: string;
}

/** Whether this process can build namespaces (root, iproute2, kernel support). */
export function netnsAvailable(): Availability {
  if (process.getuid?.() !== 0) return { ok: false, reason: 'needs root (network namespaces)' };
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return { ok: false, reason: 'iproute2 (`ip`) is not installed' };
  }
  const probe = `fnprobe${process.pid}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe' });
  } catch (e) {
    return {
      ok: false,
      reason: `cannot create network namespaces: ${(e as Error).message.split('\n')[0]}`,
    };
  }
  if (!existsSync('/dev/net/tun')) return { ok: false, reason: '/dev/net/tun is missing' };
  return { ok: true, reason: '' };
}

/** Namespaces named `PREFIX-…`: a lab's own, or those a killed run of it left. */
export function namespacesWithPrefix(prefix: string): string[] {
  let out: string;
  try {
    out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  } catch {
    return [];
  }
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(`${prefix}-`));
}

/** Kills every process inside namespace `ns`, then deletes it; false when it was gone already. */
export function removeNamespace(ns: string): boolean {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' })
      .split(/\s+/)
      .filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  } catch {
    // no such namespace: the delete below says so
  }
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export class NetnsLab {
  readonly namespaces: string[] = [];
  private readonly children = new Set<ChildProcess>();

  /** `prefix` keeps concurrent labs apart; names stay under the 15-byte interface limit where they are used for links. */
  constructor(readonly prefix: string) {}

  ns(name: string): string {
    return `${this.prefix}-${name}`;
  }

  addHost(name: string): string {
    const ns = this.ns(name);
    // A namespace left over by a killed run of the same prefix is replaced.
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // none to replace
    }
    execFileSync('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    this.ip(name, 'link', 'set', 'lo', 'up');
    return ns;
  }

  /** Runs `ip ARGS` inside host `name`. */
  ip(name: string, ...args: string[]): string {
    return execFileSync('ip', ['-n', this.ns(name), ...args], { encoding: 'utf8' });
  }

  /** Runs a command inside host `name` and returns its stdout; throws with stderr on failure. */
  exec(name: string, cmd: string, args: string[], timeoutMs = 30_000): string {
    return execFileSync('ip', ['netns', 'exec', this.ns(name), cmd, ...args], {
      encoding: 'utf8',
      timeout: timeoutMs,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  /** Starts a long-running process inside host `name`; it is killed by `destroy()`. */
  spawn(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.ns(name), cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...opts,
    });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /**
   * Starts a process in this (the host's) namespace that the lab still owns
   * and kills on `destroy()` — e.g. `fullnat rs exec -- ip netns exec NS …`,
   * which must join its cgroup before entering the namespace.
   */
  spawnHost(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /** A veth pair between two hosts, with an address on each end (CIDR), both up. */
  link(
    a: string,
    aIf: string,
    aAddr: string | null,
    b: string,
    bIf: string,
    bAddr: string | null,
  ): void {
    execFileSync('ip', [
      'link',
      'add',
      `${this.prefix}x`,
      'netns',
      this.ns(a),
      'type',
      'veth',
      'peer',
      'name',
      `${this.prefix}y`,
      'netns',
      this.ns(b),
    ]);
    this.ip(a, 'link', 'set', `${this.prefix}x`, 'name', aIf);
    this.ip(b, 'link', 'set', `${this.prefix}y`, 'name', bIf);
    if (aAddr) this.ip(a, 'addr', 'add', aAddr, 'dev', aIf);
    if (bAddr) this.ip(b, 'addr', 'add', bAddr, 'dev', bIf);
    this.ip(a, 'link', 'set', aIf, 'up');
    this.ip(b, 'link', 'set', bIf, 'up');
  }

  sysctl(name: string, key: string, value: string): void {
    this.exec(name, 'sysctl', ['-qw', `${key}=${value}`]);
  }

  async destroy(): Promise<void> {
    const waits = [...this.children].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const t = setTimeout(() => {
            c.kill('SIGKILL');
            resolve();
          }, 3000);
          c.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          c.kill('SIGTERM');
        }),
    );
    await Promise.all(waits);
    // Processes started by hand inside a namespace (e.g. a server a test restarted) go too.
    for (const ns of this.namespaces.splice(0)) removeNamespace(ns);
  }
}
