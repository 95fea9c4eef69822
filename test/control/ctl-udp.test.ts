import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CtlUsageError, parseCtlArgs } from '../../src/control/ctl/argv.js';
import {
  formatConnections,
  formatServices,
  formatStats,
} from '../../src/control/ctl/ipvsadm-format.js';
import type { ConnectionStatus, ServiceStatus, Snapshot } from '../../src/control/model.js';
import { validateControlRequest } from '../../src/control/socket/validate.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { noTraffic, rsStatus } from '../support/control-status.js';

const ip = parseIpv4;
const UDP53 = { vip: ip('10.0.0.1'), vport: 53, protocol: 'UDP' as const };

function svc(protocol: 'TCP' | 'UDP', inactive: number): ServiceStatus {
  return {
    vip: ip('10.0.0.1'),
    vport: 53,
    protocol,
    scheduler: 'rr',
    laddrs: [ip('10.10.3.1')],
    realServers: [rsStatus(ip('10.10.2.2'), 53, 1, { inactiveConns: inactive })],
    stats: { ...noTraffic(), conns: inactive },
    counters: {},
  };
}

describe('ctl: UDP services (-u)', () => {
  it('parses -u everywhere -t goes, into requests that name the protocol', () => {
    assert.deepEqual(parseCtlArgs(['-A', '-u', '10.0.0.1:53', '-s', 'rr']), {
      kind: 'request',
      request: { op: 'add-service', service: UDP53, scheduler: 'rr' },
    });
    assert.deepEqual(parseCtlArgs(['-D', '--udp-service=10.0.0.1:53']), {
      kind: 'request',
      request: { op: 'delete-service', service: UDP53 },
    });
    assert.deepEqual(parseCtlArgs(['-a', '-u', '10.0.0.1:53', '-r', '10.10.2.2', '-w', '2']), {
      kind: 'request',
      request: { op: 'add-real', real: { ...UDP53, addr: ip('10.10.2.2'), port: 53 }, weight: 2 },
    });
    assert.deepEqual(parseCtlArgs(['-d', '-u', '10.0.0.1:53', '-r', '10.10.2.2:53']), {
      kind: 'request',
      request: { op: 'delete-real', real: { ...UDP53, addr: ip('10.10.2.2'), port: 53 } },
    });
    assert.deepEqual(parseCtlArgs(['-Lnu', '10.0.0.1:53']), {
      kind: 'list',
      view: 'services',
      service: UDP53,
      exact: false,
    });
    assert.deepEqual(
      parseCtlArgs(['-A', '-t', '10.0.0.1:53']),
      {
        kind: 'request',
        request: {
          op: 'add-service',
          service: { vip: ip('10.0.0.1'), vport: 53 },
          scheduler: 'wlc',
        },
      },
      '-t requests stay as they were',
    );
    assert.throws(
      () => parseCtlArgs(['-A', '-t', '10.0.0.1:53', '-u', '10.0.0.1:53']),
      (e: unknown) => e instanceof CtlUsageError && /multiple .* options specified/.test(e.message),
    );
  });

  it('lists TCP before UDP as ipvsadm sorts them, and -u picks the UDP one', () => {
    const snap: Snapshot = {
      services: [svc('UDP', 3), svc('TCP', 1)],
      counters: {},
      connections: 4,
      uptime: 1,
    };
    const lines = formatServices(snap, {});
    assert.deepEqual(lines.slice(3), [
      'TCP  10.0.0.1:53 rr',
      '  -> 10.10.2.2:53                 FullNat 1      0          1         ',
      'UDP  10.0.0.1:53 rr',
      '  -> 10.10.2.2:53                 FullNat 1      0          3         ',
    ]);
    const only = formatServices(snap, { service: UDP53 });
    assert.deepEqual(only.slice(2), [
      'UDP  10.0.0.1:53 rr',
      '  -> 10.10.2.2:53                 FullNat 1      0          3         ',
    ]);
    assert.ok(formatStats(snap, { service: UDP53 }).some((l) => l.startsWith('UDP  10.0.0.1:53')));
  });

  it('-Lnc shows a UDP flow as ipvsadm does: protocol, expiry, state UDP', () => {
    const udpFlow: ConnectionStatus[] = [
      {
        protocol: 'UDP',
        expiresIn: 299,
        state: 'UDP',
        client: { addr: ip('203.0.113.7'), port: 41000 },
        virtual: { addr: ip('10.0.0.1'), port: 53 },
        local: { addr: ip('10.10.3.1'), port: 5001 },
        real: { addr: ip('10.10.2.2'), port: 53 },
      },
    ];
    const lines = formatConnections(udpFlow);
    assert.match(
      lines[lines.length - 1]!,
      /^UDP 04:59 {2}UDP {9}203\.0\.113\.7:41000 +10\.0\.0\.1:53 +10\.10\.2\.2:53$/,
    );
    const withLip = formatConnections(udpFlow, { lip: true });
    assert.match(
      withLip[withLip.length - 1]!,
      /^UDP 04:59 {2}UDP {9}203\.0\.113\.7:41000 +10\.0\.0\.1:53 +10\.10\.2\.2:53 +10\.10\.3\.1:5001$/,
    );
  });

  it('the control socket takes a protocol in service and real keys, TCP or UDP only', () => {
    const ok = validateControlRequest({
      op: 'delete-service',
      service: { vip: ip('10.0.0.1'), vport: 53, protocol: 'UDP' },
    });
    assert.deepEqual(ok, { ok: true, request: { op: 'delete-service', service: UDP53 } });
    const real = validateControlRequest({
      op: 'delete-real',
      real: { vip: ip('10.0.0.1'), vport: 53, addr: ip('10.10.2.2'), port: 53, protocol: 'UDP' },
    });
    assert.ok(real.ok);
    const bad = validateControlRequest({
      op: 'delete-service',
      service: { vip: ip('10.0.0.1'), vport: 53, protocol: 'SCTP' },
    });
    assert.deepEqual(bad, {
      ok: false,
      error: "service.protocol: bad protocol 'SCTP' (expected TCP or UDP)",
    });
  });
});
