import { set16, set32 } from '../wire/bytes.js';
import { alignedRangeSum, checksumAdjust, checksumReplace16, checksumReplace32 } from '../wire/checksum.js';
import { Ipv4Error, Ipv4View, IPPROTO_TCP } from '../wire/ipv4.js';
import { TCP_ACK, TCP_FIN, TCP_MAX_OPTIONS, TCP_MIN_HEADER, TCP_RST, TCP_SYN, TcpView } from '../wire/tcp.js';
import { TCPOLEN_TIMESTAMP, TcpOptionSummary } from '../wire/tcp-options.js';
import { TOA_V4_LEN } from '../wire/toa.js';
import { DEFAULT_ENGINE_OPTIONS, type EngineOptions, type ServiceConfig, type ToaPolicy } from './config.js';
import { CF_FDATA_KNOWN, ConnTable } from './conn-table.js';
import { C, newCounterArray } from './counters.js';
import { craftFragNeeded, craftRst } from './craft.js';
import { IsnGenerator, hashAddr } from './isn.js';
import { LocalAddressPool } from './laddr.js';
import { Packet, PacketPool } from './packet.js';
import { createScheduler } from './sched/index.js';
import type { Scheduler, SchedTarget } from './sched/scheduler.js';
import { TcpState, nextStateInbound, nextStateOutbound, timeoutTable } from './tcp-state.js';
import { OptionPlan, ToaWriter, nopOut } from './toa-insert.js';

export class RealServer implements SchedTarget {
  readonly key: string;
  weight: number;
  activeConns = 0;
  inactiveConns = 0;
  constructor(
    readonly index: number,
    readonly service: number,
    readonly addr: number,
    readonly port: number,
    weight: number,
    readonly mtu: number,
  ) {
    this.key = `${addr}:${port}`;
    this.weight = weight;
  }
}

export class Service {
  readonly targets: RealServer[] = [];
  readonly counters = newCounterArray();
  private lipCursor = 0;
  constructor(
    readonly index: number,
    readonly vip: number,
    readonly vport: number,
    readonly scheduler: Scheduler,
    /** Indexes into the engine's LIP pool. */
    readonly lipIndexes: number[],
  ) {}

  nextLip(): number {
    const i = this.lipCursor;
    this.lipCursor = i + 1 === this.lipIndexes.length ? 0 : i + 1;
    return i;
  }
}

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

  private readonly serviceByKey = new Map<number, number>();
  private readonly isn: IsnGenerator;
  private readonly timeoutsMs: Uint32Array;
  private readonly ip = new Ipv4View();
  private readonly tcp = new TcpView();
  private readonly opt = new TcpOptionSummary();
  private readonly toa: ToaWriter;
  private readonly policy: ToaPolicy;
  private readonly onExpire = (i: number): void => this.expireConn(i);
  private now = 0;

  constructor(options: Partial<EngineOptions> = {}, pool?: PacketPool) {
    this.opts = { ...DEFAULT_ENGINE_OPTIONS, ...options };
    this.policy = this.opts.toaPolicy;
    this.pool = pool ?? new PacketPool(256);
    this.table = new ConnTable(this.opts.maxConnections);
    this.laddrs = new LocalAddressPool(this.opts.maxLocalAddresses, this.opts.maxRealServers, this.opts.portRange);
    this.isn = new IsnGenerator(this.opts.isnSecret);
    this.timeoutsMs = timeoutTable(this.opts.timeouts);
    this.toa = new ToaWriter(this.pool);
  }

  addService(cfg: ServiceConfig): Service {
    const key = cfg.vip * 65536 + cfg.vport;
    if (this.serviceByKey.has(key)) throw new Error(`service ${cfg.vip}:${cfg.vport} already exists`);
    if (cfg.laddrs.length === 0) throw new Error('a FULLNAT service needs at least one local address');
    const idx = this.services.length;
    const lipIdx = cfg.laddrs.map((l) => this.laddrs.add(l));
    const svc = new Service(idx, cfg.vip, cfg.vport, createScheduler(cfg.scheduler), lipIdx);
    for (const r of cfg.realServers) {
      if (this.realServers.length >= this.opts.maxRealServers) throw new Error('too many real servers');
      const rs = new RealServer(this.realServers.length, idx, r.addr, r.port, r.weight, r.mtu ?? this.opts.rsMtu);
      this.realServers.push(rs);
      svc.targets.push(rs);
    }
    svc.scheduler.rebuild(svc.targets);
    this.services.push(svc);
    this.serviceByKey.set(key, idx);
    const vips = new Uint32Array(this.services.length);
    const vports = new Uint16Array(this.services.length);
    this.services.forEach((s, i) => {
      vips[i] = s.vip;
      vports[i] = s.vport;
    });
    this.table.svcVip = vips;
    this.table.svcVport = vports;
    return svc;
  }

  setWeight(rsIndex: number, weight: number): void {
    const rs = this.realServers[rsIndex];
    if (!rs) throw new RangeError(`no real server #${rsIndex}`);
    rs.weight = weight;
    this.services[rs.service]!.scheduler.rebuild(this.services[rs.service]!.targets);
  }

  clearOutput(): void {
    this.outCount = 0;
  }

  private emit(p: Packet): void {
    this.counters[C.tx_packets]!++;
    this.counters[C.tx_bytes]! += p.length;
    this.out[this.outCount++] = p;
  }

  private drop(p: Packet, counter: number): void {
    this.counters[counter]!++;
    this.pool.give(p);
  }

  private count(svc: number, counter: number): void {
    this.counters[counter]!++;
    this.services[svc]!.counters[counter]!++;
  }

  /** Runs connection timers up to `now` (ms since the engine started, below 2^32). */
  tick(now: number): void {
    this.now = now;
    this.table.advance(now, this.onExpire);
  }

  /** Takes ownership of `p`: it is either emitted (possibly rewritten or split) or returned to the pool. */
  process(p: Packet, now: number): void {
    this.now = now;
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
    const dst = ip.dst;
    const svc = this.serviceByKey.get(dst * 65536 + tcp.dstPort);
    if (svc !== undefined) {
      this.counters[C.inbound_packets]!++;
      this.inbound(p, svc, ipHl);
      return;
    }
    if (this.laddrs.has(dst)) {
      this.counters[C.outbound_packets]!++;
      this.outbound(p, ipHl);
      return;
    }
    this.drop(p, C.no_service_dropped);
  }

  // ---- client → RS ------------------------------------------------------------------

  private inbound(p: Packet, svcIdx: number, ipHl: number): void {
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
    const cip = ip.src;
    const cport = tcp.srcPort;

    let c = t.lookupClient(cip, cport, svcIdx);
    if (c >= 0 && syn && !ackFlag && (t.state[c] === TcpState.TimeWait || t.state[c] === TcpState.Close)) {
      // A new connection reusing the tuple of one that is closing: start afresh.
      this.releaseConn(c);
      c = -1;
    }
    if (c < 0) {
      if (!syn || ackFlag || rst || fin) {
        this.drop(p, C.no_conn_dropped);
        return;
      }
      c = this.newConnection(p, svcIdx, cip, cport);
      if (c < 0) return;
    }

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

    const payloadLen = p.length - ipHl - hl;
    const mtu = this.realServers[t.rs[c]!]!.mtu;
    const fdataKnown = (t.flags[c]! & CF_FDATA_KNOWN) !== 0;
    const concluding = fdataKnown && ackFlag && !syn && !rst && tcp.ack === t.fdataSeq[c];
    const wantToa = this.policy === 'lvs' ? (syn && !ackFlag) || (concluding && !fin) : concluding;

    // Decide before rewriting, so an ICMP error can still quote the packet as the client sent it.
    let mode = ToaMode.None;
    let plan = OptionPlan.Keep;
    if (wantToa) {
      const fitsMtu = p.length + TOA_V4_LEN <= mtu;
      const hasRoom = hl - TCP_MIN_HEADER + TOA_V4_LEN <= TCP_MAX_OPTIONS;
      if (this.policy === 'lvs') {
        if (!fitsMtu) this.count(svcIdx, C.toa_failed_mtu);
        else if (!hasRoom) this.count(svcIdx, C.toa_failed_no_room);
        else mode = ToaMode.Insert;
      } else {
        plan = this.toa.plan(b, optStart, optEnd, syn, TOA_V4_LEN);
        const newLen =
          plan === OptionPlan.Impossible
            ? 0
            : p.length - (hl - TCP_MIN_HEADER) + this.toa.newOptionsLength(b, optStart, optEnd, plan, TOA_V4_LEN);
        if (plan === OptionPlan.Impossible) this.count(svcIdx, C.toa_failed_no_room);
        else if (newLen <= mtu) mode = plan === OptionPlan.Keep ? ToaMode.Insert : ToaMode.Rebuild;
        else if (this.policy === 'fullnat') mode = ToaMode.Split;
        else this.count(svcIdx, C.toa_failed_mtu);
        // In-place growth needs tailroom; a fresh buffer from the split path always has it.
        if (mode !== ToaMode.None && mode !== ToaMode.Split && p.tailroom < TCP_MAX_OPTIONS) {
          mode = this.policy === 'fullnat' ? ToaMode.Split : ToaMode.None;
        }
      }
    }
    if (mode === ToaMode.None && p.length > mtu) {
      this.tooBig(p, ip.dontFragment, mtu, ipHl);
      return;
    }

    const prev = t.state[c]! as TcpState;
    const next = nextStateInbound(prev, syn, ackFlag, fin, rst);
    if (next !== prev) this.setState(c, prev, next);
    t.expires[c] = this.now + this.timeoutsMs[next]!;
    const seq = tcp.seq;
    t.clientNxt[c] = (seq + payloadLen + (syn ? 1 : 0) + (fin ? 1 : 0)) >>> 0;

    // CIP:cport → VIP:vport becomes LIP:lport → RIP:rport, with the sequence shifted into the LB→RS space.
    this.rewriteAddrs(t.lip[c]!, t.lport[c]!, t.rip[c]!, t.rport[c]!);
    const newSeq = (seq + t.seqDelta[c]!) >>> 0;
    tcp.checksum = checksumReplace32(tcp.checksum, seq, newSeq);
    tcp.seq = newSeq;
    const sc = this.services[svcIdx]!.counters;
    sc[C.inbound_packets]!++;

    switch (mode) {
      case ToaMode.None:
        this.emit(p);
        return;
      case ToaMode.Insert:
        this.toa.insertV4(p, ipHl, cip, cport);
        this.count(svcIdx, syn ? C.toa_inserted_syn : C.toa_inserted);
        this.emit(p);
        return;
      case ToaMode.Rebuild:
        if (!this.toa.rebuildV4(p, ipHl, plan, cip, cport)) {
          this.drop(p, C.bad_checksum_dropped);
          return;
        }
        this.count(svcIdx, C.toa_pruned);
        this.count(svcIdx, syn ? C.toa_inserted_syn : C.toa_inserted);
        this.emit(p);
        return;
      case ToaMode.Split: {
        const n = this.toa.splitV4(p, ipHl, plan, cip, cport, mtu);
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
        for (let k = 0; k < n; k++) this.emit(this.toa.pieces[k]!);
        this.pool.give(p);
        return;
      }
    }
  }

  private newConnection(p: Packet, svcIdx: number, cip: number, cport: number): number {
    const t = this.table;
    const svc = this.services[svcIdx]!;
    const tcp = this.tcp;
    if (t.full) {
      this.count(svcIdx, C.table_full);
      this.rejectSyn(p);
      return -1;
    }
    const pick = svc.scheduler.pick(svc.targets, hashAddr(cip));
    if (pick < 0) {
      this.count(svcIdx, C.no_real_server);
      this.rejectSyn(p);
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
      this.count(svcIdx, C.laddr_ports_exhausted);
      this.rejectSyn(p);
      return -1;
    }
    const lip = this.laddrs.lips[lipSlot]!;
    const c = t.insert(cip, cport, svcIdx, lip, lport, rs.addr, rs.port, this.now + this.timeoutsMs[TcpState.SynRecv]!);
    t.rs[c] = rs.index;
    t.lipIndex[c] = lipSlot;
    const lbIsn = this.isn.isn(lip, rs.addr, lport, rs.port, this.now);
    t.seqDelta[c] = (lbIsn - tcp.seq) >>> 0;
    rs.inactiveConns++;
    this.count(svcIdx, C.conns_created);
    return c;
  }

  private rejectSyn(p: Packet): void {
    const ip = this.ip;
    const tcp = this.tcp;
    const r = this.pool.take();
    craftRst(r, ip.dst, tcp.dstPort, ip.src, tcp.srcPort, 0, (tcp.seq + 1) >>> 0, true);
    this.pool.give(p);
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
    const ip = this.ip;
    const tcp = this.tcp;
    const t = this.table;
    const tcpOff = p.start + ipHl;
    const c = t.lookupReply(ip.src, tcp.srcPort, ip.dst, tcp.dstPort);
    if (c < 0) {
      this.drop(p, C.no_conn_dropped);
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
    const seq = tcp.seq;
    const delta = t.seqDelta[c]!;

    if (syn && ackFlag) {
      t.fdataSeq[c] = (seq + 1) >>> 0;
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
          const at = o.mssAt + 2;
          tcp.checksum = checksumReplace16(tcp.checksum, o.mss, mss);
          set16(b, at, mss);
          this.count(svcIdx, C.mss_clamped);
        }
      }
      if (o.sackBlocks > 0 && ackFlag) this.translateSack(b, tcpOff, o.sackAt, o.sackBlocks, delta);
    }

    const prev = t.state[c]! as TcpState;
    const next = nextStateOutbound(prev, syn, fin, rst);
    if (next !== prev) this.setState(c, prev, next);
    t.expires[c] = this.now + this.timeoutsMs[next]!;
    t.rsNxt[c] = (seq + payloadLen + (syn ? 1 : 0) + (fin ? 1 : 0)) >>> 0;

    this.rewriteAddrs(svc.vip, svc.vport, t.cip[c]!, t.cport[c]!);
    if (ackFlag) {
      const a = tcp.ack;
      const na = (a - delta) >>> 0;
      tcp.checksum = checksumReplace32(tcp.checksum, a, na);
      tcp.ack = na;
    }
    svc.counters[C.outbound_packets]!++;
    this.emit(p);
  }

  // ---- helpers ----------------------------------------------------------------------

  /** Rewrites addresses and ports with incremental checksum updates (RFC 1624). */
  private rewriteAddrs(src: number, sport: number, dst: number, dport: number): void {
    const ip = this.ip;
    const tcp = this.tcp;
    const oSrc = ip.src;
    const oDst = ip.dst;
    let ipc = ip.checksum;
    ipc = checksumReplace32(ipc, oSrc, src);
    ipc = checksumReplace32(ipc, oDst, dst);
    ip.checksum = ipc;
    ip.src = src;
    ip.dst = dst;
    let tc = tcp.checksum;
    tc = checksumReplace32(tc, oSrc, src);
    tc = checksumReplace32(tc, oDst, dst);
    tc = checksumReplace16(tc, tcp.srcPort, sport);
    tc = checksumReplace16(tc, tcp.dstPort, dport);
    tcp.checksum = tc;
    tcp.srcPort = sport;
    tcp.dstPort = dport;
  }

  /** RS SACK blocks acknowledge client data in the LB→RS sequence space: map them back. */
  private translateSack(b: Uint8Array, tcpOff: number, at: number, blocks: number, delta: number): void {
    const from = at + 2;
    const to = from + blocks * 8;
    const before = alignedRangeSum(b, tcpOff, from, to);
    for (let k = from; k < to; k += 4) {
      const v = ((b[k]! << 24) | (b[k + 1]! << 16) | (b[k + 2]! << 8) | b[k + 3]!) >>> 0;
      set32(b, k, (v - delta) >>> 0);
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
    const rs = this.realServers[t.rs[c]!]!;
    if (t.state[c] === TcpState.Established) rs.activeConns--;
    else rs.inactiveConns--;
    this.laddrs.release(t.lipIndex[c]!, rs.index, t.lport[c]!);
    t.remove(c);
  }

  private expireConn(c: number): void {
    const t = this.table;
    if (t.state[c] === TcpState.Established) {
      const svc = this.services[t.svc[c]!]!;
      const toClient = this.pool.take();
      craftRst(toClient, svc.vip, svc.vport, t.cip[c]!, t.cport[c]!, t.rsNxt[c]!, t.clientNxt[c]!, true);
      this.emit(toClient);
      const toRs = this.pool.take();
      craftRst(
        toRs,
        t.lip[c]!,
        t.lport[c]!,
        t.rip[c]!,
        t.rport[c]!,
        (t.clientNxt[c]! + t.seqDelta[c]!) >>> 0,
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
