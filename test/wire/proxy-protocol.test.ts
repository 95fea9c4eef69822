/**
 * PROXY protocol encoders and decoder: byte-exact vectors written out by hand
 * from HAProxy's proxy-protocol.txt, property-based round trips, every class
 * of malformed header refused with a reason, every strict prefix of a good
 * header reported incomplete, and Wireshark's own "proxy" dissector as an
 * independent reader of what we encode.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { ipv4ToString, ipv6ToString, parseIpv4, parseIpv6 } from '../../src/wire/bytes.js';
import { IPPROTO_TCP, writeIpv4Header } from '../../src/wire/ipv4.js';
import { writeIpv6Header } from '../../src/wire/ipv6.js';
import { LINKTYPE_RAW, PcapWriter } from '../../src/wire/pcap.js';
import {
  PP2_TYPE_AUTHORITY,
  PP2_TYPE_CRC32C,
  PP2_TYPE_NOOP,
  PP2_TYPE_UNIQUE_ID,
  PROXY_V1_MAX_LENGTH,
  PROXY_V2_IPV4_LENGTH,
  PROXY_V2_IPV6_LENGTH,
  crc32c,
  decodeProxyHeader,
  encodeProxyV1,
  encodeProxyV1v6,
  encodeProxyV2,
  encodeProxyV2Local,
  encodeProxyV2v6,
  proxyV1Length,
  proxyV1v6Length,
  type ProxyDecodeResult,
  type ProxyHeader,
} from '../../src/wire/proxy-protocol.js';
import { TCP_ACK, TCP_PSH, TcpView, writeTcpHeader } from '../../src/wire/tcp.js';

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const bytes = (...parts: (number | number[] | Uint8Array)[]): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'number' ? [p] : [...p])));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const be16 = (v: number): number[] => [v >>> 8, v & 0xff];

/** The v2 signature, typed in from section 2.2 of the spec (not imported from the module). */
const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

function ok(r: ProxyDecodeResult, what = ''): ProxyHeader {
  if (r.kind !== 'ok') assert.fail(`${what}: expected ok, got ${JSON.stringify(r)}`);
  return r;
}

function encode(f: (b: Uint8Array, off: number) => number, size = 128): Uint8Array {
  const b = new Uint8Array(size);
  return b.slice(0, f(b, 0));
}

// ---------------------------------------------------------------------------
// Byte-exact vectors
// ---------------------------------------------------------------------------

test('v1 TCP4: the spec example, byte for byte', () => {
  const want = ascii('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
  const got = encode((b, o) =>
    encodeProxyV1(b, o, parseIpv4('192.168.0.1'), 56324, parseIpv4('192.168.0.11'), 443),
  );
  assert.equal(hex(got), hex(want));
  assert.equal(proxyV1Length(parseIpv4('192.168.0.1'), 56324, parseIpv4('192.168.0.11'), 443), 47);
});

test('v1 TCP4: shortest and longest lines (spec: 56 chars max for TCP4)', () => {
  const lo = encode((b, o) => encodeProxyV1(b, o, 0, 0, 0, 0));
  assert.equal(String.fromCharCode(...lo), 'PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n');
  const hi = encode((b, o) => encodeProxyV1(b, o, 0xffffffff, 65535, 0xffffffff, 65535));
  assert.equal(
    String.fromCharCode(...hi),
    'PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n',
  );
  assert.equal(hi.length, 56);
  assert.equal(proxyV1Length(0xffffffff, 65535, 0xffffffff, 65535), 56);
  // Every digit count of every field, so the hand-rolled formatter has no off-by-one.
  const v = encode((b, o) =>
    encodeProxyV1(b, o, parseIpv4('1.22.103.9'), 10, parseIpv4('100.10.1.0'), 1000),
  );
  assert.equal(String.fromCharCode(...v), 'PROXY TCP4 1.22.103.9 100.10.1.0 10 1000\r\n');
});

test('v1 TCP4: written at an offset, nothing outside the line touched', () => {
  const b = new Uint8Array(80).fill(0xee);
  const n = encodeProxyV1(b, 7, parseIpv4('10.0.0.1'), 1, parseIpv4('10.0.0.2'), 2);
  assert.equal(
    String.fromCharCode(...b.subarray(7, 7 + n)),
    'PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n',
  );
  assert.ok(b.subarray(0, 7).every((x) => x === 0xee));
  assert.ok(b.subarray(7 + n).every((x) => x === 0xee));
});

test('v1 TCP6: RFC 5952 text, and the 104-char worst case', () => {
  const got = encode((b, o) =>
    encodeProxyV1v6(b, o, parseIpv6('2001:db8::1')!, 56324, parseIpv6('fd00::5')!, 443),
  );
  assert.equal(String.fromCharCode(...got), 'PROXY TCP6 2001:db8::1 fd00::5 56324 443\r\n');
  const ff = new Uint8Array(16).fill(0xff);
  const max = encode((b, o) => encodeProxyV1v6(b, o, ff, 65535, ff, 65535));
  assert.equal(max.length, 104);
  assert.equal(proxyV1v6Length(ff, 65535, ff, 65535), 104);
  const zero = new Uint8Array(16);
  assert.equal(
    String.fromCharCode(...encode((b, o) => encodeProxyV1v6(b, o, zero, 1, zero, 2))),
    'PROXY TCP6 :: :: 1 2\r\n',
  );
  // Addresses read straight out of a larger buffer (e.g. a packet) via offsets.
  const pkt = new Uint8Array(40);
  pkt.set(parseIpv6('1:0:0:2::')!, 8);
  pkt.set(parseIpv6('::3:0:0:4')!, 24);
  assert.equal(
    String.fromCharCode(...encode((b, o) => encodeProxyV1v6(b, o, pkt, 80, pkt, 81, 8, 24))),
    'PROXY TCP6 1:0:0:2:: ::3:0:0:4 80 81\r\n',
  );
});

test('v2 TCP4: 28 bytes exactly as section 2.2 lays them out', () => {
  const want = bytes(
    SIG,
    0x21, // version 2, command PROXY
    0x11, // AF_INET, STREAM
    [0x00, 0x0c], // 12 address bytes follow
    [192, 168, 0, 1], // source address
    [192, 168, 0, 11], // destination address
    [0xdc, 0x04], // source port 56324
    [0x01, 0xbb], // destination port 443
  );
  const got = encode((b, o) =>
    encodeProxyV2(b, o, parseIpv4('192.168.0.1'), 56324, parseIpv4('192.168.0.11'), 443),
  );
  assert.equal(hex(got), hex(want));
  assert.equal(got.length, PROXY_V2_IPV4_LENGTH);
  assert.equal(PROXY_V2_IPV4_LENGTH, 28);
});

test('v2 TCP6 and LOCAL: byte-exact', () => {
  const src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01];
  const dst = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05];
  const want = bytes(SIG, 0x21, 0x21, [0x00, 0x24], src, dst, [0xdc, 0x04], [0x01, 0xbb]);
  const got = encode((b, o) =>
    encodeProxyV2v6(b, o, Uint8Array.from(src), 56324, Uint8Array.from(dst), 443),
  );
  assert.equal(hex(got), hex(want));
  assert.equal(got.length, PROXY_V2_IPV6_LENGTH);
  assert.equal(hex(encode((b, o) => encodeProxyV2Local(b, o))), hex(bytes(SIG, 0x20, 0x00, 0, 0)));
});

test('encoders refuse bad ports and short buffers without writing', () => {
  const b = new Uint8Array(27).fill(0xee);
  assert.throws(() => encodeProxyV2(b, 0, 1, 2, 3, 4), RangeError);
  assert.throws(() => encodeProxyV2(new Uint8Array(64), 0, 1, 65536, 3, 4), /source port 65536/);
  assert.throws(() => encodeProxyV1(new Uint8Array(64), 0, 1, 2, 3, -1), /destination port -1/);
  assert.throws(() => encodeProxyV1(new Uint8Array(64), 0, 1, 1.5, 3, 4), RangeError);
  assert.throws(() => encodeProxyV1(new Uint8Array(64), 40, 0, 0, 0, 0), /needs 32 bytes/);
  assert.throws(
    () => encodeProxyV2v6(new Uint8Array(64), 0, new Uint8Array(15), 1, new Uint8Array(16), 2),
    /IPv6/,
  );
  assert.ok(b.every((x) => x === 0xee));
});

test('encoders do not allocate (no scavenge in 2 million calls each)', () => {
  // A child with --trace-gc: every young-generation collection is printed, and
  // one would follow every megabyte or so of garbage. Addresses above 2^30 are
  // included on purpose: V8 boxes them when they are passed around whole.
  const mod = new URL('../../src/wire/proxy-protocol.js', import.meta.url).href;
  const script = `
    const pp = await import(${JSON.stringify(mod)});
    const b = new Uint8Array(256);
    const a6 = new Uint8Array(32); a6[3] = 1; a6[31] = 9;
    const u = new Uint32Array([0xc0a8000a, 0xfffffffe]);
    const cases = [
      (i) => pp.encodeProxyV1(b, 0, u[0], i & 0xffff, u[1], 443),
      (i) => pp.encodeProxyV2(b, 100, u[0], i & 0xffff, u[1], 443),
      (i) => pp.encodeProxyV1v6(b, 0, a6, i & 0xffff, a6, 81, 0, 16),
      (i) => pp.encodeProxyV2v6(b, 120, a6, i & 0xffff, a6, 2, 0, 16),
      (i) => pp.proxyV1Length(u[0], i & 0xffff, u[1], 2),
    ];
    const run = (f, n) => { let s = 0; for (let i = 0; i < n; i++) s = (s + f(i)) & 0xffff; return s; };
    for (const f of cases) run(f, 100000);
    console.log('MEASURE');
    for (const f of cases) { run(f, 2000000); console.log('CASE'); }
  `;
  const r = spawnSync(process.execPath, ['--trace-gc', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const measured = r.stdout.slice(r.stdout.indexOf('MEASURE'));
  const names = [
    'encodeProxyV1',
    'encodeProxyV2',
    'encodeProxyV1v6',
    'encodeProxyV2v6',
    'proxyV1Length',
  ];
  measured
    .split('CASE')
    .slice(0, names.length)
    .forEach((chunk, i) => {
      const scavenges = chunk.split('\n').filter((l) => l.includes('Scavenge')).length;
      // One stray collection can come from the loop's own compilation.
      assert.ok(scavenges <= 1, `${names[i]}: ${scavenges} scavenges`);
    });
});

test('crc32c matches the RFC 3720 / 4960 check value', () => {
  assert.equal(crc32c(ascii('123456789')), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
});

// ---------------------------------------------------------------------------
// Decoding: vectors, TLVs, commands, families
// ---------------------------------------------------------------------------

test('decode v1 vectors', () => {
  const line = 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n';
  const h = ok(decodeProxyHeader(ascii(`${line}GET / HTTP/1.1\r\n`)));
  assert.deepEqual(h, {
    kind: 'ok',
    version: 1,
    command: 'PROXY',
    family: 'TCP4',
    src: { address: '192.168.0.1', port: 56324 },
    dst: { address: '192.168.0.11', port: 443 },
    length: line.length,
    tlvs: [],
  });
  const h6 = ok(
    decodeProxyHeader(ascii('PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::ffff:10.0.0.1 1 65535\r\n')),
  );
  assert.equal(h6.family, 'TCP6');
  assert.deepEqual(h6.src, { address: '2001:db8::1', port: 1 });
  assert.deepEqual(h6.dst, { address: '::ffff:a00:1', port: 65535 });
  const unk = ok(decodeProxyHeader(ascii('PROXY UNKNOWN\r\n')));
  assert.equal(unk.family, 'UNKNOWN');
  assert.equal(unk.length, 15);
  assert.equal(unk.src, undefined);
  // For UNKNOWN the receiver ignores whatever precedes CRLF.
  const worst = `PROXY UNKNOWN ${'ffff:'.repeat(7)}ffff ${'ffff:'.repeat(7)}ffff 65535 65535\r\n`;
  assert.equal(worst.length, PROXY_V1_MAX_LENGTH);
  assert.equal(ok(decodeProxyHeader(ascii(worst))).length, 107);
  assert.equal(
    ok(decodeProxyHeader(ascii('PROXY UNKNOWN whatever \x01\x7f\r\n'))).family,
    'UNKNOWN',
  );
});

test('decode v2 vectors: TCP4, TCP6, UDP, UNIX, UNSPEC, LOCAL', () => {
  const tcp4 = bytes(SIG, 0x21, 0x11, 0, 12, [1, 2, 3, 4], [5, 6, 7, 8], be16(1000), be16(80));
  assert.deepEqual(ok(decodeProxyHeader(bytes(tcp4, ascii('data')))), {
    kind: 'ok',
    version: 2,
    command: 'PROXY',
    family: 'TCP4',
    src: { address: '1.2.3.4', port: 1000 },
    dst: { address: '5.6.7.8', port: 80 },
    length: 28,
    tlvs: [],
  });
  const udp6 = bytes(
    SIG,
    0x21,
    0x22,
    0,
    36,
    parseIpv6('fe80::1')!,
    parseIpv6('::1')!,
    be16(53),
    be16(5353),
  );
  const h6 = ok(decodeProxyHeader(udp6));
  assert.equal(h6.family, 'UDP6');
  assert.deepEqual(
    [h6.src, h6.dst],
    [
      { address: 'fe80::1', port: 53 },
      { address: '::1', port: 5353 },
    ],
  );
  const path = (s: string): Uint8Array => {
    const p = new Uint8Array(108);
    p.set(ascii(s));
    return p;
  };
  const unix = bytes(SIG, 0x21, 0x31, be16(216), path('/run/client.sock'), path('/run/srv.sock'));
  const hu = ok(decodeProxyHeader(unix));
  assert.equal(hu.family, 'UNIX_STREAM');
  assert.deepEqual(
    [hu.src, hu.dst],
    [
      { address: '/run/client.sock', port: 0 },
      { address: '/run/srv.sock', port: 0 },
    ],
  );
  assert.equal(hu.length, 232);
  const unspec = ok(decodeProxyHeader(bytes(SIG, 0x21, 0x00, 0, 0)));
  assert.deepEqual([unspec.command, unspec.family, unspec.src], ['PROXY', 'UNKNOWN', undefined]);
  // LOCAL: addresses, even when present, are not reported; the family is ignored.
  const local = ok(decodeProxyHeader(bytes(SIG, 0x20, 0x11, 0, 12, new Uint8Array(12))));
  assert.deepEqual(
    [local.command, local.family, local.src, local.length],
    ['LOCAL', 'TCP4', undefined, 28],
  );
  const localShort = ok(decodeProxyHeader(bytes(SIG, 0x20, 0x21, 0, 4, [1, 2, 3, 4])));
  assert.deepEqual([localShort.command, localShort.length, localShort.tlvs], ['LOCAL', 20, []]);
});

/** A v2 TCP4 header with TLVs; a CRC32C TLV, if asked for, is filled in per 2.2.3. */
function withTlvs(tlvs: [number, Uint8Array][], crc: 'good' | 'bad' | 'none' = 'none'): Uint8Array {
  const all: [number, Uint8Array][] =
    crc === 'none' ? tlvs : [...tlvs, [PP2_TYPE_CRC32C, new Uint8Array(4)]];
  const body = all.flatMap(([t, v]) => [t, ...be16(v.length), ...v]);
  const h = bytes(
    SIG,
    0x21,
    0x11,
    be16(12 + body.length),
    [10, 0, 0, 1],
    [10, 0, 0, 2],
    be16(1),
    be16(2),
    body,
  );
  if (crc !== 'none') {
    const c = crc32c(h) ^ (crc === 'bad' ? 1 : 0);
    h.set([c >>> 24, (c >>> 16) & 0xff, (c >>> 8) & 0xff, c & 0xff], h.length - 4);
  }
  return h;
}

test('decode v2 TLVs: values are views, CRC32C verified', () => {
  const h = withTlvs(
    [
      [PP2_TYPE_AUTHORITY, ascii('example.com')],
      [PP2_TYPE_NOOP, new Uint8Array(0)],
      [0xe0, Uint8Array.of(1, 2, 3)],
    ],
    'good',
  );
  const r = ok(decodeProxyHeader(h));
  assert.equal(r.length, h.length);
  assert.deepEqual(
    r.tlvs.map((t) => [t.type, hex(t.value)]),
    [
      [PP2_TYPE_AUTHORITY, hex(ascii('example.com'))],
      [PP2_TYPE_NOOP, ''],
      [0xe0, '010203'],
      [PP2_TYPE_CRC32C, hex(h.subarray(h.length - 4))],
    ],
  );
  assert.equal(r.tlvs[0]!.value.buffer, h.buffer, 'TLV values alias the input');
  // TLVs after a LOCAL/UNSPEC header (what HAProxy sends for health checks).
  const local = bytes(SIG, 0x20, 0x00, 0, 6, PP2_TYPE_UNIQUE_ID, 0, 3, ascii('abc'));
  assert.deepEqual(
    ok(decodeProxyHeader(local)).tlvs.map((t) => t.type),
    [PP2_TYPE_UNIQUE_ID],
  );
});

// ---------------------------------------------------------------------------
// Invalid, none, incomplete
// ---------------------------------------------------------------------------

const V1_INVALID: [string, string, RegExp][] = [
  ['no space after PROXY', 'PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n', /single space/],
  ['unknown protocol', 'PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n', /unknown protocol "TCP5"/],
  ['lower-case protocol', 'PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n', /unknown protocol/],
  ['UNKNOWN glued to text', 'PROXY UNKNOWNX\r\n', /unknown protocol/],
  ['nothing after PROXY', 'PROXY\r\n', /nothing after/],
  ['double space', 'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n', /empty field/],
  ['missing port', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', /3 of 4 fields/],
  ['trailing space', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n', /unexpected data|empty field/],
  ['extra field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n', /unexpected data/],
  ['octet > 255', 'PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n', /bad IPv4 source/],
  ['leading zero octet', 'PROXY TCP4 1.2.3.4 5.6.07.8 1 2\r\n', /bad IPv4 destination/],
  ['three octets', 'PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n', /bad IPv4 source/],
  ['five octets', 'PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n', /bad IPv4 source/],
  ['empty octet', 'PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n', /bad IPv4 source/],
  ['IPv6 in TCP4', 'PROXY TCP4 ::1 5.6.7.8 1 2\r\n', /unexpected character ":"/],
  ['IPv4 in TCP6', 'PROXY TCP6 1.2.3.4 ::1 1 2\r\n', /bad IPv6 source/],
  ['two "::"', 'PROXY TCP6 1::2::3 ::1 1 2\r\n', /bad IPv6 source/],
  ['5-digit hex group', 'PROXY TCP6 ::1 1:00000::2 1 2\r\n', /bad IPv6 destination/],
  ['zone id', 'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n', /unexpected character "%"/],
  ['port > 65535', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n', /bad source port/],
  ['leading zero port', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 080\r\n', /bad destination port/],
  ['signed port', 'PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n', /unexpected character "\+"/],
  ['hex letters in TCP4', 'PROXY TCP4 1.2.3.a 5.6.7.8 1 2\r\n', /unexpected character "a"/],
  ['LF alone', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', /LF without CR/],
  ['CR alone', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX', /CR not followed by LF/],
  ['NUL byte', 'PROXY TCP4 1.2.3.4\x00 5.6.7.8 1 2\r\n', /unexpected character "\\x00"/],
  ['no CRLF in 107 bytes', `PROXY UNKNOWN ${'x'.repeat(120)}`, /no CRLF within the first 107/],
  ['CRLF ending at byte 108', `PROXY UNKNOWN ${'x'.repeat(92)}\r\n`, /longer than 107/],
];

test('v1: every malformed class is invalid with a reason', () => {
  for (const [name, text, reason] of V1_INVALID) {
    const r = decodeProxyHeader(ascii(text));
    assert.equal(r.kind, 'invalid', `${name}: ${JSON.stringify(r)}`);
    if (r.kind === 'invalid') assert.match(r.reason, reason, name);
  }
});

const v2 = (
  verCmd: number,
  fam: number,
  len: number,
  ...rest: (number | number[] | Uint8Array)[]
): Uint8Array => bytes(SIG, verCmd, fam, be16(len), ...rest);
const ADDR4 = [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2];

const V2_INVALID: [string, Uint8Array, RegExp][] = [
  ['version 1', v2(0x11, 0x11, 12, ADDR4), /version 1/],
  ['version 3', v2(0x31, 0x11, 12, ADDR4), /version 3/],
  ['version 0', v2(0x01, 0x11, 12, ADDR4), /version 0/],
  ['command 2', v2(0x22, 0x11, 12, ADDR4), /unassigned command 0x2/],
  ['command 0xf', v2(0x2f, 0x11, 12, ADDR4), /unassigned command 0xf/],
  ['family 4', v2(0x21, 0x41, 12, ADDR4), /unassigned address family 0x4/],
  ['protocol 3', v2(0x21, 0x13, 12, ADDR4), /unassigned transport protocol 0x3/],
  ['family 4 under LOCAL', v2(0x20, 0x41, 0), /unassigned address family/],
  ['INET without protocol', v2(0x21, 0x10, 12, ADDR4), /0x10 is not a defined combination/],
  ['UNSPEC family with STREAM', v2(0x21, 0x01, 0), /0x01 is not a defined combination/],
  [
    'TCP4 length < 12',
    v2(0x21, 0x11, 11, ADDR4.slice(0, 11)),
    /length 11 is shorter than the 12-byte/,
  ],
  // Judged from the 16 fixed bytes alone, without waiting for the 8 announced ones.
  [
    'TCP4 length 8, body not yet sent',
    v2(0x21, 0x11, 8),
    /length 8 is shorter than the 12-byte TCP4/,
  ],
  ['TCP6 with a TCP4 block', v2(0x21, 0x21, 12, ADDR4), /shorter than the 36-byte TCP6/],
  ['UNIX block short', v2(0x21, 0x31, 200, new Uint8Array(200)), /216-byte/],
  ['truncated TLV header', v2(0x21, 0x11, 14, ADDR4, [PP2_TYPE_NOOP, 0]), /truncated TLV header/],
  [
    'TLV longer than header',
    v2(0x21, 0x11, 16, ADDR4, [PP2_TYPE_NOOP, 0, 2, 0]),
    /claims 2 bytes, 1 left/,
  ],
  ['TLV garbage under LOCAL', v2(0x20, 0x00, 2, [1, 2]), /truncated TLV/],
  ['CRC32C mismatch', withTlvs([[PP2_TYPE_AUTHORITY, ascii('a')]], 'bad'), /CRC32C mismatch/],
  [
    'CRC32C of 3 bytes',
    v2(0x21, 0x11, 18, ADDR4, [PP2_TYPE_CRC32C, 0, 3, 1, 2, 3]),
    /CRC32C TLV has 3 bytes/,
  ],
  [
    'UNIQUE_ID over 128 bytes',
    v2(0x21, 0x11, 12 + 3 + 129, ADDR4, [PP2_TYPE_UNIQUE_ID, 0, 129], new Uint8Array(129)),
    /UNIQUE_ID TLV has 129 bytes/,
  ],
];

test('v2: every malformed class is invalid with a reason', () => {
  for (const [name, b, reason] of V2_INVALID) {
    const r = decodeProxyHeader(b);
    assert.equal(r.kind, 'invalid', `${name}: ${JSON.stringify(r)}`);
    if (r.kind === 'invalid') assert.match(r.reason, reason, name);
  }
});

test('none: bytes that cannot start a PROXY header', () => {
  for (const s of [
    'GET / HTTP/1.1\r\n',
    'proxy TCP4',
    'PROXz',
    'SSH-2.0-x',
    '\r\n\r\n\x01',
    'P\r',
  ]) {
    assert.equal(decodeProxyHeader(ascii(s)).kind, 'none', JSON.stringify(s));
  }
  assert.equal(decodeProxyHeader(bytes(SIG.slice(0, 11), 0x0b)).kind, 'none');
  assert.equal(decodeProxyHeader(Uint8Array.of(0x16, 0x03, 0x01)).kind, 'none', 'TLS ClientHello');
});

test('incomplete: every strict prefix of a good header, and garbage is refused early', () => {
  const headers = [
    ascii('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n'),
    ascii('PROXY TCP6 2001:db8::1 ::ffff:1.2.3.4 56324 443\r\n'),
    ascii('PROXY UNKNOWN\r\n'),
    ascii('PROXY UNKNOWN ffff::1 ::2 3 4\r\n'),
    encode((b, o) => encodeProxyV2(b, o, 0x01020304, 5, 0x06070809, 10)),
    encode((b, o) => encodeProxyV2v6(b, o, new Uint8Array(16), 5, new Uint8Array(16).fill(1), 10)),
    withTlvs([[PP2_TYPE_AUTHORITY, ascii('example.com')]], 'good'),
    bytes(SIG, 0x20, 0x00, 0, 0),
  ];
  for (const h of headers) {
    for (let k = 0; k < h.length; k++) {
      assert.equal(decodeProxyHeader(h.subarray(0, k)).kind, 'incomplete', `${hex(h)} cut at ${k}`);
    }
    assert.equal(ok(decodeProxyHeader(h)).length, h.length);
  }
  // A line that has already gone wrong is refused without waiting for CRLF or 107 bytes.
  for (const s of [
    'PROXY TCP9',
    'PROXY TCP4 1.2.3.4x',
    'PROXY TCP4 1.2.3.4 5.6.7.8 8o',
    'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ',
  ]) {
    assert.equal(decodeProxyHeader(ascii(s)).kind, 'invalid', s);
  }
  // A v2 header refuses a bad version as soon as its 16 fixed bytes are in.
  assert.equal(decodeProxyHeader(bytes(SIG, 0x11, 0x11, 0, 12)).kind, 'invalid');
});

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

const port = fc.integer({ min: 0, max: 0xffff });
const addr4 = fc.integer({ min: 0, max: 0xffffffff });
/** IPv6 addresses rich in zero words, so "::" placement is exercised. */
const addr6 = fc
  .array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), {
    minLength: 8,
    maxLength: 8,
  })
  .map((w) => Uint8Array.from(w.flatMap(be16)));
const trailer = fc.uint8Array({ maxLength: 32 });

test('round trip v1 TCP4 and v2 TCP4 over random addresses and ports', () => {
  fc.assert(
    fc.property(addr4, port, addr4, port, fc.nat(40), trailer, (s, sp, d, dp, off, tail) => {
      const b = new Uint8Array(off + 128);
      const n1 = encodeProxyV1(b, off, s, sp, d, dp);
      assert.equal(n1, proxyV1Length(s, sp, d, dp));
      assert.ok(n1 <= 56);
      const line = b.slice(off, off + n1);
      assert.equal(
        String.fromCharCode(...line),
        `PROXY TCP4 ${ipv4ToString(s)} ${ipv4ToString(d)} ${sp} ${dp}\r\n`,
      );
      const r1 = ok(decodeProxyHeader(bytes(line, tail)));
      assert.deepEqual(
        [r1.src, r1.dst, r1.length],
        [{ address: ipv4ToString(s), port: sp }, { address: ipv4ToString(d), port: dp }, n1],
      );
      const n2 = encodeProxyV2(b, off, s, sp, d, dp);
      const r2 = ok(decodeProxyHeader(bytes(b.subarray(off, off + n2), tail)));
      assert.deepEqual(
        [r2.version, r2.family, r2.src, r2.dst, r2.length],
        [
          2,
          'TCP4',
          { address: ipv4ToString(s), port: sp },
          { address: ipv4ToString(d), port: dp },
          28,
        ],
      );
    }),
    { numRuns: 2000 },
  );
});

test('round trip v1 TCP6 and v2 TCP6; v1 text is RFC 5952', () => {
  fc.assert(
    fc.property(addr6, port, addr6, port, trailer, (s, sp, d, dp, tail) => {
      const b = new Uint8Array(128);
      const n1 = encodeProxyV1v6(b, 0, s, sp, d, dp);
      assert.equal(n1, proxyV1v6Length(s, sp, d, dp));
      assert.ok(n1 <= 104);
      const text = String.fromCharCode(...b.subarray(0, n1));
      assert.equal(text, `PROXY TCP6 ${ipv6ToString(s)} ${ipv6ToString(d)} ${sp} ${dp}\r\n`);
      assert.ok(isIPv6(text.split(' ')[2]!));
      const r1 = ok(decodeProxyHeader(bytes(b.subarray(0, n1), tail)));
      assert.deepEqual(
        [r1.src, r1.dst],
        [
          { address: ipv6ToString(s), port: sp },
          { address: ipv6ToString(d), port: dp },
        ],
      );
      const n2 = encodeProxyV2v6(b, 0, s, sp, d, dp);
      const r2 = ok(decodeProxyHeader(bytes(b.subarray(0, n2), tail)));
      assert.deepEqual(
        [r2.family, r2.src, r2.dst, r2.length],
        [
          'TCP6',
          { address: ipv6ToString(s), port: sp },
          { address: ipv6ToString(d), port: dp },
          52,
        ],
      );
    }),
    { numRuns: 2000 },
  );
});

test('arbitrary and mutated input never throws, and "none" only without a signature', () => {
  const good = [
    ascii('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n'),
    withTlvs([[PP2_TYPE_AUTHORITY, ascii('example.com')]], 'good'),
  ];
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc
      .tuple(fc.constantFrom(...good), fc.nat(60), fc.nat(255), fc.nat(70))
      .map(([h, at, v, cut]) => {
        const c = h.slice(0, Math.max(0, h.length - cut));
        if (at < c.length) c[at] = v;
        return c;
      }),
  );
  fc.assert(
    fc.property(input, (b) => {
      const r = decodeProxyHeader(b);
      const v1 = b.length >= 5 && String.fromCharCode(...b.subarray(0, 5)) === 'PROXY';
      const v2sig = b.length >= 12 && SIG.every((x, i) => b[i] === x);
      if (v1 || v2sig) assert.notEqual(r.kind, 'none');
      if (r.kind === 'ok') assert.ok(r.length <= b.length);
      if (r.kind === 'ok' && r.version === 1) assert.ok(r.length <= PROXY_V1_MAX_LENGTH);
    }),
    { numRuns: 5000 },
  );
});

// ---------------------------------------------------------------------------
// Wireshark as an independent decoder
// ---------------------------------------------------------------------------

const TSHARK_TIMEOUT_MS = 20_000;
const FIELDS = [
  'frame.number',
  'proxy.version',
  'proxy.v2.cmd',
  'proxy.v2.addr_family_protocol',
  'proxy.v2.length',
  'proxy.src.ipv4',
  'proxy.dst.ipv4',
  'proxy.src.ipv6',
  'proxy.dst.ipv6',
  'proxy.srcport',
  'proxy.dstport',
  'proxy.v1.proto',
  'proxy.v2.tlv.type',
  'proxy.v2.tlv.length',
];

/**
 * One IP/TCP packet from the LB's local address to the RS carrying `payload`;
 * each frame gets its own source port so TCP analysis sees separate streams.
 */
function carry(payload: Uint8Array, family: 4 | 6, srcPort: number): Uint8Array {
  const ipLen = family === 4 ? 20 : 40;
  const segLen = 20 + payload.length;
  const p = new Uint8Array(ipLen + segLen);
  if (family === 4) {
    writeIpv4Header(p, 0, {
      src: parseIpv4('10.0.0.5'),
      dst: parseIpv4('10.0.1.7'),
      protocol: IPPROTO_TCP,
      payloadLength: segLen,
    });
  } else {
    writeIpv6Header(p, 0, {
      src: parseIpv6('fd00::5')!,
      dst: parseIpv6('fd00:1::7')!,
      nextHeader: IPPROTO_TCP,
      payloadLength: segLen,
    });
  }
  writeTcpHeader(p, ipLen, {
    srcPort,
    dstPort: 8080,
    seq: 1001,
    ack: 2001,
    flags: TCP_ACK | TCP_PSH,
    window: 29200,
  });
  p.set(payload, ipLen + 20);
  const t = new TcpView().wrap(p, ipLen);
  t.checksum = family === 4 ? t.computeChecksumV4(0, segLen) : t.computeChecksumV6(0, segLen);
  return p;
}

test('tshark\'s "proxy" dissector decodes our headers', (t: TestContext) => {
  const probe = spawnSync('tshark', ['--version'], {
    encoding: 'utf8',
    timeout: TSHARK_TIMEOUT_MS,
  });
  if (probe.error || probe.status !== 0) {
    t.skip(`tshark not usable (${probe.error?.message ?? probe.stderr}); apt-get install tshark`);
    return;
  }
  t.diagnostic(probe.stdout.split('\n')[0]!.trim());
  const protos = spawnSync('tshark', ['-G', 'protocols'], {
    encoding: 'utf8',
    timeout: TSHARK_TIMEOUT_MS,
  });
  if (!/^PROXY Protocol\tPROXY\tproxy$/m.test(protos.stdout)) {
    t.skip('this tshark has no "proxy" dissector (Wireshark >= 3.0 needed)');
    return;
  }

  const http = ascii('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  const tlvHeader = withTlvs([[PP2_TYPE_AUTHORITY, ascii('example.com')]], 'good');
  const frames = [
    bytes(
      encode((b, o) =>
        encodeProxyV2(b, o, parseIpv4('192.0.2.10'), 40000, parseIpv4('198.51.100.1'), 80),
      ),
      http,
    ),
    encode((b, o) =>
      encodeProxyV2v6(b, o, parseIpv6('2001:db8:c::a')!, 40001, parseIpv6('2001:db8:100::1')!, 443),
    ),
    bytes(
      encode((b, o) =>
        encodeProxyV1(b, o, parseIpv4('203.0.113.9'), 65535, parseIpv4('198.51.100.1'), 0),
      ),
      http,
    ),
    bytes(
      encode((b, o) => encodeProxyV1v6(b, o, parseIpv6('2001:db8::9')!, 1, parseIpv6('::1')!, 2)),
      http,
    ),
    tlvHeader,
    encode((b, o) => encodeProxyV2Local(b, o)),
  ];
  const dir = mkdtempSync(join(tmpdir(), 'fullnat-pp-'));
  try {
    const pcap = new PcapWriter(LINKTYPE_RAW);
    frames.forEach((f, i) =>
      pcap.add(1_700_000_000_000_000 + i * 1000, carry(f, i === 1 || i === 3 ? 6 : 4, 61000 + i)),
    );
    const file = join(dir, 'proxy.pcap');
    writeFileSync(file, pcap.toBytes());
    // The dissector is only a TCP heuristic (no decode-as entry), and TCP asks
    // heuristics only after port-based dissectors have had the payload, so
    // enable it by name and put heuristics first.
    const r = spawnSync(
      'tshark',
      [
        '-n',
        '-r',
        file,
        '--enable-heuristic',
        'proxy_tcp',
        '-o',
        'tcp.try_heuristic_first:TRUE',
        '-T',
        'fields',
        '-E',
        'separator=/t',
        '-E',
        'occurrence=a',
        '-E',
        'aggregator=,',
        ...FIELDS.flatMap((f) => ['-e', f]),
      ],
      { encoding: 'utf8', timeout: TSHARK_TIMEOUT_MS, env: { ...process.env, HOME: dir } },
    );
    assert.equal(r.status, 0, r.stderr);
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => Object.fromEntries(l.split('\t').map((v, i) => [FIELDS[i]!, v])));
    assert.equal(rows.length, frames.length, r.stdout);
    const [v2v4, v2v6, v1v4, v1v6, tlv, local] = rows as Record<string, string>[];
    assert.deepEqual(
      [
        v2v4!['proxy.version'],
        v2v4!['proxy.v2.cmd'],
        v2v4!['proxy.v2.addr_family_protocol'],
        v2v4!['proxy.v2.length'],
      ],
      ['2', '1', '0x11', '12'],
    );
    assert.deepEqual(
      [
        v2v4!['proxy.src.ipv4'],
        v2v4!['proxy.dst.ipv4'],
        v2v4!['proxy.srcport'],
        v2v4!['proxy.dstport'],
      ],
      ['192.0.2.10', '198.51.100.1', '40000', '80'],
    );
    assert.deepEqual(
      [
        v2v6!['proxy.v2.addr_family_protocol'],
        v2v6!['proxy.v2.length'],
        v2v6!['proxy.src.ipv6'],
        v2v6!['proxy.dst.ipv6'],
        v2v6!['proxy.srcport'],
        v2v6!['proxy.dstport'],
      ],
      ['0x21', '36', '2001:db8:c::a', '2001:db8:100::1', '40001', '443'],
    );
    assert.deepEqual(
      [
        // Wireshark fills proxy.version for v2 only; a v1 line shows as its proto field.
        v1v4!['proxy.v2.length'],
        v1v4!['proxy.v1.proto'],
        v1v4!['proxy.src.ipv4'],
        v1v4!['proxy.dst.ipv4'],
        v1v4!['proxy.srcport'],
        v1v4!['proxy.dstport'],
      ],
      ['', 'TCP4', '203.0.113.9', '198.51.100.1', '65535', '0'],
    );
    assert.deepEqual(
      [
        v1v6!['proxy.v1.proto'],
        v1v6!['proxy.src.ipv6'],
        v1v6!['proxy.dst.ipv6'],
        v1v6!['proxy.srcport'],
        v1v6!['proxy.dstport'],
      ],
      ['TCP6', '2001:db8::9', '::1', '1', '2'],
    );
    // Wireshark 4.0 lists only the first TLV of a header (later versions walk
    // them all), so the CRC32C that follows is checked by our decoder alone.
    assert.deepEqual(
      [
        tlv!['proxy.v2.length'],
        tlv!['proxy.v2.tlv.type']!.split(',')[0],
        tlv!['proxy.v2.tlv.length']!.split(',')[0],
      ],
      [String(tlvHeader.length - 16), '0x02', '11'],
    );
    assert.equal(ok(decodeProxyHeader(tlvHeader)).tlvs.length, 2);
    assert.deepEqual(
      [local!['proxy.version'], local!['proxy.v2.cmd'], local!['proxy.v2.length']],
      ['2', '0', '0'],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
