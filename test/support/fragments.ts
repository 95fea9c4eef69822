/**
 * Datagrams and hand-cut fragments for the reassembly and fragmentation
 * tests: fragments at any offset and length (overlapping, lying, tiny),
 * cut independently of src/engine/fragment.ts.
 */
import { get16, set16, set32 } from '../../src/wire/bytes.js';
import { finishChecksum, sumWords } from '../../src/wire/checksum.js';
import { IPPROTO_UDP } from '../../src/wire/ipv4.js';
import { IPV6_NEXT_FRAGMENT } from '../../src/wire/ipv6.js';
import {
  REASM_DROP_COUNTERS,
  ReasmCounter,
  ReasmStatus,
} from '../../src/engine/reassembly-counters.js';
import type { Reassembler } from '../../src/engine/reassembly.js';
import { pattern } from './packets.js';

export const SRC4 = 0xcb007101; // 203.0.113.1
export const DST4 = 0xc0000264; // 192.0.2.100
export const SRC6 = Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(11).fill(0), 1]);
export const DST6 = Uint8Array.from([
  0x20,
  0x01,
  0x0d,
  0xb8,
  ...new Array<number>(11).fill(0),
  0x64,
]);

function ipv4HeaderChecksum(b: Uint8Array, ihl: number): void {
  set16(b, 10, 0);
  set16(b, 10, finishChecksum(sumWords(b, 0, ihl, 0)));
}

export interface Datagram4Spec {
  /** Transport bytes after the IPv4 header (default: UDP with `payload` bytes). */
  body?: Uint8Array;
  payload?: number;
  protocol?: number;
  id?: number;
  src?: number;
  dst?: number;
  tos?: number;
  df?: boolean;
  /** IP options (a multiple of 4 bytes). */
  options?: Uint8Array;
  seed?: number;
}

/** A UDP datagram with a right UDP checksum: 8-byte header, then pattern bytes. */
export function udpBody(payload: number, seed = 7): Uint8Array {
  const b = new Uint8Array(8 + payload);
  set16(b, 0, 40000);
  set16(b, 2, 5140);
  set16(b, 4, (8 + payload) & 0xffff);
  b.set(pattern(payload, seed), 8);
  return b;
}

/** A whole IPv4 datagram (header checksum right; the UDP checksum is left 0, which IPv4 allows). */
export function datagram4(s: Datagram4Spec = {}): Uint8Array {
  const body = s.body ?? udpBody(s.payload ?? 3000, s.seed);
  const opts = s.options ?? new Uint8Array(0);
  const ihl = 20 + opts.length;
  const b = new Uint8Array(ihl + body.length);
  b[0] = 0x40 | (ihl >>> 2);
  b[1] = s.tos ?? 0;
  set16(b, 2, b.length);
  set16(b, 4, s.id ?? 0x1234);
  set16(b, 6, s.df === true ? 0x4000 : 0);
  b[8] = 64;
  b[9] = s.protocol ?? IPPROTO_UDP;
  set32(b, 12, s.src ?? SRC4);
  set32(b, 16, s.dst ?? DST4);
  b.set(opts, 20);
  b.set(body, ihl);
  ipv4HeaderChecksum(b, ihl);
  return b;
}

/**
 * The IPv4 fragment of `d` holding data [offset, offset+len) with MF as
 * given: the datagram's header (options and all), its lengths, flags and
 * checksum set. `flagsOr` adds bits to the flags word (DF).
 */
export function cut4(
  d: Uint8Array,
  offset: number,
  len: number,
  more: boolean,
  flagsOr = 0,
): Uint8Array {
  const ihl = (d[0]! & 0x0f) * 4;
  const b = new Uint8Array(ihl + len);
  b.set(d.subarray(0, ihl), 0);
  b.set(d.subarray(ihl + offset, ihl + offset + len), ihl);
  set16(b, 2, b.length);
  set16(b, 6, (get16(d, 6) & 0x4000) | flagsOr | (more ? 0x2000 : 0) | (offset >>> 3));
  ipv4HeaderChecksum(b, ihl);
  return b;
}

/** `d` cut in pieces of `size` data bytes (a multiple of 8), in order. */
export function split4(d: Uint8Array, size: number): Uint8Array[] {
  const ihl = (d[0]! & 0x0f) * 4;
  const data = d.length - ihl;
  const out: Uint8Array[] = [];
  for (let o = 0; o < data; o += size) {
    out.push(cut4(d, o, Math.min(size, data - o), o + size < data));
  }
  return out;
}

export interface Datagram6Spec {
  payload?: number;
  /** Extension headers after the fixed header (unfragmentable ones, or any): type and whole body. */
  ext?: { type: number; body: Uint8Array }[];
  upper?: number;
  body?: Uint8Array;
  trafficClass?: number;
  src?: Uint8Array;
  seed?: number;
}

/** Hop-by-hop or destination options of (units + 1) * 8 bytes, PadN-filled. */
export function optionsHeader(type: number, units = 0): { type: number; body: Uint8Array } {
  const body = new Uint8Array((units + 1) * 8);
  body[1] = units;
  body[2] = 1;
  body[3] = body.length - 4;
  return { type, body };
}

/** A whole IPv6 datagram: fixed header, `ext` in order, then the upper-layer bytes. */
export function datagram6(s: Datagram6Spec = {}): Uint8Array {
  const body = s.body ?? udpBody(s.payload ?? 3000, s.seed);
  const chain = s.ext ?? [];
  const upper = s.upper ?? IPPROTO_UDP;
  let extLen = 0;
  for (const h of chain) extLen += h.body.length;
  const b = new Uint8Array(40 + extLen + body.length);
  const tc = s.trafficClass ?? 0;
  b[0] = 0x60 | (tc >>> 4);
  b[1] = (tc & 0x0f) << 4;
  set16(b, 4, extLen + body.length);
  b[6] = chain.length > 0 ? chain[0]!.type : upper;
  b[7] = 64;
  b.set(s.src ?? SRC6, 8);
  b.set(DST6, 24);
  let o = 40;
  chain.forEach((h, i) => {
    b.set(h.body, o);
    b[o] = i + 1 < chain.length ? chain[i + 1]!.type : upper;
    o += h.body.length;
  });
  b.set(body, o);
  return b;
}

/**
 * The IPv6 fragment of `d` holding bytes [offset, offset+len) of its
 * fragmentable part, which starts `unfrag` bytes in (default: right after
 * the fixed header); the Fragment header goes there, named by the byte at
 * `nhAt` (default: the fixed header's Next Header).
 */
export function cut6(
  d: Uint8Array,
  offset: number,
  len: number,
  more: boolean,
  id: number,
  unfrag = 40,
  nhAt = 6,
): Uint8Array {
  const b = new Uint8Array(unfrag + 8 + len);
  b.set(d.subarray(0, unfrag), 0);
  b[nhAt] = IPV6_NEXT_FRAGMENT;
  b[unfrag] = d[nhAt]!;
  set16(b, unfrag + 2, offset | (more ? 1 : 0));
  set32(b, unfrag + 4, id);
  b.set(d.subarray(unfrag + offset, unfrag + offset + len), unfrag + 8);
  set16(b, 4, b.length - 40);
  return b;
}

export function split6(
  d: Uint8Array,
  size: number,
  id: number,
  unfrag = 40,
  nhAt = 6,
): Uint8Array[] {
  const data = d.length - unfrag;
  const out: Uint8Array[] = [];
  for (let o = 0; o < data; o += size) {
    out.push(cut6(d, o, Math.min(size, data - o), o + size < data, id, unfrag, nhAt));
  }
  return out;
}

/** Room for any datagram, behind some headroom. */
export function outBuffer(): Uint8Array {
  return new Uint8Array(128 + 65535 + 64);
}
export const OUT_OFF = 128;

/**
 * Pushes every fragment at `now`; returns the datagrams completed, copied
 * out, and checks after each push that every fragment is counted once.
 */
export function pushAll(r: Reassembler, frags: readonly Uint8Array[], now = 0): Uint8Array[] {
  const out = outBuffer();
  const done: Uint8Array[] = [];
  for (const f of frags) {
    const st = r.push(f, 0, f.length, now, out, OUT_OFF);
    if (st === ReasmStatus.Complete) done.push(out.slice(OUT_OFF, OUT_OFF + r.length));
    assertCountedOnce(r);
  }
  return done;
}

export function dropped(r: Reassembler): number {
  let n = 0;
  for (const c of REASM_DROP_COUNTERS) n += r.counters[c]!;
  return n;
}

/** Every fragment pushed is held, in a reassembled datagram, or under exactly one drop counter. */
export function assertCountedOnce(r: Reassembler): void {
  const seen = r.counters[ReasmCounter.Fragments]!;
  const accounted = r.counters[ReasmCounter.FragmentsReassembled]! + dropped(r) + r.heldFragments;
  if (seen !== accounted) {
    throw new Error(
      `fragments ${seen} != reassembled ${r.counters[ReasmCounter.FragmentsReassembled]} + dropped ${dropped(r)} + held ${r.heldFragments}`,
    );
  }
  if (r.bytesCharged > r.highThresh || r.bytesCharged < 0) {
    throw new Error(`charged ${r.bytesCharged} outside [0, ${r.highThresh}]`);
  }
  if ((r.heldFragments === 0) !== (r.queueCount === 0)) {
    throw new Error(`held ${r.heldFragments} fragments in ${r.queueCount} queues`);
  }
}

/** Fisher–Yates with a seeded generator. */
export function shuffle<T>(xs: readonly T[], next: () => number): T[] {
  const a = xs.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}
