/** `fullnat ctl`'s public API: the argv parser, ipvsadm's listings, and the runner. */
export { CtlUsageError, parseCtlArgs, type CtlCommand, type ListView } from './argv.js';
export {
  formatConnections,
  formatExpire,
  formatLaddrs,
  formatLargeNumber,
  formatRates,
  formatServices,
  formatStats,
  IPVS_VERSION,
  TITLE_CONNECTIONS,
  TITLE_CONNECTIONS_LIP,
  TITLE_LADDRS,
  TITLE_RATE,
  TITLE_SERVICES,
  TITLE_STATS,
  type ConnectionFormatOptions,
  type FormatOptions,
} from './ipvsadm-format.js';
export {
  EXIT_LIST_FAILED,
  EXIT_REFUSED,
  EXIT_UNREACHABLE,
  EXIT_USAGE,
  IPVSADM_MESSAGES,
  ipvsadmRefusal,
  refusalExitCode,
} from './ipvsadm-errors.js';
export {
  computeRates,
  type RealServerRates,
  type ServiceRates,
  type TrafficRates,
} from './rates.js';
export { packageVersion, runCtl, type RunCtlOptions } from './run.js';
export { usage } from './usage.js';
/** ipvsadm's default scheduler (DEF_SCHED) and real-server weight: the config's too (rules.ts). */
export { DEFAULT_SCHEDULER, DEFAULT_WEIGHT } from '../rules.js';
