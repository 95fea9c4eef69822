/**
 * `npm run bench -- [engine] [memory] [handover] [net] [sync] [sync-rate] [--json] [--connections N]` (no suite: all;
 * net and sync skip with their reason when not root)
 * engine: packets per second through the engine alone (one core).
 * memory: connection-table bytes per connection with 1 M and 10 M entries.
 * handover: the connection table exported and imported (restart handover), 1 M connections.
 * net: fullnat live over its TUN next to the kernel's NAT and HAProxy, in
 * network namespaces (root; skipped with the reason otherwise).
 * sync: what connection sync costs a node — connection rate, CPU and bytes per
 * connection with a `sync` block and without, on the net topology (root).
 * sync-rate: the same at a set connection rate (--sync-rate, 10,000 a second),
 * the Engine fed directly, its journal sent over 127.0.0.1 to a peer node.
 */
import { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { compareFamilies, runEngineBench } from './engine.js';
import { runMixedEngineBench } from './engine-mixed.js';
import { compareUdp } from './engine-udp.js';
import type { Spread } from './stats.js';
import { runMemoryBench } from './memory.js';
import { runHandoverBench } from './handover.js';
import { formatNetTable, netBenchUnavailable, runNetBench, VARIANTS, type Variant } from './net.js';
import { formatSyncTable, runSyncBench } from './net-sync.js';
import { formatEngineSyncTable, runEngineSyncBench } from './engine-sync.js';

const SUITES = ['engine', 'memory', 'handover', 'net', 'sync', 'sync-rate'];

/** A figure over rounds as printed: median (min–max). */
const fmt = (s: Spread, digits: number): string =>
  `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;

interface Opts {
  json?: boolean;
  connections: string;
  rounds?: string;
  seconds: string;
  variants: string;
  tableSizes: string;
  handoverConnections: string;
  cpuProf?: string;
  napiThread?: string;
  syncRate: string;
}

const program = new Command('bench')
  .argument('[suites...]', `which benchmarks to run (${SUITES.join(', ')}; default all)`, SUITES)
  .option('--json', 'print one JSON document')
  .option('--connections <n>', 'connections in the engine workload', '100000')
  .option(
    '--rounds <n>',
    'engine: timed rounds (default 5); net: interleaved rounds over all variants, median and range reported (default 3)',
  )
  .option('--seconds <n>', 'net: seconds per iperf3/wrk run (and for the mixed phase)', '5')
  .option('--table-sizes <list>', 'memory: comma-separated entry counts', '1000000,10000000')
  .option('--handover-connections <n>', 'handover: connections in the table', '1000000')
  .option(
    '--variants <list>',
    'net: comma-separated subset of direct,kernel,haproxy,fullnat',
    VARIANTS.join(','),
  )
  .option(
    '--cpu-prof <dir>',
    'net: write a V8 CPU profile of the fullnat LB to DIR and summarise it',
  )
  .option(
    '--napi-thread <mode>',
    "net: fullnat's napi_thread (auto, on, off) instead of its default (auto), to compare the modes",
  )
  .option(
    '--sync-rate <n>',
    'sync: connections a second of the paced phase; sync-rate: of the whole run',
    '10000',
  )
  .action(async (suites: string[], o: Opts) => {
    const results: Record<string, unknown> = {};
    for (const s of suites) {
      if (!SUITES.includes(s))
        throw new Error(`unknown benchmark "${s}"; available: ${SUITES.join(', ')}`);
    }
    for (const s of suites) {
      if (s === 'engine') {
        const rounds = Number(o.rounds ?? 5);
        const r = runEngineBench(Number(o.connections), rounds);
        results.engine = r;
        if (!o.json) {
          console.log(
            `engine: ${r.packets} packets (${r.connections} connections, 10 packets each, 2 TOA insertions each)`,
          );
          console.log(
            `  ${(r.packetsPerSecond / 1e6).toFixed(2)} Mpps on one core, ${r.nsPerPacket.toFixed(0)} ns/packet median of ${r.rounds} rounds (min ${r.nsPerPacketSpread.min.toFixed(0)}, max ${r.nsPerPacketSpread.max.toFixed(0)}): Engine.process alone`,
          );
          console.log(
            `  ${(r.packetsPerSecondWithCopy / 1e6).toFixed(2)} Mpps, ${r.nsPerPacketWithCopy.toFixed(0)} ns/packet (min ${r.nsPerPacketWithCopySpread.min.toFixed(0)}, max ${r.nsPerPacketWithCopySpread.max.toFixed(0)}) with a JavaScript copy of each packet into its buffer in the timed loop`,
          );
          console.log(
            `  allocated ${r.allocatedBytesPerPacket.toFixed(2)} bytes/packet over all rounds; TOA inserted ${r.toaInserted}`,
          );
          console.log(
            `  connection table ${r.tableBytesPerConnection.toFixed(1)} bytes/connection (capacity-based)`,
          );
        }
        // The same workload with IPv6 clients: toward IPv6 RSs, and toward IPv4 RSs (FNAT64).
        for (const family of [6, 64] as const) {
          const f = runEngineBench(Number(o.connections), rounds, family);
          results[family === 6 ? 'engineIpv6' : 'engineFnat64'] = f;
          if (!o.json) {
            console.log(
              `engine, ${family === 6 ? 'IPv6 → IPv6' : 'FNAT64 (IPv6 → IPv4)'}: ${f.packets} packets, 20-byte TOA`,
            );
            console.log(
              `  ${(f.packetsPerSecond / 1e6).toFixed(2)} Mpps, ${f.nsPerPacket.toFixed(0)} ns/packet median (min ${f.nsPerPacketSpread.min.toFixed(0)}, max ${f.nsPerPacketSpread.max.toFixed(0)}): Engine.process alone, ${(f.packetsPerSecond / r.packetsPerSecond).toFixed(2)}× the IPv4 rate; allocated ${f.allocatedBytesPerPacket.toFixed(2)} bytes/packet; TOA inserted ${f.toaInserted}; table ${f.tableBytesPerConnection.toFixed(1)} bytes/connection`,
            );
          }
        }
        // The families' rates compared in interleaved rounds (the figures above ran one after another).
        const cmp = compareFamilies(30_000, Math.max(rounds, 15));
        results.engineFamilies = cmp;
        if (!o.json) {
          console.log(
            `engine, families interleaved (${cmp.connections} connections, ${cmp.rounds} rounds, Engine.process alone): IPv4 ${fmt(cmp.ns[4], 0)} ns/packet, IPv6 ${fmt(cmp.ns[6], 0)}, FNAT64 ${fmt(cmp.ns[64], 0)}`,
          );
          console.log(
            `  rate ÷ IPv4's in the same round: IPv6 ${fmt(cmp.rateVsIpv4[6], 2)}, FNAT64 ${fmt(cmp.rateVsIpv4[64], 2)} (target ≥ 0.9)`,
          );
        }
        // UDP flows beside IPv4 TCP connections, in interleaved rounds as the families are compared.
        const udp = compareUdp(30_000, Math.max(rounds, 15));
        results.engineUdp = udp;
        if (!o.json) {
          console.log(
            `engine, UDP beside IPv4 TCP interleaved (${udp.flows} flows of 5 datagrams each way, the first 3 up with the opp UOA; ${udp.rounds} rounds, Engine.process alone): UDP ${fmt(udp.ns.udp, 0)} ns/packet, TCP ${fmt(udp.ns.tcp, 0)}`,
          );
          console.log(`  UDP rate ÷ IPv4 TCP's in the same round: ${fmt(udp.rateVsTcp, 2)}`);
        }
        const m = runMixedEngineBench(Number(o.connections), rounds);
        results.engineMixed = m;
        if (!o.json) {
          const kinds = Object.entries(m.kinds)
            .map(([k, n]) => `${k} ${n}`)
            .join(', ');
          console.log(
            `engine, mixed: ${m.packets} packets of ${m.connections} connections (${kinds}) interleaved, up to ${m.peakConnections} open at once, packet pool ${m.poolPackets}`,
          );
          console.log(
            `  ${m.medianNsPerPacket.toFixed(0)} ns/packet median of ${m.rounds} rounds (min ${m.minNsPerPacket.toFixed(0)}, max ${m.maxNsPerPacket.toFixed(0)}): Engine.process and its timers alone`,
          );
          console.log(
            `  allocated ${m.allocatedBytesPerPacket.toFixed(2)} bytes/packet over all rounds; ${Object.entries(
              m.counters,
            )
              .map(([k, n]) => `${k} ${n}`)
              .join(', ')}`,
          );
        }
      } else if (s === 'memory') {
        const rows = o.tableSizes.split(',').map((n) => runMemoryBench(Number(n)));
        results.memory = rows;
        if (!o.json) {
          for (const r of rows)
            console.log(
              `memory: ${r.connections} connections: table ${r.tableBytesPerConnection.toFixed(1)} B/conn, process ${r.processBytesPerConnection.toFixed(1)} B/conn (typed arrays + heap), RSS ${r.rssBytesPerConnection.toFixed(1)} B/conn; filled in ${r.fillSeconds.toFixed(1)} s`,
            );
        }
      } else if (s === 'handover') {
        const r = runHandoverBench(Number(o.handoverConnections));
        results.handover = r;
        if (!o.json) {
          console.log(
            `handover: ${r.connections} connections: export ${r.exportMs.toFixed(0)} ms, import ${r.importMs.toFixed(0)} ms (${r.imported} entered); snapshot ${(r.snapshotBytes / 1e6).toFixed(1)} MB, ${r.bytesPerConnection} B/connection`,
          );
        }
      } else if (s === 'net') {
        const why = netBenchUnavailable();
        if (why) {
          results.net = { skipped: why };
          if (!o.json) console.log(`net: skipped — ${why}`);
          continue;
        }
        const variants = o.variants.split(',').map((v) => v.trim());
        for (const v of variants) {
          if (!(VARIANTS as readonly string[]).includes(v)) {
            throw new Error(`unknown variant "${v}"; available: ${VARIANTS.join(', ')}`);
          }
        }
        if (o.napiThread && !['auto', 'on', 'off'].includes(o.napiThread)) {
          throw new Error(`--napi-thread: "${o.napiThread}"; expected auto, on or off`);
        }
        const cpuProfDir = o.cpuProf ? resolve(o.cpuProf) : undefined;
        if (cpuProfDir) mkdirSync(cpuProfDir, { recursive: true });
        const r = await runNetBench({
          seconds: Number(o.seconds),
          rounds: Number(o.rounds ?? 3),
          variants: variants as Variant[],
          cpuProfDir,
          napiThread: o.napiThread as 'auto' | 'on' | 'off' | undefined,
          // Progress goes to stderr so that --json keeps stdout to one document.
          log: (line) => console.error(line),
        });
        results.net = r;
        if (!o.json) console.log(formatNetTable(r));
      } else if (s === 'sync') {
        const why = netBenchUnavailable();
        if (why) {
          results.sync = { skipped: why };
          if (!o.json) console.log(`sync: skipped — ${why}`);
          continue;
        }
        const r = await runSyncBench({
          seconds: Number(o.seconds),
          rounds: Number(o.rounds ?? 3),
          rate: Number(o.syncRate),
          log: (line) => console.error(line),
        });
        results.sync = r;
        if (!o.json) console.log(formatSyncTable(r));
      } else if (s === 'sync-rate') {
        const r = await runEngineSyncBench({
          seconds: Number(o.seconds),
          rounds: Number(o.rounds ?? 4),
          rate: Number(o.syncRate),
          lifetimeMs: 200,
          log: (line) => console.error(line),
        });
        results.syncRate = r;
        if (!o.json) console.log(formatEngineSyncTable(r));
      }
    }
    if (o.json) console.log(JSON.stringify({ node: process.version, results }));
  });

await program.parseAsync(process.argv);
