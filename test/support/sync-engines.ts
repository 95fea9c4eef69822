/**
 * A fleet of in-memory engines for the connection sync tests: the same
 * services on every node (IPv4, IPv4 SYNPROXY, IPv6, FNAT64, IPv6
 * SYNPROXY, UDP) in a different order per node, each node with LIPs of its
 * own and its peers' LIP prefixes, sync on with a shared fleet key; a
 * journal drained into records as the channel would send them; and a TCP
 * flow of either family played from both ends.
 */
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import type { EngineOptions } from '../../src/engine/options.js';
import { RECORD_V1_SIZE, RECORD_V2_SIZE } from '../../src/engine/conn-record.js';
import { CF_IN_USE } from '../../src/engine/conn-table.js';
import { TcpState } from '../../src/engine/tcp-state.js';
import { Ipv6Address, addressToString, type IpAddress } from '../../src/wire/address.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../../src/wire/tcp.js';
import type { TcpOption } from '../../src/wire/tcp-options.js';
import { decodeAnyFamily, type DecodedAnyFamily } from './decode.js';
import { drainOutput, feedRaw, type Emitted } from './engine-fixture.js';
import { buildSegment, buildSegment6, checksumsValid, checksumsValid6, v6 } from './packets.js';

export const F_VIP = parseIpv4('192.0.2.100');
export const F_VIP6 = Ipv6Address.fromBytes(v6('2001:db8::100'));
export const F_RIP = parseIpv4('10.10.200.2');
export const F_RIP6 = Ipv6Address.fromBytes(v6('2001:db8:200::2'));
export const F_RIP64 = parseIpv4('10.60.200.2');

/** Node k's LIPs: IPv4, IPv6, and FNAT64's IPv4 one. */
export const lip4 = (k: number): number => parseIpv4(`10.10.${k}.1`);
export const lip6 = (k: number): Ipv6Address => Ipv6Address.fromBytes(v6(`2001:db8:${k}::1`));
export const lip64 = (k: number): number => parseIpv4(`10.60.${k}.1`);

/** One service of the fleet. */
export interface FleetService {
  name: 'plain4' | 'synproxy4' | 'plain6' | 'fnat64' | 'synproxy6' | 'udp4';
  vip: IpAddress;
  vport: number;
  rip: IpAddress;
  rport: number;
  lip: (k: number) => IpAddress;
  synProxy: boolean;
  udp: boolean;
}

export const FLEET_SERVICES: readonly FleetService[] = [
  {
    name: 'plain4',
    vip: F_VIP,
    vport: 80,
    rip: F_RIP,
    rport: 8080,
    lip: lip4,
    synProxy: false,
    udp: false,
  },
  {
    name: 'synproxy4',
    vip: F_VIP,
    vport: 443,
    rip: F_RIP,
    rport: 8443,
    lip: lip4,
    synProxy: true,
    udp: false,
  },
  {
    name: 'plain6',
    vip: F_VIP6,
    vport: 80,
    rip: F_RIP6,
    rport: 8080,
    lip: lip6,
    synProxy: false,
    udp: false,
  },
  {
    name: 'fnat64',
    vip: F_VIP6,
    vport: 81,
    rip: F_RIP64,
    rport: 8081,
    lip: lip64,
    synProxy: false,
    udp: false,
  },
  {
    name: 'synproxy6',
    vip: F_VIP6,
    vport: 443,
    rip: F_RIP6,
    rport: 8443,
    lip: lip6,
    synProxy: true,
    udp: false,
  },
  {
    name: 'udp4',
    vip: F_VIP,
    vport: 53,
    rip: F_RIP,
    rport: 5353,
    lip: lip4,
    synProxy: false,
    udp: true,
  },
];

export const TCP_SERVICES = FLEET_SERVICES.filter((s) => !s.udp);

/** The fleet's shared key (the channel derives it from key_file). */
export const FLEET_KEY = new Uint8Array(32).fill(0x5a);
/** Unix ms the first node started at; node k started k × 37 s later (its engine clock is behind). */
export const FLEET_EPOCH = 1_765_000_000_000;

/**
 * Node k of a fleet of n: every service (in reverse order on even nodes,
 * so indexes differ), its own LIPs, sync on with the fleet key, the other
 * nodes' LIP prefixes. Its ISN and cookie secrets and port seed are its own.
 */
export function fleetNode(
  k: number,
  n = 3,
  opts: Partial<EngineOptions> = {},
  maxSynced = 1000,
): Engine {
  const e = new Engine({
    maxConnections: 4096,
    portRange: { min: 5000, max: 65000 },
    isnSecret: 0x1000 + k,
    synproxySecret: 0x2000 + k,
    portSeed: 0x3000 + k,
    isnClockOriginMs: FLEET_EPOCH + k * 37_000,
    ...opts,
  });
  const order = k % 2 === 0 ? [...FLEET_SERVICES].reverse() : FLEET_SERVICES;
  for (const s of order) {
    e.addService({
      vip: s.vip,
      vport: s.vport,
      scheduler: 'rr',
      laddrs: [s.lip(k)],
      realServers: [{ addr: s.rip, port: s.rport, weight: 1 }],
      synProxy: s.synProxy,
      ...(s.udp ? { protocol: 'UDP' as const } : {}),
    });
  }
  e.enableSync({ nodeId: k, nodes: n, maxSynced, fleetKey: FLEET_KEY });
  for (let j = 1; j <= n; j++) {
    if (j === k) continue;
    e.addPeerPrefix({ addr: parseIpv4(`10.10.${j}.0`), length: 24 });
    e.addPeerPrefix({ addr: parseIpv4(`10.60.${j}.0`), length: 24 });
    e.addPeerPrefix({ addr: Ipv6Address.fromBytes(v6(`2001:db8:${j}::`)), length: 48 });
  }
  return e;
}

/** One drained batch: records of one version, as a message would carry them. */
export interface Batch {
  version: 1 | 2;
  count: number;
  bytes: Uint8Array;
}

/** Everything e's journal has to send, in batches of at most `perBatch` records of each version. */
export function drainJournal(e: Engine, perBatch = 12): Batch[] {
  const j = e.syncJournal;
  assert.ok(j, 'sync is on');
  const out: Batch[] = [];
  for (const version of [1, 2] as const) {
    const size = version === 2 ? RECORD_V2_SIZE : RECORD_V1_SIZE;
    for (;;) {
      const buf = new Uint8Array(perBatch * size);
      const n = j.drainInto(buf, 0, perBatch, version);
      if (n > 0) out.push({ version, count: n, bytes: buf.subarray(0, n * size) });
      if (n < perBatch) break;
    }
  }
  return out;
}

/** Applies batches from node `from` to e; returns the sum of the results. */
export function applyBatches(
  e: Engine,
  batches: Batch[],
  from: number,
): { applied: number; removed: number; rejected: number; ignored: number } {
  const j = e.syncJournal;
  assert.ok(j, 'sync is on');
  const sum = { applied: 0, removed: 0, rejected: 0, ignored: 0 };
  for (const b of batches) {
    const r = j.apply(b.bytes, 0, b.count, b.version, from);
    sum.applied += r.applied;
    sum.removed += r.removed;
    sum.rejected += r.rejected;
    sum.ignored += r.ignored;
  }
  return sum;
}

/** Packets the engine emitted, checked (checksums, IPv6 length) and decoded. */
function decodeAll(out: Emitted[]): DecodedAnyFamily[] {
  return out.map((o) => {
    const b = o.bytes;
    if (b[0]! >>> 4 === 6) assert.ok(checksumsValid6(b), 'IPv6 output: length and checksum');
    else assert.ok(checksumsValid(b), 'IPv4 output: checksums');
    return decodeAnyFamily(b);
  });
}

/** What the engine has emitted (its timers'), checked and decoded. */
export function emitted(e: Engine): DecodedAnyFamily[] {
  return decodeAll(drainOutput(e));
}

/** Feeds one packet of either family; what came out, checked and decoded. */
export function feedAny(e: Engine, bytes: Uint8Array): DecodedAnyFamily[] {
  return decodeAll(feedRaw(e, bytes));
}

const ip6Bytes = (a: IpAddress): Uint8Array =>
  typeof a === 'number' ? new Uint8Array(0) : a.bytes;

/** A TCP connection of either family played from both ends: what each has sent and seen. */
export class FleetFlow {
  cseq: number;
  cack = 0;
  rseq: number;
  rack = 0;
  /** The RS leg's LIP and port, learned from the LB's SYN to the RS. */
  lip: IpAddress = 0;
  lport = -1;
  readonly cip: IpAddress;

  constructor(
    readonly s: FleetService,
    readonly k: number,
    cisn: number,
    risn: number,
  ) {
    this.cseq = cisn;
    this.rseq = risn;
    const v6client = typeof s.vip !== 'number';
    this.cip = v6client
      ? Ipv6Address.fromBytes(v6(`2001:db8:c::${(k + 1).toString(16)}`))
      : parseIpv4(`203.0.113.${k + 1}`);
  }

  get cport(): number {
    return 40000 + this.k;
  }

  client(flags: number, payload?: Uint8Array, options?: TcpOption[]): Uint8Array {
    const s = this.s;
    const f = {
      sport: this.cport,
      dport: s.vport,
      seq: this.cseq >>> 0,
      ack: (flags & TCP_ACK) !== 0 ? this.cack >>> 0 : 0,
      flags,
      payload,
      options,
    };
    const b =
      typeof s.vip === 'number' && typeof this.cip === 'number'
        ? buildSegment({ src: this.cip, dst: s.vip, ...f })
        : buildSegment6({ src: ip6Bytes(this.cip), dst: ip6Bytes(s.vip), ...f });
    this.cseq =
      (this.cseq + (payload?.length ?? 0) + ((flags & (TCP_SYN | TCP_FIN)) !== 0 ? 1 : 0)) >>> 0;
    return b;
  }

  rs(flags: number, payload?: Uint8Array, options?: TcpOption[]): Uint8Array {
    assert.ok(this.lport > 0, 'the RS leg is open');
    const s = this.s;
    const f = {
      sport: s.rport,
      dport: this.lport,
      seq: this.rseq >>> 0,
      ack: (flags & TCP_ACK) !== 0 ? this.rack >>> 0 : 0,
      flags,
      payload,
      options,
    };
    const b =
      typeof s.rip === 'number' && typeof this.lip === 'number'
        ? buildSegment({ src: s.rip, dst: this.lip, ...f })
        : buildSegment6({ src: ip6Bytes(s.rip), dst: ip6Bytes(this.lip), ...f });
    this.rseq =
      (this.rseq + (payload?.length ?? 0) + ((flags & (TCP_SYN | TCP_FIN)) !== 0 ? 1 : 0)) >>> 0;
    return b;
  }

  /** Learns from what an engine sent: the RS leg's tuple, and what each end will ack. */
  observe(out: DecodedAnyFamily[]): void {
    const rip = addressToString(this.s.rip);
    const cip = addressToString(this.cip);
    for (const d of out) {
      if ((d.flags & TCP_RST) !== 0) continue;
      const next = (d.seq + d.payload + ((d.flags & (TCP_SYN | TCP_FIN)) !== 0 ? 1 : 0)) >>> 0;
      if (d.dst === rip && d.dport === this.s.rport) {
        if ((d.flags & TCP_SYN) !== 0) {
          this.lport = d.sport;
          const a = typeof this.s.rip === 'number' ? parseIpv4(d.src) : Ipv6Address.parse(d.src);
          assert.ok(a !== null, `LIP ${d.src}`);
          this.lip = a;
        }
        if (d.sport === this.lport) this.rack = next;
      } else if (d.dst === cip && d.dport === this.cport) {
        this.cack = next;
      }
    }
  }
}

/**
 * The table checked against what counts it, for tables of both families
 * (table-consistency.ts reads IPv4 entries only): each RS's active and
 * inactive counts, each (LIP, RS) pair's ports in use, each entry's LIP
 * index, the table's count; null when all agree.
 */
export function fleetInconsistency(e: Engine): string | null {
  const t = e.table;
  const active = new Map<number, number>();
  const inactive = new Map<number, number>();
  const ports = new Map<number, number>();
  let inUse = 0;
  for (let i = 0; i < t.capacity; i++) {
    if ((t.flags[i]! & CF_IN_USE) === 0) continue;
    inUse++;
    const rsIdx = t.rs[i]!;
    if (e.realServers[rsIdx] === undefined) return `entry ${i}: no RS #${rsIdx}`;
    if (e.laddrs.addrs[t.lipIndex[i]!] !== t.lip[i]) return `entry ${i}: LIP index does not match`;
    if (t.state[i] === TcpState.None) return `entry ${i}: in use with state NONE`;
    const m = t.state[i] === TcpState.Established ? active : inactive;
    m.set(rsIdx, (m.get(rsIdx) ?? 0) + 1);
    const pair = t.lipIndex[i]! * e.laddrs.maxRs + e.laddrs.portGroup(rsIdx);
    ports.set(pair, (ports.get(pair) ?? 0) + 1);
  }
  if (inUse !== t.count) return `table count ${t.count}, ${inUse} entries in use`;
  const udp = e.connectionCount - t.count;
  for (const rs of e.realServers) {
    const a = active.get(rs.index) ?? 0;
    const n = inactive.get(rs.index) ?? 0;
    // UDP flows count among their RS's inactive connections.
    const udpHere = rs.service === e.findService(F_VIP, 53, 'UDP') ? udp : 0;
    if (rs.activeConns !== a || rs.inactiveConns !== n + udpHere)
      return `RS #${rs.index}: ${rs.activeConns}/${rs.inactiveConns} active/inactive, table has ${a}/${n + udpHere}`;
  }
  for (let l = 0; l < e.laddrs.lips.length; l++)
    for (const rs of e.realServers) {
      const want = ports.get(l * e.laddrs.maxRs + e.laddrs.portGroup(rs.index)) ?? 0;
      const got = e.laddrs.portsInUse(l, rs.index);
      if (got !== want) return `LIP #${l} → RS #${rs.index}: ${got} ports in use, ${want} entries`;
    }
  return null;
}
