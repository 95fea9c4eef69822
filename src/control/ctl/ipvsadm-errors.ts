/**
 * ipvsadm's error messages and exit codes for the same mistakes, so scripts
 * that match ipvsadm's stderr or test its exit status keep working.
 *
 * ipvsadm 1.31 (libipvs ipvs_strerror) names a kernel refusal by the call
 * and errno: EEXIST from add-service is "Service already exists", ESRCH from
 * a server command "Service not defined", and so on. fullnat's LB refuses
 * with its own sentences (src/engine/registry.ts, src/control/lb.ts); this
 * table reads them back into ipvsadm's. A refusal ipvsadm has no words for
 * (an address that already plays another part, a family mismatch) keeps
 * fullnat's sentence: it says more than any ipvsadm line would.
 *
 * Exit codes, from ipvsadm.c: 0 done; 2 for a bad command line (`fail(2, …)`)
 * and when IPVS cannot be reached ("Can't initialize ipvs", here: no fullnat
 * on the socket); 255 when the kernel refuses a change (main returns
 * libipvs's -1); 1 when a listing fails (list_service's `exit(1)`).
 * fullnat's own commands (--reload, --handover, --shutdown, …) have no
 * ipvsadm counterpart and keep exiting 1 when refused.
 */
import type { ControlRequest } from '../model.js';

export const EXIT_OK = 0;
export const EXIT_LIST_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNREACHABLE = 2;
export const EXIT_REFUSED = 255;
export const EXIT_FULLNAT_REFUSED = 1;

/** libipvs's messages, by the errno the kernel returns for each call. */
export const IPVSADM_MESSAGES = {
  serviceExists: 'Service already exists',
  noSuchService: 'No such service',
  serviceNotDefined: 'Service not defined',
  destinationExists: 'Destination already exists',
  noSuchDestination: 'No such destination',
} as const;

type Op = ControlRequest['op'];

/** The requests ipvsadm (or DPVS's ipvsadm, for --add-laddr) makes of the kernel. */
const IPVSADM_CHANGES: ReadonlySet<Op> = new Set<Op>([
  'add-service',
  'edit-service',
  'delete-service',
  'add-real',
  'edit-real',
  'delete-real',
  'add-laddr',
  'zero',
]);

/** The exit code of a refused request: ipvsadm's 255 for its own changes, 1 for fullnat's commands. */
export function refusalExitCode(op: Op): number {
  return IPVSADM_CHANGES.has(op) ? EXIT_REFUSED : EXIT_FULLNAT_REFUSED;
}

/** The LB's words for a missing service (lb.ts svcOf). */
const NO_SERVICE = /^no service /;
/** The LB's words for a missing real server (lb.ts edit-real/delete-real). */
const NO_REAL = /^no real server .* in that service$/;

/**
 * ipvsadm's message for the LB's refusal of `op`, or the LB's own when
 * ipvsadm has none for that mistake.
 */
export function ipvsadmRefusal(op: Op, message: string): string {
  switch (op) {
    case 'add-service':
      // registry.ts addService: "service TCP VIP:port already exists".
      if (/^service \S+ \S+ already exists$/.test(message)) return IPVSADM_MESSAGES.serviceExists;
      return message;
    case 'edit-service':
    case 'delete-service':
    case 'add-laddr':
      return NO_SERVICE.test(message) ? IPVSADM_MESSAGES.noSuchService : message;
    case 'add-real':
      if (NO_SERVICE.test(message)) return IPVSADM_MESSAGES.serviceNotDefined;
      // registry.ts addRealServer: "real server RS:port already in the service".
      if (/^real server \S+ already in the service$/.test(message))
        return IPVSADM_MESSAGES.destinationExists;
      return message;
    case 'edit-real':
    case 'delete-real':
      if (NO_SERVICE.test(message)) return IPVSADM_MESSAGES.serviceNotDefined;
      if (NO_REAL.test(message)) return IPVSADM_MESSAGES.noSuchDestination;
      return message;
    default:
      return message;
  }
}
