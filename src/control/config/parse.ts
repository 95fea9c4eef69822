/**
 * Parser for the keepalived-style configuration LVS/DPVS users already write
 * (`fullnat_defs`, `local_address_group`, `virtual_server` / `real_server`
 * with keepalived's checkers, any number of them), and a fleet node's `bgp`
 * and `sync`.
 *
 * Errors: each is a ConfigError whose message is one line, `FILE:LINE:
 * reason`. `readConfig` / `checkConfigFile` return them all with the
 * warnings; `parseConfig` / `loadConfig` throw the first. Syntax and
 * per-value problems are found in file order; cross-checks that need the
 * whole file (groups, overlaps) run after.
 */
import { readFileSync } from 'node:fs';
import { normalize } from 'node:path';

import type { ConfigWarning, FullnatConfig } from '../model.js';
import { build } from './build.js';
import {
  checkAddressRoles,
  checkBgp,
  checkGroups,
  checkIpv6Mtus,
  checkLocalFamilies,
  checkSync,
  checkUoaModes,
} from './checks.js';
import { Cursor } from './cursor.js';
import { defaultDefs } from './defaults.js';
import { Diagnostics } from './diagnostics.js';
import { ConfigError, errText } from './error.js';
import type { State } from './grammar/draft.js';
import { applyGlobalDefs } from './grammar/global-defs.js';
import { parseEarly, parseTop } from './grammar/top-level.js';
import { listDir } from './include-glob.js';
import { lexFile, type ReadInclude } from './lexer.js';

const readUtf8: ReadInclude = (p) => readFileSync(p, 'utf8');

/** Everything one reading found: the configuration when there is no error, every error and warning. */
export interface ConfigReport {
  config?: FullnatConfig;
  errors: ConfigError[];
  warnings: ConfigWarning[];
}

const CROSS_CHECKS: ReadonlyArray<(st: State) => void> = [
  checkGroups,
  checkAddressRoles,
  checkLocalFamilies,
  checkIpv6Mtus,
  checkUoaModes,
  checkBgp,
  checkSync,
];

/**
 * Reads configuration text through to its end: each block's errors are
 * recorded and reading goes on after the block. The cross-checks need the
 * whole file, so they run once every block read cleanly (a dropped block
 * would only make them report what is not wrong), and stop at their first
 * problem.
 */
export function readConfig(
  text: string,
  file: string,
  readInclude: ReadInclude = readUtf8,
): ConfigReport {
  const diag = new Diagnostics();
  const toks = lexFile(text, file, { read: readInclude, list: listDir }, [normalize(file)], diag);
  const st: State = { defs: defaultDefs(), groups: new Map(), vsGroups: new Map(), services: [] };
  // virtual_server_group and global_defs first: keepalived resolves them once the file is read.
  parseEarly(new Cursor(toks, diag), st);
  parseTop(new Cursor(toks, diag), st);
  applyGlobalDefs(st, diag);
  // Each check counts on the ones before it (a group reference resolved), so the first error ends them.
  if (diag.errors.length === 0) {
    try {
      for (const check of CROSS_CHECKS) check(st);
    } catch (e) {
      diag.absorb(e);
    }
  }
  diag.sortByPlace();
  const report: ConfigReport = { errors: diag.errors, warnings: diag.warnings };
  if (diag.errors.length > 0) return report;
  const config = build(file, st);
  if (diag.warnings.length > 0) config.warnings = diag.warnings;
  report.config = config;
  return report;
}

/**
 * Parses configuration text. `file` names the text in errors and anchors
 * relative `include` paths; `readInclude` reads included files (fs by
 * default). Throws the first error in reading order; the warnings are in
 * `config.warnings`.
 */
export function parseConfig(
  text: string,
  file: string,
  readInclude: ReadInclude = readUtf8,
): FullnatConfig {
  return firstErrorOrConfig(readConfig(text, file, readInclude));
}

/** Reads a file through to its end (`fullnat check`); an unreadable file is `FILE:0: …`. */
export function checkConfigFile(path: string): ConfigReport {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return {
      errors: [new ConfigError(path, 0, `cannot read configuration: ${errText(e)}`)],
      warnings: [],
    };
  }
  return readConfig(text, path);
}

/** Reads and parses a file, throwing its first error (run and reload refuse a file with any). */
export function loadConfig(path: string): FullnatConfig {
  return firstErrorOrConfig(checkConfigFile(path));
}

function firstErrorOrConfig(r: ConfigReport): FullnatConfig {
  const first = r.errors[0];
  if (first || !r.config) throw first ?? new Error('configuration read without a result');
  return r.config;
}
