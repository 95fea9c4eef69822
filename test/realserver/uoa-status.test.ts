// The UDP part's pure pieces, run everywhere, root or not: the kernel's
// InUnknownProtos read from /proc/net/snmp(6), the counters from bpftool's
// dump, `rs status` text, which program a device gets, and `--dev` parsing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatStatus, runRs } from '../../src/realserver/cli.js';
import {
  parseUoaStatsDump,
  UOA_STAT_NAMES,
  parseStatsDump,
  type Status,
} from '../../src/realserver/ebpf.js';
import { programFor, TC_PROGRAMS } from '../../src/realserver/tc.js';
import { parseSnmp, parseSnmp6 } from '../../src/realserver/unknown-protos.js';

const SNMP = `Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos InDiscards
Ip: 2 64 98833 0 0 0 17 0
Icmp: InMsgs InErrors
Icmp: 0 0
`;

test('InUnknownProtos from /proc/net/snmp and Ip6InUnknownProtos from /proc/net/snmp6', () => {
  assert.equal(parseSnmp(SNMP), 17);
  assert.equal(parseSnmp('Icmp: InMsgs\nIcmp: 0\n'), undefined);
  assert.equal(parseSnmp(''), undefined);
  assert.equal(
    parseSnmp6('Ip6InReceives                   \t12\nIp6InUnknownProtos              \t3\n'),
    3,
  );
  assert.equal(parseSnmp6(''), undefined);
});

test('UOA counters parsed from bpftool map dump -j, in uoa.bpf.c order', () => {
  const dump = [
    {
      key: [],
      formatted: {
        key: 1,
        values: [
          { cpu: 0, value: 2 },
          { cpu: 1, value: 5 },
        ],
      },
    },
    { key: [], formatted: { key: 3, values: [{ cpu: 0, value: 1 }] } },
    { key: [], formatted: { key: 99, values: [{ cpu: 0, value: 1 }] } },
  ];
  const u = parseUoaStatsDump(dump);
  assert.deepEqual(Object.keys(u), [...UOA_STAT_NAMES]);
  assert.equal(u.opp, 7);
  assert.equal(u.emptyDropped, 1);
  assert.equal(u.ipo, 0);
});

test('a device with a link header gets uoa_ingress, one without gets uoa_ingress_l3', () => {
  const dev = (linkType: string) => ({ name: 'x', up: true, loopback: false, linkType });
  assert.equal(programFor(dev('ether')), TC_PROGRAMS.ether);
  assert.equal(programFor(dev('loopback')), TC_PROGRAMS.ether);
  assert.equal(programFor(dev('none')), TC_PROGRAMS.l3);
  assert.equal(programFor(dev('ipip')), TC_PROGRAMS.l3);
});

function status(loaded: boolean): Status {
  const uoa = parseUoaStatsDump([]);
  uoa.oppStripped = 4;
  return {
    loaded,
    attached: loaded,
    pinDir: '/sys/fs/bpf/p',
    object: '/o',
    objectBuilt: true,
    programs: [],
    attachments: [],
    counters: parseStatsDump([]),
    trust: null,
    problem: '',
    uoa: {
      tc: loaded ? [{ dev: 'eth0', program: 'uoa_ingress', id: 7, pref: 248, handle: '0x1' }] : [],
      counters: uoa,
      mappings: 3,
    },
    unknownProtos: { ipv4: 12 },
  };
}

test('rs status text: the UDP rows, where tc runs, and how to tell opp is being dropped', () => {
  const text = formatStatus(status(true)).join('\n');
  assert.match(text, /UDP \(UOA\): tc ingress of eth0 \(uoa_ingress, id 7\)/);
  assert.match(text, /opp shims removed\s+4/);
  assert.match(text, /client mappings held\s+3 \(of 65536, LRU\)/);
  assert.match(text, /Ip InUnknownProtos 12, Ip6InUnknownProtos unreadable/);
  assert.match(text, /nstat -az IpInUnknownProtos/);
  // Without the receiver the kernel's counter is what tells.
  const off = formatStatus(status(false)).join('\n');
  assert.match(off, /not loaded/);
  assert.match(off, /Ip InUnknownProtos 12/);
});

test('--dev: repeatable and comma-separated for attach, exec and detach; refused elsewhere', async () => {
  const err: string[] = [];
  const io = { out: () => undefined, err: (l: string) => err.push(l) };
  assert.equal(await runRs(['status', '--dev', 'eth0'], io), 2);
  assert.equal(await runRs(['attach', '--dev', 'none,eth0'], io), 2);
  assert.match(err.join('\n'), /--dev none cannot be combined/);
  assert.equal(await runRs(['attach', '--dev', ','], io), 2);
  assert.equal(await runRs(['detach', '--dev'], io), 2);
  const out: string[] = [];
  assert.equal(await runRs(['--help'], { out: (l) => out.push(l), err: () => undefined }), 0);
  assert.match(out.join('\n'), /--dev IFACE/);
  assert.match(out.join('\n'), /InUnknownProtos/);
});
