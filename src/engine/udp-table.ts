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
 * the same in either.
 *
 * The TCP-only columns (sequence deltas, SYNPROXY's) stay zero in UDP
 * entries; `uoaSent` counts the datagrams of each flow that carried a UOA.
 */
export class UdpFlowTable {
  table: ConnTable;
  uoaSent: Uint8Array;
  readonly laddrs: LocalAddressPool;

  constructor(
    private readonly capacity: number,
    maxLocalAddresses: number,
    maxRealServers: number,
    portRange: PortRange,
    portSeed: number,
  ) {
    // A one-entry placeholder until a UDP service exists: an engine without one pays no memory.
    this.table = new ConnTable(1);
    this.uoaSent = new Uint8Array(1);
    this.laddrs = new LocalAddressPool(maxLocalAddresses, maxRealServers, portRange, portSeed);
  }

  get enabled(): boolean {
    return this.table.capacity === this.capacity;
  }

  /** Allocates the table at its full size (the engine's maxConnections); idempotent. */
  enable(): void {
    if (this.enabled) return;
    this.table = new ConnTable(this.capacity);
    this.uoaSent = new Uint8Array(this.capacity);
  }

  /** Allocates the table's IPv6 side (an IPv6 UDP service); idempotent. */
  enableIpv6(): void {
    this.enable();
    this.table.enableIpv6();
  }
}
