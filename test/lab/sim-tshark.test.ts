/**
 * tshark checks the engine's own output: every packet the load balancer sent
 * in the hardest scenarios (TOA insertion, pruning, splitting, spoof
 * stripping) must decode with good IP and TCP checksums, and every LB→RS
 * packet that tshark shows with option 254 must carry the client's address.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { engineMiddlebox } from '../../src/lab/engine-middlebox.js';
import { runScenario } from '../../src/lab/sim/run.js';
import { LIPS } from '../../src/lab/sim/run.js';
import { addressToString } from '../../src/wire/address.js';
import { PcapWriter } from '../../src/wire/pcap.js';
import { tsharkFields } from '../support/tshark.js';

const tshark = spawnSync('tshark', ['--version'], { encoding: 'utf8', timeout: 20_000 });
const missing = tshark.error ? `tshark not installed: ${tshark.error.message}` : undefined;

test('tshark validates every packet the engine emitted', { skip: missing }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'fullnat-sim-'));
  try {
    const lips = new Set(LIPS.map(addressToString));
    let toaPackets = 0;
    let lbPackets = 0;
    for (const scenario of [
      'over-mss',
      'options-full',
      'spoof-toa',
      'fin-data',
      'small-rs-mtu',
    ] as const) {
      const run = runScenario({
        scenario,
        middleboxFactory: engineMiddlebox({ toaPolicy: 'fullnat' }),
        connections: 20,
        capture: true,
      });
      const w = new PcapWriter(101);
      // Only what the LB emitted: its TCP output toward the RS and the client.
      for (const r of run.records)
        if (r.dir === 'fromMiddlebox') w.add(Math.round(r.t * 1000), r.bytes);
      const file = join(dir, `${scenario}.pcap`);
      writeFileSync(file, w.toBytes());
      const lines = tsharkFields(
        file,
        ['ip.src', 'ip.checksum.status', 'tcp.checksum.status', 'tcp.options', 'tcp.srcport'],
        { home: dir, filter: 'tcp && !icmp', timeoutMs: 60_000 },
      );
      assert.ok(lines.length > 0, `${scenario}: tshark decoded nothing`);
      const clients = new Map(run.details.map((d) => [d.clientEndpoint.port, d.client]));
      for (const line of lines) {
        const [src, ipStatus, tcpStatus, options] = line;
        lbPackets++;
        assert.equal(ipStatus, '1', `${scenario}: bad IP checksum: ${line}`);
        assert.equal(tcpStatus, '1', `${scenario}: bad TCP checksum: ${line}`);
        // The first option of an LB→RS packet that carries a TOA is ours: fe08 port(2) addr(4).
        if (lips.has(src!) && options && options.startsWith('fe08')) {
          toaPackets++;
          const port = parseInt(options.slice(4, 8), 16);
          const addr = [8, 10, 12, 14].map((i) => parseInt(options.slice(i, i + 2), 16)).join('.');
          assert.equal(
            clients.get(port),
            `${addr}:${port}`,
            `${scenario}: TOA names ${addr}:${port}`,
          );
        }
      }
    }
    assert.ok(toaPackets > 100, `expected many TOA packets, saw ${toaPackets} of ${lbPackets}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
