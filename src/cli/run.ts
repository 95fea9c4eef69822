import { Cluster } from '../control/cluster/cluster.js';
import { findBird } from '../control/cluster/bird.js';
import { DEFAULT_CTL_DRAIN_TIMEOUT_S } from '../control/cluster/drain.js';
import { ConfigError, loadConfig, warningText } from '../control/config/index.js';
import { LoadBalancer } from '../control/lb.js';
import { createLogger, type Logger } from '../control/log.js';
import {
  createMetricsRegistry,
  startMetricsServer,
  type MetricsServer,
} from '../control/metrics.js';
import type { ControlApi, ControlRequest, ControlResponse, FullnatDefs } from '../control/model.js';
import { Checkpointer } from '../control/restart/checkpoint.js';
import { handOver, resume } from '../control/restart/handover.js';
import { loadIsnSecret } from '../control/restart/isn-secret.js';
import { removeStateFile, stateFilePath } from '../control/restart/state-file.js';
import {
  probeSocket,
  sendControlRequest,
  startControlServer,
  type ControlServer,
} from '../control/socket/index.js';
import { SyncRunner } from '../control/sync/sync-runner.js';
import { linuxHost } from '../io/host.js';
import { sdNotify } from '../io/sd-notify.js';
import { existingTun, tunAvailable } from '../io/tun.js';

export interface RunOptions {
  healthChecks?: boolean;
  /** Take the device and the connections over from the fullnat running on the control socket. */
  takeover?: boolean;
}

/** How long a predecessor may take to hand over (drain, export, write). */
const HANDOVER_TIMEOUT_MS = 30_000;
/** How long the predecessor's control socket and metrics listener may take to go after it answered. */
const PREDECESSOR_EXIT_MS = 5_000;

/**
 * `fullnat run -f FILE [--takeover]`: runs until SIGINT/SIGTERM, `ctl
 * --shutdown` or a handover; SIGHUP (or `ctl --reload`) re-reads the file.
 * Resolves with the exit code once shut down. docs/ARCHITECTURE.md,
 * "Restarts and upgrades", has the handover.
 */
export async function runLoadBalancer(file: string, opts: RunOptions = {}): Promise<number> {
  const log = createLogger();
  let config;
  try {
    config = loadConfig(file);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`fullnat: ${e.message}`);
      return 2;
    }
    console.error(`fullnat: cannot read ${file}: ${(e as Error).message}`);
    return 2;
  }
  for (const w of config.warnings ?? []) log.warn({ config: file }, warningText(w));
  if (process.getuid?.() !== 0) {
    console.error('fullnat run: needs root (TUN device, routes, sysctls)');
    return 1;
  }
  const tun = tunAvailable();
  if (!tun.ok) {
    console.error(`fullnat run: ${tun.reason}`);
    return 1;
  }
  if (config.bgp && config.bgp.birdSocket === undefined && !findBird()) {
    console.error(
      'fullnat run: the bgp block needs bird2 (`bird` not found on PATH or in /usr/sbin): apt-get install bird2',
    );
    return 1;
  }
  const defs = config.defs;
  const sock = defs.controlSocket;
  const predecessor = (await probeSocket(sock, 1000)) === 'listening';
  if (predecessor && !opts.takeover) {
    console.error(
      `fullnat run: another fullnat is running on ${sock}; --takeover replaces it without losing its connections`,
    );
    return 1;
  }
  if (!predecessor && opts.takeover)
    log.warn({ socket: sock }, 'takeover: no fullnat running there; starting on its own');
  const existing = existingTun(defs.interface);
  if (existing && !existing.persistent && !predecessor) {
    console.error(
      `fullnat run: interface ${defs.interface} exists and is held by another process (not a device a fullnat left persistent)`,
    );
    return 1;
  }

  // The device's flags are the last opener's for every queue: a successor with other offload or
  // NAPI settings would change what the predecessor reads while both are attached.
  const napi = defs.napiThread !== 'off';
  if (predecessor && existing && (existing.offload !== defs.offload || existing.napi !== napi)) {
    console.error(
      `fullnat run: --takeover needs the running fullnat's offload and napi_thread (on/auto or off) settings; ` +
        `${defs.interface} has offload ${existing.offload ? 'on' : 'off'}, NAPI ${existing.napi ? 'on' : 'off'}: stop it and start instead`,
    );
    return 1;
  }

  const statePath = stateFilePath(defs.stateDir, defs.interface);
  const isnSecret = secretFor(defs, log);
  const lb = new LoadBalancer(
    file,
    { host: linuxHost, log, healthChecks: opts.healthChecks, isnSecret },
    config,
  );
  let control: ControlServer | undefined;
  let metrics: MetricsServer | undefined;
  // Every run has one; without a `bgp` block it starts nothing (no bird, no timer) unless asked to drain.
  const cluster = new Cluster(lb, {
    log,
    onDrained: () => shutdown('drained'),
    // A takeover's table came with the handover: its announcements go on while the sync asks around.
    syncReady: config.sync === undefined || predecessor,
  });
  lb.cluster = cluster;
  // Every run has one; without a `sync` block it starts nothing and is ready at once.
  const sync = new SyncRunner(lb, { log });
  lb.sync = sync;
  void sync.ready.then(() => cluster.setSyncReady(true));
  try {
    // Attached, not read: what the kernel steers here waits until the table is in.
    lb.openDevice();
  } catch (e) {
    log.error({ err: (e as Error).message }, 'start failed: cannot open the device');
    return 1;
  }
  if (predecessor) {
    const t0 = performance.now();
    let res: ControlResponse;
    try {
      res = await sendControlRequest(sock, { op: 'handover' }, HANDOVER_TIMEOUT_MS);
    } catch (e) {
      res = { ok: false, error: (e as Error).message };
    }
    if (!res.ok) {
      // The predecessor goes on forwarding (it resumes when its save fails): leave its device and routes alone.
      log.error({ err: res.error }, 'takeover failed: the running fullnat keeps the service');
      lb.release();
      return 1;
    }
    log.info(
      { ...res.handover, ms: Math.round(performance.now() - t0) },
      'takeover: predecessor handed over',
    );
  }

  const checkpoints = new Checkpointer(
    () => lb.saveTable(),
    () => lb.engine.connectionCount,
    statePath,
    log,
  );
  try {
    // Before the first packet: the port plan and the peers' LIP prefixes are in the engine, and a
    // handover's imported entries on a peer's LIPs are accepted.
    await sync.start();
    if (predecessor || defs.handover) resume(lb, statePath, log);
    else lb.startForwarding();
    if (predecessor) await predecessorGone(sock);
    control = await startControlServer(sock, processApi(), log);
    if (defs.metrics) {
      metrics = await startMetricsWithRetry(defs.metrics, lb, log);
      log.info({ listen: `${metrics.host}:${metrics.port}` }, 'metrics on /metrics');
    }
    // Announced once forwarding: a router sends traffic here only when it can be served.
    cluster.start();
  } catch (e) {
    log.error({ err: (e as Error).message }, 'start failed');
    await cluster.stop();
    await sync.stop();
    await control?.close();
    if (predecessor || defs.handover) {
      // The connections came with us: leave them, device and routes to the next start.
      try {
        handOver(lb, statePath, log);
      } catch {
        lb.stop();
      }
    } else lb.stop();
    return 1;
  }
  if (defs.handover) checkpoints.setInterval(defs.checkpointInterval);
  lb.ready = true;
  const notified = sdNotify('READY=1');
  if (!notified.sent && !notified.expected)
    log.warn({ reason: notified.reason }, 'could not tell systemd we are ready');
  log.info({ device: defs.interface, connections: lb.engine.connectionCount }, 'ready');

  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((r) => (finish = r));
  let exiting = false;

  /** A real stop: routes, device (its persistence cleared) and the saved table go. */
  const shutdown = (why: string): void => {
    if (exiting) return;
    exiting = true;
    detachSignals();
    log.info({ why }, 'shutting down');
    sdNotify('STOPPING=1');
    checkpoints.stop();
    void (async () => {
      // Withdrawn first: routers stop sending here before the routes into the device go.
      await cluster.stop();
      await sync.stop();
      await metrics?.close();
      // A `ctl --shutdown` gets its answer before the socket goes.
      await control?.closeGracefully(500);
      lb.stop();
      try {
        removeStateFile(statePath);
      } catch (e) {
        log.warn({ err: (e as Error).message, file: statePath }, 'could not remove the state file');
      }
      finish(0);
    })();
  };

  /** The old side of a handover: table saved, device and routes left; then exit. */
  const handOverAndExit = async (why: string): Promise<ControlResponse> => {
    if (exiting) return { ok: false, error: 'already exiting' };
    exiting = true;
    log.info({ why }, 'handing over');
    sdNotify('STOPPING=1');
    checkpoints.stop();
    // The successor binds the metrics port and the sync address next: free them before answering.
    await metrics?.close();
    metrics = undefined;
    await sync.stop();
    let report;
    try {
      report = handOver(lb, statePath, log);
    } catch (e) {
      exiting = false;
      if (defs.handover) checkpoints.setInterval(defs.checkpointInterval);
      await sync
        .start()
        .catch((err: Error) => log.error({ err: err.message }, 'sync channel not restarted'));
      if (defs.metrics)
        metrics = await startMetricsWithRetry(defs.metrics, lb, log).catch(() => undefined);
      log.error({ err: (e as Error).message }, 'handover failed: still running');
      return { ok: false, error: (e as Error).message };
    }
    detachSignals();
    // Answer first (the control connection gets its reply), then go.
    setImmediate(() => {
      void (async () => {
        // Released before the socket goes: the successor adopts bird only once this socket is gone,
        // and the router never sees the node leave.
        await cluster.release();
        await control?.closeGracefully(1000);
        finish(0);
      })();
    });
    return { ok: true, handover: report };
  };

  function processApi(): ControlApi {
    return {
      handle: async (req: ControlRequest): Promise<ControlResponse> => {
        if (req.op === 'handover') return handOverAndExit('ctl --handover');
        if (req.op === 'shutdown') {
          setImmediate(() => shutdown('ctl --shutdown'));
          return { ok: true };
        }
        if (req.op === 'drain') {
          if (exiting) return { ok: false, error: 'already exiting' };
          const d = lb.config.defs.drainTimeout;
          cluster.drain(req.timeout ?? (d > 0 ? d : DEFAULT_CTL_DRAIN_TIMEOUT_S), 'ctl --drain');
          return { ok: true, snapshot: lb.snapshot() };
        }
        const res = await lb.handle(req);
        if (req.op === 'reload' && res.ok && lb.config.defs.handover)
          checkpoints.setInterval(lb.config.defs.checkpointInterval);
        return res;
      },
    };
  }

  const onHup = (): void => {
    const r = lb.reload();
    if (r.ok && lb.config.defs.handover) checkpoints.setInterval(lb.config.defs.checkpointInterval);
  };
  const onTerm = (): void => {
    const d = lb.config.defs;
    if (defs.handover) void handOverAndExit('SIGTERM');
    // A second SIGTERM while draining stops at once.
    else if (d.drainTimeout > 0 && !cluster.draining && !exiting)
      cluster.drain(d.drainTimeout, 'SIGTERM');
    else shutdown('SIGTERM');
  };
  const onInt = (): void => shutdown('SIGINT');
  const onUsr2 = (): void => void handOverAndExit('SIGUSR2');
  function detachSignals(): void {
    process.off('SIGHUP', onHup);
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGUSR2', onUsr2);
  }
  process.on('SIGHUP', onHup);
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGUSR2', onUsr2);
  return done;
}

/** The persisted ISN secret, or a fresh one (said so) when the state directory is unusable. */
function secretFor(defs: FullnatDefs, log: Logger): number | undefined {
  try {
    const s = loadIsnSecret(defs.stateDir);
    if (s.how !== 'loaded') log.info({ file: s.path, how: s.how }, 'ISN secret');
    return s.secret;
  } catch (e) {
    log.warn(
      { dir: defs.stateDir, err: (e as Error).message },
      'ISN secret not kept: state_dir unusable; a restart may pick ISNs below the previous run',
    );
    return undefined;
  }
}

/** Waits (bounded) until the predecessor's control socket is gone, so ours can take the path. */
async function predecessorGone(sock: string): Promise<void> {
  const end = Date.now() + PREDECESSOR_EXIT_MS;
  while (Date.now() < end && (await probeSocket(sock, 200)) === 'listening')
    await new Promise((r) => setTimeout(r, 10));
}

/** The predecessor closed its metrics listener before answering; a port in TIME_WAIT-free reuse may still lag. */
async function startMetricsWithRetry(
  listen: { host: string; port: number },
  lb: LoadBalancer,
  log: Logger,
): Promise<MetricsServer> {
  const end = Date.now() + PREDECESSOR_EXIT_MS;
  for (;;) {
    try {
      return await startMetricsServer(
        listen,
        createMetricsRegistry(() => lb.snapshot()),
        log,
      );
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
