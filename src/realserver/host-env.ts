/**
 * What the eBPF TOA receiver needs of the host, found out without changing
 * it: bpftool, the mounts (cgroup v2, bpffs), the cgroups, the kernel
 * version, the process's capabilities.
 */
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { release } from 'node:os';
import { isAbsolute, join, normalize } from 'node:path';
import { RealServerError } from './errors.js';

export const MIN_KERNEL: readonly [number, number] = [5, 10];
export const DEFAULT_CGROUP_NAME = 'fullnat-toa';

/** bpftool lives in /usr/sbin on Debian, which a non-login root shell may not have on PATH. */
export function findBpftool(): string | undefined {
  const env = process.env.BPFTOOL;
  if (env) {
    try {
      accessSync(env, fsConstants.X_OK);
      return env;
    } catch {
      return undefined;
    }
  }
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    const p = join(d, 'bpftool');
    try {
      accessSync(p, fsConstants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

interface Mount {
  source: string;
  target: string;
  type: string;
}

/** /proc/mounts, with the octal escapes (\040 for a space) decoded. */
export function readMounts(text?: string): Mount[] {
  let t = text;
  if (t === undefined) {
    try {
      t = readFileSync('/proc/mounts', 'utf8');
    } catch {
      return [];
    }
  }
  const unescape = (s: string): string =>
    s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
  return t
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [source = '', target = '', type = ''] = line.split(' ');
      return { source: unescape(source), target: unescape(target), type };
    });
}

export const NO_CGROUP2 =
  'no cgroup v2 mount found in /proc/mounts (mount one: mount -t cgroup2 none /sys/fs/cgroup/unified; ' +
  'note that `ip netns exec` remounts /sys and hides it: run `fullnat rs exec -- ip netns exec NS CMD` instead)';

/** The first cgroup2 mount point (e.g. /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid systems). */
export function findCgroup2Mount(mountsText?: string): string | undefined {
  return readMounts(mountsText).find((m) => m.type === 'cgroup2')?.target;
}

const stripSlash = (p: string): string => (p.length > 1 ? p.replace(/\/+$/, '') : p);

/** The cgroup v2 directory this process is in ("0::/path" in /proc/self/cgroup). */
export function ownCgroup(procSelfCgroup?: string): string {
  const mount = requireCgroup2();
  const text = procSelfCgroup ?? readFileSync('/proc/self/cgroup', 'utf8');
  const line = text.split('\n').find((l) => l.startsWith('0::'));
  if (line === undefined)
    throw new RealServerError(
      'this process has no cgroup v2 membership (no "0::" line in /proc/self/cgroup)',
    );
  return stripSlash(join(mount, line.slice(3)));
}

function requireCgroup2(): string {
  const m = findCgroup2Mount();
  if (!m) throw new RealServerError(NO_CGROUP2);
  return m;
}

/** Every cgroup2 mount point. */
export function findCgroup2Mounts(mountsText?: string): string[] {
  return [
    ...new Set(
      readMounts(mountsText)
        .filter((m) => m.type === 'cgroup2')
        .map((m) => m.target),
    ),
  ];
}

/** The default cgroup: <cgroup2 mount>/fullnat-toa. */
export function defaultCgroup(): string {
  return join(requireCgroup2(), DEFAULT_CGROUP_NAME);
}

/**
 * Resolves a --cgroup argument: "self" (this process's cgroup), an absolute
 * path inside a cgroup2 mount, or a path relative to the cgroup2 mount.
 */
export function resolveCgroup(arg: string | undefined): string {
  if (arg === undefined || arg === '') return defaultCgroup();
  if (arg === 'self') {
    const own = ownCgroup();
    if (findCgroup2Mounts().includes(own))
      throw new RealServerError(
        `--cgroup self is the root cgroup (${own}) here: that would cover every socket on the host. ` +
          `Pass --cgroup ${own} if that is what you want, or use a cgroup of its own (the default).`,
      );
    return own;
  }
  const mount = requireCgroup2();
  const p = stripSlash(normalize(isAbsolute(arg) ? arg : join(mount, arg)));
  const inside = readMounts()
    .filter((m) => m.type === 'cgroup2')
    .some(
      (m) => p === m.target || p.startsWith(m.target.endsWith('/') ? m.target : `${m.target}/`),
    );
  if (!inside)
    throw new RealServerError(
      `${p} is not inside a cgroup v2 mount (cgroup2 is mounted at ${mount}; cgroup v1 hierarchies cannot carry BPF programs)`,
    );
  return p;
}

/** [major, minor] of the running kernel. */
export function kernelVersion(rel = release()): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

export function kernelOk(rel = release()): boolean {
  const [a, b] = kernelVersion(rel);
  return a > MIN_KERNEL[0] || (a === MIN_KERNEL[0] && b >= MIN_KERNEL[1]);
}

/** Effective capability bits of this process. */
function effectiveCaps(): bigint {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? BigInt(`0x${m[1]}`) : 0n;
  } catch {
    return 0n;
  }
}
const CAP_NET_ADMIN = 12n;
const CAP_SYS_ADMIN = 21n;
const CAP_BPF = 39n;

export function hasBpfPrivilege(): boolean {
  if (process.getuid?.() === 0) return true;
  const caps = effectiveCaps();
  const has = (c: bigint): boolean => ((caps >> c) & 1n) === 1n;
  return has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_NET_ADMIN));
}
