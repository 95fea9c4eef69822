/** The running LB's status as control tests make it up: real servers with the usual values unless a test says otherwise. */
import type { RealServerStatus, TrafficStats } from '../../src/control/model.js';
import type { IpAddress } from '../../src/wire/address.js';

export const noTraffic = (): TrafficStats => ({
  conns: 0,
  inPackets: 0,
  outPackets: 0,
  inBytes: 0,
  outBytes: 0,
});

/**
 * A real server with `weight`: healthy and that weight in force, no
 * connections and no traffic, unless `s` says otherwise.
 */
export function rsStatus(
  addr: IpAddress,
  port: number,
  weight: number,
  s: Partial<Omit<RealServerStatus, 'addr' | 'port' | 'weight'>> = {},
): RealServerStatus {
  return {
    addr,
    port,
    weight,
    effectiveWeight: weight,
    healthy: true,
    activeConns: 0,
    inactiveConns: 0,
    stats: noTraffic(),
    ...s,
  };
}
