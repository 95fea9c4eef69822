/** What the end-to-end tests share: running the client fixture, `fullnat ctl`, and waiting. */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NetnsLab } from '../../../src/lab/netns.js';
import { sleep } from '../../support/time.js';

const here = dirname(fileURLToPath(import.meta.url));
export const repo = join(here, '..', '..', '..', '..');
export const fixtures = join(here, '..', 'fixtures');
export const cli = join(repo, 'bin', 'fullnat.js');

/** Runs the client fixture in host `c` and returns its last JSON line. */
export function runClient(
  lab: NetnsLab,
  args: string[],
  timeoutMs = 120_000,
): Record<string, unknown> {
  const text = lab.exec('c', process.execPath, [join(fixtures, 'client.js'), ...args], timeoutMs);
  return JSON.parse(text.trim().split('\n').pop()!) as Record<string, unknown>;
}

/** `fullnat ctl --socket SOCK ARGS` in host `lb`; exit code and all output, never throws. */
export function runCtl(lab: NetnsLab, sock: string, args: string[]): { code: number; out: string } {
  try {
    return {
      code: 0,
      out: lab.exec('lb', process.execPath, [cli, 'ctl', '--socket', sock, ...args], 15_000),
    };
  } catch (e) {
    const err = e as { status?: number; stdout?: string; stderr?: string };
    return { code: err.status ?? 1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

/** Polls `fn` every 200 ms; fails with `context()` (e.g. the LB log) after `timeoutMs`. */
export async function until(
  what: string,
  fn: () => boolean,
  timeoutMs: number,
  context: () => string,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (fn()) return;
    await sleep(200);
  }
  assert.fail(`${what}: not within ${timeoutMs} ms\n${context()}`);
}

/**
 * The end-to-end topology: client `c` ── `lb` ── bridge br0 ── real servers
 * `r1`…`rN`, with NET.1.0/24 on the client side (c .2, lb .1) and NET.2.0/24
 * on the RS side (lb .1, rK .1K). Every host routes through the LB: the
 * client to reach the VIP, the real servers to reach the LIPs.
 */
export function buildTopology(lab: NetnsLab, net: string, realServers: readonly string[]): void {
  for (const h of ['c', 'lb', ...realServers]) lab.addHost(h);
  lab.link('c', 'eth0', `${net}.1.2/24`, 'lb', 'eth0', `${net}.1.1/24`);
  lab.ip('c', 'route', 'add', 'default', 'via', `${net}.1.1`);
  lab.ip('lb', 'link', 'add', 'br0', 'type', 'bridge');
  lab.ip('lb', 'addr', 'add', `${net}.2.1/24`, 'dev', 'br0');
  lab.ip('lb', 'link', 'set', 'br0', 'up');
  realServers.forEach((h, i) => {
    lab.link(h, 'eth0', `${net}.2.1${i + 1}/24`, 'lb', `rs${i + 1}`, null);
    lab.ip('lb', 'link', 'set', `rs${i + 1}`, 'master', 'br0');
    lab.ip(h, 'route', 'add', 'default', 'via', `${net}.2.1`);
  });
}

/** Resolves once a server fixture prints its `"listening"` line; rejects after 10 s naming `what`. */
export function untilServing(child: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} did not start`)), 10_000);
    child.stdout!.on('data', (c: Buffer) => {
      if (c.toString().includes('"listening"')) {
        clearTimeout(t);
        resolve();
      }
    });
  });
}
