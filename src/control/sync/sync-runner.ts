/**
 * The sync channel across the life of `fullnat run`: started before the
 * LB forwards (the port plan and the peers' prefixes are in the engine
 * before the first packet), restarted when a reload changes the block or
 * the key file's content, stopped on exit and before a handover (the
 * successor binds the same address). `ready` resolves once the first
 * channel has the peers' tables (or resync_timeout passed); at once without
 * a `sync` block. The LB calls `changed()` after a reload and shows
 * `status()` in its snapshot.
 */
import { createHash } from 'node:crypto';

import type { Engine } from '../../engine/engine.js';
import { sameIgnoringPos } from '../config/diff.js';
import type { Logger } from '../log.js';
import type { FullnatConfig, SyncHooks, SyncSpec, SyncStatus } from '../model.js';
import { prefixToString } from '../prefix.js';
import { linkEngine, type EngineSyncSide } from './engine-link.js';
import { deriveSyncKeys, readSyncKey } from './key.js';
import { FleetSync } from './sync.js';

/** The LB as the channel reads it. */
export interface SyncRunnerLb {
  readonly config: FullnatConfig;
  readonly engine: Engine;
}

export interface SyncRunnerOptions {
  log: Logger;
  /** The engine's side (default: engine-link.ts); for tests. */
  link?: (spec: SyncSpec, fleetKey: Uint8Array) => EngineSyncSide;
}

const digest = (key: Uint8Array): string => createHash('sha256').update(key).digest('hex');

export class SyncRunner implements SyncHooks {
  private channel: FleetSync | undefined;
  /** The last channel, closed or not: a new one carries its incarnation and sequence on. */
  private last: FleetSync | undefined;
  private side: EngineSyncSide | undefined;
  private spec: SyncSpec | undefined;
  private keyDigest: string | undefined;
  private readonly prefixes = new Set<string>();
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;
  private readyFlag = false;
  private resolveReady: () => void = () => {};
  /** Resolves once the node may announce: the peers' tables are in, or there is no sync block. */
  readonly ready: Promise<void>;

  constructor(
    private readonly lb: SyncRunnerLb,
    private readonly opts: SyncRunnerOptions,
  ) {
    this.ready = new Promise((r) => (this.resolveReady = r));
  }

  get isReady(): boolean {
    return this.readyFlag;
  }

  /**
   * Turns sync on in the engine (once) and opens the channel; again after
   * `stop()` (a handover that failed). Throws when the key file, the engine
   * or the listen address refuses.
   */
  async start(): Promise<void> {
    this.stopped = false;
    const spec = this.lb.config.sync;
    if (!spec) {
      this.markReady();
      return;
    }
    const key = readSyncKey(spec.keyFile);
    if (!this.side) {
      const link = this.opts.link ?? ((s, k) => linkEngine(this.lb.engine, s, k));
      this.side = link(spec, deriveSyncKeys(key).fleetKey);
    }
    await this.open(spec, key);
  }

  /** A reload: the channel restarts when its block or key changed (queued: reloads come one by one). */
  changed(): void {
    this.queue = this.queue
      .then(() => this.reconfigure())
      .catch((e: unknown) =>
        this.opts.log.error({ err: (e as Error).message }, 'sync: restarting the channel failed'),
      );
  }

  status(): SyncStatus | undefined {
    return this.channel?.status();
  }

  /** Closes the channel; the engine keeps its entries (a handover takes them along). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.queue;
    const c = this.channel;
    this.channel = undefined;
    await c?.close();
  }

  private markReady(): void {
    if (this.readyFlag) return;
    this.readyFlag = true;
    this.resolveReady();
  }

  private async open(spec: SyncSpec, key: Buffer): Promise<void> {
    const side = this.side;
    if (!side) throw new Error('sync: the engine side is not linked');
    for (const peer of spec.peers)
      for (const p of peer.lipPrefixes) {
        const name = prefixToString(p);
        if (this.prefixes.has(name)) continue;
        side.addPeerPrefix(p);
        this.prefixes.add(name);
      }
    const channel = await FleetSync.start({
      spec,
      key,
      table: side.table,
      log: this.opts.log,
      ...(this.last ? { previous: this.last } : {}),
    });
    this.channel = channel;
    this.last = channel;
    this.spec = spec;
    this.keyDigest = digest(key);
    void channel.ready.then(() => this.markReady());
  }

  private async reconfigure(): Promise<void> {
    const spec = this.lb.config.sync;
    const running = this.spec;
    if (this.stopped || !spec || !running) return;
    // The engine's side is fixed at start; the reload refuses these (config/diff.ts RESTART_REQUIRED_SYNC).
    if (
      spec.nodeId !== running.nodeId ||
      spec.nodes !== running.nodes ||
      spec.maxSynced !== running.maxSynced
    ) {
      this.opts.log.error(
        'sync: node_id, nodes and max_synced change only with a restart; channel left as it is',
      );
      return;
    }
    let key: Buffer;
    try {
      key = readSyncKey(spec.keyFile);
    } catch (e) {
      this.opts.log.error(
        { err: (e as Error).message },
        'sync: key file unreadable; channel left as it is',
      );
      return;
    }
    if (this.channel && sameIgnoringPos(spec, running) && digest(key) === this.keyDigest) return;
    this.opts.log.info('sync block or key changed: restarting the channel');
    const old = this.channel;
    this.channel = undefined;
    await old?.close();
    await this.open(spec, key);
  }
}
