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
import { addressToString, Ipv6Address } from '../../src/wire/address.js';
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

/**
 * Families 6 and 64: tshark decodes every packet on both links — the
 * simulated hosts' IPv6 as well as the LB's — with good TCP, IPv4 and
 * ICMPv6 checksums, and every LB→RS TOA (kind 254, length 20) carries the
 * IPv6 client of its connection.
 */
test('tshark validates IPv6 and FNAT64 runs: hosts and LB alike', { skip: missing }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'fullnat-sim6-'));
  try {
    let toaPackets = 0;
    let icmp6 = 0;
    let v6Packets = 0;
    for (const family of [6, 64] as const) {
      for (const [scenario, policy] of [
        ['over-mss', 'fullnat'],
        ['options-full', 'fullnat'],
        ['spoof-toa', 'fullnat'],
        ['small-rs-mtu', 'fullnat'],
        // The LB's and the hop's Packet Too Big.
        ['small-rs-mtu', 'dpvs'],
      ] as const) {
        const run = runScenario({
          scenario,
          family,
          middleboxFactory: engineMiddlebox({ toaPolicy: policy }),
          connections: 10,
          capture: true,
        });
        assert.equal(run.failed, 0, `${family} ${scenario}/${policy}`);
        const w = new PcapWriter(101);
        for (const r of run.records) if (!r.drop) w.add(Math.round(r.t * 1000), r.bytes);
        const file = join(dir, `${scenario}-${policy}-${family}.pcap`);
        writeFileSync(file, w.toBytes());
        const lines = tsharkFields(
          file,
          [
            'ip.version',
            'ip.checksum.status',
            'tcp.checksum.status',
            'icmpv6.checksum.status',
            'ip.src',
            'ipv6.src',
            'tcp.options',
            'icmpv6.type',
            'icmp.type',
            'icmp.checksum.status',
          ],
          { home: dir, timeoutMs: 60_000 },
        );
        assert.equal(lines.length, run.records.filter((r) => !r.drop).length, 'every packet');
        const clients = new Map(run.details.map((d) => [d.clientEndpoint.port, d.client]));
        const lips = new Set(run.topology.lips.map(addressToString));
        for (const line of lines) {
          const [version, ipStatus, tcpStatus, icmpStatus, src4, src6, options, icmpType] = line;
          const [icmp4Type, icmp4Status] = line.slice(8);
          if (version === '6') v6Packets++;
          if (icmp4Type) {
            // FNAT64's IPv4 leg: the RS-side hop's frag-needed to the RS.
            assert.equal(icmp4Type, '3', `only frag-needed: ${line}`);
            assert.equal(icmp4Status, '1', `bad ICMP checksum: ${line}`);
            continue;
          }
          if (icmpType) {
            assert.equal(icmpType.split(',')[0], '2', `only Packet Too Big: ${line}`);
            assert.equal(icmpStatus, '1', `bad ICMPv6 checksum: ${line}`);
            icmp6++;
            continue;
          }
          if (version === '4') assert.equal(ipStatus, '1', `bad IPv4 checksum: ${line}`);
          assert.equal(tcpStatus, '1', `${family} ${scenario}: bad TCP checksum: ${line}`);
          const src = version === '6' ? src6! : src4!;
          if (lips.has(src) && options && options.startsWith('fe14')) {
            toaPackets++;
            const port = parseInt(options.slice(4, 8), 16);
            const addr = Ipv6Address.fromBytes(
              Uint8Array.from(options.slice(8, 40).match(/../g)!, (h) => parseInt(h, 16)),
            );
            assert.equal(clients.get(port), `[${addr.text}]:${port}`, `TOA names ${addr.text}`);
          }
        }
      }
    }
    assert.ok(toaPackets > 100, `expected many 20-byte TOAs, saw ${toaPackets}`);
    assert.ok(icmp6 >= 20, `expected Packet Too Big from the LB and the hop, saw ${icmp6}`);
    assert.ok(v6Packets > 1000, `expected many IPv6 packets, saw ${v6Packets}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
