/**
 * The UOA receiver's tc part: its ingress program (`uoa_ingress`, or
 * `uoa_ingress_l3` on a device without a link header) attached to network
 * interfaces through a clsact qdisc, with iproute2's `tc`. Everything here
 * acts on the network namespace this process is in.
 *
 * A filter is ours when the program it runs is one of our pinned programs
 * (by id): the kernel, not a state file, says where we are attached. Our
 * filters share one preference (TC_PREF) and get their handles from the
 * kernel, so two receivers (two pin directories) can sit on one device. The
 * clsact qdisc is left in place on detach: other filters may use it, and an
 * empty one costs nothing.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { join } from 'node:path';
import { RealServerError } from './errors.js';

/** The filters' preference: 248, the opp protocol number, easy to tell apart in `tc filter show`. */
export const TC_PREF = 248;

/** The tc programs in the object, by the names bpftool pins them under. */
export const TC_PROGRAMS = {
  /** Ethernet, veth, loopback: the packet starts with a 14-byte link header. */
  ether: 'uoa_ingress',
  /** tun, wireguard, ipip and other devices whose packets start at the IP header. */
  l3: 'uoa_ingress_l3',
} as const;
export type TcProgramName = (typeof TC_PROGRAMS)[keyof typeof TC_PROGRAMS];

export interface Interface {
  name: string;
  up: boolean;
  loopback: boolean;
  /** `ip -j link` link_type: ether, loopback, none, ipip… */
  linkType: string;
}

export interface TcAttachment {
  dev: string;
  program: string;
  id: number;
  pref: number;
  handle: string;
}

/** `tc` lives in /sbin or /usr/sbin, which a non-login root shell may not have on PATH. */
export function findTc(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    const p = join(d, 'tc');
    try {
      accessSync(p, fsConstants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

function run(file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const detail = (e.stderr ?? '').trim().split('\n').slice(-2).join(' | ') || e.message;
    throw new RealServerError(`${file} ${args.join(' ')} failed: ${detail}`, { cause: err });
  }
}

function tcBinary(): string {
  const tc = findTc();
  if (!tc)
    throw new RealServerError(
      'tc not found on PATH, /usr/sbin or /sbin (Debian package: iproute2); it attaches the UDP (UOA) part',
    );
  return tc;
}

interface IpLink {
  ifname: string;
  flags?: string[];
  link_type?: string;
}

/** The interfaces of this network namespace. */
export function listInterfaces(): Interface[] {
  const links = JSON.parse(run('ip', ['-j', 'link', 'show'])) as IpLink[];
  return links.map((l) => ({
    name: l.ifname,
    up: (l.flags ?? []).includes('UP'),
    loopback: (l.flags ?? []).includes('LOOPBACK') || l.link_type === 'loopback',
    linkType: l.link_type ?? 'none',
  }));
}

/** The program for a device: with or without a link header in front of the IP header. */
export function programFor(i: Interface): TcProgramName {
  return i.linkType === 'ether' || i.linkType === 'loopback' ? TC_PROGRAMS.ether : TC_PROGRAMS.l3;
}

/**
 * The devices asked for: `names` (each must exist; "none" alone: no device
 * at all), or every UP non-loopback interface.
 */
export function chooseInterfaces(names: readonly string[] | undefined): Interface[] {
  if (names !== undefined && names.length === 1 && names[0] === 'none') return [];
  const all = listInterfaces();
  if (names === undefined || names.length === 0) return all.filter((i) => i.up && !i.loopback);
  return names.map((n) => {
    const i = all.find((x) => x.name === n);
    if (!i) throw new RealServerError(`no interface ${n} in this network namespace`);
    return i;
  });
}

interface TcFilter {
  pref?: number;
  kind?: string;
  options?: { handle?: string; prog?: { id?: number; name?: string } };
}

/** The bpf filters on `dev`'s ingress whose program is one of `ids`. */
function filtersOn(tc: string, dev: string, ids: ReadonlySet<number>): TcAttachment[] {
  let filters: TcFilter[];
  try {
    filters = JSON.parse(
      run(tc, ['-j', 'filter', 'show', 'dev', dev, 'ingress']) || '[]',
    ) as TcFilter[];
  } catch {
    return []; // no clsact qdisc (or the device went away)
  }
  const out: TcAttachment[] = [];
  for (const f of filters) {
    const id = f.options?.prog?.id;
    if (f.kind !== 'bpf' || id === undefined || !ids.has(id)) continue;
    out.push({
      dev,
      program: f.options?.prog?.name ?? '',
      id,
      pref: f.pref ?? 0,
      handle: f.options?.handle ?? '',
    });
  }
  return out;
}

/** Where in this network namespace one of the programs `ids` is attached. */
export function tcAttachments(ids: ReadonlySet<number>): TcAttachment[] {
  if (ids.size === 0) return [];
  const tc = findTc();
  if (!tc) return [];
  return listInterfaces().flatMap((i) => filtersOn(tc, i.name, ids));
}

export interface TcAttachResult {
  dev: string;
  program: TcProgramName;
  /** Attached now (false: it already was, or `error` says why not). */
  attached: boolean;
  /** Why a default interface was skipped (one named with --dev fails the attach instead). */
  error?: string;
}

/**
 * Attaches the pinned program (under `pinDir`, with id `ids[name]`) to each
 * interface's ingress; an interface that already runs it is left alone.
 * With `tolerant` (the default interfaces, not ones the user named) an
 * interface that fails — gone meanwhile, no clsact there — is reported and
 * skipped.
 */
export function attachTc(
  pinDir: string,
  ids: ReadonlyMap<string, number>,
  interfaces: readonly Interface[],
  tolerant = false,
): TcAttachResult[] {
  if (interfaces.length === 0) return [];
  const tc = tcBinary();
  const out: TcAttachResult[] = [];
  for (const i of interfaces) {
    const program = programFor(i);
    const id = ids.get(program);
    if (id === undefined)
      throw new RealServerError(`program ${program} is not pinned in ${pinDir}`);
    if (filtersOn(tc, i.name, new Set([id])).length > 0) {
      out.push({ dev: i.name, program, attached: false });
      continue;
    }
    try {
      addFilter(tc, i.name, join(pinDir, program));
      out.push({ dev: i.name, program, attached: true });
    } catch (err) {
      if (!tolerant) throw err;
      out.push({ dev: i.name, program, attached: false, error: (err as Error).message });
    }
  }
  return out;
}

function addFilter(tc: string, dev: string, pinned: string): void {
  try {
    run(tc, ['qdisc', 'add', 'dev', dev, 'clsact']);
  } catch (err) {
    if (!/exists/i.test((err as Error).message)) throw err;
  }
  run(tc, [
    'filter',
    'add',
    'dev',
    dev,
    'ingress',
    'pref',
    String(TC_PREF),
    'bpf',
    'direct-action',
    'object-pinned',
    pinned,
  ]);
}

/** Removes our filters (programs `ids`) from `devs`, or from every interface; returns what was removed. */
export function detachTc(ids: ReadonlySet<number>, devs?: readonly string[]): TcAttachment[] {
  const found = tcAttachments(ids).filter((a) => devs === undefined || devs.includes(a.dev));
  if (found.length === 0) return [];
  const tc = tcBinary();
  for (const a of found)
    run(tc, [
      'filter',
      'del',
      'dev',
      a.dev,
      'ingress',
      'pref',
      String(a.pref),
      'handle',
      a.handle,
      'bpf',
    ]);
  return found;
}
