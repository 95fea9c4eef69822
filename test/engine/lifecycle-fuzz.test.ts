/**
 * The connection life cycle under random interleavings: SYN, data, FIN, RST
 * and ACK from both ends of a few client tuples used over and over, the
 * clock moving and the timers running, real servers quiesced, restored,
 * removed and added back — plain and SYNPROXY services, several seeds.
 * After every step the table must be consistent: no entry past its
 * deadline, each RS's active/inactive counts equal to its entries, the LIP
 * ports in use equal to the entries holding them, conns_created −
 * conns_released equal to the table's size, every packet counted once, and
 * no new connection on a quiesced or removed RS.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CF_IN_USE } from '../../src/engine/conn-table.js';
import { C, DROP_COUNTERS } from '../../src/engine/counters.js';
import { Engine } from '../../src/engine/engine.js';
import { TcpState } from '../../src/engine/tcp-state.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../src/wire/tcp.js';
import { opt } from '../../src/wire/tcp-options.js';
import { decodeChecked, feedRaw } from '../support/engine-fixture.js';
import { buildSegment, pattern } from '../support/packets.js';
import type { Decoded } from '../support/decode.js';
import { rng } from '../support/rng.js';

const VIP = parseIpv4('192.0.2.100');
const LIP = parseIpv4('10.10.3.1');
const RIPS = [parseIpv4('10.10.2.2'), parseIpv4('10.10.2.3'), parseIpv4('10.10.2.4')];
const CIPS = [parseIpv4('203.0.113.7'), parseIpv4('198.51.100.9')];
const CPORTS = [40000, 40001, 40002];
const RPORT = 8080;

/** What each end of a client tuple knows: its own next seq, the peer's as it saw it. */
interface Tuple {
  cip: number;
  cport: number;
  cIsn: number;
  cNext: number;
  /** The LB's SYN+ACK under SYNPROXY: its ISN (the cookie). */
  cookie: number;
  /** The RS side of whatever connection the LB opened for it last. */
  rip: number;
  lport: number;
  lbIsn: number;
  rsIsn: number;
  rsNext: number;
}

function run(seed: number, synProxy: boolean, steps: number): void {
  const r = rng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const e = new Engine({
    toaPolicy: 'fullnat',
    maxConnections: 64,
    // Short timeouts so the clock runs through every one of them often.
    timeouts: {
      SYN_SENT: 1,
      SYN_RECV: 3,
      ESTABLISHED: 9,
      FIN_WAIT: 2,
      TIME_WAIT: 2,
      CLOSE: 1,
      CLOSE_WAIT: 2,
      LAST_ACK: 2,
    },
    synproxySynRtoMs: 300,
    unknownFlowResetBurst: 1_000_000,
  });
  e.addService({
    vip: VIP,
    vport: 80,
    scheduler: 'rr',
    laddrs: [LIP],
    realServers: RIPS.map((addr) => ({ addr, port: RPORT, weight: 1 })),
    synProxy,
  });

  const tuples: Tuple[] = [];
  for (const cip of CIPS) {
    for (const cport of CPORTS) {
      tuples.push({
        cip,
        cport,
        cIsn: 0,
        cNext: 0,
        cookie: 0,
        rip: 0,
        lport: 0,
        lbIsn: 0,
        rsIsn: 0,
        rsNext: 0,
      });
    }
  }
  let now = 0;
  const where = (step: number, what: string): string =>
    `seed ${seed}${synProxy ? ' synproxy' : ''}, step ${step} (${what})`;

  const entries = (): {
    i: number;
    cip: number;
    cport: number;
    rs: number;
    lport: number;
    state: number;
  }[] => {
    const t = e.table;
    const out = [];
    for (let i = 0; i < t.capacity; i++) {
      if ((t.flags[i]! & CF_IN_USE) === 0) continue;
      out.push({
        i,
        cip: t.cip[i]!,
        cport: t.cport[i]!,
        rs: t.rs[i]!,
        lport: t.lport[i]!,
        state: t.state[i]!,
      });
    }
    return out;
  };

  const seg = (
    src: number,
    dst: number,
    sport: number,
    dport: number,
    seq: number,
    ack: number,
    flags: number,
    len: number,
  ): Uint8Array =>
    buildSegment({
      src,
      dst,
      sport,
      dport,
      seq: seq >>> 0,
      ack: ack >>> 0,
      flags,
      payload: len > 0 ? pattern(len, seq & 0xff) : undefined,
      options: (flags & TCP_SYN) !== 0 ? [opt.mss(1460), opt.sackPermitted()] : undefined,
    });

  /** Feeds one packet; learns from what the LB sent (LB ISNs, lports, cookies). */
  const feedOne = (bytes: Uint8Array): Decoded[] => {
    const out = feedRaw(e, bytes).map(decodeChecked);
    for (const o of out) {
      if (o.flags === TCP_SYN && o.src === LIP) {
        // A SYN toward an RS: the LB opened (or resent) a connection for some tuple.
        const en = entries().find(
          (x) => x.lport === o.sport && e.realServers[x.rs]!.addr === o.dst,
        );
        const tu = en && tuples.find((x) => x.cip === en.cip && x.cport === en.cport);
        if (tu) {
          tu.rip = o.dst;
          tu.lport = o.sport;
          tu.lbIsn = o.seq;
        }
      }
      if (o.flags === (TCP_SYN | TCP_ACK) && o.src === VIP) {
        const tu = tuples.find((x) => x.cip === o.dst && x.cport === o.dport);
        if (tu) tu.cookie = o.seq;
      }
    }
    return out;
  };

  for (let step = 0; step < steps; step++) {
    const tu = pick(tuples);
    const x = r();
    const before = new Set(entries().map((en) => `${en.i}:${en.cip}:${en.cport}:${en.lport}`));
    const eligible = e.realServers.map((rs) => rs.member && rs.weight > 0);
    let what: string;
    /** SYNs the LB sent toward an RS in this step, by RS address. */
    let rsSyns: number[] = [];
    const flagsOf = (): number => {
      const y = r();
      return y < 0.45
        ? TCP_ACK | TCP_PSH
        : y < 0.7
          ? TCP_ACK
          : y < 0.88
            ? TCP_ACK | TCP_FIN
            : TCP_RST | TCP_ACK;
    };
    if (x < 0.16) {
      what = 'client SYN';
      tu.cIsn = (r() * 0x100000000) >>> 0;
      tu.cNext = (tu.cIsn + 1) >>> 0;
      rsSyns = synsToRs(feedOne(seg(tu.cip, VIP, tu.cport, 80, tu.cIsn, 0, TCP_SYN, 0)));
    } else if (x < 0.24 && synProxy) {
      what = 'client cookie ACK';
      rsSyns = synsToRs(
        feedOne(
          seg(tu.cip, VIP, tu.cport, 80, tu.cNext, tu.cookie + 1, TCP_ACK, r() < 0.5 ? 0 : 40),
        ),
      );
    } else if (x < 0.5) {
      const flags = flagsOf();
      what = `client ${flags}`;
      const len = (flags & TCP_PSH) !== 0 ? 1 + Math.floor(r() * 200) : 0;
      // Mostly the ack a real client would send; now and then a stale or random one.
      const rsAcked = synProxy ? tu.cookie + 1 + ((tu.rsNext - tu.rsIsn - 1) | 0) : tu.rsNext;
      const ack = r() < 0.85 ? rsAcked : (r() * 0x100000000) >>> 0;
      feedOne(seg(tu.cip, VIP, tu.cport, 80, tu.cNext, ack, flags, len));
      if ((flags & TCP_RST) === 0)
        tu.cNext = (tu.cNext + len + ((flags & TCP_FIN) !== 0 ? 1 : 0)) >>> 0;
    } else if (x < 0.58) {
      what = 'RS SYN+ACK';
      if (tu.lport !== 0) {
        tu.rsIsn = (r() * 0x100000000) >>> 0;
        tu.rsNext = (tu.rsIsn + 1) >>> 0;
        feedOne(seg(tu.rip, LIP, RPORT, tu.lport, tu.rsIsn, tu.lbIsn + 1, TCP_SYN | TCP_ACK, 0));
      }
    } else if (x < 0.8) {
      const flags = flagsOf();
      what = `RS ${flags}`;
      if (tu.lport !== 0) {
        const len = (flags & TCP_PSH) !== 0 ? 1 + Math.floor(r() * 300) : 0;
        // The ack of everything the client sent, as the RS sees it (the LB's ISN matches the
        // client's ISN, or for SYNPROXY its cookie-ACK seq − 1).
        const clientAcked = (tu.lbIsn + ((tu.cNext - tu.cIsn) | 0)) >>> 0;
        const ack = r() < 0.85 ? clientAcked : (r() * 0x100000000) >>> 0;
        feedOne(seg(tu.rip, LIP, RPORT, tu.lport, tu.rsNext, ack, flags, len));
        if ((flags & TCP_RST) === 0)
          tu.rsNext = (tu.rsNext + len + ((flags & TCP_FIN) !== 0 ? 1 : 0)) >>> 0;
      }
    } else if (x < 0.93) {
      now += Math.floor(r() * 1500);
      what = `tick ${now}`;
      e.tick(now);
      for (const o of feedRawDrain(e)) void o;
    } else if (x < 0.97) {
      const rs = pick(e.realServers);
      if (rs.member) {
        const w = rs.weight > 0 ? 0 : 1;
        what = `weight ${w} on RS ${rs.index}`;
        e.setWeight(rs.index, w);
      } else {
        what = `RS ${rs.index} added back`;
        e.addRealServer(0, { addr: rs.addr, port: rs.port, weight: 1 });
      }
    } else {
      const rs = pick(e.realServers);
      what = `RS ${rs.index} removed`;
      if (rs.member) e.removeRealServer(rs.index);
    }

    // ---- the invariants ----
    const w = where(step, what);
    const es = entries();
    const t = e.table;
    assert.equal(es.length, t.count, w);
    for (const en of es) {
      assert.ok(
        t.expires[en.i]! > now,
        `${w}: entry ${en.i} past its deadline (state ${en.state}, deadline ${t.expires[en.i]}, slot ${(t as unknown as { timerSlot: Int32Array }).timerSlot[en.i]})`,
      );
    }
    for (const rs of e.realServers) {
      const mine = es.filter((en) => en.rs === rs.index);
      const active = mine.filter((en) => en.state === TcpState.Established).length;
      assert.equal(rs.activeConns, active, `${w}: RS ${rs.index} active`);
      assert.equal(rs.inactiveConns, mine.length - active, `${w}: RS ${rs.index} inactive`);
      assert.equal(
        e.laddrs.portsInUse(0, rs.index),
        mine.length,
        `${w}: LIP ports in use toward RS ${rs.index}`,
      );
    }
    const ports = new Set(es.map((en) => `${en.rs}:${en.lport}`));
    assert.equal(ports.size, es.length, `${w}: a LIP port held twice toward one RS`);
    assert.equal(
      e.counters[C.conns_created]! - e.counters[C.conns_released]!,
      t.count,
      `${w}: created − released`,
    );
    let accounted = e.counters[C.forwarded_packets]! + e.heldPackets + e.heldFragments;
    for (const d of DROP_COUNTERS) accounted += e.counters[C[d]]!;
    assert.equal(accounted, e.counters[C.rx_packets], `${w}: every packet counted once`);
    // A client's SYN (or SYNPROXY's cookie ACK) never reaches a quiesced or removed RS, be it
    // a new entry or an old one the SYN would otherwise have ridden.
    for (const rip of rsSyns) {
      const rs = e.realServers.find((x) => x.addr === rip)!;
      assert.ok(eligible[rs.index], `${w}: a SYN sent to quiesced or removed RS ${rs.index}`);
    }
    for (const en of es) {
      if (before.has(`${en.i}:${en.cip}:${en.cport}:${en.lport}`)) continue;
      assert.ok(eligible[en.rs], `${w}: a new connection on quiesced or removed RS ${en.rs}`);
    }
  }
  // The run went through what it is meant to test.
  const c = (n: keyof typeof C): number => e.counters[C[n]]!;
  assert.ok(c('conns_reused_closing') > 0, `seed ${seed}: no tuple reuse`);
  assert.ok(c('conns_rescheduled') > 0, `seed ${seed}: no rescheduling`);
  assert.ok(c('conns_expired_nodest') > 0, `seed ${seed}: no removed-RS expiry`);
  assert.ok(c('conns_expired') > 0, `seed ${seed}: nothing expired`);
  assert.ok(c('unknown_flow_rst_sent') > 0, `seed ${seed}: no unknown-flow RST`);
}

/** The RS addresses of the SYNs among what the LB sent. */
function synsToRs(out: Decoded[]): number[] {
  return out.filter((o) => o.flags === TCP_SYN && o.src === LIP).map((o) => o.dst);
}

/** What the timers sent, checked and given back. */
function feedRawDrain(e: Engine): Decoded[] {
  const out: Decoded[] = [];
  for (let i = 0; i < e.outCount; i++) {
    const q = e.out[i]!;
    out.push(decodeChecked({ bytes: q.view().slice(), gso: q.gsoSize }));
    e.pool.give(q);
  }
  e.clearOutput();
  return out;
}

for (const synProxy of [false, true]) {
  for (const seed of [1, 2, 3]) {
    test(`random close orders and tuple reuse, ${synProxy ? 'SYNPROXY' : 'plain'}, seed ${seed}: the table stays consistent`, () => {
      run(seed, synProxy, 20_000);
    });
  }
}
