/**
 * The PROXY protocol receiver on real loopback sockets: the client address
 * reaches the application, the stream after the header arrives intact however
 * it is cut into segments, and everything a client could use to pick its own
 * address, or to hold a connection open without a header, is refused.
 *
 * "Trusted" is 127.0.0.1 (playing the LB's local address); untrusted clients
 * connect from 127.0.0.2, which Linux routes on lo like the rest of 127/8.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer as createHttpServer, request } from 'node:http';
import { BlockList, connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  acceptProxyProtocol,
  createProxyProtocolServer,
  proxyProtocolInfo,
  trustList,
  wrapProxyProtocolServer,
  type ProxiedSocket,
  type ProxyProtocolInfo,
  type ProxyProtocolOptions,
} from '../../src/realserver/proxy-protocol-server.js';
import { parseIpv4, parseIpv6 } from '../../src/wire/bytes.js';
import {
  encodeProxyV1,
  encodeProxyV2,
  encodeProxyV2Local,
  encodeProxyV2v6,
} from '../../src/wire/proxy-protocol.js';

const LB = '127.0.0.1';
const STRANGER = '127.0.0.2';

function v1(src: string, sport: number, dst = '10.0.1.7', dport = 8080): Buffer {
  const b = Buffer.alloc(107);
  return b.subarray(0, encodeProxyV1(b, 0, parseIpv4(src), sport, parseIpv4(dst), dport));
}
function v2(src: string, sport: number, dst = '10.0.1.7', dport = 8080): Buffer {
  const b = Buffer.alloc(28);
  encodeProxyV2(b, 0, parseIpv4(src), sport, parseIpv4(dst), dport);
  return b;
}
function v2v6(src: string, sport: number): Buffer {
  const b = Buffer.alloc(52);
  encodeProxyV2v6(b, 0, parseIpv6(src)!, sport, parseIpv6('fd00:1::7')!, 8080);
  return b;
}

/** What the application saw on one accepted connection. */
interface Seen {
  info: ProxyProtocolInfo;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  proxyRemoteAddress: string;
  bytes: number;
  sha256: string;
  head: string;
  ended: boolean;
}

interface Refusal {
  peer: string;
  reason: string;
  level: 'warn' | 'debug';
}

/** Promise queue: values pushed before anyone waits are kept. */
class Queue<T> {
  private items: T[] = [];
  private waiters: ((v: T) => void)[] = [];
  push(v: T): void {
    const w = this.waiters.shift();
    if (w) w(v);
    else this.items.push(v);
  }
  next(ms = 5000): Promise<T> {
    const v = this.items.shift();
    if (v !== undefined) return Promise.resolve(v);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`nothing arrived within ${ms} ms`)), ms);
      this.waiters.push((x) => {
        clearTimeout(t);
        resolve(x);
      });
    });
  }
  get length(): number {
    return this.items.length;
  }
}

/**
 * A PROXY-protocol server that reads each connection to its end, then
 * answers "ok <bytes>" and closes; optionally it greets first (server-speaks-first).
 */
async function harness(
  opts: Partial<ProxyProtocolOptions> = {},
  greet = false,
): Promise<{ port: number; seen: Queue<Seen>; refusals: Queue<Refusal>; server: Server }> {
  const seen = new Queue<Seen>();
  const refusals = new Queue<Refusal>();
  const server = createProxyProtocolServer(
    {
      trustedPeers: [LB],
      logger: {
        warn: (o, _m) =>
          refusals.push({ peer: String(o.peer), reason: String(o.reason), level: 'warn' }),
        debug: (o, _m) =>
          refusals.push({ peer: String(o.peer), reason: String(o.reason), level: 'debug' }),
      },
      ...opts,
    },
    (socket: ProxiedSocket, info) => {
      if (greet) socket.write('220 hello\r\n');
      const hash = createHash('sha256');
      let bytes = 0;
      let head = '';
      socket.on('data', (d: Buffer) => {
        if (head.length < 64) head += d.subarray(0, 64 - head.length).toString('latin1');
        hash.update(d);
        bytes += d.length;
      });
      socket.on('end', () => {
        seen.push({
          info,
          remoteAddress: socket.remoteAddress,
          remotePort: socket.remotePort,
          proxyRemoteAddress: socket.proxyRemoteAddress,
          bytes,
          sha256: hash.digest('hex'),
          head,
          ended: true,
        });
        socket.end(`ok ${bytes}`);
      });
      socket.on('error', () => {});
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  servers.push(server);
  return { port: (server.address() as { port: number }).port, seen, refusals, server };
}

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

async function dial(port: number, from = LB): Promise<Socket> {
  const c = connect({ host: '127.0.0.1', port, localAddress: from });
  c.setNoDelay(true);
  await once(c, 'connect');
  return c;
}

/** Everything the server sends until close, and whether the close was an error (reset). */
async function drain(c: Socket): Promise<{ text: string; error: string | null }> {
  let text = '';
  let error: string | null = null;
  c.on('data', (d: Buffer) => (text += d.toString('latin1')));
  c.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  // Not events.once: it rejects on 'error', and a reset is an expected outcome here.
  await new Promise((resolve) => c.once('close', resolve));
  return { text, error };
}

async function writeAll(c: Socket, b: Uint8Array): Promise<void> {
  if (!c.write(b)) await once(c, 'drain');
}

describe('headers accepted from the LB', () => {
  test('v1: client address exposed, data after the header intact', async () => {
    const h = await harness();
    const c = await dial(h.port);
    const done = drain(c);
    c.end(Buffer.concat([v1('192.0.2.10', 40000), Buffer.from('GET / HTTP/1.1\r\n\r\n')]));
    const s = await h.seen.next();
    assert.equal(s.proxyRemoteAddress, '192.0.2.10');
    assert.deepEqual([s.remoteAddress, s.remotePort], ['192.0.2.10', 40000]);
    assert.equal(s.info.proxied, true);
    assert.equal(s.info.family, 'IPv4');
    assert.equal(s.info.peer.address, LB);
    assert.equal(s.info.header?.version, 1);
    assert.deepEqual(s.info.header?.dst, { address: '10.0.1.7', port: 8080 });
    assert.equal(s.head, 'GET / HTTP/1.1\r\n\r\n');
    assert.equal((await done).text, 'ok 18');
  });

  test('v2 IPv4 and IPv6', async () => {
    const h = await harness();
    const c = await dial(h.port);
    c.end(Buffer.concat([v2('198.51.100.77', 65535), Buffer.from('hello')]));
    const s = await h.seen.next();
    assert.deepEqual([s.remoteAddress, s.remotePort, s.head], ['198.51.100.77', 65535, 'hello']);
    assert.equal(s.info.header?.version, 2);

    const c6 = await dial(h.port);
    c6.end(Buffer.concat([v2v6('2001:db8:c::a', 1), Buffer.from('six')]));
    const s6 = await h.seen.next();
    assert.deepEqual(
      [s6.remoteAddress, s6.remotePort, s6.info.family, s6.head],
      ['2001:db8:c::a', 1, 'IPv6', 'six'],
    );
  });

  test('replaceRemoteAddress: false keeps the TCP peer in remoteAddress', async () => {
    const h = await harness({ replaceRemoteAddress: false });
    const c = await dial(h.port);
    c.end(v2('192.0.2.10', 40000));
    const s = await h.seen.next();
    assert.equal(s.remoteAddress, LB);
    assert.equal(s.proxyRemoteAddress, '192.0.2.10');
    assert.equal(s.bytes, 0);
  });

  test('1 MB body across many writes, header split across two writes', async () => {
    const h = await harness();
    const body = Buffer.alloc(1 << 20);
    let x = 0x12345678;
    for (let i = 0; i < body.length; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      body[i] = x >>> 24;
    }
    const header = v2('203.0.113.5', 5555);
    const c = await dial(h.port);
    const done = drain(c);
    await writeAll(c, header.subarray(0, 9));
    await sleep(30); // let the first piece be read on its own
    await writeAll(c, Buffer.concat([header.subarray(9), body.subarray(0, 100)]));
    let at = 100;
    let n = 0;
    while (at < body.length) {
      const len = Math.min(body.length - at, 1 + ((at * 7919) % 16384));
      await writeAll(c, body.subarray(at, at + len));
      at += len;
      n++;
    }
    c.end();
    const s = await h.seen.next(20000);
    assert.ok(n > 20, `${n} writes`);
    assert.equal(s.remoteAddress, '203.0.113.5');
    assert.equal(s.bytes, body.length);
    assert.equal(s.sha256, createHash('sha256').update(body).digest('hex'));
    assert.equal((await done).text, `ok ${body.length}`);
  });

  test('v1 header arriving one byte at a time', async () => {
    const h = await harness();
    const c = await dial(h.port);
    for (const byte of v1('192.0.2.99', 12345)) {
      await writeAll(c, Uint8Array.of(byte));
      await sleep(2);
    }
    c.end('tail');
    const s = await h.seen.next();
    assert.deepEqual([s.remoteAddress, s.remotePort, s.head], ['192.0.2.99', 12345, 'tail']);
  });

  test('v2 LOCAL (LB health check): accepted with the real endpoints', async () => {
    const h = await harness();
    const c = await dial(h.port);
    const local = Buffer.alloc(16);
    encodeProxyV2Local(local, 0);
    c.end(Buffer.concat([local, Buffer.from('ping')]));
    const s = await h.seen.next();
    assert.equal(s.info.proxied, false);
    assert.equal(s.info.header?.command, 'LOCAL');
    assert.deepEqual([s.remoteAddress, s.proxyRemoteAddress, s.head], [LB, LB, 'ping']);
  });

  test('v1 UNKNOWN: accepted with the real endpoints', async () => {
    const h = await harness();
    const c = await dial(h.port);
    c.end('PROXY UNKNOWN\r\nx');
    const s = await h.seen.next();
    assert.deepEqual(
      [s.info.proxied, s.info.header?.family, s.remoteAddress, s.head],
      [false, 'UNKNOWN', LB, 'x'],
    );
  });

  test('http.Server wrapped: req.socket.remoteAddress is the client', async () => {
    const server = wrapProxyProtocolServer(
      createHttpServer((req, res) => {
        res.end(`${req.socket.remoteAddress}:${req.socket.remotePort} ${req.url}`);
      }),
      { trustedPeers: ['127.0.0.0/8'] },
    );
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const body = await new Promise<string>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port,
        path: '/who',
        createConnection: () => {
          const s = connect({ host: '127.0.0.1', port });
          s.write(v1('192.0.2.44', 4444));
          return s;
        },
      });
      req.on('response', (res) => {
        let t = '';
        res.on('data', (d: Buffer) => (t += d));
        res.on('end', () => resolve(t));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(body, '192.0.2.44:4444 /who');
    assert.throws(() => wrapProxyProtocolServer(server, { trustedPeers: [] }), /already wrapped/);
  });

  test('dual-stack listener: a v4-mapped LB address is trusted', async (t) => {
    const seen = new Queue<string>();
    const server = createProxyProtocolServer({ trustedPeers: [LB] }, (socket) => {
      seen.push(`${socket.remoteAddress} via ${proxyProtocolInfo(socket)?.peer.address}`);
      socket.destroy();
    });
    servers.push(server);
    try {
      server.listen({ port: 0, host: '::', ipv6Only: false });
      await once(server, 'listening');
    } catch (e) {
      t.skip(`no IPv6 dual-stack socket here: ${(e as Error).message}`);
      return;
    }
    const c = await dial((server.address() as { port: number }).port);
    c.on('error', () => {});
    c.write(v2('192.0.2.8', 8));
    assert.equal(await seen.next(), '192.0.2.8 via ::ffff:127.0.0.1');
    c.destroy();
  });
});

describe('refused', () => {
  test('a header from an untrusted peer is refused, even when headers are optional', async () => {
    for (const required of [true, false]) {
      const h = await harness({ required });
      const c = await dial(h.port, STRANGER);
      const done = drain(c);
      c.write(v1('192.0.2.10', 40000));
      c.write('GET / HTTP/1.1\r\n\r\n');
      const r = await h.refusals.next();
      assert.equal(r.peer, `${STRANGER}:${c.localPort}`);
      assert.match(
        r.reason,
        required
          ? /not in trustedPeers and a PROXY header is required/
          : /PROXY header from a peer that is not in trustedPeers/,
      );
      assert.equal((await done).text, '', 'the application never answered');
      assert.equal(h.seen.length, 0);
    }
  });

  test('missing header with required: refused', async () => {
    const h = await harness();
    const c = await dial(h.port);
    const done = drain(c);
    c.write('GET / HTTP/1.1\r\n\r\n');
    assert.match((await h.refusals.next()).reason, /no PROXY header/);
    assert.equal((await done).text, '');
  });

  test("garbage: malformed v1 and v2 headers are refused with the decoder's reason", async () => {
    const h = await harness();
    const cases: [Uint8Array, RegExp][] = [
      [
        Buffer.from('PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n'),
        /invalid PROXY header: v1: bad IPv4 source/,
      ],
      [Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'), /LF without CR/],
      [Buffer.from(`PROXY UNKNOWN ${'z'.repeat(200)}`), /no CRLF within the first 107/],
      [
        Buffer.concat([v2('1.2.3.4', 1).subarray(0, 12), Buffer.from([0x31, 0x11, 0, 12])]),
        /v2: version 3/,
      ],
      [
        Buffer.concat([v2('1.2.3.4', 1).subarray(0, 12), Buffer.from([0x21, 0x11, 0, 8])]),
        /shorter than the 12-byte/,
      ],
    ];
    for (const [bytes, reason] of cases) {
      const c = await dial(h.port);
      const done = drain(c);
      c.write(bytes);
      assert.match((await h.refusals.next()).reason, reason);
      assert.equal((await done).text, '');
    }
    assert.equal(h.seen.length, 0);
  });

  test('timeout: a partial header, or silence, is cut off', async () => {
    const h = await harness({ timeoutMs: 150 });
    const c = await dial(h.port);
    const done = drain(c);
    const started = Date.now();
    c.write(v2('1.2.3.4', 1).subarray(0, 20));
    const r = await h.refusals.next();
    assert.match(r.reason, /no complete PROXY header within 150 ms \(20 bytes received\)/);
    assert.ok(Date.now() - started >= 140, 'not before the timeout');
    await done;

    const quiet = await dial(h.port);
    const qd = drain(quiet);
    assert.match((await h.refusals.next()).reason, /within 150 ms \(0 bytes received\)/);
    await qd;
  });

  test('closing inside the header: refused; closing without a byte: dropped quietly', async () => {
    const h = await harness();
    const c = await dial(h.port);
    c.end(v1('1.2.3.4', 5).subarray(0, 20));
    const r = await h.refusals.next();
    assert.deepEqual([r.level, r.reason], ['warn', 'closed inside the PROXY header']);
    const e = await dial(h.port);
    e.end();
    const q = await h.refusals.next();
    assert.deepEqual([q.level, q.reason], ['debug', 'closed before sending anything']);
  });
});

describe('required: false', () => {
  test('untrusted and trusted peers without a header pass with their own address', async () => {
    const h = await harness({ required: false });
    for (const from of [STRANGER, LB]) {
      const c = await dial(h.port, from);
      c.end('GET / HTTP/1.1\r\n\r\n');
      const s = await h.seen.next();
      assert.deepEqual(
        [s.remoteAddress, s.info.proxied, s.info.header, s.head],
        [from, false, null, 'GET / HTTP/1.1\r\n\r\n'],
      );
    }
    // A trusted peer may still send one.
    const c = await dial(h.port);
    c.end(v2('192.0.2.1', 2));
    assert.equal((await h.seen.next()).remoteAddress, '192.0.2.1');
  });

  test('server-speaks-first: a silent client is let through after the timeout', async () => {
    const h = await harness({ required: false, timeoutMs: 100 }, true);
    const c = await dial(h.port, STRANGER);
    let greeting = '';
    const sent = Date.now();
    // The greeting comes once the 100 ms wait for a header is over: waited for, not slept for.
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no greeting within 5 s: '${greeting}'`)), 5000);
      c.on('data', (d: Buffer) => {
        greeting += d;
        if (greeting.includes('\r\n')) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    assert.ok(Date.now() - sent >= 90, 'not before the header timeout');
    assert.equal(greeting, '220 hello\r\n');
    c.end('QUIT\r\n');
    const s = await h.seen.next();
    assert.deepEqual([s.remoteAddress, s.head], [STRANGER, 'QUIT\r\n']);
  });

  test('an untrusted client whose first bytes look like a header prefix is let through on timeout', async () => {
    const h = await harness({ required: false, timeoutMs: 100 });
    const c = await dial(h.port, STRANGER);
    c.write('PRO');
    await sleep(200);
    c.end('BLEM');
    const s = await h.seen.next();
    assert.deepEqual([s.remoteAddress, s.head], [STRANGER, 'PROBLEM']);
  });
});

describe('acceptProxyProtocol on a plain net.Server', () => {
  test('resolves the info and leaves the socket readable from the first application byte', async () => {
    const got = new Queue<string>();
    const opts: ProxyProtocolOptions = { trustedPeers: new BlockList() };
    opts.trustedPeers = trustList(['127.0.0.1', '10.0.0.0/8']);
    const server = createServer(async (socket) => {
      const info = await acceptProxyProtocol(socket, opts);
      if (!info) return;
      socket.setEncoding('latin1');
      let t = '';
      socket.on('data', (d: string) => (t += d));
      socket.on('end', () => {
        got.push(`${info.address}:${info.port} ${t}`);
        socket.end();
      });
    });
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const c = await dial((server.address() as { port: number }).port);
    c.on('error', () => {});
    c.end(Buffer.concat([v1('192.0.2.3', 3), Buffer.from('abc')]));
    assert.equal(await got.next(), '192.0.2.3:3 abc');
  });

  test('trustedPeers entries are validated up front', () => {
    assert.throws(() => trustList(['lb.example']), /not an IP address or CIDR/);
    assert.throws(() => trustList(['10.0.0.0/33']), /bad prefix length/);
    assert.throws(() => trustList(['fd00::/x']), /bad prefix length/);
    assert.throws(() => createProxyProtocolServer({ trustedPeers: ['nope'] }), TypeError);
    assert.throws(() => createProxyProtocolServer({ trustedPeers: [], timeoutMs: 0 }), RangeError);
    const l = trustList(['10.1.0.0/16', 'fd00::5', '::ffff:192.0.2.1']);
    assert.ok(l.check('10.1.2.3', 'ipv4'));
    assert.ok(!l.check('10.2.0.1', 'ipv4'));
    assert.ok(l.check('fd00::5', 'ipv6'));
    assert.ok(l.check('192.0.2.1', 'ipv4'));
  });
});
