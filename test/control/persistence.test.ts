/**
 * Client persistence on the control side: keepalived's `persistence_timeout`
 * and `persistence_granularity` (values, defaults, refusals with FILE:LINE),
 * the reload diff and its effect on the engine, ipvsadm's `-p [timeout]` and
 * `-M netmask`, the control socket's check of them, `-L`'s
 * `persistent 300 mask 255.255.255.0` and `-Lnc`'s template lines.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ConfigError, diffConfig, parseConfig } from '../../src/control/config/index.js';
import {
  CtlUsageError,
  formatConnections,
  formatServices,
  parseCtlArgs,
} from '../../src/control/ctl/index.js';
import { createLogger } from '../../src/control/log.js';
import type { Snapshot } from '../../src/control/model.js';
import { validateControlRequest } from '../../src/control/socket/validate.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { TCP_SYN } from '../../src/wire/tcp.js';
import { noHost } from '../support/no-host.js';
import { buildSegment } from '../support/packets.js';
import { tempConfig, testLb } from '../support/lb-harness.js';

const vs = (vip: string, extra: string, rs = '10.10.2.2'): string => `local_address_group g1 {
    10.10.3.1
    2001:db8:1::1
}
virtual_server ${vip} 80 {
    laddr_group_name g1
${extra}
    real_server ${rs} 80 {
        weight 1
    }
    real_server ${rs.replace(/2$/, '3').replace(/10$/, '11')} 80 {
        weight 1
    }
}
`;

/** The same with IPv4 local addresses only, as the LoadBalancer takes an IPv4 service. */
const vs4 = (extra: string): string => vs('10.10.1.100', extra).replace('    2001:db8:1::1\n', '');

function refusal(text: string): { line: number; message: string } {
  try {
    parseConfig(text, 'p.conf');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.ok(e.message.startsWith(`p.conf:${e.line}: `), e.message);
    return { line: e.line, message: e.message };
  }
  return assert.fail('expected a ConfigError');
}

describe('config: persistence_timeout and persistence_granularity', () => {
  it('reads both; the granularity defaults to one address', () => {
    const a = parseConfig(vs('10.10.1.100', '    persistence_timeout 50'), 'p.conf');
    assert.deepEqual(a.services[0]!.persistence, { timeout: 50, granularity: 0xffffffff });
    const b = parseConfig(
      vs('10.10.1.100', '    persistence_timeout 900\n    persistence_granularity 255.255.255.0'),
      'p.conf',
    );
    assert.deepEqual(b.services[0]!.persistence, {
      timeout: 900,
      granularity: parseIpv4('255.255.255.0'),
    });
    const none = parseConfig(vs('10.10.1.100', ''), 'p.conf');
    assert.equal(none.services[0]!.persistence, undefined, 'not persistent unless asked');
  });

  it("keepalived's defaults: no value is 300 s; a granularity alone makes the service persistent for 300 s", () => {
    const a = parseConfig(vs('10.10.1.100', '    persistence_timeout'), 'p.conf');
    assert.equal(a.services[0]!.persistence?.timeout, 300);
    const b = parseConfig(vs('10.10.1.100', '    persistence_granularity 255.255.0.0'), 'p.conf');
    assert.deepEqual(b.services[0]!.persistence, {
      timeout: 300,
      granularity: parseIpv4('255.255.0.0'),
    });
    // The timeout given after the granularity wins over that default.
    const c = parseConfig(
      vs('10.10.1.100', '    persistence_granularity 255.255.0.0\n    persistence_timeout 7'),
      'p.conf',
    );
    assert.equal(c.services[0]!.persistence?.timeout, 7);
  });

  it('an IPv6 service takes a prefix length', () => {
    const a = parseConfig(
      vs(
        '2001:db8::100',
        '    persistence_timeout 60\n    persistence_granularity 64',
        '2001:db8:2::10',
      ),
      'p.conf',
    );
    assert.deepEqual(a.services[0]!.persistence, { timeout: 60, granularity: 64 });
    const d = parseConfig(
      vs('2001:db8::100', '    persistence_timeout 60', '2001:db8:2::10'),
      'p.conf',
    );
    assert.equal(d.services[0]!.persistence?.granularity, 128);
  });

  it('refuses bad values with FILE:LINE', () => {
    for (const [extra, rs, vip, why] of [
      [
        '    persistence_timeout 0',
        '10.10.2.2',
        '10.10.1.100',
        /persistence_timeout.*1\.\.2678400/,
      ],
      ['    persistence_timeout 2678401', '10.10.2.2', '10.10.1.100', /1\.\.2678400/],
      ['    persistence_timeout 5m', '10.10.2.2', '10.10.1.100', /persistence_timeout/],
      ['    persistence_granularity 24', '10.10.2.2', '10.10.1.100', /netmask such as/],
      [
        '    persistence_granularity 255.255.255.0',
        '2001:db8:2::10',
        '2001:db8::100',
        /prefix length/,
      ],
      ['    persistence_granularity 129', '2001:db8:2::10', '2001:db8::100', /1\.\.128/],
    ] as const) {
      const text = vs(vip, extra, rs);
      const r = refusal(text);
      assert.equal(r.line, 7, `${extra}: the keyword's line (${r.message})`);
      assert.match(r.message, why);
    }
    const twice = refusal(
      vs('10.10.1.100', '    persistence_timeout 5\n    persistence_timeout 6'),
    );
    assert.match(twice.message, /given twice/);
  });

  it('the reload diff sees persistence switched on, changed and off', () => {
    const off = parseConfig(vs('10.10.1.100', ''), 'p.conf');
    const on = parseConfig(vs('10.10.1.100', '    persistence_timeout 50'), 'p.conf');
    const masked = parseConfig(
      vs('10.10.1.100', '    persistence_timeout 50\n    persistence_granularity 255.255.255.0'),
      'p.conf',
    );
    assert.deepEqual(diffConfig(off, on).changedServices[0]!.persistence, {
      from: undefined,
      to: { timeout: 50, granularity: 0xffffffff },
    });
    assert.ok(diffConfig(on, masked).changedServices[0]!.persistence);
    assert.deepEqual(diffConfig(masked, off).changedServices[0]!.persistence?.to, undefined);
    assert.equal(diffConfig(on, on).changedServices.length, 0);
  });
});

describe('LoadBalancer: persistence from the file, on reload and by ctl', () => {
  const file = tempConfig('fullnat-persist-');

  /** The RS address a SYN from `client` (sport) reaches. */
  function synTo(lb: ReturnType<typeof testLb>, client: number, sport: number): number {
    const e = lb.engine;
    const p = e.pool.take();
    assert.ok(
      p.load(
        buildSegment({
          src: client,
          dst: parseIpv4('10.10.1.100'),
          sport,
          dport: 80,
          seq: 1,
          ack: 0,
          flags: TCP_SYN,
        }),
      ),
    );
    e.process(p);
    assert.equal(e.outCount, 1);
    const b = e.out[0]!.buf.subarray(e.out[0]!.start);
    const rs = ((b[16]! << 24) | (b[17]! << 16) | (b[18]! << 8) | b[19]!) >>> 0;
    e.clearOutput();
    for (const q of e.out.splice(0)) e.pool.give(q);
    return rs;
  }

  it('applies the file, a reload that changes it, and -E without -p (off, as ipvsadm)', async () => {
    writeFileSync(file, vs4('    persistence_timeout 50'));
    const lb = testLb(file, noHost, createLogger({ level: 'silent' }));
    const client = parseIpv4('203.0.113.9');
    const first = synTo(lb, client, 1000);
    assert.equal(synTo(lb, client, 1001), first, 'persistent from the file');
    const svc = lb.snapshot().services[0]!;
    assert.deepEqual(svc.persistence, { timeout: 50, granularity: 0xffffffff, templates: 1 });
    assert.equal(lb.snapshot().persistenceTemplates, 1);
    assert.deepEqual(formatServices(lb.snapshot(), {}).slice(3, 4), [
      'TCP  10.10.1.100:80 wlc persistent 50',
    ]);

    writeFileSync(
      file,
      vs4('    persistence_timeout 60\n    persistence_granularity 255.255.255.0'),
    );
    assert.equal(lb.reload().ok, true);
    assert.deepEqual(formatServices(lb.snapshot(), {}).slice(3, 4), [
      'TCP  10.10.1.100:80 wlc persistent 60 mask 255.255.255.0',
    ]);

    const res = await lb.handle({
      op: 'edit-service',
      service: { vip: parseIpv4('10.10.1.100'), vport: 80 },
      scheduler: 'rr',
    });
    assert.deepEqual(res, { ok: true });
    assert.equal(lb.snapshot().services[0]!.persistence, undefined, '-E without -p: off');
    assert.notEqual(synTo(lb, client, 1002), synTo(lb, client, 1003), 'rr alternates again');

    const on = await lb.handle({
      op: 'edit-service',
      service: { vip: parseIpv4('10.10.1.100'), vport: 80 },
      scheduler: 'rr',
      persistence: { timeout: 300, granularity: 0xffffff00 },
    });
    assert.deepEqual(on, { ok: true });
    const a = synTo(lb, parseIpv4('198.51.100.1'), 2000);
    assert.equal(synTo(lb, parseIpv4('198.51.100.77'), 2000), a, 'the /24 follows');
    const conns = lb.connections();
    const tpl = formatConnections(conns).filter((l) => l.includes(' NONE '));
    assert.deepEqual(tpl, [
      'TCP 05:00  NONE        198.51.100.0:0     10.10.1.100:80     ' +
        (a === parseIpv4('10.10.2.2') ? '10.10.2.2:80' : '10.10.2.3:80'),
    ]);
  });
});

describe('ctl: -p [timeout] and -M netmask', () => {
  const svc = { vip: parseIpv4('10.10.1.100'), vport: 80 };

  it('-p without a value is 300, with one its seconds, in every spelling', () => {
    for (const [argv, timeout] of [
      [['-A', '-t', '10.10.1.100:80', '-p'], 300],
      [['-A', '-t', '10.10.1.100:80', '-p', '-s', 'rr'], 300],
      [['-A', '-t', '10.10.1.100:80', '-p', '60'], 60],
      [['-A', '-t', '10.10.1.100:80', '-p60'], 60],
      [['-A', '-t', '10.10.1.100:80', '--persistent=60'], 60],
      [['-A', '-t', '10.10.1.100:80', '--persistent', '60'], 60],
      [['-E', '-t', '10.10.1.100:80', '-s', 'rr', '-p', '7'], 7],
    ] as const) {
      const c = parseCtlArgs(argv);
      assert.equal(c.kind, 'request', argv.join(' '));
      if (c.kind !== 'request') continue;
      assert.ok(c.request.op === 'add-service' || c.request.op === 'edit-service');
      assert.deepEqual(c.request.persistence, { timeout, granularity: 0xffffffff }, argv.join(' '));
      assert.deepEqual(c.request.service, svc);
    }
    const plain = parseCtlArgs(['-A', '-t', '10.10.1.100:80']);
    assert.ok(plain.kind === 'request' && !('persistence' in plain.request));
  });

  it('-M takes a dotted mask for IPv4, a prefix length for IPv6; alone it is refused', () => {
    const a = parseCtlArgs(['-A', '-t', '10.10.1.100:80', '-p', '-M', '255.255.255.0']);
    assert.ok(a.kind === 'request' && a.request.op === 'add-service');
    assert.deepEqual(a.request.persistence, { timeout: 300, granularity: 0xffffff00 });
    const b = parseCtlArgs(['-A', '-t', '[2001:db8::100]:80', '-p', '120', '-M', '64']);
    assert.ok(b.kind === 'request' && b.request.op === 'add-service');
    assert.deepEqual(b.request.persistence, { timeout: 120, granularity: 64 });
    assert.throws(
      () => parseCtlArgs(['-A', '-t', '10.10.1.100:80', '-M', '255.255.255.0']),
      (e: unknown) => e instanceof CtlUsageError && /only applies to a persistent/.test(e.message),
    );
    assert.throws(
      () => parseCtlArgs(['-A', '-t', '10.10.1.100:80', '-p', '0']),
      (e: unknown) => e instanceof CtlUsageError && /persistent timeout/.test(e.message),
    );
    assert.throws(
      () => parseCtlArgs(['-A', '-t', '10.10.1.100:80', '-p', '-M', '24']),
      (e: unknown) => e instanceof CtlUsageError && /netmask such as/.test(e.message),
    );
    assert.throws(
      () => parseCtlArgs(['-a', '-t', '10.10.1.100:80', '-r', '10.10.2.2', '-p']),
      (e: unknown) => e instanceof CtlUsageError && /not allowed/.test(e.message),
    );
  });

  it('the control socket checks persistence as the command line does', () => {
    const ok = validateControlRequest({
      op: 'add-service',
      service: { vip: parseIpv4('10.10.1.100'), vport: 80 },
      scheduler: 'rr',
      persistence: { timeout: 60, granularity: 0xffffff00 },
    });
    assert.ok(ok.ok && ok.request.op === 'add-service');
    assert.deepEqual(ok.request.persistence, { timeout: 60, granularity: 0xffffff00 });
    for (const bad of [
      { timeout: 0, granularity: 1 },
      { timeout: 60 },
      { timeout: 60, granularity: 1, extra: 1 },
      'x',
    ]) {
      const r = validateControlRequest({
        op: 'edit-service',
        service: { vip: parseIpv4('10.10.1.100'), vport: 80 },
        scheduler: 'rr',
        persistence: bad,
      });
      assert.equal(r.ok, false, JSON.stringify(bad));
    }
  });
});

describe('ctl -L and -Lnc: as ipvsadm prints persistence', () => {
  it('persistent N, and the mask when not one address (IPv4 dotted, IPv6 a length)', () => {
    const base = {
      laddrs: [],
      realServers: [],
      stats: { conns: 0, inPackets: 0, outPackets: 0, inBytes: 0, outBytes: 0 },
      counters: {},
    };
    const snap: Snapshot = {
      connections: 0,
      uptime: 1,
      counters: {},
      services: [
        { ...base, vip: parseIpv4('10.0.0.1'), vport: 80, protocol: 'TCP', scheduler: 'wlc' },
        {
          ...base,
          vip: parseIpv4('10.0.0.1'),
          vport: 81,
          protocol: 'TCP',
          scheduler: 'wlc',
          persistence: { timeout: 300, granularity: 0xffffffff, templates: 0 },
        },
        {
          ...base,
          vip: parseIpv4('10.0.0.1'),
          vport: 82,
          protocol: 'TCP',
          scheduler: 'rr',
          persistence: { timeout: 300, granularity: 0xffffff00, templates: 0 },
        },
        {
          ...base,
          vip: Ipv6Address.parse('2001:db8::1')!,
          vport: 80,
          protocol: 'TCP',
          scheduler: 'wlc',
          persistence: { timeout: 60, granularity: 64, templates: 0 },
        },
      ],
    };
    assert.deepEqual(formatServices(snap, {}).slice(3), [
      'TCP  10.0.0.1:80 wlc',
      'TCP  10.0.0.1:81 wlc persistent 300',
      'TCP  10.0.0.1:82 rr persistent 300 mask 255.255.255.0',
      'TCP  [2001:db8::1]:80 wlc persistent 60 mask 64',
    ]);
  });

  it('a template line: state NONE, client port 0, the RS as destination', () => {
    const lines = formatConnections([
      {
        protocol: 'TCP',
        expiresIn: 300,
        state: 'NONE',
        client: { addr: parseIpv4('10.0.0.5'), port: 0 },
        virtual: { addr: parseIpv4('10.0.0.100'), port: 80 },
        local: { addr: 0, port: 0 },
        real: { addr: parseIpv4('10.0.1.10'), port: 80 },
      },
    ]);
    assert.equal(
      lines[2],
      'TCP 05:00  NONE        10.0.0.5:0         10.0.0.100:80      10.0.1.10:80',
    );
  });
});
