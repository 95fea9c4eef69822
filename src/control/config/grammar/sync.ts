/**
 * `sync { … }`: connection sync between the nodes of a fleet — this node's
 * id and share of the LIP ports, where it listens, the shared key, its
 * peers (each with the LIP prefixes it may carry once that peer is down),
 * and the channel's timers. At most once per file.
 */
import { isAbsolute, join, dirname } from 'node:path';

import { addressEquals, addressFamily, endpointToString } from '../../../wire/address.js';
import { prefixesOverlap, prefixToString } from '../../prefix.js';
import {
  DEFAULT_SYNC_HEARTBEAT_MS,
  DEFAULT_SYNC_PORT,
  DEFAULT_SYNC_RESYNC_TIMEOUT_MS,
  parseMaxSynced,
  parsePrefix,
  parseSyncAddress,
  parseSyncHeartbeat,
  parseSyncNodeId,
  parseSyncNodes,
  parseSyncResyncTimeout,
} from '../../rules.js';
import { readSyncKey, SyncKeyError } from '../../sync/key.js';
import { walkBlock, withOnce, type Cursor, type Handler } from '../cursor.js';
import { at, fail } from '../error.js';
import { isOpen, sameLine, type Token } from '../lexer.js';
import { port, ruled } from '../values.js';
import type { State, SyncDraft, SyncPeerDraft } from './draft.js';

export function parseSync(cur: Cursor, kw: Token, st: State): void {
  if (st.sync) fail(kw, `'sync' given twice (first at ${at(st.sync.tok)})`);
  cur.header(kw, 0, 0, 'sync {');
  const s: SyncDraft = {
    tok: kw,
    peers: [],
    heartbeatMs: DEFAULT_SYNC_HEARTBEAT_MS,
    resyncTimeoutMs: DEFAULT_SYNC_RESYNC_TIMEOUT_MS,
  };
  const h: Record<string, Handler> = {
    ...withOnce(
      {
        node_id: (k) => {
          const v = cur.value(k);
          s.nodeId = ruled(v, () => parseSyncNodeId(v.text));
          s.nodeIdTok = v;
        },
        nodes: (k) => {
          const v = cur.value(k);
          s.nodes = ruled(v, () => parseSyncNodes(v.text));
          s.nodesTok = v;
        },
        listen: (k) => {
          const args = cur.lineArgs(k, 1);
          if (args.length === 0) fail(k, "'listen' needs an address (and a port, default 8848)");
          // The port is optional: a word that is no number is the block's next keyword.
          const next = cur.peek();
          if (sameLine(k, next) && /^\d/.test(next?.text ?? '')) args.push(...cur.lineArgs(k, 1));
          s.listen = { ...endpoint(k, args), tok: k };
        },
        key_file: (k) => (s.keyFile = keyFile(cur.value(k))),
        max_synced: (k) => {
          const v = cur.value(k);
          s.maxSynced = ruled(v, () => parseMaxSynced(v.text));
          s.maxSyncedTok = v;
        },
        heartbeat: (k) => {
          const v = cur.value(k);
          s.heartbeatMs = ruled(v, () => parseSyncHeartbeat(v.text));
        },
        resync_timeout: (k) => {
          const v = cur.value(k);
          s.resyncTimeoutMs = ruled(v, () => parseSyncResyncTimeout(v.text));
        },
      },
      new Map<string, Token>(),
    ),
    peer: (k) => parsePeer(cur, k, s),
  };
  walkBlock(cur, kw, 'sync', h);
  checkBlock(s);
  st.sync = s;
}

/** What the block needs once it is read: its own fields, and ids that fit the port plan. */
function checkBlock(s: SyncDraft): void {
  const kw = s.tok;
  if (s.nodeId === undefined || !s.nodeIdTok)
    fail(kw, "sync needs 'node_id' (this node's id in the fleet, 1..255)");
  if (!s.listen)
    fail(
      kw,
      "sync needs 'listen' (the address this node's sync channel uses, e.g. 'listen 10.0.0.11')",
    );
  if (!s.keyFile) fail(kw, "sync needs 'key_file' (the fleet's shared secret, at least 16 bytes)");
  if (s.peers.length === 0)
    fail(kw, "sync needs at least one 'peer' (a node this one shares its connections with)");
  const nodes = s.nodes ?? 1 + s.peers.length;
  const plan = s.nodesTok ? `nodes ${nodes}` : `nodes ${nodes}, 1 + the number of peers`;
  if (s.nodeId > nodes)
    fail(
      s.nodeIdTok,
      `node_id ${s.nodeId} is above ${plan}: node ids run 1..nodes (the LIP port plan)`,
    );
  const listen = s.listen;
  for (const p of s.peers) {
    const name = `peer ${endpointToString(p.addr, p.port)}`;
    if (p.nodeId === undefined) continue;
    if (p.nodeId === s.nodeId)
      fail(
        p.nodeIdTok ?? p.tok,
        `${name} has node_id ${p.nodeId}, this node's own (${at(s.nodeIdTok)})`,
      );
    if (p.nodeId > nodes)
      fail(
        p.nodeIdTok ?? p.tok,
        `${name}: node_id ${p.nodeId} is above ${plan}: node ids run 1..nodes (the LIP port plan)`,
      );
    if (addressFamily(p.addr) !== addressFamily(listen.addr))
      fail(
        p.tok,
        `${name} is IPv${addressFamily(p.addr)} but listen (${at(listen.tok)}) is IPv${addressFamily(listen.addr)}: one socket sends to every peer`,
      );
    if (addressEquals(p.addr, listen.addr) && p.port === listen.port)
      fail(p.tok, `${name} is this node's own listen address (${at(listen.tok)})`);
  }
}

const PEER_USAGE =
  "expected 'peer ADDRESS { node_id N lip_prefix P … }' or 'peer ADDRESS node_id N lip_prefix P'";

type Field = (k: Token, v: Token) => void;

/**
 * `peer ADDR { port N node_id N lip_prefix P … }`, or the same keywords on
 * the peer's own line; `lip_prefix` may repeat in both.
 */
function parsePeer(cur: Cursor, kw: Token, s: SyncDraft): void {
  const args = cur.lineArgs(kw);
  const addrTok = args[0];
  if (!addrTok) fail(kw, PEER_USAGE);
  const addr = syncAddress(addrTok, 'peer address', bracketless(addrTok.text));
  const p: SyncPeerDraft = { tok: kw, addr, port: DEFAULT_SYNC_PORT, lipPrefixes: [] };
  const once: Record<string, Field> = {
    port: (_k, v) => (p.port = port(v)),
    node_id: (_k, v) => {
      p.nodeId = ruled(v, () => parseSyncNodeId(v.text));
      p.nodeIdTok = v;
    },
  };
  const lipPrefix: Field = (_k, v) => addLipPrefix(v, p, s);
  const seen = new Map<string, Token>();
  const valid = [...Object.keys(once), 'lip_prefix'];
  if (isOpen(cur.peek())) {
    const extra = args[1];
    if (extra) fail(extra, `unexpected '${extra.text}' before '{' of peer ${addrTok.text}`);
    cur.next();
    const h: Record<string, Handler> = {};
    for (const [key, fn] of Object.entries(once)) h[key] = (k) => fn(k, cur.value(k));
    walkBlock(cur, kw, 'peer', {
      ...withOnce(h, seen),
      lip_prefix: (k) => lipPrefix(k, cur.value(k)),
    });
  } else {
    const words = args.slice(1);
    for (let i = 0; i < words.length; i += 2) {
      const k = words[i]!;
      const known = !k.quoted && valid.includes(k.text);
      if (!known) fail(k, `unknown keyword '${k.text}' in peer (valid: ${valid.join(', ')})`);
      const v = words[i + 1];
      if (!v) fail(k, `'${k.text}' needs a value`);
      if (k.text === 'lip_prefix') lipPrefix(k, v);
      else withOnce({ [k.text]: (t) => once[k.text]!(t, v) }, seen)[k.text]!(k);
    }
  }
  const name = `peer ${endpointToString(p.addr, p.port)}`;
  const prior = s.peers.find((q) => addressEquals(q.addr, p.addr) && q.port === p.port);
  if (prior) fail(kw, `${name} given twice (first at ${at(prior.tok)})`);
  if (p.nodeId === undefined) fail(kw, `${name} needs 'node_id' (${PEER_USAGE})`);
  const same = s.peers.find((q) => q.nodeId === p.nodeId);
  if (same)
    fail(
      p.nodeIdTok ?? kw,
      `${name} has node_id ${p.nodeId}, as peer ${endpointToString(same.addr, same.port)} (${at(same.tok)}): node ids are distinct in a fleet`,
    );
  if (p.lipPrefixes.length === 0)
    fail(
      kw,
      `${name} needs 'lip_prefix' (the peer's LIPs: this node carries their connections once the peer is down)`,
    );
  s.peers.push(p);
}

/** A peer's prefix; no two prefixes of the block overlap (two owners for one LIP). */
function addLipPrefix(v: Token, p: SyncPeerDraft, s: SyncDraft): void {
  const prefix = ruled(v, () => parsePrefix(v.text, 'lip_prefix'));
  for (const q of [...s.peers, p])
    for (const other of q.lipPrefixes)
      if (prefixesOverlap(other.prefix, prefix))
        fail(
          v,
          `lip_prefix ${prefixToString(prefix)} overlaps lip_prefix ${prefixToString(other.prefix)} (${at(other.tok)})`,
        );
  p.lipPrefixes.push({ prefix, tok: v });
}

const bracketless = (text: string): string =>
  text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;

const syncAddress = (t: Token, what: string, text: string) =>
  ruled(t, () => parseSyncAddress(text, what));

/**
 * `ADDR [PORT]`, `IPv4:PORT`, `[IPv6]:PORT`, or `ADDR` alone (port 8848): an
 * IPv6 address without brackets has no port in the same word.
 */
function endpoint(
  kw: Token,
  args: Token[],
): { addr: ReturnType<typeof parseSyncAddress>; port: number } {
  const a = args[0]!;
  const p = args[1];
  const what = `${kw.text} address`;
  if (p) return { addr: syncAddress(a, what, bracketless(a.text)), port: port(p) };
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(a.text);
  if (bracketed)
    return { addr: syncAddress(a, what, bracketed[1]!), port: port(a, 'port', bracketed[2]) };
  const colon = a.text.indexOf(':');
  if (colon >= 0 && a.text.indexOf(':', colon + 1) < 0)
    return {
      addr: syncAddress(a, what, a.text.slice(0, colon)),
      port: port(a, 'port', a.text.slice(colon + 1)),
    };
  return { addr: syncAddress(a, what, bracketless(a.text)), port: DEFAULT_SYNC_PORT };
}

/**
 * The key file, relative to the configuration file as `include` is; read
 * now, so a missing or short key stops the load at this line.
 */
function keyFile(v: Token): Token {
  const path = isAbsolute(v.text) ? v.text : join(dirname(v.file), v.text);
  try {
    readSyncKey(path);
  } catch (e) {
    if (e instanceof SyncKeyError) fail(v, e.reason);
    throw e;
  }
  return { ...v, text: path };
}
