/**
 * tshark as an independent decoder: packets built by our writers must decode
 * in Wireshark with good checksums, the option kinds and bytes we wrote, and
 * the addresses, ports and lengths we meant. Our own reader must also accept
 * capture files written by Wireshark's editcap.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ipv4ToString, ipv6ToString, parseIpv4, parseIpv6 } from '../../src/wire/bytes.js';
import { readCapture } from '../../src/wire/capture.js';
import { IPPROTO_TCP, IPPROTO_UDP, writeIpv4Header } from '../../src/wire/ipv4.js';
import { writeIpv6Header } from '../../src/wire/ipv6.js';
import { LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapWriter, ethernetFrame } from '../../src/wire/pcap.js';
import { PcapngWriter } from '../../src/wire/pcapng.js';
import { TCP_ACK, TCP_PSH, TCP_SYN, TcpView, writeTcpHeader } from '../../src/wire/tcp.js';
import {
  TCPOPT_TOA_ALI_V6,
  encodeOptions,
  opt,
  type TcpOption,
} from '../../src/wire/tcp-options.js';
import { toaV4Option, toaV6Option } from '../../src/wire/toa.js';
import { UdpView, writeUdpHeader } from '../../src/wire/udp.js';
import { tsharkFields } from '../support/tshark.js';

const TSHARK_TIMEOUT_MS = 20_000;

/** tshark's version line, or why it cannot be run (then every test here skips). */
function probeTshark(): { version: string } | { missing: string } {
  const r = spawnSync('tshark', ['--version'], { encoding: 'utf8', timeout: TSHARK_TIMEOUT_MS });
  if (r.error) return { missing: r.error.message };
  if (r.status !== 0) return { missing: `tshark --version exited ${r.status}: ${r.stderr.trim()}` };
  return { version: r.stdout.split('\n')[0]!.trim() };
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** What we put into one packet, to compare with what tshark reads out of it. */
interface Built {
  name: string;
  ip: Uint8Array;
  family: 4 | 6;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
  vlan?: number;
  tcp?: {
    seq: number;
    ack: number;
    flags: number;
    headerLength: number;
    options: Uint8Array;
    /** Kinds as tshark lists them: ours in order, then one 0 per EOL padding byte. */
    kinds: number[];
  };
  expectIpChecksum: 'good' | 'bad' | 'none';
  expectL4Checksum: 'good' | 'bad';
}

const CLIENT = '192.0.2.10';
const VIP = '198.51.100.1';
const LOCAL = '10.0.0.5';
const RS = '10.0.1.7';
const CLIENT6 = '2001:db8:c::a';
const VIP6 = '2001:db8:100::1';
const LOCAL6 = 'fd00::5';
const RS6 = 'fd00:1::7';

function address(family: 4 | 6, text: string): { v4: number; v6: Uint8Array } {
  return family === 4
    ? { v4: parseIpv4(text), v6: new Uint8Array(16) }
    : { v4: 0, v6: parseIpv6(text)! };
}

function ipHeader(
  b: Uint8Array,
  family: 4 | 6,
  src: string,
  dst: string,
  protocol: number,
  l4Length: number,
): number {
  if (family === 4) {
    return writeIpv4Header(b, 0, {
      src: address(4, src).v4,
      dst: address(4, dst).v4,
      protocol,
      payloadLength: l4Length,
      id: 0x1234,
    });
  }
  return writeIpv6Header(b, 0, {
    src: address(6, src).v6,
    dst: address(6, dst).v6,
    nextHeader: protocol,
    payloadLength: l4Length,
  });
}

function tcpPacket(
  name: string,
  family: 4 | 6,
  ends: { src: string; dst: string; srcPort: number; dstPort: number },
  seg: { seq: number; ack: number; flags: number },
  options: readonly TcpOption[],
  payload: Uint8Array,
  vlan?: number,
): Built {
  const optionBytes = encodeOptions(options);
  const ipLen = family === 4 ? 20 : 40;
  const segLen = 20 + optionBytes.length + payload.length;
  const ip = new Uint8Array(ipLen + segLen);
  ipHeader(ip, family, ends.src, ends.dst, IPPROTO_TCP, segLen);
  const hl = writeTcpHeader(ip, ipLen, { ...ends, ...seg, window: 29200, options: optionBytes });
  ip.set(payload, ipLen + hl);
  const t = new TcpView().wrap(ip, ipLen);
  t.checksum = family === 4 ? t.computeChecksumV4(0, segLen) : t.computeChecksumV6(0, segLen);
  let used = 0;
  for (const o of options) used += o.kind === 1 ? 1 : 2 + o.data.length;
  return {
    name,
    ip,
    family,
    ...ends,
    payload,
    ...(vlan === undefined ? {} : { vlan }),
    tcp: {
      ...seg,
      headerLength: hl,
      options: optionBytes,
      kinds: [
        ...options.map((o) => o.kind),
        ...new Array<number>(optionBytes.length - used).fill(0),
      ],
    },
    expectIpChecksum: family === 4 ? 'good' : 'none',
    expectL4Checksum: 'good',
  };
}

function udpPacket(
  name: string,
  family: 4 | 6,
  ends: { src: string; dst: string; srcPort: number; dstPort: number },
  payload: Uint8Array,
  vlan?: number,
): Built {
  const ipLen = family === 4 ? 20 : 40;
  const ip = new Uint8Array(ipLen + 8 + payload.length);
  ipHeader(ip, family, ends.src, ends.dst, IPPROTO_UDP, 8 + payload.length);
  writeUdpHeader(ip, ipLen, ends.srcPort, ends.dstPort, payload.length);
  ip.set(payload, ipLen + 8);
  const u = new UdpView().wrap(ip, ipLen);
  u.checksum = family === 4 ? u.computeChecksumV4(0) : u.computeChecksumV6(0);
  return {
    name,
    ip,
    family,
    ...ends,
    payload,
    ...(vlan === undefined ? {} : { vlan }),
    expectIpChecksum: family === 4 ? 'good' : 'none',
    expectL4Checksum: 'good',
  };
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

function buildPackets(): Built[] {
  const toClient = { src: CLIENT, dst: VIP, srcPort: 40000, dstPort: 80 };
  const toRs = { src: LOCAL, dst: RS, srcPort: 61000, dstPort: 8080 };
  const toRs6 = { src: LOCAL6, dst: RS6, srcPort: 61001, dstPort: 8080 };
  const toaV4 = toaV4Option(40000, parseIpv4(CLIENT));
  const synOpts = [
    opt.mss(1460),
    opt.sackPermitted(),
    opt.timestamp(0x01020304, 0),
    opt.nop(),
    opt.wscale(7),
  ];
  const packets: Built[] = [
    tcpPacket(
      'v4 client SYN',
      4,
      toClient,
      { seq: 0xfffffff0, ack: 0, flags: TCP_SYN },
      synOpts,
      new Uint8Array(0),
    ),
    tcpPacket(
      'v4 SYN to RS with TOA 254/8',
      4,
      toRs,
      { seq: 0x11111111, ack: 0, flags: TCP_SYN },
      [...synOpts, toaV4],
      new Uint8Array(0),
    ),
    tcpPacket(
      'v4 data with TS, TOA, unknown kind 99 and an odd payload',
      4,
      toRs,
      { seq: 0x11111112, ack: 0xabcdef01, flags: TCP_ACK | TCP_PSH },
      [
        opt.nop(),
        opt.nop(),
        opt.timestamp(7, 8),
        toaV4,
        { kind: 99, data: Uint8Array.of(0xca, 0xfe) },
      ],
      text('GET / HTTP/1.0\r\nHost: x\r\n\r\n'),
      100,
    ),
    tcpPacket(
      'v4 ACK with 3 SACK blocks and TS filling 40 bytes',
      4,
      toRs,
      { seq: 0x11111200, ack: 0xabcdef01, flags: TCP_ACK },
      [
        opt.nop(),
        opt.nop(),
        opt.timestamp(9, 10),
        opt.nop(),
        opt.nop(),
        opt.sack([
          [0xabcdf000, 0xabcdf100],
          [0xabce0000, 0xabce0200],
          [0xfffffff0, 0x00000010],
        ]),
      ],
      new Uint8Array(0),
    ),
    tcpPacket(
      'v6 SYN to RS with TOA 254/20',
      6,
      toRs6,
      { seq: 42, ack: 0, flags: TCP_SYN },
      [
        opt.mss(1440),
        opt.sackPermitted(),
        opt.nop(),
        opt.wscale(9),
        toaV6Option(50000, parseIpv6(CLIENT6)!),
      ],
      new Uint8Array(0),
      200,
    ),
    tcpPacket(
      'v6 data with TOA 253/20 and an odd payload',
      6,
      toRs6,
      { seq: 43, ack: 1000, flags: TCP_ACK | TCP_PSH },
      [
        opt.nop(),
        opt.nop(),
        opt.timestamp(1, 2),
        toaV6Option(50000, parseIpv6(CLIENT6)!, TCPOPT_TOA_ALI_V6),
      ],
      text('hello from a v6 client'),
    ),
    tcpPacket(
      'v6 client ACK with 4 SACK blocks',
      6,
      { src: CLIENT6, dst: VIP6, srcPort: 50000, dstPort: 443 },
      { seq: 7, ack: 8, flags: TCP_ACK },
      [
        opt.nop(),
        opt.nop(),
        opt.sack([
          [1, 2],
          [3, 4],
          [5, 6],
          [7, 8],
        ]),
      ],
      new Uint8Array(0),
    ),
    udpPacket(
      'v4 UDP odd payload',
      4,
      { src: CLIENT, dst: VIP, srcPort: 5353, dstPort: 5000 },
      text('udp!!'),
    ),
    udpPacket(
      'v6 UDP',
      6,
      { src: CLIENT6, dst: VIP6, srcPort: 5353, dstPort: 5001 },
      text('v6 datagram'),
      300,
    ),
  ];

  // Negative controls, so a tshark that stopped checking would fail this test.
  const badTcp = structuredClone(packets[2]!);
  badTcp.name = 'negative control: TCP checksum byte flipped';
  badTcp.ip[20 + 17]! ^= 0x01;
  badTcp.expectL4Checksum = 'bad';
  const badIp = structuredClone(packets[1]!);
  badIp.name = 'negative control: IPv4 header checksum byte flipped';
  badIp.ip[11]! ^= 0x80;
  badIp.expectIpChecksum = 'bad';
  packets.push(badTcp, badIp);
  return packets;
}

const FIELDS = [
  'frame.number',
  'frame.time_epoch',
  'frame.protocols',
  'vlan.id',
  'ip.src',
  'ip.dst',
  'ip.checksum.status',
  'ipv6.src',
  'ipv6.dst',
  'tcp.srcport',
  'tcp.dstport',
  'tcp.seq_raw',
  'tcp.ack_raw',
  'tcp.flags',
  'tcp.hdr_len',
  'tcp.len',
  'tcp.checksum.status',
  'tcp.option_kind',
  'tcp.options',
  'tcp.payload',
  'udp.srcport',
  'udp.dstport',
  'udp.length',
  'udp.checksum.status',
  'udp.payload',
] as const;
type Field = (typeof FIELDS)[number];

/** tshark prints checksum status as its enum value: 0 Bad, 1 Good, 2 Unverified. */
const STATUS = { bad: '0', good: '1', none: '' } as const;

function runTshark(file: string, home: string): Array<Record<Field, string>> {
  return tsharkFields(file, FIELDS, { home, timeoutMs: TSHARK_TIMEOUT_MS }).map((cols) => {
    assert.equal(
      cols.length,
      FIELDS.length,
      `tshark line has ${cols.length} columns: ${cols.join('|')}`,
    );
    return Object.fromEntries(FIELDS.map((f, i) => [f, cols[i]!])) as Record<Field, string>;
  });
}

function epochText(tsUs: number): string {
  return `${Math.floor(tsUs / 1e6)}.${String(tsUs % 1e6).padStart(6, '0')}000`;
}

const T0 = 1_700_000_000_000_000;
const tsOf = (i: number): number => T0 + i * 1_001;

function assertDecoded(
  rows: Array<Record<Field, string>>,
  packets: readonly Built[],
  ethernet: boolean,
): void {
  assert.equal(rows.length, packets.length, 'tshark saw every frame');
  packets.forEach((p, i) => {
    const row = rows[i]!;
    const at = `frame ${i + 1} (${p.name})`;
    assert.equal(row['frame.number'], String(i + 1), at);
    assert.equal(row['frame.time_epoch'], epochText(tsOf(i)), at);
    const layers = row['frame.protocols'].split(':');
    assert.equal(layers[0], ethernet ? 'eth' : 'raw', `${at}: ${row['frame.protocols']}`);
    assert.ok(layers.includes(p.family === 4 ? 'ip' : 'ipv6'), `${at}: ${row['frame.protocols']}`);
    assert.ok(layers.includes(p.tcp ? 'tcp' : 'udp'), `${at}: ${row['frame.protocols']}`);
    assert.equal(row['vlan.id'], ethernet && p.vlan !== undefined ? String(p.vlan) : '', at);

    if (p.family === 4) {
      assert.deepEqual([row['ip.src'], row['ip.dst']], [p.src, p.dst], at);
      assert.equal(row['ipv6.src'], '', at);
    } else {
      // tshark prints RFC 5952 text, which is what ipv6ToString promises too.
      assert.deepEqual([row['ipv6.src'], row['ipv6.dst']], [p.src, p.dst], at);
      assert.equal(row['ipv6.src'], ipv6ToString(p.ip, 8), at);
      assert.equal(row['ip.src'], '', at);
    }
    assert.equal(
      row['ip.checksum.status'],
      STATUS[p.expectIpChecksum],
      `${at}: IP checksum status`,
    );

    if (p.tcp) {
      const t = p.tcp;
      assert.equal(row['tcp.srcport'], String(p.srcPort), at);
      assert.equal(row['tcp.dstport'], String(p.dstPort), at);
      assert.equal(row['tcp.seq_raw'], String(t.seq), at);
      assert.equal(row['tcp.ack_raw'], String(t.ack), at);
      assert.equal(Number(row['tcp.flags']), t.flags, at);
      assert.equal(row['tcp.hdr_len'], String(t.headerLength), at);
      assert.equal(row['tcp.len'], String(p.payload.length), at);
      assert.equal(
        row['tcp.checksum.status'],
        STATUS[p.expectL4Checksum],
        `${at}: TCP checksum status`,
      );
      assert.equal(row['tcp.option_kind'], t.kinds.join(','), `${at}: option kinds in order`);
      assert.equal(row['tcp.options'], hex(t.options), `${at}: option bytes`);
      assert.equal(row['tcp.payload'], hex(p.payload), `${at}: payload`);
      assert.equal(row['udp.srcport'], '', at);
    } else {
      assert.equal(row['udp.srcport'], String(p.srcPort), at);
      assert.equal(row['udp.dstport'], String(p.dstPort), at);
      assert.equal(row['udp.length'], String(8 + p.payload.length), at);
      assert.equal(
        row['udp.checksum.status'],
        STATUS[p.expectL4Checksum],
        `${at}: UDP checksum status`,
      );
      assert.equal(row['udp.payload'], hex(p.payload), `${at}: payload`);
      assert.equal(row['tcp.srcport'], '', at);
    }
  });
}

test('tshark decodes our packets, options and checksums', async (t: TestContext) => {
  const probe = probeTshark();
  if ('missing' in probe) {
    t.skip(`tshark not installed: ${probe.missing} (apt-get install tshark)`);
    return;
  }
  t.diagnostic(probe.version);
  const dir = mkdtempSync(join(tmpdir(), 'fullnat-'));
  try {
    const packets = buildPackets();
    // Sanity of the expectations themselves: the addresses we claim are in the headers.
    for (const p of packets) {
      const src =
        p.family === 4
          ? ipv4ToString(new DataView(p.ip.buffer).getUint32(12))
          : ipv6ToString(p.ip, 8);
      assert.equal(src, p.src, p.name);
    }

    const rawFile = join(dir, 'raw.pcap');
    const pcap = new PcapWriter(LINKTYPE_RAW);
    packets.forEach((p, i) => pcap.add(tsOf(i), p.ip));
    writeFileSync(rawFile, pcap.toBytes());

    const ethFile = join(dir, 'eth.pcapng');
    const ng = new PcapngWriter(LINKTYPE_ETHERNET);
    packets.forEach((p, i) =>
      ng.add(tsOf(i), ethernetFrame(p.ip, undefined, p.vlan === undefined ? [] : [p.vlan])),
    );
    writeFileSync(ethFile, ng.toBytes());

    await t.test('pcap, LINKTYPE_RAW', () => {
      assertDecoded(runTshark(rawFile, dir), packets, false);
    });

    await t.test('pcapng, LINKTYPE_ETHERNET with 802.1Q tags', () => {
      assertDecoded(runTshark(ethFile, dir), packets, true);
    });

    await t.test('negative controls are really flagged Bad', () => {
      const rows = runTshark(rawFile, dir);
      const tcpBad = packets.findIndex((p) => p.expectL4Checksum === 'bad');
      const ipBad = packets.findIndex((p) => p.expectIpChecksum === 'bad');
      assert.equal(rows[tcpBad]!['tcp.checksum.status'], '0');
      assert.equal(rows[ipBad]!['ip.checksum.status'], '0');
      // Every other frame is Good, so the flag above is about the flipped byte alone.
      const good = rows.filter((_, i) => i !== tcpBad && i !== ipBad);
      assert.ok(good.every((r) => (r['tcp.checksum.status'] || r['udp.checksum.status']) === '1'));
    });

    await t.test('our reader accepts files written by editcap (pcapng, nanosecond pcap)', (st) => {
      const editcap = spawnSync('editcap', ['--version'], { timeout: TSHARK_TIMEOUT_MS });
      if (editcap.error) {
        st.skip(`editcap not installed: ${editcap.error.message}`);
        return;
      }
      const conversions: Array<[string, string, string, number]> = [
        [rawFile, 'pcapng', join(dir, 'raw-conv.pcapng'), LINKTYPE_RAW],
        [ethFile, 'nsecpcap', join(dir, 'eth-conv-ns.pcap'), LINKTYPE_ETHERNET],
        [ethFile, 'pcap', join(dir, 'eth-conv.pcap'), LINKTYPE_ETHERNET],
      ];
      for (const [from, format, to, linkType] of conversions) {
        execFileSync('editcap', ['-F', format, from, to], {
          timeout: TSHARK_TIMEOUT_MS,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, HOME: dir, XDG_CONFIG_HOME: dir },
        });
        // A plain Uint8Array view (not a Buffer) over the file, at the Buffer's own offset.
        const file = readFileSync(to);
        const recs = readCapture(new Uint8Array(file.buffer, file.byteOffset, file.length));
        assert.equal(recs.length, packets.length, to);
        recs.forEach((r, i) => {
          const p = packets[i]!;
          const vlanTags = linkType === LINKTYPE_ETHERNET && p.vlan !== undefined ? 1 : 0;
          assert.equal(r.linkType, linkType, `${to} #${i + 1}`);
          assert.equal(r.timestampUs, tsOf(i), `${to} #${i + 1}`);
          assert.equal(
            r.ipOffset,
            linkType === LINKTYPE_RAW ? 0 : 14 + 4 * vlanTags,
            `${to} #${i + 1}`,
          );
          assert.deepEqual(r.data.subarray(r.ipOffset), p.ip, `${to} #${i + 1}`);
        });
      }
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
