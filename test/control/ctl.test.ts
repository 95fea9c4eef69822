import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  computeRates,
  formatConnections,
  formatExpire,
  formatLaddrs,
  formatLargeNumber,
  formatRates,
  formatServices,
  formatStats,
  parseCtlArgs,
  runCtl,
  TITLE_RATE,
  TITLE_STATS,
  type CtlCommand,
} from '../../src/control/ctl/index.js';
import type {
  ConnectionStatus,
  ServiceStatus,
  Snapshot,
  TrafficStats,
} from '../../src/control/model.js';
import { validateControlRequest } from '../../src/control/socket/index.js';
import { RecordingLb, serveCtl, type CtlBench, type CtlRun } from '../support/ctl-bench.js';
import { rsStatus } from '../support/control-status.js';
import { ipv4 as ip } from '../support/addresses.js';

const stats = (
  conns: number,
  inPackets: number,
  outPackets: number,
  inBytes: number,
  outBytes: number,
): TrafficStats => ({
  conns,
  inPackets,
  outPackets,
  inBytes,
  outBytes,
});

const BIG = stats(123456789, 99999999, 1234567890, 123456789012345, 98765432109876);

/** Deliberately unsorted: the listings sort like ipvsadm (address, then port). */
function fixture(): Snapshot {
  const web: ServiceStatus = {
    vip: ip('10.10.1.100'),
    vport: 80,
    protocol: 'TCP',
    scheduler: 'wrr',
    laddrs: [ip('10.10.3.1')],
    realServers: [
      rsStatus(ip('10.10.2.3'), 80, 1, { stats: stats(30, 300, 300, 20000, 212000) }),
      rsStatus(ip('10.10.2.2'), 80, 3, {
        activeConns: 12,
        inactiveConns: 3,
        stats: stats(70, 700, 600, 44000, 300000),
      }),
    ],
    stats: stats(100, 1000, 900, 64000, 512000),
    counters: { toa_inserted: 70 },
  };
  const tls: ServiceStatus = {
    vip: ip('10.10.1.101'),
    vport: 443,
    protocol: 'TCP',
    scheduler: 'mh',
    laddrs: [ip('10.10.3.2'), ip('10.10.3.1')],
    realServers: [
      // Held out by its health check: configured 5, in force 0 (keepalived's way).
      rsStatus(ip('10.10.2.12'), 8443, 5, {
        effectiveWeight: 0,
        healthy: false,
        stats: { ...BIG },
      }),
    ],
    stats: { ...BIG },
    counters: {},
  };
  return { services: [tls, web], counters: {}, connections: 15, uptime: 100 };
}

const CONNS: ConnectionStatus[] = [
  {
    protocol: 'TCP',
    expiresIn: 899.7,
    state: 'ESTABLISHED',
    client: { addr: ip('203.0.113.7'), port: 51234 },
    virtual: { addr: ip('10.10.1.100'), port: 80 },
    local: { addr: ip('10.10.3.1'), port: 1025 },
    real: { addr: ip('10.10.2.2'), port: 80 },
  },
  {
    protocol: 'TCP',
    expiresIn: 7,
    state: 'FIN_WAIT',
    client: { addr: ip('198.51.100.250'), port: 65535 },
    virtual: { addr: ip('10.10.1.101'), port: 443 },
    local: { addr: ip('10.10.3.2'), port: 65000 },
    real: { addr: ip('10.10.2.12'), port: 8443 },
  },
  {
    protocol: 'TCP',
    expiresIn: 7200,
    state: 'SYN_RECV',
    client: { addr: ip('1.2.3.4'), port: 1 },
    virtual: { addr: ip('10.10.1.100'), port: 80 },
    local: { addr: ip('10.10.3.1'), port: 2000 },
    real: { addr: ip('10.10.2.3'), port: 80 },
  },
];

const VIP = ip('10.10.1.100');
const SVC = { vip: VIP, vport: 80 };

describe('parseCtlArgs', () => {
  const ok: [string, string[], CtlCommand][] = [
    ['no arguments lists, like ipvsadm', [], { kind: 'list', view: 'services', exact: false }],
    ['-L', ['-L'], { kind: 'list', view: 'services', exact: false }],
    ['-l', ['-l'], { kind: 'list', view: 'services', exact: false }],
    ['--list', ['--list'], { kind: 'list', view: 'services', exact: false }],
    ['-Ln', ['-Ln'], { kind: 'list', view: 'services', exact: false }],
    ['-L -n', ['-L', '-n'], { kind: 'list', view: 'services', exact: false }],
    ['-nL (order free)', ['-nL'], { kind: 'list', view: 'services', exact: false }],
    ['-Ln --stats', ['-Ln', '--stats'], { kind: 'list', view: 'stats', exact: false }],
    ['-Ln --rate', ['-Ln', '--rate'], { kind: 'list', view: 'rate', exact: false }],
    [
      '-Ln --stats --exact',
      ['-Ln', '--stats', '--exact'],
      { kind: 'list', view: 'stats', exact: true },
    ],
    ['-LnX --stats', ['-LnX', '--stats'], { kind: 'list', view: 'stats', exact: true }],
    ['-Lnc', ['-Lnc'], { kind: 'connections' }],
    ['-Lnc --lip', ['-Lnc', '--lip'], { kind: 'connections', lip: true }],
    [
      '-Ln --stats --rate (ipvsadm prints the statistics)',
      ['-Ln', '--stats', '--rate'],
      { kind: 'list', view: 'stats', exact: false },
    ],
    ['-Ln --sort (a no-op)', ['-Ln', '--sort'], { kind: 'list', view: 'services', exact: false }],
    [
      '-Ln --nosort',
      ['-Ln', '--nosort'],
      { kind: 'list', view: 'services', exact: false, noSort: true },
    ],
    [
      '-Ln --stats --tun-kernel',
      ['-Ln', '--stats', '--tun-kernel'],
      { kind: 'list', view: 'stats', exact: false, tunKernel: true },
    ],
    ['-L -n -c', ['-L', '-n', '-c'], { kind: 'connections' }],
    [
      '--list --numeric --connection',
      ['--list', '--numeric', '--connection'],
      { kind: 'connections' },
    ],
    [
      '-Ln -t VIP:port',
      ['-Ln', '-t', '10.10.1.100:80'],
      { kind: 'list', view: 'services', service: SVC, exact: false },
    ],
    [
      '-Lnt VIP:port',
      ['-Lnt', '10.10.1.100:80'],
      { kind: 'list', view: 'services', service: SVC, exact: false },
    ],
    [
      '-Ln --stats --tcp-service=VIP:port',
      ['-Ln', '--stats', '--tcp-service=10.10.1.100:80'],
      { kind: 'list', view: 'stats', service: SVC, exact: false },
    ],
    [
      '-A -t VIP:port -s wrr',
      ['-A', '-t', '10.10.1.100:80', '-s', 'wrr'],
      { kind: 'request', request: { op: 'add-service', service: SVC, scheduler: 'wrr' } },
    ],
    [
      '-A without -s takes ipvsadm default wlc',
      ['-A', '-t', '10.10.1.100:80'],
      { kind: 'request', request: { op: 'add-service', service: SVC, scheduler: 'wlc' } },
    ],
    [
      '-At clustered with attached value',
      ['-At10.10.1.100:80', '-smh'],
      { kind: 'request', request: { op: 'add-service', service: SVC, scheduler: 'mh' } },
    ],
    [
      '--add-service long form',
      ['--add-service', '--tcp-service', '10.10.1.100:80', '--scheduler=rr'],
      { kind: 'request', request: { op: 'add-service', service: SVC, scheduler: 'rr' } },
    ],
    [
      '-E -t VIP:port -s sh',
      ['-E', '-t', '10.10.1.100:80', '-s', 'sh'],
      { kind: 'request', request: { op: 'edit-service', service: SVC, scheduler: 'sh' } },
    ],
    [
      '-D -t VIP:port',
      ['-D', '-t', '10.10.1.100:80'],
      { kind: 'request', request: { op: 'delete-service', service: SVC } },
    ],
    [
      '-a -t -r -b -w',
      ['-a', '-t', '10.10.1.100:80', '-r', '10.10.2.2:8080', '-b', '-w', '3'],
      {
        kind: 'request',
        request: { op: 'add-real', real: { ...SVC, addr: ip('10.10.2.2'), port: 8080 }, weight: 3 },
      },
    ],
    [
      '-at … -r RS (port from VIP) -w3 -b later',
      ['-at', '10.10.1.100:80', '-r', '10.10.2.2', '-w3', '-b'],
      {
        kind: 'request',
        request: { op: 'add-real', real: { ...SVC, addr: ip('10.10.2.2'), port: 80 }, weight: 3 },
      },
    ],
    [
      '-a without -w or -b: weight 1, FULLNAT implied',
      ['-a', '-t', '10.10.1.100:80', '-r', '10.10.2.2:80'],
      {
        kind: 'request',
        request: { op: 'add-real', real: { ...SVC, addr: ip('10.10.2.2'), port: 80 }, weight: 1 },
      },
    ],
    [
      '-e … -w 0 (quiesce)',
      ['-e', '-t', '10.10.1.100:80', '-r', '10.10.2.2:80', '-w', '0'],
      {
        kind: 'request',
        request: { op: 'edit-real', real: { ...SVC, addr: ip('10.10.2.2'), port: 80 }, weight: 0 },
      },
    ],
    [
      '--fullnat long form',
      [
        '--edit-server',
        '-t',
        '10.10.1.100:80',
        '--real-server=10.10.2.2:80',
        '--fullnat',
        '--weight=65535',
      ],
      {
        kind: 'request',
        request: {
          op: 'edit-real',
          real: { ...SVC, addr: ip('10.10.2.2'), port: 80 },
          weight: 65535,
        },
      },
    ],
    [
      '-d -t -r',
      ['-d', '-t', '10.10.1.100:80', '-r', '10.10.2.2:80'],
      {
        kind: 'request',
        request: { op: 'delete-real', real: { ...SVC, addr: ip('10.10.2.2'), port: 80 } },
      },
    ],
    [
      '--add-laddr -z LIP -t VIP:port',
      ['--add-laddr', '-z', '10.10.3.9', '-t', '10.10.1.100:80'],
      { kind: 'request', request: { op: 'add-laddr', service: SVC, laddr: ip('10.10.3.9') } },
    ],
    [
      'DPVS -P -z LIP -t VIP:port',
      ['-P', '-z', '10.10.3.9', '-t', '10.10.1.100:80'],
      { kind: 'request', request: { op: 'add-laddr', service: SVC, laddr: ip('10.10.3.9') } },
    ],
    [
      'DPVS --laddr=',
      ['-P', '--laddr=10.10.3.9', '-t', '10.10.1.100:80'],
      { kind: 'request', request: { op: 'add-laddr', service: SVC, laddr: ip('10.10.3.9') } },
    ],
    ['-G', ['-G'], { kind: 'laddrs' }],
    ['-G -t', ['-G', '-t', '10.10.1.100:80'], { kind: 'laddrs', service: SVC }],
    ['-Z', ['-Z'], { kind: 'request', request: { op: 'zero' } }],
    ['--zero', ['--zero'], { kind: 'request', request: { op: 'zero' } }],
    ['--reload', ['--reload'], { kind: 'request', request: { op: 'reload' } }],
    ['--handover', ['--handover'], { kind: 'request', request: { op: 'handover' } }],
    ['--shutdown', ['--shutdown'], { kind: 'request', request: { op: 'shutdown' } }],
    [
      '--reload --force',
      ['--reload', '--force'],
      { kind: 'request', request: { op: 'reload', force: true } },
    ],
    [
      '--force --reload',
      ['--force', '--reload'],
      { kind: 'request', request: { op: 'reload', force: true } },
    ],
    ['-h', ['-h'], { kind: 'help' }],
    ['--help', ['--help'], { kind: 'help' }],
    ['-h wins over anything', ['-A', '-h'], { kind: 'help' }],
    ['-v', ['-v'], { kind: 'version' }],
  ];
  for (const [name, argv, want] of ok) {
    it(`accepts ${name}`, () => {
      const got = parseCtlArgs(argv);
      assert.deepEqual(got, want);
      // Whatever ctl would send, the server's validator accepts unchanged.
      if (got.kind === 'request')
        assert.deepEqual(validateControlRequest(got.request), { ok: true, request: got.request });
    });
  }

  const bad: [string[], RegExp][] = [
    [['-n'], /^no command given: -L lists/],
    [['--stats'], /^no command given/],
    [['-L', '-A'], /^multiple commands specified: -L and -A$/],
    [['-LA'], /^multiple commands specified: -L and -A$/],
    [['-Ll'], /^multiple commands specified: -L and -l$/],
    [['-x'], /^connection thresholds \(-x\/-y\) are not supported$/],
    [['-k'], /^unknown option -k$/],
    [['--frobnicate'], /^unknown option --frobnicate$/],
    [['-L', 'extra'], /^unexpected argument 'extra'$/],
    [['-L', '--', 'x'], /^unexpected argument 'x'$/],
    [['-L', '--stats=1'], /^option --stats does not take a value$/],
    [['-A', '-t'], /^option -t requires an argument$/],
    [['-A', '--tcp-service'], /^option --tcp-service requires an argument$/],
    [['-A'], /^-A \(add-service\) needs -t VIP:port$/],
    [['-E', '-s', 'rr'], /^-E \(edit-service\) needs -t VIP:port$/],
    [['-a', '-t', '10.10.1.100:80'], /^-a \(add-server\) needs -r RS:port$/],
    [['-d', '-r', '10.10.2.2:80'], /^-d \(delete-server\) needs -t VIP:port$/],
    [['--add-laddr', '-t', '10.10.1.100:80'], /^--add-laddr \(add-laddr\) needs -z LIP$/],
    [['-P', '-z', '10.10.3.1'], /^-P \(add-laddr\) needs -t VIP:port$/],
    [
      ['-A', '-t', '10.10.1.100:80', '-w', '3'],
      /^-w \(weight\) is not allowed with -A \(add-service\)$/,
    ],
    [
      ['-A', '-n', '-t', '10.10.1.100:80'],
      /^-n \(numeric\) is not allowed with -A \(add-service\)$/,
    ],
    [
      ['-D', '-t', '10.10.1.100:80', '-s', 'rr'],
      /^-s \(scheduler\) is not allowed with -D \(delete-service\)$/,
    ],
    [
      ['-d', '-t', '10.10.1.100:80', '-r', '10.10.2.2', '-b'],
      /^-b \(forwarding-method\) is not allowed with -d \(delete-server\)$/,
    ],
    [['-L', '-s', 'rr'], /^-s \(scheduler\) is not allowed with -L \(list\)$/],
    [['-Z', '-t', '10.10.1.100:80'], /^-t \(service-address\) is not allowed with -Z \(zero\)$/],
    [['--reload', '-n'], /^-n \(numeric\) is not allowed with --reload \(reload\)$/],
    [['--handover', '-t', '10.10.1.100:80'], /is not allowed with --handover \(handover\)$/],
    [['-Z', '--force'], /^--force \(force\) is not allowed with -Z \(zero\)$/],
    [['-Ln', '--force'], /^--force \(force\) is not allowed with -L \(list\)$/],
    [['--reload', '--force=yes'], /^option --force does not take a value$/],
    [
      ['-A', '-t', '10.10.1.100:80', '-t', '10.10.1.101:80'],
      /^multiple -t \(service-address\) options specified$/,
    ],
    [
      ['-a', '-t', '10.10.1.100:80', '-r', '10.10.2.2', '-w', '1', '--weight', '2'],
      /^multiple -w \(weight\) options specified$/,
    ],
    [['-Lnc', '--stats'], /^options conflicts in the list command$/],
    [['-Lnc', '--rate'], /^options conflicts in the list command$/],
    [['-Ln', '--lip'], /^--lip goes with -c \(the connection listing\)$/],
    [['-Ln', '--tun-kernel'], /^--tun-kernel goes with --stats$/],
    [
      ['-Lnc', '-t', '10.10.1.100:80'],
      /^The option 'service-address' conflicts with the 'connection' option in the 'list' command$/,
    ],
    [
      ['-a', '-t', '10.10.1.100:80', '-r', '10.10.2.2', '-g'],
      /^ctl makes FULLNAT \(-b\) services only; a NAT service comes from the configuration \(lb_kind NAT\)$/,
    ],
    [
      ['-a', '-t', '10.10.1.100:80', '-r', '10.10.2.2', '-m'],
      /^ctl makes FULLNAT \(-b\) services only; a NAT service comes from the configuration \(lb_kind NAT\)$/,
    ],
    [
      ['-a', '-t', '10.10.1.100:80', '-r', '10.10.2.2', '-i'],
      /^ctl makes FULLNAT \(-b\) services only; a NAT service comes from the configuration \(lb_kind NAT\)$/,
    ],
    [
      ['-a', '-t', '10.10.1.100:80', '-r', '10.10.2.2', '--masquerading'],
      /^ctl makes FULLNAT \(-b\) services only; a NAT service comes from the configuration \(lb_kind NAT\)$/,
    ],
    [
      ['-A', '-q', '10.10.1.100:53'],
      /^only TCP and UDP services are supported \(-t or -u VIP:port\)$/,
    ],
    [['-A', '-f', '1'], /^firewall-mark services \(-f\) are not supported/],
    // -p is supported now (test/control/persistence.test.ts); its listing counterpart is not.
    [
      ['-L', '--persistent-conn'],
      /^--persistent-conn \(persistent connection counters\) is not supported/,
    ],
    [['-C'], /^-C \(clear\) is not supported/],
    [['-S'], /^-R\/-S \(restore\/save\) are not supported/],
    [
      ['-A', '-t', '10.10.1.100'],
      /^illegal virtual service address:port '10\.10\.1\.100': missing port \(e\.g\. 10\.10\.1\.100:80\)$/,
    ],
    [
      ['-A', '-t', 'www.example.com:80'],
      /^illegal virtual service address:port 'www\.example\.com:80': bad IPv4 address 'www\.example\.com'$/,
    ],
    [['-A', '-t', '10.10.1.256:80'], /: bad IPv4 address '10\.10\.1\.256'$/],
    [
      ['-A', '-t', '10.10.1.100:0'],
      /^illegal virtual service address:port '10\.10\.1\.100:0': bad port '0' \(expected an integer 1\.\.65535\)$/,
    ],
    [['-A', '-t', '10.10.1.100:65536'], /: bad port '65536' \(expected an integer 1\.\.65535\)$/],
    [['-A', '-t', '10.10.1.100:http'], /: bad port 'http' \(expected an integer 1\.\.65535\)$/],
    [
      ['-A', '-t', '10.10.1.100:80:1'],
      /^illegal virtual service address:port '10\.10\.1\.100:80:1'/,
    ],
    [
      ['-A', '-t', '0.0.0.0:80'],
      /: IPv4 address 0\.0\.0\.0 is out of range \(not a routable unicast address\)$/,
    ],
    [
      ['-A', '-t', '10.10.1.100:80', '-s', 'fifo'],
      /^unknown scheduler 'fifo' \(valid: rr, wrr, lc, wlc, sh, mh\)$/,
    ],
    [
      ['-a', '-t', '10.10.1.100:80', '-r', '10.10.2.2:99999'],
      /^illegal real server address\[:port\] '10\.10\.2\.2:99999': bad port '99999' \(expected an integer 1\.\.65535\)$/,
    ],
    [
      ['-a', '-t', '10.10.1.100:80', '-r', 'rs1'],
      /^illegal real server address\[:port\] 'rs1': bad IPv4 address 'rs1'$/,
    ],
    [
      ['-a', '-t', '10.10.1.100:80', '-r', '10.10.2.2', '-w', '-1'],
      /^bad weight '-1' \(expected an integer 0\.\.65535\)$/,
    ],
    [['-a', '-t', '10.10.1.100:80', '-r', '10.10.2.2', '-w', '65536'], /^bad weight '65536'/],
    [['-a', '-t', '10.10.1.100:80', '-r', '10.10.2.2', '-w', '1.5'], /^bad weight '1\.5'/],
    [['-a', '-t', '10.10.1.100:80', '-r', '10.10.2.2', '-w', ''], /^bad weight ''/],
    [
      ['-P', '-z', '10.10.3', '-t', '10.10.1.100:80'],
      /^illegal local address '10\.10\.3': bad IPv4 address '10\.10\.3'$/,
    ],
    [
      ['-P', '-z', '0.0.0.0', '-t', '10.10.1.100:80'],
      /^illegal local address '0\.0\.0\.0': IPv4 address 0\.0\.0\.0 is out of range \(not a routable unicast address\)$/,
    ],
  ];
  for (const [argv, re] of bad) {
    it(`rejects ${JSON.stringify(argv)}`, () => {
      assert.throws(
        () => parseCtlArgs(argv),
        (e: unknown) => {
          assert.ok(e instanceof Error && e.name === 'CtlUsageError', String(e));
          assert.match(e.message, re);
          assert.ok(!e.message.includes('\n'), 'one line');
          return true;
        },
      );
    });
  }
});

describe('formatters', () => {
  const opts = { maxConnections: 1048576 };

  it('-Ln: ipvsadm layout, sorted, weight in force', () => {
    assert.deepEqual(formatServices(fixture(), opts), [
      'IP Virtual Server version 1.2.1 (size=1048576)',
      'Prot LocalAddress:Port Scheduler Flags',
      '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
      'TCP  10.10.1.100:80 wrr',
      '  -> 10.10.2.2:80                 FullNat 3      12         3         ',
      '  -> 10.10.2.3:80                 FullNat 1      0          0         ',
      'TCP  10.10.1.101:443 mh',
      '  -> 10.10.2.12:8443              FullNat 0      0          0         ',
    ]);
  });

  it('-Ln without a known table size, and -Ln -t (no version line)', () => {
    assert.equal(formatServices(fixture(), {})[0], 'IP Virtual Server version 1.2.1 (size=0)');
    assert.deepEqual(
      formatServices(fixture(), { service: { vip: ip('10.10.1.101'), vport: 443 } }),
      [
        'Prot LocalAddress:Port Scheduler Flags',
        '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
        'TCP  10.10.1.101:443 mh',
        '  -> 10.10.2.12:8443              FullNat 0      0          0         ',
      ],
    );
  });

  it('--stats: 9-column numbers, K/M/G/T past 10^8', () => {
    assert.deepEqual(formatStats(fixture(), opts), [
      'IP Virtual Server version 1.2.1 (size=1048576)',
      'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes',
      '  -> RemoteAddress:Port',
      'TCP  10.10.1.100:80                    100     1000      900    64000   512000',
      '  -> 10.10.2.2:80                       70      700      600    44000   300000',
      '  -> 10.10.2.3:80                       30      300      300    20000   212000',
      'TCP  10.10.1.101:443               123456K 99999999    1234M     123T   98765G',
      '  -> 10.10.2.12:8443               123456K 99999999    1234M     123T   98765G',
    ]);
  });

  it("--stats --tun-kernel: the TUN's kernel counters below the whole table, each way named from fullnat's side", () => {
    const snap = {
      ...fixture(),
      tunKernel: {
        device: 'fnat0',
        stats: {
          tx_packets: 123456789,
          tx_bytes: 9000,
          tx_dropped: 42,
          rx_packets: 77,
          rx_bytes: 8000,
          rx_dropped: 0,
          rx_frame_errors: 3,
        },
      },
    };
    const tunOpts = { ...opts, tunKernel: true };
    const lines = formatStats(snap, tunOpts);
    assert.deepEqual(lines.slice(8), [
      '',
      'TUN fnat0 (kernel)                    Pkts    Bytes  Dropped   Errors',
      '  -> read by fullnat (tx)          123456K     9000       42        -',
      '  -> written by fullnat (rx)            77     8000        0        3',
    ]);
    assert.equal(
      formatStats(snap, { ...tunOpts, exact: true })[10],
      '  -> read by fullnat (tx)         123456789     9000       42        -',
    );
    const withService = formatStats(snap, {
      ...tunOpts,
      service: { vip: ip('10.10.1.101'), vport: 443 },
    });
    assert.ok(!withService.some((l) => l.startsWith('TUN')), 'not with -t, like the version line');
    assert.deepEqual(formatStats(fixture(), tunOpts).length, 8, 'nothing without the counters');
    assert.deepEqual(
      formatStats(snap, opts).length,
      8,
      'nothing without --tun-kernel: its rows would read as services to an ipvsadm parser',
    );
  });

  it('--stats --exact widens instead of abbreviating', () => {
    const lines = formatStats(fixture(), { ...opts, exact: true });
    assert.equal(
      lines[6],
      'TCP  10.10.1.101:443              123456789 99999999 1234567890 123456789012345 98765432109876',
    );
  });

  it('--stats/--rate rows line up under the title columns', () => {
    const ends = (line: string): number[] =>
      [...line.matchAll(/\S+/g)].map((m) => m.index + m[0].length);
    const titleEnds = ends(TITLE_STATS[0]!).slice(-5);
    for (const line of formatStats(fixture(), opts).slice(3))
      assert.deepEqual(ends(line).slice(-5), titleEnds, line);
    assert.deepEqual(ends(TITLE_RATE[0]!).slice(-5), titleEnds);
  });

  it('formatLargeNumber follows print_largenum', () => {
    const cases: [number, string][] = [
      [0, '        0'],
      [99_999_999, ' 99999999'],
      [100_000_000, '  100000K'],
      [999_999_999, '  999999K'],
      [1_000_000_000, '    1000M'],
      [99_999_999_999, '   99999M'],
      [100_000_000_000, '     100G'],
      [99_999_999_999_999, '   99999G'],
      [100_000_000_000_000, '     100T'],
      [-5, '        0'],
      [Number.NaN, '        0'],
      [12.9, '       12'],
    ];
    for (const [n, s] of cases) {
      assert.equal(s.length, 9, `golden for ${n} is 9 columns`);
      assert.equal(formatLargeNumber(n), s, String(n));
    }
    assert.equal(formatLargeNumber(12345678, true), ' 12345678');
    assert.equal(formatLargeNumber(123456789, true), ' 123456789');
  });

  it('--rate from two snapshots', () => {
    const later = fixture();
    const earlier = fixture();
    const web = earlier.services[1]!;
    web.stats = stats(80, 800, 800, 44000, 312000);
    web.realServers[1]!.stats = stats(50, 500, 500, 24000, 100000);
    // 10.10.2.3 has no baseline (added between the samples): zero, not its whole history.
    web.realServers.splice(0, 1);
    const tls = earlier.services[0]!;
    const minus = (t: TrafficStats): TrafficStats =>
      stats(
        t.conns - 2000,
        t.inPackets - 4_000_000,
        t.outPackets - 2_000_000,
        t.inBytes - 240_000_000,
        t.outBytes - 600_000_000,
      );
    tls.stats = minus(BIG);
    tls.realServers[0]!.stats = minus(BIG);
    const rates = computeRates(earlier, later, 2);
    assert.deepEqual(formatRates(later, rates, opts), [
      'IP Virtual Server version 1.2.1 (size=1048576)',
      'Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS',
      '  -> RemoteAddress:Port',
      'TCP  10.10.1.100:80                     10      100       50    10000   100000',
      '  -> 10.10.2.2:80                       10      100       50    10000   100000',
      '  -> 10.10.2.3:80                        0        0        0        0        0',
      'TCP  10.10.1.101:443                  1000  2000000  1000000  120000K  300000K',
      '  -> 10.10.2.12:8443                  1000  2000000  1000000  120000K  300000K',
    ]);
  });

  it('--rate: counters that went back (-Z between samples) read as zero', () => {
    const later = fixture();
    const earlier = fixture();
    later.services[1]!.stats = stats(0, 0, 0, 0, 0);
    const web = computeRates(earlier, later, 1).find((s) => s.vport === 80)!;
    assert.deepEqual(web.rates, { cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 });
  });

  it("-Lnc: ipvsadm's columns, the local one last with --lip, mm:ss expiry", () => {
    assert.deepEqual(formatConnections(CONNS), [
      'IPVS connection entries',
      'pro expire state       source             virtual            destination',
      'TCP 14:59  ESTABLISHED 203.0.113.7:51234  10.10.1.100:80     10.10.2.2:80',
      'TCP 00:07  FIN_WAIT    198.51.100.250:65535 10.10.1.101:443    10.10.2.12:8443',
      'TCP 120:00 SYN_RECV    1.2.3.4:1          10.10.1.100:80     10.10.2.3:80',
    ]);
    assert.deepEqual(formatConnections(CONNS, { lip: true }), [
      'IPVS connection entries',
      'pro expire state       source             virtual            destination        local',
      'TCP 14:59  ESTABLISHED 203.0.113.7:51234  10.10.1.100:80     10.10.2.2:80       10.10.3.1:1025',
      'TCP 00:07  FIN_WAIT    198.51.100.250:65535 10.10.1.101:443    10.10.2.12:8443    10.10.3.2:65000',
      'TCP 120:00 SYN_RECV    1.2.3.4:1          10.10.1.100:80     10.10.2.3:80       10.10.3.1:2000',
    ]);
    assert.equal(formatExpire(0), '00:00');
    assert.equal(formatExpire(-3), '00:00');
    assert.equal(formatExpire(61), '01:01');
  });

  it('-G: DPVS laddr layout', () => {
    assert.deepEqual(formatLaddrs(fixture()), [
      'VIP:VPORT            TOTAL    SNAT_IP',
      '10.10.1.100:80       1',
      '                              10.10.3.1',
      '10.10.1.101:443      2',
      '                              10.10.3.1',
      '                              10.10.3.2',
    ]);
  });
});

let snapshots = 0;

/** The fixture as the LB's traffic moves on: 100 connections more on the web service per snapshot. */
function flowingFixture(): Snapshot {
  const snap = fixture();
  snap.services[1]!.stats.conns += 100 * snapshots;
  snapshots++;
  return snap;
}

describe('runCtl end to end', { timeout: 10_000 }, () => {
  let lb: RecordingLb;
  let bench: CtlBench;

  before(async () => {
    lb = new RecordingLb(flowingFixture, CONNS);
    bench = await serveCtl(lb, 'fullnat-ctl-');
  });
  after(() => bench.close());

  function run(argv: string[], extra: { rateIntervalMs?: number } = {}): Promise<CtlRun> {
    lb.refuse = undefined;
    return bench.run(argv, extra);
  }

  it('-Ln prints the listing', async () => {
    const r = await run(['-Ln']);
    assert.equal(r.code, 0);
    assert.deepEqual(r.err, []);
    assert.equal(r.out[0], 'IP Virtual Server version 1.2.1 (size=0)');
    assert.equal(r.out[3], 'TCP  10.10.1.100:80 wrr');
    assert.equal(r.out.length, 8);
  });

  it('-Ln --stats -t VIP:port prints one service', async () => {
    const r = await run(['-Ln', '--stats', '-t', '10.10.1.101:443']);
    assert.equal(r.code, 0);
    assert.deepEqual(r.out, [
      'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes',
      '  -> RemoteAddress:Port',
      'TCP  10.10.1.101:443               123456K 99999999    1234M     123T   98765G',
      '  -> 10.10.2.12:8443               123456K 99999999    1234M     123T   98765G',
    ]);
  });

  it('-Ln -t of a missing service fails like ipvsadm', async () => {
    const r = await run(['-Ln', '-t', '10.9.9.9:80']);
    assert.deepEqual([r.code, r.out, r.err], [1, [], ['No such service']]);
  });

  it('-Ln --rate samples twice and divides by the time between', async () => {
    const before = snapshots;
    const t0 = performance.now();
    const r = await run(['-Ln', '--rate'], { rateIntervalMs: 100 });
    const wholeCall = (performance.now() - t0) / 1000;
    assert.equal(r.code, 0);
    assert.equal(snapshots - before, 2);
    assert.equal(r.out[1], TITLE_RATE[0]);
    const cps = Number(r.out[3]!.slice(33, 42));
    // 100 connections between the two samples, which lie at least the 0.1 s sleep and at most
    // the whole call apart: bounds from what this run took, not from what a machine should take.
    assert.ok(cps <= 1000, `cps ${cps} in ${r.out[3]}: faster than the interval allows`);
    const slowest = Math.floor(100 / wholeCall);
    assert.ok(cps >= slowest, `cps ${cps} in ${r.out[3]}: below 100 / ${wholeCall} s`);
  });

  it('-Lnc prints connections', async () => {
    const r = await run(['-Lnc']);
    assert.equal(r.code, 0);
    assert.deepEqual(r.out, formatConnections(CONNS));
    const lip = await run(['-Lnc', '--lip']);
    assert.equal(lip.code, 0);
    assert.deepEqual(lip.out, formatConnections(CONNS, { lip: true }));
  });

  it('-G prints local addresses', async () => {
    const r = await run(['-G', '-t', '10.10.1.100:80']);
    assert.equal(r.code, 0);
    assert.deepEqual(r.out, [
      'VIP:VPORT            TOTAL    SNAT_IP',
      '10.10.1.100:80       1',
      '                              10.10.3.1',
    ]);
  });

  it('a change is sent as a request and prints nothing', async () => {
    const r = await run(['-a', '-t', '10.10.1.100:80', '-r', '10.10.2.9:80', '-b', '-w', '2']);
    assert.deepEqual([r.code, r.out, r.err], [0, [], []]);
    assert.deepEqual(lb.requests.at(-1), {
      op: 'add-real',
      real: { vip: VIP, vport: 80, addr: ip('10.10.2.9'), port: 80 },
      weight: 2,
    });
  });

  it("the LB refusing a change prints ipvsadm's message for it and exits 255, as ipvsadm", async () => {
    const out: string[] = [];
    const err: string[] = [];
    lb.refuse = 'service TCP 10.10.1.100:80 already exists';
    const code = await runCtl(['-A', '-t', '10.10.1.100:80'], bench.path, (l) => out.push(l), {
      err: (l) => err.push(l),
    });
    lb.refuse = 'virtual_server address 10.10.2.2 is also a real server address';
    const other = await bench.run(['-A', '-t', '10.10.2.2:80']);
    lb.refuse = undefined;
    assert.deepEqual([code, out, err], [255, [], ['Service already exists']]);
    assert.deepEqual(
      [other.code, other.err],
      [255, ['virtual_server address 10.10.2.2 is also a real server address']],
      "a refusal ipvsadm has no words for keeps fullnat's",
    );
  });

  it('a bad command line exits 2 with one line and never connects', async () => {
    const before = lb.requests.length;
    const r = await run(['-a', '-t', '10.10.1.100:80', '-r', '10.10.2.2', '-m']);
    assert.deepEqual(
      [r.code, r.out, r.err],
      [
        2,
        [],
        [
          'ctl makes FULLNAT (-b) services only; a NAT service comes from the configuration (lb_kind NAT)',
        ],
      ],
    );
    assert.equal(lb.requests.length, before);
  });

  it('no LB running: exit 2 (ipvsadm without IPVS) with a clear message', async () => {
    const missing = join(dirname(bench.path), 'none.sock');
    const err: string[] = [];
    const code = await runCtl(['-Ln'], missing, () => undefined, { err: (l) => err.push(l) });
    assert.deepEqual([code, err], [2, [`no fullnat running: ${missing} not found`]]);
  });

  it('-h prints usage on out and exits 0', async () => {
    const r = await run(['-h']);
    assert.equal(r.code, 0);
    assert.equal(r.out[0], 'Usage:');
    assert.ok(r.out.some((l) => l.includes('--add-laddr')));
  });
});
