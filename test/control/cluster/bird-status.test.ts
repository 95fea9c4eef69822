/**
 * bird's control socket replies as bird 2.0.12 writes them (captured from
 * a running bird): framing, the BGP rows of `show protocols all` with their
 * neighbour, and BFD sessions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBirdReply, type BirdReply } from '../../../src/control/cluster/bird-control.js';
import { parseBfdSessions, parseProtocols } from '../../../src/control/cluster/bird-status.js';

const PROTOCOLS_ALL =
  '2002-Name       Proto      Table      State  Since         Info\n' +
  '1002-device1    Device     ---        up     17:32:24.413  \n' +
  ' fullnat_announce Static     master4    up     17:32:24.413  \n' +
  '1002-fullnat_bgp_10_79_0_1 BGP        ---        up     17:40:01.100  Established   \n' +
  '1006-  BGP state:          Established\n' +
  '     Neighbor address: 10.79.0.1\n' +
  '     Neighbor AS:      65000\n' +
  '1002-fullnat_bgp_10_79_0_2 BGP        ---        start  17:32:24.413  Active        Socket: Connection refused\n' +
  '1006-  BGP state:          Active\n' +
  '     Neighbor address: 10.79.0.2\n' +
  ' \n' +
  '0000 \n';

const BFD =
  '1020-fullnat_bfd:\n' +
  ' IP address                Interface  State      Since         Interval  Timeout\n' +
  ' 10.79.0.1                 eth0       Up         17:40:00.900    0.100    0.300\n' +
  ' fd00:79::1                eth0       Down       17:40:00.900    1.000    0.000\n' +
  '0000 \n';

function reply(text: string): BirdReply {
  const r = parseBirdReply(text);
  assert.ok(r.reply, 'complete reply');
  return r.reply;
}

test('reply framing: continued codes, the last line, and what follows it', () => {
  const r = parseBirdReply('0001 BIRD 2.0.12 ready.\n1000-BIRD');
  assert.deepEqual(r.reply, {
    code: 1,
    ok: true,
    lines: [{ code: 1, text: 'BIRD 2.0.12 ready.' }],
  });
  assert.equal(r.rest, '1000-BIRD');
  assert.equal(parseBirdReply('1002-half a reply\n').reply, undefined);
  const err = reply(
    '0002-Reading configuration from /x\n8002 /x:1:1 syntax error, unexpected GARBAGE\n',
  );
  assert.equal(err.ok, false);
  assert.equal(err.code, 8002);
  const status = reply(
    '1000-BIRD 2.0.12\n1011-Router ID is 10.0.0.1\n Hostname is vm\n0013 Daemon is up and running\n',
  );
  assert.deepEqual(status.lines[2], { code: 1011, text: 'Hostname is vm' });
  assert.equal(status.ok, true);
});

test('BGP rows of show protocols all, with their neighbour; other protocols skipped', () => {
  assert.deepEqual(parseProtocols(reply(PROTOCOLS_ALL)), [
    {
      name: 'fullnat_bgp_10_79_0_1',
      protoState: 'up',
      bgpState: 'Established',
      since: '17:40:01.100',
      info: '',
      neighbor: '10.79.0.1',
    },
    {
      name: 'fullnat_bgp_10_79_0_2',
      protoState: 'start',
      bgpState: 'Active',
      since: '17:32:24.413',
      info: 'Socket: Connection refused',
      neighbor: '10.79.0.2',
    },
  ]);
});

test('BFD sessions of every BFD protocol, IPv4 and IPv6', () => {
  assert.deepEqual(parseBfdSessions(reply(BFD)), [
    { peer: '10.79.0.1', interface: 'eth0', state: 'Up', since: '17:40:00.900' },
    { peer: 'fd00:79::1', interface: 'eth0', state: 'Down', since: '17:40:00.900' },
  ]);
  assert.deepEqual(
    parseBfdSessions(reply('1020-fullnat_bfd:\n IP address  Interface  State\n0000 \n')),
    [],
  );
});
