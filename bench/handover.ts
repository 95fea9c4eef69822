/**
 * The connection table through a restart handover, engine side: N live
 * connections (one client SYN each) exported as a snapshot and imported
 * into a fresh engine configured in another order. The time both take is
 * part of the forwarding gap a handover leaves, and the snapshot's size is
 * what crosses between the processes.
 */
import { performance } from 'node:perf_hooks';
import { Engine } from '../src/engine/engine.js';
import type { ServiceConfig } from '../src/engine/options.js';
import { Ipv4View } from '../src/wire/ipv4.js';
import { TCP_SYN } from '../src/wire/tcp.js';
import { opt } from '../src/wire/tcp-options.js';
import { buildSegment } from '../test/support/packets.js';

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
  const syn = buildSegment({
    src: 0,
    dst: VIP,
    sport: 0,
    dport: 80,
    seq: 1,
    flags: TCP_SYN,
    options: [opt.mss(1460), opt.sackPermitted(), opt.nop(), opt.wscale(7)],
  });
  const ip = new Ipv4View();
  for (let i = 0; i < connections; i++) {
    const p = from.pool.take();
    p.load(syn);
    const b = p.buf;
    const s = p.start;
    const cip = (0x64400000 + (i >>> 4)) >>> 0;
    b[s + 12] = cip >>> 24;
    b[s + 13] = (cip >>> 16) & 0xff;
    b[s + 14] = (cip >>> 8) & 0xff;
    b[s + 15] = cip & 0xff;
    const cport = 20000 + (i & 15);
    b[s + 20] = cport >>> 8;
    b[s + 21] = cport & 0xff;
    ip.wrap(b, s).updateChecksum();
    from.process(p);
    for (let k = 0; k < from.outCount; k++) from.pool.give(from.out[k]!);
    from.clearOutput();
  }
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
