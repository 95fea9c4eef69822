/**
 * keepalived files read as written: every error in one reading, warnings
 * for what is skipped (global_defs keys, other daemons' blocks), global_defs'
 * lvs_timeouts and router_id, include globs, virtual_server_group,
 * nb_sock_retry, and the virtual_server keywords with no effect here.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';

import {
  ConfigError,
  loadConfig,
  parseConfig,
  readConfig,
} from '../../src/control/config/index.js';
import { runCtl } from '../../src/control/ctl/index.js';
import { createLogger } from '../../src/control/log.js';
import { startControlServer } from '../../src/control/socket/index.js';
import { DEFAULT_TCP_TIMEOUTS } from '../../src/engine/tcp-state.js';
import { ONE_SERVICE, recordingLogger, tempConfig, testLb } from '../support/lb-harness.js';
import { noHost } from '../support/no-host.js';
import { endpointToString } from '../../src/wire/address.js';
import { parseIpv4 } from '../../src/wire/bytes.js';

const LIPS = `local_address_group g1 {
    10.10.3.1
}
`;

const service = (head: string, body = ''): string => `${head} {
    laddr_group_name g1
${body}    real_server 10.10.2.2 80 {
        weight 1
        TCP_CHECK { connect_timeout 2 }
    }
}
`;

const BASE = LIPS + service('virtual_server 10.10.1.100 80');

/** `FILE:LINE: reason` of each error and warning, to compare whole. */
function report(text: string, file = 'k.conf'): { errors: string[]; warnings: string[] } {
  const r = readConfig(text, file);
  return {
    errors: r.errors.map((e) => e.message),
    warnings: r.warnings.map((w) => `${w.file}:${w.line}: ${w.reason}`),
  };
}

const lineOf = (text: string, needle: string): number => {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `'${needle}' not in the text`);
  return i + 1;
};

describe('every error at once', () => {
  it('one error per bad statement, in file order, and reading goes on after each block', () => {
    const text = `${LIPS}virtual_server 10.10.1.100 80 {
    laddr_group_name g1
    lb_algo nope
    wieght 3
    real_server 10.10.2.2 80 {
        weight 1 2
        TCP_CHECK { connect_timeout x }
    }
}
virtual_server 10.10.1.101 80 {
    laddr_group_name g1
    real_server 10.10.2.3 {
        weight 1
    }
}
virtual_server 10.10.1.102 80 {
    laddr_group_name g1
}
bogus_block x {
    a { b }
}
virtual_server 10.10.1.103 80 {
    lb_kind DR
    laddr_group_name g1
}
`;
    const r = report(text);
    const at = (needle: string): string => `k.conf:${lineOf(text, needle)}`;
    assert.equal(r.errors.length, 7, r.errors.join('\n'));
    assert.match(r.errors[0]!, new RegExp(`^${at('lb_algo nope')}: .*nope`));
    assert.match(
      r.errors[1]!,
      new RegExp(`^${at('wieght 3')}: unknown keyword 'wieght' in virtual_server`),
    );
    assert.match(r.errors[2]!, new RegExp(`^${at('weight 1 2')}: unexpected extra value '2'`));
    assert.match(r.errors[3]!, new RegExp(`^${at('connect_timeout x')}: .*connect_timeout`));
    assert.match(r.errors[4]!, new RegExp(`^${at('real_server 10.10.2.3 {')}: .*has no port`));
    assert.match(
      r.errors[5]!,
      new RegExp(`^${at('bogus_block')}: unknown keyword 'bogus_block' at top level`),
    );
    assert.match(r.errors[6]!, new RegExp(`^${at('lb_kind DR')}: lb_kind DR is not supported`));
    // The first error is the one parseConfig throws, as before.
    assert.throws(
      () => parseConfig(text, 'k.conf'),
      (e: unknown) => e instanceof ConfigError && e.message === r.errors[0],
    );
  });

  it('a block with an error is dropped without follow-on errors; cross-checks wait for a clean file', () => {
    // The HTTP_GET's bad url would otherwise also be "needs url", and the service "needs a group".
    const text = `${LIPS}virtual_server 10.10.1.100 80 {
    real_server 10.10.2.2 80 {
        HTTP_GET { url { path nope } }
    }
}
`;
    const r = report(text);
    assert.deepEqual(r.errors, [
      `k.conf:${lineOf(text, 'path nope')}: bad url path 'nope' (must start with '/', no spaces)`,
    ]);
    const clean = report(`${LIPS}virtual_server 10.10.1.100 80 {\n}\n`);
    assert.equal(clean.errors.length, 1);
    assert.match(clean.errors[0]!, /needs 'laddr_group_name'/);
  });

  it('a block never closed is one error; an unterminated quote loses its line only', () => {
    const text = `${BASE}virtual_server 10.10.1.101 80 {\n    laddr_group_name g1\n    real_server 10.10.2.3 80 {\n`;
    const r = report(text);
    assert.equal(r.errors.length, 1, r.errors.join('\n'));
    assert.match(r.errors[0]!, /'real_server' block is never closed/);
    const q = report(BASE.replace('weight 1', 'weight "1'));
    assert.deepEqual(q.errors, [`k.conf:${lineOf(BASE, 'weight 1')}: unterminated quoted string`]);
  });
  it('errors come in reading order whichever pass found them; each bad local address is one', () => {
    const text = `local_address_group g1 {
    10.10.3.1 dpdk0
    10.10.3.300 dpdk0
    10.10.3.1
}
${service('virtual_server 10.10.1.100 80', '    lb_algo nope\n')}global_defs {
    lvs_timeouts tcp x
}
virtual_server_group v {
    10.10.1.101
}
`;
    const r = report(text);
    assert.deepEqual(
      r.errors.map((e) => e.replace(/: .*/, '')),
      ['k.conf:3', 'k.conf:4', 'k.conf:8', 'k.conf:15', 'k.conf:18'],
      r.errors.join('\n'),
    );
    assert.match(
      r.errors[1]!,
      /duplicate local address 10\.10\.3\.1 in group 'g1' \(also at k\.conf:2\)/,
    );
  });
});

describe('global_defs and the other daemons blocks', () => {
  it('keys without a meaning: one warning each, nested blocks skipped; the file parses', () => {
    const text = `global_defs {
   notification_email {
     acassen
     { odd }
   }
   smtp_server 192.168.200.1
   lvs_sync_daemon eth0 VI_1 id 3
   router_id LVS_DEVEL
}
${BASE}`;
    const r = report(text);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.warnings, [
      "k.conf:2: global_defs 'notification_email' has no meaning for fullnat: skipped",
      "k.conf:6: global_defs 'smtp_server' has no meaning for fullnat: skipped",
      "k.conf:7: lvs_sync_daemon is IPVS's connection sync: skipped (fullnat nodes share connections through a 'sync' block)",
      "k.conf:8: global_defs router_id 'LVS_DEVEL' is not used: keepalived names its host with it; fullnat takes an IPv4 router_id as the bgp block's when that gives none",
    ]);
    assert.deepEqual(parseConfig(text, 'k.conf').warnings?.length, 4);
  });

  it('vrrp_instance and friends: skipped whole, braces balanced, one warning each naming keepalived', () => {
    const text = `vrrp_sync_group VG1 {
    group {
        VI_1
    }
}
vrrp_instance VI_1
{
    virtual_ipaddress {
        192.168.200.16
    }
    track_script { chk }
}
vrrp_script chk { script "/bin/true" }
static_ipaddress {
    192.168.1.1/24 dev eth0
}
bfd_instance b1 {
    neighbor_ip 10.0.0.1
}
${BASE}`;
    const r = report(text);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.warnings, [
      "k.conf:1: vrrp_sync_group is keepalived's VRRP: skipped (run keepalived for VRRP beside fullnat)",
      "k.conf:6: vrrp_instance is keepalived's VRRP: skipped (run keepalived for VRRP beside fullnat)",
      "k.conf:13: vrrp_script is keepalived's VRRP: skipped (run keepalived for VRRP beside fullnat)",
      "k.conf:14: static_ipaddress is keepalived's own address and route setup: skipped (let keepalived or the system's network configuration do it beside fullnat, which routes its VIPs and LIPs itself)",
      "k.conf:17: bfd_instance is keepalived's BFD: skipped (run keepalived for it beside fullnat; a bgp neighbour of fullnat's takes 'bfd')",
    ]);
    assert.equal(parseConfig(text, 'k.conf').services.length, 1);
  });

  it('lvs_timeouts: tcp -> ESTABLISHED, tcpfin -> FIN_WAIT, udp -> the UDP timeout, as ipvsadm --set', () => {
    const cfg = parseConfig(
      `global_defs {\n  lvs_timeouts tcp 7200 udp 300 tcpfin 120\n}\n${BASE}`,
      'k.conf',
    );
    assert.equal(cfg.defs.timeouts.ESTABLISHED, 7200);
    assert.equal(cfg.defs.timeouts.FIN_WAIT, 120);
    assert.equal(cfg.defs.timeoutUdp, 300);
    assert.equal(cfg.defs.timeouts.TIME_WAIT, DEFAULT_TCP_TIMEOUTS.TIME_WAIT);
    assert.equal(cfg.warnings, undefined);
    // 0 leaves a timeout as it is, as ipvsadm --set 0 does.
    const zero = parseConfig(`global_defs {\n  lvs_timeouts tcp 0\n}\n${BASE}`, 'k.conf');
    assert.equal(zero.defs.timeouts.ESTABLISHED, DEFAULT_TCP_TIMEOUTS.ESTABLISHED);
  });

  it("lvs_timeouts yields to fullnat_defs' own keyword, with a warning, whichever comes first", () => {
    const text = `fullnat_defs {\n  timeout_established 600\n}\nglobal_defs {\n  lvs_timeouts tcp 7200 tcpfin 30\n}\n${BASE}`;
    const cfg = parseConfig(text, 'k.conf');
    assert.equal(cfg.defs.timeouts.ESTABLISHED, 600);
    assert.equal(cfg.defs.timeouts.FIN_WAIT, 30);
    assert.deepEqual(cfg.warnings, [
      {
        file: 'k.conf',
        line: 5,
        reason: 'lvs_timeouts tcp yields to fullnat_defs timeout_established (k.conf:2)',
      },
    ]);
  });

  it('lvs_timeouts errors: unknown option, odd words, bad value, repeated', () => {
    const bad = (line: string): string[] => report(`global_defs {\n  ${line}\n}\n${BASE}`).errors;
    assert.match(
      bad('lvs_timeouts tcp 1 fin 2')[0]!,
      /^k\.conf:2: unknown lvs_timeouts option 'fin' \(valid: tcp, tcpfin, udp\)$/,
    );
    assert.match(bad('lvs_timeouts tcp')[0]!, /^k\.conf:2: expected 'lvs_timeouts \[tcp SECONDS\]/);
    assert.match(bad('lvs_timeouts tcp x')[0]!, /^k\.conf:2: .*lvs_timeouts tcp/);
    assert.match(bad('lvs_timeouts tcp 1 tcp 2')[0]!, /^k\.conf:2: lvs_timeouts tcp given twice/);
  });

  it('an IPv4 router_id is the bgp block router_id when it gives none, wherever global_defs is', () => {
    const bgp = `bgp {\n  local_as 65001\n  neighbor 10.10.9.1 { remote_as 65000 }\n}\n`;
    const cfg = parseConfig(`${BASE}${bgp}global_defs {\n  router_id 10.10.9.2\n}\n`, 'k.conf');
    assert.equal(cfg.bgp?.routerId, parseIpv4('10.10.9.2'));
    assert.equal(cfg.warnings, undefined);
    const named = report(`${BASE}${bgp}global_defs {\n  router_id LVS_DEVEL\n}\n`);
    assert.match(named.errors[0]!, /bgp needs 'router_id'/);
  });
});

describe('include globs', () => {
  it('sorted matches relative to the including file; no match is a warning; a cycle is still an error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fullnat-kaconf-'));
    try {
      mkdirSync(join(dir, 'conf.d'));
      writeFileSync(join(dir, 'conf.d', 'b.conf'), service('virtual_server 10.10.1.102 80'));
      writeFileSync(join(dir, 'conf.d', 'a.conf'), service('virtual_server 10.10.1.101 80'));
      writeFileSync(join(dir, 'conf.d', '.hidden.conf'), 'garbage\n');
      writeFileSync(join(dir, 'conf.d', 'notes.txt'), 'garbage\n');
      mkdirSync(join(dir, 'conf.d', 'dir.conf'));
      writeFileSync(
        join(dir, 'main.conf'),
        `${LIPS}include conf.d/*.conf\ninclude none.d/*.conf\n`,
      );
      const cfg = loadConfig(join(dir, 'main.conf'));
      assert.deepEqual(
        cfg.services.map((s) => endpointToString(s.vip, s.vport)),
        ['10.10.1.101:80', '10.10.1.102:80'],
      );
      assert.deepEqual(cfg.services[1]!.pos, { file: join(dir, 'conf.d', 'b.conf'), line: 1 });
      assert.deepEqual(cfg.warnings, [
        {
          file: join(dir, 'main.conf'),
          line: 5,
          reason: `include '${join(dir, 'none.d/*.conf')}' matches no file`,
        },
      ]);
      writeFileSync(join(dir, 'conf.d', 'c.conf'), 'include ../main.conf\n');
      assert.throws(
        () => loadConfig(join(dir, 'main.conf')),
        /c\.conf:1: include cycle: .*main\.conf -> .*c\.conf -> .*main\.conf/,
      );
      writeFileSync(join(dir, 'conf.d', 'c.conf'), 'include [ab].conf\n');
      assert.throws(
        () => loadConfig(join(dir, 'main.conf')),
        /duplicate virtual_server 10\.10\.1\.101:80/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('virtual_server_group', () => {
  const GROUP = `virtual_server_group web {
    10.10.1.100 80
    10.10.1.110-112 443
    2001:db8::1 80
}
`;

  it('one service per address:port of the group, sharing the block; the group may come after its user', () => {
    const text = `${LIPS}${service('virtual_server group web', '    lb_algo wrr\n')}virtual_server_group web {
    10.10.1.100 80
    10.10.1.110-112 443    # keepalived's last-octet range
}
`;
    const cfg = parseConfig(text, 'k.conf');
    assert.deepEqual(
      cfg.services.map((s) => endpointToString(s.vip, s.vport)),
      ['10.10.1.100:80', '10.10.1.110:443', '10.10.1.111:443', '10.10.1.112:443'],
    );
    for (const s of cfg.services) {
      assert.equal(s.scheduler, 'wrr');
      assert.equal(s.realServers.length, 1);
      assert.deepEqual(s.pos, { file: 'k.conf', line: 4 });
    }
  });

  it('IPv6: the last group in hex, as keepalived reads ae00::2-9', () => {
    const text = `local_address_group g1 {\n    2001:db8:3::1\n}\nvirtual_server_group v6 {\n    ae00::2-b 80\n}\nvirtual_server group v6 {\n    laddr_group_name g1\n    real_server 2001:db8:2::2 80 {\n    }\n}\n`;
    const cfg = parseConfig(text, 'k.conf');
    assert.equal(cfg.services.length, 10);
    assert.equal(endpointToString(cfg.services[9]!.vip, 80), '[ae00::b]:80');
  });

  it('fwmark refused with its reason, in a group and as a virtual_server; the block is still read', () => {
    const text = `${LIPS}virtual_server_group g {\n    10.10.1.100 80\n    fwmark 1\n}\nvirtual_server group g {\n    laddr_group_name g1\n    lb_kind DR\n}\nvirtual_server fwmark 2 {\n    laddr_group_name g1\n}\n`;
    const r = report(text);
    const reason =
      "fwmark services are not supported: a firewall mark is set by the kernel's netfilter, and fullnat (user space, behind a TUN device) balances by address and port; list the VIP PORT pairs instead";
    assert.deepEqual(r.errors, [
      `k.conf:6: ${reason}`,
      "k.conf:10: lb_kind DR is not supported: direct routing rewrites the MAC address on the real servers' link, and fullnat forwards at layer 3 through a TUN (use NAT or FNAT)",
      `k.conf:12: ${reason}`,
    ]);
  });

  it('errors: unknown group, mixed families, duplicate entry, empty, missing port, duplicate service', () => {
    const errs = (text: string): string[] => report(text).errors;
    assert.deepEqual(errs(`${LIPS}${service('virtual_server group nope')}`), [
      "k.conf:4: unknown virtual_server_group 'nope' (defined: none)",
    ]);
    assert.match(
      errs(`${GROUP}${LIPS}`)[0]!,
      /^k\.conf:4: virtual_server_group mixes IPv4 and IPv6 \(first entry at k\.conf:2\)/,
    );
    assert.match(
      errs(`virtual_server_group d {\n  10.0.0.1 80\n  10.0.0.0-3 80\n}\n`)[0]!,
      /^k\.conf:3: duplicate 10\.0\.0\.1:80 in virtual_server_group \(also at k\.conf:2\)/,
    );
    assert.deepEqual(errs(`virtual_server_group e {\n}\n`), [
      "k.conf:1: virtual_server_group 'e' is empty",
    ]);
    assert.match(
      errs(`virtual_server_group p {\n  10.0.0.1\n}\n`)[0]!,
      /^k\.conf:2: expected 'VIP PORT' or 'A\.B\.C\.D-E PORT'/,
    );
    const dup = `${LIPS}virtual_server_group a {\n  10.10.1.100 80\n}\n${service('virtual_server group a')}${service('virtual_server 10.10.1.100 80')}`;
    assert.match(
      errs(dup)[0]!,
      /^k\.conf:\d+: duplicate virtual_server 10\.10\.1\.100:80 \(first at k\.conf:7\)/,
    );
  });
});

describe('keepalived keywords in checks and virtual servers', () => {
  it("DPVS's nb_sock_retry is retry; given with retry it repeats it", () => {
    const cfg = parseConfig(
      BASE.replace('connect_timeout 2', 'connect_timeout 2 nb_sock_retry 5'),
      'k.conf',
    );
    assert.equal(cfg.services[0]!.realServers[0]!.retry, 5);
    assert.match(
      report(BASE.replace('connect_timeout 2', 'retry 2 nb_sock_retry 5')).errors[0]!,
      /'nb_sock_retry' repeats 'retry'/,
    );
  });

  it('ip_family checked against the VIP; ha_suspend, warmup, smtp_alert accepted with a warning', () => {
    const text = service(
      'virtual_server 10.10.1.100 80',
      '    ip_family inet\n    ha_suspend\n    warmup 5\n    smtp_alert\n',
    );
    const r = report(LIPS + text);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(
      r.warnings.map((w) => w.replace(/: .*/s, ': ') + w.split(': ')[1]!.split(' ')[0]),
      ['k.conf:7: ha_suspend', 'k.conf:8: warmup', 'k.conf:9: smtp_alert'],
    );
    assert.deepEqual(report(LIPS + text.replace('inet', 'inet6')).errors, [
      "k.conf:6: ip_family inet6 does not match this virtual_server's VIP (IPv4)",
    ]);
    assert.match(
      report(LIPS + text.replace('inet', 'ipx')).errors[0]!,
      /bad ip_family 'ipx' \(expected inet or inet6\)/,
    );
  });
});

describe('reload with a keepalived file', () => {
  const file = tempConfig('fullnat-kaconf-lb-');

  it('logs each warning and applies the file; a file with several errors is refused with the first, nothing changed', () => {
    writeFileSync(file, ONE_SERVICE);
    const { log, records } = recordingLogger();
    const lb = testLb(file, noHost, log);
    writeFileSync(
      file,
      `vrrp_instance VI_1 {\n    state MASTER\n}\nglobal_defs {\n    lvs_timeouts tcp 900\n}\n${ONE_SERVICE}`,
    );
    assert.equal(lb.reload().ok, true);
    assert.equal(lb.config.defs.timeouts.ESTABLISHED, 900);
    assert.ok(
      records.some(
        (r) =>
          r.msg ===
          `${file}:1: warning: vrrp_instance is keepalived's VRRP: skipped (run keepalived for VRRP beside fullnat)`,
      ),
      JSON.stringify(records),
    );
    writeFileSync(
      file,
      ONE_SERVICE.replace('weight 1', 'weight x').replace('10.10.3.1', '10.10.3.999'),
    );
    const r = lb.reload();
    assert.equal(r.ok, false);
    // Two errors in the file (lines 2 and 7): the reload names the first.
    assert.match(!r.ok ? r.error : '', new RegExp(`^${file}:2: `));
    assert.equal(readConfig(readFileSync(file, 'utf8'), file).errors.length, 2);
    assert.equal(lb.config.defs.timeouts.ESTABLISHED, 900, 'the running configuration stays');
  });
});

describe('a virtual_server group in the running LB', { timeout: 10_000 }, () => {
  const file = tempConfig('fullnat-kaconf-vsg-');

  it('ctl -Ln lists each address:port of the group as a service of its own', async () => {
    writeFileSync(
      file,
      `${LIPS}virtual_server_group web {\n    10.10.1.100 80\n    10.10.1.110-111 443\n}\n${service('virtual_server group web')}`,
    );
    const log = createLogger({ level: 'silent' });
    const lb = testLb(file, noHost, log);
    const sock = join(dirname(file), 'ctl.sock');
    const server = await startControlServer(sock, lb, log);
    try {
      const out: string[] = [];
      assert.equal(await runCtl(['-Ln'], sock, (l) => out.push(l)), 0);
      const services = out.filter((l) => l.startsWith('TCP')).map((l) => l.split(/\s+/)[1]);
      assert.deepEqual(services, ['10.10.1.100:80', '10.10.1.110:443', '10.10.1.111:443']);
      assert.equal(out.filter((l) => l.includes('10.10.2.2:80')).length, 3, out.join('\n'));
    } finally {
      await server.close();
    }
  });
});
