/**
 * One node of the in-process sync benchmark (engine-sync.ts): an Engine
 * with one IPv4 service, its sync journal linked to a real FleetSync
 * channel on 127.0.0.1. The sending node runs in the benchmark's process;
 * the peer runs this file as a child process (`node sync-fleet-node.js
 * peer PORT1 PORT2 KEYHEX`) and answers each line on its stdin with a JSON
 * line: the entries it holds for node 1, its sync counters and its CPU.
 */
import { pino } from 'pino';
import type { SyncSpec } from '../src/control/model.js';
import { linkEngine } from '../src/control/sync/engine-link.js';
import { deriveSyncKeys } from '../src/control/sync/key.js';
import { FleetSync } from '../src/control/sync/sync.js';
import { Engine } from '../src/engine/engine.js';
import { parseIpv4 } from '../src/wire/bytes.js';

export const SYNC_VIP = 0xc0000264; // 192.0.2.100
export const SYNC_RIPS = [0x0a0a0202, 0x0a0a0203, 0x0a0a0204, 0x0a0a0205];
/** Node k's LIPs: 10.10.(2+k).1 and .2, inside its lip_prefix 10.10.(2+k).0/28. */
export const nodeLips = (k: number): number[] =>
  [1, 2].map((h) => (0x0a0a0000 | ((2 + k) << 8) | h) >>> 0);
const LOCALHOST = parseIpv4('127.0.0.1');

/** Node `id` of a two-node fleet on 127.0.0.1 whose node k listens on ports[k-1]. */
export function benchSyncSpec(id: number, ports: number[], maxSynced: number): SyncSpec {
  const pos = { file: 'bench', line: 1 };
  return {
    nodeId: id,
    nodes: 2,
    listen: { addr: LOCALHOST, port: ports[id - 1]! },
    keyFile: '(in memory)',
    peers: [1, 2]
      .filter((k) => k !== id)
      .map((k) => ({
        addr: LOCALHOST,
        port: ports[k - 1]!,
        nodeId: k,
        lipPrefixes: [{ addr: (0x0a0a0000 | ((2 + k) << 8)) >>> 0, length: 28 }],
        pos,
      })),
    maxSynced,
    heartbeatMs: 200,
    resyncTimeoutMs: 300,
    pos,
  };
}

/** Node k's engine: the same service on every node, each with its own LIPs. */
export function benchSyncEngine(k: number, maxConnections: number): Engine {
  const e = new Engine({ toaPolicy: 'fullnat', maxConnections, isnSecret: 42 + k });
  e.addService({
    vip: SYNC_VIP,
    vport: 80,
    scheduler: 'wrr',
    laddrs: nodeLips(k),
    realServers: SYNC_RIPS.map((addr, i) => ({ addr, port: 80, weight: 1 + (i % 2) })),
  });
  return e;
}

/** Sync on in `e` as node `id`, its channel open; resolves once started. */
export async function startSync(
  e: Engine,
  id: number,
  ports: number[],
  key: Uint8Array,
  maxSynced: number,
): Promise<FleetSync> {
  const spec = benchSyncSpec(id, ports, maxSynced);
  const side = linkEngine(e, spec, deriveSyncKeys(key).fleetKey);
  for (const p of spec.peers) for (const prefix of p.lipPrefixes) side.addPeerPrefix(prefix);
  return FleetSync.start({ spec, key, table: side.table, log: pino({ level: 'warn' }) });
}

async function peerMain(args: string[]): Promise<void> {
  const ports = [Number(args[0]), Number(args[1])];
  const key = Buffer.from(args[2] ?? '', 'hex');
  const maxSynced = 400_000;
  const e = benchSyncEngine(2, 2 * maxSynced);
  const sync = await startSync(e, 2, ports, key, maxSynced);
  // Peers' entries expire on the engine's clock: keep it the wall clock's.
  const t0 = Date.now();
  const clock = setInterval(() => e.tick(Date.now() - t0), 100);
  process.stdout.write(`${JSON.stringify({ listening: true })}\n`);
  process.stdin.on('data', () => {
    const cpu = process.cpuUsage();
    process.stdout.write(
      `${JSON.stringify({
        held: e.syncJournal?.imported ?? 0,
        applied: e.counter('sync_applied'),
        tablesReceived: sync.counters.n.tables_received,
        cpuUs: cpu.user + cpu.system,
      })}\n`,
    );
  });
  process.stdin.on('end', () => {
    clearInterval(clock);
    void sync.close().finally(() => process.exit(0));
  });
}

if (process.argv[2] === 'peer') void peerMain(process.argv.slice(3));
