#!/usr/bin/env node
// The long hostile-packet fuzz: `npm run fuzz -- [--packets N] [--seed S]
// [--policy lvs|dpvs|fullnat|all] [--max-minutes M]`.
// Feeds N packets per policy through the engine with the checks of
// test/support/fuzz.ts (compiled to dist/test/support/fuzz.js) and prints a
// summary. Exit codes: 0 clean, 1 violation (seed, policy and packet index
// printed: the same arguments replay it), 2 bad arguments, 3 time limit
// reached before N packets.
import { performance } from 'node:perf_hooks';
import { FUZZ_POLICIES, Fuzzer, buildCorpus } from '../dist/test/support/fuzz.js';

const USAGE =
  'usage: npm run fuzz -- [--packets N] [--seed S] [--policy lvs|dpvs|fullnat|all] ' +
  '[--max-minutes M]';

function parseArgs(argv) {
  const o = {
    packets: 100_000_000,
    seed: (Date.now() ^ (process.pid << 16)) >>> 0,
    policy: 'all',
    maxMinutes: 60,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const count = (v, name) => {
      const n = Number(v.replace(/_/g, ''));
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`bad ${name}: ${v}`);
      return n;
    };
    if (a === '--packets') o.packets = count(value(), 'packet count');
    else if (a === '--seed') o.seed = count(value(), 'seed') >>> 0;
    else if (a === '--policy') o.policy = value();
    else if (a === '--max-minutes') o.maxMinutes = Number(value());
    else if (a === '-h' || a === '--help') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (o.policy !== 'all' && !FUZZ_POLICIES.includes(o.policy)) {
    throw new Error(`bad policy ${o.policy}`);
  }
  if (!(o.maxMinutes > 0)) throw new Error('bad --max-minutes');
  return o;
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}

const mb = (n) => `${(n / 1048576).toFixed(1)} MB`;
const fmt = (n) => n.toLocaleString('en-US');
const CHUNK = 1_000_000;
const PROGRESS = 10_000_000;
const deadline = Date.now() + opts.maxMinutes * 60_000;
const policies = opts.policy === 'all' ? [...FUZZ_POLICIES] : [opts.policy];

console.log(
  `fuzz: ${fmt(opts.packets)} packets per policy (${policies.join(', ')}), seed ${opts.seed}, ` +
    `at most ${opts.maxMinutes} min; node ${process.version}`,
);

let total = 0;
let totalMs = 0;
let status = 0;
for (const policy of policies) {
  const heapBefore = process.memoryUsage().heapUsed;
  const f = new Fuzzer(policy, opts.seed, buildCorpus(policy));
  const t0 = performance.now();
  let violation = null;
  let nextReport = PROGRESS;
  while (f.packets < opts.packets) {
    violation = f.run(Math.min(CHUNK, opts.packets - f.packets));
    if (violation !== null) break;
    if (f.packets >= nextReport) {
      const s = (performance.now() - t0) / 1000;
      console.log(
        `  ${policy}: ${fmt(f.packets)} packets, ${s.toFixed(0)} s, ` +
          `${fmt(Math.round(f.packets / s))}/s, heap ${mb(process.memoryUsage().heapUsed)}, ` +
          `rss ${mb(process.memoryUsage().rss)}`,
      );
      nextReport += PROGRESS;
    }
    if (Date.now() > deadline) break;
  }
  const ms = performance.now() - t0;
  total += f.packets;
  totalMs += ms;
  const s = f.summary();
  const mem = process.memoryUsage();
  if (violation !== null) {
    const index = f.packets - 1;
    console.log(`\nVIOLATION under ${policy}, seed ${opts.seed}, packet index ${index}:`);
    console.log(`  ${violation}`);
    console.log(`  input: ${f.inputHex()}`);
    console.log(
      `  replay: npm run fuzz -- --policy ${policy} --seed ${opts.seed} --packets ${index + 1}`,
    );
    status = 1;
  }
  const dropped = Object.values(s.drops).reduce((a, b) => a + b, 0);
  console.log(`\n${policy}: seed ${s.seed}`);
  console.log(
    `  packets ${fmt(s.packets)}: forwarded ${fmt(s.forwarded)} + dropped ${fmt(dropped)}` +
      ` + held ${fmt(s.held)} (rx_packets ${fmt(s.counters.rx_packets ?? 0)})`,
  );
  console.log(
    `  drops: ${Object.entries(s.drops)
      .map(([k, v]) => `${k} ${fmt(v)}`)
      .join(', ')}`,
  );
  const shown = [
    'tx_packets',
    'conns_created',
    'conns_expired',
    'toa_inserted',
    'toa_inserted_syn',
    'toa_pruned',
    'toa_split',
    'toa_failed_no_room',
    'toa_failed_mtu',
    'toa_spoof_stripped',
    'mss_clamped',
    'proxy_headers_sent',
    'rst_sent',
    'icmp_frag_needed_sent',
    'table_full',
    'laddr_ports_exhausted',
  ].filter((k) => s.counters[k]);
  console.log(`  also: ${shown.map((k) => `${k} ${fmt(s.counters[k])}`).join(', ')}`);
  const synproxy = Object.keys(s.counters).filter((k) => k.startsWith('synproxy_'));
  console.log(`  synproxy: ${synproxy.map((k) => `${k} ${fmt(s.counters[k])}`).join(', ')}`);
  console.log(
    `  most outputs per input ${s.maxOutputs}, pool ${s.poolBuffers} buffers, ` +
      `${s.connections} connections open`,
  );
  console.log(
    `  heap ${mb(heapBefore)} -> ${mb(mem.heapUsed)}, rss ${mb(mem.rss)}, ` +
      `${(ms / 1000).toFixed(1)} s, ${fmt(Math.round(s.packets / (ms / 1000)))} packets/s`,
  );
  if (status !== 0) break;
  if (f.packets < opts.packets) {
    console.log(`\nstopped by the ${opts.maxMinutes}-minute limit before ${fmt(opts.packets)}`);
    status = 3;
    break;
  }
}

console.log(
  `\ntotal: ${fmt(total)} packets in ${(totalMs / 1000).toFixed(1)} s ` +
    `(${fmt(Math.round(total / (totalMs / 1000)))} packets/s), ` +
    `${status === 1 ? '1 violation' : '0 violations'}`,
);
process.exit(status);
