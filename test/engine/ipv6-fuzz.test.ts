/**
 * Hostile IPv6 through an engine with IPv6 services (IPv6 → IPv6 and
 * FNAT64), under each policy: valid flows, extension-header chains of every
 * kind, and the same packets mutated (bits flipped, bytes set, truncated,
 * extended) or replaced by random bytes. For every packet: no throw, counted
 * exactly once (forwarded or one drop counter), every output a valid packet
 * (IPv6: TCP checksum and length; IPv4: both checksums; ICMPv6: its
 * checksum), every buffer back in the pool. Then SYNPROXY services (IPv6 RS
 * and FNAT64): live cookie handshakes, held packets, refusals and ack
 * storms, and mutants of them, held packets counted until replayed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import type { ToaPolicy } from '../../src/engine/options.js';
import { get16 } from '../../src/wire/bytes.js';
import { checksumExcludingField, sumWords } from '../../src/wire/checksum.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TcpView } from '../../src/wire/tcp.js';
import { Ipv4View } from '../../src/wire/ipv4.js';
import { Ipv6Error, Ipv6View } from '../../src/wire/ipv6.js';
import { opt } from '../../src/wire/tcp-options.js';
import { PROXY_V2_SIGNATURE } from '../../src/wire/proxy-protocol.js';
import { toaV4Option, toaV6Option } from '../../src/wire/toa.js';
import {
  buildSegment6,
  checksumsValid,
  checksumsValid6,
  pattern,
  v6,
  type Segment6Spec,
} from '../support/packets.js';
import { rng } from '../support/rng.js';
import { accountedPackets } from '../support/engine-fixture.js';
import { VIP6, addVipService, newDualEngine, rsSegmentOf } from '../support/engine6-fixture.js';

function engine(policy: ToaPolicy): Engine {
  const e = newDualEngine(
    {
      toaPolicy: policy,
      maxConnections: 256,
      isnSecret: 3,
      icmpRateBurst: 1000,
      // Four ports per (LIP, RS): the corpus's RS answers guess them all, and mutant SYNs exhaust them.
      portRange: { min: 5000, max: 5003 },
    },
    { rsMtu: 1400 },
  );
  // PROXY protocol, v2 toward the IPv6 RS and v1 toward the IPv4 one.
  addVipService(e, { vport: 82, rs: 6, rport: 8082, rsMtu: 1400, proxyProtocol: 2 });
  addVipService(e, { vport: 83, rs: 4, rport: 8083, rsMtu: 1400, proxyProtocol: 1 });
  return e;
}

function ext(type: number, len8: number, fill = 0): { type: number; body: Uint8Array } {
  const body = new Uint8Array((len8 + 1) * 8).fill(fill);
  body[1] = len8;
  return { type, body };
}

function routing(left: number): { type: number; body: Uint8Array } {
  const r = ext(43, 2);
  r.body[2] = 4;
  r.body[3] = left;
  return r;
}

type ClientSegment = (
  seq: number,
  ack: number,
  flags: number,
  extra?: Partial<Segment6Spec>,
) => Uint8Array;

/** Segments cip:sport → VIP6:vport, through the extension headers `ext` unless `extra` sets its own. */
function clientOf(
  cip: Uint8Array,
  sport: number,
  vport: number,
  ext?: Segment6Spec['ext'],
): ClientSegment {
  return (seq, ack, flags, extra = {}) =>
    buildSegment6({ src: cip, dst: VIP6, sport, dport: vport, seq, ack, flags, ext, ...extra });
}

/** Valid flows of both services: handshakes (the RS answering with guessed LB ports), data, options, closes. */
function corpus(): Uint8Array[] {
  const out: Uint8Array[] = [];
  const chains = [
    [],
    [ext(0, 0)],
    [ext(60, 1)],
    [ext(0, 0), routing(0), ext(60, 0)],
    [routing(1)],
    [ext(44, 0)],
    [ext(51, 1)],
  ];
  for (let k = 0; k < 12; k++) {
    const cip = v6('2001:db8:c::');
    cip[15] = k + 1;
    const vport = 80 + (k % 4);
    const rport = vport === 80 || vport === 81 ? 8080 : 8000 + vport;
    const rsV6 = vport % 2 === 0;
    const c = clientOf(cip, 20000 + k, vport, chains[k % chains.length]);
    out.push(
      c(100, 0, TCP_SYN, {
        options: [
          opt.mss(1440),
          opt.sackPermitted(),
          opt.timestamp(1, 0),
          opt.nop(),
          opt.wscale(7),
        ],
      }),
    );
    for (let lport = 5000; lport < 5004; lport++) {
      out.push(
        rsSegmentOf(rsV6 ? 6 : 4, {
          rport,
          lport,
          seq: 900,
          ack: 0,
          flags: TCP_SYN | TCP_ACK,
          options: [opt.mss(1460)],
        }),
      );
    }
    out.push(c(101, 901, TCP_ACK, { options: [toaV6Option(1, VIP6), toaV4Option(2, 3)] }));
    out.push(c(101, 901, TCP_ACK | TCP_PSH, { payload: pattern(100) }));
    out.push(
      c(101, 901, TCP_ACK | TCP_PSH, {
        payload: pattern(1350),
        options: [opt.nop(), opt.nop(), opt.timestamp(2, 2)],
      }),
    );
    out.push(c(1451, 901, TCP_ACK, { payload: pattern(1400) }));
    out.push(c(1451, 901, TCP_ACK | TCP_FIN));
    out.push(c(1452, 901, TCP_RST));
  }
  return out;
}

function validOutput(b: Uint8Array): string | null {
  const v = b[0]! >>> 4;
  if (v === 4) return checksumsValid(b) ? null : 'IPv4 output with a bad checksum';
  if (v !== 6) return `output of version ${v}`;
  if (b[6] === 58) {
    const len = get16(b, 4);
    if (len + 40 !== b.length || b.length > 1280) return 'ICMPv6 length';
    const pseudo = sumWords(b, 8, 32, 0) + 58 + len;
    return checksumExcludingField(b, 40, len, 42, pseudo) === get16(b, 42)
      ? null
      : 'ICMPv6 checksum';
  }
  return checksumsValid6(b) ? null : 'IPv6 output with a bad TCP checksum or length';
}

/** Whether the input's TCP checksum (and IPv4 header checksum) is right, extension chain walked; false when unreadable. */
function inputValid(b: Uint8Array): boolean {
  if (b.length < 20) return false;
  if (b[0]! >>> 4 === 4)
    return b.length >= 40 && checksumsValid(b.slice(0, new Ipv4View().wrap(b, 0).totalLength));
  const ip = new Ipv6View().wrap(b, 0);
  if (ip.walk(b.length) !== Ipv6Error.None || ip.upperProtocol !== 6) return false;
  const len = ip.totalLength - ip.upperOffset;
  if (len < 20) return false;
  const t = new TcpView().wrap(b, ip.upperOffset);
  return t.computeChecksumV6(0, len) === t.checksum;
}

/**
 * A packet the engine made itself (an ICMPv6 error, a RST when it counted
 * one sent for this input, a PROXY header), not a translation of its input.
 */
function crafted(b: Uint8Array, rstSent: boolean): boolean {
  const v6 = b[0]! >>> 4 === 6;
  if (v6 && b[6] === 58) return true;
  const hl = v6 ? 40 : (b[0]! & 0x0f) * 4;
  if (rstSent && (b[hl + 13]! & TCP_RST) !== 0) return true;
  // The PROXY header the LB writes ahead of a PROXY-protocol connection's first bytes.
  const payload = b.subarray(hl + ((b[hl + 12]! >>> 4) << 2));
  const v1 =
    payload.length >= 6 && Buffer.from(payload.subarray(0, 6)).toString('latin1') === 'PROXY ';
  const v2 = payload.length >= 12 && PROXY_V2_SIGNATURE.every((x, k) => payload[k] === x);
  return v1 || v2;
}

function mutate(b: Uint8Array, next: () => number): Uint8Array {
  const r = (n: number): number => Math.floor(next() * n);
  switch (r(6)) {
    case 0:
      return b.slice(0, r(b.length + 1));
    case 1: {
      const x = new Uint8Array(b.length + 1 + r(64));
      x.set(b);
      for (let i = b.length; i < x.length; i++) x[i] = r(256);
      return x;
    }
    case 2: {
      const x = new Uint8Array(1 + r(200));
      for (let i = 0; i < x.length; i++) x[i] = r(256);
      x[0] = 0x60 | (x[0]! & 0x0f);
      return x;
    }
    default: {
      const x = b.slice();
      const n = 1 + r(4);
      // Mostly the headers: the fixed header, the extension chain and TCP.
      for (let i = 0; i < n; i++) {
        const at = r(Math.min(x.length, 120));
        x[at] = r(2) === 0 ? x[at]! ^ (1 << r(8)) : r(256);
      }
      return x;
    }
  }
}

test('IPv6 fuzz: valid flows, extension chains and mutants — no throw, each packet counted once, only valid packets out', () => {
  for (const policy of ['fullnat', 'dpvs', 'lvs'] as const) {
    const e = engine(policy);
    const base = corpus();
    const next = rng(0x6f0 + policy.length);
    const inputs: Uint8Array[] = [...base];
    for (let i = 0; i < 15000; i++)
      inputs.push(mutate(base[Math.floor(next() * base.length)]!, next));
    let now = 0;
    const created0 = e.pool.created;
    for (let i = 0; i < inputs.length; i++) {
      const bytes = inputs[i]!;
      const rx = e.counter('rx_packets');
      const accounted = accountedPackets(e);
      const rst0 = e.counter('rst_sent');
      const p = e.pool.take();
      if (!p.load(bytes)) {
        e.pool.give(p);
        continue;
      }
      now += 7;
      e.tick(now);
      e.process(p);
      const after = accountedPackets(e);
      assert.equal(e.counter('rx_packets'), rx + 1);
      assert.equal(
        after,
        accounted + 1,
        `${policy}, packet ${i}: counted once (${Buffer.from(bytes).toString('hex')})`,
      );
      const good = inputValid(bytes);
      for (let k = 0; k < e.outCount; k++) {
        const q = e.out[k]!;
        const out = q.view();
        const why = validOutput(out);
        const at = `${policy}, packet ${i}, output ${k}`;
        const input = Buffer.from(bytes).toString('hex');
        if (good || crafted(out, e.counter('rst_sent') > rst0))
          assert.equal(why, null, `${at}: ${why} (${input})`);
        // A corrupt input's translation stays corrupt: never laundered.
        else assert.notEqual(why, null, `${at}: a corrupt input went out valid (${input})`);
        e.pool.give(q);
      }
      e.clearOutput();
      assert.equal(
        e.pool.available,
        e.pool.created - 0,
        `${policy}, packet ${i}: every buffer back`,
      );
    }
    // Timers: everything expires, RSTs valid, the table empties.
    e.tick(now + 200_000);
    for (let k = 0; k < e.outCount; k++) {
      assert.equal(validOutput(e.out[k]!.view()), null);
      e.pool.give(e.out[k]!);
    }
    e.clearOutput();
    assert.equal(e.table.count, 0);
    assert.ok(e.counter('forwarded_packets') > 100, `${policy}: traffic went through`);
    assert.ok(e.counter('proxy_headers_sent') > 0, `${policy}: PROXY headers sent`);
    assert.ok(e.counter('toa_inserted') > 0, `${policy}: TOAs inserted`);
    assert.ok(e.pool.created - created0 < 64, 'the pool did not leak');
  }
});

/** `engine` plus SYNPROXY services: port 84 toward the IPv6 RS, port 85 toward the IPv4 one (FNAT64). */
function engineWithSynProxy(policy: ToaPolicy): Engine {
  const e = engine(policy);
  addVipService(e, { vport: 84, rs: 6, rport: 8084, rsMtu: 1400, synProxy: true });
  addVipService(e, { vport: 85, rs: 4, rport: 8085, rsMtu: 1400, synProxy: true });
  return e;
}

test('IPv6 SYNPROXY fuzz: live cookie handshakes (IPv6 RS and FNAT64), then mutants of them and of the IPv6 corpus — no throw, each packet counted once or held, only valid packets out', () => {
  for (const policy of ['fullnat', 'dpvs', 'lvs'] as const) {
    const e = engineWithSynProxy(policy);
    let now = 0;
    let heldCorrupt = false;
    const created0 = e.pool.created;
    const grab = (): Uint8Array[] => {
      const out: Uint8Array[] = [];
      for (let k = 0; k < e.outCount; k++) {
        out.push(e.out[k]!.view().slice());
        e.pool.give(e.out[k]!);
      }
      e.clearOutput();
      return out;
    };
    const accounted = (): number => accountedPackets(e);
    /** Feeds one input with every check; returns what went out. */
    const feedChecked = (bytes: Uint8Array, at: string): Uint8Array[] => {
      now += 7;
      e.tick(now);
      // Timer outputs (RS SYNs again, RSTs): the LB's own, always valid.
      for (const q of grab()) assert.equal(validOutput(q), null, `${at}: a timer output`);
      const p = e.pool.take();
      if (!p.load(bytes)) {
        e.pool.give(p);
        return [];
      }
      const rx = e.counter('rx_packets');
      const before = accounted();
      const rst0 = e.counter('rst_sent');
      const crafted0 =
        e.counter('synproxy_syn_answered') +
        e.counter('synproxy_cookie_valid') +
        e.counter('synproxy_rs_syn_retransmitted');
      const stored0 = e.counter('synproxy_ack_stored');
      const replayed0 = e.counter('synproxy_ack_replayed');
      const good = inputValid(bytes);
      e.process(p);
      assert.equal(e.counter('rx_packets'), rx + 1);
      const input = Buffer.from(bytes).toString('hex');
      assert.equal(accounted(), before + 1, `${at}: counted once or held (${input})`);
      if (e.counter('synproxy_ack_stored') > stored0 && !good) heldCorrupt = true;
      const replay = e.counter('synproxy_ack_replayed') > replayed0;
      const made =
        e.counter('synproxy_syn_answered') +
          e.counter('synproxy_cookie_valid') +
          e.counter('synproxy_rs_syn_retransmitted') >
        crafted0;
      const outs = grab();
      outs.forEach((out, k) => {
        const why = validOutput(out);
        const where = `${at}, output ${k}: ${why} (${input})`;
        // Replayed packets are translations of inputs held earlier, valid iff those were.
        if (replay) {
          if (!heldCorrupt) assert.equal(why, null, where);
        } else if (good || made || crafted(out, e.counter('rst_sent') > rst0))
          assert.equal(why, null, where);
        else
          assert.notEqual(
            why,
            null,
            `${at}, output ${k}: a corrupt input went out valid (${input})`,
          );
      });
      if (e.heldPackets === 0) heldCorrupt = false;
      assert.equal(
        e.pool.available + e.heldPackets,
        e.pool.created,
        `${at}: every buffer back or held`,
      );
      return outs;
    };

    // Live flows: the cookie and the LB's port and ISN are read from what the LB sends.
    const flows: Uint8Array[] = [];
    const rec = (b: Uint8Array, at: string): Uint8Array[] => {
      flows.push(b);
      return feedChecked(b, at);
    };
    for (let k = 0; k < 8; k++) {
      const vport = k % 2 === 0 ? 84 : 85;
      const cip = v6('2001:db8:d::');
      cip[15] = k + 1;
      const sport = 30000 + k;
      const c = clientOf(cip, sport, vport);
      const at = `${policy}, flow ${k}`;
      const synOpts = [opt.mss(1440), opt.sackPermitted(), opt.nop(), opt.wscale(7)];
      const sa = rec(c(100, 0, TCP_SYN, { options: synOpts }), `${at} SYN`);
      assert.equal(sa.length, 1, `${at}: the cookie SYN+ACK`);
      const cookie = new TcpView().wrap(sa[0]!, 40).seq;
      // Held while the RS leg opens: the ACK, and data when k is odd.
      const rsSynOut = rec(c(101, cookie + 1, TCP_ACK), `${at} ACK`);
      assert.equal(rsSynOut.length, 1, `${at}: the RS SYN`);
      if (k % 2 === 1) rec(c(101, cookie + 1, TCP_ACK | TCP_PSH, { payload: pattern(60) }), at);
      const rsSyn = rsSynOut[0]!;
      const rsHl = vport === 84 ? 40 : 20;
      const syn = new TcpView().wrap(rsSyn, rsHl);
      const lport = syn.srcPort;
      const lbIsn = syn.seq;
      const r = (
        seq: number,
        ack: number,
        flags: number,
        extra: { payload?: Uint8Array; options?: ReturnType<typeof opt.mss>[] } = {},
      ): Uint8Array =>
        rsSegmentOf(vport === 84 ? 6 : 4, {
          rport: 8000 + vport,
          lport,
          seq,
          ack,
          flags,
          ...extra,
        });
      if (k === 6) {
        // This RS refuses.
        rec(r(0, lbIsn + 1, TCP_RST | TCP_ACK), `${at} RS RST`);
        continue;
      }
      const replayed = rec(
        r(900, lbIsn + 1, TCP_SYN | TCP_ACK, {
          options: [opt.mss(1460), opt.nop(), opt.wscale(3)],
        }),
        `${at} RS SYN+ACK`,
      );
      assert.ok(replayed.length >= 1, `${at}: held packets replayed`);
      const sent = k % 2 === 1 ? 60 : 0;
      rec(r(901, lbIsn + 1 + sent, TCP_ACK | TCP_PSH, { payload: pattern(300) }), `${at} RS data`);
      rec(c(101 + sent, cookie + 301, TCP_ACK, { payload: pattern(1300) }), `${at} big data`);
      for (let i = 0; i < 14; i++) rec(r(1201, lbIsn + 1 + sent, TCP_ACK), `${at} RS dup ACK`);
      rec(c(101 + sent + 1300, cookie + 301, TCP_ACK | TCP_FIN), `${at} FIN`);
    }
    assert.ok(e.counter('synproxy_cookie_valid') >= 8, `${policy}: cookies opened connections`);
    assert.ok(e.counter('synproxy_ack_replayed') >= 7, `${policy}: held packets replayed`);
    assert.equal(e.counter('synproxy_rs_refused'), 1);
    assert.ok(e.counter('synproxy_ack_storm') > 0, `${policy}: the ack storm cut`);
    assert.ok(e.counter('toa_inserted') + e.counter('toa_inserted_syn') > 0, `${policy}: TOAs`);

    // Mutants of the live flows and of the IPv6 corpus, with SYNPROXY services in the engine.
    const base = [...flows, ...corpus()];
    const next = rng(0x5f0 + policy.length);
    for (let i = 0; i < 8000; i++)
      feedChecked(mutate(base[Math.floor(next() * base.length)]!, next), `${policy}, mutant ${i}`);
    // Timers: everything expires, held packets freed, the table empties.
    for (let t = 1; t <= 20; t++) {
      e.tick(now + t * 20_000);
      for (const q of grab()) assert.equal(validOutput(q), null, `${policy}: expiry output`);
    }
    assert.equal(e.table.count, 0);
    assert.equal(e.heldPackets, 0);
    assert.equal(e.counter('rx_packets'), accounted());
    assert.ok(e.pool.created - created0 < 64, 'the pool did not leak');
  }
});
