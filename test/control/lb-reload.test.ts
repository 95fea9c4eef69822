/**
 * The LoadBalancer's reload path, without a device: keys it applies on
 * reload reach the engine; a bad file is refused with FILE:LINE and changes
 * nothing; a file that would remove every service or has lost its
 * fullnat_defs block is refused unless forced (`ctl --reload --force`),
 * whatever point it was cut at.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';

import { runCtl } from '../../src/control/ctl/index.js';
import { LoadBalancer } from '../../src/control/lb.js';
import { createLogger } from '../../src/control/log.js';
import { startControlServer } from '../../src/control/socket/index.js';
import { noHost } from '../support/no-host.js';
import { ONE_SERVICE, recordingLogger, tempConfig, testLb } from '../support/lb-harness.js';

describe('LoadBalancer reload: unknown_service_action', () => {
  const file = tempConfig('fullnat-lb-');

  const write = (action?: string): void =>
    writeFileSync(
      file,
      `${action === undefined ? '' : `fullnat_defs {\n    unknown_service_action ${action}\n}\n`}${ONE_SERVICE}`,
    );

  it('starts with the file value and follows it on reload; a bad value is refused', () => {
    write();
    const log = createLogger({ level: 'silent' });
    const lb = testLb(file, noHost, log);
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
    const started = testLb(file, noHost, log);
    assert.equal(started.engine.opts.unknownServiceAction, 'icmp', 'at start too');
  });
});

const GUARDED = `fullnat_defs {
    toa_policy dpvs
    max_connections 4096
    timeout_established 300
}
local_address_group g1 {
    10.10.3.1
}
virtual_server 10.10.1.100 80 {
    laddr_group_name g1
    real_server 10.10.2.2 80 {
        weight 1
    }
    real_server 10.10.2.3 80 {
        weight 2
    }
}
virtual_server 10.10.1.101 443 {
    laddr_group_name g1
    real_server 10.10.2.4 443 {
        weight 1
    }
}
`;

describe('LoadBalancer reload: icmp_echo and pmtu_expires', () => {
  const file = tempConfig('fullnat-lb-');

  it('reach the engine at start and on reload', () => {
    writeFileSync(file, ONE_SERVICE);
    const log = createLogger({ level: 'silent' });
    const lb = testLb(file, noHost, log);
    assert.equal(lb.engine.opts.icmpEcho, true);
    assert.equal(lb.engine.opts.pmtuExpiresMs, 600_000);
    writeFileSync(
      file,
      `fullnat_defs {\n    icmp_echo off\n    pmtu_expires 30\n}\n${ONE_SERVICE}`,
    );
    assert.deepEqual(lb.reload(), {
      ok: true,
      summary: '+0 -0 ~0 services; defs: icmp_echo, pmtu_expires',
    });
    assert.equal(lb.engine.opts.icmpEcho, false);
    assert.equal(lb.engine.opts.pmtuExpiresMs, 30_000);
  });
});

/** What a reload could change, as the engine and the LB hold it. */
function runningState(lb: LoadBalancer): string {
  const e = lb.engine;
  return JSON.stringify({
    services: e.services
      .filter((s) => s.live)
      .map((s) => [s.vip, s.vport, s.targets.map((r) => [r.addr, r.port, r.weight])]),
    toa: e.opts.toaPolicy,
    timeouts: e.opts.timeouts,
    file: lb.config.services.length,
    defs: lb.config.defs,
  });
}

describe('LoadBalancer reload: a file that removes everything needs force', () => {
  const file = tempConfig('fullnat-guard-');

  const fresh = (): { lb: LoadBalancer; records: { level: number; msg: string }[] } => {
    writeFileSync(file, GUARDED);
    const { log, records } = recordingLogger();
    return { lb: testLb(file, noHost, log), records };
  };

  it('an empty file (or only comments) is refused, said in the log, and changes nothing', () => {
    const { lb, records } = fresh();
    const before = runningState(lb);
    for (const text of ['', '\n\n', '# emptied by a full disk\n']) {
      writeFileSync(file, text);
      const r = lb.reload();
      assert.equal(r.ok, false);
      assert.equal(
        !r.ok && r.error,
        `reload refused: ${file} has no virtual_server: the reload would remove every service (2 running); ` +
          `${file} has no fullnat_defs block (the running configuration has one): the reload would reset ` +
          `toa_policy, max_connections, timeout_established to the defaults; ` +
          `fix the file, or apply it as it is with 'fullnat ctl --reload --force'`,
      );
      assert.equal(runningState(lb), before, 'the running configuration is untouched');
    }
    const refusals = records.filter((l) => l.msg.startsWith('reload refused: '));
    assert.equal(refusals.length, 3);
    assert.ok(
      refusals.every((l) => l.level === 50),
      'logged as errors',
    );
  });

  it('a file cut before its first virtual_server is refused; with force it applies', async () => {
    const { lb, records } = fresh();
    const before = runningState(lb);
    writeFileSync(file, GUARDED.slice(0, GUARDED.indexOf('virtual_server')));
    const r = lb.reload();
    assert.match(
      !r.ok ? r.error : '',
      /^reload refused: .* has no virtual_server: the reload would remove every service \(2 running\); fix the file/,
    );
    assert.equal(runningState(lb), before);
    // The control socket's request: refused without force, applied with it.
    assert.equal((await lb.handle({ op: 'reload' })).ok, false);
    assert.equal(runningState(lb), before);
    assert.deepEqual(await lb.handle({ op: 'reload', force: true }), { ok: true });
    assert.equal(lb.engine.services.filter((s) => s.live).length, 0, 'forced: every service gone');
    assert.equal(lb.config.services.length, 0);
    assert.ok(records.some((l) => l.msg === 'reload forced' && l.level === 40));
    // Nothing left to remove: an empty file is now an ordinary reload.
    writeFileSync(file, '');
    const again = lb.reload();
    assert.equal(again.ok, false, 'the defs block is still lost');
    writeFileSync(file, GUARDED.slice(0, GUARDED.indexOf('virtual_server')));
    assert.deepEqual(lb.reload(), { ok: true, summary: '+0 -0 ~0 services' });
  });

  it('removing some services is an ordinary reload', () => {
    const { lb } = fresh();
    writeFileSync(file, GUARDED.slice(0, GUARDED.indexOf('virtual_server 10.10.1.101')));
    assert.deepEqual(lb.reload(), { ok: true, summary: '+0 -1 ~0 services' });
  });

  it('a lost fullnat_defs block is refused when it would change a key; written-out defaults are an edit', () => {
    const { lb } = fresh();
    const before = runningState(lb);
    const services = GUARDED.slice(GUARDED.indexOf('local_address_group'));
    writeFileSync(file, services);
    const r = lb.reload();
    assert.equal(
      !r.ok && r.error,
      `reload refused: ${file} has no fullnat_defs block (the running configuration has one): the reload would reset ` +
        `toa_policy, max_connections, timeout_established to the defaults; fix the file, or apply it as it is with 'fullnat ctl --reload --force'`,
    );
    assert.equal(runningState(lb), before);
    // The same keys written out as an edit are a normal reload (max_connections needs a restart, so it stays).
    writeFileSync(file, `fullnat_defs {\n    max_connections 4096\n}\n${services}`);
    assert.deepEqual(lb.reload(), {
      ok: true,
      summary: '+0 -0 ~0 services; defs: toa_policy, timeout_established',
    });
    // A block that holds only defaults may go: nothing changes.
    writeFileSync(
      file,
      `fullnat_defs {\n    toa_policy fullnat\n    max_connections 4096\n}\n${services}`,
    );
    const lb2 = testLb(file, noHost);
    writeFileSync(file, services);
    const r2 = lb2.reload();
    assert.equal(r2.ok, false, 'max_connections 4096 is not the default');
    writeFileSync(file, `fullnat_defs {\n    toa_policy fullnat\n}\n${services}`);
    const lb3 = testLb(file, noHost);
    writeFileSync(file, services);
    assert.deepEqual(lb3.reload(), { ok: true, summary: '+0 -0 ~0 services' });
  });

  it('force does not override a restart-only change', () => {
    const { lb } = fresh();
    const before = runningState(lb);
    writeFileSync(file, '');
    assert.deepEqual(lb.reload({ force: true }), {
      ok: false,
      error: 'reload refused: max_connections can only change with a restart',
    });
    assert.equal(runningState(lb), before);
  });

  it('SIGHUP never forces: reload() without options is the guarded one', () => {
    const { lb } = fresh();
    writeFileSync(file, '');
    assert.equal(lb.reload().ok, false);
    assert.equal(lb.reload({}).ok, false);
    assert.equal(lb.reload({ force: false }).ok, false);
  });

  it('every cut of the file either is refused (running state untouched) or ends at a block and keeps a service', () => {
    const { lb } = fresh();
    const before = runningState(lb);
    // A top-level block ends where a line is exactly '}' (this file's layout).
    const blockEnds = new Set<number>();
    for (let i = GUARDED.indexOf('\n}\n'); i >= 0; i = GUARDED.indexOf('\n}\n', i + 1)) {
      blockEnds.add(i + 2);
      blockEnds.add(i + 3);
    }
    let accepted = 0;
    for (let n = 0; n < GUARDED.length; n++) {
      writeFileSync(file, GUARDED.slice(0, n));
      const r = lb.reload();
      if (!r.ok) {
        assert.equal(runningState(lb), before, `cut at ${n}: refused and untouched`);
        continue;
      }
      accepted++;
      assert.ok(blockEnds.has(n), `cut at ${n} accepted: it must end a top-level block`);
      assert.ok(lb.config.services.length > 0, `cut at ${n} accepted: it keeps a service`);
      writeFileSync(file, GUARDED);
      assert.equal(lb.reload().ok, true, 'restored');
      assert.equal(runningState(lb), before);
    }
    // Right after the first virtual_server (with or without its newline), and the whole file but its last newline.
    assert.equal(accepted, 3);
  });
});

describe('fullnat ctl --reload [--force] against the LoadBalancer', { timeout: 10_000 }, () => {
  const file = tempConfig('fullnat-guard-ctl-');

  it('refused: exit 1, the reason on stderr; --force: exit 0 and applied', async () => {
    const sock = join(dirname(file), 'ctl.sock');
    writeFileSync(file, GUARDED);
    const log = createLogger({ level: 'silent' });
    const lb = testLb(file, noHost, log);
    const server = await startControlServer(sock, lb, log);
    try {
      writeFileSync(file, GUARDED.slice(0, GUARDED.indexOf('virtual_server')));
      const ctl = async (argv: string[]) => {
        const out: string[] = [];
        const err: string[] = [];
        const code = await runCtl(argv, sock, (l) => out.push(l), { err: (l) => err.push(l) });
        return { code, out, err };
      };
      const refused = await ctl(['--reload']);
      assert.equal(refused.code, 1);
      assert.deepEqual(refused.out, []);
      assert.equal(refused.err.length, 1);
      assert.match(
        refused.err[0]!,
        /^reload refused: .*would remove every service \(2 running\).*'fullnat ctl --reload --force'$/,
      );
      assert.equal(lb.engine.services.filter((s) => s.live).length, 2);
      const forced = await ctl(['--reload', '--force']);
      assert.deepEqual(forced, { code: 0, out: [], err: [] });
      assert.equal(lb.engine.services.filter((s) => s.live).length, 0);
    } finally {
      await server.close();
    }
  });
});

describe('LoadBalancer reload: unknown_flow_reset', () => {
  const file = tempConfig('fullnat-lb-');

  const write = (...lines: string[]): void =>
    writeFileSync(
      file,
      `${lines.length === 0 ? '' : `fullnat_defs {\n${lines.map((l) => `    ${l}\n`).join('')}}\n`}${ONE_SERVICE}`,
    );

  it('reaches the engine at start and on reload, the burst a tenth of the rate', () => {
    write();
    const log = createLogger({ level: 'silent' });
    const lb = testLb(file, noHost, log);
    assert.equal(lb.engine.opts.unknownFlowReset, true);
    assert.equal(lb.engine.opts.unknownFlowResetRate, 1000);
    assert.equal(lb.engine.opts.unknownFlowResetBurst, 100);

    write('unknown_flow_reset off', 'unknown_flow_reset_rate 20');
    assert.deepEqual(lb.reload(), {
      ok: true,
      summary: '+0 -0 ~0 services; defs: unknown_flow_reset, unknown_flow_reset_rate',
    });
    assert.equal(lb.engine.opts.unknownFlowReset, false);
    assert.equal(lb.engine.opts.unknownFlowResetRate, 20);
    assert.equal(lb.engine.opts.unknownFlowResetBurst, 2);

    write('unknown_flow_reset maybe');
    assert.equal(lb.reload().ok, false);
    assert.equal(lb.engine.opts.unknownFlowReset, false, 'the running value stays');
  });
});
