/**
 * bird's control socket, spoken directly (what birdc does): a greeting,
 * then one command per line, each answered by lines `CODE-text` (more
 * follow), ` text` (more of the previous code) and a last `CODE text`.
 * Codes 0xxx end a success, 8xxx and 9xxx an error. One connection per
 * call: the status poll runs once a second, and a bird that restarted in
 * between is simply met again.
 */
import { createConnection } from 'node:net';

export interface BirdLine {
  code: number;
  text: string;
}

export interface BirdReply {
  /** The last line's code: 0xxx success, 8xxx/9xxx error. */
  code: number;
  ok: boolean;
  lines: BirdLine[];
}

/** Bounds what a confused peer on the socket can make us hold. */
const MAX_REPLY_BYTES = 4 * 1024 * 1024;

/** Splits one reply's text into lines; undefined until its last line has arrived. */
export function parseBirdReply(
  text: string,
): { reply: BirdReply; rest: string } | { reply: undefined; rest: string } {
  const lines: BirdLine[] = [];
  let code = 0;
  let at = 0;
  for (;;) {
    const nl = text.indexOf('\n', at);
    if (nl < 0) return { reply: undefined, rest: text };
    const line = text.slice(at, nl);
    at = nl + 1;
    const m = /^(\d{4})([- ])(.*)$/.exec(line);
    if (m) {
      code = Number(m[1]);
      lines.push({ code, text: m[3]! });
      if (m[2] === ' ') {
        const last = Math.floor(code / 1000);
        return { reply: { code, ok: last === 0, lines }, rest: text.slice(at) };
      }
    } else {
      lines.push({ code, text: line.startsWith(' ') ? line.slice(1) : line });
    }
  }
}

/**
 * Runs `commands` in order on bird's socket at `path`; one reply each.
 * Rejects when bird is not there, hangs past `timeoutMs` or closes early.
 */
export function birdCommands(
  path: string,
  commands: readonly string[],
  timeoutMs = 2000,
): Promise<BirdReply[]> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    const replies: BirdReply[] = [];
    let buf = '';
    let greeted = false;
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(replies);
    };
    const timer = setTimeout(
      () => finish(new Error(`bird control socket ${path}: no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const next = (): void => {
      if (replies.length === commands.length) return finish();
      sock.write(`${commands[replies.length]}\n`);
    };
    sock.setEncoding('utf8');
    sock.on('error', (e) => finish(new Error(`bird control socket ${path}: ${e.message}`)));
    sock.on('close', () => finish(new Error(`bird control socket ${path}: closed mid-answer`)));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_REPLY_BYTES) return finish(new Error('bird reply too long'));
      for (;;) {
        const r = parseBirdReply(buf);
        if (!r.reply) return;
        buf = r.rest;
        if (!greeted) {
          greeted = true;
          if (!r.reply.ok)
            return finish(new Error(`bird refused the connection: ${text(r.reply)}`));
        } else replies.push(r.reply);
        next();
        if (settled) return;
      }
    });
  });
}

/** A reply's lines as one text, for messages. */
export function text(reply: BirdReply): string {
  return reply.lines
    .map((l) => l.text)
    .join('\n')
    .trim();
}

/**
 * `configure [FILE]`: bird re-reads its file. Resolves once bird accepted
 * it; rejects with bird's own message (a syntax error, file:line) if not.
 */
export async function birdConfigure(
  socketPath: string,
  file?: string,
  timeoutMs = 5000,
): Promise<void> {
  const cmd = file === undefined ? 'configure' : `configure "${file.replace(/"/g, '\\"')}"`;
  const [reply] = await birdCommands(socketPath, [cmd], timeoutMs);
  if (!reply || !reply.ok) throw new Error(`bird configure: ${reply ? text(reply) : 'no reply'}`);
}
