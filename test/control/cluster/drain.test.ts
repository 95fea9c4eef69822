/**
 * A drain: what it waits for (TCP entries not yet closing), and how it
 * ends — at once when nothing is left, when the last one closes, or when
 * its timeout passes — each exactly once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CF_IN_USE } from '../../../src/engine/conn-table.js';
import { TcpState } from '../../../src/engine/tcp-state.js';
import { Drain, openTcpConnections, type DrainEnd } from '../../../src/control/cluster/drain.js';
import { TCP_SYN } from '../../../src/wire/tcp.js';
import { CIP, CPORT, feedRaw, newTestEngine, VIP, VPORT } from '../../support/engine-fixture.js';
import { recordingLogger } from '../../support/lb-harness.js';
import { buildSegment } from '../../support/packets.js';
import { sleep } from '../../support/time.js';

test('open TCP connections: every state but TIME_WAIT, CLOSE and free slots', () => {
  const states = [
    TcpState.SynSent,
    TcpState.SynRecv,
    TcpState.Established,
    TcpState.FinWait,
    TcpState.CloseWait,
    TcpState.LastAck,
    TcpState.TimeWait,
    TcpState.Close,
  ];
  const table = {
    capacity: states.length + 2,
    flags: new Uint8Array(states.length + 2),
    state: new Uint8Array(states.length + 2),
  };
  states.forEach((s, i) => {
    table.flags[i] = CF_IN_USE;
    table.state[i] = s;
  });
  // A free slot that still holds an old state does not count.
  table.state[states.length] = TcpState.Established;
  assert.equal(openTcpConnections(table), 6);
});

test('a client SYN through the engine is one open connection in its real table', () => {
  const e = newTestEngine({});
  assert.equal(openTcpConnections(e.table), 0);
  feedRaw(
    e,
    buildSegment({
      src: CIP,
      dst: VIP,
      sport: CPORT,
      dport: VPORT,
      seq: 1,
      ack: 0,
      flags: TCP_SYN,
    }),
  );
  assert.equal(openTcpConnections(e.table), 1);
});

test('a drain with nothing to wait for ends on its first check', async () => {
  const ends: DrainEnd[] = [];
  const d = new Drain(
    () => 0,
    recordingLogger().log,
    (how) => ends.push(how),
  );
  const s = d.start(30, 'test');
  assert.deepEqual(
    { active: s.active, at: s.connectionsAtStart, left: s.connectionsLeft, timeout: s.timeout },
    { active: true, at: 0, left: 0, timeout: 30 },
  );
  assert.equal(d.started, true);
  await sleep(400);
  assert.deepEqual(ends, ['connections']);
  assert.equal(d.active, false);
  assert.equal(d.status()?.ended, 'connections');
});

test('a drain ends when its last connection closes, reporting progress on the way', async () => {
  let left = 3;
  const ends: DrainEnd[] = [];
  const d = new Drain(
    () => left,
    recordingLogger().log,
    (how) => ends.push(how),
  );
  d.start(30, 'test');
  assert.equal(d.start(5, 'again').timeout, 30, 'a second start returns the running drain');
  left = 1;
  await sleep(300);
  assert.equal(d.status()?.connectionsLeft, 1);
  assert.equal(d.status()?.connectionsAtStart, 3);
  assert.deepEqual(ends, []);
  left = 0;
  await sleep(400);
  assert.deepEqual(ends, ['connections']);
});

test('a drain whose connections stay ends at its timeout, once', async () => {
  const ends: DrainEnd[] = [];
  const { log, records } = recordingLogger();
  const d = new Drain(
    () => 2,
    log,
    (how) => ends.push(how),
  );
  d.start(1, 'test');
  await sleep(800);
  assert.deepEqual(ends, []);
  await sleep(1000);
  assert.deepEqual(ends, ['timeout']);
  assert.equal(d.status()?.connectionsLeft, 2);
  assert.equal(records.filter((r) => r.msg === 'drain timed out').length, 1);
});

test('cancel stops the wait without ending it', async () => {
  const ends: DrainEnd[] = [];
  const d = new Drain(
    () => 0,
    recordingLogger().log,
    (how) => ends.push(how),
  );
  d.start(1, 'test');
  d.cancel();
  await sleep(400);
  assert.deepEqual(ends, []);
});
