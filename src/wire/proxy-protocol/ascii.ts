/** Bytes and lengths the v1 text form and the v2 UNIX family are written and read with (internal to proxy-protocol/). */

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const DOT = 0x2e;
export const COLON = 0x3a;
export const ZERO = 0x30;
export const PROXY_ASCII = [0x50, 0x52, 0x4f, 0x58, 0x59] as const;
export const V1_HEAD_LENGTH = 11;
export const HEX = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0));
export const UNIX_ADDRESS_LENGTH = 108;
