import { execFileSync } from 'node:child_process';

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
