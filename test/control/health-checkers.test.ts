/**
 * The checkers on loopback, where a test server controls every byte:
 * HTTP_GET's urls in turn, status ranges and digest; SMTP_CHECK's reply
 * codes and multi-line replies; DNS_CHECK's query bytes and the answers it
 * takes or refuses; several checkers on one RS; alpha; notify_up /
 * notify_down and omega running their scripts. Traffic goes to loopback only.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { dnsQuery, dnsReplyProblem } from '../../src/control/health-dns.js';
import { takeReply } from '../../src/control/health-smtp.js';
import type {
  DnsCheckSpec,
  HealthCheckSpec,
  HttpGetSpec,
  RealServerSpec,
  ServiceSpec,
  SmtpCheckSpec,
} from '../../src/control/model.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { checkerFor, listenOn, realSpec, serviceSpec, waitFor } from '../support/health-bench.js';

const LOCAL = parseIpv4('127.0.0.1');
const VIP = parseIpv4('10.10.1.100');
const T = { timeout: 10_000 };
const dir = mkdtempSync(join(tmpdir(), 'fullnat-health-checkers-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const real = (port: number, check: HealthCheckSpec | undefined, retry = 1): RealServerSpec =>
  realSpec(LOCAL, port, check, retry);
const service = (reals: RealServerSpec[], vport = 80): ServiceSpec =>
  serviceSpec(VIP, parseIpv4('10.10.3.1'), reals, vport);

describe('HTTP_GET: urls, status ranges, digest', () => {
  it(
    'every url in turn; a status outside the ranges or a wrong digest takes the RS out',
    T,
    async () => {
      const bodies: Record<string, { status: number; body: string }> = {
        '/a': { status: 204, body: '' },
        '/b': { status: 200, body: 'hello' },
      };
      const seen: IncomingMessage[] = [];
      const srv = await listenOn(
        createHttpServer((req, res) => {
          seen.push(req);
          const b = bodies[req.url ?? ''] ?? { status: 404, body: '' };
          res.writeHead(b.status);
          res.end(b.body);
        }),
        '127.0.0.1',
      );
      const md5 = createHash('md5').update('hello').digest('hex');
      const check: HttpGetSpec = {
        kind: 'HTTP_GET',
        urls: [
          { path: '/a', statusCodes: [[200, 299]] },
          { path: '/b', statusCodes: [[200, 200]], digest: md5, virtualhost: 'b.test' },
        ],
        connectTimeout: 0.5,
        virtualhost: 'all.test',
      };
      const { checker, changes, logs } = checkerFor([service([real(srv.port, check)])]);
      checker.start();
      try {
        await waitFor('both urls asked twice', () => seen.length >= 4);
        assert.equal(changes.length, 0);
        assert.deepEqual(
          seen.slice(0, 2).map((r) => [r.url, r.headers.host, r.httpVersion]),
          [
            ['/a', 'all.test', '1.0'],
            ['/b', 'b.test', '1.0'],
          ],
        );
        bodies['/b'] = { status: 200, body: 'changed' };
        await waitFor('DOWN on the digest', () => changes.length === 1);
        const down = logs.find((l) => l.msg === 'real server DOWN')!;
        assert.match(
          String(down.obj.reason),
          new RegExp(`^/b: status 200, digest [0-9a-f]{32} \\(expected ${md5}\\)$`),
        );
        bodies['/b'] = { status: 200, body: 'hello' };
        await waitFor('UP', () => changes.length === 2);
        bodies['/a'] = { status: 302, body: '' };
        await waitFor('DOWN on a status out of 200-299', () => changes.length === 3);
        const again = logs.filter((l) => l.msg === 'real server DOWN')[1]!;
        assert.equal(again.obj.reason, '/a: status 302');
        assert.deepEqual(
          changes.map((c) => c.healthy),
          [false, true, false],
        );
      } finally {
        checker.stop();
        await srv.close();
      }
    },
  );
});

/** An SMTP listener answering with the codes a test sets; each command it read. */
async function smtpServer(codes: { greeting: string; helo: string }, commands: string[]) {
  return listenOn(
    createServer((s: Socket) => {
      s.on('error', () => undefined);
      s.write(codes.greeting);
      let buf = '';
      s.on('data', (d: Buffer) => {
        buf += d.toString();
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          commands.push(line);
          if (line.startsWith('HELO')) s.write(codes.helo);
          else if (line === 'QUIT') s.end('221 bye\r\n');
        }
      });
    }),
    '127.0.0.1',
  );
}

describe('SMTP_CHECK', () => {
  it('reads multi-line replies as one', () => {
    assert.equal(takeReply('220-a\r\n220-b\r\n'), undefined);
    assert.deepEqual(takeReply('220-a\r\n220 b\r\nnext'), { code: 220, rest: 'next' });
    assert.deepEqual(takeReply('250\r\n'), { code: 250, rest: '' });
    assert.deepEqual(takeReply('garbage\r\n'), { code: 0, rest: '' });
  });

  it('220 then HELO name answered 250 passes; another greeting or HELO code fails', T, async () => {
    const commands: string[] = [];
    const codes = { greeting: '220-first\r\n220 mx ready\r\n', helo: '250 hi\r\n' };
    const srv = await smtpServer(codes, commands);
    const check: SmtpCheckSpec = {
      kind: 'SMTP_CHECK',
      connectTimeout: 0.5,
      heloName: 'lb.test',
    };
    const { checker, changes, logs } = checkerFor([service([real(srv.port, check)], 25)]);
    checker.start();
    try {
      await waitFor('two exchanges', () => commands.filter((c) => c === 'QUIT').length >= 2);
      assert.deepEqual(commands.slice(0, 2), ['HELO lb.test', 'QUIT']);
      assert.equal(changes.length, 0);
      codes.helo = '501 no\r\n';
      await waitFor('DOWN', () => changes.length === 1);
      assert.equal(logs.find((l) => l.msg === 'real server DOWN')!.obj.reason, 'HELO answered 501');
      codes.helo = '250 hi\r\n';
      await waitFor('UP', () => changes.length === 2);
      codes.greeting = '554 go away\r\n';
      await waitFor('DOWN again', () => changes.length === 3);
      assert.equal(logs.filter((l) => l.msg === 'real server DOWN')[1]!.obj.reason, 'greeting 554');
    } finally {
      checker.stop();
      await srv.close();
    }
  });
});

describe('DNS_CHECK', () => {
  it('the query: id, RD, one question, the name in labels, type and class IN', () => {
    const q = dnsQuery(0x1234, 'www.example.com', 'AAAA');
    assert.equal(
      q.toString('hex'),
      '1234' +
        '0100' +
        '0001' +
        '0000' +
        '0000' +
        '0000' +
        '03777777' +
        '076578616d706c65' +
        '03636f6d' +
        '00' +
        '001c' +
        '0001',
    );
    assert.equal(dnsQuery(1, '.', 'SOA').subarray(12).toString('hex'), '00' + '0006' + '0001');
  });

  it('an answer passes with its id, QR set and NOERROR only', () => {
    const reply = (id: number, flags: number): Buffer => {
      const b = Buffer.alloc(12);
      b.writeUInt16BE(id, 0);
      b.writeUInt16BE(flags, 2);
      return b;
    };
    assert.equal(dnsReplyProblem(reply(7, 0x8180), 7), undefined);
    assert.equal(dnsReplyProblem(reply(8, 0x8180), 7), 'reply with another id');
    assert.equal(dnsReplyProblem(reply(7, 0x0100), 7), 'not a response (QR clear)');
    assert.equal(dnsReplyProblem(reply(7, 0x8183), 7), 'RCODE NXDOMAIN');
    assert.equal(dnsReplyProblem(reply(7, 0x8185), 7), 'RCODE REFUSED');
    assert.equal(dnsReplyProblem(Buffer.alloc(5), 7), 'reply of 5 bytes (no DNS header)');
  });

  it('a server answering NOERROR keeps the RS; SERVFAIL and silence take it out', T, async () => {
    let rcode: number | undefined = 0;
    const sock: DgramSocket = createSocket('udp4');
    const seen: Buffer[] = [];
    sock.on('message', (m, from) => {
      seen.push(m);
      if (rcode === undefined) return;
      const r = Buffer.from(m);
      r.writeUInt16BE(0x8180 | rcode, 2);
      sock.send(r, from.port, from.address);
    });
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
    const port = sock.address().port;
    const check: DnsCheckSpec = {
      kind: 'DNS_CHECK',
      connectTimeout: 0.3,
      type: 'A',
      name: 'svc.test',
    };
    const { checker, changes, logs } = checkerFor([service([real(port, check)], 53)]);
    checker.start();
    try {
      await waitFor('3 queries', () => seen.length >= 3);
      assert.equal(changes.length, 0);
      assert.equal(seen[0]!.subarray(12).toString('hex'), '0373766304746573740000010001');
      rcode = 2;
      await waitFor('DOWN on SERVFAIL', () => changes.length === 1);
      assert.equal(logs.find((l) => l.msg === 'real server DOWN')!.obj.reason, 'RCODE SERVFAIL');
      rcode = 0;
      await waitFor('UP', () => changes.length === 2);
      rcode = undefined;
      await waitFor('DOWN on silence', () => changes.length === 3);
      assert.equal(
        logs.filter((l) => l.msg === 'real server DOWN')[1]!.obj.reason,
        'no reply after 0.3s',
      );
    } finally {
      checker.stop();
      await new Promise<void>((resolve) => sock.close(() => resolve()));
    }
  });
});

describe('several checkers, alpha, notify scripts, omega', () => {
  it('ALL_OF: the RS is DOWN while any checker fails, UP when all pass', T, async () => {
    const a = await listenOn(createServer(), '127.0.0.1');
    const b = await listenOn(createServer(), '127.0.0.1');
    const bPort = b.port;
    const check: HealthCheckSpec = {
      kind: 'ALL_OF',
      checks: [
        { kind: 'TCP_CHECK', connectTimeout: 0.3 },
        { kind: 'TCP_CHECK', connectTimeout: 0.3, connectPort: bPort },
      ],
    };
    const { checker, changes, logs } = checkerFor([service([real(a.port, check)])]);
    checker.start();
    let b2: Awaited<ReturnType<typeof listenOn>> | undefined;
    try {
      await waitFor('both probed twice', () => a.accepted() >= 2 && b.accepted() >= 2);
      assert.equal(changes.length, 0);
      await b.close();
      await waitFor('DOWN', () => changes.length === 1);
      const down = logs.find((l) => l.msg === 'real server DOWN')!;
      assert.equal(down.obj.reason, 'TCP_CHECK: ECONNREFUSED');
      assert.equal(down.obj.check, 'TCP_CHECK+TCP_CHECK');
      b2 = await listenOn(createServer(), '127.0.0.1', bPort);
      await waitFor('UP', () => changes.length === 2);
      assert.deepEqual(
        changes.map((c) => c.healthy),
        [false, true],
      );
    } finally {
      checker.stop();
      await a.close();
      await b2?.close();
    }
  });

  it('ALL_OF carries a misc_dynamic weight', T, async () => {
    const a = await listenOn(createServer(), '127.0.0.1');
    const check: HealthCheckSpec = {
      kind: 'ALL_OF',
      checks: [
        { kind: 'TCP_CHECK', connectTimeout: 0.3 },
        { kind: 'MISC_CHECK', path: 'x', argv: ['/bin/sh', '-c', 'exit 9'], dynamic: true },
      ],
    };
    const { checker, changes } = checkerFor([service([real(a.port, check)])]);
    checker.start();
    try {
      await waitFor('the weight', () => changes.length === 1);
      assert.equal(changes[0]!.weight, 7, 'exit 9 - 2');
      assert.equal(changes[0]!.healthy, true);
    } finally {
      checker.stop();
      await a.close();
    }
  });

  it('alpha: a checked RS is DOWN from the start until its first pass', T, async () => {
    const srv = await listenOn(createServer(), '127.0.0.1');
    const held = { ...real(srv.port, { kind: 'TCP_CHECK', connectTimeout: 0.3 }), alpha: true };
    const unchecked = { ...real(srv.port + 1, undefined), alpha: true };
    const { checker, changes } = checkerFor([service([held, unchecked])]);
    assert.deepEqual(
      changes.map((c) => [c.real.port, c.healthy]),
      [[srv.port, false]],
      'DOWN before any check ran; an RS without a check is not held',
    );
    assert.equal(
      checker.isHealthy({ vip: VIP, vport: 80, addr: LOCAL, port: srv.port, protocol: 'TCP' }),
      false,
    );
    checker.start();
    try {
      await waitFor('UP after the first pass', () => changes.length === 2);
      assert.equal(changes[1]!.healthy, true);
    } finally {
      checker.stop();
      await srv.close();
    }
  });

  it(
    'notify_up / notify_down run on the transitions; omega runs notify_down at stop()',
    T,
    async () => {
      const log = join(dir, 'notify.log');
      const script = (word: string) => ({
        path: `/bin/sh -c 'echo ${word} >> ${log}'`,
        argv: ['/bin/sh', '-c', `echo ${word} >> ${log}`],
      });
      let srv = await listenOn(createServer(), '127.0.0.1');
      const port = srv.port;
      const rs: RealServerSpec = {
        ...real(port, { kind: 'TCP_CHECK', connectTimeout: 0.3 }),
        notifyUp: script('up'),
        notifyDown: script('down'),
        omega: true,
      };
      const { checker, changes } = checkerFor([service([rs])]);
      const lines = (): string[] =>
        existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
      checker.start();
      try {
        await waitFor('a pass', () => srv.accepted() >= 1);
        assert.deepEqual(lines(), [], 'no script while nothing changes');
        await srv.close();
        await waitFor('DOWN', () => changes.length === 1);
        await waitFor('notify_down ran', () => lines().length === 1);
        srv = await listenOn(createServer(), '127.0.0.1', port);
        await waitFor('UP', () => changes.length === 2);
        await waitFor('notify_up ran', () => lines().length === 2);
        checker.stop();
        await waitFor('omega: notify_down at stop', () => lines().length === 3);
        assert.deepEqual(lines(), ['down', 'up', 'down']);
      } finally {
        checker.stop();
        await srv.close();
      }
    },
  );
});
