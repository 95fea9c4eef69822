/**
 * The series Prometheus's node_exporter exposes for IPVS (its `ipvs`
 * collector, from /proc/net/ip_vs_stats and /proc/net/ip_vs), with the same
 * names, types and labels, so the dashboards and alerts written for an IPVS
 * director work on a fullnat one unchanged:
 *
 *   node_ipvs_connections_total              counter  connections scheduled
 *   node_ipvs_incoming_packets_total         counter  packets client to real server
 *   node_ipvs_outgoing_packets_total         counter  packets real server to client
 *   node_ipvs_incoming_bytes_total           counter  bytes client to real server
 *   node_ipvs_outgoing_bytes_total           counter  bytes real server to client
 *   node_ipvs_backend_connections_active     gauge    per real server (ipvsadm ActiveConn)
 *   node_ipvs_backend_connections_inactive   gauge    per real server (ipvsadm InActConn)
 *   node_ipvs_backend_weight                 gauge    per real server: the weight in force
 *
 * Backend labels, as node_exporter's default: local_address (the VIP),
 * local_port, remote_address (the RS), remote_port, proto (TCP or UDP),
 * local_mark (the firewall mark: always "", fullnat has no fwmark
 * services). Addresses are bare, IPv6 without brackets, as node_exporter
 * prints Go's net.IP.
 *
 * The totals are the sum over the services present: IPVS keeps its own
 * across a service's deletion, fullnat's go down with it (and with -Z, as
 * IPVS's do).
 */
import { Counter, Gauge, type Registry } from 'prom-client';

import { addressToString } from '../wire/address.js';
import type { RealServerStatus, ServiceStatus, Snapshot, TrafficStats } from './model.js';

export const IPVS_BACKEND_LABELS = [
  'local_address',
  'local_port',
  'remote_address',
  'remote_port',
  'proto',
  'local_mark',
] as const;

type BackendLabel = (typeof IPVS_BACKEND_LABELS)[number];

const TOTALS: readonly { key: keyof TrafficStats; name: string; help: string }[] = [
  { key: 'conns', name: 'connections_total', help: 'The total number of connections made.' },
  {
    key: 'inPackets',
    name: 'incoming_packets_total',
    help: 'The total number of incoming packets.',
  },
  {
    key: 'outPackets',
    name: 'outgoing_packets_total',
    help: 'The total number of outgoing packets.',
  },
  { key: 'inBytes', name: 'incoming_bytes_total', help: 'The total amount of incoming data.' },
  { key: 'outBytes', name: 'outgoing_bytes_total', help: 'The total amount of outgoing data.' },
];

const BACKEND: readonly {
  name: string;
  help: string;
  value: (r: RealServerStatus) => number;
}[] = [
  {
    name: 'backend_connections_active',
    help: 'The current active connections by local and remote address.',
    value: (r) => r.activeConns,
  },
  {
    name: 'backend_connections_inactive',
    help: 'The current inactive connections by local and remote address.',
    value: (r) => r.inactiveConns,
  },
  {
    name: 'backend_weight',
    help: 'The current backend weight by local and remote address.',
    value: (r) => r.effectiveWeight,
  },
];

function nonNegative(n: number): number {
  return Number.isFinite(n) && n > 0 ? n : 0;
}

function backendLabels(s: ServiceStatus, r: RealServerStatus): Record<BackendLabel, string> {
  return {
    local_address: addressToString(s.vip),
    local_port: String(s.vport),
    remote_address: addressToString(r.addr),
    remote_port: String(r.port),
    proto: s.protocol,
    local_mark: '',
  };
}

/** Registers node_exporter's IPVS families on `registers`, read from `current()` at scrape time. */
export function registerIpvsMetrics(registers: Registry[], current: () => Snapshot): void {
  for (const t of TOTALS) {
    new Counter({
      name: `node_ipvs_${t.name}`,
      help: t.help,
      registers,
      collect() {
        this.reset();
        this.inc(current().services.reduce((sum, s) => sum + nonNegative(s.stats[t.key]), 0));
      },
    });
  }
  for (const b of BACKEND) {
    new Gauge<BackendLabel>({
      name: `node_ipvs_${b.name}`,
      help: b.help,
      labelNames: IPVS_BACKEND_LABELS,
      registers,
      collect() {
        this.reset();
        for (const s of current().services)
          for (const r of s.realServers) this.set(backendLabels(s, r), nonNegative(b.value(r)));
      },
    });
  }
}
