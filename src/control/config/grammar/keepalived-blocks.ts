/**
 * keepalived's top-level blocks that belong to its other daemons (VRRP,
 * BFD, the addresses and routes it sets up): a whole keepalived.conf is read
 * and these are skipped, one warning each, naming what to run instead.
 */
import type { Cursor } from '../cursor.js';
import type { Token } from '../lexer.js';

const VRRP = "is keepalived's VRRP: skipped (run keepalived for VRRP beside fullnat)";
const STATIC =
  "is keepalived's own address and route setup: skipped (let keepalived or the system's network configuration do it beside fullnat, which routes its VIPs and LIPs itself)";

/** Each block's keyword and why it is skipped. */
export const FOREIGN_BLOCKS: Readonly<Record<string, string>> = {
  vrrp_instance: VRRP,
  vrrp_sync_group: VRRP,
  vrrp_script: VRRP,
  vrrp_track_process: VRRP,
  vrrp_track_file: VRRP,
  track_file: VRRP,
  garp_group: VRRP,
  linkbeat_interfaces: VRRP,
  static_track_group: VRRP,
  static_ipaddress: STATIC,
  static_routes: STATIC,
  static_rules: STATIC,
  bfd_instance:
    "is keepalived's BFD: skipped (run keepalived for it beside fullnat; a bgp neighbour of fullnat's takes 'bfd')",
};

export function skipForeignBlock(cur: Cursor, kw: Token): void {
  cur.skipStatement(kw);
  cur.diag.warn(kw, `${kw.text} ${FOREIGN_BLOCKS[kw.text] ?? 'is not read here: skipped'}`);
}
