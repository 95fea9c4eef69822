import type { IpAddress } from '../wire/address.js';
import { ipv4ToString } from '../wire/bytes.js';
import { AddrPortIndex } from './addr-index.js';
import type { ConnTable } from './conn-table.js';
import type { LocalAddressPool } from './laddr.js';
import type { EngineOptions, RealServerConfig, ServiceConfig } from './options.js';
import { createScheduler } from './sched/index.js';
import type { SchedulerName } from './sched/scheduler.js';
import { RealServer, Service } from './services.js';

/**
 * Services, real servers and local addresses: the administrative side
 * (ipvsadm -A/-a/-e/-d, --add-laddr) and the lookups and typed arrays the
 * data path reads (service by VIP:vport, LIP set, per-service VIP/vport and
 * SYNPROXY switch, per-RS address).
 */
export class Registry {
  readonly services: Service[] = [];
  readonly realServers: RealServer[] = [];
  /** Live services by VIP:vport. Rebuilt (not edited) when a service goes. */
  serviceByKey = new AddrPortIndex();
  /** The LIPs, keyed with port -1: a packet to one is an RS reply. */
  readonly lipSet = new AddrPortIndex();
  /** Per-service VIP/vport and SYNPROXY switch, per-RS address: typed arrays for the data path. */
  svcVips = new Uint32Array(0);
  svcPorts = new Uint16Array(0);
  svcSynProxy = new Uint8Array(0);
  rsAddrs = new Uint32Array(0);

  constructor(
    private readonly opts: EngineOptions,
    private readonly table: ConnTable,
    private readonly laddrs: LocalAddressPool,
  ) {}

  addService(cfg: ServiceConfig): Service {
    const vip = ipv4Only(cfg.vip);
    if (this.findService(vip, cfg.vport) >= 0) {
      throw new Error(`service ${ipv4ToString(vip)}:${cfg.vport} already exists`);
    }
    // A service may start without LIPs (ipvsadm -A, then --add-laddr); until then its SYNs are refused.
    const idx = this.services.length;
    if (idx >= 0xffff) throw new Error('too many services');
    const svc = new Service(idx, vip, cfg.vport, createScheduler(cfg.scheduler), []);
    svc.proxyProtocol = cfg.proxyProtocol ?? 0;
    svc.synProxy = cfg.synProxy ?? false;
    if (svc.synProxy) this.table.enableSynproxy();
    this.services.push(svc);
    for (const l of cfg.laddrs) this.addLocalAddress(idx, l);
    for (const r of cfg.realServers) this.addRealServer(idx, r);
    this.serviceByKey.set(vip, cfg.vport, idx);
    this.syncArrays();
    return svc;
  }

  /** Index of the live service VIP:vport, or -1. */
  findService(vip: IpAddress, vport: number): number {
    return typeof vip === 'number' ? this.serviceByKey.get(vip, vport) : -1;
  }

  /** Index (into realServers) of RS addr:port in service svc, or -1. */
  findRealServer(svc: number, addr: IpAddress, port: number): number {
    const s = this.services[svc];
    if (!s) return -1;
    const rs = s.targets.find((r) => r.addr === addr && r.port === port);
    return rs ? rs.index : -1;
  }

  /**
   * Deletes a service: new SYNs to it are dropped; replies of its existing
   * connections still translate until they expire.
   */
  deleteService(svc: number): void {
    const s = this.liveService(svc);
    s.live = false;
    for (const r of s.targets) r.member = false;
    s.targets.length = 0;
    s.scheduler.rebuild(s.targets);
    const idx = new AddrPortIndex();
    for (const o of this.services) if (o.live) idx.set(o.vip, o.vport, o.index);
    this.serviceByKey = idx;
  }

  /** Switches a service between TOA (0) and PROXY protocol v1/v2 for new connections. */
  setProxyProtocol(svc: number, version: 0 | 1 | 2): void {
    this.liveService(svc).proxyProtocol = version;
  }

  /** Switches SYNPROXY on or off for a service's new connections. */
  setSynProxy(svc: number, on: boolean): void {
    const s = this.liveService(svc);
    s.synProxy = on;
    if (on) this.table.enableSynproxy();
    this.syncArrays();
  }

  setScheduler(svc: number, name: SchedulerName): void {
    const s = this.liveService(svc);
    s.scheduler = createScheduler(name);
    s.scheduler.rebuild(s.targets);
  }

  addLocalAddress(svc: number, address: IpAddress): void {
    const lip = ipv4Only(address);
    const s = this.liveService(svc);
    const li = this.laddrs.add(lip);
    if (!s.lipIndexes.includes(li)) s.lipIndexes.push(li);
    this.lipSet.set(lip, -1, 1);
  }

  /** Adds (or re-adds) a real server to a service; returns its index. */
  addRealServer(svc: number, cfg: RealServerConfig): number {
    const r = { ...cfg, addr: ipv4Only(cfg.addr) };
    const s = this.liveService(svc);
    if (s.targets.some((t) => t.addr === r.addr && t.port === r.port)) {
      throw new Error(`real server ${ipv4ToString(r.addr)}:${r.port} already in the service`);
    }
    // A removed RS with live connections keeps its index, so re-adding it resumes its counters.
    let rs = this.realServers.find(
      (t) => t.service === svc && !t.member && t.addr === r.addr && t.port === r.port,
    );
    if (rs) {
      rs.member = true;
      rs.weight = r.weight;
      rs.mtu = r.mtu ?? this.opts.rsMtu;
    } else {
      if (this.realServers.length >= this.opts.maxRealServers)
        throw new Error('too many real servers');
      rs = new RealServer(
        this.realServers.length,
        svc,
        r.addr,
        r.port,
        r.weight,
        r.mtu ?? this.opts.rsMtu,
      );
      // The same address:port behind another service: one destination, so one set of LIP ports.
      const twin = this.realServers.find((t) => t.addr === r.addr && t.port === r.port);
      if (twin) this.laddrs.sharePorts(rs.index, twin.index);
      this.realServers.push(rs);
    }
    s.targets.push(rs);
    s.scheduler.rebuild(s.targets);
    this.syncArrays();
    return rs.index;
  }

  /** Takes an RS out of its service: no new connections; the client paths end its existing ones. */
  removeRealServer(rsIndex: number): void {
    const rs = this.realServers[rsIndex];
    if (!rs || !rs.member) throw new RangeError(`no real server #${rsIndex}`);
    const s = this.services[rs.service]!;
    rs.member = false;
    s.targets.splice(s.targets.indexOf(rs), 1);
    s.scheduler.rebuild(s.targets);
  }

  setWeight(rsIndex: number, weight: number): void {
    const rs = this.realServers[rsIndex];
    if (!rs) throw new RangeError(`no real server #${rsIndex}`);
    rs.weight = weight;
    this.services[rs.service]!.scheduler.rebuild(this.services[rs.service]!.targets);
  }

  /** True when some live service has VIP `addr` (on any port). */
  isVip(addr: number): boolean {
    const svcs = this.services;
    for (let i = 0; i < svcs.length; i++) {
      if (svcs[i]!.live && svcs[i]!.vip === addr) return true;
    }
    return false;
  }

  private liveService(svc: number): Service {
    const s = this.services[svc];
    if (!s || !s.live) throw new RangeError(`no service #${svc}`);
    return s;
  }

  private syncArrays(): void {
    this.svcVips = Uint32Array.from(this.services, (s) => s.vip);
    this.svcPorts = Uint16Array.from(this.services, (s) => s.vport);
    this.svcSynProxy = Uint8Array.from(this.services, (s) => (s.synProxy ? 1 : 0));
    this.rsAddrs = Uint32Array.from(this.realServers, (r) => r.addr);
  }
}

/** The engine's tables hold IPv4 addresses; an IPv6 one is refused at the door, never half-added. */
function ipv4Only(a: IpAddress): number {
  if (typeof a !== 'number') throw new Error(`${a.text}: IPv6 addresses are not supported yet`);
  return a;
}
