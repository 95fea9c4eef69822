import { test } from 'node:test';
import assert from 'node:assert/strict';
import { get16, parseIpv4, parseIpv6, set16, set32 } from '../../src/wire/bytes.js';
import {
  foldSum,
  internetChecksum,
  pseudoSumV4,
  pseudoSumV6,
  sumWords,
} from '../../src/wire/checksum.js';
import {
  IPPROTO_TCP,
  IPPROTO_UDP,
  Ipv4Error,
  Ipv4View,
  writeIpv4Header,
} from '../../src/wire/ipv4.js';
import {
  IPV6_HEADER,
  IPV6_MAX_EXT_HEADERS,
  IPV6_NEXT_AUTH,
  IPV6_NEXT_DSTOPTS,
  IPV6_NEXT_ESP,
  IPV6_NEXT_FRAGMENT,
  IPV6_NEXT_HOPOPTS,
  IPV6_NEXT_NONE,
  IPV6_NEXT_ROUTING,
  Ipv6Error,
  Ipv6View,
  writeIpv6Header,
} from '../../src/wire/ipv6.js';
import {
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TcpView,
  seqAdd,
  seqAfter,
  seqBefore,
  writeTcpHeader,
} from '../../src/wire/tcp.js';
import { UDP_HEADER, UDP_NO_CHECKSUM, UdpView, writeUdpHeader } from '../../src/wire/udp.js';

const CLIENT = parseIpv4('192.0.2.10');
const VIP = parseIpv4('198.51.100.1');
const CLIENT6 = parseIpv6('2001:db8::10')!;
const VIP6 = parseIpv6('2001:db8:1::1')!;

/** An IPv4 header with 4 bytes of options (IHL 6), valid checksum. */
function ipv4WithOptions(payloadLength: number): Uint8Array {
  const b = new Uint8Array(24 + payloadLength);
  writeIpv4Header(b, 0, { src: CLIENT, dst: VIP, protocol: IPPROTO_TCP, payloadLength: 0 });
  b[0] = 0x46;
  // Four NOP (IPOPT_NOOP) option bytes.
  b.fill(1, 20, 24);
  set16(b, 2, 24 + payloadLength);
  const v = new Ipv4View().wrap(b, 0);
  v.updateChecksum();
  return b;
}

test('IPv4 view: IHL with options, total length, payload offset', () => {
  const b = ipv4WithOptions(12);
  const v = new Ipv4View().wrap(b, 0);
  assert.equal(v.version, 4);
  assert.equal(v.headerLength, 24);
  assert.equal(v.totalLength, 36);
  assert.equal(v.payloadOffset, 24);
  assert.equal(v.payloadLength, 12);
  assert.equal(v.src, CLIENT);
  assert.equal(v.dst, VIP);
  assert.equal(v.protocol, IPPROTO_TCP);
  assert.equal(v.validate(b.length), Ipv4Error.None);
});

test('IPv4 view works at a nonzero offset', () => {
  const inner = ipv4WithOptions(0);
  const b = new Uint8Array(14 + inner.length);
  b.set(inner, 14);
  const v = new Ipv4View().wrap(b, 14);
  assert.equal(v.validate(inner.length), Ipv4Error.None);
  assert.equal(v.payloadOffset, 14 + 24);
  assert.equal(v.computeChecksum(), v.checksum);
});

test('IPv4 DF, MF and fragment offset', () => {
  const b = new Uint8Array(20);
  writeIpv4Header(b, 0, { src: CLIENT, dst: VIP, protocol: IPPROTO_UDP, payloadLength: 0 });
  const v = new Ipv4View().wrap(b, 0);
  assert.equal(v.dontFragment, true);
  assert.equal(v.moreFragments, false);
  assert.equal(v.fragmentOffset, 0);
  assert.equal(v.isFragment, false);

  writeIpv4Header(b, 0, {
    src: CLIENT,
    dst: VIP,
    protocol: IPPROTO_UDP,
    payloadLength: 0,
    dontFragment: false,
  });
  assert.equal(v.dontFragment, false);

  // First fragment: MF set, offset 0.
  set16(b, 6, 0x2000);
  assert.equal(v.moreFragments, true);
  assert.equal(v.fragmentOffset, 0);
  assert.equal(v.isFragment, true);
  // Last fragment: MF clear, offset 185 * 8 = 1480 bytes.
  set16(b, 6, 185);
  assert.equal(v.moreFragments, false);
  assert.equal(v.fragmentOffset, 1480);
  assert.equal(v.isFragment, true);
  // Largest offset with DF and MF bits around it must not leak into the offset.
  set16(b, 6, 0x4000 | 0x2000 | 0x1fff);
  assert.equal(v.fragmentOffset, 0x1fff * 8);
  assert.equal(v.dontFragment, true);
  assert.equal(v.moreFragments, true);
});

test('IPv4 writer fields: ttl, id, tos, checksum valid', () => {
  const b = new Uint8Array(20);
  writeIpv4Header(b, 0, {
    src: CLIENT,
    dst: VIP,
    protocol: IPPROTO_TCP,
    payloadLength: 100,
    ttl: 7,
    id: 0xbeef,
    tos: 0x10,
  });
  const v = new Ipv4View().wrap(b, 0);
  assert.equal(v.ttl, 7);
  assert.equal(v.id, 0xbeef);
  assert.equal(v.tos, 0x10);
  assert.equal(v.totalLength, 120);
  assert.equal(internetChecksum(b, 0, 20), 0);
  assert.equal(v.validate(120), Ipv4Error.None);
});

test('IPv4 validate error codes', () => {
  const good = ipv4WithOptions(8);
  const v = new Ipv4View();

  assert.equal(v.wrap(good, 0).validate(19), Ipv4Error.Truncated);
  assert.equal(v.wrap(good, 0).validate(0), Ipv4Error.Truncated);

  const v6ish = good.slice();
  v6ish[0] = 0x66;
  assert.equal(v.wrap(v6ish, 0).validate(v6ish.length), Ipv4Error.BadVersion);

  const ihlSmall = good.slice();
  ihlSmall[0] = 0x44;
  assert.equal(v.wrap(ihlSmall, 0).validate(ihlSmall.length), Ipv4Error.BadIhl);
  // IHL 6 = 24 bytes, but only 22 available.
  assert.equal(v.wrap(good, 0).validate(22), Ipv4Error.BadIhl);
  const ihlHuge = good.slice();
  ihlHuge[0] = 0x4f;
  assert.equal(v.wrap(ihlHuge, 0).validate(ihlHuge.length), Ipv4Error.BadIhl);

  const tlShort = good.slice();
  set16(tlShort, 2, 23);
  assert.equal(v.wrap(tlShort, 0).validate(tlShort.length), Ipv4Error.BadTotalLength);
  const tlLong = good.slice();
  set16(tlLong, 2, good.length + 1);
  assert.equal(v.wrap(tlLong, 0).validate(tlLong.length), Ipv4Error.BadTotalLength);
  // Total length beyond what was received is the same failure.
  assert.equal(v.wrap(good, 0).validate(good.length - 1), Ipv4Error.BadTotalLength);

  const badSum = good.slice();
  badSum[8] = (badSum[8]! + 1) & 0xff;
  assert.equal(v.wrap(badSum, 0).validate(badSum.length), Ipv4Error.BadChecksum);
  assert.equal(v.wrap(badSum, 0).validate(badSum.length, false), Ipv4Error.None);
  v.wrap(badSum, 0).updateChecksum();
  assert.equal(v.validate(badSum.length), Ipv4Error.None);
});

/** Builds an IPv6 packet with the given extension headers in order, then `upper` with `body` bytes. */
function ipv6Chain(
  exts: ReadonlyArray<{ type: number; len?: number }>,
  upper: number,
  body = 20,
): Uint8Array {
  const sizes = exts.map((e) => {
    if (e.type === IPV6_NEXT_FRAGMENT) return 8;
    return e.len ?? (e.type === IPV6_NEXT_AUTH ? 24 : 8);
  });
  const extTotal = sizes.reduce((a, s) => a + s, 0);
  const b = new Uint8Array(IPV6_HEADER + extTotal + body);
  writeIpv6Header(b, 0, {
    src: CLIENT6,
    dst: VIP6,
    nextHeader: exts.length > 0 ? exts[0]!.type : upper,
    payloadLength: extTotal + body,
  });
  let p = IPV6_HEADER;
  exts.forEach((e, i) => {
    const next = i + 1 < exts.length ? exts[i + 1]!.type : upper;
    const size = sizes[i]!;
    b[p] = next;
    if (e.type === IPV6_NEXT_AUTH) b[p + 1] = size / 4 - 2;
    else if (e.type !== IPV6_NEXT_FRAGMENT) b[p + 1] = size / 8 - 1;
    p += size;
  });
  return b;
}

test('IPv6 fixed header fields', () => {
  const b = ipv6Chain([], IPPROTO_TCP, 20);
  b[0] = 0x6a;
  b[1] = 0xbc;
  b[2] = 0xde;
  b[3] = 0xf1;
  const v = new Ipv6View().wrap(b, 0);
  assert.equal(v.version, 6);
  assert.equal(v.trafficClass, 0xab);
  assert.equal(v.flowLabel, 0xcdef1);
  assert.equal(v.payloadLength, 20);
  assert.equal(v.totalLength, 60);
  assert.equal(v.hopLimit, 64);
  assert.deepEqual(b.subarray(v.srcOffset, v.srcOffset + 16), CLIENT6);
  assert.deepEqual(b.subarray(v.dstOffset, v.dstOffset + 16), VIP6);
});

test('IPv6 walk: no extension headers', () => {
  const b = ipv6Chain([], IPPROTO_TCP);
  const v = new Ipv6View().wrap(b, 0);
  assert.equal(v.walk(b.length), Ipv6Error.None);
  assert.equal(v.upperProtocol, IPPROTO_TCP);
  assert.equal(v.upperOffset, 40);
  assert.equal(v.fragmented, false);
});

test('IPv6 walk: hop-by-hop, routing, fragment, AH, destination options chain', () => {
  const b = ipv6Chain(
    [
      { type: IPV6_NEXT_HOPOPTS },
      { type: IPV6_NEXT_DSTOPTS, len: 16 },
      { type: IPV6_NEXT_ROUTING, len: 24 },
      { type: IPV6_NEXT_FRAGMENT },
      { type: IPV6_NEXT_AUTH },
      { type: IPV6_NEXT_DSTOPTS },
    ],
    IPPROTO_UDP,
  );
  const v = new Ipv6View().wrap(b, 0);
  assert.equal(v.walk(b.length), Ipv6Error.None);
  assert.equal(v.upperProtocol, IPPROTO_UDP);
  assert.equal(v.upperOffset, 40 + 8 + 16 + 24 + 8 + 24 + 8);
  assert.equal(v.fragmented, true);
  assert.equal(v.fragmentOffset, 0);
  assert.equal(v.moreFragments, false);
});

test('IPv6 walk: fragment header offset and M flag', () => {
  const b = ipv6Chain([{ type: IPV6_NEXT_FRAGMENT }], IPPROTO_TCP);
  set16(b, 40 + 2, (100 << 3) | 1);
  const v = new Ipv6View().wrap(b, 0);
  assert.equal(v.walk(b.length), Ipv6Error.None);
  assert.equal(v.fragmented, true);
  assert.equal(v.fragmentOffset, 800);
  assert.equal(v.moreFragments, true);
  // The walk resets fragment state between packets.
  const plain = ipv6Chain([], IPPROTO_TCP);
  assert.equal(v.wrap(plain, 0).walk(plain.length), Ipv6Error.None);
  assert.equal(v.fragmented, false);
  assert.equal(v.moreFragments, false);
});

test('IPv6 walk: where the first fragment header sits, the byte naming it, its identification', () => {
  const inner = ipv6Chain(
    [
      { type: IPV6_NEXT_HOPOPTS },
      { type: IPV6_NEXT_DSTOPTS, len: 16 },
      { type: IPV6_NEXT_FRAGMENT },
    ],
    IPPROTO_UDP,
  );
  const b = new Uint8Array(6 + inner.length);
  b.set(inner, 6);
  set32(b, 6 + 40 + 8 + 16 + 4, 0xdeadbeef);
  const v = new Ipv6View().wrap(b, 6);
  assert.equal(v.walk(inner.length), Ipv6Error.None);
  assert.equal(v.fragmentHeaderOffset, 6 + 40 + 8 + 16);
  // The destination options header names it.
  assert.equal(v.fragmentNextHeaderAt, 6 + 40 + 8);
  assert.equal(b[v.fragmentNextHeaderAt], IPV6_NEXT_FRAGMENT);
  assert.equal(v.fragmentId, 0xdeadbeef);
  // Named by the fixed header; a second fragment header leaves the first's fields.
  const two = ipv6Chain([{ type: IPV6_NEXT_FRAGMENT }, { type: IPV6_NEXT_FRAGMENT }], IPPROTO_UDP);
  set32(two, 44, 7);
  set32(two, 52, 9);
  assert.equal(v.wrap(two, 0).walk(two.length), Ipv6Error.None);
  assert.equal(v.fragmentHeaderOffset, 40);
  assert.equal(v.fragmentNextHeaderAt, 6);
  assert.equal(v.fragmentId, 7);
  const plain = ipv6Chain([], IPPROTO_TCP);
  assert.equal(v.wrap(plain, 0).walk(plain.length), Ipv6Error.None);
  assert.equal(v.fragmentHeaderOffset, -1);
  assert.equal(v.fragmentNextHeaderAt, -1);
  assert.equal(v.fragmentId, 0);
});

test('IPv6 walk: works at a nonzero offset', () => {
  const inner = ipv6Chain([{ type: IPV6_NEXT_HOPOPTS }], IPPROTO_TCP);
  const b = new Uint8Array(18 + inner.length);
  b.set(inner, 18);
  const v = new Ipv6View().wrap(b, 18);
  assert.equal(v.walk(inner.length), Ipv6Error.None);
  assert.equal(v.upperOffset, 18 + 48);
});

test('IPv6 walk: truncated and inconsistent packets', () => {
  const v = new Ipv6View();
  const plain = ipv6Chain([], IPPROTO_TCP);
  assert.equal(v.wrap(plain, 0).walk(39), Ipv6Error.Truncated);
  const notSix = plain.slice();
  notSix[0] = 0x45;
  assert.equal(v.wrap(notSix, 0).walk(notSix.length), Ipv6Error.BadVersion);
  // Payload length claims more than was received.
  assert.equal(v.wrap(plain, 0).walk(plain.length - 1), Ipv6Error.BadPayloadLength);

  // Extension header whose length runs past the payload.
  const longExt = ipv6Chain([{ type: IPV6_NEXT_HOPOPTS }], IPPROTO_TCP, 0);
  longExt[41] = 1; // claims 16 bytes, 8 present
  assert.equal(v.wrap(longExt, 0).walk(longExt.length), Ipv6Error.ExtTruncated);
  // Not even the 8-byte minimum of an extension header.
  const stub = ipv6Chain([], IPV6_NEXT_ROUTING, 4);
  assert.equal(v.wrap(stub, 0).walk(stub.length), Ipv6Error.ExtTruncated);
  const fragStub = ipv6Chain([], IPV6_NEXT_FRAGMENT, 6);
  assert.equal(v.wrap(fragStub, 0).walk(fragStub.length), Ipv6Error.ExtTruncated);
  const ahLong = ipv6Chain([{ type: IPV6_NEXT_AUTH }], IPPROTO_TCP, 0);
  ahLong[41] = 10; // (10 + 2) * 4 = 48 bytes claimed, 24 present
  assert.equal(v.wrap(ahLong, 0).walk(ahLong.length), Ipv6Error.ExtTruncated);
  // A failed walk leaves no transport offset behind for a careless caller.
  assert.equal(v.upperOffset, -1);
});

test('IPv6 walk: ESP and No Next Header have no transport to reach', () => {
  const v = new Ipv6View();
  const esp = ipv6Chain([{ type: IPV6_NEXT_HOPOPTS }], IPV6_NEXT_ESP);
  assert.equal(v.wrap(esp, 0).walk(esp.length), Ipv6Error.NoTransport);
  assert.equal(v.upperProtocol, -1);
  const none = ipv6Chain([], IPV6_NEXT_NONE, 0);
  assert.equal(v.wrap(none, 0).walk(none.length), Ipv6Error.NoTransport);
});

test('IPv6 walk: at most IPV6_MAX_EXT_HEADERS extension headers', () => {
  const v = new Ipv6View();
  const max = ipv6Chain(
    Array.from({ length: IPV6_MAX_EXT_HEADERS }, () => ({ type: IPV6_NEXT_DSTOPTS })),
    IPPROTO_TCP,
  );
  assert.equal(v.wrap(max, 0).walk(max.length), Ipv6Error.None);
  assert.equal(v.upperOffset, 40 + 8 * IPV6_MAX_EXT_HEADERS);
  for (const type of [IPV6_NEXT_DSTOPTS, IPV6_NEXT_FRAGMENT, IPV6_NEXT_AUTH]) {
    const tooMany = ipv6Chain(
      Array.from({ length: IPV6_MAX_EXT_HEADERS + 1 }, () => ({ type })),
      IPPROTO_TCP,
    );
    assert.equal(v.wrap(tooMany, 0).walk(tooMany.length), Ipv6Error.TooManyExtHeaders);
    assert.equal(v.upperOffset, -1);
  }
  // A loop of hop-by-hop headers pointing at themselves ends cleanly too.
  const loop = ipv6Chain([], IPV6_NEXT_HOPOPTS, 8 * 200);
  for (let p = 40; p < loop.length; p += 8) loop[p] = IPV6_NEXT_HOPOPTS;
  assert.equal(v.wrap(loop, 0).walk(loop.length), Ipv6Error.TooManyExtHeaders);
});

test('TCP view: writer/reader round trip and setters', () => {
  const options = Uint8Array.of(2, 4, 0x05, 0xb4, 1, 3, 3, 7);
  const b = new Uint8Array(64);
  const hl = writeTcpHeader(b, 4, {
    srcPort: 40000,
    dstPort: 80,
    seq: 0xfffffff0,
    ack: 0x12345678,
    flags: TCP_SYN | TCP_ACK,
    window: 65535,
    options,
  });
  assert.equal(hl, 28);
  const t = new TcpView().wrap(b, 4);
  assert.equal(t.fits(28), true);
  assert.equal(t.fits(27), false);
  assert.equal(t.srcPort, 40000);
  assert.equal(t.dstPort, 80);
  assert.equal(t.seq, 0xfffffff0);
  assert.equal(t.ack, 0x12345678);
  assert.equal(t.headerLength, 28);
  assert.equal(t.flags, TCP_SYN | TCP_ACK);
  assert.equal(t.syn, true);
  assert.equal(t.ackFlag, true);
  assert.equal(t.fin, false);
  assert.equal(t.rst, false);
  assert.equal(t.window, 65535);
  assert.equal(t.checksum, 0);
  assert.equal(t.urgent, 0);
  assert.equal(t.optionsOffset, 24);
  assert.equal(t.optionsLength, 8);
  assert.deepEqual(b.subarray(t.optionsOffset, t.optionsOffset + 8), options);

  t.srcPort = 1;
  t.dstPort = 2;
  t.seq = 3;
  t.ack = 4;
  t.flags = TCP_FIN | TCP_RST | TCP_PSH;
  t.window = 5;
  t.checksum = 0xabcd;
  assert.deepEqual(
    [t.srcPort, t.dstPort, t.seq, t.ack, t.fin, t.rst, t.syn, t.window, t.checksum],
    [1, 2, 3, 4, true, true, false, 5, 0xabcd],
  );
  // Setting the header length keeps the reserved/AE nibble.
  b[4 + 12] = b[4 + 12]! | 0x01;
  t.headerLength = 20;
  assert.equal(t.headerLength, 20);
  assert.equal(b[4 + 12]! & 0x0f, 0x01);
});

test('TCP writer rejects unpadded or oversized options', () => {
  const b = new Uint8Array(80);
  const base = { srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: 0, window: 0 };
  assert.throws(() => writeTcpHeader(b, 0, { ...base, options: new Uint8Array(3) }), RangeError);
  assert.throws(() => writeTcpHeader(b, 0, { ...base, options: new Uint8Array(44) }), RangeError);
  assert.equal(writeTcpHeader(b, 0, { ...base, options: new Uint8Array(40) }), 60);
});

test('TCP checksum over IPv4 and IPv6 pseudo-headers verifies to zero', () => {
  const payload = new TextEncoder().encode('hello, odd length');
  const v4 = new Uint8Array(20 + 20 + payload.length);
  writeIpv4Header(v4, 0, {
    src: CLIENT,
    dst: VIP,
    protocol: IPPROTO_TCP,
    payloadLength: 20 + payload.length,
  });
  writeTcpHeader(v4, 20, {
    srcPort: 1234,
    dstPort: 80,
    seq: 1,
    ack: 2,
    flags: TCP_ACK | TCP_PSH,
    window: 512,
  });
  v4.set(payload, 40);
  const t = new TcpView().wrap(v4, 20);
  const segLen = 20 + payload.length;
  t.checksum = t.computeChecksumV4(0, segLen);
  assert.equal(foldSum(sumWords(v4, 20, segLen, pseudoSumV4(v4, 0, IPPROTO_TCP, segLen))), 0xffff);
  // Computing again with the field filled in must not change the answer.
  assert.equal(t.computeChecksumV4(0, segLen), t.checksum);

  const v6 = new Uint8Array(40 + segLen);
  writeIpv6Header(v6, 0, {
    src: CLIENT6,
    dst: VIP6,
    nextHeader: IPPROTO_TCP,
    payloadLength: segLen,
  });
  v6.set(v4.subarray(20), 40);
  t.wrap(v6, 40);
  t.checksum = t.computeChecksumV6(0, segLen);
  assert.equal(foldSum(sumWords(v6, 40, segLen, pseudoSumV6(v6, 0, IPPROTO_TCP, segLen))), 0xffff);
});

test('TCP sequence arithmetic wraps modulo 2^32', () => {
  assert.equal(seqBefore(0xfffffff0, 0x10), true);
  assert.equal(seqAfter(0x10, 0xfffffff0), true);
  assert.equal(seqBefore(5, 5), false);
  assert.equal(seqAfter(5, 5), false);
  assert.equal(seqAdd(0xffffffff, 2), 1);
});

/** A UDP datagram whose payload word is chosen so the one's-complement sum is exactly 0xffff. */
function udpSummingToZero(family: 4 | 6): { buf: Uint8Array; ipOff: number; udpOff: number } {
  const ipLen = family === 4 ? 20 : 40;
  const buf = new Uint8Array(ipLen + UDP_HEADER + 2);
  if (family === 4) {
    writeIpv4Header(buf, 0, { src: CLIENT, dst: VIP, protocol: IPPROTO_UDP, payloadLength: 10 });
  } else {
    writeIpv6Header(buf, 0, {
      src: CLIENT6,
      dst: VIP6,
      nextHeader: IPPROTO_UDP,
      payloadLength: 10,
    });
  }
  writeUdpHeader(buf, ipLen, 5353, 53, 2);
  const pseudo =
    family === 4 ? pseudoSumV4(buf, 0, IPPROTO_UDP, 10) : pseudoSumV6(buf, 0, IPPROTO_UDP, 10);
  const others = foldSum(sumWords(buf, ipLen, 10, pseudo));
  set16(buf, ipLen + UDP_HEADER, 0xffff - others);
  return { buf, ipOff: 0, udpOff: ipLen };
}

test('UDP checksum: a computed 0 is sent as 0xffff (RFC 768, RFC 8200 §8.1)', () => {
  const u = new UdpView();
  const p4 = udpSummingToZero(4);
  u.wrap(p4.buf, p4.udpOff);
  assert.equal(u.computeChecksumV4(p4.ipOff), 0xffff);
  u.checksum = 0xffff;
  // 0xffff is -0: the receiver's sum still folds to 0xffff.
  assert.equal(
    foldSum(sumWords(p4.buf, p4.udpOff, 10, pseudoSumV4(p4.buf, 0, IPPROTO_UDP, 10))),
    0xffff,
  );

  const p6 = udpSummingToZero(6);
  u.wrap(p6.buf, p6.udpOff);
  assert.equal(u.computeChecksumV6(p6.ipOff), 0xffff);
});

test('UDP view: fields, fits, ordinary checksum', () => {
  const buf = new Uint8Array(20 + 8 + 5);
  writeIpv4Header(buf, 0, { src: CLIENT, dst: VIP, protocol: IPPROTO_UDP, payloadLength: 13 });
  assert.equal(writeUdpHeader(buf, 20, 40000, 53, 5), UDP_HEADER);
  buf.set([1, 2, 3, 4, 5], 28);
  const u = new UdpView().wrap(buf, 20);
  assert.equal(u.srcPort, 40000);
  assert.equal(u.dstPort, 53);
  assert.equal(u.length, 13);
  assert.equal(u.fits(13), true);
  assert.equal(u.fits(12), false);
  assert.equal(u.fits(7), false);
  u.checksum = u.computeChecksumV4(0);
  assert.notEqual(u.checksum, 0);
  assert.equal(foldSum(sumWords(buf, 20, 13, pseudoSumV4(buf, 0, IPPROTO_UDP, 13))), 0xffff);
  u.length = 4;
  assert.equal(u.fits(13), false);
  assert.equal(get16(buf, 24), 4);
});

test('UDP checksum validity and refresh: zero is "none" over IPv4, never valid over IPv6', () => {
  const u = new UdpView();
  const p4 = udpSummingToZero(4);
  u.wrap(p4.buf, p4.udpOff);
  u.checksum = UDP_NO_CHECKSUM;
  assert.equal(u.checksumValidV4(0), true, 'IPv4: no checksum is a valid choice');
  u.refreshChecksumV4(0);
  assert.equal(u.checksum, UDP_NO_CHECKSUM, 'IPv4: a refresh leaves "none" alone');
  u.checksum = 0x1234;
  assert.equal(u.checksumValidV4(0), false);
  u.refreshChecksumV4(0);
  assert.equal(u.checksum, 0xffff, 'a computed 0 goes out as 0xffff');
  assert.equal(u.checksumValidV4(0), true);
  const payloadAt = p4.udpOff + UDP_HEADER;
  p4.buf[payloadAt] = p4.buf[payloadAt]! ^ 0x01;
  assert.equal(u.checksumValidV4(0), false, 'a changed payload byte shows');

  const p6 = udpSummingToZero(6);
  u.wrap(p6.buf, p6.udpOff);
  u.checksum = UDP_NO_CHECKSUM;
  assert.equal(u.checksumValidV6(0), false, 'IPv6: zero is not "none"');
  u.refreshChecksumV6(0);
  assert.equal(u.checksum, 0xffff);
  assert.equal(u.checksumValidV6(0), true);
  u.checksum = 0x1234;
  assert.equal(u.checksumValidV6(0), false);
});
