import { addressKey, type IpAddress } from '../wire/address.js';
import { C, newCounterArray } from './counters.js';
import type { Forwarding, L4Protocol, UoaSetting } from './options.js';
import type { Scheduler, SchedTarget } from './sched/scheduler.js';

/** Traffic stats per service and per RS, as ipvsadm --stats shows them. */
export const STAT_CONNS = 0;
export const STAT_IN_PACKETS = 1;
export const STAT_OUT_PACKETS = 2;
export const STAT_IN_BYTES = 3;
export const STAT_OUT_BYTES = 4;
export const STAT_STRIDE = 5;

export class RealServer implements SchedTarget {
  readonly key: string;
  /** Weight in force (0 while quiescent or held out by a health check). */
  weight: number;
  activeConns = 0;
  inactiveConns = 0;
  /** False once removed from its service; kept so existing connections still resolve. */
  member = true;
  readonly stats = new Float64Array(STAT_STRIDE);
  /** True for an IPv6 real server. */
  get v6(): boolean {
    return typeof this.addr !== 'number';
  }
  constructor(
    readonly index: number,
    readonly service: number,
    readonly addr: IpAddress,
    readonly port: number,
    weight: number,
    public mtu: number,
  ) {
    // IPv4 keeps its historical key (Maglev's placement hashes it); IPv6 uses its bracketed text.
    this.key = typeof addr === 'number' ? `${addr}:${port}` : `${addressKey(addr)}:${port}`;
    this.weight = weight;
  }
}

export class Service {
  readonly targets: RealServer[] = [];
  readonly counters = newCounterArray();
  readonly stats = new Float64Array(STAT_STRIDE);
  /** False once deleted; kept so existing connections' replies still translate. */
  live = true;
  /** 0: TOA; 1 or 2: PROXY protocol header of that version instead. */
  proxyProtocol: 0 | 1 | 2 = 0;
  /** SYNPROXY for new connections (see synproxy/README.md). */
  synProxy = false;
  /** UDP: the service's own UOA placement; undefined follows the engine's `uoaMode`. */
  uoaMode: UoaSetting | undefined = undefined;
  /** FULLNAT, or NAT (masquerading: only the destination translated; see ServiceConfig). */
  forwarding: Forwarding = 'fnat';
  /**
   * Client persistence (persistence.ts): a template's life in ms, 0 for a
   * service that is not persistent (the one check new connections make).
   */
  persistMs = 0;
  /** The client network a template stands for: an IPv4 netmask, an IPv6 prefix length. */
  persistMask4 = 0xffffffff;
  persistPrefix6 = 128;
  /** Templates of this service in the template table. */
  persistTemplates = 0;
  private lipCursor = 0;
  /** True for an IPv6 VIP (its RS may be IPv6, or IPv4: FNAT64). */
  get v6(): boolean {
    return typeof this.vip !== 'number';
  }
  constructor(
    readonly index: number,
    readonly vip: IpAddress,
    readonly vport: number,
    public scheduler: Scheduler,
    /** Indexes into the engine's LIP pool. */
    readonly lipIndexes: number[],
    readonly protocol: L4Protocol = 'TCP',
  ) {}

  nextLip(): number {
    const i = this.lipCursor;
    this.lipCursor = i + 1 >= this.lipIndexes.length ? 0 : i + 1;
    return i;
  }
}

/** Service svc's and real server rs's counts for a client packet of `bytes` (ipvsadm's InPkts, InBytes). */
export function countInbound(reg: StatsHolder, svc: number, rs: number, bytes: number): void {
  const s = reg.services[svc]!;
  s.counters[C.inbound_packets]!++;
  s.stats[STAT_IN_PACKETS]!++;
  s.stats[STAT_IN_BYTES]! += bytes;
  const r = reg.realServers[rs]!.stats;
  r[STAT_IN_PACKETS]!++;
  r[STAT_IN_BYTES]! += bytes;
}

/** The same for a packet of the RS's toward the client (OutPkts, OutBytes). */
export function countOutbound(reg: StatsHolder, svc: number, rs: number, bytes: number): void {
  const s = reg.services[svc]!;
  s.counters[C.outbound_packets]!++;
  s.stats[STAT_OUT_PACKETS]!++;
  s.stats[STAT_OUT_BYTES]! += bytes;
  const r = reg.realServers[rs]!.stats;
  r[STAT_OUT_PACKETS]!++;
  r[STAT_OUT_BYTES]! += bytes;
}

/** Where the counts are kept: the registry's services and real servers by index. */
export interface StatsHolder {
  readonly services: readonly Service[];
  readonly realServers: readonly RealServer[];
}
