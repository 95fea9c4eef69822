/**
 * SMTP_CHECK as keepalived runs it: connect, a 220 greeting, `HELO name`
 * answered 250, then QUIT. Multi-line replies (`250-…` lines before
 * `250 …`) count as one; the whole exchange must end within connect_timeout.
 */
import { connect, isIPv6 } from 'node:net';

import { addressToString } from '../wire/address.js';
import { startAttempt } from './health-attempt.js';
import type { Probe, ProbeResult } from './health-probe.js';
import type { RealServerSpec, SmtpCheckSpec } from './model.js';

/** An SMTP reply line is at most 512 bytes (RFC 5321 4.5.3.1.5); a little slack, then it is not SMTP. */
const MAX_LINE = 1024;

/**
 * The code of the reply that ends in `buf`, once its last line has come:
 * `{ code, rest }` with what follows it, or undefined while incomplete.
 */
export function takeReply(buf: string): { code: number; rest: string } | undefined {
  let start = 0;
  for (;;) {
    const eol = buf.indexOf('\n', start);
    if (eol < 0) return undefined;
    const line = buf.slice(start, eol).replace(/\r$/, '');
    start = eol + 1;
    // "250-" continues the reply; "250 " or a bare "250" ends it.
    const m = /^(\d{3})(?: |$)/.exec(line);
    if (m) return { code: Number(m[1]), rest: buf.slice(start) };
    if (!/^\d{3}-/.test(line)) return { code: 0, rest: buf.slice(start) };
  }
}

export function runSmtpProbe(
  real: RealServerSpec,
  check: SmtpCheckSpec,
  done: (r: ProbeResult) => void,
): Probe {
  const host = addressToString(check.connectIp ?? real.addr);
  const port = check.connectPort ?? real.port;
  const timeoutS = check.connectTimeout;
  const sock = connect({
    host,
    port,
    family: isIPv6(host) ? 6 : 4,
    ...(check.bindto === undefined ? {} : { localAddress: addressToString(check.bindto) }),
  });
  const a = startAttempt(
    timeoutS,
    () => ({ ok: false, reason: `timeout after ${timeoutS}s` }),
    () => sock.destroy(),
    done,
  );
  let stage: 'greeting' | 'helo' | 'quit' = 'greeting';
  let buf = '';
  sock.on('error', (e: NodeJS.ErrnoException) =>
    a.finish({ ok: false, reason: e.code ?? e.message }),
  );
  // After QUIT the server closing is the expected end; before it, a failure.
  sock.on('close', () =>
    a.finish(
      stage === 'quit'
        ? { ok: true, reason: 'HELO answered 250' }
        : { ok: false, reason: `connection closed before the ${stage} reply` },
    ),
  );
  sock.on('data', (chunk: Buffer) => {
    buf += chunk.toString('latin1');
    const reply = takeReply(buf);
    if (!reply) {
      if (buf.length > MAX_LINE * 16) a.finish({ ok: false, reason: 'no SMTP reply' });
      return;
    }
    buf = reply.rest;
    if (stage === 'greeting') {
      if (reply.code !== 220) return a.finish({ ok: false, reason: `greeting ${reply.code}` });
      stage = 'helo';
      sock.write(`HELO ${check.heloName}\r\n`);
    } else if (stage === 'helo') {
      if (reply.code !== 250) return a.finish({ ok: false, reason: `HELO answered ${reply.code}` });
      stage = 'quit';
      sock.write('QUIT\r\n');
    } else {
      a.finish({ ok: true, reason: 'HELO answered 250' });
    }
  });
  return a.probe;
}
