/**
 * One fleet node end to end through the CLI: `fullnat run` with a `bgp`
 * block announces its VIP and LIP to a plain bird "router", which installs
 * them; a client beside the router reaches the VIP over the learned route.
 * Health, drains (ctl --drain, SIGTERM with drain_timeout) and a SIGKILL of
 * fullnat (its bird must go with it) as the router sees them.
 *
 *   router/client 10.91.0.1 (AS 65000) ── lb 10.91.0.11 (AS 65011) [VIP 10.91.100.1, LIP 10.91.3.1]
 *   c 10.91.1.2 (static route to the VIP) ── lb 10.91.1.1
 *                                         lb 10.91.2.1 ── r1 10.91.2.11:8080
 *
 * The drains' connections come from `c`, whose route to the VIP does not
 * depend on BGP: the router stops sending to a draining node (that is the
 * point), and what is checked is that the node still forwards what arrives.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/control/config/index.js';
import { tunAvailable } from '../../src/io/tun.js';
import { NetnsLab, netnsAvailable } from '../../src/lab/netns.js';
import {
  alive,
  birdTools,
  routerConfig,
  routesAt,
  sessionLine,
  startRouter,
} from '../support/bird.js';
import { sleep } from '../support/time.js';
import { cli, fixtures, runCtl, untilServing } from './support/harness.js';

const netns = netnsAvailable();
const tun = tunAvailable();
const tools = birdTools();
/** The `bgp` block's grammar comes with the config side of the fleet; without it this file cannot run. */
function bgpGrammar(): { ok: boolean; reason: string } {
  try {
    const c = parseConfig(CONFIG, confPath);
    return c.bgp
      ? { ok: true, reason: '' }
      : { ok: false, reason: 'the config parser drops the bgp block' };
  } catch (e) {
    return {
      ok: false,
      reason: `the config parser refuses the bgp block: ${(e as Error).message}`,
    };
  }
}

const lab = new NetnsLab(`cn${process.pid % 100000}`);
const dir = mkdtempSync(join(tmpdir(), 'fullnat-cluster-node-'));
const confPath = join(dir, 'lb.conf');
const sock = join(dir, 'fullnat.sock');
const stateDir = join(dir, 'state');
const VIP = '10.91.100.1';
const VIP_ROUTE = `${VIP}/32`;
const LIP_ROUTE = '10.91.3.0/28';
let router: { sock: string };
let lbProc: ChildProcess | undefined;
let lbLog = '';
let rs: ChildProcess | undefined;

const CONFIG = `fullnat_defs {
    interface fnatcn
    control_socket ${sock}
    state_dir ${stateDir}
    metrics 127.0.0.1:9400
    drain_timeout 4
    timeout_time_wait 1
    timeout_fin_wait 2
    timeout_last_ack 2
}
local_address_group lips {
    10.91.3.1
}
virtual_server ${VIP} 80 {
    delay_loop 1
    lb_algo rr
    laddr_group_name lips
    real_server 10.91.2.11 8080 {
        TCP_CHECK { connect_timeout 1 retry 1 }
    }
}
bgp {
    router_id 10.91.0.11
    local_as 65011
    neighbor 10.91.0.1 {
        remote_as 65000
        hold_time 3
        bfd on
    }
    lip_prefix 10.91.3.0/28
}
`;

const grammar = bgpGrammar();
const skip = !netns.ok
  ? netns.reason
  : !tun.ok
    ? tun.reason
    : !tools.ok
      ? tools.reason
      : !grammar.ok
        ? grammar.reason
        : undefined;

async function until(what: string, fn: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (fn()) return;
    await sleep(100);
  }
  assert.fail(
    `${what}: not within ${timeoutMs} ms; router has ${JSON.stringify(routes())}\n${lbLog.slice(-3000)}`,
  );
}

const routes = (): string[] => routesAt(tools, router.sock);
const same = (want: string[]) => (): boolean =>
  JSON.stringify(routes()) === JSON.stringify([...want].sort());
const ctl = (args: string[]): { code: number; out: string } => runCtl(lab, sock, args);

function startLb(extra: string[] = []): ChildProcess {
  lbLog = '';
  const p = lab.spawn('lb', process.execPath, [cli, 'run', '-f', confPath, ...extra]);
  p.stderr!.on('data', (c: Buffer) => (lbLog += c.toString()));
  lbProc = p;
  return p;
}

function startRs(): Promise<void> {
  rs = lab.spawn('r1', process.execPath, [join(fixtures, 'rs-server.js'), 'r1', '8080']);
  return untilServing(rs, 'r1');
}

function exited(p: ChildProcess, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    if (p.exitCode !== null) return resolve(p.exitCode);
    const t = setTimeout(
      () => reject(new Error(`fullnat still running after ${timeoutMs} ms`)),
      timeoutMs,
    );
    p.once('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

/** A client connection through the VIP held open until `finish()` (client fixture's keepalive). */
function heldConnection(): { proc: ChildProcess; out: () => string; finish: () => void } {
  const proc = lab.spawn(
    'c',
    process.execPath,
    [join(fixtures, 'client.js'), 'keepalive', VIP, '80'],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  return { proc, out: () => out, finish: () => void proc.stdin!.write('again\n') };
}

/** The pid in the node's bird.pid (removed when fullnat stops its bird). */
function nodeBird(): number {
  return Number(readFileSync(join(stateDir, 'bird.pid'), 'utf8').trim());
}

before(async () => {
  if (skip) return;
  for (const h of ['router', 'c', 'lb', 'r1']) lab.addHost(h);
  lab.link('router', 'eth0', '10.91.0.1/24', 'lb', 'eth0', '10.91.0.11/24');
  lab.link('c', 'eth0', '10.91.1.2/24', 'lb', 'eth2', '10.91.1.1/24');
  lab.ip('c', 'route', 'add', 'default', 'via', '10.91.1.1');
  lab.link('lb', 'eth1', '10.91.2.1/24', 'r1', 'eth0', '10.91.2.11/24');
  lab.ip('r1', 'route', 'add', 'default', 'via', '10.91.2.1');
  router = startRouter(
    lab,
    'router',
    tools,
    dir,
    routerConfig('10.91.0.1', 65000, [{ addr: '10.91.0.11', as: 65011, bfd: true }], {
      kernel: true,
    }),
  );
  await startRs();
  writeFileSync(confPath, CONFIG);
  startLb();
});

after(async () => {
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test(
  'fullnat run with a bgp block announces its VIP and LIP prefix; the router routes a client to it',
  { skip },
  async () => {
    await until('VIP and LIP prefix at the router', same([VIP_ROUTE, LIP_ROUTE]));
    // The router installed the VIP route (its kernel protocol), so a client there reaches the RS through the LB.
    assert.match(lab.ip('router', 'route', 'get', VIP), /via 10\.91\.0\.11/);
    const got = lab.exec('router', 'curl', ['-s', '-m', '5', `http://${VIP}/`]);
    // FULLNAT: the RS sees the LIP (this plain server reads no TOA).
    assert.match(got, /^r1 10\.91\.3\.1:\d+/);
    // fullnat's bird installed nothing on the node: the VIP still routes into the TUN device only.
    assert.match(lab.ip('lb', 'route', 'get', VIP), /dev fnatcn/);
    assert.doesNotMatch(lab.ip('lb', 'route', 'show', 'proto', 'bird'), /\S/);
  },
);

test('ctl --cluster and the metrics show the session, BFD and the prefixes', { skip }, async () => {
  await until('BFD up in ctl --cluster', () => / Established +Up /.test(ctl(['--cluster']).out));
  const view = ctl(['--cluster']);
  assert.equal(view.code, 0, view.out);
  assert.match(view.out, /^BGP speaker: bird managed, running \(pid \d+\), restarts 0$/m);
  assert.match(view.out, /^10\.91\.0\.1 +65000 +Established +Up /m);
  assert.match(view.out, /^Announced \(2\):\n {2}10\.91\.100\.1\/32\n {2}10\.91\.3\.0\/28$/m);
  const m = lab.exec('lb', 'curl', ['-s', '-m', '5', 'http://127.0.0.1:9400/metrics']);
  assert.match(m, /^fullnat_bgp_session_up\{neighbor="10\.91\.0\.1"\} 1$/m);
  assert.match(m, /^fullnat_bfd_session_up\{neighbor="10\.91\.0\.1"\} 1$/m);
  assert.match(m, /^fullnat_bgp_announced_prefixes 2$/m);
  assert.match(m, /^fullnat_bgp_prefix_announced\{prefix="10\.91\.100\.1\/32"\} 1$/m);
  assert.match(m, /^fullnat_drain_active 0$/m);
});

test(
  'its only RS down: the VIP is withdrawn, the LIP prefix stays; the RS back: announced again',
  { skip },
  async () => {
    rs!.kill('SIGKILL');
    await until('VIP withdrawn', same([LIP_ROUTE]));
    assert.match(ctl(['--cluster']).out, /^Withheld \(1\):\n {2}10\.91\.100\.1\/32 +quorum$/m);
    await startRs();
    await until('VIP back', same([VIP_ROUTE, LIP_ROUTE]));
  },
);

test(
  'ctl --drain: VIP withdrawn, LIP kept, the open connection finishes, then fullnat exits',
  { skip },
  async () => {
    const conn = heldConnection();
    await until('connection open', () => conn.out().includes('"response":1'), 10_000);
    const r = ctl(['--drain']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^Draining: 1 VIP prefix\(es\) withdrawn/m);
    await until('VIP withdrawn, LIP kept', same([LIP_ROUTE]), 5000);
    assert.match(ctl(['--cluster']).out, /^Drain: active, 1 of 1 connections left/m);
    const m = lab.exec('lb', 'curl', ['-s', '-m', '5', 'http://127.0.0.1:9400/metrics']);
    assert.match(m, /^fullnat_drain_active 1$/m);
    assert.match(m, /^fullnat_drain_connections_left 1$/m);
    const pid = nodeBird();
    // The established connection still works through the draining node.
    conn.finish();
    await until('second response', () => conn.out().includes('"response":2'), 5000);
    const code = await exited(lbProc!, 3000);
    assert.equal(code, 0);
    assert.match(lbLog, /"ended":"connections"/);
    assert.equal(alive(pid), false, 'bird stopped with fullnat');
    await until('router forgot the node', same([]), 5000);
  },
);

test(
  'SIGTERM with drain_timeout: a connection that stays open is cut off at the timeout',
  { skip },
  async () => {
    startLb();
    await until('announced again', same([VIP_ROUTE, LIP_ROUTE]));
    const conn = heldConnection();
    await until('connection open', () => conn.out().includes('"response":1'), 10_000);
    const t0 = Date.now();
    lbProc!.kill('SIGTERM');
    await until('VIP withdrawn, LIP kept', same([LIP_ROUTE]), 5000);
    const code = await exited(lbProc!, 10_000);
    const ms = Date.now() - t0;
    assert.equal(code, 0);
    assert.ok(ms >= 3500 && ms < 8000, `exited after ${ms} ms with drain_timeout 4`);
    assert.match(lbLog, /"ended":"timeout"/);
    conn.proc.kill();
  },
);

const routerSession = (): string => sessionLine(tools, router.sock, 'peer1');

test(
  'fullnat run --takeover: the successor adopts bird; the router keeps the session and the routes throughout',
  { skip },
  async () => {
    startLb();
    await until('announced again', same([VIP_ROUTE, LIP_ROUTE]));
    await until('session up at the router', () => routerSession().startsWith('up '), 10_000);
    const before = routerSession();
    const pid = nodeBird();
    const old = lbProc!;
    const successor = startLb(['--takeover']);
    let lost = 0;
    let polls = 0;
    const watching = (async () => {
      while (successor.exitCode === null && !/"msg":"ready"/.test(lbLog)) {
        polls++;
        if (!same([VIP_ROUTE, LIP_ROUTE])()) lost++;
        await sleep(50);
      }
    })();
    const code = await exited(old, 15_000);
    assert.equal(code, 0);
    await until('successor ready', () => /"msg":"ready"/.test(lbLog), 15_000);
    await watching;
    await until('bird adopted', () => /bird adopted from the predecessor/.test(lbLog), 5000);
    assert.ok(polls > 0);
    assert.equal(lost, 0, `the router lost the node's routes in ${lost} of ${polls} looks`);
    assert.equal(nodeBird(), pid, 'the same bird');
    assert.equal(routerSession(), before, 'the router session never dropped');
    // Past the released bird's wait for adoption: still running, still announcing.
    await sleep(11_000);
    assert.ok(alive(pid));
    assert.ok(same([VIP_ROUTE, LIP_ROUTE])());
    assert.match(ctl(['--cluster']).out, new RegExp(`running \\(pid ${pid}\\)`));
  },
);

test(
  'fullnat killed with SIGKILL: its bird goes with it and the router withdraws the node',
  { skip },
  async () => {
    // The adopted bird of the test before: its watchdog is the successor's.
    const pid = nodeBird();
    assert.ok(alive(pid));
    lbProc!.kill('SIGKILL');
    await until('bird gone', () => !alive(pid), 5000);
    await until('router withdrew the node', same([]), 5000);
  },
);
