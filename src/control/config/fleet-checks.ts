/**
 * Checks across the files of a fleet's nodes, each parsed already: what no
 * single file can tell. Errors: two nodes sharing a LIP or announcing
 * prefixes that take in each other's (a real server's reply would go to the
 * wrong node), sharing a router id, or naming one neighbour with two AS
 * numbers. Warnings: nodes serving different VIP:port sets, or one service
 * with different real servers or schedulers (the router spreads a client's
 * connections over every node), and a node without a bgp block among nodes
 * that announce. The sync blocks are checked in fleet-sync-checks.ts.
 */
import { addressKey, addressToString, endpointToString } from '../../wire/address.js';
import { ipv4ToString } from '../../wire/bytes.js';
import type { AnnouncedPrefix, FullnatConfig, ServiceSpec } from '../model.js';
import { prefixContains, prefixesOverlap, prefixToString } from '../prefix.js';
import { svcName } from './grammar/draft.js';
import { finding, where, lipsInUse, type FleetReport, type NodeFinding } from './fleet-node.js';
import { checkSyncFleet, type KeyDigest } from './fleet-sync-checks.js';

export {
  findingText,
  lipsInUse,
  type Finding,
  type FleetReport,
  type NodeFinding,
} from './fleet-node.js';

// The protocol is part of a service's identity; svcName writes it for UDP only, as the other messages do.
const svcKey = (s: ServiceSpec): string => svcName(s);

/** The real servers with their weights, in one order: what makes mh and sh pick alike. */
const realSet = (s: ServiceSpec): string =>
  s.realServers
    .map((r) => `${endpointToString(r.addr, r.port)}*${r.weight}`)
    .sort()
    .join(' ');

export interface FleetCheckOptions {
  /** How the sync blocks' key files are compared (default: sha256 of each file's key). */
  keyDigest?: KeyDigest;
}

export function checkFleet(
  nodes: readonly FullnatConfig[],
  opts: FleetCheckOptions = {},
): FleetReport {
  const errors: NodeFinding[] = [];
  const warnings: NodeFinding[] = [];
  for (let j = 1; j < nodes.length; j++) {
    for (let i = 0; i < j; i++) {
      checkLips(nodes[i]!, nodes[j]!, errors);
      checkLips(nodes[j]!, nodes[i]!, errors, true);
      checkBgpPair(nodes[i]!, nodes[j]!, errors);
    }
  }
  checkServices(nodes, warnings);
  const speaking = nodes.find((n) => n.bgp);
  if (speaking) {
    for (const n of nodes) {
      if (n.bgp) continue;
      warnings.push({
        node: n.file,
        file: n.file,
        reason: `no bgp block while ${where(speaking.bgp?.pos, speaking.file)} has one: this node announces nothing, so the router sends it no traffic`,
      });
    }
  }
  const sync = checkSyncFleet(nodes, opts.keyDigest);
  errors.push(...sync.errors);
  warnings.push(...sync.warnings);
  return { errors, warnings };
}

/**
 * `b`'s LIPs and lip_prefixes against `a`'s. Run both ways; `reverse` skips
 * what the first direction reported already (the same LIP, overlapping prefixes).
 */
function checkLips(
  a: FullnatConfig,
  b: FullnatConfig,
  errors: NodeFinding[],
  reverse = false,
): void {
  const aLips = lipsInUse(a);
  const aPrefixes = a.bgp?.lipPrefixes ?? [];
  for (const l of lipsInUse(b)) {
    const text = addressToString(l.addr);
    const same = aLips.find((x) => addressKey(x.addr) === addressKey(l.addr));
    if (same && !reverse) {
      errors.push(
        finding(
          b.file,
          l.pos,
          `local address ${text} is also a local address of ${where(same.pos, a.file)}: each node needs its own LIPs, or real servers' replies reach the wrong node`,
        ),
      );
      continue;
    }
    if (same) continue;
    const p = aPrefixes.find((x) => prefixContains(x, l.addr));
    if (p)
      errors.push(
        finding(
          b.file,
          l.pos,
          `local address ${text} falls in lip_prefix ${prefixToString(p)} of ${where(p.pos, a.file)}: real servers' replies to it would be routed to that node`,
        ),
      );
  }
  if (reverse) return;
  for (const q of b.bgp?.lipPrefixes ?? []) {
    const p = aPrefixes.find((x: AnnouncedPrefix) => prefixesOverlap(x, q));
    if (p)
      errors.push(
        finding(
          b.file,
          q.pos,
          `lip_prefix ${prefixToString(q)} overlaps lip_prefix ${prefixToString(p)} of ${where(p.pos, a.file)}: each node's LIPs need prefixes of their own`,
        ),
      );
  }
}

/** Router ids distinct; one neighbour address, one AS. */
function checkBgpPair(a: FullnatConfig, b: FullnatConfig, errors: NodeFinding[]): void {
  if (!a.bgp || !b.bgp) return;
  if (a.bgp.routerId === b.bgp.routerId)
    errors.push(
      finding(
        b.file,
        b.bgp.pos,
        `router_id ${ipv4ToString(b.bgp.routerId)} is also the router_id of ${where(a.bgp.pos, a.file)}: each node needs its own BGP identifier`,
      ),
    );
  for (const n of b.bgp.neighbors) {
    const m = a.bgp.neighbors.find((x) => addressKey(x.addr) === addressKey(n.addr));
    if (m && m.remoteAs !== n.remoteAs)
      errors.push(
        finding(
          b.file,
          n.pos,
          `neighbor ${addressToString(n.addr)} has remote_as ${n.remoteAs} here but ${m.remoteAs} in ${where(m.pos, a.file)}: one router has one AS`,
        ),
      );
  }
}

/** Every node should serve the same services with the same real servers: ECMP sends any client to any node. */
function checkServices(nodes: readonly FullnatConfig[], warnings: NodeFinding[]): void {
  const first = new Map<string, { node: FullnatConfig; svc: ServiceSpec }>();
  for (const node of nodes)
    for (const svc of node.services)
      if (!first.has(svcKey(svc))) first.set(svcKey(svc), { node, svc });
  for (const node of nodes) {
    const own = new Map(node.services.map((s) => [svcKey(s), s]));
    for (const [key, ref] of first) {
      const svc = own.get(key);
      if (!svc) {
        warnings.push({
          node: node.file,
          file: node.file,
          reason: `no virtual_server ${key} (${where(ref.svc.pos, ref.node.file)} has it): the router sends its clients to this node too`,
        });
        continue;
      }
      if (ref.node === node) continue;
      if (svc.scheduler !== ref.svc.scheduler)
        warnings.push(
          finding(
            node.file,
            svc.pos,
            `virtual_server ${key} schedules by ${svc.scheduler} here but by ${ref.svc.scheduler} in ${where(ref.svc.pos, ref.node.file)}`,
          ),
        );
      else if (realSet(svc) !== realSet(ref.svc))
        warnings.push(
          finding(
            node.file,
            svc.pos,
            `virtual_server ${key} has other real servers or weights than ${where(ref.svc.pos, ref.node.file)}: a client the router moves to another node ${svc.scheduler === 'mh' || svc.scheduler === 'sh' ? `gets another real server (${svc.scheduler} picks alike only from the same set)` : 'may get another real server'}`,
          ),
        );
    }
  }
}
