/**
 * Text to tokens, with `include` resolved in place: what follows sees one
 * token stream whose tokens still name their own file and line.
 */
import { dirname, isAbsolute, join } from 'node:path';

import { errText, fail } from './error.js';

export interface Token {
  text: string;
  file: string;
  line: number;
  /** Quoted text is never a brace or a keyword like `include`. */
  quoted: boolean;
}

export type ReadInclude = (path: string) => string;

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
function lexLine(src: string, file: string, line: number): Token[] {
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
      if (end < 0) fail({ file, line }, 'unterminated quoted string');
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

/** `stack` holds the files being read, outermost first, to refuse include cycles. */
export function lexFile(
  text: string,
  file: string,
  readInclude: ReadInclude,
  stack: string[],
): Token[] {
  const out: Token[] = [];
  text.split('\n').forEach((src, idx) => {
    const toks = lexLine(src, file, idx + 1);
    const first = toks[0];
    if (first && !first.quoted && first.text === 'include') {
      out.push(...lexInclude(first, toks.slice(1), readInclude, stack));
    } else {
      out.push(...toks);
    }
  });
  return out;
}

/** `include FILE`: one literal path (no globbing), relative to the including file. */
function lexInclude(kw: Token, args: Token[], readInclude: ReadInclude, stack: string[]): Token[] {
  if (args.length !== 1 || isBrace(args[0])) fail(kw, "'include' needs exactly one file name");
  const name = args[0]!.text;
  const path = isAbsolute(name) ? name : join(dirname(kw.file), name);
  if (stack.includes(path)) fail(kw, `include cycle: ${[...stack, path].join(' -> ')}`);
  let text: string;
  try {
    text = readInclude(path);
  } catch (e) {
    fail(kw, `cannot read include file '${path}': ${errText(e)}`);
  }
  return lexFile(text, path, readInclude, [...stack, path]);
}
