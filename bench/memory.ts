/**
 * Connection-table memory at scale: fills an engine's table with N live
 * connections (one client SYN each, as a SYN flood or a busy LB would) and
 * reports the bytes each connection costs — the table's own typed arrays,
 * and what the process as a whole grew by (typed arrays outside the table,
 * such as the per-(LIP, RS) port bitmaps, and the JavaScript heap).
 */
import { performance } from 'node:perf_hooks';
import { Engine } from '../src/engine/engine.js';
import { fillWithSyns } from './fill.js';
import { collectGarbage } from './gc.js';

export interface MemoryBenchResult {
  connections: number;
  /** The table's typed arrays (entries, both hash indexes, timer wheel) ÷ live connections. */
  tableBytesPerConnection: number;
  /** Growth of the process's ArrayBuffer memory and JS heap while filling, ÷ connections. */
  processBytesPerConnection: number;
  /** Resident set size growth ÷ connections (pages actually touched). */
  rssBytesPerConnection: number;
  fillSeconds: number;
}

const VIP = 0xc0000264;
const RIPS = [0x0a0a0202, 0x0a0a0203, 0x0a0a0204, 0x0a0a0205];
/** 4 RS × 48 LIPs × 60,536 ports per pair: room for 11.6 M connections. */
const LIPS = Array.from({ length: 48 }, (_, i) => (0x0a0a0301 + i) >>> 0);

function footprint(): { buffers: number; heap: number; rss: number } {
  const m = process.memoryUsage();
  return { buffers: m.arrayBuffers, heap: m.heapUsed, rss: m.rss };
}

export function runMemoryBench(connections: number): MemoryBenchResult {
  // Twice: the first collection may leave an earlier run's typed arrays to be freed by the next.
  collectGarbage();
  collectGarbage();
  const before = footprint();
  const e = new Engine({
    toaPolicy: 'fullnat',
    maxConnections: connections,
    isnSecret: 42,
    maxLocalAddresses: LIPS.length,
  });
  e.addService({
    vip: VIP,
    vport: 80,
    scheduler: 'rr',
    laddrs: LIPS,
    realServers: RIPS.map((addr) => ({ addr, port: 80, weight: 1 })),
  });
  const t0 = performance.now();
  fillWithSyns(e, VIP, connections);
  const fillSeconds = (performance.now() - t0) / 1000;
  if (e.table.count !== connections)
    throw new Error(
      `memory bench: ${e.table.count} of ${connections} connections entered (table_full ${e.counter('table_full')}, ports exhausted ${e.counter('laddr_ports_exhausted')})`,
    );
  collectGarbage();
  const after = footprint();
  const result: MemoryBenchResult = {
    connections,
    tableBytesPerConnection: e.table.memoryBytes / connections,
    processBytesPerConnection:
      (after.buffers - before.buffers + after.heap - before.heap) / connections,
    rssBytesPerConnection: (after.rss - before.rss) / connections,
    fillSeconds,
  };
  // Keep the engine alive until measured.
  if (e.table.count < 0) console.log(e);
  return result;
}
