import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseIpv4, parseIpv6, set16 } from '../../src/wire/bytes.js';
import { captureFormat, readCapture } from '../../src/wire/capture.js';
import { IPPROTO_TCP, IPPROTO_UDP, writeIpv4Header } from '../../src/wire/ipv4.js';
import { writeIpv6Header } from '../../src/wire/ipv6.js';
import {
  ETHERTYPE_ARP,
  ETHERTYPE_QINQ,
  LINKTYPE_ETHERNET,
  LINKTYPE_IPV4,
  LINKTYPE_IPV6,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_RAW,
  DLT_RAW_12,
  DLT_RAW_14,
  PcapWriter,
  ethernetFrame,
  locateIpHeader,
  readPcap,
} from '../../src/wire/pcap.js';
import { PcapngWriter, readPcapng } from '../../src/wire/pcapng.js';

function ipv4Packet(payload: number, protocol = IPPROTO_TCP): Uint8Array {
  const b = new Uint8Array(20 + payload);
  writeIpv4Header(b, 0, {
    src: parseIpv4('192.0.2.10'),
    dst: parseIpv4('198.51.100.1'),
    protocol,
    payloadLength: payload,
  });
  for (let i = 20; i < b.length; i++) b[i] = i & 0xff;
  return b;
}

function ipv6Packet(payload: number): Uint8Array {
  const b = new Uint8Array(40 + payload);
  writeIpv6Header(b, 0, {
    src: parseIpv6('2001:db8::10')!,
    dst: parseIpv6('2001:db8::1')!,
    nextHeader: IPPROTO_UDP,
    payloadLength: payload,
  });
  return b;
}

const T0 = 1_700_000_000_123_456;

test('pcap RAW: write then read gives back frames, timestamps and IP offsets', () => {
  const packets = [ipv4Packet(20), ipv6Packet(8), ipv4Packet(0, IPPROTO_UDP), ipv4Packet(1)];
  const w = new PcapWriter(LINKTYPE_RAW);
  packets.forEach((p, i) => w.add(T0 + i * 1_000_001, p));
  const bytes = w.toBytes();
  assert.equal(captureFormat(bytes), 'pcap');
  // Little-endian microsecond magic, version 2.4, link type 101.
  assert.deepEqual(Array.from(bytes.subarray(0, 8)), [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]);
  assert.equal(bytes[20], 101);
  assert.equal(bytes.length, 24 + packets.reduce((a, p) => a + 16 + p.length, 0));
  const recs = readCapture(bytes);
  assert.equal(recs.length, packets.length);
  recs.forEach((r, i) => {
    assert.deepEqual(r.data, packets[i]);
    assert.equal(r.timestampUs, T0 + i * 1_000_001);
    assert.equal(r.linkType, LINKTYPE_RAW);
    assert.equal(r.ipOffset, 0);
    assert.equal(r.originalLength, packets[i]!.length);
    assert.equal(r.interfaceId, 0);
  });
});

test('pcap Ethernet with and without VLAN tags', () => {
  const frames = [
    ethernetFrame(ipv4Packet(10)),
    ethernetFrame(ipv6Packet(10), undefined, [100]),
    ethernetFrame(ipv4Packet(10), undefined, [100, 4095]),
    ethernetFrame(new Uint8Array(28), ETHERTYPE_ARP),
  ];
  const w = new PcapWriter(LINKTYPE_ETHERNET);
  frames.forEach((f, i) => w.add(i, f));
  const recs = readCapture(w.toBytes());
  assert.deepEqual(
    recs.map((r) => r.ipOffset),
    [14, 18, 22, -1],
  );
  assert.deepEqual(
    recs.map((r) => r.timestampUs),
    [0, 1, 2, 3],
  );
  assert.deepEqual(recs[1]!.data, frames[1]);
  // 802.1Q tag: TPID 0x8100, TCI with the VLAN id, then the inner EtherType.
  assert.deepEqual(Array.from(frames[1]!.subarray(12, 18)), [0x81, 0x00, 0x00, 0x64, 0x86, 0xdd]);
  assert.throws(() => ethernetFrame(ipv4Packet(0), undefined, [4096]), RangeError);
});

test('locateIpHeader: Q-in-Q TPIDs, non-IP and mislabelled frames', () => {
  const qinq = ethernetFrame(ipv4Packet(0), undefined, [10, 20]);
  set16(qinq, 12, ETHERTYPE_QINQ);
  assert.equal(locateIpHeader(LINKTYPE_ETHERNET, qinq), 22);
  // EtherType says IPv4 but an IPv6 header follows: not trusted.
  const lying = ethernetFrame(ipv6Packet(0), 0x0800);
  assert.equal(locateIpHeader(LINKTYPE_ETHERNET, lying), -1);
  // Short frames and endless tag stacks end cleanly.
  assert.equal(locateIpHeader(LINKTYPE_ETHERNET, new Uint8Array(13)), -1);
  const tags = new Uint8Array(14 + 4 * 10).fill(0);
  for (let p = 12; p < tags.length - 2; p += 4) set16(tags, p, 0x8100);
  assert.equal(locateIpHeader(LINKTYPE_ETHERNET, tags), -1);
  const vlanOnly = ethernetFrame(new Uint8Array(0), 0x8100);
  assert.equal(locateIpHeader(LINKTYPE_ETHERNET, vlanOnly), -1);
  // Raw link types: the version nibble decides.
  assert.equal(locateIpHeader(LINKTYPE_RAW, ipv6Packet(0)), 0);
  assert.equal(locateIpHeader(DLT_RAW_12, ipv4Packet(0)), 0);
  assert.equal(locateIpHeader(DLT_RAW_14, ipv4Packet(0)), 0);
  assert.equal(locateIpHeader(LINKTYPE_RAW, Uint8Array.of(0x20)), -1);
  assert.equal(locateIpHeader(LINKTYPE_RAW, new Uint8Array(0)), -1);
  assert.equal(locateIpHeader(LINKTYPE_IPV4, ipv6Packet(0)), -1);
  assert.equal(locateIpHeader(LINKTYPE_IPV6, ipv6Packet(0)), 0);
  assert.equal(locateIpHeader(147, ipv4Packet(0)), -1);
});

test('locateIpHeader: Linux cooked captures (SLL and SLL2)', () => {
  const ip = ipv4Packet(4);
  const sll = new Uint8Array(16 + ip.length);
  set16(sll, 0, 0); // to us
  set16(sll, 2, 1); // ARPHRD_ETHER
  set16(sll, 14, 0x0800);
  sll.set(ip, 16);
  assert.equal(locateIpHeader(LINKTYPE_LINUX_SLL, sll), 16);
  set16(sll, 14, 0x0806);
  assert.equal(locateIpHeader(LINKTYPE_LINUX_SLL, sll), -1);

  const ip6 = ipv6Packet(0);
  const sll2 = new Uint8Array(20 + ip6.length);
  set16(sll2, 0, 0x86dd);
  sll2.set(ip6, 20);
  assert.equal(locateIpHeader(LINKTYPE_LINUX_SLL2, sll2), 20);
  assert.equal(locateIpHeader(LINKTYPE_LINUX_SLL2, sll2.subarray(0, 19)), -1);

  // The same frames survive a pcap round trip with those link types.
  const recs = readCapture(new PcapWriter(LINKTYPE_LINUX_SLL2).add(5, sll2).toBytes());
  assert.equal(recs[0]!.linkType, LINKTYPE_LINUX_SLL2);
  assert.equal(recs[0]!.ipOffset, 20);
});

test('pcap snap length cuts the frame and records the original length', () => {
  const p = ipv4Packet(200);
  const recs = readCapture(new PcapWriter(LINKTYPE_RAW, 64).add(0, p).toBytes());
  assert.equal(recs[0]!.data.length, 64);
  assert.equal(recs[0]!.originalLength, 220);
  assert.deepEqual(recs[0]!.data, p.subarray(0, 64));
});

test('pcap writer rejects timestamps it cannot represent', () => {
  const w = new PcapWriter(LINKTYPE_RAW);
  assert.throws(() => w.add(-1, ipv4Packet(0)), RangeError);
  assert.throws(() => w.add(1.5, ipv4Packet(0)), RangeError);
  assert.throws(() => w.add(2 ** 32 * 1e6, ipv4Packet(0)), /past 2106/);
});

test('pcapng: write then read, RAW and Ethernet+VLAN interfaces', () => {
  const w = new PcapngWriter(LINKTYPE_RAW);
  const eth = w.addInterface(LINKTYPE_ETHERNET, 'veth-lb0');
  assert.equal(eth, 1);
  const a = ipv4Packet(33);
  const b = ethernetFrame(ipv6Packet(7), undefined, [42]);
  const c = ipv4Packet(0);
  w.add(T0, a);
  w.add(T0 + 1, b, eth, 'with a comment');
  w.add(T0 + 2, c, 0);
  const bytes = w.toBytes();
  assert.equal(captureFormat(bytes), 'pcapng');
  assert.equal(bytes.length % 4, 0);
  const recs = readCapture(bytes);
  assert.equal(recs.length, 3);
  assert.deepEqual(
    recs.map((r) => [r.linkType, r.interfaceId, r.ipOffset, r.timestampUs, r.originalLength]),
    [
      [LINKTYPE_RAW, 0, 0, T0, a.length],
      [LINKTYPE_ETHERNET, 1, 18, T0 + 1, b.length],
      [LINKTYPE_RAW, 0, 0, T0 + 2, c.length],
    ],
  );
  assert.deepEqual(recs[0]!.data, a);
  assert.deepEqual(recs[1]!.data, b);
  assert.deepEqual(recs[2]!.data, c);
  assert.throws(() => w.add(0, a, 7), /interface 7 not declared/);
  assert.throws(() => new PcapngWriter().add(0, a), /interface 0 not declared/);
});

test('pcapng with no packets reads as empty', () => {
  assert.deepEqual(readCapture(new PcapngWriter().toBytes()), []);
  assert.deepEqual(readCapture(new PcapWriter(LINKTYPE_RAW).toBytes()), []);
});

// ---- hand-built files in the formats we read but never write ---------------

/** A pcap file in either byte order and resolution, built field by field. */
function handPcap(
  le: boolean,
  magic: number,
  linkWord: number,
  recs: Array<[number, number, Uint8Array]>,
): Uint8Array {
  const size = 24 + recs.reduce((a, [, , d]) => a + 16 + d.length, 0);
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  v.setUint32(0, magic, le);
  v.setUint16(4, 2, le);
  v.setUint16(6, 4, le);
  v.setUint32(16, 65535, le);
  v.setUint32(20, linkWord, le);
  let p = 24;
  for (const [sec, frac, data] of recs) {
    v.setUint32(p, sec, le);
    v.setUint32(p + 4, frac, le);
    v.setUint32(p + 8, data.length, le);
    v.setUint32(p + 12, data.length, le);
    out.set(data, p + 16);
    p += 16 + data.length;
  }
  return out;
}

test('pcap: big-endian microsecond files', () => {
  const frame = ethernetFrame(ipv4Packet(3));
  const bytes = handPcap(false, 0xa1b2c3d4, LINKTYPE_ETHERNET, [[1_700_000_000, 999_999, frame]]);
  assert.deepEqual(Array.from(bytes.subarray(0, 4)), [0xa1, 0xb2, 0xc3, 0xd4]);
  const [r] = readCapture(bytes);
  assert.equal(r!.timestampUs, 1_700_000_000_999_999);
  assert.equal(r!.linkType, LINKTYPE_ETHERNET);
  assert.equal(r!.ipOffset, 14);
  assert.deepEqual(r!.data, frame);
});

test('pcap: nanosecond files in both byte orders truncate to microseconds', () => {
  for (const le of [true, false]) {
    const bytes = handPcap(le, 0xa1b23c4d, LINKTYPE_RAW, [
      [10, 123_456_789, ipv4Packet(0)],
      [11, 999_999_999, ipv6Packet(0)],
    ]);
    const recs = readCapture(bytes);
    assert.deepEqual(
      recs.map((r) => r.timestampUs),
      [10_123_456, 11_999_999],
      le ? 'little-endian' : 'big-endian',
    );
    assert.deepEqual(
      recs.map((r) => r.ipOffset),
      [0, 0],
    );
  }
});

test('pcap: FCS bits in the link-type word are not part of the link type', () => {
  const bytes = handPcap(true, 0xa1b2c3d4, 0x1000_0000 | LINKTYPE_ETHERNET, [
    [0, 0, ethernetFrame(ipv4Packet(0))],
  ]);
  assert.equal(readCapture(bytes)[0]!.linkType, LINKTYPE_ETHERNET);
});

/** pcapng blocks in a chosen byte order. */
function ngBlock(le: boolean, type: number, body: Uint8Array): Uint8Array {
  const padded = (body.length + 3) & ~3;
  const out = new Uint8Array(12 + padded);
  const v = new DataView(out.buffer);
  v.setUint32(0, type, le);
  v.setUint32(4, out.length, le);
  out.set(body, 8);
  v.setUint32(out.length - 4, out.length, le);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let p = 0;
  for (const part of parts) {
    out.set(part, p);
    p += part.length;
  }
  return out;
}

function ngShb(le: boolean): Uint8Array {
  const body = new Uint8Array(16);
  const v = new DataView(body.buffer);
  v.setUint32(0, 0x1a2b3c4d, le);
  v.setUint16(4, 1, le);
  v.setBigInt64(8, -1n, le);
  return ngBlock(le, 0x0a0d0d0a, body);
}

function ngIdb(le: boolean, linkType: number, tsresol?: number, tsoffset?: bigint): Uint8Array {
  const body = new Uint8Array(8 + 8 + 12 + 4);
  const v = new DataView(body.buffer);
  v.setUint16(0, linkType, le);
  v.setUint32(4, 0, le);
  let p = 8;
  if (tsresol !== undefined) {
    v.setUint16(p, 9, le);
    v.setUint16(p + 2, 1, le);
    body[p + 4] = tsresol;
    p += 8;
  }
  if (tsoffset !== undefined) {
    v.setUint16(p, 14, le);
    v.setUint16(p + 2, 8, le);
    v.setBigInt64(p + 4, tsoffset, le);
    p += 12;
  }
  return ngBlock(le, 1, body.subarray(0, p + 4));
}

function ngEpb(le: boolean, ifId: number, ticks: bigint, data: Uint8Array): Uint8Array {
  const body = new Uint8Array(20 + data.length);
  const v = new DataView(body.buffer);
  v.setUint32(0, ifId, le);
  v.setUint32(4, Number(ticks >> 32n), le);
  v.setUint32(8, Number(ticks & 0xffffffffn), le);
  v.setUint32(12, data.length, le);
  v.setUint32(16, data.length, le);
  body.set(data, 20);
  return ngBlock(le, 6, body);
}

function ngSpb(le: boolean, data: Uint8Array): Uint8Array {
  const body = new Uint8Array(4 + data.length);
  new DataView(body.buffer).setUint32(0, data.length, le);
  body.set(data, 4);
  return ngBlock(le, 3, body);
}

test('pcapng: big-endian section, nanosecond and binary resolutions, tsoffset, SPB, skipped blocks', () => {
  const ip4 = ipv4Packet(5);
  const ip6 = ipv6Packet(3);
  const bytes = concat([
    ngShb(false),
    ngIdb(false, LINKTYPE_RAW, 9),
    ngIdb(false, LINKTYPE_ETHERNET, 0x80 | 10, 100n),
    // A Name Resolution Block (type 4): not a packet, skipped.
    ngBlock(false, 4, new Uint8Array(4)),
    ngEpb(false, 0, 1_700_000_000_123_456_789n, ip4),
    ngEpb(false, 1, 1024n * 3n + 512n, ethernetFrame(ip6)),
    // A second section, little-endian, restarts interface numbering.
    ngShb(true),
    ngIdb(true, LINKTYPE_RAW),
    ngSpb(true, ip6),
    ngEpb(true, 0, 42n, ip4),
  ]);
  const recs = readPcapng(bytes);
  assert.deepEqual(
    recs.map((r) => [r.timestampUs, r.linkType, r.ipOffset, r.interfaceId, r.data.length]),
    [
      [1_700_000_000_123_456, LINKTYPE_RAW, 0, 0, ip4.length],
      [100_000_000 + 3_500_000, LINKTYPE_ETHERNET, 14, 1, 14 + ip6.length],
      [0, LINKTYPE_RAW, 0, 2, ip6.length],
      [42, LINKTYPE_RAW, 0, 2, ip4.length],
    ],
  );
});

// ---- damaged files -------------------------------------------------------

function sampleFiles(): Array<[string, Uint8Array]> {
  const pcap = new PcapWriter(LINKTYPE_ETHERNET)
    .add(1, ethernetFrame(ipv4Packet(30)))
    .add(2, ethernetFrame(ipv6Packet(9), undefined, [7]))
    .add(3, ethernetFrame(ipv4Packet(1)))
    .toBytes();
  const ng = new PcapngWriter(LINKTYPE_RAW);
  ng.addInterface(LINKTYPE_ETHERNET, 'eth0');
  ng.add(1, ipv4Packet(30))
    .add(2, ethernetFrame(ipv6Packet(9)), 1, 'note')
    .add(3, ipv4Packet(2));
  return [
    ['pcap', pcap],
    ['pcapng', ng.toBytes()],
  ];
}

test('truncated pcap: messages name the record and byte', () => {
  const [[, pcap]] = sampleFiles() as [[string, Uint8Array]];
  assert.throws(
    () => readCapture(pcap.subarray(0, 10)),
    /^Error: pcap: file header truncated \(10 of 24 bytes\)$/,
  );
  // Inside the first record header.
  assert.throws(() => readCapture(pcap.subarray(0, 30)), {
    message: 'pcap: record 1 header truncated at byte 24 (6 of 16 bytes)',
  });
  // Inside the third record's data.
  const firstTwo = 24 + 16 + 14 + 50 + 16 + 18 + 49;
  assert.throws(() => readCapture(pcap.subarray(0, firstTwo + 16 + 5)), {
    message: `pcap: record 3 truncated at byte ${firstTwo + 16} (header says 35 bytes, 5 left)`,
  });
  // At a record boundary the prefix is simply a shorter capture.
  assert.equal(readCapture(pcap.subarray(0, firstTwo)).length, 2);
});

test('truncated pcapng: messages name the block and byte', () => {
  const [, [, ng]] = sampleFiles() as [unknown, [string, Uint8Array]];
  assert.throws(
    () => readCapture(ng.subarray(0, ng.length - 3)),
    /^Error: pcapng: block 6 \(Enhanced Packet Block\) at byte \d+ truncated/,
  );
  assert.throws(
    () => readCapture(ng.subarray(0, 8)),
    /^Error: pcapng: block 1 at byte 0 truncated \(8 bytes, a block needs 12\)$/,
  );
});

test('corrupt headers give clear errors', () => {
  const [[, pcap], [, ng]] = sampleFiles() as [[string, Uint8Array], [string, Uint8Array]];
  assert.throws(() => readCapture(new Uint8Array(3)), /capture: file too short \(3 bytes\)/);
  assert.throws(
    () => readCapture(Uint8Array.of(0x7f, 0x45, 0x4c, 0x46, 0, 0)),
    /capture: unrecognised file format \(starts 7f 45 4c 46\)/,
  );
  assert.throws(() => readPcap(Uint8Array.of(1, 2, 3, 4)), /pcap: bad magic/);
  assert.throws(() => readPcapng(pcap), /does not start with a Section Header Block/);

  const badVersion = pcap.slice();
  badVersion[4] = 3;
  assert.throws(() => readCapture(badVersion), /pcap: unsupported version 3\.4/);
  const kuz = pcap.slice();
  kuz.set([0x34, 0xcd, 0xb2, 0xa1], 0);
  assert.throws(() => readPcap(kuz), /Kuznetzov/);

  const badBom = ng.slice();
  badBom[8] = 0;
  assert.throws(
    () => readCapture(badBom),
    /pcapng: block 1 \(Section Header Block\) at byte 0: bad byte-order magic/,
  );
  const badTrailer = ng.slice();
  badTrailer[ng.length - 4]! ^= 4;
  assert.throws(() => readCapture(badTrailer), /trailing block length does not match/);
  const badLen = ng.slice();
  new DataView(badLen.buffer).setUint32(4, 13, true);
  assert.throws(
    () => readCapture(badLen),
    /pcapng: block 1 \(Section Header Block\) at byte 0: bad block length 13/,
  );

  // An EPB pointing at an interface the section never declared.
  const orphan = concat([
    ngShb(true),
    ngIdb(true, LINKTYPE_RAW),
    ngEpb(true, 3, 0n, ipv4Packet(0)),
  ]);
  assert.throws(() => readCapture(orphan), /references interface 3 but the section defines 1/);
  // An EPB whose captured length overruns its own block.
  const overrun = orphan.slice();
  const epbAt = orphan.length - (12 + 20 + 20);
  new DataView(overrun.buffer).setUint32(epbAt + 8, 0, true);
  new DataView(overrun.buffer).setUint32(epbAt + 8 + 12, 200, true);
  assert.throws(() => readCapture(overrun), /packet data truncated \(captured length 200/);
});

test('property: every prefix of a valid file either parses or throws a prefixed Error', () => {
  for (const [name, bytes] of sampleFiles()) {
    const full = readCapture(bytes).length;
    for (let cut = 0; cut < bytes.length; cut++) {
      try {
        const recs = readCapture(bytes.subarray(0, cut));
        assert.ok(recs.length < full, `${name} cut at ${cut}`);
      } catch (e) {
        assert.ok(e instanceof Error);
        assert.equal(e.constructor, Error, `${name} cut at ${cut}: ${String(e)}`);
        assert.match(e.message, /^(pcap|pcapng|capture): /);
      }
    }
  }
});

test('property: random corruption never crashes with anything but a descriptive Error', () => {
  const files = sampleFiles();
  fc.assert(
    fc.property(
      fc.constantFrom(0, 1),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 6,
      }),
      (which, edits) => {
        const bytes = files[which]![1].slice();
        for (const [at, value] of edits) bytes[at % bytes.length] = value;
        try {
          for (const r of readCapture(bytes)) {
            assert.ok(r.data.byteOffset + r.data.length <= bytes.byteOffset + bytes.length);
            assert.ok(r.ipOffset >= -1 && r.ipOffset < Math.max(r.data.length, 1));
          }
        } catch (e) {
          assert.ok(e instanceof Error);
          assert.equal(e.constructor, Error, String(e));
          assert.match(e.message, /^(pcap|pcapng|capture): /);
        }
      },
    ),
    { numRuns: 2000 },
  );
});

test('records are views into the input, not copies', () => {
  const bytes = new PcapWriter(LINKTYPE_RAW).add(0, ipv4Packet(0)).toBytes();
  const [r] = readCapture(bytes);
  assert.equal(r!.data.buffer, bytes.buffer);
  // Reading from a Buffer at a nonzero byteOffset works too.
  const big = new Uint8Array(bytes.length + 7);
  big.set(bytes, 7);
  assert.deepEqual(readCapture(big.subarray(7))[0]!.data, r!.data);
});
