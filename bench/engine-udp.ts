/**
 * The engine bench's UDP workload beside its IPv4 TCP one: many flows, a few
 * datagrams each both ways, replayed through `Engine.process` alone in the
 * same interleaved rounds as TCP's, so each round's UDP rate is divided by
 * that same round's TCP rate.
 *
 * A flow is a small request/answer exchange (a DNS or QUIC handshake's
 * shape): five 100-byte datagrams up, each answered by a 1,200-byte one; the
 * service runs at the defaults (`uoa_mode opp`, `uoa_max_trail` 3), so the
 * first three datagrams up carry the protocol-248 shim.
 */
import { Engine } from '../src/engine/engine.js';
import { buildUdp4, readUdp } from '../test/support/udp-packets.js';
import { newEngine, record, replay, replayProcessOnly, type Workload } from './engine.js';
import { collectGarbage } from './gc.js';
import { spread, type Spread } from './stats.js';

const VIP = 0xc0000264; // 192.0.2.100
const LIPS = [0x0a0a0301, 0x0a0a0302];
const RIPS = [0x0a0a0202, 0x0a0a0203, 0x0a0a0204, 0x0a0a0205];
const PORT = 443;
/** Datagrams up per flow, each answered once: the flow's packets are twice this. */
export const UDP_EXCHANGES = 5;
const REQUEST_BYTES = 100;
const ANSWER_BYTES = 1200;

export function newUdpEngine(flows: number): Engine {
  const e = new Engine({ maxConnections: flows * 2, isnSecret: 42 });
  e.addService({
    vip: VIP,
    vport: PORT,
    protocol: 'UDP',
    scheduler: 'wrr',
    laddrs: LIPS,
    realServers: RIPS.map((addr, i) => ({ addr, port: PORT, weight: 1 + (i % 2) })),
  });
  return e;
}

const toNumber = (b: Uint8Array): number =>
  ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;

/**
 * The UDP workload, recorded against a scratch engine: the LIP, LIP port and
 * RS it chose for each flow address the answers. Clients as the TCP
 * workload's: 250 addresses, ports from 10000.
 */
export function recordUdp(flows: number): Workload {
  const e = newUdpEngine(flows);
  const packets: Uint8Array[] = [];
  const times: number[] = [];
  const request = new Uint8Array(REQUEST_BYTES).fill(0x41);
  const answer = new Uint8Array(ANSWER_BYTES).fill(0x42);
  let now = 0;
  const send = (b: Uint8Array): ReturnType<typeof readUdp> | undefined => {
    packets.push(b);
    times.push(now);
    const p = e.pool.take();
    p.load(b);
    e.tick(now);
    e.process(p);
    const q = e.out[0];
    const seen = q ? readUdp(q.buf.subarray(q.start, q.start + q.length)) : undefined;
    for (let i = 0; i < e.outCount; i++) e.pool.give(e.out[i]!);
    e.clearOutput();
    return seen;
  };
  for (let i = 0; i < flows; i++) {
    now = i * 0.01;
    const cip = (0xcb007100 + (i % 250) + 1) >>> 0; // 203.0.113.x
    const cport = 10000 + Math.floor(i / 250);
    const up = (): Uint8Array =>
      buildUdp4({ src: cip, dst: VIP, sport: cport, dport: PORT, payload: request });
    const first = send(up());
    if (!first) throw new Error(`flow ${i}: the engine forwarded nothing`);
    const down = (): Uint8Array =>
      buildUdp4({
        src: toNumber(first.dst),
        dst: toNumber(first.src),
        sport: first.dport,
        dport: first.sport,
        payload: answer,
      });
    send(down());
    for (let k = 1; k < UDP_EXCHANGES; k++) {
      send(up());
      send(down());
    }
  }
  return { packets, times: Float64Array.from(times) };
}

export interface UdpComparison {
  flows: number;
  /** Datagrams in the UDP workload (flows × 2 × UDP_EXCHANGES). */
  packets: number;
  rounds: number;
  /** Engine.process alone, ns/packet: median, min, max of the rounds. */
  ns: { tcp: Spread; udp: Spread };
  /** Per round, UDP's packet rate ÷ IPv4 TCP's in the same round. */
  rateVsTcp: Spread;
}

/** A fresh engine with its pool grown for the staged chunks, after a full GC. */
function prepared(e: Engine): Engine {
  const staged = [];
  for (let i = 0; i < 512; i++) staged.push(e.pool.take());
  for (const p of staged) e.pool.give(p);
  collectGarbage();
  return e;
}

/**
 * UDP beside IPv4 TCP: both workloads recorded once, then replayed in
 * interleaved rounds (a fresh engine each, the order alternated each round,
 * `Engine.process` alone timed), each round's UDP rate divided by its TCP
 * rate, so a machine that slows down for a while slows both alike.
 */
export function compareUdp(flows = 30_000, rounds = 15): UdpComparison {
  const tcp = record(flows, 4);
  const udp = recordUdp(flows);
  // Warm up the JIT on both paths.
  for (let k = 0; k < 2; k++) {
    replay(tcp, newEngine(flows, 4));
    replay(udp, newUdpEngine(flows));
  }
  const nsTcp: number[] = [];
  const nsUdp: number[] = [];
  const ratio: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let tcpNs = 0;
    let udpNs = 0;
    for (const which of r % 2 === 0 ? ['tcp', 'udp'] : ['udp', 'tcp']) {
      if (which === 'tcp') {
        tcpNs = (replayProcessOnly(tcp, prepared(newEngine(flows, 4))) * 1e9) / tcp.packets.length;
      } else {
        udpNs = (replayProcessOnly(udp, prepared(newUdpEngine(flows))) * 1e9) / udp.packets.length;
      }
    }
    nsTcp.push(tcpNs);
    nsUdp.push(udpNs);
    ratio.push(tcpNs / udpNs);
  }
  return {
    flows,
    packets: udp.packets.length,
    rounds,
    ns: { tcp: spread(nsTcp)!, udp: spread(nsUdp)! },
    rateVsTcp: spread(ratio)!,
  };
}
