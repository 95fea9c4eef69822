/**
 * The eBPF TOA and UOA receiver on a real server: loads native/bpf/toa.bpf.c
 * (with its UDP half, uoa.bpf.c; built to build/bpf/toa.bpf.o by
 * scripts/build-bpf.js) with `bpftool`, pins it in bpffs, attaches it to a
 * cgroup v2 and its tc program to the interfaces' ingress (tc.ts), reads its
 * counters, and detaches it.
 *
 * Once attached, every TCP socket created by a process inside that cgroup (or
 * a descendant) reports the TOA client address from getpeername() and
 * accept(); every UDP socket there reports the UOA client from recvfrom()
 * and sends its replies to that client back to the LIP; see the C files for
 * how. An IPv6 client on an AF_INET socket is read from the socket storage
 * instead (toa-peer.ts). No kernel module and no C loader: all BPF system
 * calls are made by bpftool (and tc, which attaches a pinned program).
 *
 * Layout in bpffs (default pin directory /sys/fs/bpf/fullnat-toa, or
 * $FULLNAT_TOA_PIN_DIR):
 *
 *   <pin>/toa_sockops  <pin>/toa_peername4  <pin>/toa_peername6   programs (TCP)
 *   <pin>/uoa_recvmsg4|6  uoa_sendmsg4|6  uoa_connect4|6          programs (UDP)
 *   <pin>/uoa_ingress  <pin>/uoa_ingress_l3                        tc programs (UDP)
 *   <pin>/maps/toa_sk  <pin>/maps/toa_stats                          maps
 *   <pin>/maps/uoa_map  uoa_rev  uoa_stats                          UDP mappings, counters
 *   <pin>/maps/toa_trust4  <pin>/maps/toa_trust6                     trusted LBs (both halves)
 *
 * The trusted-LB list (`--trust`, LPM tries of LIP prefixes) belongs to the
 * pins, so every cgroup attached from one pin directory shares it. A fresh
 * load without a list trusts any peer (0.0.0.0/0 and ::/0); a later attach
 * with a list replaces it, one without leaves the list in force alone.
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
  existsSync,
  mkdirSync,
  realpathSync,
  renameSync,
  rmSync,
  rmdirSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { endianness, release } from 'node:os';
import { basename, dirname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RealServerError } from './errors.js';
import {
  TRUST_ANY,
  sortPrefixes,
  trustState,
  type TrustPrefix,
  type TrustState,
} from './trust-prefix.js';

import {
  TC_PROGRAMS,
  attachTc,
  chooseInterfaces,
  detachTc,
  tcAttachments,
  type TcAttachResult,
  type TcAttachment,
} from './tc.js';
import { readUnknownProtos, type UnknownProtos } from './unknown-protos.js';
import {
  ATTACH_ALIASES,
  MAP_PINS,
  PIN_NAMES,
  PROGRAMS,
  TRUST_MAPS,
  bytesToNumber,
  parseStatsDump,
  parseUoaStatsDump,
  type AttachKind,
  type Counters,
  type MapEntry,
  type UoaCounters,
} from './bpf-object.js';
import {
  MIN_KERNEL,
  NO_CGROUP2,
  defaultCgroup,
  findBpftool,
  findCgroup2Mount,
  findCgroup2Mounts,
  hasBpfPrivilege,
  kernelOk,
  readMounts,
  resolveCgroup,
} from './host-env.js';

// The receiver's API in one module, as before the split.
export { RealServerError } from './errors.js';
export * from './trust-prefix.js';
export * from './host-env.js';
export * from './bpf-object.js';

export const DEFAULT_PIN_DIR = '/sys/fs/bpf/fullnat-toa';
export const BPFFS = '/sys/fs/bpf';

/** build/bpf/toa.bpf.o at the package root (this file is dist/src/realserver/ebpf.js). */
export const DEFAULT_OBJECT = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '../../../build/bpf/toa.bpf.o',
);

/** statfs(2) f_type of a bpf filesystem (BPF_FS_MAGIC, linux/magic.h). */
const BPF_FS_MAGIC = 0xcafe4a11;

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
  for (const p of PIN_NAMES) rmSync(join(dir, p), { force: true });
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

function bpftool(r: Resolved, args: string[], input?: string): string {
  if (!r.bpftool) throw new RealServerError('bpftool not found (Debian package: bpftool)');
  try {
    return execFileSync(r.bpftool, args, {
      encoding: 'utf8',
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
      ...(input === undefined ? {} : { input }),
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

/** Runs bpftool commands, one process for all of them (`batch file -`) unless an argument cannot be quoted there. */
function bpftoolAll(r: Resolved, commands: string[][]): void {
  if (commands.length === 0) return;
  if (commands.some((c) => c.some((a) => /["\\\n]/.test(a)))) {
    for (const c of commands) bpftool(r, c);
    return;
  }
  const script = commands.map((c) => c.map((a) => `"${a}"`).join(' ')).join('\n');
  bpftool(r, ['batch', 'file', '-'], `${script}\n`);
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
  for (const name of PIN_NAMES) {
    const path = join(r.pinDir, name);
    if (!existsSync(path)) continue;
    try {
      ids.set(name, bpftoolJson<BpftoolProg>(r, ['prog', 'show', 'pinned', path]).id);
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

// ------------------------------------------------------ trusted-LB maps

const hexBytes = (bytes: readonly number[]): string[] =>
  bytes.map((b) => b.toString(16).padStart(2, '0'));

/** An LPM trie key: the prefix length (u32, host byte order), then the address. */
function trustKey(p: TrustPrefix): number[] {
  const len = [p.bits & 0xff, (p.bits >>> 8) & 0xff, 0, 0];
  return [...(endianness() === 'LE' ? len : len.reverse()), ...p.addr];
}

/** The trusted prefixes in the tries under `mapDir`; undefined when the tries are not pinned there. */
function readTrust(r: Resolved, mapDir: string): TrustPrefix[] | undefined {
  const out: TrustPrefix[] = [];
  for (const family of [4, 6] as const) {
    const path = join(mapDir, TRUST_MAPS[family]);
    if (!existsSync(path)) return undefined;
    const entries =
      bpftoolJson<{ key: (string | number)[] }[] | null>(r, ['map', 'dump', 'pinned', path]) ?? [];
    for (const e of entries) {
      const key = e.key.map(Number);
      out.push({ family, addr: key.slice(4), bits: bytesToNumber(key.slice(0, 4)) });
    }
  }
  return sortPrefixes(out);
}

/**
 * Makes `want` the trusted list under `mapDir`: adds the new prefixes first,
 * then removes the others, so a prefix in both the old and the new list is
 * trusted throughout. Reads the tries back to check.
 */
function writeTrust(r: Resolved, mapDir: string, want: readonly TrustPrefix[]): TrustPrefix[] {
  const have = readTrust(r, mapDir);
  if (have === undefined)
    throw new RealServerError(
      `the programs pinned at ${dirname(mapDir)} have no trusted-LB maps (loaded by an older fullnat): run \`fullnat rs detach\` and attach again`,
    );
  const path = (p: TrustPrefix): string => join(mapDir, TRUST_MAPS[p.family]);
  const id = (p: TrustPrefix): string => `${p.family} ${hexBytes(trustKey(p)).join('')}`;
  const wanted = new Set(want.map(id));
  bpftoolAll(
    r,
    want.map((p) => [
      'map',
      'update',
      'pinned',
      path(p),
      'key',
      'hex',
      ...hexBytes(trustKey(p)),
      'value',
      'hex',
      '01',
      '00',
      '00',
      '00',
    ]),
  );
  try {
    bpftoolAll(
      r,
      have
        .filter((p) => !wanted.has(id(p)))
        .map((p) => ['map', 'delete', 'pinned', path(p), 'key', 'hex', ...hexBytes(trustKey(p))]),
    );
  } catch {
    // Gone already (a concurrent attach): the read-back below decides.
  }
  const now = readTrust(r, mapDir) ?? [];
  const got = new Set(now.map(id));
  if (got.size !== wanted.size || [...wanted].some((k) => !got.has(k)))
    throw new RealServerError(
      `the trusted-LB list in ${mapDir} reads back as ${trustState(now).prefixes.join(',') || 'empty'}, not ${trustState(want).prefixes.join(',')} (a concurrent attach?)`,
    );
  return now;
}

// ------------------------------------------------------------------ load

/**
 * Loads the object once and pins it. bpftool loads into a private directory
 * which is then renamed into place, so the pins appear complete (the
 * trusted-LB list `trust` filled in) or not at all, and of two concurrent
 * loads one wins and the other reuses its pins.
 */
function loadPinned(
  r: Resolved,
  trust: readonly TrustPrefix[],
): { ids: Map<string, number>; loaded: boolean } {
  let ids = pinnedPrograms(r);
  if (ids.size === PIN_NAMES.length) return { ids, loaded: false };
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
    writeTrust(r, join(tmp, 'maps'), trust);
    renameSync(tmp, r.pinDir);
  } catch (err) {
    removePins(tmp);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') {
      // A concurrent `rs attach` won the race; its pins are as good as ours.
      ids = pinnedPrograms(r);
      if (ids.size === PIN_NAMES.length) return { ids, loaded: false };
    }
    if (err instanceof RealServerError) throw err;
    throw new RealServerError(`cannot pin the programs at ${r.pinDir}: ${(err as Error).message}`);
  }
  ids = pinnedPrograms(r);
  if (ids.size !== PIN_NAMES.length)
    throw new RealServerError(
      `bpftool loaded ${r.object} but the programs ${PIN_NAMES.join(', ')} are not all pinned in ${r.pinDir}`,
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
  /** The trusted-LB list in force afterwards (shared by every cgroup attached from pinDir). */
  trust: TrustState;
  /** The list was set now (from `trust`, or the any-peer default of a fresh load). */
  trustSet: boolean;
  /** The UDP part: the interfaces of this network namespace whose ingress runs it. */
  tc: TcAttachResult[];
}

export interface AttachOptions {
  /**
   * The LBs (their LIP prefixes) whose TOAs are believed; replaces the list
   * in force. Without it a fresh load trusts any peer and an existing list
   * is kept. See parseTrustList.
   */
  trust?: readonly TrustPrefix[];
  /**
   * The interfaces (of this network namespace) whose ingress gets the UDP
   * part's tc program; default every UP non-loopback one; ["none"]: none.
   */
  devs?: readonly string[];
}

/**
 * Loads the programs (once; later calls reuse the pins) and attaches them to
 * `cgroup` (default <cgroup2>/fullnat-toa, created if missing), and the tc
 * program to the interfaces' ingress. Idempotent: programs already attached
 * there, or in force through an ancestor cgroup, are not attached again
 * (they would run twice and count twice). The trusted-LB list is in place
 * before any program is attached.
 */
export function attach(
  cgroupArg?: string,
  o: EbpfOptions = {},
  a: AttachOptions = {},
): AttachResult {
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
  const { ids, loaded } = loadPinned(r, a.trust ?? TRUST_ANY);
  const trustSet = loaded || a.trust !== undefined;
  const trust = trustState(
    !loaded && a.trust !== undefined
      ? writeTrust(r, r.mapDir, a.trust)
      : (readTrust(r, r.mapDir) ?? TRUST_ANY),
  );

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
  const tc = attachTc(r.pinDir, ids, chooseInterfaces(a.devs), a.devs === undefined);
  return {
    cgroup,
    pinDir: r.pinDir,
    loaded,
    attached,
    inherited,
    createdCgroup,
    trust,
    trustSet,
    tc,
  };
}

export interface DetachResult {
  /** The cgroup asked for (resolved), if one was. */
  cgroup?: string;
  /** The default cgroup (<cgroup2>/fullnat-toa), removed because it was empty. */
  removedCgroup?: string;
  /** cgroups the programs were detached from. */
  detached: string[];
  /** Interfaces (of this network namespace) whose tc ingress program was removed. */
  tcDetached: string[];
  /** The pins were removed (nothing attached any more): the programs and counters are gone. */
  unloaded: boolean;
  pinDir: string;
}

/**
 * Detaches the programs: with neither `cgroupArg` nor `devs`, from every
 * cgroup and from every interface of this network namespace; otherwise from
 * the cgroup and/or the interfaces named. Once no cgroup has them, the tc
 * program leaves this namespace's interfaces too (`devs` not given): without
 * the socket hooks its mappings serve nobody. When no attachment remains (tc
 * attachments in other network namespaces are not visible from here),
 * removes the pins (which unloads the programs and drops the counters).
 * Sockets already accepted keep their stored TOA but getpeername() reports
 * the LB address again once detached.
 */
export function detach(
  cgroupArg?: string,
  o: EbpfOptions = {},
  devs?: readonly string[],
): DetachResult {
  const r = require_(o, false);
  const ids = pinnedPrograms(r);
  const wanted = cgroupArg === undefined ? undefined : resolveCgroup(cgroupArg);
  const detached: string[] = [];
  if (wanted !== undefined || devs === undefined) {
    for (const a of findAttachments(r, ids)) {
      if (wanted !== undefined && normalize(a.cgroup) !== normalize(wanted)) continue;
      for (const p of a.programs)
        bpftool(r, ['cgroup', 'detach', a.cgroup, p.attach, 'id', String(p.id)]);
      detached.push(a.cgroup);
    }
  }
  const tcIds = new Set([ids.get(TC_PROGRAMS.ether), ids.get(TC_PROGRAMS.l3)].filter(isNumber));
  const cgroupsLeft = findAttachments(r, ids).length;
  const tcDetached =
    devs !== undefined || wanted === undefined || cgroupsLeft === 0
      ? detachTc(tcIds, devs).map((a) => a.dev)
      : [];
  let unloaded = false;
  if (cgroupsLeft === 0 && tcAttachments(tcIds).length === 0 && existsSync(r.pinDir)) {
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
    tcDetached,
    unloaded,
    pinDir: r.pinDir,
  };
}

const isNumber = (v: number | undefined): v is number => v !== undefined;

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
  /** Whose TOAs are believed; null when not loaded. */
  trust: TrustState | null;
  /** Why it could not be loaded here, if it could not ("" when fine). */
  problem: string;
  /** The UDP part; zeros and no interfaces when not loaded. */
  uoa: {
    /** Interfaces of this network namespace whose ingress runs the tc program. */
    tc: TcAttachment[];
    /** Summed over CPUs. */
    counters: UoaCounters;
    /** Client mappings held now (of UOA_MAP_MAX, LRU). */
    mappings: number;
  };
  /**
   * The kernel's drops for an unknown IP protocol in this network namespace:
   * opp datagrams (protocol 248) reaching it without the receiver count here.
   */
  unknownProtos: UnknownProtos;
}

export function readCounters(o: EbpfOptions = {}): Counters {
  const r = resolveOptions(o);
  const map = join(r.mapDir, 'toa_stats');
  if (!existsSync(map)) return parseStatsDump([]);
  return parseStatsDump(bpftoolJson<MapEntry[]>(r, ['map', 'dump', 'pinned', map]) ?? []);
}

export function readUoaCounters(o: EbpfOptions = {}): UoaCounters {
  const r = resolveOptions(o);
  const map = join(r.mapDir, 'uoa_stats');
  if (!existsSync(map)) return parseUoaStatsDump([]);
  return parseUoaStatsDump(bpftoolJson<MapEntry[]>(r, ['map', 'dump', 'pinned', map]) ?? []);
}

/** How many client mappings uoa_map holds now. */
function countMappings(r: Resolved): number {
  const map = join(r.mapDir, 'uoa_map');
  if (!existsSync(map)) return 0;
  return (bpftoolJson<unknown[] | null>(r, ['map', 'dump', 'pinned', map]) ?? []).length;
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
    trust: null,
    problem: pre.reason,
    uoa: { tc: [], counters: parseUoaStatsDump([]), mappings: 0 },
    unknownProtos: readUnknownProtos(),
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
    trust: ids.size > 0 ? trustState(readTrust(r, r.mapDir) ?? TRUST_ANY) : null,
    uoa:
      ids.size > 0
        ? {
            tc: tcAttachments(
              new Set([ids.get(TC_PROGRAMS.ether), ids.get(TC_PROGRAMS.l3)].filter(isNumber)),
            ),
            counters: readUoaCounters(o),
            mappings: countMappings(r),
          }
        : base.uoa,
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
