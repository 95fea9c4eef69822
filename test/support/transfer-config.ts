/**
 * Two engines configured with the same services, real servers and LIPs in
 * different orders (plus extras the other lacks), so every index differs
 * between them: what the connection record tests export from one and import
 * into the other.
 */
import { Engine } from '../../src/engine/engine.js';
import type { EngineOptions } from '../../src/engine/options.js';
import type { PacketPool } from '../../src/engine/packet.js';
import { parseIpv4 } from '../../src/wire/bytes.js';

export const T_VIP = parseIpv4('192.0.2.100');
export const T_VIP2 = parseIpv4('192.0.2.101');
export const T_LIP = parseIpv4('10.10.3.1');
export const T_LIP2 = parseIpv4('10.10.3.2');
export const T_LIP_EXTRA = parseIpv4('10.10.3.9');
export const T_RIP = parseIpv4('10.10.2.2');
export const T_RIP2 = parseIpv4('10.10.2.3');
export const T_RIP3 = parseIpv4('10.10.2.4');
export const T_RIP_EXTRA = parseIpv4('10.10.2.99');

/** One service of the pair: where its connections go and what the record names it by. */
export interface TransferService {
  name: 'plain' | 'proxy1' | 'proxy2' | 'synproxy';
  vip: number;
  vport: number;
  rip: number;
  rport: number;
  lips: number[];
  proxyProtocol: 0 | 1 | 2;
  synProxy: boolean;
}

export const TRANSFER_SERVICES: readonly TransferService[] = [
  {
    name: 'plain',
    vip: T_VIP,
    vport: 80,
    rip: T_RIP,
    rport: 8080,
    lips: [T_LIP, T_LIP2],
    proxyProtocol: 0,
    synProxy: false,
  },
  {
    name: 'proxy1',
    vip: T_VIP,
    vport: 81,
    rip: T_RIP2,
    rport: 8081,
    lips: [T_LIP],
    proxyProtocol: 1,
    synProxy: false,
  },
  {
    name: 'proxy2',
    vip: T_VIP,
    vport: 82,
    rip: T_RIP2,
    rport: 8082,
    lips: [T_LIP2],
    proxyProtocol: 2,
    synProxy: false,
  },
  {
    name: 'synproxy',
    vip: T_VIP2,
    vport: 443,
    rip: T_RIP3,
    rport: 8443,
    lips: [T_LIP2],
    proxyProtocol: 0,
    synProxy: true,
  },
];

export const TRANSFER_OPTS: Partial<EngineOptions> = {
  maxConnections: 4096,
  portRange: { min: 5000, max: 65000 },
  synproxySecret: 77,
};

/** The exporter: services in TRANSFER_SERVICES order, nothing else. */
export function exportingEngine(opts: Partial<EngineOptions> = {}): Engine {
  const e = new Engine({ ...TRANSFER_OPTS, ...opts });
  for (const s of TRANSFER_SERVICES) {
    e.addService({
      vip: s.vip,
      vport: s.vport,
      scheduler: 'rr',
      laddrs: s.lips,
      realServers: [{ addr: s.rip, port: s.rport, weight: 1 }],
      proxyProtocol: s.proxyProtocol,
      synProxy: s.synProxy,
    });
  }
  return e;
}

/**
 * The importer: an extra service and LIP first, the services in reverse
 * order, an extra RS ahead of each one's own, LIPs reversed: no service, RS
 * or LIP index is the exporter's.
 */
export function importingEngine(opts: Partial<EngineOptions> = {}, pool?: PacketPool): Engine {
  const e = new Engine({ ...TRANSFER_OPTS, ...opts }, pool);
  e.addService({
    vip: T_VIP2,
    vport: 9,
    scheduler: 'rr',
    laddrs: [T_LIP_EXTRA],
    realServers: [{ addr: T_RIP_EXTRA, port: 9, weight: 1 }],
  });
  for (const s of [...TRANSFER_SERVICES].reverse()) {
    e.addService({
      vip: s.vip,
      vport: s.vport,
      scheduler: 'rr',
      laddrs: [...s.lips].reverse(),
      realServers: [
        { addr: T_RIP_EXTRA, port: s.rport, weight: 1 },
        { addr: s.rip, port: s.rport, weight: 1 },
      ],
      proxyProtocol: s.proxyProtocol,
      synProxy: s.synProxy,
    });
  }
  return e;
}
