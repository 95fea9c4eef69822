/**
 * `virtual_server_group NAME { … }` and the `virtual_server group NAME`
 * that uses it (keepalived's and DPVS's syntax): the group lists the
 * addresses and ports one service block applies to.
 *
 *     virtual_server_group web {
 *         10.0.0.1 80
 *         10.0.0.2-9 443     # IPv4: a range over the last octet
 *     }
 *
 * The block then becomes one service per address:port, sharing its
 * settings and real servers; ctl and metrics list each. `fwmark N` entries
 * (and `virtual_server fwmark N`) are refused.
 */
import {
  addressEquals,
  addressFamily,
  endpointToString,
  Ipv6Address,
  type IpAddress,
} from '../../../wire/address.js';
import type { Cursor } from '../cursor.js';
import { BlockAbandoned } from '../diagnostics.js';
import { at, fail } from '../error.js';
import { isClose, isOpen, sameLine, type Token } from '../lexer.js';
import { addrPort, parseRange, port, unicast } from '../values.js';
import type { State, VsDraft, VsGroupDraft } from './draft.js';

/** Why a firewall-mark service is refused, in one wording for both places it can be written. */
export const FWMARK_REFUSAL =
  "fwmark services are not supported: a firewall mark is set by the kernel's netfilter, and fullnat (user space, behind a TUN device) balances by address and port; list the VIP PORT pairs instead";

export function parseVsGroup(cur: Cursor, kw: Token, st: State): void {
  const [nameTok] = cur.header(kw, 1, 1, 'virtual_server_group NAME {');
  const name = nameTok!.text;
  const prior = st.vsGroups.get(name);
  if (prior) fail(kw, `duplicate virtual_server_group '${name}' (first at ${at(prior.tok)})`);
  const g: VsGroupDraft = { tok: kw, entries: [], broken: false };
  // Registered before its entries are read: a bad entry is one error, not a second one at each user.
  st.vsGroups.set(name, g);
  for (;;) {
    const start = cur.mark();
    const t = cur.next();
    if (!t) fail(kw, `'virtual_server_group ${name}' block is never closed (missing '}')`);
    if (isClose(t)) break;
    try {
      if (isOpen(t)) fail(t, "unexpected '{' in virtual_server_group");
      groupEntry(cur, t, g);
    } catch (e) {
      cur.diag.absorb(e);
      g.broken = true;
      cur.recover(start);
    }
  }
  if (!g.broken && g.entries.length === 0) fail(kw, `virtual_server_group '${name}' is empty`);
}

/** One line: `VIP PORT`, `A.B.C.D-E PORT`, or `fwmark N` (refused). */
function groupEntry(cur: Cursor, t: Token, g: VsGroupDraft): void {
  const rest = cur.lineArgs(t);
  if (t.text === 'fwmark') fail(t, FWMARK_REFUSAL);
  if (rest.length !== 1 || !sameLine(t, rest[0]))
    fail(
      t,
      `expected 'VIP PORT' or 'A.B.C.D-E PORT' in virtual_server_group (got '${[t, ...rest].map((x) => x.text).join(' ')}')`,
    );
  const vport = port(rest[0]!);
  const family = g.entries[0] ? addressFamily(g.entries[0].vip) : undefined;
  for (const vip of groupRange(t)) {
    if (family !== undefined && addressFamily(vip) !== family)
      fail(
        t,
        `virtual_server_group mixes IPv4 and IPv6 (first entry at ${at(g.entries[0]!.tok)}); one service block serves one family`,
      );
    const dup = g.entries.find((e) => addressEquals(e.vip, vip) && e.vport === vport);
    if (dup)
      fail(
        t,
        `duplicate ${endpointToString(vip, vport)} in virtual_server_group (also at ${at(dup.tok)})`,
      );
    g.entries.push({ vip, vport, tok: t });
  }
}

/**
 * keepalived's range forms: IPv4 over the last octet in decimal
 * (`10.0.0.3-10`); IPv6 over the last group in hex (`ae00::2-9`, as
 * keepalived's inet_stor reads it); or both ends in full.
 */
function groupRange(t: Token): IpAddress[] {
  const m = /^(.*:.*)-([0-9a-fA-F]{1,4})$/.exec(t.text);
  if (!m) return parseRange(t);
  const first = unicast(t, m[1]);
  if (typeof first === 'number') return parseRange(t);
  const end = first.bytes.slice();
  const last = parseInt(m[2]!, 16);
  end[14] = last >> 8;
  end[15] = last & 0xff;
  return parseRange({ ...t, text: `${m[1]}-${Ipv6Address.fromBytes(end).text}` });
}

/** The address:port a virtual_server block is read against, and its group when it has one. */
export interface VsTarget {
  vip: IpAddress;
  vport: number;
  group?: { name: string; draft: VsGroupDraft };
}

/**
 * The header of `virtual_server VIP PORT {`, `virtual_server group NAME {`
 * or `virtual_server fwmark N {` (refused); the `{` is consumed.
 */
export function virtualServerTarget(cur: Cursor, kw: Token, st: State): VsTarget {
  const first = cur.peek();
  const form = first && sameLine(kw, first) && !first.quoted ? first.text : '';
  if (form === 'fwmark') {
    cur.header(kw, 2, 2, 'virtual_server fwmark N {');
    fail(kw, FWMARK_REFUSAL);
  }
  if (form === 'group') {
    const [, nameTok] = cur.header(kw, 2, 2, 'virtual_server group NAME {');
    const name = nameTok!.text;
    const draft = st.vsGroups.get(name);
    if (!draft) {
      const known = [...st.vsGroups.keys()].join(', ') || 'none';
      fail(nameTok!, `unknown virtual_server_group '${name}' (defined: ${known})`);
    }
    const e = draft.entries[0];
    // A group with no good entry gives the block nothing to be read against: dropped quietly (its error is reported where it is).
    if (!e) throw new BlockAbandoned();
    return { vip: e.vip, vport: e.vport, group: { name, draft } };
  }
  const args = cur.header(kw, 1, 2, 'virtual_server VIP PORT {');
  const { addr, port: vport } = addrPort(kw, args, 'virtual_server');
  return { vip: addr, vport };
}

/** One service per address:port of the block's group (the block itself when it has none). */
export function expandGroup(vs: VsDraft, target: VsTarget): VsDraft[] {
  if (!target.group) return [vs];
  // Read so that its own errors are reported too; a group with an error is not half served.
  if (target.group.draft.broken) throw new BlockAbandoned();
  return target.group.draft.entries.map((e) => ({ ...vs, vip: e.vip, vport: e.vport }));
}
