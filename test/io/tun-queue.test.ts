// Real-kernel test of what fullnat reads about its TUN's queue: with the
// queue set to 16 packets (linuxHost.setTxQueueLen, as `tun_txqueuelen`
// does at start) and nobody reading, 100 datagrams routed into the device
// leave 16 queued and 84 counted in tx_dropped — the counter fullnat
// exports as fullnat_tun_kernel_tx_dropped_total — and reading them moves
// them to tx_packets. Runs only as root with /dev/net/tun, the addon built
// and `ip netns` working; otherwise skipped with the reason shown.
//
// Everything runs in a child inside a namespace of its own
// (fullnat-tunq-<pid>), so that the child's sysfs is the namespace's: the
// device (fnq0), its route (10.213.0.0/24) and the datagrams never leave it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, describe, test } from 'node:test';

import { ip, tunAvailable } from '../../src/io/tun.js';

const NS = `fullnat-tunq-${process.pid}`;
const DEV = 'fnq0';
const QUEUE = 16;
const SENT = 100;

let nsCreated = false;
function deleteNamespace(): void {
  if (!nsCreated) return;
  nsCreated = false;
  try {
    ip(['netns', 'del', NS]);
  } catch {
    // already gone
  }
}
process.on('exit', deleteNamespace);

function skipReason(): string | false {
  const a = tunAvailable();
  if (!a.ok) return a.reason;
  try {
    ip(['netns', 'add', NS]);
    nsCreated = true;
    ip(['link', 'set', 'lo', 'up'], { netns: NS });
  } catch (err) {
    return `cannot create a network namespace: ${(err as Error).message}`;
  }
  return false;
}

const HOST_JS = new URL('../../src/io/host.js', import.meta.url).href;
const STATS_JS = new URL('../../src/io/device-stats.js', import.meta.url).href;

/** Inside the namespace: open, shrink the queue, fill it, count, drain, count again. */
const CHILD = `
import { writeFileSync, readFileSync } from 'node:fs';
import dgram from 'node:dgram';
import { linuxHost } from '${HOST_JS}';
import { readDeviceStatistics } from '${STATS_JS}';
// No IPv6 on the new device: its router solicitations would take queue slots.
writeFileSync('/proc/sys/net/ipv6/conf/default/disable_ipv6', '1');
const dev = linuxHost.openDevice('${DEV}', 1500, false, false);
linuxHost.setTxQueueLen('${DEV}', ${QUEUE});
linuxHost.addRoute('10.213.0.0/24', '${DEV}');
const queueLen = Number(readFileSync('/sys/class/net/${DEV}/tx_queue_len', 'utf8'));
const before = readDeviceStatistics('${DEV}');
const s = dgram.createSocket('udp4');
for (let i = 0; i < ${SENT}; i++)
  await new Promise((resolve, reject) =>
    s.send(Buffer.alloc(20), 9, '10.213.0.' + (1 + (i % 200)), (e) => (e ? reject(e) : resolve())),
  );
s.close();
const filled = readDeviceStatistics('${DEV}');
const bufs = Array.from({ length: 64 }, () => new Uint8Array(2048));
const lens = new Int32Array(64);
let drained = 0;
for (let n; (n = dev.readBatch(bufs, 0, lens)) > 0; ) drained += n;
const read = readDeviceStatistics('${DEV}');
dev.close();
process.stdout.write(JSON.stringify({ queueLen, before, filled, drained, read }) + '\\n');
`;

const skip = skipReason();

describe('the TUN queue and its kernel counters (real kernel)', { skip }, () => {
  after(deleteNamespace);

  test(`queue ${QUEUE}, ${SENT} datagrams unread: ${SENT - QUEUE} in tx_dropped, ${QUEUE} read`, () => {
    const out = execFileSync(
      'ip',
      ['netns', 'exec', NS, process.execPath, '--input-type=module', '-e', CHILD],
      { encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as {
      queueLen: number;
      before: Record<string, number>;
      filled: Record<string, number>;
      drained: number;
      read: Record<string, number>;
    };
    assert.equal(r.queueLen, QUEUE, 'setTxQueueLen took');
    assert.equal(r.before.tx_dropped, 0);
    assert.equal(
      r.filled.tx_dropped,
      SENT - QUEUE,
      'the queue held QUEUE, the kernel dropped the rest',
    );
    assert.equal(r.filled.tx_packets, 0, 'tx_packets counts what was read, not what was queued');
    assert.equal(r.drained, QUEUE);
    assert.equal(r.read.tx_packets, QUEUE);
    assert.equal(r.read.tx_dropped, SENT - QUEUE);
    assert.equal(r.read.rx_packets, 0, 'nothing was written');
  });
});
