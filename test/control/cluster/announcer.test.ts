/**
 * What a fleet node announces: LIPs always, a VIP while one of its services
 * meets its quorum and the node does not drain; the Announcer passes only
 * changes on and logs each prefix announced or withdrawn.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  announcements,
  Announcer,
  prefixText,
  type AnnounceInput,
  type ServiceHealth,
} from '../../../src/control/cluster/announcer.js';
import { ipv4, ipv6 } from '../../support/addresses.js';
import { recordingLogger } from '../../support/lb-harness.js';
import { prefix } from '../../support/sync-spec.js';

const svc = (vip: string, vport: number, weightInForce: number, quorum = 1): ServiceHealth => ({
  vip: vip.includes(':') ? ipv6(vip) : ipv4(vip),
  vport,
  protocol: 'TCP',
  weightInForce,
  quorum,
});

const input = (over: Partial<AnnounceInput> = {}): AnnounceInput => ({
  services: [svc('10.0.0.1', 80, 2), svc('10.0.0.2', 80, 1)],
  lips: [ipv4('10.0.3.1'), ipv4('10.0.3.2')],
  lipPrefixes: [],
  draining: false,
  ...over,
});

test('healthy VIPs and every LIP, as host routes, sorted', () => {
  assert.deepEqual(announcements(input()), {
    announce: ['10.0.0.1/32', '10.0.0.2/32', '10.0.3.1/32', '10.0.3.2/32'],
    backup: [],
    withheld: [],
  });
});

test('a VIP under its quorum is held back; the LIPs stay', () => {
  const a = announcements(input({ services: [svc('10.0.0.1', 80, 1, 2), svc('10.0.0.2', 80, 0)] }));
  assert.deepEqual(a.announce, ['10.0.3.1/32', '10.0.3.2/32']);
  assert.deepEqual(a.withheld, [
    { prefix: '10.0.0.1/32', reason: 'quorum' },
    { prefix: '10.0.0.2/32', reason: 'quorum' },
  ]);
  // Exactly at the quorum counts as up.
  assert.deepEqual(announcements(input({ services: [svc('10.0.0.1', 80, 2, 2)] })).withheld, []);
});

test('one healthy service keeps its VIP announced even when another port on it is down', () => {
  const a = announcements(input({ services: [svc('10.0.0.1', 80, 0), svc('10.0.0.1', 443, 1)] }));
  assert.deepEqual(a.announce, ['10.0.0.1/32', '10.0.3.1/32', '10.0.3.2/32']);
  assert.deepEqual(a.withheld, []);
});

test('draining withholds every VIP, healthy or not, and keeps the LIPs', () => {
  const a = announcements(input({ draining: true }));
  assert.deepEqual(a.announce, ['10.0.3.1/32', '10.0.3.2/32']);
  assert.deepEqual(
    a.withheld.map((w) => w.reason),
    ['draining', 'draining'],
  );
});

test('lip_prefix replaces the host routes of the LIPs it covers; one outside it stays a host route', () => {
  const a = announcements(
    input({
      lips: [ipv4('10.0.3.1'), ipv4('10.0.3.14'), ipv4('10.0.4.1')],
      lipPrefixes: [{ addr: ipv4('10.0.3.5'), length: 28 }],
    }),
  );
  assert.deepEqual(a.announce, ['10.0.0.1/32', '10.0.0.2/32', '10.0.3.0/28', '10.0.4.1/32']);
});

test('IPv6: a VIP is a /128, prefixes lose their host bits', () => {
  const a = announcements(
    input({
      services: [svc('2001:db8::100', 80, 1)],
      lips: [ipv6('2001:db8:3::1')],
      lipPrefixes: [{ addr: ipv6('2001:db8:3::1'), length: 64 }],
    }),
  );
  assert.deepEqual(a.announce, ['2001:db8:3::/64', '2001:db8::100/128']);
  assert.equal(prefixText(ipv6('2001:db8:ffff:ffff::1'), 33), '2001:db8:8000::/33');
  assert.equal(prefixText(ipv4('10.1.2.3'), 0), '0.0.0.0/0');
});

test('the Announcer hands on changes only and logs each prefix once', () => {
  const { log, records } = recordingLogger();
  const sent: string[][] = [];
  const a = new Announcer(log);
  a.attach({ setPrefixes: (p) => sent.push(p) });
  a.update(input());
  a.update(input());
  assert.equal(sent.length, 2, 'attach, then one change');
  assert.equal(records.filter((r) => r.msg === 'announcing prefix').length, 4);
  a.update(input({ services: [svc('10.0.0.1', 80, 2), svc('10.0.0.2', 80, 0)] }));
  assert.deepEqual(sent.at(-1), ['10.0.0.1/32', '10.0.3.1/32', '10.0.3.2/32']);
  assert.equal(records.filter((r) => r.msg === 'withdrawing prefix').length, 1);
  a.update(input({ services: [svc('10.0.0.1', 80, 2), svc('10.0.0.2', 80, 0)] }));
  assert.equal(sent.length, 3);
  assert.equal(records.filter((r) => r.msg === 'withdrawing prefix').length, 1);
});

const peers = [prefix('10.0.9.20/28'), prefix('10.0.9.32/28'), prefix('2001:db8:9::/64')];

test('sync peers’ LIP prefixes are announced as backups beside the own ones, host bits cleared', () => {
  const a = announcements(input({ backupPrefixes: peers }));
  assert.deepEqual(a.announce, [
    '10.0.0.1/32',
    '10.0.0.2/32',
    '10.0.3.1/32',
    '10.0.3.2/32',
    '10.0.9.16/28',
    '10.0.9.32/28',
    '2001:db8:9::/64',
  ]);
  assert.deepEqual(a.backup, ['10.0.9.16/28', '10.0.9.32/28', '2001:db8:9::/64']);
  assert.deepEqual(a.withheld, []);
});

test('a backup equal to an own prefix is announced as the own one', () => {
  const a = announcements(
    input({
      lipPrefixes: [prefix('10.0.3.0/28')],
      backupPrefixes: [prefix('10.0.3.0/28'), prefix('10.0.9.16/28')],
    }),
  );
  assert.deepEqual(a.announce, ['10.0.0.1/32', '10.0.0.2/32', '10.0.3.0/28', '10.0.9.16/28']);
  assert.deepEqual(a.backup, ['10.0.9.16/28']);
});

test('a drain keeps the backups announced, like the own LIPs', () => {
  const a = announcements(input({ backupPrefixes: peers, draining: true }));
  assert.deepEqual(a.announce, [
    '10.0.3.1/32',
    '10.0.3.2/32',
    '10.0.9.16/28',
    '10.0.9.32/28',
    '2001:db8:9::/64',
  ]);
  assert.deepEqual(
    a.withheld.map((w) => w.reason),
    ['draining', 'draining'],
  );
});

test('while the sync resyncs nothing is announced; each prefix says why it is held back', () => {
  const a = announcements(
    input({
      services: [svc('10.0.0.1', 80, 1), svc('10.0.0.2', 80, 0)],
      backupPrefixes: [prefix('10.0.9.16/28')],
      resync: true,
    }),
  );
  assert.deepEqual(a.announce, []);
  assert.deepEqual(a.backup, ['10.0.9.16/28']);
  assert.deepEqual(a.withheld, [
    { prefix: '10.0.0.1/32', reason: 'resync' },
    { prefix: '10.0.0.2/32', reason: 'quorum' },
    { prefix: '10.0.3.1/32', reason: 'resync' },
    { prefix: '10.0.3.2/32', reason: 'resync' },
    { prefix: '10.0.9.16/28', reason: 'resync' },
  ]);
  // Draining and resyncing: a VIP keeps the drain's reason.
  const d = announcements(input({ draining: true, resync: true }));
  assert.deepEqual(
    d.withheld.map((w) => `${w.prefix} ${w.reason}`),
    ['10.0.0.1/32 draining', '10.0.0.2/32 draining', '10.0.3.1/32 resync', '10.0.3.2/32 resync'],
  );
});

test('the Announcer withdraws everything for a resync, saying why, and hands the backups on meanwhile', () => {
  const { log, records } = recordingLogger();
  const sent: Array<{ prefixes: string[]; backup: readonly string[] }> = [];
  const a = new Announcer(log);
  a.attach({ setPrefixes: (prefixes, backup) => sent.push({ prefixes, backup }) });
  a.update(input({ backupPrefixes: [prefix('10.0.9.16/28')], resync: true }));
  assert.deepEqual(sent.at(-1), { prefixes: [], backup: ['10.0.9.16/28'] });
  assert.equal(records.filter((r) => r.msg === 'announcing prefix').length, 0);
  a.update(input({ backupPrefixes: [prefix('10.0.9.16/28')] }));
  assert.equal(sent.at(-1)?.prefixes.length, 5);
  a.update(input({ backupPrefixes: [prefix('10.0.9.16/28')], resync: true }));
  assert.deepEqual(sent.at(-1)?.prefixes, []);
  assert.equal(
    records.filter(
      (r) => r.msg === 'withdrawing prefix' && (r as { reason?: string }).reason === 'resync',
    ).length,
    5,
  );
});

test('the Announcer hands on which prefixes are backups, and a prefix that stops being one', () => {
  const { log, records } = recordingLogger();
  const sent: Array<{ prefixes: string[]; backup: readonly string[] }> = [];
  const a = new Announcer(log);
  a.attach({ setPrefixes: (prefixes, backup) => sent.push({ prefixes, backup }) });
  assert.deepEqual(sent.at(-1), { prefixes: [], backup: [] });
  a.update(input({ backupPrefixes: [prefix('10.0.9.16/28')] }));
  assert.deepEqual(sent.at(-1)?.backup, ['10.0.9.16/28']);
  assert.ok(sent.at(-1)?.prefixes.includes('10.0.9.16/28'));
  assert.equal(
    records.filter((r) => r.msg === 'announcing prefix' && 'backup' in r).length,
    1,
    'the backup is logged as one',
  );
  // The same prefix set, but the backup is now the node's own lip_prefix: bird must move it out of the backups.
  const n = sent.length;
  a.update(input({ lipPrefixes: [prefix('10.0.9.16/28')] }));
  assert.equal(sent.length, n + 1);
  assert.deepEqual(sent.at(-1)?.prefixes, sent.at(-2)?.prefixes);
  assert.deepEqual(sent.at(-1)?.backup, []);
  a.update(input({ lipPrefixes: [prefix('10.0.9.16/28')] }));
  assert.equal(sent.length, n + 1, 'no change, nothing handed on');
});
