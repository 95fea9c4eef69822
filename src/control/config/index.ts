/** The configuration file's public API: parse, load, diff, and the error they throw. */
export { CONFIG_DEFAULTS } from './defaults.js';
export {
  diffConfig,
  RESTART_REQUIRED_DEFS,
  RESTART_REQUIRED_SYNC,
  type ConfigDiff,
  type RealServerChange,
  type RealServerField,
  type ServiceChange,
} from './diff.js';
export { ConfigError } from './error.js';
export { warningText } from './diagnostics.js';
export { reloadNeedsForce } from './reload-guard.js';
export type { ReadInclude } from './lexer.js';
export {
  checkConfigFile,
  loadConfig,
  parseConfig,
  readConfig,
  type ConfigReport,
} from './parse.js';
export { MIN_MTU } from '../rules.js';
