import type { Cursor, Handler } from '../cursor.js';
import { fail } from '../error.js';
import { isClose, isOpen, type Token } from '../lexer.js';
import { parseBgp } from './bgp.js';
import type { State } from './draft.js';
import { parseDefs } from './fullnat-defs.js';
import { parseGlobalDefs } from './global-defs.js';
import { FOREIGN_BLOCKS, skipForeignBlock } from './keepalived-blocks.js';
import { parseGroup } from './local-address-group.js';
import { parseSync } from './sync.js';
import { parseVsGroup } from './virtual-server-group.js';
import { parseVirtualServer } from './virtual-server.js';

/**
 * The blocks read before the others, as keepalived resolves them once the
 * whole file is read: a `virtual_server group NAME` may come before its
 * group, and global_defs' router_id may come after the bgp block it serves.
 */
const EARLY: Readonly<Record<string, (cur: Cursor, k: Token, st: State) => void>> = {
  global_defs: parseGlobalDefs,
  virtual_server_group: parseVsGroup,
};

/** First pass: only the EARLY blocks; the rest is stepped over (the second pass reports its errors). */
export function parseEarly(cur: Cursor, st: State): void {
  for (;;) {
    const start = cur.mark();
    const t = cur.next();
    if (!t) return;
    if (isClose(t) || isOpen(t)) continue;
    const fn = !t.quoted && Object.hasOwn(EARLY, t.text) ? EARLY[t.text] : undefined;
    if (!fn) {
      cur.skipStatement(t);
      continue;
    }
    try {
      fn(cur, t, st);
    } catch (e) {
      cur.diag.absorb(e);
      cur.recover(start);
    }
  }
}

/**
 * Second pass, the file's top level: fullnat's blocks; keepalived's blocks
 * for other daemons (VRRP, static addresses, BFD) are skipped whole with a
 * warning each. A block with an error is reported and reading goes on after it.
 */
export function parseTop(cur: Cursor, st: State): void {
  const h: Record<string, Handler> = {
    fullnat_defs: (k) => parseDefs(cur, k, st),
    local_address_group: (k) => parseGroup(cur, k, st),
    virtual_server: (k) => parseVirtualServer(cur, k, st),
    bgp: (k) => parseBgp(cur, k, st),
    sync: (k) => parseSync(cur, k, st),
  };
  for (const k of Object.keys(EARLY)) h[k] = (t) => void cur.skipStatement(t);
  for (const k of Object.keys(FOREIGN_BLOCKS)) h[k] = (t) => skipForeignBlock(cur, t);
  const valid = [...Object.keys(h).filter((k) => !Object.hasOwn(FOREIGN_BLOCKS, k)), 'include'];
  for (;;) {
    const start = cur.mark();
    const t = cur.next();
    if (!t) return;
    try {
      if (isClose(t)) fail(t, "unexpected '}' (no block is open)");
      if (isOpen(t)) fail(t, "unexpected '{' (a block needs a keyword before it)");
      const fn = !t.quoted && Object.hasOwn(h, t.text) ? h[t.text] : undefined;
      if (!fn) fail(t, `unknown keyword '${t.text}' at top level (valid: ${valid.join(', ')})`);
      fn(t);
    } catch (e) {
      cur.diag.absorb(e);
      cur.recover(start);
    }
  }
}
