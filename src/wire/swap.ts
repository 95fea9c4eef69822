/**
 * Swaps the `len` bytes at b[x] with those at b[y] (the two ranges apart):
 * a packet's source and destination addresses, either family, when it is
 * turned around in place.
 */
export function swapBytes(b: Uint8Array, x: number, y: number, len: number): void {
  for (let k = 0; k < len; k++) {
    const v = b[x + k]!;
    b[x + k] = b[y + k]!;
    b[y + k] = v;
  }
}
