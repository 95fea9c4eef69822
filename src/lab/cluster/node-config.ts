/**
 * The configuration file of one fleet node: the same VIP and services on
 * every node (Maglev hashing, so every node picks the same real server for
 * a client), and per node its own device, control socket, state directory,
 * LIPs and `bgp` block peering with the router (BFD 100 ms × 3).
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
}

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
}
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
local_address_group lips {
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
