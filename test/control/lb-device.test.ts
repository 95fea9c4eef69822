/**
 * What the LoadBalancer asks of the host about its TUN device beyond
 * packets: the queue length from `tun_txqueuelen` at start, and the
 * device's kernel counters in every snapshot (for metrics and `ctl`), read
 * on demand, left out — and said once — when they cannot be read. A fake
 * host with an in-memory device stands in for the TUN.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';

import { LoadBalancer } from '../../src/control/lb.js';
import { createLogger } from '../../src/control/log.js';
import type { DeviceStatistics } from '../../src/io/device-stats.js';
import type { HostNetwork } from '../../src/io/host.js';
import { MemoryDevice } from '../../src/io/memory-device.js';

const SERVICE = `local_address_group g1 {
    10.10.3.1
}
virtual_server 10.10.1.100 80 {
    laddr_group_name g1
    real_server 10.10.2.2 80 {
        weight 1
    }
}
`;

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

/** A logger whose JSON lines land in `lines`. */
function capturingLogger(lines: { level: number; msg: string }[]) {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return createLogger({ level: 'info', destination: sink });
}

describe('LoadBalancer: the TUN device beyond packets', () => {
  let dir: string;
  let file: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'fullnat-lbdev-'));
    file = join(dir, 'lb.conf');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('sets the queue length at start: the default 1000, or tun_txqueuelen', () => {
    for (const [defs, want] of [
      ['', 1000],
      ['    tun_txqueuelen 4096\n', 4096],
    ] as const) {
      writeFileSync(file, `fullnat_defs {\n    interface fnat5\n${defs}}\n${SERVICE}`);
      const host = fakeHost(() => ({}));
      const lb = new LoadBalancer(file, {
        host,
        log: createLogger({ level: 'silent' }),
        healthChecks: false,
      });
      lb.start();
      lb.stop();
      assert.deepEqual(host.queueLens, [['fnat5', want]]);
    }
  });

  it('each snapshot reads the counters afresh; none before start', () => {
    writeFileSync(file, `fullnat_defs {\n    interface fnat5\n}\n${SERVICE}`);
    let dropped = 3;
    const host = fakeHost(() => ({ tx_dropped: dropped, tx_packets: 100 }));
    const lb = new LoadBalancer(file, {
      host,
      log: createLogger({ level: 'silent' }),
      healthChecks: false,
    });
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
    writeFileSync(file, `fullnat_defs {\n    interface fnat5\n}\n${SERVICE}`);
    const host = fakeHost(() => {
      throw new Error('/sys/class/net/fnat5/statistics: no counters readable');
    });
    const lines: { level: number; msg: string }[] = [];
    const lb = new LoadBalancer(file, { host, log: capturingLogger(lines), healthChecks: false });
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
    writeFileSync(file, `fullnat_defs {\n    interface fnat5\n}\n${SERVICE}`);
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
    const lb = new LoadBalancer(file, {
      host,
      log: createLogger({ level: 'silent' }),
      healthChecks: false,
    });
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
