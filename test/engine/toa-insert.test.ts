/**
 * ToaWriter on its own: where the TOA lands, what the option plans keep,
 * the rebuilt option area, the pieces of a split and stripToa. Each result is
 * compared byte for byte with the segment built from scratch as it should
 * look, its checksums are recomputed independently (test/support/checksum.ts)
 * and tshark decodes a sample.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { GSO_BUFFER_SIZE, type Packet, PacketPool } from '../../src/engine/packet.js';
import { OptionPlan, ToaWriter, nopOut } from '../../src/engine/toa-insert.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN, TcpView } from '../../src/wire/tcp.js';
import { encodeOptions, opt, type TcpOption } from '../../src/wire/tcp-options.js';
import { TOA_V4_LEN, TOA_V6_LEN, toaV4Option, toaV6Option } from '../../src/wire/toa.js';
import { checksumReport } from '../support/checksum.js';
import {
  buildSegment,
  buildSegment6,
  checksumsValid,
  checksumsValid6,
  pattern,
} from '../support/packets.js';
import { probeTshark, tsharkDecode } from '../support/tshark.js';

const CIP = 0xcb007107; // 203.0.113.7
const VIP = 0xc0000264; // 192.0.2.100
const CPORT = 40000;
const SEQ = 0x10203040;
/** Our TOA for CIP:CPORT: fe 08, port 40000 (9c 40), 203.0.113.7. */
const OUR_TOA = Uint8Array.of(0xfe, 0x08, 0x9c, 0x40, 0xcb, 0x00, 0x71, 0x07);

const hex = (b: Uint8Array): string =>
  Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

/** Raw option bytes (NOPs kept where given), EOL-padded to a multiple of 4. */
function raw(...opts: TcpOption[]): Uint8Array {
  return encodeOptions(opts);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** EOL-pads to a multiple of 4, as the writer does. */
function pad(b: Uint8Array): Uint8Array {
  const out = new Uint8Array((b.length + 3) & ~3);
  out.set(b);
  return out;
}

interface Seg {
  options?: Uint8Array;
  payload?: Uint8Array;
  flags?: number;
  seq?: number;
  id?: number;
}

/** A client segment CIP:CPORT → VIP:80, both checksums right. */
function seg(s: Seg = {}): Uint8Array {
  return buildSegment({
    src: CIP,
    dst: VIP,
    sport: CPORT,
    dport: 80,
    seq: s.seq ?? SEQ,
    ack: 0x55667788,
    flags: s.flags ?? TCP_ACK,
    window: 502,
    rawOptions: s.options ?? new Uint8Array(0),
    payload: s.payload,
    id: s.id ?? 0x1234,
  });
}

function load(pool: PacketPool, bytes: Uint8Array, headroom?: number): Packet {
  const p = pool.take();
  assert.ok(p.load(bytes, headroom));
  return p;
}

/** Both stored checksums equal an independent full recompute. */
function assertChecksums(b: Uint8Array, what: string): void {
  const r = checksumReport(b);
  assert.equal(r.ip[0], r.ip[1], `${what}: IP header checksum`);
  assert.equal(r.l4[0], r.l4[1], `${what}: TCP checksum`);
}

function optBounds(b: Uint8Array): { optStart: number; optEnd: number } {
  const t = new TcpView().wrap(b, 20);
  return { optStart: 40, optEnd: 20 + t.headerLength };
}

describe('ToaWriter.insertV4', () => {
  const cases: { name: string; options: Uint8Array; payload: number }[] = [
    { name: 'no options, no payload', options: new Uint8Array(0), payload: 0 },
    {
      name: 'timestamps and 300 bytes',
      options: raw(opt.nop(), opt.nop(), opt.timestamp(1, 2)),
      payload: 300,
    },
    {
      name: '32 bytes of options (exactly room for the TOA), odd payload',
      options: raw(
        opt.nop(),
        opt.nop(),
        opt.timestamp(1, 2),
        opt.nop(),
        opt.nop(),
        opt.sack([
          [1, 2],
          [3, 4],
        ]),
      ),
      payload: 1,
    },
  ];
  for (const headroom of [128, 0]) {
    for (const c of cases) {
      it(`${c.name}, ${headroom ? 'headers move into the headroom' : 'no headroom: options and payload move up'}`, () => {
        const pool = new PacketPool(2);
        const payload = pattern(c.payload, 11);
        const before = seg({ options: c.options, payload });
        const p = load(pool, before, headroom);
        new ToaWriter(pool).insertV4(p, 20);
        const out = p.view().slice();
        assertChecksums(out, 'after insert');
        // Exactly the segment the client would have sent with our TOA first in its options.
        assert.equal(hex(out), hex(seg({ options: concat(OUR_TOA, c.options), payload })));
        assert.equal(p.length, before.length + TOA_V4_LEN);
        assert.equal(p.start, headroom ? headroom - TOA_V4_LEN : 0);
        assert.equal(hex(out.subarray(40, 48)), hex(OUR_TOA));
        assert.equal(hex(out.subarray(48 + c.options.length)), hex(payload));
      });
    }
  }

  it('takes the TOA from the source address and port of the packet it is given', () => {
    const pool = new PacketPool(1);
    const b = buildSegment({
      src: 0x01020304,
      dst: VIP,
      sport: 0xfffe,
      dport: 80,
      seq: 1,
      flags: TCP_SYN,
    });
    const p = load(pool, b);
    new ToaWriter(pool).insertV4(p, 20);
    assert.equal(hex(p.view().subarray(40, 48)), 'fe08fffe01020304');
  });
});

describe('ToaWriter option plans', () => {
  const w = new ToaWriter(new PacketPool(1));
  const TS = opt.timestamp(0xaabbccdd, 0x11223344);
  const SACK3 = opt.sack([
    [1, 2],
    [3, 4],
    [5, 6],
  ]);
  const SACK2 = opt.sack([
    [1, 2],
    [3, 4],
  ]);

  function planOf(options: Uint8Array, syn: boolean, toaLen = TOA_V4_LEN): OptionPlan {
    const b = seg({ options, flags: syn ? TCP_SYN : TCP_ACK });
    const { optStart, optEnd } = optBounds(b);
    return w.plan(b, optStart, optEnd, syn, toaLen);
  }

  it('keeps every option when the TOA fits beside them (up to 40 bytes in all)', () => {
    const linuxSyn = raw(opt.mss(1460), opt.sackPermitted(), TS, opt.nop(), opt.wscale(7));
    assert.equal(planOf(linuxSyn, true), OptionPlan.Keep);
    const b = seg({ options: linuxSyn });
    assert.equal(w.keptLength(b, 40, 60, OptionPlan.Keep), 20);
    assert.equal(w.newOptionsLength(b, 40, 60, OptionPlan.Keep, TOA_V4_LEN), 28);
    // 32 + 8 = 40: still in place.
    assert.equal(
      planOf(raw(opt.nop(), opt.nop(), TS, opt.nop(), opt.nop(), SACK2), false),
      OptionPlan.Keep,
    );
  });

  it('drops NOPs and stray TOAs when that makes room (SYNs included)', () => {
    // 12 + 20 + 8 = 40 bytes; without padding and the stray TOA: 10 + 18 = 28, + 8 = 36.
    const o = raw(
      opt.nop(),
      opt.nop(),
      TS,
      opt.nop(),
      opt.nop(),
      SACK2,
      toaV4Option(1, 0x06060606),
    );
    assert.equal(o.length, 40);
    assert.equal(planOf(o, false), OptionPlan.DropPadding);
    const b = seg({ options: o });
    assert.equal(w.keptLength(b, 40, 80, OptionPlan.DropPadding), 28);
    assert.equal(w.newOptionsLength(b, 40, 80, OptionPlan.DropPadding, TOA_V4_LEN), 36);
    const synOpts = raw(
      ...Array.from({ length: 16 }, () => opt.nop()),
      opt.mss(1460),
      opt.sackPermitted(),
      TS,
      opt.wscale(7),
    );
    assert.equal(synOpts.length, 36);
    assert.equal(planOf(synOpts, true), OptionPlan.DropPadding);
  });

  it('keeps only the timestamp when nothing else fits, never on a SYN', () => {
    // 12 + 28 = 40 bytes; 10 + 26 + 8 = 44 without padding: only the timestamp stays.
    const o = raw(opt.nop(), opt.nop(), TS, opt.nop(), opt.nop(), SACK3);
    assert.equal(o.length, 40);
    assert.equal(planOf(o, false), OptionPlan.TimestampOnly);
    const b = seg({ options: o });
    assert.equal(w.keptLength(b, 40, 80, OptionPlan.TimestampOnly), 10);
    assert.equal(w.newOptionsLength(b, 40, 80, OptionPlan.TimestampOnly, TOA_V4_LEN), 20);
    assert.equal(planOf(o, true), OptionPlan.Impossible);
  });

  it('is impossible when even the timestamps leave no room for the TOA', () => {
    const o = raw(TS, TS, TS);
    assert.equal(planOf(o, false, TOA_V6_LEN), OptionPlan.Impossible);
    assert.equal(planOf(o, false, TOA_V4_LEN), OptionPlan.Keep);
    // 20-byte TOA beside 28 bytes of SACK: only the timestamp can stay.
    assert.equal(
      planOf(raw(TS, opt.nop(), opt.nop(), SACK3), false, TOA_V6_LEN),
      OptionPlan.TimestampOnly,
    );
  });

  it('counts only TOA-shaped options as stray (kind 254 of 8 or 20, kind 253 of 20)', () => {
    const b = seg({
      options: raw(toaV4Option(1, 2), toaV6Option(1, new Uint8Array(16), 253), {
        kind: 254,
        data: new Uint8Array(4),
      }),
    });
    const { optStart, optEnd } = optBounds(b);
    // Only the 6-byte kind 254 option survives the prune.
    assert.equal(w.keptLength(b, optStart, optEnd, OptionPlan.DropPadding), 6);
  });
});

describe('ToaWriter.rebuildV4', () => {
  const TS = opt.timestamp(0xaabbccdd, 0x11223344);

  it('DropPadding: [TOA][kept options in order][EOL padding], payload after, lengths and checksums right', () => {
    const pool = new PacketPool(1);
    const o = raw(
      opt.nop(),
      opt.nop(),
      TS,
      opt.nop(),
      opt.nop(),
      opt.sack([
        [1, 2],
        [3, 4],
      ]),
      toaV4Option(1, 0x06060606),
    );
    const payload = pattern(333, 3);
    const p = load(pool, seg({ options: o, payload }));
    assert.ok(new ToaWriter(pool).rebuildV4(p, 20, OptionPlan.DropPadding));
    const out = p.view().slice();
    assertChecksums(out, 'rebuilt');
    const want = pad(
      concat(
        OUR_TOA,
        raw(TS).subarray(0, 10),
        raw(
          opt.sack([
            [1, 2],
            [3, 4],
          ]),
        ).subarray(0, 18),
      ),
    );
    assert.equal(want.length, 36);
    assert.equal(hex(out), hex(seg({ options: want, payload })));
    assert.equal(p.length, 20 + 20 + 36 + 333);
  });

  it('TimestampOnly: the TOA, the timestamp, EOL padding', () => {
    const pool = new PacketPool(1);
    const o = raw(
      opt.nop(),
      opt.nop(),
      TS,
      opt.nop(),
      opt.nop(),
      opt.sack([
        [1, 2],
        [3, 4],
        [5, 6],
      ]),
    );
    const payload = pattern(10, 5);
    const p = load(pool, seg({ options: o, payload, flags: TCP_ACK | TCP_PSH }));
    assert.ok(new ToaWriter(pool).rebuildV4(p, 20, OptionPlan.TimestampOnly));
    const out = p.view().slice();
    assertChecksums(out, 'rebuilt');
    const want = concat(OUR_TOA, raw(TS).subarray(0, 10), Uint8Array.of(0, 0));
    assert.equal(hex(out), hex(seg({ options: want, payload, flags: TCP_ACK | TCP_PSH })));
  });

  it('refuses a segment whose checksum is already wrong and leaves it untouched', () => {
    const pool = new PacketPool(1);
    const b = seg({ options: raw(opt.nop(), opt.nop(), TS), payload: pattern(20) });
    b[b.length - 1]! ^= 0x01;
    const p = load(pool, b);
    assert.equal(new ToaWriter(pool).rebuildV4(p, 20, OptionPlan.DropPadding), false);
    assert.equal(hex(p.view()), hex(b));
  });

  it('a partial-checksum packet is summed, not judged, and comes out with a real checksum', () => {
    const pool = new PacketPool(1);
    const payload = pattern(50);
    const b = seg({ options: raw(opt.nop(), opt.nop(), TS), payload });
    b[36] = 0x12;
    b[37] = 0x34;
    const p = load(pool, b);
    p.csumPartial = true;
    assert.ok(new ToaWriter(pool).rebuildV4(p, 20, OptionPlan.DropPadding));
    assert.equal(p.csumPartial, false);
    const out = p.view().slice();
    assertChecksums(out, 'rebuilt');
    assert.equal(
      hex(out),
      hex(seg({ options: concat(OUR_TOA, raw(TS).subarray(0, 10), Uint8Array.of(0, 0)), payload })),
    );
  });
});

describe('ToaWriter.splitV4', () => {
  const TS = opt.timestamp(7, 8);
  const TS_OPTS = raw(opt.nop(), opt.nop(), TS);
  /** [TOA][TS] + 2 bytes EOL = 20 bytes of options: a 60-byte header, as a piece carries it. */
  const PIECE_OPTS = concat(OUR_TOA, raw(TS).subarray(0, 10), Uint8Array.of(0, 0));
  const HDR = 20 + 20 + PIECE_OPTS.length;

  function split(
    payloadLen: number,
    mtu: number,
    flags = TCP_ACK | TCP_PSH,
    plan = OptionPlan.DropPadding,
  ): { n: number; pieces: Uint8Array[]; payload: Uint8Array; pool: PacketPool; orig: Packet } {
    const pool = new PacketPool(4, GSO_BUFFER_SIZE);
    const payload = pattern(payloadLen, 9);
    const orig = load(pool, seg({ options: TS_OPTS, payload, flags }));
    const w = new ToaWriter(pool);
    const n = w.splitV4(orig, 20, plan, mtu);
    assert.equal(w.piecesCount, Math.max(n, 0));
    const pieces = w.pieces.slice(0, Math.max(n, 0)).map((q) => q.view().slice());
    for (const q of w.pieces.slice(0, Math.max(n, 0))) pool.give(q);
    return { n, pieces, payload, pool, orig };
  }

  /** Piece k as it should be: header fields of the original, seq and IP id advanced, its bytes. */
  function expectedPiece(
    payload: Uint8Array,
    from: number,
    len: number,
    k: number,
    flags: number,
  ): Uint8Array {
    return seg({
      options: PIECE_OPTS,
      payload: payload.subarray(from, from + len),
      seq: (SEQ + from) >>> 0,
      id: 0x1234 + k,
      flags,
    });
  }

  it('a segment exactly filling the MTU stays one piece', () => {
    const { n, pieces, payload } = split(1400 - HDR, 1400);
    assert.equal(n, 1);
    assert.equal(pieces[0]!.length, 1400);
    assertChecksums(pieces[0]!, 'piece');
    assert.equal(hex(pieces[0]!), hex(expectedPiece(payload, 0, 1400 - HDR, 0, TCP_ACK | TCP_PSH)));
  });

  it('one byte over the MTU: two pieces, the second of one byte, PSH and FIN only on the last', () => {
    const flags = TCP_ACK | TCP_PSH | TCP_FIN;
    const room = 1400 - HDR;
    const { n, pieces, payload } = split(room + 1, 1400, flags);
    assert.equal(n, 2);
    assert.equal(hex(pieces[0]!), hex(expectedPiece(payload, 0, room, 0, TCP_ACK)));
    assert.equal(hex(pieces[1]!), hex(expectedPiece(payload, room, 1, 1, flags)));
    for (const q of pieces) assertChecksums(q, 'piece');
  });

  it('a large segment: every piece fits, carries the TOA, and the payload is exact in sequence', () => {
    const flags = TCP_ACK | TCP_PSH | TCP_FIN;
    const mtu = 576;
    const room = mtu - HDR;
    const { n, pieces, payload } = split(10_000, mtu, flags);
    assert.equal(n, Math.ceil(10_000 / room));
    pieces.forEach((q, k) => {
      const from = k * room;
      const len = Math.min(room, 10_000 - from);
      assert.ok(q.length <= mtu);
      assertChecksums(q, `piece ${k}`);
      assert.equal(
        hex(q),
        hex(expectedPiece(payload, from, len, k, k === n - 1 ? flags : TCP_ACK)),
        `piece ${k}`,
      );
    });
  });

  it('payload of 0 or 1 byte: one piece (a bare FIN keeps its FIN)', () => {
    const fin = split(0, 1400, TCP_ACK | TCP_FIN);
    assert.equal(fin.n, 1);
    assert.equal(hex(fin.pieces[0]!), hex(expectedPiece(fin.payload, 0, 0, 0, TCP_ACK | TCP_FIN)));
    const one = split(1, HDR + 1, TCP_ACK | TCP_PSH);
    assert.equal(one.n, 1);
    assert.equal(hex(one.pieces[0]!), hex(expectedPiece(one.payload, 0, 1, 0, TCP_ACK | TCP_PSH)));
    assertChecksums(one.pieces[0]!, 'piece');
  });

  it('an MTU one byte short of the headers plus one payload byte: 0 pieces', () => {
    assert.equal(split(100, HDR).n, 0);
    // One byte of room: 100 pieces of one byte each.
    const { n, pieces, payload } = split(100, HDR + 1);
    assert.equal(n, 100);
    assert.equal(hex(pieces[99]!), hex(expectedPiece(payload, 99, 1, 99, TCP_ACK | TCP_PSH)));
  });

  it('IP ids wrap at 16 bits and sequence numbers at 32', () => {
    const pool = new PacketPool(4);
    const payload = pattern(300);
    const orig = load(pool, seg({ options: TS_OPTS, payload, seq: 0xffffff00, id: 0xffff }));
    const w = new ToaWriter(pool);
    assert.equal(w.splitV4(orig, 20, OptionPlan.DropPadding, HDR + 200), 2);
    const second = w.pieces[1]!.view().slice();
    const t = new TcpView().wrap(second, 20);
    assert.equal(t.seq, (0xffffff00 + 200) >>> 0);
    assert.equal((second[4]! << 8) | second[5]!, 0);
    assertChecksums(second, 'second piece');
  });

  it('a wrong checksum: -1 and no pieces', () => {
    const pool = new PacketPool(2, GSO_BUFFER_SIZE);
    const b = seg({ options: TS_OPTS, payload: pattern(2000) });
    b[50]! ^= 0xff;
    const p = load(pool, b);
    const w = new ToaWriter(pool);
    assert.equal(w.splitV4(p, 20, OptionPlan.DropPadding, 1400), -1);
    assert.equal(w.piecesCount, 0);
  });

  it('Keep plan: the client options stay as they were, after the TOA', () => {
    const pool = new PacketPool(4);
    const payload = pattern(100);
    const p = load(pool, seg({ options: TS_OPTS, payload }));
    const w = new ToaWriter(pool);
    assert.equal(w.splitV4(p, 20, OptionPlan.Keep, 20 + 20 + 20 + 60), 2);
    const first = w.pieces[0]!.view().slice();
    assert.equal(
      hex(first),
      hex(seg({ options: concat(OUR_TOA, TS_OPTS), payload: payload.subarray(0, 60) })),
    );
  });
});

describe('ToaWriter.stripToa and nopOut', () => {
  it('NOPs out every TOA-shaped option and nothing else, checksum patched', () => {
    const pool = new PacketPool(1);
    const odd = { kind: 254, data: new Uint8Array(4).fill(6) };
    const options = raw(
      toaV4Option(1, 0x06060606),
      toaV6Option(2, new Uint8Array(16).fill(6), 253),
      odd,
      opt.nop(),
    );
    const payload = pattern(7);
    const b = seg({ options, payload });
    const p = load(pool, b);
    const tcp = new TcpView().wrap(p.buf, p.start + 20);
    const n = new ToaWriter(pool).stripToa(tcp, p.start + 40, p.start + 20 + tcp.headerLength);
    assert.equal(n, 2);
    const out = p.view().slice();
    assertChecksums(out, 'stripped');
    const want = raw(...Array.from({ length: 28 }, () => opt.nop()), odd, opt.nop());
    assert.equal(want.length, options.length);
    assert.equal(hex(out), hex(seg({ options: want, payload })));
  });

  it('nopOut at an odd offset keeps the checksum right', () => {
    const b = seg({ options: raw(opt.nop(), opt.mss(1460), opt.wscale(7)), payload: pattern(5) });
    const tcp = new TcpView().wrap(b, 20);
    nopOut(tcp, 41, 4);
    assertChecksums(b, 'after nopOut');
    assert.equal(hex(b.subarray(40, 48)), '0101010101030307');
  });
});

const tshark = probeTshark();

describe('ToaWriter output through tshark', () => {
  it(
    'insert (both paths), rebuild and split pieces decode with good checksums and our TOA first',
    { skip: tshark.ok ? false : tshark.reason, timeout: 60_000 },
    () => {
      const pool = new PacketPool(8, GSO_BUFFER_SIZE);
      const w = new ToaWriter(pool);
      const TS = opt.timestamp(0xaabbccdd, 0x11223344);
      const frames: { bytes: Uint8Array; options: Uint8Array; len: number; seq: number }[] = [];
      for (const headroom of [128, 0]) {
        const p = load(
          pool,
          seg({ options: raw(opt.nop(), opt.nop(), TS), payload: pattern(100) }),
          headroom,
        );
        w.insertV4(p, 20);
        frames.push({
          bytes: p.view().slice(),
          options: concat(OUR_TOA, raw(opt.nop(), opt.nop(), TS)),
          len: 100,
          seq: SEQ,
        });
      }
      const sack3 = raw(
        opt.nop(),
        opt.nop(),
        TS,
        opt.nop(),
        opt.nop(),
        opt.sack([
          [1, 2],
          [3, 4],
          [5, 6],
        ]),
      );
      const r = load(pool, seg({ options: sack3, payload: pattern(77) }));
      assert.ok(w.rebuildV4(r, 20, OptionPlan.TimestampOnly));
      const tsOnly = concat(OUR_TOA, raw(TS).subarray(0, 10), Uint8Array.of(0, 0));
      frames.push({ bytes: r.view().slice(), options: tsOnly, len: 77, seq: SEQ });
      const s = load(pool, seg({ options: sack3, payload: pattern(3000) }));
      const n = w.splitV4(s, 20, OptionPlan.TimestampOnly, 1500);
      assert.equal(n, 3);
      for (let k = 0; k < n; k++) {
        const room = 1500 - 60;
        frames.push({
          bytes: w.pieces[k]!.view().slice(),
          options: tsOnly,
          len: Math.min(room, 3000 - k * room),
          seq: SEQ + k * room,
        });
      }
      const rows = tsharkDecode(
        frames.map((f) => f.bytes),
        [
          'ip.checksum.status',
          'tcp.checksum.status',
          'tcp.options',
          'tcp.len',
          'tcp.seq_raw',
          'tcp.srcport',
          'ip.src',
        ],
      );
      assert.equal(rows.length, frames.length);
      frames.forEach((f, i) => {
        const row = rows[i]!;
        assert.equal(row['ip.checksum.status'], '1', `frame ${i}: IP checksum`);
        assert.equal(row['tcp.checksum.status'], '1', `frame ${i}: TCP checksum`);
        assert.equal(row['tcp.options'], hex(f.options), `frame ${i}: options`);
        assert.equal(row['tcp.len'], String(f.len), `frame ${i}: payload length`);
        assert.equal(row['tcp.seq_raw'], String(f.seq >>> 0), `frame ${i}: seq`);
        assert.equal(row['tcp.srcport'], String(CPORT));
        assert.equal(row['ip.src'], '203.0.113.7');
      });
    },
  );
});

describe('the 20-byte TOA (IPv6 clients): insertToa, rebuildToa, splitToa on IPv6 and IPv4 packets', () => {
  const CIP6 = Uint8Array.from({ length: 16 }, (_, i) => 0x20 + i);
  const SRC6 = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
  const DST6 = Uint8Array.from({ length: 16 }, (_, i) => 0xb0 + i);
  const TOA20 = concat(Uint8Array.of(254, 20, CPORT >>> 8, CPORT & 0xff), CIP6);
  const pool = new PacketPool(64);
  const writer = (): ToaWriter => {
    const w = new ToaWriter(pool);
    w.setToaV6(254, CPORT, CIP6, 0);
    return w;
  };
  const seg6 = (s: Seg = {}): Uint8Array =>
    buildSegment6({
      src: SRC6,
      dst: DST6,
      sport: CPORT,
      dport: 80,
      seq: s.seq ?? SEQ,
      ack: 1,
      flags: s.flags ?? TCP_ACK,
      rawOptions: s.options,
      payload: s.payload,
    });
  /** Options of the packet (IP header of `ipHl`), checked. */
  const optionsOf = (b: Uint8Array, ipHl: number): Uint8Array => {
    const t = new TcpView().wrap(b, ipHl);
    return b.slice(ipHl + 20, ipHl + t.headerLength);
  };
  const valid = (b: Uint8Array, v6: boolean): boolean =>
    v6 ? checksumsValid6(b) : checksumsValid(b);

  for (const v6 of [true, false]) {
    const ipHl = v6 ? 40 : 20;
    const make = (s: Seg = {}): Uint8Array => (v6 ? seg6(s) : seg(s));
    const fam = v6 ? 'IPv6' : 'IPv4';

    it(`${fam}: insert with 20 bytes left for options (20 in use): the TOA first, 40 in all, checksums right`, () => {
      for (const headroom of [128, 0]) {
        const opts = raw(
          opt.nop(),
          opt.nop(),
          opt.timestamp(1, 2),
          opt.nop(),
          opt.nop(),
          opt.sackPermitted(),
        );
        assert.equal(opts.length, 16);
        const optsFull = concat(opts, Uint8Array.of(1, 1, 1, 1));
        const p = pool.take();
        p.load(make({ options: optsFull, payload: pattern(33) }), headroom);
        writer().insertToa(p, ipHl, v6);
        const out = p.view().slice();
        assert.ok(valid(out, v6), `${fam}, headroom ${headroom}: checksums`);
        assert.deepEqual([...optionsOf(out, ipHl)], [...TOA20, ...optsFull]);
        assert.equal(out.length, ipHl + 60 + 33);
        pool.give(p);
      }
    });

    it(`${fam}: rebuild when 21 bytes of options are in use: DropPadding makes room, TimestampOnly when nothing else does`, () => {
      const w = writer();
      // 3 NOPs + timestamp (10) + SACK-permitted (2) + window scale (3) + 3 NOPs = 21: no room for 20 as they stand.
      const opts = raw(
        opt.nop(),
        opt.nop(),
        opt.nop(),
        opt.timestamp(7, 8),
        opt.sackPermitted(),
        opt.wscale(7),
        opt.nop(),
        opt.nop(),
        opt.nop(),
      );
      const b = make({ options: opts, payload: pattern(10) });
      const o = new TcpView().wrap(b, ipHl);
      assert.equal(
        w.plan(b, ipHl + 20, ipHl + o.headerLength, false, TOA_V6_LEN),
        OptionPlan.DropPadding,
      );
      const p = pool.take();
      p.load(b);
      assert.ok(w.rebuildToa(p, ipHl, OptionPlan.DropPadding, v6));
      const out = p.view().slice();
      assert.ok(valid(out, v6));
      assert.deepEqual(
        [...optionsOf(out, ipHl)],
        [...pad(concat(TOA20, raw(opt.timestamp(7, 8), opt.sackPermitted(), opt.wscale(7))))],
      );
      pool.give(p);
      // SACK blocks fill the rest: only the timestamp stays.
      const sack = raw(
        opt.nop(),
        opt.nop(),
        opt.timestamp(7, 8),
        opt.sack([
          [1, 2],
          [3, 4],
        ]),
      );
      const s = make({ options: sack, payload: pattern(10) });
      const so = new TcpView().wrap(s, ipHl);
      assert.equal(
        w.plan(s, ipHl + 20, ipHl + so.headerLength, false, TOA_V6_LEN),
        OptionPlan.TimestampOnly,
      );
      assert.equal(
        w.plan(s, ipHl + 20, ipHl + so.headerLength, true, TOA_V6_LEN),
        OptionPlan.Impossible,
        'never on a SYN',
      );
      const q = pool.take();
      q.load(s);
      assert.ok(w.rebuildToa(q, ipHl, OptionPlan.TimestampOnly, v6));
      const qo = q.view().slice();
      assert.ok(valid(qo, v6));
      assert.deepEqual([...optionsOf(qo, ipHl)], [...pad(concat(TOA20, raw(opt.timestamp(7, 8))))]);
      pool.give(q);
      // A wrong checksum is refused, the packet untouched.
      const bad = make({ options: opts, payload: pattern(10) });
      bad[bad.length - 1] = bad[bad.length - 1]! ^ 1;
      const r = pool.take();
      r.load(bad);
      assert.equal(w.rebuildToa(r, ipHl, OptionPlan.DropPadding, v6), false);
      assert.deepEqual([...r.view()], [...bad]);
      pool.give(r);
    });

    it(`${fam}: split at the edges: exactly the MTU stays one piece, one byte over makes two, each with the TOA`, () => {
      const w = writer();
      const mtu = 600;
      const room = mtu - ipHl - 20 - 20;
      for (const [payload, pieces] of [
        [room, 1],
        [room + 1, 2],
        [3 * room, 3],
        [0, 1],
      ] as const) {
        const p = pool.take();
        assert.ok(p.load(make({ payload: pattern(payload), flags: TCP_ACK | TCP_PSH | TCP_FIN })));
        const n = w.splitToa(p, ipHl, OptionPlan.Keep, mtu, v6);
        assert.equal(n, pieces, `${fam}, payload ${payload}`);
        let seq = SEQ;
        let total = 0;
        for (let k = 0; k < n; k++) {
          const q = w.pieces[k]!.view().slice();
          assert.ok(valid(q, v6), `${fam}, payload ${payload}, piece ${k}`);
          assert.ok(q.length <= mtu);
          assert.deepEqual([...optionsOf(q, ipHl)], [...TOA20]);
          const t = new TcpView().wrap(q, ipHl);
          assert.equal(t.seq, seq >>> 0);
          const len = q.length - ipHl - 40;
          seq += len;
          total += len;
          assert.equal(
            (t.flags & (TCP_FIN | TCP_PSH)) !== 0,
            k === n - 1,
            'FIN and PSH on the last piece',
          );
          pool.give(w.pieces[k]!);
        }
        assert.equal(total, payload);
        pool.give(p);
      }
      // An MTU that cannot hold the headers and one byte: 0 pieces.
      const p = pool.take();
      p.load(make({ payload: pattern(10) }));
      assert.equal(w.splitToa(p, ipHl, OptionPlan.Keep, ipHl + 40, v6), 0);
      pool.give(p);
    });
  }

  it('kind 253 when asked', () => {
    const w = new ToaWriter(pool);
    w.setToaV6(253, CPORT, CIP6, 0);
    const p = pool.take();
    p.load(seg6({ payload: pattern(5) }));
    w.insertToa(p, 40, true);
    const out = p.view().slice();
    assert.ok(checksumsValid6(out));
    assert.deepEqual([...optionsOf(out, 40)], [253, 20, ...TOA20.subarray(2)]);
    pool.give(p);
  });
});
