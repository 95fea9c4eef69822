/**
 * decideToa, the one place the TOA's fate is decided: every policy against
 * the RS path MTU, the option room, GSO super-packets and buffer tailroom,
 * without a packet.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';

import {
  ToaDecision,
  ToaMode,
  decideToa,
  resizedGsoSize,
  toaModeOf,
  wantsToa,
} from '../../src/engine/toa-decision.js';
import { OptionPlan } from '../../src/engine/toa-insert.js';
import type { ToaSetting } from '../../src/engine/options.js';

const IP = 20;
const ROOM = 4096;

interface Case {
  policy: ToaSetting;
  mtu?: number;
  segment: number;
  hl?: number;
  plan?: OptionPlan;
  newHl?: number;
  gso?: number;
  tailroom?: number;
  length?: number;
}

function decide(c: Case): number {
  const hl = c.hl ?? 32;
  return decideToa(
    c.policy,
    c.mtu ?? 1500,
    c.segment,
    hl,
    c.plan ?? OptionPlan.Keep,
    c.newHl ?? hl + 8,
    IP,
    c.gso ?? 0,
    c.tailroom ?? ROOM,
    c.length ?? c.segment,
  );
}

describe('wantsToa', () => {
  it('lvs: the client SYN and the concluding ACK, not a concluding FIN', () => {
    assert.equal(wantsToa('lvs', true, false, false, false), true);
    assert.equal(wantsToa('lvs', false, true, false, true), true);
    assert.equal(wantsToa('lvs', false, true, true, true), false);
    assert.equal(wantsToa('lvs', false, true, false, false), false);
  });
  it('dpvs and fullnat: only the concluding ACK (FIN or not)', () => {
    for (const policy of ['dpvs', 'fullnat'] as const) {
      assert.equal(wantsToa(policy, true, false, false, false), false);
      assert.equal(wantsToa(policy, false, true, false, true), true);
      assert.equal(wantsToa(policy, false, true, true, true), true);
    }
  });
  it('off: never', () => {
    assert.equal(wantsToa('off', true, false, false, true), false);
    assert.equal(wantsToa('off', false, true, false, true), false);
  });
});

describe('decideToa', () => {
  it('inserts in place when header and MTU have room, under every policy', () => {
    for (const policy of ['lvs', 'dpvs', 'fullnat'] as const) {
      assert.equal(decide({ policy, segment: 600 }), ToaMode.Insert);
    }
  });

  it('off decides nothing', () => {
    assert.equal(decide({ policy: 'off', segment: 600 }), ToaMode.None);
  });

  it('lvs: no room in the header or the MTU fails, counted', () => {
    assert.equal(decide({ policy: 'lvs', segment: 1495 }), ToaMode.None | ToaDecision.FailedMtu);
    assert.equal(decide({ policy: 'lvs', segment: 600, hl: 56 }), ToaDecision.FailedNoRoom);
    // The MTU is checked first.
    assert.equal(decide({ policy: 'lvs', segment: 1495, hl: 56 }), ToaDecision.FailedMtu);
  });

  it('dpvs and fullnat rebuild pruned options in place; an impossible plan fails', () => {
    for (const policy of ['dpvs', 'fullnat'] as const) {
      assert.equal(
        decide({ policy, segment: 600, hl: 60, plan: OptionPlan.DropPadding, newHl: 52 }),
        ToaMode.Rebuild,
      );
      assert.equal(
        decide({ policy, segment: 600, hl: 60, plan: OptionPlan.Impossible, newHl: 0 }),
        ToaDecision.FailedNoRoom,
      );
    }
  });

  it('too large for the RS path: fullnat splits, dpvs fails', () => {
    assert.equal(decide({ policy: 'fullnat', segment: 1500 }), ToaMode.Split);
    assert.equal(decide({ policy: 'dpvs', segment: 1500 }), ToaDecision.FailedMtu);
  });

  it('fullnat: a GSO super-packet gets smaller segments instead of a split', () => {
    const d = decide({ policy: 'fullnat', segment: 1500, gso: 1448, length: 30000 });
    assert.equal(toaModeOf(d), ToaMode.Insert);
    assert.ok((d & ToaDecision.GsoResized) !== 0);
    assert.equal(resizedGsoSize(1500, IP, 40), 1440);
    // Pruned options: rebuilt, resized.
    const r = decide({
      policy: 'fullnat',
      segment: 1500,
      hl: 56,
      plan: OptionPlan.DropPadding,
      newHl: 60,
      gso: 1420,
      length: 30000,
    });
    assert.equal(r, ToaMode.Rebuild | ToaDecision.GsoResized);
  });

  it('no tailroom or past 64 KiB: fullnat splits (a fresh buffer), the others fail', () => {
    assert.equal(decide({ policy: 'fullnat', segment: 600, tailroom: 10 }), ToaMode.Split);
    assert.equal(decide({ policy: 'dpvs', segment: 600, tailroom: 10 }), ToaDecision.FailedMtu);
    assert.equal(decide({ policy: 'lvs', segment: 600, tailroom: 10 }), ToaDecision.FailedMtu);
    assert.equal(
      decide({ policy: 'fullnat', segment: 1500, gso: 1448, length: 65530 }),
      ToaMode.Split,
    );
  });

  it('at most one failure counted, and a failure never comes with a mode', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<ToaSetting>('lvs', 'dpvs', 'fullnat', 'off'),
        fc.integer({ min: 68, max: 9000 }),
        fc.integer({ min: 40, max: 65535 }),
        fc.integer({ min: 5, max: 15 }),
        fc.constantFrom(
          OptionPlan.Impossible,
          OptionPlan.Keep,
          OptionPlan.DropPadding,
          OptionPlan.TimestampOnly,
        ),
        fc.integer({ min: 0, max: 9000 }),
        fc.integer({ min: 0, max: 100 }),
        (policy, mtu, segment, words, plan, gso, tailroom) => {
          const hl = words * 4;
          const d = decide({ policy, mtu, segment, hl, plan, gso, tailroom, length: segment });
          const failures =
            ((d & ToaDecision.FailedMtu) !== 0 ? 1 : 0) +
            ((d & ToaDecision.FailedNoRoom) !== 0 ? 1 : 0);
          assert.ok(failures <= 1);
          if (failures === 1) assert.equal(toaModeOf(d), ToaMode.None);
          if ((d & ToaDecision.GsoResized) !== 0) {
            assert.equal(policy, 'fullnat');
            assert.ok(gso > 0);
          }
          if (policy === 'lvs') assert.ok(toaModeOf(d) !== ToaMode.Split);
          if (policy !== 'fullnat') assert.ok(toaModeOf(d) !== ToaMode.Split);
        },
      ),
    );
  });
});
