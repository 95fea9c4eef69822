/**
 * The LoadBalancer as the control tests build it: the smallest service
 * config, its file in a temporary directory per describe block, the LB with
 * health checks off on a test's host, and a logger whose records a test
 * reads back.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { LoadBalancer } from '../../src/control/lb.js';
import { createLogger, type Logger } from '../../src/control/log.js';
import type { HostNetwork } from '../../src/io/host.js';

/** One IPv4 service, 10.10.1.100:80 → 10.10.2.2:80 over LIP 10.10.3.1. */
export const ONE_SERVICE = `local_address_group g1 {
    10.10.3.1
}
virtual_server 10.10.1.100 80 {
    laddr_group_name g1
    real_server 10.10.2.2 80 {
        weight 1
    }
}
`;

/**
 * The path of lb.conf in a new temporary directory, removed after the
 * describe block it is called in; `text` written to it at once when given.
 */
export function tempConfig(prefix: string, text?: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'lb.conf');
  if (text !== undefined) writeFileSync(file, text);
  return file;
}

/** A LoadBalancer on `file` and `host`, health checks off, logging to `log` (silent unless given). */
export function testLb(
  file: string,
  host: HostNetwork,
  log: Logger = createLogger({ level: 'silent' }),
): LoadBalancer {
  return new LoadBalancer(file, { host, log, healthChecks: false });
}

export interface LogRecord {
  level: number;
  msg: string;
}

/** A logger at info whose JSON records land in `records`. */
export function recordingLogger(): { log: Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const log = createLogger({
    level: 'info',
    destination: {
      write: (line: string) => void records.push(JSON.parse(line) as LogRecord),
    },
  });
  return { log, records };
}
