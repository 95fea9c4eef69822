/**
 * HAProxy's PROXY protocol (doc/proxy-protocol.txt), versions 1 and 2: the
 * constants, the allocation-free encoders the LB's data path uses, CRC32c,
 * and the strict decoder real servers and tests use. One module per concern
 * under proxy-protocol/; this file is the one import the rest of the code uses.
 */
export * from './proxy-protocol/constants.js';
export * from './proxy-protocol/encode.js';
export { crc32c } from './proxy-protocol/crc32c.js';
export * from './proxy-protocol/decode.js';
