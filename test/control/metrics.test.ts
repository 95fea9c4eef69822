import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';

import {
  createMetricsRegistry,
  startMetricsServer,
  type MetricsServer,
} from '../../src/control/metrics.js';
import type { Snapshot } from '../../src/control/model.js';
import { COUNTER_NAMES } from '../../src/engine/counters.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { rsStatus } from '../support/control-status.js';

const ip = (s: string): number => parseIpv4(s);

function fixture(): Snapshot {
  return {
    services: [
      {
        vip: ip('10.10.1.100'),
        vport: 80,
        protocol: 'TCP',
        scheduler: 'wrr',
        laddrs: [ip('10.10.3.1'), ip('10.10.3.2')],
        realServers: [
          rsStatus(ip('10.10.2.2'), 80, 3, {
            activeConns: 12,
            inactiveConns: 3,
            stats: { conns: 70, inPackets: 700, outPackets: 600, inBytes: 44000, outBytes: 300000 },
          }),
          rsStatus(ip('10.10.2.3'), 8080, 5, {
            effectiveWeight: 0,
            healthy: false,
            activeConns: 1,
            inactiveConns: 2,
            stats: { conns: 30, inPackets: 300, outPackets: 300, inBytes: 20000, outBytes: 212000 },
          }),
        ],
        stats: { conns: 100, inPackets: 1000, outPackets: 900, inBytes: 64000, outBytes: 512000 },
        counters: { toa_inserted: 70, toa_split: 2 },
      },
      {
        vip: ip('10.10.1.101'),
        vport: 443,
        protocol: 'TCP',
        scheduler: 'mh',
        laddrs: [],
        realServers: [],
        stats: { conns: 0, inPackets: 0, outPackets: 0, inBytes: 0, outBytes: 0 },
        counters: { toa_inserted: 5 },
      },
    ],
    counters: {
      rx_packets: 123456789012,
      toa_inserted: 75,
      toa_split: 2,
      malformed_dropped: 4,
      io_rx_packets: 900,
      io_rx_super_packets: 40,
    },
    tunKernel: {
      device: 'fnat7',
      // tx_bytes left out: a counter the kernel does not expose has no sample, not a 0.
      stats: {
        rx_packets: 5000,
        rx_bytes: 700000,
        rx_dropped: 1,
        rx_frame_errors: 0,
        tx_packets: 6000,
        tx_dropped: 5,
      },
    },
    connections: 18,
    uptime: 3600.5,
  };
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  types: Map<string, string>;
  samples: Sample[];
}

/** A small parser for the Prometheus text format (0.0.4), enough to check what we emit. */
function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ')) continue;
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) {
      assert.ok(!types.has(t[1]!), `family ${t[1]} declared once`);
      types.set(t[1]!, t[2]!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!;
    }
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

function get(
  port: number,
  path: string,
  method = 'GET',
): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

function value(
  x: Exposition,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const s = x.samples.find(
    (s) =>
      s.name === name &&
      Object.keys(s.labels).length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  return s?.value;
}

describe('Prometheus metrics over HTTP', { timeout: 10_000 }, () => {
  let snap = fixture();
  let calls = 0;
  let server: MetricsServer;

  before(async () => {
    const registry = createMetricsRegistry(() => {
      calls++;
      return snap;
    });
    server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, registry);
  });
  after(async () => {
    await server.close();
  });

  it('serves /metrics in the Prometheus text format', async () => {
    const r = await get(server.port, '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.type, /^text\/plain; version=0\.0\.4/);
    parseExposition(r.body);
  });

  it('takes exactly one snapshot per scrape', async () => {
    const before = calls;
    await get(server.port, '/metrics');
    assert.equal(calls - before, 1);
  });

  it('global gauges', async () => {
    const x = parseExposition((await get(server.port, '/metrics')).body);
    assert.equal(x.types.get('fullnat_connections'), 'gauge');
    assert.equal(value(x, 'fullnat_connections'), 18);
    assert.equal(value(x, 'fullnat_uptime_seconds'), 3600.5);
  });

  it('the TUN device counters of the run loop', async () => {
    const x = parseExposition((await get(server.port, '/metrics')).body);
    assert.equal(x.types.get('fullnat_io_rx_packets_total'), 'counter');
    assert.equal(value(x, 'fullnat_io_rx_packets_total'), 900);
    assert.equal(value(x, 'fullnat_io_rx_super_packets_total'), 40);
    assert.equal(value(x, 'fullnat_io_tx_dropped_total'), 0, 'absent from the snapshot: 0');
  });

  it("the TUN's kernel counters, labelled with the device, help saying which way is which", async () => {
    const r = await get(server.port, '/metrics');
    const x = parseExposition(r.body);
    const dev = { device: 'fnat7' };
    assert.equal(x.types.get('fullnat_tun_kernel_tx_dropped_total'), 'counter');
    assert.equal(value(x, 'fullnat_tun_kernel_tx_dropped_total', dev), 5);
    assert.equal(value(x, 'fullnat_tun_kernel_tx_packets_total', dev), 6000);
    assert.equal(value(x, 'fullnat_tun_kernel_rx_packets_total', dev), 5000);
    assert.equal(value(x, 'fullnat_tun_kernel_rx_bytes_total', dev), 700000);
    assert.equal(value(x, 'fullnat_tun_kernel_rx_dropped_total', dev), 1);
    assert.equal(value(x, 'fullnat_tun_kernel_rx_frame_errors_total', dev), 0);
    assert.equal(x.types.get('fullnat_tun_kernel_tx_bytes_total'), 'counter');
    assert.ok(
      !x.samples.some((s) => s.name === 'fullnat_tun_kernel_tx_bytes_total'),
      'a counter the snapshot lacks has no sample',
    );
    assert.match(
      r.body,
      /# HELP fullnat_tun_kernel_tx_dropped_total .*queue \(txqueuelen.*\) was full before fullnat read them/,
    );
    assert.match(r.body, /# HELP fullnat_tun_kernel_rx_packets_total .*written by fullnat/);
  });

  it('no TUN kernel samples while the snapshot has none (device not open)', async () => {
    const saved = snap;
    snap = { ...fixture(), tunKernel: undefined };
    try {
      const x = parseExposition((await get(server.port, '/metrics')).body);
      assert.ok(!x.samples.some((s) => s.name.startsWith('fullnat_tun_kernel_')));
    } finally {
      snap = saved;
    }
  });

  it('every engine counter: unlabelled total plus one series per service', async () => {
    const x = parseExposition((await get(server.port, '/metrics')).body);
    for (const c of COUNTER_NAMES) {
      const name = `fullnat_${c}_total`;
      assert.equal(x.types.get(name), 'counter', name);
      const series = x.samples.filter((s) => s.name === name);
      assert.equal(series.length, 3, `${name}: total + 2 services`);
    }
    assert.equal(value(x, 'fullnat_rx_packets_total'), 123456789012);
    assert.equal(value(x, 'fullnat_toa_inserted_total'), 75);
    assert.equal(
      value(x, 'fullnat_toa_inserted_total', { service: '10.10.1.100:80', protocol: 'TCP' }),
      70,
    );
    assert.equal(
      value(x, 'fullnat_toa_inserted_total', { service: '10.10.1.101:443', protocol: 'TCP' }),
      5,
    );
    assert.equal(
      value(x, 'fullnat_toa_split_total', { service: '10.10.1.101:443', protocol: 'TCP' }),
      0,
    );
    assert.equal(value(x, 'fullnat_malformed_dropped_total'), 4);
    assert.equal(value(x, 'fullnat_table_full_total'), 0, 'absent counters read 0');
  });

  it('per service: connections, traffic, local addresses', async () => {
    const x = parseExposition((await get(server.port, '/metrics')).body);
    const web = { service: '10.10.1.100:80', protocol: 'TCP' };
    assert.equal(x.types.get('fullnat_service_active_connections'), 'gauge');
    assert.equal(value(x, 'fullnat_service_active_connections', web), 13);
    assert.equal(value(x, 'fullnat_service_inactive_connections', web), 5);
    assert.equal(value(x, 'fullnat_service_local_addresses', web), 2);
    assert.equal(x.types.get('fullnat_service_connections_total'), 'counter');
    assert.equal(value(x, 'fullnat_service_connections_total', web), 100);
    assert.equal(value(x, 'fullnat_service_in_packets_total', web), 1000);
    assert.equal(value(x, 'fullnat_service_out_packets_total', web), 900);
    assert.equal(value(x, 'fullnat_service_in_bytes_total', web), 64000);
    assert.equal(value(x, 'fullnat_service_out_bytes_total', web), 512000);
    assert.equal(
      value(x, 'fullnat_service_connections_total', {
        service: '10.10.1.101:443',
        protocol: 'TCP',
      }),
      0,
    );
  });

  it('per real server: connections, weights, health, traffic', async () => {
    const x = parseExposition((await get(server.port, '/metrics')).body);
    const rs2 = { service: '10.10.1.100:80', protocol: 'TCP', real_server: '10.10.2.2:80' };
    const rs3 = { service: '10.10.1.100:80', protocol: 'TCP', real_server: '10.10.2.3:8080' };
    assert.equal(value(x, 'fullnat_real_server_active_connections', rs2), 12);
    assert.equal(value(x, 'fullnat_real_server_inactive_connections', rs2), 3);
    assert.equal(value(x, 'fullnat_real_server_weight', rs3), 5);
    assert.equal(value(x, 'fullnat_real_server_effective_weight', rs3), 0);
    assert.equal(value(x, 'fullnat_real_server_up', rs3), 0);
    assert.equal(value(x, 'fullnat_real_server_up', rs2), 1);
    assert.equal(x.types.get('fullnat_real_server_out_bytes_total'), 'counter');
    assert.equal(value(x, 'fullnat_real_server_connections_total', rs3), 30);
    assert.equal(value(x, 'fullnat_real_server_in_packets_total', rs3), 300);
    assert.equal(value(x, 'fullnat_real_server_out_packets_total', rs3), 300);
    assert.equal(value(x, 'fullnat_real_server_in_bytes_total', rs3), 20000);
    assert.equal(value(x, 'fullnat_real_server_out_bytes_total', rs2), 300000);
  });

  it('process metrics on the same registry, under fullnat_', async () => {
    const x = parseExposition((await get(server.port, '/metrics')).body);
    assert.equal(x.types.get('fullnat_process_cpu_user_seconds_total'), 'counter');
    assert.ok(x.types.has('fullnat_process_resident_memory_bytes'));
    assert.ok(x.types.has('fullnat_nodejs_heap_size_used_bytes'));
  });

  it('follows the snapshot: removed services and real servers disappear', async () => {
    snap = fixture();
    snap.services.splice(1, 1);
    snap.services[0]!.realServers.splice(1, 1);
    const x = parseExposition((await get(server.port, '/metrics')).body);
    snap = fixture();
    assert.equal(
      value(x, 'fullnat_toa_inserted_total', { service: '10.10.1.101:443', protocol: 'TCP' }),
      undefined,
    );
    assert.equal(
      value(x, 'fullnat_real_server_weight', {
        service: '10.10.1.100:80',
        protocol: 'TCP',
        real_server: '10.10.2.3:8080',
      }),
      undefined,
    );
    assert.equal(x.samples.filter((s) => s.name === 'fullnat_real_server_weight').length, 1);
  });

  it('404 elsewhere, 405 for other methods, HEAD allowed', async () => {
    assert.equal((await get(server.port, '/')).status, 404);
    assert.equal((await get(server.port, '/metricsx')).status, 404);
    assert.equal((await get(server.port, '/metrics?name[]=x')).status, 200);
    assert.equal((await get(server.port, '/metrics', 'POST')).status, 405);
    const head = await get(server.port, '/metrics', 'HEAD');
    assert.deepEqual([head.status, head.body], [200, '']);
  });

  it('a failing snapshot provider gives 500, not a crash', async () => {
    const broken = createMetricsRegistry(
      () => {
        throw new Error('engine gone');
      },
      { defaultMetrics: false },
    );
    const s = await startMetricsServer({ host: '127.0.0.1', port: 0 }, broken);
    try {
      const r = await get(s.port, '/metrics');
      assert.equal(r.status, 500);
      assert.match(r.body, /engine gone/);
    } finally {
      await s.close();
    }
  });

  it('a port already in use is a clear error', async () => {
    await assert.rejects(
      startMetricsServer(
        { host: '127.0.0.1', port: server.port },
        createMetricsRegistry(fixture, { defaultMetrics: false }),
      ),
      /^Error: metrics listener 127\.0\.0\.1:\d+: address already in use$/,
    );
  });
});
