import { TcpField } from '../wire/tcp.js';
import { Ipv6Address } from '../wire/address.js';
import { IPV6_HEADER } from '../wire/ipv6.js';
import { copy16, equal16, fold16 } from './addr6.js';
import {
  FAMILY_IPV4,
  FAMILY_IPV6,
  PROTO_TCP,
  PROTO_UDP,
  RF_NAT,
  RF_SYNPROXY,
  recordFlags,
  tableFlags,
  type ConnRecord,
} from './conn-record.js';
import { CF_IN_USE, CF_IPV6, NO_LIP, type ConnTable } from './conn-table.js';
import { C } from './counters.js';
import type { EngineContext } from './context.js';
import type { LocalAddressPool } from './laddr.js';
import { setAddressDelta } from './nat6.js';
import { TcpState } from './tcp-state.js';

/** Why a record was not entered (the keys of `ImportResult.reasons`, and of sync's rejections). */
export type ImportSkipReason =
  | 'expired'
  | 'no_service'
  | 'no_real_server'
  | 'no_local_address'
  | 'port_out_of_range'
  | 'port_conflict'
  | 'exists'
  | 'table_full';

/**
 * A table entry as a connection record and a record as a table entry: the
 * one place both directions are written, for the restart handover
 * (table-transfer.ts) and fleet sync (sync/). Records name services, real
 * servers and LIPs by address and port, so an entry made here means the
 * same connection in a process configured in another order. Not on the
 * data path.
 */
export class RecordEntries {
  /**
   * A client tuple as packet bytes, for the table's lookups by packet: IPv4
   * source at 12, TCP at 20; IPv6 source at 8, TCP at 40.
   */
  private readonly tuple = new Uint8Array(44);

  constructor(private readonly ctx: EngineContext) {}

  /** TCP entry i as a record: both tuples, state, flags, the sequence state, the time left. */
  readTcp(i: number, r: ConnRecord): void {
    const t = this.ctx.table;
    const sp = t.synproxyEnabled;
    this.readShared(t, i, r);
    r.protocol = PROTO_TCP;
    r.state = t.state[i]!;
    r.flags = recordFlags(t.flags[i]!) | (t.lipIndex[i] === NO_LIP ? RF_NAT : 0);
    r.seqDelta = t.seqDelta[i]!;
    r.lbIsn = t.lbIsn[i]!;
    r.fdataSeq = t.fdataSeq[i]!;
    r.clientNxt = t.clientNxt[i]!;
    r.rsNxt = t.rsNxt[i]!;
    r.ackDelta = sp ? t.ackDelta[i]! : 0;
    r.spData = sp ? t.spData[i]! : 0;
    r.shift = t.shift[i]!;
    r.uoaSent = 0;
  }

  /** UDP flow i as a record: both tuples, the UOA trail, the time left. */
  readUdp(i: number, r: ConnRecord): void {
    const udp = this.ctx.udp;
    this.readShared(udp.table, i, r);
    r.protocol = PROTO_UDP;
    r.state = TcpState.None;
    r.flags = 0;
    r.seqDelta = 0;
    r.lbIsn = 0;
    r.fdataSeq = 0;
    r.clientNxt = 0;
    r.rsNxt = 0;
    r.ackDelta = 0;
    r.spData = 0;
    r.shift = 0;
    r.uoaSent = udp.uoaSent[i]!;
  }

  /** What TCP connections and UDP flows share: families, both tuples, the time left. */
  private readShared(t: ConnTable, i: number, r: ConnRecord): void {
    const reg = this.ctx.reg;
    const svc = t.svc[i]!;
    const clientV6 = (t.flags[i]! & CF_IPV6) !== 0;
    const replyV6 = t.replyIsV6(i);
    r.family = clientV6 ? FAMILY_IPV6 : FAMILY_IPV4;
    r.replyFamily = replyV6 ? FAMILY_IPV6 : FAMILY_IPV4;
    // Copies, not subarrays: a removal record is written on the data path (sync), which allocates nothing.
    if (clientV6) {
      copy16(r.cip6, 0, t.cip6, i * 16);
      copy16(r.vip6, 0, reg.svcVips6, svc * 16);
    }
    if (replyV6) {
      copy16(r.lip6, 0, t.lip6, i * 16);
      copy16(r.rip6, 0, t.rip6, i * 16);
    }
    r.cip = clientV6 ? 0 : t.cip[i]!;
    r.cport = t.cport[i]!;
    r.vip = clientV6 ? 0 : reg.svcVips[svc]!;
    r.vport = reg.svcPorts[svc]!;
    r.lip = replyV6 ? 0 : t.lip[i]!;
    r.lport = t.lport[i]!;
    r.rip = replyV6 ? 0 : t.rip[i]!;
    r.rport = t.rport[i]!;
    const left = t.expires[i]! - this.ctx.now;
    r.remainingMs = left > 0 ? Math.ceil(left) : 0;
  }

  /** The live service a record names (VIP:vport of its protocol), or -1. */
  serviceOf(r: ConnRecord): number {
    const vip = r.family === FAMILY_IPV6 ? Ipv6Address.fromBytes(r.vip6) : r.vip;
    return this.ctx.reg.findService(vip, r.vport, r.protocol === PROTO_UDP ? 'UDP' : 'TCP');
  }

  /** The entry of t holding record r's client tuple in service svc, or -1. */
  lookup(t: ConnTable, r: ConnRecord, svc: number): number {
    this.writeTuple(r);
    const b = this.tuple;
    return r.family === FAMILY_IPV6
      ? t.ipv6Enabled
        ? t.lookupClient6At(b, 8, IPV6_HEADER, svc)
        : -1
      : t.lookupClientAt(b, 0, 20, svc);
  }

  /** True when entry c of t has record r's reply tuple (LIP:lport, RIP:rport). */
  sameReply(t: ConnTable, c: number, r: ConnRecord): boolean {
    if (t.lport[c] !== r.lport || t.rport[c] !== r.rport) return false;
    const replyV6 = r.replyFamily === FAMILY_IPV6;
    if (t.replyIsV6(c) !== replyV6) return false;
    if (!replyV6) return t.lip[c] === r.lip && t.rip[c] === r.rip;
    return equal16(t.lip6, c * 16, r.lip6, 0) && equal16(t.rip6, c * 16, r.rip6, 0);
  }

  /**
   * Enters one checked TCP record with `leftMs` to live; returns the entry,
   * or why not when it cannot.
   */
  enterTcp(r: ConnRecord, leftMs: number): number | ImportSkipReason {
    const ctx = this.ctx;
    const t = ctx.table;
    const reg = ctx.reg;
    const laddrs = ctx.laddrs;
    if (!(leftMs > 0)) return 'expired';
    const clientV6 = r.family === FAMILY_IPV6;
    const replyV6 = r.replyFamily === FAMILY_IPV6;
    const svcIdx = reg.findService(clientV6 ? Ipv6Address.fromBytes(r.vip6) : r.vip, r.vport);
    if (svcIdx < 0) return 'no_service';
    // A NAT connection enters a NAT service only, and a FULLNAT one a FULLNAT service.
    const nat = (r.flags & RF_NAT) !== 0;
    if (nat !== (reg.svcNat[svcIdx] !== 0)) return 'no_service';
    const rsIdx = this.realServerOf(svcIdx, r, replyV6);
    if (rsIdx < 0) return 'no_real_server';
    let lipIdx = NO_LIP;
    if (nat) {
      // Its reply tuple is the client's own address and port, as newConnection made it.
      if (clientV6 || replyV6 || r.lip !== r.cip || r.lport !== r.cport) return 'no_local_address';
    } else {
      lipIdx = laddrs.indexOf(replyV6 ? Ipv6Address.fromBytes(r.lip6) : r.lip);
      if (lipIdx < 0) return 'no_local_address';
      if (r.lport < laddrs.range.min || r.lport > laddrs.range.max) return 'port_out_of_range';
    }
    const placed = this.place(t, laddrs, r, svcIdx, rsIdx, lipIdx, (r.flags & RF_SYNPROXY) !== 0);
    if (typeof placed === 'string') return placed;
    const c = placed;
    t.state[c] = r.state;
    this.setTcpFields(c, r);
    t.expires[c] = ctx.now + Math.ceil(leftMs);
    t.armTimer(c);
    const rs = reg.realServers[rsIdx]!;
    if (r.state === TcpState.Established) rs.activeConns++;
    else rs.inactiveConns++;
    ctx.countSvc(svcIdx, C.conns_imported);
    return c;
  }

  /**
   * A TCP record's flags and sequence state into entry c (its state and
   * deadline are the caller's): what a newer record of the same connection
   * changes.
   */
  setTcpFields(c: number, r: ConnRecord): void {
    const t = this.ctx.table;
    const v6 = t.flags[c]! & CF_IPV6;
    if ((r.flags & RF_SYNPROXY) !== 0) t.enableSynproxy();
    t.flags[c] = CF_IN_USE | v6 | tableFlags(r.flags);
    t.seqDelta[c] = r.seqDelta;
    t.lbIsn[c] = r.lbIsn;
    t.fdataSeq[c] = r.fdataSeq;
    t.clientNxt[c] = r.clientNxt;
    t.rsNxt[c] = r.rsNxt;
    t.shift[c] = r.shift;
    if (t.synproxyEnabled) {
      t.ackDelta[c] = r.ackDelta;
      t.spData[c] = r.spData;
    }
  }

  /**
   * The part of entering a record both tables share: the client tuple not
   * there yet, room, the LIP:lport claimed (the allocator is the one
   * authority on reply tuples: a LIP:lport toward an RS address:port is
   * claimed once), the entry inserted with both tuples, its RS and LIP.
   * Returns the entry, or why not.
   */
  private place(
    t: ConnTable,
    laddrs: LocalAddressPool,
    r: ConnRecord,
    svcIdx: number,
    rsIdx: number,
    lipIdx: number,
    synproxy: boolean,
  ): number | ImportSkipReason {
    const reg = this.ctx.reg;
    const clientV6 = r.family === FAMILY_IPV6;
    const replyV6 = r.replyFamily === FAMILY_IPV6;
    const b = this.tuple;
    this.writeTuple(r);
    const exists = clientV6
      ? t.lookupClient6At(b, 8, IPV6_HEADER, svcIdx)
      : t.lookupClientAt(b, 0, 20, svcIdx);
    if (exists >= 0) return 'exists';
    if (t.full) return 'table_full';
    if (lipIdx === NO_LIP) {
      // NAT: no port to claim; the reply tuple (the client's own address and port) must be free.
      if (t.lookupReply(r.rip, r.rport, r.lip, r.lport) >= 0) return 'port_conflict';
    } else if (!laddrs.claim(lipIdx, rsIdx, r.lport)) return 'port_conflict';
    if (synproxy) t.enableSynproxy();
    const c = clientV6
      ? t.insert6At(b, 8, IPV6_HEADER, svcIdx, replyV6)
      : t.insertAt(b, 0, 20, svcIdx);
    if (replyV6) {
      t.lip6.set(r.lip6, c * 16);
      t.rip6.set(r.rip6, c * 16);
    }
    t.lip[c] = replyV6 ? fold16(r.lip6, 0) : r.lip;
    t.lport[c] = r.lport;
    t.rip[c] = replyV6 ? fold16(r.rip6, 0) : r.rip;
    t.rport[c] = r.rport;
    t.linkReply(c);
    t.rs[c] = rsIdx;
    // After t.rs: the delta takes the RS address's sum from the registry.
    if (clientV6) setAddressDelta(t, reg, c);
    t.lipIndex[c] = lipIdx;
    return c;
  }

  /**
   * Enters one checked UDP record into the UDP table, as `enterTcp` does a
   * TCP one: by address and port, its LIP:lport claimed from the UDP port
   * allocator, counted among its RS's inactive connections as an opened
   * flow is, its UOA trail where the exporter left it.
   */
  enterUdp(r: ConnRecord, leftMs: number): number | ImportSkipReason {
    const ctx = this.ctx;
    const reg = ctx.reg;
    if (!(leftMs > 0)) return 'expired';
    const clientV6 = r.family === FAMILY_IPV6;
    const replyV6 = r.replyFamily === FAMILY_IPV6;
    const vip = clientV6 ? Ipv6Address.fromBytes(r.vip6) : r.vip;
    const svcIdx = reg.findService(vip, r.vport, 'UDP');
    if (svcIdx < 0) return 'no_service';
    const rsIdx = this.realServerOf(svcIdx, r, replyV6);
    if (rsIdx < 0) return 'no_real_server';
    // Adding the UDP service made the table; what that did, idempotent, so the table is the service's.
    const udp = ctx.udp;
    udp.enable(ctx.laddrs, reg.realServers.length);
    if (clientV6) udp.table.enableIpv6();
    const t = udp.table;
    const laddrs = udp.laddrs;
    const lipIdx = laddrs.indexOf(replyV6 ? Ipv6Address.fromBytes(r.lip6) : r.lip);
    if (lipIdx < 0) return 'no_local_address';
    if (r.lport < laddrs.range.min || r.lport > laddrs.range.max) return 'port_out_of_range';
    const placed = this.place(t, laddrs, r, svcIdx, rsIdx, lipIdx, false);
    if (typeof placed === 'string') return placed;
    const c = placed;
    t.expires[c] = ctx.now + Math.ceil(leftMs);
    t.armTimer(c);
    udp.uoaSent[c] = r.uoaSent;
    reg.realServers[rsIdx]!.inactiveConns++;
    ctx.countSvc(svcIdx, C.udp_flows_imported);
    return c;
  }

  /** The RS RIP:rport of record r in service svc: a member, else one removed but still known. */
  private realServerOf(svc: number, r: ConnRecord, v6: boolean): number {
    const all = this.ctx.reg.realServers;
    let removed = -1;
    for (let i = 0; i < all.length; i++) {
      const rs = all[i]!;
      if (rs.service !== svc || rs.port !== r.rport) continue;
      const a = rs.addr;
      const same =
        typeof a === 'number' ? !v6 && a === r.rip : v6 && equal16(a.bytes, 0, r.rip6, 0);
      if (!same) continue;
      if (rs.member) return i;
      if (removed < 0) removed = i;
    }
    return removed;
  }

  /** The client tuple in `tuple` as the table's insert and lookup read a packet. */
  private writeTuple(r: ConnRecord): void {
    const b = this.tuple;
    if (r.family === FAMILY_IPV6) {
      b.set(r.cip6, 8);
      b[IPV6_HEADER + TcpField.SrcPort] = r.cport >>> 8;
      b[IPV6_HEADER + TcpField.SrcPort + 1] = r.cport & 0xff;
      return;
    }
    b[12] = r.cip >>> 24;
    b[13] = (r.cip >>> 16) & 0xff;
    b[14] = (r.cip >>> 8) & 0xff;
    b[15] = r.cip & 0xff;
    b[20 + TcpField.SrcPort] = r.cport >>> 8;
    b[21 + TcpField.SrcPort] = r.cport & 0xff;
  }
}
