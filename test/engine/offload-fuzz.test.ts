/**
 * The offload path under fuzz. With TUN offloads on, the kernel hands the LB
 * GSO super-packets of up to 64 KiB, cut into segments of `gso_size` only after
 * the LB wrote them back, their TCP checksum often left partial (the field
 * holding just the pseudo-header sum). `Packet.load` in the ordinary fuzz
 * resets all of that, so this file drives it on its own: live connections
 * under every TOA policy and a range of RS path MTUs, client and RS
 * super-packets of random length, segment size and checksum state, the
 * concluding one (where the TOA goes) included, plus mutated ones.
 *
 * For every input: the engine does not throw and counts it exactly once;
 * each emitted packet is a valid IPv4/TCP (or ICMP) packet; every segment the
 * kernel will cut from a packet to the RS fits that RS's path MTU and carries
 * the client's TOA when one was inserted; the client's bytes reach the RS (and
 * the RS's the client) whole, in order, at the translated sequence numbers; a
 * full checksum is right when the input's was; every buffer returns to the pool.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { C, DROP_COUNTERS } from '../../src/engine/counters.js';
import { Engine } from '../../src/engine/engine.js';
import type { ToaPolicy } from '../../src/engine/options.js';
import { GSO_BUFFER_SIZE, PacketPool, type Packet } from '../../src/engine/packet.js';
import { get16, get32, set16 } from '../../src/wire/bytes.js';
import { foldSum, pseudoSumV4, sumWords } from '../../src/wire/checksum.js';
import { IPPROTO_ICMP, IPPROTO_TCP } from '../../src/wire/ipv4.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../src/wire/tcp.js';
import { encodeOptions, opt, type TcpOption } from '../../src/wire/tcp-options.js';
import { ToaResult, findToa } from '../../src/wire/toa.js';
import { CIP, LIP, RIP, RPORT, VIP, VPORT, addTestService } from '../support/engine-fixture.js';
import { buildSegment } from '../support/packets.js';
import { rng } from '../support/rng.js';

const POLICIES: readonly ToaPolicy[] = ['lvs', 'dpvs', 'fullnat'];
const MTUS = [576, 1280, 1400, 1450, 1500, 9000] as const;
/** Connections per policy; each carries a handful of super-packets. */
const CONNECTIONS = 120;
const GSO_TCPV4 = 1;
const IP_MAX = 65535;

function bytesOf(n: number, r: () => number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (r() * 256) | 0;
  return b;
}

interface Input {
  bytes: Uint8Array;
  gsoSize: number;
  partial: boolean;
}

/** Writes the pseudo-header sum into the TCP checksum field, as the kernel leaves a CHECKSUM_PARTIAL packet. */
function makePartial(b: Uint8Array): void {
  const ihl = (b[0]! & 0x0f) * 4;
  set16(b, ihl + 16, foldSum(pseudoSumV4(b, 0, IPPROTO_TCP, b.length - ihl)));
}

function tcpChecksumValid(b: Uint8Array, o: number, n: number): boolean {
  const ihl = (b[o]! & 0x0f) * 4;
  return foldSum(sumWords(b, o + ihl, n - ihl, pseudoSumV4(b, o, IPPROTO_TCP, n - ihl))) === 0xffff;
}

/** One emitted packet, copied out before its buffer goes back. */
interface Out {
  bytes: Uint8Array;
  gso: number;
  partial: boolean;
}

class OffloadFuzzer {
  readonly engine: Engine;
  private readonly toa = new ToaResult();
  private readonly poolBuffers: number;
  private sport = 20000;

  constructor(
    readonly policy: ToaPolicy,
    readonly mtu: number,
  ) {
    this.engine = new Engine(
      { toaPolicy: policy, maxConnections: 4096, portRange: { min: 5000, max: 65000 } },
      new PacketPool(64, GSO_BUFFER_SIZE),
    );
    addTestService(this.engine, { rsMtu: mtu });
    this.poolBuffers = this.engine.pool.created;
  }

  private accounted(): number {
    const c = this.engine.counters;
    let n = c[C.forwarded_packets]!;
    for (const name of DROP_COUNTERS) n += c[C[name]]!;
    return n;
  }

  /** Feeds one input; returns what came out, after the checks every input must pass. */
  feed(input: Input, what: string): Out[] {
    const e = this.engine;
    const c = e.counters;
    const rx0 = c[C.rx_packets]!;
    const acc0 = this.accounted();
    const p: Packet = e.pool.take();
    assert.ok(p.load(input.bytes), `${what}: ${input.bytes.length} bytes do not fit`);
    p.gsoSize = input.gsoSize;
    p.gsoType = input.gsoSize > 0 ? GSO_TCPV4 : 0;
    p.csumPartial = input.partial;
    assert.doesNotThrow(() => e.process(p), what);
    assert.equal(c[C.rx_packets]!, rx0 + 1, `${what}: rx_packets`);
    assert.equal(this.accounted() - acc0, 1, `${what}: counted once as forwarded or dropped`);
    const out: Out[] = [];
    for (let i = 0; i < e.outCount; i++) {
      const q = e.out[i]!;
      out.push({ bytes: q.view().slice(), gso: q.gsoSize, partial: q.csumPartial });
      e.pool.give(q);
    }
    e.clearOutput();
    assert.equal(
      e.pool.created - e.pool.available,
      0,
      `${what}: every packet buffer back in the pool`,
    );
    // A partial checksum is the kernel's promise to finish it; anything else must already be right.
    const inputValid = input.partial || tcpChecksumValid(input.bytes, 0, input.bytes.length);
    for (const o of out) this.checkOutput(o, inputValid, what);
    return out;
  }

  /** A valid packet; toward the RS, each segment the kernel cuts from it fits the path MTU. */
  private checkOutput(o: Out, inputValid: boolean, what: string): void {
    const b = o.bytes;
    const n = b.length;
    assert.ok(n >= 20 && b[0]! >>> 4 === 4, `${what}: an IPv4 packet`);
    const ihl = (b[0]! & 0x0f) * 4;
    assert.ok(ihl >= 20 && ihl <= n, `${what}: IP header length ${ihl}`);
    assert.equal(get16(b, 2), n, `${what}: IP total length`);
    assert.ok(n <= IP_MAX, `${what}: ${n} bytes, more than an IPv4 packet holds`);
    assert.equal(foldSum(sumWords(b, 0, ihl, 0)), 0xffff, `${what}: IP header checksum`);
    assert.equal(b[6]! & 0x3f, 0, `${what}: no fragment`);
    assert.equal(b[7]!, 0, `${what}: no fragment offset`);
    if (b[9] === IPPROTO_ICMP) {
      assert.equal(foldSum(sumWords(b, ihl, n - ihl, 0)), 0xffff, `${what}: ICMP checksum`);
      return;
    }
    assert.equal(b[9], IPPROTO_TCP, `${what}: protocol`);
    const doff = (b[ihl + 12]! >>> 4) * 4;
    assert.ok(doff >= 20 && ihl + doff <= n, `${what}: TCP header length ${doff}`);
    // A super-packet leaves with its checksum partial: the writer puts the pseudo-header sum in
    // and the kernel sums each segment. Anything else goes out whole and must be right.
    if (o.gso === 0) {
      const valid = tcpChecksumValid(b, 0, n);
      if (inputValid) assert.ok(valid, `${what}: TCP checksum`);
      // The LB's own answers (RSTs) are made whole; what it forwards stays as corrupt as it came.
      else if ((b[ihl + 13]! & TCP_RST) === 0)
        assert.ok(!valid, `${what}: a corrupt input laundered`);
    }
    if (get32(b, 16) !== RIP) return;
    const payload = n - ihl - doff;
    const segment = o.gso > 0 && payload > o.gso ? ihl + doff + o.gso : n;
    assert.ok(
      segment <= this.mtu,
      `${what}: a ${segment}-byte segment on a path of MTU ${this.mtu} (gso ${o.gso}, ${n} bytes)`,
    );
  }

  /** Whether the packet carries our TOA (the client's address and port) among its options. */
  carriesClientToa(b: Uint8Array, cport: number): boolean {
    const ihl = (b[0]! & 0x0f) * 4;
    const doff = (b[ihl + 12]! >>> 4) * 4;
    return (
      findToa(b, ihl + 20, ihl + doff, this.toa) &&
      this.toa.family === 4 &&
      this.toa.v4 === CIP &&
      this.toa.port === cport
    );
  }

  nextPort(): number {
    this.sport = this.sport >= 60000 ? 20000 : this.sport + 1;
    return this.sport;
  }

  checkHome(what: string): void {
    assert.equal(this.engine.pool.created, this.poolBuffers + this.grown, `${what}: pool size`);
  }

  /** Buffers the split path may have added (a 64 KiB concluding segment cut for a small MTU). */
  grown = 0;
}

/** A client's SYN options: Linux's, sometimes padded with NOPs so the TOA must prune. */
function synOptions(r: () => number): TcpOption[] {
  const o: TcpOption[] = [opt.mss(1460)];
  if (r() < 0.7) o.push(opt.sackPermitted());
  if (r() < 0.7) o.push(opt.timestamp((r() * 0xffffffff) >>> 0, 0));
  if (r() < 0.7) o.push(opt.nop(), opt.wscale(7));
  while (r() < 0.3) o.push(opt.nop());
  return o;
}

/** Options on a data segment: a timestamp, SACK blocks, NOP padding, in some mix. */
function dataOptions(r: () => number, ackBase: number): TcpOption[] {
  const o: TcpOption[] = [];
  if (r() < 0.6) o.push(opt.nop(), opt.nop(), opt.timestamp((r() * 0xffffffff) >>> 0, 1));
  if (r() < 0.2)
    o.push(opt.nop(), opt.nop(), opt.sack([[(ackBase + 100) >>> 0, (ackBase + 200) >>> 0]]));
  while (r() < 0.2) o.push(opt.nop());
  return o;
}

/** A payload length: mostly a few segments, sometimes near the 64 KiB limit. */
function payloadLength(r: () => number, headers: number): number {
  const max = IP_MAX - headers;
  const x = r();
  if (x < 0.1) return 0;
  if (x < 0.7) return 1 + ((r() * 9000) | 0);
  if (x < 0.9) return 1 + ((r() * 30000) | 0);
  return max - ((r() * 64) | 0);
}

/** A segment size the kernel might report: a link's MSS, something small, or larger than the packet. */
function gsoSizeFor(r: () => number, payload: number): number {
  const x = r();
  if (x < 0.4) return [1448, 1460, 1400, 1388, 536][(r() * 5) | 0]!;
  if (x < 0.7) return 1 + ((r() * 9000) | 0);
  if (x < 0.85) return Math.max(1, payload);
  return 1 + ((r() * 64) | 0);
}

function superPacket(
  r: () => number,
  spec: Parameters<typeof buildSegment>[0],
  payload: number,
): Input {
  const bytes = buildSegment({ ...spec, payload: bytesOf(payload, r) });
  const partial = r() < 0.7;
  if (partial) makePartial(bytes);
  return { bytes, gsoSize: gsoSizeFor(r, payload), partial };
}

/** The payload and the sequence number of a TCP packet. */
function tcpPayload(b: Uint8Array): { seq: number; data: Uint8Array; flags: number } {
  const ihl = (b[0]! & 0x0f) * 4;
  const doff = (b[ihl + 12]! >>> 4) * 4;
  return { seq: get32(b, ihl + 4), data: b.subarray(ihl + doff), flags: b[ihl + 13]! };
}

/**
 * Checks that what left toward `dst` carries `sent`'s payload whole and in order,
 * starting at `sent`'s sequence number plus `delta`.
 */
function checkDelivery(outs: Out[], dst: number, sent: Input, delta: number, what: string): void {
  const inP = tcpPayload(sent.bytes);
  const pieces = outs
    .filter((o) => o.bytes[9] === IPPROTO_TCP && get32(o.bytes, 16) === dst)
    .map((o) => tcpPayload(o.bytes))
    .filter((t) => t.data.length > 0)
    .sort((a, b) => (a.seq - b.seq) | 0);
  let at = (inP.seq + delta) >>> 0;
  let off = 0;
  for (const t of pieces) {
    assert.equal(t.seq, at, `${what}: a piece at seq ${t.seq}, expected ${at}`);
    assert.deepEqual(
      t.data,
      inP.data.subarray(off, off + t.data.length),
      `${what}: the bytes at offset ${off}`,
    );
    off += t.data.length;
    at = (at + t.data.length) >>> 0;
  }
  assert.equal(off, inP.data.length, `${what}: ${off} of ${inP.data.length} payload bytes arrived`);
}

/** Flips a few header bytes or lies about a length: the engine must drop or forward sanely. */
function mutate(r: () => number, input: Input): Input {
  const b = input.bytes.slice();
  const n = 1 + ((r() * 4) | 0);
  for (let i = 0; i < n; i++) {
    const at = (r() * Math.min(b.length, 80)) | 0;
    b[at] = (r() * 256) | 0;
  }
  const x = r();
  const gsoSize = x < 0.2 ? 0 : x < 0.4 ? (r() * 0x10000) | 0 : input.gsoSize;
  // The device marks only super-packets partial; it completes the checksum of any other.
  return { bytes: b, gsoSize, partial: gsoSize > 0 && r() < 0.5 };
}

function runPolicy(policy: ToaPolicy, seed: number): Record<string, number> {
  const r = rng(seed);
  const stats: Record<string, number> = { connections: 0, superPackets: 0, toaOnSuper: 0 };
  for (const mtu of MTUS) {
    const f = new OffloadFuzzer(policy, mtu);
    const e = f.engine;
    for (let conn = 0; conn < CONNECTIONS / MTUS.length; conn++) {
      const what = `policy ${policy}, seed ${seed}, MTU ${mtu}, connection ${conn}`;
      const cport = f.nextPort();
      const cisn = (r() * 0xffffffff) >>> 0;
      const risn = (r() * 0xffffffff) >>> 0;
      const syn = f.feed(
        {
          bytes: buildSegment({
            src: CIP,
            dst: VIP,
            sport: cport,
            dport: VPORT,
            seq: cisn,
            flags: TCP_SYN,
            options: synOptions(r),
          }),
          gsoSize: 0,
          partial: false,
        },
        `${what}: SYN`,
      );
      const toRs = syn.find((o) => get32(o.bytes, 16) === RIP);
      assert.ok(toRs, `${what}: the SYN went to the RS`);
      const ihl = (toRs.bytes[0]! & 0x0f) * 4;
      const lport = get16(toRs.bytes, ihl);
      const lbIsn = get32(toRs.bytes, ihl + 4);
      const delta = (lbIsn - cisn) | 0;
      f.feed(
        {
          bytes: buildSegment({
            src: RIP,
            dst: LIP,
            sport: RPORT,
            dport: lport,
            seq: risn,
            ack: (lbIsn + 1) >>> 0,
            flags: TCP_SYN | TCP_ACK,
            options: [opt.mss(mtu - 40), opt.sackPermitted(), opt.nop(), opt.wscale(7)],
          }),
          gsoSize: 0,
          partial: false,
        },
        `${what}: SYN+ACK`,
      );
      stats.connections!++;
      let cseq = (cisn + 1) >>> 0;
      let rseq = (risn + 1) >>> 0;
      const steps = 2 + ((r() * 5) | 0);
      for (let step = 0; step < steps; step++) {
        const fromClient = step === 0 || r() < 0.6;
        const last = step === steps - 1;
        const flags = TCP_ACK | (r() < 0.5 ? TCP_PSH : 0) | (last && r() < 0.3 ? TCP_FIN : 0);
        const options = dataOptions(r, fromClient ? rseq : cseq);
        const headers = 40 + encodeOptions(options).length;
        const len = payloadLength(r, headers);
        const input = fromClient
          ? superPacket(
              r,
              {
                src: CIP,
                dst: VIP,
                sport: cport,
                dport: VPORT,
                seq: cseq,
                ack: rseq,
                flags,
                options,
              },
              len,
            )
          : superPacket(
              r,
              {
                src: RIP,
                dst: LIP,
                sport: RPORT,
                dport: lport,
                seq: rseq,
                ack: (cseq + delta) >>> 0,
                flags,
                options,
              },
              len,
            );
        const stepWhat = `${what}, step ${step} (${fromClient ? 'client' : 'RS'}, ${len} bytes, gso ${input.gsoSize}${input.partial ? ', partial' : ''})`;
        if (input.gsoSize > 0) stats.superPackets!++;
        const toa0 = e.counters[C.toa_inserted]!;
        const tooBig0 = e.counters[C.too_big_dropped]!;
        const created0 = e.pool.created;
        const outs = f.feed(input, stepWhat);
        f.grown += e.pool.created - created0;
        const inserted = e.counters[C.toa_inserted]! > toa0;
        if (inserted) {
          if (input.gsoSize > 0) stats.toaOnSuper!++;
          for (const o of outs) {
            if (get32(o.bytes, 16) !== RIP) continue;
            assert.ok(
              f.carriesClientToa(o.bytes, cport),
              `${stepWhat}: a TOA was inserted, so every piece to the RS carries the client's`,
            );
          }
        }
        if (e.counters[C.too_big_dropped]! === tooBig0) {
          if (fromClient) checkDelivery(outs, RIP, input, delta, stepWhat);
          // The RS's sequence space is the client's: only acks move back by the delta.
          else checkDelivery(outs, CIP, input, 0, stepWhat);
        }
        const fin = (flags & TCP_FIN) !== 0 ? 1 : 0;
        if (fromClient) cseq = (cseq + len + fin) >>> 0;
        else rseq = (rseq + len + fin) >>> 0;
        if (r() < 0.25) f.feed(mutate(r, input), `${stepWhat}, mutated`);
      }
      f.checkHome(what);
    }
    for (const name of ['toa_inserted', 'toa_gso_resized', 'toa_split', 'too_big_dropped'] as const)
      stats[name] = (stats[name] ?? 0) + e.counters[C[name]]!;
  }
  return stats;
}

for (const policy of POLICIES) {
  test(`offload fuzz, policy ${policy}: super-packets fit the RS path, arrive whole, counted once`, () => {
    const stats = runPolicy(policy, 0xf00d + POLICIES.indexOf(policy));
    // The fuzz must reach the paths it is for, or it proves nothing.
    assert.ok(stats.superPackets! > 200, `super-packets fed: ${stats.superPackets}`);
    assert.ok(stats.toaOnSuper! > 10, `TOAs on super-packets: ${stats.toaOnSuper}`);
    assert.ok(stats.too_big_dropped! > 0, 'some super-packets too big for the RS path');
    if (policy === 'fullnat') {
      assert.ok(stats.toa_gso_resized! > 0, 'super-packets resized to keep the TOA');
      assert.ok(stats.toa_split! > 0, 'concluding segments split');
    }
  });
}
