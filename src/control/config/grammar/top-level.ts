import type { Cursor, Handler } from '../cursor.js';
import { fail } from '../error.js';
import { isClose, isOpen } from '../lexer.js';
import { parseBgp } from './bgp.js';
import type { State } from './draft.js';
import { parseDefs } from './fullnat-defs.js';
import { parseGroup } from './local-address-group.js';
import { parseSync } from './sync.js';
import { parseVirtualServer } from './virtual-server.js';

/** The file's top level: only blocks (`include` was resolved by the lexer). */
export function parseTop(cur: Cursor, st: State): void {
  const h: Record<string, Handler> = {
    fullnat_defs: (k) => parseDefs(cur, k, st),
    local_address_group: (k) => parseGroup(cur, k, st),
    virtual_server: (k) => parseVirtualServer(cur, k, st),
    bgp: (k) => parseBgp(cur, k, st),
    sync: (k) => parseSync(cur, k, st),
  };
  for (let t = cur.next(); t; t = cur.next()) {
    if (isClose(t)) fail(t, "unexpected '}' (no block is open)");
    if (isOpen(t)) fail(t, "unexpected '{' (a block needs a keyword before it)");
    const fn = !t.quoted && Object.hasOwn(h, t.text) ? h[t.text] : undefined;
    if (!fn)
      fail(
        t,
        `unknown keyword '${t.text}' at top level (valid: ${[...Object.keys(h), 'include'].join(', ')})`,
      );
    fn(t);
  }
}
