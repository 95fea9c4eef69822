import { copyBytes, get16, set16 } from '../wire/bytes.js';
import { alignedRangeSum, checksumAdjust, checksumReplace16, sumWords } from '../wire/checksum.js';
import { Ipv4View, Ipv4Field } from '../wire/ipv4.js';
import {
  TCP_FIN,
  TCP_MAX_OPTIONS,
  TCP_MIN_HEADER,
  TCP_PSH,
  TcpView,
  TcpField,
} from '../wire/tcp.js';
import {
  TCPOPT_EOL,
  TCPOPT_NOP,
  TCPOPT_TIMESTAMP,
  TcpOptionCursor,
  isToaOption,
} from '../wire/tcp-options.js';
import { TOA_V4_LEN, writeToaV4Words } from '../wire/toa.js';
import type { Packet, PacketPool } from './packet.js';

/**
 * How much of the client's options survive next to our TOA:
 * - Keep: every byte as it is (the TOA goes in front);
 * - DropPadding: NOPs and TOA-shaped options removed (DPVS's first prune);
 * - TimestampOnly: only the timestamp option kept (DPVS's second prune; not for SYNs).
 */
export const enum OptionPlan {
  Impossible = -1,
  Keep = 0,
  DropPadding = 1,
  TimestampOnly = 2,
}

function pad4(n: number): number {
  return (n + 3) & ~3;
}

/** Writes an IPv4 TOA at d[o] carrying the source address and port of the packet at b[ipOff]. */
function writeToaFromSource(
  d: Uint8Array,
  o: number,
  b: Uint8Array,
  ipOff: number,
  tcpOff: number,
): void {
  const src = ipOff + Ipv4Field.Src;
  writeToaV4Words(d, o, get16(b, tcpOff), get16(b, src), get16(b, src + 2));
}

/** Overwrites `len` bytes at `at` with NOPs and patches the TCP checksum of `tcp`. */
export function nopOut(tcp: TcpView, at: number, len: number): void {
  const b = tcp.buf;
  const before = alignedRangeSum(b, tcp.off, at, at + len);
  b.fill(TCPOPT_NOP, at, at + len);
  const after = alignedRangeSum(b, tcp.off, at, at + len);
  tcp.checksum = checksumAdjust(tcp.checksum, before, after);
}

/**
 * Places the TOA in client→RS segments: in place when there is room, after
 * pruning options, or by splitting a segment too large for the RS path into
 * several that each carry it. The TOA always goes first in the option list,
 * so an RS module that takes the first match reads ours.
 */
export class ToaWriter {
  private readonly cursor = new TcpOptionCursor();
  private readonly scratch = new Uint8Array(TCP_MAX_OPTIONS);
  private readonly ip = new Ipv4View();
  private readonly tcp = new TcpView();
  private readonly qip = new Ipv4View();
  private readonly qtcp = new TcpView();
  /** Segments produced by the last `split`; valid until the next call. */
  readonly pieces: Packet[] = [];
  piecesCount = 0;

  constructor(private readonly pool: PacketPool) {}

  /** NOPs out every TOA-shaped option (the RS must never read a client's own); returns how many. */
  stripToa(tcp: TcpView, optStart: number, optEnd: number): number {
    const c = this.cursor.reset(tcp.buf, optStart, optEnd);
    let n = 0;
    while (c.next()) {
      if (isToaOption(c.kind, c.size)) {
        nopOut(tcp, c.at, c.size);
        n++;
      }
    }
    return n;
  }

  /** Length of the option bytes kept under `plan` (before adding the TOA). */
  keptLength(b: Uint8Array, optStart: number, optEnd: number, plan: OptionPlan): number {
    if (plan === OptionPlan.Keep) return optEnd - optStart;
    const c = this.cursor.reset(b, optStart, optEnd);
    let len = 0;
    while (c.next()) {
      if (c.kind === TCPOPT_NOP || isToaOption(c.kind, c.size)) continue;
      if (plan === OptionPlan.TimestampOnly && c.kind !== TCPOPT_TIMESTAMP) continue;
      len += c.size;
    }
    return len;
  }

  /** The least destructive plan that leaves room for a TOA of `toaLen` bytes. */
  plan(b: Uint8Array, optStart: number, optEnd: number, syn: boolean, toaLen: number): OptionPlan {
    if (optEnd - optStart + toaLen <= TCP_MAX_OPTIONS) return OptionPlan.Keep;
    if (
      pad4(this.keptLength(b, optStart, optEnd, OptionPlan.DropPadding) + toaLen) <= TCP_MAX_OPTIONS
    ) {
      return OptionPlan.DropPadding;
    }
    // A SYN's options (MSS, window scale, SACK-permitted) define the connection: never drop them.
    if (syn) return OptionPlan.Impossible;
    if (
      pad4(this.keptLength(b, optStart, optEnd, OptionPlan.TimestampOnly) + toaLen) <=
      TCP_MAX_OPTIONS
    ) {
      return OptionPlan.TimestampOnly;
    }
    return OptionPlan.Impossible;
  }

  /** Option-area length (TOA included, padded) that `plan` produces. */
  newOptionsLength(
    b: Uint8Array,
    optStart: number,
    optEnd: number,
    plan: OptionPlan,
    toaLen: number,
  ): number {
    return pad4(this.keptLength(b, optStart, optEnd, plan) + toaLen);
  }

  /**
   * Writes [TOA][kept options][EOL padding] into the scratch buffer; returns
   * its length. The TOA takes the source of the (not yet translated) packet.
   */
  private composeV4(
    b: Uint8Array,
    ipOff: number,
    tcpOff: number,
    optEnd: number,
    plan: OptionPlan,
  ): number {
    const s = this.scratch;
    const optStart = tcpOff + TCP_MIN_HEADER;
    writeToaFromSource(s, 0, b, ipOff, tcpOff);
    let p = TOA_V4_LEN;
    if (plan === OptionPlan.Keep) {
      copyBytes(s, p, b, optStart, optEnd - optStart);
      p += optEnd - optStart;
    } else {
      const c = this.cursor.reset(b, optStart, optEnd);
      while (c.next()) {
        if (c.kind === TCPOPT_NOP || isToaOption(c.kind, c.size)) continue;
        if (plan === OptionPlan.TimestampOnly && c.kind !== TCPOPT_TIMESTAMP) continue;
        copyBytes(s, p, b, c.at, c.size);
        p += c.size;
      }
    }
    const padded = pad4(p);
    s.fill(TCPOPT_EOL, p, padded);
    return padded;
  }

  /**
   * Fast path: room in the header and in the MTU. Opens 8 bytes in front of
   * the options — by moving the IP and fixed TCP headers down into the
   * headroom, so a 64 KiB super-packet costs the same as a small one — and
   * updates both checksums incrementally. Without headroom the options and
   * payload move up instead (the caller checked tailroom).
   */
  insertV4(p: Packet, ipHl: number): void {
    const b = p.buf;
    let optStart: number;
    if (p.start >= TOA_V4_LEN) {
      optStart = p.start + ipHl + TCP_MIN_HEADER - TOA_V4_LEN;
      b.copyWithin(p.start - TOA_V4_LEN, p.start, optStart + TOA_V4_LEN);
      p.start -= TOA_V4_LEN;
    } else {
      optStart = p.start + ipHl + TCP_MIN_HEADER;
      b.copyWithin(optStart + TOA_V4_LEN, optStart, p.start + p.length);
    }
    const ip = this.ip.wrap(b, p.start);
    const tcpOff = p.start + ipHl;
    const tcp = this.tcp.wrap(b, tcpOff);
    writeToaFromSource(b, optStart, b, p.start, tcpOff);
    const oldWord = get16(b, tcpOff + TcpField.DataOffset);
    tcp.headerLength = tcp.headerLength + TOA_V4_LEN;
    const newWord = get16(b, tcpOff + TcpField.DataOffset);
    // Everything after the TOA moved by an even number of bytes, so its word sum is unchanged;
    // the segment gains the TOA's words and the pseudo-header's length grows by 8.
    let check = checksumReplace16(tcp.checksum, oldWord, newWord);
    check = checksumAdjust(check, 0, sumWords(b, optStart, TOA_V4_LEN, 0) + TOA_V4_LEN);
    tcp.checksum = check;
    const oldLen = ip.totalLength;
    ip.totalLength = oldLen + TOA_V4_LEN;
    ip.checksum = checksumReplace16(ip.checksum, oldLen, oldLen + TOA_V4_LEN);
    p.length += TOA_V4_LEN;
  }

  private checksumValid(p: Packet, ipHl: number): boolean {
    const tcp = this.tcp.wrap(p.buf, p.start + ipHl);
    const sum = tcp.computeChecksumV4(p.start, p.length - ipHl);
    if (p.csumPartial) {
      // Nothing to verify yet (the kernel had not summed it): this is its checksum.
      tcp.checksum = sum;
      p.csumPartial = false;
      return true;
    }
    return sum === tcp.checksum;
  }

  /**
   * Rebuilds the option area in place under `plan` with the TOA in front.
   * Returns false (packet untouched) when the segment's checksum was already
   * wrong: recomputing it would launder a corrupted packet.
   */
  rebuildV4(p: Packet, ipHl: number, plan: OptionPlan): boolean {
    if (!this.checksumValid(p, ipHl)) return false;
    const b = p.buf;
    const ip = this.ip.wrap(b, p.start);
    const tcpOff = p.start + ipHl;
    const tcp = this.tcp.wrap(b, tcpOff);
    const oldHl = tcp.headerLength;
    const optStart = tcpOff + TCP_MIN_HEADER;
    const optLen = this.composeV4(b, p.start, tcpOff, tcpOff + oldHl, plan);
    const newHl = TCP_MIN_HEADER + optLen;
    const payloadLen = p.length - ipHl - oldHl;
    b.copyWithin(tcpOff + newHl, tcpOff + oldHl, tcpOff + oldHl + payloadLen);
    copyBytes(b, optStart, this.scratch, 0, optLen);
    tcp.headerLength = newHl;
    p.length = ipHl + newHl + payloadLen;
    ip.totalLength = p.length;
    ip.updateChecksum();
    tcp.checksum = tcp.computeChecksumV4(p.start, newHl + payloadLen);
    return true;
  }

  /**
   * Splits a segment into pieces that each fit `mtu` and each carry the TOA,
   * so whichever piece the RS reads first concludes the handshake with the
   * real address (including under TCP_DEFER_ACCEPT, since every piece carries
   * data). FIN and PSH stay on the last piece. Pieces land in `pieces`; the
   * original packet is left for the caller to release. Returns the number of
   * pieces, or -1 when the original checksum was wrong.
   */
  splitV4(p: Packet, ipHl: number, plan: OptionPlan, mtu: number): number {
    this.piecesCount = 0;
    if (!this.checksumValid(p, ipHl)) return -1;
    const b = p.buf;
    const ip = this.ip.wrap(b, p.start);
    const tcpOff = p.start + ipHl;
    const tcp = this.tcp.wrap(b, tcpOff);
    const oldHl = tcp.headerLength;
    const optLen = this.composeV4(b, p.start, tcpOff, tcpOff + oldHl, plan);
    const newHl = TCP_MIN_HEADER + optLen;
    const payloadStart = tcpOff + oldHl;
    const payloadLen = p.length - ipHl - oldHl;
    const room = mtu - ipHl - newHl;
    if (room < 1) return 0;
    const n = payloadLen === 0 ? 1 : Math.ceil(payloadLen / room);
    const flags = tcp.flags;
    const seq = tcp.seq;
    const id = ip.id;
    const qip = this.qip;
    const qtcp = this.qtcp;
    for (let k = 0; k < n; k++) {
      const from = k * room;
      const len = k === n - 1 ? payloadLen - from : room;
      const q = this.pool.take();
      const qb = q.buf;
      const qs = q.start;
      copyBytes(qb, qs, b, p.start, ipHl);
      const qt = qs + ipHl;
      copyBytes(qb, qt, b, tcpOff, TCP_MIN_HEADER);
      copyBytes(qb, qt + TCP_MIN_HEADER, this.scratch, 0, optLen);
      // The payload is up to a segment: a native copy is worth its one view object.
      qb.set(b.subarray(payloadStart + from, payloadStart + from + len), qt + newHl);
      q.length = ipHl + newHl + len;
      qip.wrap(qb, qs);
      qip.totalLength = q.length;
      qip.id = (id + k) & 0xffff;
      qip.updateChecksum();
      qtcp.wrap(qb, qt);
      qtcp.headerLength = newHl;
      qtcp.seq = (seq + from) >>> 0;
      qtcp.flags = k === n - 1 ? flags : flags & ~(TCP_FIN | TCP_PSH);
      qtcp.checksum = qtcp.computeChecksumV4(qs, newHl + len);
      this.pieces[k] = q;
    }
    this.piecesCount = n;
    set16(b, tcpOff + TcpField.Checksum, tcp.checksum);
    return n;
  }
}
