/**
 * `fullnat ctl ARGS...`: ipvsadm's command line and listings, over the
 * control socket. An operator who knows ipvsadm (or DPVS's ipvsadm, for -b
 * and the local-address commands) should not need a manual.
 *
 * The parser is hand-written and table-driven on purpose: ipvsadm (popt)
 * clusters a command with its options (`-Lnc`, `-at VIP:port`), attaches
 * values (`-w3`, `-t10.0.0.1:80`), and checks a command × option legality
 * table — none of which commander models.
 *
 * Listings copy ipvsadm 1.2x's printf layouts column for column (ipvsadm.c
 * print_title / print_service_entry / print_largenum / list_conn) with two
 * deliberate changes: the first line names fullnat instead of "IP Virtual
 * Server version", and trailing blanks that ipvsadm's %-10u leaves on each
 * line are trimmed. Addresses are always numeric (-n is accepted and implied).
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import { SCHEDULER_NAMES, type SchedulerName } from '../../engine/sched/scheduler.js';
import { ipv4ToString, parseIpv4 } from '../../wire/bytes.js';
import type {
  ConnectionStatus,
  ControlRequest,
  ControlResponse,
  ServiceKey,
  ServiceStatus,
  Snapshot,
  TrafficStats,
} from '../model.js';
import { MAX_WEIGHT, sendControlRequest } from '../socket/server.js';

// ---------------------------------------------------------------------------
// Parsing

export type ListView = 'services' | 'stats' | 'rate';

export type CtlCommand =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'list'; view: ListView; service?: ServiceKey; exact: boolean }
  | { kind: 'connections' }
  | { kind: 'laddrs'; service?: ServiceKey }
  | { kind: 'request'; request: ControlRequest };

/** A command line ipvsadm would also reject, or one fullnat cannot honour. Exit code 2. */
export class CtlUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CtlUsageError';
  }
}

type CommandKey =
  | 'add-service'
  | 'edit-service'
  | 'delete-service'
  | 'add-server'
  | 'edit-server'
  | 'delete-server'
  | 'list'
  | 'zero'
  | 'add-laddr'
  | 'get-laddr'
  | 'reload'
  | 'help'
  | 'version';

type OptionKey =
  | 'service'
  | 'scheduler'
  | 'real-server'
  | 'weight'
  | 'fullnat'
  | 'laddr'
  | 'numeric'
  | 'connection'
  | 'stats'
  | 'rate'
  | 'exact';

interface FlagDef {
  key: CommandKey | OptionKey;
  command: boolean;
  short: string[];
  long: string[];
  arg: boolean;
}

/** Every flag ctl understands, in ipvsadm's and DPVS's spellings. */
const FLAGS: readonly FlagDef[] = [
  { key: 'add-service', command: true, short: ['A'], long: ['add-service'], arg: false },
  { key: 'edit-service', command: true, short: ['E'], long: ['edit-service'], arg: false },
  { key: 'delete-service', command: true, short: ['D'], long: ['delete-service'], arg: false },
  { key: 'add-server', command: true, short: ['a'], long: ['add-server'], arg: false },
  { key: 'edit-server', command: true, short: ['e'], long: ['edit-server'], arg: false },
  { key: 'delete-server', command: true, short: ['d'], long: ['delete-server'], arg: false },
  { key: 'list', command: true, short: ['L', 'l'], long: ['list'], arg: false },
  { key: 'zero', command: true, short: ['Z'], long: ['zero'], arg: false },
  { key: 'add-laddr', command: true, short: ['P'], long: ['add-laddr'], arg: false },
  { key: 'get-laddr', command: true, short: ['G'], long: ['get-laddr'], arg: false },
  { key: 'reload', command: true, short: [], long: ['reload'], arg: false },
  { key: 'help', command: true, short: ['h'], long: ['help'], arg: false },
  { key: 'version', command: true, short: ['v'], long: ['version'], arg: false },
  { key: 'service', command: false, short: ['t'], long: ['tcp-service'], arg: true },
  { key: 'scheduler', command: false, short: ['s'], long: ['scheduler'], arg: true },
  { key: 'real-server', command: false, short: ['r'], long: ['real-server'], arg: true },
  { key: 'weight', command: false, short: ['w'], long: ['weight'], arg: true },
  { key: 'fullnat', command: false, short: ['b'], long: ['fullnat'], arg: false },
  { key: 'laddr', command: false, short: ['z'], long: ['laddr'], arg: true },
  { key: 'numeric', command: false, short: ['n'], long: ['numeric'], arg: false },
  { key: 'connection', command: false, short: ['c'], long: ['connection'], arg: false },
  { key: 'stats', command: false, short: [], long: ['stats'], arg: false },
  { key: 'rate', command: false, short: [], long: ['rate'], arg: false },
  { key: 'exact', command: false, short: ['X'], long: ['exact'], arg: false },
];

const ONLY_FULLNAT = 'only FULLNAT (-b) is supported';
const ONLY_TCP = 'only TCP services are supported (-t VIP:port)';

/** ipvsadm/DPVS flags fullnat knows but cannot honour, with the reason an operator needs. */
const UNSUPPORTED: ReadonlyMap<string, string> = new Map([
  ['-g', ONLY_FULLNAT],
  ['--gatewaying', ONLY_FULLNAT],
  ['-m', ONLY_FULLNAT],
  ['--masquerading', ONLY_FULLNAT],
  ['-i', ONLY_FULLNAT],
  ['--ipip', ONLY_FULLNAT],
  ['-J', ONLY_FULLNAT],
  ['--snat', ONLY_FULLNAT],
  ['-u', ONLY_TCP],
  ['--udp-service', ONLY_TCP],
  ['-q', ONLY_TCP],
  ['--icmp-service', ONLY_TCP],
  ['-f', 'firewall-mark services (-f) are not supported; use -t VIP:port'],
  ['--fwmark-service', 'firewall-mark services (-f) are not supported; use -t VIP:port'],
  ['-p', 'persistent services (-p) are not supported'],
  ['--persistent', 'persistent services (-p) are not supported'],
  ['-M', 'persistent services (-M netmask) are not supported'],
  ['--netmask', 'persistent services (-M netmask) are not supported'],
  ['-x', 'connection thresholds (-x/-y) are not supported'],
  ['-y', 'connection thresholds (-x/-y) are not supported'],
  ['--u-threshold', 'connection thresholds (-x/-y) are not supported'],
  ['--l-threshold', 'connection thresholds (-x/-y) are not supported'],
  ['-C', '-C (clear) is not supported: delete services with -D, or edit the config and --reload'],
  [
    '--clear',
    '-C (clear) is not supported: delete services with -D, or edit the config and --reload',
  ],
  [
    '-R',
    '-R/-S (restore/save) are not supported: the config file is the saved table; use --reload',
  ],
  [
    '--restore',
    '-R/-S (restore/save) are not supported: the config file is the saved table; use --reload',
  ],
  [
    '-S',
    '-R/-S (restore/save) are not supported: the config file is the saved table; use --reload',
  ],
  [
    '--save',
    '-R/-S (restore/save) are not supported: the config file is the saved table; use --reload',
  ],
  ['-Q', 'deleting a local address (-Q) is not supported: edit the config and --reload'],
  ['--del-laddr', 'deleting a local address (-Q) is not supported: edit the config and --reload'],
  ['--set', 'timeouts (--set) come from the config file: edit it and --reload'],
  ['--timeout', 'timeouts come from the config file'],
  ['--start-daemon', 'connection sync daemons are not supported'],
  ['--stop-daemon', 'connection sync daemons are not supported'],
  ['--daemon', 'connection sync daemons are not supported'],
  ['--thresholds', 'connection thresholds are not supported'],
  ['--persistent-conn', 'persistent services are not supported'],
]);

/** ipvsadm's names for the flags, used in messages next to the flag the operator typed. */
const NAMES: Record<CommandKey | OptionKey, string> = {
  'add-service': 'add-service',
  'edit-service': 'edit-service',
  'delete-service': 'delete-service',
  'add-server': 'add-server',
  'edit-server': 'edit-server',
  'delete-server': 'delete-server',
  list: 'list',
  zero: 'zero',
  'add-laddr': 'add-laddr',
  'get-laddr': 'get-laddr',
  reload: 'reload',
  help: 'help',
  version: 'version',
  service: 'service-address',
  scheduler: 'scheduler',
  'real-server': 'real-server',
  weight: 'weight',
  fullnat: 'forwarding-method',
  laddr: 'local-address',
  numeric: 'numeric',
  connection: 'connection',
  stats: 'stats',
  rate: 'rate',
  exact: 'exact',
};

/** How a required option is asked for in messages. */
const WANTED: Partial<Record<OptionKey, string>> = {
  service: '-t VIP:port',
  'real-server': '-r RS:port',
  laddr: '-z LIP',
};

/** ipvsadm's commands_v_options table, reduced to what fullnat supports. Unlisted = illegal. */
const RULES: Record<CommandKey, { required: OptionKey[]; optional: OptionKey[] }> = {
  'add-service': { required: ['service'], optional: ['scheduler'] },
  'edit-service': { required: ['service'], optional: ['scheduler'] },
  'delete-service': { required: ['service'], optional: [] },
  'add-server': { required: ['service', 'real-server'], optional: ['weight', 'fullnat'] },
  'edit-server': { required: ['service', 'real-server'], optional: ['weight', 'fullnat'] },
  'delete-server': { required: ['service', 'real-server'], optional: [] },
  list: { required: [], optional: ['numeric', 'connection', 'service', 'stats', 'rate', 'exact'] },
  zero: { required: [], optional: [] },
  'add-laddr': { required: ['service', 'laddr'], optional: [] },
  'get-laddr': { required: [], optional: ['service', 'numeric'] },
  reload: { required: [], optional: [] },
  help: { required: [], optional: [] },
  version: { required: [], optional: [] },
};

/** ipvsadm's default scheduler (DEF_SCHED) and real-server weight. */
export const DEFAULT_SCHEDULER: SchedulerName = 'wlc';
export const DEFAULT_WEIGHT = 1;

interface Occurrence {
  def: FlagDef;
  /** As typed, for messages: "-w", "--weight". */
  spelled: string;
  value?: string;
}

function label(o: Occurrence): string {
  return `${o.spelled} (${NAMES[o.def.key]})`;
}

function tokenize(argv: readonly string[]): Occurrence[] {
  const out: Occurrence[] = [];
  let i = 0;
  const takeValue = (spelled: string): string => {
    if (i + 1 >= argv.length) throw new CtlUsageError(`option ${spelled} requires an argument`);
    i++;
    return argv[i]!;
  };
  for (; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === '--') {
      if (i + 1 < argv.length) throw new CtlUsageError(`unexpected argument '${argv[i + 1]}'`);
      break;
    }
    if (tok.startsWith('--')) {
      const eq = tok.indexOf('=');
      const spelled = eq < 0 ? tok : tok.slice(0, eq);
      const name = spelled.slice(2);
      const reason = UNSUPPORTED.get(spelled);
      if (reason) throw new CtlUsageError(reason);
      const def = FLAGS.find((f) => f.long.includes(name));
      if (!def) throw new CtlUsageError(`unknown option ${spelled}`);
      if (def.arg) {
        out.push({ def, spelled, value: eq < 0 ? takeValue(spelled) : tok.slice(eq + 1) });
      } else {
        if (eq >= 0) throw new CtlUsageError(`option ${spelled} does not take a value`);
        out.push({ def, spelled });
      }
      continue;
    }
    if (tok.startsWith('-') && tok.length > 1) {
      // A cluster of short flags (-Lnc); a flag taking a value ends the cluster (-w3, -at VIP:port).
      for (let j = 1; j < tok.length; j++) {
        const c = tok[j]!;
        const spelled = `-${c}`;
        const reason = UNSUPPORTED.get(spelled);
        if (reason) throw new CtlUsageError(reason);
        const def = FLAGS.find((f) => f.short.includes(c));
        if (!def) throw new CtlUsageError(`unknown option ${spelled}`);
        if (def.arg) {
          const rest = tok.slice(j + 1);
          out.push({ def, spelled, value: rest !== '' ? rest : takeValue(spelled) });
          break;
        }
        out.push({ def, spelled });
      }
      continue;
    }
    throw new CtlUsageError(`unexpected argument '${tok}'`);
  }
  return out;
}

function parseAddrPort(
  text: string,
  what: string,
  portRequired: boolean,
): { addr: number; port?: number } {
  const m = /^([^:]+)(?::([^:]*))?$/.exec(text);
  const example = portRequired ? 'e.g. 10.10.1.100:80' : 'e.g. 10.10.2.2:80 or 10.10.2.2';
  if (!m) throw new CtlUsageError(`illegal ${what} '${text}' (${example})`);
  const addr = parseIpv4(m[1]!);
  if (addr < 0)
    throw new CtlUsageError(`illegal ${what} '${text}': not an IPv4 address (${example})`);
  if (addr === 0) throw new CtlUsageError(`illegal ${what} '${text}': 0.0.0.0 is not usable`);
  if (m[2] === undefined) {
    if (portRequired)
      throw new CtlUsageError(`illegal ${what} '${text}': missing port (${example})`);
    return { addr };
  }
  if (!/^\d{1,5}$/.test(m[2]) || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new CtlUsageError(`illegal ${what} '${text}': port must be 1-65535`);
  }
  return { addr, port: Number(m[2]) };
}

function parseWeight(text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > MAX_WEIGHT) {
    throw new CtlUsageError(`illegal weight '${text}' (an integer 0-${MAX_WEIGHT})`);
  }
  return Number(text);
}

function parseScheduler(text: string): SchedulerName {
  if (!(SCHEDULER_NAMES as readonly string[]).includes(text)) {
    throw new CtlUsageError(`unknown scheduler '${text}' (one of ${SCHEDULER_NAMES.join(', ')})`);
  }
  return text as SchedulerName;
}

function parseLaddr(text: string): number {
  const a = parseIpv4(text);
  if (a < 0)
    throw new CtlUsageError(`illegal local address '${text}' (an IPv4 address, e.g. 10.10.3.1)`);
  if (a === 0) throw new CtlUsageError(`illegal local address '${text}': 0.0.0.0 is not usable`);
  return a;
}

/** Parses `fullnat ctl` arguments (argv after "ctl"); throws CtlUsageError with one line. */
export function parseCtlArgs(argv: readonly string[]): CtlCommand {
  // Like ipvsadm with no arguments: list the table.
  if (argv.length === 0) return { kind: 'list', view: 'services', exact: false };
  const occ = tokenize(argv);
  // -h wins wherever it appears, as popt's usage_exit does.
  if (occ.some((o) => o.def.key === 'help')) return { kind: 'help' };
  const commands = occ.filter((o) => o.def.command);
  if (commands.length === 0) {
    throw new CtlUsageError(
      'no command given: -L lists, -A/-E/-D and -a/-e/-d change, -h shows help',
    );
  }
  if (commands.length > 1) {
    throw new CtlUsageError(
      `multiple commands specified: ${commands.map((c) => c.spelled).join(' and ')}`,
    );
  }
  const cmd = commands[0]!;
  const cmdKey = cmd.def.key as CommandKey;
  const rule = RULES[cmdKey];
  const opts = new Map<OptionKey, Occurrence>();
  for (const o of occ) {
    if (o.def.command) continue;
    const k = o.def.key as OptionKey;
    const prev = opts.get(k);
    if (prev) throw new CtlUsageError(`multiple ${label(prev)} options specified`);
    if (!rule.required.includes(k) && !rule.optional.includes(k)) {
      throw new CtlUsageError(`${label(o)} is not allowed with ${label(cmd)}`);
    }
    opts.set(k, o);
  }
  for (const k of rule.required) {
    if (!opts.has(k)) throw new CtlUsageError(`${label(cmd)} needs ${WANTED[k] ?? `--${k}`}`);
  }

  const val = (k: OptionKey): string | undefined => opts.get(k)?.value;
  const serviceText = val('service');
  let service: ServiceKey | undefined;
  if (serviceText !== undefined) {
    const s = parseAddrPort(serviceText, 'virtual service address:port', true);
    service = { vip: s.addr, vport: s.port! };
  }

  switch (cmdKey) {
    case 'help':
      return { kind: 'help' };
    case 'version':
      return { kind: 'version' };
    case 'reload':
      return { kind: 'request', request: { op: 'reload' } };
    case 'zero':
      return { kind: 'request', request: { op: 'zero' } };
    case 'list': {
      const stats = opts.has('stats');
      const rate = opts.has('rate');
      if (opts.has('connection')) {
        if (stats || rate) throw new CtlUsageError('-c cannot be combined with --stats or --rate');
        if (service)
          throw new CtlUsageError('-c cannot be combined with -t: it lists every connection');
        return { kind: 'connections' };
      }
      if (stats && rate) throw new CtlUsageError('--stats and --rate cannot be combined');
      const view: ListView = stats ? 'stats' : rate ? 'rate' : 'services';
      return service
        ? { kind: 'list', view, service, exact: opts.has('exact') }
        : { kind: 'list', view, exact: opts.has('exact') };
    }
    case 'get-laddr':
      return service ? { kind: 'laddrs', service } : { kind: 'laddrs' };
    case 'add-service':
    case 'edit-service': {
      const s = val('scheduler');
      const scheduler = s === undefined ? DEFAULT_SCHEDULER : parseScheduler(s);
      return { kind: 'request', request: { op: cmdKey, service: service!, scheduler } };
    }
    case 'delete-service':
      return { kind: 'request', request: { op: 'delete-service', service: service! } };
    case 'add-server':
    case 'edit-server':
    case 'delete-server': {
      const r = parseAddrPort(val('real-server')!, 'real server address[:port]', false);
      // ipvsadm copies the virtual port when -r has none.
      const real = { ...service!, addr: r.addr, port: r.port ?? service!.vport };
      if (cmdKey === 'delete-server')
        return { kind: 'request', request: { op: 'delete-real', real } };
      const w = val('weight');
      const weight = w === undefined ? DEFAULT_WEIGHT : parseWeight(w);
      const op = cmdKey === 'add-server' ? 'add-real' : 'edit-real';
      return { kind: 'request', request: { op, real, weight } };
    }
    case 'add-laddr':
      return {
        kind: 'request',
        request: { op: 'add-laddr', service: service!, laddr: parseLaddr(val('laddr')!) },
      };
  }
}

// ---------------------------------------------------------------------------
// Formatting (ipvsadm's printf layouts)

export interface FormatOptions {
  /** fullnat's version for the first line. */
  version: string;
  /** Connection table size, when known; shown as ipvsadm shows (size=4096). */
  maxConnections?: number;
  /** `-L -t VIP:port`: only this service, and no version line (ipvsadm's list_service). */
  service?: ServiceKey;
  /** --exact: full numbers instead of K/M/G/T. */
  exact?: boolean;
}

const FORWARD = 'FullNat';

function pad(s: string, w: number): string {
  return s.padEnd(w);
}

function lpad(s: string, w: number): string {
  return s.padStart(w);
}

function addrPort(addr: number, port: number): string {
  return `${ipv4ToString(addr)}:${port}`;
}

/** Non-negative integer for display; JSON may carry fractions or garbage from a confused server. */
function whole(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

/** ipvsadm's print_largenum: 9 columns, K/M/G/T past 10^8, or exact with --exact. */
export function formatLargeNumber(n: number, exact = false): string {
  const i = whole(n);
  if (exact) {
    const s = String(i);
    return lpad(s, s.length <= 8 ? 9 : s.length + 1);
  }
  if (i < 1e8) return lpad(String(i), 9);
  if (i < 1e9) return `${lpad(String(Math.floor(i / 1e3)), 8)}K`;
  if (i < 1e11) return `${lpad(String(Math.floor(i / 1e6)), 8)}M`;
  if (i < 1e14) return `${lpad(String(Math.floor(i / 1e9)), 8)}G`;
  return `${lpad(String(Math.floor(i / 1e12)), 8)}T`;
}

/** "TCP  10.10.1.100:80", cut at 33 columns like ipvsadm's svc_name[33]. */
function serviceName(s: { protocol: string; vip: number; vport: number }): string {
  return `${s.protocol}  ${addrPort(s.vip, s.vport)}`.slice(0, 33);
}

function realName(r: { addr: number; port: number }): string {
  return addrPort(r.addr, r.port).slice(0, 28);
}

function byAddrPort<T>(key: (t: T) => [number, number]): (a: T, b: T) => number {
  return (a, b) => {
    const [a1, a2] = key(a);
    const [b1, b2] = key(b);
    return a1 - b1 || a2 - b2;
  };
}

const serviceOrder = byAddrPort<{ vip: number; vport: number }>((s) => [s.vip, s.vport]);
const realOrder = byAddrPort<{ addr: number; port: number }>((r) => [r.addr, r.port]);

function selectServices<T extends { vip: number; vport: number }>(
  list: readonly T[],
  only?: ServiceKey,
): T[] {
  const picked = only
    ? list.filter((s) => s.vip === only.vip && s.vport === only.vport)
    : [...list];
  return picked.sort(serviceOrder);
}

function versionLine(snap: Snapshot, opts: FormatOptions): string[] {
  if (opts.service) return [];
  const maxConns = opts.maxConnections ?? snap.maxConnections;
  const max = maxConns === undefined ? '' : `, max=${maxConns}`;
  return [`fullnat ${opts.version} (connections=${whole(snap.connections)}${max})`];
}

function trimLines(lines: string[]): string[] {
  return lines.map((l) => l.trimEnd());
}

export const TITLE_SERVICES = [
  'Prot LocalAddress:Port Scheduler Flags',
  '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
];

function numbersTitle(cols: readonly string[]): string[] {
  return [
    `${pad('Prot LocalAddress:Port', 33)}${cols.map((c) => ` ${lpad(c, 8)}`).join('')}`,
    '  -> RemoteAddress:Port',
  ];
}

export const TITLE_STATS = numbersTitle(['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes']);
export const TITLE_RATE = numbersTitle(['CPS', 'InPPS', 'OutPPS', 'InBPS', 'OutBPS']);

/** `ipvsadm -Ln`. The weight shown is the one in force: 0 while a health check holds the RS out. */
export function formatServices(snap: Snapshot, opts: FormatOptions): string[] {
  const lines = [...versionLine(snap, opts), ...TITLE_SERVICES];
  for (const s of selectServices(snap.services, opts.service)) {
    lines.push(`${serviceName(s)} ${s.scheduler}`);
    for (const r of [...s.realServers].sort(realOrder)) {
      lines.push(
        `  -> ${pad(realName(r), 28)} ${pad(FORWARD, 7)} ${pad(String(whole(r.effectiveWeight)), 6)} ${pad(String(whole(r.activeConns)), 10)} ${pad(String(whole(r.inactiveConns)), 10)}`,
      );
    }
  }
  return trimLines(lines);
}

function statsColumns(t: TrafficStats, exact: boolean): string {
  return [t.conns, t.inPackets, t.outPackets, t.inBytes, t.outBytes]
    .map((n) => formatLargeNumber(n, exact))
    .join('');
}

/** `ipvsadm -Ln --stats`: cumulative counters since start or the last -Z. */
export function formatStats(snap: Snapshot, opts: FormatOptions): string[] {
  const exact = opts.exact === true;
  const lines = [...versionLine(snap, opts), ...TITLE_STATS];
  for (const s of selectServices(snap.services, opts.service)) {
    lines.push(`${pad(serviceName(s), 33)}${statsColumns(s.stats, exact)}`);
    for (const r of [...s.realServers].sort(realOrder)) {
      lines.push(`  -> ${pad(realName(r), 28)}${statsColumns(r.stats, exact)}`);
    }
  }
  return trimLines(lines);
}

/** Per-second rates, as the kernel's estimator reports them to `ipvsadm --rate`. */
export interface TrafficRates {
  cps: number;
  inPps: number;
  outPps: number;
  inBps: number;
  outBps: number;
}

export interface RealServerRates {
  addr: number;
  port: number;
  rates: TrafficRates;
}

export interface ServiceRates {
  vip: number;
  vport: number;
  protocol: ServiceStatus['protocol'];
  rates: TrafficRates;
  realServers: RealServerRates[];
}

const ZERO_RATES: TrafficRates = { cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 };

function ratesBetween(a: TrafficStats | undefined, b: TrafficStats, seconds: number): TrafficRates {
  // No baseline (added between the two snapshots) or a counter that went back (-Z in between):
  // nothing honest to report but zero.
  if (!a || !(seconds > 0)) return { ...ZERO_RATES };
  const per = (x: number, y: number): number => (y >= x ? Math.round((y - x) / seconds) : 0);
  return {
    cps: per(a.conns, b.conns),
    inPps: per(a.inPackets, b.inPackets),
    outPps: per(a.outPackets, b.outPackets),
    inBps: per(a.inBytes, b.inBytes),
    outBps: per(a.outBytes, b.outBytes),
  };
}

/**
 * Rates from two snapshots `seconds` apart. The engine keeps no rate
 * estimator (nothing runs per packet that ctl does not need), so
 * `ctl -Ln --rate` samples twice, about a second apart, and divides.
 */
export function computeRates(before: Snapshot, after: Snapshot, seconds: number): ServiceRates[] {
  const key = (vip: number, port: number): string => `${vip}:${port}`;
  const prev = new Map(before.services.map((s) => [key(s.vip, s.vport), s]));
  return after.services.map((s) => {
    const p = prev.get(key(s.vip, s.vport));
    const prevRs = new Map((p?.realServers ?? []).map((r) => [key(r.addr, r.port), r]));
    return {
      vip: s.vip,
      vport: s.vport,
      protocol: s.protocol,
      rates: ratesBetween(p?.stats, s.stats, seconds),
      realServers: s.realServers.map((r) => ({
        addr: r.addr,
        port: r.port,
        rates: ratesBetween(prevRs.get(key(r.addr, r.port))?.stats, r.stats, seconds),
      })),
    };
  });
}

/** `ipvsadm -Ln --rate`. `snap` is the later snapshot (for the first line). */
export function formatRates(
  snap: Snapshot,
  rates: readonly ServiceRates[],
  opts: FormatOptions,
): string[] {
  const exact = opts.exact === true;
  const lines = [...versionLine(snap, opts), ...TITLE_RATE];
  for (const s of selectServices(rates, opts.service)) {
    const t = s.rates;
    lines.push(
      `${pad(serviceName(s), 33)}${[t.cps, t.inPps, t.outPps, t.inBps, t.outBps].map((n) => formatLargeNumber(n, exact)).join('')}`,
    );
    for (const r of [...s.realServers].sort(realOrder)) {
      const q = r.rates;
      // ipvsadm prints the RS's CPS/PPS with a plain %8u and only humanises the byte rates.
      lines.push(
        `  -> ${pad(realName(r), 28)} ${lpad(String(whole(q.cps)), 8)} ${lpad(String(whole(q.inPps)), 8)} ${lpad(String(whole(q.outPps)), 8)}${formatLargeNumber(q.inBps, exact)}${formatLargeNumber(q.outBps, exact)}`,
      );
    }
  }
  return trimLines(lines);
}

export const TITLE_CONNECTIONS = [
  'IPVS connection entries',
  `pro expire ${pad('state', 11)} ${pad('source', 18)} ${pad('virtual', 18)} ${pad('local', 18)} destination`,
];

/** "mm:ss", as ipvsadm prints /proc/net/ip_vs_conn's expiry (minutes are not capped). */
export function formatExpire(seconds: number): string {
  const s = whole(seconds);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/**
 * `ipvsadm -Lnc`, with the local (LIP:lport) column DPVS adds for FULLNAT,
 * between virtual and destination where DPVS puts it.
 */
export function formatConnections(conns: readonly ConnectionStatus[]): string[] {
  const lines = [...TITLE_CONNECTIONS];
  for (const c of conns) {
    lines.push(
      `${pad(c.protocol, 3)} ${pad(formatExpire(c.expiresIn), 6)} ${pad(c.state, 11)} ${pad(addrPort(c.client.addr, c.client.port), 18)} ${pad(addrPort(c.virtual.addr, c.virtual.port), 18)} ${pad(addrPort(c.local.addr, c.local.port), 18)} ${addrPort(c.real.addr, c.real.port)}`,
    );
  }
  return trimLines(lines);
}

export const TITLE_LADDRS = `${pad('VIP:VPORT', 20)} ${pad('TOTAL', 8)} SNAT_IP`;

/**
 * DPVS's `ipvsadm -G` (get-laddr) layout, without its CONFLICTS and CONNS
 * columns: the snapshot carries no per-LIP counters.
 */
export function formatLaddrs(snap: Snapshot, service?: ServiceKey): string[] {
  const lines = [TITLE_LADDRS];
  for (const s of selectServices(snap.services, service)) {
    lines.push(`${pad(addrPort(s.vip, s.vport), 20)} ${s.laddrs.length}`);
    for (const l of [...s.laddrs].sort((a, b) => a - b)) {
      lines.push(`${pad('', 20)} ${pad('', 8)} ${ipv4ToString(l)}`);
    }
  }
  return trimLines(lines);
}

export function usage(): string[] {
  return [
    'Usage:',
    '  fullnat ctl -A|E -t service-address [-s scheduler]',
    '  fullnat ctl -D -t service-address',
    '  fullnat ctl -a|e -t service-address -r server-address [-b] [-w weight]',
    '  fullnat ctl -d -t service-address -r server-address',
    '  fullnat ctl -P|--add-laddr -t service-address -z local-address',
    '  fullnat ctl -G|--get-laddr [-t service-address]',
    '  fullnat ctl -L|l [-n] [-c] [--stats|--rate] [--exact] [-t service-address]',
    '  fullnat ctl -Z',
    '  fullnat ctl --reload',
    '  fullnat ctl -h',
    '',
    'Commands:',
    'Either long or short options are allowed.',
    '  --add-service     -A        add virtual service with options',
    '  --edit-service    -E        edit virtual service with options',
    '  --delete-service  -D        delete virtual service',
    '  --add-server      -a        add real server with options',
    '  --edit-server     -e        edit real server with options',
    '  --delete-server   -d        delete real server',
    '  --add-laddr       -P        add local address (LIP) to a service',
    '  --get-laddr       -G        list local addresses',
    '  --list            -L|-l     list the table',
    '  --zero            -Z        zero counters in all services',
    '  --reload                    re-read the config file, keeping connections',
    '  --help            -h        display this help message',
    '',
    'Options:',
    '  --tcp-service  -t service-address   service-address is VIP:port',
    `  --scheduler    -s scheduler         one of ${SCHEDULER_NAMES.join('|')},`,
    `                                      the default scheduler is ${DEFAULT_SCHEDULER}.`,
    '  --real-server  -r server-address    server-address is RS[:port] (default: the VIP port)',
    '  --fullnat      -b                   fullnat forwarding (the only method; implied)',
    `  --weight       -w weight            capacity of real server, 0-${MAX_WEIGHT} (default ${DEFAULT_WEIGHT})`,
    '  --laddr        -z local-address     local address (LIP) for FULLNAT',
    '  --connection   -c                   output of current connections',
    '  --stats                             output of statistics information',
    '  --rate                              output of rate information (sampled over 1 s)',
    '  --exact                             expand numbers (display exact values)',
    '  --numeric      -n                   numeric output (always on)',
  ];
}

// ---------------------------------------------------------------------------
// Running

export interface RunCtlOptions {
  /** Error lines (stderr); default process.stderr. */
  err?: (line: string) => void;
  /** Gap between the two snapshots of --rate; default 1000 ms. */
  rateIntervalMs?: number;
  /** Per request; default 5000 ms. */
  timeoutMs?: number;
  /** Shown on the first listing line; default this package's version. */
  version?: string;
  maxConnections?: number;
}

let cachedVersion: string | undefined;

/** This package's version, found from either the source or the compiled file's location. */
export function packageVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  cachedVersion = 'unknown';
  for (const rel of ['../../../package.json', '../../../../package.json']) {
    try {
      const pkg: unknown = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8'));
      if (
        typeof pkg === 'object' &&
        pkg !== null &&
        'name' in pkg &&
        pkg.name === 'fullnat' &&
        'version' in pkg &&
        typeof pkg.version === 'string'
      ) {
        cachedVersion = pkg.version;
        break;
      }
    } catch {
      // Not at this level; try the next.
    }
  }
  return cachedVersion;
}

/** The LB answered but refused; carries its message. */
class Refused extends Error {}

async function call(
  path: string,
  req: ControlRequest,
  timeoutMs: number,
): Promise<ControlResponse & { ok: true }> {
  const res = await sendControlRequest(path, req, timeoutMs);
  if (!res.ok) throw new Refused(res.error);
  return res;
}

async function snapshot(path: string, timeoutMs: number): Promise<Snapshot> {
  const res = await call(path, { op: 'snapshot' }, timeoutMs);
  if (!res.snapshot) throw new Refused('fullnat sent no snapshot');
  return res.snapshot;
}

function hasService(snap: Snapshot, k: ServiceKey): boolean {
  return snap.services.some((s) => s.vip === k.vip && s.vport === k.vport);
}

/**
 * Runs one ctl command against the LB at `socketPath`. Exit codes follow
 * ipvsadm: 0 done, 2 bad command line; 1 when the LB is unreachable or
 * refuses (ipvsadm's kernel errors).
 */
export async function runCtl(
  argv: readonly string[],
  socketPath: string,
  out: (line: string) => void,
  opts: RunCtlOptions = {},
): Promise<number> {
  const err = opts.err ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const timeoutMs = opts.timeoutMs ?? 5000;
  let cmd: CtlCommand;
  try {
    cmd = parseCtlArgs(argv);
  } catch (e) {
    if (e instanceof CtlUsageError) {
      err(e.message);
      return 2;
    }
    throw e;
  }
  const fmt: FormatOptions = {
    version: opts.version ?? packageVersion(),
    ...(opts.maxConnections === undefined ? {} : { maxConnections: opts.maxConnections }),
  };
  const emit = (lines: readonly string[]): void => lines.forEach((l) => out(l));
  try {
    switch (cmd.kind) {
      case 'help':
        emit(usage());
        return 0;
      case 'version':
        out(`fullnat ctl ${fmt.version}`);
        return 0;
      case 'request':
        await call(socketPath, cmd.request, timeoutMs);
        return 0;
      case 'connections': {
        const res = await call(socketPath, { op: 'connections' }, timeoutMs);
        emit(formatConnections(res.connections ?? []));
        return 0;
      }
      case 'laddrs': {
        const snap = await snapshot(socketPath, timeoutMs);
        if (cmd.service && !hasService(snap, cmd.service)) throw new Refused('No such service');
        emit(formatLaddrs(snap, cmd.service));
        return 0;
      }
      case 'list': {
        const listOpts: FormatOptions = {
          ...fmt,
          exact: cmd.exact,
          ...(cmd.service ? { service: cmd.service } : {}),
        };
        if (cmd.view !== 'rate') {
          const snap = await snapshot(socketPath, timeoutMs);
          if (cmd.service && !hasService(snap, cmd.service)) throw new Refused('No such service');
          emit(cmd.view === 'stats' ? formatStats(snap, listOpts) : formatServices(snap, listOpts));
          return 0;
        }
        // Time each sample at the midpoint of its round trip: the snapshot was taken in between.
        const t0 = performance.now();
        const before = await snapshot(socketPath, timeoutMs);
        const m0 = (t0 + performance.now()) / 2;
        await sleep(opts.rateIntervalMs ?? 1000);
        const t1 = performance.now();
        const after = await snapshot(socketPath, timeoutMs);
        const m1 = (t1 + performance.now()) / 2;
        if (cmd.service && !hasService(after, cmd.service)) throw new Refused('No such service');
        emit(formatRates(after, computeRates(before, after, (m1 - m0) / 1000), listOpts));
        return 0;
      }
    }
  } catch (e) {
    err(e instanceof Error ? e.message : String(e));
    return 1;
  }
}
