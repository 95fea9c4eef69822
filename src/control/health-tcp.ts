/**
 * TCP_CHECK and HTTP_GET probes: a TCP connection to the real server, and for
 * HTTP_GET one HTTP/1.0 request whose status line decides.
 */
import { connect, isIPv6, type Socket } from 'node:net';

import { startAttempt } from './health-attempt.js';
import type { Probe, ProbeResult } from './health-probe.js';
import type { HttpGetSpec, TcpCheckSpec } from './model.js';

/** Responses longer than this without a line break are not HTTP. */
const MAX_STATUS_LINE = 8192;

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

/**
 * keepalived's request: HTTP/1.0, so the server closes after one response;
 * node:http can only speak HTTP/1.1, hence the raw socket.
 */
function httpRequest(host: string, port: number, path: string): string {
  // RFC 7230 section 5.4: an IPv6 literal goes in brackets in Host.
  const name = isIPv6(host) ? `[${host}]` : host;
  const hostHeader = port === 80 ? name : `${name}:${port}`;
  return `GET ${path} HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: ${hostHeader}\r\n\r\n`;
}

function onHttpConnect(
  host: string,
  port: number,
  check: { path: string; statusCode: number },
): (sock: Socket, finish: (r: ProbeResult) => void) => void {
  return (sock, finish) => {
    let head = '';
    sock.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const eol = head.indexOf('\n');
      if (eol < 0) {
        if (head.length > MAX_STATUS_LINE) finish({ ok: false, reason: 'no HTTP status line' });
        return;
      }
      const m = /^HTTP\/\d\.\d (\d{3})/.exec(head.slice(0, eol));
      if (!m) return finish({ ok: false, reason: 'bad HTTP status line' });
      const status = Number(m[1]);
      finish({ ok: status === check.statusCode, reason: `status ${status}` });
    });
    sock.write(httpRequest(host, port, check.path));
  };
}

/** One TCP_CHECK or HTTP_GET attempt against host:port. */
export function runTcpProbe(
  host: string,
  port: number,
  check: TcpCheckSpec | HttpGetSpec,
  done: (r: ProbeResult) => void,
): Probe {
  const onConnect =
    check.kind === 'TCP_CHECK'
      ? (_s: Socket, finish: (r: ProbeResult) => void) => finish({ ok: true, reason: 'connected' })
      : onHttpConnect(host, port, check);
  return probeSocket(host, port, check.connectTimeout, onConnect, done);
}
