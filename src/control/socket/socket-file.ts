/**
 * The socket file's side of who may connect: connect(2) on a unix socket
 * needs write permission on the file, so the file is created 0600 (umask
 * held at 0177 across bind, chmod after) in a directory nobody else can
 * replace it in; a stale file is removed only when nobody listens on it.
 */
import { constants as fsConstants } from 'node:fs';
import { lstat, stat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';

import { errMessage, errnoCode } from './errors.js';

export type ProbeResult = 'listening' | 'stale' | 'gone' | 'denied';

/** Is something accepting connections on this socket path? */
/** What is at a socket path: a live listener, a stale file, nothing, or a file we may not probe. */
export function probeSocket(path: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const s = net.createConnection({ path });
    const done = (r: ProbeResult): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    // A listener too busy to accept within the timeout is still a listener: never steal its path.
    const timer = setTimeout(() => done('listening'), timeoutMs);
    s.once('connect', () => done('listening'));
    s.once('error', (e) => {
      const code = errnoCode(e);
      if (code === 'ECONNREFUSED') done('stale');
      else if (code === 'ENOENT') done('gone');
      else if (code === 'EACCES' || code === 'EPERM') done('denied');
      else done('listening');
    });
  });
}

export async function checkDirectory(path: string): Promise<void> {
  const dir = dirname(path);
  let st;
  try {
    st = await stat(dir);
  } catch (e) {
    throw new Error(`control socket directory ${dir}: ${errMessage(e)}`, { cause: e });
  }
  if (!st.isDirectory()) throw new Error(`control socket directory ${dir} is not a directory`);
  const euid = process.geteuid?.() ?? 0;
  if (st.uid !== 0 && st.uid !== euid) {
    throw new Error(
      `refusing control socket in ${dir}: owned by uid ${st.uid}, who could replace the socket`,
    );
  }
  const othersWrite = (st.mode & (fsConstants.S_IWGRP | fsConstants.S_IWOTH)) !== 0;
  // S_ISVTX is missing from fs.constants' typings; the bit is 01000 on every Unix.
  const sticky = (st.mode & 0o1000) !== 0;
  if (othersWrite && !sticky) {
    throw new Error(
      `refusing control socket in ${dir}: writable by group/others without the sticky bit (mode ${(st.mode & 0o7777).toString(8)})`,
    );
  }
}

/** Removes a stale socket file; refuses when another LB is listening or the path is not a socket. */
export async function clearStalePath(path: string, log: Logger): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return;
    throw e;
  }
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  const probe = await probeSocket(path, 1000);
  switch (probe) {
    case 'listening':
      throw new Error(`another fullnat is already listening on ${path}`);
    case 'denied':
      throw new Error(
        `${path} exists and cannot be probed (permission denied); is another fullnat running as root?`,
      );
    case 'gone':
      return;
    case 'stale':
      log.info({ path }, 'removing stale control socket');
      try {
        await unlink(path);
      } catch (e) {
        if (errnoCode(e) !== 'ENOENT') throw e;
      }
  }
}

export function listenPrivately(server: net.Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    server.once('error', onError);
    let oldMask: number | undefined;
    try {
      // bind(2) creates the file with 0777 & ~umask; holding the umask closes the window
      // between bind and chmod. Worker threads cannot change the umask: chmod still follows.
      oldMask = process.umask(0o177);
    } catch {
      oldMask = undefined;
    }
    try {
      server.listen({ path, exclusive: true }, () => {
        server.off('error', onError);
        resolve();
      });
    } finally {
      // For a unix path outside cluster mode, listen() binds synchronously, so the file exists now.
      if (oldMask !== undefined) process.umask(oldMask);
    }
  });
}
