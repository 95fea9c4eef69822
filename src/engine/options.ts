import type { IpAddress } from '../wire/address.js';
import type { SchedulerName } from './sched/scheduler.js';
import type { PortRange } from './laddr.js';
import { DEFAULT_PORT_RANGE } from './laddr.js';
import type { TcpTimeouts } from './tcp-state.js';
import { DEFAULT_TCP_TIMEOUTS } from './tcp-state.js';

/** The policies that insert a TOA, compared side by side by `simulate` and the lab. */
export type ToaPolicy = 'lvs' | 'dpvs' | 'fullnat';
export const TOA_POLICIES: readonly ToaPolicy[] = ['lvs', 'dpvs', 'fullnat'];
/** What the engine can be told: a policy, or `off` (no TOA at all, so the RS sees the LIP). */
export type ToaSetting = ToaPolicy | 'off';
export const TOA_SETTINGS: readonly ToaSetting[] = [...TOA_POLICIES, 'off'];

/**
 * What happens to a TCP packet for an address routed to the LB that matches
 * no service and is no reply to a LIP: `drop` it silently, or drop it and
 * answer `icmp` destination unreachable (rate-limited).
 */
export type UnknownServiceAction = 'drop' | 'icmp';
export const UNKNOWN_SERVICE_ACTIONS: readonly UnknownServiceAction[] = ['drop', 'icmp'];

/** Checks a value handed to the engine (TypeScript cannot stop a caller in plain JS). */
export function checkUnknownServiceAction(v: string): UnknownServiceAction {
  const a = UNKNOWN_SERVICE_ACTIONS.find((x) => x === v);
  if (!a) {
    throw new RangeError(
      `unknownServiceAction must be one of ${UNKNOWN_SERVICE_ACTIONS.join(', ')}, got '${v}'`,
    );
  }
  return a;
}

/** The transport protocol of a service (ipvsadm's -t / -u). */
export type L4Protocol = 'TCP' | 'UDP';
export const L4_PROTOCOLS: readonly L4Protocol[] = ['TCP', 'UDP'];

/**
 * How a UDP service's datagrams carry the client's address to the RS (DPVS's
 * UOA, wire/uoa.ts): `ipo` an IPv4 option (IPv4 client and RS only), `opp`
 * the protocol-248 shim (every family pair), `off` none.
 */
export type UoaSetting = 'ipo' | 'opp' | 'off';
export const UOA_SETTINGS: readonly UoaSetting[] = ['ipo', 'opp', 'off'];
/** Upper bound of `uoaMaxTrail` (a per-flow byte counts the datagrams sent with a UOA). */
export const MAX_UOA_TRAIL = 255;

/** Upper bound of `unknownFlowResetRate` (RSTs a second): far beyond any sane setting, below overflow. */
export const MAX_UNKNOWN_FLOW_RESET_RATE = 1_000_000;

/** The burst that goes with an unknown-flow RST rate: a tenth of a second's worth, at least 1. */
export function unknownFlowResetBurst(rate: number): number {
  return Math.max(1, Math.ceil(rate / 10));
}

export interface RealServerConfig {
  addr: IpAddress;
  port: number;
  weight: number;
  /** MTU of the LB→RS path; defaults to the engine's `rsMtu`. */
  mtu?: number;
}

export interface ServiceConfig {
  vip: IpAddress;
  vport: number;
  scheduler: SchedulerName;
  /** The local addresses (LIPs) this service uses toward its real servers. */
  laddrs: IpAddress[];
  realServers: RealServerConfig[];
  /** Send a PROXY protocol header (v1 or v2) ahead of the client's data instead of a TOA. */
  proxyProtocol?: 0 | 1 | 2;
  /**
   * SYNPROXY: the LB answers client SYNs itself with a syncookie SYN+ACK and
   * opens the RS connection only once the client's ACK proves the cookie.
   */
  synProxy?: boolean;
  /** TCP (default) or UDP; a TCP and a UDP service may share a VIP:vport. */
  protocol?: L4Protocol;
  /** UDP: the UOA placement for this service; the engine's `uoaMode` when unset. */
  uoaMode?: UoaSetting;
  /**
   * `fnat` (default): FULLNAT, both addresses translated. `nat`: IPVS's NAT
   * (masquerading): only the destination VIP:vport becomes RIP:rport, the RS
   * sees the client's own address and routes its replies back through the
   * LB; no LIP, no TOA. IPv4 TCP services without SYNPROXY or PROXY protocol.
   */
  forwarding?: Forwarding;
  /** Client persistence (IPVS's `-p`): a template's life in seconds; absent or 0: not persistent. */
  persistenceTimeout?: number;
  /** The client network one template stands for: an IPv4 netmask (a 32-bit number), an IPv6 prefix length; default one address. */
  persistenceGranularity?: number;
}

export type Forwarding = 'fnat' | 'nat';

export interface EngineOptions {
  toaPolicy: ToaSetting;
  /** Lower the MSS in the RS SYN+ACK by the TOA length (and, for `fullnat`, to what the RS path MTU leaves). */
  mssAdjust: boolean;
  /** NOP out the timestamp option of client SYNs. */
  timestampRemove: boolean;
  maxConnections: number;
  portRange: PortRange;
  /** Default MTU of the LB→RS path. */
  rsMtu: number;
  /** TCP option kind of the 20-byte TOA for IPv6 clients: 254 (DPVS's toa.ko, default) or 253 (Alibaba LVS). */
  toaV6Kind: 253 | 254;
  /** Packets for no service: `drop`, or drop and answer ICMP destination unreachable. */
  unknownServiceAction: UnknownServiceAction;
  /** ICMP unreachables sent for unknown services, per second on average (a token bucket, as the kernel's icmp_msgs_per_sec). */
  icmpRateLimit: number;
  /** ... and in one burst (the bucket's size, as the kernel's icmp_msgs_burst). */
  icmpRateBurst: number;
  /**
   * Answer ICMP echo requests to a VIP (`ping VIP`, as monitoring does), at
   * most `icmpRateLimit` a second. Off: they are dropped and counted.
   */
  icmpEcho: boolean;
  /**
   * How long a path MTU learned from a frag-needed (a router between the LB
   * and an RS) stays in force, ms; then the configured MTU is tried again
   * (Linux's net.ipv4.route.mtu_expires, 600 s).
   */
  pmtuExpiresMs: number;
  /**
   * A segment (not a RST) of a flow the LB has no entry for — to a VIP:vport
   * and not opening a connection, or to a LIP — is answered with the RST its
   * destination's host would send (RFC 793), so the peer fails fast instead
   * of retransmitting into silence (after a restart, an expiry, a removed RS).
   */
  unknownFlowReset: boolean;
  /** Those RSTs per second on average (one token bucket for VIP and LIP answers)… */
  unknownFlowResetRate: number;
  /** … and in one burst. */
  unknownFlowResetBurst: number;
  /**
   * Key for LB→RS ISNs; random in production, fixed in tests for
   * determinism. A restart that should keep ISNs monotonic per tuple keeps it
   * (the snapshot header carries it too).
   */
  isnSecret: number;
  /**
   * Unix time in ms at engine time 0: the ISN clock runs on wall-clock time,
   * so a restarted LB (same secret) picks ISNs above those of its previous
   * run for the same tuple (RFC 6528). 0 (tests): the engine clock alone.
   */
  isnClockOriginMs: number;
  /**
   * Seed of each (LIP, RS) pair's first local port (RFC 6056). Random per run
   * in production, so a restart does not walk the previous run's ports (still
   * in TIME_WAIT on the RS) again; fixed in tests.
   */
  portSeed: number;
  timeouts: TcpTimeouts;
  /** Idle timeout of a UDP flow, ms, restarted by a datagram of either direction (IPVS's 300 s). */
  timeoutUdpMs: number;
  /** UDP services' UOA placement unless a service sets its own (DPVS's default: opp). */
  uoaMode: UoaSetting;
  /** Datagrams of a flow that carry a UOA, from its first (DPVS's uoa_max_trail, 3); 0: none. */
  uoaMaxTrail: number;
  maxRealServers: number;
  maxLocalAddresses: number;
  /** SYNPROXY: largest MSS announced to clients in the cookie SYN+ACK (Alibaba's synproxy_init_mss). */
  synproxyMss: number;
  /** SYNPROXY: IP TTL of the cookie SYN+ACK. */
  synproxySynAckTtl: number;
  /** SYNPROXY: client packets held per connection while the RS leg opens; more are dropped. */
  synproxyMaxStoredAcks: number;
  /** SYNPROXY: client packets held by all opening connections together (bounds buffer memory). */
  synproxyMaxStoredTotal: number;
  /** SYNPROXY: retransmissions of the LB→RS SYN before the client is sent a RST. */
  synproxySynRetries: number;
  /** SYNPROXY: first LB→RS SYN retransmission timeout, ms (doubles per retry). */
  synproxySynRtoMs: number;
  /** SYNPROXY: identical pure ACKs from the RS forwarded in a row before the rest are dropped. */
  synproxyAckStormThreshold: number;
  /** SYNPROXY: open the RS leg on the client's first data (or FIN), not on its bare ACK. */
  synproxyDefer: boolean;
  /**
   * SYNPROXY: window-scale shift the LB announces to clients that offer window
   * scaling (0..14); RS windows are translated when the RS's own shift differs.
   */
  synproxyWscale: number;
  /**
   * SYNPROXY: seed of the syncookie keys. Unset (production): every key is
   * drawn from the system CSPRNG; set (tests, simulator): keys are derived
   * from it, so runs are reproducible.
   */
  synproxySecret?: number;
}

export const DEFAULT_ENGINE_OPTIONS: EngineOptions = {
  toaPolicy: 'fullnat',
  mssAdjust: true,
  timestampRemove: true,
  maxConnections: 1 << 20,
  portRange: DEFAULT_PORT_RANGE,
  rsMtu: 1500,
  toaV6Kind: 254,
  unknownServiceAction: 'drop',
  icmpRateLimit: 1000,
  icmpRateBurst: 50,
  icmpEcho: true,
  pmtuExpiresMs: 600_000,
  unknownFlowReset: true,
  // A RST is never larger than the segment it answers, so the LB amplifies nothing; the bucket
  // bounds what a flood of stray segments costs. 1000/s answers a restarted LB's clients within
  // seconds (those held back retransmit and are answered then); 100 at once covers a burst of
  // segments of one busy moment without letting a flood through.
  unknownFlowResetRate: 1000,
  unknownFlowResetBurst: 100,
  isnSecret: 0x5eed,
  isnClockOriginMs: 0,
  portSeed: 0x5eed,
  timeouts: DEFAULT_TCP_TIMEOUTS,
  timeoutUdpMs: 300_000,
  uoaMode: 'opp',
  uoaMaxTrail: 3,
  maxRealServers: 1024,
  maxLocalAddresses: 64,
  synproxyMss: 1452,
  synproxySynAckTtl: 63,
  synproxyMaxStoredAcks: 3,
  synproxyMaxStoredTotal: 16384,
  synproxySynRetries: 3,
  synproxySynRtoMs: 1000,
  synproxyAckStormThreshold: 10,
  synproxyDefer: false,
  synproxyWscale: 7,
};

/** Same list as TOA_SETTINGS (older name). */
export const ALL_TOA_POLICIES = TOA_SETTINGS;
