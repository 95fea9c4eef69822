#!/usr/bin/env node
// Builds the native addons of binding.gyp with node-gyp against the local
// Node headers, one target at a time so that one failing does not take the
// other down:
//   fullnat_tun       build/Release/fullnat_tun.node       the TUN device (fullnat run)
//   fullnat_peercred  build/Release/fullnat_peercred.node  SO_PEERCRED for the control socket
//   fullnat_notify    build/Release/fullnat_notify.node    systemd readiness (sd_notify)
//   fullnat_toa       build/Release/fullnat_toa.node       the eBPF receiver's TOA of a socket (toaPeer)
// Nothing is downloaded: if no headers are installed, or a build fails (no
// compiler, no python), this prints one warning line per addon not built
// and exits 0 — the simulator and the lab on the in-memory links work
// without them; `fullnat run` needs the TUN addon, and without the
// peer-credential addon the control socket is guarded by its file mode only.
// Under FULLNAT_REQUIRE_ALL=1 (set by .ci/run) an addon not built is an
// error and the exit status is 1: CI must not pass by skipping the tests
// that need it.
//
//   node scripts/build-native.js          (run by `npm install`)
//   FULLNAT_SKIP_NATIVE=1 npm install     skip the build (refused under FULLNAT_REQUIRE_ALL)
import { spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const logFile = join(root, 'build', 'native-build.log');

/** Each target, its source (to pick its own compiler errors out of the log) and what its absence costs. */
const TARGETS = [
  {
    name: 'fullnat_tun',
    source: 'native/tun.c',
    what: 'native TUN addon',
    consequence: 'live mode (fullnat run) unavailable, simulator unaffected',
  },
  {
    name: 'fullnat_peercred',
    source: 'native/peercred.c',
    what: 'native peer-credential addon',
    consequence:
      'the control socket is guarded by its file mode (0600) only, peer uids are not checked',
  },
  {
    name: 'fullnat_notify',
    source: 'native/sd-notify.c',
    what: 'native sd_notify addon',
    consequence: 'fullnat run cannot tell systemd it is ready (use Type=simple, not Type=notify)',
  },
  {
    name: 'fullnat_toa',
    source: 'native/toa-peer.c',
    what: 'native TOA lookup addon',
    consequence:
      'toaPeer() (fullnat/realserver) unavailable: an IPv4-only socket cannot learn an IPv6 client from the eBPF receiver',
  },
];

const required = process.env.FULLNAT_REQUIRE_ALL === '1';

function warnOne(t, reason) {
  const level = required ? 'error' : 'warning';
  console.error(`fullnat: ${level}: ${t.what} not built (${reason}); ${t.consequence}`);
}

function warnAll(reason) {
  for (const t of TARGETS) warnOne(t, reason);
  process.exit(required ? 1 : 0);
}

if (process.env.FULLNAT_SKIP_NATIVE) {
  if (required) warnAll('FULLNAT_SKIP_NATIVE set, but FULLNAT_REQUIRE_ALL=1 needs every addon');
  console.error('fullnat: FULLNAT_SKIP_NATIVE set, native addons not built');
  process.exit(0);
}
if (process.platform !== 'linux') warnAll(`Linux-only, this is ${process.platform}`);

function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  const prefix = resolve(dirname(process.execPath), '..');
  candidates.push(
    join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
  );
  for (const c of candidates) if (existsSync(c)) return c;
  try {
    const globalRoot = execFileSync('npm', ['root', '-g'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    const c = join(globalRoot, 'npm/node_modules/node-gyp/bin/node-gyp.js');
    if (existsSync(c)) return c;
  } catch {
    // no npm on PATH
  }
  return undefined;
}

// node-gyp reads <nodedir>/include/node/common.gypi and the headers; without
// them it would download a tarball, which we never want at install time.
function findNodeDir() {
  const candidates = [];
  if (process.env.npm_config_nodedir) candidates.push(process.env.npm_config_nodedir);
  candidates.push(resolve(dirname(process.execPath), '..'), '/usr', '/usr/local');
  return candidates.find(
    (d) =>
      existsSync(join(d, 'include/node/common.gypi')) &&
      existsSync(join(d, 'include/node/node_api.h')),
  );
}

const nodeGyp = findNodeGyp();
if (!nodeGyp) warnAll('node-gyp not found (it ships with npm)');
const nodedir = findNodeDir();
if (!nodedir)
  warnAll(
    'Node headers not found (expected <prefix>/include/node/node_api.h, e.g. Debian package libnode-dev or nodejs headers)',
  );

let log = '';
function gyp(args) {
  const r = spawnSync(process.execPath, [nodeGyp, ...args, `--nodedir=${nodedir}`], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, npm_config_nodedir: nodedir },
    maxBuffer: 64 * 1024 * 1024,
  });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`;
  log += `$ node-gyp ${args.join(' ')}\n${out}\n`;
  return { status: r.status, out };
}

function saveLog() {
  try {
    mkdirSync(dirname(logFile), { recursive: true });
    writeFileSync(logFile, log);
  } catch {
    // the log is a convenience
  }
}

/** The first line that looks like the reason, preferring those that name `source`. */
function firstError(out, source) {
  const lines = out
    .split('\n')
    .filter((l) => /\berror\b|ERR!|not found|No such file/i.test(l) && !/^gyp info/.test(l));
  const own = source ? lines.find((l) => l.includes(source)) : undefined;
  const line = own ?? lines[0];
  return line ? line.trim().slice(0, 160) : undefined;
}

// A stale addon from an earlier build must not pass for this one.
for (const t of TARGETS) rmSync(join(root, `build/Release/${t.name}.node`), { force: true });
const configured = gyp(['configure']);
if (configured.status !== 0) {
  saveLog();
  warnAll(
    `${firstError(configured.out) ?? `node-gyp configure exited with ${configured.status}`}; full log: build/native-build.log`,
  );
}

const built = [];
const failed = [];
for (const t of TARGETS) {
  const out = join(root, `build/Release/${t.name}.node`);
  const r = gyp(['build', t.name]);
  if (r.status === 0 && existsSync(out)) built.push(t);
  else
    failed.push({ t, reason: firstError(r.out, t.source) ?? `node-gyp exited with ${r.status}` });
}
saveLog();
for (const { t, reason } of failed) warnOne(t, `${reason}; full log: build/native-build.log`);
for (const t of built) console.error(`fullnat: built ${t.what} build/Release/${t.name}.node`);
if (required && failed.length > 0) process.exit(1);
