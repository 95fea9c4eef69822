/**
 * What the fleet reads of the running LB: each live service's weight in
 * force against its quorum, the LIPs, and the connections a drain waits
 * for. Read from the engine's admin tables on a change, never per packet.
 */
import type { Engine } from '../../engine/engine.js';
import { addressKey, type IpAddress } from '../../wire/address.js';
import type { FullnatConfig } from '../model.js';
import type { ServiceHealth } from './announcer.js';
import { openTcpConnections } from './drain.js';

/** The services the engine runs, with the quorum of the config's (ctl-added ones: 1). */
export function serviceHealth(engine: Engine, config: FullnatConfig): ServiceHealth[] {
  const quorum = new Map<string, number>();
  for (const s of config.services)
    quorum.set(`${s.protocol} ${addressKey(s.vip)} ${s.vport}`, s.quorum);
  return engine.services
    .filter((s) => s.live)
    .map((s) => ({
      vip: s.vip,
      vport: s.vport,
      protocol: s.protocol,
      weightInForce: s.targets.reduce((sum, r) => sum + (r.member ? r.weight : 0), 0),
      quorum: quorum.get(`${s.protocol} ${addressKey(s.vip)} ${s.vport}`) ?? 1,
    }));
}

/** Every LIP a live service sources connections from. */
export function localAddresses(engine: Engine): IpAddress[] {
  const seen = new Map<string, IpAddress>();
  for (const s of engine.services) {
    if (!s.live) continue;
    for (const li of s.lipIndexes) {
      const lip = engine.laddrs.lips[li];
      if (lip !== undefined) seen.set(addressKey(lip), lip);
    }
  }
  return [...seen.values()];
}

/** The TCP connections a drain waits for: this node's own, not those held for fleet peers. */
export function drainingConnections(engine: Engine): number {
  return openTcpConnections(engine.table, engine.syncJournal?.tcp.origin);
}
