/**
 * What the fleet checks share: how one node's problem is reported (a
 * finding against the node, placed at the statement to blame, `FILE:LINE:
 * reason`), and what they read of each node's file (the LIPs its services
 * use, where each was written).
 */
import { addressKey, type IpAddress } from '../../wire/address.js';
import type { FullnatConfig, SourcePos } from '../model.js';

/** One problem, in the file (and line, when one statement is to blame) it is reported against. */
export interface Finding {
  file: string;
  line?: number;
  reason: string;
}

/** A fleet finding, with the node (its top file) it is reported against: the place may be an include. */
export interface NodeFinding extends Finding {
  node: string;
}

export interface FleetReport {
  errors: NodeFinding[];
  warnings: NodeFinding[];
}

/** `FILE:LINE: reason`, or `FILE: reason` for a file as a whole. */
/** A finding against `node`, placed at `pos` (the node's file as a whole without one). */
export const findingText = (f: Finding): string =>
  f.line === undefined ? `${f.file}: ${f.reason}` : `${f.file}:${f.line}: ${f.reason}`;

/** Where a statement was written, `FILE:LINE`, or the node's file when it has no place. */
export const where = (p: SourcePos | undefined, file: string): string =>
  p ? `${p.file}:${p.line}` : file;

/** A finding against `node`, placed at `pos` (the node's file as a whole without one). */
export const finding = (node: string, pos: SourcePos | undefined, reason: string): NodeFinding =>
  pos ? { node, file: pos.file, line: pos.line, reason } : { node, file: node, reason };

export interface Lip {
  addr: IpAddress;
  pos?: SourcePos;
}

/** The LIPs the node's services use: what it sources RS traffic from and announces. */
export function lipsInUse(cfg: FullnatConfig): Lip[] {
  const seen = new Map<string, Lip>();
  for (const s of cfg.services) {
    for (const a of s.laddrs) {
      const k = addressKey(a);
      if (seen.has(k)) continue;
      const pos = cfg.laddrPos?.get(k);
      seen.set(k, pos ? { addr: a, pos } : { addr: a });
    }
  }
  return [...seen.values()];
}
