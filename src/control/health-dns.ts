/**
 * DNS_CHECK as keepalived runs it: one query over UDP from a connected
 * socket (so an ICMP port unreachable fails it at once); an answer with the
 * query's id, the response bit and RCODE NOERROR passes.
 */
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';

import { addressToString } from '../wire/address.js';
import { startAttempt } from './health-attempt.js';
import type { Probe, ProbeResult } from './health-probe.js';
import { DNS_QUERY_TYPES, type DnsCheckSpec, type RealServerSpec } from './model.js';

const CLASS_IN = 1;
const HEADER_LEN = 12;
const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

/** RFC 1035 4.1: a header asking recursion, one question of `type` IN for `name`. */
export function dnsQuery(id: number, name: string, type: DnsCheckSpec['type']): Buffer {
  const labels = name === '.' ? [] : name.split('.');
  const qname = Buffer.concat([
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')])),
    Buffer.from([0]),
  ]);
  const msg = Buffer.alloc(HEADER_LEN + qname.length + 4);
  msg.writeUInt16BE(id, 0);
  msg.writeUInt16BE(0x0100, 2); // RD
  msg.writeUInt16BE(1, 4); // QDCOUNT
  qname.copy(msg, HEADER_LEN);
  msg.writeUInt16BE(DNS_QUERY_TYPES[type], HEADER_LEN + qname.length);
  msg.writeUInt16BE(CLASS_IN, HEADER_LEN + qname.length + 2);
  return msg;
}

/** Why `reply` does not answer query `id` with NOERROR, or undefined when it does. */
export function dnsReplyProblem(reply: Buffer, id: number): string | undefined {
  if (reply.length < HEADER_LEN) return `reply of ${reply.length} bytes (no DNS header)`;
  if (reply.readUInt16BE(0) !== id) return 'reply with another id';
  const flags = reply.readUInt16BE(2);
  if ((flags & 0x8000) === 0) return 'not a response (QR clear)';
  const rcode = flags & 0x0f;
  if (rcode !== 0) return `RCODE ${RCODE_NAMES[rcode] ?? rcode}`;
  return undefined;
}

export function runDnsProbe(
  real: RealServerSpec,
  check: DnsCheckSpec,
  done: (r: ProbeResult) => void,
): Probe {
  const host = addressToString(check.connectIp ?? real.addr);
  const port = check.connectPort ?? real.port;
  const timeoutS = check.connectTimeout;
  const sock = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
  const a = startAttempt(
    timeoutS,
    () => ({ ok: false, reason: `no reply after ${timeoutS}s` }),
    () => sock.close(),
    done,
  );
  const id = randomInt(0, 0x10000);
  // ECONNREFUSED here is the ICMP port unreachable for the connected peer.
  sock.on('error', (e: NodeJS.ErrnoException) =>
    a.finish({ ok: false, reason: e.code ?? e.message }),
  );
  sock.on('message', (msg: Buffer) => {
    const problem = dnsReplyProblem(msg, id);
    // A stray datagram with another id is not the answer: keep waiting for it.
    if (problem === 'reply with another id') return;
    a.finish(problem ? { ok: false, reason: problem } : { ok: true, reason: 'NOERROR' });
  });
  sock.once('connect', () => {
    if (a.ended()) return;
    sock.send(dnsQuery(id, check.name, check.type), (err) => {
      if (err) a.finish({ ok: false, reason: (err as NodeJS.ErrnoException).code ?? err.message });
    });
  });
  const connect = (): void => {
    if (!a.ended()) sock.connect(port, host);
  };
  if (check.bindto === undefined) connect();
  else sock.bind({ address: addressToString(check.bindto), port: 0 }, connect);
  return a.probe;
}
