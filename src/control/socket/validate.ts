/**
 * Everything a client sends is untrusted text: each request is checked
 * field by field against ControlRequest before the ControlApi sees it.
 * A field of the wrong JSON type is refused here; a value of the right type
 * goes through the same domain rule the config file applies (rules.ts), and
 * its refusal reads `FIELD: reason`, the reason worded as the config's.
 */
import type { L4Protocol } from '../../engine/options.js';
import type { SchedulerName } from '../../engine/sched/scheduler.js';
import type { ControlRequest, RealServerKey, ServiceKey } from '../model.js';
import { addressFamily, type IpAddress } from '../../wire/address.js';
import { MAX_PERSISTENCE_TIMEOUT, type Persistence } from '../persistence.js';
import {
  checkAddress,
  parseAddress,
  parsePort,
  parseProtocol,
  parseScheduler,
  parseWeight,
  realServerFamilyConflict,
  RuleError,
} from '../rules.js';

export type ValidationResult = { ok: true; request: ControlRequest } | { ok: false; error: string };

type Op = ControlRequest['op'];

/**
 * Fields each op takes besides `op`; anything else is refused so typos do not
 * pass silently. Keyed by every op of the model, so a new op fails to compile here.
 */
const OP_FIELDS: Record<Op, readonly string[]> = {
  snapshot: [],
  connections: ['limit'],
  'add-service': ['service', 'scheduler', 'persistence'],
  'edit-service': ['service', 'scheduler', 'persistence'],
  'delete-service': ['service'],
  'add-real': ['real', 'weight'],
  'edit-real': ['real', 'weight'],
  'delete-real': ['real'],
  'add-laddr': ['service', 'laddr'],
  reload: ['force'],
  zero: [],
  handover: [],
  shutdown: [],
  drain: ['timeout'],
};

const OPS = Object.keys(OP_FIELDS) as Op[];

/** Upper bound on `drain.timeout`, seconds: a day. */
export const MAX_DRAIN_TIMEOUT_S = 86_400;

/** Upper bound on `connections.limit`; keeps one response line bounded. */
export const MAX_CONNECTIONS_LIMIT = 10_000_000;

class InvalidRequest extends Error {}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `"${v.length > 40 ? `${v.slice(0, 40)}…` : v}"`;
  if (typeof v === 'object') return 'an object';
  return String(v);
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new InvalidRequest(`unexpected field "${k}" in ${where}`);
  }
}

function intIn(v: unknown, min: number, max: number, name: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidRequest(`${name} must be an integer ${min}-${max}, got ${describe(v)}`);
  }
  return v;
}

/** A domain rule (rules.ts) applied to field `name`; its refusal reads `name: reason`. */
function ruled<T>(name: string, rule: () => T): T {
  try {
    return rule();
  } catch (e) {
    if (e instanceof RuleError) throw new InvalidRequest(`${name}: ${e.reason}`);
    throw e;
  }
}

function number(v: unknown, name: string, shape = 'a number'): number {
  if (typeof v !== 'number')
    throw new InvalidRequest(`${name} must be ${shape}, got ${describe(v)}`);
  return v;
}

/**
 * A VIP, RS or LIP the config would accept as an address: IPv4 as a
 * host-order number, IPv6 as its text (wire-json.ts).
 */
function address(v: unknown, name: string): IpAddress {
  if (typeof v === 'string' && v.includes(':')) return ruled(name, () => parseAddress(v));
  const n = number(
    v,
    name,
    'an IPv4 address as an unsigned 32-bit integer or an IPv6 address as text',
  );
  return ruled(name, () => checkAddress(n));
}

/** Numbers go through the rules as text, so `1.5` or `-1` is refused as the config refuses it. */
function port(v: unknown, name: string): number {
  const n = number(v, name);
  return ruled(name, () => parsePort(String(n)));
}

function weight(v: unknown): number {
  const n = number(v, 'weight');
  return ruled('weight', () => parseWeight(String(n)));
}

function serviceKey(v: unknown, name: string): ServiceKey {
  if (!isRecord(v)) throw new InvalidRequest(`${name} must be an object {vip, vport}`);
  onlyKeys(v, ['vip', 'vport', 'protocol'], name);
  const key: ServiceKey = {
    vip: address(v.vip, `${name}.vip`),
    vport: port(v.vport, `${name}.vport`),
  };
  if (v.protocol !== undefined) key.protocol = protocol(v.protocol, `${name}.protocol`);
  return key;
}

/** TCP or UDP; absent means TCP (requests from before UDP services). */
function protocol(v: unknown, name: string): L4Protocol {
  if (typeof v !== 'string')
    throw new InvalidRequest(`${name} must be a string, got ${describe(v)}`);
  return ruled(name, () => parseProtocol(v));
}

function realKey(v: unknown, name: string): RealServerKey {
  if (!isRecord(v)) throw new InvalidRequest(`${name} must be an object {vip, vport, addr, port}`);
  onlyKeys(v, ['vip', 'vport', 'addr', 'port', 'protocol'], name);
  const key: RealServerKey = {
    vip: address(v.vip, `${name}.vip`),
    vport: port(v.vport, `${name}.vport`),
    addr: address(v.addr, `${name}.addr`),
    port: port(v.port, `${name}.port`),
  };
  if (v.protocol !== undefined) key.protocol = protocol(v.protocol, `${name}.protocol`);
  const family = realServerFamilyConflict(key.vip, key.addr);
  if (family) throw new InvalidRequest(`${name}.addr: ${family}`);
  return key;
}

/** `{ timeout, granularity }`: seconds 1..31 days; an IPv4 netmask (32-bit) or an IPv6 prefix length. */
function persistence(v: unknown, family: 4 | 6): Persistence {
  if (!isRecord(v)) throw new InvalidRequest(`persistence must be an object, got ${describe(v)}`);
  onlyKeys(v, ['timeout', 'granularity'], 'persistence');
  return {
    timeout: intIn(v.timeout, 1, MAX_PERSISTENCE_TIMEOUT, 'persistence.timeout'),
    granularity:
      family === 4
        ? intIn(v.granularity, 0, 0xffffffff, 'persistence.granularity')
        : intIn(v.granularity, 1, 128, 'persistence.granularity'),
  };
}

function scheduler(v: unknown): SchedulerName {
  if (typeof v !== 'string')
    throw new InvalidRequest(`scheduler must be a string, got ${describe(v)}`);
  return ruled('scheduler', () => parseScheduler(v));
}

/**
 * Checks an untrusted, already JSON-parsed value against ControlRequest and
 * returns a fresh object holding only the validated fields.
 */
export function validateControlRequest(v: unknown): ValidationResult {
  try {
    if (!isRecord(v)) throw new InvalidRequest(`request must be a JSON object, got ${describe(v)}`);
    const op = v.op;
    if (typeof op !== 'string') throw new InvalidRequest('request needs an "op" string');
    if (!(OPS as readonly string[]).includes(op)) {
      throw new InvalidRequest(`unknown op ${describe(op)} (one of ${OPS.join(', ')})`);
    }
    const o = op as Op;
    onlyKeys(v, ['op', ...OP_FIELDS[o]], `op "${o}"`);
    let request: ControlRequest;
    switch (o) {
      case 'snapshot':
      case 'zero':
      case 'handover':
      case 'shutdown':
        request = { op: o };
        break;
      case 'reload':
        if (v.force !== undefined && typeof v.force !== 'boolean')
          throw new InvalidRequest(`force must be true or false, got ${describe(v.force)}`);
        request = v.force === true ? { op: o, force: true } : { op: o };
        break;
      case 'drain':
        request =
          v.timeout === undefined
            ? { op: o }
            : { op: o, timeout: intIn(v.timeout, 1, MAX_DRAIN_TIMEOUT_S, 'timeout') };
        break;
      case 'connections':
        request =
          v.limit === undefined
            ? { op: o }
            : { op: o, limit: intIn(v.limit, 1, MAX_CONNECTIONS_LIMIT, 'limit') };
        break;
      case 'add-service':
      case 'edit-service': {
        const service = serviceKey(v.service, 'service');
        request = {
          op: o,
          service,
          scheduler: scheduler(v.scheduler),
          ...(v.persistence === undefined
            ? {}
            : { persistence: persistence(v.persistence, addressFamily(service.vip)) }),
        };
        break;
      }
      case 'delete-service':
        request = { op: o, service: serviceKey(v.service, 'service') };
        break;
      case 'add-real':
      case 'edit-real':
        request = {
          op: o,
          real: realKey(v.real, 'real'),
          weight: weight(v.weight),
        };
        break;
      case 'delete-real':
        request = { op: o, real: realKey(v.real, 'real') };
        break;
      case 'add-laddr':
        request = {
          op: o,
          service: serviceKey(v.service, 'service'),
          laddr: address(v.laddr, 'laddr'),
        };
        break;
    }
    return { ok: true, request };
  } catch (e) {
    if (e instanceof InvalidRequest) return { ok: false, error: e.message };
    throw e;
  }
}
