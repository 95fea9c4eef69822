/**
 * The engine as the engine, io and fuzz tests drive it: the addresses they
 * share, an engine with a one-RS service, packets fed in one at a time and
 * what comes out copied and handed back to the pool.
 */
import assert from 'node:assert/strict';
import { DROP_COUNTERS, type C } from '../../src/engine/counters.js';
import type { EngineOptions, ServiceConfig } from '../../src/engine/options.js';
import { Engine } from '../../src/engine/engine.js';
import type { Packet, PacketPool } from '../../src/engine/packet.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { opt, type TcpOption } from '../../src/wire/tcp-options.js';
import { decodeSegment, type Decoded } from './decode.js';
import { buildSegment, checksumsValid } from './packets.js';

export const CIP = parseIpv4('203.0.113.7');
export const VIP = parseIpv4('192.0.2.100');
export const LIP = parseIpv4('10.10.3.1');
export const RIP = parseIpv4('10.10.2.2');
export const CPORT = 40000;
export const VPORT = 80;
export const RPORT = 8080;
export const CISN = 1000000;
export const RISN = 7000000;

/** The options of a Linux client's SYN. */
export const LINUX_SYN_OPTS: TcpOption[] = [
  opt.mss(1460),
  opt.sackPermitted(),
  opt.timestamp(12345, 0),
  opt.nop(),
  opt.wscale(7),
];

/** The options of a Linux RS's SYN+ACK to a SYN without timestamps. */
export const LINUX_SYN_ACK_OPTS: TcpOption[] = [
  opt.mss(1460),
  opt.nop(),
  opt.nop(),
  opt.sackPermitted(),
  opt.nop(),
  opt.wscale(7),
];

/** A service VIP:vport → one real server over LIP, round robin. */
export interface TestService {
  vport?: number;
  rip?: number;
  rport?: number;
  /** LB→RS path MTU; the engine's default when unset. */
  rsMtu?: number;
  synProxy?: boolean;
  proxyProtocol?: ServiceConfig['proxyProtocol'];
}

export function addTestService(e: Engine, s: TestService = {}): void {
  e.addService({
    vip: VIP,
    vport: s.vport ?? VPORT,
    scheduler: 'rr',
    laddrs: [LIP],
    realServers: [
      {
        addr: s.rip ?? RIP,
        port: s.rport ?? RPORT,
        weight: 1,
        ...(s.rsMtu === undefined ? {} : { mtu: s.rsMtu }),
      },
    ],
    ...(s.proxyProtocol === undefined ? {} : { proxyProtocol: s.proxyProtocol }),
    ...(s.synProxy === undefined ? {} : { synProxy: s.synProxy }),
  });
}

/** An engine with `opts` and one test service. */
export function newTestEngine(
  opts: Partial<EngineOptions>,
  service: TestService = {},
  pool?: PacketPool,
): Engine {
  const e = new Engine(opts, pool);
  addTestService(e, service);
  return e;
}

/** One packet the engine emitted: a copy of its bytes and its gso_size. */
export interface Emitted {
  bytes: Uint8Array;
  gso: number;
}

/** Copies what the engine emitted and gives the buffers back to the pool. */
export function drainOutput(e: Engine): Emitted[] {
  const out: Emitted[] = [];
  for (let i = 0; i < e.outCount; i++) {
    const q = e.out[i]!;
    out.push({ bytes: q.view().slice(), gso: q.gsoSize });
    e.pool.give(q);
  }
  e.clearOutput();
  return out;
}

/**
 * Runs the engine on one packet: loads it into a pool buffer, lets `prepare`
 * adjust the buffer, moves the clock to `now` when given, and returns what came out.
 */
export function feedRaw(
  e: Engine,
  bytes: Uint8Array,
  now?: number,
  prepare?: (p: Packet) => void,
): Emitted[] {
  const p = e.pool.take();
  assert.ok(p.load(bytes));
  prepare?.(p);
  if (now !== undefined) e.tick(now);
  e.process(p);
  return drainOutput(e);
}

/** Packets accounted for: forwarded, counted by a drop counter, or still held by SYNPROXY or the reassembler. */
export function accountedPackets(e: Engine): number {
  let n = e.counter('forwarded_packets') + e.heldPackets + e.heldFragments;
  for (const d of DROP_COUNTERS) n += e.counter(d);
  return n;
}

/** Every received packet in exactly one of forwarded, a drop counter, or held (SYNPROXY, the reassembler). */
export function assertCountedOnce(e: Engine): void {
  assert.equal(e.counter('rx_packets'), accountedPackets(e));
}

/**
 * Feeds one hostile packet: the engine must not throw and must count it
 * exactly once. Returns the bytes that came out, for the caller's checks.
 */
export function feedCountedOnce(e: Engine, pkt: Uint8Array, what: string): Uint8Array[] {
  const rx0 = e.counter('rx_packets');
  const acc0 = accountedPackets(e);
  let out: Uint8Array[];
  try {
    out = feedRaw(e, pkt).map((o) => o.bytes);
  } catch (err) {
    assert.fail(`${what}: engine threw ${String(err)}\n${Buffer.from(pkt).toString('hex')}`);
  }
  assert.equal(e.counter('rx_packets'), rx0 + 1, what);
  assert.equal(accountedPackets(e) - acc0, 1, `${what}: counted exactly once`);
  return out;
}

/**
 * After a fuzz run under `policy`: more than `minForwarded` errors about
 * live connections went through, and every counter in `names` moved.
 */
export function assertFuzzReached(
  e: Engine,
  policy: string,
  forwarded: number,
  minForwarded: number,
  names: readonly (keyof typeof C)[],
): void {
  const counters = Object.fromEntries(names.map((n) => [n, e.counter(n)]));
  assert.ok(
    forwarded > minForwarded,
    `${policy}: errors about live connections go through ${JSON.stringify(counters)}`,
  );
  for (const [n, v] of Object.entries(counters))
    assert.ok(v > 0, `${policy}: ${n} ${JSON.stringify(counters)}`);
}

/** An emitted packet decoded, after checking both its checksums. */
export function decodeChecked(o: Emitted): Decoded {
  assert.ok(checksumsValid(o.bytes), 'engine output must have valid checksums');
  return decodeSegment(o.bytes);
}

/** Feeds one packet (clock moved to `now` when given) and returns the checked, decoded outputs. */
export function feed(e: Engine, bytes: Uint8Array, now?: number): Decoded[] {
  return feedRaw(e, bytes, now).map(decodeChecked);
}

/** The checked, decoded outputs waiting in the engine. */
export function drain(e: Engine): Decoded[] {
  return drainOutput(e).map(decodeChecked);
}

/** Moves the clock to `now` and returns what the timers sent. */
export function tickDrain(e: Engine, now: number): Decoded[] {
  e.tick(now);
  return drain(e);
}

export interface SegmentFields {
  seq: number;
  ack?: number;
  flags: number;
  payload?: Uint8Array;
  options?: TcpOption[];
  window?: number;
}

/** CIP:sport → VIP:VPORT. */
export function clientSegment(s: SegmentFields & { sport?: number }): Uint8Array {
  return buildSegment({
    src: CIP,
    dst: VIP,
    sport: s.sport ?? CPORT,
    dport: VPORT,
    seq: s.seq >>> 0,
    ack: (s.ack ?? 0) >>> 0,
    flags: s.flags,
    payload: s.payload,
    options: s.options,
    window: s.window,
  });
}

/** RIP:RPORT → LIP:lport. */
export function rsSegment(s: SegmentFields & { lport: number }): Uint8Array {
  return buildSegment({
    src: RIP,
    dst: LIP,
    sport: RPORT,
    dport: s.lport,
    seq: s.seq >>> 0,
    ack: (s.ack ?? 0) >>> 0,
    flags: s.flags,
    payload: s.payload,
    options: s.options,
    window: s.window,
  });
}
