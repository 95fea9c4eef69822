/**
 * A real server of one service as a string key — the LB's weights and the
 * health checker's checks are kept by it — and the weight the LB schedules
 * it with.
 */
import type { L4Protocol } from '../engine/options.js';
import { addressKey, type IpAddress } from '../wire/address.js';

/** One key per (protocol, VIP:vport, RS address:port): a TCP and a UDP service on one VIP:port stay apart. */
export const realServerKey = (
  vip: IpAddress,
  vport: number,
  addr: IpAddress,
  port: number,
  protocol: L4Protocol = 'TCP',
): string =>
  `${protocol === 'UDP' ? 'UDP ' : ''}${addressKey(vip)}:${vport}/${addressKey(addr)}:${port}`;

export interface RsWeight {
  /** From the file or `ctl -e`. */
  weight: number;
  healthy: boolean;
  /** Set by a MISC_CHECK with misc_dynamic; over `weight` while present. */
  dynamic?: number;
  /**
   * DOWN without inhibit_on_failure: out of the listing as keepalived
   * removes it, while the engine keeps it at weight 0 so its connections
   * finish (as IPVS's do after a delete).
   */
  hidden?: boolean;
}

/** The weight the engine schedules with: 0 while a check holds the RS out. */
export const weightInForce = (w: RsWeight): number => (w.healthy ? (w.dynamic ?? w.weight) : 0);
