/**
 * Real-server health checks with keepalived's semantics: each checked RS has
 * its own loop; a failure is retried after `delayBeforeRetry` until `retry`
 * consecutive failures take the RS DOWN; the next success brings it UP. Once
 * DOWN, and while UP and passing, the check runs every `delayLoop`.
 *
 * An RS starts UP (as in keepalived), DOWN under `alpha` until its first
 * pass; one without a check is always UP. notify_up / notify_down run on
 * the transitions, and under `omega` notify_down runs at stop().
 */
import { endpointToString } from '../wire/address.js';
import { asksForWeight, checkName } from './health-all-of.js';
import { runNotifyScript } from './health-notify.js';
import { runProbe, type Probe, type ProbeResult } from './health-probe.js';
import { realServerKey } from './real-server-key.js';
import type {
  FullnatConfig,
  HealthCheckSpec,
  RealServerKey,
  RealServerSpec,
  ServiceSpec,
} from './model.js';

export type { Probe, ProbeResult } from './health-probe.js';

/** pino-compatible subset. */
export interface HealthLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface HealthChange {
  service: ServiceSpec;
  real: RealServerSpec;
  healthy: boolean;
  /** The weight a MISC_CHECK with misc_dynamic set; absent, the configured weight applies. */
  weight?: number;
}

export interface HealthCheckerOptions {
  logger: HealthLogger;
  /** Called on every UP/DOWN transition and dynamic weight change, never after stop(). */
  onChange: (change: HealthChange) => void;
}

/** A FullnatConfig, or anything else that lists services. */
export type HealthTargets = Pick<FullnatConfig, 'services'>;

interface Entry {
  key: string;
  service: ServiceSpec;
  real: RealServerSpec;
  healthy: boolean;
  failures: number;
  /** Set by a misc_dynamic exit status; undefined until then. */
  weight?: number;
  timer?: NodeJS.Timeout;
  probe?: Probe;
}

const sameCheck = (a: HealthCheckSpec | undefined, b: HealthCheckSpec): boolean =>
  JSON.stringify(a) === JSON.stringify(b);

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
    const wasRunning = this.running;
    this.running = false;
    for (const e of this.entries.values()) {
      this.halt(e);
      const { real } = e;
      if (wasRunning && real.omega && real.check && e.healthy && real.notifyDown)
        runNotifyScript(real.notifyDown, this.opts.logger, this.logFields(e, 'omega: stopping'));
    }
  }

  /**
   * Applies a reloaded configuration: new RS get a check (starting UP),
   * removed ones lose theirs, and RS present in both keep their state.
   */
  update(targets: HealthTargets): void {
    const next = new Map<string, { service: ServiceSpec; real: RealServerSpec }>();
    for (const service of targets.services) {
      for (const real of service.realServers) {
        next.set(
          realServerKey(service.vip, service.vport, real.addr, real.port, service.protocol),
          {
            service,
            real,
          },
        );
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
    const e = this.entries.get(
      realServerKey(real.vip, real.vport, real.addr, real.port, real.protocol),
    );
    return e?.healthy ?? true;
  }

  private upsert(key: string, service: ServiceSpec, real: RealServerSpec): void {
    const e = this.entries.get(key);
    if (!e) {
      const held = real.alpha === true && real.check !== undefined;
      const fresh: Entry = { key, service, real, healthy: !held, failures: 0 };
      this.entries.set(key, fresh);
      if (held) {
        this.opts.logger.info(
          this.logFields(fresh, 'alpha'),
          'real server DOWN until its check passes',
        );
        this.notify(fresh);
      }
      if (this.running && real.check) this.schedule(fresh, 0);
      return;
    }
    const before = e.real.check;
    e.service = service;
    e.real = real;
    if (before && !real.check) this.dropCheck(e);
    else if (real.check && !sameCheck(before, real.check)) this.restartCheck(e);
  }

  /** Without a check an RS is UP, so one held DOWN comes back, at its configured weight. */
  private dropCheck(e: Entry): void {
    this.halt(e);
    e.failures = 0;
    const weightReset = this.forgetDynamicWeight(e);
    if (e.healthy) {
      if (weightReset) this.notify(e);
      return;
    }
    e.healthy = true;
    this.opts.logger.info(this.logFields(e, 'health check removed'), 'real server UP');
    this.notify(e);
  }

  /**
   * A new or changed check starts over at once: the attempt in flight is
   * cancelled and the failure count cleared. UP or DOWN carries over until
   * the new check decides, so a reload never sends traffic to an RS held out.
   */
  private restartCheck(e: Entry): void {
    this.halt(e);
    e.failures = 0;
    const check = e.real.check;
    if (!(check && asksForWeight(check)) && this.forgetDynamicWeight(e)) {
      this.notify(e);
    }
    if (this.running) this.schedule(e, 0);
  }

  /** True when a misc_dynamic weight was in force and is no more. */
  private forgetDynamicWeight(e: Entry): boolean {
    if (e.weight === undefined) return false;
    e.weight = undefined;
    this.opts.logger.info(this.logFields(e, 'no misc_dynamic check'), 'configured weight back');
    return true;
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
    e.probe = runProbe(e.real, check, (r) => {
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
      const weight = r.configuredWeight ? undefined : (r.weight ?? e.weight);
      const reweighted = weight !== e.weight;
      e.weight = weight;
      if (!e.healthy) {
        this.transition(e, true, r);
      } else if (reweighted) {
        this.opts.logger.info(this.logFields(e, r.reason), 'real server weight set by its check');
        this.notify(e);
      }
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
    const script = healthy ? e.real.notifyUp : e.real.notifyDown;
    if (script) runNotifyScript(script, this.opts.logger, fields);
  }

  /** A throwing handler must not stop the checks of every other RS. */
  private notify(e: Entry): void {
    try {
      const change: HealthChange = { service: e.service, real: e.real, healthy: e.healthy };
      if (e.weight !== undefined) change.weight = e.weight;
      this.opts.onChange(change);
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
      check: real.check ? checkName(real.check) : 'none',
      reason,
      failures: e.failures,
      retry: real.retry,
      ...(e.weight === undefined ? {} : { weight: e.weight }),
    };
  }
}
