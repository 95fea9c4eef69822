// Real-kernel test of the TUN calls a handover is built on: TUNSETPERSIST
// and TUNSETQUEUE attach/detach on a multi-queue interface, in a network
// namespace of its own (fullnat-tunq-<pid>). The calls run in a child inside
// the namespace (test/io/fixtures/tun-queues.ts): a second queue can only be
// opened where the interface lives. Runs only as root with /dev/net/tun, the
// addon built and `ip netns` working; skipped with the reason otherwise.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ip, tunAvailable } from '../../src/io/tun.js';

const NS = `fullnat-tunq-${process.pid}`;
const child = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'tun-queues.js');

let nsCreated = false;
function skipReason(): string | undefined {
  const a = tunAvailable();
  if (!a.ok) return a.reason;
  try {
    ip(['netns', 'add', NS]);
    nsCreated = true;
  } catch (err) {
    return `cannot create a network namespace: ${(err as Error).message}`;
  }
  return undefined;
}
const skip = skipReason();

after(() => {
  if (nsCreated) ip(['netns', 'del', NS]);
});

interface Counts {
  q1: number;
  q2: number;
}

test('persist, attach and detach on a multi-queue TUN', { skip }, () => {
  const out = execFileSync('ip', ['netns', 'exec', NS, process.execPath, child], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>;
  const N = 200;
  assert.deepEqual(r.existing, {
    multiQueue: true,
    persistent: true,
    offload: false,
    napi: false,
  });
  const both = r.bothAttached as Counts;
  assert.equal(both.q1 + both.q2, N, 'two queues attached: every datagram reaches one of them');
  assert.deepEqual(r.q1Detached, { q1: 0, q2: N }, 'q1 detached: the kernel steers all to q2');
  assert.deepEqual(r.q2Detached, { q1: N, q2: 0 }, 'q1 attached again, q2 detached');
  assert.deepEqual(
    r.waitingWhenDetached,
    { q1: 0, q2: 0 },
    'what waited in a queue when it was detached is purged, not moved',
  );
  assert.deepEqual(r.afterClose, {
    existing: { multiQueue: true, persistent: true, offload: false, napi: false },
    address: true,
    route: true,
  });
  assert.equal(r.sentWhileNoQueue, 0, 'with no queue attached the kernel drops, it does not hold');
  console.log(`interface up again ${String(r.carrierMs)} ms after a queue attached`);
  assert.ok((r.carrierMs as number) < 3000, `up again after ${String(r.carrierMs)} ms`);
  assert.equal(r.reopened, N, 'a queue opened on the persistent interface receives everything');
  assert.equal(r.singleDetach, 'EINVAL');
  assert.equal(r.afterUnpersist, null, 'persistence off: the interface goes with its last queue');
});
