/**
 * Both sides of a handover, over a LoadBalancer and the state file; the
 * process (src/cli/run.ts) decides when, and carries the request over the
 * control socket. docs/ARCHITECTURE.md, "Restarts and upgrades", has the
 * order of steps and why.
 */
import type { LoadBalancer } from '../lb.js';
import type { Logger } from '../log.js';
import type { HandoverReport } from '../model.js';
import { readStateFile, writeStateFile, type SavedTable } from './state-file.js';

/**
 * The old side: drain, detach, export, save; then the descriptor is closed
 * and device and routes are left. If the table cannot be saved, the queue
 * rejoins and forwarding goes on, and this throws.
 */
export function handOver(lb: LoadBalancer, path: string, log: Logger): HandoverReport {
  const t0 = performance.now();
  const connections = lb.engine.connectionCount;
  const saved = lb.handOver();
  let bytes: number;
  try {
    bytes = writeStateFile(path, saved);
  } catch (e) {
    lb.resume();
    throw new Error(`handover failed: cannot save the table to ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  lb.release();
  log.info(
    { file: path, connections, bytes, ms: Math.round(performance.now() - t0) },
    'handover: table saved, device left to the successor',
  );
  return { file: path, connections, bytes, lastForwardedAt: saved.lastForwardedAt };
}

/** What a start found in the state file and did with it. */
export interface ResumeReport {
  /** The saved table was used (imported, at least in part). */
  resumed: boolean;
  imported: number;
  skipped: number;
  /** Why the file was not used, when it was there but unusable. */
  refused?: string;
}

/**
 * The new side: reads the state file (if any) and starts forwarding with
 * it. A missing file is a quiet empty start; an unusable one (corrupt,
 * too old, from a newer fullnat) is a logged empty start. Never throws for
 * the file's sake. Logs the forwarding gap once the first packet goes out.
 */
export function resume(
  lb: LoadBalancer,
  path: string,
  log: Logger,
  nowMs = Date.now(),
): ResumeReport {
  const maxAgeMs = lb.config.defs.timeouts.ESTABLISHED * 1000;
  const r = readStateFile(path, nowMs, maxAgeMs);
  if (!r.ok) {
    if (r.missing) log.info({ file: path }, 'no saved connection table: starting empty');
    else log.warn({ reason: r.reason }, 'saved connection table not used: starting empty');
    lb.startForwarding();
    return { resumed: false, imported: 0, skipped: 0, ...(r.missing ? {} : { refused: r.reason }) };
  }
  const result = lb.startForwarding(r.table);
  if (!result) return { resumed: false, imported: 0, skipped: 0, refused: 'refused by the engine' };
  log.info(
    {
      file: path,
      ageMs: Math.round(r.ageMs),
      imported: result.imported,
      skipped: result.skipped,
      reasons: result.reasons,
    },
    'saved connection table imported',
  );
  logGap(lb, r.table, log);
  return { resumed: true, imported: result.imported, skipped: result.skipped };
}

function logGap(lb: LoadBalancer, saved: SavedTable, log: Logger): void {
  if (saved.lastForwardedAt <= 0) return;
  lb.onFirstForward((at) =>
    log.info(
      { gapMs: at - saved.lastForwardedAt },
      'handover: forwarding resumed (gap since the predecessor last forwarded)',
    ),
  );
}
