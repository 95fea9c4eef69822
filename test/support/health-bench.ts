/**
 * The health checker as the health tests drive it: servers on loopback that
 * count the probes reaching them, real server and service specs around a
 * check, and a checker whose changes and log lines a test reads back.
 */
import assert from 'node:assert/strict';
import type { Server, Socket } from 'node:net';
import { HealthChecker, type HealthChange, type HealthLogger } from '../../src/control/health.js';
import type { HealthCheckSpec, RealServerSpec, ServiceSpec } from '../../src/control/model.js';
import type { IpAddress } from '../../src/wire/address.js';
import { sleep } from './time.js';

/** A server plus every socket it accepted, so close() never waits on a client. */
export interface Running {
  server: Server;
  port: number;
  /** Connections accepted so far: the probes that reached it. */
  accepted(): number;
  close(): Promise<void>;
}

/** `server` listening on `host` (IPv6-only when `host` is an IPv6 address), any free port unless `port`. */
export async function listenOn(server: Server, host: string, port = 0): Promise<Running> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  server.on('connection', (s: Socket) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ...(host.includes(':') ? { ipv6Only: true } : {}) }, () =>
      resolve(),
    );
  });
  const addr = server.address();
  assert.ok(addr && typeof addr === 'object');
  return {
    server,
    port: addr.port,
    accepted: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A real server at addr:port under `check` (none when undefined), probed every 0.1 s. */
export function realSpec(
  addr: IpAddress,
  port: number,
  check: HealthCheckSpec | undefined,
  retry = 2,
): RealServerSpec {
  const r: RealServerSpec = {
    addr,
    port,
    weight: 1,
    delayLoop: 0.1,
    retry,
    delayBeforeRetry: 0.05,
    pos: { file: 't.conf', line: 1 },
  };
  if (check) r.check = check;
  return r;
}

/** A service vip:vport over one LIP, round robin, with `reals`. */
export function serviceSpec(
  vip: IpAddress,
  laddr: IpAddress,
  reals: RealServerSpec[],
  vport = 80,
): ServiceSpec {
  return {
    vip,
    vport,
    protocol: 'TCP',
    scheduler: 'rr',
    laddrGroup: 'g',
    laddrs: [laddr],
    forwarding: 'fnat',
    realServers: reals,
    synProxy: false,
    proxyProtocol: 0,
    quorum: 1,
    pos: { file: 't.conf', line: 1 },
  };
}

export interface LogLine {
  level: 'info' | 'warn';
  obj: Record<string, unknown>;
  msg: string;
}

/** A checker over `services` whose changes and log lines land in the arrays returned with it. */
export function checkerFor(services: ServiceSpec[]): {
  checker: HealthChecker;
  changes: HealthChange[];
  logs: LogLine[];
} {
  const changes: HealthChange[] = [];
  const logs: LogLine[] = [];
  const logger: HealthLogger = {
    info: (obj, msg) => logs.push({ level: 'info', obj: obj as Record<string, unknown>, msg }),
    warn: (obj, msg) => logs.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
  };
  const checker = new HealthChecker({ services }, { logger, onChange: (c) => changes.push(c) });
  return { checker, changes, logs };
}

/** Polls `pred` every 10 ms; fails naming `what` after `ms`. */
export async function waitFor(what: string, pred: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
