/**
 * The sync blocks of a fleet's files against each other (`fullnat check A
 * B C`): node ids, `nodes`, listen addresses; each peer entry against that
 * peer's own file (node_id, port, its LIPs and lip_prefixes covered, no
 * third node's taken in); listing back; one key everywhere, compared
 * without ever being printed. The sync blocks are built in place on parsed
 * files (the tests do not depend on the block's grammar); every finding
 * names FILE:LINE.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { checkFiles, formatCheck } from '../../src/cli/check.js';
import { parseConfig } from '../../src/control/config/index.js';
import {
  checkFleet,
  findingText,
  type NodeFinding,
} from '../../src/control/config/fleet-checks.js';
import { keyFileDigest } from '../../src/control/config/fleet-sync-checks.js';
import type { FullnatConfig, SyncPeerSpec } from '../../src/control/model.js';
import { prefix, syncPeer, syncSpec } from '../support/sync-spec.js';

const dir = mkdtempSync(join(tmpdir(), 'fullnat-fleet-sync-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const KEY = 'correct horse battery staple 0123456789';
const keyFile = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const KEY_A = keyFile('a.key', `${KEY}\n`);
// The same key without the newline: whitespace around a key is not part of it.
const KEY_B = keyFile('b.key', KEY);
const KEY_C = keyFile('c.key', `  ${KEY}\r\n`);
const OTHER_KEY = keyFile('other.key', `${KEY}!`);

interface Node {
  file: string;
  lip: string;
  routerId: string;
  prefix: string;
  nodeId: number;
  listen: string;
}

const A: Node = {
  file: 'a.conf',
  lip: '10.79.9.1',
  routerId: '10.79.0.11',
  prefix: '10.79.9.0/30',
  nodeId: 1,
  listen: '10.79.0.11',
};
const B: Node = {
  file: 'b.conf',
  lip: '10.79.9.5',
  routerId: '10.79.0.12',
  prefix: '10.79.9.4/30',
  nodeId: 2,
  listen: '10.79.0.12',
};
const C: Node = {
  file: 'c.conf',
  lip: '10.79.9.9',
  routerId: '10.79.0.13',
  prefix: '10.79.9.8/30',
  nodeId: 3,
  listen: '10.79.0.13',
};

/** Lines of the sync block as if written after the file's 16 lines: `sync {` on 20, peers from 25 on. */
const SYNC_LINE = 20;
const peerLine = (i: number): number => 25 + i;

function text(n: Node): string {
  return `local_address_group g1 {
    ${n.lip}
}
virtual_server 10.79.1.100 80 {
    lb_algo mh
    laddr_group_name g1
    real_server 10.79.2.2 80 {
        weight 1
    }
}
bgp {
    router_id ${n.routerId}
    local_as 65011
    neighbor 10.79.0.1 remote_as 65000
    lip_prefix ${n.prefix}
}
`;
}

/** The peer entry for `n` as its own file describes it. */
const peerOf = (n: Node, line: number, over: Partial<SyncPeerSpec> = {}): SyncPeerSpec =>
  syncPeer(n.listen, n.nodeId, [n.prefix], { pos: { file: 'x', line }, ...over });

/**
 * Node `n` parsed, with a sync block listing `peers` (default: the other
 * two of A, B, C as their files say); positions are in `n.file`.
 */
function node(
  n: Node,
  opts: {
    peers?: SyncPeerSpec[];
    key?: string;
    nodes?: number;
    nodeId?: number;
    listen?: string;
  } = {},
): FullnatConfig {
  const cfg = parseConfig(text(n), n.file);
  const peers = (
    opts.peers ?? [A, B, C].filter((x) => x !== n).map((x, i) => peerOf(x, peerLine(i)))
  ).map((p) => ({
    ...p,
    pos: { file: n.file, line: p.pos.line },
    lipPrefixes: p.lipPrefixes.map((q) => ({ ...q, pos: { file: n.file, line: p.pos.line } })),
  }));
  cfg.sync = syncSpec(opts.nodeId ?? n.nodeId, opts.listen ?? n.listen, peers, {
    keyFile: opts.key ?? { 'a.conf': KEY_A, 'b.conf': KEY_B }[n.file] ?? KEY_C,
    nodes: opts.nodes ?? 3,
    pos: { file: n.file, line: SYNC_LINE },
  });
  return cfg;
}

const texts = (fs: readonly NodeFinding[]): string[] => fs.map(findingText);

describe('fleet sync checks: a consistent fleet', () => {
  it('has no errors and no warnings (keys equal but for whitespace around them)', () => {
    assert.deepEqual(checkFleet([node(A), node(B), node(C)]), { errors: [], warnings: [] });
  });

  it('a peer prefix wider than the peer’s own covers it', () => {
    const wide = [
      peerOf(B, 25, { lipPrefixes: [prefix('10.79.9.4/30'), prefix('2001:db8::/64')] }),
    ];
    const r = checkFleet([node(A, { peers: [...wide, peerOf(C, 26)] }), node(B), node(C)]);
    assert.deepEqual(texts(r.errors), []);
    // The IPv6 prefix backs up nothing of B: said, not refused.
    assert.deepEqual(texts(r.warnings), [
      "a.conf:25: peer 10.79.0.12's lip_prefix 2001:db8::/64 takes in no local address of b.conf:20: it backs up nothing",
    ]);
  });

  it('the key digest is sha256 of the key without the whitespace around it', () => {
    assert.equal(keyFileDigest(KEY_A), keyFileDigest(KEY_B));
    assert.equal(keyFileDigest(KEY_A), keyFileDigest(KEY_C));
    assert.notEqual(keyFileDigest(KEY_A), keyFileDigest(OTHER_KEY));
  });
});

describe('fleet sync checks: the nodes', () => {
  it('one node_id on two nodes', () => {
    const r = checkFleet([node(A), node(B, { nodeId: 1 }), node(C)]);
    assert.ok(
      texts(r.errors).includes(
        "b.conf:20: sync node_id 1 is also the node_id of a.conf:20: each node needs its own (it names the node's messages and its share of the LIP ports)",
      ),
      texts(r.errors).join('\n'),
    );
  });

  it('different nodes (port shares)', () => {
    const r = checkFleet([node(A), node(B, { nodes: 4 }), node(C)]);
    assert.deepEqual(texts(r.errors), [
      'b.conf:20: sync nodes 4 here but 3 in a.conf:20: every node must cut the LIP ports into the same shares, or two nodes hand out the same LIP:port',
    ]);
  });

  it('one listen address on two nodes', () => {
    const r = checkFleet([node(A), node(B, { listen: A.listen })]);
    assert.ok(
      texts(r.errors).includes(
        "b.conf:20: sync listen 10.79.0.11:8848 is also the listen address of a.conf:20: each node receives its peers' messages on its own",
      ),
      texts(r.errors).join('\n'),
    );
  });

  it('a node without sync among nodes with it: a warning', () => {
    const c = parseConfig(text(C), 'c.conf');
    const r = checkFleet([
      node(A, { peers: [peerOf(B, 25)] }),
      node(B, { peers: [peerOf(A, 25)] }),
      c,
    ]);
    assert.deepEqual(texts(r.errors), []);
    assert.deepEqual(texts(r.warnings), [
      "c.conf: no sync block while a.conf:20 has one: this node's connections break when it dies, and it carries none of the others'",
    ]);
  });
});

describe('fleet sync checks: each peer entry against the peer’s own file', () => {
  it('a node_id other than the peer’s own', () => {
    const r = checkFleet([
      node(A, { peers: [peerOf(B, 25, { nodeId: 3 }), peerOf(C, 26)] }),
      node(B),
      node(C),
    ]);
    assert.deepEqual(texts(r.errors), [
      'a.conf:25: peer 10.79.0.12 has node_id 3 here but node_id 2 in b.conf:20',
    ]);
  });

  it('a port other than the one the peer listens on', () => {
    const r = checkFleet([
      node(A, { peers: [peerOf(B, 25, { port: 8849 }), peerOf(C, 26)] }),
      node(B),
      node(C),
    ]);
    assert.deepEqual(texts(r.errors), [
      'a.conf:25: peer 10.79.0.12 has port 8849 here but b.conf:20 listens on 10.79.0.12:8848',
    ]);
  });

  it('an address that is no node’s listen address: an error when its node_id is a node’s, else a warning', () => {
    const stray = syncPeer('10.79.0.99', 2, [B.prefix], { pos: { file: 'x', line: 25 } });
    const r = checkFleet([node(A, { peers: [stray, peerOf(C, 26)] }), node(B), node(C)]);
    assert.ok(
      texts(r.errors).includes(
        "a.conf:25: peer 10.79.0.99 has node_id 2, the node_id of b.conf:20, which listens on 10.79.0.12:8848: a peer's address is the listen address of its sync block",
      ),
      texts(r.errors).join('\n'),
    );
    // b lists a, a does not list b (by its address): b's messages would be refused.
    assert.ok(
      texts(r.errors).includes(
        'a.conf:20: no peer 10.79.0.12 (node_id 2, b.conf:20, which lists this node as its peer): this node would refuse its messages and could not carry its connections',
      ),
    );
    const unknown = syncPeer('10.79.0.99', 9, ['10.79.9.64/30'], { pos: { file: 'x', line: 27 } });
    const w = checkFleet([
      node(A, { peers: [peerOf(B, 25), peerOf(C, 26), unknown] }),
      node(B),
      node(C),
    ]);
    assert.deepEqual(texts(w.errors), []);
    assert.deepEqual(texts(w.warnings), [
      'a.conf:27: peer 10.79.0.99 (node_id 9) is none of the files checked: its node_id, port, prefixes and key are not compared',
    ]);
  });

  it('lip_prefixes that leave out one of the peer’s LIPs, or part of its lip_prefix', () => {
    const narrow = peerOf(B, 25, { lipPrefixes: [prefix('10.79.9.6/31')] });
    const r = checkFleet([node(A, { peers: [narrow, peerOf(C, 26)] }), node(B), node(C)]);
    assert.deepEqual(texts(r.errors), [
      "a.conf:25: peer 10.79.0.12's lip_prefix does not take in local address 10.79.9.5 of b.conf:2: real servers' replies to it would have no backup route through this node",
      "a.conf:25: peer 10.79.0.12's lip_prefix does not take in lip_prefix 10.79.9.4/30 of b.conf:15: replies to the rest of it would have no backup route through this node",
    ]);
    // Covering the LIP but only half the lip_prefix.
    const half = peerOf(B, 25, { lipPrefixes: [prefix('10.79.9.4/31')] });
    const h = checkFleet([node(A, { peers: [half, peerOf(C, 26)] }), node(B), node(C)]);
    assert.deepEqual(texts(h.errors), [
      "a.conf:25: peer 10.79.0.12's lip_prefix does not take in lip_prefix 10.79.9.4/30 of b.conf:15: replies to the rest of it would have no backup route through this node",
    ]);
  });

  it('a lip_prefix that takes in a third node’s LIPs', () => {
    const greedy = peerOf(B, 25, { lipPrefixes: [prefix('10.79.9.4/30'), prefix('10.79.9.8/29')] });
    const r = checkFleet([node(A, { peers: [greedy, peerOf(C, 26)] }), node(B), node(C)]);
    assert.deepEqual(texts(r.errors), [
      "a.conf:25: peer 10.79.0.12's lip_prefix 10.79.9.8/29 takes in local address 10.79.9.9 of c.conf:2, which is not that peer's: this node would announce and route another node's LIPs as node 2's",
    ]);
  });

  it('a node that does not list a node listing it', () => {
    const r = checkFleet([node(A, { peers: [peerOf(B, 25)] }), node(B), node(C)]);
    assert.deepEqual(texts(r.errors), [
      'a.conf:20: no peer 10.79.0.13 (node_id 3, c.conf:20, which lists this node as its peer): this node would refuse its messages and could not carry its connections',
    ]);
  });
});

describe('fleet sync checks: the key', () => {
  it('another key on one node: an error that prints neither key nor digest', () => {
    const r = checkFleet([node(A), node(B), node(C, { key: OTHER_KEY })]);
    assert.deepEqual(texts(r.errors), [
      `c.conf:20: key_file ${OTHER_KEY} holds another key than key_file ${KEY_A} of a.conf:20 (their sha256 differ): the nodes would refuse each other's messages`,
    ]);
    const all = JSON.stringify(r);
    assert.ok(!all.includes(KEY), 'the key is never printed');
    for (const k of [KEY_A, OTHER_KEY])
      assert.ok(!all.includes(keyFileDigest(k)), 'nor its digest');
  });

  it('an unreadable key file', () => {
    const missing = join(dir, 'missing.key');
    const r = checkFleet([node(A), node(B, { key: missing }), node(C)]);
    assert.deepEqual(texts(r.errors), [`b.conf:20: key_file ${missing} cannot be read: ENOENT`]);
  });

  it('the digest can be supplied (a key kept elsewhere)', () => {
    const r = checkFleet([node(A), node(B), node(C)], {
      keyDigest: (p) => (p === KEY_C ? 'x' : 'y'),
    });
    assert.equal(r.errors.length, 1);
    assert.match(texts(r.errors).join('\n'), /^c\.conf:20: key_file .* holds another key/);
  });
});

describe('fullnat check A B C with sync blocks', () => {
  it('reports each finding as FILE:LINE against its file, and fails', () => {
    const files = ['a.conf', 'b.conf', 'c.conf'];
    const byFile: Record<string, FullnatConfig> = {
      'a.conf': node(A),
      'b.conf': node(B, { nodeId: 3 }),
      'c.conf': node(C, { key: OTHER_KEY }),
    };
    const report = checkFiles(files, {
      load: (f) => {
        const cfg = byFile[f];
        assert.ok(cfg, f);
        return cfg;
      },
    });
    assert.equal(report.ok, false);
    const lines = formatCheck(report);
    assert.ok(
      lines.includes('a.conf:25: peer 10.79.0.12 has node_id 2 here but node_id 3 in b.conf:20'),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) =>
        l.startsWith('b.conf:20: sync node_id 3 is also the node_id of c.conf:20'),
      ) ||
        lines.some((l) =>
          l.startsWith('c.conf:20: sync node_id 3 is also the node_id of b.conf:20'),
        ),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => l.startsWith('c.conf:20: key_file ')),
      lines.join('\n'),
    );
    assert.ok(!lines.join('\n').includes(KEY));
    assert.equal(lines.at(-1)?.startsWith('3 files checked: '), true);
  });
});
