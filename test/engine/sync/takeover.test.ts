/**
 * The key property of connection sync: connections opened on node A (plain
 * and SYNPROXY; IPv4, IPv6 and FNAT64) and drained from A's journal into
 * B's `apply` carry on through B alone — client packets and the RS's
 * replies to A's LIP — byte for byte as A itself would have sent them
 * (sequence numbers translated, TOA where A puts it and nowhere else),
 * until B's state machine ends them by FIN both ways or by RST. Then B
 * reports them to the third node as their carrier, and their removal.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Engine } from '../../../src/engine/engine.js';
import { TcpState } from '../../../src/engine/tcp-state.js';
import { addressKey } from '../../../src/wire/address.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../../src/wire/tcp.js';
import { opt } from '../../../src/wire/tcp-options.js';
import { LINUX_SYN_ACK_OPTS, LINUX_SYN_OPTS } from '../../support/engine-fixture.js';
import { pattern } from '../../support/packets.js';
import {
  FleetFlow,
  TCP_SERVICES,
  applyBatches,
  drainJournal,
  emitted,
  feedAny,
  fleetInconsistency,
  fleetNode,
} from '../../support/sync-engines.js';
import { decodeAnyFamily, type DecodedAnyFamily } from '../../support/decode.js';

/** Feeds one packet, returns what came out decoded, and lets the flow learn from it. */
function step(e: Engine, f: FleetFlow, bytes: Uint8Array): DecodedAnyFamily[] {
  const out = feedAny(e, bytes);
  f.observe(out);
  return out;
}

/** Opens f through e: handshake (SYNPROXY's cookie first where it has one), data both ways. */
function open(e: Engine, f: FleetFlow): void {
  step(e, f, f.client(TCP_SYN, undefined, LINUX_SYN_OPTS));
  if (f.s.synProxy) step(e, f, f.client(TCP_ACK));
  step(e, f, f.rs(TCP_SYN | TCP_ACK, undefined, LINUX_SYN_ACK_OPTS));
  if (!f.s.synProxy) step(e, f, f.client(TCP_ACK));
  step(e, f, f.client(TCP_ACK | TCP_PSH, pattern(200 + f.k, f.k)));
  step(e, f, f.rs(TCP_ACK | TCP_PSH, pattern(900 + f.k, f.k + 1)));
  step(e, f, f.client(TCP_ACK));
}

/** What comes after the failover: data both ways, then both FINs (even k) or the client's RST (odd k). */
function continuation(f: FleetFlow): { make: () => Uint8Array; what: string }[] {
  const steps = [
    { make: () => f.client(TCP_ACK | TCP_PSH, pattern(300, f.k + 2)), what: 'client data' },
    { make: () => f.rs(TCP_ACK | TCP_PSH, pattern(1200, f.k + 3)), what: 'RS data' },
    {
      make: () =>
        f.client(TCP_ACK, undefined, [opt.nop(), opt.nop(), opt.sack([[f.cack, f.cack + 10]])]),
      what: 'client SACK',
    },
    { make: () => f.rs(TCP_ACK | TCP_PSH, pattern(700, f.k + 4)), what: 'RS data again' },
  ];
  if (f.k % 2 === 0) {
    steps.push({ make: () => f.rs(TCP_FIN | TCP_ACK), what: 'RS FIN' });
    steps.push({ make: () => f.client(TCP_FIN | TCP_ACK), what: 'client FIN' });
    steps.push({ make: () => f.rs(TCP_ACK), what: 'RS last ACK' });
  } else {
    steps.push({ make: () => f.client(TCP_RST | TCP_ACK), what: 'client RST' });
  }
  return steps;
}

const hex = (out: DecodedAnyFamily[]): string[] =>
  out.map((d) => Buffer.from(d.bytes).toString('hex'));

function consistent(e: Engine, what: string): void {
  const v = fleetInconsistency(e);
  assert.equal(v, null, `${what}: ${v}`);
}

describe('sync: a connection made on A carries on through B alone', () => {
  it('plain and SYNPROXY, IPv4, IPv6 and FNAT64: every packet on B as A sends it, B ends them', () => {
    const a = fleetNode(1);
    const b = fleetNode(2);
    const c = fleetNode(3);
    // B started 37 s after A: its clock is behind, deadlines are still the records' time left.
    a.tick(40_000);
    b.tick(3_000);
    c.tick(100);
    const flows: FleetFlow[] = [];
    let k = 0;
    for (const s of TCP_SERVICES)
      for (let n = 0; n < 2; n++) {
        const f = new FleetFlow(s, k, 1_000_000 * (k + 1), 0xfff00000 + 977 * k);
        open(a, f);
        flows.push(f);
        k++;
      }
    assert.equal(a.table.count, flows.length);
    // The first client data packet (acking the RS's SYN+ACK) carried the TOA on A.
    assert.ok(a.counter('toa_inserted') >= flows.length);

    const batches = drainJournal(a);
    assert.ok(batches.some((x) => x.version === 1) && batches.some((x) => x.version === 2));
    assert.equal(
      batches.reduce((n, x) => n + x.count, 0),
      flows.length,
      'one record per established connection',
    );
    assert.equal(a.counter('sync_records_out'), flows.length);
    assert.deepEqual(applyBatches(b, batches, 1), {
      applied: flows.length,
      removed: 0,
      rejected: 0,
      ignored: 0,
    });
    assert.equal(applyBatches(c, batches, 1).applied, flows.length);
    assert.equal(drainJournal(a).length, 0, 'nothing left to send');
    consistent(b, 'B after apply');
    const jb = b.syncJournal!;
    assert.equal(jb.imported, flows.length);
    // A's LIPs came into B's pool by the peer prefixes, in no service's group.
    for (const s of TCP_SERVICES) {
      assert.ok(b.laddrs.has(s.lip(1)), `${s.name}: A's LIP known to B`);
      const li = b.laddrs.indexOf(s.lip(1));
      assert.ok(
        b.services.every((x) => !x.lipIndexes.includes(li)),
        'never a source for new connections',
      );
    }
    const list = (e: Engine) =>
      e
        .listConnections()
        .map((x) => `${addressKey(x.cip)}:${x.cport} ${addressKey(x.lip)}:${x.lport} ${x.state}`)
        .sort();
    assert.deepEqual(list(b), list(a), 'the same connections, tuples and states');

    // A dies. Every later packet goes to B; A, fed the same packets, is the reference.
    let packets = 0;
    for (const f of flows) {
      for (const { make, what } of continuation(f)) {
        const bytes = make();
        const outA = step(a, f, bytes);
        const outB = feedAny(b, bytes);
        assert.deepEqual(hex(outB), hex(outA), `${f.s.name} flow ${f.k}: ${what}`);
        assert.ok(
          outB.length > 0 || what === 'client RST' || what === 'RS last ACK',
          `${what} went through`,
        );
        if (what === 'client SACK') {
          for (const d of outB) assert.equal(d.toa, null, 'no TOA once the RS has sent data');
        }
        packets++;
      }
    }
    assert.ok(packets >= flows.length * 5, `${packets} packets compared`);
    assert.equal(b.counter('sync_taken_over'), flows.length, 'B carries every one now');
    assert.equal(jb.imported, 0);
    assert.equal(b.counter('toa_inserted'), 0, 'B never inserted a TOA: none was due');
    for (const f of flows) {
      const e = b
        .listConnections()
        .find((x) => x.cport === f.cport && addressKey(x.cip) === addressKey(f.cip));
      assert.ok(e, `${f.s.name} flow ${f.k} still in B's table`);
      assert.equal(
        e.state,
        f.k % 2 === 0 ? TcpState.TimeWait : TcpState.Close,
        `flow ${f.k} ended`,
      );
    }
    consistent(b, 'B after the traffic');

    // B tells C it carries them now (state changes of taken-over entries go out), then their end.
    const fromB = drainJournal(b);
    assert.equal(applyBatches(c, fromB, 2).applied, flows.length);
    assert.deepEqual(list(c), list(b), 'C follows B');
    b.tick(3_000 + 180_000);
    const rsts = emitted(b);
    assert.equal(rsts.length, 0, 'closed entries expire without RSTs');
    assert.equal(b.table.count, 0);
    // C was told they ended (TIME_WAIT, CLOSE): no removal records; its copies expire on their own.
    assert.equal(drainJournal(b).length, 0);
    assert.equal(b.counter('sync_removals_out'), 0);
    c.tick(3_000 + 180_000);
    assert.equal(emitted(c).length, 0, "C's copies expire without RSTs");
    assert.equal(c.table.count, 0, "C's copies expired with the time B's records carried");
    assert.equal(c.counter('sync_expired_silent'), flows.length);
    consistent(c, 'C at the end');
  });

  it('B answers a stale client packet of an imported SYNPROXY connection as A would (no cookie check)', () => {
    const a = fleetNode(1);
    const b = fleetNode(2);
    const f = new FleetFlow(TCP_SERVICES[1]!, 0, 5000, 9000);
    open(a, f);
    applyBatches(b, drainJournal(a), 1);
    // The client retransmits its last ACK: on B it is a packet of a known connection, translated.
    f.cseq = f.cseq >>> 0;
    const bytes = f.client(TCP_ACK);
    const outA = feedAny(a, bytes);
    const outB = feedAny(b, bytes);
    assert.deepEqual(hex(outB), hex(outA));
    assert.equal(b.counter('synproxy_cookie_valid'), 0, 'no cookie check: the entry was there');
    assert.equal(outB.length, 1);
    assert.equal(decodeAnyFamily(outB[0]!.bytes).dport, f.s.rport);
  });
});
