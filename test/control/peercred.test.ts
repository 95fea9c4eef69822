/**
 * The peer-credential addon (native/peercred.c) on real sockets: a unix
 * stream connection in this process, a socketpair, a child process (as
 * another user when we are root), and the errors for what is not a unix socket.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, chmod, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  nativePeerCred,
  socketFd,
  type PeerCredentials,
} from '../../src/control/socket/peercred.js';

const source = nativePeerCred();
const skip = source.ok ? false : `peer-credential addon unavailable: ${source.reason}`;
const read = (fd: number): PeerCredentials => {
  if (!source.ok) throw new Error(source.reason);
  return source.read(fd);
};

const self = (): PeerCredentials => ({
  pid: process.pid,
  uid: process.getuid!(),
  gid: process.getgid!(),
});

function fdOf(s: net.Socket): number {
  const fd = socketFd(s);
  assert.ok(fd !== undefined, 'a connected net.Socket exposes its fd');
  return fd;
}

describe('peerCredentials (native SO_PEERCRED)', { skip, timeout: 15_000 }, () => {
  let dir: string;
  let path: string;
  let server: net.Server;
  const accepted: net.Socket[] = [];
  let onAccept: ((s: net.Socket) => void) | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fullnat-peercred-'));
    path = join(dir, 'p.sock');
    server = net.createServer((s) => {
      accepted.push(s);
      s.on('error', () => undefined);
      onAccept?.(s);
    });
    await new Promise<void>((r) => server.listen(path, () => r()));
  });
  after(async () => {
    for (const s of accepted) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  const nextAccept = (): Promise<net.Socket> =>
    new Promise((resolve) => {
      onAccept = (s) => {
        onAccept = undefined;
        resolve(s);
      };
    });

  it('reads our own pid, uid and gid on both ends of a unix connection', async () => {
    const got = nextAccept();
    const client = net.createConnection({ path });
    await new Promise<void>((r) => client.once('connect', () => r()));
    const srv = await got;
    try {
      assert.deepEqual(read(fdOf(srv)), self(), 'server side sees the client');
      assert.deepEqual(read(fdOf(client)), self(), 'client side sees the listener');
    } finally {
      client.destroy();
    }
  });

  it('reads the creator on a socketpair (a child process stdio pipe)', async () => {
    // libuv makes a child's stdio pipes with socketpair(AF_UNIX, SOCK_STREAM).
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 2000)'], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    try {
      const pipe = child.stdin;
      assert.ok(pipe instanceof net.Socket, 'a child stdio pipe is a net.Socket');
      assert.deepEqual(read(fdOf(pipe)), self());
    } finally {
      child.kill();
    }
  });

  it('reads another process, and another user when we are root', async () => {
    const root = process.getuid!() === 0;
    // Let "nobody" traverse the directory and connect to the socket.
    if (root) {
      await chmod(dir, 0o711);
      await chmod(path, 0o666);
    }
    const got = nextAccept();
    const code = `const s = require('net').createConnection(process.argv[1]); s.on('connect', () => setTimeout(() => s.destroy(), 2000)); s.on('error', (e) => { console.error(e.message); process.exit(3); });`;
    const child = spawn(process.execPath, ['-e', code, path], {
      stdio: 'ignore',
      ...(root ? { uid: 65534, gid: 65534 } : {}),
    });
    try {
      const srv = await got;
      const peer = read(fdOf(srv));
      assert.equal(peer.pid, child.pid);
      if (root) {
        assert.equal(peer.uid, 65534);
        assert.equal(peer.gid, 65534);
      } else {
        assert.equal(peer.uid, process.getuid!());
      }
    } finally {
      child.kill();
      if (root) await chmod(dir, 0o700);
    }
  });

  it('refuses what is not a connected unix socket, with system-error codes', async () => {
    const tcpServer = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => tcpServer.listen(0, '127.0.0.1', () => r()));
    const { port } = tcpServer.address() as net.AddressInfo;
    const tcp = net.createConnection({ host: '127.0.0.1', port });
    tcp.on('error', () => undefined);
    try {
      await new Promise<void>((r) => tcp.once('connect', () => r()));
      assert.throws(() => read(fdOf(tcp)), {
        code: 'ENOTSUP',
        message: /is not a unix socket/,
      });
    } finally {
      tcp.destroy();
      await new Promise<void>((r) => tcpServer.close(() => r()));
    }

    const file = openSync(join(dir, 'plain'), 'w');
    try {
      assert.throws(() => read(file), {
        code: 'ENOTSOCK',
        syscall: 'getsockopt SO_DOMAIN',
        message: /^getsockopt SO_DOMAIN: /,
      });
    } finally {
      closeSync(file);
    }
    // Far above any open-file limit, so never a descriptor in use.
    assert.throws(() => read(0x7ffffff0), { code: 'EBADF' });
  });

  it('rejects a bad fd argument with TypeError', () => {
    if (!source.ok) return;
    const raw = source.read as (fd: unknown) => PeerCredentials;
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 31, '3', undefined, null]) {
      assert.throws(() => raw(bad), TypeError, String(bad));
    }
  });
});
