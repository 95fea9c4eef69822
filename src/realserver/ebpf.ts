/**
 * The eBPF TOA receiver on a real server: loads native/bpf/toa.bpf.c (built
 * to build/bpf/toa.bpf.o by scripts/build-bpf.js) with `bpftool`, pins it in
 * bpffs, attaches it to a cgroup v2, reads its counters, and detaches it.
 *
 * Once attached, every TCP socket created by a process inside that cgroup (or
 * a descendant) reports the TOA client address from getpeername() and
 * accept(); see the C file for how. No kernel module and no C loader: all
 * BPF system calls are made by bpftool.
 *
 * Layout in bpffs (default pin directory /sys/fs/bpf/fullnat-toa, or
 * $FULLNAT_TOA_PIN_DIR):
 *
 *   <pin>/toa_sockops  <pin>/toa_peername4  <pin>/toa_peername6   programs
 *   <pin>/maps/toa_sk  <pin>/maps/toa_stats                          maps
 *
 * Attachments are found again from the kernel (`bpftool cgroup tree`), so
 * there is no state file: the pins say what is loaded, the cgroups say where.
 *
 * The pin directory is taken as the kernel sees it (absolute, `..` and
 * symlinks resolved), must lie below a bpf filesystem mount (statfs magic,
 * not a path prefix), and only the names above are ever removed from it.
 */
import { execFileSync } from 'node:child_process';
import {
  accessSync,
  constants as fsConstants,
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  rmdirSync,
  statSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { endianness, release } from 'node:os';
import { basename, dirname, isAbsolute, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A failure the user can act on; the message names what is missing. */
export class RealServerError extends Error {
  override readonly name = 'RealServerError';
}

export const MIN_KERNEL: readonly [number, number] = [5, 10];
export const DEFAULT_PIN_DIR = '/sys/fs/bpf/fullnat-toa';
export const DEFAULT_CGROUP_NAME = 'fullnat-toa';
export const BPFFS = '/sys/fs/bpf';

/** build/bpf/toa.bpf.o at the package root (this file is dist/src/realserver/ebpf.js). */
export const DEFAULT_OBJECT = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '../../../build/bpf/toa.bpf.o',
);

export type AttachKind = 'sock_ops' | 'getpeername4' | 'getpeername6';

/** The programs in the object, by the names bpftool pins them under. */
export const PROGRAMS: readonly { name: string; attach: AttachKind }[] = [
  { name: 'toa_sockops', attach: 'sock_ops' },
  { name: 'toa_peername4', attach: 'getpeername4' },
  { name: 'toa_peername6', attach: 'getpeername6' },
];

/** The maps bpftool pins under <pin>/maps, by their names in toa.bpf.c. */
export const MAP_PINS: readonly string[] = ['toa_sk', 'toa_stats'];

/** statfs(2) f_type of a bpf filesystem (BPF_FS_MAGIC, linux/magic.h). */
const BPF_FS_MAGIC = 0xcafe4a11;

/** Counter names, in the order of the TOA_STAT_* indexes in toa.bpf.c. */
export const STAT_NAMES = [
  'withToa',
  'withoutToa',
  'malformed',
  'errors',
  'peerRewrites',
  'v6OnV4Socket',
] as const;
export type StatName = (typeof STAT_NAMES)[number];
export type Counters = Record<StatName, number>;

/** bpftool ≥ 7 prints the libbpf names, older ones the short names; both are accepted on input. */
const ATTACH_ALIASES: Record<string, AttachKind> = {
  sock_ops: 'sock_ops',
  cgroup_sock_ops: 'sock_ops',
  getpeername4: 'getpeername4',
  cgroup_inet4_getpeername: 'getpeername4',
  getpeername6: 'getpeername6',
  cgroup_inet6_getpeername: 'getpeername6',
};

export interface EbpfOptions {
  /** bpffs directory for the pins (default $FULLNAT_TOA_PIN_DIR or /sys/fs/bpf/fullnat-toa). */
  pinDir?: string;
  /** The compiled object (default build/bpf/toa.bpf.o). */
  object?: string;
  /** bpftool binary (default $BPFTOOL, else found on PATH, /usr/sbin, /sbin). */
  bpftool?: string;
}

interface Resolved {
  pinDir: string;
  mapDir: string;
  object: string;
  bpftool: string | undefined;
}

/**
 * `dir` as the kernel will see it: absolute, with `..` and symlinks resolved
 * as far as it exists (`/sys/fs/bpf/../../etc` is `/etc`).
 */
export function canonicalPinDir(dir: string): string {
  const missing: string[] = [];
  let head = resolve(dir);
  for (;;) {
    try {
      return join(realpathSync(head), ...missing);
    } catch {
      const parent = dirname(head);
      if (parent === head) return resolve(dir);
      missing.unshift(basename(head));
      head = parent;
    }
  }
}

/** The deepest existing ancestor of `path` (or path itself) is on a bpf filesystem. */
function onBpffs(path: string): boolean {
  for (let p = path; ; p = dirname(p)) {
    try {
      return statfsSync(p).type === BPF_FS_MAGIC;
    } catch {
      if (dirname(p) === p) return false;
    }
  }
}

/**
 * Refuses a pin directory that is not strictly inside a bpf filesystem: its
 * parent must be on one too, so it is never a mount point (whose other pins
 * are not ours) nor anywhere on an ordinary filesystem.
 */
function checkPinDir(pinDir: string): void {
  if (!onBpffs(pinDir) || !onBpffs(dirname(pinDir)) || dirname(pinDir) === pinDir)
    throw new RealServerError(
      `pin directory ${pinDir} is not inside a bpf filesystem (mount -t bpf bpf ${BPFFS}; pins go in a directory below it)`,
    );
}

/**
 * Removes the pins this tool creates in `dir` (programs, maps) and then the
 * directories if they are empty. Anything else found there is left alone;
 * returns false if `dir` still exists afterwards.
 */
function removePins(dir: string): boolean {
  if (!existsSync(dir)) return true;
  checkPinDir(dir);
  for (const p of PROGRAMS) rmSync(join(dir, p.name), { force: true });
  for (const m of MAP_PINS) rmSync(join(dir, 'maps', m), { force: true });
  for (const d of [join(dir, 'maps'), dir]) {
    try {
      rmdirSync(d);
    } catch {
      // absent, or holds files that are not ours
    }
  }
  return !existsSync(dir);
}

function resolveOptions(o: EbpfOptions = {}): Resolved {
  const pinDir = canonicalPinDir(o.pinDir ?? process.env.FULLNAT_TOA_PIN_DIR ?? DEFAULT_PIN_DIR);
  return {
    pinDir,
    mapDir: join(pinDir, 'maps'),
    object: o.object ?? DEFAULT_OBJECT,
    bpftool: o.bpftool ?? findBpftool(),
  };
}

// ------------------------------------------------------------ environment

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

const NO_CGROUP2 =
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

function kernelOk(rel = release()): boolean {
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

function hasBpfPrivilege(): boolean {
  if (process.getuid?.() === 0) return true;
  const caps = effectiveCaps();
  const has = (c: bigint): boolean => ((caps >> c) & 1n) === 1n;
  return has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_NET_ADMIN));
}

function bpffsMounted(): boolean {
  return readMounts().some((m) => m.type === 'bpf' && m.target === BPFFS);
}

/** Mounts bpffs at /sys/fs/bpf if the pins go below it and it is not mounted; then checks the pin directory. */
function ensureBpffs(pinDir: string): void {
  if (pinDir.startsWith(`${BPFFS}/`) && !bpffsMounted()) mountBpffs();
  checkPinDir(pinDir);
}

function mountBpffs(): void {
  try {
    execFileSync('mount', ['-t', 'bpf', 'bpf', BPFFS], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const detail = (err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message;
    throw new RealServerError(
      `no bpf filesystem at ${BPFFS} and mounting one failed (${detail}); run: mount -t bpf bpf ${BPFFS}`,
    );
  }
}

export interface Prerequisite {
  ok: boolean;
  /** What is missing, as one sentence the user can act on; "" when ok. */
  reason: string;
}

/**
 * Whether programs can be loaded and attached here. Checked in order, first
 * failure wins: Linux, kernel ≥ 5.10, privileges, cgroup v2, bpftool, the
 * object (unless `needObject` is false).
 */
export function checkPrerequisites(o: EbpfOptions = {}, needObject = true): Prerequisite {
  const r = resolveOptions(o);
  const fail = (reason: string): Prerequisite => ({ ok: false, reason });
  if (process.platform !== 'linux') return fail(`eBPF needs Linux (this is ${process.platform})`);
  if (!kernelOk())
    return fail(
      `kernel ${release()} is too old: the TOA receiver reads the handshake segment in sock_ops (skb_data), which needs Linux >= ${MIN_KERNEL.join('.')}`,
    );
  if (!hasBpfPrivilege())
    return fail('loading eBPF programs needs root (CAP_BPF + CAP_NET_ADMIN, or CAP_SYS_ADMIN)');
  if (!findCgroup2Mount()) return fail(NO_CGROUP2);
  if (!r.bpftool)
    return fail(
      process.env.BPFTOOL
        ? `BPFTOOL=${process.env.BPFTOOL} is not an executable file`
        : 'bpftool not found on PATH, /usr/sbin or /sbin (Debian package: bpftool; or set BPFTOOL=/path)',
    );
  if (needObject && !existsSync(r.object))
    return fail(
      `eBPF object ${r.object} is not built: run \`node scripts/build-bpf.js\` (needs clang, libbpf-dev, linux-libc-dev)`,
    );
  return { ok: true, reason: '' };
}

function require_(o: EbpfOptions, needObject: boolean): Resolved {
  const p = checkPrerequisites(o, needObject);
  if (!p.ok) throw new RealServerError(p.reason);
  return resolveOptions(o);
}

// ---------------------------------------------------------------- bpftool

function bpftool(r: Resolved, args: string[]): string {
  if (!r.bpftool) throw new RealServerError('bpftool not found (Debian package: bpftool)');
  try {
    return execFileSync(r.bpftool, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; stdout?: string };
    const out = `${e.stderr ?? ''}\n${e.stdout ?? ''}`;
    // The verifier log is long; its last lines say why.
    const lines = out
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !/^Warning: bpftool is now running in libbpf strict mode/.test(l));
    const errorLine = lines.filter((l) => /^Error:|^libbpf:/.test(l)).slice(-3);
    const detail = (errorLine.length ? errorLine : lines.slice(-3)).join(' | ') || e.message;
    throw new RealServerError(`bpftool ${args.join(' ')} failed: ${detail}`, { cause: err });
  }
}

function bpftoolJson<T>(r: Resolved, args: string[]): T {
  const out = bpftool(r, ['-j', ...args]).trim();
  return (out === '' ? null : JSON.parse(out)) as T;
}

interface BpftoolProg {
  id: number;
  attach_type?: string;
  attach_flags?: string;
  name?: string;
}

/** Pinned program id by name; missing pins are absent. */
function pinnedPrograms(r: Resolved): Map<string, number> {
  const ids = new Map<string, number>();
  for (const p of PROGRAMS) {
    const path = join(r.pinDir, p.name);
    if (!existsSync(path)) continue;
    try {
      ids.set(p.name, bpftoolJson<BpftoolProg>(r, ['prog', 'show', 'pinned', path]).id);
    } catch {
      // a stale or foreign pin: treated as missing
    }
  }
  return ids;
}

function cgroupPrograms(r: Resolved, cgroup: string, effective = false): BpftoolProg[] {
  const args = ['cgroup', 'show', cgroup];
  if (effective) args.push('effective');
  return bpftoolJson<BpftoolProg[] | null>(r, args) ?? [];
}

export interface Attachment {
  cgroup: string;
  programs: { name: string; id: number; attach: AttachKind }[];
}

/** Every cgroup (under every cgroup2 mount) where one of our pinned programs is attached. */
function findAttachments(r: Resolved, ids: Map<string, number>): Attachment[] {
  if (ids.size === 0) return [];
  const byId = new Map([...ids].map(([name, id]) => [id, name]));
  const mounts = findCgroup2Mounts();
  const out: Attachment[] = [];
  for (const mount of mounts) {
    let tree: { cgroup: string; programs: BpftoolProg[] }[] | null;
    try {
      tree = bpftoolJson(r, ['cgroup', 'tree', mount]);
    } catch {
      continue;
    }
    for (const node of tree ?? []) {
      const progs = node.programs
        .filter((p) => byId.has(p.id))
        .map((p) => ({
          name: byId.get(p.id)!,
          id: p.id,
          attach: ATTACH_ALIASES[p.attach_type ?? ''] ?? (p.attach_type as AttachKind),
        }));
      if (progs.length) out.push({ cgroup: node.cgroup, programs: progs });
    }
  }
  return out;
}

// ------------------------------------------------------------------ load

/**
 * Loads the object once and pins it. bpftool loads into a private directory
 * which is then renamed into place, so the pins appear complete or not at
 * all, and of two concurrent loads one wins and the other reuses its pins.
 */
function loadPinned(r: Resolved): { ids: Map<string, number>; loaded: boolean } {
  let ids = pinnedPrograms(r);
  if (ids.size === PROGRAMS.length) return { ids, loaded: false };
  if (ids.size > 0)
    throw new RealServerError(
      `incomplete pins in ${r.pinDir} (only ${[...ids.keys()].join(', ')}): run \`fullnat rs detach\` first`,
    );
  // Nothing usable there (an empty or stale leftover of ours): replace it.
  if (!removePins(r.pinDir))
    throw new RealServerError(
      `${r.pinDir} holds files fullnat did not pin there: remove them or choose another --pin-dir`,
    );
  const tmp = `${r.pinDir}-loading-${process.pid}`; // bpffs refuses names with a dot
  removePins(tmp);
  try {
    bpftool(r, ['prog', 'loadall', r.object, tmp, 'pinmaps', join(tmp, 'maps')]);
    renameSync(tmp, r.pinDir);
  } catch (err) {
    removePins(tmp);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') {
      // A concurrent `rs attach` won the race; its pins are as good as ours.
      ids = pinnedPrograms(r);
      if (ids.size === PROGRAMS.length) return { ids, loaded: false };
    }
    if (err instanceof RealServerError) throw err;
    throw new RealServerError(`cannot pin the programs at ${r.pinDir}: ${(err as Error).message}`);
  }
  ids = pinnedPrograms(r);
  if (ids.size !== PROGRAMS.length)
    throw new RealServerError(
      `bpftool loaded ${r.object} but the programs ${PROGRAMS.map((p) => p.name).join(', ')} are not all pinned in ${r.pinDir}`,
    );
  return { ids, loaded: true };
}

export interface AttachResult {
  cgroup: string;
  pinDir: string;
  /** The programs were loaded now (false: reused the pinned ones). */
  loaded: boolean;
  /** Attach types newly attached to `cgroup` (empty: it already was). */
  attached: AttachKind[];
  /** Attach types already in force on `cgroup` through an ancestor, so not attached again. */
  inherited: AttachKind[];
  /** The cgroup directory was created now. */
  createdCgroup: boolean;
}

/**
 * Loads the programs (once; later calls reuse the pins) and attaches them to
 * `cgroup` (default <cgroup2>/fullnat-toa, created if missing). Idempotent:
 * programs already attached there, or in force through an ancestor cgroup,
 * are not attached again (they would run twice and count twice).
 */
export function attach(cgroupArg?: string, o: EbpfOptions = {}): AttachResult {
  const r = require_(o, true);
  ensureBpffs(r.pinDir);
  const cgroup = resolveCgroup(cgroupArg);
  let createdCgroup = false;
  if (!existsSync(cgroup)) {
    try {
      createdCgroup = mkdirSync(cgroup, { recursive: true }) !== undefined;
    } catch (err) {
      throw new RealServerError(`cannot create cgroup ${cgroup}: ${(err as Error).message}`);
    }
  }
  if (!existsSync(join(cgroup, 'cgroup.procs')))
    throw new RealServerError(`${cgroup} is not a cgroup directory (no cgroup.procs)`);
  mkdirSync(dirname(r.pinDir), { recursive: true });
  const { ids, loaded } = loadPinned(r);

  // Effective first: a concurrent attach landing in between then shows up as attached here.
  const effective = new Set(cgroupPrograms(r, cgroup, true).map((p) => p.id));
  const attachedHere = new Set(cgroupPrograms(r, cgroup).map((p) => p.id));
  const attached: AttachKind[] = [];
  const inherited: AttachKind[] = [];
  for (const p of PROGRAMS) {
    const id = ids.get(p.name)!;
    if (attachedHere.has(id)) continue;
    if (effective.has(id)) {
      inherited.push(p.attach);
      continue;
    }
    try {
      bpftool(r, ['cgroup', 'attach', cgroup, p.attach, 'pinned', join(r.pinDir, p.name), 'multi']);
      attached.push(p.attach);
    } catch (err) {
      // Lost a race with a concurrent attach of the same program: fine.
      if (!cgroupPrograms(r, cgroup).some((q) => q.id === id)) throw err;
    }
  }
  return { cgroup, pinDir: r.pinDir, loaded, attached, inherited, createdCgroup };
}

export interface DetachResult {
  /** The cgroup asked for (resolved), if one was. */
  cgroup?: string;
  /** The default cgroup (<cgroup2>/fullnat-toa), removed because it was empty. */
  removedCgroup?: string;
  /** cgroups the programs were detached from. */
  detached: string[];
  /** The pins were removed (nothing attached any more): the programs and counters are gone. */
  unloaded: boolean;
  pinDir: string;
}

/**
 * Detaches the programs from `cgroupArg`, or from every cgroup when omitted;
 * when no attachment remains, removes the pins (which unloads the programs
 * and drops the counters). Sockets already accepted keep their stored TOA
 * but getpeername() reports the LB address again once detached.
 */
export function detach(cgroupArg?: string, o: EbpfOptions = {}): DetachResult {
  const r = require_(o, false);
  const ids = pinnedPrograms(r);
  const wanted = cgroupArg === undefined ? undefined : resolveCgroup(cgroupArg);
  const detached: string[] = [];
  for (const a of findAttachments(r, ids)) {
    if (wanted !== undefined && normalize(a.cgroup) !== normalize(wanted)) continue;
    for (const p of a.programs)
      bpftool(r, ['cgroup', 'detach', a.cgroup, p.attach, 'id', String(p.id)]);
    detached.push(a.cgroup);
  }
  let unloaded = false;
  if (findAttachments(r, ids).length === 0 && existsSync(r.pinDir)) {
    removePins(r.pinDir);
    unloaded = true;
  }
  // The default cgroup is ours: remove it once nothing uses it (rmdir fails if a process or child cgroup remains).
  let removedCgroup: string | undefined;
  const ours = defaultCgroup();
  if (detached.includes(ours)) {
    try {
      rmdirSync(ours);
      removedCgroup = ours;
    } catch {
      // still in use: leave it
    }
  }
  return {
    ...(wanted === undefined ? {} : { cgroup: wanted }),
    ...(removedCgroup === undefined ? {} : { removedCgroup }),
    detached,
    unloaded,
    pinDir: r.pinDir,
  };
}

// ---------------------------------------------------------------- status

export interface Status {
  /** The programs are pinned (loaded). */
  loaded: boolean;
  /** Attached to at least one cgroup. */
  attached: boolean;
  pinDir: string;
  object: string;
  objectBuilt: boolean;
  programs: { name: string; id: number; attach: AttachKind }[];
  attachments: Attachment[];
  /** Summed over CPUs; zeros when not loaded. */
  counters: Counters;
  /** Why it could not be loaded here, if it could not ("" when fine). */
  problem: string;
}

interface MapEntry {
  key: number[] | string[];
  values?: { cpu: number; value: string[] | number }[];
  value?: string[];
  formatted?: { key: number; values: { cpu: number; value: number }[] };
}

/** bpftool prints a value's bytes in memory order, i.e. host byte order. */
const bytesToNumber = (bytes: (string | number)[]): number => {
  const ordered = endianness() === 'LE' ? [...bytes].reverse() : bytes;
  let v = 0n;
  for (const b of ordered) v = (v << 8n) | BigInt(Number(b));
  return Number(v);
};

export function parseStatsDump(entries: MapEntry[]): Counters {
  const c = Object.fromEntries(STAT_NAMES.map((n) => [n, 0])) as Counters;
  for (const e of entries) {
    let key: number;
    let total = 0;
    if (e.formatted) {
      key = e.formatted.key;
      for (const v of e.formatted.values) total += Number(v.value);
    } else {
      key = bytesToNumber(e.key);
      for (const v of e.values ?? [])
        total += typeof v.value === 'number' ? v.value : bytesToNumber(v.value);
    }
    const name = STAT_NAMES[key];
    if (name) c[name] += total;
  }
  return c;
}

export function readCounters(o: EbpfOptions = {}): Counters {
  const r = resolveOptions(o);
  const map = join(r.mapDir, 'toa_stats');
  if (!existsSync(map)) return parseStatsDump([]);
  return parseStatsDump(bpftoolJson<MapEntry[]>(r, ['map', 'dump', 'pinned', map]) ?? []);
}

export function status(o: EbpfOptions = {}): Status {
  const r = resolveOptions(o);
  const pre = checkPrerequisites(o, true);
  const base: Status = {
    loaded: false,
    attached: false,
    pinDir: r.pinDir,
    object: r.object,
    objectBuilt: existsSync(r.object),
    programs: [],
    attachments: [],
    counters: parseStatsDump([]),
    problem: pre.reason,
  };
  // Without bpftool or privileges nothing can be read; report what is missing.
  const readable = checkPrerequisites(o, false);
  if (!readable.ok) return base;
  const ids = pinnedPrograms(r);
  const attachments = findAttachments(r, ids);
  return {
    ...base,
    loaded: ids.size > 0,
    attached: attachments.length > 0,
    programs: PROGRAMS.filter((p) => ids.has(p.name)).map((p) => ({
      name: p.name,
      id: ids.get(p.name)!,
      attach: p.attach,
    })),
    attachments,
    counters: ids.size > 0 ? readCounters(o) : base.counters,
  };
}

// ------------------------------------------------------------------ exec

/** Moves process `pid` (default: this one, all its threads) into `cgroup` by writing cgroup.procs. */
export function enterCgroup(cgroup: string, pid = process.pid): void {
  try {
    writeFileSync(join(cgroup, 'cgroup.procs'), `${pid}\n`);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const hint =
      e.code === 'EBUSY'
        ? ' (the cgroup has controllers enabled for children; cgroup v2 allows processes only in leaves: pick a leaf cgroup)'
        : e.code === 'ENOENT'
          ? ' (no such cgroup)'
          : e.code === 'EACCES' || e.code === 'EPERM'
            ? ' (needs write access to cgroup.procs of the source and target cgroups)'
            : '';
    throw new RealServerError(`cannot move process ${pid} into ${cgroup}: ${e.message}${hint}`);
  }
}
