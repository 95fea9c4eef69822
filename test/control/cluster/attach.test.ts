/**
 * Attach mode (`bird_socket` + `bird_include`): the operator runs bird and
 * its own sessions use fullnat's export filter; fullnat writes the include,
 * asks that bird to `configure`, starts no bird, and withdraws its prefixes
 * when it stops, leaving the operator's bird running.
 *
 *   node 10.92.0.11 (operator's bird, AS 65011) ── router 10.92.0.1 (AS 65000)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { birdConfig } from '../../../src/control/cluster/bird-config.js';
import { BirdSpeaker } from '../../../src/control/cluster/bird.js';
import { NetnsLab, netnsAvailable } from '../../../src/lab/netns.js';
import { ipv4 } from '../../support/addresses.js';
import {
  bgpSpec,
  birdTools,
  neighbor,
  routerConfig,
  routesAt,
  startRouter,
} from '../../support/bird.js';
import { recordingLogger } from '../../support/lb-harness.js';
import { sleep } from '../../support/time.js';

const netns = netnsAvailable();
const tools = birdTools();
const skip = !netns.ok ? netns.reason : !tools.ok ? tools.reason : undefined;

const lab = new NetnsLab(`ba${process.pid % 100000}`);
const dir = mkdtempSync(join(tmpdir(), 'fullnat-attach-'));
const include = join(dir, 'fullnat.conf');
const opSock = join(dir, 'operator.ctl');
let router: { sock: string };
let operator: ChildProcess;
let speaker: BirdSpeaker;

const spec = bgpSpec({
  routerId: ipv4('10.92.0.11'),
  neighbors: [neighbor('10.92.0.1', 65000, { holdTime: 3 })],
  birdSocket: opSock,
  birdInclude: include,
});

async function until(what: string, fn: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (fn()) return;
    await sleep(100);
  }
  assert.fail(`${what}: not within ${timeoutMs} ms; router has ${JSON.stringify(routes())}`);
}
const routes = (): string[] => routesAt(tools, router.sock);

before(async () => {
  if (skip) return;
  lab.addHost('node');
  lab.addHost('router');
  lab.link('node', 'eth0', '10.92.0.11/24', 'router', 'eth0', '10.92.0.1/24');
  router = startRouter(
    lab,
    'router',
    tools,
    dir,
    routerConfig('10.92.0.1', 65000, [{ addr: '10.92.0.11', as: 65011 }]),
  );
  // The operator's bird: its own session, fullnat's include and filter.
  writeFileSync(include, birdConfig(spec, [], { mode: 'include' }));
  const conf = join(dir, 'operator.conf');
  writeFileSync(
    conf,
    [
      'router id 10.92.0.11;',
      'protocol device {}',
      `include "${include}";`,
      'protocol bgp upstream {',
      '  local as 65011;',
      '  neighbor 10.92.0.1 as 65000;',
      '  hold time 3;',
      '  ipv4 { import none; export filter fullnat_export; };',
      '}',
      '',
    ].join('\n'),
  );
  operator = lab.spawn('node', tools.bird, ['-f', '-c', conf, '-s', opSock]);
  await sleep(300);
});

after(async () => {
  await speaker?.stop();
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test(
  'fullnat announces through the operator’s bird and withdraws at stop, leaving it running',
  { skip },
  async () => {
    const { log } = recordingLogger();
    speaker = new BirdSpeaker({ bgp: spec, stateDir: join(dir, 'state'), log, pollMs: 200 });
    assert.equal(speaker.mode, 'attached');
    speaker.start(['10.92.100.1/32', '10.92.3.1/32']);
    await until('routes at the router', () => routes().join() === '10.92.100.1/32,10.92.3.1/32');
    await until(
      'session seen through the operator’s bird',
      () => speaker.status().sessions[0]?.up === true,
    );
    assert.equal(speaker.status().running, true);
    assert.equal(speaker.status().pid, undefined, 'no bird of fullnat’s own');
    speaker.setPrefixes(['10.92.3.1/32']);
    await until('VIP withdrawn', () => routes().join() === '10.92.3.1/32');
    await speaker.stop();
    await until('everything withdrawn', () => routes().length === 0);
    assert.equal(operator.exitCode, null, 'the operator’s bird still runs');
  },
);
