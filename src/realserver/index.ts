/** `fullnat/realserver`: what a Node real server imports to learn the client behind the LB. */
export {
  acceptProxyProtocol,
  createProxyProtocolServer,
  proxyProtocolInfo,
  trustList,
  wrapProxyProtocolServer,
} from './proxy-protocol-server.js';
export type {
  ProxiedSocket,
  ProxyProtocolInfo,
  ProxyProtocolLogger,
} from './proxy-protocol-server.js';
export { toaPeer } from './toa-peer.js';
export type { ToaPeer, ToaPeerOptions } from './toa-peer.js';
