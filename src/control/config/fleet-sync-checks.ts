/**
 * The `sync` blocks of a fleet's files against each other: what makes one
 * node's view of its peers true of the peers themselves.
 *
 * Errors: two nodes with one `node_id` (it names a node's messages and its
 * share of the LIP ports) or one listen address; different `nodes` (the
 * port shares would overlap, and two nodes hand out one LIP:port); a
 * `peer` whose node_id or port is not what that node's own file says, or
 * whose address is no node's listen address while its node_id is one
 * node's; a peer's `lip_prefix`es not covering that node's LIPs and
 * `lip_prefix`es (replies to the rest would have no backup route), or
 * taking in a third node's; a node that does not list a node listing it
 * (it would refuse that node's messages); key files that differ (compared
 * by sha256 of the key as the sync reads it; the key itself is never
 * printed) or cannot be read.
 * Warnings: a peer that is none of the files checked (nothing to compare
 * it with), a peer prefix that takes in none of that node's LIPs, and a
 * node without a `sync` block among nodes with one.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { addressKey, addressToString } from '../../wire/address.js';
import type { AnnouncedPrefix, FullnatConfig, SyncPeerSpec, SyncSpec } from '../model.js';
import { prefixContains, prefixesOverlap, prefixToString } from '../prefix.js';
import { finding, lipsInUse, where, type FleetReport, type NodeFinding } from './fleet-node.js';

/** A digest of the key in `path` (throws when it cannot be read): equal digests, equal keys. */
export type KeyDigest = (path: string) => string;

/** ASCII whitespace around the key is not part of it (the sync reads the file so). */
function trimmed(b: Uint8Array): Uint8Array {
  const space = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);
  let start = 0;
  let end = b.length;
  while (start < end && space(b[start]!)) start++;
  while (end > start && space(b[end - 1]!)) end--;
  return b.subarray(start, end);
}

/** sha256 of the key file's contents, whitespace around them trimmed. */
export const keyFileDigest: KeyDigest = (path) =>
  createHash('sha256')
    .update(trimmed(readFileSync(path)))
    .digest('hex');

interface SyncNode {
  cfg: FullnatConfig;
  sync: SyncSpec;
}

const endpoint = (s: SyncSpec): string => `${addressToString(s.listen.addr)}:${s.listen.port}`;
const peerName = (p: SyncPeerSpec): string => `peer ${addressToString(p.addr)}`;
const sameAddr = (a: SyncPeerSpec['addr'], b: SyncPeerSpec['addr']): boolean =>
  addressKey(a) === addressKey(b);

/** `p` takes in all of `q`. */
const prefixCovers = (p: AnnouncedPrefix, q: AnnouncedPrefix): boolean =>
  p.length <= q.length && prefixContains(p, q.addr);

export function checkSyncFleet(
  nodes: readonly FullnatConfig[],
  keyDigest: KeyDigest = keyFileDigest,
): FleetReport {
  const errors: NodeFinding[] = [];
  const warnings: NodeFinding[] = [];
  const synced: SyncNode[] = nodes.flatMap((cfg) => (cfg.sync ? [{ cfg, sync: cfg.sync }] : []));
  const first = synced[0];
  if (!first) return { errors, warnings };
  const err = (n: SyncNode, pos: SyncSpec['pos'] | undefined, reason: string): void =>
    void errors.push(finding(n.cfg.file, pos, reason));
  const at = (n: SyncNode): string => where(n.sync.pos, n.cfg.file);

  for (let j = 1; j < synced.length; j++) {
    const b = synced[j]!;
    for (let i = 0; i < j; i++) {
      const a = synced[i]!;
      if (a.sync.nodeId === b.sync.nodeId)
        err(
          b,
          b.sync.pos,
          `sync node_id ${b.sync.nodeId} is also the node_id of ${at(a)}: each node needs its own (it names the node's messages and its share of the LIP ports)`,
        );
      if (
        sameAddr(a.sync.listen.addr, b.sync.listen.addr) &&
        a.sync.listen.port === b.sync.listen.port
      )
        err(
          b,
          b.sync.pos,
          `sync listen ${endpoint(b.sync)} is also the listen address of ${at(a)}: each node receives its peers' messages on its own`,
        );
    }
    if (b.sync.nodes !== first.sync.nodes)
      err(
        b,
        b.sync.pos,
        `sync nodes ${b.sync.nodes} here but ${first.sync.nodes} in ${at(first)}: every node must cut the LIP ports into the same shares, or two nodes hand out the same LIP:port`,
      );
  }

  for (const a of synced) {
    for (const p of a.sync.peers) checkPeer(a, p);
    // Each node listing this one must be listed back.
    for (const b of synced) {
      if (b === a || !b.sync.peers.some((p) => sameAddr(p.addr, a.sync.listen.addr))) continue;
      if (a.sync.peers.some((p) => sameAddr(p.addr, b.sync.listen.addr))) continue;
      err(
        a,
        a.sync.pos,
        `no peer ${addressToString(b.sync.listen.addr)} (node_id ${b.sync.nodeId}, ${at(b)}, which lists this node as its peer): this node would refuse its messages and could not carry its connections`,
      );
    }
  }

  checkKeys();

  for (const cfg of nodes) {
    if (cfg.sync) continue;
    warnings.push({
      node: cfg.file,
      file: cfg.file,
      reason: `no sync block while ${at(first)} has one: this node's connections break when it dies, and it carries none of the others'`,
    });
  }
  return { errors, warnings };

  function checkPeer(a: SyncNode, p: SyncPeerSpec): void {
    const b = synced.find((n) => n !== a && sameAddr(n.sync.listen.addr, p.addr));
    if (!b) {
      const byId = synced.find((n) => n !== a && n.sync.nodeId === p.nodeId);
      if (byId)
        err(
          a,
          p.pos,
          `${peerName(p)} has node_id ${p.nodeId}, the node_id of ${at(byId)}, which listens on ${endpoint(byId.sync)}: a peer's address is the listen address of its sync block`,
        );
      else
        warnings.push(
          finding(
            a.cfg.file,
            p.pos,
            `${peerName(p)} (node_id ${p.nodeId}) is none of the files checked: its node_id, port, prefixes and key are not compared`,
          ),
        );
      return;
    }
    if (p.nodeId !== b.sync.nodeId)
      err(
        a,
        p.pos,
        `${peerName(p)} has node_id ${p.nodeId} here but node_id ${b.sync.nodeId} in ${at(b)}`,
      );
    if (p.port !== b.sync.listen.port)
      err(
        a,
        p.pos,
        `${peerName(p)} has port ${p.port} here but ${at(b)} listens on ${endpoint(b.sync)}`,
      );
    checkPeerPrefixes(a, p, b);
  }

  /** The prefixes `a` backs `b` up with: all of b's LIPs and lip_prefixes, and nobody else's. */
  function checkPeerPrefixes(a: SyncNode, p: SyncPeerSpec, b: SyncNode): void {
    const lips = lipsInUse(b.cfg);
    for (const l of lips) {
      if (p.lipPrefixes.some((q) => prefixContains(q, l.addr))) continue;
      err(
        a,
        p.pos,
        `${peerName(p)}'s lip_prefix does not take in local address ${addressToString(l.addr)} of ${where(l.pos, b.cfg.file)}: real servers' replies to it would have no backup route through this node`,
      );
    }
    for (const own of b.cfg.bgp?.lipPrefixes ?? []) {
      if (p.lipPrefixes.some((q) => prefixCovers(q, own))) continue;
      err(
        a,
        p.pos,
        `${peerName(p)}'s lip_prefix does not take in lip_prefix ${prefixToString(own)} of ${where(own.pos, b.cfg.file)}: replies to the rest of it would have no backup route through this node`,
      );
    }
    for (const q of p.lipPrefixes) {
      const pos = q.pos ?? p.pos;
      const ownOfB =
        lips.some((l) => prefixContains(q, l.addr)) ||
        (b.cfg.bgp?.lipPrefixes ?? []).some((o) => prefixesOverlap(q, o));
      if (!ownOfB)
        warnings.push(
          finding(
            a.cfg.file,
            pos,
            `${peerName(p)}'s lip_prefix ${prefixToString(q)} takes in no local address of ${at(b)}: it backs up nothing`,
          ),
        );
      for (const c of synced) {
        if (c === a || c === b) continue;
        const lip = lipsInUse(c.cfg).find((l) => prefixContains(q, l.addr));
        const pre = (c.cfg.bgp?.lipPrefixes ?? []).find((o) => prefixesOverlap(q, o));
        const what = lip
          ? `local address ${addressToString(lip.addr)} of ${where(lip.pos, c.cfg.file)}`
          : pre
            ? `lip_prefix ${prefixToString(pre)} of ${where(pre.pos, c.cfg.file)}`
            : undefined;
        if (what === undefined) continue;
        err(
          a,
          pos,
          `${peerName(p)}'s lip_prefix ${prefixToString(q)} takes in ${what}, which is not that peer's: this node would announce and route another node's LIPs as node ${p.nodeId}'s`,
        );
      }
    }
  }

  function checkKeys(): void {
    let reference: { node: SyncNode; digest: string } | undefined;
    for (const n of synced) {
      let digest: string;
      try {
        digest = keyDigest(n.sync.keyFile);
      } catch (e) {
        err(
          n,
          n.sync.pos,
          `key_file ${n.sync.keyFile} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        );
        continue;
      }
      if (!reference) reference = { node: n, digest };
      else if (digest !== reference.digest)
        err(
          n,
          n.sync.pos,
          `key_file ${n.sync.keyFile} holds another key than key_file ${reference.node.sync.keyFile} of ${at(reference.node)} (their sha256 differ): the nodes would refuse each other's messages`,
        );
    }
  }
}
