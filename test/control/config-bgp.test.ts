/**
 * A fleet node's configuration: the `bgp` block (both neighbour forms,
 * IPv6 neighbours and prefixes), a service's `quorum`, `drain_timeout`, the
 * refusals with their exact `FILE:LINE: reason`, and what a reload sees.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  ConfigError,
  diffConfig,
  parseConfig,
  reloadNeedsForce,
} from '../../src/control/config/index.js';
import type { BgpSpec } from '../../src/control/model.js';
import { Ipv6Address } from '../../src/wire/address.js';
import { parseIpv4 } from '../../src/wire/bytes.js';

const ip = (s: string): number => parseIpv4(s);
const ip6 = (s: string): Ipv6Address => Ipv6Address.parse(s)!;

const NODE = `local_address_group g1 {
    10.79.9.1
    10.79.9.2
    2001:db8:9::1
}
virtual_server 10.79.1.100 80 {
    laddr_group_name g1
    real_server 10.79.2.2 80 {
        weight 1
    }
}
virtual_server 2001:db8:1::100 80 {
    laddr_group_name g1
    real_server 2001:db8:2::2 80 {
        weight 1
    }
}
`;

const BGP = `bgp {
    router_id 10.79.0.11
    local_as 65011
    neighbor 10.79.0.1 {
        remote_as 65000
        hold_time 3
        bfd on
        source_address 10.79.0.11
    }
    neighbor 10.79.0.2 remote_as 65000
    neighbor 2001:db8:ff::1 remote_as 4200000000 hold_time 0 bfd on
    bfd_interval 50
    bfd_multiplier 5
    community 65000:100
    community 65000:200
    med 10
    lip_prefix 10.79.9.0/28
    lip_prefix 2001:db8:9::/64
}
`;

/** The ConfigError parsing `text` throws. */
function refusal(text: string, file = 'n.conf'): ConfigError {
  try {
    parseConfig(text, file);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.ok(!e.message.includes('\n'), 'one line');
    return e;
  }
  return assert.fail('expected a ConfigError');
}

/** 1-based line of the first line containing `needle`. */
function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `'${needle}' not in the text`);
  return i + 1;
}

/** NODE plus a bgp block whose body is `body`; the error must be on the line holding `needle`. */
function expectBgpError(body: string, needle: string, message: string, nodeText = NODE): void {
  const text = `${nodeText}bgp {\n${body}\n}\n`;
  const e = refusal(text);
  assert.equal(e.message, `n.conf:${lineOf(text, needle)}: ${message}`);
}

const MIN = 'router_id 10.79.0.11\nlocal_as 65011\nneighbor 10.79.0.1 remote_as 65000';

describe('config: the bgp block', () => {
  it('parses every keyword, both neighbour forms, IPv6 neighbours and prefixes', () => {
    const text = NODE + BGP;
    const cfg = parseConfig(text, 'n.conf');
    const pos = (needle: string) => ({ file: 'n.conf', line: lineOf(text, needle) });
    const expected: BgpSpec = {
      routerId: ip('10.79.0.11'),
      localAs: 65011,
      neighbors: [
        {
          addr: ip('10.79.0.1'),
          remoteAs: 65000,
          holdTime: 3,
          bfd: true,
          sourceAddress: ip('10.79.0.11'),
          pos: pos('neighbor 10.79.0.1 {'),
        },
        {
          addr: ip('10.79.0.2'),
          remoteAs: 65000,
          holdTime: 9,
          bfd: false,
          pos: pos('neighbor 10.79.0.2'),
        },
        {
          addr: ip6('2001:db8:ff::1'),
          remoteAs: 4200000000,
          holdTime: 0,
          bfd: true,
          pos: pos('neighbor 2001:db8:ff::1'),
        },
      ],
      communities: [
        [65000, 100],
        [65000, 200],
      ],
      med: 10,
      bfdInterval: 50,
      bfdMultiplier: 5,
      lipPrefixes: [
        { addr: ip('10.79.9.0'), length: 28, pos: pos('lip_prefix 10.79.9.0/28') },
        { addr: ip6('2001:db8:9::'), length: 64, pos: pos('lip_prefix 2001:db8:9::/64') },
      ],
      pos: pos('bgp {'),
    };
    assert.deepEqual(cfg.bgp, expected);
  });

  it('fills the documented defaults; a file without the block has none', () => {
    const cfg = parseConfig(`${NODE}bgp {\n${MIN}\n}\n`, 'n.conf');
    const b = cfg.bgp!;
    assert.deepEqual(b.neighbors[0], {
      addr: ip('10.79.0.1'),
      remoteAs: 65000,
      holdTime: 9,
      bfd: false,
      pos: { file: 'n.conf', line: lineOf(`${NODE}bgp {\n${MIN}\n}\n`, 'neighbor') },
    });
    assert.equal(b.bfdInterval, 100);
    assert.equal(b.bfdMultiplier, 3);
    assert.deepEqual(b.communities, []);
    assert.deepEqual(b.lipPrefixes, []);
    assert.equal(b.med, undefined);
    assert.equal(b.birdSocket, undefined);
    assert.equal('bgp' in parseConfig(NODE, 'n.conf'), false);
  });

  it('takes an existing bird: bird_socket with bird_include', () => {
    const cfg = parseConfig(
      `${NODE}bgp {\n${MIN}\nbird_socket /run/bird/bird.ctl\nbird_include /etc/bird/fullnat.conf\n}\n`,
      'n.conf',
    );
    assert.equal(cfg.bgp!.birdSocket, '/run/bird/bird.ctl');
    assert.equal(cfg.bgp!.birdInclude, '/etc/bird/fullnat.conf');
  });

  it('accepts the block with its brace on the next line and the neighbour block on one line', () => {
    const cfg = parseConfig(
      `${NODE}bgp\n{\nrouter_id 10.79.0.11 local_as 65011\nneighbor 10.79.0.1 { remote_as 65000 bfd on }\n}\n`,
      'n.conf',
    );
    assert.equal(cfg.bgp!.neighbors[0]!.bfd, true);
  });
});

describe('config: bgp refusals name FILE:LINE and the reason', () => {
  it('AS numbers: 1..4294967295, never AS_TRANS', () => {
    const as = (v: string): string => MIN.replace('local_as 65011', `local_as ${v}`);
    expectBgpError(as('0'), 'local_as', "bad local_as '0' (expected an integer 1..4294967295)");
    expectBgpError(
      as('4294967296'),
      'local_as',
      "bad local_as '4294967296' (expected an integer 1..4294967295)",
    );
    expectBgpError(
      as('23456'),
      'local_as',
      "bad local_as '23456' (23456 is AS_TRANS, RFC 6793: a stand-in, never a real AS)",
    );
    expectBgpError(
      MIN.replace('remote_as 65000', 'remote_as 23456'),
      'neighbor',
      "bad remote_as '23456' (23456 is AS_TRANS, RFC 6793: a stand-in, never a real AS)",
    );
    expectBgpError(
      MIN.replace('remote_as 65000', 'remote_as AS65000'),
      'neighbor',
      "bad remote_as 'AS65000' (expected an integer 1..4294967295)",
    );
  });

  it('router_id: an IPv4 address, not 0.0.0.0', () => {
    const rid = (v: string): string => MIN.replace('router_id 10.79.0.11', `router_id ${v}`);
    expectBgpError(
      rid('2001:db8::1'),
      'router_id',
      "bad router_id '2001:db8::1' (expected an IPv4 address)",
    );
    expectBgpError(
      rid('0.0.0.0'),
      'router_id',
      "bad router_id '0.0.0.0' (a BGP identifier is never 0.0.0.0)",
    );
  });

  it('hold_time: 0 or 3..65535', () => {
    for (const v of ['1', '2', '65536', '-1']) {
      expectBgpError(
        `${MIN} hold_time ${v}`,
        'neighbor',
        `bad hold_time '${v}' (expected 0, or seconds 3..65535: RFC 4271 allows no 1 or 2)`,
      );
    }
  });

  it('BFD timers, bfd on/off, communities, med', () => {
    expectBgpError(
      `${MIN}\nbfd_interval 5`,
      'bfd_interval',
      "bad bfd_interval '5' (expected an integer 10..10000)",
    );
    expectBgpError(
      `${MIN}\nbfd_multiplier 256`,
      'bfd_multiplier',
      "bad bfd_multiplier '256' (expected an integer 1..255)",
    );
    expectBgpError(`${MIN} bfd yes`, 'neighbor', "bad bfd 'yes' (expected on or off)");
    expectBgpError(
      `${MIN}\ncommunity 65536:1`,
      'community',
      "bad community '65536:1' (expected ASN:VALUE, each 0..65535)",
    );
    expectBgpError(
      `${MIN}\ncommunity 65000`,
      'community',
      "bad community '65000' (expected ASN:VALUE, each 0..65535)",
    );
    const twice = `${MIN}\ncommunity 65000:1\ncommunity 65000:1 `;
    const text = `${NODE}bgp {\n${twice}\n}\n`;
    assert.equal(
      refusal(text).message,
      `n.conf:${lineOf(text, 'community 65000:1 ')}: community 65000:1 given twice (first at n.conf:${lineOf(text, 'community 65000:1')})`,
    );
    expectBgpError(`${MIN}\nmed -1`, 'med', "bad med '-1' (expected an integer 0..4294967295)");
  });

  it('lip_prefix: a network, its length, no overlaps', () => {
    expectBgpError(
      `${MIN}\nlip_prefix 10.79.9.0`,
      'lip_prefix',
      "bad lip_prefix '10.79.9.0' (expected ADDRESS/LENGTH)",
    );
    expectBgpError(
      `${MIN}\nlip_prefix 10.79.9.0/33`,
      'lip_prefix',
      "bad lip_prefix length '33' (expected an integer 1..32)",
    );
    expectBgpError(
      `${MIN}\nlip_prefix 2001:db8:9::/129`,
      'lip_prefix',
      "bad lip_prefix length '129' (expected an integer 1..128)",
    );
    expectBgpError(
      `${MIN}\nlip_prefix 10.79.9.3/28`,
      'lip_prefix',
      "bad lip_prefix '10.79.9.3/28' (host bits set: the network is 10.79.9.0/28)",
    );
    expectBgpError(
      `${MIN}\nlip_prefix 127.0.0.0/8`,
      'lip_prefix',
      'IPv4 address 127.0.0.0 is out of range (not a routable unicast address)',
    );
    const text = `${NODE}bgp {\n${MIN}\nlip_prefix 10.79.9.0/28\nlip_prefix 10.79.9.0/24\n}\n`;
    assert.equal(
      refusal(text).message,
      `n.conf:${lineOf(text, '/24')}: lip_prefix 10.79.9.0/24 overlaps lip_prefix 10.79.9.0/28 (n.conf:${lineOf(text, '/28')})`,
    );
  });

  it('neighbours: an address, remote_as required, given once, known keywords', () => {
    expectBgpError(
      `${MIN}\nneighbor 10.79.0.5`,
      'neighbor 10.79.0.5',
      "neighbor 10.79.0.5 needs 'remote_as' (expected 'neighbor ADDRESS { remote_as AS … }' or 'neighbor ADDRESS remote_as AS')",
    );
    expectBgpError(
      `${MIN}\nneighbor 10.79.0.5 {\nhold_time 3\n}`,
      'neighbor 10.79.0.5',
      "neighbor 10.79.0.5 needs 'remote_as' (expected 'neighbor ADDRESS { remote_as AS … }' or 'neighbor ADDRESS remote_as AS')",
    );
    const bare = `${NODE}bgp {\n${MIN}\nneighbor\n}\n`;
    assert.equal(
      refusal(bare).message,
      `n.conf:${bare.split('\n').indexOf('neighbor') + 1}: expected 'neighbor ADDRESS { remote_as AS … }' or 'neighbor ADDRESS remote_as AS'`,
    );
    expectBgpError(
      `${MIN}\nneighbor fe80::1 remote_as 65000`,
      'fe80',
      'IPv6 address fe80::1 is out of range (not a routable unicast address: link-local)',
    );
    expectBgpError(
      `${MIN}\nneighbor 10.79.0.5 remote_as 65000 remote_as 65001`,
      '10.79.0.5',
      "'remote_as' given twice in this block (first at n.conf:" +
        String(lineOf(`${NODE}bgp {\n${MIN}\nneighbor 10.79.0.5`, 'neighbor 10.79.0.5')) +
        ')',
    );
    expectBgpError(
      `${MIN}\nneighbor 10.79.0.5 remote_as 65000 multihop 2`,
      '10.79.0.5',
      "unknown keyword 'multihop' in neighbor (valid: remote_as, hold_time, bfd, source_address)",
    );
    expectBgpError(
      `${MIN}\nneighbor 10.79.0.5 remote_as`,
      '10.79.0.5',
      "'remote_as' needs a value",
    );
    expectBgpError(
      `${MIN}\nneighbor 10.79.0.5 remote_as 65000 {\n}`,
      '10.79.0.5',
      "unexpected 'remote_as' before '{' of neighbor 10.79.0.5",
    );
    const text = `${NODE}bgp {\n${MIN}\nneighbor 10.79.0.1 { remote_as 65000 }\n}\n`;
    assert.equal(
      refusal(text).message,
      `n.conf:${lineOf(text, 'neighbor 10.79.0.1 {')}: neighbor 10.79.0.1 given twice (first at n.conf:${lineOf(text, 'neighbor 10.79.0.1')})`,
    );
    expectBgpError(
      `${MIN}\nneighbor 2001:db8:ff::1 {\nremote_as 65000\nsource_address 10.79.0.11\n}`,
      'source_address',
      'source_address 10.79.0.11 is IPv4 but neighbor 2001:db8:ff::1 is IPv6',
    );
  });

  it('the block: router_id, local_as and a neighbour required; once per file; bird pairs', () => {
    expectBgpError(
      'local_as 65011\nneighbor 10.79.0.1 remote_as 65000',
      'bgp {',
      "bgp needs 'router_id' (this node's BGP identifier, an IPv4 address)",
    );
    expectBgpError(
      'router_id 10.79.0.11\nneighbor 10.79.0.1 remote_as 65000',
      'bgp {',
      "bgp needs 'local_as' (this node's AS number)",
    );
    expectBgpError(
      'router_id 10.79.0.11\nlocal_as 65011',
      'bgp {',
      "bgp needs at least one 'neighbor' (the router the VIPs are announced to)",
    );
    expectBgpError(
      `${MIN}\nbird_socket /run/bird/bird.ctl`,
      'bird_socket',
      "'bird_socket' needs 'bird_include': the file fullnat writes and the running bird includes",
    );
    expectBgpError(
      `${MIN}\nbird_include /etc/bird/fullnat.conf`,
      'bird_include',
      "'bird_include' needs 'bird_socket': the control socket of the bird that includes it",
    );
    expectBgpError(
      `${MIN}\nbird_include etc/bird/fullnat.conf`,
      'bird_include',
      "bad bird_include 'etc/bird/fullnat.conf' (expected an absolute path without '..')",
    );
    expectBgpError(
      `${MIN}\nlocal_as 65012`,
      'local_as 65012',
      `'local_as' given twice in this block (first at n.conf:${lineOf(NODE + 'bgp {\n' + MIN, 'local_as')})`,
    );
    expectBgpError(
      `${MIN}\nrouter 1`,
      'router 1',
      "unknown keyword 'router' in bgp (valid: router_id, local_as, bfd_interval, bfd_multiplier, med, bird_socket, bird_include, neighbor, community, lip_prefix)",
    );
    const twice = `${NODE}bgp {\n${MIN}\n}\nbgp {\n${MIN}\n}\n`;
    const lines = twice.split('\n');
    const second = lines.findIndex((l, i) => l === 'bgp {' && i > lineOf(twice, 'bgp {')) + 1;
    assert.equal(
      refusal(twice).message,
      `n.conf:${second}: 'bgp' given twice (first at n.conf:${lineOf(twice, 'bgp {')})`,
    );
  });

  it("a neighbour is none of the node's VIPs or LIPs", () => {
    expectBgpError(
      'router_id 10.79.0.11\nlocal_as 65011\nneighbor 10.79.1.100 remote_as 65000',
      'neighbor',
      `neighbor 10.79.1.100 is also a virtual_server address (n.conf:${lineOf(NODE, 'virtual_server 10.79.1.100')})`,
    );
    expectBgpError(
      'router_id 10.79.0.11\nlocal_as 65011\nneighbor 2001:db8:9::1 remote_as 65000',
      'neighbor',
      `neighbor 2001:db8:9::1 is also a local address in 'g1' (n.conf:${lineOf(NODE, '2001:db8:9::1')})`,
    );
  });

  it('lip_prefix covers every LIP in use, and no VIP or real server', () => {
    expectBgpError(
      `${MIN}\nlip_prefix 10.79.9.0/31`,
      '10.79.9.2',
      `local address 10.79.9.2 in 'g1' is in no lip_prefix (10.79.9.0/31; bgp at n.conf:${lineOf(NODE + 'bgp {', 'bgp {')}): replies from real servers to it would not be routed back to this node`,
    );
    expectBgpError(
      `${MIN}\nlip_prefix 10.79.9.0/28`,
      '2001:db8:9::1',
      `local address 2001:db8:9::1 in 'g1' is in no lip_prefix (10.79.9.0/28; bgp at n.conf:${lineOf(NODE + 'bgp {', 'bgp {')}): replies from real servers to it would not be routed back to this node`,
    );
    expectBgpError(
      `${MIN}\nlip_prefix 10.79.0.0/16\nlip_prefix 2001:db8:9::/64`,
      'lip_prefix 10.79.0.0/16',
      `lip_prefix 10.79.0.0/16 takes in virtual_server address 10.79.1.100 (n.conf:${lineOf(NODE, 'virtual_server 10.79.1.100')}): the node would attract its traffic even with the VIP withdrawn`,
    );
    expectBgpError(
      `${MIN}\nlip_prefix 10.79.8.0/23\nlip_prefix 2001:db8::/44`,
      'lip_prefix 2001:db8::/44',
      `lip_prefix 2001:db8::/44 takes in virtual_server address 2001:db8:1::100 (n.conf:${lineOf(NODE, 'virtual_server 2001:db8:1::100')}): the node would attract its traffic even with the VIP withdrawn`,
    );
    const rsInPrefix = NODE.replace('real_server 10.79.2.2', 'real_server 10.79.9.5');
    expectBgpError(
      `${MIN}\nlip_prefix 10.79.9.0/28\nlip_prefix 2001:db8:9::/64`,
      'lip_prefix 10.79.9.0/28',
      `lip_prefix 10.79.9.0/28 takes in real server address 10.79.9.5 (n.conf:${lineOf(rsInPrefix, 'real_server 10.79.9.5')}): the node would attract traffic meant for it`,
      rsInPrefix,
    );
    // A group no service uses is not announced, so it need not be covered.
    const unused = NODE.replace(
      'virtual_server 10.79.1.100',
      'local_address_group spare {\n    10.80.0.1\n}\nvirtual_server 10.79.1.100',
    );
    assert.ok(
      parseConfig(
        `${unused}bgp {\n${MIN}\nlip_prefix 10.79.9.0/28\nlip_prefix 2001:db8:9::/64\n}\n`,
        'n.conf',
      ).bgp,
    );
  });
});

describe('config: quorum and drain_timeout', () => {
  it('parses quorum (default 1) and drain_timeout (default 0)', () => {
    const text = NODE.replace('laddr_group_name g1', 'laddr_group_name g1\n    quorum 2').replace(
      'local_address_group',
      'fullnat_defs {\n    drain_timeout 30\n}\nlocal_address_group',
    );
    const cfg = parseConfig(text, 'n.conf');
    assert.equal(cfg.services[0]!.quorum, 2);
    assert.equal(cfg.services[1]!.quorum, 1);
    assert.equal(cfg.defs.drainTimeout, 30);
    assert.equal(parseConfig(NODE, 'n.conf').defs.drainTimeout, 0);
    const zero = parseConfig(`fullnat_defs {\n drain_timeout 0\n}\n${NODE}`, 'n.conf');
    assert.equal(zero.defs.drainTimeout, 0);
  });

  it('refuses a quorum below 1 and a drain_timeout beyond a day', () => {
    for (const v of ['0', '-1', 'two', '4294967296']) {
      const text = NODE.replace('laddr_group_name g1', `laddr_group_name g1\n    quorum ${v}`);
      assert.equal(
        refusal(text).message,
        `n.conf:${lineOf(text, 'quorum')}: bad quorum '${v}' (expected an integer 1..4294967295)`,
      );
    }
    const twice = NODE.replace('laddr_group_name g1', 'quorum 1\n quorum 2\n laddr_group_name g1');
    assert.equal(
      refusal(twice).message,
      `n.conf:${lineOf(twice, 'quorum 2')}: 'quorum' given twice in this block (first at n.conf:${lineOf(twice, 'quorum 1')})`,
    );
    for (const v of ['86401', '1.5', '-1']) {
      const text = `fullnat_defs {\n    drain_timeout ${v}\n}\n${NODE}`;
      assert.equal(
        refusal(text).message,
        `n.conf:2: bad drain_timeout '${v}' (expected an integer 0..86400)`,
      );
    }
  });
});

describe('config: what a reload sees', () => {
  const withBgp = (body = MIN): string => `${NODE}bgp {\n${body}\n}\n`;
  const parse = (t: string) => parseConfig(t, 'n.conf');

  it('bgpChanged: the block added, removed or changed; not moved or reformatted', () => {
    assert.equal(diffConfig(parse(NODE), parse(NODE)).bgpChanged, false);
    assert.equal(diffConfig(parse(NODE), parse(withBgp())).bgpChanged, true);
    assert.equal(diffConfig(parse(withBgp()), parse(NODE)).bgpChanged, true);
    assert.equal(diffConfig(parse(withBgp()), parse(withBgp())).bgpChanged, false);
    const moved = `bgp {\n\n${MIN.replace(/\n/g, ' ')}\n}\n${NODE}`;
    assert.equal(diffConfig(parse(withBgp()), parse(moved)).bgpChanged, false);
    for (const edit of [
      MIN.replace('65000', '65001'),
      `${MIN} hold_time 3`,
      `${MIN}\ncommunity 65000:1`,
      `${MIN}\nlip_prefix 10.79.9.0/28\nlip_prefix 2001:db8:9::/64`,
      `${MIN}\nneighbor 10.79.0.2 remote_as 65000`,
    ]) {
      const d = diffConfig(parse(withBgp()), parse(withBgp(edit)));
      assert.equal(d.bgpChanged, true, edit);
      assert.deepEqual(d.restartRequired, [], 'a bgp change never needs a restart');
    }
  });

  it('quorum changes are service changes; drain_timeout is a def a reload applies', () => {
    const q = NODE.replace('laddr_group_name g1', 'laddr_group_name g1\n    quorum 2');
    const d = diffConfig(parse(NODE), parse(q));
    assert.equal(d.changedServices.length, 1);
    assert.deepEqual(d.changedServices[0]!.quorum, { from: 1, to: 2 });
    const drain = diffConfig(parse(NODE), parse(`fullnat_defs {\n drain_timeout 30\n}\n${NODE}`));
    assert.deepEqual(drain.changedDefs, ['drain_timeout']);
    assert.deepEqual(drain.restartRequired, []);
  });

  it('a file that lost its bgp block takes a forced reload', () => {
    const running = parse(withBgp());
    const next = parse(NODE);
    assert.deepEqual(reloadNeedsForce(running, next, diffConfig(running, next)), [
      'n.conf has no bgp block (the running configuration has one): the reload would withdraw every prefix this node announces',
    ]);
    const added = parse(withBgp());
    assert.deepEqual(reloadNeedsForce(next, added, diffConfig(next, added)), []);
  });
});
