/** `fullnat` as a library: the engine and the codecs, for embedding and tools. */
export { Engine } from './engine/engine.js';
export { Packet, PacketPool } from './engine/packet.js';
export { COUNTER_NAMES, DROP_COUNTERS } from './engine/counters.js';
export { TOA_POLICIES, TOA_SETTINGS, DEFAULT_ENGINE_OPTIONS } from './engine/options.js';
export type {
  EngineOptions,
  ServiceConfig,
  RealServerConfig,
  ToaPolicy,
  ToaSetting,
} from './engine/options.js';
export { findToa, ToaResult, writeToaV4, writeToaV6 } from './wire/toa.js';
export { readCapture } from './wire/capture.js';
