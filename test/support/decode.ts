import { Ipv4View } from '../../src/wire/ipv4.js';
import { TcpView } from '../../src/wire/tcp.js';
import { decodeOptions, type TcpOption } from '../../src/wire/tcp-options.js';
import { ToaResult, findToa } from '../../src/wire/toa.js';

/** An IPv4/TCP packet the engine emitted, read back for assertions. */
export interface Decoded {
  src: number;
  dst: number;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  ttl: number;
  options: TcpOption[];
  payload: Uint8Array;
  /** The TOA the RS module would read (first match, kernel parsing rules). */
  toa: ToaResult;
  bytes: Uint8Array;
}

export function decodeSegment(b: Uint8Array): Decoded {
  const ip = new Ipv4View().wrap(b, 0);
  const t = new TcpView().wrap(b, ip.headerLength);
  const optStart = ip.headerLength + 20;
  const optEnd = ip.headerLength + t.headerLength;
  const toa = new ToaResult();
  findToa(b, optStart, optEnd, toa);
  return {
    src: ip.src,
    dst: ip.dst,
    sport: t.srcPort,
    dport: t.dstPort,
    seq: t.seq,
    ack: t.ack,
    flags: t.flags,
    window: t.window,
    ttl: ip.ttl,
    options: decodeOptions(b, optStart, optEnd),
    payload: b.slice(optEnd, ip.totalLength),
    toa,
    bytes: b,
  };
}
