/**
 * FleetSync over real UDP on 127.0.0.1, with fake tables standing in for
 * the engine: updates and removals reach every peer, heartbeats mark peers
 * up and down, `ready` after the peers' tables or after resync_timeout, a
 * restarted node gets its connections handed back, a healed partition
 * purges and asks again (never resurrecting), a big table streams without
 * blocking, a reload's channel carries on. Every wait polls with a
 * deadline; nothing asserts a tight timing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  decodeHeader,
  MAX_DATAGRAM,
  MessageType,
  verifyMac,
} from '../../../src/control/sync/sync-message.js';
import { FleetSync } from '../../../src/control/sync/sync.js';
import { FakeSyncTable } from '../../support/fake-sync-table.js';
import {
  craft,
  fleetSpec,
  freePorts,
  LOCALHOST,
  MAC_KEY,
  RawPeer,
  recordingLogger,
  startNode,
  until,
  FLEET_KEY,
  type Node,
} from '../../support/sync-fleet.js';

async function closeAll(nodes: Node[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.sync.close()));
}

const sorted = (a: number[]): number[] => [...a].sort((x, y) => x - y);
const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('FleetSync: a fleet of three on one host', () => {
  it('updates and removals reach every peer; every peer is up', async () => {
    const ports = await freePorts(3);
    const nodes = await Promise.all([1, 2, 3].map((id) => startNode(id, ports)));
    const [a, b, c] = nodes as [Node, Node, Node];
    try {
      for (const id of range(1, 40)) a.table.create(id, id % 4 === 0 ? 2 : 1);
      for (const id of range(101, 105)) b.table.create(id);
      await until(
        () => b.table.idsFrom(1).length === 40 && c.table.idsFrom(1).length === 40,
        "node 1's 40 entries on nodes 2 and 3",
      );
      await until(
        () => c.table.idsFrom(2).length === 5 && a.table.idsFrom(2).length === 5,
        "node 2's entries",
      );
      assert.equal(c.table.entries.get(4)!.version, 2, 'an IPv6 entry travels as version 2');
      a.table.change(7, 5);
      for (const id of range(1, 10)) a.table.remove(id);
      await until(
        () =>
          sorted(b.table.idsFrom(1)).join() === range(11, 40).join() &&
          sorted(c.table.idsFrom(1)).join() === range(11, 40).join(),
        'removals on nodes 2 and 3',
      );
      await until(
        () => nodes.every((n) => n.sync.status().peers.every((p) => p.state === 'up')),
        'every peer up everywhere',
      );
      const s = a.sync.status();
      assert.equal(s.nodeId, 1);
      assert.deepEqual(s.listen, { addr: LOCALHOST, port: ports[0] });
      assert.deepEqual(
        s.peers.map((p) => [p.node, p.addr, p.port, p.state]),
        [
          [2, LOCALHOST, ports[1], 'up'],
          [3, LOCALHOST, ports[2], 'up'],
        ],
      );
      assert.equal(s.peers[0]!.incarnation, b.sync.incarnation);
      assert.ok(s.peers[0]!.lastHeardMs !== undefined && s.peers[0]!.lastHeardMs >= 0);
      assert.equal(s.synced, 5);
      assert.ok(s.counters.records_out! >= 2 * 50, 'each record went to both peers');
      assert.ok(s.counters.bytes_out! <= s.counters.messages_out! * MAX_DATAGRAM);
      assert.equal(b.sync.status().counters.records_removed, 10);
      for (const n of nodes)
        for (const [k, v] of Object.entries(n.sync.status().counters))
          if (k.startsWith('rejected_')) assert.equal(v, 0, `${k} on node ${n.sync.spec.nodeId}`);
    } finally {
      await closeAll(nodes);
    }
  });

  it('ready once every peer has sent its table, long before resync_timeout', async () => {
    const ports = await freePorts(3);
    const b = await startNode(2, ports);
    const c = await startNode(3, ports);
    let a: Node | undefined;
    try {
      for (const id of range(1, 30)) b.table.create(id);
      for (const id of range(31, 45)) c.table.create(id, 2);
      const t0 = Date.now();
      a = await startNode(1, ports, { resyncTimeoutMs: 60_000 });
      assert.equal(a.sync.isReady, false);
      assert.equal(a.sync.status().ready, false);
      await a.sync.ready;
      assert.ok(Date.now() - t0 < 60_000);
      const s = a.sync.status();
      assert.equal(s.ready, true);
      assert.equal(s.counters.tables_received, 2);
      assert.deepEqual(sorted(a.table.idsFrom(2)), range(1, 30));
      assert.deepEqual(sorted(a.table.idsFrom(3)), range(31, 45));
      const askedBy1 = b.table.calls.exportFor.filter(([r]) => r === 1);
      // A request repeated on a slow loop may be answered twice; never with entries handed back.
      assert.ok(askedBy1.length >= 1);
      assert.deepEqual(
        askedBy1.filter(([, handBack]) => handBack),
        [],
        'a first start hands nothing back',
      );
    } finally {
      await closeAll([b, c, ...(a ? [a] : [])]);
    }
  });

  it('ready after resync_timeout when a peer never answers; not before', async () => {
    const ports = await freePorts(2);
    const t0 = Date.now();
    const a = await startNode(1, ports, { resyncTimeoutMs: 300 });
    try {
      assert.equal(a.sync.isReady, false);
      await a.sync.ready;
      assert.ok(Date.now() - t0 >= 290, `ready after ${Date.now() - t0} ms`);
      assert.equal(a.sync.status().peers[0]!.state, 'never-heard');
      assert.ok(a.sync.status().counters.table_requests_out! >= 1);
      const line = a.lines.find((l) => l.msg === 'sync ready');
      assert.equal(line?.why, 'resync_timeout passed');
      assert.deepEqual(line?.withoutTableFrom, [2]);
    } finally {
      await a.sync.close();
    }
  });

  it('a peer heard but whose table does not come: waited for up to 5 resync_timeouts, not only one', async () => {
    const ports = await freePorts(2);
    const t0 = Date.now();
    const a = await startNode(1, ports, { resyncTimeoutMs: 300, heartbeatMs: 50 });
    const peer = await RawPeer.bind(ports[1]!, ports[0]!);
    let sequence = 0;
    // Node 2 is up (its heartbeats: updates with no record) but never answers the table request.
    const beat = (): Promise<void> =>
      peer.send(
        craft(
          {
            type: MessageType.Update,
            sender: 2,
            recordVersion: 0,
            incarnation: t0,
            sequence: ++sequence,
            count: 0,
          },
          1,
        ),
      );
    const beats = setInterval(() => void beat(), 40);
    try {
      await beat();
      await until(() => a.sync.status().peers[0]!.state === 'up', 'node 2 heard');
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(a.sync.isReady, false, 'not ready after two resync_timeouts: node 2 is up');
      await a.sync.ready;
      const waited = Date.now() - t0;
      assert.ok(waited >= 5 * 300 - 20, `ready after ${waited} ms`);
      const line = a.lines.find((l) => l.msg === 'sync ready');
      assert.equal(line?.why, 'resync_timeout passed 5 times');
      assert.deepEqual(line?.withoutTableFrom, [2]);
      assert.ok(a.lines.some((l) => l.msg.startsWith('sync: peers are up but their tables')));
    } finally {
      clearInterval(beats);
      await peer.close();
      await a.sync.close();
    }
  });

  it('resync_timeout 0: ready at once', async () => {
    const ports = await freePorts(2);
    const a = await startNode(1, ports, { resyncTimeoutMs: 0 });
    try {
      assert.equal(a.sync.isReady, true);
      await a.sync.ready;
    } finally {
      await a.sync.close();
    }
  });

  it('heartbeats: a peer silent for 5 heartbeats is down, and up when heard again', async () => {
    const ports = await freePorts(2);
    const a = await startNode(1, ports);
    let b = await startNode(2, ports);
    try {
      await until(() => a.sync.status().peers[0]!.state === 'up', 'node 2 up on node 1');
      await until(() => b.sync.status().counters.heartbeats_out! > 0, 'a heartbeat from node 2');
      await b.sync.close();
      await until(() => a.sync.status().peers[0]!.state === 'down', 'node 2 down on node 1');
      assert.ok(a.lines.some((l) => l.msg === 'sync peer down' && l.peer === 2));
      b = await startNode(2, ports);
      await until(() => a.sync.status().peers[0]!.state === 'up', 'node 2 up again');
    } finally {
      await closeAll([a, b]);
    }
  });

  it('a restarted node gets its connections handed back; the survivor keeps them meanwhile', async () => {
    const ports = await freePorts(3);
    let a = await startNode(1, ports);
    const b = await startNode(2, ports);
    const c = await startNode(3, ports);
    try {
      for (const id of range(1, 20)) a.table.create(id);
      for (const id of range(50, 54)) b.table.create(id);
      await until(() => b.table.idsFrom(1).length === 20, "node 1's entries on node 2");
      await until(() => c.table.idsFrom(1).length === 20, "node 1's entries on node 3");
      const oldIncarnation = a.sync.incarnation;
      await a.sync.close();
      // kill -9 and start again: an empty table, a new incarnation, the same address.
      a = await startNode(1, ports, { resyncTimeoutMs: 60_000 });
      assert.ok(a.sync.incarnation > oldIncarnation);
      await a.sync.ready;
      assert.deepEqual(
        sorted([...a.table.entries.keys()]),
        [...range(1, 20), ...range(50, 54)],
        'its own 20 back, and node 2 own',
      );
      const handedBack = (t: FakeSyncTable) =>
        t.calls.exportFor.filter(([r, handBack]) => r === 1 && handBack).length;
      assert.equal(handedBack(b.table), 1, 'node 2 hands them back, once');
      assert.equal(handedBack(c.table), 1, 'node 3 too');
      assert.equal(b.table.idsFrom(1).length, 20, 'kept: no purge on a restart');
      assert.equal(b.table.calls.purge, 0);
      assert.equal(b.sync.status().counters.peer_restarts, 1);
      assert.equal(b.sync.status().peers[0]!.incarnation, a.sync.incarnation);
    } finally {
      await closeAll([a, b, c]);
    }
  });

  it('a healed partition: entries purged, the table asked again, nothing ended meanwhile comes back', async () => {
    const ports = await freePorts(2);
    let cut = false;
    const hears = (): boolean => !cut;
    const a = await startNode(1, ports, {}, { hears });
    const b = await startNode(2, ports, {}, { hears });
    try {
      for (const id of range(1, 10)) a.table.create(id);
      await until(() => b.table.idsFrom(1).length === 10, "node 1's entries on node 2");
      cut = true;
      await until(
        () =>
          a.sync.status().peers[0]!.state === 'down' && b.sync.status().peers[0]!.state === 'down',
        'both sides see the other down',
      );
      for (const id of range(1, 5)) a.table.remove(id);
      a.table.create(11);
      // Flushed into the void while cut: node 2 never hears of these.
      await until(
        () => a.sync.status().counters.records_out! >= 10 + 6,
        'the changes sent while cut',
      );
      const incarnationBefore = a.sync.incarnation;
      cut = false;
      await until(
        () => sorted(b.table.idsFrom(1)).join() === range(6, 11).join(),
        "node 2 holds node 1's live entries only",
      );
      assert.equal(
        a.sync.incarnation,
        incarnationBefore,
        'the same run: a partition, not a restart',
      );
      const sb = b.sync.status().counters;
      assert.equal(sb.partitions_healed, 1);
      assert.equal(sb.entries_purged, 10);
      assert.equal(b.table.calls.purge, 1);
      assert.ok(sb.table_requests_out! >= 2, 'asked at start and again after the partition');
      assert.deepEqual(a.table.calls.exportFor.at(-1), [2, false], 'never its old entries back');
      assert.ok(b.lines.some((l) => l.msg.startsWith('sync peer back after a partition')));
      await until(() => a.sync.status().counters.partitions_healed === 1, 'node 1 healed too');
    } finally {
      await closeAll([a, b]);
    }
  });

  it('streams a big table in paced chunks while the event loop keeps turning', async () => {
    const ports = await freePorts(2);
    const b = await startNode(2, ports);
    let a: Node | undefined;
    try {
      for (let id = 1; id <= 20_000; id++) b.table.create(id, id % 7 === 0 ? 2 : 1);
      let ticks = 0;
      const tick = setInterval(() => ticks++, 2);
      try {
        a = await startNode(1, ports, { resyncTimeoutMs: 60_000 });
        await a.sync.ready;
      } finally {
        clearInterval(tick);
      }
      assert.equal(a.table.idsFrom(2).length, 20_000);
      assert.ok(ticks > 0, 'timers ran while the table streamed');
      assert.ok(
        b.sync.status().counters.messages_out! >= Math.ceil(17_143 / 22) + Math.ceil(2857 / 12),
      );
    } finally {
      await closeAll([b, ...(a ? [a] : [])]);
    }
  });

  it("a flood of this node's changes goes out in datagrams of at most 1400 bytes, every one sealed", async () => {
    const ports = await freePorts(2);
    const raw = await RawPeer.bind(ports[1]!, ports[0]!);
    const a = await startNode(1, ports, { resyncTimeoutMs: 0 });
    try {
      for (let id = 1; id <= 3000; id++) a.table.create(id, id % 5 === 0 ? 2 : 1);
      let records = 0;
      await until(() => {
        records = 0;
        for (const m of raw.received) {
          const h = decodeHeader(m);
          if (typeof h !== 'string' && h.type === 1) records += h.count;
        }
        return records >= 3000;
      }, 'all 3000 records at the raw peer');
      assert.equal(records, 3000);
      for (const m of raw.received) {
        assert.ok(m.length <= MAX_DATAGRAM, `${m.length} bytes`);
        assert.ok(typeof decodeHeader(m) !== 'string');
        assert.ok(verifyMac(m, MAC_KEY, 2), 'sealed for node 2');
        assert.equal(verifyMac(m, MAC_KEY, 3), false, 'for node 2 only');
      }
    } finally {
      await a.sync.close();
      await raw.close();
    }
  });

  it('a channel restarted by a reload keeps its incarnation, its sequence and its readiness', async () => {
    const ports = await freePorts(3);
    // Node 1 starts knowing node 2 only; the reload adds node 3.
    let a = await startNode(1, ports.slice(0, 2));
    const b = await startNode(2, ports);
    const c = await startNode(3, ports);
    try {
      await a.sync.ready;
      await until(() => b.sync.status().peers[0]!.state === 'up', 'node 1 up on node 2');
      const askedBy1 = (t: FakeSyncTable) => t.calls.exportFor.filter(([r]) => r === 1).length;
      const askedBefore = askedBy1(b.table);
      const old = a.sync;
      await old.close();
      const { log } = recordingLogger();
      const next = await FleetSync.start({
        spec: fleetSpec(1, ports),
        key: FLEET_KEY,
        table: a.table,
        log,
        previous: old,
        flushMs: 5,
      });
      a = { ...a, sync: next };
      assert.equal(next.incarnation, old.incarnation);
      assert.equal(next.isReady, true, 'a ready node stays ready');
      for (const id of range(1, 5)) a.table.create(id);
      await until(
        () => b.table.idsFrom(1).length === 5 && c.table.idsFrom(1).length === 5,
        'new entries on both',
      );
      assert.equal(b.sync.status().counters.peer_restarts, 0, 'not a restart to node 2');
      for (const [k, v] of Object.entries(b.sync.status().counters))
        if (k.startsWith('rejected_')) assert.equal(v, 0, `${k}: the sequence went on`);
      assert.equal(askedBy1(b.table), askedBefore, 'node 2 is not asked again');
      await until(() => askedBy1(c.table) >= 1, 'node 3, new to node 1, is asked for its table');
    } finally {
      await closeAll([a, b, c]);
    }
  });

  it('start fails when the listen address cannot be bound', async () => {
    const ports = await freePorts(2);
    const a = await startNode(1, ports);
    try {
      const { log } = recordingLogger();
      await assert.rejects(
        FleetSync.start({
          spec: fleetSpec(1, ports),
          key: FLEET_KEY,
          table: new FakeSyncTable(),
          log,
        }),
        /EADDRINUSE/,
      );
    } finally {
      await a.sync.close();
    }
  });
});
