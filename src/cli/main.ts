import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { TOA_POLICIES, type ToaPolicy } from '../engine/options.js';
import { DEFAULT_CONTROL_SOCKET } from '../control/socket/index.js';
import { packageVersion, runCtl } from '../control/ctl/index.js';
import { runRs } from '../realserver/cli.js';
import { runCheck } from './check.js';
import { runDoctor } from './doctor.js';
import {
  DEFAULT_LAB_CONNECTIONS,
  LAB_SOURCES,
  clusterOptionsFromFlags,
  formatLabTable,
  syncOptionsFromFlags,
  labAvailable,
  labOptionsFromFlags,
  runLab,
} from './lab.js';
import { runLoadBalancer } from './run.js';
import { DEFAULT_CONFIG, DEFAULT_UNIT_DIR, runSystemdUnit } from './systemd-unit.js';
import { formatClusterTable } from '../lab/cluster/report.js';
import { clusterLabAvailable, runClusterLab } from '../lab/cluster/run-cluster.js';
import { runClusterSyncLab } from '../lab/cluster/run-sync.js';
import { formatSyncTable } from '../lab/cluster/sync-report.js';
import { parseFamilies } from '../lab/family.js';
import { formatTable, parseList, parseScenarios, simulate } from './simulate.js';

/** Installs missing system tools the lab needs (tcpdump, clang/bpftool, …), saying what and why. */
function ensureSystemDeps(): void {
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  spawnSync('bash', ['scripts/ensure-system-deps.sh'], {
    stdio: ['ignore', 'inherit', 'inherit'],
    cwd: root,
  });
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

interface SimulateFlags {
  json?: boolean;
  policy?: string;
  scenario?: string;
  family?: string;
  connections: number;
  seed: number;
  mssAdjust: boolean;
  timestampRemove: boolean;
  trace?: boolean;
  pcap?: string;
  synProxy?: boolean;
}

function runSimulate(flags: SimulateFlags, banner?: string): number {
  const policies = parseList<ToaPolicy>(flags.policy, TOA_POLICIES, 'policy');
  const scenarios = parseScenarios(flags.scenario);
  const families = parseFamilies(flags.family);
  const log = (line: string): void => {
    // With --json, stdout carries exactly one JSON document; everything else goes to stderr.
    if (flags.json) console.error(line);
    else console.log(line);
  };
  if (banner) log(banner);
  const report = simulate(
    {
      json: flags.json === true,
      policies,
      scenarios,
      families,
      connections: flags.connections,
      seed: flags.seed,
      mssAdjust: flags.mssAdjust,
      timestampRemove: flags.timestampRemove,
      trace: flags.trace === true,
      pcapDir: flags.pcap,
      synProxy: flags.synProxy === true,
    },
    log,
  );
  if (flags.json) console.log(JSON.stringify(report));
  else console.log(formatTable(report));
  return 0;
}

function addSimulateOptions(cmd: Command): Command {
  return cmd
    .option('--json', 'print one JSON document (the CLI contract) on stdout')
    .option('--policy <list>', `TOA policies, comma-separated (${TOA_POLICIES.join(', ')})`)
    .option('--scenario <list>', 'scenarios, comma-separated (default: all)')
    .option(
      '--family <list>',
      'address families, comma-separated: 4, 6 (IPv6), 64 (FNAT64) or all (default: 4)',
    )
    .option('-n, --connections <n>', 'connections per scenario and policy', positiveInt, 200)
    .option('--seed <n>', 'seed for client ports, ISNs and timing', positiveInt, 1)
    .option('--no-mss-adjust', 'do not lower the MSS in the RS SYN+ACK')
    .option('--no-timestamp-remove', 'keep the timestamp option in client SYNs')
    .option('--trace', 'print the packet trace of one connection that lost the real IP, per run')
    .option('--pcap <dir>', 'write a pcap of every run into <dir> (open it in Wireshark)')
    .option('--syn-proxy', 'SYNPROXY on the service: the LB answers SYNs with syncookies');
}

/** `fullnat lab --cluster`: progress on stderr, the report (table or one JSON document) on stdout. */
async function runClusterCommand(
  flags: Parameters<typeof clusterOptionsFromFlags>[0] & { json?: boolean },
): Promise<number> {
  const opts = clusterOptionsFromFlags(flags);
  const sync = syncOptionsFromFlags(flags);
  const avail = clusterLabAvailable();
  if (!avail.ok) {
    ensureSystemDeps();
    const again = clusterLabAvailable();
    if (!again.ok) {
      console.error(`fullnat lab --cluster: ${again.reason}`);
      return 1;
    }
  }
  const log = (line: string): void => console.error(line);
  if (sync) {
    const report = await runClusterSyncLab(sync, log);
    console.log(flags.json ? JSON.stringify(report) : formatSyncTable(report));
    return 0;
  }
  const report = await runClusterLab(opts, log);
  console.log(flags.json ? JSON.stringify(report) : formatClusterTable(report));
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('fullnat')
    .description(
      'FULLNAT layer-4 load balancer that delivers the client address (TOA) on every connection',
    )
    .version(packageVersion(), '-V, --version', "print fullnat's version (package.json)")
    .exitOverride()
    .showHelpAfterError();
  let code = 0;

  addSimulateOptions(
    program
      .command('simulate')
      .description(
        'in-memory simulator: Linux-faithful clients and real servers through the engine',
      ),
  ).action((flags: SimulateFlags) => {
    code = runSimulate(flags);
  });

  addSimulateOptions(
    program
      .command('start')
      .description('the main job: the real-kernel lab when possible, else the simulator'),
  ).action(async (flags: SimulateFlags) => {
    const lab = labAvailable();
    if (!lab.ok) {
      code = runSimulate(
        flags,
        `fullnat: running the in-memory simulator (real-kernel lab unavailable: ${lab.reason})`,
      );
      return;
    }
    ensureSystemDeps();
    console.error(
      'fullnat: running the real-kernel lab (network namespaces, fullnat run, Linux real servers)',
    );
    const report = await runLab(labOptionsFromFlags(flags), (l) => console.error(l));
    console.log(flags.json ? JSON.stringify(report) : formatLabTable(report));
  });

  program
    .command('lab')
    .description(
      'the TOA-loss scenarios on real Linux kernels: namespaces, fullnat run, Linux real servers (root)',
    )
    .option('--json', 'print one JSON document (the CLI contract) on stdout')
    .option('--policy <list>', `TOA policies, comma-separated (${TOA_POLICIES.join(', ')})`)
    .option('--scenario <list>', 'scenarios, comma-separated (default: all)')
    .option(
      '--family <list>',
      'address families, comma-separated: 4, 6 (IPv6), 64 (FNAT64) or all (default: 4)',
    )
    .option(
      '-n, --connections <n>',
      'connections per scenario and policy',
      positiveInt,
      DEFAULT_LAB_CONNECTIONS,
    )
    .option('--seed <n>', 'seed for the scripted clients (default: from the clock)', positiveInt)
    .option('--source <source>', `verdict source: ${LAB_SOURCES.join(', ')}`, 'auto')
    .option(
      '--pcap <dir>',
      'keep the captures taken at each RS (one pcap per scenario, policy and RS)',
    )
    .option(
      '--timeout <ms>',
      'per scenario and policy: unfinished clients are judged as they stand',
      positiveInt,
    )
    .option('--no-mss-adjust', 'mss_adjust off in the LB configuration')
    .option('--no-timestamp-remove', 'timestamp_remove off in the LB configuration')
    .option(
      '--cluster',
      'a fleet instead: nodes behind a bird2 router (BGP, BFD, ECMP), failover after kill -9, drain',
    )
    .option('--nodes <n>', 'with --cluster: fleet nodes (2-8)', positiveInt, 3)
    .option(
      '--router <list>',
      'with --cluster: router modes, comma-separated: ecmp (hash-threshold), resilient (nexthop group)',
    )
    .option(
      '--new-connections <n>',
      'with --cluster: new connections around each failover',
      positiveInt,
    )
    .option('--rate <n>', 'with --cluster: new connections a second', positiveInt)
    .option('--hold <n>', 'with --cluster: long-lived connections per node', positiveInt)
    .option('--no-drain', 'with --cluster: skip the drain measurements')
    .option(
      '--sync',
      'with --cluster: the connection-sync scenario instead: long downloads over the fleet, kill -9 of the busiest node, its restart; the nodes sync their connections',
    )
    .option(
      '--no-sync',
      'with --cluster: the same scenario with the nodes not syncing (the figure to beat)',
    )
    .option(
      '--transfers <n>',
      'with --sync/--no-sync: downloads held through the kill (default 300)',
      positiveInt,
    )
    .option(
      '--object-mb <n>',
      'with --sync/--no-sync: size of each download, MiB (default 50)',
      positiveInt,
    )
    .option(
      '--transfer-seconds <n>',
      "with --sync/--no-sync: how long each download lasts at the servers' rate (default 100)",
      positiveInt,
    )
    .action(
      async (
        flags: Parameters<typeof labOptionsFromFlags>[0] &
          Parameters<typeof clusterOptionsFromFlags>[0] & { cluster?: boolean },
      ) => {
        if (flags.cluster) {
          code = await runClusterCommand(flags);
          return;
        }
        if (flags.sync !== undefined) {
          console.error('fullnat lab: --sync and --no-sync go with --cluster');
          code = 1;
          return;
        }
        const lab = labAvailable();
        if (!lab.ok) {
          console.error(`fullnat lab: ${lab.reason}`);
          code = 1;
          return;
        }
        ensureSystemDeps();
        const report = await runLab(labOptionsFromFlags(flags), (line) => console.error(line));
        console.log(flags.json ? JSON.stringify(report) : formatLabTable(report));
      },
    );

  program
    .command('run')
    .description(
      'run the load balancer: TUN device, routes, control socket, health checks, metrics',
    )
    .requiredOption('-f, --file <file>', 'keepalived-style configuration file')
    .option('--no-health-checks', 'ignore the health-check blocks (every RS stays in)')
    .option(
      '--takeover',
      'replace the fullnat running on the control socket: it hands over its device and connections',
    )
    .action(async (flags: { file: string; healthChecks: boolean; takeover?: boolean }) => {
      code = await runLoadBalancer(flags.file, {
        healthChecks: flags.healthChecks,
        takeover: flags.takeover === true,
      });
    });

  program
    .command('check')
    .description(
      "check configuration files: each as 'run' reads it; several as one fleet's nodes (LIPs, router ids, neighbours' AS, services); one file's BGP neighbours routed",
    )
    .argument('[files...]', 'keepalived-style configuration files, one per node')
    .option('-f, --file <file>', "a file to check, as 'keepalived -t -f FILE' takes it")
    .option('--offline', "skip what needs this machine's network (the neighbours' routes)")
    .option('--json', 'print one JSON document on stdout')
    .action((files: string[], flags: { file?: string; offline?: boolean; json?: boolean }) => {
      const all = flags.file === undefined ? files : [flags.file, ...files];
      if (all.length === 0) {
        console.error('fullnat check: no file given (fullnat check FILE… or -f FILE)');
        code = 1;
        return;
      }
      code = runCheck(all, flags);
    });

  program
    .command('ctl')
    .description(
      'ipvsadm-style control of the running LB (-Ln, --stats, --rate, -Lnc, -A/-E/-D, -a/-e/-d, --add-laddr, -Z, --reload)',
    )
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument(
      '[args...]',
      'ipvsadm arguments; --socket PATH first to reach a non-default control socket',
    )
    .action(async (args: string[]) => {
      let socket = process.env.FULLNAT_SOCKET ?? DEFAULT_CONTROL_SOCKET;
      if (args[0] === '--socket' && args[1] !== undefined) {
        socket = args[1];
        args = args.slice(2);
      }
      code = await runCtl(args, socket, (line) => console.log(line));
    });

  program
    .command('systemd-unit')
    .description(
      'print the systemd unit that runs `fullnat run` (Type=notify, reload on SIGHUP, the capabilities it needs), or install it',
    )
    .option('--install', `write it to ${DEFAULT_UNIT_DIR}/fullnat.service instead of printing it`)
    .option('--config <file>', 'the configuration the service runs with', DEFAULT_CONFIG)
    .option('--unit-dir <dir>', 'where --install writes the unit', DEFAULT_UNIT_DIR)
    .option('--force', '--install: replace a different fullnat.service')
    .action((flags: { install?: boolean; config: string; unitDir: string; force?: boolean }) => {
      code = runSystemdUnit(flags);
    });

  program
    .command('rs')
    .description('real-server side: eBPF TOA receiver (attach | detach | status | exec -- CMD…)')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[args...]')
    .action(async (args: string[]) => {
      code = await runRs(args);
    });

  program
    .command('doctor')
    .description(
      'read a capture taken at a real server: which handshakes lost the client address (TOA) and why',
    )
    .argument('<file>', "pcap or pcapng captured at the RS (or on the LB's RS-facing interface)")
    .option('--json', 'print one JSON document on stdout')
    .option('--html <out>', 'also write a self-contained HTML report to <out>')
    .option('--limit <n>', 'rows of the misses table', positiveInt, 20)
    .option('--mtu <n>', 'LB→RS path MTU, instead of the estimate from the capture', positiveInt)
    .option('--defer-accept', 'the RS listener uses TCP_DEFER_ACCEPT (nginx "deferred")')
    .action(
      async (
        file: string,
        flags: {
          json?: boolean;
          html?: string;
          limit: number;
          mtu?: number;
          deferAccept?: boolean;
        },
      ) => {
        code = await runDoctor({ file, ...flags });
      },
    );

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    throw e;
  }
  return code;
}
