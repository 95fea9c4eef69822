/**
 * UOA (DPVS's UDP option of address): the exact bytes of the option and the
 * OPP header, both insertions (into headroom and into tailroom), what they
 * refuse, the RS-side decoder and removal, and scapy reading what we wrote.
 */
import { describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { Ipv6Address, type IpAddress } from '../../src/wire/address.js';
import { get16, ipv4ToString, parseIpv4, parseIpv6, set16, set32 } from '../../src/wire/bytes.js';
import { internetChecksum } from '../../src/wire/checksum.js';
import { IPPROTO_TCP, IPPROTO_UDP, writeIpv4Header } from '../../src/wire/ipv4.js';
import { writeIpv6Header } from '../../src/wire/ipv6.js';
import { UDP_HEADER, UdpView, writeUdpHeader } from '../../src/wire/udp.js';
import {
  IPOPT_UOA,
  IPO_GROWTH,
  IPPROTO_OPP,
  IPV4_MAX_HEADER,
  OPP_GROWTH_V4,
  OPP_GROWTH_V6,
  OPP_HEADER,
  OPP_VERSION_V4,
  OPP_VERSION_V6,
  UOA_V4_LEN,
  UOA_V6_LEN,
  UoaInsertError,
  decodeUoa,
  insertIpoV4,
  insertOpp,
  removeUoa,
  writeOppHeader,
  writeUoaOption,
  writeUoaV4Words,
  type UoaDatagram,
  type UoaDecodeResult,
  type UoaProblem,
} from '../../src/wire/uoa.js';
import { rng } from '../support/rng.js';
import { probeScapy, scapyDecode, scapySkip } from '../support/scapy.js';

const hex = (b: Uint8Array): string =>
  Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
const plainHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const CLIENT = parseIpv4('192.0.2.10');
const CLIENT_BYTES = Uint8Array.of(192, 0, 2, 10);
const CLIENT6 = parseIpv6('2001:db8::a:b:c')!;
const LADDR = parseIpv4('10.0.0.5');
const RS = parseIpv4('10.0.1.20');
const LADDR6 = parseIpv6('fd00::5')!;
const RS6 = parseIpv6('fd00:1::20')!;
const CPORT = 40000;
const HEADROOM = 64;
const TAILROOM = 64;

/** A UDP datagram as the LB sends it to the RS, with its real checksum (or none). */
interface Datagram {
  buf: Uint8Array;
  start: number;
  length: number;
}

function udpV4(opts: {
  payload?: number;
  headroom?: number;
  tailroom?: number;
  ipOptions?: Uint8Array;
  noChecksum?: boolean;
}): Datagram {
  const payload = opts.payload ?? 11;
  const ipOpts = opts.ipOptions ?? new Uint8Array(0);
  const hl = 20 + ipOpts.length;
  const length = hl + UDP_HEADER + payload;
  const start = opts.headroom ?? HEADROOM;
  const buf = new Uint8Array(start + length + (opts.tailroom ?? TAILROOM)).fill(0xee);
  writeIpv4Header(buf, start, {
    src: LADDR,
    dst: RS,
    protocol: IPPROTO_UDP,
    payloadLength: length - 20,
    id: 0x1234,
  });
  if (ipOpts.length > 0) {
    buf.set(ipOpts, start + 20);
    buf[start] = 0x40 | (hl >>> 2);
    set16(buf, start + 10, 0);
    set16(buf, start + 10, internetChecksum(buf, start, hl));
  }
  writeUdpHeader(buf, start + hl, 1029, 53, payload);
  for (let i = 0; i < payload; i++) buf[start + hl + UDP_HEADER + i] = (i * 7 + 3) & 0xff;
  const u = new UdpView().wrap(buf, start + hl);
  u.checksum = opts.noChecksum ? 0 : u.computeChecksumV4(start);
  return { buf, start, length };
}

function udpV6(opts: { payload?: number; headroom?: number; tailroom?: number }): Datagram {
  const payload = opts.payload ?? 11;
  const length = 40 + UDP_HEADER + payload;
  const start = opts.headroom ?? HEADROOM;
  const buf = new Uint8Array(start + length + (opts.tailroom ?? TAILROOM)).fill(0xee);
  writeIpv6Header(buf, start, {
    src: LADDR6,
    dst: RS6,
    nextHeader: IPPROTO_UDP,
    payloadLength: length - 40,
  });
  writeUdpHeader(buf, start + 40, 1029, 53, payload);
  for (let i = 0; i < payload; i++) buf[start + 40 + UDP_HEADER + i] = (i * 5 + 1) & 0xff;
  const u = new UdpView().wrap(buf, start + 40);
  u.checksum = u.computeChecksumV6(start);
  return { buf, start, length };
}

const bytesOf = (d: Datagram): Uint8Array => d.buf.slice(d.start, d.start + d.length);

function mustStart(r: number): number {
  assert.ok(r >= 0, `insertion refused: ${r}`);
  return r;
}

function ok(r: UoaDecodeResult): UoaDatagram {
  if (!r.ok) assert.fail(`decode refused: ${r.reason}: ${r.detail}`);
  return r;
}

function refused(r: UoaDecodeResult, reason: UoaProblem, what: string): void {
  assert.equal(r.ok, false, `${what}: accepted`);
  if (!r.ok) assert.equal(r.reason, reason, `${what}: ${r.detail}`);
}

function sameAddress(a: IpAddress, b: IpAddress): boolean {
  if (typeof a === 'number' || typeof b === 'number') return a === b;
  return a.equals(b);
}

/** The UDP header and payload of a datagram verify under the outer header's addresses. */
function assertUdpChecksum(b: Uint8Array, ipOff: number, udpOff: number, what: string): void {
  const u = new UdpView().wrap(b, udpOff);
  const v6 = b[ipOff]! >>> 4 === 6;
  assert.ok(v6 ? u.checksumValidV6(ipOff) : u.checksumValidV4(ipOff), `${what}: UDP checksum`);
}

describe('UOA encoders', () => {
  it('IPv4 UOA: 192.0.2.10 port 40000 is 1f 08 9c 40 c0 00 02 0a (option 31, len 8)', () => {
    assert.equal(IPOPT_UOA, 31);
    assert.equal(UOA_V4_LEN, 8);
    const b = new Uint8Array(10).fill(0xaa);
    assert.equal(writeUoaOption(b, 1, CPORT, CLIENT_BYTES, 0, 4), 8);
    assert.equal(hex(b), 'aa 1f 08 9c 40 c0 00 02 0a aa');
    const w = new Uint8Array(10).fill(0xaa);
    writeUoaV4Words(w, 1, CPORT, CLIENT >>> 16, CLIENT & 0xffff);
    assert.equal(hex(w), hex(b));
  });

  it('IPv6 UOA: code, len 20, port, the 16 address bytes', () => {
    assert.equal(UOA_V6_LEN, 20);
    const b = new Uint8Array(22).fill(0xaa);
    assert.equal(writeUoaOption(b, 1, 443, CLIENT6, 0, 16), 20);
    assert.equal(hex(b), 'aa 1f 14 01 bb 20 01 0d b8 00 00 00 00 00 00 00 0a 00 0b 00 0c aa');
  });

  it('OPP header: version in the high nibble, protocol, length of header and options', () => {
    const b = new Uint8Array(4);
    writeOppHeader(b, 0, OPP_VERSION_V4, IPPROTO_UDP, UOA_V4_LEN);
    assert.equal(hex(b), '10 11 00 0c');
    writeOppHeader(b, 0, OPP_VERSION_V6, IPPROTO_UDP, UOA_V6_LEN);
    assert.equal(hex(b), '20 11 00 18');
    assert.equal(IPPROTO_OPP, 248);
    assert.equal(OPP_GROWTH_V4, OPP_HEADER + 8);
    assert.equal(OPP_GROWTH_V6, OPP_HEADER + 20);
  });
});

describe('insertIpoV4', () => {
  for (const [where, headroom, tailroom] of [
    ['headroom', HEADROOM, 0],
    ['tailroom', 0, TAILROOM],
  ] as const) {
    it(`puts the UOA first among the options (room taken from the ${where})`, () => {
      const d = udpV4({ headroom, tailroom });
      const before = bytesOf(d);
      const s = mustStart(insertIpoV4(d.buf, d.start, d.length, CPORT, CLIENT_BYTES, 0));
      assert.equal(s, headroom === 0 ? 0 : d.start - IPO_GROWTH);
      const after = d.buf.subarray(s, s + d.length + IPO_GROWTH);
      assert.equal(after[0], 0x47, 'IHL 7');
      assert.equal(get16(after, 2), d.length + 8, 'total length');
      assert.equal(internetChecksum(after, 0, 28), 0, 'IPv4 header checksum');
      assert.equal(hex(after.subarray(20, 28)), '1f 08 9c 40 c0 00 02 0a');
      assert.equal(after[1], before[1], 'TOS');
      assert.equal(
        hex(after.subarray(4, 10)),
        hex(before.subarray(4, 10)),
        'id, flags, TTL, protocol',
      );
      assert.equal(hex(after.subarray(12, 20)), hex(before.subarray(12, 20)), 'addresses');
      assert.equal(hex(after.subarray(28)), hex(before.subarray(20)), 'UDP untouched');
      assertUdpChecksum(after, 0, 28, 'ipo');
    });
  }

  it('keeps existing options after the UOA; 52 bytes of header grow to the 60 maximum', () => {
    const opts = new Uint8Array(32).fill(1); // NOPs
    opts[31] = 0; // END
    const d = udpV4({ ipOptions: opts });
    const s = mustStart(insertIpoV4(d.buf, d.start, d.length, CPORT, CLIENT_BYTES, 0));
    const after = d.buf.subarray(s, s + d.length + 8);
    assert.equal((after[0]! & 0x0f) * 4, IPV4_MAX_HEADER);
    assert.equal(internetChecksum(after, 0, 60), 0);
    assert.equal(hex(after.subarray(28, 60)), hex(opts));
    const got = ok(decodeUoa(after));
    assert.equal(got.uoaOffset, 20);
    assert.equal(got.udpOffset, 60);
  });

  it('reports no option space past 60 bytes of header, the buffer untouched', () => {
    const d = udpV4({ ipOptions: new Uint8Array(36).fill(1) });
    const copy = d.buf.slice();
    assert.equal(
      insertIpoV4(d.buf, d.start, d.length, CPORT, CLIENT_BYTES, 0),
      UoaInsertError.NoOptionSpace,
    );
    assert.deepEqual(d.buf, copy);
  });

  it('a zero UDP checksum (none) stays zero', () => {
    const d = udpV4({ noChecksum: true });
    const s = mustStart(insertIpoV4(d.buf, d.start, d.length, CPORT, CLIENT_BYTES, 0));
    assert.equal(get16(d.buf, s + 28 + 6), 0);
  });

  it('takes the client from the datagram itself (its source address, moved as it is read)', () => {
    const d = udpV4({});
    set32(d.buf, d.start + 12, CLIENT);
    const s = mustStart(insertIpoV4(d.buf, d.start, d.length, CPORT, d.buf, d.start + 12));
    assert.equal(hex(d.buf.subarray(s + 20, s + 28)), '1f 08 9c 40 c0 00 02 0a');
    const t = udpV4({ headroom: 0 });
    set32(t.buf, 12, CLIENT);
    mustStart(insertIpoV4(t.buf, 0, t.length, CPORT, t.buf, 12));
    assert.equal(hex(t.buf.subarray(20, 28)), '1f 08 9c 40 c0 00 02 0a');
  });

  it('refuses what it cannot carry, the buffer untouched', () => {
    const cases: [string, Datagram, number, number][] = [];
    const v6 = udpV6({});
    cases.push(['IPv6', v6, v6.length, UoaInsertError.FamilyPair]);
    const tcp = udpV4({});
    tcp.buf[tcp.start + 9] = IPPROTO_TCP;
    cases.push(['TCP', tcp, tcp.length, UoaInsertError.NotUdp]);
    const frag = udpV4({});
    set16(frag.buf, frag.start + 6, 0x2000);
    cases.push(['first fragment', frag, frag.length, UoaInsertError.Fragment]);
    const later = udpV4({});
    set16(later.buf, later.start + 6, 0x0003);
    cases.push(['later fragment', later, later.length, UoaInsertError.Fragment]);
    const cramped = udpV4({ headroom: 4, tailroom: 4 });
    cases.push(['no room', cramped, cramped.length, UoaInsertError.NoRoom]);
    const short = udpV4({});
    cases.push(['length past total', short, short.length + 1, UoaInsertError.Malformed]);
    const lying = udpV4({});
    set16(lying.buf, lying.start + 20 + 4, 200);
    cases.push(['UDP length past the end', lying, lying.length, UoaInsertError.Malformed]);
    const ihl = udpV4({});
    ihl.buf[ihl.start] = 0x44;
    cases.push(['IHL 4', ihl, ihl.length, UoaInsertError.Malformed]);
    const tiny = udpV4({});
    cases.push(['10 bytes', tiny, 10, UoaInsertError.Malformed]);
    for (const [what, d, length, want] of cases) {
      const copy = d.buf.slice();
      assert.equal(insertIpoV4(d.buf, d.start, length, CPORT, CLIENT_BYTES, 0), want, what);
      assert.deepEqual(d.buf, copy, `${what}: touched`);
    }
  });
});

/** The three opp shapes: IPv4, IPv6, and NAT64 (IPv6 client, IPv4 datagram). */
const OPP_SHAPES = [
  { name: 'IPv4', make: udpV4, addr: CLIENT_BYTES, addrLength: 4, growth: OPP_GROWTH_V4 },
  { name: 'IPv6', make: udpV6, addr: CLIENT6, addrLength: 16, growth: OPP_GROWTH_V6 },
  { name: 'NAT64', make: udpV4, addr: CLIENT6, addrLength: 16, growth: OPP_GROWTH_V6 },
] as const;

describe('insertOpp', () => {
  for (const shape of OPP_SHAPES) {
    for (const [where, headroom, tailroom] of [
      ['headroom', HEADROOM, 0],
      ['tailroom', 0, TAILROOM],
    ] as const) {
      it(`${shape.name}: OPP header and UOA between IP and UDP (room from the ${where})`, () => {
        const d = shape.make({ headroom, tailroom });
        const before = bytesOf(d);
        const hl = before[0]! >>> 4 === 6 ? 40 : 20;
        const s = mustStart(
          insertOpp(d.buf, d.start, d.length, CPORT, shape.addr, 0, shape.addrLength),
        );
        const after = d.buf.slice(s, s + d.length + shape.growth);
        const uoaLen = shape.addrLength === 4 ? 8 : 20;
        const version = shape.addrLength === 4 ? 1 : 2;
        assert.equal(
          hex(after.subarray(hl, hl + 4)),
          hex(Uint8Array.of(version << 4, 17, 0, 4 + uoaLen)),
          'OPP header',
        );
        assert.equal(after[hl + 4], 31);
        assert.equal(after[hl + 5], uoaLen);
        assert.equal(get16(after, hl + 6), CPORT);
        assert.equal(hex(after.subarray(hl + 8, hl + 4 + uoaLen)), hex(shape.addr));
        assert.equal(
          hex(after.subarray(hl + shape.growth)),
          hex(before.subarray(hl)),
          'UDP untouched',
        );
        if (hl === 40) {
          assert.equal(after[6], IPPROTO_OPP);
          assert.equal(get16(after, 4), d.length - 40 + shape.growth);
          assert.equal(hex(after.subarray(7, 40)), hex(before.subarray(7, 40)));
        } else {
          assert.equal(after[9], IPPROTO_OPP);
          assert.equal(get16(after, 2), d.length + shape.growth);
          assert.equal(internetChecksum(after, 0, 20), 0, 'IPv4 header checksum');
        }
        assertUdpChecksum(after, 0, hl + shape.growth, shape.name);
      });
    }
  }

  it('IPv4 with options: the OPP header follows them, the options stay', () => {
    const opts = Uint8Array.of(1, 1, 1, 0);
    const d = udpV4({ ipOptions: opts });
    const s = mustStart(insertOpp(d.buf, d.start, d.length, CPORT, CLIENT_BYTES, 0, 4));
    const after = d.buf.subarray(s, s + d.length + OPP_GROWTH_V4);
    assert.equal(after[0], 0x46);
    assert.equal(hex(after.subarray(20, 24)), '01 01 01 00');
    assert.equal(hex(after.subarray(24, 28)), '10 11 00 0c');
    const got = ok(decodeUoa(after));
    assert.equal(got.oppOffset, 24);
    assert.equal(got.udpOffset, 36);
  });

  it('a zero IPv4 UDP checksum stays zero', () => {
    const d = udpV4({ noChecksum: true });
    const s = mustStart(insertOpp(d.buf, d.start, d.length, CPORT, CLIENT_BYTES, 0, 4));
    assert.equal(get16(d.buf, s + 20 + OPP_GROWTH_V4 + 6), 0);
  });

  it('refuses what it cannot carry, the buffer untouched', () => {
    const cases: [string, Datagram, number, 4 | 16, number][] = [];
    const v6 = udpV6({});
    cases.push(['IPv6 datagram, IPv4 client', v6, v6.length, 4, UoaInsertError.FamilyPair]);
    const ext = udpV6({});
    ext.buf[ext.start + 6] = 0; // hop-by-hop options first
    cases.push(['IPv6 extension header', ext, ext.length, 16, UoaInsertError.NotUdp]);
    const plen = udpV6({});
    cases.push(['IPv6 payload length', plen, plen.length - 1, 16, UoaInsertError.Malformed]);
    const frag = udpV4({});
    set16(frag.buf, frag.start + 6, 0x2000);
    cases.push(['fragment', frag, frag.length, 4, UoaInsertError.Fragment]);
    const cramped = udpV6({ headroom: 20, tailroom: 20 });
    cases.push(['no room', cramped, cramped.length, 16, UoaInsertError.NoRoom]);
    const tcp = udpV4({});
    tcp.buf[tcp.start + 9] = IPPROTO_TCP;
    cases.push(['TCP', tcp, tcp.length, 4, UoaInsertError.NotUdp]);
    const big = udpV4({ payload: 65535 - 28 - 4 });
    cases.push(['past 65535 bytes', big, big.length, 4, UoaInsertError.Malformed]);
    for (const [what, d, length, addrLength, want] of cases) {
      const copy = d.buf.slice();
      const addr = addrLength === 4 ? CLIENT_BYTES : CLIENT6;
      assert.equal(insertOpp(d.buf, d.start, length, CPORT, addr, 0, addrLength), want, what);
      assert.deepEqual(d.buf, copy, `${what}: touched`);
    }
  });
});

/** One datagram as the LB sends it, with the bytes before insertion and what decodeUoa must read. */
interface Produced {
  name: string;
  original: Uint8Array;
  bytes: Uint8Array;
  mode: 'ipo' | 'opp';
  client: IpAddress;
}

/** Every shape the LB produces. */
function produced(): Produced[] {
  const out: Produced[] = [];
  for (const [name, payload] of [
    ['', 11],
    [', empty payload', 0],
  ] as const) {
    const d = udpV4({ payload });
    const original = bytesOf(d);
    const s = mustStart(insertIpoV4(d.buf, d.start, d.length, CPORT, CLIENT_BYTES, 0));
    out.push({
      name: `ipo${name}`,
      original,
      bytes: d.buf.slice(s, s + d.length + IPO_GROWTH),
      mode: 'ipo',
      client: CLIENT,
    });
    for (const shape of OPP_SHAPES) {
      const e = shape.make({ payload });
      const orig = bytesOf(e);
      const t = mustStart(
        insertOpp(e.buf, e.start, e.length, CPORT, shape.addr, 0, shape.addrLength),
      );
      out.push({
        name: `opp ${shape.name}${name}`,
        original: orig,
        bytes: e.buf.slice(t, t + e.length + shape.growth),
        mode: 'opp',
        client: shape.addrLength === 4 ? CLIENT : Ipv6Address.fromBytes(CLIENT6),
      });
    }
  }
  const noSum = udpV4({ noChecksum: true });
  const orig = bytesOf(noSum);
  const s = mustStart(insertOpp(noSum.buf, noSum.start, noSum.length, CPORT, CLIENT_BYTES, 0, 4));
  out.push({
    name: 'opp IPv4, no UDP checksum',
    original: orig,
    bytes: noSum.buf.slice(s, s + noSum.length + OPP_GROWTH_V4),
    mode: 'opp',
    client: CLIENT,
  });
  return out;
}

describe('decodeUoa and removeUoa', () => {
  it('read back what the insertions wrote, and removal restores the original bytes', () => {
    for (const p of produced()) {
      const got = ok(decodeUoa(p.bytes));
      assert.equal(got.mode, p.mode, p.name);
      assert.ok(sameAddress(got.clientAddress, p.client), `${p.name}: client address`);
      assert.equal(got.clientPort, CPORT, p.name);
      assert.equal(get16(p.bytes, got.udpOffset), 1029, `${p.name}: UDP source port at udpOffset`);
      const buf = new Uint8Array(p.bytes.length + 6).fill(0x77);
      buf.set(p.bytes, 3);
      const r = removeUoa(buf, 3, p.bytes.length);
      if (!r.ok) assert.fail(`${p.name}: ${r.reason}`);
      assert.equal(hex(buf.subarray(r.start, r.start + r.length)), hex(p.original), p.name);
      refused(decodeUoa(buf, r.start, r.length), 'no-uoa', `${p.name}: after removal`);
    }
  });

  it('decodes at an offset and ignores bytes past the IP length', () => {
    const p = produced()[0]!;
    const buf = new Uint8Array(p.bytes.length + 10);
    buf.set(p.bytes, 4);
    const got = ok(decodeUoa(buf, 4));
    assert.equal(got.start, 4);
    assert.equal(got.end, 4 + p.bytes.length);
    assert.equal(got.uoaOffset, 24);
  });

  it('plain UDP carries no UOA; other protocols are not UDP', () => {
    refused(decodeUoa(bytesOf(udpV4({}))), 'no-uoa', 'plain IPv4');
    refused(decodeUoa(bytesOf(udpV6({}))), 'no-uoa', 'plain IPv6');
    refused(
      decodeUoa(bytesOf(udpV4({ ipOptions: Uint8Array.of(1, 1, 1, 0) }))),
      'no-uoa',
      'IPv4 options without a UOA',
    );
    const tcp = bytesOf(udpV4({}));
    tcp[9] = IPPROTO_TCP;
    fixIpv4Checksum(tcp);
    refused(decodeUoa(tcp), 'not-udp', 'TCP');
  });

  it('walks IPv4 options as kmod/uoa: NOPs and other options before the UOA, END stops', () => {
    const uoa = Uint8Array.of(31, 8, 0x9c, 0x40, 192, 0, 2, 10);
    const rr = Uint8Array.of(7, 3, 4); // record route, 3 bytes
    const cases: [string, Uint8Array, UoaProblem | number][] = [
      [
        'NOP, NOP, RR, UOA, END...',
        concat(Uint8Array.of(1, 1), rr, uoa, Uint8Array.of(0, 0, 0)),
        25,
      ],
      ['END before the UOA', concat(Uint8Array.of(0, 1, 1, 1), uoa), 'no-uoa'],
      ['option length 0', concat(Uint8Array.of(7, 0, 1, 1), uoa), 'bad-option'],
      ['option length 1', concat(Uint8Array.of(7, 1, 1, 1), uoa), 'bad-option'],
      ['option past the header', concat(uoa, Uint8Array.of(1, 1, 7, 9)), 20],
      ['option past the header first', concat(Uint8Array.of(1, 1, 7, 12), uoa), 'bad-option'],
      ['UOA of 12 bytes', concat(Uint8Array.of(31, 12, 0, 1), uoa), 'bad-uoa-length'],
      ['last byte a kind without length', concat(uoa, Uint8Array.of(1, 1, 1, 7)), 20],
      ['kind without length before the UOA', concat(Uint8Array.of(1, 1, 1, 7), uoa), 'bad-option'],
    ];
    for (const [what, opts, want] of cases) {
      const b = bytesOf(udpV4({ ipOptions: opts }));
      const r = decodeUoa(b);
      if (typeof want === 'number') {
        const got = ok(r);
        assert.equal(got.uoaOffset, want, what);
        assert.equal(got.clientPort, CPORT, what);
        assert.equal(got.clientAddress, CLIENT, what);
      } else refused(r, want, what);
    }
  });

  it('rejects OPP headers that break the layout', () => {
    const v4 = produced().find((p) => p.name === 'opp IPv4')!.bytes;
    const v6 = produced().find((p) => p.name === 'opp IPv6')!.bytes;
    const edits: [string, Uint8Array, number, (b: Uint8Array) => void, UoaProblem][] = [
      ['version 3', v4, 20, (b) => (b[20] = 0x30), 'bad-opp-header'],
      ['version 0', v4, 20, (b) => (b[20] = 0x00), 'bad-opp-header'],
      ['reserved bits', v4, 20, (b) => (b[20] = 0x11), 'bad-opp-header'],
      ['protocol TCP', v4, 20, (b) => (b[21] = 6), 'not-udp'],
      ['length 3', v4, 20, (b) => set16(b, 22, 3), 'bad-opp-length'],
      ['length past the end', v4, 20, (b) => set16(b, 22, 200), 'bad-opp-length'],
      [
        'length leaving no UDP header',
        v4,
        20,
        (b) => set16(b, 22, b.length - 20 - 4),
        'bad-udp-length',
      ],
      ['version 2 with an 8-byte UOA', v4, 20, (b) => (b[20] = 0x20), 'bad-uoa-length'],
      ['version 1 with a 20-byte UOA', v6, 40, (b) => (b[40] = 0x10), 'bad-uoa-length'],
      ['no UOA among the options', v4, 20, (b) => (b[24] = 30), 'no-uoa'],
      ['IPv6: no room for the OPP header', v6, 40, (b) => set16(b, 4, 3), 'truncated'],
      ['UDP length lies', v6, 40, (b) => set16(b, 40 + 24 + 4, 300), 'bad-udp-length'],
    ];
    for (const [what, src, ipHl, edit, want] of edits) {
      const b = src.slice();
      edit(b);
      if (ipHl === 20) fixIpv4Checksum(b);
      refused(decodeUoa(b), want, what);
      const copy = b.slice();
      const r = removeUoa(b);
      assert.equal(r.ok, false, `${what}: removed`);
      assert.deepEqual(b, copy, `${what}: removal touched it`);
    }
  });

  it('an IPv6 datagram with an IPv4 client (never sent by DPVS) is refused', () => {
    const b = produced()
      .find((p) => p.name === 'opp IPv6')!
      .bytes.slice();
    // Shrink the UOA to an IPv4 one in place: version 1, length 12, option length 8.
    b[40] = 0x10;
    set16(b, 42, 12);
    b[45] = 8;
    refused(decodeUoa(b), 'bad-uoa-length', 'IPv4 client in IPv6');
  });

  it('IPv4 header problems: checksum, fragment, version, IHL, lengths', () => {
    const base = produced()[0]!.bytes;
    const edits: [string, (b: Uint8Array) => void, boolean, UoaProblem][] = [
      ['checksum', (b) => (b[8] = b[8]! ^ 1), false, 'bad-ip-checksum'],
      ['fragment', (b) => set16(b, 6, 0x2000), true, 'fragment'],
      ['version 5', (b) => (b[0] = 0x57), true, 'bad-ip-header'],
      ['IHL 4', (b) => (b[0] = 0x44), true, 'bad-ip-header'],
      ['IHL past the bytes', (b) => (b[0] = 0x4f), true, 'truncated'],
      ['total length past the bytes', (b) => set16(b, 2, b.length + 1), true, 'truncated'],
      ['total length inside the header', (b) => set16(b, 2, 24), true, 'bad-ip-header'],
      ['UDP length past the datagram', (b) => set16(b, 28 + 4, 100), true, 'bad-udp-length'],
      ['UDP length below 8', (b) => set16(b, 28 + 4, 7), true, 'bad-udp-length'],
    ];
    for (const [what, edit, fix, want] of edits) {
      const b = base.slice();
      edit(b);
      if (fix) fixIpv4Checksum(b);
      refused(decodeUoa(b), want, what);
    }
  });

  it('every truncation of every shape is refused, never thrown', () => {
    for (const p of produced()) {
      for (let n = 0; n < p.bytes.length; n++) {
        const r = decodeUoa(p.bytes.subarray(0, n));
        assert.equal(r.ok, false, `${p.name} cut to ${n}`);
        const copy = p.bytes.slice(0, n);
        assert.equal(removeUoa(copy).ok, false);
      }
      assert.equal(decodeUoa(p.bytes, 0, 0).ok, false);
      assert.equal(decodeUoa(p.bytes, p.bytes.length).ok, false);
      assert.equal(decodeUoa(p.bytes, -1).ok, false);
      assert.equal(decodeUoa(p.bytes, 0, p.bytes.length + 1).ok, false);
    }
  });

  it('random corruption never throws, and what decodes also removes cleanly', () => {
    const next = rng(0x0a0a);
    const shapes = produced();
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      const p = shapes[i % shapes.length]!;
      const b = p.bytes.slice();
      const flips = 1 + Math.floor(next() * 4);
      for (let f = 0; f < flips; f++) {
        const at = Math.floor(next() * Math.min(b.length, 72));
        b[at] = Math.floor(next() * 256);
      }
      if (next() < 0.5 && b[0]! >>> 4 === 4) fixIpv4Checksum(b);
      const r = decodeUoa(b);
      if (!r.ok) continue;
      accepted++;
      const cut = r.mode === 'ipo' ? r.uoaLength : r.udpOffset - r.oppOffset;
      const removed = removeUoa(b);
      if (!removed.ok) assert.fail(`round ${i}: decoded but not removed: ${removed.reason}`);
      assert.equal(removed.length, r.end - r.start - cut, `round ${i}`);
      assert.equal(b[removed.start + (r.ipFamily === 4 ? 9 : 6)], IPPROTO_UDP, `round ${i}`);
      if (r.ipFamily === 4) {
        const hl = (b[removed.start]! & 0x0f) * 4;
        assert.equal(internetChecksum(b, removed.start, hl), 0, `round ${i}: IPv4 checksum`);
      }
      decodeUoa(b, removed.start, removed.length);
    }
    assert.ok(accepted > 100, `only ${accepted} corrupted datagrams still decoded`);
  });
});

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function fixIpv4Checksum(b: Uint8Array): void {
  const hl = (b[0]! & 0x0f) * 4;
  if (hl < 20 || hl > b.length) return;
  set16(b, 10, 0);
  set16(b, 10, internetChecksum(b, 0, hl));
}

const scapy = probeScapy();

test(
  "scapy reads our UOA datagrams: option 31 in the IP options, protocol 248's payload, good checksums",
  { skip: scapySkip(scapy), timeout: 120_000 },
  () => {
    if (!scapy.ok) assert.fail(`FULLNAT_REQUIRE_ALL=1 and scapy is missing: ${scapy.reason}`);
    const shapes = produced();
    const decoded = scapyDecode(shapes.map((p) => p.bytes));
    assert.equal(decoded.length, shapes.length);
    shapes.forEach((p, i) => {
      const s = decoded[i]!;
      const at = p.name;
      const ours = ok(decodeUoa(p.bytes));
      const udpBytes = p.bytes.subarray(ours.udpOffset);
      if (s.family === 4) {
        assert.equal(s.src, ipv4ToString(LADDR), at);
        assert.equal(s.dst, ipv4ToString(RS), at);
        assert.equal(s.len, p.bytes.length, `${at}: IPv4 total length`);
        assert.equal(s.chksum, s.chksumRebuilt, `${at}: IPv4 header checksum`);
      } else {
        assert.equal(s.src, 'fd00::5', at);
        assert.equal(s.dst, 'fd00:1::20', at);
        assert.equal(s.len, p.bytes.length - 40, `${at}: IPv6 payload length`);
      }
      if (p.mode === 'ipo') {
        assert.equal(s.proto, 17, at);
        assert.equal(s.payloadLayer, 'UDP', at);
        assert.equal(s.ihl, 7, at);
        assert.deepEqual(
          s.options,
          [{ option: 31, copyFlag: 0, optionClass: 0, length: 8, hex: '1f089c40c000020a' }],
          at,
        );
      } else {
        assert.equal(s.proto, 248, at);
        assert.equal(s.payloadLayer, 'Raw', `${at}: scapy knows no protocol 248`);
        const v6Client = typeof p.client !== 'number';
        const uoaLen = v6Client ? 20 : 8;
        assert.deepEqual(
          s.opp,
          { version: v6Client ? 2 : 1, reserved: 0, protocol: 17, length: 4 + uoaLen },
          at,
        );
        const uoa = s.l4Hex.slice(8, 8 + 2 * uoaLen);
        const addr = v6Client ? plainHex(CLIENT6) : plainHex(CLIENT_BYTES);
        assert.equal(uoa, `1f${uoaLen.toString(16).padStart(2, '0')}9c40${addr}`, at);
        if (s.family === 4) assert.deepEqual(s.options, [], at);
      }
      const u = s.udp;
      assert.ok(u, `${at}: scapy found no UDP`);
      assert.equal(u.sport, 1029, at);
      assert.equal(u.dport, 53, at);
      assert.equal(u.len, udpBytes.length, at);
      assert.equal(u.payloadHex, plainHex(udpBytes.subarray(8)), at);
      if (s.family === 4 && get16(udpBytes, 6) === 0) {
        assert.equal(u.chksum, 0, `${at}: no checksum stays none`);
      } else {
        assert.notEqual(u.chksum, 0, at);
        assert.equal(u.chksum, u.chksumRebuilt, `${at}: UDP checksum as scapy computes it`);
      }
    });
  },
);
