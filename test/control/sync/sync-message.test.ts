/**
 * The sync message on its own: the header round trip, the MAC bound to its
 * receiver, every shape refusal of decodeHeader, the replay window, the
 * key file and the derived keys, and a bounded fuzz of decodeHeader and
 * verifyMac that must never throw.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import {
  deriveSyncKeys,
  readSyncKey,
  SyncKeyError,
  trimKey,
} from '../../../src/control/sync/key.js';
import { REPLAY_WINDOW, ReplayWindow } from '../../../src/control/sync/replay-window.js';
import {
  decodeHeader,
  HEADER_SIZE,
  MAC_SIZE,
  MAX_DATAGRAM,
  MessageType,
  RECORDS_ROOM,
  recordsPerMessage,
  sealMessage,
  verifyMac,
  writeMessageHeader,
  type MessageHeader,
} from '../../../src/control/sync/sync-message.js';
import { rng } from '../../support/rng.js';

const MAC_KEY = deriveSyncKeys(Buffer.from('0123456789abcdef0123456789abcdef')).macKey;

/** A sealed message for `receiver`, records filled with a pattern. */
function message(h: Partial<MessageHeader> = {}, receiver = 2, key = MAC_KEY): Uint8Array {
  const header: MessageHeader = {
    type: MessageType.Update,
    sender: 1,
    recordVersion: 1,
    incarnation: 1_700_000_000_123,
    sequence: 7,
    count: 3,
    ...h,
  };
  const buf = new Uint8Array(MAX_DATAGRAM);
  const body = writeMessageHeader(buf, header);
  for (let i = HEADER_SIZE; i < body; i++) buf[i] = i & 0xff;
  const len = sealMessage(buf, body, key, receiver);
  return buf.slice(0, len);
}

describe('sync message: layout and MAC', () => {
  it('round-trips every header field; records stay where they were written', () => {
    const cases: Partial<MessageHeader>[] = [
      {},
      { recordVersion: 2, count: recordsPerMessage(2), sequence: 0xffffffff, sender: 255 },
      { recordVersion: 1, count: recordsPerMessage(1), type: MessageType.Table },
      { type: MessageType.Update, recordVersion: 0, count: 0 },
      { type: MessageType.TableRequest, recordVersion: 0, count: 0 },
      { type: MessageType.TableEnd, recordVersion: 0, count: 0, incarnation: 1.5 },
    ];
    for (const c of cases) {
      const msg = message(c);
      const h = decodeHeader(msg);
      assert.ok(typeof h !== 'string', `${JSON.stringify(c)}: ${String(h)}`);
      const want = {
        type: MessageType.Update,
        sender: 1,
        recordVersion: 1,
        incarnation: 1_700_000_000_123,
        sequence: 7,
        count: 3,
        ...c,
      };
      assert.deepEqual(
        { ...h, recordSize: undefined },
        { ...want, recordSize: undefined },
        JSON.stringify(c),
      );
      assert.equal(h.recordSize, [0, 60, 108][want.recordVersion]);
      assert.equal(msg.length, HEADER_SIZE + want.count * h.recordSize + MAC_SIZE);
      assert.ok(msg.length <= MAX_DATAGRAM);
      for (let i = HEADER_SIZE; i < msg.length - MAC_SIZE; i++) assert.equal(msg[i], i & 0xff);
      assert.equal(verifyMac(msg, MAC_KEY, 2), true);
    }
    assert.equal(recordsPerMessage(1), 22);
    assert.equal(recordsPerMessage(2), 12);
    assert.equal(RECORDS_ROOM, 1360);
  });

  it('the MAC is HMAC-SHA256 over the message and the receiver id, truncated to 16 bytes', () => {
    const msg = message();
    const body = msg.subarray(0, msg.length - MAC_SIZE);
    const full = createHmac('sha256', MAC_KEY).update(body).update(Uint8Array.of(2)).digest();
    assert.deepEqual(Buffer.from(msg.subarray(msg.length - MAC_SIZE)), full.subarray(0, 16));
    assert.equal(verifyMac(msg, MAC_KEY, 3), false, 'a message for node 2 is refused by node 3');
    const other = deriveSyncKeys(Buffer.from('another key of the right length')).macKey;
    assert.equal(verifyMac(msg, other, 2), false, 'wrong key');
    for (const i of [0, 5, HEADER_SIZE, msg.length - 1]) {
      const bad = msg.slice();
      bad[i]! ^= 1;
      assert.equal(verifyMac(bad, MAC_KEY, 2), false, `bit flipped at ${i}`);
    }
    assert.equal(verifyMac(msg.subarray(0, 10), MAC_KEY, 2), false, 'shorter than a MAC');
  });

  it('refuses each malformed shape with its reason', () => {
    const edit = (f: (dv: DataView, m: Uint8Array) => void, base = message()): Uint8Array => {
      const m = base.slice();
      f(new DataView(m.buffer), m);
      return m;
    };
    const cases: [Uint8Array, string][] = [
      [new Uint8Array(0), 'truncated'],
      [message().subarray(0, HEADER_SIZE + MAC_SIZE - 1), 'truncated'],
      [edit((dv) => dv.setUint32(0, 0x464e5358)), 'bad_magic'],
      [edit((dv) => dv.setUint8(4, 2)), 'bad_version'],
      [edit((dv) => dv.setUint8(5, 0)), 'bad_type'],
      [edit((dv) => dv.setUint8(5, 5)), 'bad_type'],
      [edit((dv) => dv.setUint8(7, 3)), 'bad_record_size'],
      [edit((dv) => dv.setUint16(22, 108)), 'bad_record_size'],
      [edit((dv) => dv.setUint8(7, 2)), 'bad_record_size'],
      [message({ type: MessageType.TableRequest, recordVersion: 1, count: 1 }), 'bad_type'],
      [message({ type: MessageType.TableEnd, recordVersion: 1, count: 0 }), 'bad_type'],
      [edit((dv) => dv.setUint16(20, 4)), 'bad_length'],
      [edit((dv) => dv.setUint16(20, 2)), 'bad_length'],
      [message().subarray(0, message().length - 1), 'bad_length'],
      [Uint8Array.from([...message(), 0]), 'bad_length'],
      [edit((dv) => dv.setFloat64(8, NaN)), 'bad_incarnation'],
      [edit((dv) => dv.setFloat64(8, -1)), 'bad_incarnation'],
      [edit((dv) => dv.setFloat64(8, Infinity)), 'bad_incarnation'],
      [edit((dv) => dv.setFloat64(8, 0)), 'bad_incarnation'],
    ];
    for (const [m, reason] of cases) assert.equal(decodeHeader(m), reason, reason);
    const zeroRecords = message({ recordVersion: 0, count: 0 });
    assert.ok(typeof decodeHeader(edit((dv) => dv.setUint16(20, 1), zeroRecords)) === 'string');
  });

  it('a bounded fuzz: random and mutated datagrams never throw, and a mutation never verifies', () => {
    const rand = rng(0x5eed17);
    const valid = [
      message(),
      message({ recordVersion: 2, count: 12 }),
      message({ type: MessageType.TableRequest, recordVersion: 0, count: 0 }),
    ];
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      let m: Uint8Array;
      if (i % 3 === 0) {
        m = new Uint8Array(Math.floor(rand() * 1500));
        for (let k = 0; k < m.length; k++) m[k] = Math.floor(rand() * 256);
      } else {
        const base = valid[i % valid.length]!;
        const cut = rand() < 0.2 ? Math.floor(rand() * base.length) : base.length;
        m = base.slice(0, cut);
        const flips = 1 + Math.floor(rand() * 4);
        for (let f = 0; f < flips && m.length > 0; f++)
          m[Math.floor(rand() * m.length)]! ^= 1 + Math.floor(rand() * 255);
      }
      const h = decodeHeader(m);
      const ok = verifyMac(m, MAC_KEY, 2);
      if (typeof h !== 'string') {
        accepted++;
        assert.equal(m.length, HEADER_SIZE + h.count * h.recordSize + MAC_SIZE);
      }
      assert.equal(ok, false, `mutation ${i} verified`);
    }
    assert.ok(accepted > 0, 'some mutations keep the shape (and only the MAC refuses them)');
  });
});

describe('sync message: the replay window', () => {
  it('accepts new sequences once, within 64 messages of the newest, from the newest incarnation', () => {
    const w = new ReplayWindow();
    assert.equal(w.accept(100, 10), 'first');
    assert.equal(w.accept(100, 10), 'replay');
    assert.equal(w.accept(100, 12), 'fresh');
    assert.equal(w.accept(100, 11), 'fresh', 'reordered within the window');
    assert.equal(w.accept(100, 11), 'replay');
    assert.equal(w.accept(100, 12 + REPLAY_WINDOW - 1), 'fresh');
    assert.equal(w.accept(100, 12), 'replay', 'seen, still in the window');
    assert.equal(w.accept(100, 11), 'replay', 'fallen behind the window');
    assert.equal(w.accept(100, 9), 'replay');
    assert.equal(w.accept(99, 1000), 'old_incarnation');
    assert.equal(
      w.accept(100 + 1 / 1024, 1),
      'rolled_over',
      'the same run, its sequence started over',
    );
    assert.equal(w.accept(100 + 1 / 1024, 1), 'replay');
    assert.equal(w.accept(100, 5000), 'old_incarnation');
    assert.equal(w.accept(5000, 1), 'restarted');
    assert.equal(w.accept(5000, 1), 'replay');
  });

  it('every offset of the 64-message window, across both halves and jumps', () => {
    for (const jump of [1, 5, 31, 32, 33, 63, 64, 65, 1000]) {
      const w = new ReplayWindow();
      w.accept(1, 1000);
      assert.equal(w.accept(1, 1000 + jump), 'fresh');
      for (let back = 0; back < REPLAY_WINDOW; back++) {
        const seq = 1000 + jump - back;
        const want = back === 0 || back === jump ? 'replay' : 'fresh';
        assert.equal(w.accept(1, seq), want, `jump ${jump} back ${back}`);
        assert.equal(w.accept(1, seq), 'replay', `jump ${jump} back ${back} again`);
      }
      assert.equal(w.accept(1, 1000 + jump - REPLAY_WINDOW), 'replay', `jump ${jump}: behind`);
    }
  });
});

describe('sync key file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fullnat-sync-key-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads raw bytes, whitespace trimmed; refuses short, missing and oversized files by name', () => {
    const p = join(dir, 'k');
    writeFileSync(
      p,
      Buffer.from([0x20, 0x0a, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff, 0x0a]),
    );
    assert.deepEqual([...readSyncKey(p)], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff]);
    assert.deepEqual([...trimKey(Buffer.from(' \t\r\n'))], []);
    const short = join(dir, 's');
    writeFileSync(short, 'fifteen bytes!!\n');
    assert.throws(
      () => readSyncKey(short),
      (e: unknown) => {
        assert.ok(e instanceof SyncKeyError);
        assert.equal(
          e.reason,
          `key_file ${short} holds 15 bytes (whitespace aside); the fleet's key needs at least 16`,
        );
        return true;
      },
    );
    assert.throws(() => readSyncKey(join(dir, 'none')), /cannot read key_file .*none: ENOENT/);
    const big = join(dir, 'big');
    writeFileSync(big, Buffer.alloc(65 * 1024, 0x41));
    assert.throws(() => readSyncKey(big), /holds 66560 bytes: not a key file/);
  });

  it('derives distinct MAC and fleet keys, the same on every node', () => {
    const a = deriveSyncKeys(Buffer.from('0123456789abcdef'));
    const b = deriveSyncKeys(Buffer.from('0123456789abcdef'));
    assert.deepEqual(a, b);
    assert.equal(a.macKey.length, 32);
    assert.notDeepEqual(a.macKey, a.fleetKey);
    assert.deepEqual(
      a.fleetKey,
      createHmac('sha256', Buffer.from('0123456789abcdef')).update('fullnat synproxy').digest(),
    );
  });
});
