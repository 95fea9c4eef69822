/**
 * The engine as the IPv6 tests drive it: one IPv6 VIP with an IPv6 RS behind
 * V6_PORT and an IPv4 RS behind V64_PORT (FNAT64), segments from the client
 * and from either RS, and what comes out read back whatever its family.
 */
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import type { EngineOptions, ServiceConfig } from '../../src/engine/options.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { decodeAnyFamily, type DecodedAnyFamily } from './decode.js';
import type { SegmentFields } from './engine-fixture.js';
import { buildSegment, buildSegment6, checksumsValid, checksumsValid6, v6 } from './packets.js';

export const VIP6 = v6('2001:db8::100');
export const CIP6 = v6('2001:db8:c::1');
export const LIP6 = v6('2001:db8:1::1');
export const RIP6 = v6('2001:db8:2::10');
/** FNAT64's IPv4 leg: the LIP and the RS behind V64_PORT. */
export const LIP64 = parseIpv4('10.60.3.1');
export const RIP64 = parseIpv4('10.60.2.10');
export const V6_PORT = 80;
export const V64_PORT = 81;
export const RPORT6 = 8080;
export const CPORT6 = 40000;

export const ip6 = (b: Uint8Array): Ipv6Address => Ipv6Address.fromBytes(b);

/** A service on VIP6 toward the IPv6 RS over LIP6 (`rs` 6) or FNAT64's IPv4 RS over LIP64 (`rs` 4). */
export interface VipService {
  vport: number;
  rs: 4 | 6;
  /** The RS's port; RPORT6 when unset. */
  rport?: number;
  /** LB→RS path MTU; the engine's default when unset. */
  rsMtu?: number;
  synProxy?: boolean;
  proxyProtocol?: ServiceConfig['proxyProtocol'];
}

/** Adds one VipService, round robin. */
export function addVipService(e: Engine, s: VipService): void {
  e.addService({
    vip: ip6(VIP6),
    vport: s.vport,
    scheduler: 'rr',
    laddrs: [s.rs === 6 ? ip6(LIP6) : LIP64],
    realServers: [
      {
        addr: s.rs === 6 ? ip6(RIP6) : RIP64,
        port: s.rport ?? RPORT6,
        weight: 1,
        ...(s.rsMtu === undefined ? {} : { mtu: s.rsMtu }),
      },
    ],
    ...(s.proxyProtocol === undefined ? {} : { proxyProtocol: s.proxyProtocol }),
    ...(s.synProxy === undefined ? {} : { synProxy: s.synProxy }),
  });
}

export type DualServices = Pick<VipService, 'rsMtu' | 'synProxy'>;

/** VIP6:V6_PORT → RIP6 over LIP6, and VIP6:V64_PORT → RIP64 over LIP64 (in that order). */
export function addDualServices(e: Engine, s: DualServices = {}): void {
  addVipService(e, { vport: V6_PORT, rs: 6, ...s });
  addVipService(e, { vport: V64_PORT, rs: 4, ...s });
}

/** An engine with `opts` and both dual services. */
export function newDualEngine(opts: Partial<EngineOptions>, s: DualServices = {}): Engine {
  const e = new Engine(opts);
  addDualServices(e, s);
  return e;
}

/** Just the SegmentFields of `s`, whatever else it carries. */
function segmentFields(s: SegmentFields): SegmentFields {
  return {
    seq: s.seq,
    ack: s.ack,
    flags: s.flags,
    payload: s.payload,
    options: s.options,
    window: s.window,
  };
}

/** src (CIP6 unless given):sport → VIP6:vport. */
export function client6Segment(
  s: SegmentFields & { vport: number; src?: Uint8Array; sport?: number },
): Uint8Array {
  return buildSegment6({
    src: s.src ?? CIP6,
    dst: VIP6,
    sport: s.sport ?? CPORT6,
    dport: s.vport,
    ...segmentFields(s),
  });
}

/** The IPv6 RS (`family` 6) or FNAT64's IPv4 RS (4), from rport (RPORT6 unless given) → its LIP:lport. */
export function rsSegmentOf(
  family: 4 | 6,
  s: SegmentFields & { lport: number; rport?: number },
): Uint8Array {
  const f = {
    sport: s.rport ?? RPORT6,
    dport: s.lport,
    ...segmentFields(s),
  };
  return family === 6
    ? buildSegment6({ src: RIP6, dst: LIP6, ...f })
    : buildSegment({ src: RIP64, dst: LIP64, ...f });
}

/** The RS behind `vport` → its LIP:lport: IPv6 behind V6_PORT, IPv4 behind V64_PORT. */
export function rsSegment46(s: SegmentFields & { vport: number; lport: number }): Uint8Array {
  return rsSegmentOf(s.vport === V6_PORT ? 6 : 4, s);
}

/** An output of either family decoded, after checking its checksums (and IPv6 length). */
export function decodeChecked46(b: Uint8Array): DecodedAnyFamily {
  if (b[0]! >>> 4 === 6)
    assert.ok(checksumsValid6(b), 'IPv6 output: length and TCP checksum right');
  else assert.ok(checksumsValid(b), 'IPv4 output: both checksums right');
  return decodeAnyFamily(b);
}
