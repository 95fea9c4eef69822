import { set16 } from '../wire/bytes.js';
import { finishChecksum, sumWords } from '../wire/checksum.js';
import { IPPROTO_ICMP, IPPROTO_TCP, writeIpv4Header } from '../wire/ipv4.js';
import { TcpView, writeTcpHeader, TCP_ACK, TCP_RST } from '../wire/tcp.js';
import type { Packet } from './packet.js';

const tcp = new TcpView();

/** Writes an IPv4 RST(+ACK) into p. */
export function craftRst(
  p: Packet,
  src: number,
  sport: number,
  dst: number,
  dport: number,
  seq: number,
  ack: number,
  withAck: boolean,
): void {
  const b = p.buf;
  const ip = p.start;
  writeIpv4Header(b, ip, { src, dst, protocol: IPPROTO_TCP, payloadLength: 20, ttl: 64 });
  const t = ip + 20;
  writeTcpHeader(b, t, {
    srcPort: sport,
    dstPort: dport,
    seq,
    ack: withAck ? ack : 0,
    flags: withAck ? TCP_RST | TCP_ACK : TCP_RST,
    window: 0,
  });
  tcp.wrap(b, t);
  tcp.checksum = tcp.computeChecksumV4(ip, 20);
  p.length = 40;
}

/** ICMP destination unreachable codes (RFC 792) the engine sends. */
export const ICMP_HOST_UNREACHABLE = 1;
export const ICMP_PORT_UNREACHABLE = 3;
export const ICMP_FRAG_NEEDED = 4;

/**
 * ICMP destination unreachable (type 3) with `code`, quoting the original IP
 * header and the first 8 bytes of its payload (RFC 792), so the sender's
 * stack can match its socket. `mtu` is the next-hop MTU of code 4
 * (fragmentation needed, RFC 1191); 0 for the other codes.
 */
export function craftDestUnreachable(
  p: Packet,
  src: number,
  dst: number,
  code: number,
  mtu: number,
  orig: Uint8Array,
  origOff: number,
  origHeaderLen: number,
): void {
  const b = p.buf;
  const ip = p.start;
  const quote = origHeaderLen + 8;
  const icmpLen = 8 + quote;
  writeIpv4Header(b, ip, { src, dst, protocol: IPPROTO_ICMP, payloadLength: icmpLen, ttl: 64 });
  const o = ip + 20;
  b[o] = 3;
  b[o + 1] = code;
  set16(b, o + 2, 0);
  set16(b, o + 4, 0);
  set16(b, o + 6, mtu);
  b.set(orig.subarray(origOff, origOff + quote), o + 8);
  set16(b, o + 2, finishChecksum(sumWords(b, o, icmpLen, 0)));
  p.length = 20 + icmpLen;
}

/** ICMP destination unreachable / fragmentation needed (RFC 1191). */
export function craftFragNeeded(
  p: Packet,
  src: number,
  dst: number,
  mtu: number,
  orig: Uint8Array,
  origOff: number,
  origHeaderLen: number,
): void {
  craftDestUnreachable(p, src, dst, ICMP_FRAG_NEEDED, mtu, orig, origOff, origHeaderLen);
}
