import { spawnSync } from 'node:child_process';

/**
 * Debian's scapy (python3-scapy) as a second, independent decoder of IP
 * datagrams. Debian installs it for the distribution's Python, which is
 * this interpreter.
 */
export const SCAPY_PYTHON = '/usr/bin/python3.11';

const TIMEOUT_MS = 60_000;

/** An IPv4 option as scapy parsed it. */
export interface ScapyIpOption {
  option: number;
  copyFlag: number;
  optionClass: number;
  /** null for END and NOP, which have none. */
  length: number | null;
  /** The option's bytes as scapy rebuilds them. */
  hex: string;
}

/** The UDP datagram found in a packet, with scapy's own checksum for it. */
export interface ScapyUdp {
  sport: number;
  dport: number;
  len: number;
  chksum: number;
  /** The checksum scapy computes with the field cleared, over a pseudo-header of protocol 17. */
  chksumRebuilt: number;
  payloadHex: string;
}

/** What scapy read from one datagram. */
export interface ScapyPacket {
  family: 4 | 6;
  src: string;
  dst: string;
  /** IPv4 protocol or IPv6 next header. */
  proto: number;
  /** IPv4 total length, or IPv6 payload length. */
  len: number;
  /** IPv4 only. */
  ihl?: number;
  chksum?: number;
  chksumRebuilt?: number;
  options?: ScapyIpOption[];
  /** The scapy layer name of the IP payload ('UDP', 'Raw', ...). */
  payloadLayer: string;
  /** The IP payload's bytes (up to the IP length). */
  l4Hex: string;
  /**
   * Protocol 248: the first four payload bytes read as DPVS's `struct opphdr`
   * (include/uoa.h: version in the high nibble, next protocol, length of
   * header and options), and the UDP datagram after `length` bytes.
   */
  opp?: { version: number; reserved: number; protocol: number; length: number };
  /** The UDP datagram: right after the IP header, or after the OPP header. */
  udp?: ScapyUdp;
}

/*
 * Reads a JSON list of hex datagrams on stdin, writes a JSON list of
 * ScapyPacket. UDP after an OPP header is checked by scapy as the RS module
 * hands it to the kernel: a fresh IP/UDP packet between the same addresses.
 */
const SCRIPT = String.raw`
import json, sys
from scapy.compat import raw
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

def udp_of(family, src, dst, data):
    u = UDP(data)
    ip = IP(src=src, dst=dst, proto=17) if family == 4 else IPv6(src=src, dst=dst, nh=17)
    q = ip / u
    del q[UDP].chksum
    rebuilt = (IP if family == 4 else IPv6)(raw(q))[UDP].chksum
    return {
        'sport': u.sport, 'dport': u.dport, 'len': u.len, 'chksum': u.chksum,
        'chksumRebuilt': rebuilt, 'payloadHex': raw(u.payload).hex(),
    }

out = []
for h in json.load(sys.stdin):
    b = bytes.fromhex(h)
    r = {}
    if b[0] >> 4 == 4:
        p = IP(b)
        q = IP(b)
        del q.chksum
        r = {
            'family': 4, 'src': p.src, 'dst': p.dst, 'proto': p.proto, 'len': p.len,
            'ihl': p.ihl, 'chksum': p.chksum, 'chksumRebuilt': IP(raw(q)).chksum,
            'options': [{
                'option': o.option, 'copyFlag': o.copy_flag, 'optionClass': o.optclass,
                'length': getattr(o, 'length', None), 'hex': raw(o).hex(),
            } for o in p.options],
        }
        l4 = b[p.ihl * 4:p.len]
    else:
        p = IPv6(b)
        r = {'family': 6, 'src': p.src, 'dst': p.dst, 'proto': p.nh, 'len': p.plen}
        l4 = b[40:40 + p.plen]
    r['payloadLayer'] = type(p.payload).__name__
    r['l4Hex'] = l4.hex()
    if r['proto'] == 248 and len(l4) >= 4:
        n = int.from_bytes(l4[2:4], 'big')
        r['opp'] = {'version': l4[0] >> 4, 'reserved': l4[0] & 15, 'protocol': l4[1], 'length': n}
        if l4[1] == 17 and len(l4) >= n + 8:
            r['udp'] = udp_of(r['family'], p.src, p.dst, l4[n:])
    elif r['proto'] == 17:
        r['udp'] = udp_of(r['family'], p.src, p.dst, l4)
    out.append(r)
json.dump(out, sys.stdout)
`;

/** Whether scapy imports here; the reason doubles as a test's skip message. */
export function probeScapy(): { ok: true } | { ok: false; reason: string } {
  const r = spawnSync(SCAPY_PYTHON, ['-c', 'import scapy.layers.inet6'], {
    encoding: 'utf8',
    timeout: TIMEOUT_MS,
  });
  if (r.error) return { ok: false, reason: `${SCAPY_PYTHON} not available: ${r.error.message}` };
  if (r.status !== 0) {
    return {
      ok: false,
      reason: `scapy not importable (apt-get install python3-scapy): ${r.stderr.trim()}`,
    };
  }
  return { ok: true };
}

/**
 * The `skip` option of a test that needs scapy: false when it is here, and
 * also under FULLNAT_REQUIRE_ALL=1, where the test runs and fails on the
 * missing decoder instead of passing CI by skipping.
 */
export function scapySkip(probe: ReturnType<typeof probeScapy>): string | false {
  if (probe.ok || process.env.FULLNAT_REQUIRE_ALL === '1') return false;
  return probe.reason;
}

/** Raw IP datagrams through scapy, one record each, in order. */
export function scapyDecode(packets: readonly Uint8Array[]): ScapyPacket[] {
  const input = JSON.stringify(packets.map((p) => Buffer.from(p).toString('hex')));
  const r = spawnSync(SCAPY_PYTHON, ['-c', SCRIPT], {
    input,
    encoding: 'utf8',
    timeout: TIMEOUT_MS,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`scapy exited ${r.status}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as ScapyPacket[];
}
