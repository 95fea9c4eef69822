/** TCP_CHECK: a TCP connection to the real server within connect_timeout. */
import { connect, isIPv6, type Socket } from 'node:net';

import { startAttempt } from './health-attempt.js';
import type { Probe, ProbeResult } from './health-probe.js';
import type { TcpCheckSpec } from './model.js';

/**
 * Connects to host:port and lets `onConnect` decide the outcome. The whole
 * attempt, connect and any exchange, must finish within `timeoutS`; the
 * socket is destroyed on every path.
 */
function probeSocket(
  host: string,
  port: number,
  timeoutS: number,
  onConnect: (sock: Socket, finish: (r: ProbeResult) => void) => void,
  done: (r: ProbeResult) => void,
): Probe {
  // An address literal, never a name: the family is explicit so nothing is looked up.
  const sock = connect({ host, port, family: isIPv6(host) ? 6 : 4 });
  const a = startAttempt(
    timeoutS,
    () => ({ ok: false, reason: `timeout after ${timeoutS}s` }),
    () => sock.destroy(),
    done,
  );
  // Stays attached after the attempt ends so a late socket error is never unhandled.
  sock.on('error', (e: NodeJS.ErrnoException) =>
    a.finish({ ok: false, reason: e.code ?? e.message }),
  );
  sock.on('close', () => a.finish({ ok: false, reason: 'connection closed' }));
  sock.once('connect', () => onConnect(sock, a.finish));
  return a.probe;
}

/** One TCP_CHECK attempt against host:port: the connection is the answer. */
export function runTcpProbe(
  host: string,
  port: number,
  check: TcpCheckSpec,
  done: (r: ProbeResult) => void,
): Probe {
  const onConnect = (_s: Socket, finish: (r: ProbeResult) => void): void =>
    finish({ ok: true, reason: 'connected' });
  return probeSocket(host, port, check.connectTimeout, onConnect, done);
}
