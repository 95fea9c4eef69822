import { TCP_MAX_OPTIONS, TCP_MIN_HEADER } from '../wire/tcp.js';
import { TOA_V4_LEN } from '../wire/toa.js';
import type { ToaSetting } from './options.js';
import { MAX_IP_PACKET } from './packet.js';
import { OptionPlan } from './toa-insert.js';

/**
 * Where the TOA goes in a client→RS packet, decided here and nowhere else.
 * `decideToa` is pure: numbers in, one number out (a mode and the counters
 * to bump), so the data path allocates nothing and tests can drive every
 * branch without a packet. See docs/ARCHITECTURE.md for the policies.
 */

/** How the TOA goes in. */
export const enum ToaMode {
  /** No TOA. */
  None = 0,
  /** Room in the header and the MTU: shift the payload by the TOA length. */
  Insert = 1,
  /** Options pruned to make room; rebuilt in place. */
  Rebuild = 2,
  /** Too large for the RS path with a TOA: split into pieces that each carry one. */
  Split = 3,
}

/** The bits of a decision: the mode, then what to count. */
export const enum ToaDecision {
  ModeMask = 3,
  /** Count toa_failed_mtu: the packet with a TOA would not fit the RS path. */
  FailedMtu = 4,
  /** Count toa_failed_no_room: no room for a TOA in the TCP header. */
  FailedNoRoom = 8,
  /** A GSO super-packet keeps its TOA by smaller segments: gsoSize becomes `resizedGsoSize`; count toa_gso_resized. */
  GsoResized = 16,
}

export function toaModeOf(decision: number): ToaMode {
  return decision & ToaDecision.ModeMask;
}

/**
 * Whether the packet should carry the TOA under `policy`: LVS puts it on the
 * SYN and on the ACK that concludes the handshake; DPVS and fullnat only on
 * the concluding ACK (the first packet acking the RS's SYN+ACK, the one the
 * RS's accept() returns with), and lvs not on a concluding FIN.
 */
export function wantsToa(
  policy: ToaSetting,
  syn: boolean,
  ackFlag: boolean,
  fin: boolean,
  concluding: boolean,
): boolean {
  if (policy === 'off') return false;
  return policy === 'lvs' ? (syn && !ackFlag) || (concluding && !fin) : concluding;
}

/**
 * The TOA decision for a packet that wants one.
 *
 * @param policy   the TOA policy in force (`off` decides None)
 * @param mtu      MTU of the path to the connection's RS
 * @param segment  length of one segment on that path (of a GSO super-packet: header + gsoSize)
 * @param hl       TCP header length now
 * @param plan     what the client's options become beside the TOA (lvs: always Keep)
 * @param newHl    TCP header length under `plan`, TOA included (0 when Impossible)
 * @param ipHl     IP header length
 * @param gsoSize  GSO segment size, 0 for an ordinary packet
 * @param tailroom bytes free after the packet in its buffer
 * @param length   the packet's length (all segments)
 * @param toaLen   the TOA's length: 8 (IPv4 client) or 20 (IPv6 client)
 */
export function decideToa(
  policy: ToaSetting,
  mtu: number,
  segment: number,
  hl: number,
  plan: OptionPlan,
  newHl: number,
  ipHl: number,
  gsoSize: number,
  tailroom: number,
  length: number,
  toaLen: number = TOA_V4_LEN,
): number {
  if (policy === 'off') return ToaMode.None;
  let mode: ToaMode;
  let growth = toaLen;
  let gsoResized = false;
  if (policy === 'lvs') {
    // LVS neither prunes nor splits: the TOA goes in as the options stand, or not at all.
    if (segment + toaLen > mtu) return ToaMode.None | ToaDecision.FailedMtu;
    if (hl - TCP_MIN_HEADER + toaLen > TCP_MAX_OPTIONS)
      return ToaMode.None | ToaDecision.FailedNoRoom;
    mode = ToaMode.Insert;
  } else {
    if (plan === OptionPlan.Impossible) return ToaMode.None | ToaDecision.FailedNoRoom;
    growth = newHl - hl;
    const inPlace = plan === OptionPlan.Keep ? ToaMode.Insert : ToaMode.Rebuild;
    if (segment + growth <= mtu) mode = inPlace;
    else if (policy === 'fullnat') {
      mode = ToaMode.Split;
      // A super-packet is split by the kernel: smaller segments, each with the TOA.
      if (gsoSize > 0 && mtu - ipHl - newHl > 0) {
        gsoResized = true;
        mode = inPlace;
      }
    } else return ToaMode.None | ToaDecision.FailedMtu;
  }
  // In-place growth needs tailroom and must stay a valid IPv4 length; a fresh buffer from the split path has both.
  if (mode !== ToaMode.Split && (tailroom < TCP_MAX_OPTIONS || length + growth > MAX_IP_PACKET)) {
    return policy === 'fullnat' ? ToaMode.Split : ToaMode.None | ToaDecision.FailedMtu;
  }
  return gsoResized ? mode | ToaDecision.GsoResized : mode;
}

/** The GSO segment size that leaves room for the TOA on the RS path (with ToaDecision.GsoResized). */
export function resizedGsoSize(mtu: number, ipHl: number, newHl: number): number {
  return mtu - ipHl - newHl;
}
