/**
 * Parser for the keepalived-style configuration LVS/DPVS users already write
 * (`fullnat_defs`, `local_address_group`, `virtual_server` / `real_server`
 * with TCP_CHECK, HTTP_GET, UDP_CHECK or MISC_CHECK), and a fleet node's `bgp`
 * and `sync`.
 *
 * Errors: the first problem found throws a ConfigError whose message is one
 * line, `FILE:LINE: reason`. Syntax and per-value problems are found in file
 * order; cross-checks that need the whole file (groups, overlaps) run after.
 */
import { readFileSync } from 'node:fs';
import { normalize } from 'node:path';

import type { FullnatConfig } from '../model.js';
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
import { ConfigError, errText } from './error.js';
import type { State } from './grammar/draft.js';
import { parseTop } from './grammar/top-level.js';
import { lexFile, type ReadInclude } from './lexer.js';

const readUtf8: ReadInclude = (p) => readFileSync(p, 'utf8');

/**
 * Parses configuration text. `file` names the text in errors and anchors
 * relative `include` paths; `readInclude` reads included files (fs by default).
 */
export function parseConfig(
  text: string,
  file: string,
  readInclude: ReadInclude = readUtf8,
): FullnatConfig {
  const toks = lexFile(text, file, readInclude, [normalize(file)]);
  const st: State = { defs: defaultDefs(), groups: new Map(), services: [] };
  parseTop(new Cursor(toks), st);
  checkGroups(st);
  checkAddressRoles(st);
  checkLocalFamilies(st);
  checkIpv6Mtus(st);
  checkUoaModes(st);
  checkBgp(st);
  checkSync(st);
  return build(file, st);
}

/** Reads and parses a file; an unreadable file is reported as `FILE:0: …`. */
export function loadConfig(path: string): FullnatConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, 0, `cannot read configuration: ${errText(e)}`);
  }
  return parseConfig(text, path);
}
