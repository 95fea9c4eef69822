#!/usr/bin/env node
// Compiles the eBPF TOA and UOA receiver for real servers (native/bpf/toa.bpf.c,
// which includes its UDP half uoa.bpf.c → build/bpf/toa.bpf.o) with
// `clang -O2 -g -target bpf -c`. Nothing is
// downloaded: if clang or the headers are missing, or the compile fails, this
// prints one warning line and exits 0 — only `fullnat rs attach|exec` needs
// the object; everything else works without it. Under FULLNAT_REQUIRE_ALL=1
// (set by .ci/run) it is an error and the exit status is 1.
//
//   node scripts/build-bpf.js          (run by `npm install`)
//   FULLNAT_SKIP_BPF=1 npm install     skip the build (refused under FULLNAT_REQUIRE_ALL)
//   CLANG=/usr/bin/clang-16 …          use another clang
//
// Needs (Debian): clang, libbpf-dev (<bpf/bpf_helpers.h>), linux-libc-dev
// (<linux/bpf.h> and <asm/types.h>).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'native/bpf/toa.bpf.c');
const outDir = join(root, 'build/bpf');
const object = join(outDir, 'toa.bpf.o');
const logFile = join(outDir, 'bpf-build.log');

const required = process.env.FULLNAT_REQUIRE_ALL === '1';

function warn(reason) {
  console.error(
    `fullnat: ${required ? 'error' : 'warning'}: eBPF TOA receiver not built (${reason}); \`fullnat rs attach|exec\` unavailable, everything else unaffected`,
  );
  process.exit(required ? 1 : 0);
}

if (process.env.FULLNAT_SKIP_BPF) {
  if (required) warn('FULLNAT_SKIP_BPF set, but FULLNAT_REQUIRE_ALL=1 needs the object');
  console.error('fullnat: FULLNAT_SKIP_BPF set, eBPF TOA receiver not built');
  process.exit(0);
}
if (process.platform !== 'linux') warn(`eBPF is Linux-only, this is ${process.platform}`);
if (!existsSync(source)) warn(`${source} is missing`);

const clang = process.env.CLANG || 'clang';
const probe = spawnSync(clang, ['--version'], { encoding: 'utf8' });
if (probe.error || probe.status !== 0) warn(`${clang} not found (Debian package: clang)`);

// <linux/bpf.h> includes <asm/types.h>, which Debian keeps under the
// multiarch directory (/usr/include/x86_64-linux-gnu/asm); -target bpf does
// not search there by itself.
const includeDirs = [];
const multiarch = {
  x64: 'x86_64-linux-gnu',
  arm64: 'aarch64-linux-gnu',
  arm: 'arm-linux-gnueabihf',
  ppc64: 'powerpc64le-linux-gnu',
  s390x: 's390x-linux-gnu',
  riscv64: 'riscv64-linux-gnu',
  loong64: 'loongarch64-linux-gnu',
}[process.arch];
function hasAsmTypes(dir) {
  return existsSync(join(dir, 'asm/types.h'));
}
if (!hasAsmTypes('/usr/include')) {
  const preferred = multiarch ? join('/usr/include', multiarch) : undefined;
  let dir = preferred && hasAsmTypes(preferred) ? preferred : undefined;
  if (!dir) {
    try {
      dir = readdirSync('/usr/include')
        .filter((d) => d.includes('-linux-'))
        .map((d) => join('/usr/include', d))
        .find(hasAsmTypes);
    } catch {
      // no /usr/include at all
    }
  }
  if (!dir) warn('<asm/types.h> not found (Debian package: linux-libc-dev)');
  includeDirs.push(dir);
}
if (!existsSync('/usr/include/linux/bpf.h'))
  warn('<linux/bpf.h> not found (Debian package: linux-libc-dev)');
if (!existsSync('/usr/include/bpf/bpf_helpers.h'))
  warn('<bpf/bpf_helpers.h> not found (Debian package: libbpf-dev)');

mkdirSync(outDir, { recursive: true });
const tmp = `${object}.tmp-${process.pid}`;
const args = [
  '-O2',
  '-g',
  '-target',
  'bpf',
  '-Wall',
  ...includeDirs.map((d) => `-I${d}`),
  '-c',
  source,
  '-o',
  tmp,
];
const r = spawnSync(clang, args, { cwd: root, encoding: 'utf8' });
const log = `${clang} ${args.join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`;
try {
  writeFileSync(logFile, log);
} catch {
  // the log is a convenience
}
if (r.status !== 0 || !existsSync(tmp)) {
  rmSync(tmp, { force: true });
  const firstError = log.split('\n').find((l) => /\berror\b/i.test(l));
  warn(
    `${firstError ? firstError.trim().slice(0, 160) : `clang exited with ${r.status}`}; full log: build/bpf/bpf-build.log`,
  );
}
renameSync(tmp, object);
console.error('fullnat: built eBPF TOA receiver build/bpf/toa.bpf.o');
