/**
 * The connection keywords keepalived's socket checkers share (HTTP_GET,
 * SSL_GET, SMTP_CHECK, DNS_CHECK, PING_CHECK): connect_ip, connect_port,
 * bindto, connect_timeout; and the family check once the block is read.
 */
import { addressFamily, addressToString, type IpAddress } from '../../../wire/address.js';
import type { Cursor, Handler } from '../cursor.js';
import { CONFIG_DEFAULTS } from '../defaults.js';
import { fail } from '../error.js';
import type { Token } from '../lexer.js';
import { port, seconds } from '../values.js';
import type { RsDraft } from './draft.js';
import { address } from './udp-check.js';

export interface ConnectDraft {
  connectTimeout: number;
  connectPort?: number;
  connectIp?: IpAddress;
  bindto?: IpAddress;
  bindTok?: Token;
}

export const connectDraft = (): ConnectDraft => ({
  connectTimeout: CONFIG_DEFAULTS.connectTimeout,
});

/** connect_timeout, connect_ip, bindto, and connect_port unless the checker has no port (PING_CHECK). */
export function connectHandlers(
  cur: Cursor,
  c: ConnectDraft,
  withPort = true,
): Record<string, Handler> {
  const h: Record<string, Handler> = {
    connect_timeout: (k) => (c.connectTimeout = seconds(cur.value(k), k.text, false)),
    connect_ip: (k) => (c.connectIp = address(cur.value(k), k.text)),
    bindto: (k) => {
      c.bindTok = cur.value(k);
      c.bindto = address(c.bindTok, k.text);
    },
  };
  if (withPort) h.connect_port = (k) => (c.connectPort = port(cur.value(k), 'connect_port'));
  return h;
}

/** A source address of the other family could never reach the target: refused at load. */
export function checkBindFamily(c: ConnectDraft, rs: RsDraft): void {
  if (c.bindto === undefined || !c.bindTok) return;
  const target = c.connectIp ?? rs.addr;
  if (addressFamily(c.bindto) !== addressFamily(target)) {
    fail(
      c.bindTok,
      `bindto ${c.bindTok.text} is IPv${addressFamily(c.bindto)} but the check goes to IPv${addressFamily(target)} ${addressToString(target)}`,
    );
  }
}

/** The spec's connection fields, the unset ones absent. */
export function connectFields(c: ConnectDraft): {
  connectTimeout: number;
  connectPort?: number;
  connectIp?: IpAddress;
  bindto?: IpAddress;
} {
  return {
    connectTimeout: c.connectTimeout,
    ...(c.connectPort === undefined ? {} : { connectPort: c.connectPort }),
    ...(c.connectIp === undefined ? {} : { connectIp: c.connectIp }),
    ...(c.bindto === undefined ? {} : { bindto: c.bindto }),
  };
}
