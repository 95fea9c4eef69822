/**
 * Sync around the LB: the engine link's one call site, the SyncRunner with
 * a LoadBalancer (Snapshot.sync, a reload that changes the block or the
 * key restarts the channel, one that changes nothing leaves it, one that
 * needs a restart is refused), `ctl --sync` (argv, text, over the socket)
 * and the fullnat_sync_* metrics.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { parseCtlArgs } from '../../../src/control/ctl/index.js';
import { formatSync } from '../../../src/control/ctl/sync-format.js';
import { createMetricsRegistry } from '../../../src/control/metrics.js';
import type { AnnouncedPrefix, Snapshot, SyncStatus } from '../../../src/control/model.js';
import { JournalTable, linkEngine } from '../../../src/control/sync/engine-link.js';
import type { EngineSyncOptions } from '../../../src/control/sync/sync-table.js';
import { SyncRunner } from '../../../src/control/sync/sync-runner.js';
import type { Engine } from '../../../src/engine/engine.js';
import { ipv4, ipv6 } from '../../support/addresses.js';
import { RecordingLb, serveCtl, type CtlBench } from '../../support/ctl-bench.js';
import { FakeSyncTable } from '../../support/fake-sync-table.js';
import { ONE_SERVICE, recordingLogger, tempConfig, testLb } from '../../support/lb-harness.js';
import { noHost } from '../../support/no-host.js';
import { fleetSpec, freePorts, until } from '../../support/sync-fleet.js';

const STATUS: SyncStatus = {
  nodeId: 1,
  listen: { addr: ipv4('10.120.1.11'), port: 8848 },
  incarnation: 1733600000000,
  ready: true,
  peers: [
    {
      node: 2,
      addr: ipv4('10.120.1.12'),
      port: 8848,
      state: 'up',
      incarnation: 1733600000500,
      lastHeardMs: 120,
    },
    { node: 3, addr: ipv6('2001:db8::13'), port: 9000, state: 'never-heard' },
  ],
  synced: 42,
  counters: {
    messages_in: 10,
    messages_out: 20,
    bytes_in: 1000,
    bytes_out: 2000,
    records_in: 30,
    records_out: 40,
    records_applied: 28,
    records_removed: 1,
    records_refused: 1,
    table_requests_out: 2,
    tables_received: 1,
    table_requests_in: 1,
    tables_sent: 1,
    peer_restarts: 0,
    partitions_healed: 0,
    entries_purged: 0,
    send_errors: 0,
    rejected_bad_mac: 3,
    rejected_replay: 1,
    rejected_truncated: 0,
  },
};

const snap = (sync?: SyncStatus): Snapshot => ({
  services: [],
  counters: {},
  connections: 0,
  uptime: 1,
  ...(sync ? { sync } : {}),
});

describe('the engine link', () => {
  it('turns sync on once with the spec and adds every peer prefix, positions left out', () => {
    const journal = { imported: 0 };
    const enabled: EngineSyncOptions[] = [];
    const prefixes: AnnouncedPrefix[] = [];
    const stub = {
      enableSync: (o: EngineSyncOptions) => void enabled.push(o),
      syncJournal: journal,
      addPeerPrefix: (p: AnnouncedPrefix) => void prefixes.push(p),
    };
    const spec = fleetSpec(2, [8001, 8002, 8003], { maxSynced: 77 });
    const key = Uint8Array.of(1, 2, 3);
    const side = linkEngine(stub as unknown as Engine, spec, key);
    assert.ok(side.table instanceof JournalTable);
    assert.equal(side.table.synced, 0);
    assert.deepEqual(enabled, [{ nodeId: 2, nodes: 3, maxSynced: 77, fleetKey: key }]);
    for (const p of spec.peers) for (const q of p.lipPrefixes) side.addPeerPrefix(q);
    assert.deepEqual(prefixes, [
      { addr: ipv4('10.9.1.0'), length: 28 },
      { addr: ipv4('10.9.3.0'), length: 28 },
    ]);
  });

  it('says plainly when enabling left the engine without a journal', () => {
    const stub = { enableSync: () => {}, syncJournal: undefined, addPeerPrefix: () => {} };
    assert.throws(
      () => linkEngine(stub as unknown as Engine, fleetSpec(1, [1, 2]), new Uint8Array(16)),
      /Engine\.enableSync left no sync journal/,
    );
  });
});

describe('SyncRunner with a LoadBalancer', () => {
  it('without a sync block: ready at once, no channel, no Snapshot.sync', async () => {
    const lb = testLb(tempConfig('fullnat-sync-none-', ONE_SERVICE), noHost);
    const runner = new SyncRunner(lb, {
      log: recordingLogger().log,
      link: () => assert.fail('no link without sync'),
    });
    lb.sync = runner;
    await runner.start();
    await runner.ready;
    assert.equal(runner.isReady, true);
    assert.equal('sync' in lb.snapshot(), false);
    lb.reload();
    await runner.stop();
  });

  it('Snapshot.sync; a reload restarts the channel when the block or the key changes, not otherwise', async () => {
    const ports = await freePorts(2);
    const file = tempConfig('fullnat-sync-run-');
    const keyFile = join(dirname(file), 'sync.key');
    writeFileSync(keyFile, 'the first key, long enough\n');
    const conf = (heartbeat: number, nodeId = 1): string =>
      `${ONE_SERVICE}sync {\n node_id ${nodeId}\n listen 127.0.0.1 ${ports[0]}\n key_file ${keyFile}\n` +
      ` heartbeat ${heartbeat}\n resync_timeout 0\n` +
      ` peer 127.0.0.1 port ${ports[1]} node_id 2 lip_prefix 10.9.2.0/28\n}\n`;
    writeFileSync(file, conf(100));
    const { log, records } = recordingLogger();
    const lb = testLb(file, noHost, log);
    const table = new FakeSyncTable();
    const linked: EngineSyncOptions[] = [];
    const added: AnnouncedPrefix[] = [];
    const runner = new SyncRunner(lb, {
      log,
      link: (spec, fleetKey) => {
        linked.push({
          nodeId: spec.nodeId,
          nodes: spec.nodes,
          maxSynced: spec.maxSynced,
          fleetKey,
        });
        return { table, addPeerPrefix: (p) => void added.push(p) };
      },
    });
    lb.sync = runner;
    try {
      await runner.start();
      await runner.ready;
      assert.equal(linked.length, 1);
      assert.equal(linked[0]?.fleetKey?.length, 32, 'the derived fleet key, never the file');
      assert.equal(added.length, 1);
      const s = lb.snapshot().sync;
      assert.ok(s);
      assert.equal(s.nodeId, 1);
      assert.deepEqual(s.listen, { addr: ipv4('127.0.0.1'), port: ports[0] });
      assert.equal(s.ready, true);
      const incarnation = s.incarnation;
      const restarts = () =>
        records.filter((r) => r.msg.startsWith('sync block or key changed')).length;

      assert.equal(lb.reload().ok, true);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(restarts(), 0, 'nothing changed');

      writeFileSync(file, conf(150));
      assert.equal(lb.reload().ok, true);
      await until(() => restarts() === 1, 'the channel restarted for the heartbeat');
      await until(() => lb.snapshot().sync !== undefined, 'the new channel up');
      assert.equal(lb.snapshot().sync!.incarnation, incarnation, 'the same run');

      writeFileSync(keyFile, 'a second key, long enough too\n');
      assert.equal(lb.reload().ok, true);
      await until(() => restarts() === 2, 'the channel restarted for the key');
      assert.equal(linked.length, 1, 'the engine side is linked once');
      assert.equal(added.length, 1, 'a prefix is added once');

      writeFileSync(file, conf(150, 2).replace('node_id 2 lip', 'node_id 1 lip'));
      const refused = lb.reload();
      assert.equal(refused.ok, false);
      assert.match(refused.ok ? '' : refused.error, /sync node_id can only change with a restart/);
    } finally {
      await runner.stop();
    }
    assert.equal(lb.snapshot().sync, undefined, 'stopped: no channel');
  });
});

describe('ctl --sync and the metrics', () => {
  it('argv: --sync is a command of its own', () => {
    assert.deepEqual(parseCtlArgs(['--sync']), { kind: 'sync' });
    assert.deepEqual(parseCtlArgs(['--sync', '-n']), { kind: 'sync' });
    assert.throws(() => parseCtlArgs(['--sync', '--cluster']), /multiple commands/);
  });

  it('prints the channel, the peers, the traffic and the refusals', () => {
    assert.deepEqual(formatSync(snap(STATUS)), [
      'Sync: node 1, listen 10.120.1.11:8848, ready, incarnation 1733600000000',
      'Node  Peer                                          State        Heard    Incarnation',
      '2     10.120.1.12:8848                              up           0.1 s    1733600000500',
      '3     [2001:db8::13]:9000                           never-heard  -        -',
      'Entries held for peers: 42',
      'Messages: in 10, out 20; bytes: in 1000, out 2000',
      'Records: in 30 (applied 28, removed 1, refused 1), out 40',
      'Tables: asked 2, received 1, asked of this node 1, sent 1',
      'Peers: restarts 0, partitions healed 0 (entries dropped 0)',
      'Messages refused: bad_mac 3, replay 1',
    ]);
    assert.deepEqual(formatSync(snap()), [
      'No sync block: connections are not shared with other nodes.',
    ]);
    const waiting = formatSync(snap({ ...STATUS, ready: false, counters: {} }));
    assert.match(waiting[0]!, /waiting for the peers' tables/);
    assert.equal(waiting.at(-1), 'Messages refused: none');
  });

  it('metrics: peers up, readiness, traffic each way, refusals by reason, entries held', async () => {
    const text = await createMetricsRegistry(() => snap(STATUS), {
      defaultMetrics: false,
    }).metrics();
    for (const line of [
      'fullnat_sync_peer_up{peer="2"} 1',
      'fullnat_sync_peer_up{peer="3"} 0',
      'fullnat_sync_ready 1',
      'fullnat_sync_messages_total{direction="in"} 10',
      'fullnat_sync_messages_total{direction="out"} 20',
      'fullnat_sync_bytes_total{direction="in"} 1000',
      'fullnat_sync_bytes_total{direction="out"} 2000',
      'fullnat_sync_records_total{direction="in"} 30',
      'fullnat_sync_records_total{direction="out"} 40',
      'fullnat_sync_rejected_total{reason="bad_mac"} 3',
      'fullnat_sync_rejected_total{reason="replay"} 1',
      'fullnat_sync_rejected_total{reason="truncated"} 0',
      'fullnat_sync_rejected_total{reason="wrong_source"} 0',
      'fullnat_sync_entries 42',
    ])
      assert.ok(text.split('\n').includes(line), line);
    const none = await createMetricsRegistry(() => snap(), { defaultMetrics: false }).metrics();
    assert.doesNotMatch(none, /^fullnat_sync_\w+\{/m, 'no labelled series without sync');
    assert.match(none, /^fullnat_sync_ready 0$/m);
    assert.match(none, /^fullnat_sync_entries 0$/m);
  });

  let bench: CtlBench;
  const lbStandIn = new RecordingLb(() => snap(STATUS), []);
  before(async () => {
    bench = await serveCtl(lbStandIn, 'fullnat-ctl-sync-');
  });
  after(() => bench.close());

  it('ctl --sync over the socket asks for one snapshot; addresses come back as addresses', async () => {
    const r = await bench.run(['--sync']);
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.deepEqual(r.out, formatSync(snap(STATUS)));
    assert.deepEqual(lbStandIn.requests, [{ op: 'snapshot' }]);
  });
});
