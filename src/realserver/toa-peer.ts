/**
 * toaPeer(socket): the client address the eBPF TOA receiver stored for one
 * connection, looked up by its socket.
 *
 * getpeername() already reports the TOA on every socket that can hold it. An
 * AF_INET socket cannot hold an IPv6 address, so behind FNAT64 (an IPv6
 * client, an IPv4 leg from the LB to this server) a server listening on
 * 0.0.0.0 still sees the LB's address; the receiver counts that as
 * v6OnV4Socket. toaPeer asks the receiver's socket-local storage (the pinned
 * map toa_sk) directly, through the small native addon native/toa-peer.c
 * (build/Release/fullnat_toa.node), and works the same on AF_INET and
 * AF_INET6 sockets. The other way to the IPv6 client on an IPv4-only socket
 * is PROXY protocol v2 (proxy-protocol-server.ts).
 *
 * Reading the map needs root (or CAP_BPF and read access to the pin) and the
 * bpf mount in this process's mount namespace (`ip netns exec` hides it).
 */
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { ipv6ToString } from '../wire/bytes.js';
import { DEFAULT_PIN_DIR, canonicalPinDir } from './ebpf.js';
import { RealServerError } from './errors.js';

/** The client a TOA named: the address as net.Socket prints it, family 4 for an IPv4 TOA, 6 for an IPv6 one. */
export interface ToaPeer {
  address: string;
  port: number;
  family: 4 | 6;
}

export interface ToaPeerOptions {
  /** The receiver's pin directory (default $FULLNAT_TOA_PIN_DIR or /sys/fs/bpf/fullnat-toa, as `fullnat rs`). */
  pinDir?: string;
}

/** What native/toa-peer.c returns for a stored TOA. */
interface StoredToa {
  family: 4 | 6;
  port: number;
  kind: number;
  addr: Buffer;
}

interface NativeToa {
  toaLookup(mapPath: string, fd: number): StoredToa | null;
}

/** dist/src/realserver/toa-peer.js → the repository root is three levels up. */
const ADDON_PATH = '../../../build/Release/fullnat_toa.node';

let addon: NativeToa | undefined;

function loadAddon(): NativeToa {
  if (addon) return addon;
  if (process.platform !== 'linux')
    throw new RealServerError(
      `toaPeer needs Linux and the eBPF receiver (this is ${process.platform})`,
    );
  try {
    const loaded = createRequire(import.meta.url)(ADDON_PATH) as NativeToa;
    if (typeof loaded.toaLookup !== 'function')
      throw new Error('the addon does not export toaLookup()');
    addon = loaded;
    return loaded;
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new RealServerError(
      code === 'MODULE_NOT_FOUND'
        ? 'toaPeer: the native TOA lookup addon is not built (run npm install; needs a C compiler and Node headers)'
        : `toaPeer: the native TOA lookup addon failed to load: ${(cause as Error).message}`,
      { cause },
    );
  }
}

/** The pinned map for a pin directory, resolved once per directory as given. */
const mapPaths = new Map<string, string>();

function mapPath(o: ToaPeerOptions): string {
  const dir = o.pinDir ?? process.env.FULLNAT_TOA_PIN_DIR ?? DEFAULT_PIN_DIR;
  let path = mapPaths.get(dir);
  if (path === undefined) {
    path = join(canonicalPinDir(dir), 'maps', 'toa_sk');
    mapPaths.set(dir, path);
  }
  return path;
}

/**
 * The file descriptor behind a connected net.Socket. Node keeps it on the
 * socket's libuv handle (`_handle.fd`); there is no public API, so the shape
 * is checked rather than assumed.
 */
function socketFd(socket: Socket): number | undefined {
  const handle: unknown = Reflect.get(socket, '_handle');
  if (typeof handle !== 'object' || handle === null) return undefined;
  const fd: unknown = Reflect.get(handle, 'fd');
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}

/**
 * The client the load balancer's TOA named for this connection, as the eBPF
 * receiver (`fullnat rs attach` / `rs exec`) stored it — an IPv6 client on
 * an AF_INET socket included; null when the connection arrived without a TOA
 * (or with one from an untrusted peer, which the receiver ignores).
 *
 * Throws TypeError for something that is not a net.Socket, and
 * RealServerError when the socket is closed, the receiver is not loaded
 * (nothing pinned), the caller may not read the map, or the addon is not
 * built.
 */
export function toaPeer(socket: Socket, o: ToaPeerOptions = {}): ToaPeer | null {
  if (!(socket instanceof Socket))
    throw new TypeError('toaPeer(socket): socket must be a net.Socket');
  const fd = socketFd(socket);
  if (fd === undefined)
    throw new RealServerError(
      'toaPeer: the socket has no file descriptor (closed, not yet connected, or not a TCP socket of this process)',
    );
  const native = loadAddon();
  const path = mapPath(o);
  let stored: StoredToa | null;
  try {
    stored = native.toaLookup(path, fd);
  } catch (cause) {
    throw lookupError(cause as NodeJS.ErrnoException, path, fd);
  }
  if (stored === null) return null;
  return {
    address: stored.family === 4 ? stored.addr.join('.') : ipv6ToString(stored.addr),
    port: stored.port,
    family: stored.family,
  };
}

function lookupError(e: NodeJS.ErrnoException, path: string, fd: number): RealServerError {
  const fail = (text: string): RealServerError =>
    new RealServerError(`toaPeer: ${text}`, { cause: e });
  const onMap = e.syscall === 'bpf BPF_OBJ_GET';
  if (onMap && e.code === 'ENOENT')
    return fail(
      `the TOA receiver is not loaded: nothing is pinned at ${path} (fullnat rs attach, or start the server with fullnat rs exec)`,
    );
  if (onMap && e.code === 'EINVAL') return fail(`${path} is not a pinned BPF map (${e.message})`);
  if (e.code === 'EACCES' || e.code === 'EPERM')
    return fail(`reading ${path} needs root (or CAP_BPF and read access to the pin): ${e.message}`);
  if (e.code === 'EBADF' || e.code === 'ENOTSOCK')
    return fail(`fd ${fd} is not an open socket: ${e.message}`);
  return fail(`${path}: ${e.message}`);
}
