/** One health-check attempt of any kind, and what it reports back to the loop. */
import { addressToString } from '../wire/address.js';
import { runAllOf } from './health-all-of.js';
import { runDnsProbe } from './health-dns.js';
import { runHttpProbe } from './health-http.js';
import { runMiscProbe } from './health-misc.js';
import { runPingProbe } from './health-ping.js';
import { runSmtpProbe } from './health-smtp.js';
import { runTcpProbe } from './health-tcp.js';
import { runUdpProbe } from './health-udp.js';
import type { HealthCheckSpec, RealServerSpec } from './model.js';

export interface ProbeResult {
  ok: boolean;
  /** Why, for the log: "connected", "status 503", "ECONNREFUSED", "timeout after 2s", "exit status 1". */
  reason: string;
  /** A weight the check asks for (MISC_CHECK's misc_dynamic); absent: the weight stays as it is. */
  weight?: number;
  /** The check asks for the configured weight back (misc_dynamic's exit 0, as keepalived's iweight). */
  configuredWeight?: boolean;
}

/** An attempt in flight; cancel() releases its socket, timer or process without calling back. */
export interface Probe {
  cancel(): void;
}

/** Runs one attempt of `check` against `real`; `done` is called once, unless cancelled first. */
export function runProbe(
  real: RealServerSpec,
  check: HealthCheckSpec,
  done: (r: ProbeResult) => void,
): Probe {
  switch (check.kind) {
    case 'TCP_CHECK':
      return runTcpProbe(addressToString(real.addr), check.connectPort ?? real.port, check, done);
    case 'HTTP_GET':
    case 'SSL_GET':
      return runHttpProbe(real, check, done);
    case 'UDP_CHECK':
      return runUdpProbe(
        addressToString(check.connectIp ?? real.addr),
        check.connectPort ?? real.port,
        check,
        done,
      );
    case 'MISC_CHECK':
      // keepalived's default: a script may run for as long as the loop's interval.
      return runMiscProbe(check, check.timeout ?? real.delayLoop, done);
    case 'SMTP_CHECK':
      return runSmtpProbe(real, check, done);
    case 'DNS_CHECK':
      return runDnsProbe(real, check, done);
    case 'PING_CHECK':
      return runPingProbe(real, check, done);
    case 'ALL_OF':
      return runAllOf(check.checks, (c, d) => runProbe(real, c, d), done);
  }
}
