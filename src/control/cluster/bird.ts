/**
 * The BGP speaker of a fleet node: bird2, either started and supervised
 * here (`managed`) or one the operator runs (`attached`, `bird_socket` +
 * `bird_include`). Either way it is told what to announce by rewriting a
 * file and asking bird to `configure`, and polled once a second for its
 * sessions.
 *
 * A managed bird runs under a small `sh` watchdog whose stdin is a pipe
 * from this process: when fullnat dies, even by SIGKILL, the pipe closes,
 * the watchdog sees EOF and stops bird (SIGTERM: bird says goodbye to its
 * neighbours, which withdraw this node at once). A bird that exits on its
 * own is started again with backoff, from the same file, so its
 * announcements come back.
 *
 * A handover passes bird on instead: the old process writes `release` to
 * the watchdog, which lets bird run; the successor finds it by bird.pid,
 * adopts it under a watchdog of its own and marks the adoption in
 * bird.adopted. Its BGP sessions never drop, so the router keeps sending
 * this node's flows here across an upgrade. A released bird that nobody
 * adopts within ADOPT_WAIT_MS is stopped: a node with no fullnat must not
 * go on announcing.
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
/** bird's own stderr (start-up and fatal messages), kept for the report when it exits. */
export const BIRD_STDERR_FILE = 'bird.stderr';
/** Made by the process that adopts a released bird; the releasing watchdog waits for it. */
export const BIRD_ADOPTED_FILE = 'bird.adopted';
/** How long a released bird waits to be adopted before its old watchdog stops it. */
export const ADOPT_WAIT_MS = 10_000;

/**
 * The watchdog, in `sh`. Environment: BIRD_ADOPT (a running bird's pid to
 * watch) or the bird command line as arguments; BIRD_STDERR, BIRD_ADOPTED,
 * BIRD_ADOPT_WAIT (tenths of a second). The pipe is read on fd 3 (a
 * background job's stdin is /dev/null): EOF stops bird; a line `release`
 * ends the watchdog and leaves bird to be adopted, stopping it if nobody
 * does in time. The watchdog exits when bird does (with its status when it
 * is bird's parent), which is how this process learns of a crash.
 */
const WATCHDOG = [
  'exec 3<&0 </dev/null',
  'if [ -n "$BIRD_ADOPT" ]; then b=$BIRD_ADOPT; else "$0" "$@" 3<&- 2>"$BIRD_STDERR" & b=$!; fi',
  'm=$$',
  '{',
  '  exec 2>/dev/null',
  '  read -r l <&3',
  '  if [ "$l" = release ]; then',
  '    kill "$m"',
  '    i=0',
  '    while [ "$i" -lt "$BIRD_ADOPT_WAIT" ]; do [ -e "$BIRD_ADOPTED" ] && exit 0; sleep 0.1; i=$((i + 1)); done',
  '  fi',
  '  kill "$b"',
  '} &',
  'w=$!',
  'exec 3<&-',
  // bird gone on its own: the pipe's reader goes too, so it never signals a pid reused meanwhile.
  'if [ -n "$BIRD_ADOPT" ]; then while kill -0 "$b" 2>/dev/null; do sleep 0.2; done; kill "$w" 2>/dev/null; exit 0; fi',
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
  /** How long a released bird waits for a successor; default ADOPT_WAIT_MS. */
  adoptWaitMs?: number;
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
  /** Which of `prefixes` are backups (longer AS path; bird-config.ts). */
  private backup: string[] = [];
  private child: ChildProcess | undefined;
  private childStartedAt = 0;
  private restarts = 0;
  private backoffMs: number;
  private restartTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private polling = false;
  private stopped = true;
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

  /** Announces `prefixes` (`backup` among them with the longer AS path): writes the file and starts bird (managed) or configures it (attached). */
  start(prefixes: string[], backup: readonly string[] = []): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.prefixes = [...prefixes].sort();
    this.backup = [...backup].sort();
    this.write();
    if (this.mode === 'managed') void this.startManaged();
    else void this.configure();
    this.pollTimer = setInterval(() => void this.poll(), this.opts.pollMs ?? 1000);
    this.pollTimer.unref();
    void this.poll();
  }

  /** What to announce from now on; bird is reconfigured only when it changed. */
  setPrefixes(prefixes: string[], backup: readonly string[] = []): void {
    const next = [...prefixes].sort();
    const nextBackup = [...backup].sort();
    if (sameList(next, this.prefixes) && sameList(nextBackup, this.backup)) return;
    this.prefixes = next;
    this.backup = nextBackup;
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
    if (!this.quit()) return;
    if (this.mode === 'attached') {
      this.prefixes = [];
      this.backup = [];
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

  /** Stops polling and restarting; false when already stopped. */
  private quit(): boolean {
    if (this.stopped) return false;
    this.stopped = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.pollTimer = undefined;
    this.restartTimer = undefined;
    return true;
  }

  /**
   * The old side of a handover: stops watching bird and leaves it running,
   * announcing what it announces, for the successor to adopt (see the top
   * of this file). An attached bird is simply left as it is.
   */
  async release(): Promise<void> {
    if (!this.quit()) return;
    const child = this.child;
    if (this.mode === 'attached' || !child) return;
    rmSync(join(this.opts.stateDir, BIRD_ADOPTED_FILE), { force: true });
    await new Promise<void>((resolve) => {
      const late = setTimeout(resolve, STOP_GRACE_MS);
      child.once('exit', () => {
        clearTimeout(late);
        resolve();
      });
      child.stdin?.end('release\n');
    });
    this.opts.log.info({ pid: this.birdPid() }, 'bird left running for the successor');
  }

  // ---- the file ------------------------------------------------------------------

  private text(): string {
    return birdConfig(this.bgp, this.prefixes, {
      mode: this.mode === 'attached' ? 'include' : 'full',
      backup: this.backup,
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

  /** The bird named by bird.pid when it is still running. */
  private runningBird(): number | undefined {
    const pid = this.birdPid();
    if (pid === undefined) return undefined;
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'bird' ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * A running bird in this state_dir is adopted when its socket answers (a
   * predecessor released it); otherwise it is a leftover holding the
   * socket and the sessions, and goes.
   */
  private async startManaged(): Promise<void> {
    const pid = this.runningBird();
    if (pid !== undefined) {
      let answers = false;
      try {
        await birdCommands(this.socketPath, ['show status']);
        answers = true;
      } catch {
        // not answering: a leftover
      }
      if (this.stopped) return;
      if (answers && this.runningBird() === pid) {
        this.watch(pid);
        return;
      }
      this.opts.log.warn({ pid }, 'stopping a bird left over by an earlier run');
      signal(pid, 'SIGKILL');
    }
    this.spawnBird();
  }

  private spawnBird(): void {
    const bird = this.opts.birdPath ?? findBird();
    if (!bird) {
      this.noteError('bird not found (install bird2)');
      this.scheduleRestart();
      return;
    }
    const pidFile = join(this.opts.stateDir, BIRD_PID_FILE);
    const args = ['-f', '-c', this.configPath, '-s', this.socketPath, '-P', pidFile];
    this.watch(undefined, bird, args);
  }

  /** Runs the watchdog over a new bird (`bird`, `args`) or over the running `adopt`. */
  private watch(adopt: number | undefined, bird = 'bird', args: string[] = []): void {
    const dir = this.opts.stateDir;
    const child = spawn('sh', ['-c', WATCHDOG, bird, ...args], {
      stdio: ['pipe', 'ignore', 'ignore'],
      env: {
        ...process.env,
        BIRD_ADOPT: adopt === undefined ? '' : String(adopt),
        BIRD_STDERR: join(dir, BIRD_STDERR_FILE),
        BIRD_ADOPTED: join(dir, BIRD_ADOPTED_FILE),
        BIRD_ADOPT_WAIT: String(Math.ceil((this.opts.adoptWaitMs ?? ADOPT_WAIT_MS) / 100)),
      },
    });
    this.child = child;
    this.childStartedAt = Date.now();
    if (adopt === undefined) {
      // bird reads the file as it is now; a configure is needed only for later changes.
      this.applied = this.written;
    } else {
      // The predecessor's file may differ from ours: bird re-reads it, its sessions stay up.
      this.applied = '';
      writeFileSync(join(dir, BIRD_ADOPTED_FILE), `${process.pid}\n`);
      void this.configure();
    }
    child.stdin?.on('error', () => {
      // The watchdog is gone; its exit is handled below.
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
        { code, signal: sig, ranMs, stderr: this.stderrTail() },
        'bird exited: starting it again',
      );
      this.markSessionsUnknown();
      if (ranMs >= STABLE_RUN_MS) this.backoffMs = this.opts.restartMinMs ?? 500;
      this.scheduleRestart();
    });
    if (adopt === undefined)
      this.opts.log.info(
        { bird, config: this.configPath, socket: this.socketPath, watchdog: child.pid },
        'bird started',
      );
    else
      this.opts.log.info(
        { pid: adopt, socket: this.socketPath },
        'bird adopted from the predecessor',
      );
  }

  /** bird's last lines on stderr, for the report of its exit. */
  private stderrTail(): string[] {
    try {
      const text = readFileSync(join(this.opts.stateDir, BIRD_STDERR_FILE), 'utf8');
      return text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .slice(-STDERR_KEEP);
    } catch {
      return [];
    }
  }

  private scheduleRestart(): void {
    if (this.stopped || this.restartTimer) return;
    const wait = this.backoffMs;
    this.backoffMs = Math.min(wait * 2, this.opts.restartMaxMs ?? 30_000);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopped) return;
      this.restarts++;
      void this.startManaged();
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
