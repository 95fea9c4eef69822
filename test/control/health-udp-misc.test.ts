/**
 * UDP_CHECK and MISC_CHECK against real sockets and processes on this host:
 * dgram servers on loopback that answer, stay silent or are not there (the
 * kernel's ICMP port unreachable), and programs that pass, fail, hang past
 * their timeout or ask for a weight. Traffic goes to loopback only.
 */
import assert from 'node:assert/strict';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import type { HealthChange } from '../../src/control/health.js';
import type {
  HealthCheckSpec,
  MiscCheckSpec,
  RealServerSpec,
  ServiceSpec,
  UdpCheckSpec,
} from '../../src/control/model.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { checkerFor, realSpec, serviceSpec, waitFor } from '../support/health-bench.js';
import { sleep } from '../support/time.js';

const LOCAL = parseIpv4('127.0.0.1');
const VIP = parseIpv4('10.10.1.100');
const T = { timeout: 10_000 };

const real = (port: number, check: HealthCheckSpec, retry = 2): RealServerSpec =>
  realSpec(LOCAL, port, check, retry);

const service = (reals: RealServerSpec[], vport = 53): ServiceSpec =>
  serviceSpec(VIP, parseIpv4('10.10.3.1'), reals, vport);

const states = (changes: HealthChange[]): boolean[] => changes.map((c) => c.healthy);

const udpCheck = (over: Partial<UdpCheckSpec> = {}): UdpCheckSpec => ({
  kind: 'UDP_CHECK',
  connectTimeout: 0.5,
  payload: 'cafe',
  requireReply: false,
  minReplyLength: 0,
  maxReplyLength: 255,
  ...over,
});

interface UdpServer {
  port: number;
  /** Datagrams received, with their sender. */
  seen: { msg: Buffer; from: RemoteInfo }[];
  close(): Promise<void>;
}

/** A dgram server on `host` that answers each datagram with `answer(msg)`, or stays silent on undefined. */
async function udpServer(
  answer: (msg: Buffer) => Buffer | undefined,
  host = '127.0.0.1',
  port = 0,
): Promise<UdpServer> {
  const sock: Socket = createSocket('udp4');
  const seen: UdpServer['seen'] = [];
  sock.on('message', (msg, from) => {
    seen.push({ msg, from });
    const reply = answer(msg);
    if (reply) sock.send(reply, from.port, from.address);
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, host, () => resolve());
  });
  let closed = false;
  return {
    port: sock.address().port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        if (closed) return resolve();
        closed = true;
        sock.close(() => resolve());
      }),
  };
}

/** A UDP port on loopback with nothing bound to it (bound once, then released). */
async function closedUdpPort(): Promise<number> {
  const s = await udpServer(() => undefined);
  await s.close();
  return s.port;
}

/** Timers, UDP sockets and child processes of this process, by kind. */
function countHandles(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) {
    if (r === 'Timeout' || r === 'UDPWrap' || r === 'ProcessWrap') out[r] = (out[r] ?? 0) + 1;
  }
  return out;
}

describe('UDP_CHECK', () => {
  it('an answering server stays UP; it receives the payload bytes', T, async () => {
    const srv = await udpServer((m) => m);
    const { checker, changes } = checkerFor([service([real(srv.port, udpCheck(), 1)])]);
    checker.start();
    try {
      await waitFor('3 probes', () => srv.seen.length >= 3);
      assert.equal(changes.length, 0, 'no DOWN: retry 1 would have taken it out at once');
      assert.deepEqual(srv.seen[0]!.msg, Buffer.from([0xca, 0xfe]));
      assert.equal(srv.seen[0]!.from.address, '127.0.0.1');
    } finally {
      checker.stop();
      await srv.close();
    }
  });

  it(
    'require_reply: a silent server goes DOWN after the timeout, UP once it answers',
    T,
    async () => {
      let answering = false;
      const srv = await udpServer((m) => (answering ? m : undefined));
      const check = udpCheck({ connectTimeout: 0.15, requireReply: true });
      const { checker, changes, logs } = checkerFor([service([real(srv.port, check, 2)])]);
      const t0 = Date.now();
      checker.start();
      try {
        await waitFor('DOWN', () => changes.length === 1);
        const took = Date.now() - t0;
        // Two silent attempts of 0.15 s with a 0.05 s pause between them.
        assert.ok(took >= 340, `DOWN after ${took} ms`);
        assert.equal(changes[0]!.healthy, false);
        const down = logs.find((l) => l.msg === 'real server DOWN')!;
        assert.equal(down.obj.reason, 'no reply after 0.15s');
        assert.equal(down.obj.check, 'UDP_CHECK');

        answering = true;
        await waitFor('UP', () => changes.length === 2);
        assert.deepEqual(states(changes), [false, true]);
      } finally {
        checker.stop();
        await srv.close();
      }
    },
  );

  it(
    'without require_reply silence passes, as in keepalived: only an ICMP error fails',
    T,
    async () => {
      const srv = await udpServer(() => undefined);
      const check = udpCheck({ connectTimeout: 0.1 });
      const { checker, changes } = checkerFor([service([real(srv.port, check, 1)])]);
      checker.start();
      try {
        await waitFor('3 silent probes', () => srv.seen.length >= 3);
        assert.equal(changes.length, 0);
      } finally {
        checker.stop();
        await srv.close();
      }
    },
  );

  it(
    'no listener: the ICMP port unreachable takes the RS DOWN at once, not at the timeout',
    T,
    async () => {
      const port = await closedUdpPort();
      // A 3 s timeout: only the ICMP error can decide within the bound below.
      const check = udpCheck({ connectTimeout: 3 });
      const { checker, changes, logs } = checkerFor([service([real(port, check, 2)])]);
      const t0 = Date.now();
      checker.start();
      try {
        await waitFor('DOWN', () => changes.length === 1, 2000);
        const took = Date.now() - t0;
        // Two refused attempts and the 0.05 s pause between them.
        assert.ok(took < 500, `DOWN after ${took} ms (the timeout is 3000 ms)`);
        assert.equal(logs.find((l) => l.msg === 'real server DOWN')!.obj.reason, 'ECONNREFUSED');
        const retried = logs.filter((l) => l.msg === 'health check failed, retrying');
        assert.equal(retried.length, 1);
        assert.equal(retried[0]!.obj.reason, 'ECONNREFUSED');
      } finally {
        checker.stop();
      }
    },
  );

  it('require_reply pattern: a reply that differs, is too short or too long fails', T, async () => {
    let reply = Buffer.from([0x81, 0x80, 0x00]);
    const srv = await udpServer(() => reply);
    const check = udpCheck({ requireReply: true, reply: '8x80', maxReplyLength: 4 });
    const { checker, changes, logs } = checkerFor([service([real(srv.port, check, 1)])]);
    checker.start();
    try {
      await waitFor('3 matching replies', () => srv.seen.length >= 3);
      assert.equal(changes.length, 0, '81 80 00 starts with 8x 80');

      reply = Buffer.from([0x81, 0x83, 0x00]);
      await waitFor('DOWN', () => changes.length === 1);
      assert.equal(
        logs.find((l) => l.msg === 'real server DOWN')!.obj.reason,
        'reply differs from require_reply at byte 1',
      );
      reply = Buffer.from([0x8f, 0x80]);
      await waitFor('UP', () => changes.length === 2);

      reply = Buffer.from([0x81]);
      await waitFor('DOWN again', () => changes.length === 3);
      assert.equal(logs.at(-1)!.obj.reason, 'reply of 1 bytes, shorter than require_reply');
      reply = Buffer.from([0x81, 0x80, 0, 0]);
      await waitFor('UP again', () => changes.length === 4);
      reply = Buffer.from([0x81, 0x80, 0, 0, 0]);
      await waitFor('DOWN a third time', () => changes.length === 5);
      assert.equal(logs.at(-1)!.obj.reason, 'reply of 5 bytes (expected 0 to 4)');
      assert.deepEqual(states(changes), [false, true, false, true, false]);
    } finally {
      checker.stop();
      await srv.close();
    }
  });

  it('connect_ip and connect_port aim the probe; bindto sets its source', T, async () => {
    const srv = await udpServer((m) => m, '127.0.0.1');
    const check = udpCheck({
      requireReply: true,
      connectIp: LOCAL,
      connectPort: srv.port,
      bindto: parseIpv4('127.0.0.2'),
    });
    // The real server's own address and port are never probed.
    const rs = realSpec(parseIpv4('10.10.2.2'), 53, check, 1);
    const { checker, changes } = checkerFor([service([rs])]);
    checker.start();
    try {
      await waitFor('2 probes', () => srv.seen.length >= 2);
      assert.equal(changes.length, 0);
      assert.equal(srv.seen[0]!.from.address, '127.0.0.2');
    } finally {
      checker.stop();
      await srv.close();
    }
  });

  it('stop() closes every probe socket and timer; nothing fires afterwards', T, async () => {
    const srv = await udpServer(() => undefined);
    // Earlier tests' probe sockets finish closing first: a close completes a loop turn later.
    await sleep(100);
    const before = countHandles();
    const slow = udpCheck({ connectTimeout: 5, requireReply: true });
    const { checker, changes } = checkerFor([
      service([real(srv.port, slow, 1)], 53),
      service([real(srv.port, udpCheck({ connectTimeout: 0.05 }), 1)], 54),
    ]);
    checker.start();
    try {
      await waitFor('probes of both services', () => srv.seen.length >= 3);
      checker.stop();
      // A socket's handle goes once its close completes, a turn of the loop later; a leaked
      // probe would hold one for its 5 s timeout, a leaked loop would re-arm every 0.1 s.
      const same = (): boolean => JSON.stringify(countHandles()) === JSON.stringify(before);
      await waitFor('the closes done', same, 1000).catch(() => undefined);
      assert.deepEqual(countHandles(), before, 'no socket or timer left behind');
      await sleep(200);
      assert.equal(changes.length, 0);
    } finally {
      checker.stop();
      await srv.close();
    }
  });
});

describe('UDP_CHECK on reload', () => {
  it('a changed check restarts that check only, keeping its UP/DOWN state', T, async () => {
    const a = await udpServer((m) => m);
    const b = await udpServer((m) => m);
    // Long loops: after its first probe a check runs again only when restarted.
    const slow = (port: number, check: UdpCheckSpec): RealServerSpec => ({
      ...real(port, check, 1),
      delayLoop: 60,
    });
    const ra = slow(a.port, udpCheck({ requireReply: true }));
    const rb = slow(b.port, udpCheck({ requireReply: true }));
    const { checker, changes } = checkerFor([service([ra, rb])]);
    checker.start();
    try {
      await waitFor('one probe each', () => a.seen.length === 1 && b.seen.length === 1);

      // The same checks in fresh objects (a reload of an unchanged file): nothing restarts.
      checker.update({ services: [service([{ ...ra }, { ...rb, weight: 3 }])] });
      await sleep(150);
      assert.deepEqual([a.seen.length, b.seen.length], [1, 1]);

      const changed = { ...ra, check: udpCheck({ requireReply: true, payload: 'beef' }) };
      checker.update({ services: [service([changed, rb])] });
      await waitFor('a probe with the new payload', () => a.seen.length === 2);
      assert.deepEqual(a.seen[1]!.msg, Buffer.from([0xbe, 0xef]));
      await sleep(150);
      assert.equal(b.seen.length, 1, 'the other check was left alone');
      assert.equal(changes.length, 0);
    } finally {
      checker.stop();
      await a.close();
      await b.close();
    }
  });
});

describe('MISC_CHECK', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fullnat-misc-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  const file = (name: string): string => join(dir, `${name}-${n++}`);

  const misc = (argv: string[], over: Partial<MiscCheckSpec> = {}): MiscCheckSpec => ({
    kind: 'MISC_CHECK',
    path: argv.join(' '),
    argv,
    timeout: 2,
    dynamic: false,
    ...over,
  });
  /** A shell one-liner run through /bin/sh, the way an operator writes a check that needs one. */
  const sh = (script: string, over: Partial<MiscCheckSpec> = {}): MiscCheckSpec =>
    misc(['/bin/sh', '-c', script], over);
  const lines = (path: string): string[] => {
    try {
      return readFileSync(path, 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  };

  it('/bin/true keeps the RS UP; /bin/false takes it DOWN with its exit status', T, async () => {
    const runs = file('runs');
    const { checker, changes, logs } = checkerFor([
      service([real(1, misc(['/bin/true']), 1), real(2, sh(`echo run >> ${runs}`), 1)], 53),
      service([real(3, misc(['/bin/false']), 2)], 54),
    ]);
    checker.start();
    try {
      await waitFor('DOWN', () => changes.length === 1);
      assert.equal(changes[0]!.service.vport, 54);
      assert.equal(changes[0]!.real.port, 3);
      assert.equal(logs.find((l) => l.msg === 'real server DOWN')!.obj.reason, 'exit status 1');
      await waitFor('3 runs of the passing script', () => lines(runs).length >= 3);
      assert.equal(changes.length, 1, 'the passing checks never went DOWN');
    } finally {
      checker.stop();
    }
  });

  it('a program missing or not executable fails the check', T, async () => {
    const { checker, changes, logs } = checkerFor([
      service([real(1, misc(['/nonexistent/check']), 1)]),
    ]);
    checker.start();
    try {
      await waitFor('DOWN', () => changes.length === 1);
      assert.equal(logs.find((l) => l.msg === 'real server DOWN')!.obj.reason, 'ENOENT');
    } finally {
      checker.stop();
    }
  });

  it('a run past misc_timeout is DOWN; its whole process group is killed', T, async () => {
    const pids = file('pids');
    // The script and a background child of its own: neither may outlive the timeout.
    const check = sh(`sleep 30 & echo $$ $! > ${pids}; wait`, { timeout: 0.3 });
    const { checker, changes, logs } = checkerFor([service([real(1, check, 1)])]);
    const t0 = Date.now();
    checker.start();
    try {
      await waitFor('DOWN', () => changes.length === 1);
      const took = Date.now() - t0;
      assert.ok(took >= 300 && took < 1500, `DOWN after ${took} ms (timeout 300 ms)`);
      assert.equal(
        logs.find((l) => l.msg === 'real server DOWN')!.obj.reason,
        'timeout after 0.3s',
      );
      const [shell, child] = readFileSync(pids, 'utf8').trim().split(' ').map(Number);
      assert.ok(shell && child);
      await waitFor('both processes gone', () => !alive(shell) && !alive(child), 1000);
    } finally {
      checker.stop();
    }
  });

  it('a program that ignores SIGTERM gets SIGKILL after the grace period', T, async () => {
    const pids = file('pids');
    const check = sh(`trap '' TERM; sleep 30 & echo $$ $! > ${pids}; wait`, { timeout: 0.2 });
    const { checker, changes } = checkerFor([service([real(1, check, 1)])]);
    const t0 = Date.now();
    checker.start();
    try {
      await waitFor('DOWN', () => changes.length === 1, 5000);
      const took = Date.now() - t0;
      // 0.2 s timeout, then the 2 s grace before SIGKILL.
      assert.ok(took >= 2200 && took < 3500, `DOWN after ${took} ms`);
      const [shell, child] = readFileSync(pids, 'utf8').trim().split(' ').map(Number);
      assert.ok(shell && child);
      await waitFor('both processes gone', () => !alive(shell) && !alive(child), 1000);
    } finally {
      checker.stop();
    }
  });

  it('at most one run per real server at a time', T, async () => {
    const lock = file('lock');
    const runs = file('runs');
    // A second run while one holds the lock would exit 9 and, with retry 1, take the RS DOWN.
    const check = sh(`mkdir ${lock} || exit 9; echo run >> ${runs}; sleep 0.05; rmdir ${lock}`);
    const rs = { ...real(1, check, 1), delayLoop: 0.01 };
    const { checker, changes } = checkerFor([service([rs])]);
    checker.start();
    try {
      await waitFor('10 runs', () => lines(runs).length >= 10);
      assert.equal(changes.length, 0);
    } finally {
      checker.stop();
    }
  });

  it(
    'misc_dynamic: exit 2..255 sets weight status - 2, 1 fails, 0 gives the configured weight back',
    T,
    async () => {
      const code = file('code');
      const set = (c: number): void => writeFileSync(code, `${c}\n`);
      set(12);
      const check = sh(`exit $(cat ${code})`, { dynamic: true });
      const { checker, changes, logs } = checkerFor([service([real(1, check, 1)])]);
      checker.start();
      try {
        await waitFor('weight 10', () => changes.length === 1);
        assert.deepEqual(
          { healthy: changes[0]!.healthy, weight: changes[0]!.weight },
          { healthy: true, weight: 10 },
        );
        assert.equal(logs[0]!.msg, 'real server weight set by its check');
        await sleep(300);
        assert.equal(changes.length, 1, 'the same status again changes nothing');

        set(1);
        await waitFor('DOWN', () => changes.length === 2);
        assert.deepEqual([changes[1]!.healthy, changes[1]!.weight], [false, 10]);

        // keepalived (check_misc.c): exit 0 sets the RS's configured weight (iweight).
        set(0);
        await waitFor('UP', () => changes.length === 3);
        assert.deepEqual([changes[2]!.healthy, changes[2]!.weight], [true, undefined]);

        set(255);
        await waitFor('weight 253', () => changes.length === 4);
        assert.deepEqual([changes[3]!.healthy, changes[3]!.weight], [true, 253]);

        // Dropping misc_dynamic on reload gives the configured weight back.
        const rs = real(1, { ...check, dynamic: false }, 1);
        checker.update({ services: [service([rs])] });
        assert.equal(changes.length, 5);
        assert.deepEqual([changes[4]!.healthy, changes[4]!.weight], [true, undefined]);
        // Without misc_dynamic, 255 is a failure.
        await waitFor('DOWN without misc_dynamic', () => changes.length === 6);
        assert.equal(changes[5]!.healthy, false);
        assert.equal(logs.at(-1)!.obj.reason, 'exit status 255');
      } finally {
        checker.stop();
      }
    },
  );

  it(
    'runs as the configured user',
    { ...T, skip: process.getuid?.() !== 0 && 'needs root' },
    async () => {
      const check = sh('test "$(id -u):$(id -g)" = 65534:65534', { uid: 65534, gid: 65534 });
      const asRoot = sh('test "$(id -u)" = 0');
      const { checker, changes } = checkerFor([
        service([real(1, check, 1), real(2, { ...check, uid: 0, gid: 0 }, 1), real(3, asRoot, 1)]),
      ]);
      checker.start();
      try {
        await waitFor(
          'DOWN of the RS whose script expects another user',
          () => changes.length === 1,
        );
        assert.equal(changes[0]!.real.port, 2);
        await sleep(300);
        assert.equal(changes.length, 1);
      } finally {
        checker.stop();
      }
    },
  );

  it('stop() kills a run in flight and leaves no process or timer', T, async () => {
    const pids = file('pids');
    const before = countHandles();
    const { checker, changes } = checkerFor([
      service([real(1, sh(`echo $$ > ${pids}; exec sleep 30`, { timeout: 20 }), 1)]),
    ]);
    checker.start();
    await waitFor('the script running', () => lines(pids).length === 1);
    checker.stop();
    const pid = Number(lines(pids)[0]);
    await waitFor('the process gone', () => !alive(pid), 1000);
    await waitFor(
      'its handle released',
      () => JSON.stringify(countHandles()) === JSON.stringify(before),
      1000,
    );
    assert.equal(changes.length, 0);
  });
});

/** True while `pid` exists and is not a zombie (a reaped or never-reaped corpse runs nothing). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
