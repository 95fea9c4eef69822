/**
 * A stand-in middlebox with no load balancer in it: a plain DNAT router.
 * Client→VIP packets get their destination rewritten to an RS (chosen by a
 * stable hash of the client tuple), RS replies get their source rewritten
 * back to the VIP. Client addresses pass through untouched and no TOA is
 * added, so the RS learns the client from the IP header — the control group
 * for the scenarios and the harness's own test double.
 *
 * Like any router it answers a DF packet that would not fit the next link
 * with ICMP frag-needed (quoting the packet as the client sent it), and it
 * forwards other packets by destination unchanged.
 */
import { IPPROTO_TCP, Ipv4Error, Ipv4View } from '../../wire/ipv4.js';
import { TcpView } from '../../wire/tcp.js';
import type { Middlebox, RsInfo, Topology } from './net.js';
import { mix32 } from './rng.js';
import { buildFragNeeded } from './segment.js';

export interface DirectStats {
  toRs: number;
  toClient: number;
  fragNeededSent: number;
  dropped: number;
}

export class DirectMiddlebox implements Middlebox {
  readonly stats: DirectStats = { toRs: 0, toClient: 0, fragNeededSent: 0, dropped: 0 };
  private readonly ip = new Ipv4View();
  private readonly tcp = new TcpView();

  constructor(private readonly topo: Topology) {}

  receive(pkt: Uint8Array, _now: number): Uint8Array[] {
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
    if (ip.dst === this.topo.vip && tcp.dstPort === this.topo.vport) {
      const rs = this.pick(ip.src, tcp.srcPort);
      if (ip.totalLength > rs.linkMtu && ip.dontFragment) {
        this.stats.fragNeededSent++;
        return [buildFragNeeded(this.topo.vip, pkt, rs.linkMtu)];
      }
      ip.dst = rs.addr;
      tcp.dstPort = rs.port;
      this.stats.toRs++;
    } else if (this.topo.rs.some((r) => r.addr === ip.src && r.port === tcp.srcPort)) {
      ip.src = this.topo.vip;
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

  private pick(addr: number, port: number): RsInfo {
    return this.topo.rs[mix32(addr, port) % this.topo.rs.length]!;
  }
}
