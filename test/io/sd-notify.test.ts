// sd_notify through the native addon: a datagram reaches a unix datagram
// socket at a path and in the abstract namespace ('@…'), as systemd reads
// them. The receiving end is python3 (Node has no unix datagram sockets);
// skipped with the reason when python3 or the addon is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sdNotify } from '../../src/io/sd-notify.js';

const addon = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'build',
  'Release',
  'fullnat_notify.node',
);
const skip = !existsSync(addon)
  ? 'native sd_notify addon not built'
  : spawnSync('python3', ['-c', 'pass']).status !== 0
    ? 'python3 not available'
    : undefined;

/** Binds `address` (a path, or '\0name'), prints "bound", then prints the first datagram. */
const RECEIVER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1].replace('@', '\\0', 1) if sys.argv[1].startswith('@') else sys.argv[1])
s.settimeout(5)
print('bound', flush=True)
print(s.recv(4096).decode(), flush=True)
`;

async function receive(address: string, send: () => void): Promise<string> {
  const child = spawn('python3', ['-c', RECEIVER, address], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.startsWith('bound\n')) resolve();
    });
    child.once('exit', () => reject(new Error(`receiver exited: ${err}`)));
  });
  send();
  await new Promise((r) => child.once('exit', r));
  return out.slice('bound\n'.length).trim();
}

test('READY=1 reaches a socket at a path and an abstract one', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fullnat-notify-'));
  try {
    const path = join(dir, 'notify');
    let r = await receive(path, () =>
      assert.deepEqual(sdNotify('READY=1', { NOTIFY_SOCKET: path }), { sent: true }),
    );
    assert.equal(r, 'READY=1');
    const abstract = `@fullnat-notify-${process.pid}`;
    r = await receive(abstract, () =>
      assert.deepEqual(sdNotify('STOPPING=1', { NOTIFY_SOCKET: abstract }), { sent: true }),
    );
    assert.equal(r, 'STOPPING=1');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  'without NOTIFY_SOCKET nothing is sent; a dead socket is a reason, not a throw',
  { skip },
  () => {
    assert.deepEqual(sdNotify('READY=1', {}), {
      sent: false,
      reason: 'NOTIFY_SOCKET not set',
      expected: true,
    });
    const r = sdNotify('READY=1', { NOTIFY_SOCKET: '/nonexistent/notify' });
    assert.equal(r.sent, false);
    assert.match(!r.sent ? r.reason : '', /sendto NOTIFY_SOCKET: No such file or directory/);
  },
);
