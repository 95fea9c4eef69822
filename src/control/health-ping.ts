/**
 * PING_CHECK: one ICMP echo to the real server. Node has no raw sockets, so
 * the echo is iputils' `ping -c 1 -W TIMEOUT` (root or the ping group, as
 * for anyone running ping); its exit status decides: 0 a reply came.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

import { addressFamily, addressToString } from '../wire/address.js';
import type { Probe, ProbeResult } from './health-probe.js';
import type { PingCheckSpec, RealServerSpec } from './model.js';

const PING_PATHS = ['/usr/bin/ping', '/bin/ping'];
/** Past -W, ping has this long to exit before it is killed. */
const EXIT_GRACE_S = 1;

let pingPath: string | null | undefined;
/** iputils' ping, looked up once; null when it is not installed. */
function findPing(): string | null {
  pingPath ??= PING_PATHS.find((p) => existsSync(p)) ?? null;
  return pingPath;
}

/** ping's arguments: numeric, quiet, one echo, its family and source. */
export function pingArgs(real: RealServerSpec, check: PingCheckSpec): string[] {
  const target = check.connectIp ?? real.addr;
  return [
    addressFamily(target) === 6 ? '-6' : '-4',
    '-n',
    '-q',
    '-c',
    '1',
    '-W',
    String(check.connectTimeout),
    ...(check.bindto === undefined ? [] : ['-I', addressToString(check.bindto)]),
    addressToString(target),
  ];
}

export function runPingProbe(
  real: RealServerSpec,
  check: PingCheckSpec,
  done: (r: ProbeResult) => void,
): Probe {
  const ping = findPing();
  if (!ping) {
    const immediate = setImmediate(() =>
      done({ ok: false, reason: 'ping is not installed (Debian: iputils-ping)' }),
    );
    return { cancel: () => clearImmediate(immediate) };
  }
  let over = false;
  const child = spawn(ping, pingArgs(real, check), { stdio: 'ignore' });
  const timer = setTimeout(
    () => {
      child.kill('SIGKILL');
      finish({ ok: false, reason: `ping still running after ${check.connectTimeout}s` });
    },
    (check.connectTimeout + EXIT_GRACE_S) * 1000,
  );
  function finish(r: ProbeResult): void {
    if (over) return;
    over = true;
    clearTimeout(timer);
    done(r);
  }
  child.on('error', (e: NodeJS.ErrnoException) =>
    finish({ ok: false, reason: e.code ?? e.message }),
  );
  child.on('exit', (code, signal) => {
    if (code === 0) finish({ ok: true, reason: 'echo reply' });
    else if (code === 1) finish({ ok: false, reason: `no echo reply in ${check.connectTimeout}s` });
    else finish({ ok: false, reason: `ping failed (${code === null ? signal : `exit ${code}`})` });
  });
  return {
    cancel: () => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
    },
  };
}
