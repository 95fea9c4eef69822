/**
 * finishIpv4Header computes the header checksum from the values it writes
 * (no pass over the bytes): checked against the checksum summed over the
 * written bytes, for random fields and addresses, out-of-range values
 * truncated as the bytes are.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { get16, set32 } from '../../src/wire/bytes.js';
import { finishChecksum, sumWords } from '../../src/wire/checksum.js';
import { IPV4_MIN_HEADER, Ipv4Field, finishIpv4Header } from '../../src/wire/ipv4.js';
import { rng } from '../support/rng.js';

test('the checksum equals the one summed over the written header, for 20,000 random headers', () => {
  const next = rng(1414);
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  const b = new Uint8Array(64);
  for (let i = 0; i < 20_000; i++) {
    const o = int(0, 40);
    b.fill(0xa5);
    set32(b, o + Ipv4Field.Src, int(0, 0xffffffff));
    set32(b, o + Ipv4Field.Dst, int(0, 0xffffffff));
    // Values past their field's width are written truncated; the checksum must follow the bytes.
    const tos = int(0, 0x1ff);
    const total = int(0, 0x1ffff);
    const id = int(0, 0x1ffff);
    const ttl = int(0, 0x1ff);
    const proto = int(0, 0x1ff);
    finishIpv4Header(b, o, total, proto, ttl, tos, id, int(0, 1) === 1);
    const stored = get16(b, o + Ipv4Field.Checksum);
    b[o + Ipv4Field.Checksum] = 0;
    b[o + Ipv4Field.Checksum + 1] = 0;
    assert.equal(stored, finishChecksum(sumWords(b, o, IPV4_MIN_HEADER, 0)), `header ${i}`);
  }
});
