/**
 * A deterministic discrete-event network shaped like a FULLNAT deployment:
 *
 *     clients ──client link── middlebox (LB) ──rs link── real servers
 *
 * The middlebox is every host's gateway: whatever a client or RS sends goes
 * over its link to the middlebox (in FULLNAT everything is addressed to the
 * VIP or a LIP anyway). Packets the middlebox emits are routed by destination
 * address to the RS or client owning it; anything else is dropped (`noRoute`).
 *
 * Links have a latency and an MTU. A packet larger than the MTU is dropped by
 * the link; when it was IPv4 with DF set, the hop on the link answers the
 * sender with an ICMP frag-needed carrying the link MTU (an overlay hop
 * between LB and RS behaves like this); when it was IPv6, which routers
 * never fragment, with an ICMPv6 Packet Too Big. Fragmentation is not
 * modelled.
 */
import { addressKey, Ipv6Address, type IpAddress } from '../../wire/address.js';
import { IPPROTO_TCP } from '../../wire/ipv4.js';
import { get32 } from '../../wire/bytes.js';
import type { LabFamily } from '../family.js';
import { EventQueue } from './event-queue.js';
import { buildFragNeeded, buildPacketTooBig } from './segment.js';

export interface Middlebox {
  /** A packet (IPv4 or IPv6) arrives; returns packets to send (copies OK — the sim is not the hot path). */
  receive(pkt: Uint8Array, now: number): Uint8Array[];
  /** Timers; returns packets to send. */
  tick(now: number): Uint8Array[];
}

export interface RsInfo {
  addr: IpAddress;
  port: number;
  /** MTU of the LB→RS link in front of this RS. */
  linkMtu: number;
}

/** What a middlebox factory is told about the network it sits in (IPv4 addresses host-order). */
export interface Topology {
  family: LabFamily;
  vip: IpAddress;
  vport: number;
  rs: RsInfo[];
  lips: IpAddress[];
  /** Distinct client addresses in use. */
  clients: IpAddress[];
  clientLinkMtu: number;
}

export type MiddleboxFactory = (topo: Topology) => Middlebox;

export type LinkName = 'client' | 'rs';
export type Direction = 'toMiddlebox' | 'fromMiddlebox';
export type DropReason = 'tooBig' | 'lost' | 'hook' | 'noRoute';

/** One packet put on a link, at the time it was sent. */
export interface CaptureRecord {
  t: number;
  link: LinkName;
  dir: Direction;
  bytes: Uint8Array;
  drop?: DropReason;
}

export interface LinkConfig {
  latency: number;
  mtu: number;
  /** Source address of the ICMP errors the hop on this link sends about IPv4 packets. */
  hopAddr: number;
  /** Source address of its ICMPv6 errors (about IPv6 packets); none: IPv6 packets are dropped silently. */
  hopAddr6?: Ipv6Address;
}

export interface NetConfig {
  clientLink: LinkConfig;
  rsLink: LinkConfig;
  /** Period of `middlebox.tick`, ms; ticks run only while other events are pending. */
  tickInterval?: number;
  maxEvents?: number;
  /** Virtual-time limit, ms. */
  maxTime?: number;
  capture?: boolean;
}

export interface Timer {
  cancel(): void;
}

/** What a host may do to the world. */
export interface HostIo {
  now(): number;
  /** Sends toward the middlebox; `lose` makes the network lose it (captured as dropped). */
  send(pkt: Uint8Array, opts?: { lose?: boolean }): void;
  setTimer(delay: number, fn: () => void): Timer;
  /** Bumps a named host counter (bad checksums, RSTs sent...). */
  count(name: string): void;
}

export interface Host {
  receive(pkt: Uint8Array): void;
}

export interface NetStats {
  events: number;
  delivered: number;
  /** Packets the middlebox sent that did not fit the link MTU: the LB's fault. */
  linkTooBig: number;
  /** Packets a client or RS sent that did not fit the link MTU (PMTUD at work). */
  hostTooBig: number;
  icmpFromHop: number;
  lost: number;
  hookDropped: number;
  noRoute: number;
  stoppedBy: 'idle' | 'timeCap' | 'eventCap';
  endTime: number;
  /** Host counters by name (e.g. `badPacket`, `rstSent`). */
  hosts: Record<string, number>;
}

type Sender = { kind: 'middlebox' } | { kind: 'host'; host: Host };

interface Attached {
  link: LinkName;
  host: Host;
}

export class Net {
  readonly records: CaptureRecord[] = [];
  readonly stats: NetStats = {
    events: 0,
    delivered: 0,
    linkTooBig: 0,
    hostTooBig: 0,
    icmpFromHop: 0,
    lost: 0,
    hookDropped: 0,
    noRoute: 0,
    stoppedBy: 'idle',
    endTime: 0,
    hosts: {},
  };
  /** Return true to drop a packet about to be put on a link. */
  dropHook: ((r: CaptureRecord) => boolean) | null = null;

  private readonly queue = new EventQueue();
  private readonly hosts = new Map<string, Attached>();
  private readonly tickInterval: number;
  private readonly maxEvents: number;
  private readonly maxTime: number;
  private mb: Middlebox | null = null;
  private t = 0;
  private live = 0;
  private tickScheduled = false;

  constructor(private readonly cfg: NetConfig) {
    this.tickInterval = cfg.tickInterval ?? 10;
    this.maxEvents = cfg.maxEvents ?? 2_000_000;
    this.maxTime = cfg.maxTime ?? 60_000;
  }

  get now(): number {
    return this.t;
  }

  setMiddlebox(mb: Middlebox): void {
    this.mb = mb;
  }

  /** Attaches a host owning `addr`; the factory receives the host's I/O. */
  addHost<H extends Host>(link: LinkName, addr: IpAddress, make: (io: HostIo) => H): H {
    const key = addressKey(addr);
    if (this.hosts.has(key)) throw new Error(`address ${key} already attached`);
    // Sends from inside the host's constructor are dropped: ICMP answers need the host object.
    let self: H | null = null;
    const io: HostIo = {
      now: () => this.t,
      send: (pkt, opts) => {
        if (self)
          this.transmit(
            link,
            'toMiddlebox',
            pkt,
            { kind: 'host', host: self },
            opts?.lose === true,
          );
      },
      setTimer: (delay, fn) => this.at(delay, fn),
      count: (name) => {
        this.stats.hosts[name] = (this.stats.hosts[name] ?? 0) + 1;
      },
    };
    self = make(io);
    this.hosts.set(key, { link, host: self });
    return self;
  }

  /** Schedules `fn` after `delay` ms of virtual time; it keeps the run alive. */
  at(delay: number, fn: () => void): Timer {
    this.live++;
    const e = this.queue.push(this.t + Math.max(0, delay), fn, true);
    return {
      cancel: () => {
        if (e.cancelled) return;
        e.cancelled = true;
        this.live--;
      },
    };
  }

  /** Runs until nothing is pending, or a time/event cap is hit. */
  run(): NetStats {
    this.scheduleTick();
    for (;;) {
      const e = this.queue.pop();
      if (!e) {
        this.stats.stoppedBy = 'idle';
        break;
      }
      if (e.cancelled) continue;
      if (e.live) this.live--;
      if (e.t > this.maxTime) {
        this.stats.stoppedBy = 'timeCap';
        break;
      }
      if (this.stats.events >= this.maxEvents) {
        this.stats.stoppedBy = 'eventCap';
        break;
      }
      this.stats.events++;
      this.t = e.t;
      // Mark consumed so a late cancel() does not decrement `live` twice.
      e.cancelled = true;
      e.fn();
      this.scheduleTick();
    }
    this.stats.endTime = this.t;
    return this.stats;
  }

  private scheduleTick(): void {
    if (this.tickScheduled || this.live === 0 || !this.mb || this.tickInterval <= 0) return;
    this.tickScheduled = true;
    const next = (Math.floor(this.t / this.tickInterval) + 1) * this.tickInterval;
    this.queue.push(
      next,
      () => {
        this.tickScheduled = false;
        if (this.mb) this.fromMiddlebox(this.mb.tick(this.t));
      },
      false,
    );
  }

  private fromMiddlebox(out: Uint8Array[]): void {
    for (const p of out) {
      // The middlebox may hand out views of pooled buffers it reuses later.
      const pkt = p.slice();
      const to = this.route(pkt);
      if (!to) {
        this.stats.noRoute++;
        // Kept in the capture (filed under the client link) so a trace shows the misrouted packet.
        if (this.cfg.capture)
          this.records.push({
            t: this.t,
            link: 'client',
            dir: 'fromMiddlebox',
            bytes: pkt,
            drop: 'noRoute',
          });
        continue;
      }
      this.transmit(to.link, 'fromMiddlebox', pkt, { kind: 'middlebox' }, false);
    }
  }

  private transmit(
    link: LinkName,
    dir: Direction,
    pkt: Uint8Array,
    sender: Sender,
    lose: boolean,
  ): void {
    const lc = link === 'client' ? this.cfg.clientLink : this.cfg.rsLink;
    const rec: CaptureRecord = {
      t: this.t,
      link,
      dir,
      bytes: this.cfg.capture ? pkt.slice() : pkt,
    };
    if (lose) {
      rec.drop = 'lost';
      this.stats.lost++;
    } else if (pkt.length > lc.mtu) {
      rec.drop = 'tooBig';
      if (sender.kind === 'middlebox') this.stats.linkTooBig++;
      else this.stats.hostTooBig++;
    } else if (this.dropHook?.(rec)) {
      rec.drop = 'hook';
      this.stats.hookDropped++;
    }
    if (this.cfg.capture) this.records.push(rec);
    if (rec.drop === 'tooBig') {
      this.hopError(link, dir, pkt, lc, sender);
      return;
    }
    if (rec.drop) return;
    if (dir === 'toMiddlebox') {
      this.deliverLater(lc.latency, () => {
        if (this.mb) this.fromMiddlebox(this.mb.receive(pkt, this.t));
      });
    } else {
      const to = this.route(pkt);
      if (to) this.deliverLater(lc.latency, () => to.host.receive(pkt));
    }
  }

  /** The host owning a packet's destination address (IPv4 or IPv6), if any. */
  private route(pkt: Uint8Array): Attached | undefined {
    if (pkt.length >= 40 && pkt[0]! >>> 4 === 6)
      return this.hosts.get(addressKey(Ipv6Address.fromBytes(pkt, 24)));
    if (pkt.length >= 20) return this.hosts.get(addressKey(get32(pkt, 16)));
    return undefined;
  }

  /**
   * The hop answers an oversized TCP packet straight back to its sender:
   * IPv4 with DF gets frag-needed, IPv6 gets Packet Too Big.
   */
  private hopError(
    link: LinkName,
    dir: Direction,
    pkt: Uint8Array,
    lc: LinkConfig,
    sender: Sender,
  ): void {
    let icmp: Uint8Array;
    if (pkt[0]! >>> 4 === 6) {
      if (pkt[6] !== IPPROTO_TCP || !lc.hopAddr6) return;
      icmp = buildPacketTooBig(lc.hopAddr6, pkt, lc.mtu);
    } else {
      const df = pkt.length >= 20 && (pkt[6]! & 0x40) !== 0;
      if (!df || pkt[9] !== IPPROTO_TCP) return;
      icmp = buildFragNeeded(lc.hopAddr, pkt, lc.mtu);
    }
    this.stats.icmpFromHop++;
    const back: Direction = dir === 'toMiddlebox' ? 'fromMiddlebox' : 'toMiddlebox';
    if (this.cfg.capture) this.records.push({ t: this.t, link, dir: back, bytes: icmp.slice() });
    this.deliverLater(lc.latency, () => {
      if (sender.kind === 'host') sender.host.receive(icmp);
      else if (this.mb) this.fromMiddlebox(this.mb.receive(icmp, this.t));
    });
  }

  private deliverLater(latency: number, fn: () => void): void {
    this.at(latency, () => {
      this.stats.delivered++;
      fn();
    });
  }
}
