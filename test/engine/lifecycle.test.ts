/**
 * The connection life cycle through the engine: every close order (client
 * first, RS first, simultaneous, RST from either side, half-close with data
 * the other way) with the exact state and deadline after each segment; a
 * client SYN on a closing entry or on one whose RS is quiesced or removed
 * (a new connection: new RS pick, new LIP:port, new ISN), SYNPROXY services
 * included; the RFC 793 RSTs for segments of flows the LB does not know,
 * their bytes and checksums recomputed independently (test/support/checksum.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '../../src/engine/engine.js';
import type { EngineOptions } from '../../src/engine/options.js';
import {
  TCP_STATE_NAMES,
  stateTransitions,
  type TcpStateName,
  type TcpTimeouts,
} from '../../src/engine/tcp-state.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../src/wire/tcp.js';
import { opt } from '../../src/wire/tcp-options.js';
import { checksumReport } from '../support/checksum.js';
import type { Decoded } from '../support/decode.js';
import {
  CIP,
  CISN,
  CPORT,
  LINUX_SYN_OPTS,
  LIP,
  RIP,
  RISN,
  VIP,
  clientSegment,
  drain,
  feed,
  feedRaw,
  rsSegment,
} from '../support/engine-fixture.js';
import { buildSegment, pattern } from '../support/packets.js';

const RIP2 = parseIpv4('10.10.2.3');
const RPORT = 8080;

/** A distinct timeout per state, so every deadline names its state. */
const T: TcpTimeouts = {
  SYN_SENT: 3,
  SYN_RECV: 29,
  ESTABLISHED: 90,
  FIN_WAIT: 11,
  TIME_WAIT: 13,
  CLOSE: 5,
  CLOSE_WAIT: 17,
  LAST_ACK: 19,
};

/** A service over two RSs, round robin; SYNPROXY if asked. */
function twoRsEngine(extra: Partial<EngineOptions> = {}, synProxy = false): Engine {
  const e = new Engine({ toaPolicy: 'fullnat', maxConnections: 64, timeouts: T, ...extra });
  e.addService({
    vip: VIP,
    vport: 80,
    scheduler: 'rr',
    laddrs: [LIP],
    realServers: [
      { addr: RIP, port: RPORT, weight: 1 },
      { addr: RIP2, port: RPORT, weight: 1 },
    ],
    synProxy,
  });
  return e;
}

/**
 * One connection through the engine, both ends played by the test: the
 * client's next seq (client space), the RS's next seq, and what the LB chose
 * (RS, LIP port, ISN toward the RS).
 */
class Flow {
  cSeq: number;
  rSeq = RISN;
  lport = 0;
  lbIsn = 0;
  rip = 0;
  now = 0;
  /** SYNPROXY: the cookie the client acks (RS seq − cookie space delta). */
  cookie = 0;

  constructor(
    readonly e: Engine,
    readonly sport = CPORT,
    isn = CISN,
    readonly synProxy = false,
  ) {
    this.cSeq = isn;
  }

  /** The three-way handshake; ESTABLISHED after it. */
  open(): this {
    if (this.synProxy) return this.openSynProxy();
    const [syn, ...rest] = this.client(TCP_SYN, 0, LINUX_SYN_OPTS);
    assert.deepEqual(rest, []);
    this.lport = syn!.sport;
    this.lbIsn = syn!.seq;
    this.rip = syn!.dst;
    const [synAck] = this.rs(TCP_SYN | TCP_ACK, 0, [opt.mss(1460)]);
    assert.equal(synAck!.flags, TCP_SYN | TCP_ACK);
    this.client(TCP_ACK);
    return this;
  }

  private openSynProxy(): this {
    const [synAck] = this.client(TCP_SYN, 0, LINUX_SYN_OPTS);
    assert.equal(synAck!.flags, TCP_SYN | TCP_ACK);
    assert.equal(synAck!.src, VIP, 'the LB answers the SYN itself');
    this.cookie = synAck!.seq;
    // The client's ACK of the cookie opens the RS leg.
    const [rsSyn] = feed(this.e, this.cookieAck(), this.now);
    assert.equal(rsSyn!.flags, TCP_SYN);
    this.lport = rsSyn!.sport;
    this.lbIsn = rsSyn!.seq;
    this.rip = rsSyn!.dst;
    // The RS's SYN+ACK: absorbed, the held ACK replayed.
    const replayed = feed(this.e, this.rsBytes(TCP_SYN | TCP_ACK, 0, [opt.mss(1460)]), this.now);
    this.rSeq = (this.rSeq + 1) >>> 0;
    assert.equal(replayed.length, 1);
    return this;
  }

  /** SYNPROXY: the client's ACK of the LB's cookie SYN+ACK. */
  cookieAck(): Uint8Array {
    return clientSegment({
      sport: this.sport,
      seq: this.cSeq,
      ack: this.cookie + 1,
      flags: TCP_ACK,
    });
  }

  /** The client's ack of the RS's bytes, in the client's space. */
  clientAck(): number {
    return this.synProxy ? (this.rSeq - RISN + this.cookie) >>> 0 : this.rSeq;
  }

  /** The RS's ack of all the client sent, in the LB→RS space. */
  rsAck(): number {
    return (this.cSeq - CISN + this.lbIsn) >>> 0;
  }

  clientBytes(flags: number, len: number, options?: ReturnType<typeof opt.mss>[]): Uint8Array {
    return clientSegment({
      sport: this.sport,
      seq: this.cSeq,
      ack: (flags & TCP_ACK) !== 0 ? this.clientAck() : 0,
      flags,
      payload: len > 0 ? pattern(len) : undefined,
      options,
    });
  }

  rsBytes(flags: number, len: number, options?: ReturnType<typeof opt.mss>[]): Uint8Array {
    return buildSegment({
      src: this.rip,
      dst: LIP,
      sport: RPORT,
      dport: this.lport,
      seq: this.rSeq,
      ack: (flags & TCP_ACK) !== 0 ? this.rsAck() : 0,
      flags,
      payload: len > 0 ? pattern(len) : undefined,
      options,
    });
  }

  /** A client segment with `len` payload bytes; returns what the LB sent. */
  client(flags: number, len = 0, options?: ReturnType<typeof opt.mss>[]): Decoded[] {
    const out = feed(this.e, this.clientBytes(flags, len, options), this.now);
    this.cSeq =
      (this.cSeq + len + ((flags & TCP_SYN) !== 0 ? 1 : 0) + ((flags & TCP_FIN) !== 0 ? 1 : 0)) >>>
      0;
    return out;
  }

  /** An RS segment; `ack` overrides the ack of everything the client sent. */
  rs(flags: number, len = 0, options?: ReturnType<typeof opt.mss>[], ack?: number): Decoded[] {
    const bytes =
      ack === undefined
        ? this.rsBytes(flags, len, options)
        : buildSegment({
            src: this.rip,
            dst: LIP,
            sport: RPORT,
            dport: this.lport,
            seq: this.rSeq,
            ack,
            flags,
          });
    const out = feed(this.e, bytes, this.now);
    this.rSeq =
      (this.rSeq + len + ((flags & TCP_SYN) !== 0 ? 1 : 0) + ((flags & TCP_FIN) !== 0 ? 1 : 0)) >>>
      0;
    return out;
  }

  /** The entry of this flow: its state and seconds to its deadline; undefined when gone. */
  entry(): { state: TcpStateName; timeout: number; lport: number; rip: number } | undefined {
    const c = this.e.listConnections().find((x) => x.cport === this.sport);
    if (!c) return undefined;
    return {
      state: TCP_STATE_NAMES[c.state],
      timeout: c.expiresInMs / 1000,
      lport: c.lport,
      rip: c.rip as number,
    };
  }

  /** Asserts the entry's state and that its deadline is that state's full timeout from now. */
  is(state: TcpStateName, what: string): void {
    const en = this.entry();
    assert.ok(en, `${what}: the entry is gone`);
    assert.equal(en.state, state, what);
    assert.equal(en.timeout, T[state as keyof TcpTimeouts], `${what}: ${state}'s timeout`);
  }
}

/** conns_created − conns_released equals the table, and each RS's counts its entries. */
function assertBalanced(e: Engine): void {
  assert.equal(e.counter('conns_created') - e.counter('conns_released'), e.table.count);
  const conns = e.listConnections();
  for (const r of e.realServers) {
    const mine = conns.filter((c) => c.rip === r.addr && c.rport === r.port);
    assert.equal(r.activeConns + r.inactiveConns, mine.length, `RS ${r.index}`);
    assert.equal(
      r.activeConns,
      mine.filter((c) => TCP_STATE_NAMES[c.state] === 'ESTABLISHED').length,
    );
  }
}

describe('close orders: the exact state and deadline after each segment', () => {
  for (const sp of [false, true]) {
    const kind = sp ? 'SYNPROXY' : 'plain';

    it(`${kind}: the client closes first`, () => {
      const f = new Flow(twoRsEngine({}, sp), CPORT, CISN, sp).open();
      f.is('ESTABLISHED', 'after the handshake');
      f.client(TCP_ACK | TCP_PSH, 100);
      f.rs(TCP_ACK | TCP_PSH, 500);
      f.is('ESTABLISHED', 'data both ways');
      f.now = 1000;
      assert.equal(f.client(TCP_ACK | TCP_FIN).length, 1);
      f.is('FIN_WAIT', 'client FIN');
      f.rs(TCP_ACK);
      f.is('FIN_WAIT', 'RS acks the FIN');
      f.rs(TCP_ACK | TCP_FIN);
      f.is('TIME_WAIT', 'RS FIN');
      f.client(TCP_ACK);
      f.is('TIME_WAIT', 'client acks the RS FIN');
      f.e.tick(1000 + T.TIME_WAIT * 1000 - 100);
      assert.ok(f.entry(), 'still there just before its TIME_WAIT deadline');
      f.e.tick(1000 + T.TIME_WAIT * 1000 + 200);
      assert.equal(f.entry(), undefined, 'gone after TIME_WAIT');
      assert.deepEqual(drain(f.e), [], 'no RST for a closed connection');
      assertBalanced(f.e);
    });

    it(`${kind}: the RS closes first (the issue's LAST_ACK that never ended)`, () => {
      const f = new Flow(twoRsEngine({}, sp), CPORT, CISN, sp).open();
      f.client(TCP_ACK | TCP_PSH, 100);
      f.rs(TCP_ACK | TCP_PSH | TCP_FIN, 300);
      f.is('CLOSE_WAIT', 'RS answers and closes');
      f.client(TCP_ACK);
      f.is('CLOSE_WAIT', 'client acks');
      f.client(TCP_ACK | TCP_FIN);
      f.is('LAST_ACK', 'client FIN');
      // An RS ACK that does not cover the client's FIN (reordered) changes nothing.
      f.rs(TCP_ACK, 0, undefined, (f.rsAck() - 1) >>> 0);
      f.is('LAST_ACK', 'an older ack');
      f.client(TCP_ACK);
      f.is('LAST_ACK', "the client's own ACK is not the last ACK");
      f.rs(TCP_ACK);
      f.is('TIME_WAIT', "RS acks the client's FIN");
      assertBalanced(f.e);
    });

    it(`${kind}: simultaneous close, both arrival orders`, () => {
      const e = twoRsEngine({}, sp);
      const a = new Flow(e, CPORT, CISN, sp).open();
      // Client FIN first; the RS's crossing FIN does not ack it.
      const before = a.rsAck();
      a.client(TCP_ACK | TCP_FIN);
      a.is('FIN_WAIT', 'client FIN');
      a.rs(TCP_ACK | TCP_FIN, 0, undefined, before);
      a.is('TIME_WAIT', 'crossing RS FIN');
      a.client(TCP_ACK);
      a.rs(TCP_ACK);
      a.is('TIME_WAIT', 'both final ACKs');
      // RS FIN first; the client's crossing FIN does not ack it, then the RS acks the client's FIN.
      const b = new Flow(e, CPORT + 1, CISN, sp).open();
      const rsBefore = b.rSeq;
      b.rs(TCP_ACK | TCP_FIN);
      b.is('CLOSE_WAIT', 'RS FIN');
      b.rSeq = rsBefore; // the client had not seen the RS FIN when it sent its own
      b.client(TCP_ACK | TCP_FIN);
      b.rSeq = (rsBefore + 1) >>> 0;
      b.is('LAST_ACK', 'crossing client FIN');
      b.rs(TCP_ACK);
      b.is('TIME_WAIT', "RS acks the client's FIN");
      b.client(TCP_ACK);
      b.is('TIME_WAIT', "client acks the RS's FIN");
      assertBalanced(e);
    });

    for (const [who, state] of [
      ['client', 'ESTABLISHED'],
      ['RS', 'ESTABLISHED'],
      ['client', 'FIN_WAIT'],
      ['RS', 'CLOSE_WAIT'],
    ] as const) {
      it(`${kind}: a RST from the ${who} in ${state}`, () => {
        const f = new Flow(twoRsEngine({}, sp), CPORT, CISN, sp).open();
        if (state === 'FIN_WAIT') f.client(TCP_ACK | TCP_FIN);
        if (state === 'CLOSE_WAIT') f.rs(TCP_ACK | TCP_FIN);
        f.is(state, 'before');
        const out = who === 'client' ? f.client(TCP_RST | TCP_ACK) : f.rs(TCP_RST | TCP_ACK);
        assert.equal(out.length, 1, 'the RST is forwarded');
        assert.ok((out[0]!.flags & TCP_RST) !== 0);
        f.is('CLOSE', 'after the RST');
        f.e.tick(T.CLOSE * 1000 + 200);
        assert.equal(f.entry(), undefined);
        assertBalanced(f.e);
      });
    }

    it(`${kind}: half-close by the client, the RS streams on longer than FIN_WAIT's timeout`, () => {
      const f = new Flow(twoRsEngine({}, sp), CPORT, CISN, sp).open();
      f.client(TCP_ACK | TCP_PSH, 50);
      f.client(TCP_ACK | TCP_FIN);
      f.is('FIN_WAIT', 'client FIN');
      // Every RS segment restarts FIN_WAIT's deadline: 3 × 8 s > 11 s, and nothing expires.
      for (let i = 1; i <= 3; i++) {
        f.now = i * 8000;
        f.e.tick(f.now);
        const [d] = f.rs(TCP_ACK | TCP_PSH, 1000);
        assert.equal(d!.payload.length, 1000, `segment ${i} reaches the client`);
        f.is('FIN_WAIT', `RS data ${i}`);
        f.client(TCP_ACK);
      }
      f.rs(TCP_ACK | TCP_FIN);
      f.is('TIME_WAIT', 'RS FIN');
      assertBalanced(f.e);
    });

    it(`${kind}: half-close by the RS, the client sends on, then closes`, () => {
      const f = new Flow(twoRsEngine({}, sp), CPORT, CISN, sp).open();
      f.rs(TCP_ACK | TCP_FIN);
      f.is('CLOSE_WAIT', 'RS FIN');
      for (let i = 1; i <= 3; i++) {
        f.now = i * 10_000;
        f.e.tick(f.now);
        const seqBefore = f.rsAck();
        const [d] = f.client(TCP_ACK | TCP_PSH, 700);
        assert.equal(d!.seq, seqBefore, 'client bytes in the RS space');
        f.is('CLOSE_WAIT', `client data ${i}`);
        f.rs(TCP_ACK);
        f.is('CLOSE_WAIT', `RS acks ${i}`);
      }
      f.client(TCP_ACK | TCP_FIN);
      f.is('LAST_ACK', 'client FIN');
      f.rs(TCP_ACK);
      f.is('TIME_WAIT', 'RS acks it');
      assertBalanced(f.e);
    });
  }

  it('the state table in docs/ARCHITECTURE.md is the one tcp-state.ts holds', () => {
    const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
    const doc = readFileSync(join(repo, 'docs', 'ARCHITECTURE.md'), 'utf8');
    const start = doc.indexOf('<!-- tcp-state-table -->');
    assert.ok(start >= 0, 'the table is marked in the document');
    const lines = doc.slice(start).split('\n').slice(1);
    const end = lines.findIndex((l) => !l.startsWith('|'));
    const rows = lines.slice(0, end).map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((x) => x.trim().replace(/`/g, '')),
    );
    const [header, , ...body] = rows;
    assert.deepEqual(header!.slice(1), [
      'syn from client',
      'fin from client',
      'ack from client',
      'rst from either',
      'fin from RS',
      'ack of the client FIN from RS',
    ]);
    const t = stateTransitions();
    const next = (dir: 'client' | 'rs', ev: string, s: string): string =>
      t.find((x) => x[0] === dir && x[1] === ev && x[2] === s)![3];
    const shown = (dir: 'client' | 'rs', ev: string, s: string): string => {
      const n = next(dir, ev, s);
      return n === s ? '·' : n;
    };
    const states = TCP_STATE_NAMES.filter((s) => s !== 'NONE' && s !== 'SYN_SENT');
    assert.deepEqual(
      body.map((r) => r[0]),
      [...states],
    );
    for (const r of body) {
      const s = r[0]!;
      assert.deepEqual(
        r.slice(1),
        [
          shown('client', 'syn', s),
          shown('client', 'fin', s),
          shown('client', 'ack', s),
          shown('client', 'rst', s),
          shown('rs', 'fin', s),
          shown('rs', 'ack of FIN', s),
        ],
        `row ${s}`,
      );
      // A RST reads the same from either side; an RS ack not of the FIN, an RS SYN+ACK (past
      // SYN_SENT) and a segment with none of the flags change nothing; the client's "ack of FIN"
      // is its plain ack.
      assert.equal(next('rs', 'rst', s), next('client', 'rst', s));
      assert.equal(next('rs', 'ack', s), s);
      assert.equal(next('rs', 'syn', s), s);
      assert.equal(next('rs', 'none', s), s);
      assert.equal(next('client', 'none', s), s);
      assert.equal(next('client', 'ack of FIN', s), next('client', 'ack', s));
    }
  });
});

describe('tuple reuse: a client SYN on a closing entry is a new connection', () => {
  const into: Record<string, (f: Flow) => void> = {
    FIN_WAIT: (f) => f.client(TCP_ACK | TCP_FIN),
    CLOSE_WAIT: (f) => f.rs(TCP_ACK | TCP_FIN),
    LAST_ACK: (f) => {
      f.rs(TCP_ACK | TCP_FIN);
      f.client(TCP_ACK | TCP_FIN);
    },
    TIME_WAIT: (f) => {
      f.rs(TCP_ACK | TCP_FIN);
      f.client(TCP_ACK | TCP_FIN);
      f.rs(TCP_ACK);
    },
    CLOSE: (f) => f.rs(TCP_RST),
  };
  for (const sp of [false, true]) {
    for (const [state, drive] of Object.entries(into)) {
      it(`${sp ? 'SYNPROXY' : 'plain'}: in ${state}`, () => {
        const e = twoRsEngine({}, sp);
        const old = new Flow(e, CPORT, CISN, sp).open();
        drive(old);
        old.is(state as TcpStateName, 'the old connection');
        // The same client port, a new ISN, as a Linux client reusing its port does.
        const next = new Flow(e, CPORT, CISN + 5_000_000, sp);
        if (!sp) {
          const [syn, ...rest] = next.client(TCP_SYN, 0, LINUX_SYN_OPTS);
          assert.deepEqual(rest, []);
          assert.equal(syn!.flags, TCP_SYN);
          assert.notEqual(syn!.dst, old.rip, 'scheduled afresh: round robin moves on');
          assert.ok(syn!.sport !== old.lport, 'a new LIP port');
          assert.notEqual(syn!.seq, old.lbIsn, 'a new ISN');
          next.is('SYN_RECV', 'the new connection');
        } else {
          // SYNPROXY answers the SYN statelessly; the old entry stays until the cookie ACK.
          const [synAck] = next.client(TCP_SYN, 0, LINUX_SYN_OPTS);
          assert.equal(synAck!.src, VIP);
          old.is(state as TcpStateName, 'untouched by the SYN');
          next.cookie = synAck!.seq;
          const [rsSyn] = feed(e, next.cookieAck());
          assert.equal(rsSyn!.flags, TCP_SYN);
          assert.notEqual(rsSyn!.dst, old.rip);
          assert.ok(rsSyn!.sport !== old.lport);
          assert.notEqual(rsSyn!.seq, old.lbIsn, 'a new ISN');
          assert.equal(next.entry()!.state, 'SYN_SENT', 'the new connection opening');
        }
        assert.equal(e.counter('conns_reused_closing'), 1);
        assert.equal(e.counter('conns_created'), 2);
        assert.equal(e.table.count, 1);
        assertBalanced(e);
      });
    }
  }

  it('a retransmitted SYN of a live connection stays on its entry', () => {
    const e = twoRsEngine();
    const f = new Flow(e);
    const [a] = f.client(TCP_SYN, 0, LINUX_SYN_OPTS);
    f.cSeq = CISN;
    const [b] = f.client(TCP_SYN, 0, LINUX_SYN_OPTS);
    assert.equal(b!.dst, a!.dst);
    assert.equal(b!.sport, a!.sport);
    assert.equal(b!.seq, a!.seq);
    assert.equal(e.counter('conns_created'), 1);
    assert.equal(e.counter('conns_reused_closing') + e.counter('conns_rescheduled'), 0);
  });

  it('a SYN with ACK (not a new connection) on a closing entry belongs to the old one', () => {
    const e = twoRsEngine();
    const f = new Flow(e).open();
    f.client(TCP_ACK | TCP_FIN);
    f.cSeq = CISN;
    const out = f.client(TCP_SYN | TCP_ACK);
    assert.equal(out.length, 1);
    assert.equal(out[0]!.dst, f.rip, 'forwarded on the old entry');
    assert.equal(e.counter('conns_created'), 1);
  });
});

describe('quiesced and removed real servers', () => {
  for (const sp of [false, true]) {
    const kind = sp ? 'SYNPROXY' : 'plain';
    it(`${kind}: a SYN on an entry whose RS has weight 0 goes to another RS`, () => {
      const e = twoRsEngine({}, sp);
      const old = new Flow(e, CPORT, CISN, sp).open();
      old.is('ESTABLISHED', 'before');
      const idx = e.realServers.find((r) => r.addr === old.rip)!.index;
      e.setWeight(idx, 0);
      // Its live connection keeps working.
      assert.equal(old.client(TCP_ACK | TCP_PSH, 10)[0]!.dst, old.rip);
      const next = new Flow(e, CPORT, CISN + 9_000_000, sp);
      if (!sp) {
        const [syn] = next.client(TCP_SYN, 0, LINUX_SYN_OPTS);
        assert.notEqual(syn!.dst, old.rip);
      } else {
        next.cookie = next.client(TCP_SYN, 0, LINUX_SYN_OPTS)[0]!.seq;
        const [rsSyn] = feed(e, next.cookieAck());
        assert.equal(rsSyn!.flags, TCP_SYN);
        assert.notEqual(rsSyn!.dst, old.rip);
      }
      assert.equal(e.counter('conns_rescheduled'), 1);
      // New connections from other ports never go to it either.
      for (let i = 1; i <= 6; i++) {
        const g = new Flow(e, CPORT + i, CISN, sp).open();
        assert.notEqual(g.rip, old.rip, `connection ${i}`);
      }
      assertBalanced(e);
    });

    it(`${kind}: packets of a removed RS's connection end it, the client gets a RST`, () => {
      const e = twoRsEngine({}, sp);
      const f = new Flow(e, CPORT, CISN, sp).open();
      const g = new Flow(e, CPORT + 1, CISN, sp).open();
      assert.notEqual(f.rip, g.rip);
      // Past the first bytes: a SYNPROXY client's early ACKs would still pass as a cookie ACK.
      f.rs(TCP_ACK | TCP_PSH, 100);
      f.client(TCP_ACK);
      e.removeRealServer(e.realServers.find((r) => r.addr === f.rip)!.index);
      const ackBefore = f.clientAck();
      const out = f.client(TCP_ACK | TCP_PSH, 20);
      assert.equal(out.length, 1);
      const r = out[0]!;
      assert.equal(r.flags, TCP_RST, 'RFC 793: the segment had an ACK, so RST with seq = its ack');
      assert.equal(r.seq, ackBefore);
      assert.equal(r.src, VIP);
      assert.equal(r.dst, CIP);
      assert.equal(f.entry(), undefined, 'the entry ended');
      assert.equal(e.counter('conns_expired_nodest'), 1);
      // The RS, if still alive, hears a RST from the LIP for its next segment.
      const [fromLip] = f.rs(TCP_ACK | TCP_PSH, 10);
      assert.equal(fromLip!.flags, TCP_RST);
      assert.equal(fromLip!.src, LIP);
      assert.equal(fromLip!.dst, f.rip);
      // The other RS's connection is untouched.
      assert.equal(g.client(TCP_ACK | TCP_PSH, 5)[0]!.dst, g.rip);
      assertBalanced(e);
    });
  }

  it('a SYN on a removed RS entry is rescheduled, not answered with a RST', () => {
    const e = twoRsEngine();
    const f = new Flow(e).open();
    e.removeRealServer(e.realServers.find((r) => r.addr === f.rip)!.index);
    const next = new Flow(e, CPORT, CISN + 77);
    const [syn] = next.client(TCP_SYN, 0, LINUX_SYN_OPTS);
    assert.equal(syn!.flags, TCP_SYN);
    assert.notEqual(syn!.dst, f.rip);
    assert.equal(e.counter('conns_rescheduled'), 1);
    assert.equal(e.counter('conns_expired_nodest'), 0);
  });
});

describe('unknown flows: the RST the VIP (or the LIP) host would send', () => {
  /** The stored and independently recomputed checksums agree. */
  function checksOut(bytes: Uint8Array): void {
    const r = checksumReport(bytes);
    assert.equal(r.ip[0], r.ip[1], 'IPv4 header checksum');
    assert.equal(r.l4[0], r.l4[1], 'TCP checksum');
  }

  function one(e: Engine, bytes: Uint8Array, now = 0): Uint8Array {
    const out = feedRaw(e, bytes, now);
    assert.equal(out.length, 1);
    checksOut(out[0]!.bytes);
    return out[0]!.bytes;
  }

  const u32 = (b: Uint8Array, o: number): number =>
    ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

  it('a segment with ACK to the VIP: RST, seq = its ack, no ACK, byte for byte', () => {
    const e = twoRsEngine();
    const seg = clientSegment({
      seq: 0xfffffff0,
      ack: 0x89abcdef,
      flags: TCP_ACK | TCP_PSH,
      payload: pattern(33),
    });
    const b = one(e, seg);
    assert.equal(b.length, 40);
    assert.deepEqual([...b.subarray(0, 4)], [0x45, 0, 0, 40]);
    assert.equal(b[8], 64, 'TTL 64');
    assert.equal(b[9], 6);
    assert.equal(u32(b, 12), VIP, 'from the VIP');
    assert.equal(u32(b, 16), CIP, 'to the client');
    assert.equal((b[20]! << 8) | b[21]!, 80);
    assert.equal((b[22]! << 8) | b[23]!, CPORT);
    assert.equal(u32(b, 24), 0x89abcdef, 'seq = the ack');
    assert.equal(u32(b, 28), 0, 'ack 0');
    assert.equal(b[32], 0x50, 'a 20-byte header');
    assert.equal(b[33], TCP_RST, 'RST alone');
    assert.equal((b[34]! << 8) | b[35]!, 0, 'window 0');
    assert.equal(e.counter('unknown_flow_rst_sent'), 1);
    assert.equal(e.counter('no_conn_dropped'), 1);
    assert.equal(e.counter('rst_sent'), 1);
    assert.equal(e.table.count, 0, 'nothing opened');
  });

  it('without ACK: RST+ACK, seq 0, ack = seq + payload (+1 FIN), sequence wrapping', () => {
    const e = twoRsEngine();
    const b = one(e, clientSegment({ seq: 0xfffffffe, flags: TCP_FIN, payload: pattern(5) }));
    assert.equal(b[33], TCP_RST | TCP_ACK);
    assert.equal(u32(b, 24), 0);
    assert.equal(u32(b, 28), (0xfffffffe + 5 + 1) >>> 0);
    const c = one(e, clientSegment({ seq: 1000, flags: TCP_PSH, payload: pattern(7) }));
    assert.equal(u32(c, 28), 1007);
    // A SYN+ACK to the VIP opens nothing and has an ACK: RST, seq = its ack.
    const d = one(e, clientSegment({ seq: 5, ack: 0x01020304, flags: TCP_SYN | TCP_ACK }));
    assert.equal(d[33], TCP_RST);
    assert.equal(u32(d, 24), 0x01020304);
  });

  it('a segment to a LIP of no connection: RST from LIP:lport to the RS; IP options dropped', () => {
    const e = twoRsEngine();
    const seg = buildSegment({
      src: RIP,
      dst: LIP,
      sport: RPORT,
      dport: 61000,
      seq: 42,
      ack: 0x7f000001,
      flags: TCP_ACK | TCP_PSH,
      payload: pattern(100),
    });
    const b = one(e, seg);
    assert.equal(u32(b, 12), LIP);
    assert.equal(u32(b, 16), RIP);
    assert.equal((b[20]! << 8) | b[21]!, 61000);
    assert.equal((b[22]! << 8) | b[23]!, RPORT);
    assert.equal(u32(b, 24), 0x7f000001);
    assert.equal(b[33], TCP_RST);
  });

  it('never for a RST, nor to a non-unicast source; none at all when switched off', () => {
    const e = twoRsEngine();
    assert.deepEqual(feed(e, clientSegment({ seq: 1, ack: 2, flags: TCP_RST | TCP_ACK })), []);
    assert.deepEqual(
      feed(
        e,
        buildSegment({
          src: parseIpv4('224.0.0.9'),
          dst: VIP,
          sport: 1,
          dport: 80,
          seq: 1,
          ack: 1,
          flags: TCP_ACK,
        }),
      ),
      [],
    );
    assert.equal(e.counter('unknown_flow_rst_sent'), 0);
    assert.equal(e.counter('no_conn_dropped'), 2);
    const off = twoRsEngine({ unknownFlowReset: false });
    assert.deepEqual(feed(off, clientSegment({ seq: 1, ack: 2, flags: TCP_ACK })), []);
    assert.deepEqual(feed(off, rsSegment({ lport: 6000, seq: 1, ack: 2, flags: TCP_ACK })), []);
    assert.equal(off.counter('no_conn_dropped'), 2);
    assert.equal(off.counter('unknown_flow_rst_sent'), 0);
    off.reconfigure({ unknownFlowReset: true });
    assert.equal(
      feed(off, clientSegment({ seq: 1, ack: 2, flags: TCP_ACK })).length,
      1,
      'on after a reload',
    );
  });

  it('is rate-limited: the burst, then the rate, counted', () => {
    const e = twoRsEngine({ unknownFlowResetRate: 1000, unknownFlowResetBurst: 100 });
    const seg = clientSegment({ seq: 1, ack: 2, flags: TCP_ACK });
    let sent = 0;
    for (let i = 0; i < 300; i++) sent += feedRaw(e, seg, 0).length;
    assert.equal(sent, 100, 'the burst');
    assert.equal(e.counter('unknown_flow_rst_limited'), 200);
    // 50 ms later: 50 more tokens.
    sent = 0;
    for (let i = 0; i < 300; i++) sent += feedRaw(e, seg, 50).length;
    assert.equal(sent, 50);
    assert.equal(e.counter('no_conn_dropped'), 600, 'every one of them still a drop');
    assert.equal(e.counter('unknown_flow_rst_sent'), 150);
    e.reconfigure({ unknownFlowResetRate: 10, unknownFlowResetBurst: 1 });
    assert.equal(feedRaw(e, seg, 10_000).length, 1);
    assert.equal(feedRaw(e, seg, 10_000).length, 0, 'the new burst of 1');
  });

  it('SYNPROXY: an ACK without a cookie is answered once (by SYNPROXY), no double RST', () => {
    const e = twoRsEngine({}, true);
    const out = feed(e, clientSegment({ seq: 1, ack: 2, flags: TCP_ACK }));
    assert.equal(out.length, 1);
    assert.equal(out[0]!.flags, TCP_RST);
    assert.equal(e.counter('synproxy_cookie_invalid'), 1);
    assert.equal(e.counter('unknown_flow_rst_sent'), 0);
  });
});
