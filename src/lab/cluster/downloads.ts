/**
 * The lab's side of fixtures/download-client.ts: the long downloads held in
 * the client namespace (`Downloads`) and a round of short connections
 * (`runProbes`), their output read back as typed records.
 */
import type { ChildProcess } from 'node:child_process';
import { onJsonLines } from './json-lines.js';
import { HOLD_SOURCES, VIP, VPORT } from './plan.js';
import { DOWNLOAD_CLIENT, type ClusterTopology } from './topology.js';

/** One download once its response head is in: its client end, and the peer the RS saw. */
export interface DownloadOpen {
  i: number;
  local: string;
  peer: string;
  rs: string;
}

/** How a download ended. `reason`: reset, short, timeout, http, deadline, an errno; null when completed. */
export interface DownloadResult {
  i: number;
  local: string;
  peer: string | null;
  rs: string;
  state: 'completed' | 'broken';
  reason: string | null;
  bytes: number;
  sha256Ok: boolean;
  /** Epoch ms. */
  start: number;
  end: number;
}

export interface DownloadOptions {
  count: number;
  bytes: number;
  sha256: string;
  /** No byte for this long: broken. */
  stallMs: number;
  /** The client stops by itself after this, whatever the lab does. */
  maxMs: number;
  openIntervalMs?: number;
}

export class Downloads {
  readonly opened: DownloadOpen[] = [];
  readonly results: DownloadResult[] = [];
  /** Bytes received over all downloads, as last reported (every second). */
  bytes = 0;
  startedAt = 0;
  private err = '';
  private flowingAt = 0;
  private readonly flowing: Promise<number>;
  private readonly done: Promise<void>;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    private readonly o: DownloadOptions,
  ) {
    let onFlowing: (at: number) => void = () => {};
    let onDone: () => void = () => {};
    this.flowing = new Promise((r) => (onFlowing = r));
    this.done = new Promise((r) => (onDone = r));
    this.exited = new Promise((r) => child.once('exit', () => r()));
    child.stderr?.on('data', (c: Buffer) => (this.err = (this.err + c.toString()).slice(-4000)));
    onJsonLines(child, (m) => {
      if (m.event === 'open') this.opened.push(m as unknown as DownloadOpen);
      else if (m.event === 'result') this.results.push(m as unknown as DownloadResult);
      else if (m.event === 'progress') this.bytes = m.bytes as number;
      else if (m.event === 'flowing') {
        this.flowingAt = m.at as number;
        onFlowing(this.flowingAt);
      } else if (m.event === 'done') onDone();
    });
    child.once('exit', () => {
      onFlowing(0);
      onDone();
    });
  }

  static start(topo: ClusterTopology, o: DownloadOptions): Downloads {
    const child = topo.lab.spawn('c', process.execPath, [
      DOWNLOAD_CLIENT,
      'download',
      '--vip',
      VIP,
      '--port',
      String(VPORT),
      '--from',
      HOLD_SOURCES.join(','),
      '--count',
      String(o.count),
      '--bytes',
      String(o.bytes),
      '--sha256',
      o.sha256,
      '--stall-ms',
      String(o.stallMs),
      '--open-interval',
      String(o.openIntervalMs ?? 5),
      '--max-ms',
      String(o.maxMs),
    ]);
    const d = new Downloads(child, o);
    d.startedAt = Date.now();
    return d;
  }

  /** Resolves with the time (epoch ms) every download had a body byte or had ended; throws after `timeoutMs`. */
  async waitFlowing(timeoutMs: number): Promise<number> {
    let t: NodeJS.Timeout | undefined;
    const at = await Promise.race([
      this.flowing,
      new Promise<number>((r) => (t = setTimeout(() => r(-1), timeoutMs))),
    ]);
    clearTimeout(t);
    if (at === -1)
      throw new Error(
        `the downloads were not all flowing within ${timeoutMs} ms (${this.opened.length} of ${this.o.count} answered)`,
      );
    if (at === 0) throw new Error(`the download client exited early: ${this.err.trim()}`);
    return at;
  }

  /** Waits for every download to end (at most `timeoutMs`, then the client is killed); returns every result. */
  async finish(timeoutMs: number): Promise<DownloadResult[]> {
    const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.done;
    await this.exited;
    clearTimeout(t);
    return this.results;
  }

  /** The client's pid (`ip netns exec` execs it), for its CPU time. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Stops the client at once (teardown). */
  kill(): void {
    this.child.kill('SIGKILL');
  }
}

/** One short connection: its tuple (plan.ts burstTuple), answered, with the client's own address at the RS. */
export interface Probe {
  tuple: number;
  ok: boolean;
  realIp: boolean;
  ms: number;
  outcome: string;
}

/** `count` short connections from tuples first…first+count-1, one attempt each within `deadlineMs`. */
export async function runProbes(
  topo: ClusterTopology,
  first: number,
  count: number,
  deadlineMs: number,
): Promise<Probe[]> {
  const child = topo.lab.spawn('c', process.execPath, [
    DOWNLOAD_CLIENT,
    'probe',
    '--vip',
    VIP,
    '--port',
    String(VPORT),
    '--first',
    String(first),
    '--count',
    String(count),
    '--deadline-ms',
    String(deadlineMs),
  ]);
  const out: Probe[] = [];
  let err = '';
  let finished = false;
  child.stderr?.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
  onJsonLines(child, (m) => {
    if (Array.isArray(m.p)) {
      const [k, ok, realIp, ms, outcome] = m.p as [number, number, number, number, string];
      out.push({ tuple: first + k, ok: ok === 1, realIp: realIp === 1, ms, outcome });
    } else if (m.event === 'done') finished = true;
  });
  const code = await new Promise<number | null>((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), count * 5 + deadlineMs + 10_000);
    child.once('exit', (c) => {
      clearTimeout(t);
      resolve(c);
    });
  });
  if (!finished) throw new Error(`the short connections ended early (${code}): ${err.trim()}`);
  return out.sort((a, b) => a.tuple - b.tuple);
}
