/**
 * What the grammar collects before the whole file is known: the cross-checks
 * need every block, and the build resolves defaults and group references.
 */
import type { Forwarding, L4Protocol, UoaSetting } from '../../../engine/options.js';
import type { SchedulerName } from '../../../engine/sched/scheduler.js';
import { endpointToString, type IpAddress } from '../../../wire/address.js';
import type { AnnouncedPrefix, FullnatDefs, HealthCheckSpec } from '../../model.js';
import type { Token } from '../lexer.js';
import type { RsLifeDraft, VsLifeDraft } from './virtual-server-health.js';

/** delay_loop / retry / delay_before_retry, as given at one level. */
export interface Timing {
  delayLoop?: number;
  retry?: number;
  delayBeforeRetry?: number;
}

export interface RsDraft {
  tok: Token;
  addr: IpAddress;
  port: number;
  weight: number;
  mtu?: number;
  /** Where `mtu` was given, for the IPv6 minimum check. */
  mtuTok?: Token;
  check?: HealthCheckSpec;
  timing: Timing;
  checkTiming: Timing;
  life: RsLifeDraft;
}

export interface VsDraft {
  tok: Token;
  vip: IpAddress;
  vport: number;
  scheduler: SchedulerName;
  laddrGroup?: Token;
  /** `lb_kind`: FNAT (default) or NAT; where it was given, for NAT's refusals. */
  forwarding: Forwarding;
  forwardingTok?: Token;
  synProxy: boolean;
  proxyProtocol: 0 | 1 | 2;
  protocol: L4Protocol;
  /** Where `protocol` was given, for the TCP-only keywords' refusals. */
  protocolTok?: Token;
  uoaMode?: UoaSetting;
  uoaModeTok?: Token;
  /** TCP-only keywords given (syn_proxy, proxy_protocol): refused on a UDP service once the block is read. */
  tcpOnly: Token[];
  /** keepalived's `quorum`; default 1. */
  quorum: number;
  /** `persistence_timeout` (seconds), also set to 300 by `persistence_granularity` alone. */
  persistenceTimeout?: number;
  /** `persistence_granularity`: an IPv4 netmask, or an IPv6 prefix length. */
  persistenceGranularity?: number;
  timing: Timing;
  life: VsLifeDraft;
  reals: RsDraft[];
}

export interface GroupDraft {
  tok: Token;
  entries: { addr: IpAddress; tok: Token }[];
}

export interface NeighborDraft {
  tok: Token;
  addr: IpAddress;
  remoteAs?: number;
  holdTime: number;
  bfd: boolean;
  sourceAddress?: IpAddress;
  sourceTok?: Token;
}

/** The `bgp` block; its keywords' tokens are kept for the cross-checks' messages. */
export interface BgpDraft {
  tok: Token;
  routerId?: number;
  localAs?: number;
  neighbors: NeighborDraft[];
  communities: Array<[number, number]>;
  med?: number;
  bfdInterval: number;
  bfdMultiplier: number;
  lipPrefixes: { prefix: AnnouncedPrefix; tok: Token }[];
  birdSocket?: Token;
  birdInclude?: Token;
}

export interface SyncPeerDraft {
  tok: Token;
  addr: IpAddress;
  port: number;
  nodeId?: number;
  nodeIdTok?: Token;
  lipPrefixes: { prefix: AnnouncedPrefix; tok: Token }[];
}

/** The `sync` block; tokens kept for the cross-checks' messages. */
export interface SyncDraft {
  tok: Token;
  nodeId?: number;
  nodeIdTok?: Token;
  nodes?: number;
  nodesTok?: Token;
  listen?: { addr: IpAddress; port: number; tok: Token };
  keyFile?: Token;
  peers: SyncPeerDraft[];
  maxSynced?: number;
  maxSyncedTok?: Token;
  heartbeatMs: number;
  resyncTimeoutMs: number;
}

/** One `virtual_server_group`: every address:port a `virtual_server group NAME` block serves. */
export interface VsGroupDraft {
  tok: Token;
  entries: { vip: IpAddress; vport: number; tok: Token }[];
  /** An entry had an error (reported there): the blocks using the group are dropped without another. */
  broken: boolean;
}

/** The TCP states and the UDP timeout `global_defs`' `lvs_timeouts` sets, each with where it was written. */
export interface LvsTimeoutsDraft {
  established?: { seconds: number; tok: Token };
  finWait?: { seconds: number; tok: Token };
  udp?: { seconds: number; tok: Token };
}

/** What `global_defs` holds that means something here, applied once the whole file is read. */
export interface GlobalDefsDraft {
  tok: Token;
  routerId?: Token;
  lvsTimeouts: LvsTimeoutsDraft;
  /** The keys given, across repeated global_defs blocks (each once). */
  seen: Map<string, Token>;
}

export interface State {
  defs: FullnatDefs;
  defsTok?: Token;
  /** The fullnat_defs keywords given, each where written: they win over global_defs' lvs_timeouts. */
  defsSeen?: Map<string, Token>;
  groups: Map<string, GroupDraft>;
  vsGroups: Map<string, VsGroupDraft>;
  global?: GlobalDefsDraft;
  services: VsDraft[];
  bgp?: BgpDraft;
  sync?: SyncDraft;
}

export const svcName = (s: { vip: IpAddress; vport: number; protocol?: L4Protocol }): string =>
  (s.protocol === 'UDP' ? 'UDP ' : '') + endpointToString(s.vip, s.vport);
