/**
 * One accepted control connection: request lines in, response lines out, in
 * order. Lines are capped at MAX_REQUEST_LINE bytes, read-ahead is bounded,
 * and an idle connection is closed.
 */
import type net from 'node:net';
import type { Logger } from 'pino';

import type { ControlApi, ControlResponse } from '../model.js';
import { errMessage } from './errors.js';
import { MAX_REQUEST_LINE } from './protocol.js';
import { validateControlRequest } from './validate.js';
import { toWireJson } from './wire-json.js';

/** An idle control connection is closed after this long. */
export const CONTROL_IDLE_TIMEOUT_MS = 30_000;
/** Lines read ahead of the one being handled before the socket is paused. */
const MAX_QUEUED_LINES = 16;

export function serveConnection(socket: net.Socket, api: ControlApi, log: Logger): void {
  const queue: string[] = [];
  let pending: Buffer[] = [];
  let pendingLen = 0;
  let busy = false;
  let dead = false;
  let inputEnded = false;

  // Idle means no request in flight either: a slow reload must not cut its own reply off.
  socket.setTimeout(CONTROL_IDLE_TIMEOUT_MS, () => {
    if (!busy) socket.destroy();
  });
  socket.on('error', (e) => log.debug({ err: e }, 'control connection error'));
  socket.on('close', () => {
    dead = true;
  });

  const send = (r: ControlResponse): void => {
    if (dead || socket.destroyed) return;
    let line: string;
    try {
      line = toWireJson(r);
    } catch (e) {
      line = JSON.stringify({ ok: false, error: `internal error: ${errMessage(e)}` });
    }
    socket.write(`${line}\n`);
  };

  const refuseAndClose = (error: string): void => {
    dead = true;
    queue.length = 0;
    pending = [];
    pendingLen = 0;
    socket.pause();
    if (!socket.destroyed) socket.end(`${JSON.stringify({ ok: false, error })}\n`);
  };

  const handleLine = async (line: string): Promise<ControlResponse> => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (e) {
      return { ok: false, error: `malformed JSON: ${errMessage(e)}` };
    }
    const v = validateControlRequest(parsed);
    if (!v.ok) return v;
    try {
      return await api.handle(v.request);
    } catch (e) {
      log.error({ err: e, op: v.request.op }, 'control request failed');
      return { ok: false, error: errMessage(e) };
    }
  };

  const pump = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    while (queue.length > 0 && !dead) {
      const line = queue.shift()!;
      if (queue.length < MAX_QUEUED_LINES && socket.isPaused()) socket.resume();
      send(await handleLine(line));
    }
    busy = false;
    if (inputEnded && !dead && !socket.destroyed) socket.end();
  };

  socket.on('data', (chunk: Buffer) => {
    if (dead) return;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      const tail = chunk.subarray(start, nl);
      if (pendingLen + tail.length > MAX_REQUEST_LINE) {
        refuseAndClose(`request line exceeds ${MAX_REQUEST_LINE} bytes`);
        return;
      }
      const buf = pendingLen === 0 ? tail : Buffer.concat([...pending, tail]);
      pending = [];
      pendingLen = 0;
      // Tolerate CRLF from hand-typed sessions (socat, nc -U).
      const line = buf.toString('utf8').replace(/\r$/, '');
      if (line.trim() !== '') queue.push(line);
      start = nl + 1;
    }
    const rest = chunk.subarray(start);
    if (pendingLen + rest.length > MAX_REQUEST_LINE) {
      refuseAndClose(`request line exceeds ${MAX_REQUEST_LINE} bytes`);
      return;
    }
    if (rest.length > 0) {
      // Copy: the chunk's backing memory belongs to the stream.
      pending.push(Buffer.from(rest));
      pendingLen += rest.length;
    }
    if (queue.length >= MAX_QUEUED_LINES) socket.pause();
    void pump();
  });

  socket.on('end', () => {
    inputEnded = true;
    if (dead) return;
    // A last request without its newline still counts once the client has shut its side.
    if (pendingLen > 0) {
      const line = Buffer.concat(pending, pendingLen).toString('utf8').replace(/\r$/, '');
      pending = [];
      pendingLen = 0;
      if (line.trim() !== '') queue.push(line);
    }
    void pump();
  });
}
