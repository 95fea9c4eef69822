/**
 * `fullnat systemd-unit [--install] [--config FILE]`: the systemd unit that
 * runs `fullnat run`, printed, or written to /etc/systemd/system. The text
 * is here, in one place; contrib/fullnat.service is its rendering with the
 * defaults (a test keeps the two equal).
 *
 * What the unit asks of systemd, and why:
 *   Type=notify, NotifyAccess=main  `fullnat run` sends READY=1 (io/sd-notify.ts, a datagram from
 *                                   the main process itself) once the TUN device is open, its
 *                                   routes are in, packets are read and the control socket
 *                                   answers; STOPPING=1 when it stops or hands over.
 *   ExecReload=kill -HUP            SIGHUP re-reads the file; a refused file changes nothing.
 *   Restart=on-failure              a crash or a refused start is retried; a clean stop is not.
 *   CapabilityBoundingSet, AmbientCapabilities
 *       CAP_NET_ADMIN          the TUN device (TUNSETIFF, its NAPI and offload settings), its
 *                              routes and addresses, the device's net sysctls (rp_filter, …)
 *       CAP_NET_BIND_SERVICE   ports below 1024: bird's BGP on 179 for a fleet node (bird is a
 *                              child and inherits the set), a metrics or sync port if chosen low
 *       CAP_NET_RAW            the children the config starts: MISC_CHECK scripts that ping
 *                              (ping needs a raw ICMP socket), bird
 *   fullnat itself opens no raw socket and loads no eBPF (the TOA receiver is the real server's,
 *   `fullnat rs`, another host); nothing else is kept.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export const DEFAULT_CONFIG = '/etc/fullnat/fullnat.conf';
export const DEFAULT_UNIT_DIR = '/etc/systemd/system';
export const UNIT_NAME = 'fullnat.service';

/** The capabilities `fullnat run` and its children need; the unit keeps these and no others. */
export const CAPABILITIES = ['CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE', 'CAP_NET_RAW'] as const;

export interface UnitOptions {
  /** The configuration `fullnat run -f` reads. */
  config: string;
  /**
   * The command line before `run`: by default `/usr/bin/env fullnat` (the
   * npm-installed command on PATH); `fullnat systemd-unit` puts this Node
   * and this CLI's absolute paths instead, so the unit runs this install.
   */
  command: readonly string[];
}

/**
 * One ExecStart word, quoted as systemd reads it: `%` is a specifier and `$`
 * a variable unless doubled; blanks, quotes and backslashes need quotes.
 */
export function quoteExecWord(word: string): string {
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** The unit's text. */
export function renderUnit(opts: UnitOptions): string {
  const exec = [...opts.command, 'run', '-f', opts.config].map(quoteExecWord).join(' ');
  const caps = CAPABILITIES.join(' ');
  return `# fullnat as a systemd service (\`fullnat systemd-unit\` prints this unit;
# \`fullnat systemd-unit --install\` writes it to /etc/systemd/system/).
# With \`handover on\` in fullnat_defs, SIGTERM saves the connection table to
# state_dir and leaves the TUN device and its routes for the next start, which
# imports the table (\`systemctl restart\`, or an upgrade followed by one).
# \`fullnat ctl --shutdown\` stops for good.
# Then: systemctl daemon-reload && systemctl enable --now fullnat
[Unit]
Description=fullnat FULLNAT load balancer
After=network-online.target
Wants=network-online.target

[Service]
# READY=1 comes once the TUN device and its routes are up, packets are read
# and the control socket answers (an imported table first, after a restart).
Type=notify
NotifyAccess=main
ExecStart=${exec}
# Re-reads the file, keeping connections (a refused file changes nothing).
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM hands over (with handover on); the save takes well under a second
# even for a large table. SIGKILL after the timeout: the last checkpoint is
# imported by the next start.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=20
Restart=on-failure
RestartSec=0
# state_dir's default: a tmpfs, kept across restarts, cleared at boot.
RuntimeDirectory=fullnat
RuntimeDirectoryPreserve=yes
RuntimeDirectoryMode=0700
# CAP_NET_ADMIN: the TUN device, its routes and sysctls. CAP_NET_BIND_SERVICE:
# bird's BGP port 179 (fleet nodes), a metrics or sync port below 1024.
# CAP_NET_RAW: MISC_CHECK scripts that ping, bird. Nothing else.
CapabilityBoundingSet=${caps}
AmbientCapabilities=${caps}

[Install]
WantedBy=multi-user.target
`;
}

/** The unit for this install: this Node and this CLI, by absolute path. */
export function unitForThisInstall(config: string): string {
  const cli = resolve(process.argv[1] ?? 'fullnat');
  return renderUnit({ config: resolve(config), command: [process.execPath, cli] });
}

export interface SystemdUnitFlags {
  install?: boolean;
  config: string;
  unitDir: string;
  force?: boolean;
}

/** `fullnat systemd-unit`: prints the unit, or writes it with --install. Exit code. */
export function runSystemdUnit(
  flags: SystemdUnitFlags,
  out: (text: string) => void = (t) => void process.stdout.write(t),
  err: (line: string) => void = (l) => console.error(l),
): number {
  const unit = unitForThisInstall(flags.config);
  if (!flags.install) {
    out(unit);
    return 0;
  }
  const path = join(flags.unitDir, UNIT_NAME);
  if (existsSync(path) && readFileSync(path, 'utf8') !== unit && !flags.force) {
    err(`fullnat systemd-unit: ${path} exists and differs; --force replaces it`);
    return 1;
  }
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, unit, { mode: 0o644 });
  } catch (e) {
    err(`fullnat systemd-unit: cannot write ${path}: ${(e as Error).message}`);
    return 1;
  }
  if (!existsSync(flags.config))
    err(`fullnat systemd-unit: note: ${flags.config} does not exist yet; the service reads it`);
  err(`wrote ${path}; now: systemctl daemon-reload && systemctl enable --now fullnat`);
  return 0;
}
