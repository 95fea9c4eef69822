import { Ipv4Field } from '../wire/ipv4.js';
import { copy16, fold16 } from './addr6.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import { hashAddrAt } from './isn.js';
import { setAddressDelta } from './nat6.js';
import type { Packet } from './packet.js';
import { STAT_CONNS } from './services.js';

/**
 * The life of a UDP flow (IPVS's and DPVS's UDP "connection"): opened by
 * the first datagram of a client tuple to a UDP service — the service's
 * scheduler picks the RS, a LIP:port comes from the UDP port allocator —,
 * kept alive by datagrams of either direction for `timeoutUdpMs` each, and
 * released when that idle time passes. A flow has one state (IPVS's
 * NORMAL); it counts among its RS's inactive connections, as IPVS's UDP
 * connections do, which the lc/wlc schedulers weigh.
 */
export class UdpFlows {
  /** The timer wheel's callback, made once. */
  readonly onExpire = (c: number): void => this.expire(c);

  constructor(private readonly ctx: EngineContext) {}

  /**
   * Opens a flow for the IPv4 datagram p (UDP header at udpOff) to service
   * svcIdx; -1 with p dropped and the reason counted when it cannot.
   */
  open4(p: Packet, svcIdx: number, udpOff: number): number {
    const ctx = this.ctx;
    const t = ctx.udp.table;
    const svc = ctx.reg.services[svcIdx]!;
    if (t.full) return this.reject(p, svcIdx, C.table_full);
    const b = p.buf;
    const hash = hashAddrAt(b, p.start + Ipv4Field.Src);
    let rsIdx: number;
    if (svc.persistMs !== 0) rsIdx = ctx.persist.choose4(svc, b, p.start + Ipv4Field.Src, hash);
    else {
      const pick = svc.scheduler.pick(svc.targets, hash);
      rsIdx = pick < 0 ? -1 : svc.targets[pick]!.index;
    }
    if (rsIdx < 0) return this.reject(p, svcIdx, C.no_real_server);
    const rs = ctx.reg.realServers[rsIdx]!;
    const laddrs = ctx.udp.laddrs;
    let lipSlot = -1;
    let lport = -1;
    for (let tries = 0; tries < svc.lipIndexes.length; tries++) {
      lipSlot = svc.lipIndexes[svc.nextLip()]!;
      lport = laddrs.allocate(lipSlot, rs.index);
      if (lport >= 0) break;
    }
    if (lport < 0) return this.reject(p, svcIdx, C.laddr_ports_exhausted);
    const c = t.insertAt(b, p.start, udpOff, svcIdx);
    t.lip[c] = laddrs.addrs[lipSlot]!;
    t.lport[c] = lport;
    t.rip[c] = ctx.reg.rsAddrs[rs.index]!;
    t.rport[c] = rs.port;
    t.linkReply(c);
    this.finishOpen(c, svcIdx, rs.index, lipSlot);
    return c;
  }

  /**
   * `open4` for an IPv6 client (fixed header at p.start, UDP at udpOff):
   * an IPv6 RS from an IPv6 LIP, or an IPv4 one from an IPv4 LIP (FNAT64).
   */
  open6(p: Packet, svcIdx: number, udpOff: number): number {
    const ctx = this.ctx;
    const t = ctx.udp.table;
    const reg = ctx.reg;
    const svc = reg.services[svcIdx]!;
    if (t.full) return this.reject(p, svcIdx, C.table_full);
    const b = p.buf;
    const s = p.start;
    const hash = fold16(b, s + 8);
    let rsIdx: number;
    if (svc.persistMs !== 0) rsIdx = ctx.persist.choose6(svc, b, s + 8, hash);
    else {
      const pick = svc.scheduler.pick(svc.targets, hash);
      rsIdx = pick < 0 ? -1 : svc.targets[pick]!.index;
    }
    if (rsIdx < 0) return this.reject(p, svcIdx, C.no_real_server);
    const rs = reg.realServers[rsIdx]!;
    const rsV6 = reg.rsV6[rs.index]!;
    const laddrs = ctx.udp.laddrs;
    let lipSlot = -1;
    let lport = -1;
    for (let tries = 0; tries < svc.lipIndexes.length; tries++) {
      lipSlot = svc.lipIndexes[svc.nextLip()]!;
      if (laddrs.isV6[lipSlot] !== rsV6) continue;
      lport = laddrs.allocate(lipSlot, rs.index);
      if (lport >= 0) break;
    }
    if (lport < 0) return this.reject(p, svcIdx, C.laddr_ports_exhausted);
    const c = t.insert6At(b, s + 8, udpOff, svcIdx, rsV6 === 1);
    t.lip[c] = laddrs.addrs[lipSlot]!;
    t.lport[c] = lport;
    t.rip[c] = reg.rsAddrs[rs.index]!;
    t.rport[c] = rs.port;
    if (rsV6 === 1) {
      copy16(t.lip6, c * 16, laddrs.addrs6, lipSlot * 16);
      copy16(t.rip6, c * 16, reg.rsAddrs6, rs.index * 16);
    }
    t.linkReply(c);
    t.rs[c] = rs.index;
    // After t.rs: the delta takes the RS address's sum from the registry.
    setAddressDelta(t, reg, c);
    this.finishOpen(c, svcIdx, rs.index, lipSlot);
    return c;
  }

  private finishOpen(c: number, svcIdx: number, rsIndex: number, lipSlot: number): void {
    const ctx = this.ctx;
    const t = ctx.udp.table;
    t.rs[c] = rsIndex;
    t.lipIndex[c] = lipSlot;
    t.expires[c] = ctx.now + ctx.opts.timeoutUdpMs;
    t.armTimer(c);
    ctx.udp.uoaSent[c] = 0;
    const rs = ctx.reg.realServers[rsIndex]!;
    const svc = ctx.reg.services[svcIdx]!;
    if (svc.persistMs !== 0) ctx.persist.bind(ctx.persist.udpControl, c);
    rs.inactiveConns++;
    rs.stats[STAT_CONNS]!++;
    svc.stats[STAT_CONNS]!++;
    ctx.countSvc(svcIdx, C.udp_flows_created);
    const sync = ctx.sync;
    if (sync !== undefined) sync.udpOpened(c);
  }

  private reject(p: Packet, svcIdx: number, reason: number): number {
    this.ctx.countSvc(svcIdx, reason);
    this.ctx.dropSvc(p, svcIdx, C.udp_flow_rejected);
    return -1;
  }

  /**
   * A datagram of flow c, either way: the idle deadline moves on. Only ever
   * later (one timeout for every datagram), so the wheel re-files the entry
   * lazily when it meets it early.
   */
  touch(c: number): void {
    const ctx = this.ctx;
    const sync = ctx.sync;
    // A peer's flow whose datagrams come here is this node's from now on.
    if (sync !== undefined) sync.carriedUdp(c);
    ctx.udp.table.expires[c] = ctx.now + ctx.opts.timeoutUdpMs;
  }

  /**
   * True when c's RS was taken out of its service. Its client's next
   * datagram ends c and is scheduled afresh (IPVS's expire_nodest_conn as
   * kernels since 5.9 apply it: the packet that finds the entry opens the
   * next one). A quiesced RS (weight 0) keeps its flows until they go idle,
   * as IPVS's do: weight 0 drains.
   */
  rsRemoved(c: number): boolean {
    return !this.ctx.reg.realServers[this.ctx.udp.table.rs[c]!]!.member;
  }

  /** Frees c: its RS's count, its LIP:port, its entry. */
  release(c: number): void {
    const ctx = this.ctx;
    const t = ctx.udp.table;
    ctx.count(C.udp_flows_released);
    const rs = ctx.reg.realServers[t.rs[c]!]!;
    rs.inactiveConns--;
    const sync = ctx.sync;
    if (sync !== undefined) sync.releasingUdp(c);
    ctx.udp.laddrs.release(t.lipIndex[c]!, rs.index, t.lport[c]!);
    if (ctx.persist.enabled) ctx.persist.release(ctx.persist.udpControl, c);
    t.remove(c);
  }

  private expire(c: number): void {
    const ctx = this.ctx;
    ctx.count(C.udp_flows_expired);
    const sync = ctx.sync;
    if (sync !== undefined && sync.isPeersUdp(c)) ctx.count(C.sync_expired_silent);
    this.release(c);
  }
}
