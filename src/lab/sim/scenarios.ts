/**
 * The twelve client/path behaviours of docs/SCENARIOS.md, each the way real
 * traffic produces it: a topology (RS link MTU, TCP_DEFER_ACCEPT) plus, per
 * connection index, a client behaviour.
 */
import { Ipv6Address } from '../../wire/address.js';
import { opt, type TcpOption } from '../../wire/tcp-options.js';
import { clientIpVersion, serverIpVersion, type LabFamily } from '../family.js';
import type { ClientBehaviour } from './client.js';
import { IPV6_MIN_MTU, type Endpoint } from './segment.js';

export const SCENARIO_NAMES = [
  'baseline',
  'mss-mix',
  'reorder',
  'no-bare-ack',
  'fin-data',
  'full-mss',
  'over-mss',
  'options-full',
  'defer-accept',
  'spoof-toa',
  'lost-ack',
  'small-rs-mtu',
] as const;

export type ScenarioName = (typeof SCENARIO_NAMES)[number];

export function isScenarioName(s: string): s is ScenarioName {
  return (SCENARIO_NAMES as readonly string[]).includes(s);
}

export interface Scenario {
  name: ScenarioName;
  summary: string;
  /** MTU of the LB→RS link. */
  rsLinkMtu: number;
  clientLinkMtu: number;
  /** MSS an IPv4 RS announces (its own interface MTU − 40; `rsMssFor` gives an IPv6 RS's). */
  rsMss: number;
  deferAccept: boolean;
  /** Response body bytes. */
  responseSize: number;
  client(index: number): ClientBehaviour;
}

/** Announced by mobile clients seen in the field, plus the common 536 and 1440 (docs/SCENARIOS.md). */
export const MSS_MIX = [1460, 1452, 1412, 1400, 1394, 1260, 1120, 536, 1440] as const;
export const FORGED_TOA: Endpoint = { addr: 0x06060606, port: 6666 };
/** What an IPv6 client forges (a 20-byte TOA, kind 254). */
export const FORGED_TOA6: Endpoint = { addr: Ipv6Address.parse('2001:db8:666::6')!, port: 6666 };
/** An option kind no stack knows: must be carried, not understood. */
export const UNKNOWN_OPTION_KIND = 79;

/** NOP NOP SACK(3 blocks) + kind 79 len 12: exactly 40 bytes, no room left. */
export function fullOptions(fdataSeq: number): TcpOption[] {
  const at = (n: number): number => (fdataSeq + n) >>> 0;
  const blocks: [number, number][] = [
    [at(1000), at(1100)],
    [at(2000), at(2100)],
    [at(3000), at(3100)],
  ];
  const unknown = Uint8Array.from({ length: 10 }, (_, i) => 0xa0 + i);
  return [opt.nop(), opt.nop(), opt.sack(blocks), { kind: UNKNOWN_OPTION_KIND, data: unknown }];
}

const base = {
  rsLinkMtu: 1500,
  clientLinkMtu: 1500,
  rsMss: 1460,
  deferAccept: false,
  responseSize: 2000,
};

const plain = (over: Partial<ClientBehaviour> = {}): ClientBehaviour => ({
  advmss: 1460,
  requestSize: 300,
  firstFlight: 'bare-ack-then-data',
  ...over,
});

export const SCENARIOS: Record<ScenarioName, Scenario> = {
  baseline: {
    name: 'baseline',
    summary: 'SYN, SYN+ACK, bare ACK, request, response, FIN',
    ...base,
    client: () => plain(),
  },
  'mss-mix': {
    name: 'mss-mix',
    summary: 'clients announcing 1460 1452 1412 1400 1394 1260 1120 536 1440',
    ...base,
    client: (i) => plain({ advmss: MSS_MIX[i % MSS_MIX.length]!, requestSize: 3000 }),
  },
  reorder: {
    name: 'reorder',
    summary: 'the first data segment overtakes the bare ACK',
    ...base,
    client: () => plain({ requestSize: 3000, firstFlight: 'data-then-bare-ack' }),
  },
  'no-bare-ack': {
    name: 'no-bare-ack',
    summary: 'the handshake is completed by ACK+PSH+data',
    ...base,
    client: () => plain({ firstFlight: 'data-only' }),
  },
  'fin-data': {
    name: 'fin-data',
    summary: 'the handshake is completed by FIN+ACK+PSH+data',
    ...base,
    client: () => plain({ firstFlight: 'data-only', finWithData: true }),
  },
  'full-mss': {
    name: 'full-mss',
    summary: 'the concluding segment is a full-MSS data segment',
    ...base,
    client: () => plain({ firstFlight: 'data-only', requestSize: 4000 }),
  },
  'over-mss': {
    name: 'over-mss',
    summary: 'the client sends segments larger than the MSS it was given',
    ...base,
    // No timestamps, so 1460 bytes of payload still fit the client's own 1500-byte link.
    client: () =>
      plain({
        advmss: 1444,
        mtu: 1500,
        timestamps: false,
        firstFlight: 'data-only',
        requestSize: 4000,
        overMssPayload: 1460,
      }),
  },
  'options-full': {
    name: 'options-full',
    summary: 'the concluding segment already carries 40 bytes of options',
    ...base,
    client: () => plain({ firstFlight: 'data-only', extraOptions: fullOptions }),
  },
  'defer-accept': {
    name: 'defer-accept',
    summary: 'the RS listens with TCP_DEFER_ACCEPT',
    ...base,
    deferAccept: true,
    client: () => plain(),
  },
  'spoof-toa': {
    name: 'spoof-toa',
    summary: 'the client puts its own TOA with a forged address',
    ...base,
    client: () => plain({ spoofToa: FORGED_TOA }),
  },
  'lost-ack': {
    name: 'lost-ack',
    summary: 'the bare ACK is lost; a later segment concludes',
    ...base,
    client: () => plain({ dropBareAck: true }),
  },
  'small-rs-mtu': {
    name: 'small-rs-mtu',
    summary: 'the LB→RS path MTU is smaller than the RS MSS implies (an overlay hop)',
    ...base,
    rsLinkMtu: 1400,
    // One full-MSS request segment. With a multi-segment request the short
    // tail fits the path with TOA, overtakes the bounced full segments and,
    // being in-window out-of-order data, concludes the handshake itself —
    // true to Linux, but it hides the loss this scenario is about.
    client: () => plain({ firstFlight: 'data-only', requestFullSegments: 1 }),
  },
};

export function getScenario(name: ScenarioName): Scenario {
  return SCENARIOS[name];
}

/**
 * Client `index` of a scenario in a family. The scenarios are written for
 * IPv4 clients; an IPv6 client keeps the same link MTU (raised to 1280, the
 * IPv6 minimum, for the 536 client of `mss-mix`) and so announces and sends
 * 20 bytes less per segment, its header being 20 bytes longer: 1460 → 1440,
 * `over-mss` announces 1424 and sends 1440. It forges an IPv6 TOA
 * (`FORGED_TOA6`, 20 bytes) in `spoof-toa`. Nothing else changes.
 */
export function clientFor(scenario: Scenario, index: number, family: LabFamily): ClientBehaviour {
  const b = scenario.client(index);
  if (clientIpVersion(family) === 4) return b;
  const mtu = b.mtu ?? b.advmss + 40;
  const mtu6 = Math.max(IPV6_MIN_MTU, mtu);
  const out: ClientBehaviour = { ...b, mtu: mtu6, advmss: b.advmss - 20 + (mtu6 - mtu) };
  if (b.overMssPayload !== undefined) out.overMssPayload = b.overMssPayload - 20;
  if (b.spoofToa) out.spoofToa = FORGED_TOA6;
  return out;
}

/** The MSS the scenario's RS announces in a family: an IPv6 RS's header is 20 bytes longer. */
export function rsMssFor(scenario: Scenario, family: LabFamily): number {
  return serverIpVersion(family) === 6 ? scenario.rsMss - 20 : scenario.rsMss;
}
