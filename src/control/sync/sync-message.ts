/**
 * One sync message: a UDP datagram of at most 1400 bytes (no
 * fragmentation on any sane path), big-endian:
 *
 *     0  u32 magic "FNSY"     4 u8 version (1)   5 u8 type   6 u8 sender node id
 *     7  u8 record version (0 = no records, 1, 2)
 *     8  f64 incarnation (the sender's start, Unix ms; a restart raises it)
 *     16 u32 sequence (per incarnation, +1 per message)
 *     20 u16 record count    22 u16 record size (0, 60 or 108)
 *     24 records …, then 16 bytes: HMAC-SHA256(macKey, everything before ‖ receiver node id), truncated
 *
 * The receiver's node id is authenticated but not sent: a message captured
 * on its way to one peer is refused by every other (it cannot be replayed
 * across the fleet within another receiver's window).
 *
 * Decoding never throws: every refusal is a reason, counted by the channel.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

import { RECORD_V1_SIZE, RECORD_V2_SIZE } from '../../engine/conn-record.js';
import type { SyncRecordVersion } from './sync-table.js';

/** "FNSY". */
export const SYNC_MAGIC = 0x464e5359;
export const SYNC_VERSION = 1;
export const HEADER_SIZE = 24;
export const MAC_SIZE = 16;
/** Fits a 1500-byte MTU with IPv6 and UDP headers and room to spare (tunnels). */
export const MAX_DATAGRAM = 1400;
/** Bytes for records in one message. */
export const RECORDS_ROOM = MAX_DATAGRAM - HEADER_SIZE - MAC_SIZE;

export const enum MessageType {
  /** Records of changed connections; none = a heartbeat. */
  Update = 1,
  /** "Send me your table" (a node starting, or a partition healed). */
  TableRequest = 2,
  /** Records of a table being streamed to the peer that asked. */
  Table = 3,
  /** The table is complete. */
  TableEnd = 4,
}

export const MESSAGE_TYPE_NAMES: Readonly<Record<number, string>> = {
  [MessageType.Update]: 'update',
  [MessageType.TableRequest]: 'table_request',
  [MessageType.Table]: 'table',
  [MessageType.TableEnd]: 'table_end',
};

/** Byte offsets of the header. */
export const enum HeaderField {
  Magic = 0,
  Version = 4,
  Type = 5,
  Sender = 6,
  RecordVersion = 7,
  Incarnation = 8,
  Sequence = 16,
  Count = 20,
  RecordSize = 22,
}

/** The size of one record of each version; 0 for a message without records. */
export function recordSizeFor(version: number): number {
  if (version === 1) return RECORD_V1_SIZE;
  if (version === 2) return RECORD_V2_SIZE;
  return 0;
}

/** Records of `version` one message holds at most (22 of version 1, 12 of version 2). */
export const recordsPerMessage = (version: SyncRecordVersion): number =>
  Math.floor(RECORDS_ROOM / recordSizeFor(version));

export interface MessageHeader {
  type: MessageType;
  sender: number;
  recordVersion: 0 | SyncRecordVersion;
  incarnation: number;
  sequence: number;
  count: number;
}

/** Writes the header; the records follow at HEADER_SIZE. Returns where the MAC goes. */
export function writeMessageHeader(buf: Uint8Array, h: MessageHeader): number {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const size = recordSizeFor(h.recordVersion);
  dv.setUint32(HeaderField.Magic, SYNC_MAGIC);
  dv.setUint8(HeaderField.Version, SYNC_VERSION);
  dv.setUint8(HeaderField.Type, h.type);
  dv.setUint8(HeaderField.Sender, h.sender);
  dv.setUint8(HeaderField.RecordVersion, h.recordVersion);
  dv.setFloat64(HeaderField.Incarnation, h.incarnation);
  dv.setUint32(HeaderField.Sequence, h.sequence >>> 0);
  dv.setUint16(HeaderField.Count, h.count);
  dv.setUint16(HeaderField.RecordSize, size);
  return HEADER_SIZE + h.count * size;
}

function macOf(buf: Uint8Array, bodyLength: number, macKey: Uint8Array, receiver: number): Buffer {
  return createHmac('sha256', macKey)
    .update(buf.subarray(0, bodyLength))
    .update(Uint8Array.of(receiver))
    .digest()
    .subarray(0, MAC_SIZE);
}

/** Writes the MAC for `receiver` after the first `bodyLength` bytes; returns the message's length. */
export function sealMessage(
  buf: Uint8Array,
  bodyLength: number,
  macKey: Uint8Array,
  receiver: number,
): number {
  buf.set(macOf(buf, bodyLength, macKey, receiver), bodyLength);
  return bodyLength + MAC_SIZE;
}

/** Why a datagram is refused before its sender is known. */
export type FormatRefusal =
  | 'truncated'
  | 'bad_magic'
  | 'bad_version'
  | 'bad_type'
  | 'bad_record_size'
  | 'bad_length'
  | 'bad_incarnation';

export type DecodedHeader = MessageHeader & { recordSize: number };

/**
 * The header of a datagram whose shape is right: magic, version, a known
 * type, a record size matching its version, a length of exactly header,
 * records and MAC; records only where a type carries them, a finite
 * positive incarnation. The MAC is not checked here (`verifyMac`).
 */
export function decodeHeader(msg: Uint8Array): DecodedHeader | FormatRefusal {
  if (msg.length < HEADER_SIZE + MAC_SIZE) return 'truncated';
  const dv = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  if (dv.getUint32(HeaderField.Magic) !== SYNC_MAGIC) return 'bad_magic';
  if (dv.getUint8(HeaderField.Version) !== SYNC_VERSION) return 'bad_version';
  const type = dv.getUint8(HeaderField.Type);
  if (type < MessageType.Update || type > MessageType.TableEnd) return 'bad_type';
  const recordVersion = dv.getUint8(HeaderField.RecordVersion);
  const recordSize = dv.getUint16(HeaderField.RecordSize);
  const count = dv.getUint16(HeaderField.Count);
  if (recordVersion > 2 || recordSize !== recordSizeFor(recordVersion)) return 'bad_record_size';
  const carriesRecords = type === MessageType.Update || type === MessageType.Table;
  if (!carriesRecords && (recordVersion !== 0 || count !== 0)) return 'bad_type';
  if (recordVersion === 0 && count !== 0) return 'bad_record_size';
  if (HEADER_SIZE + count * recordSize + MAC_SIZE !== msg.length) return 'bad_length';
  const incarnation = dv.getFloat64(HeaderField.Incarnation);
  if (!Number.isFinite(incarnation) || incarnation <= 0) return 'bad_incarnation';
  return {
    type: type as MessageType,
    sender: dv.getUint8(HeaderField.Sender),
    recordVersion: recordVersion as 0 | SyncRecordVersion,
    incarnation,
    sequence: dv.getUint32(HeaderField.Sequence),
    count,
    recordSize,
  };
}

/** The MAC this node (`receiver`) expects, compared in constant time. */
export function verifyMac(msg: Uint8Array, macKey: Uint8Array, receiver: number): boolean {
  if (msg.length < HEADER_SIZE + MAC_SIZE) return false;
  const body = msg.length - MAC_SIZE;
  const want = macOf(msg, body, macKey, receiver);
  return timingSafeEqual(want, msg.subarray(body));
}
