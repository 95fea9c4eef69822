import type { PacketDevice } from './loop.js';

/** An in-memory packet device: tests inject packets and collect what the loop writes. */
export class MemoryDevice implements PacketDevice {
  readonly inbox: Uint8Array[] = [];
  readonly written: Uint8Array[] = [];
  /** Accept at most this many packets per writeBatch call (to exercise queue-full drops). */
  writeLimit = Infinity;
  private readable: (() => void) | undefined;

  inject(...packets: Uint8Array[]): void {
    this.inbox.push(...packets);
    this.readable?.();
  }

  readBatch(bufs: Uint8Array[], offset: number, lengths: Int32Array): number {
    let n = 0;
    while (n < bufs.length && this.inbox.length > 0) {
      const pkt = this.inbox.shift()!;
      bufs[n]!.set(pkt, offset);
      lengths[n] = pkt.length;
      n++;
    }
    return n;
  }

  writeBatch(bufs: Uint8Array[], offsets: Int32Array, lengths: Int32Array, count: number): number {
    const n = Math.min(count, this.writeLimit);
    for (let i = 0; i < n; i++)
      this.written.push(bufs[i]!.slice(offsets[i]!, offsets[i]! + lengths[i]!));
    return n;
  }

  onReadable(cb: () => void): void {
    this.readable = cb;
  }

  close(): void {
    this.readable = undefined;
  }
}
