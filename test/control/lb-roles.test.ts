/**
 * ctl and the control socket refuse, at run time, an address that already
 * plays another part (VIP, real server, LIP), with the words the config file
 * uses: a shared address would loop through the TUN device.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { parseConfig } from '../../src/control/config/index.js';
import { LoadBalancer } from '../../src/control/lb.js';
import { createLogger } from '../../src/control/log.js';
import type { ControlRequest } from '../../src/control/model.js';
import type { HostNetwork } from '../../src/io/host.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { ONE_SERVICE } from '../support/lb-harness.js';

/** Routes are only recorded: the LB is never started here. */
const host: HostNetwork = {
  openDevice: () => {
    throw new Error('no device in this test');
  },
  addRoute: () => undefined,
  delRoute: () => undefined,
  sysctl: () => undefined,
};

describe('LoadBalancer: address roles at run time', () => {
  let dir: string;
  let lb: LoadBalancer;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'fullnat-roles-'));
    const file = join(dir, 'lb.conf');
    writeFileSync(file, ONE_SERVICE);
    lb = new LoadBalancer(
      file,
      { host, log: createLogger({ level: 'silent' }), healthChecks: false },
      parseConfig(ONE_SERVICE, file),
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const a = (text: string): number => parseIpv4(text);
  const service = { vip: a('10.10.1.100'), vport: 80 };

  const cases: [string, ControlRequest, RegExp][] = [
    [
      'a real server on a VIP',
      { op: 'add-real', real: { ...service, addr: a('10.10.1.100'), port: 81 }, weight: 1 },
      /^real server address 10\.10\.1\.100 is also a virtual_server address$/,
    ],
    [
      'a real server on a LIP',
      { op: 'add-real', real: { ...service, addr: a('10.10.3.1'), port: 81 }, weight: 1 },
      /^real server address 10\.10\.3\.1 is also a local address$/,
    ],
    [
      'a VIP on a real server',
      { op: 'add-service', service: { vip: a('10.10.2.2'), vport: 80 }, scheduler: 'rr' },
      /^virtual_server address 10\.10\.2\.2 is also a real server address$/,
    ],
    [
      'a VIP on a LIP',
      { op: 'add-service', service: { vip: a('10.10.3.1'), vport: 80 }, scheduler: 'rr' },
      /^virtual_server address 10\.10\.3\.1 is also a local address$/,
    ],
    [
      'a LIP on a VIP',
      { op: 'add-laddr', service, laddr: a('10.10.1.100') },
      /^local address 10\.10\.1\.100 is also a virtual_server address$/,
    ],
    [
      'a LIP on a real server',
      { op: 'add-laddr', service, laddr: a('10.10.2.2') },
      /^local address 10\.10\.2\.2 is also a real server address$/,
    ],
    [
      'an IPv6 real server under an IPv4 VIP (FNAT46)',
      {
        op: 'add-real',
        real: { ...service, addr: Ipv6Address.parse('2001:db8:2::10')!, port: 80 },
        weight: 1,
      },
      /^real server 2001:db8:2::10 is IPv6 but the virtual_server 10\.10\.1\.100 is IPv4 \(FNAT46, IPv4 clients to IPv6 real servers, is not supported\)$/,
    ],
  ];
  for (const [what, req, reason] of cases) {
    it(`refuses ${what}, and changes nothing`, async () => {
      const before = JSON.stringify(lb.snapshot().services);
      const r = await lb.handle(req);
      assert.equal(r.ok, false);
      assert.match(r.ok ? '' : r.error, reason);
      assert.equal(JSON.stringify(lb.snapshot().services), before);
    });
  }

  it('accepts what plays one part only: another port on the VIP, a second real server, the same LIP again', async () => {
    assert.deepEqual(
      await lb.handle({
        op: 'add-service',
        service: { vip: a('10.10.1.100'), vport: 443 },
        scheduler: 'rr',
      }),
      { ok: true },
    );
    assert.deepEqual(
      await lb.handle({
        op: 'add-real',
        real: { ...service, addr: a('10.10.2.3'), port: 80 },
        weight: 1,
      }),
      { ok: true },
    );
    assert.deepEqual(await lb.handle({ op: 'add-laddr', service, laddr: a('10.10.3.1') }), {
      ok: true,
    });
  });
});
