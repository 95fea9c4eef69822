import { addressKey, type IpAddress } from '../wire/address.js';
import { fold16 } from './addr6.js';
import { fmix32 } from './sched/hash.js';

/**
 * Local addresses (LIPs) and their ports. Ports are handed out per
 * (LIP, real server) pair, as in LVS FULLNAT: the same lport may be in use
 * toward two different RS at once, since the reply tuple includes the RIP.
 * One RS address:port in several services is several RS entries but one
 * destination, so they share one set of ports (`sharePorts`): otherwise two
 * connections could get the same reply tuple.
 *
 * The port plan of a fleet (docs/ARCHITECTURE.md, "The port plan"): with a
 * share set (`setShare(nodeId, nodes)`) the pool hands out only the ports
 * whose residue mod `nodes` is nodeId − 1, so two nodes never pick the same
 * LIP:lport; `claim` (a connection entering from a record) takes any port.
 */

export interface PortRange {
  min: number;
  max: number;
}

export const DEFAULT_PORT_RANGE: PortRange = { min: 5000, max: 65535 };

export class LocalAddressPool {
  readonly lips: IpAddress[] = [];
  /**
   * The same addresses as typed arrays, for the data path: an IPv4 LIP's
   * address, or an IPv6 LIP's fold16 (as the connection table keeps it) with
   * its 16 bytes in `addrs6` at 16 * index and `isV6` set.
   */
  addrs = new Uint32Array(0);
  addrs6 = new Uint8Array(0);
  isV6 = new Uint8Array(0);
  private readonly lipIndex = new Map<string, number>();
  /** Bitmap of used ports per (lipIndex * maxRs + rsIndex); created on first use. */
  private readonly used: (Uint32Array | undefined)[] = [];
  private readonly cursor: Uint16Array;
  private readonly inUse: Uint32Array;
  /** Per RS index, the RS index whose ports it uses (itself unless it shares an address:port). */
  private readonly portOwner: Uint16Array;
  /** Per pair, claimed ports outside this node's share (counted in `inUse`, never handed out). */
  private readonly foreignInUse: Uint32Array;
  /** The share: ports p with p % shareStep === shareResidue (1 and 0: every port). */
  private shareStep = 1;
  private shareResidue = 0;
  /** The lowest port of the range in the share, and how many ports the share holds. */
  private shareFirst: number;
  private shareSpan: number;
  readonly range: PortRange;
  readonly maxRs: number;
  readonly maxLips: number;

  /**
   * `seed` picks where each (LIP, RS) pair starts handing out ports. A
   * restarted LB that began at the bottom of the range again would reuse the
   * tuples its previous run left in TIME_WAIT on the RS, with unrelated ISNs,
   * and those SYNs stall for a second; a per-run random start avoids most of
   * it (RFC 6056). The seed must differ per run: it is not the ISN secret,
   * which a restart keeps.
   */
  constructor(
    maxLips: number,
    maxRs: number,
    range: PortRange = DEFAULT_PORT_RANGE,
    private readonly seed = 0,
  ) {
    if (range.min < 1 || range.max > 65535 || range.min > range.max) {
      throw new RangeError(`bad local port range ${range.min}-${range.max}`);
    }
    this.range = range;
    this.maxRs = maxRs;
    this.maxLips = maxLips;
    this.cursor = new Uint16Array(maxLips * maxRs);
    this.inUse = new Uint32Array(maxLips * maxRs);
    this.portOwner = new Uint16Array(maxRs);
    for (let i = 0; i < maxRs; i++) this.portOwner[i] = i;
    this.foreignInUse = new Uint32Array(maxLips * maxRs);
    this.shareFirst = range.min;
    this.shareSpan = range.max - range.min + 1;
  }

  /**
   * This node's share of every pair's ports (the fleet's port plan): ports p
   * with p % nodes === nodeId − 1. `setShare(1, 1)` is every port again.
   * Ports already held stay held; a pair's next port is the first of the
   * share from where its cursor stands.
   */
  setShare(nodeId: number, nodes: number): void {
    if (!Number.isInteger(nodes) || nodes < 1 || nodes > 255)
      throw new RangeError(`bad number of port shares ${nodes} (1..255)`);
    if (!Number.isInteger(nodeId) || nodeId < 1 || nodeId > nodes)
      throw new RangeError(`bad port share ${nodeId} of ${nodes}`);
    const residue = nodeId - 1;
    const first = this.range.min + ((residue - (this.range.min % nodes) + nodes) % nodes);
    if (first > this.range.max)
      throw new RangeError(
        `port range ${this.range.min}-${this.range.max} holds no port of share ${nodeId}/${nodes}`,
      );
    this.shareStep = nodes;
    this.shareResidue = residue;
    this.shareFirst = first;
    this.shareSpan = Math.floor((this.range.max - first) / nodes) + 1;
    for (let pair = 0; pair < this.cursor.length; pair++) {
      if (this.used[pair] !== undefined) this.cursor[pair] = this.inShare(this.cursor[pair]!);
      const bits = this.used[pair];
      let foreign = 0;
      if (bits !== undefined)
        for (let port = this.range.min; port <= this.range.max; port++)
          if ((bits[port >>> 5]! & (1 << (port & 31))) !== 0 && !this.ownsPort(port)) foreign++;
      this.foreignInUse[pair] = foreign;
    }
  }

  /** True when `port` is in this node's share. */
  ownsPort(port: number): boolean {
    return port % this.shareStep === this.shareResidue;
  }

  /** The first port of the share at or after `port` (wrapping to the share's first). */
  private inShare(port: number): number {
    if (port < this.range.min || port > this.range.max) return this.shareFirst;
    const p =
      port + ((this.shareResidue - (port % this.shareStep) + this.shareStep) % this.shareStep);
    return p > this.range.max ? this.shareFirst : p;
  }

  /** Registers a LIP of either family (idempotent); returns its index. */
  add(lip: IpAddress): number {
    const key = addressKey(lip);
    const known = this.lipIndex.get(key);
    if (known !== undefined) return known;
    if (this.lips.length >= this.maxLips)
      throw new RangeError(`more than ${this.maxLips} local addresses`);
    const i = this.lips.length;
    this.lips.push(lip);
    this.lipIndex.set(key, i);
    const n = this.lips.length;
    this.addrs = new Uint32Array(n);
    this.addrs6 = new Uint8Array(n * 16);
    this.isV6 = new Uint8Array(n);
    for (let k = 0; k < n; k++) {
      const a = this.lips[k]!;
      if (typeof a === 'number') this.addrs[k] = a;
      else {
        this.addrs6.set(a.bytes, k * 16);
        this.addrs[k] = fold16(a.bytes, 0);
        this.isV6[k] = 1;
      }
    }
    return i;
  }

  indexOf(lip: IpAddress): number {
    return this.lipIndex.get(addressKey(lip)) ?? -1;
  }

  has(lip: IpAddress): boolean {
    return this.lipIndex.has(addressKey(lip));
  }

  get portsPerPair(): number {
    return this.range.max - this.range.min + 1;
  }

  /**
   * RS `rsIdx` has the address:port of RS `sameAs` (in another service):
   * from now on it takes and frees ports from the same set. Call before it
   * has connections.
   */
  sharePorts(rsIdx: number, sameAs: number): void {
    if (rsIdx < 0 || rsIdx >= this.maxRs || sameAs < 0 || sameAs >= this.maxRs)
      throw new RangeError(`no real server slot ${rsIdx} or ${sameAs}`);
    this.portOwner[rsIdx] = this.portOwner[sameAs]!;
  }

  /** The RS index whose port set RS `rsIdx` uses. */
  portGroup(rsIdx: number): number {
    return this.portOwner[rsIdx]!;
  }

  /** Ports in use toward RS rsIdx's address:port from one LIP (shared with any RS of the same address:port). */
  portsInUse(lipIdx: number, rsIdx: number): number {
    return this.inUse[lipIdx * this.maxRs + this.portOwner[rsIdx]!]!;
  }

  /** The bitmap of pair's used ports, made (and the pair's start drawn) on first use. */
  private bitsOf(pair: number): Uint32Array {
    let bits = this.used[pair];
    if (bits === undefined) {
      bits = new Uint32Array(2048);
      this.used[pair] = bits;
      this.cursor[pair] = this.inShare(this.startOf(pair));
    }
    return bits;
  }

  /** Where a (LIP, RS) pair starts handing out ports: a hash of the seed and the pair (RFC 6056's random start). */
  startingPort(lipIdx: number, rsIdx: number): number {
    return this.startOf(lipIdx * this.maxRs + this.portOwner[rsIdx]!);
  }

  private startOf(pair: number): number {
    return (
      this.range.min + (fmix32(this.seed ^ Math.imul(pair + 1, 0x9e3779b1)) % this.portsPerPair)
    );
  }

  /** Takes a free port of this node's share toward one RS on one LIP; -1 when all are taken. */
  allocate(lipIdx: number, rsIdx: number): number {
    const pair = lipIdx * this.maxRs + this.portOwner[rsIdx]!;
    const span = this.shareSpan;
    if (this.inUse[pair]! - this.foreignInUse[pair]! >= span) return -1;
    const bits = this.bitsOf(pair);
    const step = this.shareStep;
    const last = this.range.max - step;
    let port = this.cursor[pair]!;
    for (let n = 0; n < span; n++) {
      const w = port >>> 5;
      const m = 1 << (port & 31);
      const next = port > last ? this.shareFirst : port + step;
      if ((bits[w]! & m) === 0) {
        bits[w] = bits[w]! | m;
        this.inUse[pair]!++;
        this.cursor[pair] = next;
        return port;
      }
      port = next;
    }
    return -1;
  }

  /**
   * Takes one given port toward one RS on one LIP (a connection entering
   * from a snapshot or a fleet peer, whatever its share); false when it is
   * outside the range or already taken. The pair's cursor stays where it
   * is: allocation walks past taken ports.
   */
  claim(lipIdx: number, rsIdx: number, port: number): boolean {
    if (lipIdx < 0 || lipIdx >= this.maxLips || rsIdx < 0 || rsIdx >= this.maxRs) return false;
    if (!Number.isInteger(port) || port < this.range.min || port > this.range.max) return false;
    const pair = lipIdx * this.maxRs + this.portOwner[rsIdx]!;
    const bits = this.bitsOf(pair);
    const w = port >>> 5;
    const m = 1 << (port & 31);
    if ((bits[w]! & m) !== 0) return false;
    bits[w] = bits[w]! | m;
    this.inUse[pair]!++;
    if (!this.ownsPort(port)) this.foreignInUse[pair]!++;
    return true;
  }

  release(lipIdx: number, rsIdx: number, port: number): void {
    const pair = lipIdx * this.maxRs + this.portOwner[rsIdx]!;
    const bits = this.used[pair];
    if (bits === undefined) return;
    const w = port >>> 5;
    const m = 1 << (port & 31);
    if ((bits[w]! & m) !== 0) {
      bits[w] = bits[w]! & ~m;
      this.inUse[pair]!--;
      if (this.shareStep !== 1 && !this.ownsPort(port)) this.foreignInUse[pair]!--;
    }
  }
}
