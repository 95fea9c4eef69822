/**
 * The packets the engine makes up: RSTs and ICMP destination unreachables.
 * Fields are read back byte by byte, checksums recomputed independently
 * (test/support/checksum.ts), the quote checked against RFC 792 (the
 * original IP header and the first 64 bits of its data) and RFC 1191 (the
 * next-hop MTU in the low 16 bits of the second word), and tshark decodes them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  ICMP_FRAG_NEEDED,
  ICMP_HOST_UNREACHABLE,
  ICMP_PORT_UNREACHABLE,
  craftDestUnreachable,
  craftFragNeeded,
  craftRst,
} from '../../src/engine/craft.js';
import { PacketPool } from '../../src/engine/packet.js';
import { TCP_ACK, TCP_PSH, TCP_SYN } from '../../src/wire/tcp.js';
import { checksumReport } from '../support/checksum.js';
import { buildSegment, pattern, withIpOptions } from '../support/packets.js';
import { probeTshark, tsharkDecode } from '../support/tshark.js';

const CIP = 0xcb007107; // 203.0.113.7
const VIP = 0xc0000264; // 192.0.2.100
const LIP = 0x0a0a0301; // 10.10.3.1
const RIP = 0x0a0a0202; // 10.10.2.2

const u16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;
const u32 = (b: Uint8Array, o: number): number =>
  ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

function made(fill: (p: ReturnType<PacketPool['take']>) => void): Uint8Array {
  const pool = new PacketPool(1);
  const p = pool.take();
  // Leftovers in the buffer must not leak into the packet.
  p.buf.fill(0xa5);
  fill(p);
  return p.view().slice();
}

function assertIpv4Header(
  b: Uint8Array,
  src: number,
  dst: number,
  proto: number,
  total: number,
): void {
  assert.equal(b[0], 0x45, 'version 4, 20-byte header');
  assert.equal(u16(b, 2), total, 'total length');
  assert.equal(b.length, total);
  assert.equal(b[8], 64, 'TTL');
  assert.equal(b[9], proto, 'protocol');
  assert.equal(u32(b, 12), src, 'source');
  assert.equal(u32(b, 16), dst, 'destination');
  const r = checksumReport(b);
  assert.equal(r.ip[0], r.ip[1], 'IP header checksum');
  assert.equal(r.l4[0], r.l4[1], 'TCP/ICMP checksum');
}

describe('craftRst', () => {
  it('RST+ACK: 40 bytes, ports, seq and ack as given, window 0, no options', () => {
    const b = made((p) => craftRst(p, LIP, 5001, RIP, 8080, 0xfedcba98, 0x01020304, true));
    assertIpv4Header(b, LIP, RIP, 6, 40);
    assert.equal(u16(b, 20), 5001);
    assert.equal(u16(b, 22), 8080);
    assert.equal(u32(b, 24), 0xfedcba98);
    assert.equal(u32(b, 28), 0x01020304);
    assert.equal(b[32], 0x50, 'data offset 5');
    assert.equal(b[33], 0x14, 'RST|ACK');
    assert.equal(u16(b, 34), 0, 'window');
    assert.equal(u16(b, 38), 0, 'urgent pointer');
  });

  it('bare RST: ack field zero, only RST set', () => {
    const b = made((p) => craftRst(p, VIP, 80, CIP, 40000, 7, 0x99999999, false));
    assertIpv4Header(b, VIP, CIP, 6, 40);
    assert.equal(u32(b, 24), 7);
    assert.equal(u32(b, 28), 0);
    assert.equal(b[33], 0x04);
  });
});

describe('craftDestUnreachable / craftFragNeeded', () => {
  const orig = buildSegment({
    src: CIP,
    dst: VIP,
    sport: 40001,
    dport: 81,
    seq: 0xdeadbeef,
    ack: 0x11111111,
    flags: TCP_ACK | TCP_PSH,
    payload: pattern(1000),
  });

  function assertUnreachable(b: Uint8Array, o: Uint8Array, code: number, mtu: number): void {
    const ihl = (o[0]! & 0x0f) * 4;
    const quote = ihl + 8;
    assertIpv4Header(b, u32(o, 16), u32(o, 12), 1, 20 + 8 + quote);
    assert.equal(b[20], 3, 'type 3');
    assert.equal(b[21], code);
    assert.equal(u16(b, 24), 0, 'unused');
    assert.equal(u16(b, 26), mtu, 'next-hop MTU');
    assert.deepEqual(b.subarray(28), o.subarray(0, quote), 'IP header and 64 bits of data');
  }

  it('port unreachable (code 3) quotes the header and the 8 bytes holding ports and seq', () => {
    const b = made((p) => craftDestUnreachable(p, VIP, CIP, ICMP_PORT_UNREACHABLE, 0, orig, 0, 20));
    assertUnreachable(b, orig, 3, 0);
    assert.equal(ICMP_PORT_UNREACHABLE, 3);
    assert.equal(u16(b, 48), 40001, 'quoted source port');
    assert.equal(u32(b, 52), 0xdeadbeef, 'quoted seq');
  });

  it('host unreachable (code 1)', () => {
    const b = made((p) => craftDestUnreachable(p, VIP, CIP, ICMP_HOST_UNREACHABLE, 0, orig, 0, 20));
    assertUnreachable(b, orig, 1, 0);
  });

  it('fragmentation needed (code 4) carries the next-hop MTU', () => {
    const b = made((p) => craftFragNeeded(p, VIP, CIP, 1400, orig, 0, 20));
    assertUnreachable(b, orig, ICMP_FRAG_NEEDED, 1400);
    assert.equal(ICMP_FRAG_NEEDED, 4);
  });

  it('quotes IP options too and reads the original at its offset', () => {
    const o = withIpOptions(orig);
    const buf = new Uint8Array(o.length + 50);
    buf.set(o, 50);
    const b = made((p) => craftFragNeeded(p, VIP, CIP, 576, buf, 50, 24));
    assertUnreachable(b, o, 4, 576);
    assert.equal(b.length, 20 + 8 + 24 + 8);
  });
});

const tshark = probeTshark();

describe('crafted packets through tshark', () => {
  it(
    'RSTs and ICMP messages decode as intended with good checksums',
    { skip: tshark.ok ? false : tshark.reason, timeout: 60_000 },
    () => {
      const syn = buildSegment({
        src: CIP,
        dst: VIP,
        sport: 40002,
        dport: 80,
        seq: 0x0a0b0c0d,
        flags: TCP_SYN,
      });
      const frames = [
        made((p) => craftRst(p, LIP, 5001, RIP, 8080, 0xfedcba98, 0x01020304, true)),
        made((p) => craftRst(p, VIP, 80, CIP, 40000, 7, 0, false)),
        made((p) => craftFragNeeded(p, VIP, CIP, 1400, syn, 0, 20)),
        made((p) =>
          craftDestUnreachable(p, VIP, CIP, ICMP_PORT_UNREACHABLE, 0, withIpOptions(syn), 0, 24),
        ),
      ];
      const rows = tsharkDecode(frames, [
        'ip.src',
        'ip.dst',
        'ip.checksum.status',
        'tcp.srcport',
        'tcp.dstport',
        'tcp.seq',
        'tcp.seq_raw',
        'tcp.ack_raw',
        'tcp.flags.reset',
        'tcp.flags.ack',
        'tcp.window_size_value',
        'tcp.checksum.status',
        'icmp.type',
        'icmp.code',
        'icmp.mtu',
        'icmp.checksum.status',
      ]);
      assert.equal(rows.length, 4);
      const [rstAck, rst, fragNeeded, portUnreach] = rows as [
        Record<string, string>,
        Record<string, string>,
        Record<string, string>,
        Record<string, string>,
      ];
      assert.equal(rstAck['ip.src'], '10.10.3.1');
      assert.equal(rstAck['ip.dst'], '10.10.2.2');
      assert.equal(rstAck['ip.checksum.status'], '1');
      assert.equal(rstAck['tcp.checksum.status'], '1');
      assert.equal(rstAck['tcp.srcport'], '5001');
      assert.equal(rstAck['tcp.dstport'], '8080');
      assert.equal(rstAck['tcp.seq_raw'], String(0xfedcba98));
      assert.equal(rstAck['tcp.ack_raw'], String(0x01020304));
      assert.equal(rstAck['tcp.flags.reset'], '1');
      assert.equal(rstAck['tcp.flags.ack'], '1');
      assert.equal(rstAck['tcp.window_size_value'], '0');
      assert.equal(rst['tcp.flags.reset'], '1');
      assert.equal(rst['tcp.flags.ack'], '0');
      assert.equal(rst['tcp.checksum.status'], '1');
      for (const [row, code] of [
        [fragNeeded, '4'],
        [portUnreach, '3'],
      ] as const) {
        // Outer header, then the quoted one.
        assert.equal(row['ip.src'], '192.0.2.100,203.0.113.7');
        assert.equal(row['ip.dst'], '203.0.113.7,192.0.2.100');
        assert.equal(row['ip.checksum.status'], '1,1', 'both IP checksums good');
        assert.equal(row['icmp.type'], '3');
        assert.equal(row['icmp.code'], code);
        assert.equal(row['icmp.checksum.status'], '1');
        assert.equal(row['tcp.srcport'], '40002');
        assert.equal(row['tcp.dstport'], '80');
        assert.equal(row['tcp.seq'], String(0x0a0b0c0d), 'quoted seq');
      }
      assert.equal(fragNeeded['icmp.mtu'], '1400');
    },
  );
});
