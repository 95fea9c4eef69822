/**
 * node_exporter's IPVS series on fullnat's /metrics: names, types, labels
 * and values. The reference is node_exporter itself: its ipvs collector
 * reads a /proc written here in the kernel's formats (ip_vs_ctl.c's
 * ip_vs_info_seq_show and ip_vs_stats_show) from the same table, and both
 * scrapes must hold the same node_ipvs_* samples.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';

import { createMetricsRegistry, startMetricsServer } from '../../src/control/metrics.js';
import type { ServiceStatus, Snapshot, TrafficStats } from '../../src/control/model.js';
import type { IpAddress } from '../../src/wire/address.js';
import { ipv4 as ip, ipv6 as v6 } from '../support/addresses.js';
import { rsStatus } from '../support/control-status.js';

const traffic = (conns: number): TrafficStats => ({
  conns,
  inPackets: conns * 10,
  outPackets: conns * 9,
  inBytes: conns * 1500,
  outBytes: conns * 40000,
});

function snapshot(): Snapshot {
  const services: ServiceStatus[] = [
    {
      vip: ip('10.10.1.100'),
      vport: 80,
      protocol: 'TCP',
      scheduler: 'wlc',
      laddrs: [],
      realServers: [
        rsStatus(ip('10.10.2.2'), 8080, 100, {
          activeConns: 12,
          inactiveConns: 3,
          stats: traffic(70),
        }),
        // Held out by its health check: weight 0 in force, as keepalived sets it in IPVS.
        rsStatus(ip('10.10.2.3'), 8080, 5, {
          effectiveWeight: 0,
          healthy: false,
          inactiveConns: 2,
          stats: traffic(30),
        }),
      ],
      stats: traffic(100),
      counters: {},
    },
    {
      vip: ip('10.10.1.100'),
      vport: 53,
      protocol: 'UDP',
      scheduler: 'rr',
      laddrs: [],
      realServers: [rsStatus(ip('10.10.2.2'), 53, 1, { inactiveConns: 4, stats: traffic(4) })],
      stats: traffic(4),
      counters: {},
    },
    {
      vip: v6('2001:db8:1::100'),
      vport: 443,
      protocol: 'TCP',
      scheduler: 'mh',
      laddrs: [],
      realServers: [rsStatus(v6('2001:db8:2::10'), 8443, 2, { activeConns: 7, stats: traffic(9) })],
      stats: traffic(9),
      counters: {},
    },
  ];
  return { services, counters: {}, connections: 28, uptime: 5 };
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The node_ipvs_* families of a Prometheus text exposition: TYPE lines and samples, sorted. */
function ipvsSeries(text: string): { types: Record<string, string>; samples: Sample[] } {
  const types: Record<string, string> = {};
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('node_ipvs_') && !line.startsWith('# TYPE node_ipvs_')) continue;
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) {
      types[t[1]!] = t[2]!;
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  const key = (s: Sample): string => `${s.name}${JSON.stringify(s.labels)}`;
  samples.sort((a, b) => key(a).localeCompare(key(b)));
  return { types, samples };
}

function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics', timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`)),
      );
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

async function scrapeFullnat(snap: Snapshot): Promise<string> {
  const registry = createMetricsRegistry(() => snap, { defaultMetrics: false });
  const server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, registry);
  try {
    return await get(server.port);
  } finally {
    await server.close();
  }
}

const backend = (
  local: string,
  lport: number,
  remote: string,
  rport: number,
  proto: string,
): Record<string, string> => ({
  local_address: local,
  local_port: String(lport),
  remote_address: remote,
  remote_port: String(rport),
  proto,
  local_mark: '',
});

describe("node_exporter's IPVS series on /metrics", () => {
  it('the totals and each backend, with node_exporter labels and the weight in force', async () => {
    const { types, samples } = ipvsSeries(await scrapeFullnat(snapshot()));
    assert.deepEqual(types, {
      node_ipvs_connections_total: 'counter',
      node_ipvs_incoming_packets_total: 'counter',
      node_ipvs_outgoing_packets_total: 'counter',
      node_ipvs_incoming_bytes_total: 'counter',
      node_ipvs_outgoing_bytes_total: 'counter',
      node_ipvs_backend_connections_active: 'gauge',
      node_ipvs_backend_connections_inactive: 'gauge',
      node_ipvs_backend_weight: 'gauge',
    });
    const value = (name: string, labels: Record<string, string> = {}): number | undefined =>
      samples.find((s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels))
        ?.value;
    // 100 + 4 + 9 connections over the three services.
    assert.equal(value('node_ipvs_connections_total'), 113);
    assert.equal(value('node_ipvs_incoming_packets_total'), 1130);
    assert.equal(value('node_ipvs_outgoing_packets_total'), 1017);
    assert.equal(value('node_ipvs_incoming_bytes_total'), 169500);
    assert.equal(value('node_ipvs_outgoing_bytes_total'), 4520000);
    const web2 = backend('10.10.1.100', 80, '10.10.2.2', 8080, 'TCP');
    const web3 = backend('10.10.1.100', 80, '10.10.2.3', 8080, 'TCP');
    const dns = backend('10.10.1.100', 53, '10.10.2.2', 53, 'UDP');
    const tls = backend('2001:db8:1::100', 443, '2001:db8:2::10', 8443, 'TCP');
    assert.equal(value('node_ipvs_backend_connections_active', web2), 12);
    assert.equal(value('node_ipvs_backend_connections_inactive', web2), 3);
    assert.equal(value('node_ipvs_backend_weight', web2), 100);
    assert.equal(value('node_ipvs_backend_weight', web3), 0, 'held out: the weight in force');
    assert.equal(value('node_ipvs_backend_connections_inactive', dns), 4);
    assert.equal(value('node_ipvs_backend_connections_active', tls), 7);
    assert.equal(samples.filter((s) => s.name === 'node_ipvs_backend_weight').length, 4);
  });

  it('no services: zero totals and no backend series', async () => {
    const { samples } = ipvsSeries(
      await scrapeFullnat({ services: [], counters: {}, connections: 0, uptime: 1 }),
    );
    assert.deepEqual(
      samples.map((s) => [s.name, s.value]),
      [
        ['node_ipvs_connections_total', 0],
        ['node_ipvs_incoming_bytes_total', 0],
        ['node_ipvs_incoming_packets_total', 0],
        ['node_ipvs_outgoing_bytes_total', 0],
        ['node_ipvs_outgoing_packets_total', 0],
      ],
    );
  });
});

const NODE_EXPORTER = ['/usr/bin/prometheus-node-exporter', '/usr/bin/node_exporter'].find((p) =>
  existsSync(p),
);

const hex = (n: number, width: number): string => n.toString(16).toUpperCase().padStart(width, '0');

/** The kernel's %08X for IPv4, and %pI6's full form for IPv6, as in /proc/net/ip_vs. */
function procAddr(a: IpAddress, port: number): string {
  if (typeof a === 'number') return `${hex(a >>> 0, 8)}:${hex(port, 4)}`;
  const b = a.bytes;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(hex((b[i]! << 8) | b[i + 1]!, 4).toLowerCase());
  return `[${groups.join(':')}]:${hex(port, 4)}`;
}

/** /proc/net/ip_vs as ip_vs_info_seq_show prints the table. */
function procIpVs(snap: Snapshot): string {
  let out =
    'IP Virtual Server version 1.2.1 (size=4096)\n' +
    'Prot LocalAddress:Port Scheduler Flags\n' +
    '  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n';
  for (const s of snap.services) {
    const v4 = typeof s.vip === 'number';
    // "%s  %08X:%04X %s %s " (the last %s: "ops " or "") for IPv4, "%s  [%pI6]:%04X %s " for IPv6.
    out += `${s.protocol}  ${procAddr(s.vip, s.vport)} ${s.scheduler} ${v4 ? ' ' : ''}\n`;
    for (const r of s.realServers) {
      out += `  -> ${procAddr(r.addr, r.port)}      ${'Masq'.padEnd(7)} ${String(r.effectiveWeight).padEnd(6)} ${String(r.activeConns).padEnd(10)} ${String(r.inactiveConns).padEnd(10)}\n`;
    }
  }
  return out;
}

/** /proc/net/ip_vs_stats as ip_vs_stats_show prints the totals ("%8LX %8LX %8LX %16LX %16LX"). */
function procIpVsStats(snap: Snapshot): string {
  const t = snap.services.reduce(
    (a, s) =>
      a.map(
        (v, i) =>
          v +
          [s.stats.conns, s.stats.inPackets, s.stats.outPackets, s.stats.inBytes, s.stats.outBytes][
            i
          ]!,
      ),
    [0, 0, 0, 0, 0],
  );
  const row = (v: number[]): string =>
    v.map((n, i) => hex(n, i < 3 ? 8 : 16).padStart(i < 3 ? 8 : 16)).join(' ');
  return (
    '   Total Incoming Outgoing         Incoming         Outgoing\n' +
    '   Conns  Packets  Packets            Bytes            Bytes\n' +
    `${row(t)}\n\n` +
    ' Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n' +
    `${row([0, 0, 0, 0, 0])}\n`
  );
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

describe(
  "fullnat's node_ipvs_* against node_exporter's own, reading the same table from /proc",
  {
    skip: NODE_EXPORTER
      ? undefined
      : 'node_exporter not installed (scripts/ensure-system-deps.sh installs prometheus-node-exporter)',
    timeout: 30_000,
  },
  () => {
    let dir: string;
    let exporter: ChildProcess | undefined;
    let port: number;
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'fullnat-node-exporter-'));
      mkdirSync(join(dir, 'net'));
      writeFileSync(join(dir, 'net', 'ip_vs'), procIpVs(snapshot()));
      writeFileSync(join(dir, 'net', 'ip_vs_stats'), procIpVsStats(snapshot()));
      port = await freePort();
      exporter = spawn(
        NODE_EXPORTER!,
        [
          '--collector.disable-defaults',
          '--collector.ipvs',
          `--path.procfs=${dir}`,
          `--web.listen-address=127.0.0.1:${port}`,
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
    });
    after(() => {
      exporter?.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    });

    it('the same families, types, labels and values', async () => {
      let theirs = '';
      for (let attempt = 0; attempt < 50 && theirs === ''; attempt++) {
        theirs = await get(port).catch(() => '');
        if (theirs === '') await sleep(100);
      }
      assert.notEqual(theirs, '', 'node_exporter answered');
      const reference = ipvsSeries(theirs);
      assert.ok(
        reference.samples.some((s) => s.name === 'node_ipvs_backend_weight'),
        `node_exporter read the table: ${theirs
          .split('\n')
          .filter((l) => l.includes('ipvs'))
          .join('\n')}`,
      );
      const ours = ipvsSeries(await scrapeFullnat(snapshot()));
      assert.deepEqual(ours.types, reference.types);
      assert.deepEqual(ours.samples, reference.samples);
    });
  },
);
