import { equal16, fold16 } from './addr6.js';
import type { EngineContext } from './context.js';
import { C } from './counters.js';
import type { Service } from './services.js';

/** `tState` of a template slot. */
const T_FREE = 0;
/** In the hash index: new connections of its client find it. */
const T_LINKED = 1;
/** Out of the index (its RS went, its service's persistence changed) but still counted by connections. */
const T_DEAD = 2;

/** Slots the sweep looks at per run, at least; and how often at most it runs (engine ms). */
const SWEEP_MIN_SLOTS = 4096;
const SWEEP_EVERY_MS = 100;

/** ipvsadm's and keepalived's longest persistence timeout: 31 days, in seconds. */
export const MAX_PERSISTENCE_TIMEOUT = 86400 * 31;

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function mixKey(svc: number, addr: number, mask: number): number {
  let h = Math.imul(addr ^ 0x9e3779b9, 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h ^ svc, 0xc2b2ae35);
  h ^= h >>> 16;
  return h & mask;
}

/** A template as `ctl -Lnc` shows it. */
export interface TemplateEntry {
  svc: number;
  /** The client network: the client's address under the service's mask (IPv4 number or 16 bytes). */
  addr4: number;
  addr6: Uint8Array | undefined;
  rs: number;
  expiresInMs: number;
  /** Connections and flows the template holds to its RS now. */
  controlled: number;
}

/**
 * Client persistence as IPVS keeps it (`ip_vs_sched_persist`): per
 * persistent service, a template keyed by the client's address under the
 * service's granularity (an IPv4 netmask, an IPv6 prefix length) names the
 * RS that client's new connections go to. Found and its RS usable: that RS,
 * no scheduler call, the template re-armed; otherwise the scheduler picks
 * and a template is made. A template lives `persistence_timeout` after its
 * last use, and on while connections it controls exist (IPVS's
 * `n_control`, whose template timer is re-armed while the count is above
 * 0); when the last of them ends it has a full timeout from then (IPVS's
 * next timer run falls anywhere in that timeout: here it is its end, so
 * the outcome does not depend on when a timer happened to run). Expired
 * templates are freed when met by a lookup, by a sweep of a share of the
 * table each time a template is made (at most every 100 ms), when the
 * table is full, and before it is counted or listed: nothing per packet
 * or per tick.
 *
 * The templates are a table of their own (struct-of-arrays, a chained
 * index, a free list), made with the first persistent service, so the
 * connection table's entries do not grow. A connection opened through a
 * template is linked to it by a per-connection slot index (`tcpControl`,
 * `udpControl`, 4 bytes a connection, -1 for none), which its release reads
 * to count the template down. Free connection slots always hold -1.
 *
 * An RS taken out of its service or at weight 0 does not keep its
 * templates: the next new connection of such a client is scheduled afresh
 * (IPVS with `expire_quiescent_template=1`; see the engine README for why).
 */
export class PersistenceTemplates {
  /** A persistent service exists (the tables below are allocated). */
  enabled = false;
  capacity = 0;
  count = 0;
  /** Per template slot. */
  tSvc = new Uint16Array(0);
  tRs = new Uint16Array(0);
  /** The masked IPv4 client network, or the fold16 of the masked IPv6 one. */
  tAddr = new Uint32Array(0);
  tAddr6 = new Uint8Array(0);
  tV6 = new Uint8Array(0);
  tState = new Uint8Array(0);
  tControl = new Int32Array(0);
  /** Deadline in engine ms. */
  tExpires = new Uint32Array(0);
  private tNext = new Int32Array(0);
  private buckets = new Int32Array(0);
  private bucketMask = 0;
  private freeList = new Int32Array(0);
  private freeTop = 0;
  /** Per connection slot of the TCP table and of the UDP flow table: the controlling template or -1. */
  tcpControl = new Int32Array(0);
  udpControl = new Int32Array(0);
  /** The template the last `choose4`/`choose6` found or made, for `bind`; -1 when none. */
  private pending = -1;
  /** `settle`'s last answer was the scheduler's new pick (no template served). */
  private fresh = false;
  private readonly masked6 = new Uint8Array(16);
  private sweepCursor = 0;
  private lastSweep = 0;

  constructor(private readonly ctx: EngineContext) {}

  /** Allocates the template table and the control links (about 46 + 8 bytes per entry); idempotent. */
  enable(): void {
    if (this.enabled) return;
    const n = this.ctx.opts.maxConnections;
    this.enabled = true;
    this.capacity = n;
    this.tSvc = new Uint16Array(n);
    this.tRs = new Uint16Array(n);
    this.tAddr = new Uint32Array(n);
    this.tAddr6 = new Uint8Array(n * 16);
    this.tV6 = new Uint8Array(n);
    this.tState = new Uint8Array(n);
    this.tControl = new Int32Array(n);
    this.tExpires = new Uint32Array(n);
    this.tNext = new Int32Array(n);
    const b = nextPow2(n);
    this.buckets = new Int32Array(b).fill(-1);
    this.bucketMask = b - 1;
    this.freeList = new Int32Array(n);
    for (let i = 0; i < n; i++) this.freeList[i] = n - 1 - i;
    this.freeTop = n;
    this.tcpControl = new Int32Array(n).fill(-1);
    this.udpControl = new Int32Array(n).fill(-1);
  }

  /**
   * The RS (global index) for a new connection of IPv4 client at b[srcOff]
   * to persistent service svc, or -1 when none can take it. `clientHash`
   * goes to the scheduler when there is no template.
   */
  choose4(svc: Service, b: Uint8Array, srcOff: number, clientHash: number): number {
    const net =
      (((b[srcOff]! << 24) | (b[srcOff + 1]! << 16) | (b[srcOff + 2]! << 8) | b[srcOff + 3]!) &
        svc.persistMask4) >>>
      0;
    const bucket = mixKey(svc.index, net, this.bucketMask);
    let t = this.buckets[bucket]!;
    while (t >= 0) {
      if (this.tV6[t] === 0 && this.tAddr[t] === net && this.tSvc[t] === svc.index) break;
      t = this.tNext[t]!;
    }
    const rs = this.settle(t, svc, clientHash);
    if (!this.fresh) return rs;
    const n = this.take();
    if (n >= 0) {
      this.tV6[n] = 0;
      this.tAddr[n] = net;
      this.fill(n, svc, rs, bucket);
    }
    return rs;
  }

  /** `choose4` for the IPv6 client address at b[srcOff], masked to the service's prefix length. */
  choose6(svc: Service, b: Uint8Array, srcOff: number, clientHash: number): number {
    const m = this.masked6;
    const prefix = svc.persistPrefix6;
    for (let i = 0; i < 16; i++) {
      const bits = prefix - i * 8;
      m[i] =
        bits >= 8 ? b[srcOff + i]! : bits <= 0 ? 0 : b[srcOff + i]! & ((0xff << (8 - bits)) & 0xff);
    }
    const folded = fold16(m, 0);
    const bucket = mixKey(svc.index, folded, this.bucketMask);
    let t = this.buckets[bucket]!;
    while (t >= 0) {
      if (
        this.tV6[t] === 1 &&
        this.tAddr[t] === folded &&
        this.tSvc[t] === svc.index &&
        equal16(this.tAddr6, t * 16, m, 0)
      )
        break;
      t = this.tNext[t]!;
    }
    const rs = this.settle(t, svc, clientHash);
    if (!this.fresh) return rs;
    const n = this.take();
    if (n >= 0) {
      this.tV6[n] = 1;
      this.tAddr[n] = folded;
      this.tAddr6.set(m, n * 16);
      this.fill(n, svc, rs, bucket);
    }
    return rs;
  }

  /**
   * Template t was found for a new connection of svc: its RS when the
   * template is alive and the RS takes new connections (t re-armed and
   * pending), else -1 with t dropped.
   */
  /**
   * The RS of template t (-1: none found) while it still serves, else the
   * scheduler's pick for `clientHash` (-1: no RS); `fresh` is true when
   * the pick is new, and the caller makes the template for it.
   */
  private settle(t: number, svc: Service, clientHash: number): number {
    this.fresh = false;
    if (t >= 0) {
      const rs = this.reuse(t, svc);
      if (rs >= 0) return rs;
    }
    const pick = svc.scheduler.pick(svc.targets, clientHash);
    this.pending = -1;
    if (pick < 0) return -1;
    this.fresh = true;
    return svc.targets[pick]!.index;
  }

  private reuse(t: number, svc: Service): number {
    const ctx = this.ctx;
    const rs = ctx.reg.realServers[this.tRs[t]!]!;
    const expired = ((ctx.now - this.tExpires[t]!) | 0) >= 0 && this.tControl[t] === 0;
    if (!expired && rs.member && rs.weight > 0) {
      this.tExpires[t] = (ctx.now + svc.persistMs) >>> 0;
      this.pending = t;
      ctx.countSvc(svc.index, C.persistence_template_hits);
      return rs.index;
    }
    this.unlink(t);
    return -1;
  }

  private fill(n: number, svc: Service, rs: number, bucket: number): void {
    this.tSvc[n] = svc.index;
    this.tRs[n] = rs;
    this.tControl[n] = 0;
    this.tExpires[n] = (this.ctx.now + svc.persistMs) >>> 0;
    this.tState[n] = T_LINKED;
    this.tNext[n] = this.buckets[bucket]!;
    this.buckets[bucket] = n;
    this.pending = n;
    svc.persistTemplates++;
    this.ctx.countSvc(svc.index, C.persistence_templates_created);
  }

  /** A free template slot, or -1 (counted) when the table is full even after a sweep. */
  private take(): number {
    this.sweep();
    if (this.freeTop === 0) this.sweepAll();
    if (this.freeTop === 0) {
      this.ctx.count(C.persistence_templates_full);
      return -1;
    }
    this.count++;
    return this.freeList[--this.freeTop]!;
  }

  /** Links connection slot c (of the table whose links `control` holds) to the template just chosen. */
  bind(control: Int32Array, c: number): void {
    const t = this.pending;
    if (t < 0) return;
    this.pending = -1;
    control[c] = t;
    this.tControl[t]!++;
  }

  /** Connection slot c goes: its template, if any, counts one connection fewer. */
  release(control: Int32Array, c: number): void {
    const t = control[c]!;
    if (t < 0) return;
    control[c] = -1;
    const left = --this.tControl[t]!;
    if (left !== 0) return;
    if (this.tState[t] === T_DEAD) {
      this.free(t);
      return;
    }
    // Its last connection gone: the client has a full timeout from now to come back to its RS.
    const ms = this.ctx.reg.services[this.tSvc[t]!]!.persistMs;
    const rearm = (this.ctx.now + ms) >>> 0;
    if (((rearm - this.tExpires[t]!) | 0) > 0) this.tExpires[t] = rearm;
  }

  /** Takes t out of the index; it goes now, or once its last connection does. */
  private unlink(t: number): void {
    if (this.tState[t] !== T_LINKED) return;
    const bucket = mixKey(this.tSvc[t]!, this.tAddr[t]!, this.bucketMask);
    let prev = -1;
    let i = this.buckets[bucket]!;
    while (i >= 0 && i !== t) {
      prev = i;
      i = this.tNext[i]!;
    }
    if (i === t) {
      if (prev < 0) this.buckets[bucket] = this.tNext[t]!;
      else this.tNext[prev] = this.tNext[t]!;
    }
    this.tState[t] = T_DEAD;
    if (this.tControl[t] === 0) this.free(t);
  }

  private free(t: number): void {
    this.ctx.reg.services[this.tSvc[t]!]!.persistTemplates--;
    this.tState[t] = T_FREE;
    this.freeList[this.freeTop++] = t;
    this.count--;
  }

  /**
   * Drops a service's templates (its persistence was switched off or its
   * granularity changed): its clients are scheduled afresh.
   */
  flushService(svc: number): void {
    for (let t = 0; t < this.capacity; t++)
      if (this.tState[t] === T_LINKED && this.tSvc[t] === svc) this.unlink(t);
  }

  /**
   * Frees a share of the table's expired templates (past their deadline,
   * no connection left), at most once every SWEEP_EVERY_MS: called when a
   * template is made, so the table keeps room while persistent services
   * take new clients, and nothing runs per packet or per tick.
   */
  private sweep(): void {
    const now = this.ctx.now;
    if (((now - this.lastSweep) | 0) < SWEEP_EVERY_MS) return;
    this.lastSweep = now;
    const n = Math.min(this.capacity, Math.max(SWEEP_MIN_SLOTS, this.capacity >>> 4));
    let t = this.sweepCursor;
    for (let k = 0; k < n; k++) {
      this.sweepOne(t, now);
      t = t + 1 === this.capacity ? 0 : t + 1;
    }
    this.sweepCursor = t;
  }

  /** Frees every expired template: before the table is counted or listed, and when it is full. */
  sweepAll(): void {
    const now = this.ctx.now;
    for (let t = 0; t < this.capacity; t++) this.sweepOne(t, now);
  }

  private sweepOne(t: number, now: number): void {
    if (this.tState[t] !== T_LINKED || this.tControl[t] !== 0) return;
    if (((now - this.tExpires[t]!) | 0) < 0) return;
    this.ctx.count(C.persistence_templates_expired);
    this.unlink(t);
  }

  /** The templates in force (for `ctl -Lnc`), at most `limit`. */
  list(limit: number): TemplateEntry[] {
    const out: TemplateEntry[] = [];
    const now = this.ctx.now;
    for (let t = 0; t < this.capacity && out.length < limit; t++) {
      if (this.tState[t] !== T_LINKED) continue;
      const left = (this.tExpires[t]! - now) | 0;
      if (left <= 0 && this.tControl[t] === 0) continue;
      out.push({
        svc: this.tSvc[t]!,
        addr4: this.tAddr[t]!,
        addr6: this.tV6[t] === 1 ? this.tAddr6.slice(t * 16, t * 16 + 16) : undefined,
        rs: this.tRs[t]!,
        expiresInMs: Math.max(0, left),
        controlled: this.tControl[t]!,
      });
    }
    return out;
  }
}
