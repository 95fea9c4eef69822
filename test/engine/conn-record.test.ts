/**
 * The connection record and snapshot format on their own: the header and
 * its checks (each malformation a ConnRecordError saying what is wrong),
 * 60 bytes per connection, a state code for every engine state, every field
 * of random records through import and export unchanged (into an engine
 * whose indexes all differ), and the decoder under seeded random mutation:
 * a ConnRecordError or a valid import, never anything else, and the table
 * consistent either way.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';

import {
  ConnRecordError,
  FAMILY_IPV4,
  HeaderField,
  MAX_REMAINING_MS,
  PROTO_TCP,
  RECORD_V1_SIZE,
  RF_FDATA_KNOWN,
  RF_SP_WIN_IN,
  RF_SP_WIN_OUT,
  RF_SYNPROXY,
  RecordField,
  SNAPSHOT_HEADER_SIZE,
  SNAPSHOT_MAGIC,
  SNAPSHOT_VERSION,
  STATE_CODES,
  decodeSnapshot,
  emptyRecord,
  readSnapshotHeader,
  recordOffset,
  snapshotAgeMs,
  stateCode,
  stateOfCode,
  writeHeader,
  writeRecord,
  type ConnRecord,
} from '../../src/engine/conn-record.js';
import { TCP_STATE_NAMES } from '../../src/engine/tcp-state.js';
import type { Engine } from '../../src/engine/engine.js';
import { PacketPool } from '../../src/engine/packet.js';
import { PROXY_V1_MAX_LENGTH } from '../../src/wire/proxy-protocol.js';
import { tableInconsistency } from '../support/table-consistency.js';
import { TRANSFER_SERVICES, exportingEngine, importingEngine } from '../support/transfer-config.js';

function snapshotOf(
  records: ConnRecord[],
  header: Partial<Parameters<typeof writeHeader>[1]> = {},
) {
  const b = new Uint8Array(SNAPSHOT_HEADER_SIZE + records.length * RECORD_V1_SIZE);
  const dv = new DataView(b.buffer);
  writeHeader(dv, {
    version: SNAPSHOT_VERSION,
    recordSize: RECORD_V1_SIZE,
    count: records.length,
    engineClockMs: 1234.5,
    isnClockOriginMs: 1_765_000_000_000,
    isnSecret: 0xdeadbeef,
    pendingSkipped: 3,
    ...header,
  });
  records.forEach((r, k) => writeRecord(dv, recordOffset(k), r));
  return b;
}

/** A valid record of service s (its VIP, RS and a LIP of its own). */
function recordFor(s: (typeof TRANSFER_SERVICES)[number], patch: Partial<ConnRecord>): ConnRecord {
  return {
    ...emptyRecord(),
    state: 3,
    cip: 0xcb007107,
    cport: 40000,
    vip: s.vip,
    vport: s.vport,
    lip: s.lips[0]!,
    lport: 6000,
    rip: s.rip,
    rport: s.rport,
    remainingMs: 90_000,
    ...patch,
  };
}

const STATES = Object.keys(STATE_CODES).map((n) => TCP_STATE_NAMES.indexOf(n as never));

/** Random valid records for the transfer services, client and reply tuples unique. */
const arbRecords = fc
  .uniqueArray(
    fc.record({
      svc: fc.integer({ min: 0, max: TRANSFER_SERVICES.length - 1 }),
      lipPick: fc.nat(1),
      cip: fc.integer({ min: 1, max: 0xffffffff }),
      cport: fc.integer({ min: 1, max: 65535 }),
      lport: fc.integer({ min: 5000, max: 65000 }),
      state: fc.constantFrom(...STATES),
      fdata: fc.boolean(),
      winOut: fc.boolean(),
      winIn: fc.boolean(),
      seqDelta: fc.integer({ min: 0, max: 0xffffffff }),
      lbIsn: fc.integer({ min: 0, max: 0xffffffff }),
      fdataSeq: fc.integer({ min: 0, max: 0xffffffff }),
      clientNxt: fc.integer({ min: 0, max: 0xffffffff }),
      rsNxt: fc.integer({ min: 0, max: 0xffffffff }),
      ackDelta: fc.integer({ min: 0, max: 0xffffffff }),
      spData: fc.integer({ min: 0, max: (1 << 14) - 1 }),
      shift: fc.integer({ min: 0, max: PROXY_V1_MAX_LENGTH }),
      remainingMs: fc.integer({ min: 1, max: MAX_REMAINING_MS }),
    }),
    {
      maxLength: 40,
      selector: (x) => `${x.cip}:${x.cport}`,
    },
  )
  .map((xs) => {
    const seenReply = new Set<string>();
    const out: ConnRecord[] = [];
    for (const x of xs) {
      const s = TRANSFER_SERVICES[x.svc]!;
      const lip = s.lips[x.lipPick % s.lips.length]!;
      const key = `${lip}:${x.lport}:${s.rip}:${s.rport}`;
      if (seenReply.has(key)) continue;
      seenReply.add(key);
      const sp = s.synProxy;
      out.push({
        ...emptyRecord(),
        family: FAMILY_IPV4,
        protocol: PROTO_TCP,
        state: x.state,
        flags:
          (x.fdata ? RF_FDATA_KNOWN : 0) |
          (sp ? RF_SYNPROXY | (x.winOut ? RF_SP_WIN_OUT : 0) | (x.winIn ? RF_SP_WIN_IN : 0) : 0),
        cip: x.cip,
        cport: x.cport,
        vip: s.vip,
        vport: s.vport,
        lip,
        lport: x.lport,
        rip: s.rip,
        rport: s.rport,
        seqDelta: x.seqDelta,
        lbIsn: x.lbIsn,
        fdataSeq: x.fdataSeq,
        clientNxt: x.clientNxt,
        rsNxt: x.rsNxt,
        ackDelta: sp ? x.ackDelta : 0,
        spData: sp ? x.spData : 0,
        shift: s.proxyProtocol === 0 ? 0 : x.shift,
        remainingMs: x.remainingMs,
      });
    }
    return out;
  });

const byTuple = (a: ConnRecord, b: ConnRecord): number => a.cip - b.cip || a.cport - b.cport;

function assertConsistent(e: Engine, what: string): void {
  const v = tableInconsistency(e);
  assert.equal(v, null, `${what}: ${v}`);
}

describe('snapshot format', () => {
  it('is 40 bytes of header and 60 per connection, as measured on a snapshot', () => {
    assert.equal(SNAPSHOT_HEADER_SIZE, 40);
    assert.equal(RECORD_V1_SIZE, 60);
    const s = TRANSFER_SERVICES[0]!;
    const records = [1, 2, 3, 4, 5].map((k) => recordFor(s, { cport: k, lport: 6000 + k }));
    const e = exportingEngine();
    assert.equal(e.importConnections(snapshotOf(records), 0).imported, 5);
    const snap = e.exportConnections();
    assert.equal((snap.length - SNAPSHOT_HEADER_SIZE) / 5, 60, 'bytes per connection');
    assert.equal(snap.length, 340);
  });

  it('writes its header big-endian: magic "FNCT", version, sizes, count, clock, ISN secret and origin', () => {
    const e = exportingEngine({ isnSecret: 0x01020304, isnClockOriginMs: 1_765_000_000_123 });
    e.tick(4321.25);
    const snap = e.exportConnections();
    assert.deepEqual([...snap.subarray(0, 4)], [0x46, 0x4e, 0x43, 0x54]);
    assert.equal(Buffer.from(snap.subarray(0, 4)).toString('latin1'), 'FNCT');
    const h = readSnapshotHeader(snap);
    assert.deepEqual(h, {
      version: 1,
      recordSize: 60,
      count: 0,
      engineClockMs: 4321.25,
      isnClockOriginMs: 1_765_000_000_123,
      isnSecret: 0x01020304,
      pendingSkipped: 0,
    });
    assert.deepEqual([...snap.subarray(32, 36)], [1, 2, 3, 4], 'ISN secret at byte 32, big-endian');
  });

  it('says how old a snapshot is by the wall clock (a checkpoint read after a crash)', () => {
    const e = exportingEngine({ isnClockOriginMs: 1_765_000_000_000 });
    e.tick(30_000);
    const h = readSnapshotHeader(e.exportConnections());
    assert.equal(snapshotAgeMs(h, 1_765_000_000_000 + 30_000 + 1234), 1234);
    assert.equal(snapshotAgeMs(h, 1_765_000_000_000), 0, 'a clock that went back');
    const noOrigin = readSnapshotHeader(exportingEngine().exportConnections());
    assert.equal(snapshotAgeMs(noOrigin, Date.now()), undefined);
  });

  it('has a record state code for every engine state but NONE, each code distinct and IPVS-numbered', () => {
    const codes = new Set<number>();
    TCP_STATE_NAMES.forEach((name, state) => {
      if (name === 'NONE') {
        assert.equal(stateCode(state), 0);
        return;
      }
      const code = stateCode(state);
      assert.ok(code > 0, `${name} has a code`);
      assert.equal(stateOfCode(code), state);
      codes.add(code);
    });
    assert.equal(codes.size, TCP_STATE_NAMES.length - 1);
    assert.equal(STATE_CODES.ESTABLISHED, 1, 'IP_VS_TCP_S_ESTABLISHED');
    assert.equal(STATE_CODES.LAST_ACK, 8, 'IP_VS_TCP_S_LAST_ACK');
    assert.equal(stateOfCode(0), -1);
    assert.equal(stateOfCode(99), -1);
  });

  it('lays a record out at the documented offsets', () => {
    const b = snapshotOf([
      recordFor(TRANSFER_SERVICES[3]!, {
        state: TCP_STATE_NAMES.indexOf('FIN_WAIT'),
        flags: RF_SYNPROXY | RF_FDATA_KNOWN,
        cip: 0x01020304,
        cport: 0x0506,
        lport: 0x1718,
        seqDelta: 0x11111111,
        lbIsn: 0x22222222,
        fdataSeq: 0x33333333,
        clientNxt: 0x44444444,
        rsNxt: 0x55555555,
        ackDelta: 0x66666666,
        spData: 0x1234,
        shift: 0,
        remainingMs: 0x00abcdef,
      }),
    ]);
    const r = new DataView(b.buffer, SNAPSHOT_HEADER_SIZE);
    assert.equal(r.getUint8(RecordField.Family), 4);
    assert.equal(r.getUint8(RecordField.Protocol), 6);
    assert.equal(r.getUint8(RecordField.State), STATE_CODES.FIN_WAIT);
    assert.equal(r.getUint8(RecordField.Flags), RF_SYNPROXY | RF_FDATA_KNOWN);
    assert.equal(r.getUint32(RecordField.Cip), 0x01020304);
    assert.equal(r.getUint16(RecordField.Cport), 0x0506);
    assert.equal(r.getUint16(RecordField.Vport), 443);
    assert.equal(r.getUint32(RecordField.Vip), TRANSFER_SERVICES[3]!.vip);
    assert.equal(r.getUint16(RecordField.Lport), 0x1718);
    assert.equal(r.getUint16(RecordField.Rport), 8443);
    assert.equal(r.getUint32(RecordField.SeqDelta), 0x11111111);
    assert.equal(r.getUint32(RecordField.LbIsn), 0x22222222);
    assert.equal(r.getUint32(RecordField.FdataSeq), 0x33333333);
    assert.equal(r.getUint32(RecordField.ClientNxt), 0x44444444);
    assert.equal(r.getUint32(RecordField.RsNxt), 0x55555555);
    assert.equal(r.getUint32(RecordField.AckDelta), 0x66666666);
    assert.equal(r.getUint16(RecordField.SpData), 0x1234);
    assert.equal(r.getUint32(RecordField.RemainingMs), 0x00abcdef);
    assert.equal(RecordField.RemainingMs + 4, RECORD_V1_SIZE, 'the last field ends the record');
  });
});

describe('snapshot checks: a clear ConnRecordError, nothing entered', () => {
  const good = (): Uint8Array => snapshotOf([recordFor(TRANSFER_SERVICES[0]!, {})]);
  const cases: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
    ['empty', () => new Uint8Array(0), /truncated: 0 bytes, the header alone is 40/],
    ['half a header', (b) => b.subarray(0, 20), /truncated: 20 bytes/],
    [
      'bad magic',
      (b) => {
        b[0] = 0x47;
        return b;
      },
      /not a connection snapshot: magic 0x474e4354/,
    ],
    [
      'unknown version',
      (b) => {
        new DataView(b.buffer).setUint16(HeaderField.Version, 3);
        return b;
      },
      /unknown snapshot format version 3 \(this build reads versions 1 and 2\)/,
    ],
    [
      'record size mismatch',
      (b) => {
        new DataView(b.buffer).setUint16(HeaderField.RecordSize, 64);
        return b;
      },
      /record size 64, version 1 records are 60 bytes/,
    ],
    [
      'header size mismatch',
      (b) => {
        new DataView(b.buffer).setUint16(HeaderField.HeaderSize, 48);
        return b;
      },
      /header size 48/,
    ],
    [
      'truncated record',
      (b) => b.subarray(0, b.length - 1),
      /truncated: 1 records need 100 bytes, it has 99/,
    ],
    [
      'count beyond the length',
      (b) => {
        new DataView(b.buffer).setUint32(HeaderField.Count, 0xffffffff);
        return b;
      },
      /truncated: 4294967295 records need/,
    ],
    [
      'trailing bytes',
      (b) => {
        const c = new Uint8Array(b.length + 7);
        c.set(b);
        return c;
      },
      /7 bytes after its 1 records/,
    ],
    [
      'NaN engine clock',
      (b) => {
        new DataView(b.buffer).setFloat64(HeaderField.EngineClockMs, NaN);
        return b;
      },
      /engine clock NaN ms out of range/,
    ],
    [
      'negative ISN clock origin',
      (b) => {
        new DataView(b.buffer).setFloat64(HeaderField.IsnClockOriginMs, -1);
        return b;
      },
      /ISN clock origin -1 ms out of range/,
    ],
  ];
  const field = (off: number, set: (dv: DataView, at: number) => void) => (b: Uint8Array) => {
    set(new DataView(b.buffer), SNAPSHOT_HEADER_SIZE + off);
    return b;
  };
  const recordCases: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
    ['IPv6 family', field(RecordField.Family, (d, a) => d.setUint8(a, 6)), /address family 6/],
    [
      'ICMP',
      field(RecordField.Protocol, (d, a) => d.setUint8(a, 1)),
      /protocol 1, version 1 records are TCP \(6\) or UDP \(17\)/,
    ],
    [
      'UDP with a TCP state',
      field(RecordField.Protocol, (d, a) => d.setUint8(a, 17)),
      /state code 1 in a UDP record \(UDP flows have none: 0\)/,
    ],
    ['state 0', field(RecordField.State, (d, a) => d.setUint8(a, 0)), /state code 0 is none of/],
    ['state 9', field(RecordField.State, (d, a) => d.setUint8(a, 9)), /state code 9/],
    [
      'an unknown flag',
      field(RecordField.Flags, (d, a) => d.setUint8(a, 0x20)),
      /flags 0x20 has unknown bits/,
    ],
    [
      'NAT with SYNPROXY',
      field(RecordField.Flags, (d, a) => d.setUint8(a, 0x10 | 0x02)),
      /NAT and SYNPROXY flags together/,
    ],
    [
      'window flag without SYNPROXY',
      field(RecordField.Flags, (d, a) => d.setUint8(a, RF_SP_WIN_OUT)),
      /window flags without the SYNPROXY flag/,
    ],
    [
      'ackDelta without SYNPROXY',
      field(RecordField.AckDelta, (d, a) => d.setUint32(a, 5)),
      /ackDelta\/spData set without the SYNPROXY flag/,
    ],
    [
      'spData beyond 14 bits',
      field(RecordField.SpData, (d, a) => d.setUint16(a, 0x4000)),
      /beyond 14 bits/,
    ],
    ['VIP 0', field(RecordField.Vip, (d, a) => d.setUint32(a, 0)), /an address .* is 0\.0\.0\.0/],
    ['lport 0', field(RecordField.Lport, (d, a) => d.setUint16(a, 0)), /a port .* is 0/],
    [
      'shift 200',
      field(RecordField.Shift, (d, a) => d.setUint8(a, 200)),
      /shift 200 beyond the longest header \(107\)/,
    ],
    ['reserved byte', field(RecordField.Reserved, (d, a) => d.setUint8(a, 1)), /reserved byte 55/],
    [
      'remaining beyond 2^31',
      field(RecordField.RemainingMs, (d, a) => d.setUint32(a, 0x80000000)),
      /remaining timeout 2147483648 ms beyond/,
    ],
  ];
  for (const [name, mangle, message] of [...cases, ...recordCases]) {
    it(name, () => {
      const e = importingEngine();
      const bad = mangle(good());
      assert.throws(
        () => e.importConnections(bad, 0),
        (err: unknown) => err instanceof ConnRecordError && message.test(err.message),
      );
      assert.equal(e.table.count, 0);
    });
  }

  it('names the record and byte of a bad one, and enters none of the good ones before it', () => {
    const s = TRANSFER_SERVICES[0]!;
    const b = snapshotOf([0, 1, 2].map((k) => recordFor(s, { cport: 100 + k, lport: 7000 + k })));
    new DataView(b.buffer).setUint8(recordOffset(2) + RecordField.State, 77);
    const e = importingEngine();
    assert.throws(() => e.importConnections(b, 0), /record 2 \(byte 160\): state code 77/);
    assert.equal(e.table.count, 0);
    assertConsistent(e, 'after a refused snapshot');
  });

  it('refuses a bad elapsed time', () => {
    const e = importingEngine();
    for (const v of [-1, NaN, Infinity])
      assert.throws(() => e.importConnections(good(), v), RangeError);
  });

  it('refuses something that is not bytes', () => {
    assert.throws(
      () => readSnapshotHeader('FNCT' as unknown as Uint8Array),
      (err: unknown) => err instanceof ConnRecordError,
    );
  });
});

describe('every field through import and export', () => {
  it('random records (every state, SYNPROXY and PROXY shifts) come back field for field, across two configurations', () => {
    fc.assert(
      fc.property(arbRecords, (records) => {
        const snap = snapshotOf(records);
        const a = importingEngine();
        const ra = a.importConnections(snap, 0);
        assert.deepEqual(ra, { imported: records.length, skipped: 0, reasons: {} });
        assertConsistent(a, 'first import');
        const exported = decodeSnapshot(a.exportConnections());
        assert.equal(exported.header.count, records.length);
        assert.deepEqual([...exported.records].sort(byTuple), [...records].sort(byTuple));
        // And on into an engine ordered like the first exporter.
        const b = exportingEngine();
        assert.equal(b.importConnections(a.exportConnections(), 0).imported, records.length);
        assertConsistent(b, 'second import');
        assert.deepEqual(
          [...decodeSnapshot(b.exportConnections()).records].sort(byTuple),
          [...records].sort(byTuple),
        );
      }),
      { numRuns: 60 },
    );
  });
});

describe('decoder fuzz: seeded mutations of a valid snapshot', () => {
  it('gives a ConnRecordError or a valid import, and a consistent table, for 3000 mutants', () => {
    const s0 = TRANSFER_SERVICES;
    const base: ConnRecord[] = [];
    for (let k = 0; k < 12; k++) {
      const s = s0[k % s0.length]!;
      base.push(
        recordFor(s, {
          cip: 0xcb007100 + k,
          cport: 30000 + k,
          lport: 9000 + k,
          lip: s.lips[k % s.lips.length]!,
          state: STATES[k % STATES.length]!,
          flags: s.synProxy ? RF_SYNPROXY | RF_FDATA_KNOWN | RF_SP_WIN_OUT : RF_FDATA_KNOWN,
          ackDelta: s.synProxy ? 0x1000 * k : 0,
          spData: s.synProxy ? k * 37 : 0,
          shift: s.proxyProtocol === 2 ? 28 : s.proxyProtocol === 1 ? 47 : 0,
          remainingMs: 1000 * (k + 1),
        }),
      );
    }
    const valid = snapshotOf(base);
    // A small deterministic PRNG (xorshift32): the same mutants on every run.
    let x = 0x2545f491;
    const rnd = (n: number): number => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
    let errors = 0;
    let imports = 0;
    const pool = new PacketPool(64);
    for (let round = 0; round < 3000; round++) {
      let m = valid.slice();
      const kind = rnd(6);
      if (kind === 0) m = m.subarray(0, rnd(m.length));
      else if (kind === 1) {
        const ext = new Uint8Array(m.length + 1 + rnd(80));
        ext.set(m);
        for (let i = m.length; i < ext.length; i++) ext[i] = rnd(256);
        m = ext;
      } else {
        // Flip 1..4 bytes, header included now and then.
        const flips = 1 + rnd(4);
        for (let f = 0; f < flips; f++) {
          const at = kind === 2 ? rnd(SNAPSHOT_HEADER_SIZE) : rnd(m.length);
          m[at] = kind === 3 ? m[at]! ^ (1 << rnd(8)) : rnd(256);
        }
      }
      // A small table and one pool for all mutants: building 3000 full-size engines is most of the time.
      const e = importingEngine(
        { maxConnections: 64, maxRealServers: 16, maxLocalAddresses: 8 },
        pool,
      );
      e.tick(1000);
      try {
        const r = e.importConnections(m, rnd(3) * 500);
        imports++;
        assert.equal(r.imported + r.skipped, readSnapshotHeader(m).count);
        assert.equal(e.table.count, r.imported);
      } catch (err) {
        if (!(err instanceof ConnRecordError)) throw err;
        errors++;
        assert.equal(e.table.count, 0, 'nothing entered from a refused snapshot');
      }
      assertConsistent(e, `mutant ${round}`);
      // Every entry expires in time, and the counts come back to zero.
      e.tick(1000 + MAX_REMAINING_MS + 1000);
      for (let i = 0; i < e.outCount; i++) e.pool.give(e.out[i]!);
      e.clearOutput();
      assert.equal(e.table.count, 0, `mutant ${round}: all expired`);
      assertConsistent(e, `mutant ${round} expired`);
    }
    assert.ok(errors > 1000 && imports > 500, `${errors} refused, ${imports} imported`);
  });

  it('the magic followed by random bytes: a ConnRecordError, never another throw (1000 seeds)', () => {
    const e = importingEngine();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), (tail) => {
        const b = new Uint8Array(4 + tail.length);
        new DataView(b.buffer).setUint32(0, SNAPSHOT_MAGIC);
        b.set(tail, 4);
        try {
          e.importConnections(b, 0);
        } catch (err) {
          assert.ok(err instanceof ConnRecordError, String(err));
        }
        assertConsistent(e, 'random tail');
      }),
      { numRuns: 1000, seed: 20 },
    );
  });
});
