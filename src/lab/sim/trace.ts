/**
 * One line per captured packet, tcpdump-like, with the TOA address spelled
 * out: enough to explain from a run why an RS saw what it saw.
 */
import { addressEquals, Ipv6Address, type IpAddress } from '../../wire/address.js';
import { get16, get32, ipv4ToString, ipv6ToString } from '../../wire/bytes.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, Ipv4View } from '../../wire/ipv4.js';
import { IPV6_HEADER } from '../../wire/ipv6.js';
import {
  TCPOPT_MSS,
  TCPOPT_NOP,
  TCPOPT_SACK,
  TCPOPT_SACK_PERM,
  TCPOPT_TIMESTAMP,
  TCPOPT_TOA,
  TCPOPT_TOA_ALI_V6,
  TCPOPT_WINDOW,
  TcpOptionCursor,
} from '../../wire/tcp-options.js';
import { TcpView } from '../../wire/tcp.js';
import type { CaptureRecord } from './net.js';
import { flagString } from '../../wire/tcp.js';
import type { Endpoint } from './segment.js';

const ip = new Ipv4View();
const tcp = new TcpView();
const cursor = new TcpOptionCursor();

function describeOptions(b: Uint8Array, start: number, end: number): string {
  const out: string[] = [];
  const c = cursor.reset(b, start, end);
  while (c.next()) {
    const a = c.at;
    switch (c.kind) {
      case TCPOPT_NOP:
        out.push('nop');
        break;
      case TCPOPT_MSS:
        out.push(c.size === 4 ? `mss ${get16(b, a + 2)}` : `mss?len${c.size}`);
        break;
      case TCPOPT_WINDOW:
        out.push(`wscale ${b[a + 2]}`);
        break;
      case TCPOPT_SACK_PERM:
        out.push('sackOK');
        break;
      case TCPOPT_TIMESTAMP:
        out.push(
          c.size === 10 ? `TS val ${get32(b, a + 2)} ecr ${get32(b, a + 6)}` : `TS?len${c.size}`,
        );
        break;
      case TCPOPT_SACK: {
        const blocks: string[] = [];
        for (let o = a + 2; o + 8 <= a + c.size; o += 8)
          blocks.push(`{${get32(b, o)}:${get32(b, o + 4)}}`);
        out.push(`sack ${blocks.length} ${blocks.join('')}`);
        break;
      }
      default:
        if ((c.kind === TCPOPT_TOA || c.kind === TCPOPT_TOA_ALI_V6) && c.size === 20) {
          out.push(
            `toa${c.kind === TCPOPT_TOA_ALI_V6 ? '253' : ''} [${ipv6ToString(b, a + 4)}]:${get16(b, a + 2)}`,
          );
        } else if (c.kind === TCPOPT_TOA && c.size === 8) {
          out.push(`toa ${ipv4ToString(get32(b, a + 4))}:${get16(b, a + 2)}`);
        } else {
          out.push(`opt-${c.kind} len ${c.size}`);
        }
    }
  }
  if (c.malformed) out.push('MALFORMED');
  return out.length ? ` <${out.join(',')}>` : '';
}

/** One packet, without timing: `a:p > b:p [flags] seq S ack A win W len L <options>`. */
export function describePacket(b: Uint8Array): string {
  if (b.length >= 1 && b[0]! >>> 4 === 6) return describePacket6(b);
  if (b.length < 20) return `short packet (${b.length} bytes)`;
  const v = ip.wrap(b, 0);
  const src = ipv4ToString(v.src);
  const dst = ipv4ToString(v.dst);
  const l4 = v.payloadOffset;
  if (v.protocol === IPPROTO_TCP && b.length >= l4 + 20) {
    const t = tcp.wrap(b, l4);
    const hl = t.headerLength;
    const len = Math.max(0, v.totalLength - v.headerLength - hl);
    return (
      `${src}:${t.srcPort} > ${dst}:${t.dstPort} [${flagString(t.flags)}] seq ${t.seq} ack ${t.ack}` +
      ` win ${t.window} len ${len}${describeOptions(b, l4 + 20, Math.min(b.length, l4 + hl))} (${b.length} B)`
    );
  }
  if (v.protocol === IPPROTO_ICMP && b.length >= l4 + 8) {
    const type = b[l4]!;
    const code = b[l4 + 1]!;
    if (type === 3 && code === 4 && b.length >= l4 + 8 + 20) {
      return `${src} > ${dst} ICMP frag-needed mtu ${get16(b, l4 + 6)} for ${describeQuoted(b, l4 + 8)}`;
    }
    return `${src} > ${dst} ICMP type ${type} code ${code}`;
  }
  return `${src} > ${dst} proto ${v.protocol} (${b.length} B)`;
}

/** IPv6 as the simulated hosts and the LB send it: the fixed header, then TCP or ICMPv6. */
function describePacket6(b: Uint8Array): string {
  if (b.length < IPV6_HEADER) return `short packet (${b.length} bytes)`;
  const src = ipv6ToString(b, 8);
  const dst = ipv6ToString(b, 24);
  const next = b[6]!;
  const l4 = IPV6_HEADER;
  if (next === IPPROTO_TCP && b.length >= l4 + 20) {
    const t = tcp.wrap(b, l4);
    const hl = t.headerLength;
    const len = Math.max(0, get16(b, 4) - hl);
    return (
      `[${src}]:${t.srcPort} > [${dst}]:${t.dstPort} [${flagString(t.flags)}] seq ${t.seq} ack ${t.ack}` +
      ` win ${t.window} len ${len}${describeOptions(b, l4 + 20, Math.min(b.length, l4 + hl))} (${b.length} B)`
    );
  }
  if (next === IPPROTO_ICMPV6 && b.length >= l4 + 8) {
    const type = b[l4]!;
    if (type === 2 && b.length >= l4 + 8 + IPV6_HEADER + 4) {
      const q = l4 + 8;
      return (
        `${src} > ${dst} ICMPv6 packet-too-big mtu ${get32(b, l4 + 4)} for ` +
        `[${ipv6ToString(b, q + 8)}]:${get16(b, q + IPV6_HEADER)} > [${ipv6ToString(b, q + 24)}]:${get16(b, q + IPV6_HEADER + 2)} (${IPV6_HEADER + get16(b, q + 4)} B)`
      );
    }
    return `${src} > ${dst} ICMPv6 type ${type} code ${b[l4 + 1]}`;
  }
  return `${src} > ${dst} next-header ${next} (${b.length} B)`;
}

function describeQuoted(b: Uint8Array, q: number): string {
  const qhl = (b[q]! & 0x0f) * 4;
  const s = ipv4ToString(get32(b, q + 12));
  const d = ipv4ToString(get32(b, q + 16));
  if (b.length < q + qhl + 4) return `${s} > ${d}`;
  return `${s}:${get16(b, q + qhl)} > ${d}:${get16(b, q + qhl + 2)} (${get16(b, q + 2)} B)`;
}

const ARROWS: Record<string, string> = {
  'client/toMiddlebox': 'C→LB ',
  'client/fromMiddlebox': 'LB→C ',
  'rs/toMiddlebox': 'RS→LB',
  'rs/fromMiddlebox': 'LB→RS',
};

export function formatRecord(r: CaptureRecord): string {
  const drop = r.drop ? `  ** DROPPED (${r.drop})` : '';
  return `${r.t.toFixed(3).padStart(10)} ${ARROWS[`${r.link}/${r.dir}`]} ${describePacket(r.bytes)}${drop}`;
}

/** The trace, one line per packet, in capture order (which is time order). */
export function formatTrace(records: readonly CaptureRecord[]): string {
  return records.map(formatRecord).join('\n');
}

/** True when the packet travels between `a` and `b` (either way), or is an ICMP(v6) error quoting such a packet. */
export function packetBetween(bytes: Uint8Array, a: Endpoint, b: Endpoint): boolean {
  if (bytes.length >= 1 && bytes[0]! >>> 4 === 6) return packetBetween6(bytes, a, b);
  if (bytes.length < 28) return false;
  const v = ip.wrap(bytes, 0);
  let off = 0;
  if (v.protocol === IPPROTO_ICMP) {
    off = v.payloadOffset + 8;
    if (bytes.length < off + 24 || bytes[off + 9] !== IPPROTO_TCP) return false;
  } else if (v.protocol !== IPPROTO_TCP) {
    return false;
  }
  const hl = (bytes[off]! & 0x0f) * 4;
  if (bytes.length < off + hl + 4) return false;
  const s = get32(bytes, off + 12);
  const d = get32(bytes, off + 16);
  const sp = get16(bytes, off + hl);
  const dp = get16(bytes, off + hl + 2);
  return (is(a, s, sp) && is(b, d, dp)) || (is(b, s, sp) && is(a, d, dp));
}

function is(x: Endpoint, addr: IpAddress, port: number): boolean {
  return x.port === port && addressEquals(x.addr, addr);
}

function packetBetween6(bytes: Uint8Array, a: Endpoint, b: Endpoint): boolean {
  let off = 0;
  if (bytes.length < IPV6_HEADER + 4) return false;
  if (bytes[6] === IPPROTO_ICMPV6) {
    off = IPV6_HEADER + 8;
    if (bytes.length < off + IPV6_HEADER + 4 || bytes[off + 6] !== IPPROTO_TCP) return false;
  } else if (bytes[6] !== IPPROTO_TCP) {
    return false;
  }
  const s = Ipv6Address.fromBytes(bytes, off + 8);
  const d = Ipv6Address.fromBytes(bytes, off + 24);
  const sp = get16(bytes, off + IPV6_HEADER);
  const dp = get16(bytes, off + IPV6_HEADER + 2);
  return (is(a, s, sp) && is(b, d, dp)) || (is(b, s, sp) && is(a, d, dp));
}
