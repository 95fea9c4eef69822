import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { opt, type TcpOption } from '../../src/wire/tcp-options.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../src/wire/tcp.js';
import { toaV4Option } from '../../src/wire/toa.js';
import { LinuxRs } from '../../src/lab/sim/linux-rs.js';
import { ManualIo } from '../../src/lab/sim/manual-io.js';
import { buildRequest } from '../../src/lab/sim/pattern.js';
import {
  buildTcp,
  linuxSynOptions,
  type Endpoint,
  type Segment,
} from '../../src/lab/sim/segment.js';

const RS: Endpoint = { addr: parseIpv4('10.10.2.2'), port: 80 };
const PEER: Endpoint = { addr: parseIpv4('10.10.3.1'), port: 5001 };
const CLIENT_ISN = 1000;

/** One handshake driven by hand against a LinuxRs. */
class Handshake {
  readonly io = new ManualIo();
  readonly rs: LinuxRs;
  synAck!: Segment;

  constructor(opts: { deferAccept?: boolean } = {}) {
    this.rs = new LinuxRs(this.io, {
      addr: RS.addr,
      port: RS.port,
      seed: 7,
      deferAccept: opts.deferAccept,
    });
  }

  get serverIsn(): number {
    return this.synAck.seq;
  }

  syn(options: TcpOption[] = linuxSynOptions(1460, 1, 7)): Segment[] {
    const out = this.send({ seq: CLIENT_ISN, ack: 0, flags: TCP_SYN, options });
    const sa = out.find((s) => s.flags === (TCP_SYN | TCP_ACK));
    if (sa) this.synAck = sa;
    return out;
  }

  send(f: {
    seq?: number;
    ack?: number;
    flags: number;
    payload?: Uint8Array;
    options?: TcpOption[];
    rawOptions?: Uint8Array;
  }): Segment[] {
    this.rs.receive(
      buildTcp({
        src: PEER.addr,
        dst: RS.addr,
        sport: PEER.port,
        dport: RS.port,
        seq: f.seq ?? CLIENT_ISN + 1,
        ack: f.ack ?? (this.synAck ? this.synAck.seq + 1 : 0),
        flags: f.flags,
        window: 502,
        options: f.options,
        rawOptions: f.rawOptions,
        payload: f.payload,
      }),
    );
    return this.io.takeSegments();
  }
}

const request = (n = 300): Uint8Array =>
  buildRequest({ addr: parseIpv4('203.0.113.9'), port: 40000 }, n);

test('SYN+ACK: Linux option order, echoing only what the SYN offered', () => {
  const withTs = new Handshake();
  withTs.syn();
  const o = withTs.synAck.options;
  assert.deepEqual([...o.subarray(0, 6)], [2, 4, 0x05, 0xb4, 4, 2]);
  assert.deepEqual([o[6], o[7]], [8, 10]);
  assert.deepEqual([...o.subarray(16)], [1, 3, 3, 7]);
  assert.equal(withTs.synAck.window, 65535);

  const bare = new Handshake();
  bare.syn([opt.mss(1400)]);
  assert.deepEqual([...bare.synAck.options], [2, 4, 0x05, 0xb4]);
  const noTs = new Handshake();
  noTs.syn(linuxSynOptions(1400, null, 7));
  assert.deepEqual([...noTs.synAck.options], [2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7]);
});

test('FIN+ACK+PSH+data completes the handshake', () => {
  const h = new Handshake();
  h.syn();
  const out = h.send({ flags: TCP_FIN | TCP_PSH | TCP_ACK, payload: request() });
  assert.equal(h.rs.records.length, 1);
  const r = h.rs.records[0]!;
  assert.equal(r.concludingFlags, TCP_FIN | TCP_PSH | TCP_ACK);
  assert.equal(r.concludingLen, request().length);
  assert.equal(r.requestIntact, true);
  assert.ok(
    out.some((s) => s.payload.length > 0),
    'the server answered',
  );
  assert.ok(
    out.some((s) => s.flags & TCP_FIN),
    'and closed',
  );
});

test('data beyond rcv_nxt inside the window completes it (it overtook the bare ACK)', () => {
  const h = new Handshake();
  h.syn();
  const req = request();
  h.send({ seq: CLIENT_ISN + 1 + 100, flags: TCP_PSH | TCP_ACK, payload: req.subarray(100) });
  assert.equal(h.rs.records.length, 1);
  assert.equal(h.rs.records[0]!.concludingLen, req.length - 100);
  assert.equal(h.rs.records[0]!.requestIntact, false);
  h.send({ flags: TCP_ACK, payload: req.subarray(0, 100) });
  assert.equal(h.rs.records[0]!.requestIntact, true);
});

test('an ACK of the wrong ISN gets a RST and creates nothing; the request survives', () => {
  const h = new Handshake();
  h.syn();
  const bad = (h.serverIsn + 2) >>> 0;
  const out = h.send({ ack: bad, flags: TCP_ACK });
  assert.equal(out.length, 1);
  assert.equal(out[0]!.flags, TCP_RST);
  assert.equal(out[0]!.seq, bad);
  assert.equal(h.rs.records.length, 0);
  assert.equal(h.rs.counters.badAckRst, 1);
  h.send({ flags: TCP_ACK });
  assert.equal(h.rs.records.length, 1);
});

test('RST and SYN never create the connection', () => {
  const rst = new Handshake();
  rst.syn();
  assert.deepEqual(rst.send({ flags: TCP_RST | TCP_ACK }), []);
  assert.equal(rst.rs.counters.requestsDropped, 1);
  // The request is gone: a correct ACK now meets the listener, which resets it.
  const after = rst.send({ flags: TCP_ACK });
  assert.equal(after[0]!.flags, TCP_RST);
  assert.equal(rst.rs.records.length, 0);

  const retransmit = new Handshake();
  retransmit.syn();
  const first = retransmit.serverIsn;
  const again = retransmit.send({
    seq: CLIENT_ISN,
    ack: 0,
    flags: TCP_SYN,
    options: linuxSynOptions(1460, 2, 7),
  });
  assert.equal(again.length, 1);
  assert.equal(again[0]!.flags, TCP_SYN | TCP_ACK);
  assert.equal(again[0]!.seq, first, 'same request, same ISN');

  const stray = new Handshake();
  stray.syn();
  const out = stray.send({ flags: TCP_SYN | TCP_ACK });
  assert.equal(out[0]!.flags & TCP_RST, TCP_RST);
  assert.equal(stray.rs.records.length, 0);
  assert.equal(stray.rs.counters.requestsDropped, 1);
});

test('segments outside the window are answered with an ACK and dropped', () => {
  const h = new Handshake();
  h.syn();
  const out = h.send({ seq: CLIENT_ISN - 500, flags: TCP_ACK, payload: new Uint8Array(100) });
  assert.equal(out.length, 1);
  assert.equal(out[0]!.flags, TCP_ACK);
  assert.equal(h.rs.records.length, 0);
  assert.equal(h.rs.counters.outOfWindow, 1);
});

test('TCP_DEFER_ACCEPT drops the bare ACK; data or a FIN completes the handshake', () => {
  const h = new Handshake({ deferAccept: true });
  h.syn();
  assert.deepEqual(h.send({ flags: TCP_ACK }), []);
  assert.equal(h.rs.records.length, 0);
  assert.equal(h.rs.counters.deferDropped, 1);
  // Acked and quiet: no SYN+ACK retransmission while waiting for data.
  h.io.advance(1500);
  assert.equal(h.io.takeSegments().length, 0);
  h.send({ flags: TCP_PSH | TCP_ACK, payload: request() });
  assert.equal(h.rs.records.length, 1);
  assert.equal(h.rs.records[0]!.concludingLen, request().length);

  const fin = new Handshake({ deferAccept: true });
  fin.syn();
  fin.send({ flags: TCP_FIN | TCP_ACK });
  assert.equal(fin.rs.records.length, 1);
  assert.equal(fin.rs.records[0]!.concludingFlags, TCP_FIN | TCP_ACK);
  assert.equal(fin.rs.records[0]!.concludingLen, 0);
});

test('toa emulation: read on the concluding segment only, first TOA wins', () => {
  const h = new Handshake();
  h.syn();
  h.send({
    flags: TCP_ACK,
    options: [toaV4Option(1111, parseIpv4('1.2.3.4')), toaV4Option(2222, parseIpv4('5.6.7.8'))],
  });
  const r = h.rs.records[0]!;
  assert.equal(r.toaFound, true);
  assert.equal(r.seenAddr, parseIpv4('1.2.3.4'));
  assert.equal(r.seenPort, 1111);
  assert.deepEqual(r.ipPeer, PEER);

  // A TOA on the SYN is never read; later segments are never read either.
  const synOnly = new Handshake();
  synOnly.syn([...linuxSynOptions(1460, 1, 7), toaV4Option(1111, parseIpv4('1.2.3.4'))]);
  synOnly.send({ flags: TCP_ACK });
  synOnly.send({
    flags: TCP_PSH | TCP_ACK,
    payload: request(),
    options: [toaV4Option(1, parseIpv4('9.9.9.9'))],
  });
  assert.equal(synOnly.rs.records[0]!.toaFound, false);
  assert.equal(synOnly.rs.records[0]!.seenAddr, PEER.addr);
});

test('toa emulation: a malformed option ends parsing before a later TOA', () => {
  const h = new Handshake();
  h.syn();
  // kind 30 with length 1 is malformed; the TOA after it is never reached.
  const raw = Uint8Array.from([30, 1, 254, 8, 0x04, 0x57, 1, 2, 3, 4, 0, 0]);
  h.send({ flags: TCP_ACK, rawOptions: raw });
  const r = h.rs.records[0]!;
  assert.equal(r.toaFound, false);
  assert.equal(r.seenAddr, PEER.addr);
  assert.equal(r.seenPort, PEER.port);
});

test('TIME_WAIT refuses a reused tuple whose SYN is not beyond the old rcv_nxt', () => {
  const h = new Handshake();
  h.syn();
  h.send({ flags: TCP_ACK });
  const req = request();
  const resp = h.send({ flags: TCP_PSH | TCP_ACK, payload: req });
  const end = resp.reduce(
    (m, s) => Math.max(m, s.seq + s.payload.length + (s.flags & TCP_FIN ? 1 : 0)),
    0,
  );
  // Client acknowledges the response and FIN, then sends its own FIN: the RS closed first, so TIME_WAIT.
  h.send({ seq: CLIENT_ISN + 1 + req.length, ack: end, flags: TCP_FIN | TCP_ACK });
  assert.equal(h.rs.records[0]!.closed, 'normal');
  const old = h.send({ seq: CLIENT_ISN + 5, ack: 0, flags: TCP_SYN, options: [opt.mss(1460)] });
  assert.equal(old.length, 1);
  assert.equal(old[0]!.flags, TCP_ACK);
  assert.equal(h.rs.counters.timeWaitSynRejected, 1);
  const fresh = h.send({
    seq: CLIENT_ISN + 100_000,
    ack: 0,
    flags: TCP_SYN,
    options: [opt.mss(1460)],
  });
  assert.equal(fresh[0]!.flags, TCP_SYN | TCP_ACK);
});
