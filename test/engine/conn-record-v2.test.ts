/**
 * Format version 2 of the connection record: 16-byte address slots and both
 * families, written for a table with IPv6 or FNAT64 connections; read back
 * field for field, checked, and fuzzed as version 1 is.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ConnRecordError,
  FAMILY_IPV4,
  FAMILY_IPV6,
  RECORD_V1_SIZE,
  RECORD_V2_SIZE,
  RecordV2Field,
  SNAPSHOT_HEADER_SIZE,
  SNAPSHOT_VERSION_V2,
  decodeSnapshot,
  readSnapshotHeader,
  recordOffset,
} from '../../src/engine/conn-record.js';
import { Engine } from '../../src/engine/engine.js';
import { PacketPool } from '../../src/engine/packet.js';
import { addressKey } from '../../src/wire/address.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { TCP_ACK, TCP_SYN } from '../../src/wire/tcp.js';
import { opt } from '../../src/wire/tcp-options.js';
import { feedRaw } from '../support/engine-fixture.js';
import { buildSegment, buildSegment6, pattern, v6 } from '../support/packets.js';
import { rng as seeded } from '../support/rng.js';
import type { SegmentFields } from '../support/engine-fixture.js';
import {
  LIP6,
  LIP64,
  RIP6,
  RIP64,
  VIP6,
  addVipService,
  ip6,
  rsSegmentOf,
} from '../support/engine6-fixture.js';

const VIP4 = parseIpv4('192.0.2.61');

/** IPv6 → IPv6 on 80, FNAT64 on 81, IPv4 on 82; `reversed` configures them in the other order. */
function engine(reversed = false, pool?: PacketPool, maxConnections = 256): Engine {
  const e = new Engine(
    { maxConnections, isnSecret: 9, maxRealServers: 16, maxLocalAddresses: 8 },
    pool,
  );
  const add = [
    () => addVipService(e, { vport: 80, rs: 6, rport: 8080 }),
    () => addVipService(e, { vport: 81, rs: 4, rport: 8081 }),
    () =>
      e.addService({
        vip: VIP4,
        vport: 82,
        scheduler: 'rr',
        laddrs: [LIP64],
        realServers: [{ addr: RIP64, port: 8082, weight: 1 }],
      }),
  ];
  for (const f of reversed ? add.reverse() : add) f();
  return e;
}

function client6(k: number): Uint8Array {
  const c = v6('2001:db8:c::');
  c[14] = k >>> 8;
  c[15] = k & 0xff;
  return c;
}

/** Client k's segment to port 80 + k % 3: an IPv4 client on 82, an IPv6 one otherwise. */
function fromClient(k: number, s: SegmentFields): Uint8Array {
  const vport = 80 + (k % 3);
  const f = { ...s, sport: 30000 + k, dport: vport };
  return vport === 82
    ? buildSegment({ src: 0xcb007100 + k, dst: VIP4, ...f })
    : buildSegment6({ src: client6(k), dst: VIP6, ...f });
}

/** Opens n connections spread over the three services, the RS answering each; half established. */
function fill(e: Engine, n: number): void {
  for (let k = 0; k < n; k++) {
    const seq = 1000 * k;
    const options = k % 3 === 2 ? undefined : [opt.mss(1440)];
    feedRaw(e, fromClient(k, { seq, flags: TCP_SYN, options }), k);
    if (k % 2 === 0) continue;
    const c = e.listConnections().find((x) => x.cport === 30000 + k)!;
    const synAck = rsSegmentOf(typeof c.rip === 'number' ? 4 : 6, {
      rport: c.rport,
      lport: c.lport,
      seq: 7 * k,
      ack: 0,
      flags: TCP_SYN | TCP_ACK,
    });
    feedRaw(e, synAck, k);
    feedRaw(e, fromClient(k, { seq: seq + 1, ack: 7 * k + 1, flags: TCP_ACK }), k);
  }
}

function entries(e: Engine): string[] {
  return e
    .listConnections()
    .map(
      (c) =>
        `${addressKey(c.cip)}:${c.cport} ${addressKey(c.vip)}:${c.vport} ${addressKey(c.lip)}:${c.lport} ${addressKey(c.rip)}:${c.rport} ${c.state} ${c.expiresInMs}`,
    )
    .sort();
}

describe('connection record version 2', () => {
  it('a table with IPv6 and FNAT64 connections exports as version 2 (108 bytes a record); one without stays version 1', () => {
    const e = engine();
    fill(e, 30);
    const snap = e.exportConnections();
    const h = readSnapshotHeader(snap);
    assert.equal(h.version, SNAPSHOT_VERSION_V2);
    assert.equal(h.recordSize, RECORD_V2_SIZE);
    assert.equal(h.count, 30);
    assert.equal(snap.length, SNAPSHOT_HEADER_SIZE + 30 * 108);
    const { records } = decodeSnapshot(snap);
    const fams = records.map((r) => `${r.family}/${r.replyFamily}`).sort();
    assert.deepEqual(new Set(fams), new Set(['4/4', '6/4', '6/6']));
    const only4 = engine();
    feedRaw(
      only4,
      buildSegment({ src: 0xcb007101, dst: VIP4, sport: 1, dport: 82, seq: 1, flags: TCP_SYN }),
    );
    const h4 = readSnapshotHeader(only4.exportConnections());
    assert.equal(h4.version, 1);
    assert.equal(h4.recordSize, RECORD_V1_SIZE);
  });

  it('lays a record out at the documented offsets: families, 16-byte slots (IPv4 in the last 4), ports, the rest', () => {
    const e = engine();
    fill(e, 3);
    const snap = e.exportConnections();
    const dv = new DataView(snap.buffer);
    const { records } = decodeSnapshot(snap);
    for (let k = 0; k < records.length; k++) {
      const r = records[k]!;
      const o = recordOffset(k, RECORD_V2_SIZE);
      assert.equal(snap[o + RecordV2Field.Family], r.family);
      assert.equal(snap[o + RecordV2Field.ReplyFamily], r.replyFamily);
      assert.equal(dv.getUint16(o + RecordV2Field.Vport), r.vport);
      assert.equal(dv.getUint16(o + RecordV2Field.Lport), r.lport);
      assert.equal(dv.getUint32(o + RecordV2Field.RemainingMs), r.remainingMs);
      if (r.family === FAMILY_IPV6)
        assert.deepEqual(
          [...snap.subarray(o + RecordV2Field.Vip, o + RecordV2Field.Vip + 16)],
          [...VIP6],
        );
      else {
        assert.deepEqual(
          [...snap.subarray(o + RecordV2Field.Vip, o + RecordV2Field.Vip + 12)],
          new Array(12).fill(0),
        );
        assert.equal(dv.getUint32(o + RecordV2Field.Vip + 12), VIP4);
      }
      if (r.replyFamily === FAMILY_IPV4)
        assert.equal(dv.getUint32(o + RecordV2Field.Rip + 12), RIP64);
      else
        assert.deepEqual(
          [...snap.subarray(o + RecordV2Field.Rip, o + RecordV2Field.Rip + 16)],
          [...RIP6],
        );
    }
    assert.equal(RecordV2Field.RemainingMs + 4, RECORD_V2_SIZE, 'the last field ends the record');
  });

  it('imports into an engine configured in another order: every entry field for field, and traffic goes on the same', () => {
    const e = engine();
    fill(e, 60);
    e.tick(100);
    const snap = e.exportConnections();
    const f = engine(true);
    f.tick(100);
    const r = f.importConnections(snap, 0);
    assert.equal(r.imported, 60);
    assert.equal(r.skipped, 0);
    assert.deepEqual(entries(f), entries(e));
    // The same client segment on both engines leaves byte for byte the same.
    for (let k = 1; k < 60; k += 2) {
      const seg = fromClient(k, {
        seq: 1000 * k + 1,
        ack: 7 * k + 1,
        flags: TCP_ACK,
        payload: pattern(100),
      });
      const a = feedRaw(e, seg).map((o) => [...o.bytes]);
      const b = feedRaw(f, seg).map((o) => [...o.bytes]);
      assert.equal(a.length, 1);
      assert.deepEqual(b, a, `connection ${k}`);
    }
    // Imported twice: every record is there already.
    const again = f.importConnections(snap, 0);
    assert.equal(again.reasons.exists, 60);
  });

  it('skips what the importer cannot hold, by reason', () => {
    const e = engine();
    fill(e, 30);
    const snap = e.exportConnections();
    const f = new Engine({ maxConnections: 64 });
    f.addService({
      vip: ip6(VIP6),
      vport: 80,
      scheduler: 'rr',
      laddrs: [ip6(LIP6)],
      realServers: [],
    });
    f.addService({ vip: ip6(VIP6), vport: 81, scheduler: 'rr', laddrs: [], realServers: [] });
    f.addLocalAddress(1, LIP64);
    f.addRealServer(1, { addr: RIP64, port: 8081, weight: 1 });
    const r = f.importConnections(snap, 0);
    assert.equal(r.imported, 10, 'the FNAT64 ones');
    assert.equal(r.reasons.no_real_server, 10);
    assert.equal(r.reasons.no_service, 10);
  });

  it('refuses a record it cannot mean: a clear ConnRecordError naming record and field, nothing entered', () => {
    const e = engine();
    fill(e, 3);
    const snap = e.exportConnections();
    const { records } = decodeSnapshot(snap);
    const k6 = records.findIndex((r) => r.family === FAMILY_IPV6 && r.replyFamily === FAMILY_IPV6);
    const k4 = records.findIndex((r) => r.replyFamily === FAMILY_IPV4);
    const cases: [string, (b: Uint8Array) => void, RegExp][] = [
      [
        'IPv4 client, IPv6 reply',
        (b) => {
          b[recordOffset(k4, 108)] = 4;
          b[recordOffset(k4, 108) + 4] = 6;
        },
        /IPv4 client with an IPv6 reply/,
      ],
      ['family 5', (b) => (b[recordOffset(k6, 108)] = 5), /address family 5/],
      [
        'IPv4 slot with a prefix',
        (b) => (b[recordOffset(k4, 108) + RecordV2Field.Rip] = 1),
        /RIP is IPv4 but its slot/,
      ],
      [
        'IPv6 LIP ::',
        (b) =>
          b.fill(
            0,
            recordOffset(k6, 108) + RecordV2Field.Lip,
            recordOffset(k6, 108) + RecordV2Field.Lip + 16,
          ),
        /LIP is ::/,
      ],
    ];
    for (const [name, spoil, why] of cases) {
      const b = snap.slice();
      spoil(b);
      const f = engine();
      assert.throws(
        () => f.importConnections(b, 0),
        (err: unknown) => err instanceof ConnRecordError && why.test(err.message),
        name,
      );
      assert.equal(f.table.count, 0);
    }
  });

  it('decoder fuzz: 2000 seeded mutants of a version-2 snapshot give a ConnRecordError or a consistent import', () => {
    const e = engine();
    fill(e, 24);
    const valid = e.exportConnections();
    const next = seeded(0x6e6);
    const rnd = (n: number): number => Math.floor(next() * n);
    const pool = new PacketPool(64);
    let errors = 0;
    let imports = 0;
    for (let round = 0; round < 2000; round++) {
      let m = valid.slice();
      const kind = rnd(5);
      if (kind === 0) m = m.subarray(0, rnd(m.length));
      else {
        const flips = 1 + rnd(4);
        for (let i = 0; i < flips; i++) {
          const at =
            kind === 1
              ? rnd(SNAPSHOT_HEADER_SIZE)
              : SNAPSHOT_HEADER_SIZE + rnd(m.length - SNAPSHOT_HEADER_SIZE);
          m[at] = kind === 2 ? m[at]! ^ (1 << rnd(8)) : rnd(256);
        }
      }
      const f = engine(round % 2 === 1, pool, 64);
      f.tick(10);
      try {
        const r = f.importConnections(m, 0);
        imports++;
        assert.equal(r.imported + r.skipped, readSnapshotHeader(m).count);
        assert.equal(f.table.count, r.imported);
      } catch (err) {
        if (!(err instanceof ConnRecordError)) throw err;
        errors++;
        assert.equal(f.table.count, 0);
      }
      f.tick(10 + 2 ** 31 + 1000);
      for (let i = 0; i < f.outCount; i++) f.pool.give(f.out[i]!);
      f.clearOutput();
      assert.equal(f.table.count, 0, `mutant ${round}: all expired`);
    }
    assert.ok(errors > 300 && imports > 300, `${errors} refused, ${imports} imported`);
  });
});
