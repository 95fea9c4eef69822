/**
 * Reading a lab fixture's stdout: one JSON object a line, other lines
 * (a stray message, a partial write) skipped.
 */
import type { ChildProcess } from 'node:child_process';

/** Calls `each` with every JSON object line the child prints on stdout. */
export function onJsonLines(child: ChildProcess, each: (o: Record<string, unknown>) => void): void {
  let buf = '';
  child.stdout?.on('data', (c: Buffer) => {
    buf += c.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      try {
        each(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not one of ours
      }
    }
  });
}
