import { ConfigError, loadConfig } from '../control/config/index.js';
import { LoadBalancer } from '../control/lb.js';
import { createLogger } from '../control/log.js';
import {
  createMetricsRegistry,
  startMetricsServer,
  type MetricsServer,
} from '../control/metrics.js';
import { startControlServer, type ControlServer } from '../control/socket/index.js';
import { linuxHost } from '../io/host.js';
import { tunAvailable } from '../io/tun.js';

/**
 * `fullnat run -f FILE`: runs until SIGINT/SIGTERM; SIGHUP (or `ctl --reload`)
 * re-reads the file. Resolves with the exit code once shut down.
 */
export async function runLoadBalancer(
  file: string,
  opts: { healthChecks?: boolean } = {},
): Promise<number> {
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
  if (process.getuid?.() !== 0) {
    console.error('fullnat run: needs root (TUN device, routes, sysctls)');
    return 1;
  }
  const tun = tunAvailable();
  if (!tun.ok) {
    console.error(`fullnat run: ${tun.reason}`);
    return 1;
  }
  const lb = new LoadBalancer(
    file,
    { host: linuxHost, log, healthChecks: opts.healthChecks },
    config,
  );
  let control: ControlServer | undefined;
  let metrics: MetricsServer | undefined;
  try {
    lb.start();
    control = await startControlServer(config.defs.controlSocket, lb, log);
    if (config.defs.metrics) {
      metrics = await startMetricsServer(
        config.defs.metrics,
        createMetricsRegistry(() => lb.snapshot()),
        log,
      );
      log.info({ listen: `${metrics.host}:${metrics.port}` }, 'metrics on /metrics');
    }
  } catch (e) {
    log.error({ err: (e as Error).message }, 'start failed');
    await control?.close();
    lb.stop();
    return 1;
  }
  return new Promise<number>((resolve) => {
    const shutdown = (signal: string): void => {
      process.off('SIGHUP', onHup);
      log.info({ signal }, 'shutting down');
      void (async () => {
        await metrics?.close();
        await control?.close();
        lb.stop();
        resolve(0);
      })();
    };
    const onHup = (): void => {
      lb.reload();
    };
    process.on('SIGHUP', onHup);
    process.once('SIGINT', () => shutdown('SIGINT'));
    process.once('SIGTERM', () => shutdown('SIGTERM'));
  });
}
