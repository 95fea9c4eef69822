/**
 * `fullnat ctl` against a control socket the test serves: an LB stand-in
 * that records each request and answers listings from the test's fixture,
 * the socket in a temporary directory, and runs of ctl with their output
 * captured.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCtl, type RunCtlOptions } from '../../src/control/ctl/index.js';
import { createLogger } from '../../src/control/log.js';
import type {
  ConnectionStatus,
  ControlApi,
  ControlRequest,
  ControlResponse,
  Snapshot,
} from '../../src/control/model.js';
import { startControlServer } from '../../src/control/socket/index.js';

/**
 * Records every request; answers `snapshot` and `connections` from the
 * test's fixture, refuses everything with `refuse` when set, and accepts
 * any other request.
 */
export class RecordingLb implements ControlApi {
  readonly requests: ControlRequest[] = [];
  refuse: string | undefined;

  constructor(
    private readonly snapshot: () => Snapshot,
    private readonly connections: ConnectionStatus[],
  ) {}

  async handle(req: ControlRequest): Promise<ControlResponse> {
    this.requests.push(req);
    if (this.refuse) return { ok: false, error: this.refuse };
    switch (req.op) {
      case 'snapshot':
        return { ok: true, snapshot: this.snapshot() };
      case 'connections':
        return { ok: true, connections: this.connections };
      default:
        return { ok: true };
    }
  }
}

export interface CtlRun {
  code: number;
  out: string[];
  err: string[];
}

export interface CtlBench {
  /** The control socket's path. */
  path: string;
  /** `fullnat ctl ARGV` against the socket, listings headed with version `t`. */
  run(argv: string[], extra?: RunCtlOptions): Promise<CtlRun>;
  close(): Promise<void>;
}

/** Serves `api` on a control socket in a new temporary directory named from `prefix`. */
export async function serveCtl(api: ControlApi, prefix: string): Promise<CtlBench> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const path = join(dir, 'fullnat.sock');
  const server = await startControlServer(path, api, createLogger({ level: 'silent' }));
  return {
    path,
    async run(argv, extra = {}) {
      const out: string[] = [];
      const err: string[] = [];
      const code = await runCtl(argv, path, (l) => out.push(l), {
        err: (l) => err.push(l),
        version: 't',
        ...extra,
      });
      return { code, out, err };
    },
    async close() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
