/**
 * The keywords of a real server's life under its checks, as keepalived has
 * them: `alpha`, `omega` and `inhibit_on_failure` in a virtual_server;
 * `inhibit_on_failure`, `notify_up` and `notify_down` in a real_server.
 */
import type { Cursor, Handler } from '../cursor.js';
import type { NotifyScriptSpec, RealServerSpec } from '../../model.js';
import { programLine } from './misc-check.js';

/** What a virtual_server says about every RS in it. */
export interface VsLifeDraft {
  alpha?: boolean;
  omega?: boolean;
  inhibitOnFailure?: boolean;
}

/** What a real_server says about itself. */
export interface RsLifeDraft {
  inhibitOnFailure?: boolean;
  notifyUp?: NotifyScriptSpec;
  notifyDown?: NotifyScriptSpec;
}

export function virtualServerLifeHandlers(cur: Cursor, life: VsLifeDraft): Record<string, Handler> {
  const flag =
    (key: keyof VsLifeDraft): Handler =>
    (k) => {
      cur.args(k, 0);
      life[key] = true;
    };
  return {
    alpha: flag('alpha'),
    omega: flag('omega'),
    inhibit_on_failure: flag('inhibitOnFailure'),
  };
}

export function realServerLifeHandlers(cur: Cursor, life: RsLifeDraft): Record<string, Handler> {
  return {
    inhibit_on_failure: (k) => {
      cur.args(k, 0);
      life.inhibitOnFailure = true;
    },
    notify_up: (k) => (life.notifyUp = programLine(cur, k)),
    notify_down: (k) => (life.notifyDown = programLine(cur, k)),
  };
}

/** The RS spec's fields from both levels; a flag set at either level holds. */
export function lifeFields(
  vs: VsLifeDraft,
  rs: RsLifeDraft,
): Pick<RealServerSpec, 'alpha' | 'omega' | 'inhibitOnFailure' | 'notifyUp' | 'notifyDown'> {
  return {
    ...(vs.alpha ? { alpha: true } : {}),
    ...(vs.omega ? { omega: true } : {}),
    ...(vs.inhibitOnFailure || rs.inhibitOnFailure ? { inhibitOnFailure: true } : {}),
    ...(rs.notifyUp ? { notifyUp: rs.notifyUp } : {}),
    ...(rs.notifyDown ? { notifyDown: rs.notifyDown } : {}),
  };
}
