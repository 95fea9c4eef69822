/**
 * The running load balancer: the engine behind a TUN device, configured from
 * a keepalived-style file, steered through the control socket, watched by
 * health checks and exported as Prometheus metrics.
 */
import { TOA_V4_LEN, TOA_V6_LEN } from '../wire/toa.js';
import {
  addressFamily,
  addressKey,
  addressToString,
  endpointToString,
  Ipv6Address,
  type IpAddress,
} from '../wire/address.js';
import { Engine, type ConnectionEntry, type ImportResult } from '../engine/engine.js';
import { GSO_BUFFER_SIZE, PacketPool } from '../engine/packet.js';
import { COUNTER_NAMES } from '../engine/counters.js';
import { unknownFlowResetBurst, type L4Protocol } from '../engine/options.js';
import {
  STAT_CONNS,
  STAT_IN_BYTES,
  STAT_IN_PACKETS,
  STAT_OUT_BYTES,
  STAT_OUT_PACKETS,
  type Service,
} from '../engine/services.js';
import { TCP_STATE_NAMES } from '../engine/tcp-state.js';
import type { HostNetwork } from '../io/host.js';
import { RunLoop, type PacketDevice } from '../io/run-loop.js';
import { NapiModeController } from '../io/napi-mode.js';
import { loadConfig, diffConfig, reloadNeedsForce, warningText } from './config/index.js';
import { networkOf, prefixToString } from './prefix.js';
import { HealthChecker, type HealthChange } from './health.js';
import { runNotifyScript } from './health-notify.js';
import { QuorumStates, quorumKey } from './quorum-state.js';
import { applySorryServer, retireSorryServer } from './sorry-server.js';
import {
  addressRoleConflict,
  MIN_MTU_V6,
  realServerFamilyConflict,
  type AddressRole,
  type AddressRoles,
} from './rules.js';
import type {
  ClusterHooks,
  ConnectionStatus,
  ControlApi,
  ControlRequest,
  ControlResponse,
  FullnatConfig,
  ServiceSpec,
  ServiceStatus,
  Snapshot,
  SyncHooks,
  TrafficStats,
  TunKernelStatus,
} from './model.js';
import type { Logger } from './log.js';
import type { SavedTable } from './restart/state-file.js';
import { realServerKey, weightInForce, type RsWeight } from './real-server-key.js';
import { DeviceRoutes } from './device-routes.js';

export interface LoadBalancerDeps {
  host: HostNetwork;
  log: Logger;
  /** Run the configured health checks (default true). */
  healthChecks?: boolean;
  /** LB→RS ISN secret, kept across restarts by the caller (restart/isn-secret.ts); default random. */
  isnSecret?: number;
}

/** Window over which `napi_thread auto` looks at the traffic. */
const NAPI_WINDOW_MS = 200;

// The addresses the engine holds, read as IpAddress: the one place that knows
// how the engine's tables store them.
const vipOf = (s: Service): IpAddress => s.vip;
const rsAddrOf = (r: Service['targets'][number]): IpAddress => r.addr;
const lipOf = (e: Engine, li: number): IpAddress => e.laddrs.lips[li]!;
const connAddrs = (
  c: ConnectionEntry,
): { cip: IpAddress; vip: IpAddress; lip: IpAddress; rip: IpAddress } => c;

/** `::`, the local column of an IPv6 client's template. */
const ANY6 = Ipv6Address.fromBytes(new Uint8Array(16));

/** `ip route` prefix of one address: /32 or /128. */
const hostRoute = (a: IpAddress): string =>
  `${addressToString(a)}/${addressFamily(a) === 4 ? 32 : 128}`;

/** A persistent service's settings and templates, as the snapshot shows them. */
function persistenceStatus(s: Service): Pick<ServiceStatus, 'persistence'> {
  if (s.persistMs === 0) return {};
  return {
    persistence: {
      timeout: s.persistMs / 1000,
      granularity: s.v6 ? s.persistPrefix6 : s.persistMask4,
      templates: s.persistTemplates,
    },
  };
}

function statsOf(a: Float64Array): TrafficStats {
  return {
    conns: a[STAT_CONNS]!,
    inPackets: a[STAT_IN_PACKETS]!,
    outPackets: a[STAT_OUT_PACKETS]!,
    inBytes: a[STAT_IN_BYTES]!,
    outBytes: a[STAT_OUT_BYTES]!,
  };
}

export class LoadBalancer implements ControlApi {
  config: FullnatConfig;
  readonly engine: Engine;
  private loop: RunLoop | undefined;
  private device: PacketDevice | undefined;
  /** Configured weight, health and any misc_dynamic weight per RS, keyed by rsKey; see weightInForce. */
  /** The routes this process put into its device. */
  private readonly routes: DeviceRoutes;
  private readonly weights = new Map<string, RsWeight>();
  private readonly startedAt = Date.now();
  /** Engine time 0: performance.now() and Unix ms of one moment. */
  private readonly epoch = performance.now();
  private readonly epochUnixMs = Date.now();
  private health: HealthChecker | undefined;
  private readonly quorum = new QuorumStates();
  private readonly napiMode = new NapiModeController();
  private napiTimer: NodeJS.Timeout | undefined;
  /** Forwarding with the table loaded; set by the process once everything is up (Snapshot.ready). */
  ready = false;
  /** The device's kernel counters could not be read once: said once, not at every scrape. */
  private tunStatsWarned = false;
  /** Set by `fullnat run` (every run: without `bgp` it does nothing until a drain). */
  cluster: ClusterHooks | undefined;
  /** Set by `fullnat run` (every run: without `sync` it does nothing). */
  sync: SyncHooks | undefined;

  constructor(
    readonly configPath: string,
    private readonly deps: LoadBalancerDeps,
    config?: FullnatConfig,
  ) {
    this.config = config ?? loadConfig(configPath);
    this.routes = new DeviceRoutes(deps.host, deps.log, () => this.deviceName);
    const d = this.config.defs;
    this.engine = new Engine(
      {
        toaPolicy: d.toaPolicy,
        toaV6Kind: d.toaV6Kind,
        mssAdjust: d.mssAdjust,
        timestampRemove: d.timestampRemove,
        unknownServiceAction: d.unknownServiceAction,
        unknownFlowReset: d.unknownFlowReset,
        unknownFlowResetRate: d.unknownFlowResetRate,
        unknownFlowResetBurst: unknownFlowResetBurst(d.unknownFlowResetRate),
        icmpEcho: d.icmpEcho,
        pmtuExpiresMs: d.pmtuExpires * 1000,
        maxConnections: d.maxConnections,
        portRange: d.portRange,
        rsMtu: d.rsMtu,
        timeouts: d.timeouts,
        timeoutUdpMs: d.timeoutUdp * 1000,
        uoaMode: d.uoaMode,
        uoaMaxTrail: d.uoaMaxTrail,
        isnSecret: deps.isnSecret ?? (Math.random() * 0x100000000) >>> 0,
        // Engine time 0 is this moment on both clocks: the run loop counts from `epoch`, the ISN clock from here in Unix time.
        isnClockOriginMs: this.epochUnixMs,
        portSeed: (Math.random() * 0x100000000) >>> 0,
      },
      d.offload ? new PacketPool(256, GSO_BUFFER_SIZE) : undefined,
    );
    for (const s of this.config.services) this.addService(s);
  }

  get deviceName(): string {
    return this.config.defs.interface;
  }

  /** Opens the device, sets sysctls and routes, starts the loop and health checks. */
  start(): void {
    this.openDevice();
    this.startForwarding();
  }

  /**
   * Opens this process's queue on the device (joining the interface if a
   * predecessor left it or still holds it), persistent when `handover` is
   * on. Nothing is read until `startForwarding`: what the kernel steers to
   * the queue meanwhile waits in it.
   */
  openDevice(): void {
    const d = this.config.defs;
    this.device = this.deps.host.openDevice(
      this.deviceName,
      this.tunMtu(),
      d.offload,
      d.napiThread !== 'off',
      d.handover,
    );
    this.deps.host.setTxQueueLen?.(this.deviceName, d.tunTxQueueLen);
  }

  /**
   * Sysctls, routes (replaced, so a predecessor's are taken over as they
   * are), then the saved table if there is one, then the loop and the
   * health checks. A snapshot the engine refuses (ConnRecordError: a newer
   * record format, a malformed one) enters nothing: that is logged and the
   * table starts empty.
   */
  startForwarding(saved?: SavedTable): ImportResult | undefined {
    const { host, log } = this.deps;
    const dev = this.deviceName;
    const d = this.config.defs;
    if (!this.device) throw new Error('startForwarding before openDevice');
    if (d.napiThread === 'on') this.setNapiThreaded(true);
    host.sysctl('net.ipv4.ip_forward', '1');
    // Replies from the RS enter on the NIC but the LIPs route into the TUN; strict reverse-path filtering would drop them.
    host.sysctl(`net.ipv4.conf.${dev}.rp_filter`, '0');
    this.syncRoutes();
    this.loop = new RunLoop(this.engine, this.device, undefined, this.epoch);
    let imported: ImportResult | undefined;
    if (saved) {
      // Entries are dated on the engine clock: bring it to now first.
      this.engine.tick(this.loop.now());
      try {
        imported = this.engine.importConnections(
          saved.snapshot,
          Math.max(0, Date.now() - saved.writtenAt),
        );
      } catch (e) {
        log.warn(
          { err: (e as Error).message },
          'saved connection table refused: starting with an empty table',
        );
      }
    }
    this.loop.start();
    this.startTimers();
    log.info(
      { device: dev, services: this.config.services.length, toaPolicy: this.config.defs.toaPolicy },
      'fullnat running',
    );
    return imported;
  }

  /** Calls `cb` once, with the Unix ms of the first packet this process forwards. */
  onFirstForward(cb: (at: number) => void): void {
    const loop = this.loop;
    if (!loop) throw new Error('onFirstForward before startForwarding');
    if (loop.stats.firstTxAt !== 0) cb(loop.stats.firstTxAt);
    else loop.onFirstTx = () => cb(loop.stats.firstTxAt);
  }

  private startTimers(): void {
    const { host, log } = this.deps;
    if (this.config.defs.napiThread === 'auto' && host.setNapiThreaded) this.startNapiAuto();
    if (this.deps.healthChecks !== false) {
      this.health = new HealthChecker(this.config, {
        logger: log,
        onChange: (c) => this.onHealth(c),
      });
      this.health.start();
    }
    // keepalived's start-up evaluation: a service already below its quorum (alpha) loses it now.
    for (const s of this.config.services) this.checkQuorum(s);
  }

  private stopTimers(): void {
    if (this.napiTimer) clearInterval(this.napiTimer);
    this.napiTimer = undefined;
    this.health?.stop();
    this.health = undefined;
  }

  /** The table as it is now, for a checkpoint; forwarding goes on. */
  saveTable(): SavedTable {
    return {
      snapshot: this.engine.exportConnections(),
      writtenAt: Date.now(),
      lastForwardedAt: this.loop?.stats.lastTxAt ?? 0,
    };
  }

  /**
   * The old side of a handover: reads the queue empty through the engine,
   * detaches it (the kernel steers everything to a successor's queue, or
   * drops while there is none), makes the device persistent and exports the
   * table. Routes stay. Forwarding has stopped; `resume` undoes it if the
   * table cannot be saved, `release` closes the descriptor once it is.
   */
  handOver(): SavedTable {
    const loop = this.loop;
    const dev = this.device;
    if (!loop || !dev) throw new Error('not forwarding: nothing to hand over');
    this.ready = false;
    this.stopTimers();
    loop.drain();
    loop.stop();
    dev.detachQueue?.();
    dev.setPersist?.(true);
    return this.saveTable();
  }

  /** After a handover that could not complete: the queue rejoins and forwarding goes on. */
  resume(): void {
    const dev = this.device;
    if (!dev || !this.loop) throw new Error('not started');
    dev.attachQueue?.();
    dev.setPersist?.(this.config.defs.handover);
    this.loop.start();
    this.startTimers();
    this.ready = true;
    this.deps.log.warn({ device: this.deviceName }, 'handover abandoned: forwarding again');
  }

  /** After a handover: closes this process's queue; device and routes stay for the successor. */
  release(): void {
    this.device?.close();
    this.device = undefined;
    this.routes.forget();
    this.deps.log.info({ device: this.deviceName }, 'device and routes left to the successor');
  }

  /** `napi_thread auto`: every window, put the NAPI work where the traffic of the last one wants it. */
  private startNapiAuto(): void {
    const stats = this.loop!.stats;
    let packets = stats.rxPackets;
    let bytes = stats.rxBytes;
    let at = performance.now();
    this.napiTimer = setInterval(() => {
      const now = performance.now();
      const changed = this.napiMode.update(
        stats.rxPackets - packets,
        stats.rxBytes - bytes,
        now - at,
      );
      packets = stats.rxPackets;
      bytes = stats.rxBytes;
      at = now;
      if (changed) this.setNapiThreaded(this.napiMode.threaded);
    }, NAPI_WINDOW_MS);
    this.napiTimer.unref();
  }

  private setNapiThreaded(on: boolean): void {
    const { host, log } = this.deps;
    try {
      const warning = host.setNapiThreaded?.(this.deviceName, on);
      if (warning) log.warn({ device: this.deviceName }, warning);
      log.info({ device: this.deviceName, threaded: on }, 'NAPI thread switched');
    } catch (err) {
      // It will not work later either (an old kernel, no sysfs): stop trying rather than log every window.
      if (this.napiTimer) clearInterval(this.napiTimer);
      this.napiTimer = undefined;
      log.warn(
        { device: this.deviceName, err: (err as Error).message },
        'NAPI thread not switched; the kernel work on written packets stays inline',
      );
    }
  }

  /** A real stop: routes removed, persistence cleared, so the device goes with the process. */
  stop(): void {
    this.ready = false;
    this.stopTimers();
    this.loop?.stop();
    this.routes.removeAll();
    try {
      this.device?.setPersist?.(false);
    } catch (e) {
      this.deps.log.warn({ err: (e as Error).message }, 'could not clear the device persistence');
    }
    this.device?.close();
    this.device = undefined;
    this.deps.log.info({ device: this.deviceName }, 'fullnat stopped');
  }

  /**
   * The TUN carries the largest packet any RS path allows, TOA included:
   * the 20-byte one when an IPv6 service may carry an IPv6 client's. With
   * IPv6 it is never below 1280, or the kernel turns IPv6 off on it.
   */
  private tunMtu(): number {
    let mtu = this.config.defs.rsMtu;
    let toa = TOA_V4_LEN;
    let floor = 0;
    for (const s of this.config.services) {
      if (addressFamily(s.vip) === 6) {
        toa = TOA_V6_LEN;
        floor = MIN_MTU_V6;
      }
      for (const r of s.realServers) mtu = Math.max(mtu, r.mtu ?? 0);
    }
    return Math.max(mtu + toa, floor);
  }

  private addService(s: ServiceSpec): void {
    const svc = this.engine.addService({
      vip: s.vip,
      vport: s.vport,
      protocol: s.protocol,
      scheduler: s.scheduler,
      laddrs: s.laddrs,
      realServers: [],
      proxyProtocol: s.proxyProtocol,
      synProxy: s.synProxy,
      forwarding: s.forwarding,
      ...(s.uoaMode === undefined ? {} : { uoaMode: s.uoaMode }),
      ...(s.persistence
        ? {
            persistenceTimeout: s.persistence.timeout,
            persistenceGranularity: s.persistence.granularity,
          }
        : {}),
    });
    for (const r of s.realServers)
      this.addReal(svc.index, s.vip, s.vport, r.addr, r.port, r.weight, r.mtu, s.protocol);
  }

  private addReal(
    svc: number,
    vip: IpAddress,
    vport: number,
    addr: IpAddress,
    port: number,
    weight: number,
    mtu?: number,
    protocol: L4Protocol = 'TCP',
  ): void {
    const key = realServerKey(vip, vport, addr, port, protocol);
    const prev = this.weights.get(key);
    const w: RsWeight = { weight, healthy: prev?.healthy ?? true };
    if (prev?.dynamic !== undefined) w.dynamic = prev.dynamic;
    if (prev?.hidden) w.hidden = true;
    this.weights.set(key, w);
    this.engine.addRealServer(svc, { addr, port, weight: weightInForce(w), mtu });
  }

  private onHealth(c: HealthChange): void {
    const { service: svc, real, healthy } = c;
    const key = realServerKey(svc.vip, svc.vport, real.addr, real.port, svc.protocol);
    const w = this.weights.get(key);
    if (!w) return;
    const wasHealthy = w.healthy;
    w.healthy = healthy;
    if (c.weight === undefined) delete w.dynamic;
    else w.dynamic = c.weight;
    if (healthy || real.inhibitOnFailure) delete w.hidden;
    else w.hidden = true;
    const si = this.engine.findService(svc.vip, svc.vport, svc.protocol);
    const ri = si < 0 ? -1 : this.engine.findRealServer(si, real.addr, real.port);
    if (ri >= 0) this.engine.setWeight(ri, weightInForce(w));
    this.checkQuorum(svc);
    const msg =
      healthy === wasHealthy
        ? 'real server weight set by its health check'
        : healthy
          ? 'real server up: weight restored'
          : real.inhibitOnFailure
            ? 'real server down: quiescent (weight 0, inhibit_on_failure)'
            : 'real server down: removed (its connections finish)';
    this.deps.log.warn(
      {
        service: endpointToString(svc.vip, svc.vport),
        real: endpointToString(real.addr, real.port),
        healthy,
        weight: weightInForce(w),
      },
      msg,
    );
    this.cluster?.changed();
  }

  /** keepalived's update_quorum_state after a weight in force changed: scripts and the sorry server. */
  private checkQuorum(svc: ServiceSpec): void {
    const key = quorumKey(svc);
    const sum = svc.realServers.reduce((total, r) => {
      const w = this.weights.get(realServerKey(svc.vip, svc.vport, r.addr, r.port, svc.protocol));
      return total + (w ? weightInForce(w) : 0);
    }, 0);
    const service = endpointToString(svc.vip, svc.vport);
    const turned = this.quorum.evaluate(key, svc, sum);
    if (turned) {
      const fields = { service, weight: sum, quorum: svc.quorum, hysteresis: svc.hysteresis ?? 0 };
      this.deps.log.warn(fields, turned === 'up' ? 'quorum gained' : 'quorum lost');
      const script = turned === 'up' ? svc.quorumUp : svc.quorumDown;
      if (script) runNotifyScript(script, this.deps.log, fields);
    }
    const wanted = !this.quorum.isUp(key);
    if (!applySorryServer(this.engine, this.weights, svc, wanted) || !svc.sorryServer) return;
    this.deps.log.warn(
      { service, sorry: endpointToString(svc.sorryServer.addr, svc.sorryServer.port) },
      wanted ? 'below quorum: sorry_server in' : 'quorum back: sorry_server out',
    );
  }

  // ---- routes ----------------------------------------------------------------------

  private wantedRoutes(): Set<string> {
    const want = new Set<string>();
    for (const s of this.engine.services) {
      if (!s.live) continue;
      want.add(hostRoute(vipOf(s)));
      for (const li of s.lipIndexes) want.add(hostRoute(lipOf(this.engine, li)));
    }
    // A sync peer's LIPs, like this node's own: once the router sends a dead peer's replies here, the TUN must get them.
    for (const peer of this.config.sync?.peers ?? [])
      for (const p of peer.lipPrefixes) want.add(prefixToString(networkOf(p)));
    return want;
  }

  /** `RIP|RPORT` of every real server of a live NAT service: their replies come back through the device. */
  private wantedNatRules(): Set<string> {
    const want = new Set<string>();
    for (const s of this.engine.services) {
      if (!s.live || s.forwarding !== 'nat') continue;
      for (const r of s.targets) want.add(`${addressToString(rsAddrOf(r))}|${r.port}`);
    }
    return want;
  }

  private syncRoutes(): void {
    if (!this.device) return;
    this.routes.sync(this.wantedRoutes());
    this.routes.syncNatRules(this.wantedNatRules());
  }

  // ---- reload ----------------------------------------------------------------------

  /**
   * Re-reads the file and applies the difference. A file with an error, or a
   * change that needs a restart, is refused and the running state stays as it is;
   * so is one that would remove every service or lose the fullnat_defs block,
   * unless `force` (config/reload-guard.ts).
   */
  reload(
    opts: { force?: boolean } = {},
  ): { ok: true; summary: string } | { ok: false; error: string } {
    let next: FullnatConfig;
    try {
      next = loadConfig(this.configPath);
    } catch (e) {
      const error = (e as Error).message;
      this.deps.log.error({ err: error }, 'reload refused: configuration error');
      return { ok: false, error };
    }
    for (const w of next.warnings ?? [])
      this.deps.log.warn({ config: this.configPath }, warningText(w));
    const diff = diffConfig(this.config, next);
    // First: a damaged file explains a restart-only change (a lost block) better than the key does.
    const unsafe = reloadNeedsForce(this.config, next, diff);
    if (unsafe.length > 0 && opts.force !== true) {
      const error = `reload refused: ${unsafe.join('; ')}; fix the file, or apply it as it is with 'fullnat ctl --reload --force'`;
      this.deps.log.error({ reasons: unsafe }, error);
      return { ok: false, error };
    }
    if (diff.restartRequired.length > 0) {
      const error = `reload refused: ${diff.restartRequired.join(', ')} can only change with a restart`;
      this.deps.log.error({ keys: diff.restartRequired }, error);
      return { ok: false, error };
    }
    if (unsafe.length > 0) this.deps.log.warn({ reasons: unsafe }, 'reload forced');
    const e = this.engine;
    const d = next.defs;
    e.reconfigure({
      toaPolicy: d.toaPolicy,
      mssAdjust: d.mssAdjust,
      timestampRemove: d.timestampRemove,
      unknownServiceAction: d.unknownServiceAction,
      unknownFlowReset: d.unknownFlowReset,
      unknownFlowResetRate: d.unknownFlowResetRate,
      unknownFlowResetBurst: unknownFlowResetBurst(d.unknownFlowResetRate),
      icmpEcho: d.icmpEcho,
      pmtuExpiresMs: d.pmtuExpires * 1000,
      timeouts: d.timeouts,
      rsMtu: d.rsMtu,
      timeoutUdpMs: d.timeoutUdp * 1000,
      uoaMode: d.uoaMode,
      uoaMaxTrail: d.uoaMaxTrail,
    });
    for (const s of diff.removedServices) {
      const i = e.findService(s.vip, s.vport, s.protocol);
      if (i >= 0) e.deleteService(i);
    }
    for (const s of diff.addedServices) this.addService(s);
    for (const c of diff.changedServices) {
      if (c.sorryServer) retireSorryServer(this.engine, this.weights, c.before);
      const s = c.after;
      const i = e.findService(s.vip, s.vport, s.protocol);
      if (i < 0) continue;
      if (c.uoaMode) e.setUoaMode(i, c.uoaMode.to);
      if (c.scheduler) e.setScheduler(i, c.scheduler.to);
      if (c.proxyProtocol) e.setProxyProtocol(i, c.proxyProtocol.to);
      if (c.synProxy) e.setSynProxy(i, c.synProxy.to);
      if (c.persistence)
        e.setPersistence(i, c.persistence.to?.timeout ?? 0, c.persistence.to?.granularity);
      for (const l of c.addedLaddrs) e.addLocalAddress(i, l);
      for (const r of c.removedReals) {
        const ri = e.findRealServer(i, r.addr, r.port);
        if (ri >= 0) e.removeRealServer(ri);
        this.weights.delete(realServerKey(s.vip, s.vport, r.addr, r.port, s.protocol));
      }
      for (const r of c.addedReals)
        this.addReal(i, s.vip, s.vport, r.addr, r.port, r.weight, r.mtu, s.protocol);
      for (const ch of c.changedReals) {
        const key = realServerKey(s.vip, s.vport, ch.after.addr, ch.after.port, s.protocol);
        const w = this.weights.get(key);
        const ri = e.findRealServer(i, ch.after.addr, ch.after.port);
        if (!w || ri < 0) continue;
        w.weight = ch.after.weight;
        e.setWeight(ri, weightInForce(w));
        e.setRealServerMtu(ri, ch.after.mtu ?? d.rsMtu);
      }
      if (c.removedLaddrs.length > 0) {
        this.deps.log.warn(
          {
            service: endpointToString(s.vip, s.vport),
            laddrs: c.removedLaddrs.map(addressToString),
          },
          'local addresses stay in use until restart (connections may hold their ports)',
        );
      }
    }
    this.config = next;
    this.syncRoutes();
    this.health?.update(next);
    for (const s of diff.removedServices) this.quorum.forget(quorumKey(s));
    for (const s of next.services) this.checkQuorum(s);
    const summary =
      `+${diff.addedServices.length} -${diff.removedServices.length} ~${diff.changedServices.length} services` +
      (diff.changedDefs.length ? `; defs: ${diff.changedDefs.join(', ')}` : '');
    this.deps.log.info({ summary }, 'configuration reloaded');
    this.cluster?.changed();
    // The key file's content may change with the block unchanged: the channel looks itself.
    this.sync?.changed();
    return { ok: true, summary };
  }

  // ---- control ---------------------------------------------------------------------

  snapshot(): Snapshot {
    const e = this.engine;
    // First: counting frees the expired templates, so the per-service counts below agree with it.
    const templates = e.templateCount;
    const services = e.services
      .filter((s) => s.live)
      .map((s: Service) => ({
        vip: vipOf(s),
        vport: s.vport,
        protocol: s.protocol,
        scheduler: s.scheduler.name,
        laddrs: s.lipIndexes.map((li) => lipOf(e, li)),
        forwarding: s.forwarding,
        realServers: s.targets.flatMap((r) => {
          const w = this.weights.get(
            realServerKey(vipOf(s), s.vport, rsAddrOf(r), r.port, s.protocol),
          );
          if (w?.hidden) return [];
          return {
            addr: rsAddrOf(r),
            port: r.port,
            weight: w?.weight ?? r.weight,
            effectiveWeight: r.weight,
            healthy: w?.healthy ?? true,
            activeConns: r.activeConns,
            inactiveConns: r.inactiveConns,
            stats: statsOf(r.stats),
          };
        }),
        stats: statsOf(s.stats),
        counters: Object.fromEntries(COUNTER_NAMES.map((n, i) => [n, s.counters[i]!])),
        ...persistenceStatus(s),
      }));
    const counters: Record<string, number> = Object.fromEntries(
      COUNTER_NAMES.map((n, i) => [n, e.counters[i]!]),
    );
    if (this.loop) {
      counters.io_rx_packets = this.loop.stats.rxPackets;
      counters.io_rx_batches = this.loop.stats.rxBatches;
      counters.io_tx_packets = this.loop.stats.txPackets;
      counters.io_tx_dropped = this.loop.stats.txDropped;
      counters.io_rx_super_packets = this.loop.stats.rxSuperPackets;
      counters.io_tx_super_packets = this.loop.stats.txSuperPackets;
    }
    const tunKernel = this.tunKernelStatus();
    const cluster = this.cluster?.status();
    const sync = this.sync?.status();
    return {
      services,
      counters,
      ...(tunKernel ? { tunKernel } : {}),
      connections: e.connectionCount,
      ...(templates > 0 ? { persistenceTemplates: templates } : {}),
      maxConnections: e.table.capacity,
      uptime: (Date.now() - this.startedAt) / 1000,
      ready: this.ready,
      ...(cluster ? { cluster } : {}),
      ...(sync ? { sync } : {}),
    };
  }

  /** The TUN's own kernel counters, read now (a few small sysfs files); undefined without a device. */
  private tunKernelStatus(): TunKernelStatus | undefined {
    const read = this.deps.host.deviceStatistics;
    if (!this.device || !read) return undefined;
    try {
      return { device: this.deviceName, stats: read.call(this.deps.host, this.deviceName) };
    } catch (err) {
      if (!this.tunStatsWarned)
        this.deps.log.warn(
          { device: this.deviceName, err: (err as Error).message },
          'TUN kernel counters unreadable; left out of metrics and ctl',
        );
      this.tunStatsWarned = true;
      return undefined;
    }
  }

  connections(limit?: number): ConnectionStatus[] {
    const conns: ConnectionStatus[] = this.engine.listConnections(limit).map((c) => {
      const a = connAddrs(c);
      return {
        protocol: c.protocol,
        expiresIn: c.expiresInMs / 1000,
        // ipvsadm -Lnc names a UDP entry's state UDP (IPVS's udp_state_name).
        state: c.protocol === 'UDP' ? 'UDP' : TCP_STATE_NAMES[c.state],
        client: { addr: a.cip, port: c.cport },
        virtual: { addr: a.vip, port: c.vport },
        local: { addr: a.lip, port: c.lport },
        real: { addr: a.rip, port: c.rport },
      };
    });
    // Persistence templates after them, as IPVS lists its own: state NONE, client port 0, no local address.
    const left = (limit ?? Infinity) - conns.length;
    if (left <= 0) return conns;
    for (const t of this.engine.listTemplates(left)) {
      conns.push({
        protocol: t.protocol,
        expiresIn: t.expiresInMs / 1000,
        state: 'NONE',
        client: { addr: t.client, port: 0 },
        virtual: { addr: t.vip, port: t.vport },
        local: { addr: typeof t.client === 'number' ? 0 : ANY6, port: 0 },
        real: { addr: t.rip, port: t.rport },
      });
    }
    return conns;
  }

  /** The addresses the running services use, by part: what ctl's additions are checked against. */
  private addressRoles(): AddressRoles {
    const e = this.engine;
    const vips = new Set<string>();
    const rips = new Set<string>();
    const lips = new Set<string>();
    for (const s of e.services) {
      if (!s.live) continue;
      vips.add(addressKey(vipOf(s)));
      for (const r of s.targets) rips.add(addressKey(rsAddrOf(r)));
      for (const li of s.lipIndexes) lips.add(addressKey(lipOf(e, li)));
    }
    return { vips, rips, lips };
  }

  /** Refuses, as the config file would, an address that already plays another part. */
  private refuseRoleConflict(addr: IpAddress, role: AddressRole): void {
    const conflict = addressRoleConflict(addr, role, this.addressRoles());
    if (conflict) throw new Error(conflict);
  }

  async handle(req: ControlRequest): Promise<ControlResponse> {
    try {
      const res = this.apply(req);
      // A service, RS, weight or LIP changed by ctl may move an announcement (reload says so itself).
      if (res.ok && !['snapshot', 'connections', 'reload'].includes(req.op))
        this.cluster?.changed();
      return res;
    } catch (e) {
      return { ok: false, error: (e as Error).message };
    }
  }

  private apply(req: ControlRequest): ControlResponse {
    const e = this.engine;
    const svcOf = (vip: IpAddress, vport: number, protocol: L4Protocol = 'TCP'): number => {
      const i = e.findService(vip, vport, protocol);
      if (i < 0)
        throw new Error(
          `no service ${protocol === 'UDP' ? 'UDP ' : ''}${endpointToString(vip, vport)}`,
        );
      return i;
    };
    switch (req.op) {
      case 'snapshot':
        return { ok: true, snapshot: this.snapshot() };
      case 'connections':
        return { ok: true, connections: this.connections(req.limit) };
      case 'add-service': {
        const { vip, vport } = req.service;
        const protocol = req.service.protocol ?? 'TCP';
        this.refuseRoleConflict(vip, 'virtual_server');
        e.addService({
          vip,
          vport,
          protocol,
          scheduler: req.scheduler,
          laddrs: [],
          realServers: [],
          ...(req.persistence
            ? {
                persistenceTimeout: req.persistence.timeout,
                persistenceGranularity: req.persistence.granularity,
              }
            : {}),
        });
        this.syncRoutes();
        this.deps.log.info({ service: endpointToString(vip, vport) }, 'service added (ctl)');
        return { ok: true };
      }
      case 'edit-service': {
        const si = svcOf(req.service.vip, req.service.vport, req.service.protocol);
        // Checked before anything changes, so a refused edit leaves the service as it was.
        e.setPersistence(si, req.persistence?.timeout ?? 0, req.persistence?.granularity);
        e.setScheduler(si, req.scheduler);
        return { ok: true };
      }
      case 'delete-service':
        e.deleteService(svcOf(req.service.vip, req.service.vport, req.service.protocol));
        this.syncRoutes();
        return { ok: true };
      case 'add-real': {
        const r = req.real;
        const family = realServerFamilyConflict(r.vip, r.addr);
        if (family) throw new Error(family);
        this.refuseRoleConflict(r.addr, 'real server');
        const p = r.protocol ?? 'TCP';
        this.addReal(
          svcOf(r.vip, r.vport, p),
          r.vip,
          r.vport,
          r.addr,
          r.port,
          req.weight,
          undefined,
          p,
        );
        return { ok: true };
      }
      case 'edit-real': {
        const r = req.real;
        const si = svcOf(r.vip, r.vport, r.protocol);
        const ri = e.findRealServer(si, r.addr, r.port);
        if (ri < 0)
          throw new Error(`no real server ${endpointToString(r.addr, r.port)} in that service`);
        const w = this.weights.get(realServerKey(r.vip, r.vport, r.addr, r.port, r.protocol));
        if (w) {
          // The operator's weight wins over a misc_dynamic one until the script asks for another.
          w.weight = req.weight;
          delete w.dynamic;
        }
        e.setWeight(ri, w ? weightInForce(w) : req.weight);
        return { ok: true };
      }
      case 'delete-real': {
        const r = req.real;
        const si = svcOf(r.vip, r.vport, r.protocol);
        const ri = e.findRealServer(si, r.addr, r.port);
        if (ri < 0)
          throw new Error(`no real server ${endpointToString(r.addr, r.port)} in that service`);
        e.removeRealServer(ri);
        this.weights.delete(realServerKey(r.vip, r.vport, r.addr, r.port, r.protocol));
        return { ok: true };
      }
      case 'add-laddr':
        this.refuseRoleConflict(req.laddr, 'local');
        e.addLocalAddress(
          svcOf(req.service.vip, req.service.vport, req.service.protocol),
          req.laddr,
        );
        this.syncRoutes();
        return { ok: true };
      case 'reload': {
        const r = this.reload({ force: req.force === true });
        return r.ok ? { ok: true } : { ok: false, error: r.error };
      }
      case 'zero':
        e.zeroCounters();
        return { ok: true };
      case 'handover':
      case 'shutdown':
      case 'drain':
        // Exits are the process's (src/cli/run.ts), which answers these before they get here.
        return { ok: false, error: `${req.op} is not available without fullnat run` };
    }
  }
}
