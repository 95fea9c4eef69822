import { SCHEDULER_NAMES } from '../../engine/sched/scheduler.js';
import { MAX_WEIGHT } from '../socket/validate.js';
import { DEFAULT_SCHEDULER, DEFAULT_WEIGHT } from './argv.js';

/** `fullnat ctl -h`: ipvsadm's help, reduced to what fullnat supports. */
export function usage(): string[] {
  return [
    'Usage:',
    '  fullnat ctl -A|E -t service-address [-s scheduler]',
    '  fullnat ctl -D -t service-address',
    '  fullnat ctl -a|e -t service-address -r server-address [-b] [-w weight]',
    '  fullnat ctl -d -t service-address -r server-address',
    '  fullnat ctl -P|--add-laddr -t service-address -z local-address',
    '  fullnat ctl -G|--get-laddr [-t service-address]',
    '  fullnat ctl -L|l [-n] [-c] [--stats|--rate] [--exact] [-t service-address]',
    '  fullnat ctl -Z',
    '  fullnat ctl --reload',
    '  fullnat ctl -h',
    '',
    'Commands:',
    'Either long or short options are allowed.',
    '  --add-service     -A        add virtual service with options',
    '  --edit-service    -E        edit virtual service with options',
    '  --delete-service  -D        delete virtual service',
    '  --add-server      -a        add real server with options',
    '  --edit-server     -e        edit real server with options',
    '  --delete-server   -d        delete real server',
    '  --add-laddr       -P        add local address (LIP) to a service',
    '  --get-laddr       -G        list local addresses',
    '  --list            -L|-l     list the table',
    '  --zero            -Z        zero counters in all services',
    '  --reload                    re-read the config file, keeping connections',
    '  --help            -h        display this help message',
    '',
    'Options:',
    '  --tcp-service  -t service-address   service-address is VIP:port',
    `  --scheduler    -s scheduler         one of ${SCHEDULER_NAMES.join('|')},`,
    `                                      the default scheduler is ${DEFAULT_SCHEDULER}.`,
    '  --real-server  -r server-address    server-address is RS[:port] (default: the VIP port)',
    '  --fullnat      -b                   fullnat forwarding (the only method; implied)',
    `  --weight       -w weight            capacity of real server, 0-${MAX_WEIGHT} (default ${DEFAULT_WEIGHT})`,
    '  --laddr        -z local-address     local address (LIP) for FULLNAT',
    '  --connection   -c                   output of current connections',
    '  --stats                             output of statistics information',
    '  --rate                              output of rate information (sampled over 1 s)',
    '  --exact                             expand numbers (display exact values)',
    '  --numeric      -n                   numeric output (always on)',
  ];
}
