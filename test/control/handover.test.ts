/**
 * Both sides of a handover through the LoadBalancer, on in-memory devices
 * (a fake host): the old process drains its queue before detaching it,
 * leaves device and routes, and saves the table; the new one imports it and
 * goes on forwarding the same connection byte for byte; a save that fails
 * puts the old one back to work; missing and corrupt files start empty. And
 * what a checkpoint of 100k connections costs.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';

import { LoadBalancer } from '../../src/control/lb.js';
import { createLogger, type Logger } from '../../src/control/log.js';
import { Checkpointer } from '../../src/control/restart/checkpoint.js';
import { handOver, resume } from '../../src/control/restart/handover.js';
import { stateFilePath } from '../../src/control/restart/state-file.js';
import { Engine } from '../../src/engine/engine.js';
import type { HostNetwork } from '../../src/io/host.js';
import { MemoryDevice } from '../../src/io/memory-device.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { TCP_ACK, TCP_PSH, TCP_SYN } from '../../src/wire/tcp.js';
import { decodeSegment } from '../support/decode.js';
import { buildSegment } from '../support/packets.js';

const dir = mkdtempSync(join(tmpdir(), 'fullnat-handover-'));
/** Every LB a test makes: stopped at the end even when a test fails halfway, so no timer keeps the run alive. */
const made: LoadBalancer[] = [];
after(() => {
  for (const lb of made) lb.stop();
  rmSync(dir, { recursive: true, force: true });
});

const CIP = parseIpv4('203.0.113.7');
const VIP = parseIpv4('10.10.1.100');
const LIP = parseIpv4('10.10.3.1');
const RIP = parseIpv4('10.10.2.2');

function configFile(name: string): string {
  const file = join(dir, `${name}.conf`);
  writeFileSync(
    file,
    `fullnat_defs {
    interface fnat9
    state_dir ${dir}/${name}
    handover on
}
local_address_group g1 {
    10.10.3.1
}
virtual_server 10.10.1.100 80 {
    laddr_group_name g1
    real_server 10.10.2.2 80 {
        weight 1
    }
}
`,
  );
  return file;
}

function track(lb: LoadBalancer): LoadBalancer {
  made.push(lb);
  return lb;
}

interface Fake {
  host: HostNetwork;
  dev: MemoryDevice;
  routes: Set<string>;
  deleted: string[];
}

function fakeHost(): Fake {
  const dev = new MemoryDevice();
  const routes = new Set<string>();
  const deleted: string[] = [];
  const host: HostNetwork = {
    openDevice: (_n, _m, _o, _napi, persist) => {
      dev.setPersist(persist ?? false);
      return dev;
    },
    addRoute: (p) => void routes.add(p),
    delRoute: (p) => {
      routes.delete(p);
      deleted.push(p);
    },
    sysctl: () => {},
  };
  return { host, dev, routes, deleted };
}

function logger(): { log: Logger; lines: () => Record<string, unknown>[] } {
  let text = '';
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  const log = createLogger({ level: 'info', destination });
  return {
    log,
    lines: () =>
      text
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const client = (seq: number, ack: number, flags: number, data = ''): Uint8Array =>
  buildSegment({
    src: CIP,
    dst: VIP,
    sport: 40000,
    dport: 80,
    seq,
    ack,
    flags,
    payload: new TextEncoder().encode(data),
  });

/** Opens a connection through `lb` on `dev`; returns the LB's lport and the RS-side ISN delta. */
function connect(dev: MemoryDevice): { lport: number } {
  dev.inject(client(1000, 0, TCP_SYN));
  const syn = decodeSegment(dev.written.shift()!);
  assert.equal(syn.dst, RIP);
  dev.inject(
    buildSegment({
      src: RIP,
      dst: LIP,
      sport: 80,
      dport: syn.sport,
      seq: 5000,
      ack: syn.seq + 1,
      flags: TCP_SYN | TCP_ACK,
    }),
  );
  assert.equal(decodeSegment(dev.written.shift()!).dst, CIP);
  dev.inject(client(1001, 5001, TCP_ACK));
  dev.written.length = 0;
  return { lport: syn.sport };
}

describe('handover through the LoadBalancer', () => {
  it('old side drains, detaches, keeps device and routes; new side forwards the same connection', () => {
    const file = configFile('a');
    const a = fakeHost();
    const la = logger();
    const old = track(new LoadBalancer(file, { host: a.host, log: la.log, healthChecks: false }));
    old.start();
    assert.equal(a.dev.persistent, true, 'handover on: the device is persistent from the start');
    const { lport } = connect(a.dev);
    // Queued, not yet read: the handover reads it before detaching (a detach would purge it).
    a.dev.inbox.push(client(1001, 5001, TCP_ACK | TCP_PSH, 'before'));
    const path = stateFilePath(old.config.defs.stateDir, 'fnat9');
    const report = handOver(old, path, la.log);
    assert.equal(report.connections, 1);
    assert.equal(report.file, path);
    const drained = decodeSegment(a.dev.written.shift()!);
    assert.deepEqual([drained.dst, drained.sport], [RIP, lport], 'the queued packet went out');
    assert.equal(a.dev.attached, false, 'queue detached');
    assert.equal(a.dev.persistent, true);
    assert.deepEqual(a.deleted, [], 'no route removed');
    assert.equal(old.ready, false);
    assert.ok(report.lastForwardedAt > 0);

    const b = fakeHost();
    const lb = logger();
    const next = track(new LoadBalancer(file, { host: b.host, log: lb.log, healthChecks: false }));
    next.openDevice();
    const r = resume(next, path, lb.log);
    assert.deepEqual(r, { resumed: true, imported: 1, skipped: 0 });
    assert.equal(next.engine.table.count, 1);
    b.dev.inject(client(1007, 5001, TCP_ACK | TCP_PSH, 'after'));
    assert.equal(b.dev.written.length, 1, 'the connection is known: forwarded, not answered');
    const out = decodeSegment(b.dev.written[0]!);
    assert.deepEqual([out.dst, out.dport, out.src, out.sport], [RIP, 80, LIP, lport]);
    assert.equal(new TextDecoder().decode(out.payload), 'after');
    assert.equal(out.seq, (drained.seq + 'before'.length) >>> 0, 'same sequence translation');
    const gap = lb.lines().find((l) => String(l.msg).startsWith('handover: forwarding resumed'));
    assert.ok(gap && typeof gap.gapMs === 'number' && gap.gapMs >= 0, 'the gap is logged');
    next.stop();
    assert.equal(b.dev.persistent, false, 'a real stop clears persistence');
    assert.ok(b.deleted.length > 0, 'a real stop removes the routes');
  });

  it('a save that fails puts the old process back to work', () => {
    const file = configFile('b');
    const a = fakeHost();
    const la = logger();
    const lb = track(new LoadBalancer(file, { host: a.host, log: la.log, healthChecks: false }));
    lb.start();
    lb.ready = true;
    connect(a.dev);
    const blocked = join(dir, 'blocked');
    writeFileSync(blocked, '');
    assert.throws(() => handOver(lb, join(blocked, 'fnat9.conns'), la.log), /handover failed/);
    assert.equal(a.dev.attached, true);
    assert.equal(lb.ready, true);
    a.dev.inject(client(1001, 5001, TCP_ACK | TCP_PSH, 'still'));
    assert.equal(decodeSegment(a.dev.written.shift()!).dst, RIP, 'forwarding again');
    lb.stop();
  });

  it('no file, a corrupt file: an empty start, the second one logged with its reason', () => {
    const file = configFile('c');
    for (const content of [undefined, 'garbage, not a state file']) {
      const h = fakeHost();
      const l = logger();
      const lb = track(new LoadBalancer(file, { host: h.host, log: l.log, healthChecks: false }));
      const path = stateFilePath(lb.config.defs.stateDir, 'fnat9');
      mkdirSync(lb.config.defs.stateDir, { recursive: true });
      if (content === undefined) rmSync(path, { force: true });
      else writeFileSync(path, content);
      lb.openDevice();
      const r = resume(lb, path, l.log);
      assert.equal(r.resumed, false);
      assert.equal(lb.engine.table.count, 0);
      if (content === undefined) assert.equal(r.refused, undefined);
      else {
        assert.match(r.refused!, /bad magic/);
        assert.ok(
          l
            .lines()
            .some(
              (x) => x.level === 40 && String(x.msg).startsWith('saved connection table not used'),
            ),
        );
      }
      h.dev.inject(client(1000, 0, TCP_SYN));
      assert.equal(h.dev.written.length, 1, 'forwarding');
      lb.stop();
    }
  });
});

describe('checkpoint cost', () => {
  it('100k connections: export on the loop, write off it', async () => {
    const N = 100_000;
    const e = new Engine({ maxConnections: 1 << 17, portRange: { min: 1024, max: 65535 } });
    e.addService({
      vip: VIP,
      vport: 80,
      scheduler: 'rr',
      laddrs: [LIP, LIP + 1],
      realServers: [{ addr: RIP, port: 80, weight: 1 }],
    });
    for (let i = 0; i < N; i++) {
      const p = e.pool.take();
      p.load(
        buildSegment({
          src: CIP + (i >>> 14),
          dst: VIP,
          sport: 1024 + (i & 0x3fff),
          dport: 80,
          seq: i,
          flags: TCP_SYN,
        }),
      );
      e.process(p);
      for (let k = 0; k < e.outCount; k++) e.pool.give(e.out[k]!);
      e.clearOutput();
    }
    assert.equal(e.table.count, N);
    const l = logger();
    const cp = new Checkpointer(
      () => ({ snapshot: e.exportConnections(), writtenAt: Date.now(), lastForwardedAt: 0 }),
      () => e.table.count,
      join(dir, 'big.conns'),
      l.log,
    );
    const cost = (await cp.once())!;
    console.log(
      `checkpoint of ${cost.connections} connections: ${cost.bytes} bytes, export ${cost.exportMs.toFixed(1)} ms, write ${cost.writeMs.toFixed(1)} ms`,
    );
    assert.equal(cost.connections, N);
    assert.ok(cost.bytes > N * 60, `${cost.bytes} bytes`);
  });
});

describe('checkpoints', () => {
  it('write on their interval, stop at 0, and log a failure once per streak', async () => {
    const l = logger();
    let fail = false;
    const cp = new Checkpointer(
      () => {
        if (fail) throw new Error('export failed');
        return { snapshot: new Uint8Array(8), writtenAt: Date.now(), lastForwardedAt: 0 };
      },
      () => 0,
      join(dir, 'cp', 'fnat9.conns'),
      l.log,
    );
    cp.setInterval(0.1);
    await new Promise((r) => setTimeout(r, 350));
    assert.ok(cp.last && cp.last.bytes === 48, 'written on the interval (40-byte header + 8)');
    cp.setInterval(0);
    const before = cp.last;
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(cp.last, before, 'interval 0: no more checkpoints');
    fail = true;
    assert.equal(await cp.once(), undefined);
    assert.equal(await cp.once(), undefined);
    const errors = l.lines().filter((x) => String(x.msg).startsWith('checkpoint not written'));
    assert.equal(errors.length, 1, 'one line for the streak');
    fail = false;
    assert.ok(await cp.once());
    assert.ok(l.lines().some((x) => x.msg === 'checkpoints written again'));
  });
});
