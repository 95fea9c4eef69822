/**
 * Whether this machine has a route to a BGP neighbour: `fullnat check`
 * refuses a file whose neighbour it cannot reach, and `fullnat run` warns
 * (and goes on: the route may come later, and forwarding does not need it).
 */
import { spawnSync } from 'node:child_process';

/** Why there is no route to `addr` from this machine; null when there is one. */
export type RouteLookup = (addr: string) => string | null;

/** `ip route get ADDR`: the kernel's answer for the neighbour's address. */
export const ipRouteGet: RouteLookup = (addr) => {
  const r = spawnSync('ip', ['route', 'get', addr], { encoding: 'utf8', timeout: 5000 });
  if (r.error) return `cannot run 'ip route get' (${r.error.message})`;
  if (r.status !== 0) return r.stderr.trim() || `ip route get exited with ${r.status}`;
  return null;
};
