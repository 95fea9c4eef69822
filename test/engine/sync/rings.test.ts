/**
 * The journal's two rings on their own: the dirty ring queues an entry once
 * whatever happens to it before the drain (so it never overflows), and the
 * removal ring keeps the newest records when full.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnTable, CF_IPV6 } from '../../../src/engine/conn-table.js';
import { RemovalRing } from '../../../src/engine/sync/removal-ring.js';
import { SF_DIRTY, SF_QUEUED, TableJournal } from '../../../src/engine/sync/table-journal.js';

describe('sync rings', () => {
  it('an entry marked dirty again and again is queued once; the ring holds the table at most', () => {
    const t = new ConnTable(8);
    const j = new TableJournal(t);
    for (let round = 0; round < 5; round++)
      for (let c = 0; c < 8; c++) {
        j.markDirty(c);
        // Drained elsewhere or released: dirty cleared, still queued.
        j.syncFlags[c] = j.syncFlags[c]! & ~SF_DIRTY;
      }
    assert.equal(j.queued(1), 8, 'each index once');
    for (let c = 0; c < 8; c++) assert.equal(j.pop(1), c, 'in order');
    assert.equal(j.pop(1), -1);
    assert.ok(j.syncFlags.every((f) => (f & SF_QUEUED) === 0));
  });

  it('an entry with an IPv6 side is queued for version 2', () => {
    const t = new ConnTable(4);
    const j = new TableJournal(t);
    t.flags[2] = CF_IPV6;
    j.markDirty(1);
    j.markDirty(2);
    assert.equal(j.queued(1), 1);
    assert.equal(j.queued(2), 1);
    assert.equal(j.pop(2), 2);
  });

  it('a full removal ring drops its oldest record and says so', () => {
    const r = new RemovalRing(4, 3);
    for (let k = 1; k <= 5; k++) {
      const at = r.reserve();
      assert.equal(r.overwrote, k > 3, `record ${k}`);
      r.view.setUint32(at, k);
    }
    assert.equal(r.count, 3);
    const out = new Uint8Array(16);
    assert.equal(r.take(out, 2, 2), 2);
    const dv = new DataView(out.buffer);
    assert.deepEqual([dv.getUint32(2), dv.getUint32(6)], [3, 4], 'oldest kept first');
    assert.equal(r.take(out, 0, 9), 1);
    assert.equal(dv.getUint32(0), 5);
    assert.equal(r.count, 0);
  });
});
