/**
 * Removal records waiting for the next drain, in one preallocated buffer
 * of fixed-size slots (one ring per record version): written on the data
 * path when an entry peers know leaves the table, copied out in order by
 * the drain. Full, the oldest record goes (counted by the caller): its
 * peers let that entry expire instead.
 */
export class RemovalRing {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  private head = 0;
  private length = 0;

  constructor(
    readonly recordSize: number,
    readonly slots: number,
  ) {
    this.bytes = new Uint8Array(recordSize * slots);
    this.view = new DataView(this.bytes.buffer);
  }

  get count(): number {
    return this.length;
  }

  /**
   * The byte offset of a new slot at the tail for the caller to write;
   * `overwrote` tells whether the oldest record had to go for it.
   */
  reserve(): number {
    this.overwrote = this.length === this.slots;
    if (this.overwrote) {
      this.head = (this.head + 1) % this.slots;
      this.length--;
    }
    const slot = (this.head + this.length) % this.slots;
    this.length++;
    return slot * this.recordSize;
  }

  /** Whether the last `reserve` dropped the oldest record. */
  overwrote = false;

  /** Moves up to `max` records, oldest first, to out[off…]; returns how many. */
  take(out: Uint8Array, off: number, max: number): number {
    const size = this.recordSize;
    let n = 0;
    while (n < max && this.length > 0) {
      const at = this.head * size;
      const to = off + n * size;
      for (let i = 0; i < size; i++) out[to + i] = this.bytes[at + i]!;
      this.head = (this.head + 1) % this.slots;
      this.length--;
      n++;
    }
    return n;
  }
}
