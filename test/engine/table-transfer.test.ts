/**
 * Engine.exportConnections / importConnections driven by packets: flows of
 * every service kind (plain, PROXY v1/v2, SYNPROXY) left at every stage of
 * their life in one engine, the table handed to an engine configured in
 * another order (every index differs), and the same packets fed on to both:
 * the importing engine sends byte for byte what the exporting one sends.
 * Then the skip reasons, the expiry adjustment, port claims and conflicts,
 * SYNPROXY connections still opening, and the ISN and port choices of a
 * restarted engine.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { decodeSnapshot } from '../../src/engine/conn-record.js';
import { Engine } from '../../src/engine/engine.js';
import { TCP_STATE_NAMES } from '../../src/engine/tcp-state.js';
import { opt, type TcpOption } from '../../src/wire/tcp-options.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../src/wire/tcp.js';
import { decodeSegment, type Decoded } from '../support/decode.js';
import { LINUX_SYN_OPTS, drainOutput, feedRaw } from '../support/engine-fixture.js';
import { buildSegment, checksumsValid, pattern } from '../support/packets.js';
import { tableInconsistency } from '../support/table-consistency.js';
import {
  TRANSFER_SERVICES,
  T_VIP,
  exportingEngine,
  importingEngine,
  type TransferService,
} from '../support/transfer-config.js';

/** One TCP connection's two ends as the tests play them: what each has sent and seen. */
class Flow {
  cseq: number;
  cack = 0;
  rseq: number;
  rack = 0;
  lport = -1;
  lip = 0;

  constructor(
    readonly s: TransferService,
    readonly cip: number,
    readonly cport: number,
    cisn: number,
    risn: number,
  ) {
    this.cseq = cisn;
    this.rseq = risn;
  }

  client(flags: number, payload?: Uint8Array, options?: TcpOption[]): Uint8Array {
    const b = buildSegment({
      src: this.cip,
      dst: this.s.vip,
      sport: this.cport,
      dport: this.s.vport,
      seq: this.cseq >>> 0,
      ack: (flags & TCP_ACK) !== 0 ? this.cack >>> 0 : 0,
      flags,
      payload,
      options,
    });
    this.cseq =
      (this.cseq + (payload?.length ?? 0) + ((flags & (TCP_SYN | TCP_FIN)) !== 0 ? 1 : 0)) >>> 0;
    return b;
  }

  rs(flags: number, payload?: Uint8Array, options?: TcpOption[]): Uint8Array {
    assert.ok(this.lport > 0, 'the RS leg is open');
    const b = buildSegment({
      src: this.s.rip,
      dst: this.lip,
      sport: this.s.rport,
      dport: this.lport,
      seq: this.rseq >>> 0,
      ack: (flags & TCP_ACK) !== 0 ? this.rack >>> 0 : 0,
      flags,
      payload,
      options,
    });
    this.rseq =
      (this.rseq + (payload?.length ?? 0) + ((flags & (TCP_SYN | TCP_FIN)) !== 0 ? 1 : 0)) >>> 0;
    return b;
  }

  /** Learns from what the engine sent: the RS leg's tuple, and what each end will ack. */
  observe(out: Decoded[]): void {
    for (const d of out) {
      if ((d.flags & TCP_RST) !== 0) continue;
      const next =
        (d.seq + d.payload.length + ((d.flags & (TCP_SYN | TCP_FIN)) !== 0 ? 1 : 0)) >>> 0;
      if (d.dst === this.s.rip && d.dport === this.s.rport) {
        if ((d.flags & TCP_SYN) !== 0) {
          this.lport = d.sport;
          this.lip = d.src;
        }
        if (d.sport === this.lport) this.rack = next;
      } else if (d.dst === this.cip && d.dport === this.cport) {
        this.cack = next;
      }
    }
  }
}

const RS_SYNACK_OPTS: TcpOption[][] = [
  [opt.mss(1460), opt.sackPermitted(), opt.nop(), opt.wscale(9)],
  [opt.mss(1400)],
];

type Stage = 'syn' | 'established' | 'data' | 'client-fin' | 'server-fin' | 'both-fin' | 'rst';
const STAGES: Stage[] = [
  'syn',
  'established',
  'data',
  'client-fin',
  'server-fin',
  'both-fin',
  'rst',
];

function decoded(out: { bytes: Uint8Array }[]): Decoded[] {
  return out.map((o) => {
    assert.ok(checksumsValid(o.bytes));
    return decodeSegment(o.bytes);
  });
}

/** Feeds one packet to one engine and lets the flow learn from the answer. */
function step(e: Engine, f: Flow, bytes: Uint8Array, now?: number): Decoded[] {
  const out = decoded(feedRaw(e, bytes, now));
  f.observe(out);
  return out;
}

/** Takes flow f to `stage` through engine e. */
function drive(e: Engine, f: Flow, stage: Stage, k: number): void {
  const synAckOpts = RS_SYNACK_OPTS[k % 2]!;
  step(e, f, f.client(TCP_SYN, undefined, LINUX_SYN_OPTS));
  if (f.s.synProxy) {
    // The LB answered with its cookie; the client's ACK opens the RS leg.
    step(e, f, f.client(TCP_ACK));
    step(e, f, f.rs(TCP_SYN | TCP_ACK, undefined, synAckOpts));
  } else {
    if (stage === 'syn') return;
    step(e, f, f.rs(TCP_SYN | TCP_ACK, undefined, synAckOpts));
    step(e, f, f.client(TCP_ACK));
  }
  if (stage === 'established') return;
  if (stage === 'rst') {
    step(e, f, f.client(TCP_RST | TCP_ACK));
    return;
  }
  step(e, f, f.client(TCP_ACK | TCP_PSH, pattern(100 + k, k)));
  step(e, f, f.rs(TCP_ACK | TCP_PSH, pattern(300 + k, k + 1)));
  step(e, f, f.client(TCP_ACK));
  if (stage === 'client-fin' || stage === 'both-fin') step(e, f, f.client(TCP_FIN | TCP_ACK));
  if (stage === 'server-fin' || stage === 'both-fin') step(e, f, f.rs(TCP_FIN | TCP_ACK));
}

/** What comes after, for either engine: the rest of the handshake where needed, data both ways, both FINs. */
function continuation(f: Flow, stage: Stage, k: number): (() => Uint8Array)[] {
  const steps: (() => Uint8Array)[] = [];
  if (stage === 'rst') {
    // The RS answers the client's RST late. (A client ACK on a SYNPROXY tuple in CLOSE would
    // be a cookie ACK opening a new connection: a new LIP:port and ISN, which engines pick each their own.)
    steps.push(() => f.rs(TCP_ACK));
    steps.push(() => f.rs(TCP_RST));
    return steps;
  }
  if (stage === 'syn' && !f.s.synProxy) {
    steps.push(() => f.rs(TCP_SYN | TCP_ACK, undefined, RS_SYNACK_OPTS[k % 2]));
    steps.push(() => f.client(TCP_ACK));
  }
  steps.push(() => f.client(TCP_ACK | TCP_PSH, pattern(500 + k, k + 2)));
  steps.push(() => f.rs(TCP_ACK | TCP_PSH, pattern(700 + k, k + 3)));
  steps.push(() =>
    f.client(TCP_ACK, undefined, [opt.nop(), opt.nop(), opt.sack([[f.cack, f.cack + 10]])]),
  );
  steps.push(() => f.rs(TCP_FIN | TCP_ACK));
  steps.push(() => f.client(TCP_FIN | TCP_ACK));
  steps.push(() => f.rs(TCP_ACK));
  return steps;
}

const stateName = (s: number): string => TCP_STATE_NAMES[s] ?? String(s);

function consistent(e: Engine, what: string, now?: number): void {
  const v = tableInconsistency(e, now);
  assert.equal(v, null, `${what}: ${v}`);
}

/** Flows of every service at every stage, driven through e. */
function openFlows(e: Engine): { f: Flow; stage: Stage; k: number }[] {
  const flows: { f: Flow; stage: Stage; k: number }[] = [];
  let k = 0;
  for (const s of TRANSFER_SERVICES) {
    for (const stage of STAGES) {
      // A SYNPROXY flow has no entry before the client's ACK; its 'syn' is 'established'.
      const f = new Flow(s, 0xcb007100 + k, 41000 + k, 1_000_000 * (k + 1), 0xfff00000 + 977 * k);
      drive(e, f, stage, k);
      flows.push({ f, stage, k });
      k++;
    }
  }
  return flows;
}

describe('handover: the importing engine carries on byte for byte', () => {
  for (const policy of ['fullnat', 'dpvs', 'lvs'] as const) {
    it(`${policy}: 28 flows (4 service kinds × 7 stages), every packet after the handover identical`, () => {
      const a = exportingEngine({ toaPolicy: policy, isnClockOriginMs: 1_765_000_000_000 });
      a.tick(100);
      const flows = openFlows(a);
      // Within CLOSE's 3 s, so the reset flows are still there.
      a.tick(2000);
      drainOutput(a);
      consistent(a, 'exporter');
      const snap = a.exportConnections();
      const { header, records } = decodeSnapshot(snap);
      assert.equal(header.pendingSkipped, 0);
      assert.equal(header.count, 28, 'every flow has its entry');
      assert.equal(header.engineClockMs, 2000);
      const states = new Set(records.map((r) => stateName(r.state)));
      for (const want of ['SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'CLOSE']) {
        assert.ok(states.has(want), `a flow in ${want} (have ${[...states].join(', ')})`);
      }
      assert.ok(
        records.some((r) => r.shift === 28 && r.flags === 1),
        'a PROXY v2 flow past its header',
      );
      assert.ok(
        records.some((r) => r.shift > 28),
        'a PROXY v1 flow',
      );
      assert.ok(
        records.some((r) => (r.flags & 2) !== 0 && (r.flags & 4) !== 0),
        'SYNPROXY, RS windows rescaled',
      );
      assert.ok(
        records.some((r) => (r.flags & 2) !== 0 && (r.flags & 8) !== 0),
        'SYNPROXY, client windows unscaled',
      );

      const b = importingEngine({ toaPolicy: policy });
      b.tick(250);
      assert.deepEqual(b.importConnections(snap, 0), { imported: 28, skipped: 0, reasons: {} });
      consistent(b, 'importer');
      const list = (e: Engine) =>
        e
          .listConnections()
          .map((c) => ({ ...c, state: stateName(c.state) }))
          .sort((x, y) => x.cport - y.cport);
      assert.deepEqual(list(b), list(a), 'same table, tuples, states and time left');
      assert.notEqual(
        b.findService(T_VIP, 80),
        a.findService(T_VIP, 80),
        'the service indexes differ between the engines',
      );

      let packets = 0;
      for (const { f, stage, k } of flows) {
        for (const make of continuation(f, stage, k)) {
          const bytes = make();
          const outA = feedRaw(a, bytes);
          const outB = feedRaw(b, bytes);
          assert.deepEqual(
            outB.map((o) => Buffer.from(o.bytes).toString('hex')),
            outA.map((o) => Buffer.from(o.bytes).toString('hex')),
            `${f.s.name} flow ${k} (${stage}), packet ${packets}`,
          );
          f.observe(decoded(outA));
          packets++;
        }
      }
      assert.ok(packets >= 24 * 6 + 4 * 2, `${packets} packets compared`);
      assert.deepEqual(list(b), list(a), 'the same states after the rest of the traffic');
      consistent(a, 'exporter after');
      consistent(b, 'importer after');
      // Same counts per RS, by address.
      for (const s of TRANSFER_SERVICES) {
        const rsA = a.realServers.find((r) => r.addr === s.rip && r.port === s.rport)!;
        const rsB = b.realServers.find((r) => r.addr === s.rip && r.port === s.rport)!;
        assert.equal(rsB.activeConns, rsA.activeConns, `${s.name} active`);
        assert.equal(rsB.inactiveConns, rsA.inactiveConns, `${s.name} inactive`);
      }
    });
  }
});
