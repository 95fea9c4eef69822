import { endpointToString, Ipv6Address } from '../wire/address.js';
import { PROXY_V1_MAX_LENGTH } from '../wire/proxy-protocol.js';
import { CF_FDATA_KNOWN, CF_SP_WIN_IN, CF_SP_WIN_OUT, CF_SYNPROXY } from './conn-table.js';
import { TCP_STATE_NAMES, TcpState, type TcpStateName } from './tcp-state.js';

/**
 * The connection record: one connection as a fixed-size, versioned,
 * big-endian byte string, and the snapshot of a whole table (a header, then
 * records). Written for the restart handover and meant for every other place
 * a connection leaves the process (fleet sync, IPv6 records of their own
 * size). Nothing in it is an index of this process (services, real servers
 * and LIPs are named by address and port), so a record means the same in a
 * process configured in another order. docs/ARCHITECTURE.md has the layout
 * byte by byte; the offsets here are the single source of it.
 */

/** Thrown for a snapshot or record that cannot be read; the message says what is wrong and where. */
export class ConnRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConnRecordError';
  }
}

/** "FNCT": fullnat connection table. */
export const SNAPSHOT_MAGIC = 0x464e4354;
/** Version 1: IPv4 records; what a table without IPv6 connections is written as (older builds read it). */
export const SNAPSHOT_VERSION = 1;
/** Version 2: records with 16-byte address slots and both families, for a table with IPv6 connections. */
export const SNAPSHOT_VERSION_V2 = 2;
export const SNAPSHOT_HEADER_SIZE = 40;
/** Bytes per IPv4 TCP connection in format version 1. */
export const RECORD_V1_SIZE = 60;
/** Bytes per connection (either family) in format version 2. */
export const RECORD_V2_SIZE = 108;

/** Address family byte of a record: IPv4 in version 1; 6 is kept for IPv6 records. */
export const FAMILY_IPV4 = 4;
export const FAMILY_IPV6 = 6;
/** IP protocol numbers, as the record's protocol byte carries them. */
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

/** Byte offsets of the snapshot header. */
export const enum HeaderField {
  Magic = 0, // u32
  Version = 4, // u16
  HeaderSize = 6, // u16
  RecordSize = 8, // u16
  Reserved = 10, // u16, zero
  Count = 12, // u32
  EngineClockMs = 16, // f64
  IsnClockOriginMs = 24, // f64
  IsnSecret = 32, // u32
  PendingSkipped = 36, // u32
}

/** Byte offsets of a version-1 record (IPv4). */
export enum RecordField {
  Family = 0, // u8
  Protocol = 1, // u8
  State = 2, // u8, STATE_CODES
  Flags = 3, // u8, RF_*
  Cip = 4, // u32
  Cport = 8, // u16
  Vport = 10, // u16
  Vip = 12, // u32
  Lip = 16, // u32
  Lport = 20, // u16
  Rport = 22, // u16
  Rip = 24, // u32
  SeqDelta = 28, // u32
  LbIsn = 32, // u32
  FdataSeq = 36, // u32
  ClientNxt = 40, // u32
  RsNxt = 44, // u32
  AckDelta = 48, // u32
  SpData = 52, // u16
  Shift = 54, // u8; a UDP record's UOA trail count (see UDP_STATE_CODE)
  Reserved = 55, // u8, zero
  RemainingMs = 56, // u32
}

/**
 * Byte offsets of a version-2 record: any family. Each address has a
 * 16-byte slot; an IPv4 address takes its last 4 bytes, the 12 before them
 * zero. The client family covers CIP and VIP, the reply family LIP and RIP:
 * 6/6 is IPv6, 6/4 is FNAT64, 4/4 IPv4 (4/6 does not exist).
 */
export enum RecordV2Field {
  Family = 0, // u8, the client tuple's (CIP, VIP)
  Protocol = 1, // u8
  State = 2, // u8, STATE_CODES
  Flags = 3, // u8, RF_*
  ReplyFamily = 4, // u8, the reply tuple's (LIP, RIP)
  Shift = 5, // u8; a UDP record's UOA trail count (see UDP_STATE_CODE)
  SpData = 6, // u16
  Cip = 8, // 16 bytes
  Vip = 24, // 16 bytes
  Lip = 40, // 16 bytes
  Rip = 56, // 16 bytes
  Cport = 72, // u16
  Vport = 74, // u16
  Lport = 76, // u16
  Rport = 78, // u16
  SeqDelta = 80, // u32
  LbIsn = 84, // u32
  FdataSeq = 88, // u32
  ClientNxt = 92, // u32
  RsNxt = 96, // u32
  AckDelta = 100, // u32
  RemainingMs = 104, // u32
}

// Record flag bits: the format's own, so renumbering CF_* never changes a record.
export const RF_FDATA_KNOWN = 1;
export const RF_SYNPROXY = 2;
export const RF_SP_WIN_OUT = 4;
export const RF_SP_WIN_IN = 8;
/** A NAT (masquerading) service's connection: no LIP, the client's own address and port in its reply tuple. */
export const RF_NAT = 16;
const RF_ALL = RF_FDATA_KNOWN | RF_SYNPROXY | RF_SP_WIN_OUT | RF_SP_WIN_IN | RF_NAT;

/**
 * State codes in a record: IPVS's numbering (ip_vs_proto_tcp.c), kept apart
 * from TcpState's so the engine may renumber or add states without changing
 * the format. A state the engine gains needs a code here (a test checks).
 */
export const STATE_CODES: Readonly<Record<Exclude<TcpStateName, 'NONE'>, number>> = {
  ESTABLISHED: 1,
  SYN_SENT: 2,
  SYN_RECV: 3,
  FIN_WAIT: 4,
  TIME_WAIT: 5,
  CLOSE: 6,
  CLOSE_WAIT: 7,
  LAST_ACK: 8,
};

/** spData uses 14 bits (cookie data bits 0-9, RS wscale bits 10-13). */
const SP_DATA_LIMIT = 1 << 14;
/** Longest deadline a record may carry: the engine clock and deadlines are u32 ms. */
export const MAX_REMAINING_MS = 0x7fffffff;

const stateToCode = new Uint8Array(TCP_STATE_NAMES.length);
const codeToState = new Int16Array(256).fill(-1);
TCP_STATE_NAMES.forEach((name, state) => {
  if (name === 'NONE') return;
  const code = (STATE_CODES as Record<string, number | undefined>)[name];
  if (code === undefined) return;
  stateToCode[state] = code;
  codeToState[code] = state;
});

/** The record's state code of an engine state; 0 when the format has none for it. */
export function stateCode(s: TcpState): number {
  return stateToCode[s] ?? 0;
}

/**
 * A UDP record (protocol 17) in either version: no state (its byte 0), no
 * flags, the TCP-only fields (sequence deltas and numbers, SYNPROXY's)
 * zero, and in the byte TCP's PROXY shift takes, how many of the flow's
 * datagrams already carried a UOA — both say how far the client address
 * has been conveyed to the RS, and no record has both.
 */
export const UDP_STATE_CODE = 0;

/** The engine state of a record's state code; -1 when unknown. */
export function stateOfCode(code: number): number {
  return codeToState[code] ?? -1;
}

/** CF_* bits of a table entry → the record's RF_* bits (in-use and pending bits left out). */
export function recordFlags(cf: number): number {
  return (
    ((cf & CF_FDATA_KNOWN) !== 0 ? RF_FDATA_KNOWN : 0) |
    ((cf & CF_SYNPROXY) !== 0 ? RF_SYNPROXY : 0) |
    ((cf & CF_SP_WIN_OUT) !== 0 ? RF_SP_WIN_OUT : 0) |
    ((cf & CF_SP_WIN_IN) !== 0 ? RF_SP_WIN_IN : 0)
  );
}

/** RF_* bits → CF_* bits (without CF_IN_USE, which the table sets). */
export function tableFlags(rf: number): number {
  return (
    ((rf & RF_FDATA_KNOWN) !== 0 ? CF_FDATA_KNOWN : 0) |
    ((rf & RF_SYNPROXY) !== 0 ? CF_SYNPROXY : 0) |
    ((rf & RF_SP_WIN_OUT) !== 0 ? CF_SP_WIN_OUT : 0) |
    ((rf & RF_SP_WIN_IN) !== 0 ? CF_SP_WIN_IN : 0)
  );
}

/** A snapshot's header, decoded. */
export interface SnapshotHeader {
  version: number;
  recordSize: number;
  count: number;
  /** The exporting engine's clock at export, ms. */
  engineClockMs: number;
  /** Unix ms at the exporting engine's time 0: origin + clock is the wall time of the export. */
  isnClockOriginMs: number;
  /** The key the records' LB→RS ISNs were made with. */
  isnSecret: number;
  /** SYNPROXY connections still opening at export, left out (see docs/ARCHITECTURE.md). */
  pendingSkipped: number;
}

/**
 * One connection as a record holds it; `state` is a TcpState. An IPv4
 * address is the number field (cip, vip, lip, rip); an IPv6 one is in the
 * matching 16-byte `*6` array, its number field 0.
 */
export interface ConnRecord {
  /** Of the client tuple (CIP, VIP). */
  family: number;
  /** Of the reply tuple (LIP, RIP): the client's, or 4 under FNAT64. */
  replyFamily: number;
  cip6: Uint8Array;
  vip6: Uint8Array;
  lip6: Uint8Array;
  rip6: Uint8Array;
  protocol: number;
  state: number;
  /** RF_* bits. */
  flags: number;
  cip: number;
  cport: number;
  vip: number;
  vport: number;
  lip: number;
  lport: number;
  rip: number;
  rport: number;
  seqDelta: number;
  lbIsn: number;
  fdataSeq: number;
  clientNxt: number;
  rsNxt: number;
  ackDelta: number;
  spData: number;
  shift: number;
  /** UDP: datagrams of the flow that carried a UOA (0 in a TCP record). */
  uoaSent: number;
  remainingMs: number;
}

export function emptyRecord(): ConnRecord {
  return {
    family: FAMILY_IPV4,
    replyFamily: FAMILY_IPV4,
    cip6: new Uint8Array(16),
    vip6: new Uint8Array(16),
    lip6: new Uint8Array(16),
    rip6: new Uint8Array(16),
    protocol: PROTO_TCP,
    state: 0,
    flags: 0,
    cip: 0,
    cport: 0,
    vip: 0,
    vport: 0,
    lip: 0,
    lport: 0,
    rip: 0,
    rport: 0,
    seqDelta: 0,
    lbIsn: 0,
    fdataSeq: 0,
    clientNxt: 0,
    rsNxt: 0,
    ackDelta: 0,
    spData: 0,
    shift: 0,
    uoaSent: 0,
    remainingMs: 0,
  };
}

export function writeHeader(dv: DataView, h: SnapshotHeader): void {
  dv.setUint32(HeaderField.Magic, SNAPSHOT_MAGIC);
  dv.setUint16(HeaderField.Version, h.version);
  dv.setUint16(HeaderField.HeaderSize, SNAPSHOT_HEADER_SIZE);
  dv.setUint16(HeaderField.RecordSize, h.recordSize);
  dv.setUint16(HeaderField.Reserved, 0);
  dv.setUint32(HeaderField.Count, h.count);
  dv.setFloat64(HeaderField.EngineClockMs, h.engineClockMs);
  dv.setFloat64(HeaderField.IsnClockOriginMs, h.isnClockOriginMs);
  dv.setUint32(HeaderField.IsnSecret, h.isnSecret >>> 0);
  dv.setUint32(HeaderField.PendingSkipped, h.pendingSkipped);
}

function viewOf(snapshot: Uint8Array): DataView {
  return new DataView(snapshot.buffer, snapshot.byteOffset, snapshot.byteLength);
}

/**
 * Reads and checks a snapshot's header, and that its length is exactly
 * header + count records; throws ConnRecordError otherwise.
 */
export function readSnapshotHeader(snapshot: Uint8Array): SnapshotHeader {
  if (!(snapshot instanceof Uint8Array)) throw new ConnRecordError('snapshot is not a byte array');
  const len = snapshot.byteLength;
  if (len < SNAPSHOT_HEADER_SIZE) {
    throw new ConnRecordError(
      `snapshot truncated: ${len} bytes, the header alone is ${SNAPSHOT_HEADER_SIZE}`,
    );
  }
  const dv = viewOf(snapshot);
  const magic = dv.getUint32(HeaderField.Magic);
  if (magic !== SNAPSHOT_MAGIC) {
    throw new ConnRecordError(
      `not a connection snapshot: magic 0x${magic.toString(16).padStart(8, '0')}, expected 0x${SNAPSHOT_MAGIC.toString(16)} ("FNCT")`,
    );
  }
  const version = dv.getUint16(HeaderField.Version);
  if (version !== SNAPSHOT_VERSION && version !== SNAPSHOT_VERSION_V2) {
    throw new ConnRecordError(
      `unknown snapshot format version ${version} (this build reads versions ${SNAPSHOT_VERSION} and ${SNAPSHOT_VERSION_V2})`,
    );
  }
  const headerSize = dv.getUint16(HeaderField.HeaderSize);
  if (headerSize !== SNAPSHOT_HEADER_SIZE) {
    throw new ConnRecordError(
      `header size ${headerSize}, version ${version} headers are ${SNAPSHOT_HEADER_SIZE} bytes`,
    );
  }
  const recordSize = dv.getUint16(HeaderField.RecordSize);
  const wantSize = recordSizeOf(version);
  if (recordSize !== wantSize) {
    throw new ConnRecordError(
      `record size ${recordSize}, version ${version} records are ${wantSize} bytes`,
    );
  }
  if (dv.getUint16(HeaderField.Reserved) !== 0)
    throw new ConnRecordError('header reserved field (byte 10) is not zero');
  const count = dv.getUint32(HeaderField.Count);
  const need = SNAPSHOT_HEADER_SIZE + count * recordSize;
  if (need > len) {
    throw new ConnRecordError(
      `snapshot truncated: ${count} records need ${need} bytes, it has ${len}`,
    );
  }
  if (need < len) {
    throw new ConnRecordError(
      `snapshot has ${len - need} bytes after its ${count} records (${need} bytes expected)`,
    );
  }
  const engineClockMs = dv.getFloat64(HeaderField.EngineClockMs);
  if (!(engineClockMs >= 0 && engineClockMs < 2 ** 32)) {
    throw new ConnRecordError(`engine clock ${engineClockMs} ms out of range [0, 2^32)`);
  }
  const isnClockOriginMs = dv.getFloat64(HeaderField.IsnClockOriginMs);
  if (!(isnClockOriginMs >= 0 && isnClockOriginMs <= Number.MAX_SAFE_INTEGER / 1000)) {
    throw new ConnRecordError(`ISN clock origin ${isnClockOriginMs} ms out of range`);
  }
  return {
    version,
    recordSize,
    count,
    engineClockMs,
    isnClockOriginMs,
    isnSecret: dv.getUint32(HeaderField.IsnSecret),
    pendingSkipped: dv.getUint32(HeaderField.PendingSkipped),
  };
}

/**
 * How long ago a snapshot was taken, by the wall clock: `nowUnixMs` minus
 * the exporter's origin + clock. What `importConnections` wants as
 * `elapsedMs` for a checkpoint read back after a crash. 0 when the clock
 * went backwards; undefined when the exporter had no wall-clock origin.
 */
export function snapshotAgeMs(h: SnapshotHeader, nowUnixMs: number): number | undefined {
  if (h.isnClockOriginMs === 0) return undefined;
  const age = nowUnixMs - (h.isnClockOriginMs + h.engineClockMs);
  return age > 0 ? age : 0;
}

/** The record size of a format version (1 or 2). */
export function recordSizeOf(version: number): number {
  return version === SNAPSHOT_VERSION_V2 ? RECORD_V2_SIZE : RECORD_V1_SIZE;
}

/** Byte offset of record k in a snapshot of records of `size` bytes (version 1's by default). */
export function recordOffset(k: number, size: number = RECORD_V1_SIZE): number {
  return SNAPSHOT_HEADER_SIZE + k * size;
}

/**
 * The offsets of the fields both record versions have (each version's
 * field enum is one), so one writer and one reader serve both; addresses
 * and families differ and stay with each version's own functions.
 */
interface SharedFields {
  readonly Family: number;
  readonly Protocol: number;
  readonly State: number;
  readonly Flags: number;
  readonly Cport: number;
  readonly Vport: number;
  readonly Lport: number;
  readonly Rport: number;
  readonly SeqDelta: number;
  readonly LbIsn: number;
  readonly FdataSeq: number;
  readonly ClientNxt: number;
  readonly RsNxt: number;
  readonly AckDelta: number;
  readonly SpData: number;
  readonly Shift: number;
  /** A zero byte; version 2 has none. */
  readonly Reserved?: number;
  readonly RemainingMs: number;
}

/** Writes the fields every version has, at the offsets F names from `off`. */
function writeSharedFields(dv: DataView, off: number, r: ConnRecord, F: SharedFields): void {
  dv.setUint8(off + F.Family, r.family);
  dv.setUint8(off + F.Protocol, r.protocol);
  const udp = r.protocol === PROTO_UDP;
  dv.setUint8(off + F.State, udp ? UDP_STATE_CODE : stateCode(r.state));
  dv.setUint8(off + F.Flags, r.flags);
  dv.setUint16(off + F.Cport, r.cport);
  dv.setUint16(off + F.Vport, r.vport);
  dv.setUint16(off + F.Lport, r.lport);
  dv.setUint16(off + F.Rport, r.rport);
  dv.setUint32(off + F.SeqDelta, r.seqDelta >>> 0);
  dv.setUint32(off + F.LbIsn, r.lbIsn >>> 0);
  dv.setUint32(off + F.FdataSeq, r.fdataSeq >>> 0);
  dv.setUint32(off + F.ClientNxt, r.clientNxt >>> 0);
  dv.setUint32(off + F.RsNxt, r.rsNxt >>> 0);
  dv.setUint32(off + F.AckDelta, r.ackDelta >>> 0);
  dv.setUint16(off + F.SpData, r.spData);
  if (udp) dv.setUint8(off + F.Shift, r.uoaSent);
  else dv.setUint8(off + F.Shift, r.shift);
  if (F.Reserved !== undefined) dv.setUint8(off + F.Reserved, 0);
  dv.setUint32(off + F.RemainingMs, r.remainingMs);
}

/**
 * Reads and checks protocol, state and flags (what a record says before
 * its addresses) into `into`.
 */
function readHeadFields(
  dv: DataView,
  off: number,
  k: number,
  F: SharedFields,
  records: string,
  into: ConnRecord,
): void {
  const protocol = dv.getUint8(off + F.Protocol);
  if (protocol !== PROTO_TCP && protocol !== PROTO_UDP)
    badRecord(k, off, `protocol ${protocol}, ${records} are TCP (6) or UDP (17)`);
  const code = dv.getUint8(off + F.State);
  const flags = dv.getUint8(off + F.Flags);
  if (protocol === PROTO_UDP) {
    if (code !== UDP_STATE_CODE)
      badRecord(k, off, `state code ${code} in a UDP record (UDP flows have none: 0)`);
    if (flags !== 0) badRecord(k, off, `flags 0x${flags.toString(16)} in a UDP record (none)`);
    into.protocol = protocol;
    into.state = TcpState.None;
    into.flags = 0;
    return;
  }
  const state = stateOfCode(code);
  if (state < 0)
    badRecord(k, off, `state code ${code} is none of ${Object.values(STATE_CODES).join(', ')}`);
  if ((flags & ~RF_ALL) !== 0) badRecord(k, off, `flags 0x${flags.toString(16)} has unknown bits`);
  if ((flags & RF_SYNPROXY) === 0 && (flags & (RF_SP_WIN_IN | RF_SP_WIN_OUT)) !== 0)
    badRecord(k, off, 'SYNPROXY window flags without the SYNPROXY flag');
  if ((flags & (RF_NAT | RF_SYNPROXY)) === (RF_NAT | RF_SYNPROXY))
    badRecord(k, off, 'NAT and SYNPROXY flags together (a NAT service has no SYNPROXY)');
  into.protocol = protocol;
  into.state = state;
  into.flags = flags;
}

/**
 * Reads and checks what a record says after its addresses (ports,
 * sequence state, SYNPROXY data, PROXY shift, deadline) into `into`, whose
 * flags `readHeadFields` has read.
 */
function readTailFields(
  dv: DataView,
  off: number,
  k: number,
  F: SharedFields,
  into: ConnRecord,
): void {
  const vport = dv.getUint16(off + F.Vport);
  const lport = dv.getUint16(off + F.Lport);
  const rport = dv.getUint16(off + F.Rport);
  if (vport === 0 || lport === 0 || rport === 0)
    badRecord(k, off, 'a port (vport, lport or rport) is 0');
  const ackDelta = dv.getUint32(off + F.AckDelta);
  const spData = dv.getUint16(off + F.SpData);
  if (spData >= SP_DATA_LIMIT)
    badRecord(k, off, `SYNPROXY data 0x${spData.toString(16)} beyond 14 bits`);
  if ((into.flags & RF_SYNPROXY) === 0 && (ackDelta !== 0 || spData !== 0))
    badRecord(k, off, 'SYNPROXY ackDelta/spData set without the SYNPROXY flag');
  const udp = into.protocol === PROTO_UDP;
  // A UDP record's Shift byte is its UOA trail count: any byte is a count (MAX_UOA_TRAIL is 255).
  const shift = udp ? 0 : dv.getUint8(off + F.Shift);
  if (shift > PROXY_V1_MAX_LENGTH)
    badRecord(
      k,
      off,
      `PROXY header shift ${shift} beyond the longest header (${PROXY_V1_MAX_LENGTH})`,
    );
  if (F.Reserved !== undefined && dv.getUint8(off + F.Reserved) !== 0)
    badRecord(k, off, `reserved byte ${F.Reserved} is not zero`);
  const remainingMs = dv.getUint32(off + F.RemainingMs);
  if (remainingMs > MAX_REMAINING_MS)
    badRecord(k, off, `remaining timeout ${remainingMs} ms beyond ${MAX_REMAINING_MS}`);
  if (
    udp &&
    (dv.getUint32(off + F.SeqDelta) |
      dv.getUint32(off + F.LbIsn) |
      dv.getUint32(off + F.FdataSeq) |
      dv.getUint32(off + F.ClientNxt) |
      dv.getUint32(off + F.RsNxt)) !==
      0
  )
    badRecord(k, off, 'TCP sequence fields set in a UDP record');
  into.uoaSent = udp ? dv.getUint8(off + F.Shift) : 0;
  into.cport = dv.getUint16(off + F.Cport);
  into.vport = vport;
  into.lport = lport;
  into.rport = rport;
  into.seqDelta = dv.getUint32(off + F.SeqDelta);
  into.lbIsn = dv.getUint32(off + F.LbIsn);
  into.fdataSeq = dv.getUint32(off + F.FdataSeq);
  into.clientNxt = dv.getUint32(off + F.ClientNxt);
  into.rsNxt = dv.getUint32(off + F.RsNxt);
  into.ackDelta = ackDelta;
  into.spData = spData;
  into.shift = shift;
  into.remainingMs = remainingMs;
}

/** Writes r as the record at byte `off`. */
export function writeRecord(dv: DataView, off: number, r: ConnRecord): void {
  writeSharedFields(dv, off, r, RecordField);
  dv.setUint32(off + RecordField.Cip, r.cip >>> 0);
  dv.setUint32(off + RecordField.Vip, r.vip >>> 0);
  dv.setUint32(off + RecordField.Lip, r.lip >>> 0);
  dv.setUint32(off + RecordField.Rip, r.rip >>> 0);
}

/**
 * Reads the record at byte `off` into `into`, checking every field; throws
 * ConnRecordError naming record k and the field. Nothing is half-read: on a
 * throw `into` may hold some fields, but the caller enters nothing.
 */
export function readRecord(dv: DataView, off: number, k: number, into: ConnRecord): ConnRecord {
  const family = dv.getUint8(off + RecordField.Family);
  if (family !== FAMILY_IPV4)
    badRecord(k, off, `address family ${family}, version 1 records are IPv4 (4)`);
  readHeadFields(dv, off, k, RecordField, 'version 1 records', into);
  const cip = dv.getUint32(off + RecordField.Cip);
  const vip = dv.getUint32(off + RecordField.Vip);
  const lip = dv.getUint32(off + RecordField.Lip);
  const rip = dv.getUint32(off + RecordField.Rip);
  if (vip === 0 || lip === 0 || rip === 0)
    badRecord(k, off, 'an address (VIP, LIP or RIP) is 0.0.0.0');
  readTailFields(dv, off, k, RecordField, into);
  into.family = family;
  into.cip = cip;
  into.vip = vip;
  into.lip = lip;
  into.rip = rip;
  return into;
}

/**
 * Writes r as the version-2 record at byte `off`, through `dv` alone (no
 * view made: fleet sync writes removal records on the data path).
 */
export function writeRecordV2(dv: DataView, off: number, r: ConnRecord): void {
  for (let i = 0; i < RECORD_V2_SIZE; i += 4) dv.setUint32(off + i, 0);
  writeSharedFields(dv, off, r, RecordV2Field);
  dv.setUint8(off + RecordV2Field.ReplyFamily, r.replyFamily);
  const v6c = r.family === FAMILY_IPV6;
  const v6r = r.replyFamily === FAMILY_IPV6;
  putAddress(dv, off + RecordV2Field.Cip, v6c, r.cip, r.cip6);
  putAddress(dv, off + RecordV2Field.Vip, v6c, r.vip, r.vip6);
  putAddress(dv, off + RecordV2Field.Lip, v6r, r.lip, r.lip6);
  putAddress(dv, off + RecordV2Field.Rip, v6r, r.rip, r.rip6);
}

/** An address into its 16-byte slot at byte `at`: IPv6 whole, IPv4 in the last 4 bytes (the slot is zeroed). */
function putAddress(dv: DataView, at: number, v6: boolean, v4: number, v6bytes: Uint8Array): void {
  if (v6) for (let i = 0; i < 16; i++) dv.setUint8(at + i, v6bytes[i]!);
  else dv.setUint32(at + 12, v4 >>> 0);
}

/**
 * Reads the version-2 record at byte `off` into `into`, checking every
 * field as `readRecord` does, plus the families (4/4, 6/6 or 6/4) and the
 * zero bytes in front of each IPv4 address.
 */
export function readRecordV2(dv: DataView, off: number, k: number, into: ConnRecord): ConnRecord {
  const rec = new Uint8Array(dv.buffer, dv.byteOffset + off, RECORD_V2_SIZE);
  const family = dv.getUint8(off + RecordV2Field.Family);
  const replyFamily = dv.getUint8(off + RecordV2Field.ReplyFamily);
  if (family !== FAMILY_IPV4 && family !== FAMILY_IPV6)
    badRecord(k, off, `address family ${family}, neither IPv4 (4) nor IPv6 (6)`);
  if (replyFamily !== FAMILY_IPV4 && replyFamily !== FAMILY_IPV6)
    badRecord(k, off, `reply address family ${replyFamily}, neither IPv4 (4) nor IPv6 (6)`);
  if (family === FAMILY_IPV4 && replyFamily === FAMILY_IPV6)
    badRecord(k, off, 'an IPv4 client with an IPv6 reply tuple (FNAT46 does not exist)');
  readHeadFields(dv, off, k, RecordV2Field, 'records', into);
  const v6c = family === FAMILY_IPV6;
  const v6r = replyFamily === FAMILY_IPV6;
  const cip = getAddress(dv, rec, off, k, RecordV2Field.Cip, v6c, into.cip6, 'CIP', true);
  const vip = getAddress(dv, rec, off, k, RecordV2Field.Vip, v6c, into.vip6, 'VIP', false);
  const lip = getAddress(dv, rec, off, k, RecordV2Field.Lip, v6r, into.lip6, 'LIP', false);
  const rip = getAddress(dv, rec, off, k, RecordV2Field.Rip, v6r, into.rip6, 'RIP', false);
  readTailFields(dv, off, k, RecordV2Field, into);
  into.family = family;
  into.replyFamily = replyFamily;
  into.cip = cip;
  into.vip = vip;
  into.lip = lip;
  into.rip = rip;
  return into;
}

/**
 * One address slot of a version-2 record: IPv6 copied into `out` (0
 * returned), IPv4 returned (its 12 leading bytes must be zero). An address
 * of all zeros is refused, except a client's (IPv4 records allow 0.0.0.0 as
 * version 1 does).
 */
function getAddress(
  dv: DataView,
  rec: Uint8Array,
  off: number,
  k: number,
  at: number,
  v6: boolean,
  out: Uint8Array,
  name: string,
  zeroOk: boolean,
): number {
  if (v6) {
    let any = 0;
    for (let i = 0; i < 16; i++) {
      out[i] = rec[at + i]!;
      any |= rec[at + i]!;
    }
    if (any === 0 && !zeroOk) badRecord(k, off, `${name} is ::`);
    return 0;
  }
  out.fill(0);
  for (let i = 0; i < 12; i++)
    if (rec[at + i] !== 0)
      badRecord(k, off, `${name} is IPv4 but its slot's first 12 bytes are not 0`);
  const v4 = dv.getUint32(off + at + 12);
  if (v4 === 0 && !zeroOk) badRecord(k, off, `${name} is 0.0.0.0`);
  return v4;
}

function badRecord(k: number, off: number, what: string): never {
  throw new ConnRecordError(`record ${k} (byte ${off}): ${what}`);
}

/** A whole snapshot decoded (tests, tools, fleet sync): header and every record, all checked. */
export function decodeSnapshot(snapshot: Uint8Array): {
  header: SnapshotHeader;
  records: ConnRecord[];
} {
  const header = readSnapshotHeader(snapshot);
  const dv = viewOf(snapshot);
  const records: ConnRecord[] = [];
  for (let k = 0; k < header.count; k++) records.push(readAnyRecord(dv, header, k, emptyRecord()));
  return { header, records };
}

/** Record k of a snapshot with header h, read by its version's reader. */
export function readAnyRecord(
  dv: DataView,
  h: SnapshotHeader,
  k: number,
  into: ConnRecord,
): ConnRecord {
  if (h.version === SNAPSHOT_VERSION_V2)
    return readRecordV2(dv, recordOffset(k, RECORD_V2_SIZE), k, into);
  into.replyFamily = FAMILY_IPV4;
  return readRecord(dv, recordOffset(k), k, into);
}

/** Checks every record of a snapshot whose header is read; throws on the first bad one. */
export function checkRecords(snapshot: Uint8Array, h: SnapshotHeader): void {
  const dv = viewOf(snapshot);
  const scratch = emptyRecord();
  for (let k = 0; k < h.count; k++) readAnyRecord(dv, h, k, scratch);
}

/** A DataView over the whole of `snapshot`. */
export function snapshotView(snapshot: Uint8Array): DataView {
  return viewOf(snapshot);
}

/** "CIP:cport → VIP:vport" of a record, for messages. */
export function describeRecord(r: ConnRecord): string {
  const v6 = r.family === FAMILY_IPV6;
  const cip = v6 ? Ipv6Address.fromBytes(r.cip6) : r.cip;
  const vip = v6 ? Ipv6Address.fromBytes(r.vip6) : r.vip;
  return `${endpointToString(cip, r.cport)} → ${endpointToString(vip, r.vport)}`;
}
