/**
 * One rule, one answer: the same bad value given to each front end — the
 * configuration file, `ctl`'s argv and a control-socket request — is refused
 * by all three, with the same reason text (src/control/rules.ts). Each front
 * end only adds where the value came from: `FILE:LINE: ` (the ConfigError's
 * reason is without it), `illegal … '…': ` for ctl's address options, and
 * `FIELD: ` on the socket.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ConfigError, parseConfig } from '../../src/control/config/index.js';
import { CtlUsageError, parseCtlArgs } from '../../src/control/ctl/index.js';
import { validateControlRequest } from '../../src/control/socket/index.js';
import { parseIpv4 } from '../../src/wire/bytes.js';

const ip = (s: string): number => parseIpv4(s);

/** The values of one service, as text; each case spoils one of them. */
interface Values {
  vip: string;
  vport: string;
  rs: string;
  rport: string;
  weight: string;
  scheduler: string;
  lip: string;
}

const GOOD: Values = {
  vip: '10.10.1.100',
  vport: '80',
  rs: '10.10.2.2',
  rport: '8080',
  weight: '3',
  scheduler: 'wrr',
  lip: '10.10.3.1',
};

/** An IPv6 service: the base of the IPv6 cases. */
const GOOD6: Values = {
  ...GOOD,
  vip: '2001:db8:1::100',
  rs: '2001:db8:2::2',
  lip: '2001:db8:3::1',
};

const isV6 = (a: string): boolean => a.includes(':');
/** ipvsadm's ADDR:PORT: IPv6 in brackets. */
const endpoint = (a: string, p: string): string => (isV6(a) ? `[${a}]:${p}` : `${a}:${p}`);

function configText(v: Values): string {
  return `local_address_group g1 {
    ${v.lip}
}
virtual_server ${v.vip} ${v.vport} {
    lb_algo ${v.scheduler}
    laddr_group_name g1
    real_server ${v.rs} ${v.rport} {
        weight ${v.weight}
    }
}
`;
}

/** The ctl command that carries the spoilt value. */
type Command = 'add-service' | 'add-server' | 'add-laddr';

function ctlArgv(cmd: Command, v: Values): string[] {
  const svc = ['-t', endpoint(v.vip, v.vport)];
  switch (cmd) {
    case 'add-service':
      return ['-A', ...svc, '-s', v.scheduler];
    case 'add-server':
      return ['-a', ...svc, '-r', endpoint(v.rs, v.rport), '-w', v.weight];
    case 'add-laddr':
      return ['-P', ...svc, '-z', v.lip];
  }
}

/** The same command as a control request, with numbers where the socket carries numbers (and IPv6 text). */
function socketRequest(cmd: Command, v: Values, raw: Partial<Record<keyof Values, unknown>>) {
  const num = (k: 'vip' | 'rs' | 'lip'): unknown =>
    k in raw ? raw[k] : isV6(v[k]) ? v[k] : ip(v[k]);
  const int = (k: 'vport' | 'rport' | 'weight'): unknown => (k in raw ? raw[k] : Number(v[k]));
  const service = { vip: num('vip'), vport: int('vport') };
  switch (cmd) {
    case 'add-service':
      return { op: 'add-service', service, scheduler: v.scheduler };
    case 'add-server':
      return {
        op: 'add-real',
        real: { ...service, addr: num('rs'), port: int('rport') },
        weight: int('weight'),
      };
    case 'add-laddr':
      return { op: 'add-laddr', service, laddr: num('lip') };
  }
}

interface Case {
  name: string;
  /** The good values the case spoils; default GOOD (IPv4). */
  base?: Values;
  /** The spoilt value, as the operator writes it in the file and on the command line. */
  bad: Partial<Values>;
  cmd: Command;
  /** The socket's field path for the value. */
  field: string;
  reason: string;
  /** Where the socket's JSON number cannot spell the text: its own value and reason. */
  socket?: { raw: Partial<Record<keyof Values, unknown>>; reason: string };
}

const OUT_OF_RANGE = (a: string): string =>
  `IPv4 address ${a} is out of range (not a routable unicast address)`;

const OUT_OF_RANGE6 = (a: string, why: string): string =>
  `IPv6 address ${a} is out of range (not a routable unicast address: ${why})`;

const CASES: Case[] = [
  {
    name: 'loopback VIP',
    bad: { vip: '127.0.0.1' },
    cmd: 'add-service',
    field: 'service.vip',
    reason: OUT_OF_RANGE('127.0.0.1'),
  },
  {
    name: '0.0.0.0 as VIP',
    bad: { vip: '0.0.0.0' },
    cmd: 'add-service',
    field: 'service.vip',
    reason: OUT_OF_RANGE('0.0.0.0'),
  },
  {
    name: 'multicast RS',
    bad: { rs: '224.0.0.1' },
    cmd: 'add-server',
    field: 'real.addr',
    reason: OUT_OF_RANGE('224.0.0.1'),
  },
  {
    name: '"this network" (0/8) RS',
    bad: { rs: '0.1.2.3' },
    cmd: 'add-server',
    field: 'real.addr',
    reason: OUT_OF_RANGE('0.1.2.3'),
  },
  {
    name: 'broadcast LIP',
    bad: { lip: '255.255.255.255' },
    cmd: 'add-laddr',
    field: 'laddr',
    reason: OUT_OF_RANGE('255.255.255.255'),
  },
  {
    name: 'loopback LIP',
    bad: { lip: '127.0.0.2' },
    cmd: 'add-laddr',
    field: 'laddr',
    reason: OUT_OF_RANGE('127.0.0.2'),
  },
  {
    name: 'service port 0',
    bad: { vport: '0' },
    cmd: 'add-service',
    field: 'service.vport',
    reason: "bad port '0' (expected an integer 1..65535)",
  },
  {
    name: 'service port 65536',
    bad: { vport: '65536' },
    cmd: 'add-service',
    field: 'service.vport',
    reason: "bad port '65536' (expected an integer 1..65535)",
  },
  {
    name: 'real server port 65536',
    bad: { rport: '65536' },
    cmd: 'add-server',
    field: 'real.port',
    reason: "bad port '65536' (expected an integer 1..65535)",
  },
  {
    name: 'weight above the limit',
    bad: { weight: '65536' },
    cmd: 'add-server',
    field: 'weight',
    reason: "bad weight '65536' (expected an integer 0..65535)",
  },
  {
    name: 'negative weight',
    bad: { weight: '-1' },
    cmd: 'add-server',
    field: 'weight',
    reason: "bad weight '-1' (expected an integer 0..65535)",
  },
  {
    name: 'fractional weight',
    bad: { weight: '1.5' },
    cmd: 'add-server',
    field: 'weight',
    reason: "bad weight '1.5' (expected an integer 0..65535)",
  },
  {
    name: 'unknown scheduler',
    bad: { scheduler: 'fifo' },
    cmd: 'add-service',
    field: 'scheduler',
    reason: "unknown scheduler 'fifo' (valid: rr, wrr, lc, wlc, sh, mh)",
  },
  {
    name: 'malformed VIP',
    bad: { vip: '10.10.1.256' },
    cmd: 'add-service',
    field: 'service.vip',
    reason: "bad IPv4 address '10.10.1.256'",
    // The socket carries addresses as numbers: its malformed address is one past 32 bits.
    socket: { raw: { vip: 2 ** 32 }, reason: "bad IPv4 address '4294967296'" },
  },
  {
    name: 'malformed RS',
    bad: { rs: '10.10.2' },
    cmd: 'add-server',
    field: 'real.addr',
    reason: "bad IPv4 address '10.10.2'",
    socket: { raw: { rs: -1 }, reason: "bad IPv4 address '-1'" },
  },
  {
    name: 'IPv6 loopback VIP',
    base: GOOD6,
    bad: { vip: '::1' },
    cmd: 'add-service',
    field: 'service.vip',
    reason: OUT_OF_RANGE6('::1', 'loopback'),
  },
  {
    name: 'IPv6 unspecified VIP',
    base: GOOD6,
    bad: { vip: '::' },
    cmd: 'add-service',
    field: 'service.vip',
    reason: OUT_OF_RANGE6('::', 'unspecified'),
  },
  {
    name: 'IPv4-mapped VIP',
    base: GOOD6,
    bad: { vip: '::ffff:10.10.1.100' },
    cmd: 'add-service',
    field: 'service.vip',
    reason: OUT_OF_RANGE6('::ffff:10.10.1.100', 'IPv4-mapped; write the IPv4 address'),
  },
  {
    name: 'IPv6 multicast RS',
    base: GOOD6,
    bad: { rs: 'ff02::1' },
    cmd: 'add-server',
    field: 'real.addr',
    reason: OUT_OF_RANGE6('ff02::1', 'multicast'),
  },
  {
    name: 'IPv6 link-local RS',
    base: GOOD6,
    bad: { rs: 'fe80::2' },
    cmd: 'add-server',
    field: 'real.addr',
    reason: OUT_OF_RANGE6('fe80::2', 'link-local'),
  },
  {
    name: 'IPv6 link-local LIP',
    base: GOOD6,
    bad: { lip: 'fe80::1' },
    cmd: 'add-laddr',
    field: 'laddr',
    reason: OUT_OF_RANGE6('fe80::1', 'link-local'),
  },
  {
    name: 'IPv4-mapped LIP',
    base: GOOD6,
    bad: { lip: '::ffff:10.10.3.1' },
    cmd: 'add-laddr',
    field: 'laddr',
    reason: OUT_OF_RANGE6('::ffff:10.10.3.1', 'IPv4-mapped; write the IPv4 address'),
  },
  {
    name: 'malformed IPv6 RS',
    base: GOOD6,
    bad: { rs: '2001:db8::zz' },
    cmd: 'add-server',
    field: 'real.addr',
    reason: "bad IPv6 address '2001:db8::zz'",
  },
  {
    name: 'IPv6 RS under an IPv4 VIP (FNAT46)',
    bad: { rs: '2001:db8:2::2' },
    cmd: 'add-server',
    field: 'real.addr',
    reason:
      'real server 2001:db8:2::2 is IPv6 but the virtual_server 10.10.1.100 is IPv4 (FNAT46, IPv4 clients to IPv6 real servers, is not supported)',
  },
];

function configReason(v: Values): string {
  try {
    parseConfig(configText(v), 'parity.conf', () => '');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.reason;
  }
  return assert.fail('the config accepted it');
}

function ctlMessage(argv: string[]): string {
  try {
    parseCtlArgs(argv);
  } catch (e) {
    assert.ok(e instanceof CtlUsageError, String(e));
    return e.message;
  }
  return assert.fail(`ctl accepted ${argv.join(' ')}`);
}

function socketError(req: unknown): string {
  const r = validateControlRequest(req);
  assert.ok(!r.ok, `the socket accepted ${JSON.stringify(req)}`);
  return r.error;
}

describe('domain rules: config, ctl and the control socket agree', () => {
  it('all three accept the good values every case starts from, IPv4, IPv6 and FNAT64', () => {
    const fnat64: Values = { ...GOOD6, rs: '10.10.2.2', lip: '10.10.3.1' };
    for (const good of [GOOD, GOOD6, fnat64]) {
      assert.doesNotThrow(() => parseConfig(configText(good), 'parity.conf', () => ''));
      for (const cmd of ['add-service', 'add-server', 'add-laddr'] as const) {
        assert.equal(parseCtlArgs(ctlArgv(cmd, good)).kind, 'request');
        const r = validateControlRequest(socketRequest(cmd, good, {}));
        assert.ok(r.ok, JSON.stringify(r));
      }
    }
  });

  for (const c of CASES) {
    it(`${c.name}: the same reason from each front end`, () => {
      const v: Values = { ...(c.base ?? GOOD), ...c.bad };

      assert.equal(configReason(v), c.reason, 'config');

      const msg = ctlMessage(ctlArgv(c.cmd, v));
      const ok = msg === c.reason || (msg.startsWith('illegal ') && msg.endsWith(`': ${c.reason}`));
      assert.ok(ok, `ctl said: ${msg}`);

      const sock = c.socket ?? { raw: {}, reason: c.reason };
      assert.equal(socketError(socketRequest(c.cmd, v, sock.raw)), `${c.field}: ${sock.reason}`);
    });
  }
});
