import type { SourcePos } from '../model.js';

/**
 * The one error a configuration produces. Its message is one line,
 * `FILE:LINE: reason`; the first problem found is the one reported.
 */
export class ConfigError extends Error {
  readonly file: string;
  readonly line: number;
  /** The message without the `FILE:LINE: ` prefix. */
  readonly reason: string;

  constructor(file: string, line: number, reason: string) {
    super(`${file}:${line}: ${reason}`);
    this.name = 'ConfigError';
    this.file = file;
    this.line = line;
    this.reason = reason;
  }
}

export function fail(pos: SourcePos, reason: string): never {
  throw new ConfigError(pos.file, pos.line, reason);
}

/** `FILE:LINE`, to point from one error at an earlier statement. */
export const at = (p: SourcePos): string => `${p.file}:${p.line}`;

/** A read error as the operator knows it: the errno code (ENOENT, EACCES) when there is one. */
export function errText(e: unknown): string {
  if (e instanceof Error) return (e as NodeJS.ErrnoException).code ?? e.message;
  return String(e);
}
