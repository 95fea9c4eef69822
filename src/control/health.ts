/**
 * Real-server health checks with keepalived's semantics: each checked RS has
 * its own loop; a failure is retried after `delayBeforeRetry` until `retry`
 * consecutive failures take the RS DOWN; the next success brings it UP. Once
 * DOWN, and while UP and passing, the check runs every `delayLoop`.
 *
 * An RS starts UP (as in keepalived) and one without a check is always UP.
 */
import { connect, isIPv6, type Socket } from 'node:net';

import { addressKey, addressToString, endpointToString, type IpAddress } from '../wire/address.js';
import type {
  FullnatConfig,
  HealthCheckSpec,
  RealServerKey,
  RealServerSpec,
  ServiceSpec,
} from './model.js';

/** pino-compatible subset. */
export interface HealthLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface HealthChange {
  service: ServiceSpec;
  real: RealServerSpec;
  healthy: boolean;
}

export interface HealthCheckerOptions {
  logger: HealthLogger;
  /** Called on every UP/DOWN transition, never after stop(). */
  onChange: (change: HealthChange) => void;
}

/** A FullnatConfig, or anything else that lists services. */
export type HealthTargets = Pick<FullnatConfig, 'services'>;

export interface ProbeResult {
  ok: boolean;
  /** Why, for the log: "connected", "status 503", "ECONNREFUSED", "timeout after 2s". */
  reason: string;
}

/** A probe in flight; cancel() releases its socket and timer without calling back. */
export interface Probe {
  cancel(): void;
}

/** Responses longer than this without a line break are not HTTP. */
const MAX_STATUS_LINE = 8192;

/**
 * Connects to host:port and lets `onConnect` decide the outcome. The whole
 * attempt, connect and any exchange, must finish within `timeoutS`; the
 * socket is destroyed on every path.
 */
function probeSocket(
  host: string,
  port: number,
  timeoutS: number,
  onConnect: (sock: Socket, finish: (r: ProbeResult) => void) => void,
  done: (r: ProbeResult) => void,
): Probe {
  let finished = false;
  // An address literal, never a name: the family is explicit so nothing is looked up.
  const sock = connect({ host, port, family: isIPv6(host) ? 6 : 4 });
  const timer = setTimeout(
    () => finish({ ok: false, reason: `timeout after ${timeoutS}s` }),
    timeoutS * 1000,
  );
  const release = (): void => {
    finished = true;
    clearTimeout(timer);
    sock.destroy();
  };
  function finish(r: ProbeResult): void {
    if (finished) return;
    release();
    done(r);
  }
  // Stays attached after release so a late socket error is never unhandled.
  sock.on('error', (e: NodeJS.ErrnoException) =>
    finish({ ok: false, reason: e.code ?? e.message }),
  );
  sock.on('close', () => finish({ ok: false, reason: 'connection closed' }));
  sock.once('connect', () => onConnect(sock, finish));
  return {
    cancel: () => {
      if (!finished) release();
    },
  };
}

/**
 * keepalived's request: HTTP/1.0, so the server closes after one response;
 * node:http can only speak HTTP/1.1, hence the raw socket.
 */
function httpRequest(host: string, port: number, path: string): string {
  // RFC 7230 section 5.4: an IPv6 literal goes in brackets in Host.
  const name = isIPv6(host) ? `[${host}]` : host;
  const hostHeader = port === 80 ? name : `${name}:${port}`;
  return `GET ${path} HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: ${hostHeader}\r\n\r\n`;
}

function onHttpConnect(
  host: string,
  port: number,
  check: { path: string; statusCode: number },
): (sock: Socket, finish: (r: ProbeResult) => void) => void {
  return (sock, finish) => {
    let head = '';
    sock.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const eol = head.indexOf('\n');
      if (eol < 0) {
        if (head.length > MAX_STATUS_LINE) finish({ ok: false, reason: 'no HTTP status line' });
        return;
      }
      const m = /^HTTP\/\d\.\d (\d{3})/.exec(head.slice(0, eol));
      if (!m) return finish({ ok: false, reason: 'bad HTTP status line' });
      const status = Number(m[1]);
      finish({ ok: status === check.statusCode, reason: `status ${status}` });
    });
    sock.write(httpRequest(host, port, check.path));
  };
}

/** Runs one check attempt against host:port. */
export function runProbe(
  host: string,
  port: number,
  check: HealthCheckSpec,
  done: (r: ProbeResult) => void,
): Probe {
  const onConnect =
    check.kind === 'TCP_CHECK'
      ? (_s: Socket, finish: (r: ProbeResult) => void) => finish({ ok: true, reason: 'connected' })
      : onHttpConnect(host, port, check);
  return probeSocket(host, port, check.connectTimeout, onConnect, done);
}

interface Entry {
  key: string;
  service: ServiceSpec;
  real: RealServerSpec;
  healthy: boolean;
  failures: number;
  timer?: NodeJS.Timeout;
  probe?: Probe;
}

const entryKey = (vip: IpAddress, vport: number, addr: IpAddress, port: number): string =>
  `${addressKey(vip)}:${vport}/${addressKey(addr)}:${port}`;

export class HealthChecker {
  private readonly entries = new Map<string, Entry>();
  private running = false;

  constructor(
    targets: HealthTargets,
    private readonly opts: HealthCheckerOptions,
  ) {
    this.update(targets);
  }

  /** Starts every loop; the first check of each RS runs at once. */
  start(): void {
    if (this.running) return;
    this.running = true;
    for (const e of this.entries.values()) if (e.real.check) this.schedule(e, 0);
  }

  /** Clears every timer and socket; no callback fires afterwards. */
  stop(): void {
    this.running = false;
    for (const e of this.entries.values()) this.halt(e);
  }

  /**
   * Applies a reloaded configuration: new RS get a check (starting UP),
   * removed ones lose theirs, and RS present in both keep their state.
   */
  update(targets: HealthTargets): void {
    const next = new Map<string, { service: ServiceSpec; real: RealServerSpec }>();
    for (const service of targets.services) {
      for (const real of service.realServers) {
        next.set(entryKey(service.vip, service.vport, real.addr, real.port), { service, real });
      }
    }
    for (const [key, e] of this.entries) {
      if (next.has(key)) continue;
      this.halt(e);
      this.entries.delete(key);
    }
    for (const [key, t] of next) this.upsert(key, t.service, t.real);
  }

  /** True for an RS that passes (or has no check, or is unknown). */
  isHealthy(real: RealServerKey): boolean {
    const e = this.entries.get(entryKey(real.vip, real.vport, real.addr, real.port));
    return e?.healthy ?? true;
  }

  private upsert(key: string, service: ServiceSpec, real: RealServerSpec): void {
    const e = this.entries.get(key);
    if (!e) {
      const fresh: Entry = { key, service, real, healthy: true, failures: 0 };
      this.entries.set(key, fresh);
      if (this.running && real.check) this.schedule(fresh, 0);
      return;
    }
    const hadCheck = e.real.check !== undefined;
    e.service = service;
    e.real = real;
    if (hadCheck && !real.check) this.dropCheck(e);
    else if (!hadCheck && real.check && this.running) this.schedule(e, 0);
    // A changed check spec takes effect at the next attempt; the state carries over.
  }

  /** Without a check an RS is UP, so one held DOWN comes back. */
  private dropCheck(e: Entry): void {
    this.halt(e);
    e.failures = 0;
    if (e.healthy) return;
    e.healthy = true;
    this.opts.logger.info(this.logFields(e, 'health check removed'), 'real server UP');
    this.notify(e);
  }

  private halt(e: Entry): void {
    if (e.timer) clearTimeout(e.timer);
    e.timer = undefined;
    e.probe?.cancel();
    e.probe = undefined;
  }

  private schedule(e: Entry, delayS: number): void {
    if (e.timer) clearTimeout(e.timer);
    e.timer = setTimeout(() => {
      e.timer = undefined;
      this.attempt(e);
    }, delayS * 1000);
  }

  private attempt(e: Entry): void {
    const check = e.real.check;
    if (!check || !this.isCurrent(e)) return;
    const host = addressToString(e.real.addr);
    const port = check.connectPort ?? e.real.port;
    e.probe = runProbe(host, port, check, (r) => {
      e.probe = undefined;
      if (this.isCurrent(e)) this.onResult(e, r);
    });
  }

  /** Guards against results arriving after stop() or after a reload removed the RS. */
  private isCurrent(e: Entry): boolean {
    return this.running && this.entries.get(e.key) === e;
  }

  private onResult(e: Entry, r: ProbeResult): void {
    const { real } = e;
    if (r.ok) {
      e.failures = 0;
      this.schedule(e, real.delayLoop);
      if (!e.healthy) this.transition(e, true, r);
      return;
    }
    e.failures++;
    if (!e.healthy) {
      this.schedule(e, real.delayLoop);
    } else if (e.failures < real.retry) {
      this.schedule(e, real.delayBeforeRetry);
      this.opts.logger.info(this.logFields(e, r.reason), 'health check failed, retrying');
    } else {
      this.schedule(e, real.delayLoop);
      this.transition(e, false, r);
    }
  }

  private transition(e: Entry, healthy: boolean, r: ProbeResult): void {
    e.healthy = healthy;
    const fields = this.logFields(e, r.reason);
    if (healthy) this.opts.logger.info(fields, 'real server UP');
    else this.opts.logger.warn(fields, 'real server DOWN');
    this.notify(e);
  }

  /** A throwing handler must not stop the checks of every other RS. */
  private notify(e: Entry): void {
    try {
      this.opts.onChange({ service: e.service, real: e.real, healthy: e.healthy });
    } catch (err) {
      this.opts.logger.warn(
        { err, ...this.logFields(e, 'onChange threw') },
        'health handler failed',
      );
    }
  }

  private logFields(e: Entry, reason: string): Record<string, unknown> {
    const { service, real } = e;
    return {
      service: endpointToString(service.vip, service.vport),
      real: endpointToString(real.addr, real.port),
      check: real.check?.kind ?? 'none',
      reason,
      failures: e.failures,
      retry: real.retry,
    };
  }
}
