#!/usr/bin/env node
// Builds the native TUN addon (binding.gyp → build/Release/fullnat_tun.node)
// with node-gyp against the local Node headers. Nothing is downloaded: if no
// headers are installed, or the build fails (no compiler, no python), this
// prints one warning line and exits 0 — the simulator and the lab on the
// in-memory links work without the addon; only `fullnat run` needs it.
//
//   node scripts/build-native.js          (run by `npm install`)
//   FULLNAT_SKIP_NATIVE=1 npm install     skip the build
import { spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const logFile = join(root, 'build', 'native-build.log');

function warn(reason) {
  console.error(
    `fullnat: warning: native TUN addon not built (${reason}); live mode (fullnat run) unavailable, simulator unaffected`,
  );
  process.exit(0);
}

if (process.env.FULLNAT_SKIP_NATIVE) {
  console.error('fullnat: FULLNAT_SKIP_NATIVE set, native TUN addon not built');
  process.exit(0);
}
if (process.platform !== 'linux') warn(`TUN is Linux-only, this is ${process.platform}`);

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
if (!nodeGyp) warn('node-gyp not found (it ships with npm)');
const nodedir = findNodeDir();
if (!nodedir)
  warn(
    'Node headers not found (expected <prefix>/include/node/node_api.h, e.g. Debian package libnode-dev or nodejs headers)',
  );

const r = spawnSync(process.execPath, [nodeGyp, 'rebuild', `--nodedir=${nodedir}`], {
  cwd: root,
  encoding: 'utf8',
  env: { ...process.env, npm_config_nodedir: nodedir },
  maxBuffer: 64 * 1024 * 1024,
});
const log = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`;
try {
  mkdirSync(dirname(logFile), { recursive: true });
  writeFileSync(logFile, log);
} catch {
  // the log is a convenience
}
const built = join(root, 'build/Release/fullnat_tun.node');
if (r.status !== 0 || !existsSync(built)) {
  const firstError = log
    .split('\n')
    .find((l) => /\berror\b|ERR!|not found|No such file/i.test(l) && !/^gyp info/.test(l));
  warn(
    `${firstError ? firstError.trim().slice(0, 160) : `node-gyp exited with ${r.status}`}; full log: build/native-build.log`,
  );
}
console.error('fullnat: built native TUN addon build/Release/fullnat_tun.node');
