/**
 * What a node does with datagrams it must not trust, sent over real UDP
 * from a raw socket where a peer listens (and from elsewhere): every
 * refusal reason counted once per datagram, nothing applied, nothing
 * thrown; a bounded fuzz of random and mutated datagrams, each counted as
 * accepted or refused; a peer flooding entries, bounded by max_synced.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { SYNC_REJECT_REASONS } from '../../../src/control/sync/counters.js';
import { MessageType, type MessageHeader } from '../../../src/control/sync/sync-message.js';
import { FakeSyncTable } from '../../support/fake-sync-table.js';
import { rng } from '../../support/rng.js';
import {
  craft,
  freePorts,
  RawPeer,
  startNode,
  until,
  type Node,
} from '../../support/sync-fleet.js';

const rejectedTotal = (n: Node): number =>
  SYNC_REJECT_REASONS.reduce((sum, r) => sum + n.sync.status().counters[`rejected_${r}`]!, 0);

/** Version-1 records the fake table reads: ids from `first`, state 1, 60 s left. */
function records(first: number, count: number) {
  return (buf: Uint8Array, off: number): void => {
    const dv = new DataView(buf.buffer, buf.byteOffset);
    for (let k = 0; k < count; k++) {
      const at = off + k * 60;
      dv.setUint32(at, first + k);
      dv.setUint8(at + 4, 4);
      dv.setUint32(at + 8, 60_000);
      dv.setUint8(at + 12, 1);
    }
  };
}

const update = (h: Partial<MessageHeader>): MessageHeader => ({
  type: MessageType.Update,
  sender: 2,
  recordVersion: 1,
  incarnation: 1_000_000,
  sequence: 1,
  count: 1,
  ...h,
});

describe('FleetSync: refusals', () => {
  it('counts every refusal by reason, applies nothing refused, never throws', async () => {
    const ports = await freePorts(3);
    const a = await startNode(1, ports.slice(0, 2), { resyncTimeoutMs: 0 });
    const peer = await RawPeer.bind(ports[1]!, ports[0]!);
    const stranger = await RawPeer.bind(ports[2]!, ports[0]!);
    try {
      const good = (seq: number, id: number, incarnation = 1_000_000) =>
        craft(update({ sequence: seq, incarnation }), 1, { records: records(id, 1) });
      const valid = good(1, 500);
      const shape = (f: (dv: DataView) => void): Uint8Array => {
        const m = good(50, 900).slice();
        f(new DataView(m.buffer));
        return m;
      };
      const sent: [Uint8Array, string, RawPeer][] = [
        [valid.subarray(0, 20), 'truncated', peer],
        [shape((dv) => dv.setUint32(0, 0)), 'bad_magic', peer],
        [shape((dv) => dv.setUint8(4, 9)), 'bad_version', peer],
        [shape((dv) => dv.setUint8(5, 7)), 'bad_type', peer],
        [shape((dv) => dv.setUint16(22, 61)), 'bad_record_size', peer],
        [shape((dv) => dv.setUint16(20, 2)), 'bad_length', peer],
        [shape((dv) => dv.setFloat64(8, NaN)), 'bad_incarnation', peer],
        [craft(update({ sender: 9 }), 1, { records: records(901, 1) }), 'unknown_sender', peer],
        [craft(update({ sender: 1 }), 1, { records: records(902, 1) }), 'unknown_sender', peer],
        [good(2, 903), 'wrong_source', stranger],
        [
          craft(update({ sequence: 3 }), 1, { key: Buffer.alloc(32, 7), records: records(904, 1) }),
          'bad_mac',
          peer,
        ],
        [craft(update({ sequence: 3 }), 3, { records: records(905, 1) }), 'bad_mac', peer],
        [valid, 'accepted', peer],
        [valid, 'replay', peer],
        [good(200, 501, 2_000_000), 'accepted', peer],
        [good(201, 906, 1_000_000), 'old_incarnation', peer],
        [good(100, 907, 2_000_000), 'replay', peer],
      ];
      for (const [m, , from] of sent) {
        const before = a.sync.status().counters.messages_in!;
        await from.send(m);
        await until(() => a.sync.status().counters.messages_in! > before, 'the datagram read');
      }
      const c = a.sync.status().counters;
      for (const reason of SYNC_REJECT_REASONS) {
        const want = sent.filter(([, r]) => r === reason).length;
        assert.equal(c[`rejected_${reason}`], want, reason);
        assert.ok(want > 0, `${reason} exercised`);
      }
      assert.equal(c.messages_in, sent.length);
      assert.deepEqual(
        sorted([...a.table.entries.keys()]),
        [500, 501],
        'only the accepted records',
      );
      assert.equal(c.peer_restarts, 1, 'incarnation 2 000 000 after 1 000 000');
      const said = a.lines
        .filter((l) => l.msg.startsWith('sync message refused'))
        .map((l) => l.reason);
      assert.deepEqual(sorted(said), sorted([...SYNC_REJECT_REASONS]), 'each reason said once');
      assert.ok(!a.lines.some((l) => l.msg === 'sync message handling failed'));
    } finally {
      await a.sync.close();
      await peer.close();
      await stranger.close();
    }
  });

  it('a bounded fuzz over UDP: every datagram counted as accepted or refused, nothing thrown', async () => {
    const ports = await freePorts(2);
    const a = await startNode(1, ports, { resyncTimeoutMs: 0 });
    const peer = await RawPeer.bind(ports[1]!, ports[0]!);
    const rand = rng(0xf022);
    try {
      const bases = [
        craft(update({ sequence: 1, count: 22 }), 1, { records: records(1, 22) }),
        craft(update({ sequence: 2, recordVersion: 2, count: 12 }), 1),
        craft(
          update({ type: MessageType.TableRequest, recordVersion: 0, count: 0, sequence: 3 }),
          1,
        ),
        craft(update({ type: MessageType.TableEnd, recordVersion: 0, count: 0, sequence: 4 }), 1),
      ];
      let sent = 0;
      for (let batch = 0; batch < 40; batch++) {
        for (let k = 0; k < 50; k++) {
          let m: Uint8Array;
          const pick = rand();
          if (pick < 0.3) {
            m = new Uint8Array(Math.floor(rand() * 1400));
            for (let i = 0; i < m.length; i++) m[i] = Math.floor(rand() * 256);
          } else if (pick < 0.35) {
            m = bases[Math.floor(rand() * bases.length)]!;
          } else {
            const base = bases[Math.floor(rand() * bases.length)]!;
            m = base.slice(0, rand() < 0.2 ? Math.floor(rand() * base.length) : base.length);
            const flips = 1 + Math.floor(rand() * 3);
            for (let f = 0; f < flips && m.length > 0; f++)
              m[Math.floor(rand() * m.length)]! ^= 1 + Math.floor(rand() * 255);
          }
          await peer.send(m);
          sent++;
        }
        await until(() => a.sync.status().counters.messages_in! >= sent, `batch ${batch} read`);
      }
      const c = a.sync.status().counters;
      assert.equal(c.messages_in, sent);
      const refused = rejectedTotal(a);
      assert.ok(refused > 0 && refused < sent, `${refused} of ${sent} refused`);
      // Accepted: the originals (each once; their repeats are replays); every mutation is refused.
      assert.equal(sent - refused, bases.length, 'only the four originals were accepted');
      assert.ok(!a.lines.some((l) => l.msg === 'sync message handling failed'));
    } finally {
      await a.sync.close();
      await peer.close();
    }
  });

  it('a peer flooding entries: the table stays within max_synced, the rest refused and counted', async () => {
    const ports = await freePorts(2);
    const table = new FakeSyncTable(1000);
    const a = await startNode(1, ports, { resyncTimeoutMs: 0 }, { table });
    const peer = await RawPeer.bind(ports[1]!, ports[0]!);
    try {
      let seq = 0;
      for (let batch = 0; batch < 10; batch++) {
        for (let k = 0; k < 50; k++) {
          seq++;
          await peer.send(
            craft(update({ sequence: seq, count: 22 }), 1, { records: records(seq * 22, 22) }),
          );
        }
        await until(() => a.sync.status().counters.messages_in! >= seq, `batch ${batch} read`);
      }
      const c = a.sync.status().counters;
      assert.equal(c.records_in, 500 * 22);
      assert.equal(table.synced, 1000);
      assert.equal(a.sync.status().synced, 1000);
      assert.equal(c.records_applied, 1000);
      assert.equal(c.records_refused, 500 * 22 - 1000);
      assert.equal(rejectedTotal(a), 0, 'well-formed messages: the table refuses the records');
    } finally {
      await a.sync.close();
      await peer.close();
    }
  });
});

function sorted<T>(a: T[]): T[] {
  return [...a].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
}
