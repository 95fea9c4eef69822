/** The client side: one request, one response line, transport failures as ControlClientError. */
import net from 'node:net';

import type { ControlRequest, ControlResponse } from '../model.js';
import { errMessage, errnoCode } from './errors.js';
import { MAX_RESPONSE_LINE } from './protocol.js';
import { isRecord } from './validate.js';
import { fromWireJson, toWireJson } from './wire-json.js';

export class ControlClientError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'ControlClientError';
  }
}

function connectError(path: string, e: unknown): ControlClientError {
  const code = errnoCode(e) ?? 'EUNKNOWN';
  switch (code) {
    case 'ENOENT':
      return new ControlClientError(`no fullnat running: ${path} not found`, code);
    case 'ECONNREFUSED':
      return new ControlClientError(
        `no fullnat running: nothing listens on ${path} (stale socket)`,
        code,
      );
    case 'EACCES':
    case 'EPERM':
      return new ControlClientError(
        `permission denied: ${path} is root-only (mode 0600); run fullnat ctl as root`,
        code,
      );
    default:
      return new ControlClientError(`cannot reach fullnat on ${path}: ${errMessage(e)}`, code);
  }
}

function checkResponse(v: unknown): ControlResponse {
  if (!isRecord(v) || typeof v.ok !== 'boolean') {
    throw new ControlClientError('fullnat sent a response that is not a ControlResponse', 'EPROTO');
  }
  if (!v.ok && typeof v.error !== 'string') {
    throw new ControlClientError('fullnat sent an error response without a message', 'EPROTO');
  }
  // The server is our own process behind a root-only socket; its payload shape is trusted.
  return v as ControlResponse;
}

/** Sends one request and waits for its response line. Transport failures reject with ControlClientError. */
export function sendControlRequest(
  path: string,
  req: ControlRequest,
  timeoutMs = 5000,
): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let len = 0;
    let settled = false;
    const socket = net.createConnection({ path });
    const finish = (err: Error | undefined, res?: ControlResponse): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(res!);
    };
    const timer = setTimeout(
      () =>
        finish(
          new ControlClientError(
            `timed out after ${timeoutMs} ms waiting for fullnat on ${path}`,
            'ETIMEDOUT',
          ),
        ),
      timeoutMs,
    );
    const hungUp = (): ControlClientError =>
      new ControlClientError(`fullnat closed ${path} without a response`, 'ECONNRESET');
    let connected = false;
    socket.once('connect', () => {
      connected = true;
      socket.write(`${toWireJson(req)}\n`);
    });
    socket.on('data', (chunk: Buffer) => {
      const nl = chunk.indexOf(0x0a);
      const part = nl < 0 ? chunk : chunk.subarray(0, nl);
      len += part.length;
      if (len > MAX_RESPONSE_LINE) {
        finish(new ControlClientError(`response exceeds ${MAX_RESPONSE_LINE} bytes`, 'E2BIG'));
        return;
      }
      chunks.push(part);
      if (nl < 0) return;
      let parsed: unknown;
      try {
        parsed = fromWireJson(Buffer.concat(chunks, len).toString('utf8'));
      } catch (e) {
        finish(new ControlClientError(`fullnat sent malformed JSON: ${errMessage(e)}`, 'EPROTO'));
        return;
      }
      try {
        finish(undefined, checkResponse(parsed));
      } catch (e) {
        finish(e instanceof Error ? e : new Error(String(e)));
      }
    });
    socket.once('error', (e) => {
      const code = errnoCode(e);
      if (!connected) finish(connectError(path, e));
      else if (code === 'EPIPE' || code === 'ECONNRESET') finish(hungUp());
      else
        finish(
          new ControlClientError(
            `control connection to ${path} failed: ${errMessage(e)}`,
            code ?? 'EIO',
          ),
        );
    });
    socket.once('close', () => finish(hungUp()));
  });
}
