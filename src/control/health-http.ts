/**
 * HTTP_GET and SSL_GET as keepalived runs them: each `url` in turn on its
 * own connection, one HTTP/1.0 request (so the server closes after one
 * answer; node:http only speaks HTTP/1.1, hence the raw socket), the status
 * checked against the url's ranges and, with `digest`, the MD5 of the body.
 * Every url must pass. SSL_GET wraps the connection in TLS without
 * verifying the certificate, as keepalived does by default; SNI carries
 * the virtualhost when it is a name.
 */
import { createHash, type Hash } from 'node:crypto';
import { connect, isIP, isIPv6, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

import { addressToString } from '../wire/address.js';
import { startAttempt } from './health-attempt.js';
import type { Probe, ProbeResult } from './health-probe.js';
import type { HttpGetSpec, HttpUrlSpec, RealServerSpec } from './model.js';

/** A head longer than this is not an HTTP answer worth reading. */
const MAX_HEAD = 65536;

/** The port the Host header leaves out: the scheme's own. */
const defaultPort = (check: HttpGetSpec): number => (check.kind === 'SSL_GET' ? 443 : 80);

/** keepalived's request, with the Host the url, the check or the address gives. */
export function httpRequest(
  check: HttpGetSpec,
  url: HttpUrlSpec,
  host: string,
  port: number,
): string {
  const vhost = url.virtualhost ?? check.virtualhost;
  // RFC 7230 section 5.4: an IPv6 literal goes in brackets in Host.
  const name = isIPv6(host) ? `[${host}]` : host;
  const hostHeader = vhost ?? (port === defaultPort(check) ? name : `${name}:${port}`);
  return `GET ${url.path} HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: ${hostHeader}\r\n\r\n`;
}

/** SNI: the virtualhost without a port, when it is a name (RFC 6066 forbids address literals). */
export function serverName(check: HttpGetSpec, url: HttpUrlSpec): string | undefined {
  const vhost = url.virtualhost ?? check.virtualhost;
  if (vhost === undefined || vhost.startsWith('[')) return undefined;
  const name = vhost.replace(/:\d+$/, '');
  return isIP(name) ? undefined : name;
}

export const statusAccepted = (status: number, ranges: Array<[number, number]>): boolean =>
  ranges.some(([lo, hi]) => status >= lo && status <= hi);

/** One url: connect (and TLS), request, then the status and the digest decide. */
function fetchUrl(
  check: HttpGetSpec,
  url: HttpUrlSpec,
  host: string,
  port: number,
  done: (r: ProbeResult) => void,
): Probe {
  const timeoutS = check.connectTimeout;
  // An address literal, never a name: the family is explicit so nothing is looked up.
  const raw = connect({
    host,
    port,
    family: isIPv6(host) ? 6 : 4,
    ...(check.bindto === undefined ? {} : { localAddress: addressToString(check.bindto) }),
  });
  let sock: Socket = raw;
  if (check.kind === 'SSL_GET') {
    const servername = serverName(check, url);
    sock = tlsConnect({
      socket: raw,
      rejectUnauthorized: false,
      ...(servername === undefined ? {} : { servername }),
    });
  }
  const a = startAttempt(
    timeoutS,
    () => ({ ok: false, reason: `timeout after ${timeoutS}s` }),
    () => {
      sock.destroy();
      raw.destroy();
    },
    done,
  );
  // Stay attached after the attempt ends so a late error is never unhandled.
  const onError = (e: NodeJS.ErrnoException): void =>
    a.finish({ ok: false, reason: e.code ?? e.message });
  raw.on('error', onError);
  if (sock !== raw) sock.on('error', onError);

  let head = Buffer.alloc(0);
  let status: number | undefined;
  let hash: Hash | undefined;
  const onBody = (chunk: Buffer): void => void hash?.update(chunk);
  // Both 'end' and 'close' may call it: the hash is read once.
  const finishDigest = (): void => {
    const body = hash;
    if (!body || status === undefined) return;
    hash = undefined;
    const got = body.digest('hex');
    a.finish(
      got === url.digest
        ? { ok: true, reason: `status ${status}, digest matches` }
        : { ok: false, reason: `status ${status}, digest ${got} (expected ${url.digest})` },
    );
  };
  sock.on('data', (chunk: Buffer) => {
    if (status !== undefined) return onBody(chunk);
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    const lf = head.indexOf('\n');
    if (lf < 0 || (end < 0 && url.digest !== undefined)) {
      if (head.length > MAX_HEAD) a.finish({ ok: false, reason: 'no HTTP answer' });
      return;
    }
    const m = /^HTTP\/\d\.\d (\d{3})/.exec(head.subarray(0, lf).toString('latin1'));
    if (!m) return a.finish({ ok: false, reason: 'bad HTTP status line' });
    status = Number(m[1]);
    if (!statusAccepted(status, url.statusCodes))
      return a.finish({ ok: false, reason: `status ${status}` });
    if (url.digest === undefined) return a.finish({ ok: true, reason: `status ${status}` });
    hash = createHash('md5');
    onBody(head.subarray(end + 4));
  });
  // HTTP/1.0: the body ends where the connection does.
  sock.on('end', finishDigest);
  sock.on('close', () => {
    finishDigest();
    a.finish({ ok: false, reason: 'connection closed before an answer' });
  });
  sock.once(check.kind === 'SSL_GET' ? 'secureConnect' : 'connect', () => {
    if (!a.ended()) sock.write(httpRequest(check, url, host, port));
  });
  return a.probe;
}

/** Every url of `check` in turn; the first failure ends the attempt. */
export function runHttpProbe(
  real: RealServerSpec,
  check: HttpGetSpec,
  done: (r: ProbeResult) => void,
): Probe {
  const host = addressToString(check.connectIp ?? real.addr);
  const port = check.connectPort ?? real.port;
  let current: Probe | undefined;
  let cancelled = false;
  const n = check.urls.length;
  const next = (i: number): void => {
    const url = check.urls[i];
    if (!url) return;
    current = fetchUrl(check, url, host, port, (r) => {
      current = undefined;
      if (cancelled) return;
      if (!r.ok) done(n === 1 ? r : { ...r, reason: `${url.path}: ${r.reason}` });
      else if (i + 1 < n) next(i + 1);
      else done(n === 1 ? r : { ok: true, reason: `${n} urls passed` });
    });
  };
  next(0);
  return {
    cancel: () => {
      cancelled = true;
      current?.cancel();
    },
  };
}
