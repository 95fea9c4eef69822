/**
 * A fleet node's part of `fullnat run`: the BGP speaker (when the config
 * has a `bgp` block), the announcements it carries, and drains. The LB
 * calls `changed()` after anything that may move an announcement (a health
 * check's verdict, a ctl change, a reload); the process owns start, stop
 * and the exit a drain ends in.
 *
 * Without a `bgp` block nothing runs here: no bird, no timer, no log line;
 * only a drain (ctl --drain, or SIGTERM with drain_timeout) starts one.
 *
 * With a `sync` block the peers' LIP prefixes are announced as backups,
 * and the sync gate holds every announcement back until the connection
 * sync has the peers' tables (`setSyncReady`, wired to the sync's
 * readiness by the process): a node that attracted its LIPs' replies or
 * new flows before would break the connections its peers carry for it.
 */
import type { Engine } from '../../engine/engine.js';
import type { Logger } from '../log.js';
import type { BgpSpec, ClusterStatus, DrainStatus, FullnatConfig } from '../model.js';
import { Announcer } from './announcer.js';
import { BirdSpeaker, type BirdSpeakerOptions } from './bird.js';
import { Drain, type DrainEnd } from './drain.js';
import { drainingConnections, localAddresses, serviceHealth } from './lb-view.js';
import { ipRouteGet, type RouteLookup } from './neighbor-route.js';
import { addressToString } from '../../wire/address.js';

/** The LB as the cluster reads it. */
export interface ClusterLb {
  readonly config: FullnatConfig;
  readonly engine: Engine;
}

export interface ClusterOptions {
  log: Logger;
  /** Called once when a drain ends: the process stops. */
  onDrained: (how: DrainEnd) => void;
  /** How a neighbour's route is looked up (default `ip route get`); for tests. */
  routeLookup?: RouteLookup;
  /**
   * The sync gate at start (default true: open). The process passes false
   * when it starts the connection sync and opens it with `setSyncReady`;
   * a takeover, whose table came with the handover, starts open. The gate
   * only matters while the config has a `sync` block.
   */
  syncReady?: boolean;
  /** For tests: bird's binary, poll period, restart backoff, the wait for a successor. */
  speaker?: Pick<
    BirdSpeakerOptions,
    'birdPath' | 'pollMs' | 'restartMinMs' | 'restartMaxMs' | 'adoptWaitMs'
  >;
}

/** Two specs that need different speakers (not just a rewritten file). */
function speakerKind(bgp: BgpSpec | undefined, stateDir: string): string {
  if (!bgp) return 'none';
  return bgp.birdSocket !== undefined && bgp.birdInclude !== undefined
    ? `attached ${bgp.birdSocket} ${bgp.birdInclude}`
    : `managed ${stateDir}`;
}

export class Cluster {
  private speaker: BirdSpeaker | undefined;
  private kind = 'none';
  private readonly announcer: Announcer;
  private readonly drainer: Drain;
  private stopped = false;
  private syncGateOpen: boolean;

  constructor(
    private readonly lb: ClusterLb,
    private readonly opts: ClusterOptions,
  ) {
    this.announcer = new Announcer(opts.log);
    this.syncGateOpen = opts.syncReady ?? true;
    this.drainer = new Drain(
      () => drainingConnections(lb.engine),
      opts.log,
      (how) => opts.onDrained(how),
    );
  }

  /** Starts the speaker when the config has `bgp`; otherwise does nothing. */
  start(): void {
    this.sync();
  }

  /** The LB's state or config changed: announcements recomputed, a changed `bgp` block applied. */
  changed(): void {
    if (this.stopped) return;
    this.sync();
  }

  /** Starts a drain (or returns the running one): VIPs withdrawn, the process stops when it ends. */
  drain(timeoutS: number, why: string): DrainStatus {
    const s = this.drainer.start(timeoutS, why);
    this.sync();
    return s;
  }

  get draining(): boolean {
    return this.drainer.active;
  }

  /**
   * Opens (true) or closes (false) the sync gate: while it is closed and
   * the config has a `sync` block, nothing is announced, and the status
   * lists every prefix as withheld for `resync`.
   */
  setSyncReady(ready: boolean): void {
    if (ready === this.syncGateOpen) return;
    this.syncGateOpen = ready;
    if (this.lb.config.sync)
      this.opts.log.info(
        ready
          ? 'connection sync ready: announcing'
          : 'connection sync not ready: announcements held back',
      );
    if (!this.stopped) this.sync();
  }

  get syncReady(): boolean {
    return this.syncGateOpen;
  }

  status(): ClusterStatus | undefined {
    const drain = this.drainer.status();
    if (!this.speaker && !drain) return undefined;
    const a = this.announcer.state;
    return {
      ...(this.speaker ? { speaker: this.speaker.status() } : {}),
      announced: [...a.announce],
      ...(a.backup.length > 0 ? { backup: [...a.backup] } : {}),
      withheld: a.withheld.map((w) => ({ ...w })),
      ...(drain ? { drain } : {}),
    };
  }

  /** Stops the speaker (bird says goodbye to its neighbours) and any drain's wait. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.drainer.cancel();
    const s = this.speaker;
    this.speaker = undefined;
    this.kind = 'none';
    await s?.stop();
  }

  /** The old side of a handover: bird is left announcing for the successor to adopt (bird.ts). */
  async release(): Promise<void> {
    this.stopped = true;
    this.drainer.cancel();
    const s = this.speaker;
    this.speaker = undefined;
    this.kind = 'none';
    await s?.release();
  }

  /** The spec whose neighbours' routes were last looked at (each new one is looked at once). */
  private checkedSpec: BgpSpec | undefined;

  /** `fullnat check` refuses a neighbour without a route; at run time it is a warning, and forwarding goes on. */
  private warnUnroutable(bgp: BgpSpec): void {
    this.checkedSpec = bgp;
    const lookup = this.opts.routeLookup ?? ipRouteGet;
    for (const n of bgp.neighbors) {
      const neighbor = addressToString(n.addr);
      const why = lookup(neighbor);
      if (why !== null)
        this.opts.log.warn(
          { neighbor, reason: why },
          'no route to BGP neighbour: its session cannot come up; forwarding goes on',
        );
    }
  }

  private sync(): void {
    const bgp = this.lb.config.bgp;
    const stateDir = this.lb.config.defs.stateDir;
    const kind = speakerKind(bgp, stateDir);
    let fresh = false;
    if (kind !== this.kind) {
      const old = this.speaker;
      this.announcer.attach(undefined);
      if (old) {
        this.opts.log.info('bgp block changed or removed: stopping the BGP speaker');
        void old.stop();
      }
      this.kind = kind;
      this.speaker = bgp
        ? new BirdSpeaker({ bgp, stateDir, log: this.opts.log, ...this.opts.speaker })
        : undefined;
      fresh = true;
    }
    if (!bgp || !this.speaker) return;
    if (fresh || bgp !== this.checkedSpec) this.warnUnroutable(bgp);
    if (!fresh) this.speaker.setSpec(bgp);
    const sync = this.lb.config.sync;
    this.announcer.update({
      services: serviceHealth(this.lb.engine, this.lb.config),
      lips: localAddresses(this.lb.engine),
      lipPrefixes: bgp.lipPrefixes,
      ...(sync ? { backupPrefixes: sync.peers.flatMap((p) => p.lipPrefixes) } : {}),
      draining: this.drainer.started,
      resync: sync !== undefined && !this.syncGateOpen,
    });
    if (fresh) {
      this.speaker.start(this.announcer.state.announce, this.announcer.state.backup);
      this.announcer.attach(this.speaker);
    }
  }
}
