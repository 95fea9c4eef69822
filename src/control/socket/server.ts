/**
 * The control socket: a unix stream socket carrying newline-delimited JSON,
 * one ControlRequest per line in, one ControlResponse per line out, in order.
 *
 * Who may talk to it: root and the LB's own user, checked twice.
 *
 * 1. The file mode. connect(2) on a unix socket needs write permission on
 *    the socket file. The file is created 0600 (umask held at 0177 across
 *    bind, chmod after) and owned by the LB's user — root in production — so
 *    only that user (or CAP_DAC_OVERRIDE) can connect. Its directory must not
 *    let anyone else replace the file: we refuse a parent directory that
 *    others can write to unless it has the sticky bit (/run is root 0755;
 *    /tmp is 1777).
 * 2. The peer's credentials. Node has no SO_PEERCRED, so a small native
 *    addon (native/peercred.c) reads the uid the kernel recorded when the
 *    peer connected; every accepted connection whose uid is neither 0 nor
 *    ours gets one JSON error line and is closed, and the refusal is logged
 *    with the peer's pid and uid. This holds even if the file mode was
 *    loosened (chmod by hand, a permissive ACL). Without the addon (not
 *    built, not Linux) the file mode alone is the gate, and the server says
 *    so once when it starts.
 *
 * Everything a client sends is untrusted text: requests are validated
 * field by field before the ControlApi sees them, lines are capped at
 * MAX_REQUEST_LINE bytes, connections are capped and time out when idle.
 */
import { constants as fsConstants } from 'node:fs';
import { chmod, lstat, stat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';

import { SCHEDULER_NAMES, type SchedulerName } from '../../engine/sched/scheduler.js';
import { nativePeerCred, socketFd, type PeerCredSource, type PeerCredentials } from './peercred.js';
import type {
  ControlApi,
  ControlRequest,
  ControlResponse,
  RealServerKey,
  ServiceKey,
} from '../model.js';

export const DEFAULT_CONTROL_SOCKET = '/run/fullnat.sock';
/** Longest request line accepted (bytes, without the newline). */
export const MAX_REQUEST_LINE = 64 * 1024;
/** Longest response line the client accepts: a connection listing can be large. */
export const MAX_RESPONSE_LINE = 512 * 1024 * 1024;
/** Concurrent control connections; ctl opens one per command. */
export const MAX_CONTROL_CONNECTIONS = 64;
/** An idle control connection is closed after this long. */
export const CONTROL_IDLE_TIMEOUT_MS = 30_000;
/** Lines read ahead of the one being handled before the socket is paused. */
const MAX_QUEUED_LINES = 16;
/** A refused peer gets this long to read its error line before the connection is cut. */
const REFUSED_LINGER_MS = 1000;

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
}

// ---------------------------------------------------------------------------
// Request validation

export type ValidationResult = { ok: true; request: ControlRequest } | { ok: false; error: string };

type Op = ControlRequest['op'];

/**
 * Fields each op takes besides `op`; anything else is refused so typos do not
 * pass silently. Keyed by every op of the model, so a new op fails to compile here.
 */
const OP_FIELDS: Record<Op, readonly string[]> = {
  snapshot: [],
  connections: ['limit'],
  'add-service': ['service', 'scheduler'],
  'edit-service': ['service', 'scheduler'],
  'delete-service': ['service'],
  'add-real': ['real', 'weight'],
  'edit-real': ['real', 'weight'],
  'delete-real': ['real'],
  'add-laddr': ['service', 'laddr'],
  reload: [],
  zero: [],
};

const OPS = Object.keys(OP_FIELDS) as Op[];

/** ipvsadm's weight range. */
export const MAX_WEIGHT = 65535;
/** Upper bound on `connections.limit`; keeps one response line bounded. */
export const MAX_CONNECTIONS_LIMIT = 10_000_000;

class InvalidRequest extends Error {}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `"${v.length > 40 ? `${v.slice(0, 40)}…` : v}"`;
  if (typeof v === 'object') return 'an object';
  return String(v);
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new InvalidRequest(`unexpected field "${k}" in ${where}`);
  }
}

function intIn(v: unknown, min: number, max: number, name: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidRequest(`${name} must be an integer ${min}-${max}, got ${describe(v)}`);
  }
  return v;
}

/** Host-order IPv4 as a number; 0.0.0.0 is never a usable VIP, RS or LIP. */
function ipv4(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 0xffffffff) {
    throw new InvalidRequest(
      `${name} must be a non-zero IPv4 address as an unsigned 32-bit integer, got ${describe(v)}`,
    );
  }
  return v;
}

function port(v: unknown, name: string): number {
  return intIn(v, 1, 65535, name);
}

function serviceKey(v: unknown, name: string): ServiceKey {
  if (!isRecord(v)) throw new InvalidRequest(`${name} must be an object {vip, vport}`);
  onlyKeys(v, ['vip', 'vport'], name);
  return { vip: ipv4(v.vip, `${name}.vip`), vport: port(v.vport, `${name}.vport`) };
}

function realKey(v: unknown, name: string): RealServerKey {
  if (!isRecord(v)) throw new InvalidRequest(`${name} must be an object {vip, vport, addr, port}`);
  onlyKeys(v, ['vip', 'vport', 'addr', 'port'], name);
  return {
    vip: ipv4(v.vip, `${name}.vip`),
    vport: port(v.vport, `${name}.vport`),
    addr: ipv4(v.addr, `${name}.addr`),
    port: port(v.port, `${name}.port`),
  };
}

function scheduler(v: unknown): SchedulerName {
  if (typeof v !== 'string' || !(SCHEDULER_NAMES as readonly string[]).includes(v)) {
    throw new InvalidRequest(
      `scheduler must be one of ${SCHEDULER_NAMES.join(', ')}, got ${describe(v)}`,
    );
  }
  return v as SchedulerName;
}

/**
 * Checks an untrusted, already JSON-parsed value against ControlRequest and
 * returns a fresh object holding only the validated fields.
 */
export function validateControlRequest(v: unknown): ValidationResult {
  try {
    if (!isRecord(v)) throw new InvalidRequest(`request must be a JSON object, got ${describe(v)}`);
    const op = v.op;
    if (typeof op !== 'string') throw new InvalidRequest('request needs an "op" string');
    if (!(OPS as readonly string[]).includes(op)) {
      throw new InvalidRequest(`unknown op ${describe(op)} (one of ${OPS.join(', ')})`);
    }
    const o = op as Op;
    onlyKeys(v, ['op', ...OP_FIELDS[o]], `op "${o}"`);
    let request: ControlRequest;
    switch (o) {
      case 'snapshot':
      case 'reload':
      case 'zero':
        request = { op: o };
        break;
      case 'connections':
        request =
          v.limit === undefined
            ? { op: o }
            : { op: o, limit: intIn(v.limit, 1, MAX_CONNECTIONS_LIMIT, 'limit') };
        break;
      case 'add-service':
      case 'edit-service':
        request = {
          op: o,
          service: serviceKey(v.service, 'service'),
          scheduler: scheduler(v.scheduler),
        };
        break;
      case 'delete-service':
        request = { op: o, service: serviceKey(v.service, 'service') };
        break;
      case 'add-real':
      case 'edit-real':
        request = {
          op: o,
          real: realKey(v.real, 'real'),
          weight: intIn(v.weight, 0, MAX_WEIGHT, 'weight'),
        };
        break;
      case 'delete-real':
        request = { op: o, real: realKey(v.real, 'real') };
        break;
      case 'add-laddr':
        request = {
          op: o,
          service: serviceKey(v.service, 'service'),
          laddr: ipv4(v.laddr, 'laddr'),
        };
        break;
    }
    return { ok: true, request };
  } catch (e) {
    if (e instanceof InvalidRequest) return { ok: false, error: e.message };
    throw e;
  }
}

// ---------------------------------------------------------------------------
// Server

function errnoCode(e: unknown): string | undefined {
  return isRecord(e) && typeof e.code === 'string' ? e.code : undefined;
}

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

type ProbeResult = 'listening' | 'stale' | 'gone' | 'denied';

/** Is something accepting connections on this socket path? */
function probeSocket(path: string, timeoutMs: number): Promise<ProbeResult> {
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

async function checkDirectory(path: string): Promise<void> {
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
async function clearStalePath(path: string, log: Logger): Promise<void> {
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

function listenPrivately(server: net.Server, path: string): Promise<void> {
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

/** The uids allowed on the control socket: root and the user the LB runs as. */
function allowedPeerUids(): number[] {
  const own = process.getuid?.();
  return own === undefined || own === 0 ? [0] : [0, own];
}

/**
 * Why this connection's peer may not use the socket, or undefined when it may
 * (or when credentials cannot be read at all: then the file mode decides).
 * A peer whose credentials should be readable but are not is refused.
 */
function peerRefusal(
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
function refuseConnection(socket: net.Socket, error: string, log: Logger): void {
  socket.on('error', (e) => log.debug({ err: e }, 'refused control connection error'));
  socket.resume();
  socket.setTimeout(REFUSED_LINGER_MS, () => socket.destroy());
  socket.end(`${JSON.stringify({ ok: false, error })}\n`);
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
  return {
    path,
    close(): Promise<void> {
      closed ??= (async () => {
        const stopped = new Promise<void>((r) => server.close(() => r()));
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
    },
  };
}

function serveConnection(socket: net.Socket, api: ControlApi, log: Logger): void {
  const queue: string[] = [];
  let pending: Buffer[] = [];
  let pendingLen = 0;
  let busy = false;
  let dead = false;
  let inputEnded = false;

  // Idle means no request in flight either: a slow reload must not cut its own reply off.
  socket.setTimeout(CONTROL_IDLE_TIMEOUT_MS, () => {
    if (!busy) socket.destroy();
  });
  socket.on('error', (e) => log.debug({ err: e }, 'control connection error'));
  socket.on('close', () => {
    dead = true;
  });

  const send = (r: ControlResponse): void => {
    if (dead || socket.destroyed) return;
    let line: string;
    try {
      line = JSON.stringify(r);
    } catch (e) {
      line = JSON.stringify({ ok: false, error: `internal error: ${errMessage(e)}` });
    }
    socket.write(`${line}\n`);
  };

  const refuseAndClose = (error: string): void => {
    dead = true;
    queue.length = 0;
    pending = [];
    pendingLen = 0;
    socket.pause();
    if (!socket.destroyed) socket.end(`${JSON.stringify({ ok: false, error })}\n`);
  };

  const handleLine = async (line: string): Promise<ControlResponse> => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (e) {
      return { ok: false, error: `malformed JSON: ${errMessage(e)}` };
    }
    const v = validateControlRequest(parsed);
    if (!v.ok) return v;
    try {
      return await api.handle(v.request);
    } catch (e) {
      log.error({ err: e, op: v.request.op }, 'control request failed');
      return { ok: false, error: errMessage(e) };
    }
  };

  const pump = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    while (queue.length > 0 && !dead) {
      const line = queue.shift()!;
      if (queue.length < MAX_QUEUED_LINES && socket.isPaused()) socket.resume();
      send(await handleLine(line));
    }
    busy = false;
    if (inputEnded && !dead && !socket.destroyed) socket.end();
  };

  socket.on('data', (chunk: Buffer) => {
    if (dead) return;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      const tail = chunk.subarray(start, nl);
      if (pendingLen + tail.length > MAX_REQUEST_LINE) {
        refuseAndClose(`request line exceeds ${MAX_REQUEST_LINE} bytes`);
        return;
      }
      const buf = pendingLen === 0 ? tail : Buffer.concat([...pending, tail]);
      pending = [];
      pendingLen = 0;
      // Tolerate CRLF from hand-typed sessions (socat, nc -U).
      const line = buf.toString('utf8').replace(/\r$/, '');
      if (line.trim() !== '') queue.push(line);
      start = nl + 1;
    }
    const rest = chunk.subarray(start);
    if (pendingLen + rest.length > MAX_REQUEST_LINE) {
      refuseAndClose(`request line exceeds ${MAX_REQUEST_LINE} bytes`);
      return;
    }
    if (rest.length > 0) {
      // Copy: the chunk's backing memory belongs to the stream.
      pending.push(Buffer.from(rest));
      pendingLen += rest.length;
    }
    if (queue.length >= MAX_QUEUED_LINES) socket.pause();
    void pump();
  });

  socket.on('end', () => {
    inputEnded = true;
    if (dead) return;
    // A last request without its newline still counts once the client has shut its side.
    if (pendingLen > 0) {
      const line = Buffer.concat(pending, pendingLen).toString('utf8').replace(/\r$/, '');
      pending = [];
      pendingLen = 0;
      if (line.trim() !== '') queue.push(line);
    }
    void pump();
  });
}

// ---------------------------------------------------------------------------
// Client

export class ControlClientError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'ControlClientError';
  }
}

function connectError(path: string, e: unknown): ControlClientError {
  const code = errnoCode(e) ?? 'EUNKNOWN';
  switch (code) {
    case 'ENOENT':
      return new ControlClientError(`no fullnat running: ${path} not found`, code);
    case 'ECONNREFUSED':
      return new ControlClientError(
        `no fullnat running: nothing listens on ${path} (stale socket)`,
        code,
      );
    case 'EACCES':
    case 'EPERM':
      return new ControlClientError(
        `permission denied: ${path} is root-only (mode 0600); run fullnat ctl as root`,
        code,
      );
    default:
      return new ControlClientError(`cannot reach fullnat on ${path}: ${errMessage(e)}`, code);
  }
}

function checkResponse(v: unknown): ControlResponse {
  if (!isRecord(v) || typeof v.ok !== 'boolean') {
    throw new ControlClientError('fullnat sent a response that is not a ControlResponse', 'EPROTO');
  }
  if (!v.ok && typeof v.error !== 'string') {
    throw new ControlClientError('fullnat sent an error response without a message', 'EPROTO');
  }
  // The server is our own process behind a root-only socket; its payload shape is trusted.
  return v as ControlResponse;
}

/** Sends one request and waits for its response line. Transport failures reject with ControlClientError. */
export function sendControlRequest(
  path: string,
  req: ControlRequest,
  timeoutMs = 5000,
): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let len = 0;
    let settled = false;
    const socket = net.createConnection({ path });
    const finish = (err: Error | undefined, res?: ControlResponse): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(res!);
    };
    const timer = setTimeout(
      () =>
        finish(
          new ControlClientError(
            `timed out after ${timeoutMs} ms waiting for fullnat on ${path}`,
            'ETIMEDOUT',
          ),
        ),
      timeoutMs,
    );
    const hungUp = (): ControlClientError =>
      new ControlClientError(`fullnat closed ${path} without a response`, 'ECONNRESET');
    let connected = false;
    socket.once('connect', () => {
      connected = true;
      socket.write(`${JSON.stringify(req)}\n`);
    });
    socket.on('data', (chunk: Buffer) => {
      const nl = chunk.indexOf(0x0a);
      const part = nl < 0 ? chunk : chunk.subarray(0, nl);
      len += part.length;
      if (len > MAX_RESPONSE_LINE) {
        finish(new ControlClientError(`response exceeds ${MAX_RESPONSE_LINE} bytes`, 'E2BIG'));
        return;
      }
      chunks.push(part);
      if (nl < 0) return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.concat(chunks, len).toString('utf8'));
      } catch (e) {
        finish(new ControlClientError(`fullnat sent malformed JSON: ${errMessage(e)}`, 'EPROTO'));
        return;
      }
      try {
        finish(undefined, checkResponse(parsed));
      } catch (e) {
        finish(e instanceof Error ? e : new Error(String(e)));
      }
    });
    socket.once('error', (e) => {
      const code = errnoCode(e);
      if (!connected) finish(connectError(path, e));
      else if (code === 'EPIPE' || code === 'ECONNRESET') finish(hungUp());
      else
        finish(
          new ControlClientError(
            `control connection to ${path} failed: ${errMessage(e)}`,
            code ?? 'EIO',
          ),
        );
    });
    socket.once('close', () => finish(hungUp()));
  });
}
