import { set16 } from './bytes.js';

/**
 * Writes the first 8 bytes of a fixed IPv6 header at b[o], flow label 0;
 * the addresses after them are the caller's. IPv6's `finishIpv4Header`:
 * positional, so a packet the engine writes itself costs no object.
 */
export function finishIpv6Header(
  b: Uint8Array,
  o: number,
  payloadLength: number,
  nextHeader: number,
  hopLimit: number,
  trafficClass = 0,
): void {
  b[o] = 0x60 | (trafficClass >>> 4);
  b[o + 1] = (trafficClass & 0x0f) << 4;
  b[o + 2] = 0;
  b[o + 3] = 0;
  set16(b, o + 4, payloadLength);
  b[o + 6] = nextHeader;
  b[o + 7] = hopLimit;
}
