/**
 * Every flag `fullnat ctl` understands, in ipvsadm's and DPVS's spellings,
 * the ones it knows but refuses (with the reason an operator needs), and
 * ipvsadm's command × option legality table.
 */

export type CommandKey =
  | 'add-service'
  | 'edit-service'
  | 'delete-service'
  | 'add-server'
  | 'edit-server'
  | 'delete-server'
  | 'list'
  | 'zero'
  | 'add-laddr'
  | 'get-laddr'
  | 'reload'
  | 'handover'
  | 'shutdown'
  | 'drain'
  | 'cluster'
  | 'sync'
  | 'help'
  | 'version';

export type OptionKey =
  | 'service'
  | 'scheduler'
  | 'persistent'
  | 'netmask'
  | 'real-server'
  | 'weight'
  | 'fullnat'
  | 'laddr'
  | 'numeric'
  | 'connection'
  | 'stats'
  | 'rate'
  | 'exact'
  | 'sort'
  | 'nosort'
  | 'lip'
  | 'tun-kernel'
  | 'force';

export interface FlagDef {
  key: CommandKey | OptionKey;
  command: boolean;
  short: string[];
  long: string[];
  /** 'optional': a value if the next word is not a flag (popt's optional argument, ipvsadm's `-p [timeout]`). */
  arg: boolean | 'optional';
}

/** Every flag ctl understands, in ipvsadm's and DPVS's spellings. */
export const FLAGS: readonly FlagDef[] = [
  { key: 'add-service', command: true, short: ['A'], long: ['add-service'], arg: false },
  { key: 'edit-service', command: true, short: ['E'], long: ['edit-service'], arg: false },
  { key: 'delete-service', command: true, short: ['D'], long: ['delete-service'], arg: false },
  { key: 'add-server', command: true, short: ['a'], long: ['add-server'], arg: false },
  { key: 'edit-server', command: true, short: ['e'], long: ['edit-server'], arg: false },
  { key: 'delete-server', command: true, short: ['d'], long: ['delete-server'], arg: false },
  { key: 'list', command: true, short: ['L', 'l'], long: ['list'], arg: false },
  { key: 'zero', command: true, short: ['Z'], long: ['zero'], arg: false },
  { key: 'add-laddr', command: true, short: ['P'], long: ['add-laddr'], arg: false },
  { key: 'get-laddr', command: true, short: ['G'], long: ['get-laddr'], arg: false },
  { key: 'reload', command: true, short: [], long: ['reload'], arg: false },
  { key: 'handover', command: true, short: [], long: ['handover'], arg: false },
  { key: 'shutdown', command: true, short: [], long: ['shutdown'], arg: false },
  { key: 'drain', command: true, short: [], long: ['drain'], arg: false },
  { key: 'cluster', command: true, short: [], long: ['cluster'], arg: false },
  { key: 'sync', command: true, short: [], long: ['sync'], arg: false },
  { key: 'help', command: true, short: ['h'], long: ['help'], arg: false },
  { key: 'version', command: true, short: ['v'], long: ['version'], arg: false },
  { key: 'service', command: false, short: ['t'], long: ['tcp-service'], arg: true },
  // The same option for a UDP service: parseCtlArgs tells them apart by the spelling's flag.
  { key: 'service', command: false, short: ['u'], long: ['udp-service'], arg: true },
  { key: 'scheduler', command: false, short: ['s'], long: ['scheduler'], arg: true },
  { key: 'persistent', command: false, short: ['p'], long: ['persistent'], arg: 'optional' },
  { key: 'netmask', command: false, short: ['M'], long: ['netmask'], arg: true },
  { key: 'real-server', command: false, short: ['r'], long: ['real-server'], arg: true },
  { key: 'weight', command: false, short: ['w'], long: ['weight'], arg: true },
  { key: 'fullnat', command: false, short: ['b'], long: ['fullnat'], arg: false },
  { key: 'laddr', command: false, short: ['z'], long: ['laddr'], arg: true },
  { key: 'numeric', command: false, short: ['n'], long: ['numeric'], arg: false },
  { key: 'connection', command: false, short: ['c'], long: ['connection'], arg: false },
  { key: 'stats', command: false, short: [], long: ['stats'], arg: false },
  { key: 'rate', command: false, short: [], long: ['rate'], arg: false },
  { key: 'exact', command: false, short: ['X'], long: ['exact'], arg: false },
  // ipvsadm: "does nothing, for backwards compatibility" (sorting is the default).
  { key: 'sort', command: false, short: [], long: ['sort'], arg: false },
  { key: 'nosort', command: false, short: [], long: ['nosort'], arg: false },
  // fullnat's own listing additions, off by default so ipvsadm parsers read the listings unchanged.
  { key: 'lip', command: false, short: [], long: ['lip'], arg: false },
  { key: 'tun-kernel', command: false, short: [], long: ['tun-kernel'], arg: false },
  { key: 'force', command: false, short: [], long: ['force'], arg: false },
];

const ONLY_FULLNAT =
  'ctl makes FULLNAT (-b) services only; a NAT service comes from the configuration (lb_kind NAT)';
const ONLY_TCP = 'only TCP and UDP services are supported (-t or -u VIP:port)';

/** ipvsadm/DPVS flags fullnat knows but cannot honour, with the reason an operator needs. */
export const UNSUPPORTED: ReadonlyMap<string, string> = new Map([
  ['-g', ONLY_FULLNAT],
  ['--gatewaying', ONLY_FULLNAT],
  ['-m', ONLY_FULLNAT],
  ['--masquerading', ONLY_FULLNAT],
  ['-i', ONLY_FULLNAT],
  ['--ipip', ONLY_FULLNAT],
  ['-J', ONLY_FULLNAT],
  ['--snat', ONLY_FULLNAT],
  ['-q', ONLY_TCP],
  ['--icmp-service', ONLY_TCP],
  ['-f', 'firewall-mark services (-f) are not supported; use -t VIP:port'],
  ['--fwmark-service', 'firewall-mark services (-f) are not supported; use -t VIP:port'],
  ['-x', 'connection thresholds (-x/-y) are not supported'],
  ['-y', 'connection thresholds (-x/-y) are not supported'],
  ['--u-threshold', 'connection thresholds (-x/-y) are not supported'],
  ['--l-threshold', 'connection thresholds (-x/-y) are not supported'],
  ['-C', '-C (clear) is not supported: delete services with -D, or edit the config and --reload'],
  [
    '--clear',
    '-C (clear) is not supported: delete services with -D, or edit the config and --reload',
  ],
  [
    '-R',
    '-R/-S (restore/save) are not supported: the config file is the saved table; use --reload',
  ],
  [
    '--restore',
    '-R/-S (restore/save) are not supported: the config file is the saved table; use --reload',
  ],
  [
    '-S',
    '-R/-S (restore/save) are not supported: the config file is the saved table; use --reload',
  ],
  [
    '--save',
    '-R/-S (restore/save) are not supported: the config file is the saved table; use --reload',
  ],
  ['-Q', 'deleting a local address (-Q) is not supported: edit the config and --reload'],
  ['--del-laddr', 'deleting a local address (-Q) is not supported: edit the config and --reload'],
  ['--set', 'timeouts (--set) come from the config file: edit it and --reload'],
  ['--timeout', 'timeouts come from the config file'],
  ['--start-daemon', 'connection sync daemons are not supported'],
  ['--stop-daemon', 'connection sync daemons are not supported'],
  ['--daemon', 'connection sync daemons are not supported'],
  ['--thresholds', 'connection thresholds are not supported'],
  [
    '--persistent-conn',
    '--persistent-conn (persistent connection counters) is not supported: -Lnc lists the templates',
  ],
]);

/** ipvsadm's names for the flags, used in messages next to the flag the operator typed. */
export const NAMES: Record<CommandKey | OptionKey, string> = {
  'add-service': 'add-service',
  'edit-service': 'edit-service',
  'delete-service': 'delete-service',
  'add-server': 'add-server',
  'edit-server': 'edit-server',
  'delete-server': 'delete-server',
  list: 'list',
  zero: 'zero',
  'add-laddr': 'add-laddr',
  'get-laddr': 'get-laddr',
  reload: 'reload',
  handover: 'handover',
  shutdown: 'shutdown',
  drain: 'drain',
  cluster: 'cluster',
  sync: 'sync',
  help: 'help',
  version: 'version',
  service: 'service-address',
  scheduler: 'scheduler',
  persistent: 'persistent',
  netmask: 'netmask',
  'real-server': 'real-server',
  weight: 'weight',
  fullnat: 'forwarding-method',
  laddr: 'local-address',
  numeric: 'numeric',
  connection: 'connection',
  stats: 'stats',
  rate: 'rate',
  exact: 'exact',
  sort: 'sort',
  nosort: 'nosort',
  lip: 'lip',
  'tun-kernel': 'tun-kernel',
  force: 'force',
};

/** How a required option is asked for in messages. */
export const WANTED: Partial<Record<OptionKey, string>> = {
  service: '-t VIP:port',
  'real-server': '-r RS:port',
  laddr: '-z LIP',
};

/** ipvsadm's commands_v_options table, reduced to what fullnat supports. Unlisted = illegal. */
export const COMMAND_OPTIONS: Record<CommandKey, { required: OptionKey[]; optional: OptionKey[] }> =
  {
    'add-service': { required: ['service'], optional: ['scheduler', 'persistent', 'netmask'] },
    'edit-service': { required: ['service'], optional: ['scheduler', 'persistent', 'netmask'] },
    'delete-service': { required: ['service'], optional: [] },
    'add-server': { required: ['service', 'real-server'], optional: ['weight', 'fullnat'] },
    'edit-server': { required: ['service', 'real-server'], optional: ['weight', 'fullnat'] },
    'delete-server': { required: ['service', 'real-server'], optional: [] },
    list: {
      required: [],
      optional: [
        'numeric',
        'connection',
        'service',
        'stats',
        'rate',
        'exact',
        'sort',
        'nosort',
        'lip',
        'tun-kernel',
      ],
    },
    zero: { required: [], optional: [] },
    'add-laddr': { required: ['service', 'laddr'], optional: [] },
    'get-laddr': { required: [], optional: ['service', 'numeric'] },
    reload: { required: [], optional: ['force'] },
    handover: { required: [], optional: [] },
    shutdown: { required: [], optional: [] },
    drain: { required: [], optional: [] },
    cluster: { required: [], optional: ['numeric'] },
    sync: { required: [], optional: ['numeric'] },
    help: { required: [], optional: [] },
    version: { required: [], optional: [] },
  };
