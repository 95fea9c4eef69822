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

import {
  RECORD_V1_SIZE,
  SNAPSHOT_HEADER_SIZE,
  SNAPSHOT_VERSION,
  decodeSnapshot,
  emptyRecord,
  recordOffset,
  writeHeader,
  writeRecord,
  type ConnRecord,
} from '../../src/engine/conn-record.js';
import { Engine } from '../../src/engine/engine.js';
import type { EngineOptions } from '../../src/engine/options.js';
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

/** A snapshot of hand-made records (valid for the transfer services). */
function snapshotOfRecords(records: ConnRecord[]): Uint8Array {
  const b = new Uint8Array(SNAPSHOT_HEADER_SIZE + records.length * RECORD_V1_SIZE);
  const dv = new DataView(b.buffer);
  writeHeader(dv, {
    version: SNAPSHOT_VERSION,
    recordSize: RECORD_V1_SIZE,
    count: records.length,
    engineClockMs: 0,
    isnClockOriginMs: 0,
    isnSecret: 1,
    pendingSkipped: 0,
  });
  records.forEach((r, k) => writeRecord(dv, recordOffset(k), r));
  return b;
}

const PLAIN = TRANSFER_SERVICES[0]!;
const ESTABLISHED = TCP_STATE_NAMES.indexOf('ESTABLISHED');
const TIME_WAIT = TCP_STATE_NAMES.indexOf('TIME_WAIT');

function rec(patch: Partial<ConnRecord>): ConnRecord {
  return {
    ...emptyRecord(),
    state: ESTABLISHED,
    cip: 0xcb007107,
    cport: 40000,
    vip: PLAIN.vip,
    vport: PLAIN.vport,
    lip: PLAIN.lips[0]!,
    lport: 6000,
    rip: PLAIN.rip,
    rport: PLAIN.rport,
    remainingMs: 90_000,
    ...patch,
  };
}

function drainAll(e: Engine): void {
  drainOutput(e);
}

describe('import: what the configuration cannot hold is skipped, by reason', () => {
  it('expired, no service, no RS, no LIP, port out of range, already there, port taken, table full', () => {
    const e = importingEngine({ maxConnections: 9 });
    const records = [
      rec({ cport: 1, lport: 6001 }), // imported
      rec({ cport: 2, lport: 6002, remainingMs: 1000 }), // elapsed 1000: expired
      rec({ cport: 3, lport: 6003, remainingMs: 1001 }), // 1 ms left: imported
      rec({ cport: 4, lport: 6004, vport: 99 }), // no_service
      rec({ cport: 5, lport: 6005, rip: 0x0a0a0909 }), // no_real_server
      rec({ cport: 6, lport: 6006, rport: 8081 }), // no_real_server (the address with another port)
      rec({ cport: 7, lport: 6007, lip: 0x0a0a0377 }), // no_local_address
      rec({ cport: 8, lport: 4999 }), // port_out_of_range (range 5000-65000)
      rec({ cport: 1, lport: 6009 }), // exists (client tuple of the first)
      rec({ cport: 10, lport: 6001 }), // port_conflict (the first's LIP:lport toward the same RS)
      rec({ cport: 11, lport: 6001, lip: PLAIN.lips[1]! }), // imported: same port from another LIP
      rec({ cport: 12, lport: 6012, state: TIME_WAIT }), // imported
      rec({ cport: 13, lport: 6013 }), // imported
      rec({ cport: 14, lport: 6014 }), // imported
      rec({ cport: 15, lport: 6015 }), // imported
      rec({ cport: 16, lport: 6016 }), // imported
      rec({ cport: 17, lport: 6017 }), // imported: the 9th
      rec({ cport: 18, lport: 6018 }), // table_full
    ];
    const r = e.importConnections(snapshotOfRecords(records), 1000);
    assert.deepEqual(r, {
      imported: 9,
      skipped: 9,
      reasons: {
        expired: 1,
        no_service: 1,
        no_real_server: 2,
        no_local_address: 1,
        port_out_of_range: 1,
        exists: 1,
        port_conflict: 1,
        table_full: 1,
      },
    });
    consistent(e, 'after the skips');
    const rs = e.realServers.find((x) => x.addr === PLAIN.rip && x.port === PLAIN.rport)!;
    assert.equal(rs.activeConns, 8);
    assert.equal(rs.inactiveConns, 1, 'the TIME_WAIT one');
    // Importing the same snapshot again enters nothing twice.
    const again = importingEngine({ maxConnections: 100 });
    again.importConnections(snapshotOfRecords(records), 0);
    const second = again.importConnections(snapshotOfRecords(records), 0);
    assert.equal(second.imported, 0);
    consistent(again, 'imported twice');
  });

  it('a service deleted in the importer is no_service; an RS taken out of its service still takes its connections', () => {
    const e = importingEngine();
    e.deleteService(e.findService(PLAIN.vip, PLAIN.vport));
    assert.deepEqual(e.importConnections(snapshotOfRecords([rec({})]), 0).reasons, {
      no_service: 1,
    });
    const f = importingEngine();
    const svc = f.findService(PLAIN.vip, PLAIN.vport);
    const rsIdx = f.findRealServer(svc, PLAIN.rip, PLAIN.rport);
    f.removeRealServer(rsIdx);
    assert.equal(f.importConnections(snapshotOfRecords([rec({})]), 0).imported, 1);
    assert.equal(
      f.realServers[rsIdx]!.activeConns,
      1,
      'counted on the removed RS, which it drains from',
    );
    consistent(f, 'removed RS');
  });

  it('a port a live connection of the importer holds is a conflict; the live one is untouched', () => {
    const b = importingEngine();
    // Round robin: the importer's extra RS takes the first SYN, PLAIN.rip the second.
    const flows = [0, 1].map((k) => new Flow(PLAIN, 0xcb0071aa + k, 50000, 1000, 2000));
    for (const f of flows) step(b, f, f.client(TCP_SYN, undefined, LINUX_SYN_OPTS));
    const f = flows[1]!;
    assert.ok(f.lport > 0, 'the second went to PLAIN.rip');
    const r = b.importConnections(snapshotOfRecords([rec({ lip: f.lip, lport: f.lport })]), 0);
    assert.deepEqual(r.reasons, { port_conflict: 1 });
    assert.equal(b.table.count, 2);
    consistent(b, 'after the conflict');
  });

  it('one RS address:port in two services: the same LIP:lport toward it is one reply tuple, so a conflict', () => {
    const e = new Engine({ maxConnections: 16 });
    for (const vport of [80, 81]) {
      e.addService({
        vip: PLAIN.vip,
        vport,
        scheduler: 'rr',
        laddrs: [PLAIN.lips[0]!],
        realServers: [{ addr: PLAIN.rip, port: PLAIN.rport, weight: 1 }],
      });
    }
    // Two RS entries (one per service), so two (LIP, RS) pairs: the port claim alone allows both.
    assert.equal(e.realServers.length, 2);
    const r = e.importConnections(
      snapshotOfRecords([rec({ cport: 1, vport: 80 }), rec({ cport: 2, vport: 81 })]),
      0,
    );
    assert.deepEqual(r, { imported: 1, skipped: 1, reasons: { port_conflict: 1 } });
    consistent(e, 'shared RS');
  });

  it('new connections after an import never take an imported port, even where the allocator would start', () => {
    const probe = importingEngine();
    const svc = probe.findService(PLAIN.vip, PLAIN.vport);
    const rsIdx = probe.findRealServer(svc, PLAIN.rip, PLAIN.rport);
    const lipIdx = probe.laddrs.indexOf(PLAIN.lips[0]!);
    const start = probe.laddrs.startingPort(lipIdx, rsIdx);
    // Claim the ports the pair would hand out first (both LIPs), then open connections.
    const records: ConnRecord[] = [];
    for (let k = 0; k < 20; k++) {
      for (const lip of PLAIN.lips) {
        const li = probe.laddrs.indexOf(lip);
        records.push(
          rec({
            cport: 100 + records.length,
            lip,
            lport: probe.laddrs.startingPort(li, rsIdx) + k,
          }),
        );
      }
    }
    assert.ok(records.some((r) => r.lport === start));
    const b = importingEngine();
    assert.equal(b.importConnections(snapshotOfRecords(records), 0).imported, 40);
    const taken = new Set(records.map((r) => `${r.lip}:${r.lport}`));
    // The importer's service has two RSs (the extra first): every other SYN goes to PLAIN.rip.
    let toPlain = 0;
    for (let k = 0; k < 60; k++) {
      const f = new Flow(PLAIN, 0xcb007200 + k, 30000 + k, 5000 * k, 0);
      const out = step(b, f, f.client(TCP_SYN, undefined, LINUX_SYN_OPTS));
      assert.equal(out.length, 1);
      if (out[0]!.dst !== PLAIN.rip) continue;
      toPlain++;
      assert.ok(!taken.has(`${f.lip}:${f.lport}`), `new connection ${k} took imported ${f.lport}`);
    }
    assert.equal(toPlain, 30);
    // Imported entries are counted apart from those made here; together they make up the table.
    assert.equal(b.counter('conns_imported'), 40);
    assert.equal(b.counter('conns_created'), 60);
    assert.equal(
      b.counter('conns_created') + b.counter('conns_imported') - b.counter('conns_released'),
      b.table.count,
    );
    consistent(b, 'imported and new');
  });
});

describe('import: deadlines', () => {
  it('an entry keeps its time left less the elapsed time, then expires as any other (an established one with its RSTs)', () => {
    const a = exportingEngine();
    a.tick(100);
    const f = new Flow(PLAIN, 0xcb0071bb, 51000, 1000, 2000);
    drive(a, f, 'data', 0);
    a.tick(2100);
    drainAll(a);
    const left = a.listConnections()[0]!.expiresInMs;
    assert.equal(left, 90_000 - 2000, 'ESTABLISHED, 2 s since the last packet');
    const b = importingEngine();
    b.tick(250);
    assert.equal(b.importConnections(a.exportConnections(), 30_000).imported, 1);
    assert.equal(b.listConnections()[0]!.expiresInMs, left - 30_000);
    b.tick(250 + left - 30_000 - 1);
    assert.equal(b.table.count, 1, 'still there 1 ms before');
    b.tick(250 + left - 30_000 + 200);
    assert.equal(b.table.count, 0, 'gone once the wheel passes its deadline');
    const rsts = drainOutput(b).map((o) => decodeSegment(o.bytes));
    assert.equal(rsts.length, 2);
    assert.ok(rsts.every((d) => (d.flags & TCP_RST) !== 0));
    assert.deepEqual(rsts.map((d) => d.dst).sort(), [f.cip, f.s.rip].sort());
    // The RSTs carry the sequence numbers the exporter would have used.
    a.tick(2100 + left + 200);
    const fromA = drainOutput(a).map((o) => Buffer.from(o.bytes).toString('hex'));
    assert.deepEqual(
      rsts.map((d) => Buffer.from(d.bytes).toString('hex')),
      fromA,
      'the same two RSTs',
    );
    consistent(b, 'after expiry');
    assert.equal(b.counter('conns_expired'), 1);
  });
});

describe('import: SYNPROXY connections into a service without it', () => {
  it('keep their second sequence space: the importer’s table takes the SYNPROXY fields on', () => {
    const SP = TRANSFER_SERVICES[3]!;
    const a = exportingEngine();
    a.tick(100);
    const f = new Flow(SP, 0xcb0071ee, 54000, 9000, 0x7ffffff0);
    drive(a, f, 'data', 0);
    drainAll(a);
    const b = new Engine({ maxConnections: 64 });
    b.addService({
      vip: SP.vip,
      vport: SP.vport,
      scheduler: 'rr',
      laddrs: SP.lips,
      realServers: [{ addr: SP.rip, port: SP.rport, weight: 1 }],
    });
    assert.equal(b.table.synproxyEnabled, false, 'no SYNPROXY service, no SYNPROXY arrays yet');
    assert.equal(b.importConnections(a.exportConnections(), 0).imported, 1);
    assert.equal(b.table.synproxyEnabled, true);
    for (const make of continuation(f, 'data', 0)) {
      const bytes = make();
      const outA = feedRaw(a, bytes);
      const outB = feedRaw(b, bytes);
      assert.deepEqual(
        outB.map((o) => Buffer.from(o.bytes).toString('hex')),
        outA.map((o) => Buffer.from(o.bytes).toString('hex')),
      );
      f.observe(decoded(outA));
    }
    consistent(b, 'SYNPROXY entry in a plain service');
  });
});

describe('SYNPROXY connections still opening', () => {
  const SP = TRANSFER_SERVICES[3]!;

  /** A SYNPROXY flow whose cookie ACK came (held) and whose RS leg is opening. */
  function opening(e: Engine): Flow {
    const f = new Flow(SP, 0xcb0071cc, 52000, 3000, 4000);
    step(e, f, f.client(TCP_SYN, undefined, LINUX_SYN_OPTS));
    step(e, f, f.client(TCP_ACK | TCP_PSH, pattern(120, 5)));
    assert.ok(f.lport > 0, 'the LB sent its SYN to the RS');
    return f;
  }

  it('are left out of the snapshot and counted in its header', () => {
    const a = exportingEngine();
    a.tick(100);
    opening(a);
    const done = new Flow(PLAIN, 0xcb0071cd, 52001, 5000, 6000);
    drive(a, done, 'established', 0);
    const { header, records } = decodeSnapshot(a.exportConnections());
    assert.equal(header.pendingSkipped, 1);
    assert.equal(header.count, 1);
    assert.equal(records[0]!.cport, 52001);
  });

  it('after a restart with new cookie keys (production: random per process) the client’s retransmission gets a RST', () => {
    const a = exportingEngine();
    a.tick(100);
    const f = opening(a);
    const lport = f.lport;
    const b = importingEngine({ synproxySecret: 78 });
    b.tick(100);
    b.importConnections(a.exportConnections(), 0);
    // The client retransmits the data nobody acked: its ack is a cookie of the old keys.
    f.cseq = (f.cseq - 120) >>> 0;
    const out = step(b, f, f.client(TCP_ACK | TCP_PSH, pattern(120, 5)));
    assert.equal(out.length, 1);
    assert.equal(out[0]!.flags & TCP_RST, TCP_RST);
    assert.equal(out[0]!.dst, f.cip);
    assert.equal(b.counter('synproxy_cookie_invalid'), 1);
    // The RS's late SYN+ACK to the old LIP:port finds no connection: the LIP answers it with a
    // RST (unknown_flow_reset), so the RS drops its half-open connection at once.
    f.lport = lport;
    const late = step(b, f, f.rs(TCP_SYN | TCP_ACK, undefined, RS_SYNACK_OPTS[0]));
    assert.equal(late.length, 1);
    assert.equal(late[0]!.flags & TCP_RST, TCP_RST);
    assert.equal(late[0]!.dst, f.s.rip);
    assert.equal(b.counter('unknown_flow_rst_sent'), 1);
    assert.equal(b.table.count, 0);
  });

  it('with the cookie keys kept (the same synproxySecret) the retransmission opens the RS leg again', () => {
    const a = exportingEngine();
    a.tick(100);
    const f = opening(a);
    const b = importingEngine();
    b.tick(100);
    b.importConnections(a.exportConnections(), 0);
    f.cseq = (f.cseq - 120) >>> 0;
    f.lport = -1;
    const out = step(b, f, f.client(TCP_ACK | TCP_PSH, pattern(120, 5)));
    assert.equal(out.length, 1);
    assert.equal(out[0]!.flags, TCP_SYN, 'a new SYN toward an RS');
    assert.equal(b.counter('synproxy_cookie_valid'), 1);
  });
});

describe('a restarted engine: ISNs and ports', () => {
  const ORIGIN = 1_765_000_000_000;

  /** The LB→RS ISN and port of a plain SYN from a fixed client at engine time `at`. */
  function firstSyn(opts: Partial<EngineOptions>, at: number): { isn: number; lport: number } {
    const e = exportingEngine(opts);
    e.tick(at);
    const f = new Flow(PLAIN, 0xcb0071dd, 53000, 777, 0);
    const out = step(e, f, f.client(TCP_SYN, undefined, LINUX_SYN_OPTS));
    assert.equal(out.length, 1);
    return { isn: out[0]!.seq, lport: out[0]!.sport };
  }

  it('same secret, 1 s later by the wall clock: the ISN for the same tuple is 250 000 ahead (RFC 6528), not behind', () => {
    const secret = 0x13572468;
    const before = firstSyn({ isnSecret: secret, isnClockOriginMs: ORIGIN, portSeed: 9 }, 5000);
    // The new process starts 1 s after the old one's SYN: its engine clock is at 0 again.
    const after = firstSyn({ isnSecret: secret, isnClockOriginMs: ORIGIN + 6000, portSeed: 9 }, 0);
    assert.equal(after.lport, before.lport, 'the same tuple (same port seed)');
    const ahead = (after.isn - before.isn) >>> 0;
    assert.equal(ahead, 250_000);
    assert.ok(ahead > 0 && ahead < 2 ** 31, 'later in sequence space');
  });

  it('without the wall-clock origin, the restarted engine would go back 5 s worth of ISN (the bug this fixes)', () => {
    const before = firstSyn({ isnSecret: 5, portSeed: 9 }, 5000);
    const after = firstSyn({ isnSecret: 5, portSeed: 9 }, 0);
    assert.equal((after.isn - before.isn) | 0, -1_250_000);
  });

  it('for any secret and any restart gap from 1 ms to 2 h the ISN moves ahead by the gap', () => {
    for (let k = 0; k < 200; k++) {
      const secret = (k * 0x9e3779b1) >>> 0;
      const gap = 1 + ((k * 7919 * 1009) % 7_200_000);
      const at = (k * 131) % 100_000;
      const before = firstSyn({ isnSecret: secret, isnClockOriginMs: ORIGIN, portSeed: 3 }, at);
      const after = firstSyn(
        { isnSecret: secret, isnClockOriginMs: ORIGIN + at + gap, portSeed: 3 },
        0,
      );
      const ahead = (after.isn - before.isn) >>> 0;
      assert.equal(ahead, (gap * 250) >>> 0, `secret ${secret}, gap ${gap} ms`);
      assert.ok(ahead > 0 && ahead < 2 ** 31);
    }
  });

  it('the first port comes from portSeed, not from the ISN secret', () => {
    const a = firstSyn({ isnSecret: 1, portSeed: 0x1111 }, 0);
    const b = firstSyn({ isnSecret: 2, portSeed: 0x1111 }, 0);
    assert.equal(a.lport, b.lport, 'same port seed, same start whatever the secret');
    const starts = new Set<number>();
    for (let seed = 0; seed < 50; seed++)
      starts.add(firstSyn({ isnSecret: 1, portSeed: seed * 0x01000193 }, 0).lport);
    assert.ok(starts.size >= 48, `50 seeds, ${starts.size} first ports`);
  });
});
