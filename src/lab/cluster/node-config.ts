/**
 * The configuration file of one fleet node: the same VIP and services on
 * every node (Maglev hashing, so every node picks the same real server for
 * a client), and per node its own device, control socket, state directory,
 * LIPs and `bgp` block peering with the router (BFD 100 ms × 3); for the
 * sync scenario a `sync` block naming every other node as a peer (its LAN
 * address, node id = its index, its LIP prefix) and a metrics listener.
 */
import { join } from 'node:path';
import { LAN, REAL_SERVERS, ROUTER_AS, RS_PORT, VIP, VPORT, type ClusterNode } from './plan.js';

export interface NodeConfigOptions {
  /** The node's directory: control socket, state, its bird's files. */
  dir: string;
  /** `drain_timeout`, seconds. */
  drainTimeout: number;
  /** BGP hold time, seconds (BFD detects a dead peer first). */
  holdTime?: number;
  bfdIntervalMs?: number;
  bfdMultiplier?: number;
  /** Connection sync with the rest of `fleet` (every node, this one included), sharing `keyFile`. */
  sync?: { fleet: readonly ClusterNode[]; keyFile: string };
  /** `metrics HOST:PORT` (inside the node's namespace). */
  metrics?: string;
}

/** The port every node's sync channel listens on (the grammar's default, written out). */
export const SYNC_PORT = 8848;

export function nodeControlSocket(dir: string): string {
  return join(dir, 'fullnat.sock');
}

export function nodeConfig(node: ClusterNode, opts: NodeConfigOptions): string {
  const reals = REAL_SERVERS.map(
    (r) => `    real_server ${r.addr} ${RS_PORT} {
        weight 1
        TCP_CHECK {
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }
    }`,
  ).join('\n');
  return `# fullnat cluster lab: node ${node.name}
fullnat_defs {
    interface ${node.device}
    toa_policy fullnat
    control_socket ${nodeControlSocket(opts.dir)}
    state_dir ${opts.dir}
    drain_timeout ${opts.drainTimeout}
    timeout_syn_recv 5
    timeout_fin_wait 2
    timeout_time_wait 2
    timeout_close 1
    timeout_close_wait 2
    timeout_last_ack 2
${opts.metrics ? `    metrics ${opts.metrics}\n` : ''}}
bgp {
    router_id ${node.addr}
    local_as ${node.asn}
    neighbor ${LAN.router} {
        remote_as ${ROUTER_AS}
        hold_time ${opts.holdTime ?? 3}
        bfd on
        source_address ${node.addr}
    }
    bfd_interval ${opts.bfdIntervalMs ?? 100}
    bfd_multiplier ${opts.bfdMultiplier ?? 3}
    lip_prefix ${node.lipPrefix}
}
${opts.sync ? syncBlock(node, opts.sync.fleet, opts.sync.keyFile) : ''}local_address_group lips {
${node.lips.map((l) => `    ${l}`).join('\n')}
}
virtual_server ${VIP} ${VPORT} {
    delay_loop 1
    lb_algo mh
    lb_kind FNAT
    protocol TCP
    laddr_group_name lips
${reals}
}
`;
}

/** The node's `sync` block: its id is its index, every other node of the fleet a peer. */
export function syncBlock(
  node: ClusterNode,
  fleet: readonly ClusterNode[],
  keyFile: string,
): string {
  const peers = fleet
    .filter((p) => p.name !== node.name)
    .map(
      (p) => `    peer ${p.addr} {
        port ${SYNC_PORT}
        node_id ${p.index}
        lip_prefix ${p.lipPrefix}
    }`,
    )
    .join('\n');
  return `sync {
    node_id ${node.index}
    nodes ${fleet.length}
    listen ${node.addr} ${SYNC_PORT}
    key_file ${keyFile}
${peers}
}
`;
}
