/**
 * IP fragment reassembly for datagrams addressed to a VIP or a LIP, with
 * Linux's limits and rules (net/ipv4/ip_fragment.c, net/ipv6/reassembly.c,
 * net/ipv4/inet_fragment.c):
 *
 * - queues keyed by (src, dst, id, protocol) for IPv4 (`ip_find`), by
 *   (src, dst, id) for IPv6 (`fq_find`); one `Reassembler` per family, each
 *   with its own memory bound, as each family has its own `fqdir`;
 * - a queue lives `timeoutMs` from its first fragment and is never extended
 *   (`inet_frag_create` arms the timer once: ipfrag_time 30 s, ip6frag_time 60 s);
 * - memory: the bytes a fragment is charged (its arena blocks and its record,
 *   plus a queue record for a new queue) never take the total above
 *   `highThresh` (ipfrag_high_thresh, 4 MiB): a fragment that does not fit is
 *   dropped (`inet_frag_find` refuses past high_thresh), then the oldest
 *   queues go until the total is at most `lowThresh` (3 MiB), the way the
 *   evictor of Linux before 4.17 pruned its LRU down to ipfrag_low_thresh;
 * - overlaps (`inet_frag_queue_insert` returning IPFRAG_OVERLAP) kill the
 *   whole queue, for IPv4 as for IPv6 (RFC 5722); a fragment wholly inside a
 *   run of fragments already held (IPFRAG_DUP) is dropped alone and the
 *   queue kept. A run, as in Linux, is the fragments appended in order at the
 *   tail; one inserted anywhere else starts a run of its own;
 * - a last fragment ending before data already held, or two different
 *   ends, or data past the end, or a zero-length fragment kill the queue
 *   (`ip_frag_queue`/`ip6_frag_queue`, discard_qp); an IPv4 non-last
 *   fragment's length is cut to a multiple of 8, an IPv6 one not a multiple
 *   of 8 is dropped (the Parameter Problem Linux sends is the caller's);
 * - a datagram longer than 65535 bytes (IPv4 total length, IPv6 payload) is
 *   dropped (`ip_frag_reasm`'s out_oversize; `ip6_frag_queue` refuses a
 *   fragment ending past IPV6_MAXPLEN);
 * - ECN: a Not-ECT fragment mixed with ECT or CE ones drops the datagram, CE
 *   with ECT marks it CE (`ip_frag_ecn_table`, RFC 3168 §5.3);
 * - the reassembled IPv4 header is the first fragment's with the total
 *   length, MF clear, offset 0 and DF only when the largest fragment had it
 *   (`ip_frag_reasm`); for IPv6 the Fragment header goes and the byte that
 *   named it takes its Next Header (`ip6_frag_reasm`); an atomic fragment
 *   (offset 0, M clear) is a whole datagram (RFC 6946, `ipv6_frag_rcv`);
 * - a first fragment without the whole transport header (TCP 20, UDP 8,
 *   ICMP 8 bytes) is dropped: RFC 1858 for IPv4 (with the TCP fragment at
 *   offset 8), RFC 7112 / RFC 8200 §4.5 for IPv6, where the whole header
 *   chain must be in it too (`ipv6frag_thdr_truncated`).
 *
 * Not followed: ipfrag_max_dist (the per-peer distance that reinitialises
 * an IPv4 queue) and the ICMP Time Exceeded Linux sends when a queue that
 * had its first fragment expires.
 *
 * Nothing is allocated per fragment: the bytes go into a preallocated arena
 * of fixed-size blocks, queues and fragments are records in typed arrays,
 * and the queue index is an open-addressing hash over typed arrays.
 */
import { get16, moveBytes, set16 } from '../wire/bytes.js';
import { finishChecksum, sumWords } from '../wire/checksum.js';
import { IPPROTO_TCP, transportMinimum } from '../wire/ipv4.js';
import { IPV6_HEADER, Ipv6Error, Ipv6View } from '../wire/ipv6.js';
import { ARENA_BLOCK, BlockArena } from './block-arena.js';
import { ReasmCounter, ReasmStatus } from './reassembly-counters.js';

/** ipfrag_high_thresh and ip6frag_high_thresh. */
export const REASM_HIGH_THRESH = 4 * 1024 * 1024;
/** ipfrag_low_thresh: what eviction brings the total down to. */
export const REASM_LOW_THRESH = 3 * 1024 * 1024;
/** ipfrag_time. */
export const IPV4_FRAG_TIMEOUT_MS = 30_000;
/** ip6frag_time. */
export const IPV6_FRAG_TIMEOUT_MS = 60_000;
/** Bytes of one arena block; a fragment's bytes take whole blocks. */
export const REASM_BLOCK = ARENA_BLOCK;
/** What a queue record is charged (Linux charges sizeof(struct ipq)). */
export const REASM_QUEUE_COST = 128;
/** What a fragment record is charged on top of its blocks (Linux charges an skb's truesize). */
export const REASM_FRAGMENT_COST = 64;
const MAX_DATAGRAM = 65535;

export interface ReassemblerOptions {
  family: 4 | 6;
  /** Bytes the held fragments may be charged in all (default 4 MiB). */
  highThresh?: number;
  /** What eviction brings the total down to (default 3 MiB, at most `highThresh`). */
  lowThresh?: number;
  /** Life of a queue from its first fragment (default 30 s for IPv4, 60 s for IPv6). */
  timeoutMs?: number;
  /** Seeds the queue hash, so peers cannot aim fragments at one probe chain. */
  seed?: number;
}

const FIRST_IN = 1;
const LAST_IN = 2;
/** Key words per queue: IPv4 uses 3 (src, dst, id and protocol), IPv6 9 (src, dst, id). */
const KEY_WORDS = 9;
/** ECN code point → Linux's IPFRAG_ECN_* bit: Not-ECT 1, ECT(1) 2, ECT(0) 4, CE 8. */
const ECN_NOT_ECT = 1;
const ECN_CE = 8;
/** Where an insertion lands (`locate`): the fragment goes after `at`. */
const PLACE_OK = 0;
const PLACE_DUP = 1;
const PLACE_OVERLAP = 2;

function read32(b: Uint8Array, o: number): number {
  return (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
}

export class Reassembler {
  readonly family: 4 | 6;
  readonly highThresh: number;
  readonly lowThresh: number;
  readonly timeoutMs: number;
  readonly counters = new Float64Array(ReasmCounter.Count);
  /** Bytes charged now (blocks, fragment and queue records); never above `highThresh`. */
  bytesCharged = 0;
  queueCount = 0;
  heldFragments = 0;
  /** Set by `push`: the datagram's length when Complete. */
  length = 0;
  /** Set by `push`: the counter a Dropped fragment went to. */
  dropReason: ReasmCounter = ReasmCounter.Malformed;
  /**
   * Set by `push` on Complete: the largest fragment's length (Linux's
   * frag_max_size): sending the datagram on in pieces no larger keeps the
   * sender's own fragment size.
   */
  maxFragmentSize = 0;

  /** Fragments' bytes: fixed-size blocks chained per fragment. */
  private readonly arena: BlockArena;

  // ---- fragment records, in offset order per queue; a run's head holds its end and last fragment ----
  private readonly fOff: Int32Array;
  private readonly fEnd: Int32Array;
  /** Header bytes kept ahead of the data (the first fragment only). */
  private readonly fHdr: Int32Array;
  private readonly fBlock: Int32Array;
  private readonly fNext: Int32Array;
  private readonly fRunEnd: Int32Array;
  private readonly fRunLast: Int32Array;
  private readonly fragFree: Int32Array;
  private fragFreeTop: number;

  // ---- queue records ----
  private readonly qKey: Int32Array;
  private readonly qHash: Int32Array;
  private readonly qFirst: Int32Array;
  private readonly qLast: Int32Array;
  private readonly qLastRun: Int32Array;
  private readonly qLen: Int32Array;
  private readonly qMeat: Int32Array;
  private readonly qFlags: Int32Array;
  private readonly qEcn: Int32Array;
  private readonly qFrags: Int32Array;
  private readonly qBytes: Int32Array;
  private readonly qMaxSize: Int32Array;
  private readonly qMaxDfSize: Int32Array;
  /** IPv6: the byte naming the Fragment header, from the header's start, and the Next Header it gets back. */
  private readonly qNhAt: Int32Array;
  private readonly qNextHeader: Int32Array;
  private readonly qCreated: Float64Array;
  /** Queues in creation order, which is expiry order: the oldest first. */
  private readonly qOlder: Int32Array;
  private readonly qNewer: Int32Array;
  private oldest = -1;
  private newest = -1;
  private readonly queueFree: Int32Array;
  private queueFreeTop: number;

  // ---- the index: open addressing, queue + 1 per slot, 0 empty ----
  private readonly slots: Int32Array;
  private readonly slotMask: number;
  private readonly seed: number;

  /** The key of the fragment being pushed. */
  private readonly key = new Int32Array(KEY_WORDS);
  private readonly ip6 = new Ipv6View();
  /** Set by `locate`. */
  private placeAfter = -1;
  private placeJoins = false;

  constructor(opts: ReassemblerOptions) {
    this.family = opts.family;
    this.highThresh = Math.max(
      REASM_BLOCK + REASM_FRAGMENT_COST + REASM_QUEUE_COST,
      Math.floor(opts.highThresh ?? REASM_HIGH_THRESH),
    );
    this.lowThresh = Math.min(
      this.highThresh,
      Math.floor(opts.lowThresh ?? (this.highThresh * 3) / 4),
    );
    this.timeoutMs =
      opts.timeoutMs ?? (opts.family === 4 ? IPV4_FRAG_TIMEOUT_MS : IPV6_FRAG_TIMEOUT_MS);
    this.seed = (opts.seed ?? Math.floor(Math.random() * 0x7fffffff)) | 0;
    // Every fragment takes a block and a record, every queue a fragment and a record:
    // the charge bound caps each count, so no array below can run out.
    const blocks = Math.floor(this.highThresh / REASM_BLOCK);
    const frags = Math.floor(this.highThresh / (REASM_BLOCK + REASM_FRAGMENT_COST));
    const queues = Math.floor(
      this.highThresh / (REASM_BLOCK + REASM_FRAGMENT_COST + REASM_QUEUE_COST),
    );
    this.arena = new BlockArena(blocks);
    this.fOff = new Int32Array(frags);
    this.fEnd = new Int32Array(frags);
    this.fHdr = new Int32Array(frags);
    this.fBlock = new Int32Array(frags);
    this.fNext = new Int32Array(frags);
    this.fRunEnd = new Int32Array(frags);
    this.fRunLast = new Int32Array(frags);
    this.fragFree = new Int32Array(frags);
    for (let i = 0; i < frags; i++) this.fragFree[i] = frags - 1 - i;
    this.fragFreeTop = frags;
    this.qKey = new Int32Array(queues * KEY_WORDS);
    this.qHash = new Int32Array(queues);
    this.qFirst = new Int32Array(queues);
    this.qLast = new Int32Array(queues);
    this.qLastRun = new Int32Array(queues);
    this.qLen = new Int32Array(queues);
    this.qMeat = new Int32Array(queues);
    this.qFlags = new Int32Array(queues);
    this.qEcn = new Int32Array(queues);
    this.qFrags = new Int32Array(queues);
    this.qBytes = new Int32Array(queues);
    this.qMaxSize = new Int32Array(queues);
    this.qMaxDfSize = new Int32Array(queues);
    this.qNhAt = new Int32Array(queues);
    this.qNextHeader = new Int32Array(queues);
    this.qCreated = new Float64Array(queues);
    this.qOlder = new Int32Array(queues);
    this.qNewer = new Int32Array(queues);
    this.queueFree = new Int32Array(queues);
    for (let i = 0; i < queues; i++) this.queueFree[i] = queues - 1 - i;
    this.queueFreeTop = queues;
    let cap = 16;
    while (cap < queues * 2) cap *= 2;
    this.slots = new Int32Array(cap);
    this.slotMask = cap - 1;
  }

  /** Bytes of every preallocated array: what the reassembler holds however busy it is. */
  get footprintBytes(): number {
    let n = this.arena.footprintBytes + this.counters.byteLength + this.key.byteLength;
    for (const a of [
      this.fOff,
      this.fEnd,
      this.fHdr,
      this.fBlock,
      this.fNext,
      this.fRunEnd,
      this.fRunLast,
      this.fragFree,
      this.qKey,
      this.qHash,
      this.qFirst,
      this.qLast,
      this.qLastRun,
      this.qLen,
      this.qMeat,
      this.qFlags,
      this.qEcn,
      this.qFrags,
      this.qBytes,
      this.qMaxSize,
      this.qMaxDfSize,
      this.qNhAt,
      this.qNextHeader,
      this.qCreated,
      this.qOlder,
      this.qNewer,
      this.queueFree,
      this.slots,
    ]) {
      n += a.byteLength;
    }
    return n;
  }

  /**
   * Takes one fragment: the IP packet at buf[off, off+len) (bytes past its
   * total length are ignored). When it completes its datagram, the datagram
   * is written at out[outOff] (`out` must not be `buf`) and `length` says
   * how long it is. Expired queues go first.
   */
  push(
    buf: Uint8Array,
    off: number,
    len: number,
    now: number,
    out: Uint8Array,
    outOff: number,
  ): ReasmStatus {
    this.counters[ReasmCounter.Fragments]!++;
    this.expire(now);
    return this.family === 4
      ? this.push4(buf, off, len, now, out, outOff)
      : this.push6(buf, off, len, now, out, outOff);
  }

  /** Kills the queues whose time is up; `push` calls it, a timer may too. */
  expire(now: number): void {
    while (this.oldest >= 0 && this.qCreated[this.oldest]! + this.timeoutMs <= now) {
      this.kill(this.oldest, ReasmCounter.Timeout);
    }
  }

  private push4(
    b: Uint8Array,
    off: number,
    len: number,
    now: number,
    out: Uint8Array,
    outOff: number,
  ): ReasmStatus {
    if (len < 20 || b[off]! >>> 4 !== 4) return this.dropFragment(ReasmCounter.Malformed);
    const ihl = (b[off]! & 0x0f) * 4;
    const total = get16(b, off + 2);
    if (ihl < 20 || total < ihl || total > len) return this.dropFragment(ReasmCounter.Malformed);
    if (finishChecksum(sumWords(b, off, ihl, 0)) !== 0) {
      return this.dropFragment(ReasmCounter.Malformed);
    }
    const word = get16(b, off + 6);
    const more = (word & 0x2000) !== 0;
    const offset = (word & 0x1fff) * 8;
    if (!more && offset === 0) return this.dropFragment(ReasmCounter.Malformed);
    const protocol = b[off + 9]!;
    let dataLen = total - ihl;
    if (offset === 0 && dataLen < transportMinimum(protocol)) {
      return this.dropFragment(ReasmCounter.TinyFirst);
    }
    // RFC 1858: a TCP fragment at offset 8 could rewrite the flags of the first one.
    if (offset === 8 && protocol === IPPROTO_TCP) return this.dropFragment(ReasmCounter.TinyFirst);
    const key = this.key;
    key[0] = read32(b, off + 12);
    key[1] = read32(b, off + 16);
    key[2] = (protocol << 16) | get16(b, off + 4);
    const hash = this.hashKey(3);
    const q = this.find(hash, 3);
    let end = offset + dataLen;
    // No header makes this fit: cut short rather than held until the queue expires.
    if (end + 20 > MAX_DATAGRAM) return this.dropWithQueue(q, ReasmCounter.TooBig);
    if (more && (end & 7) !== 0) {
      end &= ~7;
      dataLen = end - offset;
    }
    const hdr = offset === 0 ? ihl : 0;
    const ecn = 1 << (b[off + 1]! & 3);
    const fragSize = ihl + dataLen;
    const dfSize = (word & 0x4000) !== 0 ? fragSize : 0;
    const st = this.enqueue(
      q,
      hash,
      3,
      b,
      off,
      off + ihl,
      offset,
      end,
      more,
      hdr,
      ecn,
      fragSize,
      dfSize,
      now,
    );
    if (st !== ReasmStatus.Complete) return st;
    return this.finish4(this.completing, out, outOff);
  }

  private push6(
    b: Uint8Array,
    off: number,
    len: number,
    now: number,
    out: Uint8Array,
    outOff: number,
  ): ReasmStatus {
    const v = this.ip6.wrap(b, off);
    const err = v.walk(len);
    if (!v.fragmented) return this.dropFragment(ReasmCounter.Malformed);
    const fh = v.fragmentHeaderOffset;
    const word = get16(b, fh + 2);
    const offset = word & 0xfff8;
    const more = (word & 1) !== 0;
    const pktEnd = off + IPV6_HEADER + v.payloadLength;
    const dataStart = fh + 8;
    const dataLen = pktEnd - dataStart;
    const hdr = fh - off;
    const nhAt = v.fragmentNextHeaderAt - off;
    const nextHeader = b[fh]!;
    if (offset === 0 && !more)
      return this.atomic6(b, off, hdr, nhAt, nextHeader, dataStart, dataLen, out, outOff);
    if (offset === 0) {
      if (err === Ipv6Error.ExtTruncated || err === Ipv6Error.TooManyExtHeaders) {
        return this.dropFragment(ReasmCounter.TinyFirst);
      }
      if (err === Ipv6Error.None && v.upperOffset + transportMinimum(v.upperProtocol) > pktEnd) {
        return this.dropFragment(ReasmCounter.TinyFirst);
      }
    }
    const end = offset + dataLen;
    if (end > MAX_DATAGRAM) return this.dropFragment(ReasmCounter.TooBig);
    if (more && (end & 7) !== 0) return this.dropFragment(ReasmCounter.Malformed);
    const key = this.key;
    for (let i = 0; i < 8; i++) key[i] = read32(b, off + 8 + i * 4);
    key[8] = v.fragmentId | 0;
    const hash = this.hashKey(9);
    const q = this.find(hash, 9);
    const ecn = 1 << ((b[off + 1]! >>> 4) & 3);
    const fragSize = pktEnd - off;
    const st = this.enqueue(
      q,
      hash,
      9,
      b,
      off,
      dataStart,
      offset,
      end,
      more,
      hdr,
      ecn,
      fragSize,
      0,
      now,
    );
    if (st !== ReasmStatus.Complete) return st;
    return this.finish6(this.completing, out, outOff);
  }

  /** The queue `enqueue` found complete, for `finish4`/`finish6`. */
  private completing = -1;

  /**
   * Linux's `ip_frag_queue`/`ip6_frag_queue` after the header checks: the
   * end checks, the place among the runs, the memory bound; then the bytes
   * are stored (the header ahead of the data for the first fragment).
   */
  private enqueue(
    q: number,
    hash: number,
    keyWords: number,
    b: Uint8Array,
    off: number,
    dataStart: number,
    offset: number,
    end: number,
    more: boolean,
    hdr: number,
    ecn: number,
    fragSize: number,
    dfSize: number,
    now: number,
  ): ReasmStatus {
    let qlen = q >= 0 ? this.qLen[q]! : 0;
    let flags = q >= 0 ? this.qFlags[q]! : 0;
    if (!more) {
      if (end < qlen || ((flags & LAST_IN) !== 0 && end !== qlen)) {
        return this.dropWithQueue(q, ReasmCounter.Malformed);
      }
      flags |= LAST_IN;
      qlen = end;
    } else if (end > qlen) {
      if ((flags & LAST_IN) !== 0) return this.dropWithQueue(q, ReasmCounter.Malformed);
      qlen = end;
    }
    if (end === offset) return this.dropWithQueue(q, ReasmCounter.Malformed);
    if (q >= 0) {
      const place = this.locate(q, offset, end);
      if (place === PLACE_DUP) return this.dropFragment(ReasmCounter.Duplicate);
      if (place === PLACE_OVERLAP) return this.dropWithQueue(q, ReasmCounter.Overlap);
    } else {
      this.placeAfter = -1;
      this.placeJoins = false;
    }
    const stored = hdr + end - offset;
    const blocks = BlockArena.blocksFor(stored);
    const cost = blocks * REASM_BLOCK + REASM_FRAGMENT_COST + (q < 0 ? REASM_QUEUE_COST : 0);
    if (this.bytesCharged + cost > this.highThresh) {
      this.dropFragment(ReasmCounter.Memory);
      this.evictTo(this.lowThresh);
      return ReasmStatus.Dropped;
    }
    if (q < 0) q = this.newQueue(hash, keyWords, now);
    if (offset === 0 && this.family === 6) {
      this.qNhAt[q] = this.ip6.fragmentNextHeaderAt - off;
      this.qNextHeader[q] = b[this.ip6.fragmentHeaderOffset]!;
    }
    const f = this.fragFree[--this.fragFreeTop]!;
    this.fOff[f] = offset;
    this.fEnd[f] = end;
    this.fHdr[f] = hdr;
    this.fBlock[f] = this.storeBytes(b, off, hdr, dataStart, end - offset, blocks);
    this.link(q, f);
    this.qLen[q] = qlen;
    if (offset === 0) flags |= FIRST_IN;
    this.qFlags[q] = flags;
    this.qMeat[q] = this.qMeat[q]! + end - offset;
    this.qEcn[q] = this.qEcn[q]! | ecn;
    this.qFrags[q] = this.qFrags[q]! + 1;
    this.qBytes[q] = this.qBytes[q]! + cost;
    if (fragSize > this.qMaxSize[q]!) this.qMaxSize[q] = fragSize;
    if (dfSize > this.qMaxDfSize[q]!) this.qMaxDfSize[q] = dfSize;
    this.bytesCharged += cost;
    this.heldFragments++;
    if (flags === (FIRST_IN | LAST_IN) && this.qMeat[q] === qlen) {
      this.completing = q;
      return ReasmStatus.Complete;
    }
    return ReasmStatus.Held;
  }

  /**
   * Where [offset, end) goes among the queue's runs (`inet_frag_queue_insert`):
   * past the tail it appends (joining the last run when it starts where
   * the tail ends) unless it starts before the tail's end; elsewhere it
   * must miss every run, or lie wholly inside one (a duplicate).
   */
  private locate(q: number, offset: number, end: number): number {
    const tail = this.qLast[q]!;
    const tailEnd = this.fEnd[tail]!;
    if (tailEnd < end) {
      if (offset < tailEnd) return PLACE_OVERLAP;
      this.placeAfter = tail;
      this.placeJoins = offset === tailEnd;
      return PLACE_OK;
    }
    let before = -1;
    let h = this.qFirst[q]!;
    while (h >= 0) {
      const runEnd = this.fRunEnd[h]!;
      if (end <= this.fOff[h]!) break;
      if (offset < runEnd) {
        return offset >= this.fOff[h]! && end <= runEnd ? PLACE_DUP : PLACE_OVERLAP;
      }
      before = this.fRunLast[h]!;
      h = this.fNext[before]!;
    }
    this.placeAfter = before;
    this.placeJoins = false;
    return PLACE_OK;
  }

  /** Puts fragment f where `locate` said. */
  private link(q: number, f: number): void {
    const after = this.placeAfter;
    if (after < 0) {
      this.fNext[f] = this.qFirst[q]!;
      this.qFirst[q] = f;
    } else {
      this.fNext[f] = this.fNext[after]!;
      this.fNext[after] = f;
    }
    if (this.fNext[f] < 0) this.qLast[q] = f;
    if (this.placeJoins) {
      const run = this.qLastRun[q]!;
      this.fRunEnd[run] = this.fEnd[f]!;
      this.fRunLast[run] = f;
    } else {
      this.fRunEnd[f] = this.fEnd[f]!;
      this.fRunLast[f] = f;
      // A run made at the tail is the last run; one inserted earlier never is.
      if (this.qLast[q] === f) this.qLastRun[q] = f;
    }
  }

  private newQueue(hash: number, keyWords: number, now: number): number {
    const q = this.queueFree[--this.queueFreeTop]!;
    const base = q * KEY_WORDS;
    for (let i = 0; i < keyWords; i++) this.qKey[base + i] = this.key[i]!;
    this.qHash[q] = hash;
    this.qFirst[q] = -1;
    this.qLast[q] = -1;
    this.qLastRun[q] = -1;
    this.qLen[q] = 0;
    this.qMeat[q] = 0;
    this.qFlags[q] = 0;
    this.qEcn[q] = 0;
    this.qFrags[q] = 0;
    this.qBytes[q] = 0;
    this.qMaxSize[q] = 0;
    this.qMaxDfSize[q] = 0;
    this.qNhAt[q] = 0;
    this.qNextHeader[q] = 0;
    this.qCreated[q] = now;
    this.qOlder[q] = this.newest;
    this.qNewer[q] = -1;
    if (this.newest >= 0) this.qNewer[this.newest] = q;
    else this.oldest = q;
    this.newest = q;
    let i = hash & this.slotMask;
    while (this.slots[i] !== 0) i = (i + 1) & this.slotMask;
    this.slots[i] = q + 1;
    this.queueCount++;
    return q;
  }

  /** Frees a queue, its fragments and blocks (after a completion or a kill). */
  private release(q: number): void {
    let f = this.qFirst[q]!;
    while (f >= 0) {
      this.arena.release(this.fBlock[f]!);
      const next = this.fNext[f]!;
      this.fragFree[this.fragFreeTop++] = f;
      f = next;
    }
    this.heldFragments -= this.qFrags[q]!;
    this.bytesCharged -= this.qBytes[q]!;
    const older = this.qOlder[q]!;
    const newer = this.qNewer[q]!;
    if (older >= 0) this.qNewer[older] = newer;
    else this.oldest = newer;
    if (newer >= 0) this.qOlder[newer] = older;
    else this.newest = older;
    this.unindex(q);
    this.queueFree[this.queueFreeTop++] = q;
    this.queueCount--;
  }

  /** Removes q from the index, shifting later entries of its probe chain back. */
  private unindex(q: number): void {
    const mask = this.slotMask;
    const slots = this.slots;
    let i = this.qHash[q]! & mask;
    while (slots[i] !== q + 1) i = (i + 1) & mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const e = slots[j]!;
      if (e === 0) break;
      const home = this.qHash[e - 1]! & mask;
      // e may move to i unless its home lies cyclically in (i, j].
      const inRange = i <= j ? home > i && home <= j : home > i || home <= j;
      if (!inRange) {
        slots[i] = e;
        i = j;
      }
    }
    slots[i] = 0;
  }

  private hashKey(words: number): number {
    let h = this.seed ^ words;
    for (let i = 0; i < words; i++) {
      h = Math.imul(h ^ this.key[i]!, 0x9e3779b1);
      h ^= h >>> 15;
    }
    return h;
  }

  private find(hash: number, words: number): number {
    const mask = this.slotMask;
    let i = hash & mask;
    for (;;) {
      const e = this.slots[i]!;
      if (e === 0) return -1;
      const q = e - 1;
      if (this.qHash[q] === hash && this.keyMatches(q, words)) return q;
      i = (i + 1) & mask;
    }
  }

  private keyMatches(q: number, words: number): boolean {
    const base = q * KEY_WORDS;
    for (let i = 0; i < words; i++) if (this.qKey[base + i] !== this.key[i]) return false;
    return true;
  }

  /** Copies the header (hdr bytes at b[off]) then the data into a fresh chain of `blocks` blocks; returns its first. */
  private storeBytes(
    b: Uint8Array,
    off: number,
    hdr: number,
    dataStart: number,
    dataLen: number,
    blocks: number,
  ): number {
    const first = this.arena.take(blocks);
    this.arena.write(first, 0, b, off, hdr);
    this.arena.write(first, hdr, b, dataStart, dataLen);
    return first;
  }

  /** Writes the queue's data behind a header of `hdrLen` at out[outOff]. */
  private loadData(q: number, out: Uint8Array, outOff: number, hdrLen: number): void {
    for (let f = this.qFirst[q]!; f >= 0; f = this.fNext[f]!) {
      this.arena.read(
        this.fBlock[f]!,
        this.fHdr[f]!,
        this.fEnd[f]! - this.fOff[f]!,
        out,
        outOff + hdrLen + this.fOff[f]!,
      );
    }
  }

  /** The ECN bits the datagram gets, or -1 for a mix Linux refuses. */
  private static ecnOf(bits: number): number {
    if ((bits & ECN_NOT_ECT) !== 0) return bits === ECN_NOT_ECT ? 0 : -1;
    return (bits & ECN_CE) !== 0 ? 3 : 0;
  }

  private finish4(q: number, out: Uint8Array, outOff: number): ReasmStatus {
    const first = this.qFirst[q]!;
    const ihl = this.fHdr[first]!;
    const total = ihl + this.qLen[q]!;
    const ecn = Reassembler.ecnOf(this.qEcn[q]!);
    if (total > MAX_DATAGRAM) return this.failComplete(q, ReasmCounter.TooBig);
    if (ecn < 0) return this.failComplete(q, ReasmCounter.Malformed);
    if (outOff < 0 || outOff + total > out.length) return this.failComplete(q, ReasmCounter.NoRoom);
    this.arena.read(this.fBlock[first]!, 0, ihl, out, outOff);
    this.loadData(q, out, outOff, ihl);
    out[outOff + 1] = out[outOff + 1]! | ecn;
    set16(out, outOff + 2, total);
    set16(out, outOff + 6, this.qMaxDfSize[q] === this.qMaxSize[q] ? 0x4000 : 0);
    set16(out, outOff + 10, 0);
    set16(out, outOff + 10, finishChecksum(sumWords(out, outOff, ihl, 0)));
    return this.completed(q, total);
  }

  private finish6(q: number, out: Uint8Array, outOff: number): ReasmStatus {
    const first = this.qFirst[q]!;
    const hdr = this.fHdr[first]!;
    const payload = hdr - IPV6_HEADER + this.qLen[q]!;
    const ecn = Reassembler.ecnOf(this.qEcn[q]!);
    if (payload > MAX_DATAGRAM) return this.failComplete(q, ReasmCounter.TooBig);
    if (ecn < 0) return this.failComplete(q, ReasmCounter.Malformed);
    const total = IPV6_HEADER + payload;
    if (outOff < 0 || outOff + total > out.length) return this.failComplete(q, ReasmCounter.NoRoom);
    this.arena.read(this.fBlock[first]!, 0, hdr, out, outOff);
    this.loadData(q, out, outOff, hdr);
    out[outOff + this.qNhAt[q]!] = this.qNextHeader[q]!;
    set16(out, outOff + 4, payload);
    out[outOff + 1] = out[outOff + 1]! | (ecn << 4);
    return this.completed(q, total);
  }

  /** An atomic fragment is its own datagram: written out without its Fragment header. */
  private atomic6(
    b: Uint8Array,
    off: number,
    hdr: number,
    nhAt: number,
    nextHeader: number,
    dataStart: number,
    dataLen: number,
    out: Uint8Array,
    outOff: number,
  ): ReasmStatus {
    const total = hdr + dataLen;
    if (outOff < 0 || outOff + total > out.length) return this.dropFragment(ReasmCounter.NoRoom);
    moveBytes(out, outOff, b, off, hdr);
    moveBytes(out, outOff + hdr, b, dataStart, dataLen);
    out[outOff + nhAt] = nextHeader;
    set16(out, outOff + 4, total - IPV6_HEADER);
    this.length = total;
    this.maxFragmentSize = total + 8;
    this.counters[ReasmCounter.Datagrams]!++;
    this.counters[ReasmCounter.FragmentsReassembled]!++;
    return ReasmStatus.Complete;
  }

  private completed(q: number, total: number): ReasmStatus {
    this.length = total;
    this.maxFragmentSize = this.qMaxSize[q]!;
    this.counters[ReasmCounter.Datagrams]!++;
    this.counters[ReasmCounter.FragmentsReassembled]! += this.qFrags[q]!;
    this.release(q);
    return ReasmStatus.Complete;
  }

  /** The last fragment was stored, then the datagram refused: it and its queue are dropped. */
  private failComplete(q: number, reason: ReasmCounter): ReasmStatus {
    this.dropReason = reason;
    this.kill(q, reason);
    return ReasmStatus.Dropped;
  }

  private dropFragment(reason: ReasmCounter): ReasmStatus {
    this.counters[reason]!++;
    this.dropReason = reason;
    return ReasmStatus.Dropped;
  }

  /** Drops the fragment and kills its queue, if it has one (Linux's discard_qp). */
  private dropWithQueue(q: number, reason: ReasmCounter): ReasmStatus {
    if (q >= 0) this.kill(q, reason);
    return this.dropFragment(reason);
  }

  private kill(q: number, reason: ReasmCounter): void {
    this.counters[reason]! += this.qFrags[q]!;
    this.counters[ReasmCounter.QueuesFailed]!++;
    this.release(q);
  }

  /** Drops the oldest queues until at most `target` bytes are charged. */
  private evictTo(target: number): void {
    while (this.bytesCharged > target && this.oldest >= 0)
      this.kill(this.oldest, ReasmCounter.Memory);
  }
}
