/**
 * `fullnat ctl` with IPv6: ipvsadm's `[ADDR]:PORT` on the command line and
 * in every listing (print_service_entry's `[%s]:%u` for AF_INET6), IPv4
 * real servers under an IPv6 service (FNAT64), and the control socket
 * carrying IPv6 addresses as text both ways.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  computeRates,
  CtlUsageError,
  formatConnections,
  formatLaddrs,
  formatRates,
  formatServices,
  formatStats,
  parseCtlArgs,
} from '../../src/control/ctl/index.js';
import type {
  ConnectionStatus,
  ServiceStatus,
  Snapshot,
  TrafficStats,
} from '../../src/control/model.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { RecordingLb, serveCtl, type CtlBench, type CtlRun } from '../support/ctl-bench.js';
import { rsStatus } from '../support/control-status.js';
import { ipv4 as ip, ipv6 as v6 } from '../support/addresses.js';

const stats = (conns: number, bytes: number): TrafficStats => ({
  conns,
  inPackets: conns * 10,
  outPackets: conns * 9,
  inBytes: bytes,
  outBytes: bytes * 8,
});

/** One IPv4 service, one IPv6 service with an IPv6 and an IPv4 RS (FNAT64); unsorted. */
function fixture(): Snapshot {
  const dual: ServiceStatus = {
    vip: v6('2001:db8:1::100'),
    vport: 80,
    protocol: 'TCP',
    scheduler: 'rr',
    laddrs: [v6('2001:db8:3::1'), ip('10.10.3.5')],
    realServers: [
      rsStatus(v6('2001:db8:2::10'), 8080, 2, {
        activeConns: 7,
        inactiveConns: 1,
        stats: stats(40, 4000),
      }),
      rsStatus(ip('10.10.2.5'), 8080, 1, { activeConns: 3, stats: stats(20, 2000) }),
    ],
    stats: stats(60, 6000),
    counters: {},
  };
  const web: ServiceStatus = {
    vip: ip('10.10.1.100'),
    vport: 80,
    protocol: 'TCP',
    scheduler: 'wrr',
    laddrs: [ip('10.10.3.1')],
    realServers: [rsStatus(ip('10.10.2.2'), 80, 3, { activeConns: 1, stats: stats(5, 500) })],
    stats: stats(5, 500),
    counters: {},
  };
  return { services: [dual, web], counters: {}, connections: 11, uptime: 9 };
}

const CONNS: ConnectionStatus[] = [
  {
    protocol: 'TCP',
    expiresIn: 899,
    state: 'ESTABLISHED',
    client: { addr: v6('2001:db8:99::7'), port: 51234 },
    virtual: { addr: v6('2001:db8:1::100'), port: 80 },
    local: { addr: v6('2001:db8:3::1'), port: 1025 },
    real: { addr: v6('2001:db8:2::10'), port: 8080 },
  },
  {
    protocol: 'TCP',
    expiresIn: 7,
    state: 'SYN_RECV',
    client: { addr: v6('2001:db8:99::8'), port: 40000 },
    virtual: { addr: v6('2001:db8:1::100'), port: 80 },
    local: { addr: ip('10.10.3.5'), port: 2000 },
    real: { addr: ip('10.10.2.5'), port: 8080 },
  },
];

function usageError(argv: string[]): string {
  try {
    parseCtlArgs(argv);
  } catch (e) {
    assert.ok(e instanceof CtlUsageError, String(e));
    return e.message;
  }
  return assert.fail(`accepted ${argv.join(' ')}`);
}

describe('ctl argv: IPv6', () => {
  it('-A -t [IPv6]:port', () => {
    assert.deepEqual(parseCtlArgs(['-A', '-t', '[2001:db8:1::100]:80', '-s', 'rr']), {
      kind: 'request',
      request: {
        op: 'add-service',
        service: { vip: v6('2001:db8:1::100'), vport: 80 },
        scheduler: 'rr',
      },
    });
  });

  it('-a with an IPv6 RS in brackets or an IPv4 RS (FNAT64); the port defaults to the service', () => {
    const svc = { vip: v6('2001:db8:1::100'), vport: 80 };
    const add = (r: string): unknown => parseCtlArgs(['-a', '-t', '[2001:db8:1::100]:80', '-r', r]);
    assert.deepEqual(add('[2001:db8:2::10]:8080'), {
      kind: 'request',
      request: {
        op: 'add-real',
        real: { ...svc, addr: v6('2001:db8:2::10'), port: 8080 },
        weight: 1,
      },
    });
    assert.deepEqual(add('[2001:db8:2::10]'), {
      kind: 'request',
      request: {
        op: 'add-real',
        real: { ...svc, addr: v6('2001:db8:2::10'), port: 80 },
        weight: 1,
      },
    });
    assert.deepEqual(add('10.10.2.5:8080'), {
      kind: 'request',
      request: { op: 'add-real', real: { ...svc, addr: ip('10.10.2.5'), port: 8080 }, weight: 1 },
    });
  });

  it('--add-laddr -z with an IPv6 LIP, bracketed or not', () => {
    for (const z of ['2001:db8:3::1', '[2001:db8:3::1]']) {
      assert.deepEqual(parseCtlArgs(['-P', '-t', '[2001:db8:1::100]:80', '-z', z]), {
        kind: 'request',
        request: {
          op: 'add-laddr',
          service: { vip: v6('2001:db8:1::100'), vport: 80 },
          laddr: v6('2001:db8:3::1'),
        },
      });
    }
  });

  it('-L -t [IPv6]:port picks one service', () => {
    assert.deepEqual(parseCtlArgs(['-Ln', '-t', '[2001:db8:1::100]:80']), {
      kind: 'list',
      view: 'services',
      service: { vip: v6('2001:db8:1::100'), vport: 80 },
      exact: false,
    });
  });

  it('refuses a service without brackets or port, malformed brackets, and FNAT46', () => {
    assert.equal(
      usageError(['-A', '-t', '2001:db8:1::100']),
      "illegal virtual service address:port '2001:db8:1::100': an IPv6 address goes in brackets (e.g. [2001:db8::100]:80)",
    );
    assert.equal(
      usageError(['-A', '-t', '[2001:db8:1::100]']),
      "illegal virtual service address:port '[2001:db8:1::100]': missing port (e.g. [2001:db8::100]:80)",
    );
    assert.equal(
      usageError(['-A', '-t', '[2001:db8:1::100:80']),
      "illegal virtual service address:port '[2001:db8:1::100:80' (e.g. [2001:db8::100]:80)",
    );
    // Bare, 2001:db8:2::10:8080 reads as an address with a port or as an address alone: refused, not guessed.
    assert.equal(
      usageError(['-a', '-t', '[2001:db8:1::100]:80', '-r', '2001:db8:2::10:8080']),
      "illegal real server address[:port] '2001:db8:2::10:8080': an IPv6 address goes in brackets (e.g. [2001:db8::2]:80 or [2001:db8::2])",
    );
    assert.equal(
      usageError(['-A', '-t', '[2001:db8::zz]:80']),
      "illegal virtual service address:port '[2001:db8::zz]:80': bad IPv6 address '2001:db8::zz'",
    );
    assert.equal(
      usageError(['-A', '-t', '[::1]:80']),
      "illegal virtual service address:port '[::1]:80': IPv6 address ::1 is out of range (not a routable unicast address: loopback)",
    );
    assert.equal(
      usageError(['-a', '-t', '10.10.1.100:80', '-r', '[2001:db8:2::10]:80']),
      "illegal real server address[:port] '[2001:db8:2::10]:80': real server 2001:db8:2::10 is IPv6 but the virtual_server 10.10.1.100 is IPv4 (FNAT46, IPv4 clients to IPv6 real servers, is not supported)",
    );
  });
});

describe('ctl listings: IPv6', () => {
  const opts = {};

  it('-Ln: IPv4 services first, IPv6 in brackets, IPv4 real servers under an IPv6 service', () => {
    assert.deepEqual(formatServices(fixture(), opts), [
      'IP Virtual Server version 1.2.1 (size=0)',
      'Prot LocalAddress:Port Scheduler Flags',
      '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
      'TCP  10.10.1.100:80 wrr',
      '  -> 10.10.2.2:80                 FullNat 3      1          0         ',
      'TCP  [2001:db8:1::100]:80 rr',
      '  -> 10.10.2.5:8080               FullNat 1      3          0         ',
      '  -> [2001:db8:2::10]:8080        FullNat 2      7          1         ',
    ]);
  });

  it('a long IPv6 name overflows its column whole, as ipvsadm prints it', () => {
    const snap = fixture();
    const long = 'fd00:1234:5678:9abc:def0:1234:5678:9abc';
    snap.services[0]!.vip = v6(long);
    snap.services[0]!.realServers[0]!.addr = v6(long.replace('fd00', 'fd01'));
    const lines = formatServices(snap, { ...opts, service: { vip: v6(long), vport: 80 } });
    assert.deepEqual(lines, [
      'Prot LocalAddress:Port Scheduler Flags',
      '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
      `TCP  [${long}]:80 rr`,
      '  -> 10.10.2.5:8080               FullNat 1      3          0         ',
      `  -> [fd01:1234:5678:9abc:def0:1234:5678:9abc]:8080 FullNat 2      7          1         `,
    ]);
  });

  it('--stats and --rate name IPv6 services and real servers the same way', () => {
    const st = formatStats(fixture(), {
      ...opts,
      service: { vip: v6('2001:db8:1::100'), vport: 80 },
    });
    assert.deepEqual(st, [
      'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes',
      '  -> RemoteAddress:Port',
      'TCP  [2001:db8:1::100]:80               60      600      540     6000    48000',
      '  -> 10.10.2.5:8080                     20      200      180     2000    16000',
      '  -> [2001:db8:2::10]:8080              40      400      360     4000    32000',
    ]);
    const before = fixture();
    const after = fixture();
    after.services[0]!.stats.conns += 30;
    after.services[0]!.realServers[0]!.stats.conns += 30;
    const rates = computeRates(before, after, 1);
    const rt = formatRates(after, rates, {
      ...opts,
      service: { vip: v6('2001:db8:1::100'), vport: 80 },
    });
    assert.equal(
      rt[2],
      'TCP  [2001:db8:1::100]:80               30        0        0        0        0',
    );
    assert.equal(
      rt[3],
      '  -> 10.10.2.5:8080                      0        0        0        0        0',
    );
    assert.equal(
      rt[4],
      '  -> [2001:db8:2::10]:8080              30        0        0        0        0',
    );
  });

  it('-Lnc: IPv6 endpoints in brackets, an FNAT64 connection with an IPv4 local and RS', () => {
    assert.deepEqual(formatConnections(CONNS), [
      'IPVS connection entries',
      'pro expire state       source             virtual            destination',
      'TCP 14:59  ESTABLISHED [2001:db8:99::7]:51234 [2001:db8:1::100]:80 [2001:db8:2::10]:8080',
      'TCP 00:07  SYN_RECV    [2001:db8:99::8]:40000 [2001:db8:1::100]:80 10.10.2.5:8080',
    ]);
    assert.deepEqual(formatConnections(CONNS, { lip: true }).slice(2), [
      'TCP 14:59  ESTABLISHED [2001:db8:99::7]:51234 [2001:db8:1::100]:80 [2001:db8:2::10]:8080 [2001:db8:3::1]:1025',
      'TCP 00:07  SYN_RECV    [2001:db8:99::8]:40000 [2001:db8:1::100]:80 10.10.2.5:8080     10.10.3.5:2000',
    ]);
  });

  it('-G: IPv4 LIPs first, then IPv6', () => {
    assert.deepEqual(formatLaddrs(fixture()), [
      'VIP:VPORT            TOTAL    SNAT_IP',
      '10.10.1.100:80       1',
      '                              10.10.3.1',
      '[2001:db8:1::100]:80 2',
      '                              10.10.3.5',
      '                              2001:db8:3::1',
    ]);
  });
});

describe('ctl over the control socket: IPv6 as text on the wire', { timeout: 10_000 }, () => {
  let lb: RecordingLb;
  let bench: CtlBench;

  before(async () => {
    lb = new RecordingLb(fixture, CONNS);
    bench = await serveCtl(lb, 'fullnat-ctl6-');
  });
  after(() => bench.close());

  const run = (argv: string[]): Promise<CtlRun> => bench.run(argv);

  it('requests with IPv6 reach the LB as Ipv6Address, IPv4 as numbers', async () => {
    const r = await run(['-a', '-t', '[2001:db8:1::100]:80', '-r', '10.10.2.9:8080', '-w', '4']);
    assert.deepEqual([r.code, r.out, r.err], [0, [], []]);
    assert.deepEqual(lb.requests.at(-1), {
      op: 'add-real',
      real: { vip: v6('2001:db8:1::100'), vport: 80, addr: ip('10.10.2.9'), port: 8080 },
      weight: 4,
    });
    const z = await run(['-P', '-t', '[2001:db8:1::100]:80', '-z', '2001:db8:3::9']);
    assert.equal(z.code, 0);
    const req = lb.requests.at(-1)!;
    assert.ok(req.op === 'add-laddr' && req.laddr instanceof Ipv6Address);
    assert.equal(req.laddr.text, '2001:db8:3::9');
  });

  it('-Ln and -Ln -t [IPv6]:port print the snapshot that crossed the socket', async () => {
    const all = await run(['-Ln']);
    assert.equal(all.code, 0);
    assert.deepEqual(all.out, formatServices(fixture(), {}));
    const one = await run(['-Ln', '-t', '[2001:db8:1:0::100]:80']);
    assert.equal(one.code, 0);
    assert.deepEqual(one.out.slice(2), [
      'TCP  [2001:db8:1::100]:80 rr',
      '  -> 10.10.2.5:8080               FullNat 1      3          0         ',
      '  -> [2001:db8:2::10]:8080        FullNat 2      7          1         ',
    ]);
    const missing = await run(['-Ln', '-t', '[2001:db8:1::101]:80']);
    assert.deepEqual([missing.code, missing.err], [1, ['No such service']]);
  });

  it('-Lnc and -G print IPv6 connections and LIPs that crossed the socket', async () => {
    const c = await run(['-Lnc']);
    assert.equal(c.code, 0);
    assert.deepEqual(c.out, formatConnections(CONNS));
    const g = await run(['-G', '-t', '[2001:db8:1::100]:80']);
    assert.deepEqual(g.out, [
      'VIP:VPORT            TOTAL    SNAT_IP',
      '[2001:db8:1::100]:80 2',
      '                              10.10.3.5',
      '                              2001:db8:3::1',
    ]);
  });
});
