/**
 * One peer as this node's channel sees it: never heard, up, or down (silent
 * for more than 5 heartbeats), the incarnation it runs, and what hearing
 * it again means. A peer back with a newer incarnation restarted: its
 * entries here are kept and handed back when it asks for a table. A peer
 * back from down with the same incarnation was cut off (a partition): the
 * entries held for it may have ended meanwhile, so they are dropped and its
 * table asked for again, and it gets this node's own entries only — never
 * its old ones back.
 */
import { addressEquals, addressFamily, type IpAddress } from '../../wire/address.js';
import { parseIpv4 } from '../../wire/bytes.js';
import { Ipv6Address } from '../../wire/address.js';
import type { SyncPeerSpec } from '../model.js';
import { ReplayWindow, type ReplayVerdict } from './replay-window.js';

export type SyncPeerState = 'never-heard' | 'up' | 'down';

/** What a verified, in-window message from a peer means for it. */
export type PeerEvent =
  /** Heard for the first time (or again while up, same incarnation): nothing to do. */
  | 'heard'
  /** Back from down with the same incarnation: purge its entries, ask for its table. */
  | 'healed'
  /** A newer incarnation: keep its entries, hand them back when it asks. */
  | 'restarted';

export class SyncPeer {
  readonly nodeId: number;
  readonly addr: IpAddress;
  readonly port: number;
  state: SyncPeerState = 'never-heard';
  /** Date.now() of the last accepted message; 0 before the first. */
  lastHeard = 0;
  readonly window = new ReplayWindow();
  /** It restarted: its next table request gets its own entries back too. */
  handBack = false;
  /** A table asked of it and not complete yet (TABLE_END not received). */
  awaitingTable = false;
  /** When this node last asked it for a table (Date.now()). */
  lastAsked = 0;
  /** When a TABLE message last came from it (Date.now()). */
  lastTableChunk = 0;
  /** It sent TABLE_END for the current request. */
  answered = false;
  /** A table is being streamed to it. */
  exporting = false;

  constructor(spec: Pick<SyncPeerSpec, 'nodeId' | 'addr' | 'port'>) {
    this.nodeId = spec.nodeId;
    this.addr = spec.addr;
    this.port = spec.port;
  }

  /** Whether a datagram from `address`:`port` (as the socket reports them) is this peer's. */
  isSource(address: string, port: number): boolean {
    if (port !== this.port) return false;
    if (addressFamily(this.addr) === 4) {
      // A dual-stack socket would show an IPv4 peer as ::ffff:a.b.c.d; ours is bound to one family.
      const a = parseIpv4(address.startsWith('::ffff:') ? address.slice(7) : address);
      return a >= 0 && a === this.addr;
    }
    const a = Ipv6Address.parse(address);
    return a !== null && addressEquals(a, this.addr);
  }

  /**
   * A message passed the MAC: the replay window's verdict, and when it is
   * accepted, the state change it brings.
   */
  heard(incarnation: number, sequence: number, now: number): ReplayVerdict | PeerEvent {
    const verdict = this.window.accept(incarnation, sequence);
    if (verdict === 'old_incarnation' || verdict === 'replay') return verdict;
    const wasDown = this.state === 'down';
    this.state = 'up';
    this.lastHeard = now;
    if (verdict === 'restarted') {
      this.handBack = true;
      return 'restarted';
    }
    return wasDown ? 'healed' : 'heard';
  }

  /** Marks the peer down once silent for `downAfterMs`; true when that happens now. */
  checkSilence(now: number, downAfterMs: number): boolean {
    if (this.state !== 'up' || now - this.lastHeard <= downAfterMs) return false;
    this.state = 'down';
    return true;
  }

  /** What a channel restarted by a reload keeps of the old one's view of this peer. */
  carryFrom(old: SyncPeer): void {
    this.window.copyFrom(old.window);
    this.state = old.state;
    this.lastHeard = old.lastHeard;
    this.handBack = old.handBack;
    this.answered = old.answered;
  }
}
