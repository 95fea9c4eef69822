import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import {
  ConfigError,
  diffConfig,
  loadConfig,
  parseConfig,
  type ReadInclude,
} from '../../src/control/config/index.js';
import type { FullnatConfig, ServiceSpec } from '../../src/control/model.js';
import { DEFAULT_TCP_TIMEOUTS } from '../../src/engine/tcp-state.js';
import { parseIpv4 } from '../../src/wire/bytes.js';

const ip = (s: string): number => parseIpv4(s);

const FULL = `! Configuration File for fullnat
fullnat_defs {
    interface fnat0
    toa_policy fullnat          # lvs | dpvs | fullnat
    mss_adjust on               # on|off
    timestamp_remove on
    metrics 127.0.0.1:9400
    control_socket /run/fullnat.sock
    max_connections 1048576
    local_port_range 5000 65535
    rs_mtu 1500
    timeout_established 90
}
local_address_group lip_g1 {
    10.10.3.1
    10.10.3.2
    10.10.3.10-20              # DPVS-style range in the last octet
}
virtual_server 10.10.1.100 80 {
    delay_loop 6
    protocol TCP
    lb_kind FNAT
    lb_algo wrr
    syn_proxy
    laddr_group_name lip_g1
    real_server 10.10.2.2 80 {
        weight 3
        mtu 1450
        inhibit_on_failure
        TCP_CHECK { connect_timeout 2 connect_port 80 retry 3 delay_before_retry 1 }
    }
    real_server 10.10.2.3 80 {
        weight 1
        HTTP_GET { url { path /health status_code 200 } connect_timeout 3 retry 2 delay_before_retry 1 }
    }
}
`;

/** A valid file to derive error cases from. */
const BASE = `local_address_group g1 {
    10.10.3.1
}
virtual_server 10.10.1.100 80 {
    laddr_group_name g1
    real_server 10.10.2.2 80 {
        weight 1
    }
}
`;

function reader(files: Record<string, string>): ReadInclude {
  return (p) => {
    const text = files[p];
    if (text === undefined) {
      throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
    }
    return text;
  };
}

/** 1-based line of the first line containing `needle` (the line the error must name). */
function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `needle '${needle}' not in text`);
  return i + 1;
}

function expectError(
  text: string,
  needle: string | number,
  reason: RegExp,
  opts: { file?: string; errFile?: string; errText?: string; files?: Record<string, string> } = {},
): ConfigError {
  const file = opts.file ?? 'test.conf';
  const errFile = opts.errFile ?? file;
  const line = typeof needle === 'number' ? needle : lineOf(opts.errText ?? text, needle);
  let caught: unknown;
  try {
    parseConfig(text, file, reader(opts.files ?? {}));
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.file, errFile);
  assert.equal(caught.line, line, caught.message);
  assert.ok(caught.message.startsWith(`${errFile}:${line}: `), caught.message);
  assert.ok(!caught.message.includes('\n'), 'one line');
  assert.match(caught.reason, reason);
  return caught;
}

/** BASE with one substring replaced. */
const base = (from: string, to: string): string => {
  assert.ok(BASE.includes(from));
  return BASE.replace(from, to);
};

describe('parseConfig: the documented example', () => {
  it('parses to the expected FullnatConfig', () => {
    const cfg = parseConfig(FULL, 'fullnat.conf');
    const lips = [ip('10.10.3.1'), ip('10.10.3.2')];
    for (let i = 10; i <= 20; i++) lips.push(ip(`10.10.3.${i}`));
    const at = (line: number) => ({ file: 'fullnat.conf', line });
    const laddrPos = new Map([
      ['10.10.3.1', at(15)],
      ['10.10.3.2', at(16)],
    ]);
    for (let i = 10; i <= 20; i++) laddrPos.set(`10.10.3.${i}`, at(17));
    const expected: FullnatConfig = {
      file: 'fullnat.conf',
      defs: {
        interface: 'fnat0',
        toaPolicy: 'fullnat',
        toaV6Kind: 254,
        mssAdjust: true,
        timestampRemove: true,
        unknownServiceAction: 'drop',
        unknownFlowReset: true,
        unknownFlowResetRate: 1000,
        icmpEcho: true,
        pmtuExpires: 600,
        metrics: { host: '127.0.0.1', port: 9400 },
        controlSocket: '/run/fullnat.sock',
        maxConnections: 1048576,
        portRange: { min: 5000, max: 65535 },
        rsMtu: 1500,
        offload: true,
        napiThread: 'auto',
        stateDir: '/run/fullnat',
        handover: false,
        checkpointInterval: 1,
        tunTxQueueLen: 1000,
        timeouts: { ...DEFAULT_TCP_TIMEOUTS, ESTABLISHED: 90 },
        timeoutUdp: 300,
        uoaMode: 'opp',
        uoaMaxTrail: 3,
        drainTimeout: 0,
      },
      hasDefsBlock: true,
      laddrGroups: new Map([['lip_g1', lips]]),
      laddrPos,
      services: [
        {
          vip: ip('10.10.1.100'),
          vport: 80,
          protocol: 'TCP',
          scheduler: 'wrr',
          laddrGroup: 'lip_g1',
          laddrs: lips,
          forwarding: 'fnat',
          synProxy: true,
          proxyProtocol: 0,
          quorum: 1,
          pos: { file: 'fullnat.conf', line: 19 },
          realServers: [
            {
              addr: ip('10.10.2.2'),
              port: 80,
              weight: 3,
              mtu: 1450,
              check: { kind: 'TCP_CHECK', connectTimeout: 2, connectPort: 80 },
              delayLoop: 6,
              retry: 3,
              delayBeforeRetry: 1,
              inhibitOnFailure: true,
              pos: { file: 'fullnat.conf', line: 26 },
            },
            {
              addr: ip('10.10.2.3'),
              port: 80,
              weight: 1,
              check: {
                kind: 'HTTP_GET',
                urls: [{ path: '/health', statusCodes: [[200, 200]] }],
                connectTimeout: 3,
              },
              delayLoop: 6,
              retry: 2,
              delayBeforeRetry: 1,
              pos: { file: 'fullnat.conf', line: 32 },
            },
          ],
        },
      ],
    };
    assert.deepEqual(cfg, expected);
  });

  it('fills every omitted value with the documented default', () => {
    const cfg = parseConfig(BASE, 'b.conf');
    assert.deepEqual(cfg.defs, {
      interface: 'fnat0',
      toaPolicy: 'fullnat',
      toaV6Kind: 254,
      mssAdjust: true,
      timestampRemove: true,
      unknownServiceAction: 'drop',
      unknownFlowReset: true,
      unknownFlowResetRate: 1000,
      icmpEcho: true,
      pmtuExpires: 600,
      controlSocket: '/run/fullnat.sock',
      maxConnections: 1 << 20,
      portRange: { min: 5000, max: 65535 },
      rsMtu: 1500,
      offload: true,
      napiThread: 'auto',
      stateDir: '/run/fullnat',
      handover: false,
      checkpointInterval: 1,
      tunTxQueueLen: 1000,
      timeouts: DEFAULT_TCP_TIMEOUTS,
      timeoutUdp: 300,
      uoaMode: 'opp',
      uoaMaxTrail: 3,
      drainTimeout: 0,
    });
    assert.equal(cfg.defs.metrics, undefined);
    assert.equal(cfg.hasDefsBlock, false);
    const svc = cfg.services[0]!;
    assert.equal(svc.scheduler, 'wlc');
    assert.equal(svc.synProxy, false);
    const rs = svc.realServers[0]!;
    assert.deepEqual(
      { weight: rs.weight, dl: rs.delayLoop, r: rs.retry, dbr: rs.delayBeforeRetry },
      { weight: 1, dl: 6, r: 3, dbr: 1 },
    );
    assert.equal(rs.mtu, undefined);
    assert.equal(rs.check, undefined);
  });

  it('applies connect_timeout and status_code defaults', () => {
    const cfg = parseConfig(base('weight 1', 'TCP_CHECK {\n}\n'), 'c.conf');
    assert.deepEqual(cfg.services[0]!.realServers[0]!.check, {
      kind: 'TCP_CHECK',
      connectTimeout: 5,
    });
    const http = parseConfig(base('weight 1', 'HTTP_GET { url { path /x } }'), 'c.conf');
    // keepalived 2.x: without status_code any 2xx passes.
    assert.deepEqual(http.services[0]!.realServers[0]!.check, {
      kind: 'HTTP_GET',
      urls: [{ path: '/x', statusCodes: [[200, 299]] }],
      connectTimeout: 5,
    });
  });
});

describe('parseConfig: syntax variants', () => {
  it('accepts braces on the next line, IP:PORT, aliases and keepalived comments', () => {
    const text = `local_address_group g1
{
    10.10.3.1 dpdk0      ! DPVS names the device; ignored
    10.10.3.5-10.10.3.6
}
virtual_server 10.10.1.100:443
{
    lvs_sched sh
    lvs_method FULLNAT
    protocol tcp
    laddr_group_name g1
    delay_loop 0.5
    real_server 10.10.2.2:8443 { weight 0 }
    real_server 10.10.2.3 8443
    {
        delay_before_retry 0
        HTTP_GET
        {
            url { path "/a!b" status_code 204 }  # quoted or not, ! inside a word stays
            nb_get_retry 4
        }
    }
}`;
    const cfg = parseConfig(text, 'v.conf');
    const svc = cfg.services[0]!;
    assert.equal(svc.vport, 443);
    assert.equal(svc.scheduler, 'sh');
    assert.deepEqual(svc.laddrs, [ip('10.10.3.1'), ip('10.10.3.5'), ip('10.10.3.6')]);
    const [a, b] = svc.realServers;
    assert.deepEqual([a!.port, a!.weight, a!.delayLoop], [8443, 0, 0.5]);
    assert.deepEqual([b!.retry, b!.delayBeforeRetry, b!.delayLoop], [4, 0, 0.5]);
    assert.deepEqual(b!.check, {
      kind: 'HTTP_GET',
      urls: [{ path: '/a!b', statusCodes: [[204, 204]] }],
      connectTimeout: 5,
    });
  });

  it('takes timing from the innermost level: check > real_server > virtual_server', () => {
    const text = base('weight 1', 'retry 5\n delay_loop 2\n TCP_CHECK { delay_loop 1 }').replace(
      'laddr_group_name g1',
      'laddr_group_name g1\n delay_before_retry 3',
    );
    const rs = parseConfig(text, 't.conf').services[0]!.realServers[0]!;
    assert.deepEqual([rs.delayLoop, rs.retry, rs.delayBeforeRetry], [1, 5, 3]);
  });

  it('includes files relative to the including file, at any level', () => {
    const files = {
      'etc/lips.conf': 'local_address_group g1 {\n  10.10.3.1\n}\n',
      'etc/rs/web.conf': '\nreal_server 10.10.2.9 80 {\n  weight 7\n}\n',
    };
    const text = `include lips.conf
virtual_server 10.10.1.100 80 {
    laddr_group_name g1
    include rs/web.conf
}`;
    const cfg = parseConfig(text, 'etc/main.conf', reader(files));
    assert.deepEqual(cfg.laddrGroups.get('g1'), [ip('10.10.3.1')]);
    const rs = cfg.services[0]!.realServers[0]!;
    assert.equal(rs.weight, 7);
    assert.deepEqual(rs.pos, { file: 'etc/rs/web.conf', line: 2 });
  });

  it('loadConfig reads from disk and reports an unreadable file as FILE:0', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fullnat-cfg-'));
    try {
      writeFileSync(join(dir, 'lips.conf'), 'local_address_group g1 { 10.10.3.1 }\n');
      writeFileSync(
        join(dir, 'main.conf'),
        `include lips.conf\n${BASE.split('\n').slice(3).join('\n')}`,
      );
      const cfg = loadConfig(join(dir, 'main.conf'));
      assert.equal(cfg.services.length, 1);
      assert.equal(cfg.file, join(dir, 'main.conf'));
      const missing = join(dir, 'nope.conf');
      assert.throws(
        () => loadConfig(missing),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.match(e.message, new RegExp(`^${missing}:0: cannot read configuration: ENOENT$`));
          return true;
        },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('parseConfig: errors name FILE:LINE and the reason', () => {
  it('syntax: a block that is never closed', () => {
    expectError(
      base('        weight 1\n    }\n}', '        weight 1\n    }'),
      'virtual_server',
      /never closed \(missing '}'\)/,
    );
  });

  it("syntax: missing '{' after a block keyword", () => {
    expectError(
      base('virtual_server 10.10.1.100 80 {', 'virtual_server 10.10.1.100 80'),
      'virtual_server',
      /missing '\{' after 'virtual_server 10.10.1.100 80'/,
    );
  });

  it("syntax: stray '}' and stray '{'", () => {
    expectError(`${BASE}}\n`, BASE.split('\n').length, /unexpected '}' \(no block is open\)/);
    expectError(
      base('weight 1', 'weight 1\n        {'),
      '        {',
      /unexpected '\{' in real_server/,
    );
  });

  it('syntax: unterminated quoted string', () => {
    expectError(
      base('weight 1', 'HTTP_GET { url { path "/x } }'),
      'HTTP_GET',
      /unterminated quoted string/,
    );
  });

  it('unknown keyword lists the valid ones in that block', () => {
    const e = expectError(
      base('weight 1', 'wieght 1'),
      'wieght',
      /unknown keyword 'wieght' in real_server/,
    );
    assert.match(
      e.reason,
      /\(valid: .*weight.*TCP_CHECK.*HTTP_GET.*SSL_GET.*UDP_CHECK.*MISC_CHECK.*SMTP_CHECK.*DNS_CHECK.*PING_CHECK\)/,
    );
    expectError(
      `fullnat_defs {\n  toa lvs\n}\n${BASE}`,
      'toa lvs',
      /unknown keyword 'toa' in fullnat_defs \(valid: interface, toa_policy, .*timeout_established/,
    );
    expectError(
      `global_def {\n}\n${BASE}`,
      'global_def',
      /unknown keyword 'global_def' at top level \(valid: fullnat_defs, local_address_group, virtual_server, bgp, sync, global_defs, virtual_server_group, include\)/,
    );
    expectError(
      base('weight 1', 'TCP_CHECK { connect_timeout 2 conect_port 80 }'),
      'TCP_CHECK',
      /unknown keyword 'conect_port' in TCP_CHECK \(valid: delay_loop, retry, delay_before_retry, nb_get_retry, nb_sock_retry, connect_timeout, connect_port\)/,
    );
  });

  it('an extra value on a line', () => {
    expectError(
      base('weight 1', 'weight 1 2'),
      'weight 1 2',
      /unexpected extra value '2' after '1'/,
    );
  });

  it('duplicate virtual_server', () => {
    const text = `${BASE}virtual_server 10.10.1.100:80 {\n  laddr_group_name g1\n}\n`;
    expectError(
      text,
      'virtual_server 10.10.1.100:80',
      /duplicate virtual_server 10.10.1.100:80 \(first at test.conf:4\)/,
    );
  });

  it('duplicate real_server in a service', () => {
    const text = base('    }\n}', '    }\n    real_server 10.10.2.2:80 { }\n}');
    expectError(
      text,
      'real_server 10.10.2.2:80',
      /duplicate real_server 10.10.2.2:80 in virtual_server 10.10.1.100:80 \(first at test.conf:6\)/,
    );
  });

  it('real_server without port', () => {
    expectError(
      base('real_server 10.10.2.2 80', 'real_server 10.10.2.2'),
      'real_server',
      /real_server 10.10.2.2 has no port/,
    );
  });

  it('bad and out-of-range addresses', () => {
    expectError(
      base('real_server 10.10.2.2 80', 'real_server 10.10.2.256 80'),
      'real_server',
      /bad IPv4 address '10.10.2.256'/,
    );
    expectError(
      base('virtual_server 10.10.1.100', 'virtual_server 127.0.0.1'),
      'virtual_server',
      /127.0.0.1 is out of range/,
    );
    expectError(base('    10.10.3.1', '    224.0.0.1'), '224.0.0.1', /224.0.0.1 is out of range/);
    expectError(base('    10.10.3.1', '    10.10.3.20-10'), '10.10.3.20-10', /bad address range/);
    expectError(
      base('    10.10.3.1', '    10.10.3.1-300'),
      '10.10.3.1-300',
      /last octet above 255/,
    );
  });

  it('bad ports', () => {
    expectError(
      base('real_server 10.10.2.2 80', 'real_server 10.10.2.2 0'),
      'real_server',
      /bad port '0' \(expected an integer 1..65535\)/,
    );
    expectError(base('10.10.1.100 80', '10.10.1.100:65536'), 'virtual_server', /bad port '65536'/);
    expectError(
      base('weight 1', 'TCP_CHECK { connect_port http }'),
      'TCP_CHECK',
      /bad connect_port 'http'/,
    );
  });

  it('weight out of range', () => {
    expectError(
      base('weight 1', 'weight 65536'),
      'weight',
      /bad weight '65536' \(expected an integer 0..65535\)/,
    );
    expectError(base('weight 1', 'weight -1'), 'weight', /bad weight '-1'/);
  });

  it('bad timeouts', () => {
    expectError(
      `fullnat_defs {\n timeout_fin_wait 0\n}\n${BASE}`,
      'timeout_fin_wait',
      /bad timeout_fin_wait '0' \(expected an integer 1..4294967\)/,
    );
    expectError(
      `fullnat_defs {\n timeout_established 1.5\n}\n${BASE}`,
      'timeout_established',
      /bad timeout_established '1.5'/,
    );
    expectError(
      base('weight 1', 'TCP_CHECK { connect_timeout 0 }'),
      'TCP_CHECK',
      /bad connect_timeout '0' \(expected seconds, more than 0/,
    );
    expectError(
      base('laddr_group_name g1', 'laddr_group_name g1\n    delay_loop soon'),
      'delay_loop',
      /bad delay_loop 'soon'/,
    );
  });

  it('MTU out of range', () => {
    expectError(
      base('weight 1', 'mtu 500'),
      'mtu',
      /bad mtu '500' \(expected an integer 576..65535\)/,
    );
    expectError(`fullnat_defs {\n rs_mtu 70000\n}\n${BASE}`, 'rs_mtu', /bad rs_mtu '70000'/);
  });

  it('unknown laddr group (reported at laddr_group_name)', () => {
    expectError(
      base('laddr_group_name g1', 'laddr_group_name g2'),
      'laddr_group_name',
      /unknown local_address_group 'g2' \(defined: g1\)/,
    );
  });

  it('empty laddr group', () => {
    expectError(
      `local_address_group g0 {\n}\n${BASE}`,
      'local_address_group g0',
      /local_address_group 'g0' is empty/,
    );
  });

  it('a LIP in two groups used by different services', () => {
    const text = `${BASE}local_address_group g2 {
    10.10.3.9
    10.10.3.1
}
virtual_server 10.10.1.101 80 {
    laddr_group_name g2
}
`;
    // BASE is 9 lines, so the second group's 10.10.3.1 sits on line 12.
    expectError(
      text,
      12,
      /local address 10.10.3.1 is also in local_address_group 'g1' \(test.conf:2\)/,
    );
    // Overlap with a group nobody uses is harmless.
    const unused = text.replace('laddr_group_name g2', 'laddr_group_name g1');
    assert.equal(parseConfig(unused, 'test.conf').services.length, 2);
  });

  it('duplicate address inside one group', () => {
    expectError(
      base('    10.10.3.1\n', '    10.10.3.1\n    10.10.3.0-3\n'),
      '10.10.3.0-3',
      /duplicate local address 10.10.3.1 in group 'g1' \(also at test.conf:2\)/,
    );
  });

  it('LIP equal to a VIP or to an RS', () => {
    expectError(
      base('    10.10.3.1', '    10.10.1.100'),
      '    10.10.1.100',
      /local address 10.10.1.100 in 'g1' is also a virtual_server address \(test.conf:4\)/,
    );
    expectError(
      base('    10.10.3.1', '    10.10.2.2'),
      '    10.10.2.2',
      /local address 10.10.2.2 in 'g1' is also a real server address \(test.conf:6\)/,
    );
    expectError(
      base('real_server 10.10.2.2', 'real_server 10.10.1.100'),
      'real_server',
      /real server address 10.10.1.100 is also a virtual_server address/,
    );
  });

  it('unknown scheduler and toa_policy', () => {
    expectError(
      base('laddr_group_name g1', 'laddr_group_name g1\n    lb_algo dh'),
      'lb_algo',
      /unknown scheduler 'dh' \(valid: rr, wrr, lc, wlc, sh, mh\)/,
    );
    expectError(
      `fullnat_defs {\n toa_policy ali\n}\n${BASE}`,
      'toa_policy',
      /unknown toa_policy 'ali' \(valid: lvs, dpvs, fullnat, off\)/,
    );
  });

  it('missing laddr_group_name (reported at the virtual_server)', () => {
    expectError(
      base('    laddr_group_name g1\n', ''),
      'virtual_server',
      /needs 'laddr_group_name'/,
    );
  });

  it('missing values and missing url', () => {
    expectError(base('weight 1', 'weight'), 'weight', /'weight' needs a value/);
    expectError(
      base('weight 1', 'HTTP_GET { connect_timeout 1 }'),
      'HTTP_GET',
      /HTTP_GET needs 'url \{ path \/PATH \}'/,
    );
    expectError(
      base('weight 1', 'HTTP_GET { url { status_code 200 } }'),
      'HTTP_GET',
      /url block needs 'path'/,
    );
  });

  it('bad on/off', () => {
    expectError(
      `fullnat_defs {\n mss_adjust yes\n}\n${BASE}`,
      'mss_adjust',
      /bad mss_adjust 'yes' \(expected on or off\)/,
    );
  });

  it('bad offload / napi_thread values; off parses as off', () => {
    expectError(
      `fullnat_defs {\n napi_thread maybe\n}\n${BASE}`,
      'napi_thread',
      /bad napi_thread 'maybe' \(expected on, off or auto\)/,
    );
    expectError(
      `fullnat_defs {\n offload 1\n}\n${BASE}`,
      'offload',
      /bad offload '1' \(expected on or off\)/,
    );
    const cfg = parseConfig(`fullnat_defs {\n offload off\n napi_thread off\n}\n${BASE}`, 'o.conf');
    assert.equal(cfg.defs.offload, false);
    assert.equal(cfg.defs.napiThread, 'off');
  });

  it('state_dir, handover and checkpoint_interval: bad values are refused with FILE:LINE', () => {
    expectError(
      `fullnat_defs {\n state_dir var/lib/fullnat\n}\n${BASE}`,
      'state_dir',
      /bad state_dir 'var\/lib\/fullnat' \(expected an absolute path without '\.\.'\)/,
    );
    expectError(`fullnat_defs {\n state_dir /run/../etc\n}\n${BASE}`, 'state_dir', /bad state_dir/);
    expectError(
      `fullnat_defs {\n handover yes\n}\n${BASE}`,
      'handover',
      /bad handover 'yes' \(expected on or off\)/,
    );
    for (const bad of ['-1', '0.05', '3601', 'often', '1s'])
      expectError(
        `fullnat_defs {\n checkpoint_interval ${bad}\n}\n${BASE}`,
        'checkpoint_interval',
        /bad checkpoint_interval .* \(expected seconds: 0 for none, or 0\.1 to 3600\)/,
      );
    const cfg = parseConfig(
      `fullnat_defs {\n state_dir /var/lib/fullnat\n handover on\n checkpoint_interval 0.5\n}\n${BASE}`,
      'c.conf',
    );
    assert.equal(cfg.defs.stateDir, '/var/lib/fullnat');
    assert.equal(cfg.defs.handover, true);
    assert.equal(cfg.defs.checkpointInterval, 0.5);
    const none = parseConfig(`fullnat_defs {\n checkpoint_interval 0\n}\n${BASE}`, 'c.conf');
    assert.equal(none.defs.checkpointInterval, 0);
  });

  it('tun_txqueuelen: 1..65536, restart-only', () => {
    const cfg = parseConfig(`fullnat_defs {\n tun_txqueuelen 4096\n}\n${BASE}`, 'q.conf');
    assert.equal(cfg.defs.tunTxQueueLen, 4096);
    for (const bad of ['0', '65537', '-1', '1k'])
      expectError(
        `fullnat_defs {\n tun_txqueuelen ${bad}\n}\n${BASE}`,
        'tun_txqueuelen',
        new RegExp(`^bad tun_txqueuelen '${bad}' \\(expected an integer 1\\.\\.65536\\)$`),
      );
    const d = diffConfig(parseConfig(BASE, 'a.conf'), cfg);
    assert.deepEqual(d.changedDefs, ['tun_txqueuelen']);
    assert.deepEqual(d.restartRequired, ['tun_txqueuelen']);
  });

  it('metrics address without port', () => {
    expectError(
      `fullnat_defs {\n metrics 127.0.0.1\n}\n${BASE}`,
      'metrics',
      /metrics needs HOST:PORT/,
    );
    expectError(
      `fullnat_defs {\n metrics 127.0.0.1:http\n}\n${BASE}`,
      'metrics',
      /bad metrics port 'http'/,
    );
  });

  it('unsupported lb_kind and protocol', () => {
    expectError(
      base('laddr_group_name g1', 'lb_kind DR\n laddr_group_name g1'),
      'lb_kind',
      /lb_kind DR is not supported: direct routing rewrites the MAC address .* fullnat forwards at layer 3/,
    );
    expectError(
      base('laddr_group_name g1', 'lb_kind TUN\n laddr_group_name g1'),
      'lb_kind',
      /lb_kind TUN \(IP-in-IP\) is not supported yet \(use NAT or FNAT\)/,
    );
    expectError(
      base('laddr_group_name g1', 'lb_kind MAGIC\n laddr_group_name g1'),
      'lb_kind',
      /unknown lb_kind 'MAGIC' \(valid: FNAT, FULLNAT, NAT\)/,
    );
    expectError(
      base('laddr_group_name g1', 'protocol SCTP\n laddr_group_name g1'),
      'protocol',
      /protocol SCTP is not supported \(TCP or UDP\)/,
    );
    expectError(
      base('laddr_group_name g1', 'protocol ICMP\n laddr_group_name g1'),
      'protocol',
      /unknown protocol 'ICMP' \(valid: TCP, UDP\)/,
    );
  });

  it('a keyword given twice, two checks, retry 0, reversed port range', () => {
    expectError(
      base('weight 1', 'weight 1\n weight 2'),
      'weight 2',
      /'weight' given twice in this block \(first at test.conf:7\)/,
    );
    // Two checkers are no longer an error: keepalived runs both, and the RS needs both to pass.
    const two = parseConfig(
      base('weight 1', 'TCP_CHECK { }\n HTTP_GET { url { path / } }'),
      'c.conf',
    );
    assert.deepEqual(two.services[0]!.realServers[0]!.check, {
      kind: 'ALL_OF',
      checks: [
        { kind: 'TCP_CHECK', connectTimeout: 5 },
        { kind: 'HTTP_GET', urls: [{ path: '/', statusCodes: [[200, 299]] }], connectTimeout: 5 },
      ],
    });
    expectError(
      base('weight 1', 'TCP_CHECK { retry 2 nb_get_retry 3 }'),
      'TCP_CHECK',
      /'nb_get_retry' repeats 'retry'/,
    );
    expectError(
      base('weight 1', 'TCP_CHECK { retry 0 }'),
      'TCP_CHECK',
      /bad retry \(consecutive failures before DOWN\) '0'/,
    );
    expectError(
      `fullnat_defs {\n local_port_range 9000 8000\n}\n${BASE}`,
      'local_port_range',
      /bad local_port_range 9000-8000/,
    );
  });

  it('errors in an included file name that file and line', () => {
    const files = {
      'conf.d/lips.conf': 'local_address_group g1 {\n    10.10.3.1\n    10.10.3.x\n}\n',
    };
    const text = `include lips.conf\n${BASE.split('\n').slice(3).join('\n')}`;
    expectError(text, '10.10.3.x', /bad IPv4 address '10.10.3.x'/, {
      file: 'conf.d/main.conf',
      errFile: 'conf.d/lips.conf',
      errText: files['conf.d/lips.conf'],
      files,
    });
  });

  it('include of a missing file, an include cycle, a bad include line', () => {
    expectError(
      `\ninclude nope.conf\n${BASE}`,
      'include',
      /cannot read include file 'nope.conf': ENOENT/,
    );
    const files = { 'a.conf': 'include b.conf\n', 'b.conf': '\ninclude a.conf\n' };
    expectError(
      'include a.conf\n',
      'include a.conf',
      /include cycle: main.conf -> a.conf -> b.conf -> a.conf/,
      {
        file: 'main.conf',
        errFile: 'b.conf',
        errText: files['b.conf'],
        files,
      },
    );
    expectError('include a.conf b.conf\n', 'include', /'include' needs exactly one file name/);
  });
});

function svc(cfg: FullnatConfig, i = 0): ServiceSpec {
  return cfg.services[i]!;
}

describe('diffConfig', () => {
  const parse = (t: string): FullnatConfig => parseConfig(t, 'd.conf');

  it('finds no change between equal files, whatever the layout', () => {
    const d = diffConfig(
      parse(BASE),
      parse(`\n\n${BASE.replace('{\n        weight 1\n    }', '{ weight 1 }')}`),
    );
    assert.deepEqual(d, {
      addedServices: [],
      removedServices: [],
      changedServices: [],
      changedDefs: [],
      restartRequired: [],
      bgpChanged: false,
      syncChanged: false,
      changedSync: [],
    });
  });

  it('lists added and removed services', () => {
    const old = parse(BASE);
    const next = parse(BASE.replace('10.10.1.100 80', '10.10.1.100 443'));
    const d = diffConfig(old, next);
    assert.deepEqual(
      d.addedServices.map((s) => s.vport),
      [443],
    );
    assert.deepEqual(
      d.removedServices.map((s) => s.vport),
      [80],
    );
    assert.equal(d.changedServices.length, 0);
  });

  it('lists real servers added, removed and changed, and scheduler / laddr changes', () => {
    const old = parse(BASE);
    const next = parse(
      BASE.replace('    10.10.3.1\n', '    10.10.3.2\n')
        .replace('weight 1', 'weight 5\n TCP_CHECK { }')
        .replace('laddr_group_name g1', 'laddr_group_name g1\n lb_algo mh\n syn_proxy')
        .replace('    }\n}', '    }\n    real_server 10.10.2.3 80 { }\n}'),
    );
    const d = diffConfig(old, next);
    assert.equal(d.changedServices.length, 1);
    const c = d.changedServices[0]!;
    assert.equal(c.after, svc(next));
    assert.deepEqual(
      c.addedReals.map((r) => r.addr),
      [ip('10.10.2.3')],
    );
    assert.deepEqual(c.removedReals, []);
    assert.deepEqual(
      c.changedReals.map((r) => r.fields),
      [['weight', 'check']],
    );
    assert.deepEqual(c.scheduler, { from: 'wlc', to: 'mh' });
    assert.deepEqual(c.synProxy, { from: false, to: true });
    assert.deepEqual(c.addedLaddrs, [ip('10.10.3.2')]);
    assert.deepEqual(c.removedLaddrs, [ip('10.10.3.1')]);
    assert.equal(c.laddrGroup, undefined);

    const back = diffConfig(next, old).changedServices[0]!;
    assert.deepEqual(
      back.removedReals.map((r) => r.addr),
      [ip('10.10.2.3')],
    );
  });

  it('reports a laddr group switch', () => {
    const two = `local_address_group g2 {\n 10.10.3.7\n}\n${BASE}`;
    const d = diffConfig(
      parse(two),
      parse(two.replace('laddr_group_name g1', 'laddr_group_name g2')),
    );
    const c = d.changedServices[0]!;
    assert.deepEqual(c.laddrGroup, { from: 'g1', to: 'g2' });
    assert.deepEqual(c.addedLaddrs, [ip('10.10.3.7')]);
  });

  it('lists changed defs and which of them need a restart', () => {
    const old = parse(BASE);
    const next = parse(`fullnat_defs {
  interface fnat1
  toa_policy dpvs
  max_connections 1000
  timeout_established 900
  metrics 127.0.0.1:9500
}
${BASE}`);
    const d = diffConfig(old, next);
    assert.deepEqual(d.changedDefs, [
      'interface',
      'toa_policy',
      'metrics',
      'max_connections',
      'timeout_established',
    ]);
    assert.deepEqual(d.restartRequired, ['interface', 'metrics', 'max_connections']);
  });
});

describe('proxy_protocol', () => {
  const parse = (t: string): FullnatConfig => parseConfig(t, 'test.conf');
  it('parses v1, v2 and off per virtual_server, and rejects anything else with file:line', () => {
    for (const [word, v] of [
      ['v1', 1],
      ['v2', 2],
      ['off', 0],
    ] as const) {
      const c = parse(
        BASE.replace('laddr_group_name g1', `laddr_group_name g1\n    proxy_protocol ${word}`),
      );
      assert.equal(c.services[0]!.proxyProtocol, v);
    }
    assert.equal(parse(BASE).services[0]!.proxyProtocol, 0);
    const bad = BASE.replace('laddr_group_name g1', 'laddr_group_name g1\n    proxy_protocol v3');
    expectError(bad, 'proxy_protocol v3', /bad proxy_protocol 'v3'/);
  });

  it('shows up in the diff', () => {
    const d = diffConfig(
      parse(BASE),
      parse(BASE.replace('laddr_group_name g1', 'laddr_group_name g1\n proxy_protocol v2')),
    );
    assert.deepEqual(d.changedServices[0]!.proxyProtocol, { from: 0, to: 2 });
  });
});

describe('unknown_service_action', () => {
  const parse = (t: string): FullnatConfig => parseConfig(t, 'test.conf');
  const defs = (line: string): string => `fullnat_defs {\n  ${line}\n}\n${BASE}`;

  it('is drop by default and takes drop or icmp', () => {
    assert.equal(parse(BASE).defs.unknownServiceAction, 'drop');
    assert.equal(parse(defs('unknown_service_action drop')).defs.unknownServiceAction, 'drop');
    assert.equal(parse(defs('unknown_service_action icmp')).defs.unknownServiceAction, 'icmp');
  });

  it('rejects anything else, a missing value and a repeat with file:line', () => {
    const e = expectError(
      defs('unknown_service_action reject'),
      'unknown_service_action reject',
      /^bad unknown_service_action 'reject' \(expected drop or icmp\)$/,
    );
    assert.equal(e.message, `test.conf:2: ${e.reason}`);
    expectError(
      defs('unknown_service_action ICMP'),
      'unknown_service_action ICMP',
      /bad unknown_service_action 'ICMP'/,
    );
    expectError(
      defs('unknown_service_action'),
      'unknown_service_action',
      /'unknown_service_action' needs a value/,
    );
    expectError(
      `fullnat_defs {\n  unknown_service_action icmp\n  unknown_service_action drop\n}\n${BASE}`,
      3,
      /'unknown_service_action' given twice in this block \(first at test\.conf:2\)/,
    );
  });

  it('state_dir and handover need a restart; checkpoint_interval reloads', () => {
    const d = diffConfig(
      parse(BASE),
      parse(`fullnat_defs {\n state_dir /tmp/x\n handover on\n checkpoint_interval 5\n}\n${BASE}`),
    );
    assert.deepEqual(d.changedDefs, ['state_dir', 'handover', 'checkpoint_interval']);
    assert.deepEqual(d.restartRequired, ['state_dir', 'handover']);
  });

  it('changes on reload: in the diff, not among the restart-only keys', () => {
    const d = diffConfig(parse(BASE), parse(defs('unknown_service_action icmp')));
    assert.deepEqual(d.changedDefs, ['unknown_service_action']);
    assert.deepEqual(d.restartRequired, []);
  });
});

describe('icmp_echo and pmtu_expires', () => {
  const parse = (t: string): FullnatConfig => parseConfig(t, 'test.conf');
  const defs = (...lines: string[]): string =>
    `fullnat_defs {\n${lines.map((l) => `  ${l}\n`).join('')}}\n${BASE}`;

  it('answer pings and keep a learned path MTU 600 s by default; take on|off and seconds', () => {
    assert.equal(parse(BASE).defs.icmpEcho, true);
    assert.equal(parse(BASE).defs.pmtuExpires, 600);
    assert.equal(parse(defs('icmp_echo off')).defs.icmpEcho, false);
    assert.equal(parse(defs('pmtu_expires 60')).defs.pmtuExpires, 60);
  });

  it('rejects a bad switch and a bad duration with file:line', () => {
    expectError(
      defs('icmp_echo yes'),
      'icmp_echo yes',
      /^bad icmp_echo 'yes' \(expected on or off\)$/,
    );
    for (const bad of ['0', '-5', '1.5', 'long']) {
      expectError(defs(`pmtu_expires ${bad}`), `pmtu_expires ${bad}`, /pmtu_expires/);
    }
  });

  it('change on reload: in the diff, not among the restart-only keys', () => {
    const d = diffConfig(parse(BASE), parse(defs('icmp_echo off', 'pmtu_expires 30')));
    assert.deepEqual(d.changedDefs, ['icmp_echo', 'pmtu_expires']);
    assert.deepEqual(d.restartRequired, []);
  });
});

describe('unknown_flow_reset', () => {
  const parse = (t: string): FullnatConfig => parseConfig(t, 'test.conf');
  const defs = (...lines: string[]): string =>
    `fullnat_defs {\n${lines.map((l) => `  ${l}\n`).join('')}}\n${BASE}`;

  it('is on at 1000/s by default and takes on|off and a rate', () => {
    assert.equal(parse(BASE).defs.unknownFlowReset, true);
    assert.equal(parse(BASE).defs.unknownFlowResetRate, 1000);
    assert.equal(parse(defs('unknown_flow_reset off')).defs.unknownFlowReset, false);
    assert.equal(parse(defs('unknown_flow_reset on')).defs.unknownFlowReset, true);
    const c = parse(defs('unknown_flow_reset on', 'unknown_flow_reset_rate 50'));
    assert.equal(c.defs.unknownFlowResetRate, 50);
    assert.equal(parse(defs('unknown_flow_reset_rate 1000000')).defs.unknownFlowResetRate, 1e6);
  });

  it('rejects a bad switch, a bad rate, a missing value and a repeat with file:line', () => {
    const e = expectError(
      defs('unknown_flow_reset yes'),
      'unknown_flow_reset yes',
      /^bad unknown_flow_reset 'yes' \(expected on or off\)$/,
    );
    assert.equal(e.message, `test.conf:2: ${e.reason}`);
    for (const bad of ['0', '-5', '1.5', 'fast', '1000001']) {
      expectError(
        defs(`unknown_flow_reset_rate ${bad}`),
        `unknown_flow_reset_rate ${bad}`,
        /unknown_flow_reset_rate/,
      );
    }
    expectError(
      defs('unknown_flow_reset'),
      'unknown_flow_reset',
      /'unknown_flow_reset' needs a value/,
    );
    expectError(
      defs('unknown_flow_reset on', 'unknown_flow_reset off'),
      3,
      /'unknown_flow_reset' given twice in this block \(first at test\.conf:2\)/,
    );
  });

  it('changes on reload: in the diff, not among the restart-only keys', () => {
    const d = diffConfig(
      parse(BASE),
      parse(defs('unknown_flow_reset off', 'unknown_flow_reset_rate 10')),
    );
    assert.deepEqual(d.changedDefs, ['unknown_flow_reset', 'unknown_flow_reset_rate']);
    assert.deepEqual(d.restartRequired, []);
  });
});
