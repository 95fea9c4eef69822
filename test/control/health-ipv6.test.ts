/**
 * Health checks to IPv6 real servers: TCP_CHECK and HTTP_GET connect over
 * IPv6 (the loopback ::1 stands in for a real server here: the checker
 * takes specs the config has already judged), log `[addr]:port`, send an
 * HTTP Host header with the address in brackets, and find a real server by
 * its address whichever Ipv6Address object names it.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer, type Server } from 'node:net';
import { describe, it } from 'node:test';

import type { HealthCheckSpec, RealServerSpec, ServiceSpec } from '../../src/control/model.js';
import {
  checkerFor,
  listenOn,
  realSpec,
  serviceSpec,
  waitFor,
  type Running,
} from '../support/health-bench.js';
import { ipv6 as v6 } from '../support/addresses.js';

const T = { timeout: 5000 };

/** Whether this host has IPv6 loopback; the tests skip with that reason when not. */
async function ipv6Loopback(): Promise<string | false> {
  const s = createServer();
  return new Promise((resolve) => {
    s.once('error', (e: NodeJS.ErrnoException) => resolve(`no IPv6 loopback here (${e.code})`));
    s.listen({ host: '::1', port: 0 }, () => s.close(() => resolve(false)));
  });
}
const skip = await ipv6Loopback();

const listen = (server: Server): Promise<Running> => listenOn(server, '::1');

const real = (port: number, check: HealthCheckSpec, retry = 2): RealServerSpec =>
  realSpec(v6('::1'), port, check, retry);

const service = (reals: RealServerSpec[]): ServiceSpec =>
  serviceSpec(v6('2001:db8:1::100'), v6('2001:db8:3::1'), reals);

const harness = checkerFor;

describe('health checks to IPv6 real servers', { skip }, () => {
  it('TCP_CHECK over IPv6: UP while the port answers, DOWN when it closes', T, async () => {
    const srv = await listen(createServer());
    const rs = real(srv.port, { kind: 'TCP_CHECK', connectTimeout: 0.5 });
    const { checker, changes, logs } = harness([service([rs])]);
    // Other objects for the same addresses: the checker keys by address, not by object.
    const key = { vip: v6('2001:db8:1:0::100'), vport: 80, addr: v6('0::1'), port: srv.port };
    checker.start();
    try {
      await waitFor('3 probes', () => srv.accepted() >= 3);
      assert.equal(changes.length, 0);
      assert.equal(checker.isHealthy(key), true);
      await srv.close();
      await waitFor('DOWN', () => changes.length === 1);
      assert.equal(checker.isHealthy(key), false);
      const down = logs.find((l) => l.msg === 'real server DOWN')!;
      assert.deepEqual(
        { service: down.obj.service, real: down.obj.real, reason: down.obj.reason },
        { service: '[2001:db8:1::100]:80', real: `[::1]:${srv.port}`, reason: 'ECONNREFUSED' },
      );
    } finally {
      checker.stop();
      await srv.close();
    }
  });

  it('HTTP_GET over IPv6 sends Host: [addr]:port and reads the status', T, async () => {
    const seen: IncomingMessage[] = [];
    const srv = await listen(
      createHttpServer((req, res) => {
        seen.push(req);
        res.writeHead(500);
        res.end();
      }),
    );
    const check: HealthCheckSpec = {
      kind: 'HTTP_GET',
      urls: [{ path: '/health', statusCodes: [[200, 200]] }],
      connectTimeout: 0.5,
    };
    const { checker, changes } = harness([service([real(srv.port, check, 1)])]);
    checker.start();
    try {
      await waitFor('DOWN on status 500', () => changes.length === 1);
      assert.equal(changes[0]!.healthy, false);
      assert.equal(seen[0]!.headers.host, `[::1]:${srv.port}`);
      assert.equal(seen[0]!.url, '/health');
    } finally {
      checker.stop();
      await srv.close();
    }
  });
});
