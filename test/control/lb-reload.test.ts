/**
 * The LoadBalancer's reload path, without a device: keys it applies on
 * reload reach the engine; a bad file is refused with FILE:LINE and changes
 * nothing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { LoadBalancer } from '../../src/control/lb.js';
import { createLogger } from '../../src/control/log.js';
import type { HostNetwork } from '../../src/io/host.js';

const SERVICE = `local_address_group g1 {
    10.10.3.1
}
virtual_server 10.10.1.100 80 {
    laddr_group_name g1
    real_server 10.10.2.2 80 {
        weight 1
    }
}
`;

/** The LB is never started here: any use of the host is a bug in the test. */
const noHost: HostNetwork = {
  openDevice: () => {
    throw new Error('no device in this test');
  },
  addRoute: () => {
    throw new Error('no routes in this test');
  },
  delRoute: () => {
    throw new Error('no routes in this test');
  },
  sysctl: () => {
    throw new Error('no sysctls in this test');
  },
};

describe('LoadBalancer reload: unknown_service_action', () => {
  let dir: string;
  let file: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'fullnat-lb-'));
    file = join(dir, 'lb.conf');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const write = (action?: string): void =>
    writeFileSync(
      file,
      `${action === undefined ? '' : `fullnat_defs {\n    unknown_service_action ${action}\n}\n`}${SERVICE}`,
    );

  it('starts with the file value and follows it on reload; a bad value is refused', () => {
    write();
    const log = createLogger({ level: 'silent' });
    const lb = new LoadBalancer(file, { host: noHost, log, healthChecks: false });
    assert.equal(lb.engine.opts.unknownServiceAction, 'drop');

    write('icmp');
    assert.deepEqual(lb.reload(), {
      ok: true,
      summary: '+0 -0 ~0 services; defs: unknown_service_action',
    });
    assert.equal(lb.engine.opts.unknownServiceAction, 'icmp');
    assert.equal(lb.config.defs.unknownServiceAction, 'icmp');

    write('bounce');
    const r = lb.reload();
    assert.deepEqual(r, {
      ok: false,
      error: `${file}:2: bad unknown_service_action 'bounce' (expected drop or icmp)`,
    });
    assert.equal(lb.engine.opts.unknownServiceAction, 'icmp', 'the running value stays');

    write('drop');
    assert.equal(lb.reload().ok, true);
    assert.equal(lb.engine.opts.unknownServiceAction, 'drop');

    write('icmp');
    const started = new LoadBalancer(file, { host: noHost, log, healthChecks: false });
    assert.equal(started.engine.opts.unknownServiceAction, 'icmp', 'at start too');
  });
});
