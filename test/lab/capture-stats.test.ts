/** tcpdump's closing counters, as it prints them on stderr when it stops. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseTcpdumpStats } from '../../src/lab/live/capture-stats.js';

describe('parseTcpdumpStats', () => {
  it('reads the three lines tcpdump always prints, after its banner', () => {
    const stderr = [
      'tcpdump: listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes',
      '1432 packets captured',
      '1440 packets received by filter',
      '8 packets dropped by kernel',
      '',
    ].join('\n');
    assert.deepEqual(parseTcpdumpStats(stderr), {
      captured: 1432,
      receivedByFilter: 1440,
      droppedByKernel: 8,
    });
  });

  it('the interface line when libpcap prints it; singular "packet"; CRLF and indentation', () => {
    const stderr =
      '1 packet captured\r\n  1 packet received by filter\r\n0 packets dropped by kernel\r\n3 packets dropped by interface\r\n';
    assert.deepEqual(parseTcpdumpStats(stderr), {
      captured: 1,
      receivedByFilter: 1,
      droppedByKernel: 0,
      droppedByInterface: 3,
    });
  });

  it('null when the counters are missing or incomplete (tcpdump killed, or another program)', () => {
    assert.equal(parseTcpdumpStats(''), null);
    assert.equal(
      parseTcpdumpStats('tcpdump: listening on eth0, link-type EN10MB (Ethernet)\n'),
      null,
    );
    assert.equal(parseTcpdumpStats('12 packets captured\n12 packets received by filter\n'), null);
    assert.equal(
      parseTcpdumpStats(
        'x 12 packets captured\n12 packets received by filter\n0 packets dropped by kernel',
      ),
      null,
      'a line must be the counter alone',
    );
  });

  it('the last value of a line wins', () => {
    const stderr =
      '5 packets captured\n5 packets received by filter\n0 packets dropped by kernel\n' +
      '9 packets captured\n9 packets received by filter\n2 packets dropped by kernel\n';
    assert.deepEqual(parseTcpdumpStats(stderr), {
      captured: 9,
      receivedByFilter: 9,
      droppedByKernel: 2,
    });
  });
});
