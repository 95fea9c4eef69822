/**
 * inhibit_on_failure and sorry_server as keepalived means them, in a
 * running LoadBalancer whose health checks run (MISC_CHECKs on flag files,
 * a memory device for the TUN). A DOWN RS with inhibit_on_failure stays
 * listed at weight 0; one without it is removed from the listing, while the
 * engine keeps it at weight 0 so its connections finish, as IPVS's do after
 * a delete. The sorry server is scheduled while no RS is UP, and leaves
 * (the same way) when one is back. quorum with hysteresis: lost and gained
 * at their thresholds, quorum_up / quorum_down run.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { LoadBalancer } from '../../src/control/lb.js';
import { createLogger } from '../../src/control/log.js';
import type { HostNetwork } from '../../src/io/host.js';
import { MemoryDevice } from '../../src/io/memory-device.js';
import { addressToString } from '../../src/wire/address.js';
import { waitFor } from '../support/health-bench.js';
import { sleep } from '../support/time.js';

const host: HostNetwork = {
  openDevice: () => new MemoryDevice(),
  setTxQueueLen: () => {},
  deviceStatistics: () => ({}),
  addRoute: () => {},
  delRoute: () => {},
  sysctl: () => {},
};

describe('LoadBalancer: inhibit_on_failure', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fullnat-inhibit-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const flag = join(dir, 'up');
  const check = `MISC_CHECK {
            misc_path "/bin/sh -c 'test -e ${flag}'"
            retry 1
        }`;
  const file = join(dir, 'lb.conf');
  writeFileSync(
    file,
    `fullnat_defs {
    interface fninh0
}
local_address_group g1 {
    10.10.3.1
}
virtual_server 10.10.1.100 80 {
    laddr_group_name g1
    delay_loop 0.1
    real_server 10.10.2.2 80 {
        weight 3
        inhibit_on_failure
        ${check}
    }
    real_server 10.10.2.3 80 {
        weight 5
        ${check}
    }
}
`,
  );

  it('keeps the inhibited RS listed at weight 0 and removes the other; both back when UP', async () => {
    writeFileSync(flag, '');
    const lb = new LoadBalancer(file, { host, log: createLogger({ level: 'silent' }) });
    const listed = (): string[] =>
      lb
        .snapshot()
        .services[0]!.realServers.map(
          (r) => `${addressToString(r.addr)} ${r.effectiveWeight} ${r.healthy ? 'up' : 'down'}`,
        );
    const engineWeights = (): number[] => lb.engine.services[0]!.targets.map((t) => t.weight);
    lb.start();
    try {
      await waitFor('a first pass', () => listed().length === 2);
      assert.deepEqual(listed(), ['10.10.2.2 3 up', '10.10.2.3 5 up']);
      rmSync(flag);
      await waitFor('both DOWN', () => engineWeights().every((w) => w === 0), 5000);
      assert.deepEqual(listed(), ['10.10.2.2 0 down'], 'only the inhibited RS is listed');
      assert.deepEqual(engineWeights(), [0, 0], 'the removed RS is still a target at weight 0');
      writeFileSync(flag, '');
      await waitFor('both UP', () => listed().length === 2, 5000);
      await waitFor('weights back', () => engineWeights().join() === '3,5', 5000);
      assert.deepEqual(listed(), ['10.10.2.2 3 up', '10.10.2.3 5 up']);
    } finally {
      lb.stop();
    }
  });
});

describe('LoadBalancer: sorry_server', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fullnat-sorry-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const flag = join(dir, 'up');
  const file = join(dir, 'lb.conf');
  writeFileSync(
    file,
    `fullnat_defs {
    interface fnsry0
}
local_address_group g1 {
    10.10.3.1
}
virtual_server 10.10.1.100 80 {
    laddr_group_name g1
    delay_loop 0.1
    sorry_server 10.10.9.9 8080
    real_server 10.10.2.2 80 {
        weight 3
        inhibit_on_failure
        MISC_CHECK {
            misc_path "/bin/sh -c 'test -e ${flag}'"
            retry 1
        }
    }
}
`,
  );

  it('is in at weight 1 while no RS is UP, out when one is back', async () => {
    writeFileSync(flag, '');
    const lb = new LoadBalancer(file, { host, log: createLogger({ level: 'silent' }) });
    const listed = (): string[] =>
      lb
        .snapshot()
        .services[0]!.realServers.map(
          (r) => `${addressToString(r.addr)}:${r.port} ${r.effectiveWeight}`,
        );
    const targets = (): string[] =>
      lb.engine.services[0]!.targets.map((t) => `${t.port} ${t.weight}`);
    lb.start();
    try {
      await waitFor('a first pass', () => listed().length === 1);
      assert.deepEqual(listed(), ['10.10.2.2:80 3'], 'no sorry server while the RS is UP');
      rmSync(flag);
      await waitFor('sorry in', () => listed().length === 2, 5000);
      assert.deepEqual(listed(), ['10.10.2.2:80 0', '10.10.9.9:8080 1']);
      writeFileSync(flag, '');
      await waitFor('sorry out', () => listed().length === 1, 5000);
      assert.deepEqual(listed(), ['10.10.2.2:80 3']);
      assert.deepEqual(targets(), ['80 3', '8080 0'], 'out of the listing, its connections finish');
      rmSync(flag);
      await waitFor('sorry in again', () => listed().length === 2, 5000);
      assert.deepEqual(targets(), ['80 0', '8080 1']);
      // A reload that moves it: the old one leaves (its connections finishing), the new one is in.
      writeFileSync(file, readFileSync(file, 'utf8').replace('10.10.9.9 8080', '10.10.9.8 8080'));
      const r = lb.reload();
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.deepEqual(listed(), ['10.10.2.2:80 0', '10.10.9.8:8080 1']);
      assert.deepEqual(
        lb.engine.services[0]!.targets.map((t) => t.weight),
        [0, 0, 1],
        'the old sorry server at weight 0',
      );
    } finally {
      lb.stop();
    }
  });
});

describe('LoadBalancer: quorum with hysteresis, quorum_up / quorum_down', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fullnat-quorum-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const flagA = join(dir, 'a');
  const flagB = join(dir, 'b');
  const log = join(dir, 'quorum.log');
  const misc = (flag: string): string => `MISC_CHECK {
            misc_path "/bin/sh -c 'test -e ${flag}'"
            retry 1
        }`;
  const file = join(dir, 'lb.conf');
  writeFileSync(
    file,
    `fullnat_defs {
    interface fnquo0
}
local_address_group g1 {
    10.10.3.1
}
virtual_server 10.10.1.100 80 {
    laddr_group_name g1
    delay_loop 0.1
    quorum 2
    hysteresis 1
    quorum_up "/bin/sh -c 'echo up >> ${log}'"
    quorum_down "/bin/sh -c 'echo down >> ${log}'"
    sorry_server 10.10.9.9 80
    real_server 10.10.2.2 80 {
        weight 2
        ${misc(flagA)}
    }
    real_server 10.10.2.3 80 {
        weight 1
        ${misc(flagB)}
    }
}
`,
  );

  it('is lost below quorum - hysteresis, gained at quorum + hysteresis; scripts and sorry server follow', async () => {
    writeFileSync(flagA, '');
    writeFileSync(flagB, '');
    const lb = new LoadBalancer(file, { host, log: createLogger({ level: 'silent' }) });
    const weights = (): string => lb.engine.services[0]!.targets.map((t) => t.weight).join(',');
    const runs = (): string[] =>
      existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
    lb.start();
    try {
      await waitFor('both UP', () => weights() === '2,1');
      rmSync(flagA);
      // 1 left: not below quorum 2 - hysteresis 1, so the quorum holds.
      await waitFor('A DOWN', () => weights() === '0,1', 5000);
      await sleep(300);
      assert.deepEqual(runs(), [], 'no script at a total of 1');
      rmSync(flagB);
      await waitFor('quorum_down', () => runs().length === 1, 5000);
      assert.deepEqual(runs(), ['down']);
      assert.equal(weights(), '0,0,1', 'the sorry server in');
      writeFileSync(flagB, '');
      await waitFor('B UP', () => weights() === '0,1,1', 5000);
      await sleep(300);
      assert.deepEqual(runs(), ['down'], 'a total of 1 is below quorum 2 + hysteresis 1');
      writeFileSync(flagA, '');
      await waitFor('quorum_up', () => runs().length === 2, 5000);
      assert.deepEqual(runs(), ['down', 'up']);
      assert.equal(weights(), '2,1,0', 'the sorry server out');
    } finally {
      lb.stop();
    }
  });
});
