/**
 * Fragmenting a datagram the LB sends on (after reassembly and
 * translation) toward a path whose MTU it exceeds.
 *
 * IPv4 (RFC 791, Linux's `ip_do_fragment`): pieces of at most the MTU, data
 * in multiples of 8 but the last; the first piece keeps the whole header,
 * the others carry only the options whose copy flag is set (RFC 791 §3.1),
 * compacted and padded with EOL (Linux NOPs out the others and keeps the
 * header length; compacting leaves more room for data). Fragmenting a
 * fragment keeps its offset and its MF on the last piece. DF set refuses:
 * the caller answers with frag-needed.
 *
 * IPv6: routers never fragment, only the source does; the LB forwarding a
 * datagram it reassembled acts as one, as Linux does with `ip6_fragment`
 * for a reassembled packet it forwards: a Fragment header goes after the
 * unfragmentable part (hop-by-hop, routing, and destination options up to a
 * routing header: `ip6_find_1stfragopt`), and the first piece must carry
 * the whole header chain (RFC 8200 §4.5, RFC 7112).
 *
 * Either way the caller should pass min(path MTU, the reassembler's
 * `maxFragmentSize`), as Linux honours frag_max_size, and a fresh
 * identification: the translated datagram leaves from a LIP that many
 * clients share, so their own IDs could collide at the RS.
 *
 * Pieces come from the pool at its headroom, like `ToaWriter`'s split; the
 * caller sends or returns them; each costs one short-lived view for its
 * data copy (`moveBytes`).
 */
import { get16, moveBytes, set16, set32 } from '../wire/bytes.js';
import { finishChecksum, sumWords } from '../wire/checksum.js';
import { transportMinimum } from '../wire/ipv4.js';
import {
  IPV6_HEADER,
  IPV6_NEXT_DSTOPTS,
  IPV6_NEXT_FRAGMENT,
  IPV6_NEXT_HOPOPTS,
  IPV6_NEXT_ROUTING,
  Ipv6Error,
  Ipv6View,
} from '../wire/ipv6.js';
import { DEFAULT_HEADROOM, type Packet, type PacketPool } from './packet.js';

/** RFC 791: every IPv4 host takes 68-byte datagrams unfragmented. */
export const IPV4_MIN_MTU = 68;
/** RFC 8200 §5. */
export const IPV6_MIN_MTU = 1280;
const IPV6_FRAGMENT_HEADER = 8;
const IPOPT_EOL = 0;
const IPOPT_NOP = 1;
const IPOPT_COPIED = 0x80;

export const enum FragmentError {
  /** DF is set: the caller sends frag-needed instead. */
  DontFragment = -1,
  /** Below the family's minimum MTU, or too small for the header chain and 8 bytes of data. */
  MtuTooSmall = -2,
  /** Not a well-formed datagram of the family, or (IPv6) already fragmented. */
  Malformed = -3,
}

export class Fragmenter {
  /** Pieces of the last call; valid until the next. */
  readonly pieces: Packet[] = [];
  piecesCount = 0;
  private readonly ip6 = new Ipv6View();
  /** The options later IPv4 pieces carry. */
  private readonly copied = new Uint8Array(40);

  constructor(private readonly pool: PacketPool) {}

  /** Largest piece a pool packet holds behind its headroom. */
  private get room(): number {
    return this.pool.bufferSize - DEFAULT_HEADROOM;
  }

  /**
   * Splits the IPv4 datagram at b[off, off+len) into pieces of at most
   * `mtu` bytes. `id` (0..65535) replaces the identification, -1 keeps it.
   * Returns the number of pieces (one, a copy, when it already fits) or a
   * FragmentError.
   */
  fragmentV4(b: Uint8Array, off: number, len: number, mtu: number, id = -1): number {
    this.piecesCount = 0;
    if (len < 20 || b[off]! >>> 4 !== 4) return FragmentError.Malformed;
    const ihl = (b[off]! & 0x0f) * 4;
    const total = get16(b, off + 2);
    if (ihl < 20 || total < ihl || total > len) return FragmentError.Malformed;
    const word = get16(b, off + 6);
    // A piece smaller than the MTU is still a right piece: the pool's buffers bound them.
    const limit = Math.min(mtu, this.room);
    if (total <= limit) {
      this.piece(b, off, ihl, ihl, word, id, 0, total - ihl);
      return this.piecesCount;
    }
    if ((word & 0x4000) !== 0) return FragmentError.DontFragment;
    if (mtu < IPV4_MIN_MTU || limit - ihl < 8) return FragmentError.MtuTooSmall;
    const optLen = this.copyOptions(b, off + 20, off + ihl);
    const laterHl = 20 + optLen;
    const baseOffset = (word & 0x1fff) * 8;
    const lastMore = word & 0x2000;
    const dataLen = total - ihl;
    let pos = 0;
    while (pos < dataLen) {
      const hl = pos === 0 ? ihl : laterHl;
      const n = Math.min((limit - hl) & ~7, dataLen - pos);
      const last = pos + n === dataLen;
      const flags = (word & 0x8000) | (last ? lastMore : 0x2000) | ((baseOffset + pos) >>> 3);
      this.piece(b, off, ihl, hl, flags, id, pos, n);
      pos += n;
    }
    return this.piecesCount;
  }

  /**
   * One IPv4 piece: header `hl` bytes long (the original one when hl is
   * its length, else the fixed part and the copied options), data
   * b[off+ihl+pos, +n), the flags word as given.
   */
  private piece(
    b: Uint8Array,
    off: number,
    ihl: number,
    hl: number,
    flags: number,
    id: number,
    pos: number,
    n: number,
  ): void {
    const q = this.pool.take();
    const qb = q.buf;
    const s = q.start;
    if (hl === ihl) {
      for (let i = 0; i < ihl; i++) qb[s + i] = b[off + i]!;
    } else {
      for (let i = 0; i < 20; i++) qb[s + i] = b[off + i]!;
      for (let i = 20; i < hl; i++) qb[s + i] = this.copied[i - 20]!;
      qb[s] = 0x40 | (hl >>> 2);
    }
    moveBytes(qb, s + hl, b, off + ihl + pos, n);
    q.length = hl + n;
    set16(qb, s + 2, hl + n);
    set16(qb, s + 6, flags);
    if (id >= 0) set16(qb, s + 4, id);
    set16(qb, s + 10, 0);
    set16(qb, s + 10, finishChecksum(sumWords(qb, s, hl, 0)));
    this.pieces[this.piecesCount++] = q;
  }

  /** The options with the copy flag, in order, EOL-padded to 4 bytes; returns their length. */
  private copyOptions(b: Uint8Array, from: number, to: number): number {
    const c = this.copied;
    let n = 0;
    let p = from;
    while (p < to) {
      const type = b[p]!;
      if (type === IPOPT_EOL) break;
      if (type === IPOPT_NOP) {
        p++;
        continue;
      }
      if (p + 1 >= to) break;
      const size = b[p + 1]!;
      // A length that lies ends the list: the first piece still has it all.
      if (size < 2 || p + size > to) break;
      if ((type & IPOPT_COPIED) !== 0) {
        for (let i = 0; i < size; i++) c[n + i] = b[p + i]!;
        n += size;
      }
      p += size;
    }
    while ((n & 3) !== 0) c[n++] = IPOPT_EOL;
    return n;
  }

  /**
   * Splits the IPv6 datagram at b[off, off+len) into pieces of at most
   * `mtu` bytes, each with a Fragment header of identification `id`
   * (32 bits). Returns the number of pieces (one, a copy without a
   * Fragment header, when it already fits) or a FragmentError.
   */
  fragmentV6(b: Uint8Array, off: number, len: number, mtu: number, id: number): number {
    this.piecesCount = 0;
    const v = this.ip6.wrap(b, off);
    const err = v.walk(len);
    if (err !== Ipv6Error.None && err !== Ipv6Error.NoTransport) return FragmentError.Malformed;
    if (v.fragmented || v.payloadLength === 0) return FragmentError.Malformed;
    const total = IPV6_HEADER + v.payloadLength;
    const limit = Math.min(mtu, this.room);
    if (total <= limit) {
      const q = this.pool.take();
      moveBytes(q.buf, q.start, b, off, total);
      q.length = total;
      this.pieces[this.piecesCount++] = q;
      return 1;
    }
    if (mtu < IPV6_MIN_MTU) return FragmentError.MtuTooSmall;
    // The unfragmentable part, as ip6_find_1stfragopt draws it.
    let unfrag = IPV6_HEADER;
    let nhAt = 6;
    let next = b[off + 6]!;
    let routing = false;
    for (;;) {
      if (next === IPV6_NEXT_ROUTING) routing = true;
      else if (next !== IPV6_NEXT_HOPOPTS && (next !== IPV6_NEXT_DSTOPTS || routing)) break;
      nhAt = unfrag;
      next = b[off + unfrag]!;
      unfrag += (b[off + unfrag + 1]! + 1) * 8;
    }
    const maxData = (limit - unfrag - IPV6_FRAGMENT_HEADER) & ~7;
    if (maxData < 8) return FragmentError.MtuTooSmall;
    const chainEnd =
      err === Ipv6Error.None ? v.upperOffset - off + transportMinimum(v.upperProtocol) : unfrag;
    if (chainEnd - unfrag > maxData) return FragmentError.MtuTooSmall;
    const dataLen = total - unfrag;
    for (let pos = 0; pos < dataLen;) {
      const n = Math.min(maxData, dataLen - pos);
      const more = pos + n < dataLen ? 1 : 0;
      const q = this.pool.take();
      const qb = q.buf;
      const s = q.start;
      for (let i = 0; i < unfrag; i++) qb[s + i] = b[off + i]!;
      qb[s + nhAt] = IPV6_NEXT_FRAGMENT;
      const fh = s + unfrag;
      qb[fh] = next;
      qb[fh + 1] = 0;
      set16(qb, fh + 2, pos | more);
      set32(qb, fh + 4, id >>> 0);
      moveBytes(qb, fh + IPV6_FRAGMENT_HEADER, b, off + unfrag + pos, n);
      q.length = unfrag + IPV6_FRAGMENT_HEADER + n;
      set16(qb, s + 4, q.length - IPV6_HEADER);
      this.pieces[this.piecesCount++] = q;
      pos += n;
    }
    return this.piecesCount;
  }
}
