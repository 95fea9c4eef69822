/**
 * keepalived's `sorry_server`: while no real server of a service is UP, the
 * sorry server is scheduled at weight 1; once one is UP again it leaves the
 * listing. It stays an engine target at weight 0 then, so the connections
 * it holds finish, as IPVS's do after a delete.
 */
import type { Engine } from '../engine/engine.js';
import type { ServiceSpec } from './model.js';
import { realServerKey, type RsWeight } from './real-server-key.js';

/** Adds, re-weights or hides `spec`'s sorry server; true when its state changed. */
export function applySorryServer(
  engine: Engine,
  weights: Map<string, RsWeight>,
  spec: ServiceSpec,
): boolean {
  const sorry = spec.sorryServer;
  if (!sorry) return false;
  const si = engine.findService(spec.vip, spec.vport, spec.protocol);
  if (si < 0) return false;
  const key = (addr: ServiceSpec['vip'], port: number): string =>
    realServerKey(spec.vip, spec.vport, addr, port, spec.protocol);
  // An RS not (yet) in the table counts as UP, as the health checker says of it.
  const anyUp = spec.realServers.some((r) => weights.get(key(r.addr, r.port))?.healthy ?? true);
  const sorryKey = key(sorry.addr, sorry.port);
  const w = weights.get(sorryKey);
  const ri = engine.findRealServer(si, sorry.addr, sorry.port);
  if (!anyUp) {
    if (ri >= 0 && w && !w.hidden) return false;
    weights.set(sorryKey, { weight: 1, healthy: true });
    if (ri < 0) engine.addRealServer(si, { addr: sorry.addr, port: sorry.port, weight: 1 });
    else engine.setWeight(ri, 1);
    return true;
  }
  if (ri < 0 || !w || w.hidden) return false;
  weights.set(sorryKey, { weight: 1, healthy: true, hidden: true });
  engine.setWeight(ri, 0);
  return true;
}

/** A sorry server the reload dropped or moved: out of the listing and of scheduling, its connections finishing. */
export function retireSorryServer(
  engine: Engine,
  weights: Map<string, RsWeight>,
  before: ServiceSpec,
): void {
  const sorry = before.sorryServer;
  if (!sorry) return;
  const si = engine.findService(before.vip, before.vport, before.protocol);
  const ri = si < 0 ? -1 : engine.findRealServer(si, sorry.addr, sorry.port);
  if (ri < 0) return;
  weights.set(realServerKey(before.vip, before.vport, sorry.addr, sorry.port, before.protocol), {
    weight: 1,
    healthy: true,
    hidden: true,
  });
  engine.setWeight(ri, 0);
}
