/** Drafts to the FullnatConfig the rest of the program uses: defaults and inheritance resolved. */
import { addressFamily, addressKey, type IpAddress } from '../../wire/address.js';
import { FULL_MASK4, FULL_PREFIX6 } from '../persistence.js';
import type {
  BgpSpec,
  FullnatConfig,
  HealthCheckSpec,
  RealServerSpec,
  ServiceSpec,
  SourcePos,
  SyncSpec,
} from '../model.js';
import { CONFIG_DEFAULTS } from './defaults.js';
import type { BgpDraft, RsDraft, State, SyncDraft, Timing, VsDraft } from './grammar/draft.js';
import type { Token } from './lexer.js';
import { withServiceVirtualhost } from './grammar/http-get.js';
import { lifeFields, quorumFields } from './grammar/virtual-server-health.js';

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
    ...lifeFields(vs.life, rs.life),
    pos: { file: rs.tok.file, line: rs.tok.line },
  };
  if (rs.mtu !== undefined) out.mtu = rs.mtu;
  if (rs.check) out.check = stripUndefined(withServiceVirtualhost(rs.check, vs.life.virtualhost));
  return out;
}

/** Optional fields left unset are absent, so comparisons and the reload diff see one form. */
function stripUndefined<T extends HealthCheckSpec>(c: T): T {
  const copy = { ...c };
  for (const k of Object.keys(copy) as (keyof T)[]) if (copy[k] === undefined) delete copy[k];
  return copy;
}

const posOf = (t: Token): SourcePos => ({ file: t.file, line: t.line });

function buildBgp(b: BgpDraft): BgpSpec {
  const out: BgpSpec = {
    routerId: b.routerId!,
    localAs: b.localAs!,
    neighbors: b.neighbors.map((n) => ({
      addr: n.addr,
      remoteAs: n.remoteAs!,
      holdTime: n.holdTime,
      bfd: n.bfd,
      ...(n.sourceAddress === undefined ? {} : { sourceAddress: n.sourceAddress }),
      pos: posOf(n.tok),
    })),
    communities: b.communities,
    bfdInterval: b.bfdInterval,
    bfdMultiplier: b.bfdMultiplier,
    lipPrefixes: b.lipPrefixes.map((p) => ({ ...p.prefix, pos: posOf(p.tok) })),
    pos: posOf(b.tok),
  };
  if (b.med !== undefined) out.med = b.med;
  if (b.birdSocket) out.birdSocket = b.birdSocket.text;
  if (b.birdInclude) out.birdInclude = b.birdInclude.text;
  return out;
}

/** Entries held for peers when `max_synced` is not given: half the table, the rest for this node's own. */
export const defaultMaxSynced = (maxConnections: number): number =>
  Math.max(1, Math.floor(maxConnections / 2));

function buildSync(s: SyncDraft, maxConnections: number): SyncSpec {
  return {
    nodeId: s.nodeId!,
    nodes: s.nodes ?? 1 + s.peers.length,
    listen: { addr: s.listen!.addr, port: s.listen!.port },
    keyFile: s.keyFile!.text,
    peers: s.peers.map((p) => ({
      addr: p.addr,
      port: p.port,
      nodeId: p.nodeId!,
      lipPrefixes: p.lipPrefixes.map((l) => ({ ...l.prefix, pos: posOf(l.tok) })),
      pos: posOf(p.tok),
    })),
    maxSynced: s.maxSynced ?? defaultMaxSynced(maxConnections),
    heartbeatMs: s.heartbeatMs,
    resyncTimeoutMs: s.resyncTimeoutMs,
    pos: posOf(s.tok),
  };
}

/** A persistent service's `persistence` (granularity defaulted to one client address); nothing otherwise. */
function persistenceOf(vs: VsDraft): Pick<ServiceSpec, 'persistence'> {
  if (vs.persistenceTimeout === undefined) return {};
  const full = addressFamily(vs.vip) === 4 ? FULL_MASK4 : FULL_PREFIX6;
  return {
    persistence: { timeout: vs.persistenceTimeout, granularity: vs.persistenceGranularity ?? full },
  };
}

export function build(file: string, st: State): FullnatConfig {
  const laddrGroups = new Map<string, IpAddress[]>();
  const laddrPos = new Map<string, SourcePos>();
  for (const [name, g] of st.groups) {
    laddrGroups.set(
      name,
      g.entries.map((e) => e.addr),
    );
    for (const e of g.entries)
      if (!laddrPos.has(addressKey(e.addr))) laddrPos.set(addressKey(e.addr), posOf(e.tok));
  }
  const services: ServiceSpec[] = st.services.map((vs) => ({
    vip: vs.vip,
    vport: vs.vport,
    protocol: vs.protocol,
    scheduler: vs.scheduler,
    laddrGroup: vs.laddrGroup?.text ?? '',
    laddrs: vs.laddrGroup ? [...laddrGroups.get(vs.laddrGroup.text)!] : [],
    forwarding: vs.forwarding,
    realServers: vs.reals.map((r) => buildReal(r, vs)),
    synProxy: vs.synProxy,
    proxyProtocol: vs.proxyProtocol,
    quorum: vs.quorum,
    ...quorumFields(vs.life),
    ...(vs.uoaMode === undefined ? {} : { uoaMode: vs.uoaMode }),
    ...persistenceOf(vs),
    pos: { file: vs.tok.file, line: vs.tok.line },
  }));
  return {
    file,
    defs: st.defs,
    hasDefsBlock: st.defsTok !== undefined,
    laddrGroups,
    laddrPos,
    services,
    ...(st.bgp ? { bgp: buildBgp(st.bgp) } : {}),
    ...(st.sync ? { sync: buildSync(st.sync, st.defs.maxConnections) } : {}),
  };
}
