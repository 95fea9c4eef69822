/**
 * The sync journal's rules one by one: what is sent when (ESTABLISHED on,
 * never SYN_RECV; removals of sent entries only), replacement of a reused
 * client tuple, peers' entries expiring silently, the maxSynced bound,
 * purgeFrom, exportFor's filters and chunks, the refresh sweep, the drain
 * count, the port plan, the fleet's SYNPROXY cookies, UDP flows, and
 * hostile records counted and never thrown.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { drainingConnections } from '../../../src/control/cluster/lb-view.js';
import {
  RECORD_V1_SIZE,
  RECORD_V2_SIZE,
  RecordField,
  emptyRecord,
  writeRecord,
} from '../../../src/engine/conn-record.js';
import { Engine } from '../../../src/engine/engine.js';
import { DEFAULT_ENGINE_OPTIONS } from '../../../src/engine/options.js';
import { TcpState } from '../../../src/engine/tcp-state.js';
import { buildUdp4, readUdp } from '../../support/udp-packets.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../../src/wire/tcp.js';
import { LINUX_SYN_ACK_OPTS, LINUX_SYN_OPTS } from '../../support/engine-fixture.js';
import { pattern } from '../../support/packets.js';
import { rng } from '../../support/rng.js';
import {
  FLEET_EPOCH,
  FLEET_SERVICES,
  F_RIP,
  F_VIP,
  FleetFlow,
  TCP_SERVICES,
  applyBatches,
  drainJournal,
  emitted,
  feedAny,
  fleetInconsistency,
  fleetNode,
  lip4,
} from '../../support/sync-engines.js';

const PLAIN = TCP_SERVICES[0]!;
const SYNPROXY = TCP_SERVICES[1]!;

/** A plain IPv4 flow k opened through e to ESTABLISHED, data both ways. */
function established(e: Engine, k: number, s = PLAIN): FleetFlow {
  const f = new FleetFlow(s, k, 10_000 * (k + 1), 0x7000_0000 + k);
  const step = (b: Uint8Array) => f.observe(feedAny(e, b));
  step(f.client(TCP_SYN, undefined, LINUX_SYN_OPTS));
  if (s.synProxy) step(f.client(TCP_ACK));
  step(f.rs(TCP_SYN | TCP_ACK, undefined, LINUX_SYN_ACK_OPTS));
  if (!s.synProxy) step(f.client(TCP_ACK));
  step(f.client(TCP_ACK | TCP_PSH, pattern(50, k)));
  return f;
}

function consistent(e: Engine, what: string): void {
  const v = fleetInconsistency(e);
  assert.equal(v, null, `${what}: ${v}`);
}

describe('sync journal: what goes to the peers', () => {
  it('nothing before ESTABLISHED; one record on reaching it; a removal only for entries sent and not sent ended', () => {
    const a = fleetNode(1);
    const b = fleetNode(2);
    const f = new FleetFlow(PLAIN, 0, 1000, 2000);
    f.observe(feedAny(a, f.client(TCP_SYN, undefined, LINUX_SYN_OPTS)));
    assert.equal(drainJournal(a).length, 0, 'SYN_RECV is not synced');
    f.observe(feedAny(a, f.rs(TCP_SYN | TCP_ACK)));
    f.observe(feedAny(a, f.client(TCP_ACK)));
    const first = drainJournal(a);
    assert.equal(first.length, 1);
    assert.equal(first[0]!.count, 1);
    applyBatches(b, first, 1);
    // Closed before the next drain: the entry's last state goes, not one record per change.
    f.observe(feedAny(a, f.client(TCP_FIN | TCP_ACK)));
    f.observe(feedAny(a, f.rs(TCP_FIN | TCP_ACK)));
    const second = drainJournal(a);
    assert.equal(
      second.reduce((n, x) => n + x.count, 0),
      1,
    );
    applyBatches(b, second, 1);
    assert.equal(b.listConnections()[0]!.state, TcpState.TimeWait, 'B knows f ended');
    // h is sent ESTABLISHED and then idles out: peers hold it as live, so its end is a removal.
    const h = established(a, 3);
    applyBatches(b, drainJournal(a), 1);
    assert.equal(b.table.count, 2);
    // A connection reset before ESTABLISHED is never sent, and leaves no removal.
    const g = new FleetFlow(PLAIN, 1, 5000, 6000);
    g.observe(feedAny(a, g.client(TCP_SYN, undefined, LINUX_SYN_OPTS)));
    g.observe(feedAny(a, g.client(TCP_RST)));
    a.tick(10_000);
    emitted(a);
    assert.equal(a.table.count, 1, 'f (TIME_WAIT) and g are gone, h idles on');
    assert.equal(drainJournal(a).length, 0, "f's end was sent: no removal for it, none for g");
    assert.equal(a.counter('sync_removals_out'), 0);
    a.tick(DEFAULT_ENGINE_OPTIONS.timeouts.ESTABLISHED * 1000);
    emitted(a);
    assert.equal(a.table.count, 0);
    const third = drainJournal(a);
    assert.equal(
      third.reduce((n, x) => n + x.count, 0),
      1,
      "only h's removal",
    );
    assert.equal(a.counter('sync_removals_out'), 1);
    // B: f's copy expired on its own, with its record's time; h goes with its removal.
    b.tick(10_000);
    assert.deepEqual(emitted(b), [], 'no RSTs from B');
    assert.equal(b.table.count, 1);
    assert.deepEqual(applyBatches(b, third, 1), {
      applied: 0,
      removed: 1,
      rejected: 0,
      ignored: 0,
    });
    assert.equal(b.table.count, 0);
    assert.ok(h.lport > 0);
  });

  it('a connection that ends before the first drain is never sent', () => {
    const a = fleetNode(1);
    const b = fleetNode(2);
    const f = established(a, 4);
    f.observe(feedAny(a, f.client(TCP_FIN | TCP_ACK)));
    f.observe(feedAny(a, f.rs(TCP_FIN | TCP_ACK)));
    assert.equal(a.listConnections()[0]!.state, TcpState.TimeWait);
    // g is still open at the drain: it goes; f, ended unseen, does not.
    const g = established(a, 5);
    const batches = drainJournal(a);
    assert.equal(
      batches.reduce((n, x) => n + x.count, 0),
      1,
    );
    applyBatches(b, batches, 1);
    assert.deepEqual(
      b.listConnections().map((x) => x.cport),
      [g.cport],
    );
    // Nor is its end: no removal when it leaves.
    a.tick(10_000);
    emitted(a);
    assert.equal(drainJournal(a).length, 0);
    assert.equal(a.counter('sync_removals_out'), 0);
  });

  it("a port handed out again replaces the sender's closed entry left to expire on the peer", () => {
    // Three ports, one in each node's share: A hands out one LIP port, always the same.
    const ports = { portRange: { min: 5000, max: 5002 } };
    const a = fleetNode(1, 3, ports);
    const b = fleetNode(2, 3, ports);
    const f = established(a, 0);
    applyBatches(b, drainJournal(a), 1);
    f.observe(feedAny(a, f.client(TCP_FIN | TCP_ACK)));
    f.observe(feedAny(a, f.rs(TCP_FIN | TCP_ACK)));
    applyBatches(b, drainJournal(a), 1);
    assert.equal(b.listConnections()[0]!.state, TcpState.TimeWait);
    // A's copy goes first (B applied the record a little later); B still holds f's LIP:lport.
    a.tick(DEFAULT_ENGINE_OPTIONS.timeouts.TIME_WAIT * 1000 + 1);
    emitted(a);
    assert.equal(a.table.count, 0);
    assert.equal(drainJournal(a).length, 0, 'no removal: B knows f ended');
    // A hands the same LIP:lport toward the same RS to another client.
    const g = new FleetFlow(PLAIN, 5, 40_000, 0x7100_0000);
    const step = (x: Uint8Array) => g.observe(feedAny(a, x));
    step(g.client(TCP_SYN, undefined, LINUX_SYN_OPTS));
    step(g.rs(TCP_SYN | TCP_ACK, undefined, LINUX_SYN_ACK_OPTS));
    step(g.client(TCP_ACK));
    assert.equal(g.lport, f.lport, 'the same port again');
    assert.deepEqual(applyBatches(b, drainJournal(a), 1), {
      applied: 1,
      removed: 0,
      rejected: 0,
      ignored: 0,
    });
    assert.equal(b.counter('sync_replaced_stale'), 1);
    assert.equal(b.counter('sync_rejected_port_conflict'), 0);
    const onB = b.listConnections();
    assert.equal(onB.length, 1);
    assert.equal(onB[0]!.cport, g.cport);
    assert.equal(onB[0]!.state, TcpState.Established);
  });

  it('removal propagates; a reused client port replaces the old entry on the peer', () => {
    const a = fleetNode(1);
    const b = fleetNode(2);
    const f = established(a, 0);
    applyBatches(b, drainJournal(a), 1);
    assert.equal(b.table.count, 1);
    const oldLport = f.lport;
    // The client closes and its port comes back for a new connection before the next drain.
    f.observe(feedAny(a, f.client(TCP_RST | TCP_ACK)));
    a.tick(5_000);
    emitted(a);
    assert.equal(a.table.count, 0);
    const g = established(a, 0);
    assert.notEqual(g.lport, oldLport, 'a new LIP port');
    const r = applyBatches(b, drainJournal(a), 1);
    assert.deepEqual(r, { applied: 1, removed: 1, rejected: 0, ignored: 0 });
    assert.equal(b.table.count, 1);
    assert.equal(b.listConnections()[0]!.lport, g.lport);
    // Without the removal (lost), the newer record of the tuple replaces the old entry all the same.
    const c = fleetNode(3);
    const h = established(a, 7);
    applyBatches(c, drainJournal(a), 1);
    h.observe(feedAny(a, h.client(TCP_RST | TCP_ACK)));
    a.tick(10_000);
    emitted(a);
    drainJournal(a);
    const h2 = established(a, 7);
    assert.deepEqual(applyBatches(c, drainJournal(a), 1), {
      applied: 1,
      removed: 0,
      rejected: 0,
      ignored: 0,
    });
    const onC = c.listConnections().filter((x) => x.cport === h2.cport);
    assert.equal(onC.length, 1);
    assert.equal(onC[0]!.lport, h2.lport);
    consistent(b, 'B');
    consistent(c, 'C');
  });

  it("a peer's entry expires silently: no RST to either side; the owner's own expiry resets", () => {
    const a = fleetNode(1);
    const b = fleetNode(2);
    a.tick(1000);
    established(a, 0);
    applyBatches(b, drainJournal(a), 1);
    const left = b.listConnections()[0]!.expiresInMs;
    b.tick(left + 500);
    assert.equal(emitted(b).length, 0, 'no RST from B');
    assert.equal(b.table.count, 0);
    assert.equal(b.counter('sync_expired_silent'), 1);
    assert.equal(drainJournal(b).length, 0, 'and nothing to tell');
    a.tick(1000 + left + 500);
    assert.equal(emitted(a).length, 2, 'A, the owner, resets both sides');
  });

  it('maxSynced bounds the entries held for peers; table_full is counted apart', () => {
    const a = fleetNode(1);
    const b = fleetNode(2, 3, {}, 5);
    for (let k = 0; k < 10; k++) established(a, k);
    const r = applyBatches(b, drainJournal(a), 1);
    assert.equal(r.applied, 5);
    assert.equal(r.rejected, 5);
    assert.equal(b.counter('sync_rejected_max_synced'), 5);
    assert.equal(b.syncJournal!.imported, 5);
    const small = fleetNode(3, 3, { maxConnections: 3 });
    const r2 = applyBatches(
      small,
      drainJournal(
        (() => {
          const x = fleetNode(1);
          for (let k = 0; k < 6; k++) established(x, k);
          return x;
        })(),
      ),
      1,
    );
    assert.equal(r2.applied, 3);
    assert.equal(small.counter('sync_rejected_table_full'), 3);
  });

  it('purgeFrom removes one peer’s entries silently and counts them', () => {
    const a = fleetNode(1);
    const c = fleetNode(3);
    const b = fleetNode(2);
    for (let k = 0; k < 4; k++) established(a, k);
    for (let k = 10; k < 13; k++) established(c, k);
    established(b, 20);
    applyBatches(b, drainJournal(a), 1);
    applyBatches(b, drainJournal(c), 3);
    assert.equal(b.table.count, 8);
    assert.equal(b.syncJournal!.purgeFrom(1), 4);
    assert.equal(b.counter('sync_purged'), 4);
    assert.equal(emitted(b).length, 0, 'no RST');
    assert.equal(b.table.count, 4);
    assert.equal(b.syncJournal!.imported, 3);
    assert.equal(
      drainJournal(b).reduce((n, x) => n + x.count, 0),
      1,
      "only B's own entry",
    );
    consistent(b, 'after purge');
  });

  it('exportFor: own entries, plus the requester’s with includeRequesters, never a third node’s; in chunks', () => {
    const a = fleetNode(1);
    const b = fleetNode(2);
    const c = fleetNode(3);
    for (let k = 0; k < 5; k++) established(b, k);
    for (let k = 10; k < 13; k++) established(c, k);
    for (let k = 20; k < 27; k++) established(a, k);
    applyBatches(a, drainJournal(b), 2);
    applyBatches(a, drainJournal(c), 3);
    drainJournal(a);
    const j = a.syncJournal!;
    const count = (include: boolean, chunk: number): { records: number; calls: number } => {
      const cur = j.exportFor(2, include, 1);
      const buf = new Uint8Array(chunk * RECORD_V1_SIZE);
      let records = 0;
      let calls = 0;
      while (!cur.done) {
        records += cur.next(buf, 0, chunk);
        calls++;
      }
      return { records, calls };
    };
    assert.equal(count(false, 100).records, 7);
    assert.equal(count(true, 100).records, 12);
    const chunked = count(true, 2);
    assert.equal(chunked.records, 12);
    assert.ok(chunked.calls >= 6, `${chunked.calls} chunks`);
    // Version 2 holds no IPv4 entry.
    const v2 = j.exportFor(2, true, 2);
    assert.equal(v2.next(new Uint8Array(10 * RECORD_V2_SIZE), 0, 10), 0);
    // A restarted B takes its connections back from A's export.
    const b2 = fleetNode(2);
    const cur = j.exportFor(2, true, 1);
    const buf = new Uint8Array(64 * RECORD_V1_SIZE);
    const n = cur.next(buf, 0, 64);
    assert.equal(b2.syncJournal!.apply(buf, 0, n, 1, 1).applied, 12);
  });

  it('sweep marks long-lived entries whose deadline moved over half their timeout', () => {
    const a = fleetNode(1, 3, {
      timeouts: { ...DEFAULT_ENGINE_OPTIONS.timeouts, ESTABLISHED: 10 },
    });
    const f = established(a, 0);
    drainJournal(a);
    a.tick(3_000);
    f.observe(feedAny(a, f.client(TCP_ACK)));
    assert.equal(a.syncJournal!.sweep(100_000), 0, '3 s moved: not yet');
    a.tick(6_000);
    f.observe(feedAny(a, f.client(TCP_ACK)));
    assert.equal(a.syncJournal!.sweep(100_000), 1, '6 s moved: refresh');
    const b = drainJournal(a);
    assert.equal(b.length, 1);
    assert.equal(a.syncJournal!.sweep(100_000), 0, 'sent again: fresh');
  });

  it('a drain waits for this node’s own connections only', () => {
    const a = fleetNode(1);
    const b = fleetNode(2);
    for (let k = 0; k < 3; k++) established(a, k);
    established(b, 9);
    applyBatches(b, drainJournal(a), 1);
    assert.equal(b.table.count, 4);
    assert.equal(drainingConnections(b), 1);
    const plain = new Engine({});
    assert.equal(plain.syncJournal, undefined, 'no journal without enableSync');
    assert.equal(drainingConnections(plain), 0);
  });
});

describe('sync: settings', () => {
  it('enableSync checks its settings; addPeerPrefix wants it first and a prefix length its family has', () => {
    const e = new Engine({});
    assert.equal(e.syncJournal, undefined);
    assert.throws(() => e.addPeerPrefix({ addr: lip4(2), length: 24 }), /enableSync/);
    for (const bad of [
      { nodeId: 0, nodes: 3, maxSynced: 1 },
      { nodeId: 4, nodes: 3, maxSynced: 1 },
      { nodeId: 1, nodes: 256, maxSynced: 1 },
      { nodeId: 1, nodes: 2, maxSynced: -1 },
      { nodeId: 1.5, nodes: 2, maxSynced: 1 },
    ])
      assert.throws(() => e.enableSync(bad), RangeError, JSON.stringify(bad));
    assert.equal(e.syncJournal, undefined, 'nothing made by a refused call');
    e.enableSync({ nodeId: 1, nodes: 2, maxSynced: 1 });
    const j = e.syncJournal;
    e.enableSync({ nodeId: 1, nodes: 2, maxSynced: 1 });
    assert.equal(e.syncJournal, j, 'the same journal');
    assert.throws(() => e.addPeerPrefix({ addr: lip4(2), length: 33 }), RangeError);
  });
});

describe('sync: the port plan and the fleet’s cookies', () => {
  it('node k of n hands out only ports ≡ k − 1 (mod n); claims take any port', () => {
    for (const n of [1, 2, 3, 7]) {
      for (let k = 1; k <= n; k++) {
        const e = fleetNode(k, n);
        const li = e.laddrs.indexOf(lip4(k));
        const seen = new Set<number>();
        for (let i = 0; i < 300; i++) {
          const p = e.laddrs.allocate(li, 0);
          assert.ok(p >= 5000 && p <= 65000);
          assert.equal(p % n, k - 1, `node ${k}/${n}: port ${p}`);
          assert.ok(!seen.has(p));
          seen.add(p);
        }
        // The first port of the next node's share: never handed out here, claimed all the same.
        const other = 5000 + (((k % n) - (5000 % n) + n) % n);
        if (n > 1) assert.notEqual(other % n, k - 1);
        if (!seen.has(other)) assert.equal(e.laddrs.claim(li, 0, other), true, 'any port claimed');
      }
    }
    // A small range runs out at the share's size, with foreign claims in it.
    const e = new Engine({ portRange: { min: 6000, max: 6009 } });
    e.addService({
      vip: F_VIP,
      vport: 80,
      scheduler: 'rr',
      laddrs: [lip4(1)],
      realServers: [{ addr: F_RIP, port: 80, weight: 1 }],
    });
    e.enableSync({ nodeId: 2, nodes: 3, maxSynced: 10 });
    assert.equal(e.laddrs.claim(0, 0, 6000), true);
    const got: number[] = [];
    for (let p = e.laddrs.allocate(0, 0); p >= 0; p = e.laddrs.allocate(0, 0)) got.push(p);
    assert.deepEqual(got.sort(), [6001, 6004, 6007]);
    assert.equal(e.laddrs.portsInUse(0, 0), 4);
    e.enableSync({ nodeId: 2, nodes: 3, maxSynced: 10 });
    assert.equal(e.laddrs.allocate(0, 0), -1, 'enableSync again changes nothing');
  });

  it('two nodes with the fleet key, started 37 s apart, accept each other’s cookies (across a minute too)', () => {
    for (const gap of [0, 59_000]) {
      const a = fleetNode(1);
      const b = fleetNode(2);
      // The same wall-clock moment on both: B's engine clock is 37 s behind A's.
      a.tick(100_000);
      b.tick(100_000 - 37_000);
      const f = new FleetFlow(SYNPROXY, 0, 777, 888);
      const synAck = feedAny(a, f.client(TCP_SYN, undefined, LINUX_SYN_OPTS));
      assert.equal(synAck.length, 1);
      f.observe(synAck);
      a.tick(100_000 + gap);
      b.tick(100_000 - 37_000 + gap);
      const out = feedAny(b, f.client(TCP_ACK));
      assert.equal(b.counter('synproxy_cookie_valid'), 1, `gap ${gap}: cookie valid on B`);
      assert.equal(out.length, 1);
      assert.equal(out[0]!.flags, TCP_SYN, 'B opens the RS leg');
    }
    // Without the fleet key each node's keys are its own: the same ACK fails.
    const x = new Engine({ synproxySecret: 1, isnClockOriginMs: FLEET_EPOCH });
    const y = new Engine({ synproxySecret: 2, isnClockOriginMs: FLEET_EPOCH });
    for (const e of [x, y])
      e.addService({
        vip: F_VIP,
        vport: 443,
        scheduler: 'rr',
        laddrs: [lip4(1)],
        realServers: [{ addr: F_RIP, port: 8443, weight: 1 }],
        synProxy: true,
      });
    const f = new FleetFlow(SYNPROXY, 0, 777, 888);
    f.observe(feedAny(x, f.client(TCP_SYN, undefined, LINUX_SYN_OPTS)));
    feedAny(y, f.client(TCP_ACK));
    assert.equal(y.counter('synproxy_cookie_invalid'), 1);
  });
});

describe('sync: UDP flows', () => {
  it('a flow opened on A carries on through B: datagrams both ways, to A’s LIP', () => {
    const a = fleetNode(1);
    const b = fleetNode(2);
    const UDP = FLEET_SERVICES.find((s) => s.udp)!;
    const up = buildUdp4({
      src: 0xcb007101,
      dst: F_VIP,
      sport: 33333,
      dport: UDP.vport,
      payload: pattern(40, 1),
    });
    const first = feedUdp(a, up);
    assert.ok(first.length >= 1);
    const lport = readUdp(first.at(-1)!).sport;
    const batches = drainJournal(a);
    assert.equal(
      batches.reduce((n, x) => n + x.count, 0),
      1,
    );
    assert.equal(applyBatches(b, batches, 1).applied, 1);
    assert.equal(b.connectionCount, 1);
    const down = buildUdp4({
      src: F_RIP,
      dst: lip4(1),
      sport: UDP.rport,
      dport: lport,
      payload: pattern(80, 2),
    });
    const viaA = feedUdp(a, down);
    const viaB = feedUdp(b, down);
    assert.equal(viaB.length, 1);
    assert.deepEqual(Buffer.from(viaB[0]!).toString('hex'), Buffer.from(viaA[0]!).toString('hex'));
    assert.equal(b.counter('sync_taken_over'), 1);
    b.tick(400_000);
    assert.equal(b.connectionCount, 0);
    assert.equal(b.counter('sync_expired_silent'), 0, 'B carried it: its own expiry');
    assert.equal(
      drainJournal(b).reduce((n, x) => n + x.count, 0),
      1,
      'its removal goes out',
    );
    assert.equal(b.counter('sync_removals_out'), 1);
  });
});

describe('sync apply: hostile records are counted, never thrown', () => {
  it('random bytes, truncation, bad state codes, unknown services, bad nodes: a bounded fuzz loop', () => {
    const a = fleetNode(1);
    for (let k = 0; k < 6; k++) established(a, k);
    const good = drainJournal(a, 100).find((x) => x.version === 1)!;
    const b = fleetNode(2, 3, {}, 50);
    const j = b.syncJournal!;
    const next = rng(17);
    let rejected = 0;
    for (let round = 0; round < 400; round++) {
      const bytes = good.bytes.slice();
      const kind = round % 5;
      if (kind === 0) for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(next() * 256);
      else if (kind === 1) {
        const at = Math.floor(next() * bytes.length);
        bytes[at] = bytes[at]! ^ (1 << Math.floor(next() * 8));
      } else if (kind === 2) bytes[RecordField.State] = 9 + Math.floor(next() * 200);
      else if (kind === 3) new DataView(bytes.buffer).setUint16(RecordField.Vport, 9999);
      const cut = kind === 4 ? Math.floor(next() * bytes.length) : bytes.length;
      const r = j.apply(bytes.subarray(0, cut), 0, good.count, next() < 0.5 ? 1 : 2, 1);
      rejected += r.rejected;
      assert.ok(b.syncJournal!.imported <= 50);
    }
    assert.ok(rejected > 0);
    for (const [buf, off, n, v, from] of [
      [new Uint8Array(0), 0, 3, 1, 1],
      [good.bytes, -1, 1, 1, 1],
      [good.bytes, 0, 1, 7, 1],
      [good.bytes, 0, 1, 1, 0],
      [good.bytes, 0, 1, 1, 2],
      [good.bytes, 0, 1, 1, 300],
      [good.bytes, 0, 1e12, 1, 1],
      [good.bytes, 0, Number.NaN, 1, 1],
    ] as [Uint8Array, number, number, number, number][]) {
      assert.doesNotThrow(() => j.apply(buf, off, n, v, from));
    }
    assert.ok(b.counter('sync_rejected_malformed') > 0);
    assert.ok(b.counter('sync_rejected_bad_node') >= 3);
    assert.ok(b.counter('sync_rejected_no_service') > 0);
    consistent(b, 'after the fuzz');
    // Unknown service and unknown LIP, hand-made.
    const r = emptyRecord();
    Object.assign(r, {
      state: TcpState.Established,
      cip: 1,
      cport: 2,
      vip: F_VIP,
      vport: 80,
      lip: 0x0b000001,
      lport: 6000,
      rip: F_RIP,
      rport: 8080,
      remainingMs: 1000,
    });
    const rec = new Uint8Array(RECORD_V1_SIZE);
    writeRecord(new DataView(rec.buffer), 0, r);
    const c = fleetNode(3);
    assert.equal(c.syncJournal!.apply(rec, 0, 1, 1, 1).rejected, 1);
    assert.equal(c.counter('sync_rejected_no_local_address'), 1, 'a LIP in no peer prefix');
  });
});

/** Feeds a UDP datagram; the raw bytes that came out. */
function feedUdp(e: Engine, bytes: Uint8Array): Uint8Array[] {
  const p = e.pool.take();
  assert.ok(p.load(bytes));
  e.process(p);
  const out: Uint8Array[] = [];
  for (let i = 0; i < e.outCount; i++) {
    out.push(e.out[i]!.view().slice());
    e.pool.give(e.out[i]!);
  }
  e.clearOutput();
  return out;
}
