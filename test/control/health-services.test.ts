/**
 * Every keepalived checker against a real service in a network namespace,
 * from a configuration file as a user writes it: nginx over HTTP (two urls,
 * a status range and an MD5 digest) and over TLS with a certificate openssl
 * makes here (SSL_GET), an SMTP listener, dnsmasq (DNS_CHECK), the
 * namespace's own ICMP echo (PING_CHECK) and a script (MISC_CHECK). Each
 * service is broken in turn: its RS must go DOWN within
 * delay_loop + (retry − 1) × delay_before_retry + retry × timeout (the
 * checker's worst case, below keepalived's delay_loop × retry + timeouts),
 * the others stay UP, and it comes back within delay_loop + timeout once
 * repaired. nginx's log and dnsmasq's show what the probes sent.
 *
 *   this host 10.123.0.1 ── veth ── rs 10.123.0.2 (nginx :80 :443, smtp :2525, dnsmasq :53)
 */
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { parseConfig } from '../../src/control/config/index.js';
import { HealthChecker, type HealthChange } from '../../src/control/health.js';
import type { RealServerSpec } from '../../src/control/model.js';
import { NetnsLab, netnsAvailable } from '../../src/lab/netns.js';
import { missingTool, nginxConfig } from '../e2e/support/receiver.js';
import { sleep } from '../support/time.js';

const HOST = '10.123.0.1';
const RS = '10.123.0.2';
const DELAY_LOOP = 1;
const RETRY = 2;
const DELAY_BEFORE_RETRY = 0.5;
const TIMEOUT = 1;
/** Polling and process start-up on a shared machine. */
const SLACK_S = 0.7;
const DOWN_BOUND_S = DELAY_LOOP + (RETRY - 1) * DELAY_BEFORE_RETRY + RETRY * TIMEOUT + SLACK_S;
const UP_BOUND_S = DELAY_LOOP + TIMEOUT + SLACK_S;

function why(): string | undefined {
  const ns = netnsAvailable();
  if (!ns.ok) return ns.reason;
  return missingTool(['nginx', 'dnsmasq', 'openssl', 'ping']);
}
const skip = why();
const pid = process.pid % 100000;
const lab = new NetnsLab(`hc${pid}`);
const hostIf = `hc${pid}h`;
const dir = mkdtempSync(join(tmpdir(), 'fullnat-checkers-'));
const www = join(dir, 'www');
const flag = join(dir, 'misc-ok');
const DIGEST_BODY = 'the digested body\n';
const digest = createHash('md5').update(DIGEST_BODY).digest('hex');

const conf = `local_address_group g { ${HOST} }
virtual_server 10.123.9.1 80 {
    laddr_group_name g
    delay_loop ${DELAY_LOOP}
    real_server ${RS} 80 {
        HTTP_GET {
            url { path /http.txt status_code 200-299 }
            url { path /digest.txt digest ${digest} status_code 200 }
            virtualhost svc.test
            connect_timeout ${TIMEOUT} retry ${RETRY} delay_before_retry ${DELAY_BEFORE_RETRY}
        }
    }
}
virtual_server 10.123.9.1 443 {
    laddr_group_name g
    delay_loop ${DELAY_LOOP}
    real_server ${RS} 443 {
        SSL_GET {
            url { path /ssl.txt }
            virtualhost svc.test
            connect_timeout ${TIMEOUT} retry ${RETRY} delay_before_retry ${DELAY_BEFORE_RETRY}
        }
    }
}
virtual_server 10.123.9.1 25 {
    laddr_group_name g
    delay_loop ${DELAY_LOOP}
    real_server ${RS} 2525 {
        SMTP_CHECK {
            helo_name lb.test
            connect_timeout ${TIMEOUT} retry ${RETRY} delay_before_retry ${DELAY_BEFORE_RETRY}
        }
    }
}
virtual_server 10.123.9.1 53 {
    protocol UDP
    laddr_group_name g
    delay_loop ${DELAY_LOOP}
    real_server ${RS} 53 {
        DNS_CHECK {
            type A
            name svc.test
            connect_timeout ${TIMEOUT} retry ${RETRY} delay_before_retry ${DELAY_BEFORE_RETRY}
        }
    }
}
virtual_server 10.123.9.1 7 {
    laddr_group_name g
    delay_loop ${DELAY_LOOP}
    real_server ${RS} 7 {
        PING_CHECK {
            connect_timeout ${TIMEOUT} retry ${RETRY} delay_before_retry ${DELAY_BEFORE_RETRY}
        }
    }
}
virtual_server 10.123.9.1 8080 {
    laddr_group_name g
    delay_loop ${DELAY_LOOP}
    real_server ${RS} 8080 {
        MISC_CHECK {
            misc_path "/bin/sh -c 'test -e ${flag}'"
            misc_timeout ${TIMEOUT}
            retry ${RETRY}
            delay_before_retry ${DELAY_BEFORE_RETRY}
        }
    }
}
`;

/** The SMTP listener: a two-line greeting, HELO answered 250, QUIT 221; each command it reads on stdout. */
const SMTP_SERVER = `
const net = require('node:net');
net.createServer((s) => {
  s.on('error', () => {});
  s.write('220-rs.test first line\\r\\n220 rs.test ESMTP\\r\\n');
  let buf = '';
  s.on('data', (d) => {
    buf += d;
    for (let i; (i = buf.indexOf('\\n')) >= 0; ) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      console.log(line);
      if (/^HELO /i.test(line)) s.write('250 rs.test\\r\\n');
      else if (/^QUIT$/i.test(line)) s.end('221 bye\\r\\n');
      else s.write('500 unknown\\r\\n');
    }
  });
}).listen(2525, '${RS}', () => console.log('listening'));
`;

let checker: HealthChecker | undefined;
const changes: Array<HealthChange & { at: number }> = [];
let smtp: ChildProcess | undefined;
let smtpLog = '';
let dns: ChildProcess | undefined;
const reals = new Map<number, RealServerSpec>();

function startSmtp(): ChildProcess {
  const child = lab.spawn('rs', process.execPath, ['-e', SMTP_SERVER]);
  child.stdout?.on('data', (c: Buffer) => (smtpLog += c.toString()));
  return child;
}

function startDns(): ChildProcess {
  return lab.spawn('rs', 'dnsmasq', [
    '-k',
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    '--user=root',
    '--group=root',
    '--pid-file=',
    '--port=53',
    `--listen-address=${RS}`,
    '--bind-interfaces',
    '--address=/svc.test/10.123.0.50',
    '--log-queries',
    `--log-facility=${join(dir, 'dnsmasq.log')}`,
  ]);
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await gone;
}

async function tcpOpen(port: number, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: RS, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) assert.fail(`nothing listens on ${RS}:${port}`);
    await sleep(50);
  }
}

/** The state of the RS on `port`: the last change reported for it, UP when none. */
function healthyNow(port: number): boolean {
  const last = changes.filter((c) => c.real.port === port).at(-1);
  return last?.healthy ?? true;
}

/** Seconds from now until the RS on `port` is reported `healthy`; fails past `boundS` × 2. */
async function secondsUntil(port: number, healthy: boolean, boundS: number): Promise<number> {
  const t0 = Date.now();
  const from = changes.length;
  for (;;) {
    const c = changes.slice(from).find((x) => x.real.port === port && x.healthy === healthy);
    if (c) return (c.at - t0) / 1000;
    if (Date.now() - t0 > boundS * 2000) {
      assert.fail(`RS :${port} not ${healthy ? 'UP' : 'DOWN'} after ${boundS * 2}s`);
    }
    await sleep(20);
  }
}

/** Breaks one service, measures DOWN, checks the others are untouched, repairs it, measures UP. */
async function breakAndRepair(
  port: number,
  breakIt: () => void | Promise<void>,
  repair: () => void | Promise<void>,
  reason: RegExp,
): Promise<{ downS: number; upS: number }> {
  for (const p of reals.keys()) assert.ok(healthyNow(p), `RS :${p} UP before breaking :${port}`);
  const from = changes.length;
  await breakIt();
  const downS = await secondsUntil(port, false, DOWN_BOUND_S);
  assert.ok(downS <= DOWN_BOUND_S, `:${port} DOWN after ${downS}s (bound ${DOWN_BOUND_S}s)`);
  await repair();
  const upS = await secondsUntil(port, true, UP_BOUND_S);
  assert.ok(upS <= UP_BOUND_S, `:${port} UP after ${upS}s (bound ${UP_BOUND_S}s)`);
  const others = changes.slice(from).filter((c) => c.real.port !== port);
  assert.deepEqual(others, [], `only :${port} changed`);
  assert.match(lastDownReason(port), reason);
  return { downS, upS };
}

const downReasons = new Map<number, string>();
const lastDownReason = (port: number): string => downReasons.get(port) ?? '';

before(async () => {
  if (skip) return;
  lab.addHost('rs');
  execFileSync('ip', [
    'link',
    'add',
    hostIf,
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    lab.ns('rs'),
  ]);
  execFileSync('ip', ['addr', 'add', `${HOST}/24`, 'dev', hostIf]);
  execFileSync('ip', ['link', 'set', hostIf, 'up']);
  lab.ip('rs', 'addr', 'add', `${RS}/24`, 'dev', 'eth0');
  lab.ip('rs', 'link', 'set', 'eth0', 'up');

  execFileSync('mkdir', ['-p', www]);
  writeFileSync(join(www, 'http.txt'), 'ok\n');
  writeFileSync(join(www, 'ssl.txt'), 'ok\n');
  writeFileSync(join(www, 'digest.txt'), DIGEST_BODY);
  writeFileSync(flag, '');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=svc.test',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  writeFileSync(
    join(dir, 'nginx.conf'),
    nginxConfig(
      dir,
      `    log_format probe '$server_port $host "$ssl_server_name" "$request" $status "$http_user_agent"';
    access_log ${join(dir, 'access.log')} probe;
    server {
        listen ${RS}:80;
        listen ${RS}:443 ssl;
        ssl_certificate ${join(dir, 'cert.pem')};
        ssl_certificate_key ${join(dir, 'key.pem')};
        root ${www};
    }
`,
    ),
  );
  lab.spawn('rs', 'nginx', ['-c', join(dir, 'nginx.conf')]);
  smtp = startSmtp();
  dns = startDns();
  await Promise.all([tcpOpen(80), tcpOpen(443), tcpOpen(2525)]);

  const cfg = parseConfig(conf, join(dir, 'checkers.conf'));
  for (const s of cfg.services) for (const r of s.realServers) reals.set(r.port, r);
  checker = new HealthChecker(cfg, {
    logger: {
      info: () => undefined,
      warn: (obj, msg) => {
        const o = obj as { real?: string; reason?: string };
        if (msg === 'real server DOWN' && o.real)
          downReasons.set(Number(o.real.split(':').at(-1)), o.reason ?? '');
      },
    },
    onChange: (c) => changes.push({ ...c, at: Date.now() }),
  });
  checker.start();
  // Every check passes a few rounds before anything is broken: nothing changes.
  await sleep(DELAY_LOOP * 2500);
  assert.deepEqual(
    changes.map((c) => `${c.real.port} ${c.healthy}`),
    [],
    'every RS UP at the start',
  );
});

after(async () => {
  checker?.stop();
  await lab.destroy();
  try {
    execFileSync('ip', ['link', 'del', hostIf], { stdio: 'ignore' });
  } catch {
    // gone with the namespace's end of the pair
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('keepalived checkers against real services in a namespace', { skip }, () => {
  const T = { timeout: 30_000 };

  it(
    'HTTP_GET: a 404 on one url (status_code 200-299) takes the RS out; back when served',
    T,
    async () => {
      const t = await breakAndRepair(
        80,
        () => rmSync(join(www, 'http.txt')),
        () => writeFileSync(join(www, 'http.txt'), 'ok\n'),
        /^\/http\.txt: status 404$/,
      );
      const log = readFileSync(join(dir, 'access.log'), 'utf8');
      // The virtualhost is the Host header, and the request is keepalived's.
      assert.match(log, /^80 svc\.test "-" "GET \/http\.txt HTTP\/1\.0" 200 "KeepAliveClient"$/m);
      assert.match(log, /^80 svc\.test "-" "GET \/digest\.txt HTTP\/1\.0" 200 "KeepAliveClient"$/m);
      process.stdout.write(`# HTTP_GET status: DOWN in ${t.downS}s, UP in ${t.upS}s\n`);
    },
  );

  it(
    'HTTP_GET: a body whose MD5 differs from digest takes the RS out (status still 200)',
    T,
    async () => {
      const t = await breakAndRepair(
        80,
        () => writeFileSync(join(www, 'digest.txt'), 'another body\n'),
        () => writeFileSync(join(www, 'digest.txt'), DIGEST_BODY),
        new RegExp(`^/digest\\.txt: status 200, digest [0-9a-f]{32} \\(expected ${digest}\\)$`),
      );
      process.stdout.write(`# HTTP_GET digest: DOWN in ${t.downS}s, UP in ${t.upS}s\n`);
    },
  );

  it(
    'SSL_GET: over TLS with SNI, a self-signed certificate accepted; a 404 takes it out',
    T,
    async () => {
      const t = await breakAndRepair(
        443,
        () => rmSync(join(www, 'ssl.txt')),
        () => writeFileSync(join(www, 'ssl.txt'), 'ok\n'),
        /^status 404$/,
      );
      const log = readFileSync(join(dir, 'access.log'), 'utf8');
      assert.match(
        log,
        /^443 svc\.test "svc\.test" "GET \/ssl\.txt HTTP\/1\.0" 200 "KeepAliveClient"$/m,
      );
      process.stdout.write(`# SSL_GET: DOWN in ${t.downS}s, UP in ${t.upS}s\n`);
    },
  );

  it(
    'SMTP_CHECK: greeting, HELO helo_name, QUIT; a dead listener takes the RS out',
    T,
    async () => {
      assert.match(smtpLog, /^HELO lb\.test$/m);
      assert.match(smtpLog, /^QUIT$/m);
      const t = await breakAndRepair(
        2525,
        () => stop(smtp),
        async () => {
          smtp = startSmtp();
          await tcpOpen(2525);
        },
        /^ECONNREFUSED$/,
      );
      process.stdout.write(`# SMTP_CHECK: DOWN in ${t.downS}s, UP in ${t.upS}s\n`);
    },
  );

  it('DNS_CHECK: dnsmasq answers the A query for name; stopped, the RS is out', T, async () => {
    const queries = readFileSync(join(dir, 'dnsmasq.log'), 'utf8');
    // dnsmasq read our packet as the query the config asks for.
    assert.match(queries, new RegExp(`query\\[A\\] svc\\.test from ${HOST.replace(/\./g, '\\.')}`));
    const t = await breakAndRepair(
      53,
      () => stop(dns),
      () => {
        dns = startDns();
      },
      /^ECONNREFUSED$/,
    );
    process.stdout.write(`# DNS_CHECK: DOWN in ${t.downS}s, UP in ${t.upS}s\n`);
  });

  it('PING_CHECK: echo ignored by the RS takes it out; answered again, it is back', T, async () => {
    const t = await breakAndRepair(
      7,
      () => lab.sysctl('rs', 'net.ipv4.icmp_echo_ignore_all', '1'),
      () => lab.sysctl('rs', 'net.ipv4.icmp_echo_ignore_all', '0'),
      /^no echo reply in 1s$/,
    );
    process.stdout.write(`# PING_CHECK: DOWN in ${t.downS}s, UP in ${t.upS}s\n`);
  });

  it('MISC_CHECK: the script failing takes the RS out; passing again, it is back', T, async () => {
    const t = await breakAndRepair(
      8080,
      () => rmSync(flag),
      () => writeFileSync(flag, ''),
      /^exit status 1$/,
    );
    process.stdout.write(`# MISC_CHECK: DOWN in ${t.downS}s, UP in ${t.upS}s\n`);
  });
});
