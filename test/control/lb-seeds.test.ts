/**
 * What a LoadBalancer gives its engine for a restart to be safe: a port
 * seed of its own per run (not the ISN secret), and the Unix time of engine
 * time 0 as the ISN clock's origin.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { LoadBalancer } from '../../src/control/lb.js';
import { createLogger } from '../../src/control/log.js';
import { noHost } from '../support/no-host.js';

const CONFIG = `local_address_group g1 {
    10.10.3.1
}
virtual_server 10.10.1.100 80 {
    laddr_group_name g1
    real_server 10.10.2.2 80 {
        weight 1
    }
}
`;

describe('LoadBalancer: seeds and clocks for a restart', () => {
  let dir: string;
  let file: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'fullnat-seeds-'));
    file = join(dir, 'lb.conf');
    writeFileSync(file, CONFIG);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('each run draws its own port seed, apart from its ISN secret, and sets the ISN clock origin to now', () => {
    const log = createLogger({ level: 'silent' });
    const t0 = Date.now();
    const runs = Array.from(
      { length: 8 },
      () => new LoadBalancer(file, { host: noHost, log, healthChecks: false }),
    );
    const t1 = Date.now();
    const seeds = new Set(runs.map((lb) => lb.engine.opts.portSeed));
    assert.equal(seeds.size, 8, 'eight runs, eight port seeds');
    for (const lb of runs) {
      const o = lb.engine.opts;
      assert.notEqual(o.portSeed, o.isnSecret);
      assert.ok(
        o.isnClockOriginMs >= t0 && o.isnClockOriginMs <= t1,
        `origin ${o.isnClockOriginMs}`,
      );
    }
  });
});
