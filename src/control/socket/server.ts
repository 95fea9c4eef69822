/**
 * The control socket's server. Who may talk to it: root and the LB's own
 * user, checked twice.
 *
 * 1. The file mode (socket-file.ts). connect(2) on a unix socket needs write
 *    permission on the socket file. The file is created 0600 (umask held at
 *    0177 across bind, chmod after) and owned by the LB's user — root in
 *    production — so only that user (or CAP_DAC_OVERRIDE) can connect. Its
 *    directory must not let anyone else replace the file: we refuse a parent
 *    directory that others can write to unless it has the sticky bit (/run
 *    is root 0755; /tmp is 1777).
 * 2. The peer's credentials (peer-access.ts). Node has no SO_PEERCRED, so a
 *    small native addon (native/peercred.c) reads the uid the kernel
 *    recorded when the peer connected; every accepted connection whose uid
 *    is neither 0 nor ours gets one JSON error line and is closed, and the
 *    refusal is logged with the peer's pid and uid. This holds even if the
 *    file mode was loosened (chmod by hand, a permissive ACL). Without the
 *    addon (not built, not Linux) the file mode alone is the gate, and the
 *    server says so once when it starts.
 *
 * Everything a client sends is untrusted text: requests are validated
 * field by field before the ControlApi sees them (validate.ts), lines are
 * capped at MAX_REQUEST_LINE bytes, connections are capped and time out
 * when idle (connection.ts).
 */
import { chmod, lstat, unlink } from 'node:fs/promises';
import net from 'node:net';
import type { Logger } from 'pino';

import type { ControlApi } from '../model.js';
import { serveConnection } from './connection.js';
import { errnoCode } from './errors.js';
import { allowedPeerUids, peerRefusal, refuseConnection } from './peer-access.js';
import { nativePeerCred, type PeerCredSource } from './peercred.js';
import { checkDirectory, clearStalePath, listenPrivately } from './socket-file.js';

/** Concurrent control connections; ctl opens one per command. */
export const MAX_CONTROL_CONNECTIONS = 64;

export interface ControlServerOptions {
  /**
   * Reads each connection's peer credentials; default: the native addon
   * (`nativePeerCred()`). `{ ok: false }` leaves the file mode as the only gate.
   */
  peerCredentials?: PeerCredSource;
}

export interface ControlServer {
  readonly path: string;
  /** Stops accepting, closes open control connections, removes the socket file. */
  close(): Promise<void>;
  /**
   * As close, but open connections first get up to `graceMs` to finish
   * (a handover's own request is answered before the process exits).
   */
  closeGracefully(graceMs: number): Promise<void>;
}

export async function startControlServer(
  path: string,
  api: ControlApi,
  log: Logger,
  opts: ControlServerOptions = {},
): Promise<ControlServer> {
  await checkDirectory(path);
  await clearStalePath(path, log);

  const creds = opts.peerCredentials ?? nativePeerCred();
  const allowed = allowedPeerUids();
  const sockets = new Set<net.Socket>();
  // Half-open: `echo REQ | socat - UNIX-CONNECT:…` shuts its write side before our reply.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    const refusal = peerRefusal(socket, creds, allowed, log);
    if (refusal !== undefined) refuseConnection(socket, refusal, log);
    else serveConnection(socket, api, log);
  });
  server.maxConnections = MAX_CONTROL_CONNECTIONS;

  await listenPrivately(server, path);
  let ino = -1;
  try {
    await chmod(path, 0o600);
    const st = await lstat(path);
    ino = st.ino;
    const euid = process.geteuid?.();
    if (euid !== undefined && st.uid !== euid) {
      throw new Error(`control socket ${path} is owned by uid ${st.uid}, not us (${euid})`);
    }
    if (st.uid !== 0) {
      log.warn(
        { path, uid: st.uid },
        'control socket is not owned by root; only that user can use ctl',
      );
    }
  } catch (e) {
    await new Promise<void>((r) => server.close(() => r()));
    await unlink(path).catch(() => undefined);
    throw e;
  }
  server.on('error', (e) => log.error({ err: e, path }, 'control socket error'));
  if (creds.ok) {
    log.info({ path, allowedUids: allowed }, 'control socket listening (peer uids checked)');
  } else {
    log.warn(
      { path, reason: creds.reason },
      'control socket peer credentials are not checked; only its file mode (0600) restricts access',
    );
    log.info({ path }, 'control socket listening');
  }

  let closed: Promise<void> | undefined;
  const shut = (graceMs: number): Promise<void> => {
    closed ??= (async () => {
      const stopped = new Promise<void>((r) => server.close(() => r()));
      if (graceMs > 0 && sockets.size > 0) {
        const deadline = Date.now() + graceMs;
        for (const s of sockets) s.end();
        while (sockets.size > 0 && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 5));
      }
      for (const s of sockets) s.destroy();
      await stopped;
      // Only remove the file we created: a successor may already own the path.
      try {
        const st = await lstat(path);
        if (st.ino === ino) await unlink(path);
      } catch (e) {
        if (errnoCode(e) !== 'ENOENT')
          log.warn({ err: e, path }, 'could not remove control socket');
      }
      log.info({ path }, 'control socket closed');
    })();
    return closed;
  };
  return {
    path,
    close: () => shut(0),
    closeGracefully: (graceMs) => shut(graceMs),
  };
}
