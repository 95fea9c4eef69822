/**
 * Prometheus metrics. Nothing here runs per packet: every value is read from
 * one Snapshot taken when Prometheus scrapes (the metrics' collect()
 * callbacks), so the data path only keeps its typed-array counters.
 *
 * Families (all values straight from the Snapshot):
 *   fullnat_connections                       gauge    connection table entries
 *   fullnat_uptime_seconds                    gauge
 *   fullnat_persistence_templates             gauge    client persistence templates
 *   fullnat_<counter>_total                   counter  engine counters, one family per
 *                                                      COUNTER_NAMES entry: unlabelled =
 *                                                      the LB-wide total, {service} = that
 *                                                      service's share. Select totals with
 *                                                      {service=""}; do not sum() the family.
 *   fullnat_io_{rx,tx}_{packets,super_packets}_total, fullnat_io_rx_batches_total,
 *   fullnat_io_tx_dropped_total               counter  the TUN device as the run loop sees it
 *   fullnat_tun_kernel_{rx,tx}_{packets,bytes,dropped}_total, fullnat_tun_kernel_rx_frame_errors_total
 *                                             counter  {device} the TUN's own kernel counters
 *                                                      (/sys/class/net/DEV/statistics), read at
 *                                                      scrape time; the kernel's tx is what the
 *                                                      LB reads, its rx what the LB writes
 *   fullnat_service_{active,inactive}_connections          gauge    {service}
 *   fullnat_service_{connections,in_packets,out_packets,in_bytes,out_bytes}_total
 *                                                      counter  {service}
 *   fullnat_service_local_addresses           gauge    {service}
 *   fullnat_real_server_*                     the same per RS {service, real_server},
 *                                             plus _weight, _effective_weight, _up
 *   fullnat_bgp_session_up                    gauge    {neighbor} 1 while the BGP session is Established
 *   fullnat_bfd_session_up                    gauge    {neighbor} 1 while its BFD session is Up (BFD on only)
 *   fullnat_bgp_announced_prefixes            gauge    prefixes announced now (VIPs, LIPs, backups)
 *   fullnat_bgp_prefix_announced              gauge    {prefix} 1 announced, 0 held back (a VIP: quorum,
 *                                                      drain; any: sync resync); a sync peer's LIP
 *                                                      prefix (a backup) has role="backup" too
 *   fullnat_drain_active                      gauge    1 while draining
 *   fullnat_drain_connections_left            gauge    TCP connections the drain still waits for
 *                                                      (the fleet's families are empty, or 0, on a
 *                                                      node without `bgp` that never drained)
 *   fullnat_sync_peer_up                      gauge    {peer} 1 while the sync peer (its node id) is heard
 *   fullnat_sync_ready                        gauge    1 once the peers' tables are in (or resync_timeout passed)
 *   fullnat_sync_messages_total, fullnat_sync_bytes_total, fullnat_sync_records_total
 *                                             counter  {direction} in or out on the sync channel
 *   fullnat_sync_rejected_total               counter  {reason} sync messages refused (bad_mac, replay, …)
 *   fullnat_sync_entries                      gauge    connection entries held for peers
 *                                                      (the sync families are empty, or 0, on a node
 *                                                      without `sync`)
 *   fullnat_process_* / fullnat_nodejs_*      prom-client's default process metrics
 *   node_ipvs_*                               node_exporter's IPVS series (metrics-ipvs.ts)
 *
 * Labels: service="VIP:port", real_server="RS:port", as ctl prints them:
 * an IPv6 address in brackets (service="[2001:db8::100]:80").
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

import { COUNTER_NAMES } from '../engine/counters.js';
import { SYNC_REJECT_REASONS } from './sync/counters.js';
import { DEVICE_STAT_FILES, type DeviceStatName } from '../io/device-stats.js';
import { addressToString, endpointToString } from '../wire/address.js';
import type { RealServerStatus, ServiceStatus, Snapshot, TrafficStats } from './model.js';
import { registerIpvsMetrics } from './metrics-ipvs.js';

const IO_COUNTERS: readonly (readonly [string, string])[] = [
  ['io_rx_packets', 'Packets read from the TUN device.'],
  ['io_rx_batches', 'Read batches (system-call rounds) on the TUN device.'],
  ['io_rx_super_packets', 'GSO super-packets among the packets read (TUN offloads).'],
  ['io_tx_packets', 'Packets written to the TUN device.'],
  ['io_tx_super_packets', 'GSO super-packets among the packets written (TUN offloads).'],
  ['io_tx_dropped', 'Packets the TUN device would not take (queue full).'],
];

/** The TUN's kernel counters; the kernel names directions from the device's side, the reverse of the LB's. */
const TUN_KERNEL_HELP: Record<DeviceStatName, string> = {
  rx_packets: 'Packets the kernel received on the TUN device, i.e. written by fullnat.',
  rx_bytes: 'Bytes the kernel received on the TUN device, i.e. written by fullnat.',
  rx_dropped: 'Packets fullnat wrote to the TUN device that the kernel dropped.',
  rx_frame_errors:
    'Packets fullnat wrote to the TUN device that the kernel refused as malformed (e.g. a bad offload header).',
  tx_packets:
    'Packets the kernel transmitted on the TUN device, i.e. handed to fullnat when it read.',
  tx_bytes: 'Bytes the kernel transmitted on the TUN device, i.e. handed to fullnat when it read.',
  tx_dropped:
    "Packets the kernel dropped on the TUN device's transmit side: its queue (txqueuelen, fullnat_defs tun_txqueuelen) was full before fullnat read them.",
};

export interface MetricsOptions {
  /** prom-client's process/Node.js metrics on the same registry; default true. */
  defaultMetrics?: boolean;
}

// `protocol` (TCP or UDP) keeps a TCP and a UDP service on one VIP:port apart.
const SVC = ['service', 'protocol'] as const;
const RS = ['service', 'protocol', 'real_server'] as const;

type SvcLabel = (typeof SVC)[number];
type RsLabel = (typeof RS)[number];

function num(n: number): number {
  // A counter must not go negative or NaN, or prom-client throws mid-scrape.
  return Number.isFinite(n) && n > 0 ? n : 0;
}

function serviceLabel(s: ServiceStatus): string {
  return endpointToString(s.vip, s.vport);
}

function realLabel(r: RealServerStatus): string {
  return endpointToString(r.addr, r.port);
}

const SYNC_TRAFFIC: readonly [string, string][] = [
  [
    'messages',
    'Sync datagrams received (in: every one, refused ones too) and sent (out: one per peer).',
  ],
  ['bytes', 'Sync datagram bytes received and sent.'],
  [
    'records',
    'Connection records in accepted sync messages (in) and sent to peers (out, once per peer).',
  ],
];

const TRAFFIC: readonly { key: keyof TrafficStats; name: string; help: string }[] = [
  { key: 'conns', name: 'connections_total', help: 'connections scheduled' },
  { key: 'inPackets', name: 'in_packets_total', help: 'packets client to real server' },
  { key: 'outPackets', name: 'out_packets_total', help: 'packets real server to client' },
  { key: 'inBytes', name: 'in_bytes_total', help: 'bytes client to real server' },
  { key: 'outBytes', name: 'out_bytes_total', help: 'bytes real server to client' },
];

/**
 * A registry whose metrics are filled from `snapshot()` at scrape time.
 * One snapshot serves every family of a scrape: prom-client runs the
 * collect() callbacks back to back, and the cached snapshot is dropped
 * at the next microtask.
 */
export function createMetricsRegistry(
  snapshot: () => Snapshot,
  opts: MetricsOptions = {},
): Registry {
  const registry = new Registry();
  let cached: Snapshot | undefined;
  const current = (): Snapshot => {
    if (cached === undefined) {
      cached = snapshot();
      queueMicrotask(() => {
        cached = undefined;
      });
    }
    return cached;
  };
  const registers = [registry];

  new Gauge({
    name: 'fullnat_connections',
    help: 'Entries in the connection table.',
    registers,
    collect() {
      this.set(num(current().connections));
    },
  });
  new Gauge({
    name: 'fullnat_persistence_templates',
    help: 'Client persistence templates (persistence_timeout): client networks bound to a real server.',
    registers,
    collect() {
      this.set(num(current().persistenceTemplates ?? 0));
    },
  });
  new Gauge({
    name: 'fullnat_uptime_seconds',
    help: 'Seconds since the load balancer started.',
    registers,
    collect() {
      this.set(num(current().uptime));
    },
  });

  for (const name of COUNTER_NAMES) {
    new Counter<SvcLabel>({
      name: `fullnat_${name}_total`,
      help: `Engine counter ${name}: unlabelled is the LB-wide total, {service} that service's share.`,
      labelNames: SVC,
      registers,
      collect() {
        const snap = current();
        this.reset();
        this.inc(num(snap.counters[name] ?? 0));
        for (const s of snap.services) {
          this.inc({ service: serviceLabel(s), protocol: s.protocol }, num(s.counters[name] ?? 0));
        }
      },
    });
  }

  // The run loop's device counters (io_* in the snapshot, present once the loop runs).
  for (const [key, help] of IO_COUNTERS) {
    new Counter({
      name: `fullnat_${key}_total`,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(num(current().counters[key] ?? 0));
      },
    });
  }

  // The TUN's own kernel counters (tunKernel in the snapshot, present while the device is open).
  for (const key of DEVICE_STAT_FILES) {
    new Counter<'device'>({
      name: `fullnat_tun_kernel_${key}_total`,
      help: `${TUN_KERNEL_HELP[key]} From /sys/class/net/DEV/statistics/${key}.`,
      labelNames: ['device'],
      registers,
      collect() {
        this.reset();
        const tun = current().tunKernel;
        const v = tun?.stats[key];
        if (tun && v !== undefined) this.inc({ device: tun.device }, num(v));
      },
    });
  }

  // Per service.
  const svcGauge = (name: string, help: string, value: (s: ServiceStatus) => number): void => {
    new Gauge<SvcLabel>({
      name: `fullnat_service_${name}`,
      help,
      labelNames: SVC,
      registers,
      collect() {
        this.reset();
        for (const s of current().services)
          this.set({ service: serviceLabel(s), protocol: s.protocol }, num(value(s)));
      },
    });
  };
  svcGauge(
    'active_connections',
    'ESTABLISHED connections of the service (ipvsadm ActiveConn).',
    (s) => s.realServers.reduce((a, r) => a + num(r.activeConns), 0),
  );
  svcGauge(
    'inactive_connections',
    'Connections of the service in other states (ipvsadm InActConn).',
    (s) => s.realServers.reduce((a, r) => a + num(r.inactiveConns), 0),
  );
  svcGauge(
    'local_addresses',
    'Local addresses (LIPs) the service sources connections from.',
    (s) => s.laddrs.length,
  );
  for (const t of TRAFFIC) {
    new Counter<SvcLabel>({
      name: `fullnat_service_${t.name}`,
      help: `Service ${t.help} (ipvsadm --stats).`,
      labelNames: SVC,
      registers,
      collect() {
        this.reset();
        for (const s of current().services)
          this.inc({ service: serviceLabel(s), protocol: s.protocol }, num(s.stats[t.key]));
      },
    });
  }

  // Per real server.
  const eachReal = (f: (labels: Record<RsLabel, string>, r: RealServerStatus) => void): void => {
    for (const s of current().services) {
      const service = serviceLabel(s);
      for (const r of s.realServers)
        f({ service, protocol: s.protocol, real_server: realLabel(r) }, r);
    }
  };
  const rsGauge = (name: string, help: string, value: (r: RealServerStatus) => number): void => {
    new Gauge<RsLabel>({
      name: `fullnat_real_server_${name}`,
      help,
      labelNames: RS,
      registers,
      collect() {
        this.reset();
        eachReal((labels, r) => this.set(labels, num(value(r))));
      },
    });
  };
  rsGauge(
    'active_connections',
    'ESTABLISHED connections to the real server (ipvsadm ActiveConn).',
    (r) => r.activeConns,
  );
  rsGauge(
    'inactive_connections',
    'Connections to the real server in other states (ipvsadm InActConn).',
    (r) => r.inactiveConns,
  );
  rsGauge('weight', 'Configured weight.', (r) => r.weight);
  rsGauge(
    'effective_weight',
    'Weight in force: 0 while a health check holds the real server out.',
    (r) => r.effectiveWeight,
  );
  rsGauge('up', '1 when the health check passes, else 0.', (r) => (r.healthy ? 1 : 0));
  for (const t of TRAFFIC) {
    new Counter<RsLabel>({
      name: `fullnat_real_server_${t.name}`,
      help: `Real server ${t.help} (ipvsadm --stats).`,
      labelNames: RS,
      registers,
      collect() {
        this.reset();
        eachReal((labels, r) => this.inc(labels, num(r.stats[t.key])));
      },
    });
  }

  // The fleet (Snapshot.cluster): BGP and BFD per neighbour, the announcements, a drain.
  new Gauge<'neighbor'>({
    name: 'fullnat_bgp_session_up',
    help: '1 while the BGP session with the neighbour is Established, else 0.',
    labelNames: ['neighbor'],
    registers,
    collect() {
      this.reset();
      for (const s of current().cluster?.speaker?.sessions ?? [])
        this.set({ neighbor: addressToString(s.addr) }, s.up ? 1 : 0);
    },
  });
  new Gauge<'neighbor'>({
    name: 'fullnat_bfd_session_up',
    help: '1 while the BFD session with the neighbour is Up, else 0; only neighbours with BFD on.',
    labelNames: ['neighbor'],
    registers,
    collect() {
      this.reset();
      for (const s of current().cluster?.speaker?.sessions ?? [])
        if (s.bfd !== undefined)
          this.set({ neighbor: addressToString(s.addr) }, s.bfd === 'Up' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'fullnat_bgp_announced_prefixes',
    help: "Prefixes this node announces now: its VIPs in service, its LIPs, and its sync peers' LIP prefixes as backups.",
    registers,
    collect() {
      this.set(current().cluster?.announced.length ?? 0);
    },
  });
  new Gauge<'prefix' | 'role'>({
    name: 'fullnat_bgp_prefix_announced',
    help: '1 for a prefix announced now, 0 for one held back (a VIP none of whose services meets its quorum, or draining; anything while the sync waits for the peers). role="backup": a sync peer\'s LIP prefix, announced with a longer AS path.',
    labelNames: ['prefix', 'role'],
    registers,
    collect() {
      this.reset();
      const c = current().cluster;
      const backup = new Set(c?.backup ?? []);
      // Own prefixes keep the one label they always had; a backup is told apart by role.
      const labels = (prefix: string) =>
        backup.has(prefix) ? { prefix, role: 'backup' } : { prefix };
      for (const p of c?.announced ?? []) this.set(labels(p), 1);
      for (const w of c?.withheld ?? []) this.set(labels(w.prefix), 0);
    },
  });
  new Gauge({
    name: 'fullnat_drain_active',
    help: '1 while the node drains (VIPs withdrawn, established connections finishing), else 0.',
    registers,
    collect() {
      this.set(current().cluster?.drain?.active ? 1 : 0);
    },
  });
  new Gauge({
    name: 'fullnat_drain_connections_left',
    help: 'TCP connections (not TIME_WAIT or CLOSE) the running or last drain waits for.',
    registers,
    collect() {
      this.set(num(current().cluster?.drain?.connectionsLeft ?? 0));
    },
  });

  // Connection sync (Snapshot.sync): peers, readiness, the channel's traffic and refusals.
  new Gauge<'peer'>({
    name: 'fullnat_sync_peer_up',
    help: '1 while the sync peer (named by its node id) is heard, else 0 (never heard, or silent for 5 heartbeats).',
    labelNames: ['peer'],
    registers,
    collect() {
      this.reset();
      for (const p of current().sync?.peers ?? [])
        this.set({ peer: String(p.node) }, p.state === 'up' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'fullnat_sync_ready',
    help: "1 once the peers' tables are in (or resync_timeout passed): the node may announce.",
    registers,
    collect() {
      this.reset();
      const s = current().sync;
      if (s) this.set(s.ready ? 1 : 0);
    },
  });
  for (const [what, help] of SYNC_TRAFFIC) {
    new Counter<'direction'>({
      name: `fullnat_sync_${what}_total`,
      help,
      labelNames: ['direction'],
      registers,
      collect() {
        this.reset();
        const c = current().sync?.counters;
        if (!c) return;
        for (const direction of ['in', 'out'] as const)
          this.inc({ direction }, num(c[`${what}_${direction}`] ?? 0));
      },
    });
  }
  new Counter<'reason'>({
    name: 'fullnat_sync_rejected_total',
    help: 'Sync messages refused, by reason (malformed, unknown sender, wrong source, bad MAC, replay, old incarnation).',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      const c = current().sync?.counters;
      if (!c) return;
      for (const reason of SYNC_REJECT_REASONS)
        this.inc({ reason }, num(c[`rejected_${reason}`] ?? 0));
    },
  });
  new Gauge({
    name: 'fullnat_sync_entries',
    help: 'Connection entries held for sync peers (bounded by max_synced).',
    registers,
    collect() {
      this.reset();
      const s = current().sync;
      if (s) this.set(s.synced);
    },
  });

  registerIpvsMetrics(registers, current);

  if (opts.defaultMetrics !== false) {
    // Yields fullnat_process_* and fullnat_nodejs_*; a "fullnat_process_" prefix would stutter.
    collectDefaultMetrics({ register: registry, prefix: 'fullnat_' });
  }
  return registry;
}

export interface MetricsListen {
  host: string;
  port: number;
}

export interface MetricsServer {
  readonly host: string;
  /** The bound port (useful with port 0). */
  readonly port: number;
  close(): Promise<void>;
}

/** Serves GET/HEAD /metrics from `registry` over plain HTTP; everything else is 404 (405 for other methods). */
export function startMetricsServer(
  listen: MetricsListen,
  registry: Registry,
  log?: Logger,
): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/metrics') {
      res
        .writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
        .end('not found; try /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res
        .writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' })
        .end('method not allowed\n');
      return;
    }
    registry.metrics().then(
      (body) => {
        res.writeHead(200, {
          'content-type': registry.contentType,
          'content-length': Buffer.byteLength(body),
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (e: unknown) => {
        log?.error({ err: e }, 'metrics scrape failed');
        res
          .writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
          .end(`scrape failed: ${e instanceof Error ? e.message : String(e)}\n`);
      },
    );
  });
  // Scrapers are few and quick; bound what a stuck or hostile client can hold.
  server.maxConnections = 32;
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.keepAliveTimeout = 5_000;

  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException): void => {
      reject(
        new Error(
          `metrics listener ${listen.host}:${listen.port}: ${e.code === 'EADDRINUSE' ? 'address already in use' : e.message}`,
          { cause: e },
        ),
      );
    };
    server.once('error', onError);
    server.listen({ host: listen.host, port: listen.port }, () => {
      server.off('error', onError);
      server.on('error', (e) => log?.error({ err: e }, 'metrics listener error'));
      const addr = server.address() as AddressInfo;
      log?.info({ host: addr.address, port: addr.port }, 'metrics listening');
      let closed: Promise<void> | undefined;
      resolve({
        host: addr.address,
        port: addr.port,
        close(): Promise<void> {
          closed ??= new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          });
          return closed;
        },
      });
    });
  });
}
