/** Per-second rates for `ctl -Ln --rate`, from two snapshots (see computeRates). */
import { endpointToString, type IpAddress } from '../../wire/address.js';
import type { ServiceStatus, Snapshot, TrafficStats } from '../model.js';

/** Per-second rates, as the kernel's estimator reports them to `ipvsadm --rate`. */
export interface TrafficRates {
  cps: number;
  inPps: number;
  outPps: number;
  inBps: number;
  outBps: number;
}

export interface RealServerRates {
  addr: IpAddress;
  port: number;
  rates: TrafficRates;
}

export interface ServiceRates {
  vip: IpAddress;
  vport: number;
  protocol: ServiceStatus['protocol'];
  rates: TrafficRates;
  realServers: RealServerRates[];
}

const ZERO_RATES: TrafficRates = { cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 };

function ratesBetween(a: TrafficStats | undefined, b: TrafficStats, seconds: number): TrafficRates {
  // No baseline (added between the two snapshots) or a counter that went back (-Z in between):
  // nothing honest to report but zero.
  if (!a || !(seconds > 0)) return { ...ZERO_RATES };
  const per = (x: number, y: number): number => (y >= x ? Math.round((y - x) / seconds) : 0);
  return {
    cps: per(a.conns, b.conns),
    inPps: per(a.inPackets, b.inPackets),
    outPps: per(a.outPackets, b.outPackets),
    inBps: per(a.inBytes, b.inBytes),
    outBps: per(a.outBytes, b.outBytes),
  };
}

/**
 * Rates from two snapshots `seconds` apart. The engine keeps no rate
 * estimator (nothing runs per packet that ctl does not need), so
 * `ctl -Ln --rate` samples twice, about a second apart, and divides.
 */
export function computeRates(before: Snapshot, after: Snapshot, seconds: number): ServiceRates[] {
  const key = (addr: IpAddress, port: number): string => endpointToString(addr, port);
  const prev = new Map(before.services.map((s) => [key(s.vip, s.vport), s]));
  return after.services.map((s) => {
    const p = prev.get(key(s.vip, s.vport));
    const prevRs = new Map((p?.realServers ?? []).map((r) => [key(r.addr, r.port), r]));
    return {
      vip: s.vip,
      vport: s.vport,
      protocol: s.protocol,
      rates: ratesBetween(p?.stats, s.stats, seconds),
      realServers: s.realServers.map((r) => ({
        addr: r.addr,
        port: r.port,
        rates: ratesBetween(prevRs.get(key(r.addr, r.port))?.stats, r.stats, seconds),
      })),
    };
  });
}
