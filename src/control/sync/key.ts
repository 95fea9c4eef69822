/**
 * The fleet's shared secret (`key_file`) and the keys derived from it. The
 * file is read raw; surrounding whitespace goes, so a key written with
 * `openssl rand -base64 32 > sync.key` and one written by `head -c 32
 * /dev/urandom` both work. Nothing here ever puts key bytes in a message.
 */
import { createHmac } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

import { MIN_SYNC_KEY_BYTES } from '../rules.js';

/** A key file cannot be used; `reason` names the file, never its content. */
export class SyncKeyError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'SyncKeyError';
  }
}

/** A key file is a few dozen bytes; anything this large is the wrong file. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

const isSpace = (b: number): boolean => b === 0x20 || (b >= 0x09 && b <= 0x0d);

/** The file's bytes without leading and trailing whitespace. */
export function trimKey(raw: Uint8Array): Buffer {
  let start = 0;
  let end = raw.length;
  while (start < end && isSpace(raw[start]!)) start++;
  while (end > start && isSpace(raw[end - 1]!)) end--;
  return Buffer.from(raw.subarray(start, end));
}

const errCode = (e: unknown): string =>
  (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e));

/** Reads and checks the key file; throws SyncKeyError (missing, unreadable, too large or too short). */
export function readSyncKey(path: string): Buffer {
  let raw: Buffer;
  try {
    const size = statSync(path).size;
    if (size > MAX_KEY_FILE_BYTES)
      throw new SyncKeyError(
        `key_file ${path} holds ${size} bytes: not a key file (at most ${MAX_KEY_FILE_BYTES})`,
      );
    raw = readFileSync(path);
  } catch (e) {
    if (e instanceof SyncKeyError) throw e;
    throw new SyncKeyError(`cannot read key_file ${path}: ${errCode(e)}`);
  }
  const key = trimKey(raw);
  if (key.length < MIN_SYNC_KEY_BYTES)
    throw new SyncKeyError(
      `key_file ${path} holds ${key.length} bytes (whitespace aside); the fleet's key needs at least ${MIN_SYNC_KEY_BYTES}`,
    );
  return key;
}

/** The labels keep each derived key to its one use. */
const MAC_LABEL = 'fullnat sync mac';
const FLEET_LABEL = 'fullnat synproxy';

export interface SyncKeys {
  /** Authenticates every sync message. */
  macKey: Buffer;
  /** SYNPROXY's cookie keys are derived from it on every node alike (Engine.enableSync's `fleetKey`). */
  fleetKey: Buffer;
}

export function deriveSyncKeys(key: Uint8Array): SyncKeys {
  return {
    macKey: createHmac('sha256', key).update(MAC_LABEL).digest(),
    fleetKey: createHmac('sha256', key).update(FLEET_LABEL).digest(),
  };
}
