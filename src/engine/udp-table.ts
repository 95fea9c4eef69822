import { ConnTable } from './conn-table.js';
import { LocalAddressPool, type PortRange } from './laddr.js';

/**
 * Where UDP flows live: a connection table of their own (the same
 * struct-of-arrays and indexes as TCP's, so a TCP lookup never walks a UDP
 * entry and TCP's table stays as it was), allocated when the first UDP
 * service is added, and a port allocator of their own.
 *
 * Ports. UDP flows take their LIP ports by the same plan as TCP connections
 * (laddr.ts: per (LIP, RS) pair, a random start per run), from a second
 * allocator: a UDP and a TCP 4-tuple are different sockets for the RS, so a
 * UDP flow may hold the port number a TCP connection holds toward the same
 * RS, and neither protocol's load can exhaust the other's ports. The LIPs
 * are registered in both allocators in the same order, so a LIP's index is
 * the same in either. Both the table and the allocator (whose per-pair
 * arrays are sized by the LIP and RS limits) are made when the first UDP
 * service is added, so an engine without one pays nothing for them.
 *
 * The TCP-only columns (sequence deltas, SYNPROXY's) stay zero in UDP
 * entries; `uoaSent` counts the datagrams of each flow that carried a UOA.
 */
export class UdpFlowTable {
  table: ConnTable;
  uoaSent: Uint8Array;
  laddrs: LocalAddressPool;
  enabled = false;
  /** The port plan's share (laddr.ts `setShare`), kept for the allocator `enable` makes. */
  private shareNode = 1;
  private shareNodes = 1;

  constructor(
    private readonly capacity: number,
    private readonly maxLocalAddresses: number,
    private readonly maxRealServers: number,
    private readonly portRange: PortRange,
    private readonly portSeed: number,
  ) {
    // One-entry placeholders until a UDP service exists: lookups on them find nothing.
    this.table = new ConnTable(1);
    this.uoaSent = new Uint8Array(1);
    this.laddrs = new LocalAddressPool(1, 1, portRange, portSeed);
  }

  /**
   * Makes the table at its full size (the engine's maxConnections) and the
   * port allocator with the LIPs `tcpPorts` knows, in its order, and its
   * shared port sets (one RS address:port behind several services) for the
   * first `realServers`; idempotent.
   */
  enable(tcpPorts: LocalAddressPool, realServers: number): void {
    if (this.enabled) return;
    this.enabled = true;
    this.table = new ConnTable(this.capacity);
    this.uoaSent = new Uint8Array(this.capacity);
    const ports = new LocalAddressPool(
      this.maxLocalAddresses,
      this.maxRealServers,
      this.portRange,
      this.portSeed,
    );
    if (this.shareNodes !== 1) ports.setShare(this.shareNode, this.shareNodes);
    for (const lip of tcpPorts.lips) ports.add(lip);
    for (let rs = 0; rs < realServers; rs++) {
      const owner = tcpPorts.portGroup(rs);
      if (owner !== rs) ports.sharePorts(rs, owner);
    }
    this.laddrs = ports;
  }

  /** UDP flows take their ports by the fleet's port plan too: this node's share of every pair. */
  setShare(nodeId: number, nodes: number): void {
    this.laddrs.setShare(nodeId, nodes);
    this.shareNode = nodeId;
    this.shareNodes = nodes;
  }
}
