/**
 * A stand-in middlebox with no load balancer in it: a plain DNAT router.
 * Client→VIP packets get their destination rewritten to an RS (chosen by a
 * stable hash of the client tuple), RS replies get their source rewritten
 * back to the VIP. Client addresses pass through untouched and no TOA is
 * added, so the RS learns the client from the IP header — the control group
 * for the scenarios and the harness's own test double.
 *
 * Like any router it answers a packet that would not fit the next link with
 * ICMP frag-needed (IPv4 with DF) or ICMPv6 Packet Too Big (IPv6), quoting
 * the packet as the client sent it, and it forwards other packets by
 * destination unchanged.
 *
 * Families 4 and 6 only. FNAT64 has no control group: a DNAT router cannot
 * turn an IPv6 client into an IPv4 source, and a NAT64 that could would put
 * its own IPv4 address in the client's place, which is what the scenarios
 * measure anyway. The constructor refuses a topology of mixed families.
 */
import { addressEquals, Ipv6Address, type IpAddress } from '../../wire/address.js';
import { IPPROTO_TCP, Ipv4Error, Ipv4View } from '../../wire/ipv4.js';
import { IPV6_HEADER } from '../../wire/ipv6.js';
import { TcpView } from '../../wire/tcp.js';
import type { Middlebox, RsInfo, Topology } from './net.js';
import { mix32 } from './rng.js';
import { addressSeed, buildFragNeeded, buildPacketTooBig } from './segment.js';

export interface DirectStats {
  toRs: number;
  toClient: number;
  /** ICMP frag-needed or ICMPv6 Packet Too Big sent to a client. */
  fragNeededSent: number;
  dropped: number;
}

export class DirectMiddlebox implements Middlebox {
  readonly stats: DirectStats = { toRs: 0, toClient: 0, fragNeededSent: 0, dropped: 0 };
  private readonly ip = new Ipv4View();
  private readonly tcp = new TcpView();

  constructor(private readonly topo: Topology) {
    const v6 = typeof topo.vip !== 'number';
    if (topo.rs.some((r) => (typeof r.addr !== 'number') !== v6))
      throw new Error(
        `a DNAT router cannot translate between families (family ${topo.family}): no control group for FNAT64`,
      );
  }

  receive(pkt: Uint8Array, _now: number): Uint8Array[] {
    if (pkt.length > 0 && pkt[0]! >>> 4 === 6) return this.receive6(pkt);
    const ip = this.ip.wrap(pkt, 0);
    if (ip.validate(pkt.length) !== Ipv4Error.None) {
      this.stats.dropped++;
      return [];
    }
    if (ip.protocol !== IPPROTO_TCP) return [pkt];
    const tcp = this.tcp.wrap(pkt, ip.payloadOffset);
    if (!tcp.fits(ip.payloadLength)) {
      this.stats.dropped++;
      return [];
    }
    const vip = this.topo.vip;
    if (typeof vip !== 'number') return [pkt];
    if (ip.dst === vip && tcp.dstPort === this.topo.vport) {
      const rs = this.pick(ip.src, tcp.srcPort);
      if (ip.totalLength > rs.linkMtu && ip.dontFragment) {
        this.stats.fragNeededSent++;
        return [buildFragNeeded(vip, pkt, rs.linkMtu)];
      }
      if (typeof rs.addr !== 'number') return [];
      ip.dst = rs.addr;
      tcp.dstPort = rs.port;
      this.stats.toRs++;
    } else if (this.topo.rs.some((r) => r.addr === ip.src && r.port === tcp.srcPort)) {
      ip.src = vip;
      tcp.srcPort = this.topo.vport;
      this.stats.toClient++;
    } else {
      return [pkt];
    }
    ip.updateChecksum();
    tcp.checksum = tcp.computeChecksumV4(0, ip.payloadLength);
    return [pkt];
  }

  tick(_now: number): Uint8Array[] {
    return [];
  }

  /** The same router for IPv6 (fixed header and TCP only, as the simulated hosts send). */
  private receive6(pkt: Uint8Array): Uint8Array[] {
    if (pkt.length < IPV6_HEADER || pkt[6] !== IPPROTO_TCP) return [pkt];
    const tcpLen = pkt.length - IPV6_HEADER;
    const tcp = this.tcp.wrap(pkt, IPV6_HEADER);
    if (!tcp.fits(tcpLen)) {
      this.stats.dropped++;
      return [];
    }
    const vip = this.topo.vip;
    if (typeof vip === 'number') return [pkt];
    const src = Ipv6Address.fromBytes(pkt, 8);
    const dst = Ipv6Address.fromBytes(pkt, 24);
    if (dst.equals(vip) && tcp.dstPort === this.topo.vport) {
      const rs = this.pick(src, tcp.srcPort);
      if (pkt.length > rs.linkMtu) {
        this.stats.fragNeededSent++;
        return [buildPacketTooBig(vip, pkt, rs.linkMtu)];
      }
      if (typeof rs.addr === 'number') return [];
      pkt.set(rs.addr.bytes, 24);
      tcp.dstPort = rs.port;
      this.stats.toRs++;
    } else if (this.topo.rs.some((r) => addressEquals(r.addr, src) && r.port === tcp.srcPort)) {
      pkt.set(vip.bytes, 8);
      tcp.srcPort = this.topo.vport;
      this.stats.toClient++;
    } else {
      return [pkt];
    }
    tcp.checksum = tcp.computeChecksumV6(0, tcpLen);
    return [pkt];
  }

  private pick(addr: IpAddress, port: number): RsInfo {
    return this.topo.rs[mix32(addressSeed(addr), port) % this.topo.rs.length]!;
  }
}
