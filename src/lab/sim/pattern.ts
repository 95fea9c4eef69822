/**
 * The application protocol of the simulated client and server:
 * `REQ <n>\n` + n pattern bytes, answered by `RESP <m>\n` + m pattern bytes.
 *
 * The pattern starts with the client's true (ip, port) and goes on with a
 * PRNG stream seeded by them. So the server can check a request is intact
 * without being told who sent it (it may only see a LIP), and the runner can
 * tie each server-side record to the client that sent it — the
 * application-level truth against which the RS's `getpeername()` is judged.
 *
 * An IPv4 client's key is 6 bytes (address, port) after `REQ <n>`; an IPv6
 * client's is 18 bytes (16 of address, 2 of port) after `REQ6 <n>`: the tag
 * says which, so a reader on an IPv4 real server behind FNAT64 still finds
 * the IPv6 client.
 */
import { Ipv6Address } from '../../wire/address.js';
import { get16, get32, set16, set32 } from '../../wire/bytes.js';
import { mix32, Rng } from './rng.js';
import { addressSeed, sameEndpoint, type Endpoint } from './segment.js';

export const REQUEST_TAG = 'REQ';
export const REQUEST_SALT = 0x52455131;
export const RESPONSE_SALT = 0x52455350;
/** The key prefix of an IPv4 client: 4 bytes of address, 2 of port. */
export const PATTERN_KEY_LEN = 6;
/** The key prefix of an IPv6 client: 16 bytes of address, 2 of port. */
export const PATTERN_KEY_LEN6 = 18;
const MAX_HEADER = 24;
const MAX_BODY = 1 << 24;

export function patternKeyLength(key: Endpoint): number {
  return typeof key.addr === 'number' ? PATTERN_KEY_LEN : PATTERN_KEY_LEN6;
}

/** The tag of a message keyed by `key`: `REQ` or `REQ6`, `RESP` or `RESP6`. */
function tagFor(tag: 'REQ' | 'RESP', key: Endpoint): string {
  return typeof key.addr === 'number' ? tag : `${tag}6`;
}

/** Bytes of the `REQ <n>\n` line before a request body of n bytes from `key`. */
export function requestHeaderLength(key: Endpoint, n: number): number {
  return `${tagFor(REQUEST_TAG, key)} ${n}\n`.length;
}

export function patternBytes(key: Endpoint, n: number, salt: number): Uint8Array {
  const keyLen = patternKeyLength(key);
  const out = new Uint8Array(n);
  const head = new Uint8Array(keyLen);
  if (typeof key.addr === 'number') set32(head, 0, key.addr);
  else head.set(key.addr.bytes);
  set16(head, keyLen - 2, key.port);
  out.set(head.subarray(0, Math.min(keyLen, n)));
  const rng = new Rng(mix32(addressSeed(key.addr), key.port, salt));
  for (let i = keyLen; i < n; i++) out[i] = rng.u32() & 0xff;
  return out;
}

function frame(tag: string, body: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(`${tag} ${body.length}\n`);
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

export function buildRequest(key: Endpoint, n: number): Uint8Array {
  const keyLen = patternKeyLength(key);
  if (n < keyLen) throw new RangeError(`a request needs at least ${keyLen} bytes`);
  return frame(tagFor(REQUEST_TAG, key), patternBytes(key, n, REQUEST_SALT));
}

export function buildResponse(key: Endpoint, m: number): Uint8Array {
  return frame(tagFor('RESP', key), patternBytes(key, m, RESPONSE_SALT));
}

/** Incremental reader of one framed message; bytes after it make it not intact. */
export class MessageReader {
  state: 'header' | 'body' | 'complete' | 'bad' = 'header';
  /** The (ip, port) found in the body's first 6 (IPv6: 18) bytes, once complete. */
  key: Endpoint | null = null;
  /** Bytes received beyond the declared message. */
  extra = 0;
  received = 0;
  private header = '';
  private bodyLen = 0;
  private readonly chunks: Uint8Array[] = [];
  private bodyGot = 0;
  private verified = false;
  /** The tag ended in 6: the key is an IPv6 one. */
  private v6 = false;

  constructor(
    private readonly tag: 'REQ' | 'RESP',
    private readonly salt: number,
    /** When set (the client), the key must equal it. */
    private readonly expectKey: Endpoint | null = null,
  ) {}

  push(bytes: Uint8Array): void {
    this.received += bytes.length;
    let i = 0;
    while (this.state === 'header' && i < bytes.length) {
      const c = bytes[i++]!;
      if (c === 0x0a) this.endHeader();
      else if (this.header.length >= MAX_HEADER) this.state = 'bad';
      else this.header += String.fromCharCode(c);
    }
    if (i >= bytes.length) return;
    if (this.state === 'body') {
      const take = Math.min(this.bodyLen - this.bodyGot, bytes.length - i);
      this.chunks.push(bytes.slice(i, i + take));
      this.bodyGot += take;
      i += take;
      if (this.bodyGot === this.bodyLen) this.finishBody();
    }
    if (i < bytes.length && this.state === 'complete') this.extra += bytes.length - i;
  }

  /** Complete, byte-exact, nothing extra. */
  intact(): boolean {
    return this.state === 'complete' && this.verified && this.extra === 0;
  }

  private endHeader(): void {
    const m = /^([A-Z]+)(6?) (\d{1,9})$/.exec(this.header);
    if (!m || m[1] !== this.tag || Number(m[3]) > MAX_BODY) {
      this.state = 'bad';
      return;
    }
    this.v6 = m[2] === '6';
    this.bodyLen = Number(m[3]);
    this.state = 'body';
    if (this.bodyLen === 0) this.finishBody();
  }

  private finishBody(): void {
    this.state = 'complete';
    const body = new Uint8Array(this.bodyLen);
    let o = 0;
    for (const c of this.chunks) {
      body.set(c, o);
      o += c.length;
    }
    this.chunks.length = 0;
    if (body.length < (this.v6 ? PATTERN_KEY_LEN6 : PATTERN_KEY_LEN)) return;
    const key: Endpoint = this.v6
      ? { addr: Ipv6Address.fromBytes(body, 0), port: get16(body, 16) }
      : { addr: get32(body, 0), port: get16(body, 4) };
    this.key = key;
    if (this.expectKey && !sameEndpoint(this.expectKey, key)) return;
    const want = patternBytes(key, body.length, this.salt);
    this.verified = want.every((v, j) => body[j] === v);
  }
}
