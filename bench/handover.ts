/**
 * The connection table through a restart handover, engine side: N live
 * connections (one client SYN each) exported as a snapshot and imported
 * into a fresh engine configured in another order. The time both take is
 * part of the forwarding gap a handover leaves, and the snapshot's size is
 * what crosses between the processes.
 */
import { performance } from 'node:perf_hooks';
import { Engine } from '../src/engine/engine.js';
import { fillWithSyns } from './fill.js';
import type { ServiceConfig } from '../src/engine/options.js';

export interface HandoverBenchResult {
  connections: number;
  snapshotBytes: number;
  bytesPerConnection: number;
  exportMs: number;
  importMs: number;
  imported: number;
}

const VIP = 0xc0000264;
const RIPS = [0x0a0a0202, 0x0a0a0203, 0x0a0a0204, 0x0a0a0205];
const LIPS = Array.from({ length: 16 }, (_, i) => (0x0a0a0301 + i) >>> 0);

function engineFor(connections: number, service: ServiceConfig): Engine {
  const e = new Engine({ maxConnections: connections, maxLocalAddresses: LIPS.length });
  e.addService(service);
  return e;
}

export function runHandoverBench(connections: number): HandoverBenchResult {
  const service: ServiceConfig = {
    vip: VIP,
    vport: 80,
    scheduler: 'rr',
    laddrs: LIPS,
    realServers: RIPS.map((addr) => ({ addr, port: 80, weight: 1 })),
  };
  const from = engineFor(connections, service);
  fillWithSyns(from, VIP, connections);
  if (from.table.count !== connections)
    throw new Error(`handover bench: ${from.table.count} of ${connections} connections entered`);
  // The importer lists its LIPs and real servers the other way round: every index differs.
  const to = engineFor(connections, {
    ...service,
    laddrs: [...LIPS].reverse(),
    realServers: [...service.realServers].reverse(),
  });
  const t0 = performance.now();
  const snapshot = from.exportConnections();
  const t1 = performance.now();
  const r = to.importConnections(snapshot, 0);
  const t2 = performance.now();
  return {
    connections,
    snapshotBytes: snapshot.length,
    bytesPerConnection: (snapshot.length - 40) / connections,
    exportMs: t1 - t0,
    importMs: t2 - t1,
    imported: r.imported,
  };
}
