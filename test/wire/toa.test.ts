import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipv6ToString, parseIpv4, parseIpv6 } from '../../src/wire/bytes.js';
import { IPPROTO_TCP, writeIpv4Header } from '../../src/wire/ipv4.js';
import { TCP_SYN, TcpView, writeTcpHeader } from '../../src/wire/tcp.js';
import {
  TCPOPT_TOA,
  TCPOPT_TOA_ALI_V6,
  encodeOptions,
  opt,
  type TcpOption,
} from '../../src/wire/tcp-options.js';
import {
  ALL_TOA_KINDS,
  TOA_V4_LEN,
  TOA_V6_LEN,
  ToaResult,
  findToa,
  toaV4Option,
  toaV6Option,
  writeToaV4,
  writeToaV6,
} from '../../src/wire/toa.js';

const hex = (b: Uint8Array): string =>
  Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');

const CLIENT = parseIpv4('192.0.2.10');
const CLIENT6 = parseIpv6('2001:db8::a:b:c')!;
const OTHER6 = parseIpv6('2001:db8:ffff::1')!;

test('IPv4 TOA: 192.0.2.10 port 40000 is fe 08 9c 40 c0 00 02 0a', () => {
  const b = new Uint8Array(10).fill(0xaa);
  writeToaV4(b, 1, 40000, CLIENT);
  assert.equal(hex(b), 'aa fe 08 9c 40 c0 00 02 0a aa');
  assert.equal(hex(encodeOptions([toaV4Option(40000, CLIENT)])), 'fe 08 9c 40 c0 00 02 0a');
  assert.equal(TOA_V4_LEN, 8);
});

test('IPv6 TOA 254/20: kind, len, port, then the 16 address bytes', () => {
  const b = new Uint8Array(TOA_V6_LEN);
  writeToaV6(b, 0, 443, CLIENT6);
  assert.equal(hex(b), 'fe 14 01 bb 20 01 0d b8 00 00 00 00 00 00 00 0a 00 0b 00 0c');
  const o = toaV6Option(443, CLIENT6);
  assert.equal(o.kind, TCPOPT_TOA);
  assert.equal(o.data.length, 18);
  // Padded to 20 bytes already: no EOL padding follows.
  assert.deepEqual(encodeOptions([o]), b);
});

test('IPv6 TOA 253/20 (Alibaba): same layout, kind 253', () => {
  const b = new Uint8Array(TOA_V6_LEN);
  writeToaV6(b, 0, 0xfffe, CLIENT6, 0, TCPOPT_TOA_ALI_V6);
  assert.equal(hex(b), 'fd 14 ff fe 20 01 0d b8 00 00 00 00 00 00 00 0a 00 0b 00 0c');
  assert.deepEqual(encodeOptions([toaV6Option(0xfffe, CLIENT6, TCPOPT_TOA_ALI_V6)]), b);
});

test('writeToaV6 takes the address from an offset (e.g. straight out of an IPv6 header)', () => {
  const hdr = new Uint8Array(40);
  hdr.set(CLIENT6, 8);
  const b = new Uint8Array(TOA_V6_LEN);
  writeToaV6(b, 0, 1, hdr, 8);
  assert.deepEqual(b.subarray(4), CLIENT6);
});

function find(list: TcpOption[], kinds = ALL_TOA_KINDS): ToaResult | null {
  const bytes = encodeOptions(list);
  const out = new ToaResult();
  return findToa(bytes, 0, bytes.length, out, kinds) ? out : null;
}

test('findToa decodes IPv4 and IPv6 TOAs', () => {
  const v4 = find([opt.mss(1460), opt.nop(), opt.nop(), toaV4Option(40000, CLIENT)]);
  assert.ok(v4);
  assert.equal(v4.family, 4);
  assert.equal(v4.kind, TCPOPT_TOA);
  assert.equal(v4.port, 40000);
  assert.equal(v4.v4, CLIENT);
  assert.equal(v4.at, 6);

  const v6 = find([opt.nop(), opt.nop(), toaV6Option(8080, CLIENT6)]);
  assert.ok(v6);
  assert.equal(v6.family, 6);
  assert.equal(v6.kind, TCPOPT_TOA);
  assert.equal(v6.port, 8080);
  assert.equal(ipv6ToString(v6.v6), '2001:db8::a:b:c');
  assert.equal(v6.at, 2);
});

test('findToa: the kinds filter decides which layouts count', () => {
  const list = [toaV6Option(1, OTHER6, TCPOPT_TOA_ALI_V6), toaV4Option(2, CLIENT)];
  assert.equal(find(list)?.kind, TCPOPT_TOA_ALI_V6);
  const noAli = find(list, { v4: true, v6Kind254: true, v6Kind253: false });
  assert.equal(noAli?.family, 4);
  assert.equal(noAli?.port, 2);
  assert.equal(
    find([toaV4Option(2, CLIENT)], { v4: false, v6Kind254: true, v6Kind253: true }),
    null,
  );
  assert.equal(
    find([toaV6Option(3, CLIENT6)], { v4: true, v6Kind254: false, v6Kind253: true }),
    null,
  );
  // 254/20 accepted only as kind 254; the Alibaba module would not see it.
  assert.equal(
    find([toaV6Option(3, CLIENT6)], { v4: false, v6Kind254: false, v6Kind253: true }),
    null,
  );
});

test('findToa: the first TOA wins, so a client-supplied TOA in front spoofs the address', () => {
  const spoofed = parseIpv4('203.0.113.66');
  const r = find([toaV4Option(1, spoofed), toaV4Option(40000, CLIENT)]);
  assert.equal(r?.v4, spoofed);
  assert.equal(r?.at, 0);
  const r6 = find([toaV6Option(1, OTHER6), toaV6Option(2, CLIENT6)]);
  assert.deepEqual(r6?.v6, OTHER6);
});

test('findToa: a TOA after a malformed option or EOL is not found (like the kernel module)', () => {
  const toa = encodeOptions([toaV4Option(40000, CLIENT)]);
  for (const bad of [
    [2, 1], // length below 2
    [2, 0], // length 0
    [8, 30], // runs past the end
  ]) {
    const b = Uint8Array.from([...bad, ...toa]);
    assert.equal(findToa(b, 0, b.length, new ToaResult()), false, `after ${bad.join(',')}`);
  }
  const afterEol = Uint8Array.from([1, 0, 1, 1, ...toa]);
  assert.equal(findToa(afterEol, 0, afterEol.length, new ToaResult()), false);
  // Cut short by the option space end: the same option is not found.
  assert.equal(findToa(toa, 0, 7, new ToaResult()), false);
});

test('findToa: kind 254 with the wrong length is skipped, a later proper TOA is found', () => {
  for (const len of [6, 10]) {
    const wrong: TcpOption = { kind: TCPOPT_TOA, data: new Uint8Array(len - 2).fill(7) };
    assert.equal(find([wrong]), null, `254/${len} alone`);
    const r = find([wrong, toaV4Option(40000, CLIENT)]);
    assert.equal(r?.at, len, `254/${len} then 254/8`);
    assert.equal(r?.v4, CLIENT);
  }
  // 253 is never an IPv4 TOA, whatever its length.
  assert.equal(find([{ kind: TCPOPT_TOA_ALI_V6, data: new Uint8Array(6) }]), null);
});

test('findToa resets its result when nothing is found', () => {
  const out = new ToaResult();
  const yes = encodeOptions([toaV4Option(1, CLIENT)]);
  assert.equal(findToa(yes, 0, yes.length, out), true);
  const no = encodeOptions([opt.mss(1)]);
  assert.equal(findToa(no, 0, no.length, out), false);
  assert.equal(out.family, 0);
  assert.equal(out.at, -1);
});

test('findToa inside a real SYN: options region taken from the TCP view', () => {
  const options = encodeOptions([opt.mss(1460), opt.sackPermitted(), toaV4Option(40000, CLIENT)]);
  const b = new Uint8Array(20 + 20 + options.length);
  writeIpv4Header(b, 0, {
    src: parseIpv4('10.0.0.5'),
    dst: parseIpv4('10.0.1.7'),
    protocol: IPPROTO_TCP,
    payloadLength: 20 + options.length,
  });
  writeTcpHeader(b, 20, {
    srcPort: 7000,
    dstPort: 80,
    seq: 1,
    ack: 0,
    flags: TCP_SYN,
    window: 1,
    options,
  });
  const t = new TcpView().wrap(b, 20);
  const out = new ToaResult();
  assert.equal(findToa(b, t.optionsOffset, t.optionsOffset + t.optionsLength, out), true);
  assert.equal(out.at, 20 + 20 + 6);
  assert.equal(out.port, 40000);
  assert.equal(out.v4, CLIENT);
});
