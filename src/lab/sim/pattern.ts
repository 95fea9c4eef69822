/**
 * The application protocol of the simulated client and server:
 * `REQ <n>\n` + n pattern bytes, answered by `RESP <m>\n` + m pattern bytes.
 *
 * The pattern starts with the client's true (ip, port) in 6 bytes and goes on
 * with a PRNG stream seeded by them. So the server can check a request is
 * intact without being told who sent it (it may only see a LIP), and the
 * runner can tie each server-side record to the client that sent it — the
 * application-level truth against which the RS's `getpeername()` is judged.
 */
import { get16, get32, set16, set32 } from '../../wire/bytes.js';
import { mix32, Rng } from './rng.js';
import type { Endpoint } from './segment.js';

export const REQUEST_TAG = 'REQ';
export const REQUEST_SALT = 0x52455131;
export const RESPONSE_SALT = 0x52455350;
/** The key prefix: 4 bytes of address, 2 of port. */
export const PATTERN_KEY_LEN = 6;
const MAX_HEADER = 24;
const MAX_BODY = 1 << 24;

export function patternBytes(key: Endpoint, n: number, salt: number): Uint8Array {
  const out = new Uint8Array(n);
  const head = new Uint8Array(PATTERN_KEY_LEN);
  set32(head, 0, key.addr);
  set16(head, 4, key.port);
  out.set(head.subarray(0, Math.min(PATTERN_KEY_LEN, n)));
  const rng = new Rng(mix32(key.addr, key.port, salt));
  for (let i = PATTERN_KEY_LEN; i < n; i++) out[i] = rng.u32() & 0xff;
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
  if (n < PATTERN_KEY_LEN)
    throw new RangeError(`a request needs at least ${PATTERN_KEY_LEN} bytes`);
  return frame(REQUEST_TAG, patternBytes(key, n, REQUEST_SALT));
}

export function buildResponse(key: Endpoint, m: number): Uint8Array {
  return frame('RESP', patternBytes(key, m, RESPONSE_SALT));
}

/** Incremental reader of one framed message; bytes after it make it not intact. */
export class MessageReader {
  state: 'header' | 'body' | 'complete' | 'bad' = 'header';
  /** The (ip, port) found in the body's first 6 bytes, once complete. */
  key: Endpoint | null = null;
  /** Bytes received beyond the declared message. */
  extra = 0;
  received = 0;
  private header = '';
  private bodyLen = 0;
  private readonly chunks: Uint8Array[] = [];
  private bodyGot = 0;
  private verified = false;

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
    const m = /^([A-Z]+) (\d{1,9})$/.exec(this.header);
    if (!m || m[1] !== this.tag || Number(m[2]) > MAX_BODY) {
      this.state = 'bad';
      return;
    }
    this.bodyLen = Number(m[2]);
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
    if (body.length < PATTERN_KEY_LEN) return;
    const key = { addr: get32(body, 0), port: get16(body, 4) };
    this.key = key;
    if (this.expectKey && (this.expectKey.addr !== key.addr || this.expectKey.port !== key.port))
      return;
    const want = patternBytes(key, body.length, this.salt);
    this.verified = want.every((v, j) => body[j] === v);
  }
}
