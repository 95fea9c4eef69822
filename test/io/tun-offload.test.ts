// Real-kernel test of the TUN offload path (IFF_VNET_HDR + TUNSETOFFLOAD):
// GSO super-packets we write must leave the kernel as correct segments, and
// super-packets the kernel routes into the device must reach us whole, with
// their gso_size and a complete checksum. tshark, not our codec, judges the
// checksums. Runs as root with netns, the addon, tshark, tcpdump and ethtool;
// otherwise skips with the reason.
//
// Topology (namespaces of this test only):
//   [lb] fno0 (TUN, 10.98.0.1/24) + veth-l 10.98.1.1/24 ── veth-r 10.98.1.2/24 [rs]
//        fno0 fd00:98::1/64       + veth-l fd00:98:1::1/64 ── veth-r fd00:98:1::2/64
// veth-l has TSO, GSO and checksum offload off, so a super-packet forwarded to
// rs is segmented, and each segment's checksum finished, in software from the
// pseudo-header sum we left in its checksum field.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GSO_CSUM_PARTIAL } from '../../src/io/run-loop.js';
import {
  addAddress,
  ip,
  openTun,
  setNapiRealtime,
  setUp,
  tunAvailable,
  type TunDevice,
} from '../../src/io/tun.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { Ipv4View } from '../../src/wire/ipv4.js';
import { LINKTYPE_RAW, PcapWriter } from '../../src/wire/pcap.js';
import { TCP_ACK, TCP_PSH } from '../../src/wire/tcp.js';
import { opt } from '../../src/wire/tcp-options.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { toaV4Option, toaV6Option } from '../../src/wire/toa.js';
import { buildSegment, buildSegment6, pattern } from '../support/packets.js';
import { tsharkFields } from '../support/tshark.js';
import { untilCaptureQuiet, untilListening } from '../support/tcpdump.js';
import { sleep } from '../support/time.js';

const LB = `fullnat-tof-${process.pid}-lb`;
const RS = `fullnat-tof-${process.pid}-rs`;
const GSO_TCPV4 = 1;
const GSO_TCPV6 = 4;
const HEADROOM = 128;
const BUF = HEADROOM + 65535 + 128;

const which = (t: string): boolean => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;

let created: string[] = [];
function cleanup(): void {
  for (const ns of created) {
    try {
      ip(['netns', 'del', ns]);
    } catch {
      // already gone
    }
  }
  created = [];
}
process.on('exit', cleanup);

function skipReason(): string | false {
  const a = tunAvailable();
  if (!a.ok) return a.reason;
  const missing = ['tshark', 'tcpdump', 'ethtool'].filter((t) => !which(t));
  if (missing.length) return `missing ${missing.join(', ')} (apt-get install ${missing.join(' ')})`;
  try {
    for (const ns of [LB, RS]) {
      ip(['netns', 'add', ns]);
      created.push(ns);
    }
  } catch (err) {
    return `cannot create a network namespace: ${(err as Error).message}`;
  }
  return false;
}

const nsExec = (ns: string, ...argv: string[]): string =>
  execFileSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', stdio: 'pipe' });

const tmp = mkdtempSync(join(tmpdir(), 'fullnat-tof-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

/** tshark fields of every TCP packet in `file`, checksums checked. */
const tsharkRows = (file: string, fields: string[]): string[][] =>
  tsharkFields(file, fields, { home: tmp, filter: 'tcp' });

/** A 4000-byte TCP super-packet carrying a TOA, to be cut into segments of `gsoSize`. */
function superPacket(src: string, dst: string, ttl = 64, payload = 4000): Uint8Array {
  const b = buildSegment({
    src: parseIpv4(src),
    dst: parseIpv4(dst),
    sport: 4000,
    dport: 9,
    seq: 1000,
    ack: 1,
    flags: TCP_ACK | TCP_PSH,
    options: [
      toaV4Option(4242, parseIpv4('203.0.113.7')),
      opt.nop(),
      opt.nop(),
      opt.nop(),
      opt.nop(),
    ],
    payload: pattern(payload),
  });
  b[8] = ttl;
  new Ipv4View().wrap(b, 0).updateChecksum();
  return b;
}

const v6 = (text: string): Uint8Array => Ipv6Address.parse(text)!.bytes;

/** The IPv6 twin of `superPacket`, with the 20-byte TOA of an IPv6 client. */
function superPacket6(src: string, dst: string, hopLimit = 64, payload = 4000): Uint8Array {
  return buildSegment6({
    src: v6(src),
    dst: v6(dst),
    sport: 4000,
    dport: 9,
    seq: 1000,
    ack: 1,
    flags: TCP_ACK | TCP_PSH,
    hopLimit,
    options: [toaV6Option(4242, v6('2001:db8::7'))],
    payload: pattern(payload),
  });
}

function write(dev: TunDevice, pkt: Uint8Array, gsoSize: number, gsoType = GSO_TCPV4): void {
  const buf = new Uint8Array(BUF);
  buf.set(pkt, HEADROOM);
  const gso = Int32Array.of(gsoSize > 0 ? gsoType : 0, gsoSize);
  const n = dev.writeBatch([buf], Int32Array.of(HEADROOM), Int32Array.of(pkt.length), 1, gso);
  assert.equal(n, 1);
  assert.equal(dev.txErrors, 0, `write rejected: ${dev.lastTxError}`);
}

/** tcpdump at the RS end of the veth; `rows` stops it and reads the capture with tshark. */
async function startCapture(
  name: string,
): Promise<{ rows: (fields: string[]) => Promise<string[][]> }> {
  const pcap = join(tmp, `${name}.pcap`);
  const dump: ChildProcess = spawn(
    'ip',
    [
      'netns',
      'exec',
      RS,
      'tcpdump',
      '--immediate-mode',
      // A 60-segment burst overflows the default ring of 256 KiB frames: room for far more.
      '-B',
      '65536',
      '-n',
      '-U',
      '-i',
      'veth-r',
      '-w',
      pcap,
      'tcp dst port 9',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  await untilListening(dump);
  return {
    rows: async (fields) => {
      await untilCaptureQuiet(pcap);
      dump.kill('SIGINT');
      await new Promise((r) => dump.once('exit', r));
      return tsharkRows(pcap, fields);
    },
  };
}

/** The first packet read from the device that `match` accepts (within 5 s). */
async function readOne(
  d: TunDevice,
  match: (p: Uint8Array) => boolean,
): Promise<{ pkt: Uint8Array; gsoSize: number; gsoType: number }> {
  const bufs = Array.from({ length: 8 }, () => new Uint8Array(BUF));
  const lens = new Int32Array(8);
  const gso = new Int32Array(16);
  const end = Date.now() + 5000;
  while (Date.now() < end) {
    const n = d.readBatch(bufs, HEADROOM, lens, gso);
    for (let i = 0; i < n; i++) {
      const p = bufs[i]!.subarray(HEADROOM, HEADROOM + lens[i]!);
      if (match(p)) return { pkt: p.slice(), gsoType: gso[2 * i]!, gsoSize: gso[2 * i + 1]! };
    }
    if (n === 0) await sleep(10);
  }
  throw new Error('no matching packet read from the device within 5 s');
}

let dev: TunDevice | undefined;
const skip = skipReason();
if (skip) test('TUN offloads on the real kernel', { skip }, () => {});
else
  describe(`TUN offloads on the real kernel (namespaces ${LB}, ${RS})`, () => {
    before(() => {
      // As `fullnat run` opens it by default: offloads, and threaded NAPI for what is written.
      dev = openTun(`fno${process.pid}`.slice(0, 15), { offload: true, napi: true });
      assert.equal(dev.offload, true);
      ip(['link', 'set', 'dev', dev.name, 'netns', LB]);
      ip(['link', 'set', 'dev', dev.name, 'name', 'fno0'], { netns: LB });
      addAddress('fno0', '10.98.0.1/24', { netns: LB });
      setUp('fno0', 1500, { netns: LB });
      nsExec(LB, 'sh', '-c', 'echo 1 > /sys/class/net/fno0/threaded');
      assert.equal(nsExec(LB, 'cat', '/sys/class/net/fno0/threaded').trim(), '1');
      // As linuxHost does: the NAPI thread at SCHED_FIFO 10.
      const pids = setNapiRealtime('fno0', 10);
      assert.ok(pids.length >= 1, 'a napi/fno0-N kernel thread');
      for (const pid of pids) {
        const policy = execFileSync('chrt', ['-p', String(pid)], { encoding: 'utf8' });
        assert.match(policy, /SCHED_FIFO/);
        assert.match(policy, /priority: 10/);
      }
      ip(['link', 'add', 'veth-l', 'netns', LB, 'type', 'veth', 'peer', 'veth-r', 'netns', RS]);
      addAddress('veth-l', '10.98.1.1/24', { netns: LB });
      addAddress('veth-r', '10.98.1.2/24', { netns: RS });
      setUp('veth-l', 1500, { netns: LB });
      setUp('veth-r', 1500, { netns: RS });
      ip(['link', 'set', 'lo', 'up'], { netns: LB });
      nsExec(LB, 'ethtool', '-K', 'veth-l', 'tso', 'off', 'gso', 'off', 'tx', 'off');
      nsExec(LB, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
      nsExec(LB, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0');
      nsExec(LB, 'sysctl', '-qw', 'net.ipv4.conf.fno0.rp_filter=0');
      nsExec(LB, 'sysctl', '-qw', 'net.ipv4.conf.all.send_redirects=0');
      nsExec(LB, 'sysctl', '-qw', 'net.ipv4.conf.fno0.send_redirects=0');
      nsExec(RS, 'ip', 'route', 'add', '10.98.0.0/24', 'via', '10.98.1.1');
      nsExec(LB, 'ip', '-6', 'addr', 'add', 'fd00:98::1/64', 'dev', 'fno0', 'nodad');
      nsExec(LB, 'ip', '-6', 'addr', 'add', 'fd00:98:1::1/64', 'dev', 'veth-l', 'nodad');
      nsExec(RS, 'ip', '-6', 'addr', 'add', 'fd00:98:1::2/64', 'dev', 'veth-r', 'nodad');
      nsExec(LB, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
      nsExec(RS, 'ip', '-6', 'route', 'add', 'fd00:98::/64', 'via', 'fd00:98:1::1');
    });

    after(() => {
      dev?.close();
      dev = undefined;
      cleanup();
    });

    test(
      'a super-packet we write leaves as gso_size segments, each with the TOA and a checksum tshark calls good',
      { timeout: 30_000 },
      async () => {
        const d = dev!;
        const cap = await startCapture('write');
        write(d, superPacket('10.98.0.2', '10.98.1.2'), 1000);
        const rows = await cap.rows([
          'tcp.len',
          'tcp.seq',
          'tcp.checksum.status',
          'ip.checksum.status',
          'tcp.option_kind',
          'tcp.flags.push',
          'ip.ttl',
        ]);
        assert.equal(rows.length, 4, `segments seen at the RS: ${JSON.stringify(rows)}`);
        rows.forEach(([len, seq, tcpOk, ipOk, kinds, push, ttl], i) => {
          assert.equal(len, '1000', `segment ${i} payload`);
          assert.equal(seq, String(1000 + 1000 * i), `segment ${i} seq`);
          assert.equal(tcpOk, '1', `segment ${i} TCP checksum status (1 = good)`);
          assert.equal(ipOk, '1', `segment ${i} IP checksum status`);
          assert.equal(kinds!.split(',')[0], '254', `segment ${i} starts its options with the TOA`);
          assert.equal(push, i === 3 ? '1' : '0', `PSH only on the last segment`);
          assert.equal(ttl, '63', 'forwarded once');
        });
      },
    );

    // Odd and unaligned lengths too.
    for (const size of [4000, 4001, 3037, 60_000])
      test(
        `a ${size}-byte super-packet the kernel routes into the device is read whole, flagged partial, and goes on as good segments`,
        { timeout: 30_000 },
        async () => {
          const d = dev!;
          // From a non-local source to an address behind fno0: the kernel forwards it back out of fno0.
          const sent = superPacket('10.98.0.3', '10.98.0.2', 64, size);
          write(d, sent, 1000);
          const got = await readOne(d, (p) => p[9] === 6 && p[15] === 3);
          assert.equal(got.pkt.length, sent.length, 'one read, the whole super-packet');
          assert.equal(got.gsoSize, 1000);
          assert.equal(got.gsoType & 0x7f, GSO_TCPV4);
          assert.ok(
            got.gsoType & GSO_CSUM_PARTIAL,
            'flagged: the checksum is the pseudo-header sum',
          );
          assert.equal(got.pkt[8], 63, 'TTL decremented by the forward');
          assert.deepEqual(got.pkt.subarray(40 + 12), sent.subarray(40 + 12), 'payload unchanged');
          // Sent on toward the RS as it is: the kernel finishes every segment's checksum from what we left.
          const cap = await startCapture(`readback-${size}`);
          const v = new Ipv4View().wrap(got.pkt, 0);
          v.dst = parseIpv4('10.98.1.2');
          v.updateChecksum();
          write(d, got.pkt, got.gsoSize, got.gsoType & 0xff);
          const rows = await cap.rows(['tcp.len', 'tcp.checksum.status', 'ip.checksum.status']);
          assert.equal(rows.length, Math.ceil(size / 1000), JSON.stringify(rows));
          assert.ok(
            rows.every(([, tcpOk, ipOk]) => tcpOk === '1' && ipOk === '1'),
            JSON.stringify(rows),
          );
          assert.equal(
            rows.reduce((n, [len]) => n + Number(len), 0),
            size,
          );
        },
      );

    test(
      'a partial checksum on an ordinary packet (a local SYN) is completed on read: tshark calls it good',
      { timeout: 30_000 },
      async () => {
        const d = dev!;
        // The LB namespace's own stack leaves the checksum to the device (TUN_F_CSUM).
        const child = spawn(
          'ip',
          [
            'netns',
            'exec',
            LB,
            process.execPath,
            '-e',
            "const s = require('node:net').connect(7070, '10.98.0.9'); s.on('error', () => {}); setTimeout(() => process.exit(0), 1500);",
          ],
          { stdio: 'ignore' },
        );
        try {
          const got = await readOne(d, (p) => p[9] === 6 && p[19] === 9 && p[33] === 0x02);
          assert.equal(got.gsoSize, 0);
          assert.equal(got.gsoType & GSO_CSUM_PARTIAL, 0, 'not flagged: completed');
          const file = join(tmp, 'syn.pcap');
          writeFileSync(file, new PcapWriter(LINKTYPE_RAW).add(0, got.pkt).toBytes());
          const rows = tsharkRows(file, [
            'tcp.checksum.status',
            'ip.checksum.status',
            'tcp.flags.syn',
          ]);
          assert.deepEqual(rows, [['1', '1', '1']]);
        } finally {
          child.kill();
        }
      },
    );

    test(
      'an IPv6 super-packet we write leaves as gso_size segments (TCPv6), each with the 20-byte TOA and a good checksum',
      { timeout: 30_000 },
      async () => {
        const d = dev!;
        const cap = await startCapture('write6');
        // A TCPv4 type on an IPv6 packet: the version of the packet written decides the virtio type.
        write(d, superPacket6('fd00:98::2', 'fd00:98:1::2'), 1000, GSO_TCPV4);
        const rows = await cap.rows([
          'tcp.len',
          'tcp.seq',
          'tcp.checksum.status',
          'tcp.option_kind',
          'ipv6.hlim',
        ]);
        assert.equal(rows.length, 4, `segments seen at the RS: ${JSON.stringify(rows)}`);
        rows.forEach(([len, seq, tcpOk, kinds, hlim], i) => {
          assert.equal(len, '1000', `segment ${i} payload`);
          assert.equal(seq, String(1000 + 1000 * i), `segment ${i} seq`);
          assert.equal(tcpOk, '1', `segment ${i} TCP checksum status (1 = good)`);
          assert.equal(kinds!.split(',')[0], '254', `segment ${i} starts its options with the TOA`);
          assert.equal(hlim, '63', 'forwarded once');
        });
      },
    );

    test(
      'an IPv6 super-packet the kernel routes into the device is read whole as TCPv6, flagged partial, and goes on as good segments',
      { timeout: 30_000 },
      async () => {
        const d = dev!;
        const sent = superPacket6('fd00:98::3', 'fd00:98::2', 64, 6001);
        write(d, sent, 1000, GSO_TCPV6);
        const got = await readOne(d, (p) => p[0]! >> 4 === 6 && p[6] === 6 && p[23] === 3);
        assert.equal(got.pkt.length, sent.length, 'one read, the whole super-packet');
        assert.equal(got.gsoSize, 1000);
        assert.equal(got.gsoType & 0x7f, GSO_TCPV6);
        assert.ok(got.gsoType & GSO_CSUM_PARTIAL, 'flagged: the checksum is the pseudo-header sum');
        assert.equal(got.pkt[7], 63, 'hop limit decremented by the forward');
        const cap = await startCapture('readback6');
        got.pkt.set(v6('fd00:98:1::2'), 24);
        write(d, got.pkt, got.gsoSize, got.gsoType & 0xff);
        const rows = await cap.rows(['tcp.len', 'tcp.checksum.status']);
        assert.equal(rows.length, 7, JSON.stringify(rows));
        assert.ok(
          rows.every(([, tcpOk]) => tcpOk === '1'),
          JSON.stringify(rows),
        );
        assert.equal(
          rows.reduce((n, [len]) => n + Number(len), 0),
          6001,
        );
      },
    );
  });
