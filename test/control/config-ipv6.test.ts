/**
 * The configuration file with IPv6: IPv6 virtual servers and real servers,
 * IPv4 real servers under an IPv6 VIP (FNAT64), IPv6 entries and ranges in
 * local_address_group, `toa_v6_kind`, and the errors each brings, always
 * `FILE:LINE: reason`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  ConfigError,
  diffConfig,
  parseConfig,
  RESTART_REQUIRED_DEFS,
} from '../../src/control/config/index.js';
import type { FullnatConfig } from '../../src/control/model.js';
import { addressToString, Ipv6Address, type IpAddress } from '../../src/wire/address.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { ipv6 as v6 } from '../support/addresses.js';

const texts = (list: readonly IpAddress[]): string[] => list.map(addressToString);

const parse = (t: string): FullnatConfig => parseConfig(t, 'v6.conf', () => '');

const DUAL = `fullnat_defs {
    toa_v6_kind 253
}
local_address_group lips6 {
    2001:db8:3::1
    2001:db8:3::10-2001:db8:3::12
    10.20.3.1 eth0
}
virtual_server 2001:db8:1::100 80 {
    lb_algo rr
    laddr_group_name lips6
    real_server 2001:db8:2::10 8080 {
        weight 2
        TCP_CHECK {
            connect_timeout 3
        }
    }
    real_server [2001:db8:2::11]:8080 {
    }
    real_server 10.20.2.5 8080 {
    }
}
virtual_server [2001:db8:1::101]:443 {
    laddr_group_name lips6
    real_server 10.20.2.6 443 {
    }
}
`;

function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `needle '${needle}' not in text`);
  return i + 1;
}

function expectError(text: string, needle: string, reason: RegExp): void {
  let caught: unknown;
  try {
    parse(text);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  const line = lineOf(text, needle);
  assert.equal(caught.line, line, caught.message);
  assert.ok(caught.message.startsWith(`v6.conf:${line}: `), caught.message);
  assert.match(caught.reason, reason);
}

const GROUP6 = `local_address_group g6 {
    2001:db8:3::1
}
`;

describe('config: IPv6 services and FNAT64', () => {
  it('parses IPv6 VIPs, IPv6 and IPv4 real servers, an IPv6 range and toa_v6_kind', () => {
    const cfg = parse(DUAL);
    assert.equal(cfg.defs.toaV6Kind, 253);
    assert.deepEqual(texts(cfg.laddrGroups.get('lips6')!), [
      '2001:db8:3::1',
      '2001:db8:3::10',
      '2001:db8:3::11',
      '2001:db8:3::12',
      '10.20.3.1',
    ]);
    const [a, b] = cfg.services;
    assert.ok(a!.vip instanceof Ipv6Address && a!.vip.equals(v6('2001:db8:1::100')));
    assert.equal(a!.vport, 80);
    assert.deepEqual(
      a!.realServers.map((r) => [addressToString(r.addr), r.port, r.weight]),
      [
        ['2001:db8:2::10', 8080, 2],
        ['2001:db8:2::11', 8080, 1],
        ['10.20.2.5', 8080, 1],
      ],
    );
    assert.equal(a!.realServers[2]!.addr, parseIpv4('10.20.2.5'), 'an IPv4 RS stays a number');
    assert.deepEqual(a!.realServers[0]!.check, { kind: 'TCP_CHECK', connectTimeout: 3 });
    assert.equal(addressToString(b!.vip), '2001:db8:1::101');
    assert.equal(b!.vport, 443);
  });

  it('toa_v6_kind defaults to 254 and takes only 254 or 253', () => {
    assert.equal(parse(`${GROUP6}`).defs.toaV6Kind, 254);
    const text = `fullnat_defs {\n    toa_v6_kind 252\n}\n`;
    expectError(text, 'toa_v6_kind', /^bad toa_v6_kind '252' \(expected 254 or 253\)$/);
  });

  it('an IPv6 address with a port in one word needs brackets', () => {
    const text = `${GROUP6}virtual_server 2001:db8:1::100:80 {\n    laddr_group_name g6\n}\n`;
    expectError(
      text,
      'virtual_server',
      /^virtual_server 2001:db8:1::100:80 has no port \(write 'virtual_server IP PORT, or \[IP\]:PORT'\)$/,
    );
  });

  it('refuses IPv6 address classes that cannot be a VIP, RS or LIP', () => {
    const svc = (vip: string, rs: string): string =>
      `${GROUP6}virtual_server ${vip} 80 {\n    laddr_group_name g6\n    real_server ${rs} 80 {\n    }\n}\n`;
    expectError(
      svc('ff05::1', '2001:db8:2::10'),
      'virtual_server',
      /^IPv6 address ff05::1 is out of range \(not a routable unicast address: multicast\)$/,
    );
    expectError(
      svc('2001:db8:1::100', '::1'),
      'real_server',
      /^IPv6 address ::1 is out of range \(not a routable unicast address: loopback\)$/,
    );
    expectError(
      svc('2001:db8:1::100', '::ffff:10.1.1.1'),
      'real_server',
      /IPv4-mapped; write the IPv4 address\)$/,
    );
    const lip = `local_address_group g6 {\n    fe80::1\n}\n`;
    expectError(lip, 'fe80', /^IPv6 address fe80::1 is out of range .*link-local\)$/);
    expectError(
      `local_address_group g6 {\n    ::\n}\n`,
      '::',
      /^IPv6 address :: is out of range .*unspecified\)$/,
    );
    expectError(
      `local_address_group g6 {\n    2001:db8::zz\n}\n`,
      'zz',
      /^bad IPv6 address '2001:db8::zz'$/,
    );
  });

  it('refuses an IPv6 real server under an IPv4 VIP (FNAT46)', () => {
    const text = `local_address_group g4 {\n    10.20.3.1\n}\nvirtual_server 10.20.1.100 80 {\n    laddr_group_name g4\n    real_server 2001:db8:2::10 80 {\n    }\n}\n`;
    expectError(
      text,
      'real_server',
      /^real server 2001:db8:2::10 is IPv6 but the virtual_server 10\.20\.1\.100 is IPv4 \(FNAT46, IPv4 clients to IPv6 real servers, is not supported\)$/,
    );
  });

  it('an FNAT64 service needs an IPv4 LIP, an IPv6 one with IPv6 real servers', () => {
    const fnat64 = `${GROUP6}virtual_server 2001:db8:1::100 80 {\n    laddr_group_name g6\n    real_server 10.20.2.5 80 {\n    }\n}\n`;
    expectError(
      fnat64,
      'real_server',
      /^real server 10\.20\.2\.5 is IPv4 but local_address_group 'g6' \(v6\.conf:1\) of virtual_server \[2001:db8:1::100\]:80 has no IPv4 address: the LB reaches an IPv4 real server from an IPv4 local address \(FNAT64\)$/,
    );
    const v4only = `local_address_group g4 {\n    10.20.3.1\n}\nvirtual_server 2001:db8:1::100 80 {\n    laddr_group_name g4\n    real_server 10.20.2.5 80 {\n    }\n    real_server 2001:db8:2::10 80 {\n    }\n}\n`;
    expectError(
      v4only,
      '2001:db8:2::10',
      /^real server 2001:db8:2::10 is IPv6 but local_address_group 'g4' .* has no IPv6 address: the LB reaches an IPv6 real server from an IPv6 local address$/,
    );
    // With a LIP of each family it is accepted.
    const both = v4only.replace('10.20.3.1', '10.20.3.1\n    2001:db8:3::1');
    assert.equal(parse(both).services[0]!.realServers.length, 2);
  });

  it('one address plays one part, whichever way it is written', () => {
    const text = `local_address_group g6 {\n    2001:db8:3::1\n    2001:DB8:1:0::100\n}\nvirtual_server 2001:db8:1::100 80 {\n    laddr_group_name g6\n}\n`;
    expectError(
      text,
      '2001:DB8:1:0::100',
      /^local address 2001:db8:1::100 in 'g6' is also a virtual_server address \(v6\.conf:5\)$/,
    );
    const dupRs = `${GROUP6}virtual_server 2001:db8:1::100 80 {\n    laddr_group_name g6\n    real_server 2001:db8:2::10 80 {\n    }\n    real_server [2001:db8:2:0::10]:80 {\n    }\n}\n`;
    expectError(
      dupRs,
      '[2001:db8:2:0::10]:80',
      /^duplicate real_server \[2001:db8:2::10\]:80 in virtual_server \[2001:db8:1::100\]:80 \(first at v6\.conf:6\)$/,
    );
    const dupVs = `${GROUP6}virtual_server 2001:db8:1::100 80 {\n    laddr_group_name g6\n}\nvirtual_server [2001:db8:1:0:0::100]:80 {\n    laddr_group_name g6\n}\n`;
    expectError(
      dupVs,
      '[2001:db8:1:0:0::100]:80',
      /^duplicate virtual_server \[2001:db8:1::100\]:80/,
    );
    const dupLip = `local_address_group g6 {\n    2001:db8:3::1\n    2001:db8:3:0::1\n}\n`;
    expectError(
      dupLip,
      '2001:db8:3:0::1',
      /^duplicate local address 2001:db8:3::1 in group 'g6' \(also at v6\.conf:2\)$/,
    );
  });

  it('IPv6 ranges: both ends in full, within the last 16 bits, at most 256', () => {
    const group = (entry: string): string => `local_address_group g6 {\n    ${entry}\n}\n`;
    assert.deepEqual(texts(parse(group('2001:db8:3::fe-2001:db8:3::101')).laddrGroups.get('g6')!), [
      '2001:db8:3::fe',
      '2001:db8:3::ff',
      '2001:db8:3::100',
      '2001:db8:3::101',
    ]);
    expectError(
      group('2001:db8:3::fffe-2001:db8:3::1:1'),
      '2001:db8:3::fffe-',
      /within the last 16 bits, at most 256 addresses\)$/,
    );
    assert.equal(
      parse(group('2001:db8:3::1:0-2001:db8:3::1:ff')).laddrGroups.get('g6')!.length,
      256,
    );
    expectError(
      group('2001:db8:3::1-20'),
      '2001:db8:3::1-20',
      /^bad address range '2001:db8:3::1-20' \(an IPv6 range names its end in full/,
    );
    expectError(
      group('2001:db8:3::1-2001:db8:3::1:0'),
      '2001:db8:3::1-',
      /within the last 16 bits, at most 256 addresses\)$/,
    );
    expectError(
      group('2001:db8:3::1-10.0.0.1'),
      '2001:db8:3::1-',
      /both ends must be IPv4 or both IPv6/,
    );
    expectError(
      group('10.0.0.1-2001:db8:3::1'),
      '10.0.0.1-',
      /both ends must be IPv4 or both IPv6/,
    );
  });

  it('diff: IPv6 services, real servers and LIPs are told apart by address, not by object', () => {
    const a = parse(DUAL);
    const same = parse(DUAL.replace('2001:db8:1::100 80', '2001:db8:1:0::100 80'));
    const d0 = diffConfig(a, same);
    assert.deepEqual(
      [d0.addedServices, d0.removedServices, d0.changedServices, d0.changedDefs],
      [[], [], [], []],
    );
    const edited = DUAL.replace('    2001:db8:3::1\n', '    2001:db8:3::2\n')
      .replace('real_server [2001:db8:2::11]:8080', 'real_server [2001:db8:2::12]:8080')
      .replace('weight 2', 'weight 5');
    const d = diffConfig(a, parse(edited));
    assert.equal(d.changedServices.length, 2);
    const c = d.changedServices[0]!;
    assert.deepEqual(texts(c.addedLaddrs), ['2001:db8:3::2']);
    assert.deepEqual(texts(c.removedLaddrs), ['2001:db8:3::1']);
    assert.deepEqual(texts(c.addedReals.map((r) => r.addr)), ['2001:db8:2::12']);
    assert.deepEqual(texts(c.removedReals.map((r) => r.addr)), ['2001:db8:2::11']);
    assert.deepEqual(
      c.changedReals.map((r) => [addressToString(r.after.addr), r.fields]),
      [['2001:db8:2::10', ['weight']]],
    );
  });

  it('toa_v6_kind takes a restart: a reload that changes it is refused', () => {
    assert.ok(RESTART_REQUIRED_DEFS.includes('toa_v6_kind'));
    const d = diffConfig(parse(DUAL), parse(DUAL.replace('toa_v6_kind 253', 'toa_v6_kind 254')));
    assert.deepEqual(d.changedDefs, ['toa_v6_kind']);
    assert.deepEqual(d.restartRequired, ['toa_v6_kind']);
  });
});

describe('config: IPv6 path MTUs', () => {
  const svc = (defs: string, rsBody: string): string =>
    `fullnat_defs {\n${defs}}\n${GROUP6}virtual_server 2001:db8:1::100 80 {\n    laddr_group_name g6\n    real_server 2001:db8:2::10 80 {\n${rsBody}    }\n}\n`;

  it("an IPv6 real server's mtu, or the rs_mtu it inherits, is at least 1280", () => {
    expectError(
      svc('', '        mtu 1200\n'),
      'mtu 1200',
      /^real server 2001:db8:2::10 is IPv6: its path MTU 1200 \(mtu\) is below IPv6's minimum 1280$/,
    );
    expectError(
      svc('    rs_mtu 1000\n', ''),
      'real_server',
      /^real server 2001:db8:2::10 is IPv6: its path MTU 1000 \(rs_mtu \(fullnat_defs\)\) is below IPv6's minimum 1280$/,
    );
    // Its own mtu wins over a low rs_mtu; an IPv4 real server keeps IPv4's minimum.
    assert.equal(
      parse(svc('    rs_mtu 1000\n', '        mtu 1280\n')).services[0]!.realServers[0]!.mtu,
      1280,
    );
    const fnat64 = `fullnat_defs {\n    rs_mtu 600\n}\nlocal_address_group g4 {\n    10.20.3.1\n}\nvirtual_server 2001:db8:1::100 80 {\n    laddr_group_name g4\n    real_server 10.20.2.5 80 {\n    }\n}\n`;
    assert.equal(parse(fnat64).defs.rsMtu, 600);
  });
});
