/**
 * The TUN device for live mode: a thin typed layer over the native addon
 * (native/tun.c, built to build/Release/fullnat_tun.node), plus the iproute2
 * and sysctl helpers that put the device on the host's routing table.
 *
 * The addon makes only system calls; everything else (errno bookkeeping,
 * naming, configuration) stays here.
 *
 * Native contract (`NativeTun`), shared by every function:
 * - A failing system call throws an `Error` shaped like Node's own system
 *   errors: `message` "<syscall>: <strerror>" (e.g. "open /dev/net/tun: No
 *   such file or directory", "ioctl TUNSETIFF: Invalid argument"), `code`
 *   ("ENOENT"), `errno` (negative, as in Node: -2), `syscall`.
 * - Arguments of the wrong type throw `TypeError` (code ERR_INVALID_ARG_TYPE);
 *   out-of-range sizes/offsets throw `RangeError` (code ERR_OUT_OF_RANGE).
 * - EAGAIN is never an error: it ends a batch. EINTR is retried.
 */
import {
  accessSync,
  constants as fsConstants,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import type { PacketDevice } from './run-loop.js';

declare const pollHandleBrand: unique symbol;
/** Opaque handle returned by `NativeTun.poll` (an N-API external). */
export type PollHandle = { readonly [pollHandleBrand]: true };

/** The raw addon. Prefer `openTun()`; this is exported for tests and tools. */
export interface NativeTun {
  /**
   * Opens /dev/net/tun (O_RDWR|O_NONBLOCK|O_CLOEXEC) and attaches it with
   * TUNSETIFF IFF_TUN|IFF_NO_PI (|IFF_MULTI_QUEUE) to interface `name`
   * (created if absent; "" or a "%d" pattern lets the kernel choose).
   * Returns the descriptor and the kernel's name for the interface.
   * With `offload`: IFF_VNET_HDR and TUNSETOFFLOAD (checksum, TSO4/6, ECN),
   * so whole GSO super-packets (up to 64 KiB) cross the device; every
   * readBatch/writeBatch on this descriptor must then pass a `gso` array.
   * With `napi`: IFF_NAPI, so what is written enters the kernel through the
   * queue's NAPI instance (see `setThreadedNapi`) instead of being
   * processed inside write(2).
   * Throws RangeError if `name` is longer than 15 bytes; "ioctl TUNSETIFF:
   * Invalid argument" (EINVAL) for names the kernel rejects ("a/b", "..");
   * "ioctl TUNSETIFF: Device or resource busy" (EBUSY) when single-queue
   * and already open; EPERM without CAP_NET_ADMIN.
   */
  open(
    name: string,
    multiQueue: boolean,
    offload?: boolean,
    napi?: boolean,
  ): {
    fd: number;
    name: string;
    offload: boolean;
  };
  /**
   * For i = 0, 1, …: read(fd, bufs[i] + offset, bufs[i].byteLength - offset)
   * until EAGAIN or bufs is full; lengths[i] = the packet's size. Returns
   * the number of packets read (0 if none was waiting). The kernel truncates
   * a packet longer than the room silently (lengths[i] then equals the
   * room), so give every buffer at least the MTU after `offset`. If a read fails after some
   * packets were read, those are returned and the error is thrown by the
   * next call (it recurs: EBADF, EBADFD…). `lengths.length >= bufs.length`.
   * On an offload descriptor, `gso` (two entries per buffer) receives each
   * packet's virtio gso_type and gso_size (0 when not a super-packet). A
   * checksum the kernel left partial is completed on an ordinary packet;
   * on a super-packet — which goes back out partial — it is left as the
   * pseudo-header sum and gso_type carries GSO_CSUM_PARTIAL (0x100).
   */
  readBatch(
    fd: number,
    bufs: Uint8Array[],
    offset: number,
    lengths: Int32Array,
    gso?: Int32Array,
  ): number;
  /**
   * Writes bufs[i][offsets[i] .. offsets[i]+lengths[i]) for i < count, one
   * write(2) per packet. Returns how many packets were *handled*: written,
   * or rejected by the kernel on their own. It stops early (returns < count)
   * only when the device queue is full (EAGAIN/ENOBUFS) — the caller drops
   * or retries the rest — or on a device-level error after at least one
   * packet (the next call throws it; with none handled it throws now).
   * Per-packet rejections — EINVAL (empty packet, IP version not 4 or 6),
   * EIO (interface down), EMSGSIZE, ENOMEM, EPROTO, EAFNOSUPPORT — skip the
   * packet and are counted in `stats` if given: stats[0] = packets rejected
   * in this call, stats[1] = errno (positive) of the last rejection, or 0.
   * Both are overwritten on every call. Bad slices throw RangeError.
   * On an offload descriptor, `gso` (two entries per packet, as readBatch
   * fills them) says which packets are super-packets: those go out with a
   * partial checksum (their TCP checksum field is overwritten with the
   * pseudo-header sum) for the kernel to segment; the rest go out whole.
   * The virtio type follows the packet written, not the one read: TCPv4 or
   * TCPv6 by its IP version (an FNAT64 super-packet changes family), with
   * the ECN bit of `gso` kept.
   */
  writeBatch(
    fd: number,
    bufs: Uint8Array[],
    offsets: Int32Array,
    lengths: Int32Array,
    count: number,
    stats?: Int32Array,
    gso?: Int32Array,
  ): number;
  /**
   * Watches `fd` for readability on Node's own event loop (uv_poll_t,
   * level-triggered): `callback()` runs, with no argument, whenever packets
   * are waiting, as an ordinary I/O callback: in the async context of the
   * poll() call (its own async id; AsyncLocalStorage carries over), with
   * nextTicks and microtasks run after it; a throw becomes an uncaught
   * exception. If libuv reports an error on the descriptor, watching stops
   * and `callback(err)` runs once.
   * The watcher keeps the process alive until `stopPoll`.
   */
  poll(fd: number, callback: (err?: Error) => void): PollHandle;
  /** Stops watching; the callback is never called again, even if stopped from inside it. Idempotent. */
  stopPoll(handle: PollHandle): void;
  /**
   * TUNSETPERSIST: a persistent device outlives its last descriptor (its
   * addresses and the routes into it stay); turning it off on an open
   * descriptor lets the device go with the last one closed. EPERM without
   * CAP_NET_ADMIN.
   */
  setPersist(fd: number, on: boolean): void;
  /**
   * TUNSETQUEUE on a multi-queue device: `false` detaches this queue (the
   * kernel steers every flow to the queues still attached and purges the
   * packets waiting in this one; the descriptor stays open), `true` attaches
   * it again. EINVAL on a single-queue device or a queue already in that state.
   */
  setQueue(fd: number, attach: boolean): void;
  /** close(2). Stop any poll on `fd` first. */
  close(fd: number): void;
}

const ADDON_PATH = '../../../build/Release/fullnat_tun.node';
export const ADDON_MISSING =
  'native TUN addon not built: run npm install (needs g++ and Node headers)';

let native: NativeTun | undefined;
let loadError: Error | undefined;

/** Loads the addon once (dist/src/io/tun.js → repo root is three levels up). */
export function nativeTun(): NativeTun {
  if (native) return native;
  if (loadError) throw loadError;
  try {
    const require = createRequire(import.meta.url);
    native = require(ADDON_PATH) as NativeTun;
    return native;
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    loadError =
      code === 'MODULE_NOT_FOUND'
        ? new Error(ADDON_MISSING, { cause })
        : new Error(`native TUN addon failed to load: ${(cause as Error).message}`, { cause });
    throw loadError;
  }
}

/** Whether a TUN device can be opened here; `reason` says why not. */
export function tunAvailable(): { ok: true } | { ok: false; reason: string } {
  if (process.platform !== 'linux')
    return { ok: false, reason: `TUN needs Linux (this is ${process.platform})` };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'TUN needs root (CAP_NET_ADMIN)' };
  try {
    accessSync('/dev/net/tun', fsConstants.R_OK | fsConstants.W_OK);
  } catch {
    return { ok: false, reason: '/dev/net/tun is missing or not accessible' };
  }
  try {
    nativeTun();
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
  return { ok: true };
}

/** A TUN queue the run loop can drive. */
export interface TunDevice extends PacketDevice {
  readonly fd: number;
  /** The kernel's interface name. */
  readonly name: string;
  /** GSO super-packets cross this device (opened with `offload`). */
  readonly offload: boolean;
  /** Packets the kernel rejected one by one in writeBatch (counted as handled there). */
  readonly txErrors: number;
  /** errno name of the last such rejection ("EINVAL", "EIO"…), if any. */
  readonly lastTxError: string | undefined;
  /** See `NativeTun.writeBatch`; rejected packets count as handled and add to `txErrors`. */
  writeBatch(
    bufs: Uint8Array[],
    offsets: Int32Array,
    lengths: Int32Array,
    count: number,
    gso?: Int32Array,
  ): number;
  /**
   * Calls `cb` whenever packets are waiting (level-triggered: drain with
   * readBatch, or it is called again). Replaces any previous callback.
   * A descriptor error goes to `onError`, or is thrown (uncaught) without it.
   */
  onReadable(cb: () => void, onError?: (err: Error) => void): void;
  /** Stops calling the readable callback (until onReadable again). */
  stopReadable(): void;
  /** Opened with IFF_MULTI_QUEUE: queues can be attached and detached. */
  readonly multiQueue: boolean;
  /**
   * Makes the interface outlive (`true`) or not (`false`) its last open
   * queue: see `NativeTun.setPersist`.
   */
  setPersist(on: boolean): void;
  /**
   * Takes this queue out of the kernel's steering (multi-queue only): what
   * was waiting in it is purged, so read it empty first. The descriptor
   * stays open and still holds the interface.
   */
  detachQueue(): void;
  /** Puts a detached queue back in the kernel's steering. */
  attachQueue(): void;
  /** Stops polling and closes the descriptor; the interface goes away with its last queue unless persistent. Idempotent. */
  close(): void;
}

const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(osConstants.errno))
  if (!errnoNames.has(value)) errnoNames.set(value, name);

class Tun implements TunDevice {
  txErrors = 0;
  lastTxError: string | undefined;
  private readonly stats = new Int32Array(2);
  private poll: PollHandle | undefined;
  private readable: (() => void) | undefined;
  private onError: ((err: Error) => void) | undefined;
  private closed = false;

  constructor(
    private readonly n: NativeTun,
    readonly fd: number,
    readonly name: string,
    readonly offload: boolean,
    readonly multiQueue: boolean,
  ) {}

  setPersist(on: boolean): void {
    this.check();
    this.n.setPersist(this.fd, on);
  }

  detachQueue(): void {
    this.check();
    this.n.setQueue(this.fd, false);
  }

  attachQueue(): void {
    this.check();
    this.n.setQueue(this.fd, true);
  }

  readBatch(bufs: Uint8Array[], offset: number, lengths: Int32Array, gso?: Int32Array): number {
    this.check();
    return this.n.readBatch(this.fd, bufs, offset, lengths, gso);
  }

  writeBatch(
    bufs: Uint8Array[],
    offsets: Int32Array,
    lengths: Int32Array,
    count: number,
    gso?: Int32Array,
  ): number {
    this.check();
    const done = this.n.writeBatch(this.fd, bufs, offsets, lengths, count, this.stats, gso);
    if (this.stats[0]! > 0) {
      this.txErrors += this.stats[0]!;
      this.lastTxError = errnoNames.get(this.stats[1]!) ?? `errno ${this.stats[1]}`;
    }
    return done;
  }

  onReadable(cb: () => void, onError?: (err: Error) => void): void {
    this.check();
    this.readable = cb;
    this.onError = onError;
    this.poll ??= this.n.poll(this.fd, this.dispatch);
  }

  stopReadable(): void {
    if (this.poll) this.n.stopPoll(this.poll);
    this.poll = undefined;
    this.readable = undefined;
    this.onError = undefined;
  }

  close(): void {
    if (this.closed) return;
    this.stopReadable();
    this.closed = true;
    this.n.close(this.fd);
  }

  private readonly dispatch = (err?: Error): void => {
    if (err === undefined) {
      this.readable?.();
      return;
    }
    const onError = this.onError;
    this.stopReadable();
    if (onError) onError(err);
    else throw new Error(`${this.name}: ${err.message}`, { cause: err });
  };

  private check(): void {
    if (this.closed) throw new Error(`${this.name}: TUN device is closed`);
  }
}

/**
 * Opens (creating if needed) TUN interface `name`. With `multiQueue`, each
 * call on the same name adds one queue (one per worker); the interface must
 * have been created multi-queue. Throws as `NativeTun.open` does, or
 * ADDON_MISSING if the addon is not built.
 */
export function openTun(
  name: string,
  options: { multiQueue?: boolean; offload?: boolean; napi?: boolean } = {},
): TunDevice {
  const n = nativeTun();
  const opened = n.open(
    name,
    options.multiQueue ?? false,
    options.offload ?? false,
    options.napi ?? false,
  );
  return new Tun(n, opened.fd, opened.name, opened.offload, options.multiQueue ?? false);
}

/**
 * What the kernel says about an existing TUN interface `name` in this
 * network namespace, from sysfs: undefined if there is none (or it is not
 * a TUN); otherwise whether it is multi-queue, persistent (it outlives its
 * descriptors), and opened with offloads (IFF_VNET_HDR) and IFF_NAPI.
 */
export function existingTun(
  name: string,
): { multiQueue: boolean; persistent: boolean; offload: boolean; napi: boolean } | undefined {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) return undefined;
  let flags: number;
  try {
    flags = Number.parseInt(readFileSync(`/sys/class/net/${name}/tun_flags`, 'utf8').trim(), 16);
  } catch {
    return undefined;
  }
  if (!Number.isFinite(flags)) return undefined;
  return {
    multiQueue: (flags & IFF_MULTI_QUEUE) !== 0,
    persistent: (flags & IFF_PERSIST) !== 0,
    offload: (flags & IFF_VNET_HDR) !== 0,
    napi: (flags & IFF_NAPI) !== 0,
  };
}

/** <linux/if_tun.h> flag bits as /sys/class/net/DEV/tun_flags shows them. */
const IFF_NAPI = 0x0010;
const IFF_MULTI_QUEUE = 0x0100;
const IFF_PERSIST = 0x0800;
const IFF_VNET_HDR = 0x4000;

// ---------------------------------------------------------------- iproute2

export interface IpOptions {
  /** Run in this named network namespace (`ip -n NS …`). */
  netns?: string;
}

/** Runs `ip [-n NS] ARGS…`; a failure throws "ip ARGS…: <ip's stderr>". */
export function ip(args: readonly string[], options: IpOptions = {}): string {
  const argv = options.netns === undefined ? [...args] : ['-n', options.netns, ...args];
  try {
    return execFileSync('ip', argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const detail =
      e.code === 'ENOENT' ? 'iproute2 (ip) is not installed' : e.stderr?.trim() || e.message;
    throw new Error(`ip ${argv.join(' ')}: ${detail}`, { cause: err });
  }
}

/** `ip link set dev NAME mtu MTU up`. */
export function setUp(name: string, mtu: number, options: IpOptions = {}): void {
  ip(['link', 'set', 'dev', name, 'mtu', String(mtu), 'up'], options);
}

/**
 * `ip link set dev NAME txqueuelen LEN`: for a TUN, the size of the ring the
 * kernel queues packets in until they are read (the driver resizes it
 * while open); when it is full the kernel drops and counts tx_dropped.
 */
export function setTxQueueLen(name: string, len: number, options: IpOptions = {}): void {
  ip(['link', 'set', 'dev', name, 'txqueuelen', String(len)], options);
}

/**
 * `tc qdisc replace dev NAME root noqueue`: packets routed into the TUN go
 * straight to its ring. A queueing discipline in front of it only adds a
 * lock and a copy of the queue: the TUN driver drops when its ring is full
 * whatever sits in front.
 */
export function setNoQueue(name: string, options: IpOptions = {}): void {
  const argv = ['qdisc', 'replace', 'dev', name, 'root', 'noqueue'];
  const args = options.netns === undefined ? argv : ['-n', options.netns, ...argv];
  try {
    execFileSync('tc', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const detail =
      e.code === 'ENOENT' ? 'iproute2 (tc) is not installed' : e.stderr?.trim() || e.message;
    throw new Error(`tc ${args.join(' ')}: ${detail}`, { cause: err });
  }
}

/**
 * Threaded NAPI for a device opened with `napi` (Linux ≥ 5.12): the
 * kernel's processing of the packets the LB writes — forwarding, and on the
 * same host the receiver's TCP — runs in the kernel thread napi/NAME-N,
 * which the scheduler places on another CPU than the LB's JavaScript
 * thread, instead of inside the LB's write(2) calls.
 */
export function setThreadedNapi(name: string, on = true): void {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) throw new Error(`bad interface name '${name}'`);
  try {
    writeFileSync(`/sys/class/net/${name}/threaded`, on ? '1\n' : '0\n');
  } catch (err) {
    throw new Error(
      `cannot switch threaded NAPI ${on ? 'on' : 'off'} on ${name} (needs Linux 5.12 or later): ${(err as Error).message}; set napi_thread off`,
      { cause: err },
    );
  }
}

/** Pids of the kernel threads serving `name` under threaded NAPI (napi/NAME-N). */
export function napiThreads(name: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').startsWith(`napi/${name}-`)) out.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/**
 * SCHED_FIFO at `priority` for the NAPI threads of `name` (`chrt`, from
 * util-linux): woken by a write, they run at once instead of waiting behind
 * ordinary tasks on a busy CPU, which is what keeps tail latency down.
 * Returns the pids set; throws if there are none or chrt fails.
 */
export function setNapiRealtime(name: string, priority: number): number[] {
  const pids = napiThreads(name);
  if (pids.length === 0) throw new Error(`no NAPI threads for ${name}`);
  for (const pid of pids) {
    try {
      execFileSync('chrt', ['-f', '-p', String(priority), String(pid)], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
      const detail =
        e.code === 'ENOENT'
          ? 'chrt (util-linux) is not installed'
          : String(e.stderr ?? e.message).trim();
      throw new Error(`chrt -f -p ${priority} ${pid} (napi/${name}): ${detail}`, { cause: err });
    }
  }
  return pids;
}

/** `ip addr replace CIDR dev NAME` (idempotent). */
export function addAddress(name: string, cidr: string, options: IpOptions = {}): void {
  ip(['addr', 'replace', cidr, 'dev', name], options);
}

/** `ip route replace PREFIX dev DEV` — idempotent, so a restart does not fail on a leftover route. */
export function addRoute(prefix: string, dev: string, options: IpOptions = {}): void {
  ip(['route', 'replace', prefix, 'dev', dev], options);
}

/** `ip route del PREFIX dev DEV`. */
export function delRoute(prefix: string, dev: string, options: IpOptions = {}): void {
  ip(['route', 'del', prefix, 'dev', dev], options);
}

/**
 * The routing table and rule priority of NAT services' reply steering: a
 * rule per real server (`from RIP ipproto tcp sport RPORT`) sends the
 * replies it forwards through this host into the device (table
 * `NAT_REPLY_TABLE` holds one default route into it), ahead of the main
 * table (32766) and after the local one (0), so traffic to the host itself
 * stays local.
 */
export const NAT_REPLY_TABLE = 2929;
export const NAT_REPLY_PRIORITY = 2929;

const natRuleArgs = (rip: string, rport: number): string[] => [
  'from',
  rip,
  'ipproto',
  'tcp',
  'sport',
  String(rport),
  'lookup',
  String(NAT_REPLY_TABLE),
];

/** Steers RIP:RPORT's replies (TCP) forwarded through this host into `dev`; idempotent (a leftover rule is replaced). */
export function addNatReplyRule(
  rip: string,
  rport: number,
  dev: string,
  options: IpOptions = {},
): void {
  ip(['route', 'replace', 'default', 'dev', dev, 'table', String(NAT_REPLY_TABLE)], options);
  delNatReplyRule(rip, rport, options, true);
  ip(['rule', 'add', ...natRuleArgs(rip, rport), 'priority', String(NAT_REPLY_PRIORITY)], options);
}

/** Removes `addNatReplyRule`'s rule; `quiet`: a missing one is no error. */
export function delNatReplyRule(
  rip: string,
  rport: number,
  options: IpOptions = {},
  quiet = false,
): void {
  try {
    ip(['rule', 'del', ...natRuleArgs(rip, rport)], options);
  } catch (e) {
    if (!quiet) throw e;
  }
}

/**
 * Writes a sysctl of this process's network namespace directly to /proc/sys.
 * `key` is dotted ("net.ipv4.ip_forward") or a path relative to /proc/sys
 * ("net/ipv4/conf/eth0.100/rp_filter") — use the path form when an
 * interface name contains a dot.
 */
export function sysctl(key: string, value: string | number): void {
  const rel = key.includes('/') ? key : key.replaceAll('.', '/');
  if (rel.split('/').some((part) => part === '' || part === '..'))
    throw new Error(`sysctl: bad key ${key}`);
  writeFileSync(`/proc/sys/${rel}`, `${value}\n`);
}
