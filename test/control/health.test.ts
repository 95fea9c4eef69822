import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer, type Server } from 'node:net';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import type { HealthChange } from '../../src/control/health.js';
import type { HealthCheckSpec, RealServerSpec, ServiceSpec } from '../../src/control/model.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { sleep } from '../support/time.js';
import {
  checkerFor,
  listenOn,
  realSpec,
  serviceSpec,
  waitFor,
  type Running,
} from '../support/health-bench.js';

const LOCAL = parseIpv4('127.0.0.1');
const T = { timeout: 5000 };

const listen = (server: Server, port = 0): Promise<Running> => listenOn(server, '127.0.0.1', port);

const tcpServer = (port = 0): Promise<Running> => listen(createServer(), port);

/** An HTTP server answering with whatever `status()` says now; records the requests. */
function httpServer(status: () => number, seen: IncomingMessage[] = []): Promise<Running> {
  const server = createHttpServer((req, res) => {
    seen.push(req);
    res.writeHead(status(), { 'content-type': 'text/plain' });
    res.end('ok\n');
  });
  return listen(server);
}

/** Accepts connections and never says a word; reads so that it notices a hang-up. */
const silentServer = (): Promise<Running> => listen(createServer((s) => s.resume()));

const real = (port: number, check: HealthCheckSpec | undefined, retry = 2): RealServerSpec =>
  realSpec(LOCAL, port, check, retry);

const service = (reals: RealServerSpec[], vport = 80): ServiceSpec =>
  serviceSpec(parseIpv4('10.10.1.100'), parseIpv4('10.10.3.1'), reals, vport);

const tcpCheck = (timeout = 0.5): HealthCheckSpec => ({
  kind: 'TCP_CHECK',
  connectTimeout: timeout,
});

const harness = checkerFor;

const states = (changes: HealthChange[]): boolean[] => changes.map((c) => c.healthy);

describe('HealthChecker', () => {
  it(
    'TCP_CHECK: DOWN after `retry` consecutive failures, UP again when the port reopens',
    T,
    async () => {
      let srv = await tcpServer();
      const port = srv.port;
      const rs = real(port, tcpCheck(), 3);
      const { checker, changes, logs } = harness([service([rs])]);
      const key = { vip: parseIpv4('10.10.1.100'), vport: 80, addr: LOCAL, port };
      checker.start();
      try {
        // More passing probes than `retry`: a DOWN would have been called by now.
        await waitFor('4 probes', () => srv.accepted() >= 4);
        assert.equal(changes.length, 0, 'a passing RS stays UP without callbacks');
        assert.equal(checker.isHealthy(key), true);

        await srv.close();
        await waitFor('DOWN', () => changes.length === 1);
        assert.equal(changes[0]!.healthy, false);
        assert.equal(changes[0]!.real, rs);
        assert.equal(checker.isHealthy(key), false);
        const retries = logs.filter((l) => l.msg === 'health check failed, retrying');
        assert.equal(retries.length, 2, 'retry 3 = two retried failures, the third takes it DOWN');
        const down = logs.find((l) => l.msg === 'real server DOWN')!;
        assert.equal(down.level, 'warn');
        assert.deepEqual(
          { service: down.obj.service, real: down.obj.real, reason: down.obj.reason },
          { service: '10.10.1.100:80', real: `127.0.0.1:${port}`, reason: 'ECONNREFUSED' },
        );

        srv = await tcpServer(port);
        await waitFor('UP', () => changes.length === 2);
        assert.deepEqual(states(changes), [false, true]);
        assert.equal(logs.find((l) => l.msg === 'real server UP')!.level, 'info');
        assert.equal(checker.isHealthy(key), true);
      } finally {
        checker.stop();
        await srv.close();
      }
    },
  );

  it('TCP_CHECK uses connect_port instead of the RS port', T, async () => {
    const srv = await tcpServer();
    const closed = await tcpServer();
    await closed.close();
    const check: HealthCheckSpec = {
      kind: 'TCP_CHECK',
      connectTimeout: 0.5,
      connectPort: srv.port,
    };
    const { checker, changes, logs } = harness([service([real(closed.port, check, 1)])]);
    checker.start();
    try {
      // retry 1: one probe at the closed RS port would already be DOWN.
      await waitFor('2 probes at connect_port', () => srv.accepted() >= 2);
      assert.equal(changes.length, 0);
      assert.equal(logs.length, 0);
    } finally {
      checker.stop();
      await srv.close();
    }
  });

  it(
    'HTTP_GET: status mismatch takes the RS DOWN; the expected status brings it back',
    T,
    async () => {
      let status = 200;
      const seen: IncomingMessage[] = [];
      const srv = await httpServer(() => status, seen);
      const check: HealthCheckSpec = {
        kind: 'HTTP_GET',
        urls: [{ path: '/health?x=1', statusCodes: [[200, 200]] }],
        connectTimeout: 0.5,
      };
      const { checker, changes, logs } = harness([service([real(srv.port, check, 2)])]);
      checker.start();
      try {
        await waitFor('a first request', () => seen.length > 0);
        const req = seen[0]!;
        assert.equal(req.method, 'GET');
        assert.equal(req.url, '/health?x=1');
        assert.equal(req.httpVersion, '1.0');
        assert.equal(req.headers.host, `127.0.0.1:${srv.port}`);
        await waitFor('3 passing requests', () => seen.length >= 3);
        assert.equal(changes.length, 0);

        status = 503;
        await waitFor('DOWN', () => changes.length === 1);
        assert.equal(changes[0]!.healthy, false);
        assert.equal(logs.find((l) => l.msg === 'real server DOWN')!.obj.reason, 'status 503');

        status = 200;
        await waitFor('UP', () => changes.length === 2);
        assert.deepEqual(states(changes), [false, true]);
      } finally {
        checker.stop();
        await srv.close();
      }
    },
  );

  it('HTTP_GET honours a non-200 status_code', T, async () => {
    const srv = await httpServer(() => 204);
    const check: HealthCheckSpec = {
      kind: 'HTTP_GET',
      urls: [{ path: '/', statusCodes: [[200, 200]] }],
      connectTimeout: 0.5,
    };
    const ok: HealthCheckSpec = { ...check, urls: [{ path: '/', statusCodes: [[204, 204]] }] };
    const { checker, changes } = harness([
      service([real(srv.port, check, 1)], 80),
      service([real(srv.port, ok, 1)], 81),
    ]);
    checker.start();
    try {
      await waitFor('DOWN', () => changes.length === 1);
      // Both services probe the same server: more requests again than both need to decide.
      const atDown = srv.accepted();
      await waitFor('4 more probes', () => srv.accepted() >= atDown + 4);
      assert.equal(changes.length, 1);
      assert.equal(changes[0]!.service.vport, 80, 'only the service expecting 200 goes DOWN');
    } finally {
      checker.stop();
      await srv.close();
    }
  });

  it('HTTP_GET: a server that accepts but never answers times out', T, async () => {
    const srv = await silentServer();
    const check: HealthCheckSpec = {
      kind: 'HTTP_GET',
      urls: [{ path: '/', statusCodes: [[200, 200]] }],
      connectTimeout: 0.15,
    };
    const { checker, changes, logs } = harness([service([real(srv.port, check, 2)])]);
    const t0 = Date.now();
    checker.start();
    try {
      await waitFor('DOWN', () => changes.length === 1);
      // Two timed-out attempts of 0.15 s with a 0.05 s pause between them.
      assert.ok(Date.now() - t0 >= 300, `DOWN after ${Date.now() - t0} ms`);
      assert.equal(
        logs.find((l) => l.msg === 'real server DOWN')!.obj.reason,
        'timeout after 0.15s',
      );
    } finally {
      checker.stop();
      await srv.close();
    }
  });

  it('an RS without a check is always UP', T, async () => {
    const { checker, changes } = harness([service([real(1, undefined)])]);
    checker.start();
    await sleep(200);
    checker.stop();
    assert.equal(changes.length, 0);
    assert.equal(
      checker.isHealthy({ vip: parseIpv4('10.10.1.100'), vport: 80, addr: LOCAL, port: 1 }),
      true,
    );
  });

  it(
    'update() keeps the state of unchanged RS, checks new ones, forgets removed ones',
    T,
    async () => {
      const dead = await tcpServer();
      await dead.close();
      const alive = await tcpServer();
      const deadRs = real(dead.port, tcpCheck(), 1);
      const { checker, changes } = harness([service([deadRs])]);
      checker.start();
      try {
        await waitFor('DOWN', () => changes.length === 1);

        // Reload with fresh objects for the same RS plus a new one that passes.
        const again = { ...deadRs, weight: 5 };
        const fresh = real(alive.port, tcpCheck(), 1);
        checker.update({ services: [service([again, fresh])] });
        await sleep(300);
        assert.deepEqual(
          states(changes),
          [false],
          'no UP for the still-failing RS, no event for the new one',
        );
        const key = (p: number) => ({
          vip: parseIpv4('10.10.1.100'),
          vport: 80,
          addr: LOCAL,
          port: p,
        });
        assert.equal(checker.isHealthy(key(dead.port)), false);
        assert.equal(checker.isHealthy(key(alive.port)), true);

        // Dropping the check of a DOWN RS makes it UP (no check = UP).
        checker.update({ services: [service([{ ...again, check: undefined }, fresh])] });
        assert.deepEqual(states(changes), [false, true]);
        assert.equal(changes[1]!.real.weight, 5);

        // A removed RS produces no further events even when its server dies.
        checker.update({ services: [service([])] });
        await alive.close();
        await sleep(300);
        assert.equal(changes.length, 2);
      } finally {
        checker.stop();
        await alive.close();
      }
    },
  );

  it('stop() cancels probes in flight and fires no callback afterwards', T, async () => {
    const srv = await silentServer();
    // A probe that would hang for 3 s and a loop that would re-arm every 0.1 s.
    const check: HealthCheckSpec = {
      kind: 'HTTP_GET',
      urls: [{ path: '/', statusCodes: [[200, 200]] }],
      connectTimeout: 3,
    };
    const { checker, changes } = harness([
      service([real(srv.port, check, 1)], 80),
      service([real(srv.port, tcpCheck(), 1)], 81),
    ]);
    const before = countHandles();
    checker.start();
    try {
      // The HTTP probe is connected and waiting, and the TCP loop has probed and re-armed.
      await waitFor('both probes connected, one more after', () => srv.accepted() >= 3);
      checker.stop();
      // The server's ends of the probes close once it sees the hang-ups; a leaked probe or loop
      // would hold its handles far longer (3 s probe, 0.1 s re-arm).
      const same = (): boolean => JSON.stringify(countHandles()) === JSON.stringify(before);
      await waitFor('the hang-ups seen', same, 1000).catch(() => undefined);
      assert.deepEqual(countHandles(), before, 'no timer or socket left behind');
      assert.equal(changes.length, 0);
    } finally {
      checker.stop();
      await srv.close();
    }
  });

  it('after stop() the process exits promptly', { timeout: 25_000 }, async () => {
    const healthJs = fileURLToPath(new URL('../../src/control/health.js', import.meta.url));
    // Long intervals and timeouts: a leaked timer or socket would keep the child alive for 30 s.
    const script = `
      import { createServer } from 'node:net';
      import { HealthChecker } from ${JSON.stringify(healthJs)};
      const srv = createServer(() => {});
      srv.listen(0, '127.0.0.1', () => {
        const port = srv.address().port;
        const check = { kind: 'HTTP_GET', urls: [{ path: '/', statusCodes: [[200, 200]] }], connectTimeout: 30 };
        const real = { addr: 0x7f000001, port, weight: 1, delayLoop: 30, retry: 3, delayBeforeRetry: 30, check,
          pos: { file: 'x', line: 1 } };
        const tcp = { ...real, check: { kind: 'TCP_CHECK', connectTimeout: 30 } };
        const svc = { vip: 1, vport: 80, realServers: [real] };
        const svc2 = { vip: 1, vport: 81, realServers: [tcp] };
        const log = { info() {}, warn() {} };
        const hc = new HealthChecker({ services: [svc, svc2] }, { logger: log, onChange() {} });
        hc.start();
        setTimeout(() => {
          hc.stop();
          srv.close();
          process.stdout.write('stopped\\n');
        }, 200);
      });`;
    // Timed from stop(), not from spawn: how long Node takes to start is this machine's business.
    let stoppedAt = 0;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.stdout.on('data', (d: Buffer) => {
      if (stoppedAt === 0 && d.toString().includes('stopped')) stoppedAt = Date.now();
    });
    const code = await new Promise<number | null>((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
      // 'close': after its stdout, so "stopped" has been seen.
      child.on('close', (c) => {
        clearTimeout(kill);
        resolve(c);
      });
    });
    assert.equal(code, 0, 'the child exited by itself');
    assert.ok(stoppedAt > 0, 'the child reached stop()');
    assert.ok(Date.now() - stoppedAt < 3000, `exited ${Date.now() - stoppedAt} ms after stop()`);
  });
});

describe('HealthChecker with a TCP and a UDP service on one VIP:port', () => {
  it(
    'each service keeps its own check of the same RS: the UDP one DOWN, the TCP one UP',
    T,
    async () => {
      const srv = await tcpServer();
      const port = srv.port;
      const tcp = service([real(port, tcpCheck(), 1)]);
      const udpCheck: HealthCheckSpec = {
        kind: 'UDP_CHECK',
        connectTimeout: 0.5,
        payload: '',
        requireReply: false,
        minReplyLength: 0,
        maxReplyLength: 255,
      };
      // No UDP socket on that port: the probe meets an ICMP port unreachable.
      const udp: ServiceSpec = { ...service([real(port, udpCheck, 1)]), protocol: 'UDP' };
      const { checker, changes } = harness([tcp, udp]);
      const key = { vip: parseIpv4('10.10.1.100'), vport: 80, addr: LOCAL, port };
      checker.start();
      try {
        await waitFor('the UDP service DOWN', () => changes.length === 1);
        assert.equal(changes[0]!.service.protocol, 'UDP');
        assert.equal(changes[0]!.healthy, false);
        assert.equal(checker.isHealthy({ ...key, protocol: 'UDP' }), false);
        assert.equal(checker.isHealthy({ ...key, protocol: 'TCP' }), true);
        assert.equal(checker.isHealthy(key), true, 'no protocol: TCP');
        await waitFor('more TCP probes', () => srv.accepted() >= 3);
        assert.equal(changes.length, 1, 'the TCP check never went DOWN');
      } finally {
        checker.stop();
        await srv.close();
      }
    },
  );
});

/** Timers and TCP handles of this process, by kind. */
function countHandles(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) {
    if (r === 'Timeout' || r.startsWith('TCP')) out[r] = (out[r] ?? 0) + 1;
  }
  return out;
}
