/**
 * Runs one `fullnat ctl` command: parse the argv, talk to the LB over the
 * control socket, print ipvsadm's listing or nothing.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import type { ControlRequest, ControlResponse, ServiceKey, Snapshot } from '../model.js';
import { ControlClientError, sendControlRequest } from '../socket/client.js';
import { CtlUsageError, parseCtlArgs, type CtlCommand } from './argv.js';
import {
  formatConnections,
  formatLaddrs,
  formatRates,
  formatServices,
  formatStats,
  selectServices,
  type FormatOptions,
} from './ipvsadm-format.js';
import {
  EXIT_LIST_FAILED,
  EXIT_OK,
  EXIT_UNREACHABLE,
  EXIT_USAGE,
  IPVSADM_MESSAGES,
  ipvsadmRefusal,
  refusalExitCode,
} from './ipvsadm-errors.js';
import { formatCluster, formatDrainStarted } from './cluster-format.js';
import { formatSync } from './sync-format.js';
import { computeRates } from './rates.js';
import { usage } from './usage.js';

export interface RunCtlOptions {
  /** Error lines (stderr); default process.stderr. */
  err?: (line: string) => void;
  /** Gap between the two snapshots of --rate; default 1000 ms. */
  rateIntervalMs?: number;
  /** Per request; default 5000 ms. */
  timeoutMs?: number;
  /** What `-v` prints; default this package's version. */
  version?: string;
  /** The first listing line's `size=`, when the snapshot does not say. */
  maxConnections?: number;
}

let cachedVersion: string | undefined;

/** This package's version, found from either the source or the compiled file's location. */
export function packageVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  cachedVersion = 'unknown';
  for (const rel of ['../../../package.json', '../../../../package.json']) {
    try {
      const pkg: unknown = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8'));
      if (
        typeof pkg === 'object' &&
        pkg !== null &&
        'name' in pkg &&
        pkg.name === 'fullnat' &&
        'version' in pkg &&
        typeof pkg.version === 'string'
      ) {
        cachedVersion = pkg.version;
        break;
      }
    } catch {
      // Not at this level; try the next.
    }
  }
  return cachedVersion;
}

/** The LB answered but refused; carries its message. */
class Refused extends Error {}

async function call(
  path: string,
  req: ControlRequest,
  timeoutMs: number,
): Promise<ControlResponse & { ok: true }> {
  const res = await sendControlRequest(path, req, timeoutMs);
  if (!res.ok) throw new Refused(res.error);
  return res;
}

async function snapshot(path: string, timeoutMs: number): Promise<Snapshot> {
  const res = await call(path, { op: 'snapshot' }, timeoutMs);
  if (!res.snapshot) throw new Refused('fullnat sent no snapshot');
  return res.snapshot;
}

function hasService(snap: Snapshot, k: ServiceKey): boolean {
  return selectServices(snap.services, k).length > 0;
}

/**
 * Runs one ctl command against the LB at `socketPath`. Exit codes and the
 * refusals' messages follow ipvsadm (ipvsadm-errors.ts): 0 done; 2 a bad
 * command line or no LB to talk to; 255 an ipvsadm change the LB refuses;
 * 1 a listing that fails, or one of fullnat's own commands refused.
 */
export async function runCtl(
  argv: readonly string[],
  socketPath: string,
  out: (line: string) => void,
  opts: RunCtlOptions = {},
): Promise<number> {
  const err = opts.err ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const timeoutMs = opts.timeoutMs ?? 5000;
  let cmd: CtlCommand;
  try {
    cmd = parseCtlArgs(argv);
  } catch (e) {
    if (e instanceof CtlUsageError) {
      err(e.message);
      return EXIT_USAGE;
    }
    throw e;
  }
  const version = opts.version ?? packageVersion();
  const fmt: FormatOptions =
    opts.maxConnections === undefined ? {} : { maxConnections: opts.maxConnections };
  const emit = (lines: readonly string[]): void => lines.forEach((l) => out(l));
  try {
    switch (cmd.kind) {
      case 'help':
        emit(usage());
        return 0;
      case 'version':
        out(`fullnat ctl ${version}`);
        return 0;
      case 'request':
        try {
          await call(socketPath, cmd.request, timeoutMs);
        } catch (e) {
          if (!(e instanceof Refused)) throw e;
          err(ipvsadmRefusal(cmd.request.op, e.message));
          return refusalExitCode(cmd.request.op);
        }
        return EXIT_OK;
      case 'cluster':
        emit(formatCluster(await snapshot(socketPath, timeoutMs)));
        return 0;
      case 'sync':
        emit(formatSync(await snapshot(socketPath, timeoutMs)));
        return 0;
      case 'drain': {
        const res = await call(socketPath, { op: 'drain' }, timeoutMs);
        if (res.snapshot) emit(formatDrainStarted(res.snapshot));
        return 0;
      }
      case 'connections': {
        const res = await call(socketPath, { op: 'connections' }, timeoutMs);
        emit(formatConnections(res.connections ?? [], cmd.lip ? { lip: true } : {}));
        return 0;
      }
      case 'laddrs': {
        const snap = await snapshot(socketPath, timeoutMs);
        if (cmd.service && !hasService(snap, cmd.service))
          throw new Refused(IPVSADM_MESSAGES.noSuchService);
        emit(formatLaddrs(snap, cmd.service));
        return 0;
      }
      case 'list': {
        const listOpts: FormatOptions = {
          ...fmt,
          exact: cmd.exact,
          ...(cmd.service ? { service: cmd.service } : {}),
          ...(cmd.noSort ? { noSort: true } : {}),
          ...(cmd.tunKernel ? { tunKernel: true } : {}),
        };
        if (cmd.view !== 'rate') {
          const snap = await snapshot(socketPath, timeoutMs);
          if (cmd.service && !hasService(snap, cmd.service))
            throw new Refused(IPVSADM_MESSAGES.noSuchService);
          emit(cmd.view === 'stats' ? formatStats(snap, listOpts) : formatServices(snap, listOpts));
          return 0;
        }
        // Time each sample at the midpoint of its round trip: the snapshot was taken in between.
        const t0 = performance.now();
        const before = await snapshot(socketPath, timeoutMs);
        const m0 = (t0 + performance.now()) / 2;
        await sleep(opts.rateIntervalMs ?? 1000);
        const t1 = performance.now();
        const after = await snapshot(socketPath, timeoutMs);
        const m1 = (t1 + performance.now()) / 2;
        if (cmd.service && !hasService(after, cmd.service))
          throw new Refused(IPVSADM_MESSAGES.noSuchService);
        emit(formatRates(after, computeRates(before, after, (m1 - m0) / 1000), listOpts));
        return 0;
      }
    }
  } catch (e) {
    err(e instanceof Error ? e.message : String(e));
    return e instanceof ControlClientError ? EXIT_UNREACHABLE : EXIT_LIST_FAILED;
  }
}
