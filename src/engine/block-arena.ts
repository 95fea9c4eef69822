import { moveBytes } from '../wire/bytes.js';

/** Bytes per arena block (a fragment's bytes take whole blocks). */
export const ARENA_BLOCK = 512;

/**
 * Fixed-size blocks in one preallocated buffer, chained per stored piece of
 * data, with a free stack: what the reassembler keeps fragments in, so
 * holding them allocates nothing. The owner keeps the count within
 * `blocks` (it charges every block against its memory bound).
 */
export class BlockArena {
  private readonly bytes: Uint8Array;
  private readonly next: Int32Array;
  private readonly free: Int32Array;
  private freeTop: number;

  constructor(readonly blocks: number) {
    this.bytes = new Uint8Array(blocks * ARENA_BLOCK);
    this.next = new Int32Array(blocks);
    this.free = new Int32Array(blocks);
    for (let i = 0; i < blocks; i++) this.free[i] = blocks - 1 - i;
    this.freeTop = blocks;
  }

  /** Bytes of its arrays: fixed, however full. */
  get footprintBytes(): number {
    return this.bytes.byteLength + this.next.byteLength + this.free.byteLength;
  }

  /** Blocks that `len` bytes take. */
  static blocksFor(len: number): number {
    return ((len + ARENA_BLOCK - 1) / ARENA_BLOCK) | 0;
  }

  /** Takes a chain of `count` blocks; returns its first. */
  take(count: number): number {
    let first = -1;
    let prev = -1;
    for (let k = 0; k < count; k++) {
      const blk = this.free[--this.freeTop]!;
      this.next[blk] = -1;
      if (prev < 0) first = blk;
      else this.next[prev] = blk;
      prev = blk;
    }
    return first;
  }

  /** Gives the chain starting at `blk` back. */
  release(blk: number): void {
    while (blk >= 0) {
      const next = this.next[blk]!;
      this.free[this.freeTop++] = blk;
      blk = next;
    }
  }

  /** Copies b[from, from+len) into the chain at `blk`, from byte `skip` of the chain. */
  write(blk: number, skip: number, b: Uint8Array, from: number, len: number): void {
    this.copy(blk, skip, len, b, from, true);
  }

  /** Copies `len` bytes of the chain at `blk`, from byte `skip` of the chain, to out[to]. */
  read(blk: number, skip: number, len: number, out: Uint8Array, to: number): void {
    this.copy(blk, skip, len, out, to, false);
  }

  /** The one walk along a chain, either way: `inward` copies ext into the chain. */
  private copy(
    blk: number,
    skip: number,
    len: number,
    ext: Uint8Array,
    extAt: number,
    inward: boolean,
  ): void {
    while (skip >= ARENA_BLOCK) {
      blk = this.next[blk]!;
      skip -= ARENA_BLOCK;
    }
    const a = this.bytes;
    while (len > 0) {
      const at = blk * ARENA_BLOCK + skip;
      const n = len < ARENA_BLOCK - skip ? len : ARENA_BLOCK - skip;
      if (inward) moveBytes(a, at, ext, extAt, n);
      else moveBytes(ext, extAt, a, at, n);
      extAt += n;
      len -= n;
      skip = 0;
      blk = this.next[blk]!;
    }
  }
}
