/**
 * UDP_CHECK: one datagram from a connected UDP socket. Connected, because
 * then the kernel hands an ICMP port unreachable for that peer back to the
 * socket (ECONNREFUSED), and datagrams from anyone else never reach it.
 */
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';

import { addressToString } from '../wire/address.js';
import { startAttempt } from './health-attempt.js';
import type { Probe, ProbeResult } from './health-probe.js';
import type { UdpCheckSpec } from './model.js';

/**
 * Why `reply` fails the check's `require_reply` pattern, or undefined when it
 * passes. Lengths are checked only against a pattern, as keepalived does; a
 * reply shorter than the pattern fails (keepalived compares only the bytes
 * both have, so a one-byte answer would pass a four-byte pattern).
 */
export function replyMismatch(reply: Uint8Array, check: UdpCheckSpec): string | undefined {
  const pattern = check.reply;
  if (pattern === undefined) return undefined;
  const { minReplyLength: min, maxReplyLength: max } = check;
  if (reply.length < min || reply.length > max) {
    return `reply of ${reply.length} bytes (expected ${min} to ${max})`;
  }
  if (reply.length * 2 < pattern.length) {
    return `reply of ${reply.length} bytes, shorter than require_reply`;
  }
  for (let i = 0; i < pattern.length; i++) {
    const want = pattern[i]!;
    if (want === 'x') continue;
    const byte = reply[i >> 1]!;
    const nibble = i % 2 === 0 ? byte >> 4 : byte & 0x0f;
    if (nibble !== parseInt(want, 16)) return `reply differs from require_reply at byte ${i >> 1}`;
  }
  return undefined;
}

/**
 * Sends the payload to host:port and decides within `connectTimeout`: an
 * ICMP error fails at once, an answer passes (or fails a `require_reply`
 * pattern), silence passes unless a reply is required. One socket and one
 * timer, both released on every path.
 */
export function runUdpProbe(
  host: string,
  port: number,
  check: UdpCheckSpec,
  done: (r: ProbeResult) => void,
): Probe {
  // An address literal, never a name: the family is explicit so nothing is looked up.
  const sock = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
  const timeoutS = check.connectTimeout;
  const a = startAttempt(
    timeoutS,
    () =>
      check.requireReply
        ? { ok: false, reason: `no reply after ${timeoutS}s` }
        : { ok: true, reason: `no ICMP error in ${timeoutS}s` },
    () => sock.close(),
    done,
  );
  const finish = a.finish;
  // ECONNREFUSED here is the ICMP port unreachable for the connected peer.
  sock.on('error', (e: NodeJS.ErrnoException) =>
    finish({ ok: false, reason: e.code ?? e.message }),
  );
  sock.on('message', (msg: Buffer) => {
    const mismatch = replyMismatch(msg, check);
    finish(mismatch ? { ok: false, reason: mismatch } : { ok: true, reason: 'reply' });
  });
  sock.once('connect', () => {
    if (a.ended()) return;
    sock.send(Buffer.from(check.payload, 'hex'), (err) => {
      if (err) finish({ ok: false, reason: (err as NodeJS.ErrnoException).code ?? err.message });
    });
  });
  const connect = (): void => {
    if (!a.ended()) sock.connect(port, host);
  };
  if (check.bindto === undefined) connect();
  else sock.bind({ address: addressToString(check.bindto), port: 0 }, connect);
  return a.probe;
}
