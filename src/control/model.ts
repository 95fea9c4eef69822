/**
 * The shapes the control plane works with: the parsed configuration, what the
 * running load balancer reports about itself, and the operations `ctl` can ask
 * for. Addresses are `IpAddress`es: a host-order IPv4 number or an
 * Ipv6Address; text forms are for display.
 */
import type { IpAddress } from '../wire/address.js';
import type {
  Forwarding,
  L4Protocol,
  ToaSetting,
  UnknownServiceAction,
  UoaSetting,
} from '../engine/options.js';
import type { SchedulerName } from '../engine/sched/scheduler.js';
import type { TcpTimeouts } from '../engine/tcp-state.js';
import type { DeviceStatistics } from '../io/device-stats.js';
import type { Persistence } from './persistence.js';

/** Where a value came from, for "file:line: message" errors. */
export interface SourcePos {
  file: string;
  line: number;
}

/** Something in the file that is read but does nothing here (another daemon's block, a key without a meaning). */
export interface ConfigWarning extends SourcePos {
  reason: string;
}

export interface TcpCheckSpec {
  kind: 'TCP_CHECK';
  /** Seconds. */
  connectTimeout: number;
  /** Defaults to the real server's port. */
  connectPort?: number;
}

/** One `url { … }` of an HTTP_GET or SSL_GET: every one must pass. */
export interface HttpUrlSpec {
  path: string;
  /** Accepted statuses, inclusive ranges (keepalived `status_code`); default any 2xx, as keepalived 2.x. */
  statusCodes: Array<[number, number]>;
  /** MD5 of the body, lowercase hex (keepalived `digest`); absent: the body is not read. */
  digest?: string;
  /** Host header (and SNI) for this url; default the check's, then the address. */
  virtualhost?: string;
}

/** keepalived's HTTP_GET, and SSL_GET: the same requests over TLS, the certificate not verified. */
export interface HttpGetSpec {
  kind: 'HTTP_GET' | 'SSL_GET';
  urls: HttpUrlSpec[];
  /** Seconds for each url's connection, request and answer. */
  connectTimeout: number;
  connectPort?: number;
  /** Probe this address instead of the real server's (keepalived `connect_ip`). */
  connectIp?: IpAddress;
  /** The probe's source address (keepalived `bindto`). */
  bindto?: IpAddress;
  /** Host header (and SNI) of every url without its own. */
  virtualhost?: string;
}

/** keepalived's SMTP_CHECK: a 220 greeting, `HELO name` answered 250, then QUIT. */
export interface SmtpCheckSpec {
  kind: 'SMTP_CHECK';
  connectTimeout: number;
  connectPort?: number;
  connectIp?: IpAddress;
  bindto?: IpAddress;
  heloName: string;
}

/** DNS query types DNS_CHECK may ask for (keepalived's list), with their numbers. */
export const DNS_QUERY_TYPES = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  MX: 15,
  TXT: 16,
  AAAA: 28,
} as const;
export type DnsQueryType = keyof typeof DNS_QUERY_TYPES;

/** keepalived's DNS_CHECK: one UDP query; an answer with its id and RCODE NOERROR passes. */
export interface DnsCheckSpec {
  kind: 'DNS_CHECK';
  connectTimeout: number;
  connectPort?: number;
  connectIp?: IpAddress;
  bindto?: IpAddress;
  type: DnsQueryType;
  /** The name asked for, without a trailing dot except the root "." itself. */
  name: string;
}

/** keepalived's PING_CHECK: one ICMP echo, answered within connectTimeout. */
export interface PingCheckSpec {
  kind: 'PING_CHECK';
  connectTimeout: number;
  connectIp?: IpAddress;
  bindto?: IpAddress;
}

/**
 * keepalived's UDP_CHECK: one datagram to the RS; an ICMP error (port
 * unreachable) fails it. Without `requireReply` silence until the timeout
 * passes, as in keepalived; with it, an answer must come in time.
 */
export interface UdpCheckSpec {
  kind: 'UDP_CHECK';
  /** Seconds to wait for an answer or an ICMP error. */
  connectTimeout: number;
  connectPort?: number;
  /** Probe this address instead of the real server's (keepalived `connect_ip`). */
  connectIp?: IpAddress;
  /** The probe's source address (keepalived `bindto`). */
  bindto?: IpAddress;
  /** The datagram, lowercase hex; empty when not given (keepalived sends an empty one too). */
  payload: string;
  requireReply: boolean;
  /** What the reply must start with: lowercase hex, `x` for a nibble that may be anything. */
  reply?: string;
  /** Bounds on the reply's length, checked when `reply` is given (keepalived: 0 and 255). */
  minReplyLength: number;
  maxReplyLength: number;
}

/**
 * keepalived's MISC_CHECK: a program's exit status decides. 0 passes; with
 * `dynamic`, 2..255 pass too and set the weight to status - 2.
 */
export interface MiscCheckSpec {
  kind: 'MISC_CHECK';
  /** `misc_path` as written, for logs and the reload diff. */
  path: string;
  /** `path` split into words; argv[0] is executed directly, never through a shell. */
  argv: string[];
  /** Seconds before the program's process group is killed; default: the RS's delay_loop. */
  timeout?: number;
  dynamic: boolean;
  /** Run as this uid/gid (keepalived `user`); default: the load balancer's own. */
  uid?: number;
  gid?: number;
}

/** A checker of one kind. */
export type SingleCheckSpec =
  | TcpCheckSpec
  | HttpGetSpec
  | UdpCheckSpec
  | MiscCheckSpec
  | SmtpCheckSpec
  | DnsCheckSpec
  | PingCheckSpec;

/** Several checkers on one real server: as in keepalived, it is up only while every one passes. */
export interface CheckSetSpec {
  kind: 'ALL_OF';
  checks: SingleCheckSpec[];
}

export type HealthCheckSpec = SingleCheckSpec | CheckSetSpec;

/** An RS's notify_up / notify_down: a program run, without a shell, on the transition. */
export interface NotifyScriptSpec {
  /** As written, for logs. */
  path: string;
  argv: string[];
}

export interface RealServerSpec {
  addr: IpAddress;
  port: number;
  weight: number;
  /** MTU of the path from the LB to this RS; default: the defs' rs_mtu. */
  mtu?: number;
  check?: HealthCheckSpec;
  /** Seconds between checks (keepalived `delay_loop`, from the virtual_server). */
  delayLoop: number;
  /** Consecutive failures before the RS is taken out (keepalived `retry`). */
  retry: number;
  /** Seconds between retries after a failure (keepalived `delay_before_retry`). */
  delayBeforeRetry: number;
  /** keepalived `alpha` (from the virtual_server): a checked RS starts DOWN until its first pass. */
  alpha?: boolean;
  /** keepalived `omega`: notify_down runs for each RS still UP when the checks stop. */
  omega?: boolean;
  /** keepalived `inhibit_on_failure`: a DOWN RS stays listed at weight 0; without it, it is removed. */
  inhibitOnFailure?: boolean;
  notifyUp?: NotifyScriptSpec;
  notifyDown?: NotifyScriptSpec;
  pos: SourcePos;
}

export interface ServiceSpec {
  vip: IpAddress;
  vport: number;
  protocol: L4Protocol;
  scheduler: SchedulerName;
  /** '' for a NAT service without one. */
  laddrGroup: string;
  laddrs: IpAddress[];
  realServers: RealServerSpec[];
  /** `lb_kind`: FNAT (FULLNAT) or NAT (masquerading: the RS sees the client and routes its replies back through the LB). */
  forwarding: Forwarding;
  /** SYNPROXY (`syn_proxy`): the LB answers SYNs with syncookies and opens the RS leg on a valid ACK. */
  synProxy: boolean;
  /** `proxy_protocol v1|v2`: send a PROXY header instead of a TOA; 0 = off (TOA). */
  proxyProtocol: 0 | 1 | 2;
  /**
   * keepalived's `quorum`: the least total weight in force (healthy real
   * servers) at which this service counts as up; default 1. A fleet node
   * announces a VIP by BGP while at least one of the VIP's services is up.
   */
  quorum: number;
  /**
   * keepalived's `hysteresis`: the service gains its quorum at quorum +
   * hysteresis and loses it below quorum - hysteresis (or at 0); default 0.
   */
  hysteresis?: number;
  /** Run when the service gains its quorum (keepalived `quorum_up`). */
  quorumUp?: NotifyScriptSpec;
  /** Run when it loses it (keepalived `quorum_down`). */
  quorumDown?: NotifyScriptSpec;
  /** keepalived's `sorry_server`: scheduled at weight 1 while the service is below its quorum, out again above it. */
  sorryServer?: { addr: IpAddress; port: number };
  /** UDP: `uoa_mode` of this virtual_server; absent follows fullnat_defs' `uoa_mode`. */
  uoaMode?: UoaSetting;
  /** Client persistence (`persistence_timeout`, `persistence_granularity`); absent: not persistent. */
  persistence?: Persistence;
  pos: SourcePos;
}

export type NapiThreadSetting = 'on' | 'off' | 'auto';

export interface FullnatDefs {
  /** TUN device name, default fnat0. */
  interface: string;
  toaPolicy: ToaSetting;
  /** TCP option kind of the 20-byte TOA that carries an IPv6 client: 254 (DPVS's toa.ko) or 253 (Alibaba). */
  toaV6Kind: 253 | 254;
  mssAdjust: boolean;
  timestampRemove: boolean;
  /** TCP packets for no service: `drop`, or drop and answer ICMP destination unreachable (rate-limited). */
  unknownServiceAction: UnknownServiceAction;
  /** Segments of flows the LB has no entry for answered with an RFC 793 RST (default on). */
  unknownFlowReset: boolean;
  /** Those RSTs per second (bursts of a tenth of it); default 1000. */
  unknownFlowResetRate: number;
  /** `icmp_echo on|off`: answer pings to VIPs (rate-limited); default on. */
  icmpEcho: boolean;
  /** `pmtu_expires`: seconds a path MTU learned from a router's frag-needed stays in force; default 600. */
  pmtuExpires: number;
  /** Prometheus listener, e.g. { host: '127.0.0.1', port: 9400 }; absent = off. */
  metrics?: { host: string; port: number };
  /** Control socket path, default /run/fullnat.sock. */
  controlSocket: string;
  maxConnections: number;
  portRange: { min: number; max: number };
  rsMtu: number;
  /**
   * TUN offloads (IFF_VNET_HDR + TSO/checksum): GSO super-packets cross the
   * device whole instead of one MTU-sized packet per system call. Default on.
   */
  offload: boolean;
  /**
   * IFF_NAPI on the TUN and where its work runs: `on`, a kernel thread beside
   * the LB's own (threaded NAPI); `off`, no NAPI, inside the LB's write
   * calls; `auto` (default), the thread while many small packets flow,
   * inline otherwise.
   */
  napiThread: NapiThreadSetting;
  /**
   * Where the ISN secret and the connection table handed to a successor
   * live (default /run/fullnat: a tmpfs, cleared at boot with the device).
   */
  stateDir: string;
  /**
   * `handover on`: the TUN device is persistent, SIGTERM hands the table
   * and the device on (state file, routes kept) instead of removing them,
   * and checkpoints are written. Default off: SIGTERM is a real stop.
   */
  handover: boolean;
  /** Seconds between checkpoints of the table while `handover` is on; 0 = none. */
  checkpointInterval: number;
  /**
   * The TUN's transmit queue length (`ip link set DEV txqueuelen N` at
   * start): how many packets the kernel holds for the LB to read before it
   * drops (counted in the device's tx_dropped). Default 1000.
   */
  tunTxQueueLen: number;
  timeouts: TcpTimeouts;
  /** `timeout_udp`: seconds a UDP flow lives without a datagram either way; default 300. */
  timeoutUdp: number;
  /** `uoa_mode ipo|opp|off`: how UDP services carry the client to the RS unless one sets its own; default opp. */
  uoaMode: UoaSetting;
  /** `uoa_max_trail`: datagrams of a UDP flow that carry the UOA, from its first; default 3. */
  uoaMaxTrail: number;
  /**
   * `drain_timeout`: seconds SIGTERM (without `handover`) and `ctl --drain`
   * keep forwarding established connections after the VIPs are withdrawn;
   * 0 (default) = SIGTERM stops at once, as before.
   */
  drainTimeout: number;
}

/** One BGP neighbour of a fleet node (`neighbor ADDR { … }` in the `bgp` block). */
export interface BgpNeighborSpec {
  addr: IpAddress;
  remoteAs: number;
  /** Seconds (BGP hold time; keepalive is a third of it). Default 9. */
  holdTime: number;
  /** BFD on this session: the neighbour is declared down after bfdInterval × bfdMultiplier. */
  bfd: boolean;
  /** The local address the session is sourced from; default: the route's. */
  sourceAddress?: IpAddress;
  pos: SourcePos;
}

/** A prefix a node announces besides its VIPs (`lip_prefix 10.0.2.0/28`). */
export interface AnnouncedPrefix {
  addr: IpAddress;
  length: number;
  /** Where a configured prefix was written (`lip_prefix`), for messages; absent on computed ones. */
  pos?: SourcePos;
}

/**
 * The `bgp` block: the node announces each VIP (/32, /128) and its LIPs to
 * its neighbours through a BGP speaker it starts and supervises (bird2), or
 * through one already running (`bird_socket` + `bird_include`).
 */
export interface BgpSpec {
  /** IPv4 address as a host-order number (BGP identifier). */
  routerId: number;
  localAs: number;
  neighbors: BgpNeighborSpec[];
  /** Standard communities (ASN:value) added to every announcement. */
  communities: Array<[number, number]>;
  /** MULTI_EXIT_DISC on every announcement; absent = none. */
  med?: number;
  /** BFD timers: milliseconds between packets and packets missed before down. Defaults 100 and 3. */
  bfdInterval: number;
  bfdMultiplier: number;
  /** Announce the LIPs as these prefixes; empty (default) = each LIP as a host route. */
  lipPrefixes: AnnouncedPrefix[];
  /** Attach to a bird already running on this control socket instead of starting one. */
  birdSocket?: string;
  /** With `birdSocket`: the file fullnat writes and the running bird's configuration includes. */
  birdInclude?: string;
  pos: SourcePos;
}

export interface FullnatConfig {
  file: string;
  defs: FullnatDefs;
  /** The file has a `fullnat_defs` block (without one, `defs` are all defaults). */
  hasDefsBlock: boolean;
  laddrGroups: Map<string, IpAddress[]>;
  /** Where each local address was first written, by addressKey (for messages comparing files). */
  laddrPos?: Map<string, SourcePos>;
  services: ServiceSpec[];
  /** The `bgp` block; absent = a single node (nothing announced). */
  bgp?: BgpSpec;
  /** The `sync` block; absent = connections are not shared with other nodes. */
  sync?: SyncSpec;
  /** What the file holds that is skipped or has no effect here, `FILE:LINE` each; logged at run and reload. */
  warnings?: ConfigWarning[];
}

/** A fleet peer this node sends its connections to and may carry connections for. */
export interface SyncPeerSpec {
  addr: IpAddress;
  /** UDP port of the peer's sync channel (default 8848). */
  port: number;
  /** The peer's `node_id` (1..255). */
  nodeId: number;
  /** The peer's LIPs: this node routes and announces them as a backup, and carries their connections once the peer is down. */
  lipPrefixes: AnnouncedPrefix[];
  pos: SourcePos;
}

/** The `sync` block: connection sync between the nodes of a fleet. */
export interface SyncSpec {
  /** This node's id (1..255), distinct in the fleet; also its share of every LIP's ports. */
  nodeId: number;
  /** Shares the LIP ports are cut into (default 1 + number of peers); nodeId ≤ nodes. */
  nodes: number;
  /** Where this node receives sync messages and sends them from (port default 8848). */
  listen: { addr: IpAddress; port: number };
  /** File holding the fleet's shared secret (≥ 16 bytes). */
  keyFile: string;
  peers: SyncPeerSpec[];
  /** Entries held for peers at most (default max_connections / 2). */
  maxSynced: number;
  /** Milliseconds between heartbeats (default 200); a peer silent for 5 of them is down. */
  heartbeatMs: number;
  /** Milliseconds a starting node waits for its peers' tables before it announces (default 2000). */
  resyncTimeoutMs: number;
  pos: SourcePos;
}

/** One real server as the running LB sees it. */
export interface RealServerStatus {
  addr: IpAddress;
  port: number;
  /** Configured weight. */
  weight: number;
  /** Weight in force: 0 while a health check holds the RS out. */
  effectiveWeight: number;
  healthy: boolean;
  activeConns: number;
  inactiveConns: number;
  stats: TrafficStats;
}

export interface ServiceStatus {
  vip: IpAddress;
  vport: number;
  protocol: L4Protocol;
  scheduler: SchedulerName;
  laddrs: IpAddress[];
  realServers: RealServerStatus[];
  /** `fnat` (FULLNAT) when absent; `nat` for lb_kind NAT (ipvsadm's "Masq"). */
  forwarding?: Forwarding;
  stats: TrafficStats;
  /** Engine counters for this service (toa_inserted, …). */
  counters: Record<string, number>;
  /** A persistent service's timeout and granularity, and its templates now. */
  persistence?: Persistence & { templates: number };
}

/** Cumulative counters, as `ipvsadm -Ln --stats` shows them. */
export interface TrafficStats {
  conns: number;
  inPackets: number;
  outPackets: number;
  inBytes: number;
  outBytes: number;
}

export interface ConnectionStatus {
  protocol: L4Protocol;
  /** Seconds until expiry. */
  expiresIn: number;
  state: string;
  client: { addr: IpAddress; port: number };
  virtual: { addr: IpAddress; port: number };
  local: { addr: IpAddress; port: number };
  real: { addr: IpAddress; port: number };
}

/**
 * The TUN device's own kernel counters (/sys/class/net/DEV/statistics),
 * named from the device's side: `tx_*` is what the kernel queued for the
 * LB to read (`tx_dropped`: its queue was full), `rx_*` what the LB wrote.
 */
export interface TunKernelStatus {
  device: string;
  stats: DeviceStatistics;
}

export interface Snapshot {
  services: ServiceStatus[];
  counters: Record<string, number>;
  /** Absent before the device is open, or when the kernel's counters cannot be read. */
  tunKernel?: TunKernelStatus;
  connections: number;
  /** Client persistence's templates in their table (absent before a persistent service exists). */
  persistenceTemplates?: number;
  /** Size of the connection table (fullnat_defs max_connections). */
  maxConnections?: number;
  /** Seconds since the LB started (for rates). */
  uptime: number;
  /**
   * The process forwards with its table loaded (an imported one, after a
   * restart or a takeover) and its control socket up; false while starting
   * or handing over.
   */
  ready?: boolean;
  /** The fleet view: BGP sessions, announcements, a drain; absent on a node without `bgp` that never drained. */
  cluster?: ClusterStatus;
  /** Connection sync with the fleet's other nodes; absent without a `sync` block. */
  sync?: SyncStatus;
}

/** The sync channel's side of the LB (src/control/sync/): told of a reload, shown in the snapshot. */
export interface SyncHooks {
  changed(): void;
  status(): SyncStatus | undefined;
}

/** One sync peer as this node's channel sees it. */
export interface SyncPeerStatus {
  node: number;
  addr: IpAddress;
  port: number;
  /** `never-heard` until its first valid message; `down` once silent for 5 heartbeats. */
  state: 'never-heard' | 'up' | 'down';
  /** The peer's start (Unix ms) as its messages say; a restart raises it. */
  incarnation?: number;
  /** Milliseconds since its last valid message; absent before the first. */
  lastHeardMs?: number;
}

/** The sync channel (src/control/sync/): `fullnat ctl --sync`, the fullnat_sync_* metrics. */
export interface SyncStatus {
  nodeId: number;
  listen: { addr: IpAddress; port: number };
  /** This node's start (Unix ms), as its messages carry it. */
  incarnation: number;
  /** The peers' tables are in (or resync_timeout passed): the node may announce. */
  ready: boolean;
  peers: SyncPeerStatus[];
  /** Entries held for peers (origin ≠ this node). */
  synced: number;
  /** messages/bytes/records in and out, what the table did with records, `rejected_<reason>`. */
  counters: Record<string, number>;
}

/** The fleet's side of the LB (src/control/cluster/): told of what may move an announcement, shown in the snapshot. */
export interface ClusterHooks {
  changed(): void;
  status(): ClusterStatus | undefined;
}

/** One BGP neighbour as the node's speaker last saw it. */
export interface BgpSessionStatus {
  /** The neighbour's address. */
  addr: IpAddress;
  remoteAs: number;
  /**
   * The BGP state bird reports: Established, Active, Connect, Idle, OpenSent…;
   * `unknown` while bird does not answer, `missing` when bird has no such session.
   */
  state: string;
  /** Established. */
  up: boolean;
  /** When bird last saw the session change, as bird prints it. */
  since?: string;
  /** bird's note on the last failure (`Socket: Connection refused`, `Error: Hold timer expired`). */
  info?: string;
  /** The BFD session's state (Up, Down, Init, `unknown`); absent when BFD is off for this neighbour. */
  bfd?: string;
}

/** The BGP speaker: bird started by fullnat (`managed`) or one it writes an include for (`attached`). */
export interface SpeakerStatus {
  mode: 'managed' | 'attached';
  /** Managed: bird's process is up; attached: bird answered the last poll. */
  running: boolean;
  pid?: number;
  /** Times a managed bird was started again after it exited. */
  restarts: number;
  /** bird's control socket (`birdc -s SOCKET`). */
  socket: string;
  /** The file fullnat writes: bird's whole configuration, or the include an attached bird reads. */
  config: string;
  lastError?: string;
  sessions: BgpSessionStatus[];
}

/** `ctl --drain` or SIGTERM with `drain_timeout`: VIPs withdrawn while the node's connections finish. */
export interface DrainStatus {
  active: boolean;
  /** Unix ms. */
  startedAt: number;
  /** TCP connections not yet closing (not TIME_WAIT or CLOSE) when the drain started, and now. */
  connectionsAtStart: number;
  connectionsLeft: number;
  /** Seconds the drain waits at most. */
  timeout: number;
  /** How it ended: `connections` (none left), `timeout`; absent while active. */
  ended?: 'connections' | 'timeout';
}

export interface ClusterStatus {
  /** Absent without a `bgp` block. */
  speaker?: SpeakerStatus;
  /** Prefixes announced now (`10.0.0.1/32`, `2001:db8::1/128`, LIP prefixes, backups). */
  announced: string[];
  /**
   * The sync peers' LIP prefixes among `announced` and `withheld`: announced
   * as backups, with a longer AS path. Absent when there is none.
   */
  backup?: string[];
  /**
   * Prefixes held back, and why: a VIP none of whose services meets its
   * quorum, or every VIP while the node drains; everything while the sync
   * waits for the peers' tables (`resync`).
   */
  withheld: Array<{ prefix: string; reason: 'quorum' | 'draining' | 'resync' }>;
  drain?: DrainStatus;
}

/** A service by VIP:vport and protocol (TCP when absent: requests from before UDP). */
export type ServiceKey = { vip: IpAddress; vport: number; protocol?: L4Protocol };
export type RealServerKey = ServiceKey & { addr: IpAddress; port: number };

/** What `fullnat ctl` can ask of the running LB (ipvsadm's verbs). */
export type ControlRequest =
  | { op: 'snapshot' }
  | { op: 'connections'; limit?: number }
  /** `persistence` (ipvsadm's -p, -M): absent, the service is not persistent (also for -E, as ipvsadm). */
  | { op: 'add-service'; service: ServiceKey; scheduler: SchedulerName; persistence?: Persistence }
  | { op: 'edit-service'; service: ServiceKey; scheduler: SchedulerName; persistence?: Persistence }
  | { op: 'delete-service'; service: ServiceKey }
  | { op: 'add-real'; real: RealServerKey; weight: number }
  | { op: 'edit-real'; real: RealServerKey; weight: number }
  | { op: 'delete-real'; real: RealServerKey }
  | { op: 'add-laddr'; service: ServiceKey; laddr: IpAddress }
  /** `force`: apply even a file that would remove every service (`ctl --reload --force`). */
  | { op: 'reload'; force?: boolean }
  | { op: 'zero' }
  /** Save the table, detach from the device and exit, leaving device and routes to a successor. */
  | { op: 'handover' }
  /** Stop for good: routes, device and the saved table go. */
  | { op: 'shutdown' }
  /**
   * Withdraw the VIPs, forward the established connections until they end or
   * `timeout` seconds pass (default: drain_timeout, or 60 when that is 0), then stop.
   */
  | { op: 'drain'; timeout?: number };

/** What the process that handed over says to its successor. */
export interface HandoverReport {
  /** The state file the table is in. */
  file: string;
  connections: number;
  bytes: number;
  /** Unix ms of the handing-over process's last forwarded packet (0: none). */
  lastForwardedAt: number;
}

export type ControlResponse =
  | { ok: true; snapshot?: Snapshot; connections?: ConnectionStatus[]; handover?: HandoverReport }
  | { ok: false; error: string };

/** Implemented by the running LB; the control socket server calls it. */
export interface ControlApi {
  handle(req: ControlRequest): Promise<ControlResponse>;
}
