/**
 * `FleetSync`: this node's sync channel. One UDP socket bound to the
 * `listen` address sends and receives every message. It
 * - drains the engine's journal every 10 ms into UPDATE messages to every
 *   peer (a full message goes at once; a flood is cut into many);
 * - sends a heartbeat (an empty UPDATE) every `heartbeat` ms, and marks a
 *   peer down once it is silent for 5 of them;
 * - asks every peer for its table at start and is `ready` once each peer
 *   not known down has answered (TABLE_END) or `resync_timeout` passed —
 *   until then the fleet node announces nothing;
 * - streams its table to a peer that asks, a few messages a millisecond and
 *   never more in flight than the socket can hold, so a big table neither
 *   stalls forwarding here nor floods the peer;
 * - sweeps the table once a second, in chunks, so long-lived connections
 *   stay alive on the peers;
 * - checks every datagram (shape, sender and its address, MAC, replay) and
 *   counts each refusal by reason; nothing a peer sends can throw here.
 * What a peer's restart or a healed partition means is in peer.ts.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';

import { addressFamily, addressToString } from '../../wire/address.js';
import type { Logger } from '../log.js';
import type { SyncSpec, SyncStatus } from '../model.js';
import { SYNC_DOWN_AFTER_HEARTBEATS } from '../rules.js';
import { SyncCounters, type SyncRejectReason } from './counters.js';
import { deriveSyncKeys } from './key.js';
import { SyncPeer } from './peer.js';
import { ROLLOVER_STEP } from './replay-window.js';
import {
  decodeHeader,
  HEADER_SIZE,
  MAC_SIZE,
  MAX_DATAGRAM,
  MessageType,
  recordSizeFor,
  recordsPerMessage,
  sealMessage,
  verifyMac,
  writeMessageHeader,
} from './sync-message.js';
import type { RecordSink, SyncExport, SyncRecordVersion, SyncTable } from './sync-table.js';

/** Socket buffers: a table stream or a burst of updates queues here, not in the process. */
export const SYNC_SOCKET_BUFFER = 4 * 1024 * 1024;
/** How often the journal is drained into messages. */
export const DEFAULT_FLUSH_MS = 10;
/**
 * How often a refresh sweep starts: a pass looks at every entry of the
 * table (a million by default), so it runs seldom. An entry is sent again
 * once its deadline moved by half its timeout, so peers keep every
 * connection whose timeout is over twice this (the defaults: 900 s
 * established, 300 s UDP).
 */
export const DEFAULT_SWEEP_MS = 10_000;
/** Entries one sweep call looks at before the loop gets a turn. */
const SWEEP_CHUNK = 4096;
/**
 * Messages one flush may produce (each goes to every peer); the rest waits
 * for the next flush in the journal. 64 datagrams fit a receiver's default
 * socket buffer (212992 bytes) whose reader is busy, 6400 a second carry
 * 140k version-1 records a second to each peer.
 */
const MAX_FLUSH_MESSAGES = 64;
/** Table messages one export sends per millisecond: ~350k records a second, a pace a receiver keeps. */
const EXPORT_MESSAGES_PER_TICK = 16;
/** Datagrams handed to the socket and not yet sent: above it, table streams wait. */
const MAX_IN_FLIGHT_EXPORT = 256;
/** Above it, updates wait for the next flush too (the journal keeps them). */
const MAX_IN_FLIGHT = 4096;
/** Heartbeats between two table requests to a peer that has not answered. */
const REQUEST_EVERY_HEARTBEATS = 2;
/**
 * How many resync_timeouts a starting node waits, at most, for the table
 * of a peer it hears: one that is up holds connections this node may have
 * to carry (its own, handed back after a restart), and a busy peer can take
 * longer than resync_timeout to stream it. Peers never heard count only
 * for the first resync_timeout.
 */
export const RESYNC_HEARD_PEER_FACTOR = 5;

export interface FleetSyncOptions {
  spec: SyncSpec;
  /** The key file's bytes (key.ts `readSyncKey`); the MAC key is derived from them. */
  key: Uint8Array;
  table: SyncTable;
  log: Logger;
  /**
   * The channel this one replaces (a reload changed the block; closed
   * already): this node's incarnation and sequence go on, the view of the
   * peers it shares is kept, and a ready channel stays ready.
   */
  previous?: FleetSync;
  /** For tests: the flush and sweep periods. */
  flushMs?: number;
  sweepMs?: number;
  /** For tests: a partition; messages from a node for which it returns false are lost before any check. */
  hears?: (fromNode: number) => boolean;
}

/** Incarnations this process handed out: a channel started twice in one millisecond still gets a newer one. */
let lastIncarnation = 0;

function newIncarnation(): number {
  lastIncarnation = Math.max(Date.now(), lastIncarnation + 1);
  return lastIncarnation;
}

function sink(version: SyncRecordVersion): RecordSink {
  const size = recordSizeFor(version);
  return {
    buf: new Uint8Array(MAX_DATAGRAM),
    off: HEADER_SIZE,
    end: HEADER_SIZE + recordsPerMessage(version) * size,
    count: 0,
  };
}

const isFull = (s: RecordSink, version: SyncRecordVersion): boolean =>
  s.off + recordSizeFor(version) > s.end;

function resetSink(s: RecordSink): void {
  s.off = HEADER_SIZE;
  s.count = 0;
}

/** A table being streamed to one peer. */
interface ExportJob {
  peer: SyncPeer;
  source: SyncExport;
  handBack: boolean;
  v1: RecordSink;
  v2: RecordSink;
}

export class FleetSync {
  readonly spec: SyncSpec;
  /** This node's start, as every message says; a restart of the process raises it (a sequence rollover by a fraction). */
  private _incarnation: number;
  readonly counters = new SyncCounters();
  /** Resolves once the peers' tables are in or resync_timeout passed; never rejects. */
  readonly ready: Promise<void>;

  private readonly table: SyncTable;
  private readonly log: Logger;
  private readonly macKey: Buffer;
  private readonly peers: SyncPeer[];
  private readonly byId = new Map<number, SyncPeer>();
  private readonly socket: Socket;
  private sequence = 0;
  private readyFlag = false;
  private resolveReady: () => void = () => {};
  private closed = false;
  private inFlight = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  private readyTimer: NodeJS.Timeout | undefined;
  private readonly v1 = sink(1);
  private readonly v2 = sink(2);
  private readonly control = new Uint8Array(HEADER_SIZE);
  private readonly jobs: ExportJob[] = [];
  private pumpScheduled = false;
  private sweeping = false;
  private lastBeat = Date.now();
  private readonly warned = new Set<string>();
  private readonly hears: ((fromNode: number) => boolean) | undefined;

  /** Binds the socket and starts; rejects when the listen address cannot be bound. */
  static async start(opts: FleetSyncOptions): Promise<FleetSync> {
    const s = new FleetSync(opts);
    await s.bind();
    s.begin(opts.previous, opts.flushMs ?? DEFAULT_FLUSH_MS, opts.sweepMs ?? DEFAULT_SWEEP_MS);
    return s;
  }

  private constructor(opts: FleetSyncOptions) {
    this.spec = opts.spec;
    this.table = opts.table;
    this.log = opts.log;
    this.macKey = deriveSyncKeys(opts.key).macKey;
    this.hears = opts.hears;
    const prev = opts.previous;
    this._incarnation = prev ? prev.incarnation : newIncarnation();
    if (prev) this.sequence = prev.sequence;
    this.peers = opts.spec.peers.map((p) => new SyncPeer(p));
    for (const p of this.peers) {
      this.byId.set(p.nodeId, p);
      const old = prev?.byId.get(p.nodeId);
      if (old) p.carryFrom(old);
    }
    this.ready = new Promise((r) => (this.resolveReady = r));
    this.socket = createSocket({
      type: addressFamily(opts.spec.listen.addr) === 4 ? 'udp4' : 'udp6',
      recvBufferSize: SYNC_SOCKET_BUFFER,
      sendBufferSize: SYNC_SOCKET_BUFFER,
    });
  }

  get incarnation(): number {
    return this._incarnation;
  }

  get isReady(): boolean {
    return this.readyFlag;
  }

  private bind(): Promise<void> {
    const { addr, port } = this.spec.listen;
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => {
        this.closed = true;
        this.socket.close();
        reject(e);
      };
      this.socket.once('error', onError);
      this.socket.bind({ address: addressToString(addr), port, exclusive: true }, () => {
        this.socket.off('error', onError);
        this.socket.on('error', (e) =>
          this.warnOnce('socket', { err: e.message }, 'sync socket error'),
        );
        this.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
        resolve();
      });
    });
  }

  private begin(previous: FleetSync | undefined, flushMs: number, sweepMs: number): void {
    const spec = this.spec;
    const every = (ms: number, fn: () => void): void => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(flushMs, () => this.flush());
    every(spec.heartbeatMs, () => this.beat());
    every(sweepMs, () => this.startSweep());
    this.log.info(
      {
        listen: `${addressToString(spec.listen.addr)}:${spec.listen.port}`,
        node: spec.nodeId,
        peers: spec.peers.map((p) => p.nodeId),
        incarnation: this.incarnation,
        recvBuffer: this.socket.getRecvBufferSize(),
        sendBuffer: this.socket.getSendBufferSize(),
      },
      'sync channel up',
    );
    if (previous?.isReady) {
      // A reload: the node announces already; only peers new to it are asked for their table.
      for (const p of this.peers) if (!previous.byId.has(p.nodeId)) this.askTable(p);
      this.markReady('already ready before the reload');
      return;
    }
    for (const p of this.peers) this.askTable(p);
    if (spec.resyncTimeoutMs === 0) {
      this.markReady('resync_timeout 0');
      return;
    }
    this.armResyncTimer(Date.now());
  }

  /** resync_timeout from now; a peer heard but not yet answered extends it (RESYNC_HEARD_PEER_FACTOR). */
  private armResyncTimer(since: number): void {
    const ms = this.spec.resyncTimeoutMs;
    this.readyTimer = setTimeout(() => {
      const heard = this.peers.filter((p) => p.awaitingTable && p.state === 'up');
      if (heard.length === 0) this.markReady('resync_timeout passed');
      else if (Date.now() - since >= RESYNC_HEARD_PEER_FACTOR * ms)
        this.markReady(`resync_timeout passed ${RESYNC_HEARD_PEER_FACTOR} times`);
      else {
        this.log.info(
          { waitingFor: heard.map((p) => p.nodeId) },
          'sync: peers are up but their tables have not arrived; waiting for them',
        );
        this.armResyncTimer(since);
      }
    }, ms);
    this.readyTimer.unref();
  }

  /** Stops the timers, drops table streams in progress, closes the socket. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    if (this.readyTimer) clearTimeout(this.readyTimer);
    this.jobs.length = 0;
    await new Promise<void>((r) => this.socket.close(() => r()));
  }

  status(): SyncStatus {
    const now = Date.now();
    return {
      nodeId: this.spec.nodeId,
      listen: { addr: this.spec.listen.addr, port: this.spec.listen.port },
      incarnation: this.incarnation,
      ready: this.readyFlag,
      peers: this.peers.map((p) => ({
        node: p.nodeId,
        addr: p.addr,
        port: p.port,
        state: p.state,
        ...(p.window.incarnation === undefined ? {} : { incarnation: p.window.incarnation }),
        ...(p.lastHeard === 0 ? {} : { lastHeardMs: now - p.lastHeard }),
      })),
      synced: this.table.synced,
      counters: this.counters.toRecord(),
    };
  }

  // ---- ready ---------------------------------------------------------------------

  private markReady(why: string): void {
    if (this.readyFlag) return;
    this.readyFlag = true;
    if (this.readyTimer) clearTimeout(this.readyTimer);
    const missing = this.peers.filter((p) => p.awaitingTable).map((p) => p.nodeId);
    this.log.info({ why, ...(missing.length ? { withoutTableFrom: missing } : {}) }, 'sync ready');
    this.resolveReady();
  }

  /** Ready once no peer that may still answer is awaited: each answered or is known down. */
  private checkReady(): void {
    if (this.readyFlag) return;
    if (this.peers.every((p) => !p.awaitingTable || p.state === 'down'))
      this.markReady('peer tables received');
  }

  // ---- sending -------------------------------------------------------------------

  private nextSequence(): number {
    if (this.sequence === 0xffffffff) {
      // Weeks of messages at a high connection rate: peers see a rollover, not a restart (replay-window.ts).
      this._incarnation += ROLLOVER_STEP;
      this.sequence = 0;
    }
    return ++this.sequence;
  }

  /** One sealed copy of the first `bodyLength` bytes of `body` for one peer. */
  private sendTo(peer: SyncPeer, body: Uint8Array, bodyLength: number, records: number): void {
    if (this.closed) return;
    const out = Buffer.allocUnsafe(bodyLength + MAC_SIZE);
    out.set(body.subarray(0, bodyLength));
    const length = sealMessage(out, bodyLength, this.macKey, peer.nodeId);
    const n = this.counters.n;
    n.messages_out++;
    n.bytes_out += length;
    n.records_out += records;
    this.inFlight++;
    try {
      this.socket.send(out, 0, length, peer.port, addressToString(peer.addr), (err) => {
        this.inFlight--;
        if (err) {
          n.send_errors++;
          this.warnOnce(
            `send ${peer.nodeId}`,
            { peer: peer.nodeId, err: err.message },
            'sync send failed',
          );
        }
        if (this.jobs.length > 0 && this.inFlight < MAX_IN_FLIGHT_EXPORT / 2) this.schedulePump();
      });
    } catch (e) {
      this.inFlight--;
      n.send_errors++;
      this.warnOnce(
        `send ${peer.nodeId}`,
        { peer: peer.nodeId, err: (e as Error).message },
        'sync send failed',
      );
    }
  }

  /** A message of records (or none) whose header goes in `buf`; to one peer or to all. */
  private sendRecords(
    type: MessageType,
    buf: Uint8Array,
    version: 0 | SyncRecordVersion,
    count: number,
    to: SyncPeer | undefined,
  ): void {
    const bodyLength = writeMessageHeader(buf, {
      type,
      sender: this.spec.nodeId,
      recordVersion: version,
      incarnation: this.incarnation,
      sequence: this.nextSequence(),
      count,
    });
    if (to) this.sendTo(to, buf, bodyLength, count);
    else for (const p of this.peers) this.sendTo(p, buf, bodyLength, count);
  }

  private sendControl(type: MessageType, to: SyncPeer | undefined): void {
    this.sendRecords(type, this.control, 0, 0, to);
  }

  private askTable(p: SyncPeer): void {
    p.awaitingTable = true;
    p.answered = false;
    p.lastAsked = Date.now();
    this.counters.n.table_requests_out++;
    this.sendControl(MessageType.TableRequest, p);
  }

  /** The journal into UPDATE messages: full ones while more is pending, then what is left. */
  private flush(): void {
    if (this.closed || this.inFlight >= MAX_IN_FLIGHT) return;
    for (let i = 0; i < MAX_FLUSH_MESSAGES; i++) {
      const more = this.table.drain(this.v1, this.v2);
      this.flushSink(this.v1, 1, more, undefined, MessageType.Update);
      this.flushSink(this.v2, 2, more, undefined, MessageType.Update);
      if (!more) return;
    }
  }

  /** Sends a sink's records when it is full, or when nothing more will come. */
  private flushSink(
    s: RecordSink,
    version: SyncRecordVersion,
    more: boolean,
    to: SyncPeer | undefined,
    type: MessageType,
  ): void {
    if (s.count === 0 || (more && !isFull(s, version))) return;
    this.sendRecords(type, s.buf, version, s.count, to);
    resetSink(s);
  }

  private beat(): void {
    if (this.closed) return;
    const now = Date.now();
    const hb = this.spec.heartbeatMs;
    // A late beat means the loop stalled, and timers run before the socket is read: what the
    // peers sent meanwhile is still unread, so their silence is not judged on this beat.
    const stalled = now - this.lastBeat > 2 * hb;
    this.lastBeat = now;
    this.counters.n.heartbeats_out += this.peers.length;
    this.sendControl(MessageType.Update, undefined);
    for (const p of this.peers) {
      if (!stalled && p.checkSilence(now, SYNC_DOWN_AFTER_HEARTBEATS * hb))
        this.log.warn({ peer: p.nodeId, silentMs: now - p.lastHeard }, 'sync peer down');
      // A table streaming in is an answer on its way: not asked again while its chunks come.
      const again = now - Math.max(p.lastAsked, p.lastTableChunk) >= REQUEST_EVERY_HEARTBEATS * hb;
      // Before ready every peer is asked again (its first request may be lost); after, only one that answers.
      if (p.awaitingTable && again && (p.state === 'up' || (!this.readyFlag && p.state !== 'down')))
        this.askTable(p);
    }
    this.checkReady();
  }

  // ---- table streams -------------------------------------------------------------

  private startExport(p: SyncPeer): void {
    // A request repeated while its answer streams is the same request.
    if (p.exporting) return;
    p.exporting = true;
    const handBack = p.handBack;
    this.jobs.push({
      peer: p,
      source: this.table.exportFor(p.nodeId, handBack),
      handBack,
      v1: sink(1),
      v2: sink(2),
    });
    this.log.info({ peer: p.nodeId, handBack }, "sync: streaming this node's table to a peer");
    this.schedulePump();
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.closed) return;
    this.pumpScheduled = true;
    const t = setTimeout(() => {
      this.pumpScheduled = false;
      this.pump();
    }, 1);
    t.unref();
  }

  /** A few messages of each stream per tick, while the socket has room. */
  private pump(): void {
    for (const job of [...this.jobs]) {
      for (let i = 0; i < EXPORT_MESSAGES_PER_TICK; i++) {
        if (this.closed || this.inFlight >= MAX_IN_FLIGHT_EXPORT) return;
        const more = job.source.next(job.v1, job.v2);
        this.flushSink(job.v1, 1, more, job.peer, MessageType.Table);
        this.flushSink(job.v2, 2, more, job.peer, MessageType.Table);
        if (!more) {
          this.sendControl(MessageType.TableEnd, job.peer);
          this.jobs.splice(this.jobs.indexOf(job), 1);
          job.peer.exporting = false;
          if (job.handBack) job.peer.handBack = false;
          this.counters.n.tables_sent++;
          break;
        }
      }
    }
    if (this.jobs.length > 0 && this.inFlight < MAX_IN_FLIGHT_EXPORT) this.schedulePump();
  }

  // ---- refresh sweep -------------------------------------------------------------

  private startSweep(): void {
    if (this.sweeping || this.closed) return;
    this.sweeping = true;
    const step = (): void => {
      if (this.closed) return;
      if (this.table.sweep(SWEEP_CHUNK)) {
        this.sweeping = false;
        return;
      }
      setImmediate(step);
    };
    step();
  }

  // ---- receiving -----------------------------------------------------------------

  private reject(reason: SyncRejectReason): void {
    this.counters.rejected[reason]++;
    this.warnOnce(
      `reject ${reason}`,
      { reason },
      'sync message refused (counted; said once per reason)',
    );
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.closed) return;
    if (this.hears && msg.length > 6 && !this.hears(msg[6]!)) return;
    const n = this.counters.n;
    n.messages_in++;
    n.bytes_in += msg.length;
    try {
      this.receive(msg, rinfo);
    } catch (e) {
      // The table promises never to throw on a record; whatever does is said once, never fatal.
      this.warnOnce('receive', { err: (e as Error).message }, 'sync message handling failed');
    }
  }

  private receive(msg: Buffer, rinfo: RemoteInfo): void {
    const h = decodeHeader(msg);
    if (typeof h === 'string') return this.reject(h);
    const peer = h.sender === this.spec.nodeId ? undefined : this.byId.get(h.sender);
    if (!peer) return this.reject('unknown_sender');
    if (!peer.isSource(rinfo.address, rinfo.port)) return this.reject('wrong_source');
    if (!verifyMac(msg, this.macKey, this.spec.nodeId)) return this.reject('bad_mac');
    const event = peer.heard(h.incarnation, h.sequence, Date.now());
    if (event === 'old_incarnation' || event === 'replay') return this.reject(event);
    const n = this.counters.n;
    if (event === 'restarted') {
      n.peer_restarts++;
      this.log.info(
        { peer: peer.nodeId, incarnation: h.incarnation },
        'sync peer restarted: its connections are kept for it',
      );
    } else if (event === 'healed') {
      const purged = this.table.purgeFrom(peer.nodeId);
      n.partitions_healed++;
      n.entries_purged += purged;
      this.log.warn(
        { peer: peer.nodeId, purged },
        'sync peer back after a partition: its entries dropped, its table asked for',
      );
      this.askTable(peer);
    }
    if (!peer.answered && !peer.awaitingTable) this.askTable(peer);
    switch (h.type) {
      case MessageType.Update:
      case MessageType.Table:
        if (h.type === MessageType.Table) peer.lastTableChunk = Date.now();
        if (h.count > 0 && h.recordVersion !== 0) {
          n.records_in += h.count;
          const r = this.table.apply(msg, HEADER_SIZE, h.count, h.recordVersion, peer.nodeId);
          n.records_applied += r.applied;
          n.records_removed += r.removed;
          n.records_refused += r.rejected;
        }
        return;
      case MessageType.TableRequest:
        n.table_requests_in++;
        this.startExport(peer);
        return;
      case MessageType.TableEnd:
        if (!peer.awaitingTable) return;
        peer.awaitingTable = false;
        peer.answered = true;
        n.tables_received++;
        this.checkReady();
        return;
    }
  }

  private warnOnce(key: string, fields: Record<string, unknown>, msg: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(fields, msg);
  }
}
