/**
 * `napi_thread auto` in the LoadBalancer: the controller sees the run loop's
 * traffic and asks the host to move the TUN's NAPI work into its kernel
 * thread under a stream of small packets, and back when it stops; a host
 * that cannot switch is asked once, not every window. A fake host with an
 * in-memory device stands in for the TUN.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { HostNetwork } from '../../src/io/host.js';
import { MemoryDevice } from '../../src/io/memory-device.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { TCP_SYN } from '../../src/wire/tcp.js';
import { buildSegment } from '../support/packets.js';
import { sleep } from '../support/time.js';
import { tempConfig, testLb } from '../support/lb-harness.js';

const CONFIG = `fullnat_defs {
    offload off
    napi_thread auto
}
local_address_group g1 {
    10.10.3.1
}
virtual_server 10.10.1.100 80 {
    laddr_group_name g1
    real_server 10.10.2.2 80 {
        weight 1
    }
}
`;

/** A SYN to a port with no service: the cheapest packet for the engine (dropped, counted). */
const probe = buildSegment({
  src: parseIpv4('203.0.113.9'),
  dst: parseIpv4('10.10.1.100'),
  sport: 40000,
  dport: 81,
  seq: 1,
  flags: TCP_SYN,
});

function fakeHost(onSwitch: (on: boolean) => string | undefined): {
  host: HostNetwork;
  dev: MemoryDevice;
} {
  const dev = new MemoryDevice();
  const host: HostNetwork = {
    openDevice: (_name, _mtu, _offload, napi) => {
      assert.equal(napi, true, 'auto opens the device with IFF_NAPI');
      return dev;
    },
    setNapiThreaded: (_name, on) => onSwitch(on),
    addRoute: () => {},
    delRoute: () => {},
    sysctl: () => {},
  };
  return { host, dev };
}

/**
 * Feeds `pps` packets a second for `ms` milliseconds, or until `until()`: every
 * ~50 ms as many as the time since the last feed asks for, so a timer that
 * fires late (a slow or busy machine) does not lower the rate the LB sees.
 */
async function stream(
  dev: MemoryDevice,
  pps: number,
  ms: number,
  until: () => boolean = () => false,
): Promise<void> {
  const start = performance.now();
  let fed = 0;
  while (performance.now() - start < ms && !until()) {
    const due = Math.floor(((performance.now() - start) * pps) / 1000) - fed;
    for (let i = 0; i < due; i++) dev.inbox.push(probe);
    fed += due;
    dev.inject();
    await sleep(50);
  }
}

/** Resolves when `cond()` holds; fails after `ms`. */
async function waitFor(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

describe('LoadBalancer: napi_thread auto', () => {
  const file = tempConfig('fullnat-napi-', CONFIG);

  it('switches the thread on under many small packets and off when they stop', async () => {
    const calls: boolean[] = [];
    const { host, dev } = fakeHost((on) => {
      calls.push(on);
      return undefined;
    });
    const lb = testLb(file, host);
    lb.start();
    try {
      // 100 kpps of 40-byte packets: on after three 200 ms windows; then 0.6 s more of it.
      await stream(dev, 100_000, 5000, () => calls.length > 0);
      assert.deepEqual(calls, [true], 'switched on');
      await stream(dev, 100_000, 600);
      assert.deepEqual(calls, [true], 'switched on once');
      await waitFor('the switch back', () => calls.length > 1, 5000);
      assert.deepEqual(calls, [true, false], 'and off once the stream stopped');
    } finally {
      lb.stop();
    }
  });

  it('a host that cannot switch is asked once, then left alone', async () => {
    let asked = 0;
    const { host, dev } = fakeHost(() => {
      asked++;
      throw new Error('no threaded NAPI here');
    });
    const lb = testLb(file, host);
    lb.start();
    try {
      await stream(dev, 100_000, 5000, () => asked > 0);
      assert.equal(asked, 1);
      await stream(dev, 0, 800);
      await stream(dev, 100_000, 1200);
      assert.equal(asked, 1);
    } finally {
      lb.stop();
    }
  });
});
