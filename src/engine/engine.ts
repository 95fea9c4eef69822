import { Ipv6Address, type IpAddress } from '../wire/address.js';
import { Ipv4Error, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4Field } from '../wire/ipv4.js';
import { TcpField } from '../wire/tcp.js';
import { ClientPath } from './client-path.js';
import { CF_IN_USE, CF_IPV6, type ConnTable } from './conn-table.js';
import { Connections } from './connections.js';
import { EngineContext } from './context.js';
import { C } from './counters.js';
import { FragmentInput } from './fragment-input.js';
import { IcmpInput } from './icmp-input.js';
import { Icmp6Errors } from './icmp6-error.js';
import { Icmp6Input } from './icmp6-input.js';
import type { LocalAddressPool } from './laddr.js';
import { Ipv6Path } from './ipv6-path.js';
import { Ipv6RsPath } from './ipv6-rs-path.js';
import { Nat } from './nat.js';
import { Nat6 } from './nat6.js';
import {
  DEFAULT_ENGINE_OPTIONS,
  checkUnknownServiceAction,
  type EngineOptions,
  type L4Protocol,
  type RealServerConfig,
  type ServiceConfig,
  type UoaSetting,
} from './options.js';
import { PacketPool, type Packet } from './packet.js';
import { ProxyHeaderWriter } from './proxy-header.js';
import type { Registry } from './registry.js';
import { RecordEntries } from './record-entries.js';
import { RsPath } from './rs-path.js';
import type { SchedulerName } from './sched/scheduler.js';
import { RealServer, Service } from './services.js';
import { SynProxy } from './synproxy/synproxy.js';
import type { AddressPrefix } from './sync/peer-prefixes.js';
import { SyncJournal, type SyncSettings } from './sync/journal.js';
import { TableTransfer, type ImportResult } from './table-transfer.js';
import type { TcpState } from './tcp-state.js';
import { UdpPath } from './udp-path.js';
import { UnknownFlowReplies } from './unknown-flow.js';
import { UnknownServiceReplies } from './unknown-service.js';

export interface ConnectionEntry {
  protocol: L4Protocol;
  /** A TCP connection's state; a UDP flow's is always None (IPVS's UDP has one state). */
  state: TcpState;
  expiresInMs: number;
  cip: IpAddress;
  cport: number;
  vip: IpAddress;
  vport: number;
  lip: IpAddress;
  lport: number;
  rip: IpAddress;
  rport: number;
}

/** A persistence template as `ctl -Lnc` lists it (IPVS shows templates with state NONE, client port 0). */
export interface TemplateListEntry {
  protocol: L4Protocol;
  expiresInMs: number;
  /** The client network: the client's address under the service's granularity. */
  client: IpAddress;
  vip: IpAddress;
  vport: number;
  rip: IpAddress;
  rport: number;
  /** Connections (or UDP flows) it holds to its RS. */
  controlled: number;
}

export { RealServer, Service };
export type { ImportResult };
export type { AddressPrefix, SyncSettings };
export type { ApplyResult } from './sync/apply.js';
export { SyncJournal } from './sync/journal.js';
export {
  ConnRecordError,
  readSnapshotHeader,
  snapshotAgeMs,
  type SnapshotHeader,
} from './conn-record.js';

/**
 * The FULLNAT data plane: one IPv4 packet in, zero or more packets out,
 * clock injected, no I/O. Outputs accumulate in `out[0, outCount)` until the
 * caller sends them and calls `clearOutput()`.
 *
 * A façade: `process` checks the packet and hands it to the client→RS path
 * (client-path.ts) or the RS→client path (rs-path.ts); the administrative
 * calls go to the registry (registry.ts). See README.md for the map.
 */
export class Engine {
  readonly opts: EngineOptions;
  readonly pool: PacketPool;
  readonly table: ConnTable;
  readonly laddrs: LocalAddressPool;
  readonly counters: Float64Array;
  readonly services: Service[];
  readonly realServers: RealServer[];
  readonly out: Packet[];

  private readonly ctx: EngineContext;
  private readonly reg: Registry;
  private readonly conns: Connections;
  private readonly synproxy: SynProxy;
  private readonly client: ClientPath;
  private readonly rs: RsPath;
  private readonly v6: Ipv6Path;
  private readonly unknown: UnknownServiceReplies;
  private readonly unknownFlow: UnknownFlowReplies;
  private readonly transfer: TableTransfer;
  private readonly icmp: IcmpInput;
  private readonly fragments: FragmentInput;
  private readonly udp: UdpPath;
  private readonly entries: RecordEntries;

  constructor(options: Partial<EngineOptions> = {}, pool?: PacketPool) {
    this.opts = { ...DEFAULT_ENGINE_OPTIONS, ...options };
    checkUnknownServiceAction(this.opts.unknownServiceAction);
    this.pool = pool ?? new PacketPool(256);
    const ctx = new EngineContext(this.opts, this.pool);
    this.ctx = ctx;
    this.reg = ctx.reg;
    this.table = ctx.table;
    this.laddrs = ctx.laddrs;
    this.counters = ctx.counters;
    this.services = ctx.reg.services;
    this.realServers = ctx.reg.realServers;
    this.out = ctx.out;
    this.synproxy = new SynProxy(ctx);
    const nat = new Nat(ctx, this.synproxy);
    this.conns = new Connections(ctx, this.synproxy);
    this.unknownFlow = new UnknownFlowReplies(ctx);
    // One PROXY header writer for both families' client paths.
    const proxyHeader = new ProxyHeaderWriter(ctx);
    this.client = new ClientPath(
      ctx,
      this.conns,
      nat,
      this.synproxy,
      proxyHeader,
      this.unknownFlow,
    );
    this.unknown = new UnknownServiceReplies(ctx);
    // One ICMPv6 error translator for both families' ICMP inputs (FNAT64 errors arrive as ICMPv4).
    const errors6 = new Icmp6Errors(ctx);
    const nat6 = new Nat6(ctx, this.synproxy);
    const rs6 = new Ipv6RsPath(ctx, this.conns, nat6, this.synproxy);
    this.fragments = new FragmentInput(ctx, this);
    this.udp = new UdpPath(ctx);
    this.v6 = new Ipv6Path(
      ctx,
      this.conns,
      nat6,
      rs6,
      proxyHeader,
      this.unknownFlow,
      this.synproxy,
      this.unknown,
      new Icmp6Input(ctx, errors6),
      this.fragments,
      this.udp,
    );
    this.rs = new RsPath(ctx, this.conns, nat, this.synproxy, rs6);
    this.synproxy.bind(this.conns, this.client, this.v6, this.unknownFlow);
    this.entries = new RecordEntries(ctx);
    this.transfer = new TableTransfer(ctx, this.entries);
    this.icmp = new IcmpInput(ctx, errors6);
  }

  /** Packets in `out` waiting to be sent. */
  get outCount(): number {
    return this.ctx.outCount;
  }

  addService(cfg: ServiceConfig): Service {
    return this.reg.addService(cfg);
  }

  /**
   * Applies option changes that need no restart (reload): TOA policy, MSS and
   * timestamp switches, timeouts (for new state changes), default RS MTU,
   * the answers to unknown services and unknown flows.
   */
  reconfigure(
    o: Partial<
      Pick<
        EngineOptions,
        | 'toaPolicy'
        | 'mssAdjust'
        | 'timestampRemove'
        | 'timeouts'
        | 'rsMtu'
        | 'unknownServiceAction'
        | 'unknownFlowReset'
        | 'unknownFlowResetRate'
        | 'unknownFlowResetBurst'
        | 'icmpEcho'
        | 'pmtuExpiresMs'
        | 'timeoutUdpMs'
        | 'uoaMode'
        | 'uoaMaxTrail'
      >
    >,
  ): void {
    if (o.unknownServiceAction !== undefined) checkUnknownServiceAction(o.unknownServiceAction);
    Object.assign(this.opts, o);
    this.ctx.optionsChanged();
    this.unknownFlow.optionsChanged();
  }

  /** Index of the live service VIP:vport of `protocol` (TCP unless given), or -1. */
  findService(vip: IpAddress, vport: number, protocol: L4Protocol = 'TCP'): number {
    return this.reg.findService(vip, vport, protocol);
  }

  /** Index (into realServers) of RS addr:port in service svc, or -1. */
  findRealServer(svc: number, addr: IpAddress, port: number): number {
    return this.reg.findRealServer(svc, addr, port);
  }

  /**
   * Deletes a service: new SYNs to it are dropped; replies of its existing
   * connections still translate until they expire.
   */
  deleteService(svc: number): void {
    this.reg.deleteService(svc);
  }

  /** Switches a service between TOA (0) and PROXY protocol v1/v2 for new connections. */
  setProxyProtocol(svc: number, version: 0 | 1 | 2): void {
    this.reg.setProxyProtocol(svc, version);
  }

  /** A UDP service's UOA placement for the datagrams that follow; undefined: the engine's `uoaMode`. */
  setUoaMode(svc: number, mode: UoaSetting | undefined): void {
    this.reg.setUoaMode(svc, mode);
  }

  /** Switches SYNPROXY on or off for a service's new connections. */
  setSynProxy(svc: number, on: boolean): void {
    this.reg.setSynProxy(svc, on);
  }

  /** Client persistence of a service: template life in seconds (0: off), IPv4 netmask or IPv6 prefix length. */
  setPersistence(svc: number, timeoutS: number, granularity?: number): void {
    this.reg.setPersistence(svc, timeoutS, granularity);
  }

  /** Persistence templates in force (those of deleted services too, while they last), at most `limit`. */
  listTemplates(limit = Infinity): TemplateListEntry[] {
    this.ctx.persist.sweepAll();
    return this.ctx.persist.list(limit).map((t) => {
      const svc = this.services[t.svc]!;
      const rs = this.realServers[t.rs]!;
      return {
        protocol: svc.protocol,
        expiresInMs: t.expiresInMs,
        client: t.addr6 === undefined ? t.addr4 : Ipv6Address.fromBytes(t.addr6, 0),
        vip: svc.vip,
        vport: svc.vport,
        rip: rs.addr,
        rport: rs.port,
        controlled: t.controlled,
      };
    });
  }

  /** Templates in the persistence table now (the expired ones freed first: a pass over the table). */
  get templateCount(): number {
    this.ctx.persist.sweepAll();
    return this.ctx.persist.count;
  }

  setScheduler(svc: number, name: SchedulerName): void {
    this.reg.setScheduler(svc, name);
  }

  addLocalAddress(svc: number, lip: IpAddress): void {
    this.reg.addLocalAddress(svc, lip);
  }

  /** Adds (or re-adds) a real server to a service; returns its index. */
  addRealServer(svc: number, r: RealServerConfig): number {
    return this.reg.addRealServer(svc, r);
  }

  /**
   * Takes an RS out of its service: no new connections; a client packet of one
   * of its connections ends that connection (IPVS's expire_nodest_conn): a SYN
   * is scheduled afresh, anything else answered with a RST. Its replies still
   * translate while the entry lives.
   */
  removeRealServer(rsIndex: number): void {
    this.reg.removeRealServer(rsIndex);
  }

  setWeight(rsIndex: number, weight: number): void {
    this.reg.setWeight(rsIndex, weight);
  }

  /** Sets an RS's configured path MTU; a lower one learned from the path stays until it expires. */
  setRealServerMtu(rsIndex: number, mtu: number): void {
    this.reg.setMtu(rsIndex, mtu);
  }

  /** The MTU the engine uses toward RS `rsIndex` now: the configured one or a lower learned one. */
  pathMtu(rsIndex: number): number {
    return this.ctx.pmtu.of(rsIndex);
  }

  /** Connections in the table, then UDP flows, for `ctl -Lnc`; at most `limit`. */
  listConnections(limit = Infinity): ConnectionEntry[] {
    const out: ConnectionEntry[] = [];
    this.listTable(this.table, 'TCP', out, limit);
    this.listTable(this.ctx.udp.table, 'UDP', out, limit);
    return out;
  }

  /** Connections and UDP flows in the tables together. */
  get connectionCount(): number {
    return this.table.count + this.ctx.udp.table.count;
  }

  private listTable(
    t: ConnTable,
    protocol: L4Protocol,
    out: ConnectionEntry[],
    limit: number,
  ): void {
    for (let i = 0; i < t.capacity && out.length < limit; i++) {
      if ((t.flags[i]! & CF_IN_USE) === 0) continue;
      const svc = this.services[t.svc[i]!]!;
      const v6 = (t.flags[i]! & CF_IPV6) !== 0;
      const replyV6 = t.replyIsV6(i);
      out.push({
        protocol,
        state: t.state[i]!,
        expiresInMs: Math.max(0, t.expires[i]! - this.ctx.now),
        cip: v6 ? Ipv6Address.fromBytes(t.cip6, i * 16) : t.cip[i]!,
        cport: t.cport[i]!,
        vip: svc.vip,
        vport: svc.vport,
        lip: replyV6 ? Ipv6Address.fromBytes(t.lip6, i * 16) : t.lip[i]!,
        lport: t.lport[i]!,
        rip: replyV6 ? Ipv6Address.fromBytes(t.rip6, i * 16) : t.rip[i]!,
        rport: t.rport[i]!,
      });
    }
  }

  /**
   * Every connection in the table, and every UDP flow, as a snapshot
   * (conn-record.ts): a header (format version, record size, count, the
   * engine clock, the ISN secret and clock origin), then one fixed-size
   * record per connection or flow. SYNPROXY
   * connections whose RS leg is still opening are left out and counted in
   * the header.
   */
  exportConnections(): Uint8Array {
    return this.transfer.exportTable();
  }

  /**
   * Enters a snapshot's connections into this engine, whose services, real
   * servers and LIPs are configured (maybe differently from the exporter's):
   * each with its remaining timeout less `elapsedMs`, its LIP:lport claimed,
   * its RS's connection counts kept. Records this configuration cannot hold
   * are skipped and counted by reason. A malformed snapshot throws
   * ConnRecordError and enters nothing.
   */
  importConnections(snapshot: Uint8Array, elapsedMs: number): ImportResult {
    return this.transfer.importTable(snapshot, elapsedMs);
  }

  /**
   * Turns connection sync on (sync/README.md): this node's entries are
   * journaled for its peers from now on, its LIP ports come from its share
   * of the port plan (port mod nodes = nodeId − 1), and with `fleetKey` its
   * SYNPROXY cookies use the fleet's keys. Called again (a reload), it takes
   * the new settings; the same ones change nothing. Without it the data path
   * pays one `undefined` check per hook and holds no sync memory.
   */
  enableSync(s: SyncSettings): void {
    const { nodeId, nodes, maxSynced } = s;
    if (!Number.isInteger(nodes) || nodes < 1 || nodes > 255)
      throw new RangeError(`sync: nodes ${nodes} is not 1..255`);
    if (!Number.isInteger(nodeId) || nodeId < 1 || nodeId > nodes)
      throw new RangeError(`sync: node id ${nodeId} is not 1..${nodes}`);
    if (!Number.isSafeInteger(maxSynced) || maxSynced < 0)
      throw new RangeError(`sync: max synced ${maxSynced} is not a count`);
    const ctx = this.ctx;
    if (ctx.sync === undefined)
      ctx.sync = new SyncJournal(ctx, this.conns, this.udp.flows, this.entries, s);
    else ctx.sync.configure(s);
    ctx.laddrs.setShare(nodeId, nodes);
    ctx.udp.setShare(nodeId, nodes);
    if (s.fleetKey !== undefined)
      this.synproxy.useFleetKey(s.fleetKey, this.opts.isnClockOriginMs, ctx.now);
  }

  /** Connection sync's journal (drain, apply, exportFor, purgeFrom, sweep); undefined before `enableSync`. */
  get syncJournal(): SyncJournal | undefined {
    return this.ctx.sync;
  }

  /**
   * A peer's LIP prefix: a synced record whose LIP falls inside it brings
   * that LIP here (pool and LIP set, no service's group), so the RS's
   * replies to it find the entry once the peer is gone. Needs `enableSync`.
   */
  addPeerPrefix(prefix: AddressPrefix): void {
    const sync = this.ctx.sync;
    if (sync === undefined) throw new Error('addPeerPrefix before enableSync');
    sync.prefixes.add(prefix);
  }

  /** Zeroes traffic stats and counters (ipvsadm -Z). */
  zeroCounters(): void {
    this.counters.fill(0);
    for (const s of this.services) {
      s.counters.fill(0);
      s.stats.fill(0);
    }
    for (const r of this.realServers) r.stats.fill(0);
  }

  clearOutput(): void {
    this.ctx.outCount = 0;
  }

  /** SYNPROXY: client packets held (out of the pool, not yet counted) while RS legs open. */
  get heldPackets(): number {
    return this.synproxy.heldPackets;
  }

  /** Fragments held by the reassemblers, waiting for the rest of their datagram. */
  get heldFragments(): number {
    return this.fragments.heldFragments;
  }

  /** Bytes the reassemblers preallocated (made on the first fragment of their family). */
  get reassemblyFootprintBytes(): number {
    return this.fragments.footprintBytes;
  }

  /**
   * A datagram the reassembler put back together: its fragments were
   * counted in rx_packets/rx_bytes on arrival, so it goes through
   * `process` without being counted again.
   */
  processReassembled(p: Packet): void {
    const ctx = this.ctx;
    ctx.add(C.rx_packets, -1);
    ctx.add(C.rx_bytes, -p.length);
    this.process(p);
  }

  /**
   * Sets the engine clock (ms since the engine started, below 2^32) and runs
   * connection timers up to it. The I/O loop calls it once per batch, so
   * `process` itself takes no time argument.
   */
  tick(now: number): void {
    this.ctx.setClock(now);
    this.synproxy.onTick(now);
    this.table.advance(now, this.conns.onExpire);
    // Only once used: a call that is not inlined would box `now` on every tick.
    if (this.fragments.active) this.fragments.expire(now);
    if (this.ctx.udp.enabled) this.ctx.udp.table.advance(now, this.udp.flows.onExpire);
  }

  /** Takes ownership of `p`: it is either emitted (possibly rewritten or split) or returned to the pool. */
  process(p: Packet): void {
    const ctx = this.ctx;
    ctx.count(C.rx_packets);
    ctx.add(C.rx_bytes, p.length);
    const b = p.buf;
    const ip = ctx.ip.wrap(b, p.start);
    const err = ip.validate(p.length);
    if (err !== Ipv4Error.None) {
      // IPv6 leaves the IPv4 path here, on its error branch, so IPv4 packets pay nothing for it.
      if (err === Ipv4Error.BadVersion && b[p.start]! >>> 4 === 6) {
        this.v6.process(p);
        return;
      }
      ctx.drop(p, err === Ipv4Error.BadChecksum ? C.bad_checksum_dropped : C.malformed_dropped);
      return;
    }
    // Link-layer padding may follow the datagram.
    p.length = ip.totalLength;
    if (ip.isFragment) {
      this.fragments.receive4(p);
      return;
    }
    if (ip.protocol !== IPPROTO_TCP) {
      this.notTcp(p);
      return;
    }
    const ipHl = ip.headerLength;
    const tcpOff = p.start + ipHl;
    if (!ctx.tcp.wrap(b, tcpOff).fits(p.length - ipHl)) {
      ctx.drop(p, C.malformed_dropped);
      return;
    }
    const dst = p.start + Ipv4Field.Dst;
    const svc = this.reg.serviceByKey.getAt(b, dst, tcpOff + TcpField.DstPort);
    if (svc >= 0) {
      ctx.count(C.inbound_packets);
      this.client.fromClient(p, svc, ipHl);
      return;
    }
    // The reply table first: a hit means the destination is a LIP.
    const c = ctx.table.lookupReplyAt(b, p.start, tcpOff);
    if (c >= 0) {
      ctx.count(C.outbound_packets);
      this.rs.fromRealServer(p, ipHl, c);
      return;
    }
    if (this.reg.lipSet.getAt(b, dst, -1) >= 0) {
      ctx.count(C.outbound_packets);
      this.unknownFlow.answer(p, ipHl);
      return;
    }
    if (this.opts.unknownServiceAction === 'icmp') this.unknown.answer(p, ipHl);
    ctx.drop(p, C.no_service_dropped);
  }

  /**
   * A packet that is not TCP, `ctx.ip` wrapped around it: UDP (udp-path.ts),
   * ICMP (errors about connections, echo to VIPs) or a drop. A method of its own, after the TCP
   * test, so `process` stays as small as it was and TCP pays nothing for it.
   */
  private notTcp(p: Packet): void {
    const ip = this.ctx.ip;
    if (ip.protocol === IPPROTO_UDP) this.udp.receive4(p, ip.headerLength);
    else if (ip.protocol === IPPROTO_ICMP) this.icmp.receive(p, ip.headerLength);
    else this.ctx.drop(p, C.not_tcp_dropped);
  }

  /** Reads a counter by name (for tests and exporters). */
  counter(name: keyof typeof C, svc?: number): number {
    const a = svc === undefined ? this.counters : this.services[svc]!.counters;
    return a[C[name]]!;
  }
}
