/**
 * `sync` blocks built in place, as the parser would hand them over (the
 * tests of what the block drives do not depend on its grammar): the
 * contract's defaults unless a test says otherwise.
 */
import type { AnnouncedPrefix, SyncPeerSpec, SyncSpec } from '../../src/control/model.js';
import { addressFamily, type IpAddress } from '../../src/wire/address.js';
import { ipv4, ipv6 } from './addresses.js';

const address = (text: string): IpAddress => (text.includes(':') ? ipv6(text) : ipv4(text));

/** `10.79.9.16/28` as the parser gives it, with where it was written when `line` is given. */
export function prefix(text: string, pos?: { file: string; line: number }): AnnouncedPrefix {
  const [addr, length] = text.split('/');
  const a = address(addr!);
  const p = {
    addr: a,
    length: length === undefined ? (addressFamily(a) === 4 ? 32 : 128) : Number(length),
  };
  return pos ? { ...p, pos } : p;
}

/** A `peer ADDR { node_id N; lip_prefix P… }` entry. */
export function syncPeer(
  addr: string,
  nodeId: number,
  lipPrefixes: string[],
  over: Partial<SyncPeerSpec> = {},
): SyncPeerSpec {
  return {
    addr: address(addr),
    port: 8848,
    nodeId,
    lipPrefixes: lipPrefixes.map((p) => prefix(p)),
    pos: { file: 'test', line: 1 },
    ...over,
  };
}

/** A `sync` block listening on `listen` (port 8848), `nodes` = 1 + its peers. */
export function syncSpec(
  nodeId: number,
  listen: string,
  peers: SyncPeerSpec[],
  over: Partial<SyncSpec> = {},
): SyncSpec {
  return {
    nodeId,
    nodes: 1 + peers.length,
    listen: { addr: address(listen), port: 8848 },
    keyFile: '/etc/fullnat/sync.key',
    peers,
    maxSynced: 65536,
    heartbeatMs: 200,
    resyncTimeoutMs: 2000,
    pos: { file: 'test', line: 1 },
    ...over,
  };
}
