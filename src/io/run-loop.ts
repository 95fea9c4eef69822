import type { Engine } from '../engine/engine.js';
import { DEFAULT_HEADROOM, GSO_BUFFER_SIZE, type Packet } from '../engine/packet.js';

/** A packet device the run loop can drive: a TUN queue, or an in-memory link in tests. */
export interface PacketDevice {
  /**
   * GSO super-packets cross this device: reads and writes carry a `gso`
   * array (gso_type, gso_size per packet) and buffers must hold 64 KiB.
   */
  readonly offload?: boolean;
  /** Reads up to bufs.length packets at `offset` in each buffer; lengths[i] gets each size. Returns the count. */
  readBatch(bufs: Uint8Array[], offset: number, lengths: Int32Array, gso?: Int32Array): number;
  /** Writes `count` packets; returns how many the device took (the rest are dropped by the caller). */
  writeBatch(
    bufs: Uint8Array[],
    offsets: Int32Array,
    lengths: Int32Array,
    count: number,
    gso?: Int32Array,
  ): number;
  /** Calls `cb` whenever packets may be waiting. */
  onReadable(cb: () => void): void;
  /** Stops calling the readable callback. */
  stopReadable?(): void;
  /** A multi-queue TUN: outlive the last descriptor (`NativeTun.setPersist`). */
  setPersist?(on: boolean): void;
  /** A multi-queue TUN: leave (purging what waits) or rejoin the kernel's steering. */
  detachQueue?(): void;
  attachQueue?(): void;
  close(): void;
}

export interface LoopStats {
  rxPackets: number;
  rxBatches: number;
  rxBytes: number;
  /** GSO super-packets among rxPackets / txPackets (offload devices). */
  rxSuperPackets: number;
  txPackets: number;
  txSuperPackets: number;
  /** Packets the device would not take (queue full): dropped, as a NIC would. */
  txDropped: number;
  timerRuns: number;
  /** Unix ms of the first and the latest write that sent a packet (0: none yet): a handover's gap. */
  firstTxAt: number;
  lastTxAt: number;
}

/** Most batches handled per readiness callback before yielding to timers and the control socket. */
const MAX_BATCHES_PER_WAKEUP = 32;
const TIMER_INTERVAL_MS = 100;
/** Flag in a gso_type read from an offload device: the checksum is the pseudo-header sum only (NativeTun.readBatch). */
export const GSO_CSUM_PARTIAL = 0x100;

/**
 * Moves packets between a device and the engine: read a batch, set the
 * engine clock once, process each packet, write every output in batches.
 * Nothing here allocates per packet: receive slots are refilled from the
 * engine's pool, and the transmit arrays are reused.
 */
export class RunLoop {
  readonly stats: LoopStats = {
    rxPackets: 0,
    rxBatches: 0,
    rxBytes: 0,
    rxSuperPackets: 0,
    txPackets: 0,
    txSuperPackets: 0,
    txDropped: 0,
    timerRuns: 0,
    firstTxAt: 0,
    lastTxAt: 0,
  };
  /** Called once, after the first write that sent a packet. */
  onFirstTx: (() => void) | undefined;
  private readonly rx: Packet[] = [];
  private readonly rxBufs: Uint8Array[] = [];
  private readonly rxLens: Int32Array;
  private readonly txBufs: Uint8Array[] = [];
  private readonly txOffs: Int32Array;
  private readonly txLens: Int32Array;
  /** gso_type, gso_size per packet when the device offloads; undefined otherwise. */
  private readonly rxGso: Int32Array | undefined;
  private readonly txGso: Int32Array | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  /**
   * `started`: the performance.now() of engine time 0 — by default now; the
   * caller passes its own when it stated the engine's wall-clock origin
   * (isnClockOriginMs) earlier, so the two stay one moment.
   */
  constructor(
    private readonly engine: Engine,
    private readonly dev: PacketDevice,
    private readonly batch = 64,
    private readonly started = performance.now(),
  ) {
    this.rxLens = new Int32Array(batch);
    this.txOffs = new Int32Array(batch);
    this.txLens = new Int32Array(batch);
    if (dev.offload) {
      if (engine.pool.bufferSize < GSO_BUFFER_SIZE)
        throw new Error(
          `a device with offloads needs packet buffers of ${GSO_BUFFER_SIZE} bytes (the pool has ${engine.pool.bufferSize})`,
        );
      this.rxGso = new Int32Array(2 * batch);
      this.txGso = new Int32Array(2 * batch);
    }
    for (let i = 0; i < batch; i++) {
      const p = engine.pool.take();
      this.rx.push(p);
      this.rxBufs.push(p.buf);
      this.txBufs.push(p.buf);
    }
  }

  /** Engine time: ms since `started` (by default the loop's creation). */
  now(): number {
    return performance.now() - this.started;
  }

  start(): void {
    this.running = true;
    this.dev.onReadable(this.onReadable);
    this.timer = setInterval(this.onTimer, TIMER_INTERVAL_MS);
    // Packets may already be queued from before the loop started.
    this.onReadable();
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Reads the device empty through the engine now, in this turn (before a
   * handover detaches the queue, which would purge what waits in it).
   * Bounded: at most `maxBatches` reads. Returns the packets read.
   */
  drain(maxBatches = 4096): number {
    const before = this.stats.rxPackets;
    for (let i = 0; i < maxBatches; i++) if (this.readBatches(1) === 0) break;
    this.engine.tick(this.now());
    this.flush();
    return this.stats.rxPackets - before;
  }

  private readonly onTimer = (): void => {
    this.stats.timerRuns++;
    this.engine.tick(this.now());
    this.flush();
  };

  private readonly onReadable = (): void => {
    if (!this.running) return;
    // Still more queued: continue after timers and the control socket had a turn.
    if (this.readBatches(MAX_BATCHES_PER_WAKEUP) === MAX_BATCHES_PER_WAKEUP)
      setImmediate(this.onReadable);
  };

  /** Reads and processes up to `rounds` batches; returns how many were not empty. */
  private readBatches(rounds: number): number {
    const e = this.engine;
    const pool = e.pool;
    for (let round = 0; round < rounds; round++) {
      const rxGso = this.rxGso;
      const n = this.dev.readBatch(this.rxBufs, DEFAULT_HEADROOM, this.rxLens, rxGso);
      if (n === 0) return round;
      this.stats.rxBatches++;
      this.stats.rxPackets += n;
      e.tick(this.now());
      for (let i = 0; i < n; i++) {
        const p = this.rx[i]!;
        p.start = DEFAULT_HEADROOM;
        p.length = this.rxLens[i]!;
        this.stats.rxBytes += p.length;
        if (rxGso !== undefined) {
          const type = rxGso[2 * i]!;
          p.gsoType = type & 0xff;
          p.csumPartial = (type & GSO_CSUM_PARTIAL) !== 0;
          p.gsoSize = rxGso[2 * i + 1]!;
          if (p.gsoSize > 0) this.stats.rxSuperPackets++;
        }
        e.process(p);
        const fresh = pool.take();
        this.rx[i] = fresh;
        this.rxBufs[i] = fresh.buf;
        // Flush before the output array could outgrow one transmit batch.
        if (e.outCount >= this.batch - 8) this.flush();
      }
      this.flush();
      // A short batch does not end the turn: more packets have usually
      // arrived while this one was processed and written, and one more read
      // (EAGAIN when none did) is cheaper than a return trip through epoll.
    }
    return rounds;
  }

  /** One clock read per write call, not per packet. */
  private noteTx(): void {
    const now = Date.now();
    this.stats.lastTxAt = now;
    if (this.stats.firstTxAt !== 0) return;
    this.stats.firstTxAt = now;
    this.onFirstTx?.();
  }

  /** Writes the engine's outputs and returns their buffers to the pool. */
  private flush(): void {
    const e = this.engine;
    const total = e.outCount;
    const txGso = this.txGso;
    let i = 0;
    while (i < total) {
      const count = Math.min(this.batch, total - i);
      for (let k = 0; k < count; k++) {
        const q = e.out[i + k]!;
        this.txBufs[k] = q.buf;
        this.txOffs[k] = q.start;
        this.txLens[k] = q.length;
        if (txGso !== undefined) {
          txGso[2 * k] = q.gsoType;
          txGso[2 * k + 1] = q.gsoSize;
          if (q.gsoSize > 0) this.stats.txSuperPackets++;
        }
      }
      const written = this.dev.writeBatch(this.txBufs, this.txOffs, this.txLens, count, txGso);
      if (written > 0) this.noteTx();
      this.stats.txPackets += written;
      this.stats.txDropped += count - written;
      for (let k = 0; k < count; k++) e.pool.give(e.out[i + k]!);
      i += count;
    }
    e.clearOutput();
  }
}
