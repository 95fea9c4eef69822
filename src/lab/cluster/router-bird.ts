/**
 * The lab router's bird2 configuration, and reading the kernel routes it
 * installs.
 *
 * The router peers with every node (eBGP, passive: the nodes connect), with
 * BFD at the nodes' rate, and `merge paths on` in its kernel protocol so
 * the equal routes of all nodes become one multipath route. Two modes:
 *
 * - `ecmp`: that multipath route forwards the VIP; the kernel spreads flows
 *   over its members by hash-threshold (what a router running bird2 gets).
 * - `resilient`: the lab's agent (fixtures/nexthop-agent.ts) follows that
 *   route and keeps a resilient nexthop group with the same members behind
 *   a route of its own, preferred by its lower metric — bird2 cannot
 *   install nexthop groups itself.
 */
import { LAN, ROUTER_AS, type ClusterNode } from './plan.js';

export type RouterMode = 'ecmp' | 'resilient';
export const ROUTER_MODES: readonly RouterMode[] = ['ecmp', 'resilient'];

/** The metric of the resilient agent's route, under bird's (32). */
export const AGENT_ROUTE_METRIC = 1;

export interface RouterBirdOptions {
  holdTime?: number;
  bfdIntervalMs?: number;
  bfdMultiplier?: number;
}

export function routerBirdConfig(
  nodes: readonly ClusterNode[],
  opts: RouterBirdOptions = {},
): string {
  const interval = opts.bfdIntervalMs ?? 100;
  return `# fullnat cluster lab: the router
router id ${LAN.router};
log stderr all;

protocol device {
    scan time 1;
}

protocol bfd {
    interface "br0" {
        min rx interval ${interval} ms;
        min tx interval ${interval} ms;
        multiplier ${opts.bfdMultiplier ?? 3};
    };
}

protocol kernel {
    merge paths on;
    ipv4 { import none; export all; };
}

template bgp fleet {
    local ${LAN.router} as ${ROUTER_AS};
    passive on;
    hold time ${opts.holdTime ?? 3};
    bfd on;
    ipv4 { import all; export none; };
}

${nodes.map((n) => `protocol bgp ${n.name} from fleet {\n    neighbor ${n.addr} as ${n.asn};\n}`).join('\n\n')}
`;
}

/** One kernel route as `ip -j route show` prints it (the fields read here). */
interface JsonRoute {
  dst?: string;
  metric?: number;
  gateway?: string;
  nhid?: number;
  nexthops?: { gateway?: string }[];
}

/**
 * The gateways (sorted, distinct) of the route in force in `ip -j route
 * show PREFIX` output — the one of lowest metric; a route through a
 * nexthop object names it as `nhid:N`.
 */
export function routeGateways(json: string): string[] {
  const text = json.trim();
  if (text === '') return [];
  const routes = JSON.parse(text) as JsonRoute[];
  const best = Math.min(...routes.map((r) => r.metric ?? 0));
  const out = new Set<string>();
  for (const r of routes) {
    if ((r.metric ?? 0) !== best) continue;
    if (r.nexthops?.length) {
      for (const nh of r.nexthops) if (nh.gateway) out.add(nh.gateway);
    } else if (r.gateway) out.add(r.gateway);
    else if (r.nhid !== undefined) out.add(`nhid:${r.nhid}`);
  }
  return [...out].sort();
}

/** One nexthop object as `ip -j nexthop show` prints it. */
interface JsonNexthop {
  id: number;
  gateway?: string;
  group?: { id: number; weight?: number }[];
}

/** The member ids of group `id` in `ip -j nexthop show` output, and every object's gateway. */
export function parseNexthops(json: string): {
  groups: Map<number, number[]>;
  gateways: Map<number, string>;
} {
  const groups = new Map<number, number[]>();
  const gateways = new Map<number, string>();
  const text = json.trim();
  if (text === '') return { groups, gateways };
  for (const nh of JSON.parse(text) as JsonNexthop[]) {
    if (nh.group)
      groups.set(
        nh.id,
        nh.group.map((m) => m.id),
      );
    if (nh.gateway) gateways.set(nh.id, nh.gateway);
  }
  return { groups, gateways };
}
