import { Ipv4View } from '../wire/ipv4.js';
import { Ipv6View } from '../wire/ipv6.js';
import { TcpView } from '../wire/tcp.js';
import { TcpOptionSummary } from '../wire/tcp-options.js';
import { ConnTable } from './conn-table.js';
import { C, newCounterArray } from './counters.js';
import { LocalAddressPool } from './laddr.js';
import type { EngineOptions, ToaSetting } from './options.js';
import type { Packet, PacketPool } from './packet.js';
import { PathMtu } from './path-mtu.js';
import { PersistenceTemplates } from './persistence.js';
import { Registry } from './registry.js';
import type { SyncJournal } from './sync/journal.js';
import { timeoutTable } from './tcp-state.js';
import { UdpFlowTable } from './udp-table.js';

/**
 * What every part of the data path shares: the options, the packet pool, the
 * connection table, the local addresses, the counters, the output list, the
 * clock, and the header views wrapped around the packet being processed. One
 * instance per engine; the path objects (client-path, rs-path, nat,
 * connections, synproxy) all hold the same one, so nothing is copied and
 * every call site sees one class. The services, real servers and local
 * addresses are in `reg`.
 */
export class EngineContext {
  readonly table: ConnTable;
  readonly laddrs: LocalAddressPool;
  readonly reg: Registry;
  /** UDP flows: their own table and port allocator (udp-table.ts). */
  readonly udp: UdpFlowTable;
  /** Client persistence's templates (persistence.ts), allocated with the first persistent service. */
  readonly persist: PersistenceTemplates;
  /** The LB→RS path MTU per real server, configured and learned. */
  readonly pmtu: PathMtu;
  readonly counters = newCounterArray();
  /** Packets to send, `out[0, outCount)`; the caller sends them and calls `clearOutput()`. */
  readonly out: Packet[] = [];
  outCount = 0;
  /** Connection sync (`Engine.enableSync`); undefined, the data path's one check, until then. */
  sync: SyncJournal | undefined = undefined;
  /** Engine clock, ms (below 2^32). */
  now = 0;
  /** The same clock in a cell that can be handed to helpers without boxing. */
  readonly clock = new Float64Array(1);
  /** Timeout per TCP state, ms. */
  timeoutsMs: Uint32Array;
  // The options the data path reads per packet, copied here (see `optionsChanged`): `opts` is a
  // spread object whose hidden class V8 may change (a later engine's, `reconfigure`'s assign),
  // which would deoptimize every path that reads it; this class's fields keep one shape.
  policy: ToaSetting;
  mssAdjust: boolean;
  timestampRemove: boolean;
  toaV6Kind: number;
  /** Wrapped around the packet being processed (header views, parsed options). */
  readonly ip = new Ipv4View();
  /** The IPv6 packet's header (the IPv6 path's; `ip` stays the IPv4 path's, so each stays monomorphic). */
  readonly ip6 = new Ipv6View();
  readonly tcp = new TcpView();
  readonly opt = new TcpOptionSummary();

  constructor(
    readonly opts: EngineOptions,
    readonly pool: PacketPool,
  ) {
    this.policy = opts.toaPolicy;
    this.mssAdjust = opts.mssAdjust;
    this.timestampRemove = opts.timestampRemove;
    this.toaV6Kind = opts.toaV6Kind;
    this.timeoutsMs = timeoutTable(opts.timeouts);
    this.table = new ConnTable(opts.maxConnections);
    this.laddrs = new LocalAddressPool(
      opts.maxLocalAddresses,
      opts.maxRealServers,
      opts.portRange,
      opts.portSeed,
    );
    this.pmtu = new PathMtu(opts.maxRealServers, this.clock, opts.pmtuExpiresMs);
    this.udp = new UdpFlowTable(
      opts.maxConnections,
      opts.maxLocalAddresses,
      opts.maxRealServers,
      opts.portRange,
      opts.portSeed,
    );
    this.persist = new PersistenceTemplates(this);
    this.reg = new Registry(opts, this.table, this.laddrs, this.pmtu, this.udp, this.persist);
  }

  /** Re-reads the options that `Engine.reconfigure` may change. */
  optionsChanged(): void {
    this.policy = this.opts.toaPolicy;
    this.mssAdjust = this.opts.mssAdjust;
    this.timestampRemove = this.opts.timestampRemove;
    this.toaV6Kind = this.opts.toaV6Kind;
    this.timeoutsMs = timeoutTable(this.opts.timeouts);
    this.pmtu.expiresMs = this.opts.pmtuExpiresMs;
  }

  setClock(now: number): void {
    this.now = now;
    this.clock[0] = now;
  }

  // Counting: `count` for an engine-wide counter, `countSvc` for one kept both
  // engine-wide and per service (the ones `ipvsadm --stats`-style views split).

  count(counter: number): void {
    this.counters[counter]!++;
  }

  add(counter: number, n: number): void {
    this.counters[counter]! += n;
  }

  countSvc(svc: number, counter: number): void {
    this.counters[counter]!++;
    this.reg.services[svc]!.counters[counter]!++;
  }

  /** Drops p, counting why engine-wide and for its service. */
  dropSvc(p: Packet, svc: number, counter: number): void {
    this.countSvc(svc, counter);
    this.pool.give(p);
  }

  emit(p: Packet): void {
    this.counters[C.tx_packets]!++;
    this.counters[C.tx_bytes]! += p.length;
    this.out[this.outCount++] = p;
  }

  /** Emits the received packet itself (rewritten); see DROP_COUNTERS for the other fate. */
  forward(p: Packet): void {
    this.counters[C.forwarded_packets]!++;
    this.emit(p);
  }

  drop(p: Packet, counter: number): void {
    this.counters[counter]!++;
    this.pool.give(p);
  }
}
