/**
 * Cross-checks that need the whole file, run after the grammar: group
 * references and overlaps, distinct address roles, LIP families,
 * engine capacities, the bgp block against the node's addresses.
 */
import { DEFAULT_ENGINE_OPTIONS } from '../../engine/options.js';
import {
  addressFamily,
  addressKey,
  addressToString,
  type AddressFamily,
  type IpAddress,
} from '../../wire/address.js';
import { prefixContains, prefixesOverlap, prefixToString } from '../prefix.js';
import { addressRoleConflict, MIN_MTU_V6 } from '../rules.js';
import { at, fail } from './error.js';
import type { Token } from './lexer.js';
import { svcName, type State } from './grammar/draft.js';
import { ipoRefusal } from './grammar/virtual-server.js';

/** The group each used LIP came from, to reject overlaps between groups in use. */
export function checkGroups(st: State): void {
  const owner = new Map<string, { group: string; tok: Token }>();
  const used = new Set<string>();
  for (const vs of st.services) {
    const ref = vs.laddrGroup;
    // NAT sends the client's own packets on: it takes no local address.
    if (!ref && vs.forwarding === 'nat') continue;
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
      const o = owner.get(addressKey(e.addr));
      if (o) {
        fail(
          e.tok,
          `local address ${addressToString(e.addr)} is also in local_address_group '${o.group}' (${at(o.tok)}); groups used by different services must not overlap`,
        );
      }
      owner.set(addressKey(e.addr), { group: ref.text, tok: e.tok });
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
  const vips = new Map<string, Token>();
  const rips = new Map<string, { addr: IpAddress; tok: Token }>();
  for (const vs of st.services) {
    if (!vips.has(addressKey(vs.vip))) vips.set(addressKey(vs.vip), vs.tok);
    for (const r of vs.reals)
      if (!rips.has(addressKey(r.addr))) rips.set(addressKey(r.addr), { addr: r.addr, tok: r.tok });
  }
  const vipSet = new Set(vips.keys());
  for (const [key, { addr, tok }] of rips) {
    const conflict = addressRoleConflict(addr, 'real server', {
      vips: vipSet,
      rips: new Set(),
      lips: new Set(),
    });
    if (conflict) fail(tok, `${conflict} (${at(vips.get(key)!)})`);
  }
  for (const [name, g] of st.groups) {
    for (const e of g.entries) {
      const v = vips.get(addressKey(e.addr));
      if (v)
        fail(
          e.tok,
          `local address ${addressToString(e.addr)} in '${name}' is also a virtual_server address (${at(v)})`,
        );
      const r = rips.get(addressKey(e.addr));
      if (r)
        fail(
          e.tok,
          `local address ${addressToString(e.addr)} in '${name}' is also a real server address (${at(r.tok)})`,
        );
    }
  }
  const total = st.services.reduce((n, s) => n + s.reals.length, 0);
  const max = DEFAULT_ENGINE_OPTIONS.maxRealServers;
  if (total > max)
    fail(st.services[0]!.tok, `${total} real servers configured; the engine holds at most ${max}`);
}

/**
 * FULLNAT opens the RS leg from a LIP of the real server's family: an IPv6
 * service with IPv4 real servers (FNAT64) needs IPv4 LIPs, one with IPv6
 * real servers IPv6 LIPs. A group that has none for a family its service
 * uses would leave those real servers unreachable, so the file is refused
 * at the first such real server. (ctl may still build a service step by
 * step: RS first, LIPs later, as ipvsadm allows.)
 */
export function checkLocalFamilies(st: State): void {
  for (const vs of st.services) {
    if (vs.laddrGroup === undefined) continue;
    const g = st.groups.get(vs.laddrGroup.text)!;
    const have = new Set<AddressFamily>(g.entries.map((e) => addressFamily(e.addr)));
    for (const r of vs.reals) {
      const f = addressFamily(r.addr);
      if (have.has(f)) continue;
      const why = f === 4 && addressFamily(vs.vip) === 6 ? ' (FNAT64)' : '';
      fail(
        r.tok,
        `real server ${addressToString(r.addr)} is IPv${f} but local_address_group '${vs.laddrGroup.text}' (${at(g.tok)}) of virtual_server ${svcName(vs)} has no IPv${f} address: the LB reaches an IPv${f} real server from an IPv${f} local address${why}`,
      );
    }
  }
}

/**
 * An IPv6 path carries at least 1280 bytes (RFC 8200), and the kernel turns
 * IPv6 off on a device below it: an IPv6 real server's path MTU, its own
 * `mtu` or the `rs_mtu` it inherits, is refused below that.
 */
export function checkIpv6Mtus(st: State): void {
  for (const vs of st.services) {
    for (const r of vs.reals) {
      if (addressFamily(r.addr) !== 6) continue;
      const own = r.mtu !== undefined;
      const mtu = r.mtu ?? st.defs.rsMtu;
      if (mtu >= MIN_MTU_V6) continue;
      const source = own ? 'mtu' : 'rs_mtu (fullnat_defs)';
      fail(
        r.mtuTok ?? r.tok,
        `real server ${addressToString(r.addr)} is IPv6: its path MTU ${mtu} (${source}) is below IPv6's minimum ${MIN_MTU_V6}`,
      );
    }
  }
}

/**
 * An IPv6 UDP service that sets no `uoa_mode` of its own follows
 * fullnat_defs'; `ipo` there cannot carry its clients, so the file is
 * refused at the service rather than the LB sending no UOA at all.
 */
export function checkUoaModes(st: State): void {
  if (st.defs.uoaMode !== 'ipo') return;
  for (const vs of st.services) {
    if (vs.protocol !== 'UDP' || vs.uoaMode !== undefined || typeof vs.vip === 'number') continue;
    fail(
      vs.tok,
      `${ipoRefusal(svcName(vs))} (fullnat_defs sets uoa_mode ipo; give this service its own)`,
    );
  }
}

/**
 * The bgp block against the node's own addresses. A neighbour is a router:
 * one of this node's VIPs or LIPs cannot be it. With `lip_prefix` given the
 * LIPs are announced as those prefixes only, so a LIP in use outside every
 * one would get no route back from the real servers; and a prefix that
 * takes in a VIP would keep attracting that VIP's traffic after it is
 * withdrawn (a real server's, traffic meant for the real server).
 */
export function checkBgp(st: State): void {
  const b = st.bgp;
  if (!b) return;
  const lips = lipsInUse(st);
  for (const n of b.neighbors) {
    const addr = addressToString(n.addr);
    const vs = st.services.find((s) => addressKey(s.vip) === addressKey(n.addr));
    if (vs) fail(n.tok, `neighbor ${addr} is also a virtual_server address (${at(vs.tok)})`);
    const lip = lips.get(addressKey(n.addr));
    if (lip)
      fail(n.tok, `neighbor ${addr} is also a local address in '${lip.group}' (${at(lip.tok)})`);
  }
  if (b.lipPrefixes.length === 0) return;
  for (const { addr, group, tok } of lips.values()) {
    if (b.lipPrefixes.some((p) => prefixContains(p.prefix, addr))) continue;
    const prefixes = b.lipPrefixes.map((p) => prefixToString(p.prefix)).join(', ');
    fail(
      tok,
      `local address ${addressToString(addr)} in '${group}' is in no lip_prefix (${prefixes}; bgp at ${at(b.tok)}): replies from real servers to it would not be routed back to this node`,
    );
  }
  for (const p of b.lipPrefixes) {
    const name = `lip_prefix ${prefixToString(p.prefix)}`;
    for (const vs of st.services) {
      if (prefixContains(p.prefix, vs.vip))
        fail(
          p.tok,
          `${name} takes in virtual_server address ${addressToString(vs.vip)} (${at(vs.tok)}): the node would attract its traffic even with the VIP withdrawn`,
        );
      const r = vs.reals.find((rs) => prefixContains(p.prefix, rs.addr));
      if (r)
        fail(
          p.tok,
          `${name} takes in real server address ${addressToString(r.addr)} (${at(r.tok)}): the node would attract traffic meant for it`,
        );
    }
  }
}

/** The LIPs of the groups services use, by addressKey: what the node announces. */
function lipsInUse(st: State): Map<string, { addr: IpAddress; group: string; tok: Token }> {
  const out = new Map<string, { addr: IpAddress; group: string; tok: Token }>();
  for (const vs of st.services) {
    const name = vs.laddrGroup?.text;
    const g = name === undefined ? undefined : st.groups.get(name);
    if (!g || name === undefined) continue;
    for (const e of g.entries)
      if (!out.has(addressKey(e.addr)))
        out.set(addressKey(e.addr), { addr: e.addr, group: name, tok: e.tok });
  }
  return out;
}

/**
 * The sync block against the rest of the file. A peer's `lip_prefix` names
 * the peer's LIPs: one taking in this node's LIP in use, or overlapping its
 * own bgp `lip_prefix`, would give one LIP two owners; one taking in a VIP
 * or RS would attract their traffic once the peer is down. The sync
 * addresses are the host's own, never one the LB routes into the TUN.
 * `max_synced` shares the connection table with this node's own entries.
 */
export function checkSync(st: State): void {
  const s = st.sync;
  if (!s) return;
  const max = st.defs.maxConnections;
  if (s.maxSynced !== undefined && s.maxSyncedTok && s.maxSynced > max)
    fail(
      s.maxSyncedTok,
      `max_synced ${s.maxSynced} is above max_connections ${max}: entries held for peers share the connection table`,
    );
  const lips = lipsInUse(st);
  const endpoints: { addr: IpAddress; tok: Token; what: string }[] = [
    ...(s.listen ? [{ addr: s.listen.addr, tok: s.listen.tok, what: 'listen address' }] : []),
    ...s.peers.map((p) => ({ addr: p.addr, tok: p.tok, what: 'peer' })),
  ];
  for (const { addr, tok, what } of endpoints) {
    const name = `${what} ${addressToString(addr)}`;
    const vs = st.services.find((v) => addressKey(v.vip) === addressKey(addr));
    if (vs) fail(tok, `sync ${name} is also a virtual_server address (${at(vs.tok)})`);
    const rs = st.services
      .flatMap((v) => v.reals)
      .find((r) => addressKey(r.addr) === addressKey(addr));
    if (rs) fail(tok, `sync ${name} is also a real server address (${at(rs.tok)})`);
    const lip = lips.get(addressKey(addr));
    if (lip) fail(tok, `sync ${name} is also a local address in '${lip.group}' (${at(lip.tok)})`);
  }
  for (const p of s.peers) {
    for (const { prefix, tok } of p.lipPrefixes) {
      const name = `lip_prefix ${prefixToString(prefix)} of peer ${addressToString(p.addr)}`;
      for (const { addr, group, tok: lipTok } of lips.values())
        if (prefixContains(prefix, addr))
          fail(
            tok,
            `${name} takes in this node's local address ${addressToString(addr)} in '${group}' (${at(lipTok)}): a LIP has one owner`,
          );
      const own = st.bgp?.lipPrefixes.find((o) => prefixesOverlap(o.prefix, prefix));
      if (own)
        fail(
          tok,
          `${name} overlaps this node's own lip_prefix ${prefixToString(own.prefix)} (${at(own.tok)}): a LIP has one owner`,
        );
      for (const vs of st.services) {
        if (prefixContains(prefix, vs.vip))
          fail(
            tok,
            `${name} takes in virtual_server address ${addressToString(vs.vip)} (${at(vs.tok)})`,
          );
        const r = vs.reals.find((rs) => prefixContains(prefix, rs.addr));
        if (r)
          fail(
            tok,
            `${name} takes in real server address ${addressToString(r.addr)} (${at(r.tok)})`,
          );
      }
    }
  }
}
