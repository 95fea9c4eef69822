/**
 * Parser for the keepalived-style configuration LVS/DPVS users already write
 * (`fullnat_defs`, `local_address_group`, `virtual_server` / `real_server`
 * with TCP_CHECK or HTTP_GET), and the diff a reload acts on.
 *
 * Errors: the first problem found throws a ConfigError whose message is one
 * line, `FILE:LINE: reason`. Syntax and per-value problems are found in file
 * order; cross-checks that need the whole file (groups, overlaps) run after.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize } from 'node:path';

import {
  DEFAULT_ENGINE_OPTIONS,
  TOA_SETTINGS,
  UNKNOWN_SERVICE_ACTIONS,
  type ToaSetting,
  type UnknownServiceAction,
} from '../../engine/config.js';
import { SCHEDULER_NAMES, type SchedulerName } from '../../engine/sched/scheduler.js';
import type { TcpTimeouts } from '../../engine/tcp-state.js';
import { ipv4ToString, parseIpv4, parseIpv6 } from '../../wire/bytes.js';
import type {
  FullnatConfig,
  FullnatDefs,
  HealthCheckSpec,
  NapiThreadSetting,
  RealServerSpec,
  ServiceSpec,
  SourcePos,
} from '../model.js';

export class ConfigError extends Error {
  readonly file: string;
  readonly line: number;
  /** The message without the `FILE:LINE: ` prefix. */
  readonly reason: string;

  constructor(file: string, line: number, reason: string) {
    super(`${file}:${line}: ${reason}`);
    this.name = 'ConfigError';
    this.file = file;
    this.line = line;
    this.reason = reason;
  }
}

/** keepalived's defaults where keepalived has one; see the brief for `retry`. */
export const CONFIG_DEFAULTS = {
  delayLoop: 6,
  retry: 3,
  delayBeforeRetry: 1,
  connectTimeout: 5,
  statusCode: 200,
  weight: 1,
  /** keepalived and ipvsadm default to wlc when no scheduler is given. */
  scheduler: 'wlc' as SchedulerName,
  interface: 'fnat0',
  controlSocket: '/run/fullnat.sock',
};

export const MIN_MTU = 576;
/** Timeouts become milliseconds in a Uint32Array (engine/tcp-state.ts). */
const MAX_TIMEOUT_S = Math.floor(0xffffffff / 1000);
/** setTimeout's ceiling is 2^31-1 ms; a day is far beyond any sane check interval. */
const MAX_INTERVAL_S = 86400;

// ---------------------------------------------------------------- lexing

interface Token {
  text: string;
  file: string;
  line: number;
  /** Quoted text is never a brace or a keyword like `include`. */
  quoted: boolean;
}

export type ReadInclude = (path: string) => string;

function fail(pos: SourcePos, reason: string): never {
  throw new ConfigError(pos.file, pos.line, reason);
}

const isOpen = (t: Token | undefined): boolean => t !== undefined && !t.quoted && t.text === '{';
const isClose = (t: Token | undefined): boolean => t !== undefined && !t.quoted && t.text === '}';
const isBrace = (t: Token | undefined): boolean => isOpen(t) || isClose(t);
const sameLine = (a: Token, b: Token | undefined): boolean =>
  b !== undefined && a.file === b.file && a.line === b.line;

/**
 * Splits one line into tokens. `#` and `!` start a comment only at a word
 * boundary (keepalived's rule), so a URL path such as `/a!b` survives.
 */
function lexLine(src: string, file: string, line: number): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (c === '#' || c === '!') {
      break;
    } else if (c === '{' || c === '}') {
      out.push({ text: c, file, line, quoted: false });
      i++;
    } else if (c === '"') {
      const end = src.indexOf('"', i + 1);
      if (end < 0) fail({ file, line }, 'unterminated quoted string');
      out.push({ text: src.slice(i + 1, end), file, line, quoted: true });
      i = end + 1;
    } else {
      let j = i;
      while (j < src.length && !' \t\r{}'.includes(src[j]!)) j++;
      out.push({ text: src.slice(i, j), file, line, quoted: false });
      i = j;
    }
  }
  return out;
}

function lexFile(text: string, file: string, readInclude: ReadInclude, stack: string[]): Token[] {
  const out: Token[] = [];
  text.split('\n').forEach((src, idx) => {
    const toks = lexLine(src, file, idx + 1);
    const first = toks[0];
    if (first && !first.quoted && first.text === 'include') {
      out.push(...lexInclude(first, toks.slice(1), readInclude, stack));
    } else {
      out.push(...toks);
    }
  });
  return out;
}

/** `include FILE`: one literal path (no globbing), relative to the including file. */
function lexInclude(kw: Token, args: Token[], readInclude: ReadInclude, stack: string[]): Token[] {
  if (args.length !== 1 || isBrace(args[0])) fail(kw, "'include' needs exactly one file name");
  const name = args[0]!.text;
  const path = isAbsolute(name) ? name : join(dirname(kw.file), name);
  if (stack.includes(path)) fail(kw, `include cycle: ${[...stack, path].join(' -> ')}`);
  let text: string;
  try {
    text = readInclude(path);
  } catch (e) {
    fail(kw, `cannot read include file '${path}': ${errText(e)}`);
  }
  return lexFile(text, path, readInclude, [...stack, path]);
}

function errText(e: unknown): string {
  if (e instanceof Error) return (e as NodeJS.ErrnoException).code ?? e.message;
  return String(e);
}

// ---------------------------------------------------------------- token cursor

class Cursor {
  private i = 0;

  constructor(private readonly toks: readonly Token[]) {}

  peek(): Token | undefined {
    return this.toks[this.i];
  }

  next(): Token | undefined {
    return this.toks[this.i++];
  }

  /** The token consumed before the current one (the end of the previous statement). */
  previous(): Token | undefined {
    return this.i >= 2 ? this.toks[this.i - 2] : undefined;
  }

  /** Up to `max` non-brace tokens on the keyword's own line. */
  lineArgs(kw: Token, max = Infinity): Token[] {
    const out: Token[] = [];
    while (out.length < max && sameLine(kw, this.peek()) && !isBrace(this.peek())) {
      out.push(this.next()!);
    }
    return out;
  }

  /** Exactly `n` arguments on the keyword's line. */
  args(kw: Token, n: number): Token[] {
    const got = this.lineArgs(kw, n);
    if (got.length < n) {
      fail(kw, `'${kw.text}' needs ${n === 1 ? 'a value' : `${n} values`}`);
    }
    return got;
  }

  value(kw: Token): Token {
    return this.args(kw, 1)[0]!;
  }

  /** Header of a block: every word up to `{`, which may sit on the next line. */
  header(kw: Token, min: number, max: number, usage: string): Token[] {
    const got = this.lineArgs(kw);
    if (got.length < min || got.length > max) fail(kw, `expected '${usage}'`);
    if (!isOpen(this.peek()))
      fail(kw, `missing '{' after '${[kw, ...got].map((t) => t.text).join(' ')}'`);
    this.next();
    return got;
  }
}

type Handler = (kw: Token) => void;

/**
 * Runs the statements of a block whose `{` was consumed, dispatching on the
 * keyword; statements need not be one per line (`TCP_CHECK { a 1 b 2 }`).
 */
function walkBlock(
  cur: Cursor,
  opener: Token,
  name: string,
  handlers: Record<string, Handler>,
): void {
  for (;;) {
    const t = cur.next();
    if (!t) fail(opener, `'${name}' block is never closed (missing '}')`);
    if (isClose(t)) return;
    if (isOpen(t)) fail(t, `unexpected '{' in ${name}`);
    const h = Object.hasOwn(handlers, t.text) && !t.quoted ? handlers[t.text] : undefined;
    if (!h) unknownKeyword(t, cur.previous(), name, Object.keys(handlers));
    h(t);
  }
}

function unknownKeyword(t: Token, prev: Token | undefined, name: string, valid: string[]): never {
  if (prev && sameLine(t, prev) && !isBrace(prev) && /^[\d"/]/.test(t.text)) {
    fail(t, `unexpected extra value '${t.text}' after '${prev.text}' in ${name}`);
  }
  fail(t, `unknown keyword '${t.text}' in ${name} (valid: ${valid.join(', ')})`);
}

/** Rejects a keyword given twice in one block; aliases share one key. */
function once(seen: Map<string, Token>, kw: Token, key = kw.text): void {
  const first = seen.get(key);
  if (!first) {
    seen.set(key, kw);
    return;
  }
  if (key === 'check') {
    fail(kw, `only one health check per real_server ('${first.text}' at ${at(first)})`);
  }
  if (first.text !== kw.text) {
    fail(kw, `'${kw.text}' repeats '${first.text}' (${at(first)}) in this block`);
  }
  fail(kw, `'${kw.text}' given twice in this block (first at ${at(first)})`);
}

const at = (p: SourcePos): string => `${p.file}:${p.line}`;

// ---------------------------------------------------------------- values

function intIn(t: Token, what: string, min: number, max: number, text = t.text): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max))
    fail(t, `bad ${what} '${text}' (expected an integer ${min}..${max})`);
  return n;
}

/** Seconds, fractions allowed (tests run checks every 0.2 s). */
function seconds(t: Token, what: string, allowZero: boolean): number {
  const n = /^\d+(\.\d+)?$/.test(t.text) ? Number(t.text) : NaN;
  const ok = n <= MAX_INTERVAL_S && (allowZero ? n >= 0 : n > 0);
  if (!ok) {
    const lo = allowZero ? '0' : 'more than 0';
    fail(t, `bad ${what} '${t.text}' (expected seconds, ${lo} up to ${MAX_INTERVAL_S})`);
  }
  return n;
}

function onOff(t: Token, what: string): boolean {
  if (t.text === 'on') return true;
  if (t.text === 'off') return false;
  return fail(t, `bad ${what} '${t.text}' (expected on or off)`);
}

const port = (t: Token, what = 'port'): number => intIn(t, what, 1, 65535);

/**
 * A unicast address that can be routed through the TUN device: the kernel
 * drops loopback, multicast and broadcast destinations arriving on it.
 */
function unicast(t: Token, text = t.text, what = 'IPv4 address'): number {
  const a = parseIpv4(text);
  if (a < 0) fail(t, `bad ${what} '${text}'`);
  const first = a >>> 24;
  if (first === 0 || first === 127 || first >= 224) {
    fail(t, `${what} ${text} is out of range (not a routable unicast address)`);
  }
  return a;
}

/** `IP PORT` (keepalived) or `IP:PORT`. */
function addrPort(kw: Token, args: Token[], what: string): { addr: number; port: number } {
  const a = args[0]!;
  const p = args[1];
  if (p) return { addr: unicast(a), port: port(p) };
  const colon = a.text.lastIndexOf(':');
  if (colon < 0) fail(kw, `${what} ${a.text} has no port (write '${what} IP PORT')`);
  const addr = unicast(a, a.text.slice(0, colon));
  return { addr, port: intIn(a, 'port', 1, 65535, a.text.slice(colon + 1)) };
}

function parseRange(t: Token): number[] {
  const dash = t.text.indexOf('-');
  if (dash < 0) return [unicast(t)];
  const first = unicast(t, t.text.slice(0, dash));
  const tail = t.text.slice(dash + 1);
  // DPVS style `10.10.3.10-20` ranges over the last octet; a full address is accepted too.
  const short = /^\d{1,3}$/.test(tail);
  if (short && Number(tail) > 255) fail(t, `bad address range '${t.text}' (last octet above 255)`);
  const last = short ? ((first & 0xffffff00) | Number(tail)) >>> 0 : unicast(t, tail);
  if (last < first || last - first >= 256) {
    fail(t, `bad address range '${t.text}' (the end must follow the start, at most 256 addresses)`);
  }
  const out: number[] = [];
  for (let a = first; a <= last; a++) out.push(a >>> 0);
  return out;
}

// ---------------------------------------------------------------- drafts

interface Timing {
  delayLoop?: number;
  retry?: number;
  delayBeforeRetry?: number;
}

interface RsDraft {
  tok: Token;
  addr: number;
  port: number;
  weight: number;
  mtu?: number;
  check?: HealthCheckSpec;
  timing: Timing;
  checkTiming: Timing;
}

interface VsDraft {
  tok: Token;
  vip: number;
  vport: number;
  scheduler: SchedulerName;
  laddrGroup?: Token;
  synProxy: boolean;
  proxyProtocol: 0 | 1 | 2;
  timing: Timing;
  reals: RsDraft[];
}

interface GroupDraft {
  tok: Token;
  entries: { addr: number; tok: Token }[];
}

interface State {
  defs: FullnatDefs;
  defsTok?: Token;
  groups: Map<string, GroupDraft>;
  services: VsDraft[];
}

function defaultDefs(): FullnatDefs {
  const e = DEFAULT_ENGINE_OPTIONS;
  return {
    interface: CONFIG_DEFAULTS.interface,
    toaPolicy: e.toaPolicy,
    mssAdjust: e.mssAdjust,
    timestampRemove: e.timestampRemove,
    unknownServiceAction: e.unknownServiceAction,
    controlSocket: CONFIG_DEFAULTS.controlSocket,
    maxConnections: e.maxConnections,
    portRange: { ...e.portRange },
    rsMtu: e.rsMtu,
    offload: true,
    napiThread: 'auto',
    timeouts: { ...e.timeouts },
  };
}

// ---------------------------------------------------------------- fullnat_defs

type TimeoutState = keyof TcpTimeouts;

const timeoutKeyword = (s: TimeoutState): string => `timeout_${s.toLowerCase()}`;

function parseDefs(cur: Cursor, kw: Token, st: State): void {
  if (st.defsTok) fail(kw, `'fullnat_defs' given twice (first at ${at(st.defsTok)})`);
  st.defsTok = kw;
  cur.header(kw, 0, 0, 'fullnat_defs {');
  const d = st.defs;
  const seen = new Map<string, Token>();
  const h: Record<string, Handler> = {
    interface: (k) => (d.interface = ifName(cur.value(k))),
    toa_policy: (k) => (d.toaPolicy = toaPolicy(cur.value(k))),
    mss_adjust: (k) => (d.mssAdjust = onOff(cur.value(k), k.text)),
    timestamp_remove: (k) => (d.timestampRemove = onOff(cur.value(k), k.text)),
    unknown_service_action: (k) => (d.unknownServiceAction = unknownServiceAction(cur.value(k))),
    metrics: (k) => (d.metrics = metrics(cur.value(k))),
    control_socket: (k) => (d.controlSocket = cur.value(k).text),
    max_connections: (k) => (d.maxConnections = intIn(cur.value(k), k.text, 1, 0x7fffffff)),
    local_port_range: (k) => (d.portRange = portRange(cur, k)),
    rs_mtu: (k) => (d.rsMtu = intIn(cur.value(k), k.text, MIN_MTU, 65535)),
    offload: (k) => (d.offload = onOff(cur.value(k), k.text)),
    napi_thread: (k) => (d.napiThread = napiThread(cur.value(k))),
  };
  for (const s of Object.keys(d.timeouts) as TimeoutState[]) {
    h[timeoutKeyword(s)] = (k) => (d.timeouts[s] = intIn(cur.value(k), k.text, 1, MAX_TIMEOUT_S));
  }
  walkBlock(cur, kw, 'fullnat_defs', withOnce(h, seen));
}

/** Wraps every handler so that repeating a keyword is an error. */
function withOnce(
  h: Record<string, Handler>,
  seen: Map<string, Token>,
  aliases: Record<string, string> = {},
): Record<string, Handler> {
  const out: Record<string, Handler> = {};
  for (const [k, fn] of Object.entries(h)) {
    out[k] = (t) => {
      once(seen, t, aliases[k] ?? k);
      fn(t);
    };
  }
  return out;
}

function ifName(t: Token): string {
  // Linux interface names: at most 15 bytes, no '/' or whitespace.
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(t.text)) fail(t, `bad interface name '${t.text}'`);
  return t.text;
}

function napiThread(t: Token): NapiThreadSetting {
  if (t.text === 'on' || t.text === 'off' || t.text === 'auto') return t.text;
  return fail(t, `bad napi_thread '${t.text}' (expected on, off or auto)`);
}

function toaPolicy(t: Token): ToaSetting {
  const p = TOA_SETTINGS.find((x) => x === t.text);
  if (!p) fail(t, `unknown toa_policy '${t.text}' (valid: ${TOA_SETTINGS.join(', ')})`);
  return p;
}

function unknownServiceAction(t: Token): UnknownServiceAction {
  const a = UNKNOWN_SERVICE_ACTIONS.find((x) => x === t.text);
  if (!a) {
    fail(
      t,
      `bad unknown_service_action '${t.text}' (expected ${UNKNOWN_SERVICE_ACTIONS.join(' or ')})`,
    );
  }
  return a;
}

function metrics(t: Token): { host: string; port: number } | undefined {
  if (t.text === 'off') return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(.*)$/.exec(t.text);
  if (!m) fail(t, `metrics needs HOST:PORT, e.g. 127.0.0.1:9400 (got '${t.text}')`);
  const host = m[1] ?? m[2]!;
  const ok = m[1] !== undefined ? parseIpv6(host) !== null : validHost(host);
  if (!ok) fail(t, `bad metrics host '${host}'`);
  return { host, port: intIn(t, 'metrics port', 1, 65535, m[3]) };
}

function validHost(h: string): boolean {
  if (/^[\d.]+$/.test(h)) return parseIpv4(h) >= 0;
  return /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(
    h,
  );
}

/** `local_port_range MIN MAX`, or `MIN-MAX` in one word. */
function portRange(cur: Cursor, kw: Token): { min: number; max: number } {
  const args = cur.lineArgs(kw, 2);
  let lo: number;
  let hi: number;
  if (args.length === 1 && args[0]!.text.includes('-')) {
    const [a, b] = args[0]!.text.split('-');
    lo = intIn(args[0]!, 'local_port_range start', 1, 65535, a);
    hi = intIn(args[0]!, 'local_port_range end', 1, 65535, b);
  } else if (args.length === 2) {
    lo = intIn(args[0]!, 'local_port_range start', 1, 65535);
    hi = intIn(args[1]!, 'local_port_range end', 1, 65535);
  } else {
    return fail(kw, "'local_port_range' needs MIN MAX, e.g. 'local_port_range 5000 65535'");
  }
  if (lo > hi) fail(kw, `bad local_port_range ${lo}-${hi} (the start is above the end)`);
  return { min: lo, max: hi };
}

// ---------------------------------------------------------------- local_address_group

function parseGroup(cur: Cursor, kw: Token, st: State): void {
  const [nameTok] = cur.header(kw, 1, 1, 'local_address_group NAME {');
  const name = nameTok!.text;
  const prior = st.groups.get(name);
  if (prior) fail(kw, `duplicate local_address_group '${name}' (first at ${at(prior.tok)})`);
  const g: GroupDraft = { tok: kw, entries: [] };
  const where = new Map<number, Token>();
  for (;;) {
    const t = cur.next();
    if (!t) fail(kw, `'local_address_group ${name}' block is never closed (missing '}')`);
    if (isClose(t)) break;
    if (isOpen(t)) fail(t, `unexpected '{' in local_address_group`);
    if (isDeviceName(t, cur.previous())) continue;
    for (const addr of parseRange(t)) {
      const dup = where.get(addr);
      if (dup)
        fail(
          t,
          `duplicate local address ${ipv4ToString(addr)} in group '${name}' (also at ${at(dup)})`,
        );
      where.set(addr, t);
      g.entries.push({ addr, tok: t });
    }
  }
  if (g.entries.length === 0) fail(kw, `local_address_group '${name}' is empty`);
  st.groups.set(name, g);
}

/**
 * DPVS writes `10.10.3.1 dpdk0`: the device after an address is ignored
 * because every LIP lives on the one TUN device.
 */
function isDeviceName(t: Token, prev: Token | undefined): boolean {
  return (
    prev !== undefined &&
    sameLine(t, prev) &&
    !isBrace(prev) &&
    /^[A-Za-z][A-Za-z0-9_.-]{0,14}$/.test(t.text)
  );
}

// ---------------------------------------------------------------- virtual_server

const UNSUPPORTED_KINDS = ['DR', 'NAT', 'TUN'];

function parseVirtualServer(cur: Cursor, kw: Token, st: State): void {
  const first = cur.peek();
  if (sameLine(kw, first) && (first!.text === 'group' || first!.text === 'fwmark')) {
    fail(kw, `'virtual_server ${first!.text}' is not supported (write 'virtual_server VIP PORT')`);
  }
  const args = cur.header(kw, 1, 2, 'virtual_server VIP PORT {');
  const { addr, port: vport } = addrPort(kw, args, 'virtual_server');
  const vs: VsDraft = {
    tok: kw,
    vip: addr,
    vport,
    scheduler: CONFIG_DEFAULTS.scheduler,
    synProxy: false,
    proxyProtocol: 0,
    timing: {},
    reals: [],
  };
  const dup = st.services.find((s) => s.vip === vs.vip && s.vport === vs.vport);
  if (dup) fail(kw, `duplicate virtual_server ${svcName(vs)} (first at ${at(dup.tok)})`);
  const seen = new Map<string, Token>();
  const h: Record<string, Handler> = {
    ...timingHandlers(cur, vs.timing),
    protocol: (k) => protocol(cur.value(k)),
    lb_kind: (k) => lbKind(cur.value(k)),
    lvs_method: (k) => lbKind(cur.value(k)),
    lb_algo: (k) => (vs.scheduler = scheduler(cur.value(k))),
    lvs_sched: (k) => (vs.scheduler = scheduler(cur.value(k))),
    syn_proxy: (k) => {
      cur.args(k, 0);
      vs.synProxy = true;
    },
    laddr_group_name: (k) => (vs.laddrGroup = cur.value(k)),
    proxy_protocol: (k) => (vs.proxyProtocol = proxyProtocolVersion(cur.value(k))),
  };
  const guarded = withOnce(h, seen, { lvs_method: 'lb_kind', lvs_sched: 'lb_algo' });
  guarded.real_server = (k) => parseRealServer(cur, k, vs);
  walkBlock(cur, kw, 'virtual_server', guarded);
  st.services.push(vs);
}

const svcName = (s: { vip: number; vport: number }): string => `${ipv4ToString(s.vip)}:${s.vport}`;

/** DPVS spells it `proxy_protocol v1|v2`; `off` keeps TOA. */
function proxyProtocolVersion(t: Token): 0 | 1 | 2 {
  switch (t.text.toLowerCase()) {
    case 'v1':
      return 1;
    case 'v2':
      return 2;
    case 'off':
      return 0;
    default:
      return fail(t, `bad proxy_protocol '${t.text}' (expected v1, v2 or off)`);
  }
}

function protocol(t: Token): void {
  const p = t.text.toUpperCase();
  if (p === 'TCP') return;
  if (p === 'UDP' || p === 'SCTP') fail(t, `protocol ${t.text} is not supported (TCP only)`);
  fail(t, `unknown protocol '${t.text}' (valid: TCP)`);
}

function lbKind(t: Token): void {
  const k = t.text.toUpperCase();
  if (k === 'FNAT' || k === 'FULLNAT') return;
  if (UNSUPPORTED_KINDS.includes(k)) {
    fail(t, `lb_kind ${t.text} is not supported: this load balancer only does FNAT (FULLNAT)`);
  }
  fail(t, `unknown lb_kind '${t.text}' (valid: FNAT, FULLNAT)`);
}

function scheduler(t: Token): SchedulerName {
  const s = SCHEDULER_NAMES.find((x) => x === t.text);
  if (!s) fail(t, `unknown scheduler '${t.text}' (valid: ${SCHEDULER_NAMES.join(', ')})`);
  return s;
}

/** delay_loop / retry / delay_before_retry: valid at every level, inner wins. */
function timingHandlers(cur: Cursor, t: Timing): Record<string, Handler> {
  return {
    delay_loop: (k) => (t.delayLoop = seconds(cur.value(k), k.text, false)),
    retry: (k) => (t.retry = retries(cur.value(k), k.text)),
    delay_before_retry: (k) => (t.delayBeforeRetry = seconds(cur.value(k), k.text, true)),
  };
}

function retries(t: Token, what: string): number {
  // Here `retry` counts the consecutive failures that take an RS out, so 0 means nothing.
  return intIn(t, `${what} (consecutive failures before DOWN)`, 1, 65535);
}

// ---------------------------------------------------------------- real_server

function parseRealServer(cur: Cursor, kw: Token, vs: VsDraft): void {
  const args = cur.header(kw, 1, 2, 'real_server IP PORT {');
  const { addr, port: rport } = addrPort(kw, args, 'real_server');
  const dup = vs.reals.find((r) => r.addr === addr && r.port === rport);
  if (dup) {
    fail(
      kw,
      `duplicate real_server ${ipv4ToString(addr)}:${rport} in virtual_server ${svcName(vs)} (first at ${at(dup.tok)})`,
    );
  }
  const rs: RsDraft = {
    tok: kw,
    addr,
    port: rport,
    weight: CONFIG_DEFAULTS.weight,
    timing: {},
    checkTiming: {},
  };
  const seen = new Map<string, Token>();
  const h: Record<string, Handler> = {
    ...timingHandlers(cur, rs.timing),
    weight: (k) => (rs.weight = intIn(cur.value(k), k.text, 0, 65535)),
    mtu: (k) => (rs.mtu = intIn(cur.value(k), k.text, MIN_MTU, 65535)),
    // Health-check failures already leave the RS in place at weight 0 (established connections keep flowing).
    inhibit_on_failure: (k) => void cur.args(k, 0),
    TCP_CHECK: (k) => parseCheck(cur, k, rs),
    HTTP_GET: (k) => parseCheck(cur, k, rs),
  };
  walkBlock(cur, kw, 'real_server', withOnce(h, seen, { HTTP_GET: 'check', TCP_CHECK: 'check' }));
  vs.reals.push(rs);
}

function parseCheck(cur: Cursor, kw: Token, rs: RsDraft): void {
  cur.header(kw, 0, 0, `${kw.text} {`);
  const common = {
    connectTimeout: CONFIG_DEFAULTS.connectTimeout,
    connectPort: undefined as number | undefined,
  };
  const url = { path: undefined as string | undefined, statusCode: CONFIG_DEFAULTS.statusCode };
  const seen = new Map<string, Token>();
  const h: Record<string, Handler> = {
    ...timingHandlers(cur, rs.checkTiming),
    nb_get_retry: (k) => (rs.checkTiming.retry = retries(cur.value(k), k.text)),
    connect_timeout: (k) => (common.connectTimeout = seconds(cur.value(k), k.text, false)),
    connect_port: (k) => (common.connectPort = port(cur.value(k), 'connect_port')),
  };
  if (kw.text === 'HTTP_GET') h.url = (k) => parseUrl(cur, k, url);
  walkBlock(cur, kw, kw.text, withOnce(h, seen, { nb_get_retry: 'retry' }));
  if (kw.text === 'TCP_CHECK') {
    rs.check = { kind: 'TCP_CHECK', ...common };
    return;
  }
  if (url.path === undefined) fail(kw, "HTTP_GET needs 'url { path /PATH }'");
  rs.check = { kind: 'HTTP_GET', path: url.path, statusCode: url.statusCode, ...common };
}

function parseUrl(cur: Cursor, kw: Token, url: { path?: string; statusCode: number }): void {
  cur.header(kw, 0, 0, 'url {');
  const h: Record<string, Handler> = {
    path: (k) => {
      const t = cur.value(k);
      if (!/^\/[\x21-\x7e]*$/.test(t.text))
        fail(t, `bad url path '${t.text}' (must start with '/', no spaces)`);
      url.path = t.text;
    },
    status_code: (k) => (url.statusCode = intIn(cur.value(k), k.text, 100, 599)),
  };
  walkBlock(cur, kw, 'url', withOnce(h, new Map()));
  if (url.path === undefined) fail(kw, "url block needs 'path'");
}

// ---------------------------------------------------------------- whole file

function parseTop(cur: Cursor, st: State): void {
  const h: Record<string, Handler> = {
    fullnat_defs: (k) => parseDefs(cur, k, st),
    local_address_group: (k) => parseGroup(cur, k, st),
    virtual_server: (k) => parseVirtualServer(cur, k, st),
  };
  for (let t = cur.next(); t; t = cur.next()) {
    if (isClose(t)) fail(t, "unexpected '}' (no block is open)");
    if (isOpen(t)) fail(t, "unexpected '{' (a block needs a keyword before it)");
    const fn = !t.quoted && Object.hasOwn(h, t.text) ? h[t.text] : undefined;
    if (!fn)
      fail(
        t,
        `unknown keyword '${t.text}' at top level (valid: ${[...Object.keys(h), 'include'].join(', ')})`,
      );
    fn(t);
  }
}

/** The group each used LIP came from, to reject overlaps between groups in use. */
function checkGroups(st: State): void {
  const owner = new Map<number, { group: string; tok: Token }>();
  const used = new Set<string>();
  for (const vs of st.services) {
    const ref = vs.laddrGroup;
    if (!ref)
      fail(
        vs.tok,
        `virtual_server ${svcName(vs)} needs 'laddr_group_name' (FULLNAT sends LB->RS traffic from a local address group)`,
      );
    const g = st.groups.get(ref.text);
    if (!g) {
      const known = [...st.groups.keys()].join(', ') || 'none';
      fail(ref, `unknown local_address_group '${ref.text}' (defined: ${known})`);
    }
    if (used.has(ref.text)) continue;
    used.add(ref.text);
    for (const e of g.entries) {
      const o = owner.get(e.addr);
      if (o) {
        fail(
          e.tok,
          `local address ${ipv4ToString(e.addr)} is also in local_address_group '${o.group}' (${at(o.tok)}); groups used by different services must not overlap`,
        );
      }
      owner.set(e.addr, { group: ref.text, tok: e.tok });
    }
  }
  const max = DEFAULT_ENGINE_OPTIONS.maxLocalAddresses;
  if (owner.size > max)
    fail(
      st.services[0]!.tok,
      `${owner.size} local addresses in use; the engine holds at most ${max}`,
    );
}

/** LIPs, VIPs and RIPs must differ: a shared address would loop through the TUN device. */
function checkAddressRoles(st: State): void {
  const vips = new Map<number, Token>();
  const rips = new Map<number, Token>();
  for (const vs of st.services) {
    if (!vips.has(vs.vip)) vips.set(vs.vip, vs.tok);
    for (const r of vs.reals) if (!rips.has(r.addr)) rips.set(r.addr, r.tok);
  }
  for (const [addr, tok] of rips) {
    const v = vips.get(addr);
    if (v)
      fail(
        tok,
        `real server address ${ipv4ToString(addr)} is also a virtual_server address (${at(v)})`,
      );
  }
  for (const [name, g] of st.groups) {
    for (const e of g.entries) {
      const v = vips.get(e.addr);
      if (v)
        fail(
          e.tok,
          `local address ${ipv4ToString(e.addr)} in '${name}' is also a virtual_server address (${at(v)})`,
        );
      const r = rips.get(e.addr);
      if (r)
        fail(
          e.tok,
          `local address ${ipv4ToString(e.addr)} in '${name}' is also a real server address (${at(r)})`,
        );
    }
  }
  const total = st.services.reduce((n, s) => n + s.reals.length, 0);
  const max = DEFAULT_ENGINE_OPTIONS.maxRealServers;
  if (total > max)
    fail(st.services[0]!.tok, `${total} real servers configured; the engine holds at most ${max}`);
}

function buildReal(rs: RsDraft, vs: VsDraft): RealServerSpec {
  const pick = <K extends keyof Timing>(k: K, dflt: number): number =>
    rs.checkTiming[k] ?? rs.timing[k] ?? vs.timing[k] ?? dflt;
  const out: RealServerSpec = {
    addr: rs.addr,
    port: rs.port,
    weight: rs.weight,
    delayLoop: pick('delayLoop', CONFIG_DEFAULTS.delayLoop),
    retry: pick('retry', CONFIG_DEFAULTS.retry),
    delayBeforeRetry: pick('delayBeforeRetry', CONFIG_DEFAULTS.delayBeforeRetry),
    pos: { file: rs.tok.file, line: rs.tok.line },
  };
  if (rs.mtu !== undefined) out.mtu = rs.mtu;
  if (rs.check) out.check = stripUndefined(rs.check);
  return out;
}

function stripUndefined(c: HealthCheckSpec): HealthCheckSpec {
  const copy = { ...c };
  if (copy.connectPort === undefined) delete copy.connectPort;
  return copy;
}

function build(file: string, st: State): FullnatConfig {
  const laddrGroups = new Map<string, number[]>();
  for (const [name, g] of st.groups)
    laddrGroups.set(
      name,
      g.entries.map((e) => e.addr),
    );
  const services: ServiceSpec[] = st.services.map((vs) => ({
    vip: vs.vip,
    vport: vs.vport,
    protocol: 'TCP',
    scheduler: vs.scheduler,
    laddrGroup: vs.laddrGroup!.text,
    laddrs: [...laddrGroups.get(vs.laddrGroup!.text)!],
    realServers: vs.reals.map((r) => buildReal(r, vs)),
    synProxy: vs.synProxy,
    proxyProtocol: vs.proxyProtocol,
    pos: { file: vs.tok.file, line: vs.tok.line },
  }));
  return { file, defs: st.defs, laddrGroups, services };
}

const readUtf8: ReadInclude = (p) => readFileSync(p, 'utf8');

/**
 * Parses configuration text. `file` names the text in errors and anchors
 * relative `include` paths; `readInclude` reads included files (fs by default).
 */
export function parseConfig(
  text: string,
  file: string,
  readInclude: ReadInclude = readUtf8,
): FullnatConfig {
  const toks = lexFile(text, file, readInclude, [normalize(file)]);
  const st: State = { defs: defaultDefs(), groups: new Map(), services: [] };
  parseTop(new Cursor(toks), st);
  checkGroups(st);
  checkAddressRoles(st);
  return build(file, st);
}

/** Reads and parses a file; an unreadable file is reported as `FILE:0: …`. */
export function loadConfig(path: string): FullnatConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, 0, `cannot read configuration: ${errText(e)}`);
  }
  return parseConfig(text, path);
}

// ---------------------------------------------------------------- diff

export type RealServerField =
  'weight' | 'mtu' | 'check' | 'delayLoop' | 'retry' | 'delayBeforeRetry';

export interface RealServerChange {
  before: RealServerSpec;
  after: RealServerSpec;
  fields: RealServerField[];
}

export interface ServiceChange {
  before: ServiceSpec;
  after: ServiceSpec;
  addedReals: RealServerSpec[];
  removedReals: RealServerSpec[];
  changedReals: RealServerChange[];
  scheduler?: { from: SchedulerName; to: SchedulerName };
  laddrGroup?: { from: string; to: string };
  addedLaddrs: number[];
  removedLaddrs: number[];
  synProxy?: { from: boolean; to: boolean };
  proxyProtocol?: { from: 0 | 1 | 2; to: 0 | 1 | 2 };
}

export interface ConfigDiff {
  addedServices: ServiceSpec[];
  removedServices: ServiceSpec[];
  /** Only services with at least one change. */
  changedServices: ServiceChange[];
  /** Changed `fullnat_defs` keywords, e.g. `interface`, `timeout_established`. */
  changedDefs: string[];
  /** The subset of changedDefs a reload cannot apply: they are bound or sized at start. */
  restartRequired: string[];
}

/** Defs bound at start: the TUN device, sockets, and tables sized once. */
export const RESTART_REQUIRED_DEFS: readonly string[] = [
  'interface',
  'control_socket',
  'metrics',
  'max_connections',
  'local_port_range',
  'offload',
  'napi_thread',
];

const DEF_KEYWORDS: Record<Exclude<keyof FullnatDefs, 'timeouts'>, string> = {
  interface: 'interface',
  toaPolicy: 'toa_policy',
  mssAdjust: 'mss_adjust',
  timestampRemove: 'timestamp_remove',
  unknownServiceAction: 'unknown_service_action',
  metrics: 'metrics',
  controlSocket: 'control_socket',
  maxConnections: 'max_connections',
  portRange: 'local_port_range',
  rsMtu: 'rs_mtu',
  offload: 'offload',
  napiThread: 'napi_thread',
};

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

function diffDefs(a: FullnatDefs, b: FullnatDefs): string[] {
  const out: string[] = [];
  for (const [field, kw] of Object.entries(DEF_KEYWORDS)) {
    const f = field as keyof typeof DEF_KEYWORDS;
    if (!same(a[f], b[f])) out.push(kw);
  }
  for (const s of Object.keys(a.timeouts) as TimeoutState[]) {
    if (a.timeouts[s] !== b.timeouts[s]) out.push(timeoutKeyword(s));
  }
  return out;
}

const svcKey = (s: ServiceSpec): string => `${s.vip}:${s.vport}`;
const rsKey = (r: RealServerSpec): string => `${r.addr}:${r.port}`;

function diffReal(a: RealServerSpec, b: RealServerSpec): RealServerField[] {
  const fields: RealServerField[] = [
    'weight',
    'mtu',
    'check',
    'delayLoop',
    'retry',
    'delayBeforeRetry',
  ];
  return fields.filter((f) => !same(a[f], b[f]));
}

function diffService(a: ServiceSpec, b: ServiceSpec): ServiceChange | undefined {
  const before = new Map(a.realServers.map((r) => [rsKey(r), r]));
  const after = new Map(b.realServers.map((r) => [rsKey(r), r]));
  const c: ServiceChange = {
    before: a,
    after: b,
    addedReals: b.realServers.filter((r) => !before.has(rsKey(r))),
    removedReals: a.realServers.filter((r) => !after.has(rsKey(r))),
    changedReals: [],
    addedLaddrs: b.laddrs.filter((l) => !a.laddrs.includes(l)),
    removedLaddrs: a.laddrs.filter((l) => !b.laddrs.includes(l)),
  };
  for (const r of b.realServers) {
    const old = before.get(rsKey(r));
    const fields = old ? diffReal(old, r) : [];
    if (old && fields.length > 0) c.changedReals.push({ before: old, after: r, fields });
  }
  if (a.scheduler !== b.scheduler) c.scheduler = { from: a.scheduler, to: b.scheduler };
  if (a.laddrGroup !== b.laddrGroup) c.laddrGroup = { from: a.laddrGroup, to: b.laddrGroup };
  if (a.synProxy !== b.synProxy) c.synProxy = { from: a.synProxy, to: b.synProxy };
  if (a.proxyProtocol !== b.proxyProtocol)
    c.proxyProtocol = { from: a.proxyProtocol, to: b.proxyProtocol };
  const changed =
    c.addedReals.length +
      c.removedReals.length +
      c.changedReals.length +
      c.addedLaddrs.length +
      c.removedLaddrs.length >
      0 ||
    c.scheduler !== undefined ||
    c.laddrGroup !== undefined ||
    c.synProxy !== undefined ||
    c.proxyProtocol !== undefined;
  return changed ? c : undefined;
}

/** What a reload from `old` to `next` has to do; positions are ignored. */
export function diffConfig(old: FullnatConfig, next: FullnatConfig): ConfigDiff {
  const before = new Map(old.services.map((s) => [svcKey(s), s]));
  const after = new Map(next.services.map((s) => [svcKey(s), s]));
  const changedServices: ServiceChange[] = [];
  for (const s of next.services) {
    const prev = before.get(svcKey(s));
    const c = prev ? diffService(prev, s) : undefined;
    if (c) changedServices.push(c);
  }
  const changedDefs = diffDefs(old.defs, next.defs);
  return {
    addedServices: next.services.filter((s) => !before.has(svcKey(s))),
    removedServices: old.services.filter((s) => !after.has(svcKey(s))),
    changedServices,
    changedDefs,
    restartRequired: changedDefs.filter((k) => RESTART_REQUIRED_DEFS.includes(k)),
  };
}
