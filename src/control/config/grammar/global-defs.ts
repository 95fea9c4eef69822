/**
 * keepalived's `global_defs { … }`: read for the few keys that mean
 * something to a load balancer — `lvs_timeouts` (the connection timeouts,
 * as `ipvsadm --set`), `router_id` (the bgp block's router_id when it is an
 * IPv4 address and the bgp block gives none). Every other key (mail,
 * SNMP, VRRP and script settings, `lvs_sync_daemon`) is skipped with a warning.
 */
import { parseIpv4 } from '../../../wire/bytes.js';
import { walkBlock, withOnce, type Cursor, type Handler } from '../cursor.js';
import type { Diagnostics } from '../diagnostics.js';
import { at, fail } from '../error.js';
import { timeoutKeyword } from '../keywords.js';
import type { Token } from '../lexer.js';
import { parseTimeout } from '../../rules.js';
import { ruled } from '../values.js';
import type { GlobalDefsDraft, LvsTimeoutsDraft, State } from './draft.js';

export function parseGlobalDefs(cur: Cursor, kw: Token, st: State): void {
  cur.header(kw, 0, 0, 'global_defs {');
  // keepalived merges repeated global_defs blocks; so does this, with each key once in all.
  const g: GlobalDefsDraft = st.global ?? { tok: kw, lvsTimeouts: {}, seen: new Map() };
  st.global = g;
  const h: Record<string, Handler> = {
    router_id: (k) => (g.routerId = cur.value(k)),
    lvs_timeouts: (k) => lvsTimeouts(cur, k, g.lvsTimeouts),
    lvs_sync_daemon: (k) => {
      cur.skipStatement(k);
      cur.diag.warn(
        k,
        "lvs_sync_daemon is IPVS's connection sync: skipped (fullnat nodes share connections through a 'sync' block)",
      );
    },
  };
  walkBlock(cur, kw, 'global_defs', withOnce(h, g.seen), (k) => {
    cur.skipStatement(k);
    cur.diag.warn(k, `global_defs '${k.text}' has no meaning for fullnat: skipped`);
  });
}

/** `lvs_timeouts [tcp N] [tcpfin N] [udp N]`, in any order; 0 leaves a timeout as it is (ipvsadm --set). */
function lvsTimeouts(cur: Cursor, kw: Token, out: LvsTimeoutsDraft): void {
  const args = cur.lineArgs(kw);
  if (args.length === 0 || args.length % 2 !== 0)
    fail(kw, "expected 'lvs_timeouts [tcp SECONDS] [tcpfin SECONDS] [udp SECONDS]'");
  const field = { tcp: 'established', tcpfin: 'finWait', udp: 'udp' } as const;
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i]!;
    const value = args[i + 1]!;
    if (!Object.hasOwn(field, name.text))
      fail(name, `unknown lvs_timeouts option '${name.text}' (valid: tcp, tcpfin, udp)`);
    const key = field[name.text as keyof typeof field];
    if (out[key])
      fail(name, `lvs_timeouts ${name.text} given twice (first at ${at(out[key].tok)})`);
    if (value.text === '0') continue;
    const seconds = ruled(value, () => parseTimeout(value.text, `lvs_timeouts ${name.text}`));
    out[key] = { seconds, tok: name };
  }
}

/** The bgp block's router_id when it gives none: global_defs' router_id, when that is an IPv4 address. */
export function globalRouterId(st: State): number | undefined {
  const t = st.global?.routerId;
  if (!t) return undefined;
  const a = parseIpv4(t.text);
  return a > 0 ? a : undefined;
}

/**
 * Once the whole file is read: lvs_timeouts into the defs, unless
 * fullnat_defs sets the same timeout (fullnat's own keyword wins, with a
 * warning); a router_id that serves nothing is a warning.
 */
export function applyGlobalDefs(st: State, diag: Diagnostics): void {
  const g = st.global;
  if (!g) return;
  const t = g.lvsTimeouts;
  const apply = (
    v: { seconds: number; tok: Token } | undefined,
    keyword: string,
    set: (s: number) => void,
  ): void => {
    if (!v) return;
    const own = st.defsSeen?.get(keyword);
    if (own) {
      diag.warn(v.tok, `lvs_timeouts ${v.tok.text} yields to fullnat_defs ${keyword} (${at(own)})`);
      return;
    }
    set(v.seconds);
  };
  apply(t.established, timeoutKeyword('ESTABLISHED'), (s) => (st.defs.timeouts.ESTABLISHED = s));
  apply(t.finWait, timeoutKeyword('FIN_WAIT'), (s) => (st.defs.timeouts.FIN_WAIT = s));
  apply(t.udp, 'timeout_udp', (s) => (st.defs.timeoutUdp = s));
  const id = globalRouterId(st);
  if (g.routerId && (id === undefined || st.bgp === undefined || st.bgp.routerId !== id)) {
    diag.warn(
      g.routerId,
      `global_defs router_id '${g.routerId.text}' is not used: keepalived names its host with it; fullnat takes an IPv4 router_id as the bgp block's when that gives none`,
    );
  }
}
