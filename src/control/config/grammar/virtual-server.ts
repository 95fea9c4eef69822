/** `virtual_server VIP PORT { … }`: one FULLNAT service and its real servers. */
import type { Forwarding, L4Protocol } from '../../../engine/options.js';
import { addressEquals } from '../../../wire/address.js';
import type { Cursor, Handler } from '../cursor.js';
import { walkBlock, withOnce } from '../cursor.js';
import { CONFIG_DEFAULTS } from '../defaults.js';
import { at, fail } from '../error.js';
import type { Token } from '../lexer.js';
import { parseQuorum } from '../../rules.js';
import { ruled, scheduler } from '../values.js';
import { uoaMode } from './fullnat-defs.js';
import { svcName, type State, type VsDraft } from './draft.js';
import { keepalivedVsKeywords } from './keepalived-vs-keywords.js';
import { persistenceHandlers } from './persistence.js';
import { parseRealServer } from './real-server.js';
import { timingHandlers } from './timing.js';
import { expandGroup, virtualServerTarget } from './virtual-server-group.js';
import { checkSorryServer, virtualServerLifeHandlers } from './virtual-server-health.js';

export function parseVirtualServer(cur: Cursor, kw: Token, st: State): void {
  const target = virtualServerTarget(cur, kw, st);
  const { vip: addr, vport } = target;
  const vs: VsDraft = {
    tok: kw,
    vip: addr,
    vport,
    scheduler: CONFIG_DEFAULTS.scheduler,
    forwarding: 'fnat',
    synProxy: false,
    proxyProtocol: 0,
    quorum: 1,
    protocol: 'TCP',
    tcpOnly: [],
    timing: {},
    life: {},
    reals: [],
  };
  const seen = new Map<string, Token>();
  const h: Record<string, Handler> = {
    ...timingHandlers(cur, vs.timing),
    ...virtualServerLifeHandlers(cur, vs.life, vs.vip),
    ...persistenceHandlers(cur, vs),
    protocol: (k) => {
      vs.protocol = protocol(cur.value(k));
      vs.protocolTok = k;
    },
    uoa_mode: (k) => {
      vs.uoaMode = uoaMode(cur.value(k));
      vs.uoaModeTok = k;
    },
    lb_kind: (k) => {
      vs.forwardingTok = cur.value(k);
      vs.forwarding = lbKind(vs.forwardingTok);
    },
    lvs_method: (k) => {
      vs.forwardingTok = cur.value(k);
      vs.forwarding = lbKind(vs.forwardingTok);
    },
    lb_algo: (k) => (vs.scheduler = scheduler(cur.value(k))),
    lvs_sched: (k) => (vs.scheduler = scheduler(cur.value(k))),
    syn_proxy: (k) => {
      cur.args(k, 0);
      vs.synProxy = true;
      vs.tcpOnly.push(k);
    },
    laddr_group_name: (k) => (vs.laddrGroup = cur.value(k)),
    quorum: (k) => {
      const v = cur.value(k);
      vs.quorum = ruled(v, () => parseQuorum(v.text));
    },
    proxy_protocol: (k) => {
      vs.proxyProtocol = proxyProtocolVersion(cur.value(k));
      vs.tcpOnly.push(k);
    },
    ...keepalivedVsKeywords(cur, target),
  };
  const guarded = withOnce(h, seen, { lvs_method: 'lb_kind', lvs_sched: 'lb_algo' });
  guarded.real_server = (k) => parseRealServer(cur, k, vs);
  walkBlock(cur, kw, 'virtual_server', guarded);
  checkProtocolKeywords(vs);
  checkNatKeywords(vs);
  checkSorryServer(vs.life, vs.reals);
  for (const svc of expandGroup(vs, target)) {
    // The protocol is known once the block is read: a TCP and a UDP service may share a VIP:port.
    const dup = st.services.find(
      (s) => addressEquals(s.vip, svc.vip) && s.vport === svc.vport && s.protocol === svc.protocol,
    );
    if (dup) fail(kw, `duplicate virtual_server ${svcName(svc)} (first at ${at(dup.tok)})`);
    st.services.push(svc);
  }
}

/**
 * SYNPROXY and PROXY protocol are TCP's; `uoa_mode` is UDP's, and `ipo`
 * (an IPv4 option) cannot carry an IPv6 client, so an IPv6 service refuses it.
 */
function checkProtocolKeywords(vs: VsDraft): void {
  const where = vs.protocolTok ? ` (protocol UDP at ${at(vs.protocolTok)})` : '';
  if (vs.protocol === 'UDP') {
    for (const k of vs.tcpOnly)
      fail(k, `'${k.text}' is for TCP services; virtual_server ${svcName(vs)} is UDP${where}`);
  } else if (vs.uoaModeTok) {
    fail(vs.uoaModeTok, `'uoa_mode' is for UDP services; virtual_server ${svcName(vs)} is TCP`);
  }
  if (vs.uoaMode === 'ipo' && vs.uoaModeTok && typeof vs.vip !== 'number')
    fail(vs.uoaModeTok, ipoRefusal(svcName(vs)));
}

/** Why `ipo` is refused for an IPv6 service, in one wording (here and for an inherited fullnat_defs value). */
export const ipoRefusal = (svc: string): string =>
  `uoa_mode ipo carries IPv4 clients only (an IPv4 option); virtual_server ${svc} is IPv6: use opp or off`;

/** DPVS spells it `proxy_protocol v1|v2`; `off` keeps TOA. */
function proxyProtocolVersion(t: Token): 0 | 1 | 2 {
  switch (t.text.toLowerCase()) {
    case 'v1':
      return 1;
    case 'v2':
      return 2;
    case 'off':
      return 0;
    default:
      return fail(t, `bad proxy_protocol '${t.text}' (expected v1, v2 or off)`);
  }
}

function protocol(t: Token): L4Protocol {
  const p = t.text.toUpperCase();
  if (p === 'TCP' || p === 'UDP') return p;
  if (p === 'SCTP') fail(t, `protocol ${t.text} is not supported (TCP or UDP)`);
  return fail(t, `unknown protocol '${t.text}' (valid: TCP, UDP)`);
}

function lbKind(t: Token): Forwarding {
  const k = t.text.toUpperCase();
  if (k === 'FNAT' || k === 'FULLNAT') return 'fnat';
  if (k === 'NAT') return 'nat';
  if (k === 'DR')
    fail(
      t,
      "lb_kind DR is not supported: direct routing rewrites the MAC address on the real servers' link, and fullnat forwards at layer 3 through a TUN (use NAT or FNAT)",
    );
  if (k === 'TUN') fail(t, 'lb_kind TUN (IP-in-IP) is not supported yet (use NAT or FNAT)');
  return fail(t, `unknown lb_kind '${t.text}' (valid: FNAT, FULLNAT, NAT)`);
}

/**
 * NAT (masquerading) changes only the destination: the RS answers the
 * client itself, so there is no LIP, no TOA and no LB-side handshake, and
 * the engine does it for IPv4 TCP only.
 */
function checkNatKeywords(vs: VsDraft): void {
  const k = vs.forwardingTok;
  if (vs.forwarding !== 'nat' || k === undefined) return;
  const why = `virtual_server ${svcName(vs)} is lb_kind NAT (${at(k)})`;
  if (vs.protocol !== 'TCP') fail(k, `lb_kind NAT is for TCP services; ${svcName(vs)} is UDP`);
  if (typeof vs.vip !== 'number')
    fail(k, `lb_kind NAT is for IPv4 services; ${svcName(vs)} is IPv6`);
  for (const t of vs.tcpOnly)
    fail(t, `'${t.text}' needs FULLNAT: ${why}, where the real server answers the client itself`);
}
