/**
 * The sync-rate bench measures what it says: every connection the pacer
 * opens goes through the engine (forwarded both ways, closed), and with
 * sync on every one of them reaches the peer node in its child process,
 * each told at most twice (established, ended).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Conversations, runEngineSyncBench } from '../../bench/engine-sync.js';
import { benchSyncEngine } from '../../bench/sync-fleet-node.js';
import { TcpState } from '../../src/engine/tcp-state.js';

test('a conversation: ten packets forwarded, the connection established, then in TIME_WAIT', () => {
  const e = benchSyncEngine(1, 1000);
  const conv = new Conversations(e, 16);
  conv.open(0);
  assert.equal(e.connectionCount, 1);
  assert.equal(e.listConnections()[0]!.state, TcpState.Established);
  conv.close(0);
  assert.equal(e.listConnections()[0]!.state, TcpState.TimeWait);
  assert.equal(e.counter('rx_packets'), 10);
  assert.equal(e.counter('forwarded_packets'), 10, 'every packet forwarded');
});

test('one round off and on at 2,000 connections a second: the peer holds every connection', async () => {
  const r = await runEngineSyncBench({
    rate: 2000,
    seconds: 1,
    rounds: 1,
    lifetimeMs: 200,
    log: () => {},
  });
  assert.equal(r.runs.length, 2);
  const on = r.runs.find((x) => x.mode === 'on')!;
  assert.deepEqual(on.notes, []);
  assert.equal(on.connections, 2000);
  assert.equal(on.peerHeld, 2000, 'every connection reached the peer');
  assert.ok(
    on.recordsPerConnection >= 1 && on.recordsPerConnection <= 2,
    `${on.recordsPerConnection}`,
  );
  assert.equal(
    on.peerAppliedPerConnection,
    on.recordsPerConnection,
    'the peer entered every record',
  );
  assert.ok(on.bytesPerConnection >= 60 * on.recordsPerConnection);
  const off = r.runs.find((x) => x.mode === 'off')!;
  assert.equal(off.recordsPerConnection, 0);
});
