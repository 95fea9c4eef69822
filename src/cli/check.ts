/**
 * `fullnat check [-f] FILE [FILE…] [--offline] [--json]`: each file read as
 * `fullnat run` would, through to its end: every error and warning of it,
 * `FILE:LINE: reason`; with two files or more they are a fleet's nodes and
 * are checked against each other (config/fleet-checks.ts, their sync
 * blocks and key files in config/fleet-sync-checks.ts); with one file,
 * unless --offline, each BGP neighbour must have a route from this machine.
 * Exit 0 when no file has an error (warnings allowed), 1 otherwise.
 */
import { checkConfigFile, ConfigError } from '../control/config/index.js';
import { checkFleet, findingText, type Finding } from '../control/config/fleet-checks.js';
import { ipRouteGet, type RouteLookup } from '../control/cluster/neighbor-route.js';

export type { RouteLookup };
import type { FullnatConfig } from '../control/model.js';
import { addressToString } from '../wire/address.js';

export interface CheckOptions {
  offline?: boolean;
  routeLookup?: RouteLookup;
  load?: (file: string) => FullnatConfig;
}

export interface FileResult {
  file: string;
  ok: boolean;
  errors: Finding[];
  warnings: Finding[];
}

export interface CheckReport {
  ok: boolean;
  files: FileResult[];
}

/** Parses each file, then checks them as a fleet (2+) or the one file's neighbours' routes. */
export function checkFiles(files: readonly string[], opts: CheckOptions = {}): CheckReport {
  const results = files.map((file): FileResult => ({ file, ok: true, errors: [], warnings: [] }));
  const parsed: FullnatConfig[] = [];
  const { load } = opts;
  results.forEach((r) => {
    if (load) {
      try {
        parsed.push(load(r.file));
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        r.errors.push({ file: e.file, line: e.line, reason: e.reason });
      }
      return;
    }
    const report = checkConfigFile(r.file);
    for (const e of report.errors) r.errors.push({ file: e.file, line: e.line, reason: e.reason });
    r.warnings.push(...report.warnings);
    if (report.config) parsed.push(report.config);
  });
  const resultOf = (node: string): FileResult => results.find((r) => r.file === node)!;
  if (parsed.length >= 2) {
    const fleet = checkFleet(parsed);
    for (const { node, ...f } of fleet.errors) resultOf(node).errors.push(f);
    for (const { node, ...f } of fleet.warnings) resultOf(node).warnings.push(f);
  } else if (files.length === 1 && parsed.length === 1 && !opts.offline) {
    const lookup = opts.routeLookup ?? ipRouteGet;
    for (const n of parsed[0]!.bgp?.neighbors ?? []) {
      const addr = addressToString(n.addr);
      const why = lookup(addr);
      if (why !== null)
        results[0]!.errors.push({
          file: n.pos.file,
          line: n.pos.line,
          reason: `no route to neighbour ${addr} (${why})`,
        });
    }
  }
  for (const r of results) r.ok = r.errors.length === 0;
  return { ok: results.every((r) => r.ok), files: results };
}

/** The text report: errors and warnings as `FILE:LINE: …`, `FILE: ok` per clean file, a summary. */
export function formatCheck(report: CheckReport): string[] {
  const out: string[] = [];
  let errors = 0;
  let warnings = 0;
  for (const r of report.files) {
    for (const e of r.errors) out.push(findingText(e));
    for (const w of r.warnings) out.push(findingText({ ...w, reason: `warning: ${w.reason}` }));
    if (r.ok) out.push(`${r.file}: ok`);
    errors += r.errors.length;
    warnings += r.warnings.length;
  }
  const n = report.files.length;
  const plural = (k: number, w: string): string => `${k} ${w}${k === 1 ? '' : 's'}`;
  out.push(
    `${plural(n, 'file')} checked: ${plural(errors, 'error')}, ${plural(warnings, 'warning')}`,
  );
  return out;
}

/** The report as one JSON document: each finding with its `FILE:LINE: reason` text too. */
export function checkJson(report: CheckReport): string {
  const withText = (f: Finding): Finding & { message: string } => ({
    ...f,
    message: findingText(f),
  });
  return JSON.stringify({
    ok: report.ok,
    files: report.files.map((r) => ({
      file: r.file,
      ok: r.ok,
      errors: r.errors.map(withText),
      warnings: r.warnings.map(withText),
    })),
  });
}

export function runCheck(
  files: readonly string[],
  flags: { offline?: boolean; json?: boolean },
  print: (line: string) => void = (l) => console.log(l),
  opts: CheckOptions = {},
): number {
  const report = checkFiles(files, { ...opts, offline: flags.offline === true });
  if (flags.json) print(checkJson(report));
  else for (const line of formatCheck(report)) print(line);
  return report.ok ? 0 : 1;
}
