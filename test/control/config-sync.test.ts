/**
 * A fleet node's `sync` block: both peer forms, IPv6, the defaults, the key
 * file read at load, the refusals with their exact `FILE:LINE: reason`, and
 * what a reload sees.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import {
  ConfigError,
  diffConfig,
  parseConfig,
  reloadNeedsForce,
} from '../../src/control/config/index.js';
import type { SyncSpec } from '../../src/control/model.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { parseIpv4 } from '../../src/wire/bytes.js';

const ip = (s: string): number => parseIpv4(s);
const ip6 = (s: string): Ipv6Address => Ipv6Address.parse(s)!;

const dir = mkdtempSync(join(tmpdir(), 'fullnat-sync-conf-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const SECRET = 'k3y-bytes-nobody-should-ever-see-in-a-message';
const KEY = join(dir, 'sync.key');
writeFileSync(KEY, `${SECRET}\n`);

const NODE = `local_address_group g1 {
    10.79.9.1
    10.79.9.2
    2001:db8:9::1
}
virtual_server 10.79.1.100 80 {
    laddr_group_name g1
    real_server 10.79.2.2 80 {
        weight 1
    }
}
`;

const SYNC = `sync {
    node_id 1
    nodes 4
    listen 10.79.0.11 8849
    key_file ${KEY}
    peer 10.79.0.12 {
        port 8850
        node_id 2
        lip_prefix 10.79.10.0/28
        lip_prefix 2001:db8:10::/64
    }
    peer 10.79.0.13 node_id 3 lip_prefix 10.79.11.0/28 lip_prefix 10.79.12.0/28
    max_synced 1000
    heartbeat 100
    resync_timeout 3000
}
`;

/** The ConfigError parsing `text` throws. */
function refusal(text: string, file = 'n.conf'): ConfigError {
  try {
    parseConfig(text, file);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.ok(!e.message.includes('\n'), 'one line');
    return e;
  }
  return assert.fail('expected a ConfigError');
}

/** 1-based line of the first line containing `needle`. */
function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `'${needle}' not in the text`);
  return i + 1;
}

const MIN = `node_id 1\nlisten 10.79.0.11\nkey_file ${KEY}\npeer 10.79.0.12 node_id 2 lip_prefix 10.79.10.0/28`;

/** NODE plus a sync block whose body is `body`; the error must be on the line holding `needle`. */
function expectSyncError(body: string, needle: string, message: string, nodeText = NODE): void {
  const text = `${nodeText}sync {\n${body}\n}\n`;
  const e = refusal(text);
  assert.equal(e.message, `n.conf:${lineOf(text, needle)}: ${message}`);
}

describe('config: the sync block', () => {
  it('parses every keyword, both peer forms, repeated lip_prefix', () => {
    const text = NODE + SYNC;
    const cfg = parseConfig(text, 'n.conf');
    const pos = (needle: string) => ({ file: 'n.conf', line: lineOf(text, needle) });
    const expected: SyncSpec = {
      nodeId: 1,
      nodes: 4,
      listen: { addr: ip('10.79.0.11'), port: 8849 },
      keyFile: KEY,
      peers: [
        {
          addr: ip('10.79.0.12'),
          port: 8850,
          nodeId: 2,
          lipPrefixes: [
            { addr: ip('10.79.10.0'), length: 28, pos: pos('lip_prefix 10.79.10.0/28') },
            { addr: ip6('2001:db8:10::'), length: 64, pos: pos('lip_prefix 2001:db8:10::/64') },
          ],
          pos: pos('peer 10.79.0.12 {'),
        },
        {
          addr: ip('10.79.0.13'),
          port: 8848,
          nodeId: 3,
          lipPrefixes: [
            { addr: ip('10.79.11.0'), length: 28, pos: pos('peer 10.79.0.13') },
            { addr: ip('10.79.12.0'), length: 28, pos: pos('peer 10.79.0.13') },
          ],
          pos: pos('peer 10.79.0.13'),
        },
      ],
      maxSynced: 1000,
      heartbeatMs: 100,
      resyncTimeoutMs: 3000,
      pos: pos('sync {'),
    };
    assert.deepEqual(cfg.sync, expected);
  });

  it('fills the documented defaults; a file without the block has none', () => {
    const cfg = parseConfig(`${NODE}sync {\n${MIN}\n}\n`, 'n.conf');
    const s = cfg.sync!;
    assert.equal(s.nodes, 2, '1 + the number of peers');
    assert.deepEqual(s.listen, { addr: ip('10.79.0.11'), port: 8848 });
    assert.equal(s.peers[0]!.port, 8848);
    assert.equal(s.heartbeatMs, 200);
    assert.equal(s.resyncTimeoutMs, 2000);
    assert.equal(s.maxSynced, Math.floor(cfg.defs.maxConnections / 2), 'half the table');
    const sized = parseConfig(
      `fullnat_defs {\n max_connections 1001\n}\n${NODE}sync {\n${MIN}\n}\n`,
      'n.conf',
    );
    assert.equal(sized.sync!.maxSynced, 500);
    assert.equal('sync' in parseConfig(NODE, 'n.conf'), false);
  });

  it('listen: IP PORT, IP:PORT, [IPv6]:PORT, an address alone; IPv6 peers; loopback for one host', () => {
    const listen = (l: string, peer = '10.79.0.12') =>
      parseConfig(
        `${NODE}sync {\n${MIN.replace('listen 10.79.0.11', `listen ${l}`).replace('10.79.0.12', peer)}\n}\n`,
        'n.conf',
      ).sync!;
    assert.deepEqual(listen('10.79.0.11:9000').listen, { addr: ip('10.79.0.11'), port: 9000 });
    assert.deepEqual(listen('2001:db8::11', '2001:db8::12').listen, {
      addr: ip6('2001:db8::11'),
      port: 8848,
    });
    assert.deepEqual(listen('[2001:db8::11]:9000', '[2001:db8::12]').listen, {
      addr: ip6('2001:db8::11'),
      port: 9000,
    });
    const v6 = listen('2001:db8::11 9000', '2001:db8::12');
    assert.deepEqual(v6.listen, { addr: ip6('2001:db8::11'), port: 9000 });
    assert.deepEqual(v6.peers[0]!.addr, ip6('2001:db8::12'));
    const lo = parseConfig(
      `${NODE}sync {\n${MIN.replace('listen 10.79.0.11', 'listen 127.0.0.1 9001').replace('peer 10.79.0.12', 'peer 127.0.0.1 port 9002')}\n}\n`,
      'n.conf',
    ).sync!;
    assert.deepEqual(lo.listen, { addr: ip('127.0.0.1'), port: 9001 });
    const oneLine = parseConfig(
      `${NODE}sync { node_id 1 listen 10.79.0.11 key_file ${KEY} peer 10.79.0.12 { node_id 2 lip_prefix 10.79.10.0/28 } }\n`,
      'n.conf',
    ).sync!;
    assert.deepEqual(
      oneLine.listen,
      { addr: ip('10.79.0.11'), port: 8848 },
      'a keyword after the address is no port',
    );
    assert.deepEqual([lo.peers[0]!.addr, lo.peers[0]!.port], [ip('127.0.0.1'), 9002]);
  });

  it('key_file: relative to the configuration file, read raw, whitespace trimmed', () => {
    const sub = join(dir, 'etc');
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, 'rel.key'), '  0123456789abcdef  \n');
    const conf = join(sub, 'n.conf');
    const cfg = parseConfig(
      `${NODE}sync {\n${MIN.replace(`key_file ${KEY}`, 'key_file rel.key')}\n}\n`,
      conf,
    );
    assert.equal(cfg.sync!.keyFile, join(sub, 'rel.key'));
  });

  it('accepts the block brace on the next line and a peer block on one line', () => {
    const cfg = parseConfig(
      `${NODE}sync\n{\nnode_id 2 listen 10.79.0.11\nkey_file ${KEY}\npeer 10.79.0.12 { node_id 1 lip_prefix 10.79.10.0/28 }\n}\n`,
      'n.conf',
    );
    assert.equal(cfg.sync!.peers[0]!.nodeId, 1);
    assert.equal(cfg.sync!.nodeId, 2);
  });
});

describe('config: sync refusals name FILE:LINE and the reason', () => {
  it('node_id and nodes: 1..255, every id within nodes, ids distinct', () => {
    for (const v of ['0', '256', 'one'])
      expectSyncError(
        MIN.replace('node_id 1', `node_id ${v}`),
        `node_id ${v}`,
        `bad node_id '${v}' (expected an integer 1..255)`,
      );
    expectSyncError(`${MIN}\nnodes 0`, 'nodes 0', "bad nodes '0' (expected an integer 1..255)");
    expectSyncError(
      MIN.replace('node_id 1', 'node_id 3'),
      'node_id 3',
      'node_id 3 is above nodes 2, 1 + the number of peers: node ids run 1..nodes (the LIP port plan)',
    );
    expectSyncError(
      `${MIN}\nnodes 2\npeer 10.79.0.13 node_id 3 lip_prefix 10.79.11.0/28`,
      'peer 10.79.0.13',
      'peer 10.79.0.13:8848: node_id 3 is above nodes 2: node ids run 1..nodes (the LIP port plan)',
    );
    expectSyncError(
      MIN.replace('node_id 2', 'node_id 1'),
      'peer 10.79.0.12',
      `peer 10.79.0.12:8848 has node_id 1, this node's own (n.conf:${lineOf(NODE + 'sync {\n' + MIN, 'node_id 1')})`,
    );
    const twice = `${MIN}\npeer 10.79.0.13 node_id 2 lip_prefix 10.79.11.0/28`;
    const text = `${NODE}sync {\n${twice}\n}\n`;
    assert.equal(
      refusal(text).message,
      `n.conf:${lineOf(text, 'peer 10.79.0.13')}: peer 10.79.0.13:8848 has node_id 2, as peer 10.79.0.12:8848 (n.conf:${lineOf(text, 'peer 10.79.0.12')}): node ids are distinct in a fleet`,
    );
  });

  it('required: node_id, listen, key_file, a peer; a peer needs node_id and lip_prefix', () => {
    const without = (line: string) =>
      MIN.split('\n')
        .filter((l) => !l.startsWith(line))
        .join('\n');
    expectSyncError(
      without('node_id'),
      'sync {',
      "sync needs 'node_id' (this node's id in the fleet, 1..255)",
    );
    expectSyncError(
      without('listen'),
      'sync {',
      "sync needs 'listen' (the address this node's sync channel uses, e.g. 'listen 10.0.0.11')",
    );
    expectSyncError(
      without('key_file'),
      'sync {',
      "sync needs 'key_file' (the fleet's shared secret, at least 16 bytes)",
    );
    expectSyncError(
      without('peer'),
      'sync {',
      "sync needs at least one 'peer' (a node this one shares its connections with)",
    );
    expectSyncError(
      `${MIN}\npeer 10.79.0.13 lip_prefix 10.79.11.0/28`,
      'peer 10.79.0.13',
      "peer 10.79.0.13:8848 needs 'node_id' (expected 'peer ADDRESS { node_id N lip_prefix P … }' or 'peer ADDRESS node_id N lip_prefix P')",
    );
    expectSyncError(
      `${MIN}\npeer 10.79.0.13 {\nnode_id 3\n}`,
      'peer 10.79.0.13',
      "peer 10.79.0.13:8848 needs 'lip_prefix' (the peer's LIPs: this node carries their connections once the peer is down)",
    );
    const bare = `${NODE}sync {\n${MIN}\npeer\n}\n`;
    assert.equal(
      refusal(bare).message,
      `n.conf:${bare.split('\n').indexOf('peer') + 1}: ` +
        "expected 'peer ADDRESS { node_id N lip_prefix P … }' or 'peer ADDRESS node_id N lip_prefix P'",
    );
  });

  it('peers: given once, known keywords, one family with listen, not the listen address', () => {
    const text = `${NODE}sync {\n${MIN}\npeer 10.79.0.12 node_id 3 lip_prefix 10.79.11.0/28\n}\n`;
    assert.equal(
      refusal(text).message,
      `n.conf:${lineOf(text, 'node_id 3')}: peer 10.79.0.12:8848 given twice (first at n.conf:${lineOf(text, 'peer 10.79.0.12')})`,
    );
    assert.ok(
      parseConfig(
        `${NODE}sync {\n${MIN}\npeer 10.79.0.12 port 8849 node_id 3 lip_prefix 10.79.11.0/28\n}\n`,
        'n.conf',
      ).sync,
      'another port of one host is another peer',
    );
    expectSyncError(
      `${MIN}\npeer 10.79.0.13 node_id 3 weight 2`,
      'peer 10.79.0.13',
      "unknown keyword 'weight' in peer (valid: port, node_id, lip_prefix)",
    );
    expectSyncError(
      `${MIN}\npeer 10.79.0.13 node_id 3 node_id 3 lip_prefix 10.79.11.0/28`,
      'peer 10.79.0.13',
      `'node_id' given twice in this block (first at n.conf:${lineOf(NODE + 'sync {\n' + MIN + '\npeer 10.79.0.13', 'peer 10.79.0.13')})`,
    );
    expectSyncError(
      `${MIN}\npeer 10.79.0.13 node_id`,
      'peer 10.79.0.13',
      "'node_id' needs a value",
    );
    expectSyncError(
      `${MIN}\npeer 10.79.0.13 {\nnode_id 3\nweight 2\n}`,
      'weight 2',
      "unknown keyword 'weight' in peer (valid: port, node_id, lip_prefix)",
    );
    expectSyncError(
      `${MIN}\npeer 2001:db8::13 node_id 3 lip_prefix 10.79.11.0/28`,
      'peer 2001:db8::13',
      `peer [2001:db8::13]:8848 is IPv6 but listen (n.conf:${lineOf(NODE + 'sync {\n' + MIN, 'listen')}) is IPv4: one socket sends to every peer`,
    );
    expectSyncError(
      MIN.replace('peer 10.79.0.12', 'peer 10.79.0.11'),
      'peer 10.79.0.11',
      `peer 10.79.0.11:8848 is this node's own listen address (n.conf:${lineOf(NODE + 'sync {\n' + MIN, 'listen')})`,
    );
    expectSyncError(
      MIN.replace('peer 10.79.0.12', 'peer 10.79.0.12 port 0'),
      'peer 10.79.0.12',
      "bad port '0' (expected an integer 1..65535)",
    );
  });

  it('addresses: unicast, not a VIP, RS or LIP of this node', () => {
    expectSyncError(
      MIN.replace('listen 10.79.0.11', 'listen 224.0.0.1'),
      'listen',
      "bad listen address '224.0.0.1' (not a unicast address)",
    );
    expectSyncError(
      MIN.replace('listen 10.79.0.11', 'listen 10.79.0'),
      'listen',
      "bad listen address '10.79.0' (expected an IPv4 or IPv6 address)",
    );
    expectSyncError(
      MIN.replace('listen 10.79.0.11', 'listen ff02::1'),
      'listen',
      "bad listen address 'ff02::1' (not a unicast address: multicast)",
    );
    expectSyncError(
      MIN.replace('listen 10.79.0.11', 'listen 10.79.0.11:70000'),
      'listen',
      "bad port '70000' (expected an integer 1..65535)",
    );
    expectSyncError(
      MIN.replace('peer 10.79.0.12', 'peer 0.0.0.0'),
      'peer 0.0.0.0',
      "bad peer address '0.0.0.0' (not a unicast address)",
    );
    expectSyncError(
      MIN.replace('listen 10.79.0.11', 'listen 10.79.1.100'),
      'listen',
      `sync listen address 10.79.1.100 is also a virtual_server address (n.conf:${lineOf(NODE, 'virtual_server')})`,
    );
    expectSyncError(
      MIN.replace('peer 10.79.0.12', 'peer 10.79.2.2'),
      'peer 10.79.2.2',
      `sync peer 10.79.2.2 is also a real server address (n.conf:${lineOf(NODE, 'real_server')})`,
    );
    expectSyncError(
      MIN.replace('listen 10.79.0.11', 'listen 10.79.9.1'),
      'listen',
      `sync listen address 10.79.9.1 is also a local address in 'g1' (n.conf:${lineOf(NODE, '10.79.9.1')})`,
    );
  });

  it("lip_prefix: a network, no overlaps, none of this node's LIPs, lip_prefix, VIPs or RSs", () => {
    expectSyncError(
      MIN.replace('10.79.10.0/28', '10.79.10.3/28'),
      'peer 10.79.0.12',
      "bad lip_prefix '10.79.10.3/28' (host bits set: the network is 10.79.10.0/28)",
    );
    const text = `${NODE}sync {\n${MIN}\npeer 10.79.0.13 node_id 3 lip_prefix 10.79.10.0/24\n}\n`;
    assert.equal(
      refusal(text).message,
      `n.conf:${lineOf(text, 'peer 10.79.0.13')}: lip_prefix 10.79.10.0/24 overlaps lip_prefix 10.79.10.0/28 (n.conf:${lineOf(text, 'peer 10.79.0.12')})`,
    );
    expectSyncError(
      MIN.replace('10.79.10.0/28', '10.79.9.0/28'),
      'peer 10.79.0.12',
      `lip_prefix 10.79.9.0/28 of peer 10.79.0.12 takes in this node's local address 10.79.9.1 in 'g1' (n.conf:${lineOf(NODE, '10.79.9.1')}): a LIP has one owner`,
    );
    const bgp = `bgp {\nrouter_id 10.79.0.11\nlocal_as 65011\nneighbor 10.79.0.1 remote_as 65000\nlip_prefix 10.79.9.0/28\nlip_prefix 2001:db8:9::/64\n}\n`;
    const withBgp = `${NODE}${bgp}sync {\n${MIN.replace('10.79.10.0/28', '10.79.8.0/22')}\n}\n`;
    assert.equal(
      refusal(withBgp).message,
      `n.conf:${lineOf(withBgp, 'peer 10.79.0.12')}: lip_prefix 10.79.8.0/22 of peer 10.79.0.12 takes in this node's local address 10.79.9.1 in 'g1' (n.conf:${lineOf(NODE, '10.79.9.1')}): a LIP has one owner`,
    );
    const noLipInside = `${NODE}${bgp.replace('10.79.9.0/28', '10.79.9.0/24')}sync {\n${MIN.replace('10.79.10.0/28', '10.79.9.128/25')}\n}\n`;
    assert.equal(
      refusal(noLipInside).message,
      `n.conf:${lineOf(noLipInside, 'peer 10.79.0.12')}: lip_prefix 10.79.9.128/25 of peer 10.79.0.12 overlaps this node's own lip_prefix 10.79.9.0/24 (n.conf:${lineOf(noLipInside, 'lip_prefix 10.79.9.0/24')}): a LIP has one owner`,
    );
    expectSyncError(
      MIN.replace('10.79.10.0/28', '10.79.1.96/28'),
      'peer 10.79.0.12',
      `lip_prefix 10.79.1.96/28 of peer 10.79.0.12 takes in virtual_server address 10.79.1.100 (n.conf:${lineOf(NODE, 'virtual_server')})`,
    );
    expectSyncError(
      MIN.replace('10.79.10.0/28', '10.79.2.0/28'),
      'peer 10.79.0.12',
      `lip_prefix 10.79.2.0/28 of peer 10.79.0.12 takes in real server address 10.79.2.2 (n.conf:${lineOf(NODE, 'real_server')})`,
    );
  });

  it('key_file: missing, unreadable or short stops the load at its line; the key is never shown', () => {
    const missing = join(dir, 'none.key');
    expectSyncError(
      MIN.replace(KEY, missing),
      'key_file',
      `cannot read key_file ${missing}: ENOENT`,
    );
    expectSyncError(MIN.replace(KEY, dir), 'key_file', `cannot read key_file ${dir}: EISDIR`);
    const short = join(dir, 'short.key');
    writeFileSync(short, ' 0123456789abcde \n');
    expectSyncError(
      MIN.replace(KEY, short),
      'key_file',
      `key_file ${short} holds 15 bytes (whitespace aside); the fleet's key needs at least 16`,
    );
    if (process.getuid?.() !== 0) {
      const locked = join(dir, 'locked.key');
      writeFileSync(locked, SECRET, { mode: 0o000 });
      expectSyncError(
        MIN.replace(KEY, locked),
        'key_file',
        `cannot read key_file ${locked}: EACCES`,
      );
    }
    // Every refusal of a file with the key in it names the file, never its bytes.
    const e = refusal(`${NODE}sync {\n${MIN}\nheartbeat 1\n}\n`);
    assert.ok(!e.message.includes(SECRET.slice(0, 16)), e.message);
  });

  it('timers, max_synced, keywords given twice, the block twice', () => {
    expectSyncError(
      `${MIN}\nheartbeat 5`,
      'heartbeat',
      "bad heartbeat '5' (expected an integer 10..60000)",
    );
    expectSyncError(
      `${MIN}\nresync_timeout 600001`,
      'resync_timeout',
      "bad resync_timeout '600001' (expected an integer 0..600000)",
    );
    assert.equal(
      parseConfig(`${NODE}sync {\n${MIN}\nresync_timeout 0\n}\n`, 'n.conf').sync!.resyncTimeoutMs,
      0,
    );
    expectSyncError(
      `${MIN}\nmax_synced 0`,
      'max_synced',
      "bad max_synced '0' (expected an integer 1..2147483647)",
    );
    const big = `fullnat_defs {\n max_connections 1000\n}\n`;
    expectSyncError(
      `${MIN}\nmax_synced 1001`,
      'max_synced',
      'max_synced 1001 is above max_connections 1000: entries held for peers share the connection table',
      big + NODE,
    );
    const twice = `${MIN}\nheartbeat 100\nheartbeat 200`;
    const text = `${NODE}sync {\n${twice}\n}\n`;
    assert.equal(
      refusal(text).message,
      `n.conf:${lineOf(text, 'heartbeat 200')}: 'heartbeat' given twice in this block (first at n.conf:${lineOf(text, 'heartbeat 100')})`,
    );
    expectSyncError(
      `${MIN}\ncolour blue`,
      'colour',
      "unknown keyword 'colour' in sync (valid: node_id, nodes, listen, key_file, max_synced, heartbeat, resync_timeout, peer)",
    );
    const double = `${NODE}sync {\n${MIN}\n}\nsync {\n${MIN}\n}\n`;
    assert.equal(
      refusal(double).message,
      `n.conf:${lineOf(double, 'sync {') + MIN.split('\n').length + 2}: 'sync' given twice (first at n.conf:${lineOf(double, 'sync {')})`,
    );
  });
});

describe('config: what a reload sees of the sync block', () => {
  const withSync = (body = MIN): string => `${NODE}sync {\n${body}\n}\n`;
  const parse = (t: string) => parseConfig(t, 'n.conf');

  it('syncChanged: the block added, removed or changed; not moved or reformatted', () => {
    const plain = diffConfig(parse(NODE), parse(NODE));
    assert.equal(plain.syncChanged, false);
    assert.deepEqual(plain.changedSync, []);
    assert.equal(diffConfig(parse(withSync()), parse(withSync())).syncChanged, false);
    const moved = `sync {\n\n${MIN.replace(/\n/g, ' ')}\n}\n${NODE}`;
    assert.equal(diffConfig(parse(withSync()), parse(moved)).syncChanged, false);
    for (const [edit, keywords] of [
      [MIN.replace('listen 10.79.0.11', 'listen 10.79.0.11 9000'), ['listen']],
      [`${MIN}\nheartbeat 100`, ['heartbeat']],
      [`${MIN}\nresync_timeout 100`, ['resync_timeout']],
      [MIN.replace('10.79.10.0/28', '10.79.10.0/27'), ['peer']],
      [`${MIN}\npeer 10.79.0.13 node_id 3 lip_prefix 10.79.11.0/28\nnodes 3`, ['nodes', 'peer']],
    ] as const) {
      const d = diffConfig(parse(withSync()), parse(withSync(edit)));
      assert.equal(d.syncChanged, true, edit);
      assert.deepEqual(d.changedSync, keywords, edit);
    }
  });

  it('what the engine takes at start needs a restart: sync on or off, node_id, nodes, max_synced', () => {
    assert.deepEqual(diffConfig(parse(NODE), parse(withSync())).restartRequired, ['sync']);
    assert.deepEqual(diffConfig(parse(withSync()), parse(NODE)).restartRequired, ['sync']);
    assert.deepEqual(
      diffConfig(parse(withSync()), parse(withSync(`${MIN}\nnodes 3`))).restartRequired,
      ['sync nodes'],
    );
    assert.deepEqual(
      diffConfig(parse(withSync()), parse(withSync(`${MIN}\nmax_synced 10`))).restartRequired,
      ['sync max_synced'],
    );
    const renumbered = MIN.replace('node_id 1', 'node_id 2').replace(
      'node_id 2 lip',
      'node_id 1 lip',
    );
    assert.deepEqual(diffConfig(parse(withSync()), parse(withSync(renumbered))).restartRequired, [
      'sync node_id',
    ]);
    assert.deepEqual(
      diffConfig(parse(withSync()), parse(withSync(`${MIN}\nheartbeat 100`))).restartRequired,
      [],
    );
  });

  it('a file that lost its sync block takes a forced reload', () => {
    const running = parse(withSync());
    const next = parse(NODE);
    assert.deepEqual(reloadNeedsForce(running, next, diffConfig(running, next)), [
      "n.conf has no sync block (the running configuration has one): the reload would stop sharing this node's connections with its peers",
    ]);
    assert.deepEqual(reloadNeedsForce(next, running, diffConfig(next, running)), []);
  });
});
