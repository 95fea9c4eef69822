/**
 * The BGP speaker of a fleet node: bird2, either started and supervised
 * here (`managed`) or one the operator runs (`attached`, `bird_socket` +
 * `bird_include`). Either way it is told what to announce by rewriting a
 * file and asking bird to `configure`, and polled once a second for its
 * sessions.
 *
 * A managed bird runs under a small `sh` watchdog whose stdin is a pipe
 * from this process: when fullnat dies, even by SIGKILL, the pipe closes,
 * the watchdog's `cat` sees EOF and stops bird (SIGTERM: bird says goodbye
 * to its neighbours, which withdraw this node at once). A bird that exits
 * on its own is started again with backoff, from the same file, so its
 * announcements come back.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import type { Logger } from '../log.js';
import { addressToString } from '../../wire/address.js';
import type { BgpSessionStatus, BgpSpec, SpeakerStatus } from '../model.js';
import { birdConfig, sessionName } from './bird-config.js';
import { birdCommands, birdConfigure } from './bird-control.js';
import { parseBfdSessions, parseProtocols } from './bird-status.js';

/** Where bird's files live in `state_dir` (one fullnat per state_dir). */
export const BIRD_CONFIG_FILE = 'bird.conf';
export const BIRD_SOCKET_FILE = 'bird.ctl';
export const BIRD_PID_FILE = 'bird.pid';

/**
 * The watchdog: bird in the background without the pipe, `cat` on the
 * pipe (fd 3: a background job's stdin is /dev/null), bird stopped when
 * `cat` ends; the watchdog exits with bird's status.
 */
const WATCHDOG = [
  'exec 3<&0 </dev/null',
  '"$0" "$@" 3<&- &',
  'b=$!',
  '{ cat <&3 >/dev/null; kill "$b" 2>/dev/null; } &',
  'w=$!',
  'exec 3<&-',
  'wait "$b"',
  's=$?',
  'kill "$w" 2>/dev/null',
  'exit "$s"',
].join('\n');

export interface BirdSpeakerOptions {
  bgp: BgpSpec;
  /** The LB's state_dir: bird.conf, bird.ctl and bird.pid go there (managed mode). */
  stateDir: string;
  log: Logger;
  /** The bird binary; default: `bird` on PATH, else /usr/sbin/bird. */
  birdPath?: string;
  /** Status poll period; default 1000 ms. */
  pollMs?: number;
  /** First and largest wait before a crashed bird is started again; default 500 ms and 30 s. */
  restartMinMs?: number;
  restartMaxMs?: number;
}

/** A run this long resets the restart backoff to its first step. */
const STABLE_RUN_MS = 60_000;
/** How long bird may take to say goodbye to its neighbours at a stop. */
const STOP_GRACE_MS = 3000;
/** bird's last lines on stderr kept for the crash report. */
const STDERR_KEEP = 10;

/** `bird` on PATH, else where Debian's bird2 puts it; undefined when neither is there. */
export function findBird(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = [
    ...(env.PATH ?? '').split(delimiter).filter(Boolean),
    '/usr/sbin',
    '/usr/local/sbin',
  ];
  for (const d of dirs) {
    const p = join(d, 'bird');
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Writes `text` to `path` through a temporary file and a rename: bird never reads half a file. */
function writeAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp.${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, path);
}

const sameList = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

export class BirdSpeaker {
  readonly mode: 'managed' | 'attached';
  readonly socketPath: string;
  readonly configPath: string;
  private bgp: BgpSpec;
  private prefixes: string[] = [];
  private child: ChildProcess | undefined;
  private childStartedAt = 0;
  private restarts = 0;
  private backoffMs: number;
  private restartTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private polling = false;
  private stopped = true;
  private stderrTail: string[] = [];
  private lastError: string | undefined;
  /** The text on disk, and the text bird is known to run (it read it at start or accepted a configure). */
  private written = '';
  private applied = '';
  private configuring: Promise<void> | undefined;
  private sessions = new Map<string, BgpSessionStatus>();
  private birdAnswered = false;

  constructor(private readonly opts: BirdSpeakerOptions) {
    this.bgp = opts.bgp;
    const attached = opts.bgp.birdSocket !== undefined && opts.bgp.birdInclude !== undefined;
    this.mode = attached ? 'attached' : 'managed';
    this.socketPath = opts.bgp.birdSocket ?? join(opts.stateDir, BIRD_SOCKET_FILE);
    this.configPath = opts.bgp.birdInclude ?? join(opts.stateDir, BIRD_CONFIG_FILE);
    this.backoffMs = opts.restartMinMs ?? 500;
    this.resetSessions();
  }

  /** Announces `prefixes`: writes the file and starts bird (managed) or configures it (attached). */
  start(prefixes: string[]): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.prefixes = [...prefixes].sort();
    this.write();
    if (this.mode === 'managed') this.spawnBird();
    else void this.configure();
    this.pollTimer = setInterval(() => void this.poll(), this.opts.pollMs ?? 1000);
    this.pollTimer.unref();
    void this.poll();
  }

  /** What to announce from now on; bird is reconfigured only when it changed. */
  setPrefixes(prefixes: string[]): void {
    const next = [...prefixes].sort();
    if (sameList(next, this.prefixes)) return;
    this.prefixes = next;
    this.rewrite();
  }

  /** A reloaded `bgp` block (same mode): the file is rewritten and bird reconfigured. */
  setSpec(bgp: BgpSpec): void {
    this.bgp = bgp;
    this.resetSessions();
    this.rewrite();
  }

  get announced(): readonly string[] {
    return this.prefixes;
  }

  status(): SpeakerStatus {
    return {
      mode: this.mode,
      running: this.mode === 'managed' ? this.child !== undefined : this.birdAnswered,
      ...(this.child?.pid === undefined ? {} : { pid: this.birdPid() ?? this.child.pid }),
      restarts: this.restarts,
      socket: this.socketPath,
      config: this.configPath,
      ...(this.lastError === undefined ? {} : { lastError: this.lastError }),
      sessions: [...this.sessions.values()].map((x) => ({ ...x })),
    };
  }

  /**
   * Stops announcing. A managed bird is stopped (SIGTERM, so it tells its
   * neighbours; SIGKILL after a grace). An attached bird is left running
   * with nothing from us to announce.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.pollTimer = undefined;
    this.restartTimer = undefined;
    if (this.mode === 'attached') {
      this.prefixes = [];
      this.write();
      try {
        await birdConfigure(this.socketPath);
      } catch (e) {
        this.opts.log.warn(
          { socket: this.socketPath, err: (e as Error).message },
          'could not withdraw the announcements from the attached bird',
        );
      }
      return;
    }
    const child = this.child;
    if (!child) return;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => {
        const pid = this.birdPid();
        if (pid !== undefined) signal(pid, 'SIGKILL');
        child.kill('SIGKILL');
      }, STOP_GRACE_MS);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      // Closing the pipe is the watchdog's signal: it stops bird with SIGTERM and exits with it.
      child.stdin?.destroy();
    });
    rmSync(join(this.opts.stateDir, BIRD_PID_FILE), { force: true });
  }

  // ---- the file ------------------------------------------------------------------

  private text(): string {
    return birdConfig(this.bgp, this.prefixes, {
      mode: this.mode === 'attached' ? 'include' : 'full',
    });
  }

  private write(): void {
    this.written = this.text();
    writeAtomic(this.configPath, this.written);
  }

  private rewrite(): void {
    if (this.stopped || this.text() === this.written) return;
    this.write();
    void this.configure();
  }

  /** Asks bird to re-read its file, one request at a time; the poll (every second) retries what failed. */
  private configure(): Promise<void> {
    if (this.configuring) return this.configuring;
    const target = this.written;
    if (target === this.applied) return Promise.resolve();
    this.configuring = (async () => {
      let ok = false;
      try {
        await birdConfigure(this.socketPath);
        this.applied = target;
        ok = true;
        this.opts.log.info({ prefixes: this.prefixes }, 'bird reconfigured');
      } catch (e) {
        this.noteError(`configure: ${(e as Error).message}`);
      } finally {
        this.configuring = undefined;
      }
      // A change written meanwhile goes at once; a failure waits for the next poll, not a tight loop.
      if (ok && !this.stopped && this.written !== this.applied) await this.configure();
    })();
    return this.configuring;
  }

  // ---- the managed bird ------------------------------------------------------------

  private birdPid(): number | undefined {
    try {
      const n = Number(readFileSync(join(this.opts.stateDir, BIRD_PID_FILE), 'utf8').trim());
      return Number.isInteger(n) && n > 0 ? n : undefined;
    } catch {
      return undefined;
    }
  }

  /** A bird left by an earlier fullnat whose watchdog died with it would hold the socket and the sessions. */
  private stopLeftover(): void {
    const pid = this.birdPid();
    if (pid === undefined) return;
    let comm: string;
    try {
      comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      return;
    }
    if (comm !== 'bird') return;
    this.opts.log.warn({ pid }, 'stopping a bird left over by an earlier run');
    signal(pid, 'SIGKILL');
  }

  private spawnBird(): void {
    const bird = this.opts.birdPath ?? findBird();
    if (!bird) {
      this.noteError('bird not found (install bird2)');
      this.scheduleRestart();
      return;
    }
    this.stopLeftover();
    const pidFile = join(this.opts.stateDir, BIRD_PID_FILE);
    const args = ['-f', '-c', this.configPath, '-s', this.socketPath, '-P', pidFile];
    const child = spawn('sh', ['-c', WATCHDOG, bird, ...args], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    this.child = child;
    this.childStartedAt = Date.now();
    // bird reads the file as it is now; a configure is needed only for later changes.
    this.applied = this.written;
    this.stderrTail = [];
    child.stdin?.on('error', () => {
      // The watchdog is gone; its exit is handled below.
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) {
        if (line.trim() === '') continue;
        this.stderrTail.push(line);
        if (this.stderrTail.length > STDERR_KEEP) this.stderrTail.shift();
        this.opts.log.debug({ bird: line }, 'bird');
      }
    });
    child.on('error', (e) => this.noteError(`cannot start bird: ${e.message}`));
    child.on('exit', (code, sig) => {
      if (this.child === child) this.child = undefined;
      child.stdin?.destroy();
      this.birdAnswered = false;
      if (this.stopped) return;
      const ranMs = Date.now() - this.childStartedAt;
      this.noteError(`bird exited (${sig ?? `status ${code}`}) after ${ranMs} ms`, false);
      this.opts.log.warn(
        { code, signal: sig, ranMs, stderr: this.stderrTail },
        'bird exited: starting it again',
      );
      this.markSessionsUnknown();
      if (ranMs >= STABLE_RUN_MS) this.backoffMs = this.opts.restartMinMs ?? 500;
      this.scheduleRestart();
    });
    this.opts.log.info(
      { bird, config: this.configPath, socket: this.socketPath, watchdog: child.pid },
      'bird started',
    );
  }

  private scheduleRestart(): void {
    if (this.stopped || this.restartTimer) return;
    const wait = this.backoffMs;
    this.backoffMs = Math.min(wait * 2, this.opts.restartMaxMs ?? 30_000);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopped) return;
      this.restarts++;
      this.spawnBird();
    }, wait);
    this.restartTimer.unref();
  }

  // ---- status ----------------------------------------------------------------------

  private noteError(msg: string, log = true): void {
    if (msg === this.lastError) return;
    this.lastError = msg;
    if (log) this.opts.log.warn({ err: msg }, 'BGP speaker');
  }

  private resetSessions(): void {
    const prev = this.sessions;
    this.sessions = new Map();
    for (const n of this.bgp.neighbors) {
      const key = addressToString(n.addr);
      const old = prev.get(key);
      this.sessions.set(key, {
        addr: n.addr,
        remoteAs: n.remoteAs,
        state: old?.state ?? 'unknown',
        up: old?.up ?? false,
        ...(n.bfd ? { bfd: old?.bfd ?? 'unknown' } : {}),
      });
    }
  }

  private markSessionsUnknown(): void {
    for (const s of this.sessions.values()) this.update(s, 'unknown', '', '', s.bfd && 'unknown');
  }

  private async poll(): Promise<void> {
    if (this.polling || this.stopped) return;
    this.polling = true;
    try {
      const [protocols, bfd] = await birdCommands(this.socketPath, [
        'show protocols all',
        'show bfd sessions',
      ]);
      this.birdAnswered = true;
      const rows = protocols ? parseProtocols(protocols) : [];
      const bfdRows = bfd ? parseBfdSessions(bfd) : [];
      for (const [key, s] of this.sessions) {
        const row =
          rows.find((r) => r.neighbor === key) ?? rows.find((r) => r.name === sessionName(s.addr));
        const bfdRow = bfdRows.find((b) => b.peer === key);
        this.update(
          s,
          row?.bgpState ?? 'missing',
          row?.info ?? '',
          row?.since ?? '',
          s.bfd === undefined ? undefined : (bfdRow?.state ?? 'Down'),
        );
      }
      if (this.written !== this.applied) await this.configure();
    } catch (e) {
      this.birdAnswered = false;
      // Between a crash and the restart bird is not there: that is logged at the exit.
      if (this.child) this.noteError((e as Error).message, false);
      this.markSessionsUnknown();
    } finally {
      this.polling = false;
    }
  }

  /** One neighbour's new state; each change of up/down (and of BFD's) is logged once. */
  private update(
    s: BgpSessionStatus,
    state: string,
    info: string,
    since: string,
    bfd: string | undefined,
  ): void {
    const up = state === 'Established';
    const neighbor = addressToString(s.addr);
    if (up !== s.up || (s.state === 'unknown' && state !== 'unknown')) {
      if (up) this.opts.log.info({ neighbor, remoteAs: s.remoteAs }, 'BGP session established');
      else if (state !== 'unknown' || s.up)
        this.opts.log.warn(
          { neighbor, remoteAs: s.remoteAs, state, info },
          'BGP session not established; forwarding goes on',
        );
    }
    if (bfd !== undefined && s.bfd !== undefined && (bfd === 'Up') !== (s.bfd === 'Up')) {
      if (bfd === 'Up') this.opts.log.info({ neighbor }, 'BFD session up');
      else if (s.bfd === 'Up') this.opts.log.warn({ neighbor, state: bfd }, 'BFD session down');
    }
    s.state = state;
    s.up = up;
    if (info === '') delete s.info;
    else s.info = info;
    if (since === '') delete s.since;
    else s.since = since;
    if (bfd !== undefined) s.bfd = bfd;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}
