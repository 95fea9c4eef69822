/**
 * What the LoadBalancer asks of the host about its TUN device beyond
 * packets: the queue length from `tun_txqueuelen` at start, and the
 * device's kernel counters in every snapshot (for metrics and `ctl`), read
 * on demand, left out — and said once — when they cannot be read. A fake
 * host with an in-memory device stands in for the TUN.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import type { DeviceStatistics } from '../../src/io/device-stats.js';
import type { HostNetwork } from '../../src/io/host.js';
import { MemoryDevice } from '../../src/io/memory-device.js';
import { ONE_SERVICE, recordingLogger, tempConfig, testLb } from '../support/lb-harness.js';

interface FakeHost extends HostNetwork {
  queueLens: [string, number][];
  statReads: number;
}

function fakeHost(stats: () => DeviceStatistics): FakeHost {
  const host: FakeHost = {
    queueLens: [],
    statReads: 0,
    openDevice: () => new MemoryDevice(),
    setTxQueueLen: (name, len) => void host.queueLens.push([name, len]),
    deviceStatistics: (name) => {
      assert.equal(name, 'fnat5');
      host.statReads++;
      return stats();
    },
    addRoute: () => {},
    delRoute: () => {},
    sysctl: () => {},
  };
  return host;
}

describe('LoadBalancer: the TUN device beyond packets', () => {
  const file = tempConfig('fullnat-lbdev-');

  it('sets the queue length at start: the default 1000, or tun_txqueuelen', () => {
    for (const [defs, want] of [
      ['', 1000],
      ['    tun_txqueuelen 4096\n', 4096],
    ] as const) {
      writeFileSync(file, `fullnat_defs {\n    interface fnat5\n${defs}}\n${ONE_SERVICE}`);
      const host = fakeHost(() => ({}));
      const lb = testLb(file, host);
      lb.start();
      lb.stop();
      assert.deepEqual(host.queueLens, [['fnat5', want]]);
    }
  });

  it('each snapshot reads the counters afresh; none before start', () => {
    writeFileSync(file, `fullnat_defs {\n    interface fnat5\n}\n${ONE_SERVICE}`);
    let dropped = 3;
    const host = fakeHost(() => ({ tx_dropped: dropped, tx_packets: 100 }));
    const lb = testLb(file, host);
    assert.equal(lb.snapshot().tunKernel, undefined, 'no device yet');
    assert.equal(host.statReads, 0);
    lb.start();
    try {
      assert.deepEqual(lb.snapshot().tunKernel, {
        device: 'fnat5',
        stats: { tx_dropped: 3, tx_packets: 100 },
      });
      dropped = 9;
      assert.equal(lb.snapshot().tunKernel?.stats.tx_dropped, 9);
      assert.equal(host.statReads, 2);
    } finally {
      lb.stop();
    }
    assert.equal(lb.snapshot().tunKernel, undefined, 'device closed');
  });

  it('unreadable counters: left out of the snapshot, one warning', () => {
    writeFileSync(file, `fullnat_defs {\n    interface fnat5\n}\n${ONE_SERVICE}`);
    const host = fakeHost(() => {
      throw new Error('/sys/class/net/fnat5/statistics: no counters readable');
    });
    const { log, records: lines } = recordingLogger();
    const lb = testLb(file, host, log);
    lb.start();
    try {
      for (let i = 0; i < 3; i++) {
        const snap = lb.snapshot();
        assert.equal(snap.tunKernel, undefined);
        assert.ok(snap.services.length === 1, 'the rest of the snapshot is whole');
      }
    } finally {
      lb.stop();
    }
    assert.equal(host.statReads, 3);
    const warnings = lines.filter((l) => l.msg.startsWith('TUN kernel counters unreadable'));
    assert.equal(warnings.length, 1);
  });

  it('an IPv4-only configuration: /32 routes, IPv4 sysctls only, a TUN MTU with room for the 8-byte TOA', () => {
    writeFileSync(file, `fullnat_defs {\n    interface fnat5\n}\n${ONE_SERVICE}`);
    const routes: string[] = [];
    const sysctls: string[] = [];
    const mtus: number[] = [];
    const host: HostNetwork = {
      openDevice: (_name, mtu) => {
        mtus.push(mtu);
        return new MemoryDevice();
      },
      addRoute: (r) => void routes.push(r),
      delRoute: () => {},
      sysctl: (k) => void sysctls.push(k),
    };
    const lb = testLb(file, host);
    lb.start();
    lb.stop();
    assert.deepEqual(routes.sort(), ['10.10.1.100/32', '10.10.3.1/32']);
    assert.deepEqual(mtus, [1508]);
    // IPv6 forwarding would make the host ignore router advertisements: only once an IPv6 address is routed.
    assert.deepEqual(
      sysctls.filter((k) => k.startsWith('net.ipv6.')),
      [],
    );
  });
});
