/**
 * Sync channels over real UDP on 127.0.0.1 for the channel's tests: free
 * ports, SyncSpecs of a fleet on one host, FleetSyncs with fake tables, a
 * raw peer that sends hand-made datagrams from a peer's address, a
 * recording logger, and `until` (poll with a deadline, no timing asserts).
 */
import { createSocket, type Socket } from 'node:dgram';

import { pino, type Logger } from 'pino';

import type { SyncSpec } from '../../src/control/model.js';
import { FleetSync, type FleetSyncOptions } from '../../src/control/sync/sync.js';
import { deriveSyncKeys } from '../../src/control/sync/key.js';
import {
  MAX_DATAGRAM,
  sealMessage,
  writeMessageHeader,
  type MessageHeader,
} from '../../src/control/sync/sync-message.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { FakeSyncTable } from './fake-sync-table.js';

export const LOCALHOST = parseIpv4('127.0.0.1');
export const FLEET_KEY = Buffer.from('a fleet key of more than sixteen bytes');
export const MAC_KEY = deriveSyncKeys(FLEET_KEY).macKey;

/** Ports free on 127.0.0.1 a moment ago (each bound once to port 0). */
export async function freePorts(n: number): Promise<number[]> {
  const socks: Socket[] = [];
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    ports.push(s.address().port);
    socks.push(s);
  }
  await Promise.all(socks.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

/** Node `id` (1-based) of a fleet whose node k listens on ports[k-1]. */
export function fleetSpec(id: number, ports: number[], over: Partial<SyncSpec> = {}): SyncSpec {
  return {
    nodeId: id,
    nodes: ports.length,
    listen: { addr: LOCALHOST, port: ports[id - 1]! },
    keyFile: '/unused',
    peers: ports
      .map((port, i) => ({ nodeId: i + 1, port }))
      .filter((p) => p.nodeId !== id)
      .map((p) => ({
        addr: LOCALHOST,
        port: p.port,
        nodeId: p.nodeId,
        lipPrefixes: [{ addr: parseIpv4(`10.9.${p.nodeId}.0`), length: 28 }],
        pos: { file: 't', line: 1 },
      })),
    maxSynced: 100_000,
    heartbeatMs: 20,
    resyncTimeoutMs: 500,
    pos: { file: 't', line: 1 },
    ...over,
  };
}

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** A pino logger whose lines are kept (debug and up). */
export function recordingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino(
    { level: 'debug' },
    { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) },
  );
  return { log, lines };
}

export interface Node {
  sync: FleetSync;
  table: FakeSyncTable;
  lines: LogLine[];
}

/** A FleetSync for node `id` with a fresh fake table (or the one given). */
export async function startNode(
  id: number,
  ports: number[],
  over: Partial<SyncSpec> = {},
  opts: Partial<FleetSyncOptions> & { table?: FakeSyncTable } = {},
): Promise<Node> {
  const table = opts.table ?? new FakeSyncTable();
  const { log, lines } = recordingLogger();
  const sync = await FleetSync.start({
    spec: fleetSpec(id, ports, over),
    key: FLEET_KEY,
    table,
    log,
    flushMs: 5,
    sweepMs: 50,
    ...opts,
  });
  return { sync, table, lines };
}

/** Polls `cond` every 5 ms until it holds; fails with `what` after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A socket bound where a peer listens, sending hand-made datagrams to one node. */
export class RawPeer {
  readonly received: Buffer[] = [];
  private constructor(
    readonly socket: Socket,
    readonly to: number,
  ) {
    socket.on('message', (m) => this.received.push(m));
  }

  static async bind(port: number, to: number): Promise<RawPeer> {
    const s = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
    await new Promise<void>((r) => s.bind(port, '127.0.0.1', () => r()));
    return new RawPeer(s, to);
  }

  send(msg: Uint8Array): Promise<void> {
    return new Promise((r, j) =>
      this.socket.send(msg, this.to, '127.0.0.1', (e) => (e ? j(e) : r())),
    );
  }

  close(): Promise<void> {
    return new Promise((r) => this.socket.close(() => r()));
  }
}

/** A sealed message; `records` fills the record area (default: zeros). */
export function craft(
  h: MessageHeader,
  receiver: number,
  opts: { key?: Uint8Array; records?: (buf: Uint8Array, off: number) => void } = {},
): Uint8Array {
  const buf = new Uint8Array(MAX_DATAGRAM);
  const body = writeMessageHeader(buf, h);
  opts.records?.(buf, 24);
  return buf.slice(0, sealMessage(buf, body, opts.key ?? MAC_KEY, receiver));
}
