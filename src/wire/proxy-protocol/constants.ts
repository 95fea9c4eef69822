/** PROXY protocol constants (HAProxy's doc/proxy-protocol.txt): lengths, the v2 signature, command, family and TLV codes. */

/** Longest v1 line a receiver must accept, CRLF included (the spec's worst case). */
export const PROXY_V1_MAX_LENGTH = 107;
/** Fixed part of a v2 header: signature, version/command, family, length. */
export const PROXY_V2_HEADER_LENGTH = 16;
/** v2 PROXY header for TCP over IPv4 without TLVs. */
export const PROXY_V2_IPV4_LENGTH = 28;
/** v2 PROXY header for TCP over IPv6 without TLVs. */
export const PROXY_V2_IPV6_LENGTH = 52;
/** Largest v2 header the 16-bit length field can describe. */
export const PROXY_V2_MAX_LENGTH = PROXY_V2_HEADER_LENGTH + 0xffff;

/** The 12 bytes that open every v2 header; chosen by the spec to be rejected by common protocols. */
export const PROXY_V2_SIGNATURE: Readonly<Uint8Array> = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);

export const PP2_VERSION = 0x20;
export const PP2_CMD_LOCAL = 0x00;
export const PP2_CMD_PROXY = 0x01;
export const PP2_FAM_TCP4 = 0x11;
export const PP2_FAM_UDP4 = 0x12;
export const PP2_FAM_TCP6 = 0x21;
export const PP2_FAM_UDP6 = 0x22;
export const PP2_FAM_UNIX_STREAM = 0x31;
export const PP2_FAM_UNIX_DGRAM = 0x32;

export const PP2_TYPE_ALPN = 0x01;
export const PP2_TYPE_AUTHORITY = 0x02;
export const PP2_TYPE_CRC32C = 0x03;
export const PP2_TYPE_NOOP = 0x04;
export const PP2_TYPE_UNIQUE_ID = 0x05;
export const PP2_TYPE_SSL = 0x20;
export const PP2_TYPE_NETNS = 0x30;
/** The spec caps PP2_TYPE_UNIQUE_ID values at this many bytes. */
export const PP2_UNIQUE_ID_MAX = 128;

/** "PROXY TCP4 " and "PROXY TCP6 " differ only in byte 9. */
/** Lower-case hex digits, as RFC 5952 prescribes for text output. */
