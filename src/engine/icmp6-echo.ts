import { ICMPV6_ECHO_REPLY, IcmpField, finishIcmpv6Checksum } from '../wire/icmp.js';
import { swapBytes } from '../wire/swap.js';
import { EchoResponder } from './icmp-echo.js';
import type { Packet } from './packet.js';

/**
 * `ping -6 VIP`: an ICMPv6 echo request to an IPv6 VIP is turned around in
 * place into the reply its host would send (RFC 4443 4.2: addresses
 * swapped, type 129, identifier, sequence number and data as they came), as
 * icmp-echo.ts does for IPv4, under the same `icmp_echo` switch and rate.
 */
export class Icmp6Echo extends EchoResponder {
  /** Answers the echo request p (fixed IPv6 header at p.start, the message at `icmp`, `len` bytes, checked). */
  answer(p: Packet, icmp: number, len: number): void {
    const b = p.buf;
    const s = p.start + 8;
    if (!this.admit(p, unicastSource(b, s))) return;
    swapBytes(b, s, p.start + 24, 16);
    b[p.start + 7] = 64;
    b[icmp + IcmpField.Type] = ICMPV6_ECHO_REPLY;
    finishIcmpv6Checksum(b, p.start, icmp, len);
    this.reply(p);
  }
}

/** False for a source no reply may go to: multicast (ff00::/8), unspecified (::) or loopback (::1). */
function unicastSource(b: Uint8Array, s: number): boolean {
  if (b[s] === 0xff) return false;
  for (let k = 0; k < 15; k++) if (b[s + k] !== 0) return true;
  return b[s + 15] !== 0 && b[s + 15] !== 1;
}
