import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ICMP_DEST_UNREACH,
  ICMP_ECHO,
  ICMP_FRAG_NEEDED,
  ICMP_PKT_FILTERED,
  ICMP_TIME_EXCEEDED,
  ICMPV6_PACKET_TOO_BIG,
  IPV4_MIN_PMTU,
  IPV6_MIN_MTU,
  icmpChecksumOk,
  icmpName,
  isIcmpError,
  isIcmpv6Error,
  nextHopMtu,
  packetTooBigMtu,
  quotedIpv4HeaderLength,
  quotedIpv6Offset,
  finishIcmpChecksum,
  writeIcmpErrorHeader,
} from '../../src/wire/icmp.js';

test('ICMP names, error types and the minimum MTUs', () => {
  assert.equal(
    icmpName(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED),
    'destination-unreachable/frag-needed',
  );
  assert.equal(
    icmpName(ICMP_DEST_UNREACH, ICMP_PKT_FILTERED),
    'destination-unreachable/admin-prohibited',
  );
  assert.equal(icmpName(ICMP_TIME_EXCEEDED, 0), 'time-exceeded/ttl');
  assert.equal(icmpName(ICMP_ECHO, 0), 'echo-request');
  assert.equal(icmpName(42, 1), 'type-42/code-1');
  assert.ok(isIcmpError(ICMP_DEST_UNREACH) && isIcmpError(ICMP_TIME_EXCEEDED));
  assert.ok(!isIcmpError(ICMP_ECHO) && !isIcmpError(0));
  assert.ok(isIcmpv6Error(ICMPV6_PACKET_TOO_BIG) && !isIcmpv6Error(128));
  assert.equal(IPV4_MIN_PMTU, 552);
  assert.equal(IPV6_MIN_MTU, 1280);
});

test('the quoted IPv4 header: whole, version 4, with 8 bytes after it, or 0', () => {
  const m = new Uint8Array(8 + 60 + 8);
  m[0] = 3;
  m[1] = 4;
  m[6] = 0x05;
  m[7] = 0x78;
  m[8] = 0x45;
  assert.equal(quotedIpv4HeaderLength(m, 0, 36), 20);
  assert.equal(quotedIpv4HeaderLength(m, 0, 35), 0, 'one byte short of the 8 after the header');
  m[8] = 0x4f;
  assert.equal(quotedIpv4HeaderLength(m, 0, 76), 60);
  assert.equal(quotedIpv4HeaderLength(m, 0, 75), 0);
  m[8] = 0x44;
  assert.equal(quotedIpv4HeaderLength(m, 0, 76), 0, 'IHL below 5');
  m[8] = 0x65;
  assert.equal(quotedIpv4HeaderLength(m, 0, 76), 0, 'not version 4');
  assert.equal(nextHopMtu(m, 0), 1400);
  finishIcmpChecksum(m, 0, m.length);
  assert.ok(icmpChecksumOk(m, 0, m.length));
  m[20] = m[20]! ^ 1;
  assert.ok(!icmpChecksumOk(m, 0, m.length));
});

test('ICMPv6 Packet Too Big: its 32-bit MTU and the quoted IPv6 header', () => {
  const m = new Uint8Array(8 + 40 + 8);
  m[0] = ICMPV6_PACKET_TOO_BIG;
  m.set([0x80, 0x00, 0x05, 0x00], 4);
  assert.equal(packetTooBigMtu(m, 0), 0x80000500, 'unsigned');
  m[8] = 0x60;
  assert.equal(quotedIpv6Offset(m, 0, m.length), 8);
  assert.equal(quotedIpv6Offset(m, 0, m.length - 1), -1);
  m[8] = 0x40;
  assert.equal(quotedIpv6Offset(m, 0, m.length), -1);
});

test('writeIcmpErrorHeader: type, code, checksum 0, the 32-bit word, nothing after', () => {
  const b = new Uint8Array(12).fill(0xaa);
  writeIcmpErrorHeader(b, 1, ICMPV6_PACKET_TOO_BIG, 0, 0x12345678);
  assert.deepEqual([...b], [0xaa, 2, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0xaa, 0xaa, 0xaa]);
  writeIcmpErrorHeader(b, 1, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, 1400);
  assert.equal(nextHopMtu(b, 1), 1400);
  assert.deepEqual([...b.subarray(1, 9)], [3, 4, 0, 0, 0, 0, 0x05, 0x78]);
});
