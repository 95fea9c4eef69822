// Real-kernel test of the native TUN addon. Runs only as root with
// /dev/net/tun, the addon built and `ip netns` working; otherwise the whole
// suite is skipped with the reason shown.
//
// Setup: this process opens a TUN (so readBatch/writeBatch/poll run here, on
// this event loop), moves the interface into a namespace of its own
// (fullnat-tun-<pid>) — the descriptor keeps working across the move — and
// names it fnt0 with 10.99.0.1/24. A child `node -e` inside the namespace
// sends UDP datagrams to 10.99.0.2, which the namespace routes into fnt0; we
// read them here and write replies back. No traffic leaves the namespace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AsyncLocalStorage, executionAsyncId } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import {
  addAddress,
  ip,
  nativeTun,
  openTun,
  setUp,
  tunAvailable,
  type TunDevice,
} from '../../src/io/tun.js';
import { finishChecksum, pseudoSumV4, sumWords } from '../../src/wire/checksum.js';
import { sleep } from '../support/time.js';

const NS = `fullnat-tun-${process.pid}`;
const TUN_IP = '10.99.0.1';
const PEER_IP = '10.99.0.2';
const HEADROOM = 32; // read and write at an offset, as the engine's packet pool does
const BUF = 2048;

let nsCreated = false;
function deleteNamespace(): void {
  if (!nsCreated) return;
  nsCreated = false;
  try {
    ip(['netns', 'del', NS]);
  } catch {
    // already gone
  }
}
process.on('exit', deleteNamespace);

function skipReason(): string | false {
  const a = tunAvailable();
  if (!a.ok) return a.reason;
  try {
    ip(['netns', 'add', NS]);
    nsCreated = true;
  } catch (err) {
    return `cannot create a network namespace: ${(err as Error).message}`;
  }
  return false;
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

// ---------------------------------------------------------------- traffic

/** Sends `count` datagrams "ping i" to PEER_IP:dport, then waits up to waitMs for `expect` replies. */
const SENDER = `
const dgram = require('node:dgram');
const [count, dport, expect, waitMs] = process.argv.slice(1).map(Number);
const s = dgram.createSocket('udp4');
const got = [];
const done = () => { process.stdout.write(JSON.stringify(got) + '\\n'); process.exit(0); };
s.on('message', (m, r) => {
  got.push({ from: r.address + ':' + r.port, data: m.toString() });
  if (got.length >= expect) done();
});
s.bind(0, '${TUN_IP}', () => {
  let sent = 0;
  for (let i = 0; i < count; i++)
    s.send('ping ' + i, dport, '${PEER_IP}', (err) => {
      if (err) { console.error(err.message); process.exit(1); }
      if (++sent < count) return;
      process.stdout.write('sent\\n');
      if (expect === 0) done(); else setTimeout(done, waitMs);
    });
});
`;

interface Reply {
  from: string;
  data: string;
}
interface Sender {
  /** Resolves once every datagram has been handed to the kernel. */
  sent: Promise<void>;
  /** The replies the sender received. */
  result: Promise<Reply[]>;
}

function startSender(count: number, dport: number, expect: number, waitMs = 5000): Sender {
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      NS,
      process.execPath,
      '-e',
      SENDER,
      String(count),
      String(dport),
      String(expect),
      String(waitMs),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const killer = setTimeout(() => child.kill('SIGKILL'), 9000);
  let out = '';
  let errText = '';
  let onSent: () => void = () => {};
  let sentFailed: (e: Error) => void = () => {};
  const sent = new Promise<void>((resolve, reject) => {
    onSent = resolve;
    sentFailed = reject;
  });
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    if (out.includes('sent\n')) onSent();
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (errText += d));
  const result = new Promise<Reply[]>((resolve, reject) => {
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      const fail = new Error(`sender exited with ${code ?? signal}: ${errText.trim()}`);
      sentFailed(fail);
      const last = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !last.startsWith('[')) reject(fail);
      else resolve(JSON.parse(last) as Reply[]);
    });
  });
  // Each test awaits both; this only keeps an early failure from being reported twice.
  sent.catch(() => {});
  return { sent, result };
}

// ---------------------------------------------------------------- packets

const ipv4 = (b: Uint8Array, o: number, at: number): string =>
  `${b[o + at]}.${b[o + at + 1]}.${b[o + at + 2]}.${b[o + at + 3]}`;

/** If bufs[o..o+len) is IPv4/UDP to PEER_IP:dport, returns the UDP offset. */
function udpTo(b: Uint8Array, o: number, len: number, dport: number): number {
  if (len < 28 || b[o]! >> 4 !== 4 || b[o + 9] !== 17 || ipv4(b, o, 16) !== PEER_IP) return -1;
  const u = o + (b[o]! & 15) * 4;
  return ((b[u + 2]! << 8) | b[u + 3]!) === dport ? u : -1;
}

/** Turns a "ping i" datagram into the peer's "pong i" reply, in place; fixes the UDP checksum. */
function makeReply(b: Uint8Array, o: number, u: number, len: number): void {
  for (let i = 0; i < 4; i++) {
    const s = b[o + 12 + i]!;
    b[o + 12 + i] = b[o + 16 + i]!;
    b[o + 16 + i] = s; // swapping words leaves the IPv4 header checksum valid
  }
  for (let i = 0; i < 2; i++) {
    const s = b[u + i]!;
    b[u + i] = b[u + 2 + i]!;
    b[u + 2 + i] = s;
  }
  b.set([0x70, 0x6f, 0x6e, 0x67], u + 8); // "ping" → "pong": the payload changes, so recompute
  const udpLen = o + len - u;
  b[u + 6] = 0;
  b[u + 7] = 0;
  const c = finishChecksum(sumWords(b, u, udpLen, pseudoSumV4(b, o, 17, udpLen))) || 0xffff;
  b[u + 6] = c >> 8;
  b[u + 7] = c & 0xff;
}

function rxRing(n: number): { bufs: Uint8Array[]; lens: Int32Array } {
  return {
    bufs: Array.from({ length: n }, () => new Uint8Array(HEADROOM + BUF)),
    lens: new Int32Array(n),
  };
}

/** Reads until the queue is empty; returns how many UDP packets to `dport` were read. */
function drain(dev: TunDevice, dport = -1): number {
  const { bufs, lens } = rxRing(64);
  let matched = 0;
  for (let n; (n = dev.readBatch(bufs, HEADROOM, lens)) > 0;)
    for (let i = 0; i < n; i++) if (udpTo(bufs[i]!, HEADROOM, lens[i]!, dport) >= 0) matched++;
  return matched;
}

// ------------------------------------------------------------------ tests

let dev: TunDevice | undefined;
const tun = (): TunDevice => {
  assert.ok(dev, 'TUN device not open');
  return dev;
};

const skip = skipReason();
// A skipped single test (rather than a skipped suite) shows in the summary's "skipped" count.
if (skip) test('TUN device on the real kernel', { skip }, () => {});
else
  describe(`TUN device on the real kernel (namespace ${NS})`, () => {
    before(() => {
      // Fewer stray packets (IPv6 router solicitations, MLD) on fnt0; best effort.
      try {
        ip([
          'netns',
          'exec',
          NS,
          'sh',
          '-c',
          'echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6',
        ]);
      } catch {
        // no IPv6 in this kernel: nothing to silence
      }
      ip(['link', 'set', 'dev', 'lo', 'up'], { netns: NS });
      dev = openTun(`fnt${process.pid}`.slice(0, 15));
      ip(['link', 'set', 'dev', dev.name, 'netns', NS]);
      ip(['link', 'set', 'dev', dev.name, 'name', 'fnt0'], { netns: NS });
      addAddress('fnt0', `${TUN_IP}/24`, { netns: NS });
      setUp('fnt0', 1500, { netns: NS });
    });

    after(() => {
      try {
        dev?.close();
      } finally {
        dev = undefined;
        deleteNamespace();
      }
    });

    test(
      'readBatch takes several queued packets in one call; writeBatch sends the replies back',
      { timeout: 10_000 },
      async () => {
        const d = tun();
        drain(d);
        const COUNT = 8;
        const sender = startSender(COUNT, 7777, COUNT);
        await sender.sent;

        const { bufs, lens } = rxRing(64);
        const pings: { buf: Uint8Array; udp: number; len: number }[] = [];
        const take = (n: number): void => {
          for (let i = 0; i < n; i++) {
            const u = udpTo(bufs[i]!, HEADROOM, lens[i]!, 7777);
            if (u >= 0) pings.push({ buf: bufs[i]!.slice(), udp: u, len: lens[i]! });
          }
        };
        const first = d.readBatch(bufs, HEADROOM, lens);
        assert.ok(
          first > 1,
          `one readBatch returned ${first} packet(s); the ${COUNT} queued datagrams should come together`,
        );
        take(first);
        await until(
          () => {
            take(d.readBatch(bufs, HEADROOM, lens));
            return pings.length >= COUNT;
          },
          3000,
          `${COUNT} datagrams (have ${pings.length})`,
        );
        assert.equal(pings.length, COUNT);

        for (const p of pings) makeReply(p.buf, HEADROOM, p.udp, p.len);
        const offsets = new Int32Array(COUNT).fill(HEADROOM);
        const lengths = Int32Array.from(pings, (p) => p.len);
        const errorsBefore = d.txErrors;
        assert.equal(
          d.writeBatch(
            pings.map((p) => p.buf),
            offsets,
            lengths,
            COUNT,
          ),
          COUNT,
        );
        assert.equal(d.txErrors, errorsBefore, `no packet rejected (last: ${d.lastTxError})`);

        const replies = await sender.result;
        assert.equal(replies.length, COUNT, `sender got ${JSON.stringify(replies)}`);
        assert.ok(replies.every((r) => r.from === `${PEER_IP}:7777`));
        assert.deepEqual(
          replies.map((r) => r.data).sort(),
          Array.from({ length: COUNT }, (_, i) => `pong ${i}`).sort(),
        );
      },
    );

    test(
      'onReadable fires when packets arrive, as a proper async callback, and never after stopReadable',
      { timeout: 10_000 },
      async () => {
        const d = tun();
        drain(d);
        let calls = 0;
        let seen = 0;
        const order: string[] = [];
        let asyncId = -1;
        let store: string | undefined;
        const als = new AsyncLocalStorage<string>();
        als.run('tun-test', () =>
          d.onReadable(() => {
            calls++;
            if (order.length === 0) {
              // Called through napi_make_callback with an async context: it has an
              // async id (0 for a bare napi_call_function from libuv), carries the
              // AsyncLocalStorage of the onReadable call, and microtasks run after it.
              asyncId = executionAsyncId();
              store = als.getStore();
              order.push('callback');
              queueMicrotask(() => order.push('microtask'));
              setImmediate(() => order.push('immediate'));
            }
            seen += drain(d, 7778);
          }),
        );
        const s1 = startSender(3, 7778, 0);
        await s1.sent;
        await until(() => seen >= 3, 5000, 'the readable callback to read 3 datagrams');
        await s1.result;
        await until(() => order.length === 3, 1000, 'the immediate');
        assert.deepEqual(order, ['callback', 'microtask', 'immediate']);
        assert.ok(asyncId > 0, `executionAsyncId() in the callback was ${asyncId}`);
        assert.equal(store, 'tun-test');

        d.stopReadable();
        const callsAtStop = calls;
        const s2 = startSender(3, 7778, 0);
        await s2.result;
        await sleep(300);
        assert.equal(calls, callsAtStop, 'callback called after stopReadable');
        assert.equal(drain(d, 7778), 3, 'the datagrams were waiting, unread');
      },
    );

    test(
      'stopReadable inside the callback stops it even with packets left unread',
      { timeout: 10_000 },
      async () => {
        const d = tun();
        drain(d);
        let calls = 0;
        d.onReadable(() => {
          calls++;
          d.stopReadable(); // level-triggered: were the watcher still active, this would fire again at once
        });
        const s = startSender(2, 7778, 0);
        await s.result;
        await until(() => calls > 0, 5000, 'the readable callback');
        await sleep(300);
        assert.equal(calls, 1);
        assert.equal(drain(d, 7778), 2);
      },
    );

    test('raw poll/stopPoll: stopPoll is idempotent and rejects anything but a poll handle', () => {
      const n = nativeTun();
      const h = n.poll(tun().fd, () => assert.fail('never ready: stopped in the same tick'));
      n.stopPoll(h);
      n.stopPoll(h);
      assert.throws(() => n.stopPoll({} as never), TypeError);
      assert.throws(() => n.poll(tun().fd, 'x' as never), TypeError);
    });

    test(
      'writeBatch skips malformed packets, reports them, and still writes the rest',
      { timeout: 10_000 },
      async () => {
        const d = tun();
        drain(d);
        const sender = startSender(1, 7779, 1, 3000);
        await sender.sent;
        const { bufs, lens } = rxRing(8);
        let reply: { buf: Uint8Array; len: number } | undefined;
        await until(
          () => {
            const n = d.readBatch(bufs, HEADROOM, lens);
            for (let i = 0; i < n && !reply; i++) {
              const u = udpTo(bufs[i]!, HEADROOM, lens[i]!, 7779);
              if (u >= 0) {
                makeReply(bufs[i]!, HEADROOM, u, lens[i]!);
                reply = { buf: bufs[i]!, len: lens[i]! };
              }
            }
            return reply !== undefined;
          },
          3000,
          'the datagram',
        );
        assert.ok(reply);

        const badVersion = new Uint8Array(40).fill(0);
        badVersion[0] = 0x55; // IP version 5
        const empty = new Uint8Array(16);
        const before = d.txErrors;
        const handled = d.writeBatch(
          [badVersion, empty, reply.buf],
          Int32Array.of(0, 0, HEADROOM),
          Int32Array.of(40, 0, reply.len),
          3,
        );
        assert.equal(handled, 3, 'rejected packets count as handled');
        assert.equal(d.txErrors - before, 2);
        assert.equal(d.lastTxError, 'EINVAL');
        assert.deepEqual(await sender.result, [{ from: `${PEER_IP}:7779`, data: 'pong 0' }]);

        // The raw contract: stats = [rejected in this call, errno of the last one].
        const stats = Int32Array.of(-1, -1);
        const n = nativeTun();
        assert.equal(
          n.writeBatch(d.fd, [badVersion], Int32Array.of(0), Int32Array.of(40), 1, stats),
          1,
        );
        assert.deepEqual([...stats], [1, osConstants.errno.EINVAL]);
        assert.equal(n.writeBatch(d.fd, [], new Int32Array(0), new Int32Array(0), 0, stats), 0);
        assert.deepEqual([...stats], [0, 0]);
        assert.throws(
          () => n.writeBatch(d.fd, [empty], Int32Array.of(8), Int32Array.of(9), 1),
          RangeError,
        );
        assert.throws(
          () => n.writeBatch(d.fd, [empty], Int32Array.of(0), Int32Array.of(0), 2),
          RangeError,
        );
      },
    );

    test('open() errors name the system call and errno; bad arguments throw TypeError/RangeError', () => {
      assert.throws(() => openTun('bad/name'), {
        message: 'ioctl TUNSETIFF: Invalid argument',
        code: 'EINVAL',
        errno: -osConstants.errno.EINVAL,
        syscall: 'ioctl TUNSETIFF',
      });
      assert.throws(() => openTun('x'.repeat(16)), RangeError);
      const n = nativeTun();
      const lens = new Int32Array(1);
      assert.throws(() => n.readBatch(1_000_000, [new Uint8Array(64)], 0, lens), {
        message: 'read: Bad file descriptor',
        code: 'EBADF',
      });
      assert.throws(() => n.readBatch(tun().fd, [new Uint8Array(8)], 8, lens), RangeError);
      assert.throws(
        () => n.readBatch(tun().fd, [new Uint8Array(8), new Uint8Array(8)], 0, lens),
        RangeError,
      );
      assert.throws(() => n.readBatch(tun().fd, ['x' as never], 0, lens), TypeError);
      assert.throws(() => n.readBatch(tun().fd, [new Uint16Array(8) as never], 0, lens), TypeError);
    });

    test('multi-queue: a second queue attaches to the same interface; single-queue refuses it', () => {
      const name = `fntmq${process.pid}`.slice(0, 15);
      const q0 = openTun(name, { multiQueue: true });
      try {
        const q1 = openTun(name, { multiQueue: true });
        assert.equal(q1.name, q0.name);
        q1.close();
      } finally {
        q0.close();
      }
      const single = openTun(name);
      try {
        assert.throws(() => openTun(name), { code: 'EBUSY', syscall: 'ioctl TUNSETIFF' });
      } finally {
        single.close();
        single.close(); // idempotent
      }
      assert.throws(
        () => single.readBatch([new Uint8Array(64)], 0, new Int32Array(1)),
        /TUN device is closed/,
      );
    });
  });
