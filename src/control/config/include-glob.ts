/**
 * `include` patterns as keepalived expands them with glob(3): `*`, `?` and
 * `[…]` within one path component, a leading dot matched only by a dot,
 * directories skipped, matches in byte order.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface DirEntry {
  name: string;
  isDir: boolean;
}

/** The entries of a directory; a missing directory lists as empty (a glob through it matches nothing). */
export type ListDir = (dir: string) => DirEntry[];

export const hasGlob = (pattern: string): boolean => /[*?[]/.test(pattern);

export const listDir: ListDir = (dir) => {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return names.map((name) => {
    let isDir = false;
    try {
      // stat, not lstat: a symlink to a file is included as glob(3) includes it.
      isDir = statSync(join(dir, name)).isDirectory();
    } catch {
      // A dangling symlink: glob(3) lists it, and reading it reports the error.
    }
    return { name, isDir };
  });
};

/** Every file the absolute `pattern` names, sorted. */
export function expandGlob(pattern: string, list: ListDir): string[] {
  const parts = pattern.split('/').filter((p) => p !== '');
  let dirs = ['/'];
  let globbed = false;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const last = i === parts.length - 1;
    if (!hasGlob(part)) {
      // Below a wildcard a literal name must exist, as glob(3) matches only what is there.
      dirs = globbed
        ? dirs.filter((d) => list(d).some((e) => e.name === part && e.isDir !== last))
        : dirs;
      dirs = dirs.map((d) => join(d, part));
      continue;
    }
    globbed = true;
    const re = componentRegExp(part);
    const next: string[] = [];
    for (const d of dirs) {
      for (const e of list(d)) {
        if (e.isDir === last || !re.test(e.name)) continue;
        if (e.name.startsWith('.') && !part.startsWith('.')) continue;
        next.push(join(d, e.name));
      }
    }
    dirs = next;
  }
  return [...new Set(dirs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function componentRegExp(part: string): RegExp {
  let re = '';
  for (let i = 0; i < part.length; i++) {
    const c = part[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = part.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let body = part.slice(i + 1, end);
      if (body.startsWith('!')) body = '^' + body.slice(1);
      re += `[${body.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
