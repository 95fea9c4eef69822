/** `local_address_group NAME { … }`: the LIPs FULLNAT sends LB->RS traffic from. */
import { addressKey, addressToString } from '../../../wire/address.js';
import type { Cursor } from '../cursor.js';
import { BlockAbandoned } from '../diagnostics.js';
import { at, fail } from '../error.js';
import { isBrace, isClose, isOpen, sameLine, type Token } from '../lexer.js';
import { parseRange } from '../values.js';
import type { GroupDraft, State } from './draft.js';

export function parseGroup(cur: Cursor, kw: Token, st: State): void {
  const [nameTok] = cur.header(kw, 1, 1, 'local_address_group NAME {');
  const name = nameTok!.text;
  const prior = st.groups.get(name);
  if (prior) fail(kw, `duplicate local_address_group '${name}' (first at ${at(prior.tok)})`);
  const g: GroupDraft = { tok: kw, entries: [] };
  const where = new Map<string, Token>();
  // Each bad entry is reported; the group, having one, is then dropped (BlockAbandoned).
  let broken = false;
  for (;;) {
    const start = cur.mark();
    const t = cur.next();
    if (!t) fail(kw, `'local_address_group ${name}' block is never closed (missing '}')`);
    if (isClose(t)) break;
    try {
      if (isOpen(t)) fail(t, `unexpected '{' in local_address_group`);
      if (isDeviceName(t, cur.previous())) continue;
      for (const addr of parseRange(t)) {
        const dup = where.get(addressKey(addr));
        if (dup)
          fail(
            t,
            `duplicate local address ${addressToString(addr)} in group '${name}' (also at ${at(dup)})`,
          );
        where.set(addressKey(addr), t);
        g.entries.push({ addr, tok: t });
      }
    } catch (e) {
      cur.diag.absorb(e);
      broken = true;
      cur.recover(start);
    }
  }
  if (broken) throw new BlockAbandoned();
  if (g.entries.length === 0) fail(kw, `local_address_group '${name}' is empty`);
  st.groups.set(name, g);
}

/**
 * DPVS writes `10.10.3.1 dpdk0`: the device after an address is ignored
 * because every LIP lives on the one TUN device.
 */
function isDeviceName(t: Token, prev: Token | undefined): boolean {
  return (
    prev !== undefined &&
    sameLine(t, prev) &&
    !isBrace(prev) &&
    /^[A-Za-z][A-Za-z0-9_.-]{0,14}$/.test(t.text)
  );
}
