/** The `fullnat_defs` keyword behind each FullnatDefs field: the grammar reads them, the diff names them. */
import type { TcpTimeouts } from '../../engine/tcp-state.js';
import type { FullnatDefs, SyncSpec } from '../model.js';

export type TimeoutState = keyof TcpTimeouts;

export const timeoutKeyword = (s: TimeoutState): string => `timeout_${s.toLowerCase()}`;

export const DEF_KEYWORDS: Record<Exclude<keyof FullnatDefs, 'timeouts'>, string> = {
  interface: 'interface',
  toaPolicy: 'toa_policy',
  toaV6Kind: 'toa_v6_kind',
  mssAdjust: 'mss_adjust',
  timestampRemove: 'timestamp_remove',
  unknownServiceAction: 'unknown_service_action',
  unknownFlowReset: 'unknown_flow_reset',
  unknownFlowResetRate: 'unknown_flow_reset_rate',
  icmpEcho: 'icmp_echo',
  pmtuExpires: 'pmtu_expires',
  metrics: 'metrics',
  controlSocket: 'control_socket',
  maxConnections: 'max_connections',
  portRange: 'local_port_range',
  rsMtu: 'rs_mtu',
  offload: 'offload',
  napiThread: 'napi_thread',
  stateDir: 'state_dir',
  handover: 'handover',
  checkpointInterval: 'checkpoint_interval',
  tunTxQueueLen: 'tun_txqueuelen',
  timeoutUdp: 'timeout_udp',
  uoaMode: 'uoa_mode',
  uoaMaxTrail: 'uoa_max_trail',
  drainTimeout: 'drain_timeout',
};

/** The `sync` keyword behind each SyncSpec field. */
export const SYNC_KEYWORDS: Record<Exclude<keyof SyncSpec, 'pos'>, string> = {
  nodeId: 'node_id',
  nodes: 'nodes',
  listen: 'listen',
  keyFile: 'key_file',
  peers: 'peer',
  maxSynced: 'max_synced',
  heartbeatMs: 'heartbeat',
  resyncTimeoutMs: 'resync_timeout',
};
