/** Metrics with IPv6: the service and real_server labels name IPv6 endpoints as ctl prints them. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { createMetricsRegistry } from '../../src/control/metrics.js';
import type { Snapshot } from '../../src/control/model.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { rsStatus } from '../support/control-status.js';
import { ipv6 as v6 } from '../support/addresses.js';

const traffic = (conns: number) => ({
  conns,
  inPackets: 0,
  outPackets: 0,
  inBytes: 0,
  outBytes: 0,
});

const SNAP: Snapshot = {
  services: [
    {
      vip: v6('2001:db8:1::100'),
      vport: 80,
      protocol: 'TCP',
      scheduler: 'rr',
      laddrs: [v6('2001:db8:3::1'), parseIpv4('10.10.3.5')],
      realServers: [
        rsStatus(v6('2001:db8:2::10'), 8080, 2, { activeConns: 4, stats: traffic(40) }),
        rsStatus(parseIpv4('10.10.2.5'), 8080, 1, {
          effectiveWeight: 0,
          healthy: false,
          stats: traffic(20),
        }),
      ],
      stats: traffic(60),
      counters: {},
    },
  ],
  counters: {},
  connections: 4,
  uptime: 1,
};

describe('metrics: IPv6 labels', () => {
  it('service="[v6]:port", real_server="[v6]:port" beside IPv4 real servers (FNAT64)', async () => {
    const text = await createMetricsRegistry(() => SNAP, { defaultMetrics: false }).metrics();
    const svc = 'service="[2001:db8:1::100]:80",protocol="TCP"';
    assert.ok(text.includes(`fullnat_service_connections_total{${svc}} 60`), text);
    assert.ok(text.includes(`fullnat_service_local_addresses{${svc}} 2`), text);
    assert.ok(
      text.includes(
        `fullnat_real_server_connections_total{${svc},real_server="[2001:db8:2::10]:8080"} 40`,
      ),
      text,
    );
    assert.ok(text.includes(`fullnat_real_server_up{${svc},real_server="10.10.2.5:8080"} 0`), text);
  });
});
