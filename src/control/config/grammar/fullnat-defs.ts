/** The `fullnat_defs { … }` block: process-wide settings, at most once per file. */
import {
  MAX_UNKNOWN_FLOW_RESET_RATE,
  MAX_UOA_TRAIL,
  TOA_SETTINGS,
  UNKNOWN_SERVICE_ACTIONS,
  type ToaSetting,
  type UnknownServiceAction,
  UOA_SETTINGS,
  type UoaSetting,
} from '../../../engine/options.js';
import { parseIpv4, parseIpv6 } from '../../../wire/bytes.js';
import type { NapiThreadSetting } from '../../model.js';
import { walkBlock, withOnce, type Cursor, type Handler } from '../cursor.js';
import { at, fail } from '../error.js';
import { timeoutKeyword, type TimeoutState } from '../keywords.js';
import type { Token } from '../lexer.js';
import {
  parseConnectionTableSize,
  parseDrainTimeout,
  parseMtu,
  parseTimeout,
  parseTunTxQueueLen,
} from '../../rules.js';
import { intIn, onOff, port, ruled } from '../values.js';
import type { State } from './draft.js';

export function parseDefs(cur: Cursor, kw: Token, st: State): void {
  if (st.defsTok) fail(kw, `'fullnat_defs' given twice (first at ${at(st.defsTok)})`);
  st.defsTok = kw;
  cur.header(kw, 0, 0, 'fullnat_defs {');
  const d = st.defs;
  const seen = new Map<string, Token>();
  st.defsSeen = seen;
  const h: Record<string, Handler> = {
    interface: (k) => (d.interface = ifName(cur.value(k))),
    toa_policy: (k) => (d.toaPolicy = toaPolicy(cur.value(k))),
    toa_v6_kind: (k) => (d.toaV6Kind = toaV6Kind(cur.value(k))),
    mss_adjust: (k) => (d.mssAdjust = onOff(cur.value(k), k.text)),
    timestamp_remove: (k) => (d.timestampRemove = onOff(cur.value(k), k.text)),
    unknown_service_action: (k) => (d.unknownServiceAction = unknownServiceAction(cur.value(k))),
    unknown_flow_reset: (k) => (d.unknownFlowReset = onOff(cur.value(k), k.text)),
    unknown_flow_reset_rate: (k) =>
      (d.unknownFlowResetRate = intIn(cur.value(k), k.text, 1, MAX_UNKNOWN_FLOW_RESET_RATE)),
    icmp_echo: (k) => (d.icmpEcho = onOff(cur.value(k), k.text)),
    pmtu_expires: (k) => (d.pmtuExpires = timeout(cur.value(k), k.text)),
    metrics: (k) => (d.metrics = metrics(cur.value(k))),
    control_socket: (k) => (d.controlSocket = cur.value(k).text),
    max_connections: (k) => (d.maxConnections = tableSize(cur.value(k), k.text)),
    local_port_range: (k) => (d.portRange = portRange(cur, k)),
    rs_mtu: (k) => (d.rsMtu = mtu(cur.value(k), k.text)),
    offload: (k) => (d.offload = onOff(cur.value(k), k.text)),
    napi_thread: (k) => (d.napiThread = napiThread(cur.value(k))),
    state_dir: (k) => (d.stateDir = stateDir(cur.value(k))),
    handover: (k) => (d.handover = onOff(cur.value(k), k.text)),
    checkpoint_interval: (k) => (d.checkpointInterval = checkpointInterval(cur.value(k))),
    tun_txqueuelen: (k) => (d.tunTxQueueLen = txQueueLen(cur.value(k), k.text)),
    timeout_udp: (k) => (d.timeoutUdp = timeout(cur.value(k), k.text)),
    uoa_mode: (k) => (d.uoaMode = uoaMode(cur.value(k))),
    uoa_max_trail: (k) => (d.uoaMaxTrail = intIn(cur.value(k), k.text, 0, MAX_UOA_TRAIL)),
    drain_timeout: (k) => {
      const v = cur.value(k);
      d.drainTimeout = ruled(v, () => parseDrainTimeout(v.text, k.text));
    },
  };
  for (const s of Object.keys(d.timeouts) as TimeoutState[]) {
    h[timeoutKeyword(s)] = (k) => (d.timeouts[s] = timeout(cur.value(k), k.text));
  }
  walkBlock(cur, kw, 'fullnat_defs', withOnce(h, seen));
}

const tableSize = (t: Token, what: string): number =>
  ruled(t, () => parseConnectionTableSize(t.text, what));
const mtu = (t: Token, what: string): number => ruled(t, () => parseMtu(t.text, what));
const txQueueLen = (t: Token, what: string): number =>
  ruled(t, () => parseTunTxQueueLen(t.text, what));
const timeout = (t: Token, what: string): number => ruled(t, () => parseTimeout(t.text, what));

function ifName(t: Token): string {
  // Linux interface names: at most 15 bytes, no '/' or whitespace.
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(t.text)) fail(t, `bad interface name '${t.text}'`);
  return t.text;
}

/** An absolute directory path; it is created (0700) at start if missing. */
function stateDir(t: Token): string {
  if (!t.text.startsWith('/') || t.text.split('/').includes('..'))
    fail(t, `bad state_dir '${t.text}' (expected an absolute path without '..')`);
  return t.text;
}

/** Seconds, fractions allowed, 0 = no checkpoints; at most an hour. */
function checkpointInterval(t: Token): number {
  const n = /^\d+(\.\d+)?$/.test(t.text) ? Number(t.text) : NaN;
  if (!(n >= 0 && n <= 3600) || (n > 0 && n < 0.1))
    fail(t, `bad checkpoint_interval '${t.text}' (expected seconds: 0 for none, or 0.1 to 3600)`);
  return n;
}

/** `uoa_mode ipo|opp|off` (DPVS's keyword): fullnat_defs' default, or one virtual_server's. */
export function uoaMode(t: Token): UoaSetting {
  const m = UOA_SETTINGS.find((x) => x === t.text);
  if (!m) fail(t, `bad uoa_mode '${t.text}' (expected ${UOA_SETTINGS.join(', ')})`);
  return m;
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

/** 254 (DPVS's toa.ko, the default) or 253 (Alibaba's LVS); the real servers' module decides. */
function toaV6Kind(t: Token): 253 | 254 {
  if (t.text === '254') return 254;
  if (t.text === '253') return 253;
  return fail(t, `bad toa_v6_kind '${t.text}' (expected 254 or 253)`);
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
  return { host, port: port(t, 'metrics port', m[3]) };
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
    lo = port(args[0]!, 'local_port_range start', a);
    hi = port(args[0]!, 'local_port_range end', b);
  } else if (args.length === 2) {
    lo = port(args[0]!, 'local_port_range start');
    hi = port(args[1]!, 'local_port_range end');
  } else {
    return fail(kw, "'local_port_range' needs MIN MAX, e.g. 'local_port_range 5000 65535'");
  }
  if (lo > hi) fail(kw, `bad local_port_range ${lo}-${hi} (the start is above the end)`);
  return { min: lo, max: hi };
}
