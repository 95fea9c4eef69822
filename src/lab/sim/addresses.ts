/**
 * The simulator's addresses per family (family.ts): documentation ranges
 * only (RFC 5737, RFC 3849), laid out alike in IPv4 and IPv6.
 *
 *   family 4    clients 203.0.113.x, 198.51.100.x → VIP 192.0.2.100:80;
 *               LIPs 10.10.3.1-2 → RSs 10.10.2.2-3:80
 *   family 6    clients 2001:db8:c1::x, 2001:db8:c2::x → VIP [2001:db8::100]:80;
 *               LIPs 2001:db8:3::1-2 → RSs [2001:db8:2::2-3]:80
 *   family 64   the IPv6 clients and VIP, the IPv4 LIPs and RSs
 */
import { Ipv6Address, type IpAddress } from '../../wire/address.js';
import { parseIpv4 } from '../../wire/bytes.js';
import { clientIpVersion, serverIpVersion, type AddressPlan, type LabFamily } from '../family.js';

function v6(text: string): Ipv6Address {
  const a = Ipv6Address.parse(text);
  if (!a) throw new Error(`bad IPv6 literal ${text}`);
  return a;
}

const VPORT = 80;
const RS_PORT = 80;
const HOSTS_PER_NET = 250;

const VIP4 = parseIpv4('192.0.2.100');
const VIP6 = v6('2001:db8::100');
const RS4 = [parseIpv4('10.10.2.2'), parseIpv4('10.10.2.3')];
const RS6 = [v6('2001:db8:2::2'), v6('2001:db8:2::3')];
const LIPS4 = [parseIpv4('10.10.3.1'), parseIpv4('10.10.3.2')];
const LIPS6 = [v6('2001:db8:3::1'), v6('2001:db8:3::2')];
const CLIENT_NETS4 = [parseIpv4('203.0.113.0'), parseIpv4('198.51.100.0')];
const CLIENT_NETS6 = [v6('2001:db8:c1::'), v6('2001:db8:c2::')];

/** Source addresses of the ICMP errors the hops on each link send, per IP version. */
export const CLIENT_HOP4 = parseIpv4('192.0.2.254');
export const CLIENT_HOP6 = v6('2001:db8::fe');
export const RS_HOP4 = parseIpv4('10.10.2.254');
export const RS_HOP6 = v6('2001:db8:2::fe');

/** Distinct client addresses a run cycles through (two nets of 250 hosts). */
export const CLIENT_ADDRESSES = CLIENT_NETS4.length * HOSTS_PER_NET;

function clientAddress4(index: number): number {
  const slot = index % CLIENT_ADDRESSES;
  return (CLIENT_NETS4[Math.floor(slot / HOSTS_PER_NET)]! + (slot % HOSTS_PER_NET) + 1) >>> 0;
}

function clientAddress6(index: number): Ipv6Address {
  const slot = index % CLIENT_ADDRESSES;
  const b = CLIENT_NETS6[Math.floor(slot / HOSTS_PER_NET)]!.bytes.slice();
  const host = (slot % HOSTS_PER_NET) + 1;
  b[14] = host >>> 8;
  b[15] = host & 0xff;
  return Ipv6Address.fromBytes(b);
}

export function simAddressPlan(family: LabFamily): AddressPlan {
  const client6 = clientIpVersion(family) === 6;
  const server6 = serverIpVersion(family) === 6;
  const rs: readonly IpAddress[] = server6 ? RS6 : RS4;
  return {
    family,
    vip: client6 ? VIP6 : VIP4,
    vport: VPORT,
    realServers: rs.map((addr) => ({ addr, port: RS_PORT })),
    lips: server6 ? LIPS6 : LIPS4,
    clientAddress: client6 ? clientAddress6 : clientAddress4,
  };
}
