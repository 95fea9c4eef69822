/**
 * UDP_CHECK and MISC_CHECK in the configuration file: keepalived's keywords
 * and hex forms, every refusal as `FILE:LINE: reason`, the reload diff, and a
 * running load balancer that keeps its configuration on a bad reload.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { ConfigError, diffConfig, parseConfig } from '../../src/control/config/index.js';
import type { FullnatConfig, HealthCheckSpec } from '../../src/control/model.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { noHost } from '../support/no-host.js';
import { tempConfig, testLb } from '../support/lb-harness.js';

const BASE = `local_address_group g1 {
    10.10.3.1
}
virtual_server 10.10.1.100 53 {
    laddr_group_name g1
    real_server 10.10.2.2 53 {
        weight 4
        CHECK
    }
}
`;

/** BASE with the real server's check replaced by `check`. */
const withCheck = (check: string): string => BASE.replace('CHECK', check);

const parse = (t: string): FullnatConfig => parseConfig(t, 'hc.conf', () => '');

const checkOf = (t: string): HealthCheckSpec | undefined =>
  parse(t).services[0]!.realServers[0]!.check;

function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `needle '${needle}' not in text`);
  return i + 1;
}

/** The check block `check` refused at the line holding `needle`, for `reason`. */
function expectError(check: string, needle: string, reason: RegExp): void {
  const text = withCheck(check);
  let caught: unknown;
  try {
    parse(text);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  const line = lineOf(text, needle);
  assert.equal(caught.file, 'hc.conf');
  assert.equal(caught.line, line, caught.message);
  assert.ok(caught.message.startsWith(`hc.conf:${line}: `), caught.message);
  assert.ok(!caught.message.includes('\n'), 'one line');
  assert.match(caught.reason, reason);
}

const UDP_DEFAULTS = {
  kind: 'UDP_CHECK',
  connectTimeout: 5,
  payload: '',
  requireReply: false,
  minReplyLength: 0,
  maxReplyLength: 255,
} as const;

describe('config: UDP_CHECK', () => {
  it("keepalived's defaults: an empty datagram, no reply required, replies of 0 to 255 bytes", () => {
    assert.deepEqual(checkOf(withCheck('UDP_CHECK {\n}')), UDP_DEFAULTS);
  });

  it('every keyword, hex with spaces and odd digits as keepalived reads it, x for any nibble', () => {
    const text = withCheck(`UDP_CHECK {
            connect_ip 10.10.2.9
            connect_port 5353
            bindto 10.10.3.1
            connect_timeout 0.5
            retry 2
            delay_before_retry 0.2
            delay_loop 3
            payload 12 34 0100 0001 abc
            require_reply 1x34 81 8X
            min_reply_length 12
            max_reply_length 512
        }`);
    assert.deepEqual(checkOf(text), {
      kind: 'UDP_CHECK',
      connectTimeout: 0.5,
      connectPort: 5353,
      connectIp: parseIpv4('10.10.2.9'),
      bindto: parseIpv4('10.10.3.1'),
      // `abc`: a pair, then a digit alone, which is a byte by itself.
      payload: '123401000001ab0c',
      requireReply: true,
      reply: '1x34818x',
      minReplyLength: 12,
      maxReplyLength: 512,
    });
    const rs = parse(text).services[0]!.realServers[0]!;
    assert.deepEqual([rs.retry, rs.delayBeforeRetry, rs.delayLoop], [2, 0.2, 3]);
  });

  it('require_reply alone asks for any answer; nb_get_retry is retry', () => {
    const text = withCheck('UDP_CHECK {\n require_reply\n nb_get_retry 4\n }');
    assert.deepEqual(checkOf(text), { ...UDP_DEFAULTS, requireReply: true });
    assert.equal(parse(text).services[0]!.realServers[0]!.retry, 4);
  });

  it('IPv6 connect_ip and bindto; the check is accepted on a TCP service', () => {
    const check = checkOf(
      withCheck('UDP_CHECK {\n connect_ip 2001:db8::5\n bindto 2001:db8::1\n payload 00\n }'),
    );
    assert.deepEqual(check, {
      ...UDP_DEFAULTS,
      connectIp: Ipv6Address.parse('2001:db8::5'),
      bindto: Ipv6Address.parse('2001:db8::1'),
      payload: '00',
    });
    assert.equal(parse(withCheck('UDP_CHECK {\n}')).services[0]!.protocol, 'TCP');
  });

  it('refusals name FILE:LINE and the reason', () => {
    expectError('UDP_CHECK {\n payload\n }', 'payload', /'payload' needs hex bytes/);
    expectError(
      'UDP_CHECK {\n payload 01 zz\n }',
      'payload',
      /bad payload 'zz' \(expected hex digits; spaces may separate bytes\)/,
    );
    expectError(
      'UDP_CHECK {\n payload 0x\n }',
      'payload',
      /bad payload '0x' \(expected hex digits;/,
    );
    expectError(
      'UDP_CHECK {\n require_reply 01 g0\n }',
      'require_reply',
      /bad require_reply 'g0' \(expected hex digits, or 'x' for any nibble/,
    );
    expectError(
      'UDP_CHECK {\n connect_ip 10.10.2\n }',
      'connect_ip',
      /bad connect_ip '10.10.2' \(expected an IPv4 or IPv6 address\)/,
    );
    expectError('UDP_CHECK {\n connect_ip 0.0.0.0\n }', 'connect_ip', /unspecified address/);
    expectError('UDP_CHECK {\n bindto ::\n }', 'bindto', /bad bindto '::' \(unspecified address\)/);
    expectError(
      'UDP_CHECK {\n bindto 2001:db8::1\n }',
      'bindto',
      /bindto 2001:db8::1 is IPv6 but the check goes to IPv4 10.10.2.2/,
    );
    expectError(
      'UDP_CHECK {\n connect_ip 2001:db8::5\n bindto 10.10.3.1\n }',
      'bindto',
      /bindto 10.10.3.1 is IPv4 but the check goes to IPv6 2001:db8::5/,
    );
    expectError('UDP_CHECK {\n connect_port 0\n }', 'connect_port', /connect_port/);
    expectError('UDP_CHECK {\n connect_timeout 0\n }', 'connect_timeout', /bad connect_timeout/);
    expectError('UDP_CHECK {\n max_reply_length 65536\n }', 'max_reply_length', /max_reply_length/);
    expectError(
      'UDP_CHECK {\n min_reply_length 10\n max_reply_length 4\n }',
      'max_reply_length',
      /min_reply_length 10 > max_reply_length 4: the check could never pass/,
    );
    expectError(
      'UDP_CHECK {\n min_reply_length 300\n }',
      'UDP_CHECK',
      /min_reply_length 300 > max_reply_length 255/,
    );
    expectError(
      'UDP_CHECK {\n require_reply 0102030405\n max_reply_length 4\n }',
      'max_reply_length',
      /require_reply of 5 bytes > max_reply_length 4/,
    );
    expectError(
      'UDP_CHECK {\n payload 01\n payload 02\n }',
      'payload 02',
      /'payload' given twice in this block/,
    );
    expectError(
      'UDP_CHECK {\n warmup 3\n }',
      'warmup',
      /unknown keyword 'warmup' in UDP_CHECK \(valid: .*connect_ip.*bindto.*payload.*require_reply/,
    );
    // Two checkers are a set (keepalived: the RS needs both), no longer a refusal.
    assert.deepEqual(checkOf(withCheck('UDP_CHECK { }\n TCP_CHECK { }')), {
      kind: 'ALL_OF',
      checks: [UDP_DEFAULTS, { kind: 'TCP_CHECK', connectTimeout: 5 }],
    });
  });
});

describe('config: MISC_CHECK', () => {
  it('misc_path split into words without a shell; defaults: no timeout (delay_loop), not dynamic', () => {
    assert.deepEqual(checkOf(withCheck('MISC_CHECK {\n misc_path /usr/local/bin/check\n }')), {
      kind: 'MISC_CHECK',
      path: '/usr/local/bin/check',
      argv: ['/usr/local/bin/check'],
      dynamic: false,
    });
    const text = withCheck(`MISC_CHECK {
            misc_path "/bin/sh  -c 'test -e /run/up && exit 0'   10.10.2.2"
            misc_timeout 2.5
            misc_dynamic
            retry 1
        }`);
    assert.deepEqual(checkOf(text), {
      kind: 'MISC_CHECK',
      path: "/bin/sh  -c 'test -e /run/up && exit 0'   10.10.2.2",
      argv: ['/bin/sh', '-c', 'test -e /run/up && exit 0', '10.10.2.2'],
      timeout: 2.5,
      dynamic: true,
    });
    assert.equal(parse(text).services[0]!.realServers[0]!.retry, 1);
    // '' is an argument of its own; quotes join with the text around them.
    const joined = checkOf(withCheck(`MISC_CHECK {\n misc_path "/bin/x '' a'b c'd"\n }`));
    assert.ok(joined?.kind === 'MISC_CHECK');
    assert.deepEqual(joined.argv, ['/bin/x', '', 'ab cd']);
  });

  it('user: a name from /etc/passwd (its group unless one is given), or numeric ids', () => {
    const misc = (user: string): HealthCheckSpec | undefined =>
      checkOf(withCheck(`MISC_CHECK {\n misc_path /bin/true\n user ${user}\n }`));
    assert.deepEqual(misc('root'), {
      kind: 'MISC_CHECK',
      path: '/bin/true',
      argv: ['/bin/true'],
      dynamic: false,
      uid: 0,
      gid: 0,
    });
    const ids = (user: string): [number | undefined, number | undefined] => {
      const c = misc(user);
      assert.ok(c?.kind === 'MISC_CHECK');
      return [c.uid, c.gid];
    };
    assert.deepEqual(ids('root 0'), [0, 0]);
    assert.deepEqual(ids('4242 4343'), [4242, 4343]);
    assert.deepEqual(ids('4242'), [4242, 4242], 'an unlisted uid keeps a group of its number');
  });

  it('refusals name FILE:LINE and the reason', () => {
    expectError(
      'MISC_CHECK {\n misc_timeout 3\n }',
      'MISC_CHECK',
      /MISC_CHECK needs 'misc_path "\/path\/to\/check ARGS"'/,
    );
    expectError('MISC_CHECK {\n misc_path\n }', 'misc_path', /'misc_path' needs a program/);
    expectError('MISC_CHECK {\n misc_path "  "\n }', 'misc_path', /'misc_path' needs a program/);
    expectError(
      'MISC_CHECK {\n misc_path /bin/check 10.10.2.2\n }',
      'misc_path',
      /misc_path with arguments goes in double quotes: misc_path "\/bin\/check 10.10.2.2"/,
    );
    expectError(
      'MISC_CHECK {\n misc_path "check.sh 1"\n }',
      'misc_path',
      /misc_path program 'check.sh' must be an absolute path/,
    );
    expectError(
      `MISC_CHECK {\n misc_path "/bin/sh -c 'exit 1"\n }`,
      'misc_path',
      /has an unterminated single quote/,
    );
    expectError(
      'MISC_CHECK {\n misc_path /bin/true\n misc_timeout 0\n }',
      'misc_timeout',
      /bad misc_timeout '0' \(expected seconds, more than 0/,
    );
    expectError(
      'MISC_CHECK {\n misc_path /bin/true\n misc_dynamic 5\n }',
      'misc_dynamic',
      /unexpected extra value '5' after 'misc_dynamic'/,
    );
    expectError(
      'MISC_CHECK {\n misc_path /bin/true\n user no-such-user-here\n }',
      'user',
      /unknown user 'no-such-user-here' \(not in \/etc\/passwd; a numeric uid is taken as is\)/,
    );
    expectError(
      'MISC_CHECK {\n misc_path /bin/true\n user root no-such-group-here\n }',
      'user',
      /unknown group 'no-such-group-here'/,
    );
    expectError(
      'MISC_CHECK {\n misc_path /bin/true\n user\n }',
      'user',
      /expected 'user USER \[GROUP\]'/,
    );
    expectError(
      'MISC_CHECK {\n misc_path /bin/true\n user 4294967295\n }',
      'user',
      /unknown user '4294967295'/,
    );
    expectError(
      'MISC_CHECK {\n misc_path /bin/true\n misc_path /bin/false\n }',
      'misc_path /bin/false',
      /'misc_path' given twice in this block/,
    );
    expectError(
      'MISC_CHECK {\n misc_path /bin/true\n connect_port 80\n }',
      'connect_port',
      /unknown keyword 'connect_port' in MISC_CHECK \(valid: .*misc_path, misc_timeout, misc_dynamic, user\)/,
    );
  });
});

describe('config: UDP_CHECK and MISC_CHECK on reload', () => {
  it("a changed check is one real server's 'check' change; an equal one is none", () => {
    const udp = withCheck('UDP_CHECK {\n payload 0102\n }');
    assert.deepEqual(
      diffConfig(parse(udp), parse(udp.replace('0102', '01 02'))).changedServices,
      [],
    );
    const changed = (a: string, b: string): string[][] =>
      diffConfig(parse(a), parse(b)).changedServices.flatMap((c) =>
        c.changedReals.map((r) => r.fields),
      );
    assert.deepEqual(changed(udp, udp.replace('0102', '0103')), [['check']]);
    const misc = withCheck('MISC_CHECK {\n misc_path "/bin/check a"\n }');
    assert.deepEqual(changed(misc, misc.replace('check a', 'check b')), [['check']]);
    assert.deepEqual(changed(misc, misc.replace('"\n', '"\n misc_dynamic\n')), [['check']]);
    assert.deepEqual(changed(udp, misc), [['check']]);
  });

  it('a running load balancer refuses a bad check with FILE:LINE and keeps its configuration', () => {
    const good = withCheck('UDP_CHECK {\n payload 0102\n require_reply 81\n }');
    const file = tempConfig('fullnat-hc-', good);
    const lb = testLb(file, noHost);
    const before = lb.config;

    const bad = good.replace('require_reply 81', 'require_reply 8z');
    writeFileSync(file, bad);
    assert.deepEqual(lb.reload(), {
      ok: false,
      error: `${file}:${lineOf(bad, 'require_reply')}: bad require_reply '8z' (expected hex digits, or 'x' for any nibble; spaces may separate bytes)`,
    });
    assert.equal(lb.config, before, 'the running configuration stays');

    const relative = withCheck('MISC_CHECK {\n misc_path relative.sh\n }');
    writeFileSync(file, relative);
    assert.deepEqual(lb.reload(), {
      ok: false,
      error: `${file}:${lineOf(relative, 'misc_path')}: misc_path program 'relative.sh' must be an absolute path`,
    });
    assert.equal(lb.config, before);

    const next = withCheck('MISC_CHECK {\n misc_path "/bin/check a"\n misc_dynamic\n }');
    writeFileSync(file, next);
    assert.deepEqual(lb.reload(), { ok: true, summary: '+0 -0 ~1 services' });
    assert.equal(lb.config.services[0]!.realServers[0]!.check?.kind, 'MISC_CHECK');
  });
});
