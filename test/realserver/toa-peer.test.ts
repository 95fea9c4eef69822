// toaPeer's argument checks, which need neither root nor the native addon.
// The lookups themselves (an IPv6 client on an AF_INET socket, null without a
// TOA, the addon's errors) run against the loaded receiver in ebpf.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { toaPeer } from '../../src/realserver/index.js';
import { closePair, loopbackPair } from '../support/loopback.js';

test('toaPeer refuses what is not a net.Socket with a TypeError', () => {
  for (const bad of [undefined, null, 3, 'fd', {}, { remotePort: 80 }])
    assert.throws(() => toaPeer(bad as unknown as Socket), {
      name: 'TypeError',
      message: 'toaPeer(socket): socket must be a net.Socket',
    });
});

test('toaPeer on a socket without a file descriptor (never connected, destroyed) throws RealServerError', async () => {
  const unconnected = new Socket();
  assert.throws(() => toaPeer(unconnected), {
    name: 'RealServerError',
    message: /toaPeer: the socket has no file descriptor/,
  });
  const pair = await loopbackPair();
  closePair(pair);
  const c = pair.accepted;
  assert.throws(() => toaPeer(c), {
    name: 'RealServerError',
    message: /toaPeer: the socket has no file descriptor/,
  });
});
