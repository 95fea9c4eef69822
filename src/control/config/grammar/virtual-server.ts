/** `virtual_server VIP PORT { … }`: one FULLNAT service and its real servers. */
import { addressEquals } from '../../../wire/address.js';
import type { Cursor, Handler } from '../cursor.js';
import { walkBlock, withOnce } from '../cursor.js';
import { CONFIG_DEFAULTS } from '../defaults.js';
import { at, fail } from '../error.js';
import { sameLine, type Token } from '../lexer.js';
import { addrPort, scheduler } from '../values.js';
import { svcName, type State, type VsDraft } from './draft.js';
import { parseRealServer } from './real-server.js';
import { timingHandlers } from './timing.js';

const UNSUPPORTED_KINDS = ['DR', 'NAT', 'TUN'];

export function parseVirtualServer(cur: Cursor, kw: Token, st: State): void {
  const first = cur.peek();
  if (sameLine(kw, first) && (first!.text === 'group' || first!.text === 'fwmark')) {
    fail(kw, `'virtual_server ${first!.text}' is not supported (write 'virtual_server VIP PORT')`);
  }
  const args = cur.header(kw, 1, 2, 'virtual_server VIP PORT {');
  const { addr, port: vport } = addrPort(kw, args, 'virtual_server');
  const vs: VsDraft = {
    tok: kw,
    vip: addr,
    vport,
    scheduler: CONFIG_DEFAULTS.scheduler,
    synProxy: false,
    proxyProtocol: 0,
    timing: {},
    reals: [],
  };
  const dup = st.services.find((s) => addressEquals(s.vip, vs.vip) && s.vport === vs.vport);
  if (dup) fail(kw, `duplicate virtual_server ${svcName(vs)} (first at ${at(dup.tok)})`);
  const seen = new Map<string, Token>();
  const h: Record<string, Handler> = {
    ...timingHandlers(cur, vs.timing),
    protocol: (k) => protocol(cur.value(k)),
    lb_kind: (k) => lbKind(cur.value(k)),
    lvs_method: (k) => lbKind(cur.value(k)),
    lb_algo: (k) => (vs.scheduler = scheduler(cur.value(k))),
    lvs_sched: (k) => (vs.scheduler = scheduler(cur.value(k))),
    syn_proxy: (k) => {
      cur.args(k, 0);
      vs.synProxy = true;
    },
    laddr_group_name: (k) => (vs.laddrGroup = cur.value(k)),
    proxy_protocol: (k) => (vs.proxyProtocol = proxyProtocolVersion(cur.value(k))),
  };
  const guarded = withOnce(h, seen, { lvs_method: 'lb_kind', lvs_sched: 'lb_algo' });
  guarded.real_server = (k) => parseRealServer(cur, k, vs);
  walkBlock(cur, kw, 'virtual_server', guarded);
  st.services.push(vs);
}

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

function protocol(t: Token): void {
  const p = t.text.toUpperCase();
  if (p === 'TCP') return;
  if (p === 'UDP' || p === 'SCTP') fail(t, `protocol ${t.text} is not supported (TCP only)`);
  fail(t, `unknown protocol '${t.text}' (valid: TCP)`);
}

function lbKind(t: Token): void {
  const k = t.text.toUpperCase();
  if (k === 'FNAT' || k === 'FULLNAT') return;
  if (UNSUPPORTED_KINDS.includes(k)) {
    fail(t, `lb_kind ${t.text} is not supported: this load balancer only does FNAT (FULLNAT)`);
  }
  fail(t, `unknown lb_kind '${t.text}' (valid: FNAT, FULLNAT)`);
}
