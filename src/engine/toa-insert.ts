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
import { IPV6_HEADER as IPV6_HEADER_LEN, Ipv6View } from '../wire/ipv6.js';
import { TOA_V6_LEN, writeToaV4Words } from '../wire/toa.js';
import { copy16 } from './addr6.js';
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
  private readonly ip6 = new Ipv6View();
  private readonly qip6 = new Ipv6View();
  /**
   * The TOA the `*Toa` methods place, its length in its second byte: an IPv4
   * client's 8 bytes, taken from the packet before it is translated
   * (`setToaFromSource`), or an IPv6 client's 20, set by `setToaV6` from the
   * connection, since an FNAT64 packet no longer carries the client.
   */
  private readonly toaBytes = new Uint8Array(TOA_V6_LEN);
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
   * Fast path: room in the header and in the MTU. The TOA (8 bytes) takes
   * the source of the not yet translated IPv4 packet; `insertToa` places it.
   */
  insertV4(p: Packet, ipHl: number): void {
    this.setToaFromSource(p.buf, p.start, p.start + ipHl);
    this.insertToa(p, ipHl, false);
  }

  /**
   * Rebuilds the option area in place under `plan` with the client's TOA in
   * front. False (packet untouched) when the segment's checksum was already
   * wrong: recomputing it would launder a corrupted packet.
   */
  rebuildV4(p: Packet, ipHl: number, plan: OptionPlan): boolean {
    this.setToaFromSource(p.buf, p.start, p.start + ipHl);
    return this.rebuildToa(p, ipHl, plan, false);
  }

  /** Splits p so each piece fits `mtu` and carries the client's TOA (see `splitToa`). */
  splitV4(p: Packet, ipHl: number, plan: OptionPlan, mtu: number): number {
    this.setToaFromSource(p.buf, p.start, p.start + ipHl);
    return this.splitToa(p, ipHl, plan, mtu, false);
  }

  // ---- the TOA in `toaBytes`: any length (8 or 20), on an IPv4 or IPv6 packet ----

  /** Sets the 8-byte IPv4 TOA the `*Toa` methods place from the source of the packet at b[ipOff]. */
  private setToaFromSource(b: Uint8Array, ipOff: number, tcpOff: number): void {
    writeToaFromSource(this.toaBytes, 0, b, ipOff, tcpOff);
  }

  /** Sets the TOA the `*Toa` methods place: kind, the client's port and its 16 bytes at addr[addrOff]. */
  setToaV6(kind: number, port: number, addr: Uint8Array, addrOff: number): void {
    const d = this.toaBytes;
    d[0] = kind;
    d[1] = TOA_V6_LEN;
    set16(d, 2, port);
    copy16(d, 4, addr, addrOff);
  }

  /** The length of the TOA in `toaBytes` (its length byte). */
  private get toaLength(): number {
    return this.toaBytes[1]!;
  }

  /**
   * Writes [TOA][kept options][EOL padding] into the scratch buffer; returns
   * its length.
   */
  private composeToa(b: Uint8Array, tcpOff: number, optEnd: number, plan: OptionPlan): number {
    const s = this.scratch;
    const optStart = tcpOff + TCP_MIN_HEADER;
    const len = this.toaLength;
    copyBytes(s, 0, this.toaBytes, 0, len);
    let p = len;
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

  /** Sets the IP length fields of the packet at b[ipOff] to `length` bytes in all (the IPv4 checksum too). */
  private setIpLength(b: Uint8Array, ipOff: number, length: number, v6: boolean): void {
    if (v6) {
      this.ip6.wrap(b, ipOff).payloadLength = length - IPV6_HEADER_LEN;
      return;
    }
    const ip = this.ip.wrap(b, ipOff);
    ip.totalLength = length;
    ip.updateChecksum();
  }

  private segmentChecksum(tcp: TcpView, ipOff: number, segLen: number, v6: boolean): number {
    return v6 ? tcp.computeChecksumV6(ipOff, segLen) : tcp.computeChecksumV4(ipOff, segLen);
  }

  private checksumValidToa(p: Packet, ipHl: number, v6: boolean): boolean {
    const tcp = this.tcp.wrap(p.buf, p.start + ipHl);
    const sum = this.segmentChecksum(tcp, p.start, p.length - ipHl, v6);
    if (p.csumPartial) {
      tcp.checksum = sum;
      p.csumPartial = false;
      return true;
    }
    return sum === tcp.checksum;
  }

  /**
   * Fast path: room in the header and in the MTU. Opens the TOA's bytes in
   * front of the options — by moving the IP and fixed TCP headers down into
   * the headroom, so a 64 KiB super-packet costs the same as a small one —
   * and updates both checksums incrementally. Without headroom the options
   * and payload move up instead (the caller checked tailroom). `v6`: the
   * packet's IP header is IPv6 (fixed, 40 bytes).
   */
  insertToa(p: Packet, ipHl: number, v6: boolean): void {
    const b = p.buf;
    const len = this.toaLength;
    let optStart: number;
    if (p.start >= len) {
      optStart = p.start + ipHl + TCP_MIN_HEADER - len;
      b.copyWithin(p.start - len, p.start, optStart + len);
      p.start -= len;
    } else {
      optStart = p.start + ipHl + TCP_MIN_HEADER;
      b.copyWithin(optStart + len, optStart, p.start + p.length);
    }
    const tcpOff = p.start + ipHl;
    const tcp = this.tcp.wrap(b, tcpOff);
    copyBytes(b, optStart, this.toaBytes, 0, len);
    // Everything after the TOA moved by an even number of bytes, so its word sum is unchanged;
    // the segment gains the TOA's words and the pseudo-header's length grows by its length.
    const oldWord = get16(b, tcpOff + TcpField.DataOffset);
    tcp.headerLength = tcp.headerLength + len;
    const newWord = get16(b, tcpOff + TcpField.DataOffset);
    let check = checksumReplace16(tcp.checksum, oldWord, newWord);
    check = checksumAdjust(check, 0, sumWords(b, optStart, len, 0) + len);
    tcp.checksum = check;
    p.length += len;
    if (v6) this.ip6.wrap(b, p.start).payloadLength = p.length - IPV6_HEADER_LEN;
    else {
      const ip = this.ip.wrap(b, p.start);
      const oldLen = ip.totalLength;
      ip.totalLength = oldLen + len;
      ip.checksum = checksumReplace16(ip.checksum, oldLen, oldLen + len);
    }
  }

  /**
   * Rebuilds the option area in place under `plan` with the TOA in `toaBytes`
   * in front, either IP family. False (packet untouched) when the segment's
   * checksum was already wrong: recomputing it would launder a corrupted packet.
   */
  rebuildToa(p: Packet, ipHl: number, plan: OptionPlan, v6: boolean): boolean {
    if (!this.checksumValidToa(p, ipHl, v6)) return false;
    const b = p.buf;
    const tcpOff = p.start + ipHl;
    const tcp = this.tcp.wrap(b, tcpOff);
    const oldHl = tcp.headerLength;
    const optStart = tcpOff + TCP_MIN_HEADER;
    const optLen = this.composeToa(b, tcpOff, tcpOff + oldHl, plan);
    const newHl = TCP_MIN_HEADER + optLen;
    const payloadLen = p.length - ipHl - oldHl;
    b.copyWithin(tcpOff + newHl, tcpOff + oldHl, tcpOff + oldHl + payloadLen);
    copyBytes(b, optStart, this.scratch, 0, optLen);
    tcp.headerLength = newHl;
    p.length = ipHl + newHl + payloadLen;
    this.setIpLength(b, p.start, p.length, v6);
    tcp.checksum = this.segmentChecksum(tcp, p.start, newHl + payloadLen, v6);
    return true;
  }

  /**
   * Splits a segment into pieces that each fit `mtu` and each carry the TOA
   * in `toaBytes`, so whichever piece the RS reads first concludes the
   * handshake with the real address (including under TCP_DEFER_ACCEPT, since
   * every piece carries data). FIN and PSH stay on the last piece. Pieces
   * land in `pieces`; the original packet is left for the caller to release.
   * Returns the number of pieces, 0 when the MTU cannot hold the headers, or
   * -1 when the original checksum was wrong.
   */
  splitToa(p: Packet, ipHl: number, plan: OptionPlan, mtu: number, v6: boolean): number {
    this.piecesCount = 0;
    if (!this.checksumValidToa(p, ipHl, v6)) return -1;
    const b = p.buf;
    const tcpOff = p.start + ipHl;
    const tcp = this.tcp.wrap(b, tcpOff);
    const oldHl = tcp.headerLength;
    const optLen = this.composeToa(b, tcpOff, tcpOff + oldHl, plan);
    const newHl = TCP_MIN_HEADER + optLen;
    const payloadStart = tcpOff + oldHl;
    const payloadLen = p.length - ipHl - oldHl;
    const room = mtu - ipHl - newHl;
    if (room < 1) return 0;
    const n = payloadLen === 0 ? 1 : Math.ceil(payloadLen / room);
    const flags = tcp.flags;
    const seq = tcp.seq;
    const id = v6 ? 0 : this.ip.wrap(b, p.start).id;
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
      if (v6) this.qip6.wrap(qb, qs).payloadLength = q.length - IPV6_HEADER_LEN;
      else {
        const qip = this.qip.wrap(qb, qs);
        qip.totalLength = q.length;
        qip.id = (id + k) & 0xffff;
        qip.updateChecksum();
      }
      qtcp.wrap(qb, qt);
      qtcp.headerLength = newHl;
      qtcp.seq = (seq + from) >>> 0;
      qtcp.flags = k === n - 1 ? flags : flags & ~(TCP_FIN | TCP_PSH);
      qtcp.checksum = this.segmentChecksum(qtcp, qs, newHl + len, v6);
      this.pieces[k] = q;
    }
    this.piecesCount = n;
    set16(b, tcpOff + TcpField.Checksum, tcp.checksum);
    return n;
  }
}
