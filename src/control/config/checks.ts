/**
 * Cross-checks that need the whole file, run after the grammar: group
 * references and overlaps, distinct address roles, engine capacities.
 */
import { DEFAULT_ENGINE_OPTIONS } from '../../engine/options.js';
import { ipv4ToString } from '../../wire/bytes.js';
import { addressRoleConflict } from '../rules.js';
import { at, fail } from './error.js';
import type { Token } from './lexer.js';
import { svcName, type State } from './grammar/draft.js';

/** The group each used LIP came from, to reject overlaps between groups in use. */
export function checkGroups(st: State): void {
  const owner = new Map<number, { group: string; tok: Token }>();
  const used = new Set<string>();
  for (const vs of st.services) {
    const ref = vs.laddrGroup;
    if (!ref)
      fail(
        vs.tok,
        `virtual_server ${svcName(vs)} needs 'laddr_group_name' (FULLNAT sends LB->RS traffic from a local address group)`,
      );
    const g = st.groups.get(ref.text);
    if (!g) {
      const known = [...st.groups.keys()].join(', ') || 'none';
      fail(ref, `unknown local_address_group '${ref.text}' (defined: ${known})`);
    }
    if (used.has(ref.text)) continue;
    used.add(ref.text);
    for (const e of g.entries) {
      const o = owner.get(e.addr);
      if (o) {
        fail(
          e.tok,
          `local address ${ipv4ToString(e.addr)} is also in local_address_group '${o.group}' (${at(o.tok)}); groups used by different services must not overlap`,
        );
      }
      owner.set(e.addr, { group: ref.text, tok: e.tok });
    }
  }
  const max = DEFAULT_ENGINE_OPTIONS.maxLocalAddresses;
  if (owner.size > max)
    fail(
      st.services[0]!.tok,
      `${owner.size} local addresses in use; the engine holds at most ${max}`,
    );
}

/** LIPs, VIPs and RIPs must differ: a shared address would loop through the TUN device. */
export function checkAddressRoles(st: State): void {
  const vips = new Map<number, Token>();
  const rips = new Map<number, Token>();
  for (const vs of st.services) {
    if (!vips.has(vs.vip)) vips.set(vs.vip, vs.tok);
    for (const r of vs.reals) if (!rips.has(r.addr)) rips.set(r.addr, r.tok);
  }
  const vipSet = new Set(vips.keys());
  for (const [addr, tok] of rips) {
    const conflict = addressRoleConflict(addr, 'real server', {
      vips: vipSet,
      rips: new Set(),
      lips: new Set(),
    });
    if (conflict) fail(tok, `${conflict} (${at(vips.get(addr)!)})`);
  }
  for (const [name, g] of st.groups) {
    for (const e of g.entries) {
      const v = vips.get(e.addr);
      if (v)
        fail(
          e.tok,
          `local address ${ipv4ToString(e.addr)} in '${name}' is also a virtual_server address (${at(v)})`,
        );
      const r = rips.get(e.addr);
      if (r)
        fail(
          e.tok,
          `local address ${ipv4ToString(e.addr)} in '${name}' is also a real server address (${at(r)})`,
        );
    }
  }
  const total = st.services.reduce((n, s) => n + s.reals.length, 0);
  const max = DEFAULT_ENGINE_OPTIONS.maxRealServers;
  if (total > max)
    fail(st.services[0]!.tok, `${total} real servers configured; the engine holds at most ${max}`);
}
