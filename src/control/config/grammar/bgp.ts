/**
 * `bgp { … }`: a fleet node's BGP speaker — its identity, its neighbours,
 * BFD timers, what it adds to every announcement, the prefixes its LIPs are
 * announced as, and an existing bird to attach to. At most once per file.
 */
import { addressEquals, addressFamily, addressToString } from '../../../wire/address.js';
import { prefixesOverlap, prefixToString } from '../../prefix.js';
import {
  DEFAULT_BFD_INTERVAL_MS,
  DEFAULT_BFD_MULTIPLIER,
  DEFAULT_HOLD_TIME,
  parseAsNumber,
  parseBfdInterval,
  parseBfdMultiplier,
  parseCommunity,
  parseHoldTime,
  parseMed,
  parsePrefix,
  parseRouterId,
} from '../../rules.js';
import { globalRouterId } from './global-defs.js';
import { walkBlock, withOnce, type Cursor, type Handler } from '../cursor.js';
import { at, fail } from '../error.js';
import { isOpen, type Token } from '../lexer.js';
import { onOff, ruled, unicast } from '../values.js';
import type { BgpDraft, NeighborDraft, State } from './draft.js';

export function parseBgp(cur: Cursor, kw: Token, st: State): void {
  if (st.bgp) fail(kw, `'bgp' given twice (first at ${at(st.bgp.tok)})`);
  cur.header(kw, 0, 0, 'bgp {');
  const b: BgpDraft = {
    tok: kw,
    neighbors: [],
    communities: [],
    bfdInterval: DEFAULT_BFD_INTERVAL_MS,
    bfdMultiplier: DEFAULT_BFD_MULTIPLIER,
    lipPrefixes: [],
  };
  const communities = new Map<string, Token>();
  const seen = new Map<string, Token>();
  const h: Record<string, Handler> = {
    ...withOnce(
      {
        router_id: (k) => {
          const v = cur.value(k);
          b.routerId = ruled(v, () => parseRouterId(v.text));
        },
        local_as: (k) => {
          const v = cur.value(k);
          b.localAs = ruled(v, () => parseAsNumber(v.text, 'local_as'));
        },
        bfd_interval: (k) => {
          const v = cur.value(k);
          b.bfdInterval = ruled(v, () => parseBfdInterval(v.text));
        },
        bfd_multiplier: (k) => {
          const v = cur.value(k);
          b.bfdMultiplier = ruled(v, () => parseBfdMultiplier(v.text));
        },
        med: (k) => {
          const v = cur.value(k);
          b.med = ruled(v, () => parseMed(v.text));
        },
        bird_socket: (k) => (b.birdSocket = absolutePath(cur.value(k), k.text)),
        bird_include: (k) => (b.birdInclude = absolutePath(cur.value(k), k.text)),
      },
      seen,
    ),
    neighbor: (k) => parseNeighbor(cur, k, b),
    community: (k) => {
      const v = cur.value(k);
      const c = ruled(v, () => parseCommunity(v.text));
      const key = c.join(':');
      const first = communities.get(key);
      if (first) fail(v, `community ${key} given twice (first at ${at(first)})`);
      communities.set(key, v);
      b.communities.push(c);
    },
    lip_prefix: (k) => {
      const v = cur.value(k);
      const prefix = ruled(v, () => parsePrefix(v.text, 'lip_prefix'));
      const other = b.lipPrefixes.find((p) => prefixesOverlap(p.prefix, prefix));
      if (other)
        fail(
          v,
          `lip_prefix ${prefixToString(prefix)} overlaps lip_prefix ${prefixToString(other.prefix)} (${at(other.tok)})`,
        );
      b.lipPrefixes.push({ prefix, tok: v });
    },
  };
  walkBlock(cur, kw, 'bgp', h);
  b.routerId ??= globalRouterId(st);
  if (b.routerId === undefined)
    fail(kw, "bgp needs 'router_id' (this node's BGP identifier, an IPv4 address)");
  if (b.localAs === undefined) fail(kw, "bgp needs 'local_as' (this node's AS number)");
  if (b.neighbors.length === 0)
    fail(kw, "bgp needs at least one 'neighbor' (the router the VIPs are announced to)");
  if (b.birdSocket && !b.birdInclude)
    fail(
      b.birdSocket,
      "'bird_socket' needs 'bird_include': the file fullnat writes and the running bird includes",
    );
  if (b.birdInclude && !b.birdSocket)
    fail(
      b.birdInclude,
      "'bird_include' needs 'bird_socket': the control socket of the bird that includes it",
    );
  st.bgp = b;
}

type Field = (k: Token, v: Token) => void;

const NEIGHBOR_USAGE =
  "expected 'neighbor ADDRESS { remote_as AS … }' or 'neighbor ADDRESS remote_as AS'";

/**
 * `neighbor ADDR { remote_as N hold_time N bfd on source_address A }`, or
 * the same keywords on the neighbour's own line (`neighbor ADDR remote_as N`).
 */
function parseNeighbor(cur: Cursor, kw: Token, b: BgpDraft): void {
  const args = cur.lineArgs(kw);
  const addrTok = args[0];
  if (!addrTok) fail(kw, NEIGHBOR_USAGE);
  const addr = unicast(addrTok);
  const name = `neighbor ${addressToString(addr)}`;
  const prior = b.neighbors.find((n) => addressEquals(n.addr, addr));
  if (prior) fail(kw, `${name} given twice (first at ${at(prior.tok)})`);
  const n: NeighborDraft = { tok: kw, addr, holdTime: DEFAULT_HOLD_TIME, bfd: false };
  const fields: Record<string, Field> = {
    remote_as: (_k, v) => (n.remoteAs = ruled(v, () => parseAsNumber(v.text, 'remote_as'))),
    hold_time: (_k, v) => (n.holdTime = ruled(v, () => parseHoldTime(v.text))),
    bfd: (_k, v) => (n.bfd = onOff(v, 'bfd')),
    source_address: (k, v) => {
      n.sourceAddress = unicast(v);
      n.sourceTok = k;
    },
  };
  const seen = new Map<string, Token>();
  if (isOpen(cur.peek())) {
    const extra = args[1];
    if (extra) fail(extra, `unexpected '${extra.text}' before '{' of ${name}`);
    cur.next();
    const h: Record<string, Handler> = {};
    for (const [key, fn] of Object.entries(fields)) h[key] = (k) => fn(k, cur.value(k));
    walkBlock(cur, kw, 'neighbor', withOnce(h, seen));
  } else {
    onOneLine(args.slice(1), fields, seen);
  }
  if (n.remoteAs === undefined) fail(kw, `${name} needs 'remote_as' (${NEIGHBOR_USAGE})`);
  if (n.sourceAddress !== undefined && n.sourceTok) {
    const sf = addressFamily(n.sourceAddress);
    const nf = addressFamily(addr);
    if (sf !== nf)
      fail(
        n.sourceTok,
        `source_address ${addressToString(n.sourceAddress)} is IPv${sf} but ${name} is IPv${nf}`,
      );
  }
  b.neighbors.push(n);
}

/** `KEYWORD VALUE` pairs after the address, each keyword at most once as in the block. */
function onOneLine(words: Token[], fields: Record<string, Field>, seen: Map<string, Token>): void {
  for (let i = 0; i < words.length; i += 2) {
    const k = words[i]!;
    const fn = !k.quoted && Object.hasOwn(fields, k.text) ? fields[k.text] : undefined;
    if (!fn)
      fail(k, `unknown keyword '${k.text}' in neighbor (valid: ${Object.keys(fields).join(', ')})`);
    const v = words[i + 1];
    if (!v) fail(k, `'${k.text}' needs a value`);
    withOnce({ [k.text]: (t) => fn(t, v) }, seen)[k.text]!(k);
  }
}

/** bird's control socket or the file it includes: an absolute path without '..'. */
function absolutePath(t: Token, what: string): Token {
  if (!t.text.startsWith('/') || t.text.split('/').includes('..'))
    fail(t, `bad ${what} '${t.text}' (expected an absolute path without '..')`);
  return t;
}
