/**
 * A fleet node's BGP neighbours misbehaving, through `fullnat run`: one
 * good router session (which flaps), one neighbour with the wrong AS, one
 * that answers port 179 with garbage, one that never answers, one with no
 * route at all. The node keeps forwarding throughout (a client with a
 * static route fetches through it every 200 ms), logs each neighbour's
 * trouble once per change, and reports every session in ctl --cluster and
 * the metrics.
 *
 *   router 10.92.0.1 (AS 65000, bfd) ── lb 10.92.0.11 (AS 65011) [VIP 10.92.100.1, LIP 10.92.3.1]
 *   (10.92.0.3: nobody; 192.0.2.1: no route)
 *   other 10.92.4.1 (AS 65000; the node expects 65099) ── lb 10.92.4.11
 *   junk 10.92.5.1:179 (garbage) ── lb 10.92.5.11
 *   c 10.92.1.2 (static route to the VIP) ── lb 10.92.1.1
 *                                         lb 10.92.2.1 ── r1 10.92.2.11:8080
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tunAvailable } from '../../src/io/tun.js';
import { NetnsLab, netnsAvailable } from '../../src/lab/netns.js';
import { birdc, birdTools, routesAt, startRouter } from '../support/bird.js';
import { sleep } from '../support/time.js';
import { cli, fixtures, runCtl, untilServing } from './support/harness.js';

const netns = netnsAvailable();
const tun = tunAvailable();
const tools = birdTools();
const skip = !netns.ok ? netns.reason : !tun.ok ? tun.reason : !tools.ok ? tools.reason : undefined;

const lab = new NetnsLab(`cf${process.pid % 100000}`);
const dir = mkdtempSync(join(tmpdir(), 'fullnat-cluster-faults-'));
const confPath = join(dir, 'lb.conf');
const sock = join(dir, 'fullnat.sock');
const VIP = '10.92.100.1';
const VIP_ROUTE = `${VIP}/32`;
const LIP_ROUTE = '10.92.3.0/28';
const GOOD = '10.92.0.1';
const WRONG_AS = '10.92.4.1';
const GARBAGE = '10.92.5.1';
const SILENT = '10.92.0.3';
const UNROUTABLE = '192.0.2.1';

const CONFIG = `fullnat_defs {
    interface fnatcf
    control_socket ${sock}
    state_dir ${join(dir, 'state')}
    metrics 127.0.0.1:9402
}
local_address_group lips {
    10.92.3.1
}
virtual_server ${VIP} 80 {
    lb_algo rr
    laddr_group_name lips
    real_server 10.92.2.11 8080 {
        weight 1
    }
}
bgp {
    router_id 10.92.0.11
    local_as 65011
    neighbor ${GOOD} {
        remote_as 65000
        hold_time 3
        bfd on
    }
    neighbor ${WRONG_AS} remote_as 65099
    neighbor ${GARBAGE} remote_as 65002
    neighbor ${SILENT} remote_as 65003
    neighbor ${UNROUTABLE} remote_as 65004
    lip_prefix 10.92.3.0/28
}
`;

/** A plain bird router of AS 65000 for the node at `node` (with BFD when `bfd`). */
const birdRouter = (id: string, node: string, bfd: boolean): string => `router id ${id};
protocol device {}
protocol kernel { ipv4 { import none; export all; }; }
${bfd ? 'protocol bfd { interface "*" { interval 100 ms; multiplier 3; }; }' : ''}
protocol bgp good {
  local as 65000;
  neighbor ${node} as 65011;
  hold time 3;
  ${bfd ? 'bfd on;' : ''}
  ipv4 { import all; export none; };
}
`;

/** Answers every connection to port 179 with bytes that are no BGP message, again and again. */
const GARBAGE_SERVER = `
const net = require('node:net');
net.createServer((s) => {
  s.on('error', () => {});
  s.write(Buffer.from('GET / HTTP/1.0\\r\\n\\r\\n' + 'x'.repeat(200)));
  const t = setInterval(() => s.write(Buffer.alloc(64, 0xff)), 100);
  s.on('close', () => clearInterval(t));
}).listen(179, '${GARBAGE}', () => console.log('listening'));
`;

let router: { sock: string };
let lbProc: ChildProcess | undefined;
let lbLog = '';
let garbage: ChildProcess | undefined;

const ctl = (args: string[]): { code: number; out: string } => runCtl(lab, sock, args);
const routes = (): string[] => routesAt(tools, router.sock);

async function until(what: string, fn: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (fn()) return;
    await sleep(100);
  }
  assert.fail(
    `${what}: not within ${timeoutMs} ms; router has ${JSON.stringify(routes())}\n` +
      `${ctl(['--cluster']).out}\n${lbLog.slice(-3000)}`,
  );
}

/** fullnat's JSON log lines with message `msg` (and neighbour `neighbor`, when given). */
function logged(msg: string, neighbor?: string): number {
  let n = 0;
  for (const line of lbLog.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const r = JSON.parse(line) as { msg?: string; neighbor?: string };
      if (r.msg === msg && (neighbor === undefined || r.neighbor === neighbor)) n++;
    } catch {
      // a partial line at the end of the buffer
    }
  }
  return n;
}

/** A client fetching through the VIP every 200 ms until stopped; failures are counted. */
function fetchLoop(): { stop: () => Promise<{ ok: number; failed: string[] }> } {
  let running = true;
  let ok = 0;
  const failed: string[] = [];
  const done = (async () => {
    // Bounded: at most 600 fetches (two minutes).
    for (let i = 0; running && i < 600; i++) {
      try {
        const got = lab.exec('c', 'curl', ['-s', '-m', '2', `http://${VIP}/`]);
        if (/^r1 /.test(got)) ok++;
        else failed.push(got.slice(0, 80));
      } catch (e) {
        failed.push((e as Error).message.slice(0, 120));
      }
      await sleep(200);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return { ok, failed };
    },
  };
}

before(async () => {
  if (skip) return;
  for (const h of ['router', 'other', 'junk', 'c', 'lb', 'r1']) lab.addHost(h);
  lab.link('router', 'eth0', '10.92.0.1/24', 'lb', 'eth0', '10.92.0.11/24');
  lab.link('junk', 'eth0', `${GARBAGE}/24`, 'lb', 'eth4', '10.92.5.11/24');
  lab.link('other', 'eth0', `${WRONG_AS}/24`, 'lb', 'eth3', '10.92.4.11/24');
  lab.link('c', 'eth0', '10.92.1.2/24', 'lb', 'eth2', '10.92.1.1/24');
  lab.ip('c', 'route', 'add', 'default', 'via', '10.92.1.1');
  lab.link('lb', 'eth1', '10.92.2.1/24', 'r1', 'eth0', '10.92.2.11/24');
  lab.ip('r1', 'route', 'add', 'default', 'via', '10.92.2.1');
  router = startRouter(lab, 'router', tools, dir, birdRouter(GOOD, '10.92.0.11', true));
  startRouter(lab, 'other', tools, dir, birdRouter(WRONG_AS, '10.92.4.11', false));
  const garbageJs = join(dir, 'garbage.cjs');
  writeFileSync(garbageJs, GARBAGE_SERVER);
  garbage = lab.spawn('junk', process.execPath, [garbageJs]);
  const rs = lab.spawn('r1', process.execPath, [join(fixtures, 'rs-server.js'), 'r1', '8080']);
  await untilServing(rs, 'r1');
  writeFileSync(confPath, CONFIG);
  lbProc = lab.spawn('lb', process.execPath, [cli, 'run', '-f', confPath]);
  lbProc.stderr!.on('data', (c: Buffer) => (lbLog += c.toString()));
});

after(async () => {
  garbage?.kill();
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test(
  'bad neighbours (wrong AS, garbage, silent, unroutable) and a flapping good one: forwarding goes on, each trouble logged once per change and reported',
  { skip, timeout: 120_000 },
  async () => {
    await until('the good session announces the VIP', () =>
      JSON.stringify(routes()).includes(VIP_ROUTE),
    );
    const loop = fetchLoop();

    // The unroutable neighbour: a warning at start, the session left to bird.
    assert.equal(
      logged(
        'no route to BGP neighbour: its session cannot come up; forwarding goes on',
        UNROUTABLE,
      ),
      1,
      lbLog,
    );

    // Every bad neighbour reported as not established, the good one as up.
    await until('the wrong AS refused', () => /peer AS/i.test(ctl(['--cluster']).out), 30_000);
    const view = ctl(['--cluster']).out;
    assert.match(view, new RegExp(`^${GOOD.replace(/\./g, '\\.')} +65000 +Established +Up `, 'm'));
    for (const bad of [WRONG_AS, GARBAGE, SILENT, UNROUTABLE]) {
      const row = view.split('\n').find((l) => l.startsWith(`${bad} `));
      assert.ok(row, `${bad} in ctl --cluster:\n${view}`);
      assert.doesNotMatch(row, /Established/, row);
    }
    const m = lab.exec('lb', 'curl', ['-s', '-m', '5', 'http://127.0.0.1:9402/metrics']);
    assert.match(m, /^fullnat_bgp_session_up\{neighbor="10\.92\.0\.1"\} 1$/m);
    for (const bad of [WRONG_AS, GARBAGE, SILENT, UNROUTABLE])
      assert.match(
        m,
        new RegExp(`^fullnat_bgp_session_up\\{neighbor="${bad.replace(/\./g, '\\.')}"\\} 0$`, 'm'),
      );

    // The good session flaps three times: each down and each up logged once, the VIP back each time.
    // The router learns the routes up to a poll (1 s) before the node logs its session up.
    await until(
      'the node logged its session up',
      () => logged('BGP session established', GOOD) === 1,
    );
    const downs = logged('BGP session not established; forwarding goes on', GOOD);
    const ups = logged('BGP session established', GOOD);
    for (let i = 0; i < 3; i++) {
      birdc(tools, router.sock, 'disable', 'good');
      await until(
        `flap ${i + 1}: down at the node`,
        () => logged('BGP session not established; forwarding goes on', GOOD) === downs + i + 1,
      );
      birdc(tools, router.sock, 'enable', 'good');
      await until(
        `flap ${i + 1}: up again`,
        () => logged('BGP session established', GOOD) === ups + i + 1,
      );
      await until(`flap ${i + 1}: VIP back`, () => JSON.stringify(routes()).includes(VIP_ROUTE));
    }
    assert.deepEqual(routes(), [LIP_ROUTE, VIP_ROUTE].sort());

    // The bad ones, after all their retries meanwhile, still logged at most once each: no storm.
    for (const bad of [WRONG_AS, GARBAGE, SILENT, UNROUTABLE])
      assert.ok(
        logged('BGP session not established; forwarding goes on', bad) <= 1,
        `${bad} logged ${logged('BGP session not established; forwarding goes on', bad)} times`,
      );

    const { ok, failed } = await loop.stop();
    assert.deepEqual(failed, [], `fetches through the node failed while its neighbours misbehaved`);
    assert.ok(ok >= 20, `${ok} fetches`);
    assert.equal(lbProc!.exitCode, null, 'fullnat still running');
  },
);
