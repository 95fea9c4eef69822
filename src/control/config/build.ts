/** Drafts to the FullnatConfig the rest of the program uses: defaults and inheritance resolved. */
import type { IpAddress } from '../../wire/address.js';
import type { FullnatConfig, HealthCheckSpec, RealServerSpec, ServiceSpec } from '../model.js';
import { CONFIG_DEFAULTS } from './defaults.js';
import type { RsDraft, State, Timing, VsDraft } from './grammar/draft.js';

function buildReal(rs: RsDraft, vs: VsDraft): RealServerSpec {
  const pick = <K extends keyof Timing>(k: K, dflt: number): number =>
    rs.checkTiming[k] ?? rs.timing[k] ?? vs.timing[k] ?? dflt;
  const out: RealServerSpec = {
    addr: rs.addr,
    port: rs.port,
    weight: rs.weight,
    delayLoop: pick('delayLoop', CONFIG_DEFAULTS.delayLoop),
    retry: pick('retry', CONFIG_DEFAULTS.retry),
    delayBeforeRetry: pick('delayBeforeRetry', CONFIG_DEFAULTS.delayBeforeRetry),
    pos: { file: rs.tok.file, line: rs.tok.line },
  };
  if (rs.mtu !== undefined) out.mtu = rs.mtu;
  if (rs.check) out.check = stripUndefined(rs.check);
  return out;
}

/** Optional fields left unset are absent, so comparisons and the reload diff see one form. */
function stripUndefined<T extends HealthCheckSpec>(c: T): T {
  const copy = { ...c };
  for (const k of Object.keys(copy) as (keyof T)[]) if (copy[k] === undefined) delete copy[k];
  return copy;
}

export function build(file: string, st: State): FullnatConfig {
  const laddrGroups = new Map<string, IpAddress[]>();
  for (const [name, g] of st.groups)
    laddrGroups.set(
      name,
      g.entries.map((e) => e.addr),
    );
  const services: ServiceSpec[] = st.services.map((vs) => ({
    vip: vs.vip,
    vport: vs.vport,
    protocol: vs.protocol,
    scheduler: vs.scheduler,
    laddrGroup: vs.laddrGroup!.text,
    laddrs: [...laddrGroups.get(vs.laddrGroup!.text)!],
    realServers: vs.reals.map((r) => buildReal(r, vs)),
    synProxy: vs.synProxy,
    proxyProtocol: vs.proxyProtocol,
    quorum: vs.quorum,
    ...(vs.uoaMode === undefined ? {} : { uoaMode: vs.uoaMode }),
    pos: { file: vs.tok.file, line: vs.tok.line },
  }));
  return { file, defs: st.defs, hasDefsBlock: st.defsTok !== undefined, laddrGroups, services };
}
