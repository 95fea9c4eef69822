/**
 * What one reading of a configuration found: every error (the parser goes
 * on past each one) and every warning, in the order they were met.
 */
import type { ConfigWarning, SourcePos } from '../model.js';
import { ConfigError } from './error.js';

export type { ConfigWarning };

/**
 * Thrown by a block walker at the end of a block in which an error was
 * already recorded: the enclosing statement is dropped without a second
 * message (a real_server whose check failed to read is not then reported
 * as lacking a check).
 */
export class BlockAbandoned extends Error {
  constructor() {
    super('block abandoned after an error');
    this.name = 'BlockAbandoned';
  }
}

export class Diagnostics {
  readonly errors: ConfigError[] = [];
  readonly warnings: ConfigWarning[] = [];
  /** The files in the order the lexer met them, includes in place: the order findings are reported in. */
  private readonly files: string[] = [];

  noteFile(file: string): void {
    if (!this.files.includes(file)) this.files.push(file);
  }

  /**
   * Errors and warnings in reading order (file as met, then line): the
   * passes find them in another order (global_defs and groups first,
   * cross-checks last). The sort is stable, so one line's findings keep theirs.
   */
  sortByPlace(): void {
    const rank = (p: SourcePos): number => this.files.indexOf(p.file);
    const byPlace = (a: SourcePos, b: SourcePos): number => rank(a) - rank(b) || a.line - b.line;
    this.errors.sort(byPlace);
    this.warnings.sort(byPlace);
  }

  error(e: ConfigError): void {
    this.errors.push(e);
  }

  warn(pos: SourcePos, reason: string): void {
    this.warnings.push({ file: pos.file, line: pos.line, reason });
  }

  /**
   * Records what a failed statement threw, when it is a configuration
   * problem; anything else (a bug) is rethrown.
   */
  absorb(e: unknown): void {
    if (e instanceof ConfigError) this.error(e);
    else if (!(e instanceof BlockAbandoned)) throw e;
  }
}

/** A warning as `fullnat check` prints it and run/reload log it: `FILE:LINE: warning: reason`. */
export const warningText = (w: ConfigWarning): string =>
  `${w.file}:${w.line}: warning: ${w.reason}`;
