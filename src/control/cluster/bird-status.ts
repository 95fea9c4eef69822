/**
 * What bird says about its sessions, read from its replies to
 * `show protocols` and `show bfd sessions` (bird 2.0 column layouts).
 * Lines that do not fit are skipped: a bird of another version reports
 * less, never something wrong.
 */
import type { BirdReply } from './bird-control.js';

/** One `protocol bgp` as `show protocols` lists it. */
export interface BirdBgpRow {
  name: string;
  /** bird's protocol state: up, start, down, … */
  protoState: string;
  /** The BGP state: Established, Idle, Active, Connect, OpenSent, OpenConfirm, Close… */
  bgpState: string;
  /** When the protocol state last changed, as bird prints it. */
  since: string;
  /** bird's note on the last failure (e.g. `Socket: Connection refused`); empty when none. */
  info: string;
  /** `Neighbor address:` of `show protocols all`; empty from a plain `show protocols`. */
  neighbor: string;
}

export interface BirdBfdRow {
  peer: string;
  interface: string;
  /** Up, Down, Init, AdminDown. */
  state: string;
  since: string;
}

/** The BGP protocols in a `show protocols [all]` reply. */
export function parseProtocols(reply: BirdReply): BirdBgpRow[] {
  const rows: BirdBgpRow[] = [];
  let last: BirdBgpRow | undefined;
  for (const l of reply.lines) {
    if (l.code === 1006 && last) {
      const n = /^\s*Neighbor address:\s*(\S+)/.exec(l.text);
      if (n) last.neighbor = n[1]!.replace(/%.*$/, '');
      continue;
    }
    if (l.code !== 1002) continue;
    last = undefined;
    const m = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$/.exec(l.text);
    if (!m || m[2] !== 'BGP') continue;
    const [bgpState = '', ...rest] = m[6]!.trim().split(/\s+/);
    last = {
      name: m[1]!,
      protoState: m[4]!,
      bgpState: bgpState === '' ? m[4]! : bgpState,
      since: m[5]!,
      info: rest.join(' '),
      neighbor: '',
    };
    rows.push(last);
  }
  return rows;
}

/** The sessions in a `show bfd sessions` reply, every BFD protocol's together. */
export function parseBfdSessions(reply: BirdReply): BirdBfdRow[] {
  const rows: BirdBfdRow[] = [];
  for (const l of reply.lines) {
    if (l.code !== 1020) continue;
    const m = /^\s*([0-9a-fA-F.:]+)\s+(\S+)\s+(Up|Down|Init|AdminDown)\s+(\S+)/.exec(l.text);
    if (!m || !/[.:]/.test(m[1]!)) continue;
    rows.push({ peer: m[1]!, interface: m[2]!, state: m[3]!, since: m[4]! });
  }
  return rows;
}
