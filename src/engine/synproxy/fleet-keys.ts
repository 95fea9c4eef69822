import { createHmac } from 'node:crypto';

/** The label the fleet's cookie keys are derived under. */
const LABEL = 'fullnat synproxy';

/**
 * The cookie key (k0, k1) of one wall-clock minute for a fleet sharing
 * `fleetKey`: the first 8 bytes of HMAC-SHA256(fleetKey, "fullnat synproxy"
 * ‖ minute as a big-endian u32), written to out[at], out[at + 1]. Every
 * node computes the same key for the same minute, so a cookie one node
 * issued passes on any other (ECMP may move a client between its SYN and its
 * ACK). Called once a minute, never per packet.
 */
export function fleetCookieKey(
  fleetKey: Uint8Array,
  minute: number,
  out: Int32Array,
  at: number,
): void {
  const m = Buffer.alloc(4);
  m.writeUInt32BE(minute >>> 0, 0);
  const d = createHmac('sha256', fleetKey).update(LABEL).update(m).digest();
  out[at] = d.readInt32BE(0);
  out[at + 1] = d.readInt32BE(4);
}
