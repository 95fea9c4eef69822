/**
 * `fullnat doctor FILE.pcap[ng] [--json] [--html OUT.html]`: for people
 * running LVS FULLNAT or DPVS who see LB addresses in their RS logs. Reads a
 * capture taken at the RS and says which handshakes lost the client address
 * and why (see doctor/analyze.ts).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { analyzeCapture, type Analysis } from '../doctor/analyze.js';
import { renderHtml } from '../doctor/html.js';
import { DEFAULT_LIMIT, formatText, toJson } from '../doctor/report.js';

export interface DoctorOptions {
  file: string;
  json?: boolean;
  /** Also write the self-contained HTML report here. */
  html?: string;
  /** Rows of the misses table (text and HTML); JSON always has every connection. */
  limit?: number;
  /** Path MTU toward the RS, instead of the estimate. */
  mtu?: number;
  /** The RS listener uses TCP_DEFER_ACCEPT (nginx `deferred`). */
  deferAccept?: boolean;
}

/** Where the doctor writes: results to `out`, diagnostics to `err` (stdout/stderr by default). */
export interface DoctorOutput {
  out(text: string): void;
  err(text: string): void;
}

export const consoleOutput: DoctorOutput = {
  out: (text) => console.log(text),
  err: (text) => console.error(text),
};

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

function checkOptions(o: DoctorOptions): string | null {
  // The smallest IPv4 MTU is 68; anything above 65535 cannot be an IP packet size.
  if (o.mtu !== undefined && (!Number.isInteger(o.mtu) || o.mtu < 68 || o.mtu > 65535)) {
    return `--mtu must be an integer between 68 and 65535, got ${o.mtu}`;
  }
  if (o.limit !== undefined && (!Number.isInteger(o.limit) || o.limit < 0)) {
    return `--limit must be a non-negative integer, got ${o.limit}`;
  }
  return null;
}

/** Runs the doctor; resolves to the exit code (1: unreadable or damaged file, bad options). */
export async function runDoctor(
  o: DoctorOptions,
  io: DoctorOutput = consoleOutput,
): Promise<number> {
  const fail = (text: string): number => {
    io.err(`fullnat doctor: ${text}`);
    return 1;
  };
  const bad = checkOptions(o);
  if (bad) return fail(bad);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(o.file);
  } catch (e) {
    return fail(`cannot read ${o.file}: ${message(e)}`);
  }
  let analysis: Analysis;
  try {
    analysis = analyzeCapture(bytes, { deferAccept: o.deferAccept === true, mtu: o.mtu });
  } catch (e) {
    // readCapture names the block or record and byte offset of the damage.
    return fail(`${o.file} is not a readable capture: ${message(e)}`);
  }
  const limit = o.limit ?? DEFAULT_LIMIT;
  if (o.html !== undefined) {
    try {
      await writeFile(o.html, renderHtml(o.file, analysis, limit));
    } catch (e) {
      return fail(`cannot write ${o.html}: ${message(e)}`);
    }
  }
  if (o.json) {
    // stdout carries exactly one JSON document; the HTML note goes to stderr.
    io.out(JSON.stringify(toJson(o.file, analysis)));
    if (o.html !== undefined) io.err(`wrote ${o.html}`);
  } else {
    io.out(formatText(o.file, analysis, limit));
    if (o.html !== undefined) io.out(`\nwrote ${o.html}`);
  }
  return 0;
}
