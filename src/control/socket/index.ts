/** The control socket's public API: server, client, request validation, and the wire limits. */
export { ControlClientError, sendControlRequest } from './client.js';
export { CONTROL_IDLE_TIMEOUT_MS } from './connection.js';
export { DEFAULT_CONTROL_SOCKET, MAX_REQUEST_LINE, MAX_RESPONSE_LINE } from './protocol.js';
export {
  MAX_CONTROL_CONNECTIONS,
  startControlServer,
  type ControlServer,
  type ControlServerOptions,
} from './server.js';
export { probeSocket, type ProbeResult } from './socket-file.js';
export { fromWireJson, toWireJson } from './wire-json.js';
export {
  MAX_CONNECTIONS_LIMIT,
  validateControlRequest,
  type ValidationResult,
} from './validate.js';
/** ipvsadm's weight range, as the config and ctl have it (rules.ts). */
export { MAX_WEIGHT } from '../rules.js';
