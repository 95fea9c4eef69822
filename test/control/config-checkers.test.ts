/**
 * HTTP_GET / SSL_GET with several urls, SMTP_CHECK, DNS_CHECK, PING_CHECK,
 * several checkers on one real server, and the RS life keywords (alpha,
 * omega, inhibit_on_failure, notify_up / notify_down) in the configuration
 * file: keepalived's defaults, every keyword, and each refusal as
 * `FILE:LINE: reason`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ConfigError, diffConfig, parseConfig } from '../../src/control/config/index.js';
import type { FullnatConfig, HealthCheckSpec } from '../../src/control/model.js';
import { parseIpv4 } from '../../src/wire/bytes.js';

const BASE = `local_address_group g1 {
    10.10.3.1
}
virtual_server 10.10.1.100 80 {
    laddr_group_name g1
    VSOPTS
    real_server 10.10.2.2 80 {
        weight 4
        CHECK
    }
}
`;

const withCheck = (check: string, vs = ''): string =>
  BASE.replace('CHECK', check).replace('VSOPTS', vs);

const parse = (t: string): FullnatConfig => parseConfig(t, 'ck.conf', () => '');

const checkOf = (t: string): HealthCheckSpec | undefined =>
  parse(t).services[0]!.realServers[0]!.check;

function expectError(check: string, needle: string, reason: RegExp, vs = ''): void {
  const text = withCheck(check, vs);
  let caught: unknown;
  try {
    parse(text);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  const line = text.split('\n').findIndex((l) => l.includes(needle)) + 1;
  assert.ok(line > 0, `needle '${needle}' not in text`);
  assert.equal(caught.line, line, caught.message);
  assert.ok(caught.message.startsWith(`ck.conf:${line}: `), caught.message);
  assert.match(caught.reason, reason);
}

describe('config: HTTP_GET and SSL_GET', () => {
  it("keepalived's defaults: any 2xx, connect_timeout 5, the RS's address and port", () => {
    assert.deepEqual(checkOf(withCheck('SSL_GET { url { path / } }')), {
      kind: 'SSL_GET',
      urls: [{ path: '/', statusCodes: [[200, 299]] }],
      connectTimeout: 5,
    });
  });

  it('several urls, codes and ranges, digest, virtualhost at both levels, connection keywords', () => {
    const text = withCheck(`HTTP_GET {
            url {
                path /a
                status_code 200 301-302
                status_code 404
                digest 9E107D9D372BB6826BD81D3542A419D6
            }
            url { path /b virtualhost b.example:8080 }
            virtualhost www.example
            connect_ip 10.10.2.9
            connect_port 8080
            bindto 10.10.3.1
            connect_timeout 2
            nb_get_retry 4
            delay_before_retry 0.5
        }`);
    const cfg = parse(text);
    const rs = cfg.services[0]!.realServers[0]!;
    assert.deepEqual(rs.check, {
      kind: 'HTTP_GET',
      urls: [
        {
          path: '/a',
          statusCodes: [
            [200, 200],
            [301, 302],
            [404, 404],
          ],
          digest: '9e107d9d372bb6826bd81d3542a419d6',
        },
        { path: '/b', statusCodes: [[200, 299]], virtualhost: 'b.example:8080' },
      ],
      connectTimeout: 2,
      connectPort: 8080,
      connectIp: parseIpv4('10.10.2.9'),
      bindto: parseIpv4('10.10.3.1'),
      virtualhost: 'www.example',
    });
    assert.deepEqual([rs.retry, rs.delayBeforeRetry], [4, 0.5]);
  });

  it('refusals', () => {
    expectError('HTTP_GET { connect_timeout 1 }', 'HTTP_GET', /HTTP_GET needs 'url \{ path/);
    expectError('SSL_GET {\n }', 'SSL_GET', /SSL_GET needs 'url \{ path/);
    expectError(
      'HTTP_GET { url {\n path /\n digest abc\n } }',
      'digest abc',
      /bad digest 'abc' \(expected the body's MD5: 32 hex digits\)/,
    );
    expectError(
      'HTTP_GET { url {\n path /\n status_code 300-200\n } }',
      'status_code 300-200',
      /bad status_code range '300-200' \(start above end\)/,
    );
    expectError(
      'HTTP_GET { url {\n path /\n status_code 99\n } }',
      'status_code 99',
      /status_code/,
    );
    expectError(
      'HTTP_GET { url {\n path /\n status_code\n } }',
      'status_code',
      /'status_code' needs codes or ranges/,
    );
    expectError(
      'HTTP_GET { url { path / }\n virtualhost a/b\n }',
      'virtualhost a/b',
      /bad virtualhost 'a\/b'/,
    );
    expectError(
      'HTTP_GET { url { path / }\n bindto fd00::1\n }',
      'bindto fd00::1',
      /bindto fd00::1 is IPv6 but the check goes to IPv4 10\.10\.2\.2/,
    );
    expectError(
      'HTTP_GET { url { path / }\n regex foo\n }',
      'regex foo',
      /unknown keyword 'regex' in HTTP_GET \(valid: .*connect_timeout.*connect_ip.*bindto.*connect_port.*virtualhost.*url\)/,
    );
  });
});

describe('config: SMTP_CHECK, DNS_CHECK, PING_CHECK', () => {
  it("keepalived's defaults", () => {
    assert.deepEqual(checkOf(withCheck('SMTP_CHECK {\n }')), {
      kind: 'SMTP_CHECK',
      connectTimeout: 5,
      heloName: 'smtpchecker.keepalived.org',
    });
    assert.deepEqual(checkOf(withCheck('DNS_CHECK {\n }')), {
      kind: 'DNS_CHECK',
      connectTimeout: 5,
      type: 'SOA',
      name: '.',
    });
    assert.deepEqual(checkOf(withCheck('PING_CHECK {\n }')), {
      kind: 'PING_CHECK',
      connectTimeout: 5,
    });
  });

  it('every keyword', () => {
    assert.deepEqual(
      checkOf(withCheck('SMTP_CHECK { helo_name lb.example connect_port 2525 connect_timeout 3 }')),
      { kind: 'SMTP_CHECK', connectTimeout: 3, connectPort: 2525, heloName: 'lb.example' },
    );
    assert.deepEqual(
      checkOf(withCheck('DNS_CHECK { type aaaa name www.example.com. connect_port 5353 }')),
      {
        kind: 'DNS_CHECK',
        connectTimeout: 5,
        connectPort: 5353,
        type: 'AAAA',
        name: 'www.example.com',
      },
    );
    assert.deepEqual(
      checkOf(withCheck('PING_CHECK { connect_ip 10.10.2.7 bindto 10.10.3.1 connect_timeout 1 }')),
      {
        kind: 'PING_CHECK',
        connectTimeout: 1,
        connectIp: parseIpv4('10.10.2.7'),
        bindto: parseIpv4('10.10.3.1'),
      },
    );
  });

  it('refusals', () => {
    expectError(
      'DNS_CHECK {\n type PTR\n }',
      'type PTR',
      /unknown DNS_CHECK type 'PTR' \(valid: A, NS, CNAME, SOA, MX, TXT, AAAA\)/,
    );
    expectError(
      'DNS_CHECK {\n name bad..name\n }',
      'name bad..name',
      /bad DNS_CHECK name 'bad\.\.name'/,
    );
    expectError(
      `DNS_CHECK {\n name ${'a'.repeat(64)}.example\n }`,
      'name aaaa',
      /bad DNS_CHECK name/,
    );
    expectError('SMTP_CHECK {\n helo_name\n }', 'helo_name', /'helo_name' needs a value/);
    expectError(
      'PING_CHECK {\n connect_port 7\n }',
      'connect_port 7',
      /unknown keyword 'connect_port' in PING_CHECK/,
    );
    expectError('SMTP_CHECK {\n retry 0\n }', 'retry 0', /retry/);
  });
});

describe('config: keepalived forms around the checkers', () => {
  it("SMTP_CHECK's host blocks: one more checker each, defaulting to the block around them", () => {
    const check = checkOf(
      withCheck(`SMTP_CHECK {
            connect_timeout 3
            helo_name lb.test
            host { connect_ip 10.10.2.7 }
            host {
                connect_ip 10.10.2.8
                connect_port 587
                connect_timeout 1
            }
        }`),
    );
    assert.deepEqual(check, {
      kind: 'ALL_OF',
      checks: [
        { kind: 'SMTP_CHECK', connectTimeout: 3, heloName: 'lb.test' },
        {
          kind: 'SMTP_CHECK',
          connectTimeout: 3,
          connectIp: parseIpv4('10.10.2.7'),
          heloName: 'lb.test',
        },
        {
          kind: 'SMTP_CHECK',
          connectTimeout: 1,
          connectPort: 587,
          connectIp: parseIpv4('10.10.2.8'),
          heloName: 'lb.test',
        },
      ],
    });
  });

  it("a virtual_server's virtualhost reaches every HTTP_GET / SSL_GET that names none", () => {
    const check = checkOf(
      withCheck(
        'HTTP_GET { url { path / } }\n SSL_GET { url { path / } virtualhost own.test }\n TCP_CHECK { }',
        'virtualhost svc.test',
      ),
    );
    assert.ok(check?.kind === 'ALL_OF');
    assert.deepEqual(
      check.checks.map((c) =>
        c.kind === 'HTTP_GET' || c.kind === 'SSL_GET' ? c.virtualhost : c.kind,
      ),
      ['svc.test', 'own.test', 'TCP_CHECK'],
    );
  });
});

describe('config: several checkers on one real server', () => {
  it('make an ALL_OF set, in the order written; repeats of one kind are allowed', () => {
    const check = checkOf(
      withCheck(`TCP_CHECK { connect_port 81 }
        PING_CHECK { }
        TCP_CHECK { connect_port 82 }`),
    );
    assert.deepEqual(check, {
      kind: 'ALL_OF',
      checks: [
        { kind: 'TCP_CHECK', connectTimeout: 5, connectPort: 81 },
        { kind: 'PING_CHECK', connectTimeout: 5 },
        { kind: 'TCP_CHECK', connectTimeout: 5, connectPort: 82 },
      ],
    });
  });
});

describe('config: alpha, omega, inhibit_on_failure, notify_up / notify_down', () => {
  it('absent by default', () => {
    const rs = parse(withCheck('TCP_CHECK { }')).services[0]!.realServers[0]!;
    for (const k of ['alpha', 'omega', 'inhibitOnFailure', 'notifyUp', 'notifyDown'])
      assert.equal(k in rs, false, k);
  });

  it('virtual_server flags reach every RS; real_server scripts are split into words', () => {
    const text = withCheck(
      `TCP_CHECK { }
        notify_up "/usr/local/bin/rs-up web 'two words'"
        notify_down /usr/local/bin/rs-down`,
      'alpha\n    omega\n    inhibit_on_failure',
    );
    const rs = parse(text).services[0]!.realServers[0]!;
    assert.equal(rs.alpha, true);
    assert.equal(rs.omega, true);
    assert.equal(rs.inhibitOnFailure, true);
    assert.deepEqual(rs.notifyUp, {
      path: "/usr/local/bin/rs-up web 'two words'",
      argv: ['/usr/local/bin/rs-up', 'web', 'two words'],
    });
    assert.deepEqual(rs.notifyDown, {
      path: '/usr/local/bin/rs-down',
      argv: ['/usr/local/bin/rs-down'],
    });
    const own = parse(withCheck('inhibit_on_failure')).services[0]!.realServers[0]!;
    assert.equal(own.inhibitOnFailure, true, 'inhibit_on_failure in the real_server alone');
  });

  it('hysteresis, quorum_up, quorum_down in a virtual_server', () => {
    const svc = parse(
      withCheck(
        '',
        'quorum 3\n    hysteresis 1\n    quorum_up /usr/bin/q-up\n    quorum_down "/usr/bin/q x"',
      ),
    ).services[0]!;
    assert.equal(svc.quorum, 3);
    assert.equal(svc.hysteresis, 1);
    assert.deepEqual(svc.quorumUp, { path: '/usr/bin/q-up', argv: ['/usr/bin/q-up'] });
    assert.deepEqual(svc.quorumDown, { path: '/usr/bin/q x', argv: ['/usr/bin/q', 'x'] });
    const plain = parse(withCheck('')).services[0]!;
    for (const k of ['hysteresis', 'quorumUp', 'quorumDown']) assert.equal(k in plain, false, k);
  });

  it('sorry_server IP PORT in a virtual_server', () => {
    const svc = parse(withCheck('TCP_CHECK { }', 'sorry_server 10.10.9.9 8080')).services[0]!;
    assert.deepEqual(svc.sorryServer, { addr: parseIpv4('10.10.9.9'), port: 8080 });
    assert.equal('sorryServer' in parse(withCheck('')).services[0]!, false);
  });

  it('refusals', () => {
    expectError('', 'sorry_server', /'sorry_server' needs IP PORT/, 'sorry_server');
    expectError('', 'hysteresis -1', /hysteresis/, 'hysteresis -1');
    expectError(
      '',
      'quorum_up q.sh',
      /quorum_up program 'q\.sh' must be an absolute path/,
      'quorum_up q.sh',
    );
    expectError(
      '',
      'sorry_server 10.10.2.2 80',
      /sorry_server 10\.10\.2\.2:80 is also a real_server \(ck\.conf:\d+\)/,
      'sorry_server 10.10.2.2 80',
    );
    expectError(
      '',
      'sorry_server fd00::9 80',
      /sorry_server fd00::9 is IPv6 but the virtual_server 10\.10\.1\.100 is IPv4/,
      'sorry_server fd00::9 80',
    );
    expectError(
      'notify_up rs-up.sh',
      'notify_up',
      /notify_up program 'rs-up\.sh' must be an absolute path/,
    );
    expectError('notify_down', 'notify_down', /'notify_down' needs a program/);
    expectError('alpha', 'alpha', /unknown keyword 'alpha' in real_server/);
    expectError('TCP_CHECK { }', 'omega 1', /unexpected extra value '1' after 'omega'/, 'omega 1');
  });
});

describe('config: the reload diff sees the new keywords', () => {
  it('notify scripts and inhibit_on_failure per RS; sorry_server and the quorum rule per service', () => {
    const a = parse(withCheck('TCP_CHECK { }'));
    const b = parse(
      withCheck(
        'TCP_CHECK { }\n notify_up /bin/true\n inhibit_on_failure',
        'hysteresis 1\n    sorry_server 10.10.9.9 80',
      ),
    );
    const d = diffConfig(a, b);
    assert.equal(d.changedServices.length, 1);
    const c = d.changedServices[0]!;
    assert.deepEqual(c.changedReals[0]!.fields, ['inhibitOnFailure', 'notifyUp']);
    assert.equal(c.sorryServer, true);
    assert.equal(c.quorumRule, true);
    assert.deepEqual(diffConfig(b, b).changedServices, []);
  });
});
