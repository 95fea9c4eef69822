/**
 * PROXY protocol (v1 and v2) for Node servers behind the load balancer: the
 * user-space alternative to TOA when the LB is set to prepend a header. The
 * header is read off the socket before the application sees a byte, so the
 * application reads exactly the stream the client sent.
 *
 * Only the load balancer may speak the protocol: a header from any other peer
 * is a client trying to choose its own address, and the connection is
 * refused. The spec asks receivers not to guess whether a header is present;
 * `required: false` relaxes that for ports shared with direct clients, whose
 * connections then keep their own address.
 */

import { BlockList, createServer, isIPv4, isIPv6 } from 'node:net';
import type { Server, ServerOpts, Socket } from 'node:net';
import { decodeProxyHeader, type ProxyHeader } from '../wire/proxy-protocol.js';

/** The subset of a pino logger used here; any object with these methods works. */
export interface ProxyProtocolLogger {
  warn(obj: Record<string, unknown>, msg: string): void;
  debug?(obj: Record<string, unknown>, msg: string): void;
}

export interface ProxyProtocolOptions {
  /**
   * Peers allowed to send a header: the LB's local addresses (LIPs), as plain
   * addresses or CIDR blocks ("10.0.0.0/24", "fd00::/64"), or a ready BlockList.
   */
  trustedPeers: readonly string[] | BlockList;
  /**
   * true (default): every connection must come from a trusted peer and start
   * with a header. false: connections without a header are accepted with
   * their own address (a header from an untrusted peer is still refused).
   */
  required?: boolean;
  /** How long the header may take to arrive; the spec suggests at least 3 s. Default 5000. */
  timeoutMs?: number;
  /** Told why each refused connection was refused. */
  logger?: ProxyProtocolLogger;
  /**
   * true (default): socket.remoteAddress/remotePort/remoteFamily report the
   * client from the header, so unmodified code (http's req.socket, loggers)
   * sees it, as with TOA. The TCP peer stays available in the returned info.
   */
  replaceRemoteAddress?: boolean;
}

export interface ProxyProtocolInfo {
  /** The client: from the header when `proxied`, else the TCP peer itself. */
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
  /** Whether address/port came from a PROXY header (false for LOCAL, UNKNOWN, no header). */
  proxied: boolean;
  /** The TCP peer that connected (the LB's local address when a header was sent). */
  peer: { address: string; port: number; family: 'IPv4' | 'IPv6' };
  /** The decoded header, TLVs included, or null when there was none. */
  header: ProxyHeader | null;
}

/** A socket after acceptProxyProtocol: the client's endpoint, whatever replaceRemoteAddress says. */
export interface ProxiedSocket extends Socket {
  readonly proxyRemoteAddress: string;
  readonly proxyRemotePort: number;
  readonly proxyRemoteFamily: 'IPv4' | 'IPv6';
}

export const DEFAULT_PROXY_TIMEOUT_MS = 5000;

const infos = new WeakMap<Socket, ProxyProtocolInfo>();

/** What acceptProxyProtocol found on this socket, or undefined if it has not (successfully) run. */
export function proxyProtocolInfo(socket: Socket): ProxyProtocolInfo | undefined {
  return infos.get(socket);
}

/** "::ffff:a.b.c.d" as a dual-stack listener reports IPv4 peers → "a.b.c.d". */
function unmapped(address: string): string {
  return address.length > 7 &&
    address.slice(0, 7).toLowerCase() === '::ffff:' &&
    isIPv4(address.slice(7))
    ? address.slice(7)
    : address;
}

/** Builds the trust list once per server; entries are checked now so a typo fails at start-up. */
export function trustList(peers: readonly string[] | BlockList): BlockList {
  if (peers instanceof BlockList) return peers;
  const list = new BlockList();
  for (const entry of peers) {
    const slash = entry.indexOf('/');
    const address = unmapped(slash < 0 ? entry.trim() : entry.slice(0, slash).trim());
    const type = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : null;
    if (type === null)
      throw new TypeError(`trustedPeers: "${entry}" is not an IP address or CIDR block`);
    if (slash < 0) {
      list.addAddress(address, type);
      continue;
    }
    const bitsText = entry.slice(slash + 1).trim();
    const bits = Number(bitsText);
    if (!/^\d{1,3}$/.test(bitsText) || bits > (type === 'ipv4' ? 32 : 128)) {
      throw new TypeError(`trustedPeers: "${entry}" has a bad prefix length`);
    }
    list.addSubnet(address, bits, type);
  }
  return list;
}

function isTrusted(list: BlockList, address: string): boolean {
  const a = unmapped(address);
  return isIPv4(a) ? list.check(a, 'ipv4') : isIPv6(a) && list.check(a, 'ipv6');
}

interface Resolved {
  trust: BlockList;
  required: boolean;
  timeoutMs: number;
  logger: ProxyProtocolLogger | undefined;
  replace: boolean;
}

const resolvedCache = new WeakMap<ProxyProtocolOptions, Resolved>();

function resolveOptions(opts: ProxyProtocolOptions): Resolved {
  let r = resolvedCache.get(opts);
  if (r) return r;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_PROXY_TIMEOUT_MS;
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
    throw new RangeError(`timeoutMs must be a positive number, got ${timeoutMs}`);
  }
  r = {
    trust: trustList(opts.trustedPeers),
    required: opts.required ?? true,
    timeoutMs,
    logger: opts.logger,
    replace: opts.replaceRemoteAddress ?? true,
  };
  // Options objects are normally shared by every connection of a server, so
  // the trust list is compiled once rather than per accept.
  resolvedCache.set(opts, r);
  return r;
}

function familyOf(address: string): 'IPv4' | 'IPv6' {
  return isIPv4(address) ? 'IPv4' : 'IPv6';
}

function expose(socket: Socket, info: ProxyProtocolInfo, replace: boolean): void {
  infos.set(socket, info);
  const value = (v: string | number): PropertyDescriptor => ({
    value: v,
    enumerable: true,
    configurable: true,
  });
  Object.defineProperties(socket, {
    proxyRemoteAddress: value(info.address),
    proxyRemotePort: value(info.port),
    proxyRemoteFamily: value(info.family),
  });
  if (replace && info.proxied) {
    // Own properties shadow net.Socket's prototype getters (which ask the kernel).
    Object.defineProperties(socket, {
      remoteAddress: value(info.address),
      remotePort: value(info.port),
      remoteFamily: value(info.family),
    });
  }
}

/**
 * Reads the PROXY header from a freshly accepted socket and resolves with the
 * client's endpoint, or with null once the socket has been destroyed
 * (refused, timed out, closed or failed). Bytes after the header are put back
 * with socket.unshift, so whoever reads the socket next sees the stream from
 * its first application byte; nothing is read past the chunk that completed
 * the header. Never rejects.
 */
export function acceptProxyProtocol(
  socket: Socket,
  opts: ProxyProtocolOptions,
): Promise<ProxyProtocolInfo | null> {
  const o = resolveOptions(opts);
  return new Promise((resolve) => {
    const peerAddress = socket.remoteAddress;
    const peerPort = socket.remotePort ?? 0;
    if (peerAddress === undefined || socket.destroyed) {
      // Already reset by the peer: there is no one to refuse.
      socket.destroy();
      resolve(null);
      return;
    }
    const peer = { address: peerAddress, port: peerPort, family: familyOf(unmapped(peerAddress)) };
    const where = `${peerAddress}:${peerPort}`;
    const trusted = isTrusted(o.trust, peerAddress);

    if (!trusted && o.required) {
      o.logger?.warn(
        { peer: where, reason: 'peer is not in trustedPeers and a PROXY header is required' },
        'PROXY protocol: connection refused',
      );
      socket.destroy();
      resolve(null);
      return;
    }
    let chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const timer = setTimeout(onTimeout, o.timeoutMs);

    const finish = (): void => {
      done = true;
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    const refuse = (reason: string, quiet = false): void => {
      finish();
      if (quiet) o.logger?.debug?.({ peer: where, reason }, 'PROXY protocol: connection dropped');
      else o.logger?.warn({ peer: where, reason }, 'PROXY protocol: connection refused');
      socket.destroy();
      resolve(null);
    };
    const accept = (info: ProxyProtocolInfo, rest: Buffer | null): void => {
      finish();
      if (rest !== null && rest.length > 0) socket.unshift(rest);
      expose(socket, info, o.replace);
      resolve(info);
    };
    const own = (header: ProxyHeader | null): ProxyProtocolInfo => ({
      address: peer.address,
      port: peer.port,
      family: peer.family,
      proxied: false,
      peer,
      header,
    });
    const gathered = (): Buffer | null => {
      if (chunks.length > 1) chunks = [Buffer.concat(chunks, size)];
      return chunks[0] ?? null;
    };

    const examine = (buf: Buffer): void => {
      const r = decodeProxyHeader(buf);
      switch (r.kind) {
        case 'incomplete':
          return;
        case 'none':
          if (o.required) refuse('no PROXY header');
          else accept(own(null), buf);
          return;
        case 'invalid':
          refuse(`invalid PROXY header: ${r.reason}`);
          return;
        case 'ok': {
          if (!trusted) {
            refuse('PROXY header from a peer that is not in trustedPeers');
            return;
          }
          const rest = buf.subarray(r.length);
          // LOCAL (the LB's own health checks), UNKNOWN and non-TCP families
          // carry no client: the spec has the receiver keep the real endpoints.
          if (r.command !== 'PROXY' || !r.src || (r.family !== 'TCP4' && r.family !== 'TCP6')) {
            accept(own(r), rest);
            return;
          }
          accept(
            {
              address: r.src.address,
              port: r.src.port,
              family: r.family === 'TCP4' ? 'IPv4' : 'IPv6',
              proxied: true,
              peer,
              header: r,
            },
            rest,
          );
          return;
        }
      }
    };

    function onReadable(): void {
      let chunk: Buffer | null;
      while (!done && (chunk = socket.read() as Buffer | null) !== null) {
        chunks.push(chunk);
        size += chunk.length;
        examine(gathered()!);
      }
    }
    function onEnd(): void {
      if (!done) {
        refuse(
          size === 0 ? 'closed before sending anything' : 'closed inside the PROXY header',
          size === 0,
        );
      }
    }
    function onError(err: Error): void {
      if (!done) refuse(`socket error: ${err.message}`, true);
    }
    function onClose(): void {
      if (!done) refuse('closed before the PROXY header', true);
    }
    function onTimeout(): void {
      if (done) return;
      // A silent connection may be a protocol where the server speaks first;
      // when headers are optional, or the peer could never send one that we
      // would accept, waiting changed nothing and it keeps its own address.
      if (!o.required && (size === 0 || !trusted)) accept(own(null), gathered());
      else refuse(`no complete PROXY header within ${o.timeoutMs} ms (${size} bytes received)`);
    }

    socket.on('readable', onReadable);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
  });
}

const WRAPPED = Symbol.for('fullnat.proxyProtocolServer');

/**
 * Makes `server` read the PROXY header of every connection before its
 * 'connection' listeners run (including those of http.Server and
 * tls.Server, which are ordinary 'connection' listeners). Refused
 * connections are destroyed and never reach the listeners. Returns `server`.
 */
export function wrapProxyProtocolServer<T extends Server>(
  server: T,
  opts: ProxyProtocolOptions,
): T {
  const marked = server as T & { [WRAPPED]?: true };
  if (marked[WRAPPED]) throw new Error('wrapProxyProtocolServer: server is already wrapped');
  resolveOptions(opts); // fail now on bad trustedPeers or timeout, not on the first connection
  // net.Server's overloads cannot be forwarded generically; one signature covers them all.
  const emit = server.emit as (this: T, event: string | symbol, ...args: unknown[]) => boolean;
  // Intercepting emit is the one hook that also holds back listeners the
  // server registered itself (http's parser) and listeners added later.
  const patched = function (this: T, event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'connection') return emit.call(this, event, ...args);
    const socket = args[0] as Socket;
    void acceptProxyProtocol(socket, opts).then((info) => {
      if (info === null) return;
      try {
        emit.call(this, 'connection', socket);
      } catch (err) {
        // A throwing listener crashes a plain server; keep that rather than
        // turning it into an unhandled rejection of this promise.
        process.nextTick(() => {
          throw err;
        });
      }
    });
    return this.listenerCount('connection') > 0;
  };
  server.emit = patched as T['emit'];
  marked[WRAPPED] = true;
  return server;
}

/**
 * net.createServer with the PROXY protocol in front: `listener` runs once
 * the header is in, with the client's endpoint.
 */
export function createProxyProtocolServer(
  opts: ProxyProtocolOptions & ServerOpts,
  listener?: (socket: ProxiedSocket, info: ProxyProtocolInfo) => void,
): Server {
  const { trustedPeers, required, timeoutMs, logger, replaceRemoteAddress, ...serverOpts } = opts;
  const server = wrapProxyProtocolServer(createServer(serverOpts), {
    trustedPeers,
    required,
    timeoutMs,
    logger,
    replaceRemoteAddress,
  });
  if (listener) {
    server.on('connection', (socket: Socket) =>
      listener(socket as ProxiedSocket, infos.get(socket)!),
    );
  }
  return server;
}
