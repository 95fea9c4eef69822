/**
 * The lab's side of fixtures/cluster-client.ts: long-lived connections
 * held open (`HoldClients`) and a burst of new connections (`runBurst`),
 * both in the client namespace, their output read back as typed records.
 */
import type { ChildProcess } from 'node:child_process';
import { onJsonLines } from './json-lines.js';
import { HOLD_SOURCES, VIP, VPORT } from './plan.js';
import { CLUSTER_CLIENT, type ClusterTopology } from './topology.js';

/** One long-lived connection once open: its client end, and the peer the RS saw. */
export interface HeldConnection {
  i: number;
  local: string;
  peer: string;
  rs: string;
}

/** How a long-lived connection ended up when the clients stopped. */
export interface HeldOutcome {
  i: number;
  local: string;
  state: 'open' | 'broken' | 'failed' | 'opening';
  reason: string | null;
  /** When it broke (epoch ms); 0 if it did not. */
  at: number;
}

export interface HoldOptions {
  count: number;
  intervalMs?: number;
  brokenAfterMs?: number;
  /** The clients stop by themselves after this, whatever the lab does. */
  maxMs: number;
}

export class HoldClients {
  readonly opened: HeldConnection[] = [];
  failed = 0;
  private readonly outcomes: HeldOutcome[] = [];
  private err = '';
  private readonly done: Promise<void>;
  private readonly exited: Promise<void>;
  private stopping: Promise<HeldOutcome[]> | undefined;

  private constructor(
    private readonly child: ChildProcess,
    ready: (err?: Error) => void,
  ) {
    let resolveDone: () => void = () => {};
    this.done = new Promise((r) => (resolveDone = r));
    this.exited = new Promise((r) => child.once('exit', () => r()));
    child.stderr?.on('data', (c: Buffer) => (this.err = (this.err + c.toString()).slice(-4000)));
    onJsonLines(child, (o) => {
      if (o.event === 'open') this.opened.push(o as unknown as HeldConnection);
      else if (o.event === 'failed') this.failed++;
      else if (o.event === 'ready') ready();
      else if (o.event === 'result') this.outcomes.push(o as unknown as HeldOutcome);
      else if (o.event === 'done') resolveDone();
    });
    child.once('exit', (code) => {
      resolveDone();
      ready(new Error(`the hold clients exited (${code}) before they were ready: ${this.err}`));
    });
  }

  /** Opens `count` connections; resolves once every one is open or has failed. */
  static async start(topo: ClusterTopology, o: HoldOptions): Promise<HoldClients> {
    const child = topo.lab.spawn(
      'c',
      process.execPath,
      [
        CLUSTER_CLIENT,
        'hold',
        '--vip',
        VIP,
        '--port',
        String(VPORT),
        '--from',
        HOLD_SOURCES.join(','),
        '--count',
        String(o.count),
        '--interval',
        String(o.intervalMs ?? 100),
        '--broken-after',
        String(o.brokenAfterMs ?? 2000),
        '--max-ms',
        String(o.maxMs),
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let settle: (err?: Error) => void = () => {};
    const ready = new Promise<void>((resolve, reject) => {
      let once = false;
      settle = (err?: Error) => {
        if (once) return;
        once = true;
        if (err) reject(err);
        else resolve();
      };
    });
    const h = new HoldClients(child, (e) => settle(e));
    const timer = setTimeout(
      () => settle(new Error('the hold clients did not open their connections in time')),
      o.count * 5 + 15_000,
    );
    try {
      await ready;
    } catch (e) {
      child.kill('SIGKILL');
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return h;
  }

  /** Stops the echoes and closes the connections; returns how each ended up. Idempotent. */
  stop(): Promise<HeldOutcome[]> {
    this.stopping ??= (async () => {
      this.child.stdin?.end('stop\n');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      await this.done;
      await this.exited;
      clearTimeout(t);
      return this.outcomes;
    })();
    return this.stopping;
  }
}

// ------------------------------------------------------------------ burst

export interface BurstOptions {
  /** First tuple (plan.ts burstTuple) and how many the generator may use. */
  first: number;
  pool: number;
  total: number;
  rate: number;
  attemptMs: number;
  deadlineMs: number;
  maxInflight?: number;
}

/** One attempt: connection, tuple, start and end (epoch ms), outcome ('ok', 'timeout', an errno…). */
export interface BurstAttempt {
  i: number;
  tuple: number;
  start: number;
  end: number;
  outcome: string;
}

export interface BurstConnection {
  i: number;
  first: number;
  /** Epoch ms of the RS's answer; -1 when it never came within the deadline. */
  okAt: number;
  realIp: boolean;
  attempts: number;
}

export interface BurstRun {
  startedAt: number;
  connections: BurstConnection[];
  attempts: BurstAttempt[];
  /** Tuples the generator used: [first, first + used). */
  used: number;
}

/** Runs the generator to its end; `onStart` hears its start time (epoch ms) as it starts. */
export async function runBurst(
  topo: ClusterTopology,
  o: BurstOptions,
  onStart: (at: number) => void = () => {},
): Promise<BurstRun> {
  const child = topo.lab.spawn('c', process.execPath, [
    CLUSTER_CLIENT,
    'burst',
    '--vip',
    VIP,
    '--port',
    String(VPORT),
    '--first',
    String(o.first),
    '--pool',
    String(o.pool),
    '--total',
    String(o.total),
    '--rate',
    String(o.rate),
    '--attempt-ms',
    String(o.attemptMs),
    '--deadline-ms',
    String(o.deadlineMs),
    '--max-inflight',
    String(o.maxInflight ?? 500),
  ]);
  const run: BurstRun = { startedAt: 0, connections: [], attempts: [], used: 0 };
  let err = '';
  let finished = false;
  child.stderr?.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
  onJsonLines(child, (o) => {
    if (Array.isArray(o.a)) {
      const [i, tuple, start, end, outcome] = o.a as [number, number, number, number, string];
      run.attempts.push({ i, tuple, start, end, outcome });
    } else if (Array.isArray(o.c)) {
      const [i, first, okAt, realIp, attempts] = o.c as number[];
      run.connections.push({
        i: i!,
        first: first!,
        okAt: okAt!,
        realIp: realIp === 1,
        attempts: attempts!,
      });
    } else if (o.event === 'start') {
      run.startedAt = o.at as number;
      onStart(run.startedAt);
    } else if (o.event === 'done') finished = true;
  });
  const limit = (o.total / o.rate) * 1000 + o.deadlineMs + 20_000;
  const code = await new Promise<number | null>((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), limit);
    child.once('exit', (c) => {
      clearTimeout(t);
      resolve(c);
    });
  });
  if (!finished)
    throw new Error(`the new-connection generator ended early (${code}): ${err.trim()}`);
  run.used = run.attempts.reduce((m, a) => Math.max(m, a.tuple - o.first + 1), 0);
  return run;
}
