/**
 * keepalived's `sorry_server`: while a service is below its quorum (with
 * the default quorum 1: no real server UP), the sorry server is scheduled
 * at weight 1; once the quorum is back it leaves the listing. It stays an
 * engine target at weight 0 then, so the connections it holds finish, as
 * IPVS's do after a delete.
 */
import type { Engine } from '../engine/engine.js';
import type { ServiceSpec } from './model.js';
import { realServerKey, type RsWeight } from './real-server-key.js';

/** Puts `spec`'s sorry server in (`wanted`) or out; true when its state changed. */
export function applySorryServer(
  engine: Engine,
  weights: Map<string, RsWeight>,
  spec: ServiceSpec,
  wanted: boolean,
): boolean {
  const sorry = spec.sorryServer;
  if (!sorry) return false;
  const si = engine.findService(spec.vip, spec.vport, spec.protocol);
  if (si < 0) return false;
  const key = (addr: ServiceSpec['vip'], port: number): string =>
    realServerKey(spec.vip, spec.vport, addr, port, spec.protocol);
  const sorryKey = key(sorry.addr, sorry.port);
  const w = weights.get(sorryKey);
  const ri = engine.findRealServer(si, sorry.addr, sorry.port);
  if (wanted) {
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
