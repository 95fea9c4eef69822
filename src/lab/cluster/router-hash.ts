/**
 * Where the router sends a client's tuple: the kernel's own answer to
 * `ip route get VIP from SRC iif eth-c ipproto tcp sport P dport 80`, asked
 * for many tuples in one `ip -batch` (a thousand take a few milliseconds).
 * The router hashes the 5-tuple (topology.ts), so the answer is the node a
 * SYN from that tuple reaches while the route stands.
 */
import { spawn } from 'node:child_process';
import { ROUTER_CLIENT_IF, VIP, VPORT } from './plan.js';

export interface Tuple {
  addr: string;
  port: number;
}

/** The `ip -batch` lines asking for each tuple's route. */
export function routeGetLines(tuples: readonly Tuple[]): string[] {
  return tuples.map(
    (t) =>
      `route get ${VIP} from ${t.addr} iif ${ROUTER_CLIENT_IF} ipproto tcp sport ${t.port} dport ${VPORT}`,
  );
}

/**
 * The gateway of each answer in `ip route get` batch output, in order (an
 * answer starts with the destination; `cache` lines continue it); null
 * for an answer without a gateway.
 */
export function parseRouteGets(out: string): (string | null)[] {
  const gateways: (string | null)[] = [];
  for (const line of out.split('\n')) {
    if (!line.startsWith(`${VIP} `)) continue;
    gateways.push(/ via (\S+)/.exec(line)?.[1] ?? null);
  }
  return gateways;
}

/** The gateway the router picks for each tuple (null: no route), asked inside namespace `ns`. */
export function routerGateways(ns: string, tuples: readonly Tuple[]): Promise<(string | null)[]> {
  if (tuples.length === 0) return Promise.resolve([]);
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['-n', ns, '-force', '-batch', '-'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-2000)));
    child.on('error', reject);
    child.on('close', () => {
      const gws = parseRouteGets(Buffer.concat(out).toString());
      if (gws.length !== tuples.length)
        reject(
          new Error(
            `ip route get: ${gws.length} answers for ${tuples.length} tuples: ${err.trim()}`,
          ),
        );
      else resolve(gws);
    });
    child.stdin.end(`${routeGetLines(tuples).join('\n')}\n`);
  });
}
