/**
 * Many curl transfers through the LB, as the path MTU tests make them: loops
 * bounded in count and in time run in a client namespace, the LB's engine
 * counters read from its metrics, and the rs-server fixture's connection log
 * checked for the real client.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import type { NetnsLab } from '../../../src/lab/netns.js';
import { sleep } from '../../support/time.js';
import { until } from './harness.js';

/** Each loop of transfers stops starting new ones after this long (a transfer that hangs ends at curl's -m 30). */
export const LOOP_BUDGET_S = 240;
const deadline = `[ $SECONDS -lt ${LOOP_BUDGET_S} ] || break;`;
/** What a whole loop may take: its budget, then the last transfer's -m 30 and some. */
const LOOP_TIMEOUT_MS = LOOP_BUDGET_S * 1000 + 60_000;

/** Runs a bash script in host `h`, bounded by `timeoutMs`; its stdout, or what it printed before failing. */
function bashIn(
  lab: NetnsLab,
  h: string,
  script: string,
  timeoutMs: number,
): { ok: boolean; out: string; ms: number } {
  const t0 = Date.now();
  try {
    const out = lab.exec(h, 'bash', ['-c', script], timeoutMs);
    return { ok: true, out, ms: Date.now() - t0 };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    return {
      ok: false,
      out: `${err.stdout ?? ''}\n${err.stderr ?? ''}\n${err.message.split('\n')[0]}`,
      ms: Date.now() - t0,
    };
  }
}

/** The engine counters of the LB in host `lb`, from its Prometheus text (fullnat_NAME_total); none when it does not answer. */
export function engineCounters(lab: NetnsLab, metricsPort: number): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    const text = lab.exec('lb', 'curl', [
      '-s',
      '-m',
      '5',
      `http://127.0.0.1:${metricsPort}/metrics`,
    ]);
    for (const m of text.matchAll(/^fullnat_(\w+)_total (\d+)/gm)) out[m[1]!] = Number(m[2]);
  } catch {
    // no metrics: the caller's log line shows '?'
  }
  return out;
}

/** `name +N` for each of `names`: how far each counter moved from `before` to `after` ('?' when either lacks it). */
export function counterDeltas(
  before: Record<string, number>,
  after: Record<string, number>,
  names: readonly string[],
): string {
  return names
    .map((n) => {
      const a = before[n];
      const b = after[n];
      return `${n} ${a === undefined || b === undefined ? '?' : `+${b - a}`}`;
    })
    .join(', ');
}

/** A loop's transfers: how many completed intact, how long the loop took, and its output for the failure message. */
export interface LoopResult {
  good: number;
  ms: number;
  out: string;
}

/** An upload loop's result with the intact uploads' own times (curl's time_total). */
export interface UploadResult extends LoopResult {
  meanMs: number;
  slowestMs: number;
}

/**
 * `count` uploads of `file` from host `h` (curl -T: a PUT; `url` is an
 * rs-server's /sha256, which answers the sha256 of what it received), one
 * connection each; those whose answer is `sha` are intact. Every upload is
 * bounded (-m 30), and so is the whole loop. `curlFlags` go before the rest
 * (e.g. `-6 -g`).
 */
export function uploadLoop(
  lab: NetnsLab,
  h: string,
  o: { count: number; file: string; sha: string; url: string; curlFlags?: string },
): UploadResult {
  const r = bashIn(
    lab,
    h,
    `for i in $(seq ${o.count}); do ${deadline} curl ${o.curlFlags ?? ''} -sS -m 30 -H 'Expect:' -T ${o.file} ` +
      `-w ' %{time_total}\\n' '${o.url}' || echo "failed $?"; done`,
    LOOP_TIMEOUT_MS,
  );
  const good = r.out
    .trim()
    .split('\n')
    .filter((l) => l.startsWith(`${o.sha} `));
  const times = good.map((l) => Number(l.split(' ')[1]));
  const total = times.reduce((a, b) => a + b, 0);
  return {
    good: good.length,
    ms: r.ms,
    out: r.out,
    meanMs: (total / Math.max(1, good.length)) * 1000,
    slowestMs: Math.max(0, ...times) * 1000,
  };
}

/**
 * `count` downloads of `url` from host `h`, one connection each, hashed as
 * they arrive; those whose sha256 is `sha` are intact. Bounded as
 * `uploadLoop`'s are.
 */
export function downloadLoop(
  lab: NetnsLab,
  h: string,
  o: { count: number; sha: string; url: string; curlFlags?: string },
): LoopResult {
  const r = bashIn(
    lab,
    h,
    `for i in $(seq ${o.count}); do ${deadline} curl ${o.curlFlags ?? ''} -sS -m 30 '${o.url}' | sha256sum; done`,
    LOOP_TIMEOUT_MS,
  );
  const good = r.out.split('\n').filter((l) => l.startsWith(`${o.sha} `)).length;
  return { good, ms: r.ms, out: r.out };
}

/** The connections an rs-server fixture logs (`"event":"conn"` lines), by the peer address the application saw. */
export class RsConnections {
  private text = '';

  /** Reads the log of `child`, an rs-server fixture. */
  follow(child: ChildProcess): void {
    child.stdout!.on('data', (c: Buffer) => (this.text += c.toString()));
  }

  /**
   * Connections logged so far, a mark for `peersSince`, once what the RS
   * printed while a synchronous loop held the event loop (a test before,
   * perhaps failed before it read the log) has been read.
   */
  async mark(): Promise<number> {
    await sleep(200);
    return this.count();
  }

  /** The peer addresses (without the port) of the connections logged after `mark`. */
  peersSince(mark: number): string[] {
    return this.lines()
      .slice(mark)
      .map((l) => {
        const peer = (JSON.parse(l) as { peer: string }).peer;
        return peer.slice(0, peer.lastIndexOf(':'));
      });
  }

  /**
   * Asserts the application saw exactly `count` connections after `mark`,
   * each from `client` (the eBPF receiver read the TOA), printing how many
   * under `label`. Waits up to 10 s for the log: its lines arrive once the
   * test yields (a client loop runs synchronously).
   */
  async assertAllFrom(label: string, mark: number, client: string, count: number): Promise<void> {
    await until(
      `${label}: the RS logged every connection`,
      () => this.count() - mark >= count,
      10_000,
      () => '',
    ).catch(() => {});
    const peers = this.peersSince(mark);
    const fromClient = peers.filter((p) => p === client).length;
    console.log(`# ${label}: the RS saw ${fromClient}/${peers.length} connections from ${client}`);
    assert.equal(peers.length, count, 'one connection per transfer');
    assert.equal(fromClient, count, peers.filter((p) => p !== client).join(' '));
  }

  private count(): number {
    return this.lines().length;
  }

  private lines(): string[] {
    const complete = this.text.slice(0, this.text.lastIndexOf('\n') + 1);
    return complete.split('\n').filter((l) => l.includes('"event":"conn"'));
  }
}
