/**
 * Packet buffers with head- and tailroom. The data path takes packets from a
 * pool and returns them; inserting a TOA moves bytes inside the same buffer.
 */

export const DEFAULT_HEADROOM = 128;
export const DEFAULT_BUFFER_SIZE = 2048;

export class Packet {
  readonly buf: Uint8Array;
  /** Offset of the first byte of the IP header. */
  start = DEFAULT_HEADROOM;
  /** Length of the IP packet in bytes. */
  length = 0;
  /** Index into the pool's free list bookkeeping; -1 while handed out. */
  poolSlot = -1;

  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }

  /** Copies bytes in at the default headroom. Returns false when they do not fit. */
  load(src: Uint8Array, headroom = DEFAULT_HEADROOM): boolean {
    if (headroom + src.length > this.buf.length) return false;
    this.buf.set(src, headroom);
    this.start = headroom;
    this.length = src.length;
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

export class PacketPool {
  private readonly free: Packet[] = [];
  private freeCount = 0;
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
    return p;
  }

  give(p: Packet): void {
    if (this.freeCount < this.free.length) this.free[this.freeCount] = p;
    else this.free.push(p);
    this.freeCount++;
  }
}
