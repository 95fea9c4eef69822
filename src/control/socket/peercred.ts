/**
 * Peer credentials of a unix socket connection: a typed layer over the small
 * native addon (native/peercred.c, built to build/Release/fullnat_peercred.node),
 * which makes the one system call Node lacks, getsockopt(SO_PEERCRED).
 *
 * Native contract: `peerCredentials(fd)` returns the pid, uid and gid the
 * peer had when it connected, as recorded by the kernel. A failing system
 * call throws an Error shaped like Node's system errors (`code` "EBADF",
 * "ENOTSOCK", …; message "getsockopt SO_PEERCRED: …"); a socket that is not
 * AF_UNIX throws code ENOTSUP; a bad fd argument throws TypeError.
 */
import { createRequire } from 'node:module';
import type net from 'node:net';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** The raw addon. */
export interface NativePeerCred {
  peerCredentials(fd: number): PeerCredentials;
}

/** Where the credentials of a control connection come from, or why they cannot be read. */
export type PeerCredSource =
  { ok: true; read: (fd: number) => PeerCredentials } | { ok: false; reason: string };

/** dist/src/control/socket/peercred.js → the repository root is four levels up. */
const ADDON_PATH = '../../../../build/Release/fullnat_peercred.node';

let loaded: PeerCredSource | undefined;

/** Loads the addon once; never throws. */
export function nativePeerCred(): PeerCredSource {
  if (loaded) return loaded;
  if (process.platform !== 'linux') {
    loaded = { ok: false, reason: `SO_PEERCRED needs Linux (this is ${process.platform})` };
    return loaded;
  }
  try {
    const require = createRequire(import.meta.url);
    const addon = require(ADDON_PATH) as NativePeerCred;
    if (typeof addon.peerCredentials !== 'function') {
      throw new Error('the addon does not export peerCredentials()');
    }
    loaded = { ok: true, read: (fd) => addon.peerCredentials(fd) };
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    loaded = {
      ok: false,
      reason:
        code === 'MODULE_NOT_FOUND'
          ? 'native peer-credential addon not built (run npm install; needs a C compiler and Node headers)'
          : `native peer-credential addon failed to load: ${(cause as Error).message}`,
    };
  }
  return loaded;
}

/**
 * The file descriptor behind a connected net.Socket. Node keeps it on the
 * socket's libuv handle (`_handle.fd`, a Pipe or TCP wrap on Unix); there is
 * no public API, so the shape is checked rather than assumed.
 */
export function socketFd(socket: net.Socket): number | undefined {
  const handle: unknown = Reflect.get(socket, '_handle');
  if (typeof handle !== 'object' || handle === null) return undefined;
  const fd: unknown = Reflect.get(handle, 'fd');
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}
