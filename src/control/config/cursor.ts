/**
 * Walking the token stream: a cursor over it, and the block walker every
 * grammar rule uses (keyword dispatch, unknown and repeated keywords,
 * recovery after an error so that one reading reports every error).
 */
import { Diagnostics, BlockAbandoned } from './diagnostics.js';
import { at, fail } from './error.js';
import { isBrace, isClose, isOpen, sameLine, type Token } from './lexer.js';

export class Cursor {
  private i = 0;
  /** Braces open at the current position; a stray `}` does not take it below 0. */
  private open = 0;

  constructor(
    private readonly toks: readonly Token[],
    readonly diag: Diagnostics = new Diagnostics(),
  ) {}

  peek(): Token | undefined {
    return this.toks[this.i];
  }

  next(): Token | undefined {
    const t = this.toks[this.i++];
    if (isOpen(t)) this.open++;
    else if (isClose(t) && this.open > 0) this.open--;
    return t;
  }

  /** Where the next statement starts, for `recover`. */
  mark(): { index: number; depth: number } {
    return { index: this.i, depth: this.open };
  }

  /**
   * After the statement that started at `from` failed: skips what is left
   * of it so the walker reads the next one. A block it opened is skipped to
   * its `}`; a statement that opened none loses the rest of its keyword's
   * line and a block that follows it (an unknown block keyword's body).
   */
  recover(from: { index: number; depth: number }): void {
    while (this.open > from.depth) if (!this.next()) return;
    if (this.open < from.depth) return;
    for (let j = from.index; j < this.i; j++) if (isOpen(this.toks[j])) return;
    const kw = this.toks[from.index];
    if (kw && !isBrace(kw)) this.lineArgs(kw);
    if (isOpen(this.peek())) this.skipBlock();
  }

  /** A statement read and dropped whole: its line's words and, when it has one, its block (braces balanced). */
  skipStatement(kw: Token): Token[] {
    const args = this.lineArgs(kw);
    if (isOpen(this.peek())) this.skipBlock();
    return args;
  }

  /** Skips from a `{` (the next token) to its matching `}`, or to the end of the text. */
  private skipBlock(): void {
    const depth = this.open;
    this.next();
    while (this.open > depth) if (!this.next()) return;
  }

  /** The token consumed before the current one (the end of the previous statement). */
  previous(): Token | undefined {
    return this.i >= 2 ? this.toks[this.i - 2] : undefined;
  }

  /** Up to `max` non-brace tokens on the keyword's own line. */
  lineArgs(kw: Token, max = Infinity): Token[] {
    const out: Token[] = [];
    while (out.length < max && sameLine(kw, this.peek()) && !isBrace(this.peek())) {
      out.push(this.next()!);
    }
    return out;
  }

  /** Exactly `n` arguments on the keyword's line. */
  args(kw: Token, n: number): Token[] {
    const got = this.lineArgs(kw, n);
    if (got.length < n) {
      fail(kw, `'${kw.text}' needs ${n === 1 ? 'a value' : `${n} values`}`);
    }
    return got;
  }

  value(kw: Token): Token {
    return this.args(kw, 1)[0]!;
  }

  /** Header of a block: every word up to `{`, which may sit on the next line. */
  header(kw: Token, min: number, max: number, usage: string): Token[] {
    const got = this.lineArgs(kw);
    if (got.length < min || got.length > max) fail(kw, `expected '${usage}'`);
    if (!isOpen(this.peek()))
      fail(kw, `missing '{' after '${[kw, ...got].map((t) => t.text).join(' ')}'`);
    this.next();
    return got;
  }
}

export type Handler = (kw: Token) => void;

/**
 * Runs the statements of a block whose `{` was consumed, dispatching on the
 * keyword; statements need not be one per line (`TCP_CHECK { a 1 b 2 }`).
 * `otherwise` takes the keywords no handler knows (else they are errors).
 */
export function walkBlock(
  cur: Cursor,
  opener: Token,
  name: string,
  handlers: Record<string, Handler>,
  otherwise?: Handler,
): void {
  // A block in which a statement failed is read to its end, then dropped (BlockAbandoned).
  let broken = false;
  for (;;) {
    const start = cur.mark();
    const t = cur.next();
    if (!t) {
      if (broken) throw new BlockAbandoned();
      fail(opener, `'${name}' block is never closed (missing '}')`);
    }
    if (isClose(t)) {
      if (broken) throw new BlockAbandoned();
      return;
    }
    try {
      if (isOpen(t)) fail(t, `unexpected '{' in ${name}`);
      const h = Object.hasOwn(handlers, t.text) && !t.quoted ? handlers[t.text] : otherwise;
      if (!h) unknownKeyword(t, cur.previous(), name, Object.keys(handlers));
      h(t);
    } catch (e) {
      cur.diag.absorb(e);
      broken = true;
      cur.recover(start);
    }
  }
}

function unknownKeyword(t: Token, prev: Token | undefined, name: string, valid: string[]): never {
  if (prev && sameLine(t, prev) && !isBrace(prev) && /^[\d"/]/.test(t.text)) {
    fail(t, `unexpected extra value '${t.text}' after '${prev.text}' in ${name}`);
  }
  fail(t, `unknown keyword '${t.text}' in ${name} (valid: ${valid.join(', ')})`);
}

/** Rejects a keyword given twice in one block; aliases share one key. */
function once(seen: Map<string, Token>, kw: Token, key = kw.text): void {
  const first = seen.get(key);
  if (!first) {
    seen.set(key, kw);
    return;
  }
  if (first.text !== kw.text) {
    fail(kw, `'${kw.text}' repeats '${first.text}' (${at(first)}) in this block`);
  }
  fail(kw, `'${kw.text}' given twice in this block (first at ${at(first)})`);
}

/** Wraps every handler so that repeating a keyword is an error. */
export function withOnce(
  h: Record<string, Handler>,
  seen: Map<string, Token>,
  aliases: Record<string, string> = {},
): Record<string, Handler> {
  const out: Record<string, Handler> = {};
  for (const [k, fn] of Object.entries(h)) {
    out[k] = (t) => {
      once(seen, t, aliases[k] ?? k);
      fn(t);
    };
  }
  return out;
}
