/**
 * Everything a client sends is untrusted text: each request is checked
 * field by field against ControlRequest before the ControlApi sees it.
 */
import { SCHEDULER_NAMES, type SchedulerName } from '../../engine/sched/scheduler.js';
import type { ControlRequest, RealServerKey, ServiceKey } from '../model.js';

export type ValidationResult = { ok: true; request: ControlRequest } | { ok: false; error: string };

type Op = ControlRequest['op'];

/**
 * Fields each op takes besides `op`; anything else is refused so typos do not
 * pass silently. Keyed by every op of the model, so a new op fails to compile here.
 */
const OP_FIELDS: Record<Op, readonly string[]> = {
  snapshot: [],
  connections: ['limit'],
  'add-service': ['service', 'scheduler'],
  'edit-service': ['service', 'scheduler'],
  'delete-service': ['service'],
  'add-real': ['real', 'weight'],
  'edit-real': ['real', 'weight'],
  'delete-real': ['real'],
  'add-laddr': ['service', 'laddr'],
  reload: [],
  zero: [],
};

const OPS = Object.keys(OP_FIELDS) as Op[];

/** ipvsadm's weight range. */
export const MAX_WEIGHT = 65535;
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

/** Host-order IPv4 as a number; 0.0.0.0 is never a usable VIP, RS or LIP. */
function ipv4(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 0xffffffff) {
    throw new InvalidRequest(
      `${name} must be a non-zero IPv4 address as an unsigned 32-bit integer, got ${describe(v)}`,
    );
  }
  return v;
}

function port(v: unknown, name: string): number {
  return intIn(v, 1, 65535, name);
}

function serviceKey(v: unknown, name: string): ServiceKey {
  if (!isRecord(v)) throw new InvalidRequest(`${name} must be an object {vip, vport}`);
  onlyKeys(v, ['vip', 'vport'], name);
  return { vip: ipv4(v.vip, `${name}.vip`), vport: port(v.vport, `${name}.vport`) };
}

function realKey(v: unknown, name: string): RealServerKey {
  if (!isRecord(v)) throw new InvalidRequest(`${name} must be an object {vip, vport, addr, port}`);
  onlyKeys(v, ['vip', 'vport', 'addr', 'port'], name);
  return {
    vip: ipv4(v.vip, `${name}.vip`),
    vport: port(v.vport, `${name}.vport`),
    addr: ipv4(v.addr, `${name}.addr`),
    port: port(v.port, `${name}.port`),
  };
}

function scheduler(v: unknown): SchedulerName {
  if (typeof v !== 'string' || !(SCHEDULER_NAMES as readonly string[]).includes(v)) {
    throw new InvalidRequest(
      `scheduler must be one of ${SCHEDULER_NAMES.join(', ')}, got ${describe(v)}`,
    );
  }
  return v as SchedulerName;
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
      case 'reload':
      case 'zero':
        request = { op: o };
        break;
      case 'connections':
        request =
          v.limit === undefined
            ? { op: o }
            : { op: o, limit: intIn(v.limit, 1, MAX_CONNECTIONS_LIMIT, 'limit') };
        break;
      case 'add-service':
      case 'edit-service':
        request = {
          op: o,
          service: serviceKey(v.service, 'service'),
          scheduler: scheduler(v.scheduler),
        };
        break;
      case 'delete-service':
        request = { op: o, service: serviceKey(v.service, 'service') };
        break;
      case 'add-real':
      case 'edit-real':
        request = {
          op: o,
          real: realKey(v.real, 'real'),
          weight: intIn(v.weight, 0, MAX_WEIGHT, 'weight'),
        };
        break;
      case 'delete-real':
        request = { op: o, real: realKey(v.real, 'real') };
        break;
      case 'add-laddr':
        request = {
          op: o,
          service: serviceKey(v.service, 'service'),
          laddr: ipv4(v.laddr, 'laddr'),
        };
        break;
    }
    return { ok: true, request };
  } catch (e) {
    if (e instanceof InvalidRequest) return { ok: false, error: e.message };
    throw e;
  }
}
