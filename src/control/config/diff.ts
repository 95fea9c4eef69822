/** What changes between two parsed configurations: the plan a reload acts on. */
import type { UoaSetting } from '../../engine/options.js';
import type { SchedulerName } from '../../engine/sched/scheduler.js';
import { addressEquals, addressKey, type IpAddress } from '../../wire/address.js';
import type {
  FullnatConfig,
  FullnatDefs,
  RealServerSpec,
  ServiceSpec,
  SyncSpec,
} from '../model.js';
import { DEF_KEYWORDS, SYNC_KEYWORDS, timeoutKeyword, type TimeoutState } from './keywords.js';

export type RealServerField =
  | 'weight'
  | 'mtu'
  | 'check'
  | 'delayLoop'
  | 'retry'
  | 'delayBeforeRetry'
  | 'alpha'
  | 'omega'
  | 'inhibitOnFailure'
  | 'notifyUp'
  | 'notifyDown';

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
  addedLaddrs: IpAddress[];
  removedLaddrs: IpAddress[];
  synProxy?: { from: boolean; to: boolean };
  proxyProtocol?: { from: 0 | 1 | 2; to: 0 | 1 | 2 };
  uoaMode?: { from: UoaSetting | undefined; to: UoaSetting | undefined };
  /** keepalived's `quorum`: whether the service counts as up (and its VIP is announced) changes with it. */
  quorum?: { from: number; to: number };
  /** `sorry_server` added, removed or moved: applied after the reload (lb.ts). */
  sorryServer?: true;
  /** `hysteresis`, `quorum_up` or `quorum_down` changed: the next evaluation uses them. */
  quorumRule?: true;
  /** Client persistence switched on, off, or its timeout or granularity changed. */
  persistence?: { from: ServiceSpec['persistence']; to: ServiceSpec['persistence'] };
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
  /**
   * The `bgp` block was added, removed or changed (positions aside): the
   * speaker is reconfigured on reload (started, stopped, or its bird
   * configuration rewritten), never a restart of the LB.
   */
  bgpChanged: boolean;
  /**
   * The `sync` block was added, removed or changed (positions aside): the
   * sync channel is restarted on reload. A changed key file's content is not
   * seen here (the spec names the file); the channel compares the key itself.
   */
  syncChanged: boolean;
  /** The changed `sync` keywords (`peer`, `heartbeat`, …); `sync` when the block was added or removed. */
  changedSync: string[];
}

/**
 * The sync keywords the engine takes at start: the port plan (`node_id`,
 * `nodes`) and the share of the table held for peers. Turning sync on or
 * off (`sync`) is one of them too.
 */
export const RESTART_REQUIRED_SYNC: readonly string[] = ['sync', 'node_id', 'nodes', 'max_synced'];

/** Defs bound at start: the TUN device, sockets, and tables sized once. */
export const RESTART_REQUIRED_DEFS: readonly string[] = [
  'interface',
  'control_socket',
  'metrics',
  'max_connections',
  'local_port_range',
  'offload',
  'napi_thread',
  'state_dir',
  'handover',
  'tun_txqueuelen',
  // The engine takes the IPv6 TOA kind at start only (Engine.reconfigure does not change it).
  'toa_v6_kind',
];

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Equal apart from where things were written: moving a block in the file changes nothing. */
export const sameIgnoringPos = (a: unknown, b: unknown): boolean => {
  const noPos = (k: string, v: unknown): unknown => (k === 'pos' ? undefined : v);
  return JSON.stringify(a, noPos) === JSON.stringify(b, noPos);
};

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

function diffSync(a: SyncSpec | undefined, b: SyncSpec | undefined): string[] {
  if (!a && !b) return [];
  if (!a || !b) return ['sync'];
  const out: string[] = [];
  for (const [field, kw] of Object.entries(SYNC_KEYWORDS)) {
    const f = field as keyof typeof SYNC_KEYWORDS;
    if (!sameIgnoringPos(a[f], b[f])) out.push(kw);
  }
  return out;
}

// The protocol is part of a service's identity: TCP and UDP on one VIP:port are two services.
// The forwarding method is part of a service's identity: a reload that changes it replaces the service.
const svcKey = (s: ServiceSpec): string =>
  `${s.protocol} ${s.forwarding} ${addressKey(s.vip)}:${s.vport}`;
const rsKey = (r: RealServerSpec): string => `${addressKey(r.addr)}:${r.port}`;
const holds = (list: readonly IpAddress[], a: IpAddress): boolean =>
  list.some((x) => addressEquals(x, a));

function diffReal(a: RealServerSpec, b: RealServerSpec): RealServerField[] {
  const fields: RealServerField[] = [
    'weight',
    'mtu',
    'check',
    'delayLoop',
    'retry',
    'delayBeforeRetry',
    'alpha',
    'omega',
    'inhibitOnFailure',
    'notifyUp',
    'notifyDown',
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
    addedLaddrs: b.laddrs.filter((l) => !holds(a.laddrs, l)),
    removedLaddrs: a.laddrs.filter((l) => !holds(b.laddrs, l)),
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
  if (a.uoaMode !== b.uoaMode) c.uoaMode = { from: a.uoaMode, to: b.uoaMode };
  if (a.quorum !== b.quorum) c.quorum = { from: a.quorum, to: b.quorum };
  if (!same(a.sorryServer, b.sorryServer)) c.sorryServer = true;
  const quorumRule = (x: ServiceSpec): unknown[] => [x.hysteresis, x.quorumUp, x.quorumDown];
  if (!same(quorumRule(a), quorumRule(b))) c.quorumRule = true;
  if (!same(a.persistence, b.persistence))
    c.persistence = { from: a.persistence, to: b.persistence };
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
    c.proxyProtocol !== undefined ||
    c.uoaMode !== undefined ||
    c.quorum !== undefined ||
    c.sorryServer === true ||
    c.quorumRule === true ||
    c.persistence !== undefined;
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
  const changedSync = diffSync(old.sync, next.sync);
  const syncRestart = changedSync
    .filter((k) => RESTART_REQUIRED_SYNC.includes(k))
    .map((k) => (k === 'sync' ? 'sync' : `sync ${k}`));
  return {
    addedServices: next.services.filter((s) => !before.has(svcKey(s))),
    removedServices: old.services.filter((s) => !after.has(svcKey(s))),
    changedServices,
    changedDefs,
    restartRequired: [
      ...changedDefs.filter((k) => RESTART_REQUIRED_DEFS.includes(k)),
      ...syncRestart,
    ],
    bgpChanged: !sameIgnoringPos(old.bgp, next.bgp),
    syncChanged: changedSync.length > 0,
    changedSync,
  };
}
