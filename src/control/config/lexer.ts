/**
 * Text to tokens, with `include` resolved in place: what follows sees one
 * token stream whose tokens still name their own file and line.
 */
import { dirname, isAbsolute, join } from 'node:path';

import type { Diagnostics } from './diagnostics.js';
import { ConfigError, errText, fail } from './error.js';
import { expandGlob, hasGlob, type ListDir } from './include-glob.js';

export interface Token {
  text: string;
  file: string;
  line: number;
  /** Quoted text is never a brace or a keyword like `include`. */
  quoted: boolean;
}

export type ReadInclude = (path: string) => string;

/** How included files are found and read; tests give files of their own. */
export interface IncludeSource {
  read: ReadInclude;
  list: ListDir;
}

export const isOpen = (t: Token | undefined): boolean =>
  t !== undefined && !t.quoted && t.text === '{';
export const isClose = (t: Token | undefined): boolean =>
  t !== undefined && !t.quoted && t.text === '}';
export const isBrace = (t: Token | undefined): boolean => isOpen(t) || isClose(t);
export const sameLine = (a: Token, b: Token | undefined): boolean =>
  b !== undefined && a.file === b.file && a.line === b.line;

/**
 * Splits one line into tokens. `#` and `!` start a comment only at a word
 * boundary (keepalived's rule), so a URL path such as `/a!b` survives.
 */
function lexLine(src: string, file: string, line: number, diag: Diagnostics): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (c === '#' || c === '!') {
      break;
    } else if (c === '{' || c === '}') {
      out.push({ text: c, file, line, quoted: false });
      i++;
    } else if (c === '"') {
      const end = src.indexOf('"', i + 1);
      if (end < 0) {
        // The whole line goes: half a statement would only add errors about what is missing.
        diag.error(new ConfigError(file, line, 'unterminated quoted string'));
        return [];
      }
      out.push({ text: src.slice(i + 1, end), file, line, quoted: true });
      i = end + 1;
    } else {
      let j = i;
      while (j < src.length && !' \t\r{}'.includes(src[j]!)) j++;
      out.push({ text: src.slice(i, j), file, line, quoted: false });
      i = j;
    }
  }
  return out;
}

/**
 * `stack` holds the files being read, outermost first, to refuse include
 * cycles. A bad line or include is recorded in `diag` and lexing goes on.
 */
export function lexFile(
  text: string,
  file: string,
  src: IncludeSource,
  stack: string[],
  diag: Diagnostics,
): Token[] {
  diag.noteFile(file);
  const out: Token[] = [];
  text.split('\n').forEach((line, idx) => {
    const toks = lexLine(line, file, idx + 1, diag);
    const first = toks[0];
    if (first && !first.quoted && first.text === 'include') {
      try {
        out.push(...lexInclude(first, toks.slice(1), src, stack, diag));
      } catch (e) {
        diag.absorb(e);
      }
    } else {
      out.push(...toks);
    }
  });
  return out;
}

/**
 * `include PATTERN`, as keepalived reads it: relative to the including
 * file; a glob (`*`, `?`, `[…]`) takes its matches in sorted order, and a
 * glob matching nothing is a warning, not an error.
 */
function lexInclude(
  kw: Token,
  args: Token[],
  src: IncludeSource,
  stack: string[],
  diag: Diagnostics,
): Token[] {
  if (args.length !== 1 || isBrace(args[0])) fail(kw, "'include' needs exactly one file name");
  const name = args[0]!.text;
  const pattern = isAbsolute(name) ? name : join(dirname(kw.file), name);
  if (!hasGlob(pattern)) return lexIncluded(kw, pattern, src, stack, diag);
  let paths: string[];
  try {
    paths = expandGlob(pattern, src.list);
  } catch (e) {
    fail(kw, `cannot read include pattern '${pattern}': ${errText(e)}`);
  }
  if (paths.length === 0) diag.warn(kw, `include '${pattern}' matches no file`);
  const out: Token[] = [];
  for (const path of paths) {
    try {
      out.push(...lexIncluded(kw, path, src, stack, diag));
    } catch (e) {
      diag.absorb(e);
    }
  }
  return out;
}

function lexIncluded(
  kw: Token,
  path: string,
  src: IncludeSource,
  stack: string[],
  diag: Diagnostics,
): Token[] {
  if (stack.includes(path)) fail(kw, `include cycle: ${[...stack, path].join(' -> ')}`);
  let text: string;
  try {
    text = src.read(path);
  } catch (e) {
    fail(kw, `cannot read include file '${path}': ${errText(e)}`);
  }
  return lexFile(text, path, src, [...stack, path], diag);
}
