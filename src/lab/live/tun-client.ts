/**
 * The simulator's scripted TCP clients (sim/client.ts) on a real network:
 * their packets go through a TUN device that is the client namespace's
 * window on the world.
 *
 *   this process ── TUN (in the client namespace) ── kernel forwards ── veth ── LB
 *
 * The client namespace routes the client addresses (10.78.8.0/22 and
 * fd00:78:8::/64, IPv4 or IPv6 packets alike) into the
 * TUN and forwards between it and its veth, so a packet written here with
 * source 10.78.8.x leaves toward the LB like any host's, and the LB's
 * answers come back through the TUN to be read here. Linux's own TCP never
 * sees these connections: every misbehaviour of the scenario (reordering, no
 * bare ACK, FIN+data, over-MSS segments, 40 bytes of options, forged TOA, a
 * lost ACK) reaches the real LB and real servers exactly as scripted.
 *
 * `TunHostIo` is the sim's `HostIo` over the device: `send` writes a packet
 * (or drops it, for `lose`), timers are real `setTimeout`s, `now()` is real
 * milliseconds. Packets read from the device go to the `ClientHost` owning
 * the destination address.
 */
import { addressKey, Ipv6Address, type IpAddress } from '../../wire/address.js';
import { get32 } from '../../wire/bytes.js';
import type { TunDevice } from '../../io/tun.js';
import {
  ClientHost,
  type ClientBehaviour,
  type ClientResult,
  type TcpClient,
} from '../sim/client.js';
import type { HostIo, Timer } from '../sim/net.js';
import { mix32 } from '../sim/rng.js';
import { epString, type Endpoint } from '../sim/segment.js';

const RX_BUFS = 64;
const RX_BUF_SIZE = 4096;

export class TunHostIo implements HostIo {
  readonly counts: Record<string, number> = {};
  private readonly hosts = new Map<string, ClientHost>();
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private readonly t0 = performance.now();
  private readonly rx = Array.from({ length: RX_BUFS }, () => new Uint8Array(RX_BUF_SIZE));
  private readonly rxLens = new Int32Array(RX_BUFS);
  private readonly txOff = Int32Array.of(0);
  private readonly txLen = new Int32Array(1);
  private reading = false;
  private closed = false;

  constructor(private readonly dev: TunDevice) {}

  now(): number {
    return performance.now() - this.t0;
  }

  get isStopped(): boolean {
    return this.closed;
  }

  send(pkt: Uint8Array, opts?: { lose?: boolean }): void {
    if (opts?.lose) {
      this.count('lost');
      return;
    }
    if (this.closed) return;
    this.txLen[0] = pkt.length;
    try {
      if (this.dev.writeBatch([pkt], this.txOff, this.txLen, 1) !== 1) this.count('txQueueFull');
    } catch {
      // The device went away (teardown on a signal): the run is over anyway.
      this.count('txError');
    }
  }

  setTimer(delay: number, fn: () => void): Timer {
    const h = setTimeout(
      () => {
        this.timers.delete(h);
        fn();
      },
      Math.max(0, delay),
    );
    this.timers.add(h);
    return {
      cancel: () => {
        clearTimeout(h);
        this.timers.delete(h);
      },
    };
  }

  count(name: string): void {
    this.counts[name] = (this.counts[name] ?? 0) + 1;
  }

  /** A client address behind the TUN; packets to it are handed to the returned host. */
  host(addr: IpAddress): ClientHost {
    const key = addressKey(addr);
    let h = this.hosts.get(key);
    if (!h) {
      h = new ClientHost(this, addr);
      this.hosts.set(key, h);
    }
    return h;
  }

  /** Starts reading the device (packets for no known host are counted and dropped). */
  start(): void {
    if (this.reading || this.closed) return;
    this.reading = true;
    this.dev.onReadable(() => this.drain());
  }

  /** Forgets every host and cancels every timer: late packets of a finished run go nowhere. */
  reset(): void {
    for (const h of this.timers) clearTimeout(h);
    this.timers.clear();
    this.hosts.clear();
  }

  /** Stops for good: no more reads, writes or timers (the device may be closed next). */
  stop(): void {
    this.closed = true;
    this.reset();
    if (this.reading) {
      try {
        this.dev.stopReadable();
      } catch {
        // closed already
      }
    }
    this.reading = false;
  }

  private drain(): void {
    for (let guard = 0; guard < 64; guard++) {
      const n = this.dev.readBatch(this.rx, 0, this.rxLens);
      if (n === 0) return;
      for (let i = 0; i < n; i++) {
        const b = this.rx[i]!;
        const len = this.rxLens[i]!;
        const version = len >= 20 ? b[0]! >> 4 : 0;
        if (version !== 4 && (version !== 6 || len < 40)) {
          this.count('rxNotIp');
          continue;
        }
        const dst = version === 4 ? get32(b, 16) : Ipv6Address.fromBytes(b, 24);
        const h = this.hosts.get(addressKey(dst));
        // The hosts copy what they keep (parsePacket slices), so the buffer can be reused.
        if (h) h.receive(b.subarray(0, len));
        else this.count('rxNoHost');
      }
    }
  }
}

export interface TunClientSpec {
  local: Endpoint;
  behaviour: ClientBehaviour;
}

export interface TunClientRun {
  results: ClientResult[];
  /** Every client finished (or failed for good) before the deadline. */
  allDone: boolean;
  elapsedMs: number;
}

/** Finished for good: both FINs exchanged, reset, or retransmissions exhausted. */
function settled(r: ClientResult): boolean {
  return r.finished || r.reset || r.failure === 'retransmissions exhausted';
}

/**
 * Runs one batch of scripted clients to `remote`, concurrently (started
 * `gapMs` apart), until all have settled or `deadlineMs` has passed; the
 * rest are reported as they stand (e.g. "no SYN+ACK").
 */
export async function runTunClients(
  io: TunHostIo,
  remote: Endpoint,
  specs: readonly TunClientSpec[],
  opts: { seed: number; gapMs: number; deadlineMs: number },
): Promise<TunClientRun> {
  io.reset();
  io.start();
  const t0 = performance.now();
  const clients: TcpClient[] = specs.map((s, i) =>
    io.host(s.local.addr).connect(s.local.port, remote, s.behaviour, mix32(opts.seed, 0x636c69, i)),
  );
  // Through the io, so a teardown (io.stop) cancels the starts still pending.
  clients.forEach((c, i) => io.setTimer(i * opts.gapMs, () => c.start()));
  let allDone = false;
  for (;;) {
    await new Promise((r) => setTimeout(r, 20));
    if (clients.every((c) => settled(c.result()))) {
      allDone = true;
      break;
    }
    if (performance.now() - t0 > opts.deadlineMs || io.isStopped) break;
  }
  const results = clients.map((c) => c.result());
  io.reset();
  return { results, allDone, elapsedMs: performance.now() - t0 };
}

export function endpointString(e: Endpoint): string {
  return epString(e);
}
