/**
 * The lab's verdict per connection when the RS capture is incomplete: a
 * connection the capture holds no concluding segment for, in a run whose
 * tcpdump reported kernel drops, is capture loss — not a disagreement with
 * the receiver (rs-app) and not a TOA failure (rs-capture: failed, "no
 * verdict"). Without drops, or with the counters unknown, the same gap
 * stays a disagreement or a wrongIp.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { ConnectionReport } from '../../src/doctor/analyze.js';
import type { RsRecordLine } from '../../src/lab/live/topology.js';
import {
  captureView,
  judge,
  type ClientOutcome,
  type LabSource,
} from '../../src/lab/live/verdict.js';

const CLIENT = '10.78.8.5:20000';
const LIP = '10.78.3.1:5000';
const RS = '10.78.2.11';

const client: ClientOutcome = {
  key: CLIENT,
  established: true,
  responseIntact: true,
  failure: null,
};

/** What the RS application reported: its peer (the client under the receiver, else the LIP). */
const record = (peer: string): RsRecordLine => ({
  rs: 'r1',
  port: 80,
  peer,
  key: CLIENT,
  intact: true,
  bytes: 300,
});

/** The doctor's report of the LIP's connection at the RS; `toa` on its concluding segment. */
function report(concluded: boolean, toa: string | null): ConnectionReport {
  const [address, port] = (toa ?? ':0').split(':');
  return {
    id: 1,
    family: 4,
    client: LIP,
    server: `${RS}:80`,
    firstPacket: 1,
    packets: 6,
    clientMss: 1460,
    serverMss: 1460,
    serverWindow: 64240,
    concluding: concluded
      ? {
          packet: 3,
          timestampUs: 0,
          flags: '.',
          payload: 0,
          ipLength: 60,
          optionBytes: 8,
          optionsMalformed: false,
          toa: toa
            ? { family: 4, kind: 254, address: address!, port: Number(port), endpoint: toa }
            : null,
          toaCount: toa ? 1 : 0,
        }
      : null,
    toaPackets: toa ? 1 : 0,
    deferredAcks: 0,
    verdict: concluded ? (toa ? 'toa' : 'miss') : 'no-syn',
    cause: null,
    spoofed: null,
    mtu: 1500,
    note: null,
  };
}

function run(
  source: LabSource,
  peer: string,
  captured: ConnectionReport[],
  droppedByKernel: number | null,
) {
  const v = judge([client], [record(peer)], captureView([captured], droppedByKernel), source);
  const c = v.connections[0]!;
  return {
    outcome: c.outcome,
    reason: c.reason,
    disagreements: v.disagreements,
    captureLoss: v.captureLoss,
  };
}

describe('lab verdicts with an incomplete RS capture', () => {
  it('rs-app: the capture agrees with the receiver: nothing to report', () => {
    assert.deepEqual(run('rs-app', CLIENT, [report(true, CLIENT)], 0), {
      outcome: 'realIp',
      reason: null,
      disagreements: 0,
      captureLoss: 0,
    });
  });

  it('rs-app: the capture lacks a connection the receiver rewrote, tcpdump dropped packets: capture loss', () => {
    assert.deepEqual(run('rs-app', CLIENT, [], 3), {
      outcome: 'realIp',
      reason: null,
      disagreements: 0,
      captureLoss: 1,
    });
    // Its handshake seen but not its concluding segment (the SYN lost): the same.
    assert.deepEqual(run('rs-app', CLIENT, [report(false, null)], 3).captureLoss, 1);
  });

  it('rs-app: the same gap with no drops, or counters unknown, stays a disagreement', () => {
    for (const dropped of [0, null])
      assert.deepEqual(
        run('rs-app', CLIENT, [], dropped),
        { outcome: 'realIp', reason: null, disagreements: 1, captureLoss: 0 },
        `dropped ${dropped}`,
      );
  });

  it('rs-app: a capture that holds the connection and contradicts the receiver is a disagreement, drops or not', () => {
    // The receiver left the LIP, the capture shows a TOA naming the client.
    assert.deepEqual(run('rs-app', LIP, [report(true, CLIENT)], 5), {
      outcome: 'wrongIp',
      reason: `the RS application saw ${LIP}`,
      disagreements: 1,
      captureLoss: 0,
    });
  });

  it('rs-capture: a handshake the capture lost is no verdict (failed), not a wrongIp', () => {
    const lost = {
      outcome: 'failed',
      reason: 'no verdict: the RS capture lost it (tcpdump: 4 packets dropped by kernel)',
      disagreements: 0,
      captureLoss: 1,
    };
    assert.deepEqual(run('rs-capture', LIP, [], 4), lost);
    assert.deepEqual(run('rs-capture', LIP, [report(false, null)], 4), lost);
  });

  it('rs-capture: without drops (or counters unknown) a missing handshake is still wrongIp', () => {
    for (const dropped of [0, null])
      assert.deepEqual(run('rs-capture', LIP, [], dropped), {
        outcome: 'wrongIp',
        reason: 'handshake not found in the capture',
        disagreements: 0,
        captureLoss: 0,
      });
  });

  it('rs-capture: what the capture did see is judged as before, drops or not', () => {
    assert.equal(run('rs-capture', LIP, [report(true, CLIENT)], 4).outcome, 'realIp');
    assert.deepEqual(run('rs-capture', LIP, [report(true, null)], 4), {
      outcome: 'wrongIp',
      reason: 'no TOA on the concluding segment (. 0)',
      disagreements: 0,
      captureLoss: 0,
    });
  });
});

describe('lab verdicts in families 6 and 64', () => {
  const CLIENT6 = '[fd00:78:8::5]:20000';
  const client6: ClientOutcome = { ...client, key: CLIENT6 };
  const rec = (peer: string, rs: string): RsRecordLine => ({ ...record(peer), rs, key: CLIENT6 });
  /** The doctor's report of an IPv6 LIP's connection at the IPv6 RS r2, without TOA. */
  const lip6Report: ConnectionReport = {
    ...report(true, null),
    family: 6,
    client: '[fd00:78:3::2]:5000',
    server: '[fd00:78:2::12]:80',
  };

  it('family 6: a LIP peer in brackets is found in the capture by its IPv6 tuple', () => {
    const v = judge(
      [client6],
      [rec('[fd00:78:3::2]:5000', 'r2')],
      captureView([[lip6Report]], 0),
      'rs-app',
      6,
    );
    const c = v.connections[0]!;
    assert.equal(c.outcome, 'wrongIp');
    assert.equal(c.rs, '[fd00:78:2::12]:80');
    assert.equal(c.captureToa, '', 'the capture shows the concluding segment, without TOA');
    assert.equal(c.concluding, '. 0');
    assert.equal(v.disagreements, 0);
  });

  it('family 64: the IPv6 client on an IPv4 RS, named by the receiver and by the 254/20 TOA', () => {
    const toa = { ...report(true, null), client: LIP, server: `${RS}:80` };
    toa.concluding = {
      ...toa.concluding!,
      toa: { family: 6, kind: 254, address: 'fd00:78:8::5', port: 20000, endpoint: CLIENT6 },
      toaCount: 1,
    };
    const v = judge([client6], [rec(CLIENT6, 'r1')], captureView([[toa]], 0), 'rs-app', 64);
    const c = v.connections[0]!;
    assert.equal(c.outcome, 'realIp');
    assert.equal(c.rs, '10.78.2.11:80');
    assert.equal(c.captureToa, CLIENT6);
    assert.equal(v.disagreements, 0);
  });
});
