import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, diffConfig, parseConfig } from '../../src/control/config/index.js';

const GROUP = `local_address_group g1 {
    10.10.3.1
    2001:db8:1::1
}
`;

const udp = (vip: string, extra = '', defs = ''): string => `${defs}${GROUP}
virtual_server ${vip} 53 {
    protocol UDP
    laddr_group_name g1
    ${extra}
    real_server ${vip.includes(':') ? '2001:db8:2::10' : '10.10.2.2'} 53 {
        weight 1
    }
}
`;

const TCP53 = `
virtual_server 10.10.1.100 53 {
    laddr_group_name g1
    real_server 10.10.2.2 53 {
        weight 1
    }
}
`;

/** The ConfigError parsing `text` throws: its line and reason. */
function refusal(text: string): { line: number; reason: string; message: string } {
  try {
    parseConfig(text, 'u.conf');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.ok(e.message.startsWith(`u.conf:${e.line}: `), e.message);
    return { line: e.line, reason: e.reason, message: e.message };
  }
  return assert.fail('expected a ConfigError');
}

const lineOf = (text: string, needle: string): number =>
  text.slice(0, text.indexOf(needle)).split('\n').length;

describe('config: UDP services', () => {
  it('parses protocol UDP, its uoa_mode, and the defs timeout_udp, uoa_mode, uoa_max_trail', () => {
    const defs = 'fullnat_defs {\n timeout_udp 60\n uoa_mode ipo\n uoa_max_trail 5\n}\n';
    const cfg = parseConfig(udp('10.10.1.100', 'uoa_mode off', defs), 'u.conf');
    assert.equal(cfg.services[0]!.protocol, 'UDP');
    assert.equal(cfg.services[0]!.uoaMode, 'off');
    assert.equal(cfg.defs.timeoutUdp, 60);
    assert.equal(cfg.defs.uoaMode, 'ipo');
    assert.equal(cfg.defs.uoaMaxTrail, 5);
    const plain = parseConfig(udp('10.10.1.100'), 'u.conf');
    assert.equal(plain.services[0]!.uoaMode, undefined);
    assert.equal(plain.defs.timeoutUdp, 300, 'IPVS default');
    assert.equal(plain.defs.uoaMode, 'opp', 'DPVS default');
    assert.equal(plain.defs.uoaMaxTrail, 3);
  });

  it('refuses bad values with FILE:LINE', () => {
    for (const [defs, re] of [
      ['fullnat_defs {\n uoa_mode tcp\n}\n', /bad uoa_mode 'tcp' \(expected ipo, opp, off\)/],
      [
        'fullnat_defs {\n uoa_max_trail 256\n}\n',
        /bad uoa_max_trail '256' \(expected an integer 0..255\)/,
      ],
      ['fullnat_defs {\n timeout_udp 0\n}\n', /bad timeout_udp '0'/],
    ] as const) {
      const r = refusal(udp('10.10.1.100', '', defs));
      assert.equal(r.line, 2);
      assert.match(r.reason, re);
    }
  });

  it('refuses the TCP-only keywords on a UDP service, and uoa_mode on a TCP one', () => {
    for (const kw of ['syn_proxy', 'proxy_protocol v2']) {
      const text = udp('10.10.1.100', kw);
      const r = refusal(text);
      assert.equal(r.line, lineOf(text, kw));
      assert.match(
        r.reason,
        /is for TCP services; virtual_server UDP 10\.10\.1\.100:53 is UDP \(protocol UDP at u\.conf:7\)/,
      );
    }
    const tcp = `${GROUP}${TCP53.replace('laddr_group_name g1', 'laddr_group_name g1\n    uoa_mode opp')}`;
    const r = refusal(tcp);
    assert.equal(r.line, lineOf(tcp, 'uoa_mode'));
    assert.match(r.reason, /'uoa_mode' is for UDP services/);
  });

  it('refuses ipo for an IPv6 service, given there or inherited from fullnat_defs', () => {
    const own = udp('2001:db8::100', 'uoa_mode ipo');
    const r = refusal(own);
    assert.equal(r.line, lineOf(own, 'uoa_mode'));
    assert.match(r.reason, /uoa_mode ipo carries IPv4 clients only/);
    const inherited = udp('2001:db8::100', '', 'fullnat_defs {\n uoa_mode ipo\n}\n');
    const r2 = refusal(inherited);
    assert.equal(r2.line, lineOf(inherited, 'virtual_server'));
    assert.match(r2.reason, /fullnat_defs sets uoa_mode ipo/);
    assert.equal(
      parseConfig(
        udp('2001:db8::100', 'uoa_mode opp', 'fullnat_defs {\n uoa_mode ipo\n}\n'),
        'u.conf',
      ).services[0]!.uoaMode,
      'opp',
    );
  });

  it('allows TCP and UDP on one VIP:port, refuses two of one protocol', () => {
    const both = udp('10.10.1.100') + TCP53;
    const cfg = parseConfig(both, 'u.conf');
    assert.deepEqual(
      cfg.services.map((s) => s.protocol),
      ['UDP', 'TCP'],
    );
    const twice = udp('10.10.1.100') + udp('10.10.1.100').replace(GROUP, '');
    const r = refusal(twice);
    assert.match(r.reason, /duplicate virtual_server UDP 10\.10\.1\.100:53 \(first at u\.conf:6\)/);
  });

  it('diffs by protocol: a UDP service beside a TCP one is an addition, uoa_mode a change', () => {
    const tcp = parseConfig(GROUP + TCP53, 'u.conf');
    const both = parseConfig(udp('10.10.1.100') + TCP53, 'u.conf');
    const d = diffConfig(tcp, both);
    assert.equal(d.addedServices.length, 1);
    assert.equal(d.addedServices[0]!.protocol, 'UDP');
    assert.equal(d.changedServices.length, 0);
    assert.equal(d.removedServices.length, 0);
    const off = parseConfig(udp('10.10.1.100', 'uoa_mode off') + TCP53, 'u.conf');
    const d2 = diffConfig(both, off);
    assert.equal(d2.changedServices.length, 1);
    assert.deepEqual(d2.changedServices[0]!.uoaMode, { from: undefined, to: 'off' });
    const defs = parseConfig(`fullnat_defs {\n timeout_udp 30\n}\n${udp('10.10.1.100')}`, 'u.conf');
    assert.deepEqual(diffConfig(parseConfig(udp('10.10.1.100'), 'u.conf'), defs).changedDefs, [
      'timeout_udp',
    ]);
  });
});
