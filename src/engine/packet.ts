/**
 * Packet buffers with head- and tailroom. The data path takes packets from a
 * pool and returns them; inserting a TOA moves bytes inside the same buffer.
 */
import { IPV6_HEADER } from '../wire/ipv6.js';

export const DEFAULT_HEADROOM = 128;
export const DEFAULT_BUFFER_SIZE = 2048;
/** Largest IPv4 datagram: the bound on a GSO super-packet, TOA included. */
export const MAX_IP_PACKET = 65535;
/** Buffers for a device with offloads: headroom, a whole super-packet, room for options to grow. */
export const GSO_BUFFER_SIZE = DEFAULT_HEADROOM + MAX_IP_PACKET + 128;

export class Packet {
  readonly buf: Uint8Array;
  /** Offset of the first byte of the IP header. */
  start = DEFAULT_HEADROOM;
  /** Length of the IP packet in bytes. */
  length = 0;
  /** Index into the pool's free list bookkeeping; -1 while handed out. */
  poolSlot = -1;
  /**
   * Payload bytes per segment when this is a GSO super-packet that the kernel
   * cuts into segments after us (0: an ordinary packet). Size checks against
   * a path MTU apply to one segment, not to `length`.
   */
  gsoSize = 0;
  /** The device's GSO type bits (virtio_net_hdr gso_type), carried through unchanged. */
  gsoType = 0;
  /**
   * The TCP checksum field holds only the pseudo-header sum (a super-packet
   * the kernel left for the device to finish, and that goes back out the
   * same way). Incremental updates may leave it anything; whatever needs a
   * real checksum first computes one (`ToaWriter`).
   */
  csumPartial = false;

  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }

  /** Copies bytes in at the default headroom. Returns false when they do not fit. */
  load(src: Uint8Array, headroom = DEFAULT_HEADROOM): boolean {
    if (headroom + src.length > this.buf.length) return false;
    this.buf.set(src, headroom);
    this.start = headroom;
    this.length = src.length;
    this.gsoSize = 0;
    this.gsoType = 0;
    this.csumPartial = false;
    return true;
  }

  /** A view of the IP packet (shares memory). */
  view(): Uint8Array {
    return this.buf.subarray(this.start, this.start + this.length);
  }

  get end(): number {
    return this.start + this.length;
  }

  get tailroom(): number {
    return this.buf.length - this.start - this.length;
  }
}

/** p as `take` hands a packet out: at the default headroom, empty, no GSO metadata. */
function fresh(p: Packet): Packet {
  p.start = DEFAULT_HEADROOM;
  p.length = 0;
  p.gsoSize = 0;
  p.gsoType = 0;
  p.csumPartial = false;
  return p;
}

export class PacketPool {
  private readonly free: Packet[] = [];
  private freeCount = 0;
  private readonly smallFree: Packet[] = [];
  private readonly largeFree: Packet[] = [];
  readonly bufferSize: number;
  /** Packets ever created; grows only when the pool runs dry. */
  created = 0;

  constructor(initial = 1024, bufferSize = DEFAULT_BUFFER_SIZE) {
    this.bufferSize = bufferSize;
    for (let i = 0; i < initial; i++) this.free.push(this.make());
    this.freeCount = initial;
  }

  private make(): Packet {
    this.created++;
    return new Packet(this.bufferSize);
  }

  get available(): number {
    return this.freeCount;
  }

  take(): Packet {
    if (this.freeCount === 0) return this.make();
    const p = this.free[--this.freeCount]!;
    p.start = DEFAULT_HEADROOM;
    p.length = 0;
    p.gsoSize = 0;
    p.gsoType = 0;
    p.csumPartial = false;
    return p;
  }

  /**
   * A packet with a DEFAULT_BUFFER_SIZE buffer, for copies of small packets
   * kept for a while (SYNPROXY holds) when this pool's buffers are 64 KiB:
   * thousands of held ACKs must not pin a super-packet buffer each. `give`
   * takes it back into its own free list; `take` never hands it out.
   */
  takeSmall(): Packet {
    if (this.bufferSize <= DEFAULT_BUFFER_SIZE) return this.take();
    return fresh(this.smallFree.pop() ?? new Packet(DEFAULT_BUFFER_SIZE));
  }

  /**
   * A packet whose buffer holds any IP datagram (65535 bytes behind the
   * headroom), for a datagram put back together from fragments when this
   * pool's buffers are smaller. `give` takes it back into its own free list.
   */
  takeLarge(): Packet {
    if (this.bufferSize >= GSO_BUFFER_SIZE) return this.take();
    return fresh(this.largeFree.pop() ?? new Packet(GSO_BUFFER_SIZE));
  }

  give(p: Packet): void {
    if (p.buf.length !== this.bufferSize) {
      if (p.buf.length === GSO_BUFFER_SIZE) this.largeFree.push(p);
      else this.smallFree.push(p);
      return;
    }
    if (this.freeCount < this.free.length) this.free[this.freeCount] = p;
    else this.free.push(p);
    this.freeCount++;
  }
}

/**
 * Moves IPv6 packet p's fixed header up against its transport header at
 * `l4`, leaving out the extension headers between, and names `protocol` as
 * its next header: the packet is IPv6 + TCP or UDP from then on.
 */
export function dropIpv6ExtensionHeaders(p: Packet, l4: number, protocol: number): void {
  const b = p.buf;
  const s = l4 - IPV6_HEADER;
  b.copyWithin(s, p.start, p.start + IPV6_HEADER);
  p.length -= s - p.start;
  p.start = s;
  b[s + 6] = protocol;
  const payload = p.length - IPV6_HEADER;
  b[s + 4] = payload >>> 8;
  b[s + 5] = payload & 0xff;
}
