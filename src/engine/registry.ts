import { addressEquals, endpointToString, type IpAddress } from '../wire/address.js';
import { foldSum, sumWords } from '../wire/checksum.js';
import { Addr6PortIndex, AddrPortIndex } from './addr-index.js';
import { addressWords, equal16, fold16 } from './addr6.js';
import type { ConnTable } from './conn-table.js';
import type { LocalAddressPool } from './laddr.js';
import type { PathMtu } from './path-mtu.js';
import type {
  EngineOptions,
  L4Protocol,
  RealServerConfig,
  ServiceConfig,
  UoaSetting,
} from './options.js';
import { createScheduler } from './sched/index.js';
import type { SchedulerName } from './sched/scheduler.js';
import { MAX_PERSISTENCE_TIMEOUT, type PersistenceTemplates } from './persistence.js';
import { RealServer, Service } from './services.js';
import type { UdpFlowTable } from './udp-table.js';

/** `svcUoa` values: the service's UOA placement, or UOA_INHERIT for the engine's `uoaMode`. */
export const UOA_OFF = 0;
export const UOA_IPO = 1;
export const UOA_OPP = 2;
export const UOA_INHERIT = 3;

export function uoaCode(m: UoaSetting | undefined): number {
  return m === undefined ? UOA_INHERIT : m === 'ipo' ? UOA_IPO : m === 'opp' ? UOA_OPP : UOA_OFF;
}

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
  /** Live IPv6 services by VIP:vport. */
  serviceByKey6 = new Addr6PortIndex();
  /** Live UDP services by VIP:vport, apart from TCP's so a TCP lookup is what it was. */
  udpServiceByKey = new AddrPortIndex();
  udpServiceByKey6 = new Addr6PortIndex();
  /** The LIPs, keyed with port -1: a packet to one is an RS reply. */
  readonly lipSet = new AddrPortIndex();
  readonly lipSet6 = new Addr6PortIndex();
  /** The IPv4 VIPs of live services, keyed with port -1: where ICMP to the LB's services goes. Rebuilt with serviceByKey. */
  vipSet = new AddrPortIndex();
  /** The IPv6 VIPs of live services, as vipSet: where ICMPv6 to the LB's services goes. */
  vipSet6 = new Addr6PortIndex();
  /**
   * Per-service VIP/vport and SYNPROXY switch, per-RS address: typed arrays for
   * the data path. An IPv6 VIP or RS address is fold16 in the u32 array and
   * its 16 bytes at 16 * index in the `6` array; `rsV6` marks IPv6 real servers.
   */
  svcVips = new Uint32Array(0);
  svcVips6 = new Uint8Array(0);
  /** svcVips6 as `addressWords` (addr6.ts), for the data path's copies. */
  svcVips6Words = addressWords(this.svcVips6);
  svcPorts = new Uint16Array(0);
  svcSynProxy = new Uint8Array(0);
  /** 1 for a NAT (masquerading) service: its entries hold no LIP (`NO_LIP`). */
  svcNat = new Uint8Array(0);
  /** Per UDP service, its UOA placement (UOA_* codes). */
  svcUoa = new Uint8Array(0);
  rsAddrs = new Uint32Array(0);
  rsAddrs6 = new Uint8Array(0);
  rsV6 = new Uint8Array(0);
  /**
   * The one's complement sum of each VIP's and each RS address's 16-bit
   * words (either family): the part of a connection's checksum delta
   * (nat6.ts `setAddressDelta`) that does not change per connection.
   */
  svcVipSums = new Uint32Array(0);
  rsAddrSums = new Uint32Array(0);

  constructor(
    private readonly opts: EngineOptions,
    private readonly table: ConnTable,
    private readonly laddrs: LocalAddressPool,
    private readonly pmtu: PathMtu,
    private readonly udp: UdpFlowTable,
    private readonly persist: PersistenceTemplates,
  ) {}

  addService(cfg: ServiceConfig): Service {
    const vip = cfg.vip;
    const protocol = cfg.protocol ?? 'TCP';
    if (this.findService(vip, cfg.vport, protocol) >= 0) {
      throw new Error(`service ${protocol} ${endpointToString(vip, cfg.vport)} already exists`);
    }
    if (protocol === 'UDP' && (cfg.synProxy === true || (cfg.proxyProtocol ?? 0) !== 0)) {
      throw new Error(
        `service UDP ${endpointToString(vip, cfg.vport)}: SYNPROXY and PROXY protocol are TCP's`,
      );
    }
    const forwarding = cfg.forwarding ?? 'fnat';
    if (
      forwarding === 'nat' &&
      (protocol !== 'TCP' ||
        typeof vip !== 'number' ||
        cfg.synProxy === true ||
        (cfg.proxyProtocol ?? 0) !== 0)
    ) {
      throw new Error(
        `service ${protocol} ${endpointToString(vip, cfg.vport)}: NAT forwarding is for IPv4 TCP services without SYNPROXY or PROXY protocol`,
      );
    }
    if (typeof vip === 'number') {
      // Refused before anything is added, so a bad service leaves no trace.
      for (const l of cfg.laddrs) checkLipFamily(vip, cfg.vport, l);
      for (const r of cfg.realServers) checkRsFamily(vip, cfg.vport, r.addr);
    }
    // A service may start without LIPs (ipvsadm -A, then --add-laddr); until then its SYNs are refused.
    const idx = this.services.length;
    if (idx >= 0xffff) throw new Error('too many services');
    const svc = new Service(idx, vip, cfg.vport, createScheduler(cfg.scheduler), [], protocol);
    svc.proxyProtocol = cfg.proxyProtocol ?? 0;
    svc.synProxy = cfg.synProxy ?? false;
    svc.uoaMode = cfg.uoaMode;
    svc.forwarding = forwarding;
    applyPersistence(svc, cfg.persistenceTimeout ?? 0, cfg.persistenceGranularity);
    if (svc.persistMs !== 0) this.persist.enable();
    if (svc.synProxy) this.table.enableSynproxy();
    if (protocol === 'UDP') {
      this.udp.enable(this.laddrs, this.realServers.length);
      if (typeof vip !== 'number') this.udp.table.enableIpv6();
    } else if (typeof vip !== 'number') this.table.enableIpv6();
    this.services.push(svc);
    for (const l of cfg.laddrs) this.addLocalAddress(idx, l);
    for (const r of cfg.realServers) this.addRealServer(idx, r);
    this.indexService(svc);
    this.syncArrays();
    return svc;
  }

  /** Index of the live service VIP:vport of `protocol`, or -1. */
  findService(vip: IpAddress, vport: number, protocol: L4Protocol = 'TCP'): number {
    const udp = protocol === 'UDP';
    if (typeof vip === 'number')
      return (udp ? this.udpServiceByKey : this.serviceByKey).get(vip, vport);
    return this.serviceByKey6Get(
      udp ? this.udpServiceByKey6 : this.serviceByKey6,
      vip.bytes,
      vport,
    );
  }

  private readonly portScratch = new Uint8Array(18);

  private serviceByKey6Get(index: Addr6PortIndex, addr: Uint8Array, vport: number): number {
    const k = this.portScratch;
    k.set(addr, 0);
    k[16] = vport >>> 8;
    k[17] = vport & 0xff;
    return index.getAt(k, 0, 16);
  }

  private indexService(s: Service): void {
    const udp = s.protocol === 'UDP';
    if (typeof s.vip === 'number') {
      (udp ? this.udpServiceByKey : this.serviceByKey).set(s.vip, s.vport, s.index);
      this.vipSet.set(s.vip, -1, 1);
    } else {
      (udp ? this.udpServiceByKey6 : this.serviceByKey6).set(s.vip.bytes, s.vport, s.index);
      this.vipSet6.set(s.vip.bytes, -1, 1);
    }
  }

  /** Index (into realServers) of RS addr:port in service svc, or -1. */
  findRealServer(svc: number, addr: IpAddress, port: number): number {
    const s = this.services[svc];
    if (!s) return -1;
    const rs = s.targets.find((r) => addressEquals(r.addr, addr) && r.port === port);
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
    this.serviceByKey = new AddrPortIndex();
    this.serviceByKey6 = new Addr6PortIndex();
    this.udpServiceByKey = new AddrPortIndex();
    this.udpServiceByKey6 = new Addr6PortIndex();
    this.vipSet = new AddrPortIndex();
    this.vipSet6 = new Addr6PortIndex();
    for (const o of this.services) if (o.live) this.indexService(o);
  }

  /** Switches a service between TOA (0) and PROXY protocol v1/v2 for new connections. */
  setProxyProtocol(svc: number, version: 0 | 1 | 2): void {
    this.liveService(svc).proxyProtocol = version;
  }

  /** Sets a UDP service's UOA placement (undefined: the engine's `uoaMode`) for the datagrams that follow. */
  setUoaMode(svc: number, mode: UoaSetting | undefined): void {
    this.liveService(svc).uoaMode = mode;
    this.syncArrays();
  }

  /** Switches SYNPROXY on or off for a service's new connections. */
  setSynProxy(svc: number, on: boolean): void {
    const s = this.liveService(svc);
    if (on && s.protocol === 'UDP') throw new Error('SYNPROXY is for TCP services');
    s.synProxy = on;
    if (on) this.table.enableSynproxy();
    this.syncArrays();
  }

  /**
   * Sets a service's persistence (timeout in seconds, 0: off; granularity:
   * an IPv4 netmask or an IPv6 prefix length). A changed granularity, or
   * persistence switched off, drops the service's templates: its clients
   * are scheduled afresh. A changed timeout applies from each template's
   * next use.
   */
  setPersistence(svc: number, timeoutS: number, granularity?: number): void {
    const s = this.liveService(svc);
    const mask = s.persistMask4;
    const prefix = s.persistPrefix6;
    applyPersistence(s, timeoutS, granularity);
    if (s.persistMs !== 0) this.persist.enable();
    if (
      this.persist.enabled &&
      (s.persistMs === 0 || mask !== s.persistMask4 || prefix !== s.persistPrefix6)
    )
      this.persist.flushService(svc);
  }

  setScheduler(svc: number, name: SchedulerName): void {
    const s = this.liveService(svc);
    s.scheduler = createScheduler(name);
    s.scheduler.rebuild(s.targets);
  }

  /**
   * Adds a LIP to a service. An IPv4 service takes IPv4 LIPs; an IPv6
   * service takes both families (IPv6 LIPs toward IPv6 real servers, IPv4
   * LIPs toward IPv4 ones: FNAT64).
   */
  addLocalAddress(svc: number, lip: IpAddress): void {
    const s = this.liveService(svc);
    checkLipFamily(s.vip, s.vport, lip);
    if (typeof lip !== 'number') this.table.enableIpv6();
    const li = this.laddrs.add(lip);
    // The UDP allocator registers LIPs in the same order, so the index is the same in both.
    if (this.udp.enabled) this.udp.laddrs.add(lip);
    if (!s.lipIndexes.includes(li)) s.lipIndexes.push(li);
    if (typeof lip === 'number') this.lipSet.set(lip, -1, 1);
    else this.lipSet6.set(lip.bytes, -1, 1);
  }

  /**
   * A fleet peer's LIP whose connections this node carries (sync): into the
   * pool (both allocators, so its ports are claimed) and the LIP set, so the
   * RS's replies to it are this node's; in no service's group, so no new
   * connection is ever sourced from it. Idempotent; returns its index.
   */
  addPeerLocalAddress(lip: IpAddress): number {
    if (typeof lip !== 'number') this.table.enableIpv6();
    const li = this.laddrs.add(lip);
    if (this.udp.enabled) this.udp.laddrs.add(lip);
    if (typeof lip === 'number') this.lipSet.set(lip, -1, 1);
    else this.lipSet6.set(lip.bytes, -1, 1);
    return li;
  }

  /** Adds (or re-adds) a real server to a service; returns its index. */
  addRealServer(svc: number, cfg: RealServerConfig): number {
    const r = cfg;
    const s = this.liveService(svc);
    checkRsFamily(s.vip, s.vport, r.addr);
    if (s.v6 && s.lipIndexes.length > 0 && !this.hasLipOfFamily(s, typeof r.addr !== 'number')) {
      throw new Error(
        `real server ${endpointToString(r.addr, r.port)}: service ${endpointToString(s.vip, s.vport)} has no ${typeof r.addr === 'number' ? 'IPv4' : 'IPv6'} local address to reach it from`,
      );
    }
    if (s.targets.some((t) => addressEquals(t.addr, r.addr) && t.port === r.port)) {
      throw new Error(`real server ${endpointToString(r.addr, r.port)} already in the service`);
    }
    // A removed RS with live connections keeps its index, so re-adding it resumes its counters.
    let rs = this.realServers.find(
      (t) => t.service === svc && !t.member && addressEquals(t.addr, r.addr) && t.port === r.port,
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
      const twin = this.realServers.find((t) => addressEquals(t.addr, r.addr) && t.port === r.port);
      if (twin) {
        this.laddrs.sharePorts(rs.index, twin.index);
        if (this.udp.enabled) this.udp.laddrs.sharePorts(rs.index, twin.index);
      }
      this.realServers.push(rs);
    }
    this.pmtu.configure(rs.index, rs.mtu);
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

  /** Sets an RS's configured path MTU (reload); a lower learned one stays until it expires. */
  setMtu(rsIndex: number, mtu: number): void {
    const rs = this.realServers[rsIndex];
    if (!rs) throw new RangeError(`no real server #${rsIndex}`);
    rs.mtu = mtu;
    this.pmtu.configure(rsIndex, mtu);
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

  /** True when some live service has the IPv6 VIP at b[off..off+16) (on any port). */
  isVip6At(b: Uint8Array, off: number): boolean {
    const svcs = this.services;
    for (let i = 0; i < svcs.length; i++) {
      const s = svcs[i]!;
      if (s.live && typeof s.vip !== 'number' && equal16(this.svcVips6, i * 16, b, off))
        return true;
    }
    return false;
  }

  /** True when service s has a LIP of the given family. */
  hasLipOfFamily(s: Service, v6: boolean): boolean {
    return s.lipIndexes.some((li) => (this.laddrs.isV6[li] === 1) === v6);
  }

  private liveService(svc: number): Service {
    const s = this.services[svc];
    if (!s || !s.live) throw new RangeError(`no service #${svc}`);
    return s;
  }

  private syncArrays(): void {
    const svcs = this.services;
    const vips = addressArrays(svcs.map((s) => s.vip));
    this.svcVips = vips.v4;
    this.svcVips6 = vips.v6;
    this.svcVips6Words = addressWords(vips.v6);
    this.svcVipSums = vips.sums;
    this.svcPorts = Uint16Array.from(svcs, (s) => s.vport);
    this.svcSynProxy = Uint8Array.from(svcs, (s) => (s.synProxy ? 1 : 0));
    this.svcNat = Uint8Array.from(svcs, (s) => (s.forwarding === 'nat' ? 1 : 0));
    this.svcUoa = Uint8Array.from(svcs, (s) => uoaCode(s.uoaMode));
    const rsAddrs = addressArrays(this.realServers.map((r) => r.addr));
    this.rsAddrs = rsAddrs.v4;
    this.rsAddrs6 = rsAddrs.v6;
    this.rsV6 = rsAddrs.isV6;
    this.rsAddrSums = rsAddrs.sums;
  }
}

/**
 * Addresses as the data path indexes them: `v4` the IPv4 ones (an IPv6
 * one folded to 32 bits), `v6` 16 bytes for each IPv6 one (zeros for
 * IPv4), `isV6` 1 where it is IPv6, `sums` the folded sum of each
 * address's 16-bit words.
 */
function addressArrays(addrs: readonly IpAddress[]): {
  v4: Uint32Array<ArrayBuffer>;
  v6: Uint8Array<ArrayBuffer>;
  isV6: Uint8Array<ArrayBuffer>;
  sums: Uint32Array<ArrayBuffer>;
} {
  const v4 = new Uint32Array(addrs.length);
  const v6 = new Uint8Array(addrs.length * 16);
  const isV6 = new Uint8Array(addrs.length);
  const sums = new Uint32Array(addrs.length);
  for (let i = 0; i < addrs.length; i++) {
    const a = addrs[i]!;
    if (typeof a === 'number') {
      v4[i] = a;
      sums[i] = foldSum((a >>> 16) + (a & 0xffff));
    } else {
      v4[i] = fold16(a.bytes, 0);
      v6.set(a.bytes, i * 16);
      isV6[i] = 1;
      sums[i] = foldSum(sumWords(a.bytes, 0, 16, 0));
    }
  }
  return { v4, v6, isV6, sums };
}

/** An IPv4 service takes IPv4 LIPs only: nothing would use an IPv6 one (FNAT46 is not supported). */
function checkLipFamily(vip: IpAddress, vport: number, lip: IpAddress): void {
  if (typeof vip === 'number' && typeof lip !== 'number')
    throw new Error(
      `local address ${lip.text}: an IPv4 service (${endpointToString(vip, vport)}) takes IPv4 local addresses only`,
    );
}

/** Checks and sets a service's persistence fields (see `Registry.setPersistence`). */
function applyPersistence(s: Service, timeoutS: number, granularity: number | undefined): void {
  if (!Number.isInteger(timeoutS) || timeoutS < 0 || timeoutS > MAX_PERSISTENCE_TIMEOUT)
    throw new Error(
      `persistence timeout ${timeoutS}: expected 1..${MAX_PERSISTENCE_TIMEOUT} seconds (0: off)`,
    );
  if (s.v6) {
    const p = granularity ?? 128;
    if (!Number.isInteger(p) || p < 1 || p > 128)
      throw new Error(`persistence granularity ${p}: an IPv6 service takes a prefix length 1..128`);
    s.persistPrefix6 = p;
  } else {
    const m = granularity ?? 0xffffffff;
    if (!Number.isInteger(m) || m < 0 || m > 0xffffffff)
      throw new Error(`persistence granularity ${m}: an IPv4 service takes a netmask`);
    s.persistMask4 = m >>> 0;
  }
  s.persistMs = timeoutS * 1000;
}

/** An IPv4 service takes IPv4 real servers only (IPv4 client to IPv6 RS, FNAT46, is not supported). */
function checkRsFamily(vip: IpAddress, vport: number, rs: IpAddress): void {
  if (typeof vip === 'number' && typeof rs !== 'number')
    throw new Error(
      `real server ${rs.text}: an IPv4 service (${endpointToString(vip, vport)}) cannot have an IPv6 real server (FNAT46 is not supported)`,
    );
}
