/**
 * The connection table on its way to a successor: the engine's snapshot
 * (conn-record.ts) in a file of the state directory, `IFNAME.conns`.
 *
 * Layout, big-endian, a 40-byte header then the snapshot:
 *
 *    0  magic "FNATCONN"              8 bytes
 *    8  file format version           u16 (1)
 *   10  header size                   u16 (40)
 *   12  snapshot length               u32
 *   16  CRC-32 of the snapshot        u32
 *   20  reserved                      u32 (0)
 *   24  written at, Unix ms           f64
 *   32  last packet forwarded, Unix ms f64 (0: none)
 *
 * Written to a temporary name and renamed over the old file, so a reader
 * sees the old file or the new one, never a torn one. Nothing is fsync'ed:
 * the file guards against the process dying, not the machine (the device
 * and the connections do not survive a reboot either).
 */
import { crc32 } from 'node:zlib';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const STATE_FILE_MAGIC = 'FNATCONN';
export const STATE_FILE_VERSION = 1;
export const STATE_FILE_HEADER_SIZE = 40;

/** A table as saved: the engine's snapshot and when it was taken. */
export interface SavedTable {
  snapshot: Uint8Array;
  /** Unix ms when the snapshot was taken. */
  writtenAt: number;
  /** Unix ms of the writer's last forwarded packet, 0 if it forwarded none (for the gap). */
  lastForwardedAt: number;
}

/** A state file that cannot be used; `newer` when a later fullnat wrote it. */
export class StateFileError extends Error {
  constructor(
    message: string,
    readonly newer = false,
  ) {
    super(message);
    this.name = 'StateFileError';
  }
}

export const stateFilePath = (dir: string, iface: string): string => join(dir, `${iface}.conns`);

export function encodeStateFile(t: SavedTable): Uint8Array {
  const out = new Uint8Array(STATE_FILE_HEADER_SIZE + t.snapshot.length);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) out[i] = STATE_FILE_MAGIC.charCodeAt(i);
  dv.setUint16(8, STATE_FILE_VERSION);
  dv.setUint16(10, STATE_FILE_HEADER_SIZE);
  dv.setUint32(12, t.snapshot.length);
  dv.setUint32(16, crc32(t.snapshot));
  dv.setFloat64(24, t.writtenAt);
  dv.setFloat64(32, t.lastForwardedAt);
  out.set(t.snapshot, STATE_FILE_HEADER_SIZE);
  return out;
}

/** Checks the header and the CRC; throws StateFileError saying what is wrong. */
export function decodeStateFile(b: Uint8Array): SavedTable {
  if (b.length < 12) throw new StateFileError(`truncated: ${b.length} bytes, not even a header`);
  const magic = String.fromCharCode(...b.subarray(0, 8));
  if (magic !== STATE_FILE_MAGIC) throw new StateFileError('not a fullnat state file (bad magic)');
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const version = dv.getUint16(8);
  if (version > STATE_FILE_VERSION)
    throw new StateFileError(
      `written by a newer fullnat (state file format ${version}; this build reads up to ${STATE_FILE_VERSION})`,
      true,
    );
  if (version === 0) throw new StateFileError('bad state file format version 0');
  const headerSize = dv.getUint16(10);
  if (headerSize !== STATE_FILE_HEADER_SIZE || b.length < headerSize)
    throw new StateFileError(`truncated or bad header (${b.length} bytes, header ${headerSize})`);
  const length = dv.getUint32(12);
  if (b.length !== headerSize + length)
    throw new StateFileError(
      `truncated: ${b.length - headerSize} of ${length} snapshot bytes present`,
    );
  const snapshot = b.subarray(headerSize);
  if (crc32(snapshot) !== dv.getUint32(16))
    throw new StateFileError('corrupt: the snapshot does not match its CRC-32');
  return { snapshot, writtenAt: dv.getFloat64(24), lastForwardedAt: dv.getFloat64(32) };
}

const tempOf = (path: string): string => `${path}.tmp.${process.pid}`;

/**
 * Writes the file atomically (temporary file, rename), mode 0600, creating
 * its directory (0700) if missing. Returns the bytes written.
 */
export function writeStateFile(path: string, t: SavedTable): number {
  const bytes = encodeStateFile(t);
  const tmp = tempOf(path);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    writeFileSync(tmp, bytes, { mode: 0o600 });
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  return bytes.length;
}

/** As writeStateFile, without blocking the event loop on the write (the checkpoints). */
export async function writeStateFileAsync(path: string, t: SavedTable): Promise<number> {
  const bytes = encodeStateFile(t);
  const tmp = tempOf(path);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    await writeFile(tmp, bytes, { mode: 0o600 });
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  return bytes.length;
}

export type ReadResult =
  | { ok: true; table: SavedTable; ageMs: number }
  /** `missing`: no file (a first start); anything else is worth a warning. */
  | { ok: false; missing: boolean; reason: string };

/**
 * Reads and checks the state file. Refuses one older than `maxAgeMs`
 * (nothing in it can still be alive) or dated in the future by more than a
 * second (a clock that jumped). Never throws.
 */
export function readStateFile(path: string, nowMs: number, maxAgeMs: number): ReadResult {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { ok: false, missing: true, reason: `${path}: no saved table` };
    return { ok: false, missing: false, reason: `${path}: ${(e as Error).message}` };
  }
  let table: SavedTable;
  try {
    table = decodeStateFile(bytes);
  } catch (e) {
    return { ok: false, missing: false, reason: `${path}: ${(e as Error).message}` };
  }
  const ageMs = nowMs - table.writtenAt;
  if (!Number.isFinite(ageMs) || ageMs < -1000)
    return {
      ok: false,
      missing: false,
      reason: `${path}: dated ${new Date(table.writtenAt).toISOString()}, in the future`,
    };
  if (ageMs > maxAgeMs)
    return {
      ok: false,
      missing: false,
      reason: `${path}: ${Math.round(ageMs / 1000)} s old, older than ${Math.round(maxAgeMs / 1000)} s (timeout_established): nothing in it can be alive`,
    };
  return { ok: true, table, ageMs: Math.max(0, ageMs) };
}

/** Removes the state file (a real stop); a missing one is fine. */
export function removeStateFile(path: string): void {
  rmSync(path, { force: true });
}
