/**
 * The keywords of a real server's life under its checks, as keepalived has
 * them: `alpha`, `omega`, `inhibit_on_failure`, `sorry_server`, `hysteresis`,
 * `quorum_up`, `quorum_down` and `virtualhost` in a virtual_server;
 * `inhibit_on_failure`, `notify_up` and `notify_down` in a real_server.
 */
import { addressEquals, endpointToString, type IpAddress } from '../../../wire/address.js';
import { MAX_QUORUM, realServerFamilyConflict } from '../../rules.js';
import type { Cursor, Handler } from '../cursor.js';
import { at, fail } from '../error.js';
import type { Token } from '../lexer.js';
import type { NotifyScriptSpec, RealServerSpec, ServiceSpec } from '../../model.js';
import { addrPort, intIn } from '../values.js';
import type { RsDraft } from './draft.js';
import { virtualhost } from './http-get.js';
import { programLine } from './misc-check.js';

/** What a virtual_server says about every RS in it. */
export interface VsLifeDraft {
  alpha?: boolean;
  omega?: boolean;
  inhibitOnFailure?: boolean;
  sorryServer?: { addr: IpAddress; port: number; tok: Token };
  hysteresis?: number;
  /** keepalived 2.x: the Host of every HTTP_GET / SSL_GET in the service that names none. */
  virtualhost?: string;
  quorumUp?: NotifyScriptSpec;
  quorumDown?: NotifyScriptSpec;
}

/** What a real_server says about itself. */
export interface RsLifeDraft {
  inhibitOnFailure?: boolean;
  notifyUp?: NotifyScriptSpec;
  notifyDown?: NotifyScriptSpec;
}

export function virtualServerLifeHandlers(
  cur: Cursor,
  life: VsLifeDraft,
  vip: IpAddress,
): Record<string, Handler> {
  const flag =
    (key: 'alpha' | 'omega' | 'inhibitOnFailure'): Handler =>
    (k) => {
      cur.args(k, 0);
      life[key] = true;
    };
  return {
    alpha: flag('alpha'),
    omega: flag('omega'),
    inhibit_on_failure: flag('inhibitOnFailure'),
    hysteresis: (k) => (life.hysteresis = intIn(cur.value(k), k.text, 0, MAX_QUORUM)),
    quorum_up: (k) => (life.quorumUp = programLine(cur, k)),
    virtualhost: (k) => (life.virtualhost = virtualhost(cur.value(k))),
    quorum_down: (k) => (life.quorumDown = programLine(cur, k)),
    sorry_server: (k) => {
      const args = cur.lineArgs(k, 2);
      if (args.length === 0) fail(k, "'sorry_server' needs IP PORT");
      const { addr, port } = addrPort(k, args, 'sorry_server');
      const family = realServerFamilyConflict(vip, addr);
      if (family) fail(k, family.replace('real server', 'sorry_server'));
      life.sorryServer = { addr, port, tok: k };
    },
  };
}

/** A sorry_server that is also a real_server would be taken out by its own stand-in. */
export function checkSorryServer(life: VsLifeDraft, reals: readonly RsDraft[]): void {
  const s = life.sorryServer;
  if (!s) return;
  const rs = reals.find((r) => addressEquals(r.addr, s.addr) && r.port === s.port);
  if (rs) {
    fail(
      s.tok,
      `sorry_server ${endpointToString(s.addr, s.port)} is also a real_server (${at(rs.tok)}): it stands in only when every real server is down`,
    );
  }
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

/** The service spec's quorum fields beyond `quorum` itself, the unset ones absent. */
export function quorumFields(
  vs: VsLifeDraft,
): Pick<ServiceSpec, 'hysteresis' | 'quorumUp' | 'quorumDown' | 'sorryServer'> {
  return {
    ...(vs.hysteresis ? { hysteresis: vs.hysteresis } : {}),
    ...(vs.quorumUp ? { quorumUp: vs.quorumUp } : {}),
    ...(vs.quorumDown ? { quorumDown: vs.quorumDown } : {}),
    ...(vs.sorryServer
      ? { sorryServer: { addr: vs.sorryServer.addr, port: vs.sorryServer.port } }
      : {}),
  };
}
