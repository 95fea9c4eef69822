import {
  equalsU32At,
  equalsU32AtPlus,
  get16,
  ipv4ToString,
  loadU32Plus,
  set16,
  storeU32From,
} from '../wire/bytes.js';
import {
  PROXY_V2_IPV4_LENGTH,
  encodeProxyV1,
  encodeProxyV2,
  proxyV1Length,
} from '../wire/proxy-protocol.js';
import { ChecksumDelta, alignedRangeSum, checksumAdjust } from '../wire/checksum.js';
import { Ipv4Error, Ipv4View, IPPROTO_TCP } from '../wire/ipv4.js';
import {
  TCP_ACK,
  TCP_FIN,
  TCP_MAX_OPTIONS,
  TCP_MIN_HEADER,
  TCP_RST,
  TCP_SYN,
  TcpView,
} from '../wire/tcp.js';
import { TCPOLEN_TIMESTAMP, TcpOptionSummary } from '../wire/tcp-options.js';
import { TOA_V4_LEN } from '../wire/toa.js';
import {
  DEFAULT_ENGINE_OPTIONS,
  checkUnknownServiceAction,
  type EngineOptions,
  type ServiceConfig,
  type ToaSetting,
} from './options.js';
import { AddrPortIndex } from './addr-index.js';
import {
  CF_FDATA_KNOWN,
  CF_IN_USE,
  CF_SP_PENDING,
  CF_SP_WIN_IN,
  CF_SP_WIN_OUT,
  CF_SYNPROXY,
  ConnTable,
} from './conn-table.js';
import { C, newCounterArray } from './counters.js';
import {
  ICMP_HOST_UNREACHABLE,
  ICMP_PORT_UNREACHABLE,
  craftDestUnreachable,
  craftFragNeeded,
  craftRst,
} from './craft.js';
import { IsnGenerator, hashAddrAt } from './isn.js';
import { LocalAddressPool } from './laddr.js';
import {
  DEFAULT_BUFFER_SIZE,
  DEFAULT_HEADROOM,
  MAX_IP_PACKET,
  Packet,
  PacketPool,
} from './packet.js';
import { createScheduler } from './sched/index.js';
import type { SchedulerName } from './sched/scheduler.js';
import {
  RealServer,
  STAT_CONNS,
  STAT_IN_BYTES,
  STAT_IN_PACKETS,
  STAT_OUT_BYTES,
  STAT_OUT_PACKETS,
  Service,
} from './services.js';
import {
  COOKIE_PERIOD_MS,
  HeldPackets,
  SynCookies,
  cookieData,
  cookieMss,
  cookieSack,
  cookieWscale,
  mssIndex,
  reflectCookieSynAck,
  reflectReset,
  writeRsSyn,
} from './synproxy/cookies.js';
import { TcpState, nextStateInbound, nextStateOutbound, timeoutTable } from './tcp-state.js';
import { TokenBucket } from './token-bucket.js';
import { OptionPlan, ToaWriter, nopOut } from './toa-insert.js';

export interface ConnectionEntry {
  state: TcpState;
  expiresInMs: number;
  cip: number;
  cport: number;
  vip: number;
  vport: number;
  lip: number;
  lport: number;
  rip: number;
  rport: number;
}

export { RealServer, Service };

/**
 * The FULLNAT data plane: one IPv4 packet in, zero or more packets out,
 * clock injected, no I/O. Outputs accumulate in `out[0, outCount)` until the
 * caller sends them and calls `clearOutput()`.
 */
export class Engine {
  readonly opts: EngineOptions;
  readonly pool: PacketPool;
  readonly table: ConnTable;
  readonly laddrs: LocalAddressPool;
  readonly counters = newCounterArray();
  readonly services: Service[] = [];
  readonly realServers: RealServer[] = [];
  readonly out: Packet[] = [];
  outCount = 0;

  private serviceByKey = new AddrPortIndex();
  private readonly lipSet = new AddrPortIndex();
  private readonly isn: IsnGenerator;
  private timeoutsMs: Uint32Array;
  private readonly ip = new Ipv4View();
  private readonly tcp = new TcpView();
  /** Views for packets the engine builds itself, so `ip`/`tcp` stay on the packet being processed. */
  private readonly pip = new Ipv4View();
  private readonly ptcp = new TcpView();
  private readonly opt = new TcpOptionSummary();
  private readonly toa: ToaWriter;
  private policy: ToaSetting;
  private readonly onExpire = (i: number): void => this.expireConn(i);
  private now = 0;
  /** The same clock as `now`, in a cell that can be handed to helpers without boxing. */
  private readonly clock = new Float64Array(1);
  private readonly delta = new ChecksumDelta();
  private readonly sackScratch = new Uint32Array(1);
  /** Per-service VIP/vport and per-RS address as typed arrays, read on the data path. */
  private svcVips = new Uint32Array(0);
  private svcPorts = new Uint16Array(0);
  private svcSynProxy = new Uint8Array(0);
  private rsAddrs = new Uint32Array(0);
  /** SYNPROXY: syncookies, client packets held while RS legs open, scratch for 32-bit values. */
  private readonly cookies: SynCookies;
  private readonly held: HeldPackets;
  private readonly u32 = new Uint32Array(2);
  private readonly zero = new Uint32Array(1);
  /** Rate limit of the ICMP unreachables for unknown services. */
  private readonly icmpBucket: TokenBucket;

  constructor(options: Partial<EngineOptions> = {}, pool?: PacketPool) {
    this.opts = { ...DEFAULT_ENGINE_OPTIONS, ...options };
    this.policy = this.opts.toaPolicy;
    this.pool = pool ?? new PacketPool(256);
    this.table = new ConnTable(this.opts.maxConnections);
    this.laddrs = new LocalAddressPool(
      this.opts.maxLocalAddresses,
      this.opts.maxRealServers,
      this.opts.portRange,
      this.opts.isnSecret,
    );
    this.isn = new IsnGenerator(this.opts.isnSecret);
    this.timeoutsMs = timeoutTable(this.opts.timeouts);
    this.toa = new ToaWriter(this.pool);
    this.cookies = new SynCookies(this.opts.synproxySecret);
    this.held = new HeldPackets(
      Math.max(1, this.opts.synproxyMaxStoredAcks),
      this.opts.synproxyMaxStoredTotal,
    );
    checkUnknownServiceAction(this.opts.unknownServiceAction);
    this.icmpBucket = new TokenBucket(this.opts.icmpRateLimit, this.opts.icmpRateBurst);
  }

  addService(cfg: ServiceConfig): Service {
    if (this.findService(cfg.vip, cfg.vport) >= 0) {
      throw new Error(`service ${ipv4ToString(cfg.vip)}:${cfg.vport} already exists`);
    }
    // A service may start without LIPs (ipvsadm -A, then --add-laddr); until then its SYNs are refused.
    const idx = this.services.length;
    if (idx >= 0xffff) throw new Error('too many services');
    const svc = new Service(idx, cfg.vip, cfg.vport, createScheduler(cfg.scheduler), []);
    svc.proxyProtocol = cfg.proxyProtocol ?? 0;
    svc.synProxy = cfg.synProxy ?? false;
    if (svc.synProxy) this.table.enableSynproxy();
    this.services.push(svc);
    for (const l of cfg.laddrs) this.addLocalAddress(idx, l);
    for (const r of cfg.realServers) this.addRealServer(idx, r);
    this.serviceByKey.set(cfg.vip, cfg.vport, idx);
    this.syncArrays();
    return svc;
  }

  /**
   * Applies option changes that need no restart (reload): TOA policy, MSS and
   * timestamp switches, timeouts (for new state changes), default RS MTU.
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
      >
    >,
  ): void {
    if (o.unknownServiceAction !== undefined) checkUnknownServiceAction(o.unknownServiceAction);
    Object.assign(this.opts, o);
    this.policy = this.opts.toaPolicy;
    this.timeoutsMs = timeoutTable(this.opts.timeouts);
  }

  /** Index of the live service VIP:vport, or -1. */
  findService(vip: number, vport: number): number {
    return this.serviceByKey.get(vip, vport);
  }

  /** Index (into realServers) of RS addr:port in service svc, or -1. */
  findRealServer(svc: number, addr: number, port: number): number {
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

  addLocalAddress(svc: number, lip: number): void {
    const s = this.liveService(svc);
    const li = this.laddrs.add(lip);
    if (!s.lipIndexes.includes(li)) s.lipIndexes.push(li);
    this.lipSet.set(lip, -1, 1);
  }

  /** Adds (or re-adds) a real server to a service; returns its index. */
  addRealServer(
    svc: number,
    r: { addr: number; port: number; weight: number; mtu?: number },
  ): number {
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
      this.realServers.push(rs);
    }
    s.targets.push(rs);
    s.scheduler.rebuild(s.targets);
    this.syncArrays();
    return rs.index;
  }

  /** Takes an RS out of its service: no new connections; existing ones run to their end. */
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

  /** Connections in the table, for `ctl -Lnc`; at most `limit`. */
  listConnections(limit = Infinity): ConnectionEntry[] {
    const t = this.table;
    const out: ConnectionEntry[] = [];
    for (let i = 0; i < t.capacity && out.length < limit; i++) {
      if ((t.flags[i]! & CF_IN_USE) === 0) continue;
      const svc = this.services[t.svc[i]!]!;
      out.push({
        state: t.state[i]! as TcpState,
        expiresInMs: Math.max(0, t.expires[i]! - this.now),
        cip: t.cip[i]!,
        cport: t.cport[i]!,
        vip: svc.vip,
        vport: svc.vport,
        lip: t.lip[i]!,
        lport: t.lport[i]!,
        rip: t.rip[i]!,
        rport: t.rport[i]!,
      });
    }
    return out;
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
    this.outCount = 0;
  }

  /** SYNPROXY: client packets held (out of the pool, not yet counted) while RS legs open. */
  get heldPackets(): number {
    return this.held.total;
  }

  private emit(p: Packet): void {
    this.counters[C.tx_packets]!++;
    this.counters[C.tx_bytes]! += p.length;
    this.out[this.outCount++] = p;
  }

  /** Emits the received packet itself (rewritten); see DROP_COUNTERS for the other fate. */
  private forward(p: Packet): void {
    this.counters[C.forwarded_packets]!++;
    this.emit(p);
  }

  private drop(p: Packet, counter: number): void {
    this.counters[counter]!++;
    this.pool.give(p);
  }

  private count(svc: number, counter: number): void {
    this.counters[counter]!++;
    this.services[svc]!.counters[counter]!++;
  }

  /** Drops p, counting why globally and for its service. */
  private dropSvc(p: Packet, svc: number, counter: number): void {
    this.count(svc, counter);
    this.pool.give(p);
  }

  /**
   * Sets the engine clock (ms since the engine started, below 2^32) and runs
   * connection timers up to it. The I/O loop calls it once per batch, so
   * `process` itself takes no time argument.
   */
  tick(now: number): void {
    this.now = now;
    this.clock[0] = now;
    this.cookies.rotate(Math.floor(now / COOKIE_PERIOD_MS));
    this.table.advance(now, this.onExpire);
  }

  /** Takes ownership of `p`: it is either emitted (possibly rewritten or split) or returned to the pool. */
  process(p: Packet): void {
    this.counters[C.rx_packets]!++;
    this.counters[C.rx_bytes]! += p.length;
    const b = p.buf;
    const ip = this.ip.wrap(b, p.start);
    const err = ip.validate(p.length);
    if (err !== Ipv4Error.None) {
      this.drop(p, err === Ipv4Error.BadChecksum ? C.bad_checksum_dropped : C.malformed_dropped);
      return;
    }
    // Link-layer padding may follow the datagram.
    p.length = ip.totalLength;
    if (ip.isFragment) {
      this.drop(p, C.fragment_dropped);
      return;
    }
    if (ip.protocol !== IPPROTO_TCP) {
      this.drop(p, C.not_tcp_dropped);
      return;
    }
    const ipHl = ip.headerLength;
    const tcpOff = p.start + ipHl;
    const tcp = this.tcp.wrap(b, tcpOff);
    if (!tcp.fits(p.length - ipHl)) {
      this.drop(p, C.malformed_dropped);
      return;
    }
    const svc = this.serviceByKey.getAt(b, p.start + 16, tcpOff + 2);
    if (svc >= 0) {
      this.counters[C.inbound_packets]!++;
      this.inbound(p, svc, ipHl);
      return;
    }
    if (this.lipSet.getAt(b, p.start + 16, -1) >= 0) {
      this.counters[C.outbound_packets]!++;
      this.outbound(p, ipHl);
      return;
    }
    if (this.opts.unknownServiceAction === 'icmp') this.unreachable(p, ipHl);
    this.drop(p, C.no_service_dropped);
  }

  /**
   * `unknown_service_action icmp`: answers a TCP packet that no service and
   * no LIP claims with ICMP destination unreachable from its destination,
   * quoting its IP header and first 8 bytes (RFC 792): port unreachable when
   * the destination is a VIP (the LB is that host), host unreachable
   * otherwise. Never for a RST, nor for a multicast, broadcast, loopback or
   * "this network" source or destination (RFC 1122 3.2.2, RFC 1812 4.3.2.7);
   * ICMP and fragments never get here. At most `icmpRateLimit` a second,
   * `icmpRateBurst` at once. `p` stays the caller's to drop.
   */
  private unreachable(p: Packet, ipHl: number): void {
    const ip = this.ip;
    const src = ip.src;
    const dst = ip.dst;
    const s8 = src >>> 24;
    const d8 = dst >>> 24;
    if (this.tcp.rst || s8 === 0 || s8 === 127 || s8 >= 224 || d8 === 0 || d8 === 127 || d8 >= 224)
      return;
    if (!this.icmpBucket.take(this.now)) {
      this.counters[C.icmp_unreachable_ratelimited]!++;
      return;
    }
    let code = ICMP_HOST_UNREACHABLE;
    const svcs = this.services;
    for (let i = 0; i < svcs.length; i++) {
      if (svcs[i]!.live && svcs[i]!.vip === dst) {
        code = ICMP_PORT_UNREACHABLE;
        break;
      }
    }
    const r = this.pool.take();
    craftDestUnreachable(r, dst, src, code, 0, p.buf, p.start, ipHl);
    this.counters[C.icmp_unreachable_sent]!++;
    this.emit(r);
  }

  // ---- client → RS ------------------------------------------------------------------

  private inbound(p: Packet, svcIdx: number, ipHl: number): void {
    const b = p.buf;
    const tcp = this.tcp;
    const t = this.table;
    const tcpOff = p.start + ipHl;

    let c = t.lookupClientAt(b, p.start, tcpOff, svcIdx);
    if (c >= 0 && (t.flags[c]! & CF_SP_PENDING) !== 0) {
      this.spHold(p, c, ipHl);
      return;
    }
    if (this.svcSynProxy[svcIdx] !== 0) {
      c = this.spInbound(p, svcIdx, ipHl, c);
      if (c < 0) return;
    } else {
      const flags = tcp.flags;
      const syn = (flags & TCP_SYN) !== 0;
      const ackFlag = (flags & TCP_ACK) !== 0;
      if (
        c >= 0 &&
        syn &&
        !ackFlag &&
        (t.state[c] === TcpState.TimeWait || t.state[c] === TcpState.Close)
      ) {
        // A new connection reusing the tuple of one that is closing: start afresh.
        this.releaseConn(c);
        c = -1;
      }
      if (c < 0) {
        if (!syn || (flags & (TCP_ACK | TCP_RST | TCP_FIN)) !== 0) {
          this.drop(p, C.no_conn_dropped);
          return;
        }
        c = this.newConnection(p, svcIdx, tcpOff);
        if (c < 0) return;
      }
    }
    this.inboundConn(p, svcIdx, ipHl, c);
  }

  /**
   * The client packet p of connection c toward the RS: options, TOA, state,
   * translation. `this.ip`/`this.tcp` are wrapped around p.
   */
  private inboundConn(p: Packet, svcIdx: number, ipHl: number, c: number): void {
    const b = p.buf;
    const ip = this.ip;
    const tcp = this.tcp;
    const t = this.table;
    const tcpOff = p.start + ipHl;
    const flags = tcp.flags;
    const syn = (flags & TCP_SYN) !== 0;
    const ackFlag = (flags & TCP_ACK) !== 0;
    const fin = (flags & TCP_FIN) !== 0;
    const rst = (flags & TCP_RST) !== 0;
    const sp = (t.flags[c]! & CF_SYNPROXY) !== 0;

    const hl = tcp.headerLength;
    const optStart = tcpOff + TCP_MIN_HEADER;
    const optEnd = tcpOff + hl;
    const o = this.opt;
    if (hl > TCP_MIN_HEADER) o.parse(b, optStart, optEnd);
    else o.parse(b, optStart, optStart);

    // Client-supplied TOAs would be read by the RS module as the client address.
    if (this.policy === 'fullnat' && o.toaCount > 0) {
      this.toa.stripToa(tcp, optStart, optEnd);
      this.count(svcIdx, C.toa_spoof_stripped);
    }
    if (syn && this.opts.timestampRemove && o.hasTimestamp) {
      nopOut(tcp, o.timestampAt, TCPOLEN_TIMESTAMP);
      this.count(svcIdx, C.timestamp_removed);
    }
    // Under SYNPROXY the client SACKs RS data in the cookie's sequence space.
    if (sp && ackFlag && o.sackBlocks > 0)
      this.shiftSackEdges(b, tcpOff, o.sackAt, o.sackBlocks, t.ackDelta[c]!);

    const payloadLen = p.length - ipHl - hl;
    const mtu = this.realServers[t.rs[c]!]!.mtu;
    const fdataKnown = (t.flags[c]! & CF_FDATA_KNOWN) !== 0;
    // Compared in the RS's space: a SYNPROXY client acks in the cookie's space.
    const concluding =
      fdataKnown &&
      ackFlag &&
      !syn &&
      !rst &&
      (sp
        ? equalsU32AtPlus(b, tcpOff + 8, t.ackDelta, c, t.fdataSeq, c, 0)
        : equalsU32At(b, tcpOff + 8, t.fdataSeq, c));
    const shift = t.shift[c]!;
    // A PROXY-protocol connection carries the client address in its stream, not in a TOA.
    const wantToa =
      shift === 0 &&
      this.policy !== 'off' &&
      (this.policy === 'lvs' ? (syn && !ackFlag) || (concluding && !fin) : concluding);

    // Decide before rewriting, so an ICMP error can still quote the packet as the client sent it.
    let mode = ToaMode.None;
    let plan = OptionPlan.Keep;
    // What must fit the RS path is one segment: a GSO super-packet is cut after us.
    const segment = p.gsoSize > 0 ? Math.min(p.length, ipHl + hl + p.gsoSize) : p.length;
    if (wantToa) {
      const fitsMtu = segment + TOA_V4_LEN <= mtu;
      const hasRoom = hl - TCP_MIN_HEADER + TOA_V4_LEN <= TCP_MAX_OPTIONS;
      let growth = TOA_V4_LEN;
      let resizedGso = 0;
      if (this.policy === 'lvs') {
        if (!fitsMtu) this.count(svcIdx, C.toa_failed_mtu);
        else if (!hasRoom) this.count(svcIdx, C.toa_failed_no_room);
        else mode = ToaMode.Insert;
      } else {
        plan = this.toa.plan(b, optStart, optEnd, syn, TOA_V4_LEN);
        const newHl =
          plan === OptionPlan.Impossible
            ? 0
            : TCP_MIN_HEADER + this.toa.newOptionsLength(b, optStart, optEnd, plan, TOA_V4_LEN);
        growth = newHl - hl;
        if (plan === OptionPlan.Impossible) this.count(svcIdx, C.toa_failed_no_room);
        else if (segment + growth <= mtu)
          mode = plan === OptionPlan.Keep ? ToaMode.Insert : ToaMode.Rebuild;
        else if (this.policy === 'fullnat') {
          mode = ToaMode.Split;
          // A super-packet is split by the kernel: smaller segments, each with the TOA.
          if (p.gsoSize > 0 && mtu - ipHl - newHl > 0) {
            resizedGso = mtu - ipHl - newHl;
            mode = plan === OptionPlan.Keep ? ToaMode.Insert : ToaMode.Rebuild;
          }
        } else this.count(svcIdx, C.toa_failed_mtu);
      }
      // In-place growth needs tailroom and must stay a valid IPv4 length; a fresh buffer from the split path has both.
      if (
        mode !== ToaMode.None &&
        mode !== ToaMode.Split &&
        (p.tailroom < TCP_MAX_OPTIONS || p.length + growth > MAX_IP_PACKET)
      ) {
        mode = this.policy === 'fullnat' ? ToaMode.Split : ToaMode.None;
        if (mode === ToaMode.None) this.count(svcIdx, C.toa_failed_mtu);
      } else if (resizedGso > 0) {
        p.gsoSize = resizedGso;
        this.count(svcIdx, C.toa_gso_resized);
      }
    }
    if (mode === ToaMode.None && segment > mtu) {
      this.tooBig(p, ip.dontFragment, mtu, ipHl);
      return;
    }

    const prev = t.state[c]! as TcpState;
    const next = nextStateInbound(prev, syn, ackFlag, fin, rst);
    t.expires[c] = this.now + this.timeoutsMs[next]!;
    if (next !== prev) {
      this.setState(c, prev, next);
      // Only a shorter timeout can leave the entry in a slot later than its new deadline.
      if (this.timeoutsMs[next]! < this.timeoutsMs[prev]!) t.armTimer(c);
    }
    loadU32Plus(t.clientNxt, c, b, tcpOff + 4, payloadLen + (syn ? 1 : 0) + (fin ? 1 : 0));
    const svcObj = this.services[svcIdx]!;
    svcObj.counters[C.inbound_packets]!++;
    svcObj.stats[STAT_IN_PACKETS]!++;
    svcObj.stats[STAT_IN_BYTES]! += p.length;
    const rsStats = this.realServers[t.rs[c]!]!.stats;
    rsStats[STAT_IN_PACKETS]!++;
    rsStats[STAT_IN_BYTES]! += p.length;

    // The TOA goes in while the packet still carries the client's address and port, which it copies.
    switch (mode) {
      case ToaMode.None:
        if (shift !== 0 && !syn) {
          // The client's first bytes (or its FIN) go out behind the PROXY header, and so do their retransmissions.
          const first =
            !rst &&
            (payloadLen > 0 || fin) &&
            equalsU32AtPlus(b, tcpOff + 4, t.seqDelta, c, t.lbIsn, c, 1);
          this.natInbound(c, shift);
          if (first) this.emitProxyHeader(p, ipHl, c);
        } else {
          this.natInbound(c, 0);
        }
        this.forward(p);
        return;
      case ToaMode.Insert:
        this.toa.insertV4(p, ipHl);
        this.count(svcIdx, syn ? C.toa_inserted_syn : C.toa_inserted);
        // The headers may have moved into the headroom.
        this.ip.wrap(p.buf, p.start);
        this.tcp.wrap(p.buf, p.start + ipHl);
        this.natInbound(c, 0);
        this.forward(p);
        return;
      case ToaMode.Rebuild:
        if (!this.toa.rebuildV4(p, ipHl, plan)) {
          this.drop(p, C.bad_checksum_dropped);
          return;
        }
        this.count(svcIdx, C.toa_pruned);
        this.count(svcIdx, syn ? C.toa_inserted_syn : C.toa_inserted);
        this.ip.wrap(p.buf, p.start);
        this.tcp.wrap(p.buf, p.start + ipHl);
        this.natInbound(c, 0);
        this.forward(p);
        return;
      case ToaMode.Split: {
        const n = this.toa.splitV4(p, ipHl, plan, mtu);
        if (n <= 0) {
          // n == 0: the RS path MTU cannot even hold the headers; a configuration error, counted.
          this.drop(p, n < 0 ? C.bad_checksum_dropped : C.too_big_dropped);
          return;
        }
        if (plan !== OptionPlan.Keep) this.count(svcIdx, C.toa_pruned);
        this.count(svcIdx, C.toa_inserted);
        if (n > 1) {
          this.count(svcIdx, C.toa_split);
          this.counters[C.toa_split_segments]! += n;
        }
        for (let k = 0; k < n; k++) {
          const q = this.toa.pieces[k]!;
          this.ip.wrap(q.buf, q.start);
          this.tcp.wrap(q.buf, q.start + ipHl);
          this.natInbound(c, 0);
          this.emit(q);
        }
        this.counters[C.forwarded_packets]!++;
        this.pool.give(p);
        return;
      }
    }
  }

  /**
   * Schedules an RS and a LIP:port for the client packet p and enters the
   * connection. `isnAdjust`: the client ISN is p's seq plus this (-1 for the
   * ACK that opens a SYNPROXY connection). `timeoutMs`: the first deadline.
   */
  private newConnection(
    p: Packet,
    svcIdx: number,
    tcpOff: number,
    isnAdjust = 0,
    timeoutMs = this.timeoutsMs[TcpState.SynRecv]!,
  ): number {
    const t = this.table;
    const svc = this.services[svcIdx]!;
    if (t.full) {
      this.rejectSyn(p, svcIdx, C.table_full);
      return -1;
    }
    const b = p.buf;
    const s = p.start;
    const pick = svc.scheduler.pick(svc.targets, hashAddrAt(b, s + 12));
    if (pick < 0) {
      this.rejectSyn(p, svcIdx, C.no_real_server);
      return -1;
    }
    const rs = svc.targets[pick]!;
    let lipSlot = -1;
    let lport = -1;
    for (let tries = 0; tries < svc.lipIndexes.length; tries++) {
      lipSlot = svc.lipIndexes[svc.nextLip()]!;
      lport = this.laddrs.allocate(lipSlot, rs.index);
      if (lport >= 0) break;
    }
    if (lport < 0) {
      this.rejectSyn(p, svcIdx, C.laddr_ports_exhausted);
      return -1;
    }
    const c = t.insertAt(b, s, tcpOff, svcIdx);
    t.expires[c] = this.now + timeoutMs;
    t.armTimer(c);
    t.lip[c] = this.laddrs.addrs[lipSlot]!;
    t.lport[c] = lport;
    t.rip[c] = this.rsAddrs[rs.index]!;
    t.rport[c] = rs.port;
    t.linkReply(c);
    t.rs[c] = rs.index;
    t.lipIndex[c] = lipSlot;
    this.isn.storeSeqDelta(t, c, this.clock, b, tcpOff + 4, isnAdjust);
    if (svc.proxyProtocol !== 0) {
      t.shift[c] =
        svc.proxyProtocol === 2
          ? PROXY_V2_IPV4_LENGTH
          : proxyV1Length(t.cip[c]!, t.cport[c]!, svc.vip, svc.vport);
    }
    rs.inactiveConns++;
    rs.stats[STAT_CONNS]!++;
    svc.stats[STAT_CONNS]!++;
    this.count(svcIdx, C.conns_created);
    return c;
  }

  /**
   * Answers a SYN (or a SYNPROXY cookie ACK) that cannot become a connection
   * with a RST, counting why.
   */
  private rejectSyn(p: Packet, svcIdx: number, reason: number): void {
    this.count(svcIdx, reason);
    const ip = this.ip;
    const tcp = this.tcp;
    const r = this.pool.take();
    if (tcp.ackFlag) craftRst(r, ip.dst, tcp.dstPort, ip.src, tcp.srcPort, tcp.ack, 0, false);
    else craftRst(r, ip.dst, tcp.dstPort, ip.src, tcp.srcPort, 0, (tcp.seq + 1) >>> 0, true);
    this.drop(p, C.syn_rejected);
    this.counters[C.rst_sent]!++;
    this.emit(r);
  }

  private tooBig(p: Packet, df: boolean, mtu: number, ipHl: number): void {
    if (!df) {
      // IPv4 fragmentation on the way to the RS is not supported: TCP clients set DF.
      this.drop(p, C.too_big_dropped);
      return;
    }
    const r = this.pool.take();
    const ip = this.ip;
    craftFragNeeded(r, ip.dst, ip.src, mtu, p.buf, p.start, ipHl);
    this.counters[C.icmp_frag_needed_sent]!++;
    this.drop(p, C.too_big_dropped);
    this.emit(r);
  }

  // ---- RS → client ------------------------------------------------------------------

  private outbound(p: Packet, ipHl: number): void {
    const b = p.buf;
    const tcp = this.tcp;
    const t = this.table;
    const tcpOff = p.start + ipHl;
    const c = t.lookupReplyAt(b, p.start, tcpOff);
    if (c < 0) {
      this.drop(p, C.no_conn_dropped);
      return;
    }
    if ((t.flags[c]! & CF_SP_PENDING) !== 0) {
      this.spRsDuringSetup(p, c, ipHl);
      return;
    }
    const svcIdx = t.svc[c]!;
    const svc = this.services[svcIdx]!;
    const flags = tcp.flags;
    const syn = (flags & TCP_SYN) !== 0;
    const ackFlag = (flags & TCP_ACK) !== 0;
    const fin = (flags & TCP_FIN) !== 0;
    const rst = (flags & TCP_RST) !== 0;
    const hl = tcp.headerLength;
    const payloadLen = p.length - ipHl - hl;

    if (syn && ackFlag) {
      loadU32Plus(t.fdataSeq, c, b, tcpOff + 4, 1);
      t.flags[c] = t.flags[c]! | CF_FDATA_KNOWN;
    }
    if (hl > TCP_MIN_HEADER) {
      const o = this.opt.parse(b, tcpOff + TCP_MIN_HEADER, tcpOff + hl);
      if (syn && this.opts.mssAdjust && o.mss > 0) {
        const rs = this.realServers[t.rs[c]!]!;
        let mss = o.mss - TOA_V4_LEN;
        if (this.policy === 'fullnat') {
          const pathMss = rs.mtu - 40 - TOA_V4_LEN;
          if (pathMss < mss) mss = pathMss;
        }
        if (mss < o.mss && mss > 0) {
          // The option may sit at an odd offset, straddling two checksum words.
          const at = o.mssAt + 2;
          const before = alignedRangeSum(b, tcpOff, at, at + 2);
          set16(b, at, mss);
          tcp.checksum = checksumAdjust(
            tcp.checksum,
            before,
            alignedRangeSum(b, tcpOff, at, at + 2),
          );
          this.count(svcIdx, C.mss_clamped);
        }
      }
      if (o.sackBlocks > 0 && ackFlag) {
        this.shiftSackEdges(b, tcpOff, o.sackAt, o.sackBlocks, -t.seqDelta[c]! - t.shift[c]!);
      }
    }
    if (
      (t.flags[c]! & CF_SYNPROXY) !== 0 &&
      this.spAckStorm(
        b,
        tcpOff,
        c,
        flags,
        payloadLen,
        hl > TCP_MIN_HEADER ? this.opt.sackBlocks : 0,
      )
    ) {
      this.dropSvc(p, svcIdx, C.synproxy_ack_storm);
      return;
    }

    const prev = t.state[c]! as TcpState;
    const next = nextStateOutbound(prev, syn, fin, rst);
    t.expires[c] = this.now + this.timeoutsMs[next]!;
    if (next !== prev) {
      this.setState(c, prev, next);
      // Only a shorter timeout can leave the entry in a slot later than its new deadline.
      if (this.timeoutsMs[next]! < this.timeoutsMs[prev]!) t.armTimer(c);
    }
    loadU32Plus(t.rsNxt, c, b, tcpOff + 4, payloadLen + (syn ? 1 : 0) + (fin ? 1 : 0));

    this.natOutbound(c, ackFlag);
    svc.counters[C.outbound_packets]!++;
    svc.stats[STAT_OUT_PACKETS]!++;
    svc.stats[STAT_OUT_BYTES]! += p.length;
    const rsStats = this.realServers[t.rs[c]!]!.stats;
    rsStats[STAT_OUT_PACKETS]!++;
    rsStats[STAT_OUT_BYTES]! += p.length;
    this.forward(p);
  }

  // ---- SYNPROXY ----------------------------------------------------------------------
  //
  // Life of a SYNPROXY connection (flags in the table):
  //   client SYN        → cookie SYN+ACK from the LB; no entry (stateless).
  //   client ACK/data   → cookie checked; entry created (CF_SYNPROXY | CF_SP_PENDING,
  //                       SYN_SENT), LB→RS SYN sent, the packet held.
  //   while pending     → further client packets held (up to synproxyMaxStoredAcks);
  //                       the RS SYN is retransmitted from the expiry wheel.
  //   RS SYN+ACK        → absorbed; ackDelta = RS ISN − cookie ISN; held packets
  //                       replayed through the ordinary client→RS path (TOA included).
  //   afterwards        → natInbound adds ackDelta to acks (and SACK edges),
  //                       natOutbound subtracts it from seqs; windows rescaled if needed.

  /**
   * A client packet to a SYNPROXY service whose connection (c, or -1) is not
   * opening: answers SYNs, checks cookie ACKs and opens connections. Returns
   * the connection to carry on with, or -1 when p was consumed.
   */
  private spInbound(p: Packet, svcIdx: number, ipHl: number, c: number): number {
    const t = this.table;
    const tcp = this.tcp;
    const flags = tcp.flags;
    const closing = c >= 0 && (t.state[c] === TcpState.TimeWait || t.state[c] === TcpState.Close);
    if (c >= 0 && !closing) return c;
    if ((flags & TCP_SYN) !== 0) {
      if ((flags & (TCP_ACK | TCP_RST | TCP_FIN)) === 0) {
        // Stateless even on a closing tuple: only a valid cookie may replace its entry.
        this.spAnswerSyn(p, svcIdx, ipHl);
        return -1;
      }
      if (closing) return c;
      this.drop(p, C.no_conn_dropped);
      return -1;
    }
    if ((flags & TCP_ACK) === 0 || (flags & TCP_RST) !== 0) {
      if (closing) return c;
      this.drop(p, C.no_conn_dropped);
      return -1;
    }
    const data = this.cookies.check(p.buf, p.start, p.start + ipHl);
    if (data < 0) {
      // On a closing tuple an ordinary ACK belongs to the old connection.
      if (closing) return c;
      reflectReset(p, ipHl);
      this.count(svcIdx, C.synproxy_cookie_invalid);
      this.counters[C.rst_sent]!++;
      this.emit(p);
      return -1;
    }
    if (
      this.opts.synproxyDefer &&
      p.length - ipHl - tcp.headerLength === 0 &&
      (flags & TCP_FIN) === 0
    ) {
      this.dropSvc(p, svcIdx, C.synproxy_deferred);
      return -1;
    }
    if (closing) this.releaseConn(c);
    this.spOpen(p, svcIdx, ipHl, data);
    return -1;
  }

  /** Answers the client SYN p with the LB's cookie SYN+ACK (p itself, rewritten). */
  private spAnswerSyn(p: Packet, svcIdx: number, ipHl: number): void {
    const b = p.buf;
    const tcpOff = p.start + ipHl;
    const o = this.opt.parse(b, tcpOff + TCP_MIN_HEADER, tcpOff + this.tcp.headerLength);
    const clientMss = o.mss > 0 ? o.mss : 536;
    let mss = clientMss < this.opts.synproxyMss ? clientMss : this.opts.synproxyMss;
    const data = cookieData(mssIndex(mss), o.wscale, o.sackPermitted, false);
    this.cookies.make(b, p.start, tcpOff, data, this.u32, 0);
    loadU32Plus(this.u32, 1, b, tcpOff + 4, 1);
    if (this.policy === 'fullnat') {
      // What the narrowest RS path leaves once the TOA is in (the RS is not chosen yet).
      const targets = this.services[svcIdx]!.targets;
      for (let i = 0; i < targets.length; i++) {
        const pathMss = targets[i]!.mtu - 40 - TOA_V4_LEN;
        if (pathMss > 0 && pathMss < mss) mss = pathMss;
      }
    }
    // Invite no more than the LB holds for the RS: the ACK plus n−1 segments.
    const n = this.held.perConn;
    let win = (n > 1 ? n - 1 : 1) * mss;
    if (win > 0xffff) win = 0xffff;
    reflectCookieSynAck(
      p,
      ipHl,
      this.u32,
      mss,
      o.wscale >= 0 ? this.opts.synproxyWscale : -1,
      o.sackPermitted,
      win,
      this.opts.synproxySynAckTtl,
    );
    this.count(svcIdx, C.synproxy_syn_answered);
    this.emit(p);
  }

  /** A valid cookie ACK: opens the connection and its RS leg, and holds p for the replay. */
  private spOpen(p: Packet, svcIdx: number, ipHl: number, data: number): void {
    const t = this.table;
    const b = p.buf;
    const tcpOff = p.start + ipHl;
    if (this.held.full) {
      this.dropSvc(p, svcIdx, C.synproxy_ack_overflow);
      return;
    }
    const c = this.newConnection(p, svcIdx, tcpOff, -1, this.opts.synproxySynRtoMs);
    if (c < 0) return;
    this.count(svcIdx, C.synproxy_cookie_valid);
    t.flags[c] = t.flags[c]! | CF_SYNPROXY | CF_SP_PENDING;
    loadU32Plus(t.ackDelta, c, b, tcpOff + 8, -1);
    t.spData[c] = data;
    const slot = this.held.alloc();
    t.spSlot[c] = slot;
    const wc = cookieWscale(data);
    let win = this.tcp.window * (wc > 0 ? 1 << wc : 1);
    if (win > 0xffff) win = 0xffff;
    this.held.setWindow(slot, win);
    this.setState(c, TcpState.None, TcpState.SynSent);
    this.spSendRsSyn(c);
    this.spHold(p, c, ipHl);
  }

  /** Sends (or resends) the LB→RS SYN of opening connection c. */
  private spSendRsSyn(c: number): void {
    const t = this.table;
    const data = t.spData[c]!;
    // Under lvs the SYN carries the TOA too, as LVS puts it on the client's SYN.
    const toa = this.policy === 'lvs' && t.shift[c] === 0;
    const q = this.pool.take();
    writeRsSyn(
      q,
      t,
      c,
      cookieMss(data),
      cookieWscale(data),
      cookieSack(data),
      this.held.windowOf(t.spSlot[c]!),
      toa,
    );
    if (toa) this.count(t.svc[c]!, C.toa_inserted_syn);
    this.emit(q);
  }

  /** A client packet while c's RS leg opens: held for the replay, within bounds. */
  /** A small packet moves out of a 64 KiB buffer before it is held: holds must not cost 64 KiB each. */
  private compactForHold(p: Packet): Packet {
    if (p.buf.length <= DEFAULT_BUFFER_SIZE) return p;
    if (DEFAULT_HEADROOM + p.length + TCP_MAX_OPTIONS > DEFAULT_BUFFER_SIZE) return p;
    const q = this.pool.takeSmall();
    q.buf.set(p.buf.subarray(p.start, p.start + p.length), DEFAULT_HEADROOM);
    q.length = p.length;
    q.gsoSize = p.gsoSize;
    q.gsoType = p.gsoType;
    q.csumPartial = p.csumPartial;
    this.pool.give(p);
    return q;
  }

  private spHold(p: Packet, c: number, ipHl: number): void {
    const t = this.table;
    const svcIdx = t.svc[c]!;
    const flags = this.tcp.flags;
    if ((flags & TCP_RST) !== 0) {
      // The client gave up: so does the LB, and it tells the RS.
      const r = this.pool.take();
      craftRst(
        r,
        t.lip[c]!,
        t.lport[c]!,
        t.rip[c]!,
        t.rport[c]!,
        (t.lbIsn[c]! + 1) >>> 0,
        0,
        false,
      );
      this.counters[C.rst_sent]!++;
      this.emit(r);
      this.releaseConn(c);
      this.dropSvc(p, svcIdx, C.synproxy_setup_dropped);
      return;
    }
    if ((flags & TCP_SYN) !== 0) {
      this.dropSvc(p, svcIdx, C.synproxy_setup_dropped);
      return;
    }
    p = this.compactForHold(p);
    this.tcp.wrap(p.buf, p.start + ipHl);
    if (!this.held.push(t.spSlot[c]!, p)) {
      this.dropSvc(p, svcIdx, C.synproxy_ack_overflow);
      return;
    }
    this.count(svcIdx, C.synproxy_ack_stored);
    const tcpOff = p.start + ipHl;
    const len = p.length - ipHl - this.tcp.headerLength + ((flags & TCP_FIN) !== 0 ? 1 : 0);
    loadU32Plus(t.clientNxt, c, p.buf, tcpOff + 4, len);
  }

  /** An RS packet while c's RS leg opens: its SYN+ACK, its refusal, or nothing the LB expects. */
  private spRsDuringSetup(p: Packet, c: number, ipHl: number): void {
    const t = this.table;
    const b = p.buf;
    const tcpOff = p.start + ipHl;
    const flags = this.tcp.flags;
    const ackOk =
      (flags & TCP_ACK) !== 0 && equalsU32AtPlus(b, tcpOff + 8, this.zero, 0, t.lbIsn, c, 1);
    if ((flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) === (TCP_SYN | TCP_ACK) && ackOk) {
      this.spEstablish(p, c, ipHl);
      return;
    }
    if ((flags & TCP_RST) !== 0 && (ackOk || (flags & TCP_ACK) === 0)) {
      this.dropSvc(p, t.svc[c]!, C.synproxy_rs_refused);
      this.spResetClient(c);
      this.releaseConn(c);
      return;
    }
    if ((flags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_ACK && !ackOk) {
      // The RS still holds the LIP:lport tuple in TIME_WAIT and acks its old connection.
      // Answer as a client stack in SYN_SENT would (RST, seq = its ack: that ends the
      // TIME_WAIT), then send the SYN again at once; bounded by the SYN retries.
      const slot = t.spSlot[c]!;
      const tries = this.held.retriesOf(slot);
      reflectReset(p, ipHl);
      this.count(t.svc[c]!, C.synproxy_rs_stale_ack);
      this.counters[C.rst_sent]!++;
      this.emit(p);
      if (tries < this.opts.synproxySynRetries) {
        this.held.setRetries(slot, tries + 1);
        this.spSendRsSyn(c);
        this.count(t.svc[c]!, C.synproxy_rs_syn_retransmitted);
      }
      return;
    }
    this.dropSvc(p, t.svc[c]!, C.synproxy_setup_dropped);
  }

  /**
   * The RS's SYN+ACK: now its ISN is known. The SYN+ACK itself goes no further
   * (the client finished its handshake with the LB); the held client packets
   * are replayed, and the first of them completes the RS's handshake.
   */
  private spEstablish(p: Packet, c: number, ipHl: number): void {
    const t = this.table;
    const b = p.buf;
    const tcpOff = p.start + ipHl;
    const svcIdx = t.svc[c]!;
    loadU32Plus(t.fdataSeq, c, b, tcpOff + 4, 1);
    loadU32Plus(t.rsNxt, c, b, tcpOff + 4, 1);
    // ackDelta held the cookie ISN: it becomes RS ISN − cookie ISN.
    loadU32Plus(t.ackDelta, c, b, tcpOff + 4, -t.ackDelta[c]!);
    const hl = this.tcp.headerLength;
    const rsWs =
      hl > TCP_MIN_HEADER ? this.opt.parse(b, tcpOff + TCP_MIN_HEADER, tcpOff + hl).wscale : -1;
    const data = t.spData[c]!;
    const wc = cookieWscale(data);
    // Scaling is in force toward the client iff it offered it (the LB then offered
    // synproxyWscale), toward the RS iff the client did and the RS answered.
    const clientScaled = wc >= 0;
    const rsScaled = clientScaled && rsWs >= 0;
    const wr = rsScaled ? (rsWs > 14 ? 14 : rsWs) : 0;
    const ws = clientScaled ? this.opts.synproxyWscale : 0;
    let f = (t.flags[c]! & ~CF_SP_PENDING) | CF_FDATA_KNOWN;
    if (wr !== ws) f |= CF_SP_WIN_OUT;
    if (clientScaled && !rsScaled && wc > 0) f |= CF_SP_WIN_IN;
    t.flags[c] = f;
    t.spData[c] = (data & 0x3ff) | (wr << 10);
    this.setState(c, TcpState.SynSent, TcpState.SynRecv);
    t.expires[c] = this.now + this.timeoutsMs[TcpState.SynRecv]!;
    t.armTimer(c);
    this.dropSvc(p, svcIdx, C.synproxy_rs_synack);

    const slot = t.spSlot[c]!;
    t.spSlot[c] = -1;
    const n = this.held.count(slot);
    for (let k = 0; k < n; k++) {
      const q = this.held.at(slot, k);
      this.count(svcIdx, C.synproxy_ack_replayed);
      const ip = this.ip.wrap(q.buf, q.start);
      const qHl = ip.headerLength;
      this.tcp.wrap(q.buf, q.start + qHl);
      this.inboundConn(q, svcIdx, qHl, c);
    }
    this.held.release(slot);
  }

  /** RST to the client of opening connection c, in the client's spaces. */
  private spResetClient(c: number): void {
    const t = this.table;
    const svc = t.svc[c]!;
    const r = this.pool.take();
    craftRst(
      r,
      this.svcVips[svc]!,
      this.svcPorts[svc]!,
      t.cip[c]!,
      t.cport[c]!,
      (t.ackDelta[c]! + 1) >>> 0,
      t.clientNxt[c]!,
      true,
    );
    this.counters[C.rst_sent]!++;
    this.emit(r);
  }

  /**
   * The timer of opening connection c fired: resend the RS SYN, or after the
   * last retry refuse the client. Returns true while c lives on.
   */
  private spSynTimer(c: number): boolean {
    const t = this.table;
    const slot = t.spSlot[c]!;
    const tries = this.held.retriesOf(slot);
    if (tries < this.opts.synproxySynRetries) {
      this.held.setRetries(slot, tries + 1);
      this.spSendRsSyn(c);
      this.count(t.svc[c]!, C.synproxy_rs_syn_retransmitted);
      t.expires[c] = this.now + this.opts.synproxySynRtoMs * 2 ** (tries + 1);
      t.armTimer(c);
      return true;
    }
    this.count(t.svc[c]!, C.synproxy_rs_timeout);
    this.spResetClient(c);
    return false;
  }

  /** Returns the packets held for c to the pool, uncounted elsewhere: counted discarded. */
  private spDiscard(c: number): void {
    const t = this.table;
    const slot = t.spSlot[c]!;
    if (slot < 0) return;
    const n = this.held.count(slot);
    for (let k = 0; k < n; k++) {
      this.pool.give(this.held.at(slot, k));
      this.count(t.svc[c]!, C.synproxy_ack_discarded);
    }
    this.held.release(slot);
    t.spSlot[c] = -1;
  }

  /**
   * Ack-storm guard: true when the RS packet is a pure ACK (no data, SYN,
   * FIN, RST or SACK blocks) identical in seq, ack and window to more than
   * `synproxyAckStormThreshold` before it in a row. A window update or any
   * progress differs, so only true repeats are cut.
   */
  private spAckStorm(
    b: Uint8Array,
    tcpOff: number,
    c: number,
    flags: number,
    payloadLen: number,
    sackBlocks: number,
  ): boolean {
    const t = this.table;
    if (
      (flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK)) !== TCP_ACK ||
      payloadLen !== 0 ||
      sackBlocks !== 0
    ) {
      t.stormCount[c] = 0;
      return false;
    }
    const win = get16(b, tcpOff + 14);
    if (
      t.stormCount[c] !== 0 &&
      t.rsWin[c] === win &&
      equalsU32At(b, tcpOff + 4, t.rsNxt, c) &&
      equalsU32At(b, tcpOff + 8, t.rsAck, c)
    ) {
      if (t.stormCount[c]! < 255) t.stormCount[c]!++;
      return t.stormCount[c]! > this.opts.synproxyAckStormThreshold;
    }
    t.stormCount[c] = 1;
    t.rsWin[c] = win;
    loadU32Plus(t.rsAck, c, b, tcpOff + 8, 0);
    return false;
  }

  // ---- helpers ----------------------------------------------------------------------

  /**
   * Sends the PROXY header as its own segment at the LB's ISN+1, ahead of the
   * (already translated) packet p, which starts the client's stream right after it.
   */
  private emitProxyHeader(p: Packet, ipHl: number, c: number): void {
    const t = this.table;
    const svc = this.services[t.svc[c]!]!;
    const q = this.pool.take();
    const b = q.buf;
    const s = q.start;
    b.set(p.buf.subarray(p.start, p.start + ipHl + TCP_MIN_HEADER), s);
    const tcpOff = s + ipHl;
    const payloadOff = tcpOff + TCP_MIN_HEADER;
    const len =
      svc.proxyProtocol === 2
        ? encodeProxyV2(b, payloadOff, t.cip[c]!, t.cport[c]!, svc.vip, svc.vport)
        : encodeProxyV1(b, payloadOff, t.cip[c]!, t.cport[c]!, svc.vip, svc.vport);
    q.length = ipHl + TCP_MIN_HEADER + len;
    const ip = this.pip.wrap(b, s);
    ip.totalLength = q.length;
    ip.updateChecksum();
    const tcp = this.ptcp.wrap(b, tcpOff);
    tcp.headerLength = TCP_MIN_HEADER;
    tcp.flags = TCP_ACK;
    storeU32From(b, tcpOff + 4, t.lbIsn, c);
    loadU32Plus(this.sackScratch, 0, b, tcpOff + 4, 1);
    storeU32From(b, tcpOff + 4, this.sackScratch, 0);
    tcp.checksum = tcp.computeChecksumV4(s, TCP_MIN_HEADER + len);
    this.count(svc.index, C.proxy_headers_sent);
    this.emit(q);
  }

  /**
   * CIP:cport → VIP:vport becomes LIP:lport → RIP:rport, the sequence number
   * moved into the LB→RS space; checksums updated incrementally (RFC 1624).
   * Works on the packet `this.ip`/`this.tcp` are wrapped around.
   */
  private natInbound(c: number, shift: number): void {
    const ip = this.ip;
    const tcp = this.tcp;
    const t = this.table;
    const b = ip.buf;
    const ipOff = ip.off;
    // Checksum deltas are taken over 16-bit halves: a 32-bit value passed to a
    // non-inlined call would be boxed, and this runs for every packet.
    const d = this.delta.reset();
    d.replaceWord(get16(b, ipOff + 12), t.lip[c]! >>> 16);
    d.replaceWord(get16(b, ipOff + 14), t.lip[c]! & 0xffff);
    d.replaceWord(get16(b, ipOff + 16), t.rip[c]! >>> 16);
    d.replaceWord(get16(b, ipOff + 18), t.rip[c]! & 0xffff);
    ip.checksum = d.apply(ip.checksum);
    storeU32From(b, ipOff + 12, t.lip, c);
    storeU32From(b, ipOff + 16, t.rip, c);
    const so = tcp.off + 4;
    const seqHi = get16(b, so);
    const seqLo = get16(b, so + 2);
    const nSeq = (seqHi * 65536 + seqLo + t.seqDelta[c]! + shift) >>> 0;
    const nHi = nSeq >>> 16;
    const nLo = nSeq & 0xffff;
    d.replaceWord(tcp.srcPort, t.lport[c]!);
    d.replaceWord(tcp.dstPort, t.rport[c]!);
    d.replaceWord(seqHi, nHi);
    d.replaceWord(seqLo, nLo);
    const cf = t.flags[c]!;
    if ((cf & CF_SYNPROXY) !== 0) {
      // SYNPROXY: the client acks in the cookie's space; move it to the RS's.
      if ((b[tcp.off + 13]! & TCP_ACK) !== 0) {
        const ao = tcp.off + 8;
        const aHi = get16(b, ao);
        const aLo = get16(b, ao + 2);
        const na = (aHi * 65536 + aLo + t.ackDelta[c]!) >>> 0;
        d.replaceWord(aHi, na >>> 16);
        d.replaceWord(aLo, na & 0xffff);
        set16(b, ao, na >>> 16);
        set16(b, ao + 2, na & 0xffff);
      }
      if ((cf & CF_SP_WIN_IN) !== 0) {
        // The RS refused window scaling: give it the client's window unscaled.
        const wo = tcp.off + 14;
        const w = get16(b, wo);
        let nw = w * (1 << ((t.spData[c]! >>> 4) & 0xf));
        if (nw > 0xffff) nw = 0xffff;
        d.replaceWord(w, nw);
        set16(b, wo, nw);
      }
    }
    tcp.checksum = d.apply(tcp.checksum);
    tcp.srcPort = t.lport[c]!;
    tcp.dstPort = t.rport[c]!;
    set16(b, so, nHi);
    set16(b, so + 2, nLo);
  }

  /** RIP:rport → LIP:lport becomes VIP:vport → CIP:cport, the ack moved back into the client's space. */
  private natOutbound(c: number, ackFlag: boolean): void {
    const ip = this.ip;
    const tcp = this.tcp;
    const t = this.table;
    const b = ip.buf;
    const ipOff = ip.off;
    const svc = t.svc[c]!;
    const d = this.delta.reset();
    d.replaceWord(get16(b, ipOff + 12), this.svcVips[svc]! >>> 16);
    d.replaceWord(get16(b, ipOff + 14), this.svcVips[svc]! & 0xffff);
    d.replaceWord(get16(b, ipOff + 16), t.cip[c]! >>> 16);
    d.replaceWord(get16(b, ipOff + 18), t.cip[c]! & 0xffff);
    ip.checksum = d.apply(ip.checksum);
    storeU32From(b, ipOff + 12, this.svcVips, svc);
    storeU32From(b, ipOff + 16, t.cip, c);
    d.replaceWord(tcp.srcPort, this.svcPorts[svc]!);
    d.replaceWord(tcp.dstPort, t.cport[c]!);
    if (ackFlag) {
      const ao = tcp.off + 8;
      const aHi = get16(b, ao);
      const aLo = get16(b, ao + 2);
      let na = (aHi * 65536 + aLo - t.seqDelta[c]!) >>> 0;
      // Acks beyond the LB's ISN+1 cover the PROXY header the client never sent.
      const shift = t.shift[c]!;
      if (shift !== 0 && ((aHi * 65536 + aLo - t.lbIsn[c]! - 1) | 0) > 0) na = (na - shift) >>> 0;
      d.replaceWord(aHi, na >>> 16);
      d.replaceWord(aLo, na & 0xffff);
      set16(b, ao, na >>> 16);
      set16(b, ao + 2, na & 0xffff);
    }
    const cf = t.flags[c]!;
    if ((cf & CF_SYNPROXY) !== 0) {
      // SYNPROXY: the client knows the RS's bytes by the cookie's sequence space.
      const so = tcp.off + 4;
      const sHi = get16(b, so);
      const sLo = get16(b, so + 2);
      const ns = (sHi * 65536 + sLo - t.ackDelta[c]!) >>> 0;
      d.replaceWord(sHi, ns >>> 16);
      d.replaceWord(sLo, ns & 0xffff);
      set16(b, so, ns >>> 16);
      set16(b, so + 2, ns & 0xffff);
      if ((cf & CF_SP_WIN_OUT) !== 0) {
        // The RS scales its window by its own shift; the client applies the one the LB announced.
        const wo = tcp.off + 14;
        const w = get16(b, wo);
        let nw = Math.floor(
          (w * (1 << ((t.spData[c]! >>> 10) & 0xf))) / (1 << this.opts.synproxyWscale),
        );
        if (nw > 0xffff) nw = 0xffff;
        d.replaceWord(w, nw);
        set16(b, wo, nw);
      }
    }
    tcp.checksum = d.apply(tcp.checksum);
    tcp.srcPort = this.svcPorts[svc]!;
    tcp.dstPort = t.cport[c]!;
  }

  /**
   * Adds `add` (mod 2^32) to every SACK edge of the option at `at`, keeping the
   * checksum right. RS→client: edges in the LB→RS space move back by the
   * sequence delta (and any PROXY header); client→RS under SYNPROXY: edges in
   * the cookie's space move into the RS's.
   */
  private shiftSackEdges(
    b: Uint8Array,
    tcpOff: number,
    at: number,
    blocks: number,
    add: number,
  ): void {
    const from = at + 2;
    const to = from + blocks * 8;
    const before = alignedRangeSum(b, tcpOff, from, to);
    for (let k = from; k < to; k += 4) {
      loadU32Plus(this.sackScratch, 0, b, k, add);
      storeU32From(b, k, this.sackScratch, 0);
    }
    const after = alignedRangeSum(b, tcpOff, from, to);
    this.tcp.checksum = checksumAdjust(this.tcp.checksum, before, after);
  }

  private setState(c: number, prev: TcpState, next: TcpState): void {
    const t = this.table;
    const rs = this.realServers[t.rs[c]!]!;
    if (prev === TcpState.Established) {
      rs.activeConns--;
      rs.inactiveConns++;
    }
    if (next === TcpState.Established) {
      rs.inactiveConns--;
      rs.activeConns++;
    }
    t.state[c] = next;
  }

  private releaseConn(c: number): void {
    const t = this.table;
    if ((t.flags[c]! & CF_SP_PENDING) !== 0) this.spDiscard(c);
    const rs = this.realServers[t.rs[c]!]!;
    if (t.state[c] === TcpState.Established) rs.activeConns--;
    else rs.inactiveConns--;
    this.laddrs.release(t.lipIndex[c]!, rs.index, t.lport[c]!);
    t.remove(c);
  }

  private expireConn(c: number): void {
    const t = this.table;
    if ((t.flags[c]! & CF_SP_PENDING) !== 0 && this.spSynTimer(c)) return;
    if (t.state[c] === TcpState.Established) {
      const svc = this.services[t.svc[c]!]!;
      const toClient = this.pool.take();
      craftRst(
        toClient,
        svc.vip,
        svc.vport,
        t.cip[c]!,
        t.cport[c]!,
        (t.flags[c]! & CF_SYNPROXY) !== 0 ? (t.rsNxt[c]! - t.ackDelta[c]!) >>> 0 : t.rsNxt[c]!,
        t.clientNxt[c]!,
        true,
      );
      this.emit(toClient);
      const toRs = this.pool.take();
      craftRst(
        toRs,
        t.lip[c]!,
        t.lport[c]!,
        t.rip[c]!,
        t.rport[c]!,
        (t.clientNxt[c]! + t.seqDelta[c]! + t.shift[c]!) >>> 0,
        t.rsNxt[c]!,
        true,
      );
      this.emit(toRs);
      this.counters[C.rst_sent]! += 2;
      this.counters[C.conns_expired_established_rst]!++;
    }
    this.counters[C.conns_expired]!++;
    this.releaseConn(c);
  }

  /** Reads a counter by name (for tests and exporters). */
  counter(name: keyof typeof C, svc?: number): number {
    const a = svc === undefined ? this.counters : this.services[svc]!.counters;
    return a[C[name]]!;
  }
}

const enum ToaMode {
  None = 0,
  /** Room in the header and the MTU: shift the payload by the TOA length. */
  Insert = 1,
  /** Options pruned to make room; rebuilt in place. */
  Rebuild = 2,
  /** Too large for the RS path with a TOA: split into pieces that each carry one. */
  Split = 3,
}
