/**
 * Health checks to IPv6 real servers: TCP_CHECK and HTTP_GET connect over
 * IPv6 (the loopback ::1 stands in for a real server here: the checker
 * takes specs the config has already judged), log `[addr]:port`, send an
 * HTTP Host header with the address in brackets, and find a real server by
 * its address whichever Ipv6Address object names it.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { describe, it } from 'node:test';

import { HealthChecker, type HealthChange, type HealthLogger } from '../../src/control/health.js';
import type { HealthCheckSpec, RealServerSpec, ServiceSpec } from '../../src/control/model.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { sleep } from '../support/time.js';

const T = { timeout: 5000 };
const v6 = (s: string): Ipv6Address => {
  const a = Ipv6Address.parse(s);
  assert.ok(a, s);
  return a;
};

/** Whether this host has IPv6 loopback; the tests skip with that reason when not. */
async function ipv6Loopback(): Promise<string | false> {
  const s = createServer();
  return new Promise((resolve) => {
    s.once('error', (e: NodeJS.ErrnoException) => resolve(`no IPv6 loopback here (${e.code})`));
    s.listen({ host: '::1', port: 0 }, () => s.close(() => resolve(false)));
  });
}
const skip = await ipv6Loopback();

interface Running {
  port: number;
  accepted(): number;
  close(): Promise<void>;
}

async function listen(server: Server, port = 0): Promise<Running> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  server.on('connection', (s: Socket) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '::1', port, ipv6Only: true }, () => resolve());
  });
  const addr = server.address();
  assert.ok(addr && typeof addr === 'object');
  return {
    port: addr.port,
    accepted: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function real(port: number, check: HealthCheckSpec, retry = 2): RealServerSpec {
  return {
    addr: v6('::1'),
    port,
    weight: 1,
    check,
    delayLoop: 0.1,
    retry,
    delayBeforeRetry: 0.05,
    pos: { file: 't.conf', line: 1 },
  };
}

function service(reals: RealServerSpec[]): ServiceSpec {
  return {
    vip: v6('2001:db8:1::100'),
    vport: 80,
    protocol: 'TCP',
    scheduler: 'rr',
    laddrGroup: 'g',
    laddrs: [v6('2001:db8:3::1')],
    realServers: reals,
    synProxy: false,
    proxyProtocol: 0,
    pos: { file: 't.conf', line: 1 },
  };
}

function harness(services: ServiceSpec[]) {
  const changes: HealthChange[] = [];
  const logs: { msg: string; obj: Record<string, unknown> }[] = [];
  const logger: HealthLogger = {
    info: (obj, msg) => logs.push({ obj: obj as Record<string, unknown>, msg }),
    warn: (obj, msg) => logs.push({ obj: obj as Record<string, unknown>, msg }),
  };
  const checker = new HealthChecker({ services }, { logger, onChange: (c) => changes.push(c) });
  return { checker, changes, logs };
}

async function waitFor(what: string, pred: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

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
      path: '/health',
      statusCode: 200,
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
