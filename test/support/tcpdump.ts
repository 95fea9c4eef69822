/**
 * Waiting on a tcpdump the tests started, by what it does rather than by the
 * clock: a fixed sleep is too short on a slow machine and wasted on a fast one.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import type { NetnsLab } from '../../src/lab/netns.js';
import { statSync } from 'node:fs';
import { sleep } from './time.js';

/** Resolves once tcpdump says it is listening (on stderr); fails with what it said after `timeoutMs`. */
export async function untilListening(dump: ChildProcess, timeoutMs = 10_000): Promise<void> {
  let err = '';
  dump.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const end = Date.now() + timeoutMs;
  while (!err.includes('listening on') && Date.now() < end) await sleep(20);
  assert.ok(err.includes('listening on'), `tcpdump did not start: ${err}`);
}

/**
 * Resolves once the capture file has stopped growing for `quietMs` (the
 * packets sent so far are in it: tcpdump -U --immediate-mode writes each as it
 * comes), or after `maxMs` at most.
 */
export async function untilCaptureQuiet(path: string, quietMs = 500, maxMs = 5_000): Promise<void> {
  const end = Date.now() + maxMs;
  let size = -1;
  let since = Date.now();
  while (Date.now() < end) {
    let now = 0;
    try {
      now = statSync(path).size;
    } catch {
      // not created yet
    }
    if (now !== size) {
      size = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return;
    await sleep(50);
  }
}

/**
 * tcpdump on `dev` in lab host `host`, writing `file` as packets come
 * (`-U --immediate-mode`), `snaplen` bytes of each, `filter` applied;
 * resolves once it is listening.
 */
export async function startCapture(
  lab: NetnsLab,
  host: string,
  dev: string,
  file: string,
  filter: string,
  snaplen: number,
): Promise<ChildProcess> {
  const dump = lab.spawn(host, 'tcpdump', [
    '-i',
    dev,
    '-n',
    '-U',
    '--immediate-mode',
    '-s',
    String(snaplen),
    '-w',
    file,
    filter,
  ]);
  await untilListening(dump);
  return dump;
}

/** Stops a capture once its file is quiet (everything sent so far is in it). */
export async function stopCapture(dump: ChildProcess, file: string): Promise<void> {
  await untilCaptureQuiet(file);
  const exited = new Promise<void>((resolve) => dump.once('exit', () => resolve()));
  dump.kill('SIGINT');
  await exited;
}
