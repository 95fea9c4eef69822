/**
 * The control socket with IPv6: requests carry IPv6 addresses as text and
 * IPv4 ones as numbers; validation applies the same rules as the config
 * file; responses write Ipv6Address as text and the client reads it back.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { Snapshot } from '../../src/control/model.js';
import {
  fromWireJson,
  toWireJson,
  validateControlRequest,
} from '../../src/control/socket/index.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { rsStatus } from '../support/control-status.js';

const v6 = (s: string): Ipv6Address => {
  const a = Ipv6Address.parse(s);
  assert.ok(a, s);
  return a;
};

function refused(req: unknown): string {
  const r = validateControlRequest(req);
  assert.ok(!r.ok, `accepted ${JSON.stringify(req)}`);
  return r.error;
}

describe('control socket: IPv6 requests', () => {
  const svc6 = { vip: '2001:db8:1::100', vport: 80 };

  it('accepts IPv6 text for VIP, RS and LIP, and IPv4 numbers beside it (FNAT64)', () => {
    const add = validateControlRequest({ op: 'add-service', service: svc6, scheduler: 'rr' });
    assert.deepEqual(add, {
      ok: true,
      request: {
        op: 'add-service',
        service: { vip: v6('2001:db8:1::100'), vport: 80 },
        scheduler: 'rr',
      },
    });
    const real = validateControlRequest({
      op: 'add-real',
      real: { ...svc6, addr: 0x0a0a0205, port: 8080 },
      weight: 2,
    });
    assert.deepEqual(real, {
      ok: true,
      request: {
        op: 'add-real',
        real: { vip: v6('2001:db8:1::100'), vport: 80, addr: 0x0a0a0205, port: 8080 },
        weight: 2,
      },
    });
    const lip = validateControlRequest({ op: 'add-laddr', service: svc6, laddr: '2001:DB8:3::1' });
    assert.ok(lip.ok && lip.request.op === 'add-laddr');
    assert.deepEqual(lip.request.laddr, v6('2001:db8:3::1'));
  });

  it('refuses what the config refuses, with the same reason after the field', () => {
    assert.equal(
      refused({ op: 'add-service', service: { vip: '::1', vport: 80 }, scheduler: 'rr' }),
      'service.vip: IPv6 address ::1 is out of range (not a routable unicast address: loopback)',
    );
    assert.equal(
      refused({ op: 'add-laddr', service: svc6, laddr: 'fe80::1' }),
      'laddr: IPv6 address fe80::1 is out of range (not a routable unicast address: link-local)',
    );
    assert.equal(
      refused({ op: 'delete-real', real: { ...svc6, addr: '2001:db8::zz', port: 80 } }),
      "real.addr: bad IPv6 address '2001:db8::zz'",
    );
    assert.equal(
      refused({
        op: 'add-real',
        real: { vip: 0x0a0a0164, vport: 80, addr: '2001:db8:2::10', port: 80 },
        weight: 1,
      }),
      'real.addr: real server 2001:db8:2::10 is IPv6 but the virtual_server 10.10.1.100 is IPv4 (FNAT46, IPv4 clients to IPv6 real servers, is not supported)',
    );
    assert.equal(
      refused({
        op: 'add-service',
        service: { vip: '[2001:db8:1::100]', vport: 80 },
        scheduler: 'rr',
      }),
      "service.vip: bad IPv6 address '[2001:db8:1::100]'",
    );
    assert.equal(
      refused({ op: 'add-service', service: { vip: { bytes: [] }, vport: 80 }, scheduler: 'rr' }),
      'service.vip must be an IPv4 address as an unsigned 32-bit integer or an IPv6 address as text, got an object',
    );
  });
});

describe('control socket: addresses on the wire', () => {
  it('a response with IPv6 addresses crosses as text and reads back as Ipv6Address', () => {
    const snap: Snapshot = {
      services: [
        {
          vip: v6('2001:db8:1::100'),
          vport: 80,
          protocol: 'TCP',
          scheduler: 'rr',
          laddrs: [v6('2001:db8:3::1'), 0x0a0a0305],
          realServers: [rsStatus(v6('2001:db8:2::10'), 8080, 1)],
          stats: { conns: 0, inPackets: 0, outPackets: 0, inBytes: 0, outBytes: 0 },
          counters: {},
        },
      ],
      counters: {},
      connections: 0,
      uptime: 1,
    };
    const line = toWireJson({ ok: true, snapshot: snap });
    const raw = JSON.parse(line) as { snapshot: { services: Record<string, unknown>[] } };
    assert.equal(raw.snapshot.services[0]!.vip, '2001:db8:1::100');
    assert.deepEqual(raw.snapshot.services[0]!.laddrs, ['2001:db8:3::1', 0x0a0a0305]);
    assert.deepEqual(fromWireJson(line), { ok: true, snapshot: snap });
  });

  it('a connection listing reads back with each endpoint in its family', () => {
    const conn = {
      protocol: 'TCP',
      expiresIn: 1,
      state: 'ESTABLISHED',
      client: { addr: v6('2001:db8:99::7'), port: 5 },
      virtual: { addr: v6('2001:db8:1::100'), port: 80 },
      local: { addr: 0x0a0a0305, port: 1025 },
      real: { addr: 0x0a0a0205, port: 8080 },
    };
    assert.deepEqual(fromWireJson(toWireJson({ ok: true, connections: [conn] })), {
      ok: true,
      connections: [conn],
    });
  });

  it('only address fields are revived: an error text that looks like IPv6 stays text', () => {
    assert.deepEqual(fromWireJson('{"ok":false,"error":"2001:db8::1"}'), {
      ok: false,
      error: '2001:db8::1',
    });
  });
});
