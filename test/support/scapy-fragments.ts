import { spawnSync } from 'node:child_process';
import { SCAPY_PYTHON } from './scapy.js';

/**
 * Scapy as an independent implementation of IP fragmentation and
 * reassembly. Each job is one of:
 * - `defrag4` / `defrag6`: `packets` (hex) through `defragment` /
 *   `defragment6`; the answer is the datagrams rebuilt (hex);
 * - `frag4`: `packet` through `fragment(IP(...), fragsize=size)`;
 * - `frag6`: `packet` (with an empty Fragment header where it goes) through
 *   `fragment6(IPv6(...), size)`; the answer is the fragments (hex).
 */
export type ScapyFragmentJob =
  | { op: 'defrag4' | 'defrag6'; packets: string[] }
  | { op: 'frag4' | 'frag6'; packet: string; size: number };

const SCRIPT = String.raw`
import json, sys
from scapy.compat import raw
from scapy.layers.inet import IP, defragment, fragment
from scapy.layers.inet6 import IPv6, defragment6, fragment6
out = []
for job in json.load(sys.stdin):
    op = job['op']
    if op == 'defrag4':
        out.append([raw(p).hex() for p in defragment([IP(bytes.fromhex(h)) for h in job['packets']])])
    elif op == 'defrag6':
        out.append([raw(defragment6([IPv6(bytes.fromhex(h)) for h in job['packets']])).hex()])
    elif op == 'frag4':
        out.append([raw(p).hex() for p in fragment(IP(bytes.fromhex(job['packet'])), fragsize=job['size'])])
    else:
        out.append([raw(p).hex() for p in fragment6(IPv6(bytes.fromhex(job['packet'])), job['size'])])
json.dump(out, sys.stdout)
`;

/** Runs the jobs in one scapy process; one answer (a list of hex packets) per job. */
export function scapyFragmentJobs(jobs: readonly ScapyFragmentJob[]): string[][] {
  const r = spawnSync(SCAPY_PYTHON, ['-c', SCRIPT], {
    input: JSON.stringify(jobs),
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 256 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`scapy exited ${r.status}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as string[][];
}
