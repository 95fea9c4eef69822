/**
 * `fullnat ctl ARGS...`: ipvsadm's command line, parsed into one command.
 * An operator who knows ipvsadm (or DPVS's ipvsadm, for -b and the
 * local-address commands) should not need a manual.
 *
 * The parser is hand-written and table-driven on purpose: ipvsadm (popt)
 * clusters a command with its options (`-Lnc`, `-at VIP:port`), attaches
 * values (`-w3`, `-t10.0.0.1:80`), and checks a command × option legality
 * table (flags.ts) — none of which commander models.
 */
import { addressFamily, type IpAddress } from '../../wire/address.js';
import {
  DEFAULT_PERSISTENCE_TIMEOUT,
  FULL_MASK4,
  FULL_PREFIX6,
  parseGranularity,
  parsePersistenceTimeout,
  type Persistence,
} from '../persistence.js';
import type { ControlRequest, ServiceKey } from '../model.js';
import {
  DEFAULT_SCHEDULER,
  DEFAULT_WEIGHT,
  parseAddress,
  parsePort,
  parseScheduler,
  parseWeight,
  realServerFamilyConflict,
  RuleError,
} from '../rules.js';
import {
  COMMAND_OPTIONS,
  FLAGS,
  NAMES,
  UNSUPPORTED,
  WANTED,
  type CommandKey,
  type FlagDef,
  type OptionKey,
} from './flags.js';

export type ListView = 'services' | 'stats' | 'rate';

export type CtlCommand =
  | { kind: 'help' }
  | { kind: 'version' }
  | {
      kind: 'list';
      view: ListView;
      service?: ServiceKey;
      exact: boolean;
      /** --nosort: the LB's order. */
      noSort?: true;
      /** --tun-kernel: the TUN's kernel counters below --stats. */
      tunKernel?: true;
    }
  | { kind: 'connections'; /** --lip: the local-address column. */ lip?: true }
  | { kind: 'laddrs'; service?: ServiceKey }
  | { kind: 'cluster' }
  | { kind: 'sync' }
  | { kind: 'drain' }
  | { kind: 'request'; request: ControlRequest };

/** A command line ipvsadm would also reject, or one fullnat cannot honour. Exit code 2. */
export class CtlUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CtlUsageError';
  }
}

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
      if (def.arg === 'optional') {
        const next = argv[i + 1];
        const value =
          eq >= 0
            ? tok.slice(eq + 1)
            : next !== undefined && !next.startsWith('-')
              ? argv[++i]
              : undefined;
        out.push(value === undefined ? { def, spelled } : { def, spelled, value });
      } else if (def.arg) {
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
        if (def.arg === 'optional') {
          const rest = tok.slice(j + 1);
          const next = argv[i + 1];
          const value =
            rest !== ''
              ? rest
              : next !== undefined && !next.startsWith('-')
                ? argv[++i]
                : undefined;
          out.push(value === undefined ? { def, spelled } : { def, spelled, value });
          break;
        }
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

/**
 * Applies a domain rule (rules.ts) to an option's value. Its refusal is a
 * usage error with the same reason the config file gives, after `prefix`
 * (which names the option for values that are more than the rule's own).
 */
function ruled<T>(rule: () => T, prefix = ''): T {
  try {
    return rule();
  } catch (e) {
    if (e instanceof RuleError) throw new CtlUsageError(`${prefix}${e.reason}`);
    throw e;
  }
}

/**
 * ipvsadm's `ADDR[:PORT]`: `10.0.0.1:80`, `[2001:db8::1]:80`, `[2001:db8::1]`.
 * An IPv6 address goes in brackets: bare, `2001:db8::1:80` could be an
 * address with a port or an address alone, and either reading would be a
 * guess. Null when the text is neither form.
 */
function splitAddrPort(text: string): { addr: string; port?: string } | null {
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  if (bracketed)
    return { addr: bracketed[1]!, ...(bracketed[2] === undefined ? {} : { port: bracketed[2] }) };
  if (text.includes('[') || text.includes(']')) return null;
  const colon = text.indexOf(':');
  if (colon < 0) return { addr: text };
  if (text.indexOf(':', colon + 1) >= 0) return null;
  return { addr: text.slice(0, colon), port: text.slice(colon + 1) };
}

function parseAddrPort(
  text: string,
  what: string,
  portRequired: boolean,
): { addr: IpAddress; port?: number } {
  const m = splitAddrPort(text);
  const v6 = text.includes('[') || text.indexOf(':') !== text.lastIndexOf(':');
  const example = portRequired
    ? `e.g. ${v6 ? '[2001:db8::100]:80' : '10.10.1.100:80'}`
    : `e.g. ${v6 ? '[2001:db8::2]:80 or [2001:db8::2]' : '10.10.2.2:80 or 10.10.2.2'}`;
  if (!m || m.addr === '') {
    const hint = v6 && !text.includes('[') ? ': an IPv6 address goes in brackets' : '';
    throw new CtlUsageError(`illegal ${what} '${text}'${hint} (${example})`);
  }
  const prefix = `illegal ${what} '${text}': `;
  const addr = ruled(() => parseAddress(m.addr), prefix);
  if (m.port === undefined) {
    if (portRequired)
      throw new CtlUsageError(`illegal ${what} '${text}': missing port (${example})`);
    return { addr };
  }
  const portText = m.port;
  return { addr, port: ruled(() => parsePort(portText), prefix) };
}

/**
 * ipvsadm's `-p [timeout]` (300 without a value) and `-M netmask` (a dotted
 * mask for an IPv4 service, a prefix length for an IPv6 one); -M alone is
 * refused, as it means nothing without -p.
 */
function persistenceOption(
  service: ServiceKey,
  persistent: boolean,
  timeoutText: string | undefined,
  maskText: string | undefined,
): Persistence | undefined {
  if (!persistent) {
    if (maskText !== undefined)
      throw new CtlUsageError(
        '-M (netmask) only applies to a persistent service: add -p [timeout]',
      );
    return undefined;
  }
  const family = addressFamily(service.vip);
  const timeout =
    timeoutText === undefined
      ? DEFAULT_PERSISTENCE_TIMEOUT
      : ruled(() => parsePersistenceTimeout(timeoutText, 'persistent timeout'));
  const granularity =
    maskText === undefined
      ? family === 4
        ? FULL_MASK4
        : FULL_PREFIX6
      : ruled(() => parseGranularity(maskText, family, 'netmask'));
  return { timeout, granularity };
}

/** `-z LIP`: an address, IPv6 with or without brackets. */
function parseLaddr(text: string): IpAddress {
  const inner = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  return ruled(() => parseAddress(inner), `illegal local address '${text}': `);
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
  const rule = COMMAND_OPTIONS[cmdKey];
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
    const udp = opts.get('service')!.def.short.includes('u');
    service = udp
      ? { vip: s.addr, vport: s.port!, protocol: 'UDP' }
      : { vip: s.addr, vport: s.port! };
  }

  switch (cmdKey) {
    case 'help':
      return { kind: 'help' };
    case 'version':
      return { kind: 'version' };
    case 'reload':
      return {
        kind: 'request',
        request: opts.has('force') ? { op: 'reload', force: true } : { op: 'reload' },
      };
    case 'handover':
      return { kind: 'request', request: { op: 'handover' } };
    case 'shutdown':
      return { kind: 'request', request: { op: 'shutdown' } };
    case 'zero':
      return { kind: 'request', request: { op: 'zero' } };
    case 'drain':
      return { kind: 'drain' };
    case 'cluster':
      return { kind: 'cluster' };
    case 'sync':
      return { kind: 'sync' };
    case 'list': {
      const stats = opts.has('stats');
      const rate = opts.has('rate');
      if (opts.has('connection')) {
        // ipvsadm's own words for these two mistakes (process_options, generic_opt_check).
        if (stats || rate || opts.has('tun-kernel'))
          throw new CtlUsageError('options conflicts in the list command');
        if (service)
          throw new CtlUsageError(
            "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
          );
        return opts.has('lip') ? { kind: 'connections', lip: true } : { kind: 'connections' };
      }
      if (opts.has('lip')) throw new CtlUsageError('--lip goes with -c (the connection listing)');
      if (opts.has('tun-kernel') && !stats)
        throw new CtlUsageError('--tun-kernel goes with --stats');
      // ipvsadm accepts both and prints the statistics (print_title tests FMT_STATS first).
      const view: ListView = stats ? 'stats' : rate ? 'rate' : 'services';
      return {
        kind: 'list',
        view,
        ...(service ? { service } : {}),
        exact: opts.has('exact'),
        ...(opts.has('nosort') ? { noSort: true as const } : {}),
        ...(opts.has('tun-kernel') ? { tunKernel: true as const } : {}),
      };
    }
    case 'get-laddr':
      return service ? { kind: 'laddrs', service } : { kind: 'laddrs' };
    case 'add-service':
    case 'edit-service': {
      const s = val('scheduler');
      const scheduler = s === undefined ? DEFAULT_SCHEDULER : ruled(() => parseScheduler(s));
      const persistence = persistenceOption(
        service!,
        opts.has('persistent'),
        val('persistent'),
        val('netmask'),
      );
      return {
        kind: 'request',
        request: persistence
          ? { op: cmdKey, service: service!, scheduler, persistence }
          : { op: cmdKey, service: service!, scheduler },
      };
    }
    case 'delete-service':
      return { kind: 'request', request: { op: 'delete-service', service: service! } };
    case 'add-server':
    case 'edit-server':
    case 'delete-server': {
      const rsText = val('real-server')!;
      const r = parseAddrPort(rsText, 'real server address[:port]', false);
      // ipvsadm copies the virtual port when -r has none.
      const real = { ...service!, addr: r.addr, port: r.port ?? service!.vport };
      const family = realServerFamilyConflict(real.vip, real.addr);
      if (family)
        throw new CtlUsageError(`illegal real server address[:port] '${rsText}': ${family}`);
      if (cmdKey === 'delete-server')
        return { kind: 'request', request: { op: 'delete-real', real } };
      const w = val('weight');
      const weight = w === undefined ? DEFAULT_WEIGHT : ruled(() => parseWeight(w));
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
