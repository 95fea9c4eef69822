import type { PacketDevice } from './run-loop.js';

/**
 * An in-memory packet device: tests inject packets and collect what the
 * loop writes. With `offload`, it behaves as a TUN device with offloads:
 * packets carry gso_type/gso_size both ways.
 */
export class MemoryDevice implements PacketDevice {
  readonly inbox: Uint8Array[] = [];
  /** gso_type, gso_size of each inbox packet (offload only; missing = an ordinary packet). */
  readonly inboxGso: { type: number; size: number }[] = [];
  readonly written: Uint8Array[] = [];
  /** gso_type, gso_size of each written packet (offload only). */
  readonly writtenGso: { type: number; size: number }[] = [];
  /** Accept at most this many packets per writeBatch call (to exercise queue-full drops). */
  writeLimit = Infinity;
  private readable: (() => void) | undefined;

  constructor(readonly offload = false) {}

  inject(...packets: Uint8Array[]): void {
    this.inbox.push(...packets);
    this.readable?.();
  }

  readBatch(bufs: Uint8Array[], offset: number, lengths: Int32Array, gso?: Int32Array): number {
    let n = 0;
    while (n < bufs.length && this.inbox.length > 0) {
      const pkt = this.inbox.shift()!;
      const meta = this.inboxGso.shift();
      bufs[n]!.set(pkt, offset);
      lengths[n] = pkt.length;
      if (gso) {
        gso[2 * n] = meta?.type ?? 0;
        gso[2 * n + 1] = meta?.size ?? 0;
      }
      n++;
    }
    return n;
  }

  writeBatch(
    bufs: Uint8Array[],
    offsets: Int32Array,
    lengths: Int32Array,
    count: number,
    gso?: Int32Array,
  ): number {
    const n = Math.min(count, this.writeLimit);
    for (let i = 0; i < n; i++) {
      this.written.push(bufs[i]!.slice(offsets[i], offsets[i]! + lengths[i]!));
      if (gso) this.writtenGso.push({ type: gso[2 * i]!, size: gso[2 * i + 1]! });
    }
    return n;
  }

  /** What a TUN would be told: persistent, and whether this queue is attached. */
  persistent = false;
  attached = true;

  onReadable(cb: () => void): void {
    this.readable = cb;
  }

  stopReadable(): void {
    this.readable = undefined;
  }

  setPersist(on: boolean): void {
    this.persistent = on;
  }

  /** As the kernel does: what waited in the queue is purged. */
  detachQueue(): void {
    this.attached = false;
    this.inbox.length = 0;
    this.inboxGso.length = 0;
  }

  attachQueue(): void {
    this.attached = true;
  }

  close(): void {
    this.readable = undefined;
  }
}
