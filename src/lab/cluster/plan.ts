/**
 * The cluster lab's names and addresses (IPv4, 10.120.0.0/16), for a fleet
 * of `nodes` fullnat nodes:
 *
 *   client [fncl-c]                          router [fncl-rt]: bird2, ECMP
 *   10.120.1.2 (eth0) ───────────────────── 10.120.1.1 (eth-c)
 *   sources 10.120.8.0/21                    br0 10.120.2.1 ─┬─ lb1 10.120.2.11 [fncl-lb1: fullnat run + bird]
 *                                                            ├─ lb2 10.120.2.12 …
 *                                                            └─ lbN
 *                                            rs0 10.120.3.1 ─┬─ r1 10.120.3.11 [fncl-r1]
 *                                                            └─ r2 10.120.3.12 [fncl-r2]
 *
 * Every node announces the VIP 10.120.0.100/32 and its own LIP prefix
 * 10.120.(16+K).0/28 (LIPs .1 and .2) to the router (AS 65000) from its
 * own AS 65000+K; the real servers reach the LIPs through the router, which
 * learns them by BGP only.
 */

export const CLUSTER_PREFIX = 'fncl';
export const MAX_NODES = 8;
export const DEFAULT_NODES = 3;

export const VIP = '10.120.0.100';
export const VPORT = 80;
export const RS_PORT = 8080;

export const ROUTER_AS = 65000;
export const CLIENT_LINK = { client: '10.120.1.2', router: '10.120.1.1', prefix: 24 } as const;
/** The router's interface towards the client. */
export const ROUTER_CLIENT_IF = 'eth-c';
export const LAN = { router: '10.120.2.1', net: '10.120.2.0/24', prefix: 24 } as const;
export const RS_NET = { router: '10.120.3.1', prefix: 24 } as const;
export const REAL_SERVERS = [
  { host: 'r1', addr: '10.120.3.11' },
  { host: 'r2', addr: '10.120.3.12' },
] as const;

/** The client's source addresses: long-lived connections from the first block, new ones from the second. */
export const CLIENT_SOURCES = '10.120.8.0/21';
export const HOLD_SOURCES = ['10.120.8.1', '10.120.8.2', '10.120.8.3', '10.120.8.4'] as const;
export const BURST_SOURCES = Array.from({ length: 16 }, (_, i) => `10.120.9.${i + 1}`);
/** New connections bind ports from here up (each tuple used once, so no client TIME_WAIT is reused). */
export const BURST_PORT_BASE = 20_000;
export const BURST_PORT_LIMIT = 60_999;

/** The resilient nexthop group's id (member ids are the nodes' last address octets, 11…). */
export const RESILIENT_GROUP_ID = 100;
export const RESILIENT_BUCKETS = 64;

export interface ClusterNode {
  /** lb1, lb2, … — also the host name inside the lab. */
  name: string;
  index: number;
  addr: string;
  asn: number;
  /** TUN device name, distinct per node. */
  device: string;
  lipPrefix: string;
  lips: string[];
}

export function clusterNode(k: number): ClusterNode {
  if (!Number.isInteger(k) || k < 1 || k > MAX_NODES)
    throw new Error(`node index ${k} out of 1..${MAX_NODES}`);
  const lipNet = `10.120.${16 + k}`;
  return {
    name: `lb${k}`,
    index: k,
    addr: `10.120.2.${10 + k}`,
    asn: ROUTER_AS + k,
    device: `fnat${k}`,
    lipPrefix: `${lipNet}.0/28`,
    lips: [`${lipNet}.1`, `${lipNet}.2`],
  };
}

export function clusterNodes(n: number): ClusterNode[] {
  if (!Number.isInteger(n) || n < 2 || n > MAX_NODES)
    throw new Error(`a fleet has 2..${MAX_NODES} nodes (got ${n})`);
  return Array.from({ length: n }, (_, i) => clusterNode(i + 1));
}

/** The node whose LAN address is `gateway`, if any. */
export function nodeByGateway(
  nodes: readonly ClusterNode[],
  gateway: string,
): ClusterNode | undefined {
  return nodes.find((n) => n.addr === gateway);
}

/** Nexthop object id of a node on the router: its address's last octet (unique on the /24 LAN). */
export function nexthopId(gateway: string): number {
  const last = Number(gateway.split('.').pop());
  if (!Number.isInteger(last) || last <= 0 || last >= 255 || last === RESILIENT_GROUP_ID)
    throw new Error(`no nexthop id for ${gateway}`);
  return last;
}

/** The tuple of new connection `j`: source addresses in turn, ports upwards. */
export function burstTuple(j: number): { addr: string; port: number } {
  const k = BURST_SOURCES.length;
  const port = BURST_PORT_BASE + Math.floor(j / k);
  if (port > BURST_PORT_LIMIT) throw new Error(`tuple ${j} is past the client's port range`);
  return { addr: BURST_SOURCES[j % k]!, port };
}

/** How many distinct tuples the generator has. */
export const BURST_TUPLES = (BURST_PORT_LIMIT - BURST_PORT_BASE + 1) * BURST_SOURCES.length;
