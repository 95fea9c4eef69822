/**
 * The engine's journal as the channel sees it (engine-link.ts JournalTable),
 * over real engines: sinks as small as a datagram's record area filled per
 * record version until nothing is pending, the records applied on a peer,
 * tables exported for a requester with and without its own entries handed
 * back, and a sweep that says when its pass over the table ended.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { JournalTable } from '../../../src/control/sync/engine-link.js';
import type {
  RecordSink,
  SyncExport,
  SyncRecordVersion,
} from '../../../src/control/sync/sync-table.js';
import { RECORD_V1_SIZE, RECORD_V2_SIZE } from '../../../src/engine/conn-record.js';
import type { Engine } from '../../../src/engine/engine.js';
import { TCP_ACK, TCP_PSH, TCP_SYN } from '../../../src/wire/tcp.js';
import { LINUX_SYN_ACK_OPTS, LINUX_SYN_OPTS } from '../../support/engine-fixture.js';
import { pattern } from '../../support/packets.js';
import { FleetFlow, TCP_SERVICES, feedAny, fleetNode } from '../../support/sync-engines.js';

const sizeOf = (v: SyncRecordVersion): number => (v === 2 ? RECORD_V2_SIZE : RECORD_V1_SIZE);

/** A sink with room for `records` records of version v, as a datagram's record area. */
function sink(v: SyncRecordVersion, records: number): RecordSink {
  return {
    buf: new Uint8Array(records * sizeOf(v) + 7),
    off: 0,
    end: records * sizeOf(v),
    count: 0,
  };
}

interface Taken {
  version: SyncRecordVersion;
  count: number;
  bytes: Uint8Array;
}

/** What a sink holds, copied, and the sink emptied for the next datagram. */
function take(s: RecordSink, v: SyncRecordVersion, out: Taken[]): void {
  if (s.count > 0) out.push({ version: v, count: s.count, bytes: s.buf.slice(0, s.off) });
  s.off = 0;
  s.count = 0;
}

/** Every datagram's worth `fill` gives until it says nothing is left (bounded). */
function collect(fill: (v1: RecordSink, v2: RecordSink) => boolean, perSink: number): Taken[] {
  const out: Taken[] = [];
  const v1 = sink(1, perSink);
  const v2 = sink(2, perSink);
  for (let rounds = 0; ; rounds++) {
    assert.ok(rounds < 1000, 'the table ends');
    const more = fill(v1, v2);
    assert.ok(v1.off <= v1.end && v2.off <= v2.end, 'records stay inside the sink');
    take(v1, 1, out);
    take(v2, 2, out);
    if (!more) return out;
  }
}

const records = (t: Taken[]): number => t.reduce((n, x) => n + x.count, 0);
const exported = (x: SyncExport, perSink: number): Taken[] =>
  collect((a, b) => x.next(a, b), perSink);

/** Opens flow f on e: handshake (the cookie's ACK first under SYNPROXY), data both ways. */
function open(e: Engine, f: FleetFlow): void {
  const step = (b: Uint8Array): void => f.observe(feedAny(e, b));
  step(f.client(TCP_SYN, undefined, LINUX_SYN_OPTS));
  if (f.s.synProxy) step(f.client(TCP_ACK));
  step(f.rs(TCP_SYN | TCP_ACK, undefined, LINUX_SYN_ACK_OPTS));
  if (!f.s.synProxy) step(f.client(TCP_ACK));
  step(f.client(TCP_ACK | TCP_PSH, pattern(100, f.k)));
  step(f.rs(TCP_ACK | TCP_PSH, pattern(300, f.k)));
}

/** Node 1 with three established connections per TCP service (both record versions among them). */
function busyNode(): { a: Engine; flows: number; v1: number } {
  const a = fleetNode(1);
  let flows = 0;
  let v1 = 0;
  for (const s of TCP_SERVICES) {
    for (let k = 1; k <= 3; k++) {
      open(a, new FleetFlow(s, k, 1000 * k, 7000 * k));
      flows++;
      if (typeof s.vip === 'number' && typeof s.rip === 'number') v1++;
    }
  }
  return { a, flows, v1 };
}

describe('JournalTable: the engine journal behind the channel', () => {
  it('drains every change into datagram-sized sinks of both versions, and a peer applies them', () => {
    const { a, flows, v1 } = busyNode();
    const ta = new JournalTable(a.syncJournal!);
    const sent = collect((x, y) => ta.drain(x, y), 2);
    assert.equal(records(sent), flows, 'one record per established connection');
    assert.equal(
      records(sent.filter((t) => t.version === 1)),
      v1,
      'IPv4 connections as version 1, the rest as version 2',
    );
    assert.ok(
      sent.every((t) => t.count <= 2),
      'no sink got more than its room',
    );
    assert.equal(records(collect((x, y) => ta.drain(x, y), 2)), 0, 'nothing twice');

    const b = fleetNode(2);
    const tb = new JournalTable(b.syncJournal!);
    let applied = 0;
    for (const t of sent) {
      const r = tb.apply(t.bytes, 0, t.count, t.version, 1);
      assert.equal(r.rejected, 0);
      applied += r.applied;
    }
    assert.equal(applied, flows);
    assert.equal(tb.synced, flows, "B holds A's connections for A");
    assert.equal(ta.synced, 0, 'A holds only its own');
  });

  it('exports its own entries, and hands a restarted peer its connections back only when asked to', () => {
    const { a, flows } = busyNode();
    const ta = new JournalTable(a.syncJournal!);
    const b = fleetNode(2);
    const tb = new JournalTable(b.syncJournal!);
    for (const t of collect((x, y) => ta.drain(x, y), 3))
      tb.apply(t.bytes, 0, t.count, t.version, 1);

    assert.equal(records(exported(ta.exportFor(3, false), 2)), flows, "A's table: its own");
    assert.equal(records(exported(tb.exportFor(1, false), 2)), 0, 'B owns none of them');
    assert.equal(records(exported(tb.exportFor(3, true), 2)), 0, 'none is node 3’s');
    const back = exported(tb.exportFor(1, true), 1);
    assert.equal(records(back), flows, "A's connections handed back to A");

    const fresh = fleetNode(1);
    const tf = new JournalTable(fresh.syncJournal!);
    for (const t of back) {
      const r = tf.apply(t.bytes, 0, t.count, t.version, 2);
      assert.equal(r.rejected, 0);
    }
    assert.equal(tf.synced, flows, 'a restarted A holds them again');
  });

  it("says when a sweep's pass over the table ended", () => {
    const { a } = busyNode();
    const ta = new JournalTable(a.syncJournal!);
    const j = a.syncJournal!;
    const capacity = j.tcp.table.capacity + (j.udp()?.table.capacity ?? 0);
    const chunk = Math.ceil(capacity / 4) + 1;
    const ends: boolean[] = [];
    for (let i = 0; i < 8; i++) ends.push(ta.sweep(chunk));
    assert.deepEqual(ends, [false, false, false, true, false, false, false, true]);
  });
});
