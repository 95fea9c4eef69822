/**
 * The checks across a fleet's files: each node's own LIPs and prefixes,
 * router ids, one AS per neighbour (errors); the same services and real
 * servers everywhere, and every node announcing (warnings). Each finding
 * names the node it is reported against and the statements on both sides.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseConfig } from '../../src/control/config/index.js';
import {
  checkFleet,
  findingText,
  lipsInUse,
  type NodeFinding,
} from '../../src/control/config/fleet-checks.js';
import type { FullnatConfig } from '../../src/control/model.js';

interface NodeValues {
  lip: string;
  lip6?: string;
  routerId: string;
  remoteAs?: string;
  prefix?: string;
  scheduler?: string;
  weight?: string;
  extraService?: boolean;
  bgp?: boolean;
}

/** One node's file: its LIPs, one or two services, its bgp block. */
function nodeText(v: NodeValues): string {
  const lips = [v.lip, ...(v.lip6 ? [v.lip6] : [])].map((l) => `    ${l}\n`).join('');
  const extra = v.extraService
    ? 'virtual_server 10.79.1.101 443 {\n    laddr_group_name g1\n    real_server 10.79.2.3 443 {\n        weight 1\n    }\n}\n'
    : '';
  const bgp =
    v.bgp === false
      ? ''
      : `bgp {\n    router_id ${v.routerId}\n    local_as 65011\n    neighbor 10.79.0.1 remote_as ${v.remoteAs ?? '65000'}\n${v.prefix ? `    lip_prefix ${v.prefix}\n` : ''}}\n`;
  return `local_address_group g1 {\n${lips}}\nvirtual_server 10.79.1.100 80 {\n    lb_algo ${v.scheduler ?? 'mh'}\n    laddr_group_name g1\n    real_server 10.79.2.2 80 {\n        weight ${v.weight ?? '1'}\n    }\n}\n${extra}${bgp}`;
}

function node(file: string, v: NodeValues): { cfg: FullnatConfig; text: string } {
  const text = nodeText(v);
  return { cfg: parseConfig(text, file), text };
}

/** 1-based line of the first line containing `needle`. */
function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `'${needle}' not in the text`);
  return i + 1;
}

const texts = (fs: readonly NodeFinding[]): string[] => fs.map(findingText);

const A = { lip: '10.79.9.1', routerId: '10.79.0.11', prefix: '10.79.9.0/30' };
const B = { lip: '10.79.9.5', routerId: '10.79.0.12', prefix: '10.79.9.4/30' };
const C = { lip: '10.79.9.9', routerId: '10.79.0.13', prefix: '10.79.9.8/30' };

describe('fleet checks: a consistent fleet', () => {
  it('has no errors and no warnings', () => {
    const r = checkFleet([node('a.conf', A).cfg, node('b.conf', B).cfg, node('c.conf', C).cfg]);
    assert.deepEqual(r, { errors: [], warnings: [] });
  });

  it('lipsInUse lists the LIPs services use, each once, where they were written', () => {
    const { cfg } = node('a.conf', {
      ...A,
      prefix: undefined,
      lip6: '2001:db8:9::1',
      extraService: true,
    });
    assert.deepEqual(
      lipsInUse(cfg).map((l) => [String(l.addr), l.pos?.line]),
      [
        [String(cfg.services[0]!.laddrs[0]), 2],
        [String(cfg.services[0]!.laddrs[1]), 3],
      ],
    );
  });
});

describe('fleet checks: errors name both files and lines', () => {
  it('a LIP on two nodes', () => {
    const a = node('a.conf', { ...A, prefix: undefined });
    const b = node('b.conf', { ...B, lip: A.lip, prefix: undefined });
    const r = checkFleet([a.cfg, b.cfg]);
    assert.deepEqual(texts(r.errors), [
      `b.conf:2: local address 10.79.9.1 is also a local address of a.conf:2: each node needs its own LIPs, or real servers' replies reach the wrong node`,
    ]);
    assert.equal(r.errors[0]!.node, 'b.conf');
  });

  it('an IPv6 LIP on two nodes', () => {
    const a = node('a.conf', { ...A, prefix: undefined, lip6: '2001:db8:9::1' });
    const b = node('b.conf', { ...B, prefix: undefined, lip6: '2001:db8:9::1' });
    assert.deepEqual(texts(checkFleet([a.cfg, b.cfg]).errors), [
      `b.conf:3: local address 2001:db8:9::1 is also a local address of a.conf:3: each node needs its own LIPs, or real servers' replies reach the wrong node`,
    ]);
  });

  it("a LIP inside another node's lip_prefix, either way round", () => {
    const a = node('a.conf', { ...A, prefix: '10.79.9.0/28' });
    const b = node('b.conf', { ...B, prefix: undefined });
    const pa = lineOf(a.text, 'lip_prefix');
    assert.deepEqual(texts(checkFleet([a.cfg, b.cfg]).errors), [
      `b.conf:2: local address 10.79.9.5 falls in lip_prefix 10.79.9.0/28 of a.conf:${pa}: real servers' replies to it would be routed to that node`,
    ]);
    assert.deepEqual(texts(checkFleet([b.cfg, a.cfg]).errors), [
      `b.conf:2: local address 10.79.9.5 falls in lip_prefix 10.79.9.0/28 of a.conf:${pa}: real servers' replies to it would be routed to that node`,
    ]);
  });

  it('overlapping lip_prefixes', () => {
    const a = node('a.conf', { ...A, prefix: '10.79.9.0/29' });
    const b = node('b.conf', { ...B, lip: '10.79.9.9', prefix: '10.79.9.8/29' });
    const c = node('c.conf', { ...C, lip: '10.79.9.2', prefix: '10.79.9.2/31' });
    const r = checkFleet([a.cfg, b.cfg, c.cfg]);
    const pa = lineOf(a.text, 'lip_prefix');
    const pc = lineOf(c.text, 'lip_prefix');
    assert.deepEqual(texts(r.errors), [
      `c.conf:2: local address 10.79.9.2 falls in lip_prefix 10.79.9.0/29 of a.conf:${pa}: real servers' replies to it would be routed to that node`,
      `c.conf:${pc}: lip_prefix 10.79.9.2/31 overlaps lip_prefix 10.79.9.0/29 of a.conf:${pa}: each node's LIPs need prefixes of their own`,
    ]);
  });

  it('the same router_id', () => {
    const a = node('a.conf', A);
    const b = node('b.conf', { ...B, routerId: A.routerId });
    assert.deepEqual(texts(checkFleet([a.cfg, b.cfg]).errors), [
      `b.conf:${lineOf(b.text, 'bgp {')}: router_id 10.79.0.11 is also the router_id of a.conf:${lineOf(a.text, 'bgp {')}: each node needs its own BGP identifier`,
    ]);
  });

  it('one neighbour with two AS numbers', () => {
    const a = node('a.conf', A);
    const b = node('b.conf', { ...B, remoteAs: '65001' });
    assert.deepEqual(texts(checkFleet([a.cfg, b.cfg]).errors), [
      `b.conf:${lineOf(b.text, 'neighbor')}: neighbor 10.79.0.1 has remote_as 65001 here but 65000 in a.conf:${lineOf(a.text, 'neighbor')}: one router has one AS`,
    ]);
  });
});

describe('fleet checks: warnings', () => {
  it('a service some nodes lack', () => {
    const a = node('a.conf', { ...A, extraService: true });
    const b = node('b.conf', B);
    const r = checkFleet([a.cfg, b.cfg]);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(texts(r.warnings), [
      `b.conf: no virtual_server 10.79.1.101:443 (a.conf:${lineOf(a.text, 'virtual_server 10.79.1.101')} has it): the router sends its clients to this node too`,
    ]);
  });

  it('one service with other real servers, weights or scheduler', () => {
    const a = node('a.conf', A);
    const b = node('b.conf', { ...B, weight: '2' });
    const c = node('c.conf', { ...C, scheduler: 'wlc' });
    const svc = lineOf(a.text, 'virtual_server');
    assert.deepEqual(texts(checkFleet([a.cfg, b.cfg, c.cfg]).warnings), [
      `b.conf:${svc}: virtual_server 10.79.1.100:80 has other real servers or weights than a.conf:${svc}: a client the router moves to another node gets another real server (mh picks alike only from the same set)`,
      `c.conf:${svc}: virtual_server 10.79.1.100:80 schedules by wlc here but by mh in a.conf:${svc}`,
    ]);
  });

  it('a node without a bgp block among nodes with one', () => {
    const a = node('a.conf', A);
    const b = node('b.conf', { ...B, bgp: false });
    const r = checkFleet([a.cfg, b.cfg]);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(texts(r.warnings), [
      `b.conf: no bgp block while a.conf:${lineOf(a.text, 'bgp {')} has one: this node announces nothing, so the router sends it no traffic`,
    ]);
    assert.deepEqual(checkFleet([node('a.conf', { ...A, bgp: false }).cfg, b.cfg]), {
      errors: [],
      warnings: [],
    });
  });
});
