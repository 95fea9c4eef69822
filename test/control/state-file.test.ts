/**
 * The state file a handover and the checkpoints write: what a reader
 * accepts and what it refuses (and how it says so), the atomic write, the
 * ISN secret kept in the state directory, and what a checkpoint of a large
 * table costs.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { loadIsnSecret } from '../../src/control/restart/isn-secret.js';
import {
  decodeStateFile,
  encodeStateFile,
  readStateFile,
  STATE_FILE_HEADER_SIZE,
  stateFilePath,
  StateFileError,
  writeStateFile,
  writeStateFileAsync,
} from '../../src/control/restart/state-file.js';

const dir = mkdtempSync(join(tmpdir(), 'fullnat-state-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const NOW = 1_800_000_000_000;
const table = (n = 100): { snapshot: Uint8Array; writtenAt: number; lastForwardedAt: number } => ({
  snapshot: Uint8Array.from({ length: n }, (_, i) => (i * 7) & 0xff),
  writtenAt: NOW - 500,
  lastForwardedAt: NOW - 510,
});
const DAY = 86_400_000;

describe('state file: format', () => {
  it('round-trips snapshot and times', () => {
    const t = table();
    const back = decodeStateFile(encodeStateFile(t));
    assert.deepEqual([...back.snapshot], [...t.snapshot]);
    assert.equal(back.writtenAt, t.writtenAt);
    assert.equal(back.lastForwardedAt, t.lastForwardedAt);
  });

  it('refuses a short file, a bad magic, a truncated snapshot and a flipped bit, saying which', () => {
    const good = encodeStateFile(table());
    const cases: [Uint8Array, RegExp][] = [
      [good.subarray(0, 5), /truncated: 5 bytes/],
      [Uint8Array.from(good).fill(0x41, 0, 8), /bad magic/],
      [good.subarray(0, good.length - 1), /truncated: 99 of 100 snapshot bytes/],
      [good.subarray(0, 20), /truncated or bad header/],
    ];
    const flipped = Uint8Array.from(good);
    flipped[STATE_FILE_HEADER_SIZE + 3]! ^= 1;
    cases.push([flipped, /does not match its CRC-32/]);
    for (const [bytes, why] of cases) {
      assert.throws(
        () => decodeStateFile(bytes),
        (e: unknown) => e instanceof StateFileError && why.test(e.message) && !e.newer,
      );
    }
  });

  it('refuses a file from a newer format version, and says so', () => {
    const b = encodeStateFile(table());
    new DataView(b.buffer).setUint16(8, 2);
    assert.throws(
      () => decodeStateFile(b),
      (e: unknown) =>
        e instanceof StateFileError &&
        e.newer &&
        /written by a newer fullnat \(state file format 2; this build reads up to 1\)/.test(
          e.message,
        ),
    );
  });
});

describe('state file: reading one at start', () => {
  const path = stateFilePath(dir, 'fnat9');

  it('missing: a quiet empty start', () => {
    const r = readStateFile(join(dir, 'none.conns'), NOW, DAY);
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.missing, true);
  });

  it('written atomically, mode 0600, no temporary file left; read back with its age', () => {
    const bytes = writeStateFile(path, table());
    assert.equal(bytes, STATE_FILE_HEADER_SIZE + 100);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes('.tmp.')),
      [],
    );
    const r = readStateFile(path, NOW, DAY);
    assert.ok(r.ok);
    assert.equal(r.ageMs, 500);
  });

  it('too old (beyond timeout_established), dated in the future, corrupt: refused with the reason', () => {
    writeStateFile(path, table());
    const old = readStateFile(path, NOW + 901_000, 900_000);
    assert.ok(
      !old.ok && !old.missing && /older than 900 s \(timeout_established\)/.test(old.reason),
    );
    const future = readStateFile(path, NOW - 10_000, DAY);
    assert.ok(!future.ok && /in the future/.test(future.reason));
    const bytes = readFileSync(path);
    bytes[bytes.length - 1]! ^= 0xff;
    writeFileSync(path, bytes);
    const corrupt = readStateFile(path, NOW, DAY);
    assert.ok(!corrupt.ok && !corrupt.missing && /CRC-32/.test(corrupt.reason));
    writeFileSync(path, '');
    const empty = readStateFile(path, NOW, DAY);
    assert.ok(!empty.ok && /truncated: 0 bytes/.test(empty.reason));
  });

  it('a write that fails leaves the previous file whole and no temporary file', async () => {
    writeStateFile(path, table(10));
    const blocked = join(dir, 'not-a-dir');
    writeFileSync(blocked, 'x');
    assert.throws(() => writeStateFile(join(blocked, 'x.conns'), table()));
    await assert.rejects(writeStateFileAsync(join(blocked, 'x.conns'), table()));
    const r = readStateFile(path, NOW, DAY);
    assert.ok(r.ok && r.table.snapshot.length === 10);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes('.tmp.')),
      [],
    );
  });
});

describe('ISN secret', () => {
  const sdir = join(dir, 'secret', 'nested');

  it('is created once (0600, directory 0700) and loaded the same afterwards', () => {
    const a = loadIsnSecret(sdir);
    assert.equal(a.how, 'created');
    assert.equal(statSync(a.path).mode & 0o777, 0o600);
    assert.equal(statSync(sdir).mode & 0o777, 0o700);
    const b = loadIsnSecret(sdir);
    assert.equal(b.how, 'loaded');
    assert.equal(b.secret, a.secret);
    assert.match(readFileSync(a.path, 'utf8'), /^[0-9a-f]{32}\n$/);
  });

  it('loosened permissions are tightened; a malformed file is replaced and said so', () => {
    const a = loadIsnSecret(sdir);
    chmodSync(a.path, 0o644);
    assert.equal(loadIsnSecret(sdir).secret, a.secret);
    assert.equal(statSync(a.path).mode & 0o777, 0o600);
    writeFileSync(a.path, 'not a secret\n');
    const b = loadIsnSecret(sdir);
    assert.equal(b.how, 'replaced: not 32 hex digits');
    assert.equal(loadIsnSecret(sdir).secret, b.secret);
  });

  it('an unusable directory throws (the caller runs with a random secret and says so)', () => {
    const file = join(dir, 'plain-file');
    writeFileSync(file, '');
    assert.throws(() => loadIsnSecret(join(file, 'sub')));
    assert.equal(existsSync(join(file, 'sub')), false);
  });
});
