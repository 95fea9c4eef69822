/**
 * `fullnat ctl` reads like ipvsadm to the scripts written for ipvsadm.
 *
 * The listings are compared byte for byte with ipvsadm 1.31's, rendered by
 * test/fixtures/ipvsadm/ipvsadm_golden.py from the printf formats found in
 * the installed ipvsadm binary (the test kernel has no IPVS for ipvsadm to
 * list). Then monitoring-style parsers (fixtures: an awk check of -Ln, an
 * awk reader of --stats, a Python reader of -Lnc) read both and must get
 * the same, expected, structure. Last, a real LoadBalancer behind the
 * control socket refuses the usual mistakes, and ctl says so in ipvsadm's
 * words with ipvsadm's exit codes.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { parseConfig } from '../../src/control/config/index.js';
import {
  computeRates,
  formatConnections,
  formatRates,
  formatServices,
  formatStats,
  IPVSADM_MESSAGES,
  type ServiceRates,
} from '../../src/control/ctl/index.js';
import { LoadBalancer } from '../../src/control/lb.js';
import { createLogger } from '../../src/control/log.js';
import type { ConnectionStatus, ServiceStatus, Snapshot } from '../../src/control/model.js';
import type { HostNetwork } from '../../src/io/host.js';
import { addressToString, type IpAddress } from '../../src/wire/address.js';
import { ipv4 as ip, ipv6 as v6 } from '../support/addresses.js';
import { serveCtl, type CtlBench } from '../support/ctl-bench.js';
import { ONE_SERVICE } from '../support/lb-harness.js';
import { rsStatus } from '../support/control-status.js';

const FIXTURES = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'test',
  'fixtures',
  'ipvsadm',
);
const IPVSADM = ['/usr/sbin/ipvsadm', '/sbin/ipvsadm'].find((p) => existsSync(p));
const tools = (): string | undefined => {
  if (!IPVSADM) return 'ipvsadm not installed (scripts/ensure-system-deps.sh installs it)';
  if (spawnSync('python3', ['-c', 'pass']).status !== 0) return 'python3 not available';
  if (spawnSync('awk', ['BEGIN{}']).status !== 0) return 'awk not available';
  return undefined;
};
const skip = tools();

const traffic = (n: number): ServiceStatus['stats'] => ({
  conns: n,
  inPackets: n * 10,
  outPackets: n * 9,
  inBytes: n * 1000,
  outBytes: n * 12345,
});

/** Unsorted on purpose, with every family and protocol ipvsadm orders, and numbers past 10^8. */
function snapshot(): Snapshot {
  const services: ServiceStatus[] = [
    {
      vip: v6('2001:db8:1::100'),
      vport: 443,
      protocol: 'TCP',
      scheduler: 'mh',
      laddrs: [],
      realServers: [
        rsStatus(v6('2001:db8:2::11'), 8443, 2, { activeConns: 7, stats: traffic(12) }),
        rsStatus(v6('2001:db8:2::10'), 8443, 1, { inactiveConns: 1, stats: traffic(3) }),
      ],
      stats: traffic(15),
      counters: {},
    },
    {
      vip: ip('10.10.1.100'),
      vport: 53,
      protocol: 'UDP',
      scheduler: 'rr',
      laddrs: [],
      realServers: [rsStatus(ip('10.10.2.2'), 53, 1, { inactiveConns: 4, stats: traffic(4) })],
      stats: traffic(4),
      counters: {},
    },
    {
      vip: ip('10.10.1.100'),
      vport: 80,
      protocol: 'TCP',
      scheduler: 'wlc',
      laddrs: [],
      realServers: [
        rsStatus(ip('10.10.2.3'), 8080, 0, {
          effectiveWeight: 0,
          healthy: false,
          stats: traffic(123_456_789),
        }),
        rsStatus(ip('10.10.2.2'), 8080, 100, {
          activeConns: 12345,
          inactiveConns: 678,
          stats: traffic(9),
        }),
      ],
      stats: traffic(123_456_798),
      counters: {},
    },
  ];
  return { services, counters: {}, connections: 3, maxConnections: 4096, uptime: 10 };
}

const CONNS: ConnectionStatus[] = [
  {
    protocol: 'TCP',
    expiresIn: 899.7,
    state: 'ESTABLISHED',
    client: { addr: ip('203.0.113.7'), port: 51234 },
    virtual: { addr: ip('10.10.1.100'), port: 80 },
    local: { addr: ip('10.10.3.1'), port: 1025 },
    real: { addr: ip('10.10.2.2'), port: 8080 },
  },
  {
    protocol: 'UDP',
    expiresIn: 299,
    state: 'UDP',
    client: { addr: ip('198.51.100.250'), port: 65535 },
    virtual: { addr: ip('10.10.1.100'), port: 53 },
    local: { addr: ip('10.10.3.1'), port: 5001 },
    real: { addr: ip('10.10.2.2'), port: 53 },
  },
  {
    protocol: 'TCP',
    expiresIn: 7200,
    state: 'SYN_RECV',
    client: { addr: v6('2001:db8:99::7'), port: 40000 },
    virtual: { addr: v6('2001:db8:1::100'), port: 443 },
    local: { addr: v6('2001:db8:3::1'), port: 2000 },
    real: { addr: v6('2001:db8:2::10'), port: 8443 },
  },
];

const five = (t: ServiceStatus['stats']): number[] => [
  t.conns,
  t.inPackets,
  t.outPackets,
  t.inBytes,
  t.outBytes,
];
const text = (a: IpAddress): string => addressToString(a);

/** `snapshot()` one second later: every counter grown by its own step, some past 10^8 a second. */
function later(): Snapshot {
  const snap = snapshot();
  let step = 1;
  const grow = (t: ServiceStatus['stats']): void => {
    t.conns += 7 * step;
    t.inPackets += 1_000 * step;
    t.outPackets += 123_456 * step;
    t.inBytes += 150_000_000 * step;
    t.outBytes += 9_876_543_210 * step;
    step++;
  };
  for (const s of snap.services) {
    grow(s.stats);
    for (const r of s.realServers) grow(r.stats);
  }
  return snap;
}

const RATES: ServiceRates[] = computeRates(snapshot(), later(), 1);

/** The same table as ipvsadm_golden.py reads it, with the rates from RATES. */
function goldenTable(snap: Snapshot, conns: readonly ConnectionStatus[]): string {
  // computeRates keeps the later snapshot's order, the same as snapshot()'s.
  const rateOf = (i: number): ServiceRates => RATES[i]!;
  const whole = (t: ServiceRates['rates']): number[] =>
    [t.cps, t.inPps, t.outPps, t.inBps, t.outBps].map((n) => Math.floor(n));
  return JSON.stringify({
    size: snap.maxConnections,
    services: snap.services.map((s, si) => ({
      proto: s.protocol,
      addr: text(s.vip),
      port: s.vport,
      sched: s.scheduler,
      stats: five(s.stats),
      rates: whole(rateOf(si).rates),
      dests: s.realServers.map((r, i) => ({
        addr: text(r.addr),
        port: r.port,
        weight: r.effectiveWeight,
        active: r.activeConns,
        inact: r.inactiveConns,
        stats: five(r.stats),
        rates: whole(rateOf(si).realServers[i]!.rates),
      })),
    })),
    conns: conns.map((c) => ({
      proto: c.protocol,
      expires: Math.floor(c.expiresIn),
      state: c.state,
      client: [text(c.client.addr), c.client.port],
      virtual: [text(c.virtual.addr), c.virtual.port],
      dest: [text(c.real.addr), c.real.port],
    })),
  });
}

function run(cmd: string, args: string[], input: string): string {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const golden = (mode: string): string =>
  run(
    'python3',
    [join(FIXTURES, 'ipvsadm_golden.py'), IPVSADM ?? '', mode],
    goldenTable(snapshot(), CONNS),
  );
const asOutput = (lines: string[]): string => `${lines.join('\n')}\n`;
const awk = (script: string, input: string): string[] =>
  run('awk', ['-f', join(FIXTURES, script)], input)
    .trim()
    .split('\n');

describe("ctl's listings against ipvsadm's and its parsers", { skip }, () => {
  it('-Ln: byte for byte what ipvsadm prints, trailing blanks included', () => {
    const ours = asOutput(formatServices(snapshot(), {}));
    assert.equal(ours, golden('list'));
    assert.ok(ours.includes('FullNat 1      0          4         \n'), 'InActConn padded to 10');
  });

  it('-Ln --stats and --stats --exact: byte for byte', () => {
    assert.equal(asOutput(formatStats(snapshot(), {})), golden('stats'));
    assert.equal(asOutput(formatStats(snapshot(), { exact: true })), golden('exact'));
  });

  it("-Ln --rate: byte for byte (the real servers' CPS and PPS plain, as ipvsadm prints them)", () => {
    const ours = asOutput(formatRates(later(), RATES, {}));
    assert.equal(ours, golden('rate'));
    assert.ok(ours.includes('M'), 'some rates abbreviated');
  });

  it('-Lnc: byte for byte, six columns', () => {
    assert.equal(asOutput(formatConnections(CONNS)), golden('conns'));
  });

  it('a check_ipvs-style awk check of -Ln reads both alike', () => {
    const expected = [
      'TCP 10.10.1.100:80 wlc 10.10.2.2:8080 100 12345 678',
      'TCP 10.10.1.100:80 wlc 10.10.2.3:8080 0 0 0',
      'UDP 10.10.1.100:53 rr 10.10.2.2:53 1 0 4',
      'TCP [2001:db8:1::100]:443 mh [2001:db8:2::10]:8443 1 0 1',
      'TCP [2001:db8:1::100]:443 mh [2001:db8:2::11]:8443 2 7 0',
    ];
    assert.deepEqual(awk('check_ipvs.awk', golden('list')), expected);
    assert.deepEqual(awk('check_ipvs.awk', asOutput(formatServices(snapshot(), {}))), expected);
  });

  it("the awk check refuses fullnat's old first line: the header is what it keys on", () => {
    const old = ['fullnat 0.1.0 (connections=3)', ...formatServices(snapshot(), {}).slice(1)];
    const r = spawnSync('awk', ['-f', join(FIXTURES, 'check_ipvs.awk')], {
      input: asOutput(old),
      encoding: 'utf8',
    });
    assert.equal(r.status, 3);
    assert.match(r.stderr, /not ipvsadm output/);
  });

  it('a graphing-style awk reader of --stats --exact reads both alike', () => {
    const ours = awk('ipvs_stats.awk', asOutput(formatStats(snapshot(), { exact: true })));
    assert.deepEqual(ours, awk('ipvs_stats.awk', golden('exact')));
    assert.deepEqual(
      ours[1],
      '10.10.1.100:80 10.10.2.3:8080 123456789 1234567890 1111111101 123456789000 1524074060205',
    );
    assert.equal(ours.length, 5);
  });

  it('a Python -Lnc reader reads both alike; with --lip it would not (the local column is extra)', () => {
    const read = (input: string): unknown =>
      JSON.parse(run('python3', [join(FIXTURES, 'ipvs_conns.py')], input));
    const ours = read(asOutput(formatConnections(CONNS)));
    assert.deepEqual(ours, read(golden('conns')));
    assert.deepEqual(ours, [
      {
        proto: 'TCP',
        expires: 899,
        state: 'ESTABLISHED',
        source: '203.0.113.7:51234',
        virtual: '10.10.1.100:80',
        destination: '10.10.2.2:8080',
      },
      {
        proto: 'UDP',
        expires: 299,
        state: 'UDP',
        source: '198.51.100.250:65535',
        virtual: '10.10.1.100:53',
        destination: '10.10.2.2:53',
      },
      {
        proto: 'TCP',
        expires: 7200,
        state: 'SYN_RECV',
        source: '[2001:db8:99::7]:40000',
        virtual: '[2001:db8:1::100]:443',
        destination: '[2001:db8:2::10]:8443',
      },
    ]);
    const lip = spawnSync('python3', [join(FIXTURES, 'ipvs_conns.py')], {
      input: asOutput(formatConnections(CONNS, { lip: true })),
      encoding: 'utf8',
    });
    assert.notEqual(lip.status, 0, 'the strict reader notices the extra column');
  });
});

/** Routes are only recorded: the LB is never started here. */
const host: HostNetwork = {
  openDevice: () => {
    throw new Error('no device in this test');
  },
  addRoute: () => undefined,
  delRoute: () => undefined,
  sysctl: () => undefined,
};

describe("ctl's refusals in ipvsadm's words and exit codes, from a real LoadBalancer", () => {
  let dir: string;
  let bench: CtlBench;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fullnat-ipvsadm-'));
    const file = join(dir, 'lb.conf');
    writeFileSync(file, ONE_SERVICE);
    const lb = new LoadBalancer(
      file,
      { host, log: createLogger({ level: 'silent' }), healthChecks: false },
      parseConfig(ONE_SERVICE, file),
    );
    bench = await serveCtl(lb, 'fullnat-ipvsadm-ctl-');
  });
  after(async () => {
    await bench.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const cases: [string, string[], number, string][] = [
    [
      '-A of a service that exists',
      ['-A', '-t', '10.10.1.100:80'],
      255,
      IPVSADM_MESSAGES.serviceExists,
    ],
    [
      '-E of a missing service',
      ['-E', '-t', '10.10.1.100:81', '-s', 'rr'],
      255,
      IPVSADM_MESSAGES.noSuchService,
    ],
    [
      '-D of a missing service',
      ['-D', '-t', '10.10.1.100:81'],
      255,
      IPVSADM_MESSAGES.noSuchService,
    ],
    [
      '-a to a missing service',
      ['-a', '-t', '10.10.1.100:81', '-r', '10.10.2.2:80'],
      255,
      IPVSADM_MESSAGES.serviceNotDefined,
    ],
    [
      '-a of a real server already there',
      ['-a', '-t', '10.10.1.100:80', '-r', '10.10.2.2:80'],
      255,
      IPVSADM_MESSAGES.destinationExists,
    ],
    [
      '-e of a missing real server',
      ['-e', '-t', '10.10.1.100:80', '-r', '10.10.2.9:80', '-w', '2'],
      255,
      IPVSADM_MESSAGES.noSuchDestination,
    ],
    [
      '-d of a missing real server',
      ['-d', '-t', '10.10.1.100:80', '-r', '10.10.2.9:80'],
      255,
      IPVSADM_MESSAGES.noSuchDestination,
    ],
    [
      '-d from a missing service',
      ['-d', '-t', '10.10.1.100:81', '-r', '10.10.2.2:80'],
      255,
      IPVSADM_MESSAGES.serviceNotDefined,
    ],
    [
      '-L -t of a missing service',
      ['-Ln', '-t', '10.10.1.100:81'],
      1,
      IPVSADM_MESSAGES.noSuchService,
    ],
  ];
  for (const [what, argv, code, message] of cases) {
    it(`${what}: "${message}", exit ${code}`, async () => {
      const r = await bench.run(argv);
      assert.deepEqual([r.code, r.out, r.err], [code, [], [message]]);
    });
  }

  it("fullnat's own commands refused keep exit 1 (no ipvsadm counterpart)", async () => {
    const r = await bench.run(['--handover']);
    assert.equal(r.code, 1, r.err.join('\n'));
    assert.deepEqual(r.err, ['handover is not available without fullnat run']);
  });

  it('a change that works exits 0 and the listing shows it', async () => {
    const add = await bench.run(['-a', '-t', '10.10.1.100:80', '-r', '10.10.2.9:80', '-w', '3']);
    assert.deepEqual([add.code, add.err], [0, []]);
    const list = await bench.run(['-Ln']);
    assert.equal(list.code, 0);
    assert.equal(list.out[0], 'IP Virtual Server version 1.2.1 (size=1048576)');
    assert.ok(
      list.out.includes('  -> 10.10.2.9:80                 FullNat 3      0          0         '),
      list.out.join('\n'),
    );
  });
});
