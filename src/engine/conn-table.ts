import { addressWords, copy16, equal16, equal16Words, fold16 } from './addr6.js';
import { TcpState } from './tcp-state.js';

/** Connection flag bits. */
export const CF_FDATA_KNOWN = 1; // the RS SYN+ACK was seen, fdataSeq is valid
/** Opened by SYNPROXY: acks (client→RS) and seqs (RS→client) move by `ackDelta`. */
export const CF_SYNPROXY = 2;
/** SYNPROXY, RS leg opening: client packets are held, `ackDelta` holds the cookie ISN. */
export const CF_SP_PENDING = 4;
/** SYNPROXY: RS windows are rescaled for the client (the RS's shift differs from ours). */
export const CF_SP_WIN_OUT = 8;
/** SYNPROXY: client windows are unscaled for an RS that refused window scaling. */
export const CF_SP_WIN_IN = 0x10;
/** SYNPROXY: a client SYN came on this reusable entry (closing, or its RS out): a cookie ACK may replace it. */
export const CF_SP_REUSE_SYN = 0x20;
/** The entry has an IPv6 side (its client, and maybe its reply tuple): `fam6` says which. */
export const CF_IPV6 = 0x40;
/** Set while the entry holds a connection (free entries have it clear). */
export const CF_IN_USE = 0x80;

/**
 * `lipIndex` of a NAT (masquerading) entry: it holds no LIP; its reply
 * tuple's "LIP:lport" is the client's own address and port (the RS answers
 * the client), so the reply lookup finds it unchanged.
 */
export const NO_LIP = 0xffff;

/** `fam6` bits of a CF_IPV6 entry: the client tuple is IPv6 (`cip6`), the reply tuple is IPv6 (`lip6`, `rip6`). */
export const FAM_CLIENT_V6 = 1;
export const FAM_REPLY_V6 = 2;

/** Bucket of a 3-word key; masked inside so the result is always a small integer. */
function mix(a: number, b: number, c: number, mask: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h ^ b, 0xc2b2ae35);
  h ^= h >>> 13;
  h = Math.imul(h ^ c, 0x27d4eb2f);
  h ^= h >>> 16;
  return h & mask;
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * The connection table: struct-of-arrays over typed arrays, no object per
 * connection. Two chained hash indexes, by the client tuple (CIP, cport,
 * service) and by the reply tuple (RIP, rport, LIP, lport). Expiry uses a
 * lazy timing wheel: a packet only rewrites `expires`; an entry found early in
 * its slot is moved to the slot of its new deadline.
 */
export class ConnTable {
  readonly capacity: number;
  count = 0;

  readonly cip: Uint32Array;
  readonly cport: Uint16Array;
  readonly svc: Uint16Array;
  readonly lip: Uint32Array;
  readonly lport: Uint16Array;
  readonly rip: Uint32Array;
  readonly rport: Uint16Array;
  /** Global real-server index. */
  readonly rs: Uint16Array;
  /** Index of the LIP in the engine's LIP list (for releasing the port); `NO_LIP` for a NAT entry. */
  readonly lipIndex: Uint16Array;
  readonly state: Uint8Array;
  readonly flags: Uint8Array;
  /** LB→RS ISN minus client ISN: added to client seq toward the RS. */
  readonly seqDelta: Uint32Array;
  /** The LB→RS ISN (needed where client bytes are shifted, e.g. behind a PROXY header). */
  readonly lbIsn: Uint32Array;
  /**
   * Bytes the LB inserted into the client's stream toward the RS (a PROXY
   * protocol header): client data moves up by this much in the LB→RS space.
   */
  readonly shift: Uint8Array;
  /** RS ISN + 1: the ack every client packet carries until the RS sends data. */
  readonly fdataSeq: Uint32Array;
  /** Next client sequence number (client space), for RSTs on expiry. */
  readonly clientNxt: Uint32Array;
  /** Next RS sequence number, for RSTs on expiry. */
  readonly rsNxt: Uint32Array;
  /** Deadline in engine ms (relative to the engine's epoch). */
  readonly expires: Uint32Array;

  // SYNPROXY state, allocated by `enableSynproxy` (empty until a service uses it).
  /**
   * RS ISN − cookie ISN: added to client acks (and SACK edges) toward the RS,
   * subtracted from RS seqs toward the client. While CF_SP_PENDING: the cookie ISN.
   */
  ackDelta = new Uint32Array(0);
  /** Bits 0-9: the cookie's data bits (MSS index, client wscale, SACK, TS); bits 10-13: RS wscale in force. */
  spData = new Uint16Array(0);
  /** While CF_SP_PENDING: slot of the held client packets in the engine's store. */
  spSlot = new Int32Array(0);
  /** Ack-storm detection: ack and window of the RS's last pure ACK, and how many came in a row. */
  rsAck = new Uint32Array(0);
  rsWin = new Uint16Array(0);
  stormCount = new Uint8Array(0);

  // IPv6 side table, allocated by `enableIpv6` (empty until an IPv6 service exists). An IPv6
  // entry keeps fold16 of each IPv6 address in the u32 column (cip, lip, rip) and the 16 bytes
  // here, at 16 * index; it is linked in the IPv6 indexes, so IPv4 lookups never meet it.
  /** FAM_* bits of a CF_IPV6 entry. */
  fam6 = new Uint8Array(0);
  /**
   * What the addresses add to the TCP checksum client → RS: the one's
   * complement sum of (LIP, RIP) less that of (CIP, VIP), folded; RS →
   * client is its complement. Constant per connection, so the IPv6 rewrite
   * and FNAT64's header swap add one word instead of sixteen.
   */
  addrDelta6 = new Uint16Array(0);
  cip6 = new Uint8Array(0);
  lip6 = new Uint8Array(0);
  rip6 = new Uint8Array(0);
  /** cip6, lip6, rip6 as `addressWords` (addr6.ts): what the data path compares and copies. */
  cip6Words = addressWords(this.cip6);
  lip6Words = addressWords(this.lip6);
  rip6Words = addressWords(this.rip6);
  private clientBuckets6 = new Int32Array(0);
  private replyBuckets6 = new Int32Array(0);

  private readonly nextByClient: Int32Array;
  private readonly nextByReply: Int32Array;
  private readonly clientBuckets: Int32Array;
  private readonly replyBuckets: Int32Array;
  private readonly bucketMask: number;

  private readonly timerNext: Int32Array;
  private readonly timerPrev: Int32Array;
  private readonly wheel: Int32Array;
  /** Slot of each entry in the wheel, -1 when not linked. */
  private readonly timerSlot: Int32Array;
  readonly wheelTickMs: number;
  private readonly wheelMask: number;
  private wheelCursorTick = 0;

  private readonly freeList: Int32Array;
  private freeTop: number;

  constructor(capacity: number, wheelSlots = 1024, wheelTickMs = 100) {
    if (capacity < 1 || capacity > 0x7fffffff)
      throw new RangeError(`bad connection table capacity ${capacity}`);
    this.capacity = capacity;
    this.cip = new Uint32Array(capacity);
    this.cport = new Uint16Array(capacity);
    this.svc = new Uint16Array(capacity);
    this.lip = new Uint32Array(capacity);
    this.lport = new Uint16Array(capacity);
    this.rip = new Uint32Array(capacity);
    this.rport = new Uint16Array(capacity);
    this.rs = new Uint16Array(capacity);
    this.lipIndex = new Uint16Array(capacity);
    this.state = new Uint8Array(capacity);
    this.flags = new Uint8Array(capacity);
    this.seqDelta = new Uint32Array(capacity);
    this.lbIsn = new Uint32Array(capacity);
    this.shift = new Uint8Array(capacity);
    this.fdataSeq = new Uint32Array(capacity);
    this.clientNxt = new Uint32Array(capacity);
    this.rsNxt = new Uint32Array(capacity);
    this.expires = new Uint32Array(capacity);
    this.nextByClient = new Int32Array(capacity);
    this.nextByReply = new Int32Array(capacity);
    const buckets = nextPow2(capacity);
    this.bucketMask = buckets - 1;
    this.clientBuckets = new Int32Array(buckets).fill(-1);
    this.replyBuckets = new Int32Array(buckets).fill(-1);
    this.timerNext = new Int32Array(capacity);
    this.timerPrev = new Int32Array(capacity);
    this.timerSlot = new Int32Array(capacity).fill(-1);
    const slots = nextPow2(wheelSlots);
    this.wheel = new Int32Array(slots).fill(-1);
    this.wheelMask = slots - 1;
    this.wheelTickMs = wheelTickMs;
    this.freeList = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.freeList[i] = capacity - 1 - i;
    this.freeTop = capacity;
  }

  /** Allocates the per-connection SYNPROXY arrays (17 bytes per connection); idempotent. */
  enableSynproxy(): void {
    if (this.ackDelta.length === this.capacity) return;
    const n = this.capacity;
    this.ackDelta = new Uint32Array(n);
    this.spData = new Uint16Array(n);
    this.spSlot = new Int32Array(n).fill(-1);
    this.rsAck = new Uint32Array(n);
    this.rsWin = new Uint16Array(n);
    this.stormCount = new Uint8Array(n);
  }

  /** Allocates the IPv6 side table (51 bytes per connection, plus two bucket arrays); idempotent. */
  enableIpv6(): void {
    if (this.fam6.length === this.capacity) return;
    const n = this.capacity;
    this.fam6 = new Uint8Array(n);
    this.addrDelta6 = new Uint16Array(n);
    this.cip6 = new Uint8Array(n * 16);
    this.lip6 = new Uint8Array(n * 16);
    this.rip6 = new Uint8Array(n * 16);
    this.cip6Words = addressWords(this.cip6);
    this.lip6Words = addressWords(this.lip6);
    this.rip6Words = addressWords(this.rip6);
    this.clientBuckets6 = new Int32Array(this.clientBuckets.length).fill(-1);
    this.replyBuckets6 = new Int32Array(this.replyBuckets.length).fill(-1);
  }

  get ipv6Enabled(): boolean {
    return this.fam6.length === this.capacity;
  }

  get synproxyEnabled(): boolean {
    return this.ackDelta.length === this.capacity;
  }

  /** Bytes of typed-array memory the table holds, divided by capacity gives bytes/connection. */
  get memoryBytes(): number {
    let total = 0;
    for (const a of [
      this.cip,
      this.cport,
      this.svc,
      this.lip,
      this.lport,
      this.rip,
      this.rport,
      this.rs,
      this.lipIndex,
      this.state,
      this.flags,
      this.seqDelta,
      this.lbIsn,
      this.shift,
      this.fdataSeq,
      this.clientNxt,
      this.rsNxt,
      this.expires,
      this.nextByClient,
      this.nextByReply,
      this.clientBuckets,
      this.replyBuckets,
      this.timerNext,
      this.timerPrev,
      this.timerSlot,
      this.wheel,
      this.freeList,
      this.ackDelta,
      this.spData,
      this.spSlot,
      this.rsAck,
      this.rsWin,
      this.stormCount,
      this.fam6,
      this.addrDelta6,
      this.cip6,
      this.lip6,
      this.rip6,
      this.clientBuckets6,
      this.replyBuckets6,
    ]) {
      total += a.byteLength;
    }
    return total;
  }

  get full(): boolean {
    return this.freeTop === 0;
  }

  private clientBucket(cip: number, cport: number, svc: number): number {
    return mix(cip, cport, svc, this.bucketMask);
  }

  private replyBucket(rip: number, rport: number, lip: number, lport: number): number {
    return mix(rip ^ lip, rport, lport, this.bucketMask);
  }

  /** Finds the connection of a client→VIP packet whose IPv4 header is at ipOff and TCP header at tcpOff. */
  lookupClientAt(b: Uint8Array, ipOff: number, tcpOff: number, svc: number): number {
    const cip =
      ((b[ipOff + 12]! << 24) | (b[ipOff + 13]! << 16) | (b[ipOff + 14]! << 8) | b[ipOff + 15]!) >>>
      0;
    const cport = (b[tcpOff]! << 8) | b[tcpOff + 1]!;
    let i = this.clientBuckets[this.clientBucket(cip, cport, svc)]!;
    while (i >= 0) {
      if (this.cip[i] === cip && this.cport[i] === cport && this.svc[i] === svc) return i;
      i = this.nextByClient[i]!;
    }
    return -1;
  }

  /** Finds the connection of an RS→LIP packet. */
  lookupReplyAt(b: Uint8Array, ipOff: number, tcpOff: number): number {
    const rip =
      ((b[ipOff + 12]! << 24) | (b[ipOff + 13]! << 16) | (b[ipOff + 14]! << 8) | b[ipOff + 15]!) >>>
      0;
    const lip =
      ((b[ipOff + 16]! << 24) | (b[ipOff + 17]! << 16) | (b[ipOff + 18]! << 8) | b[ipOff + 19]!) >>>
      0;
    const rport = (b[tcpOff]! << 8) | b[tcpOff + 1]!;
    const lport = (b[tcpOff + 2]! << 8) | b[tcpOff + 3]!;
    return this.lookupReply(rip, rport, lip, lport);
  }

  /** The IPv4 entry whose reply tuple is RIP:rport → LIP:lport, or -1. */
  lookupReply(rip: number, rport: number, lip: number, lport: number): number {
    let i = this.replyBuckets[this.replyBucket(rip, rport, lip, lport)]!;
    while (i >= 0) {
      if (
        this.lport[i] === lport &&
        this.lip[i] === lip &&
        this.rip[i] === rip &&
        this.rport[i] === rport
      )
        return i;
      i = this.nextByReply[i]!;
    }
    return -1;
  }

  /** Finds the connection of an IPv6 client→VIP packet: source address at srcOff, TCP header at tcpOff. */
  lookupClient6At(b: Uint8Array, srcOff: number, tcpOff: number, svc: number): number {
    const h = fold16(b, srcOff);
    const cport = (b[tcpOff]! << 8) | b[tcpOff + 1]!;
    let i = this.clientBuckets6[mix(h, cport, svc, this.bucketMask)]!;
    while (i >= 0) {
      if (
        this.cip[i] === h &&
        this.cport[i] === cport &&
        this.svc[i] === svc &&
        equal16Words(this.cip6Words, i * 16, b, srcOff)
      )
        return i;
      i = this.nextByClient[i]!;
    }
    return -1;
  }

  /** Finds the connection of an IPv6 RS→LIP packet: source (RIP) at srcOff, destination (LIP) at srcOff + 16. */
  lookupReply6At(b: Uint8Array, srcOff: number, tcpOff: number): number {
    return this.lookupReply6HashedAt(b, srcOff, tcpOff, fold16(b, srcOff + 16));
  }

  /** `lookupReply6At` with the LIP's fold16 already taken (the packet's destination, folded once). */
  lookupReply6HashedAt(b: Uint8Array, srcOff: number, tcpOff: number, lip: number): number {
    const rip = fold16(b, srcOff);
    const rport = (b[tcpOff]! << 8) | b[tcpOff + 1]!;
    const lport = (b[tcpOff + 2]! << 8) | b[tcpOff + 3]!;
    let i = this.replyBuckets6[this.replyBucket(rip, rport, lip, lport)]!;
    while (i >= 0) {
      if (
        this.lport[i] === lport &&
        this.lip[i] === lip &&
        this.rip[i] === rip &&
        this.rport[i] === rport &&
        equal16Words(this.rip6Words, i * 16, b, srcOff) &&
        equal16Words(this.lip6Words, i * 16, b, srcOff + 16)
      )
        return i;
      i = this.nextByReply[i]!;
    }
    return -1;
  }

  /**
   * Finds the connection of a quoted IPv6 LIP→RS packet (the header an
   * ICMPv6 error from the RS's side quotes): source (LIP) at srcOff,
   * destination (RIP) at srcOff + 16, the reply tuple read the other way round.
   */
  lookupReply6QuotedAt(b: Uint8Array, srcOff: number, tcpOff: number): number {
    const lip = fold16(b, srcOff);
    const rip = fold16(b, srcOff + 16);
    const lport = (b[tcpOff]! << 8) | b[tcpOff + 1]!;
    const rport = (b[tcpOff + 2]! << 8) | b[tcpOff + 3]!;
    let i = this.replyBuckets6[this.replyBucket(rip, rport, lip, lport)]!;
    while (i >= 0) {
      if (
        this.lport[i] === lport &&
        this.lip[i] === lip &&
        this.rip[i] === rip &&
        this.rport[i] === rport &&
        equal16(this.lip6, i * 16, b, srcOff) &&
        equal16(this.rip6, i * 16, b, srcOff + 16)
      )
        return i;
      i = this.nextByReply[i]!;
    }
    return -1;
  }

  /**
   * `insertAt` for an IPv6 client (source address at srcOff, TCP header at
   * tcpOff); the entry is CF_IPV6 with FAM_CLIENT_V6, and `replyV6` adds
   * FAM_REPLY_V6 (the caller then fills lip6/rip6 before `linkReply`).
   * Needs `enableIpv6`. Returns -1 when the table is full.
   */
  insert6At(b: Uint8Array, srcOff: number, tcpOff: number, svc: number, replyV6: boolean): number {
    if (this.freeTop === 0) return -1;
    const i = this.freeList[--this.freeTop]!;
    const h = fold16(b, srcOff);
    this.cip[i] = h;
    copy16(this.cip6, i * 16, b, srcOff);
    this.cport[i] = (b[tcpOff]! << 8) | b[tcpOff + 1]!;
    this.resetEntry(i, svc, CF_IN_USE | CF_IPV6);
    this.fam6[i] = replyV6 ? FAM_CLIENT_V6 | FAM_REPLY_V6 : FAM_CLIENT_V6;
    const cb = mix(h, this.cport[i], svc, this.bucketMask);
    this.nextByClient[i] = this.clientBuckets6[cb]!;
    this.clientBuckets6[cb] = i;
    this.nextByReply[i] = -1;
    this.count++;
    return i;
  }

  private resetEntry(i: number, svc: number, flags: number): void {
    this.svc[i] = svc;
    this.state[i] = TcpState.None;
    this.flags[i] = flags;
    this.seqDelta[i] = 0;
    this.lbIsn[i] = 0;
    this.shift[i] = 0;
    this.fdataSeq[i] = 0;
    this.clientNxt[i] = 0;
    this.rsNxt[i] = 0;
    if (this.ackDelta.length !== 0) {
      this.ackDelta[i] = 0;
      this.spData[i] = 0;
      this.spSlot[i] = -1;
      this.rsAck[i] = 0;
      this.rsWin[i] = 0;
      this.stormCount[i] = 0;
    }
  }

  /** True when entry i's reply tuple (LIP, RIP) is IPv6. */
  replyIsV6(i: number): boolean {
    return (this.flags[i]! & CF_IPV6) !== 0 && (this.fam6[i]! & FAM_REPLY_V6) !== 0;
  }

  /**
   * Finds the connection of a quoted VIP→client packet (the header an ICMP
   * error from the client's side quotes): the client is its destination.
   */
  lookupClientQuotedAt(b: Uint8Array, ipOff: number, tcpOff: number, svc: number): number {
    const cip =
      ((b[ipOff + 16]! << 24) | (b[ipOff + 17]! << 16) | (b[ipOff + 18]! << 8) | b[ipOff + 19]!) >>>
      0;
    const cport = (b[tcpOff + 2]! << 8) | b[tcpOff + 3]!;
    let i = this.clientBuckets[this.clientBucket(cip, cport, svc)]!;
    while (i >= 0) {
      if (this.cip[i] === cip && this.cport[i] === cport && this.svc[i] === svc) return i;
      i = this.nextByClient[i]!;
    }
    return -1;
  }

  /**
   * Finds the connection of a quoted LIP→RS packet (the header an ICMP error
   * from the RS's side quotes): the reply tuple read the other way round.
   */
  lookupReplyQuotedAt(b: Uint8Array, ipOff: number, tcpOff: number): number {
    const lip =
      ((b[ipOff + 12]! << 24) | (b[ipOff + 13]! << 16) | (b[ipOff + 14]! << 8) | b[ipOff + 15]!) >>>
      0;
    const rip =
      ((b[ipOff + 16]! << 24) | (b[ipOff + 17]! << 16) | (b[ipOff + 18]! << 8) | b[ipOff + 19]!) >>>
      0;
    const lport = (b[tcpOff]! << 8) | b[tcpOff + 1]!;
    const rport = (b[tcpOff + 2]! << 8) | b[tcpOff + 3]!;
    let i = this.replyBuckets[this.replyBucket(rip, rport, lip, lport)]!;
    while (i >= 0) {
      if (
        this.lport[i] === lport &&
        this.lip[i] === lip &&
        this.rip[i] === rip &&
        this.rport[i] === rport
      )
        return i;
      i = this.nextByReply[i]!;
    }
    return -1;
  }

  /**
   * Allocates an entry for the client of the packet at ipOff/tcpOff and links
   * it by client tuple; the caller fills lip/lport/rip/rport and calls
   * `linkReply`. Returns -1 when the table is full.
   */
  insertAt(b: Uint8Array, ipOff: number, tcpOff: number, svc: number): number {
    if (this.freeTop === 0) return -1;
    const i = this.freeList[--this.freeTop]!;
    this.cip[i] =
      ((b[ipOff + 12]! << 24) | (b[ipOff + 13]! << 16) | (b[ipOff + 14]! << 8) | b[ipOff + 15]!) >>>
      0;
    this.cport[i] = (b[tcpOff]! << 8) | b[tcpOff + 1]!;
    this.svc[i] = svc;
    this.state[i] = TcpState.None;
    this.flags[i] = CF_IN_USE;
    this.seqDelta[i] = 0;
    this.lbIsn[i] = 0;
    this.shift[i] = 0;
    this.fdataSeq[i] = 0;
    this.clientNxt[i] = 0;
    this.rsNxt[i] = 0;
    if (this.ackDelta.length !== 0) {
      this.ackDelta[i] = 0;
      this.spData[i] = 0;
      this.spSlot[i] = -1;
      this.rsAck[i] = 0;
      this.rsWin[i] = 0;
      this.stormCount[i] = 0;
    }
    const cb = this.clientBucket(this.cip[i], this.cport[i], svc);
    this.nextByClient[i] = this.clientBuckets[cb]!;
    this.clientBuckets[cb] = i;
    this.nextByReply[i] = -1;
    this.count++;
    return i;
  }

  /**
   * (Re)starts entry i's timer from `expires[i]`, which the caller has set.
   * Packets only push `expires` later and leave the entry in its slot (found
   * early, it is re-filed); a deadline brought *earlier* — a state change to
   * a shorter timeout — must be re-filed now, or it would wait for the old slot.
   */
  armTimer(i: number): void {
    this.unlinkTimer(i);
    this.linkTimer(i);
  }

  /** Links entry i by its reply tuple once lip/lport/rip/rport are set. */
  linkReply(i: number): void {
    const rb = this.replyBucket(this.rip[i]!, this.rport[i]!, this.lip[i]!, this.lport[i]!);
    const buckets = this.replyIsV6(i) ? this.replyBuckets6 : this.replyBuckets;
    this.nextByReply[i] = buckets[rb]!;
    buckets[rb] = i;
  }

  /** Unlinks an entry from both indexes and the wheel and frees it. */
  remove(i: number): void {
    const v6 = (this.flags[i]! & CF_IPV6) !== 0;
    const clientBuckets = v6 ? this.clientBuckets6 : this.clientBuckets;
    const replyBuckets = this.replyIsV6(i) ? this.replyBuckets6 : this.replyBuckets;
    const cb = this.clientBucket(this.cip[i]!, this.cport[i]!, this.svc[i]!);
    let p = clientBuckets[cb]!;
    if (p === i) clientBuckets[cb] = this.nextByClient[i]!;
    else {
      while (p >= 0 && this.nextByClient[p] !== i) p = this.nextByClient[p]!;
      if (p >= 0) this.nextByClient[p] = this.nextByClient[i]!;
    }
    const rb = this.replyBucket(this.rip[i]!, this.rport[i]!, this.lip[i]!, this.lport[i]!);
    p = replyBuckets[rb]!;
    if (p === i) replyBuckets[rb] = this.nextByReply[i]!;
    else {
      while (p >= 0 && this.nextByReply[p] !== i) p = this.nextByReply[p]!;
      if (p >= 0) this.nextByReply[p] = this.nextByReply[i]!;
    }
    this.unlinkTimer(i);
    this.state[i] = TcpState.None;
    this.flags[i] = 0;
    if (v6) this.fam6[i] = 0;
    this.freeList[this.freeTop++] = i;
    this.count--;
  }

  private slotOf(i: number): number {
    // Deadlines beyond one wheel turn wait in the last reachable slot and are re-filed when it fires.
    const tick = Math.floor(this.expires[i]! / this.wheelTickMs);
    const maxTick = this.wheelCursorTick + this.wheelMask;
    // A deadline at or before the cursor waits in the cursor's own slot: `advance` sweeps that slot
    // again on its next call (it starts there), so the entry goes as soon as the clock passes its
    // deadline, never a wheel tick late. An entry put back while that slot is swept is not met
    // again in the same sweep: the sweep walks the list it took off the slot.
    const minTick = this.wheelCursorTick;
    return (tick > maxTick ? maxTick : tick < minTick ? minTick : tick) & this.wheelMask;
  }

  private linkTimer(i: number): void {
    const s = this.slotOf(i);
    const head = this.wheel[s]!;
    this.timerNext[i] = head;
    this.timerPrev[i] = -1;
    if (head >= 0) this.timerPrev[head] = i;
    this.wheel[s] = i;
    this.timerSlot[i] = s;
  }

  private unlinkTimer(i: number): void {
    const s = this.timerSlot[i]!;
    if (s < 0) return;
    const n = this.timerNext[i]!;
    const p = this.timerPrev[i]!;
    if (p >= 0) this.timerNext[p] = n;
    else this.wheel[s] = n;
    if (n >= 0) this.timerPrev[n] = p;
    this.timerSlot[i] = -1;
  }

  /** Moves the wheel up to `now`; calls `onExpire(i)` for every entry whose deadline passed. */
  advance(now: number, onExpire: (i: number) => void): void {
    const target = Math.floor(now / this.wheelTickMs);
    // A long pause must not walk more than one full turn: every slot is visited once at most.
    let start = this.wheelCursorTick;
    if (target - start > this.wheelMask) start = target - this.wheelMask;
    for (let t = start; t <= target; t++) {
      this.wheelCursorTick = t;
      const s = t & this.wheelMask;
      let i = this.wheel[s]!;
      this.wheel[s] = -1;
      while (i >= 0) {
        const next = this.timerNext[i]!;
        this.timerSlot[i] = -1;
        if (this.expires[i]! <= now) onExpire(i);
        else this.linkTimer(i);
        i = next;
      }
    }
    this.wheelCursorTick = target;
  }
}
