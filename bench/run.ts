/**
 * `npm run bench -- [engine] [--json] [--connections N]`
 * engine: packets per second through the engine alone (one core).
 */
import { Command } from 'commander';
import { runEngineBench } from './engine.js';

const program = new Command('bench')
  .argument('[suites...]', 'which benchmarks to run (engine)', ['engine'])
  .option('--json', 'print one JSON document')
  .option('--connections <n>', 'connections in the engine workload', '100000')
  .option('--rounds <n>', 'timed rounds (best is reported)', '5')
  .action((suites: string[], o: { json?: boolean; connections: string; rounds: string }) => {
    const results: Record<string, unknown> = {};
    for (const s of suites) {
      if (s !== 'engine') throw new Error(`unknown benchmark "${s}"; available: engine`);
      const r = runEngineBench(Number(o.connections), Number(o.rounds));
      results.engine = r;
      if (!o.json) {
        console.log(
          `engine: ${r.packets} packets (${r.connections} connections, 10 packets each, 2 TOA insertions each)`,
        );
        console.log(
          `  ${(r.packetsPerSecond / 1e6).toFixed(2)} Mpps on one core, ${r.nsPerPacket.toFixed(0)} ns/packet (best of ${o.rounds})`,
        );
        console.log(
          `  allocated ${r.allocatedBytesPerPacket.toFixed(2)} bytes/packet; TOA inserted ${r.toaInserted}`,
        );
        console.log(
          `  connection table ${r.tableBytesPerConnection.toFixed(1)} bytes/connection (capacity-based)`,
        );
      }
    }
    if (o.json) console.log(JSON.stringify({ node: process.version, results }));
  });

program.parse(process.argv);
