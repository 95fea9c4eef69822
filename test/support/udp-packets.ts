/**
 * UDP datagrams for the engine's UDP tests and fuzz: IPv4 and IPv6 builders
 * (checksum computed, or 0 on IPv4 when asked) and a checker that reads
 * back what the engine emitted, UOA and all.
 */
import assert from 'node:assert/strict';
import type { Engine } from '../../src/engine/engine.js';
import { Ipv6Address, type IpAddress } from '../../src/wire/address.js';
import { get32, ipv4ToString } from '../../src/wire/bytes.js';
import { Ipv4View, IPPROTO_UDP, writeIpv4Header } from '../../src/wire/ipv4.js';
import { UdpView, writeUdpHeader } from '../../src/wire/udp.js';
import { decodeUoa, removeUoa, type UoaDatagram } from '../../src/wire/uoa.js';

export interface Udp4Spec {
  src: number;
  dst: number;
  sport: number;
  dport: number;
  payload?: Uint8Array;
  /** Send checksum 0 (none), as IPv4 allows. */
  noChecksum?: boolean;
  dontFragment?: boolean;
  ttl?: number;
}

export function buildUdp4(s: Udp4Spec): Uint8Array {
  const payload = s.payload ?? new Uint8Array(0);
  const udpLen = 8 + payload.length;
  const b = new Uint8Array(20 + udpLen);
  writeIpv4Header(b, 0, {
    src: s.src,
    dst: s.dst,
    protocol: IPPROTO_UDP,
    payloadLength: udpLen,
    id: 7,
    dontFragment: s.dontFragment ?? false,
    ...(s.ttl === undefined ? {} : { ttl: s.ttl }),
  });
  writeUdpHeader(b, 20, s.sport, s.dport, payload.length);
  b.set(payload, 28);
  if (!s.noChecksum) {
    const u = new UdpView().wrap(b, 20);
    u.checksum = u.computeChecksumV4(0);
  }
  return b;
}

export interface Udp6Spec {
  src: Uint8Array;
  dst: Uint8Array;
  sport: number;
  dport: number;
  payload?: Uint8Array;
  /** Send checksum 0: IPv6 forbids it. */
  zeroChecksum?: boolean;
}

export function buildUdp6(s: Udp6Spec): Uint8Array {
  const payload = s.payload ?? new Uint8Array(0);
  const udpLen = 8 + payload.length;
  const b = new Uint8Array(40 + udpLen);
  b[0] = 0x60;
  b[4] = udpLen >>> 8;
  b[5] = udpLen & 0xff;
  b[6] = IPPROTO_UDP;
  b[7] = 64;
  b.set(s.src, 8);
  b.set(s.dst, 24);
  writeUdpHeader(b, 40, s.sport, s.dport, payload.length);
  b.set(payload, 48);
  if (!s.zeroChecksum) {
    const u = new UdpView().wrap(b, 40);
    u.checksum = u.computeChecksumV6(0);
  }
  return b;
}

/** What a UDP datagram the engine emitted says, its UOA (if any) read and taken out. */
export interface SeenUdp {
  family: 4 | 6;
  src: Uint8Array;
  dst: Uint8Array;
  sport: number;
  dport: number;
  checksum: number;
  payload: Uint8Array;
  /** The UOA it carried, or undefined. */
  uoa?: UoaDatagram;
}

/**
 * Reads an emitted UDP datagram (IPv4 or IPv6, with or without a UOA):
 * the IPv4 header checksum must verify, and the UDP checksum too (a zero
 * one only over IPv4), computed over the datagram with its UOA removed, as
 * the RS's kernel sees it.
 */
export function readUdp(bytes: Uint8Array): SeenUdp {
  const copy = bytes.slice();
  const d = decodeUoa(copy);
  let b = copy;
  let uoa: UoaDatagram | undefined;
  if (d.ok) {
    uoa = d;
    const r = removeUoa(copy);
    assert.ok(r.ok, 'a decodable UOA comes out');
    b = copy.subarray(r.start, r.start + r.length);
  }
  const v6 = b[0]! >>> 4 === 6;
  const hl = v6 ? 40 : (b[0]! & 0x0f) * 4;
  if (!v6) {
    const ip = new Ipv4View().wrap(b, 0);
    assert.equal(ip.computeChecksum(), ip.checksum, 'IPv4 header checksum');
    assert.equal(b[9], IPPROTO_UDP, 'IPv4 protocol UDP');
  } else assert.equal(b[6], IPPROTO_UDP, 'IPv6 next header UDP');
  const u = new UdpView().wrap(b, hl);
  assert.ok(u.fits(b.length - hl), 'UDP header and length fit');
  if (v6) assert.ok(u.checksumValidV6(0), 'IPv6 UDP checksum valid and not 0');
  else assert.ok(u.checksumValidV4(0), 'IPv4 UDP checksum valid (or 0)');
  const out: SeenUdp = {
    family: v6 ? 6 : 4,
    src: b.slice(v6 ? 8 : 12, v6 ? 24 : 16),
    dst: b.slice(v6 ? 24 : 16, v6 ? 40 : 20),
    sport: u.srcPort,
    dport: u.dstPort,
    checksum: u.checksum,
    payload: b.slice(hl + 8, hl + u.length),
  };
  if (uoa) out.uoa = uoa;
  return out;
}

/** The 4 bytes of a host-order IPv4 address. */
export function v4Bytes(a: number): Uint8Array {
  return new Uint8Array([a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff]);
}

/** An address as the flow keys below spell it: dotted IPv4, or IPv6 text. */
export function addressKey(a: IpAddress): string {
  return typeof a === 'number' ? ipv4ToString(a) : a.text;
}

/** The address of `length` (4 or 16) bytes at b[off], spelled as addressKey spells it. */
export function addressKeyAt(b: Uint8Array, off: number, length: 4 | 16): string {
  return length === 4 ? ipv4ToString(get32(b, off)) : Ipv6Address.fromBytes(b, off).text;
}

/**
 * The engine's UDP flows as keys: each RS leg's `lip|lport|rip|rport` and
 * each client leg's `cip|cport|vip|vport`, so a test can tell whether a
 * packet it sees belongs to a flow.
 */
export function udpFlowKeys(e: Engine): { rsLeg: Set<string>; clientLeg: Set<string> } {
  const rsLeg = new Set<string>();
  const clientLeg = new Set<string>();
  for (const c of e.listConnections()) {
    if (c.protocol !== 'UDP') continue;
    rsLeg.add(`${addressKey(c.lip)}|${c.lport}|${addressKey(c.rip)}|${c.rport}`);
    clientLeg.add(`${addressKey(c.cip)}|${c.cport}|${addressKey(c.vip)}|${c.vport}`);
  }
  return { rsLeg, clientLeg };
}
