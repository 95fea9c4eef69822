/**
 * What a LoadBalancer gives its engine for a restart to be safe: a port
 * seed of its own per run (not the ISN secret), and the Unix time of engine
 * time 0 as the ISN clock's origin.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { createLogger } from '../../src/control/log.js';
import { noHost } from '../support/no-host.js';
import { ONE_SERVICE, tempConfig, testLb } from '../support/lb-harness.js';

describe('LoadBalancer: seeds and clocks for a restart', () => {
  const file = tempConfig('fullnat-seeds-', ONE_SERVICE);

  it('each run draws its own port seed, apart from its ISN secret, and sets the ISN clock origin to now', () => {
    const log = createLogger({ level: 'silent' });
    const t0 = Date.now();
    const runs = Array.from({ length: 8 }, () => testLb(file, noHost, log));
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
