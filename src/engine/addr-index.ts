import { addressWords, equal16, equal16Words, fold16 } from './addr6.js';

/**
 * Small open-addressing indexes keyed by an IPv4 address (and a port). A Map
 * keyed by `addr * 65536 + port` boxes a heap number on every lookup once the
 * value leaves the small-integer range; these keep the data path allocation-free.
 * Sized at build time; rebuilt on configuration change.
 */
function slotHash(addr: number, port: number): number {
  let h = Math.imul(addr ^ (port << 16) ^ port, 0x9e3779b1);
  h ^= h >>> 15;
  return h;
}

export class AddrPortIndex {
  private addrs: Uint32Array;
  private ports: Int32Array;
  private values: Int32Array;
  private mask: number;
  size = 0;

  constructor(expected = 16) {
    let cap = 16;
    while (cap < expected * 2) cap *= 2;
    this.addrs = new Uint32Array(cap);
    this.ports = new Int32Array(cap).fill(-1);
    this.values = new Int32Array(cap);
    this.mask = cap - 1;
  }

  /** `port` -1 makes an address-only key. */
  get(addr: number, port: number): number {
    let i = slotHash(addr, port) & this.mask;
    for (;;) {
      const p = this.ports[i]!;
      if (p === -1) return -1;
      if (p === port + 1 && this.addrs[i] === addr) return this.values[i]!;
      i = (i + 1) & this.mask;
    }
  }

  /**
   * Same as `get`, reading the address (and the port unless portOff < 0) from
   * packet bytes. The probe loop is repeated rather than shared: handing the
   * u32 address to a helper would box it on every packet.
   */
  getAt(b: Uint8Array, addrOff: number, portOff: number): number {
    const addr =
      ((b[addrOff]! << 24) | (b[addrOff + 1]! << 16) | (b[addrOff + 2]! << 8) | b[addrOff + 3]!) >>>
      0;
    const port = portOff < 0 ? -1 : (b[portOff]! << 8) | b[portOff + 1]!;
    let i = slotHash(addr, port) & this.mask;
    for (;;) {
      const p = this.ports[i]!;
      if (p === -1) return -1;
      if (p === port + 1 && this.addrs[i] === addr) return this.values[i]!;
      i = (i + 1) & this.mask;
    }
  }

  set(addr: number, port: number, value: number): void {
    if ((this.size + 1) * 2 > this.mask + 1) this.grow();
    let i = slotHash(addr, port) & this.mask;
    for (;;) {
      const p = this.ports[i]!;
      if (p === -1) {
        this.addrs[i] = addr;
        this.ports[i] = port + 1;
        this.values[i] = value;
        this.size++;
        return;
      }
      if (p === port + 1 && this.addrs[i] === addr) {
        this.values[i] = value;
        return;
      }
      i = (i + 1) & this.mask;
    }
  }

  private grow(): void {
    const { addrs, ports, values } = this;
    const cap = (this.mask + 1) * 2;
    this.addrs = new Uint32Array(cap);
    this.ports = new Int32Array(cap).fill(-1);
    this.values = new Int32Array(cap);
    this.mask = cap - 1;
    this.size = 0;
    for (let i = 0; i < ports.length; i++) {
      if (ports[i]! !== -1) this.set(addrs[i]!, ports[i]! - 1, values[i]!);
    }
  }
}

/**
 * The IPv6 counterpart: keyed by 16 address bytes (and a port), probed with
 * fold16 of the address and confirmed on all 16 bytes. Used for IPv6
 * services (VIP:vport) and the IPv6 LIP set.
 */
export class Addr6PortIndex {
  private addrs: Uint8Array;
  /** addrs as `addressWords` (addr6.ts), for the data path's compare. */
  private words: DataView;
  private ports: Int32Array;
  private values: Int32Array;
  private mask: number;
  size = 0;

  constructor(expected = 16) {
    let cap = 16;
    while (cap < expected * 2) cap *= 2;
    this.addrs = new Uint8Array(cap * 16);
    this.words = addressWords(this.addrs);
    this.ports = new Int32Array(cap).fill(-1);
    this.values = new Int32Array(cap);
    this.mask = cap - 1;
  }

  /** The value of the address at b[addrOff..+16) and the port at b[portOff] (address-only when portOff < 0), or -1. */
  getAt(b: Uint8Array, addrOff: number, portOff: number): number {
    return this.getHashedAt(b, addrOff, fold16(b, addrOff), portOff);
  }

  /**
   * `getAt` with the address's fold16 already taken: the data path folds a
   * packet's destination once and probes the service index, the reply
   * table and the LIP set with it.
   */
  getHashedAt(b: Uint8Array, addrOff: number, addrHash: number, portOff: number): number {
    const port = portOff < 0 ? -1 : (b[portOff]! << 8) | b[portOff + 1]!;
    let i = slotHash(addrHash, port) & this.mask;
    for (;;) {
      const p = this.ports[i]!;
      if (p === -1) return -1;
      if (p === port + 1 && equal16Words(this.words, i * 16, b, addrOff)) return this.values[i]!;
      i = (i + 1) & this.mask;
    }
  }

  set(addr: Uint8Array, port: number, value: number): void {
    if ((this.size + 1) * 2 > this.mask + 1) this.grow();
    let i = slotHash(fold16(addr, 0), port) & this.mask;
    for (;;) {
      const p = this.ports[i]!;
      if (p === -1) {
        this.addrs.set(addr.subarray(0, 16), i * 16);
        this.ports[i] = port + 1;
        this.values[i] = value;
        this.size++;
        return;
      }
      if (p === port + 1 && equal16(this.addrs, i * 16, addr, 0)) {
        this.values[i] = value;
        return;
      }
      i = (i + 1) & this.mask;
    }
  }

  private grow(): void {
    const { addrs, ports, values } = this;
    const cap = (this.mask + 1) * 2;
    this.addrs = new Uint8Array(cap * 16);
    this.words = addressWords(this.addrs);
    this.ports = new Int32Array(cap).fill(-1);
    this.values = new Int32Array(cap);
    this.mask = cap - 1;
    this.size = 0;
    for (let i = 0; i < ports.length; i++) {
      if (ports[i]! !== -1)
        this.set(addrs.subarray(i * 16, i * 16 + 16), ports[i]! - 1, values[i]!);
    }
  }
}
