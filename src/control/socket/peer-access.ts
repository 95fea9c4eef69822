/**
 * The peer's side of who may connect: the uid the kernel recorded when the
 * peer connected (SO_PEERCRED, through peercred.ts) must be root's or the
 * LB's own, even if the socket file's mode was loosened by hand.
 */
import type net from 'node:net';
import type { Logger } from 'pino';

import { errMessage } from './errors.js';
import { socketFd, type PeerCredentials, type PeerCredSource } from './peercred.js';

/** A refused peer gets this long to read its error line before the connection is cut. */
const REFUSED_LINGER_MS = 1000;

/** The uids allowed on the control socket: root and the user the LB runs as. */
export function allowedPeerUids(): number[] {
  const own = process.getuid?.();
  return own === undefined || own === 0 ? [0] : [0, own];
}

/**
 * Why this connection's peer may not use the socket, or undefined when it may
 * (or when credentials cannot be read at all: then the file mode decides).
 * A peer whose credentials should be readable but are not is refused.
 */
export function peerRefusal(
  socket: net.Socket,
  creds: PeerCredSource,
  allowed: readonly number[],
  log: Logger,
): string | undefined {
  if (!creds.ok) return undefined;
  const fd = socketFd(socket);
  if (fd === undefined) {
    log.error('control connection refused: its file descriptor is not available');
    return 'cannot verify peer credentials: connection has no file descriptor';
  }
  let peer: PeerCredentials;
  try {
    peer = creds.read(fd);
  } catch (e) {
    log.error({ err: errMessage(e) }, 'control connection refused: cannot read peer credentials');
    return `cannot verify peer credentials: ${errMessage(e)}`;
  }
  if (allowed.includes(peer.uid)) return undefined;
  log.warn(
    { pid: peer.pid, uid: peer.uid, gid: peer.gid },
    'control connection refused: peer is neither root nor the user fullnat runs as',
  );
  return `permission denied: uid ${peer.uid} may not use the control socket (allowed: uid ${allowed.join(', ')})`;
}

/** One JSON error line, then close; the peer's input is read and discarded meanwhile. */
export function refuseConnection(socket: net.Socket, error: string, log: Logger): void {
  socket.on('error', (e) => log.debug({ err: e }, 'refused control connection error'));
  socket.resume();
  socket.setTimeout(REFUSED_LINGER_MS, () => socket.destroy());
  socket.end(`${JSON.stringify({ ok: false, error })}\n`);
}
