import { loadU32Plus, storeU32From } from '../wire/bytes.js';
import { type ChecksumDelta, alignedRangeSum, checksumAdjust } from '../wire/checksum.js';
import type { TcpView } from '../wire/tcp.js';

// Checksums are patched incrementally (RFC 1624) over 16-bit halves: a 32-bit
// value passed to a call V8 does not inline would be boxed, once per packet.

/**
 * Adds `add` (mod 2^32) to the sequence or acknowledgment number at b[at],
 * noting the change in d: the one seq/ack rewrite of both directions and of
 * SYNPROXY's translation.
 */
export function rewriteSeqField(b: Uint8Array, at: number, add: number, d: ChecksumDelta): void {
  // Byte reads and writes spelled out: this is inlined into the SYNPROXY and ICMP translations.
  const hi = (b[at]! << 8) | b[at + 1]!;
  const lo = (b[at + 2]! << 8) | b[at + 3]!;
  const n = (hi * 65536 + lo + add) >>> 0;
  d.replaceWord(hi, n >>> 16);
  d.replaceWord(lo, n & 0xffff);
  b[at] = n >>> 24;
  b[at + 1] = (n >>> 16) & 0xff;
  b[at + 2] = (n >>> 8) & 0xff;
  b[at + 3] = n & 0xff;
}

/**
 * `rewriteSeqField` for the NAT paths: the change is returned as a sum of
 * `wordChange` terms instead of noted in a `ChecksumDelta`. Byte reads and
 * writes spelled out and no call inside: this is inlined into every
 * translation.
 */
export function addToSeqField(b: Uint8Array, at: number, add: number): number {
  const hi = (b[at]! << 8) | b[at + 1]!;
  const lo = (b[at + 2]! << 8) | b[at + 3]!;
  const n = (hi * 65536 + lo + add) >>> 0;
  b[at] = n >>> 24;
  b[at + 1] = n >>> 16;
  b[at + 2] = n >>> 8;
  b[at + 3] = n;
  return (~hi & 0xffff) + (n >>> 16) + (~lo & 0xffff) + (n & 0xffff);
}

const edge = new Uint32Array(1);

/**
 * Adds `add` (mod 2^32) to every edge of the SACK option at `at` of the
 * segment `tcp` is wrapped around, keeping its checksum right. RS→client:
 * edges in the LB→RS space move back by the sequence delta (and any PROXY
 * header); client→RS under SYNPROXY: edges in the cookie's space move into
 * the RS's.
 */
export function shiftSackEdges(tcp: TcpView, at: number, blocks: number, add: number): void {
  const b = tcp.buf;
  const from = at + 2;
  const to = from + blocks * 8;
  const before = alignedRangeSum(b, tcp.off, from, to);
  for (let k = from; k < to; k += 4) {
    loadU32Plus(edge, 0, b, k, add);
    storeU32From(b, k, edge, 0);
  }
  const after = alignedRangeSum(b, tcp.off, from, to);
  tcp.checksum = checksumAdjust(tcp.checksum, before, after);
}
