import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LINKTYPE_RAW, PcapWriter } from '../../src/wire/pcap.js';

/**
 * tshark as an independent decoder: the listed fields of every frame in
 * `file` (after the display `filter`, if any), with IP, TCP and UDP
 * checksum checks on and absolute sequence numbers. Several occurrences of
 * a field in one frame are joined with ','. `home` is a private HOME, which
 * keeps the user's Wireshark preferences out of the result.
 */
export function tsharkFields(
  file: string,
  fields: readonly string[],
  opts: { home: string; filter?: string; timeoutMs?: number },
): string[][] {
  const out = execFileSync(
    'tshark',
    [
      '-n',
      '-r',
      file,
      '-o',
      'ip.check_checksum:TRUE',
      '-o',
      'tcp.check_checksum:TRUE',
      '-o',
      'udp.check_checksum:TRUE',
      '-o',
      'tcp.relative_sequence_numbers:FALSE',
      '-o',
      'tcp.desegment_tcp_streams:FALSE',
      ...(opts.filter === undefined ? [] : ['-Y', opts.filter]),
      '-T',
      'fields',
      '-E',
      'separator=|',
      '-E',
      'occurrence=a',
      '-E',
      'aggregator=,',
      ...fields.flatMap((f) => ['-e', f]),
    ],
    {
      encoding: 'utf8',
      timeout: opts.timeoutMs ?? 30_000,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HOME: opts.home, XDG_CONFIG_HOME: opts.home },
    },
  );
  return out
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => l.split('|'));
}

/** Whether tshark runs here; the reason doubles as a test's skip message. */
export function probeTshark(): { ok: true } | { ok: false; reason: string } {
  const r = spawnSync('tshark', ['--version'], { encoding: 'utf8', timeout: 20_000 });
  if (r.error) return { ok: false, reason: `tshark not available: ${r.error.message}` };
  if (r.status !== 0) return { ok: false, reason: `tshark --version exited ${r.status}` };
  return { ok: true };
}

/**
 * Raw IP packets through tshark: writes them to a pcap in a private
 * directory and returns one record per frame, field name → value (several
 * occurrences joined with ',').
 */
export function tsharkDecode(
  packets: readonly Uint8Array[],
  fields: readonly string[],
): Record<string, string>[] {
  const pcap = new PcapWriter(LINKTYPE_RAW);
  packets.forEach((b, i) => pcap.add(1_700_000_000_000_000 + i, b));
  const dir = mkdtempSync(join(tmpdir(), 'fullnat-tshark-'));
  try {
    const file = join(dir, 'packets.pcap');
    writeFileSync(file, pcap.toBytes());
    return tsharkFields(file, fields, { home: dir, timeoutMs: 20_000 }).map((cols) =>
      Object.fromEntries(fields.map((f, i) => [f, cols[i] ?? ''])),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
